"""Layer 7, the top — ``agilab-run``: the only place that parses argv, prints, and picks exit codes.
It may import every layer below; nothing imports it. A new command is a ``cmd_NAME.py`` module
with a function from the parsed arguments to an exit code, its sub-parser in :mod:`.parser`, and
its entry in :data:`COMMANDS` (the dispatch imports that module only).

Exit codes: 0 ok; 1 a step failed, or ``check`` found problems; 2 the definition is invalid, a
file cannot be read, or the call is wrong. Every command imports what it needs when it runs, so
``--help`` and ``check`` never pay for dask, distributed, pyarrow, joblib, watchfiles, cupy or rich
(rich draws a run's live block on a terminal only: :mod:`.live`).

This module holds :func:`main` and the dispatch only: the parsers are in :mod:`.parser`, each
command in its own ``cmd_*`` module (imported only when that command runs), what they share in
:mod:`.common`, and human-readable output in :mod:`.show`.
"""

from __future__ import annotations

import gc
import os
import sys

TYPE_CHECKING = False  # typing itself is not imported: start-up pays for every module

if TYPE_CHECKING:  # pragma: no cover
    import argparse
    from collections.abc import Callable, Sequence
    from typing import TextIO

# Each command: its module in this package, and that module's function from the parsed arguments
# (and the output stream) to an exit code. Only the module of the command being run is imported.
COMMANDS = {
    "check": "cmd_check",
    "plan": "cmd_plan",
    "schema": "cmd_schema",
    "status": "cmd_status",
    "graph": "cmd_status:cmd_graph",
    "serve": "cmd_serve",
    "doctor": "cmd_doctor",
    "history": "cmd_history",
    "diff": "cmd_diff",
    "git-setup": "cmd_git:cmd_git_setup",
    "git-diff-driver": "cmd_git:cmd_git_diff_driver",
    "textconv": "cmd_git:cmd_textconv",
    "migrate": "cmd_migrate",
    "fmt": "cmd_fmt",
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command in this process (tests, watch mode and other callers)."""
    try:
        return _main(list(sys.argv[1:] if argv is None else argv))
    finally:
        gc.unfreeze()  # what plan.longlived froze while the command ran: the collector's again


def console() -> int:
    """``agilab-run`` and ``python -m agilab_dsl``: :func:`main`, but what plan.longlived froze stays
    frozen, since the process ends next: CPython collects once more at exit, and would otherwise
    walk every object a large lab loaded (~0.05 s of a 0.65 s run after one change at 10,000 steps)."""
    code = _main(sys.argv[1:])
    _end_now(code)
    return code


def _end_now(code: int) -> None:
    """Exit at once, skipping the interpreter's shutdown (~4.5 ms with the run path loaded: every
    module and object torn down, for a process that ends anyway), when that shutdown has nothing
    to do: no exit handler registered (a Dask cluster's, logging's) and no thread left to wait for."""
    import atexit

    threading = sys.modules.get("threading")
    if getattr(atexit, "_ncallbacks", lambda: 1)() or (
        threading is not None
        and any(
            t.is_alive() and not t.daemon for t in threading.enumerate() if t is not threading.main_thread()
        )
    ):
        return
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):  # a closed pipe: the normal exit reports it as it always has
        return
    os._exit(code)


def _main(args_list: list[str]) -> int:
    if args_list[:1] in (["status"], ["check"]):  # answered from a cache with nothing else loaded
        from .fast import check_answer, status_answer

        try:
            answered = status_answer(args_list) if args_list[0] == "status" else check_answer(args_list)
        except BrokenPipeError:  # `agilab-run status lab.toml | head`
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 0
        if answered is not None:
            return answered
    from .common import EXIT_INVALID, EXIT_OK, os_failure

    mistyped = _mistyped_command(args_list)
    if mistyped:
        print(mistyped, file=sys.stderr)
        return EXIT_INVALID
    if _runs_a_lab(args_list):
        from .fast import run_arguments

        run_args = run_arguments(args_list)
        if run_args is None:
            from .parser import build_run_parser

            try:
                run_args = build_run_parser().parse_args(args_list)
            except SystemExit as exc:
                return int(exc.code or 0)
        from .cmd_run import cmd_run

        try:
            return cmd_run(run_args)
        except KeyboardInterrupt:
            print("agilab-run: interrupted; every step that completed is recorded", file=sys.stderr)
            return 130
        except OSError as exc:  # the lab's folder cannot be written (read-only, no permission, full)
            return os_failure(exc)
    from .parser import build_parser

    parser = build_parser(args_list[0] if args_list and args_list[0] in COMMANDS else None)
    git_path: str | None = None
    if args_list[:1] == ["diff"] and "--" in args_list:  # diff REV [REV] -- PATH
        cut = args_list.index("--")
        if len(args_list) != cut + 2:
            print("agilab-run diff: error: give one path after --", file=sys.stderr)
            return EXIT_INVALID
        git_path, args_list = args_list[cut + 1], args_list[:cut]
    try:
        args = parser.parse_args(args_list)
    except SystemExit as exc:  # --help, or a usage error already printed
        return int(exc.code or 0)
    if args.version:
        from .. import __version__

        print(f"agilab-run {__version__}")
        return EXIT_OK
    if args.command is None:
        parser.print_help()
        return EXIT_INVALID
    try:
        args.git_path = git_path  # diff REV [REV] -- PATH
        return _dispatch(args, sys.stdout)
    except KeyboardInterrupt:
        print("agilab-run: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `agilab-run schema lab-steps | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except OSError as exc:
        return os_failure(exc)


def _runs_a_lab(args_list: Sequence[str]) -> bool:
    """``agilab-run FILE [options]``, options before or after FILE (``--dry-run lab.toml`` too):
    the first word is not a command, and no word is one when options come first."""
    if not args_list or args_list[0] in COMMANDS:
        return False
    if not args_list[0].startswith("-"):
        return True
    top_level = {"-h", "--help", "--version"}
    return args_list[0] not in top_level and not any(a in COMMANDS for a in args_list)


def _mistyped_command(args_list: Sequence[str]) -> str | None:
    """What to say for ``agilab-run stauts FILE``: a first word that is no file and is close to a
    command's name (None otherwise: it is taken as the lab FILE, as ever)."""
    if not args_list or args_list[0].startswith("-") or args_list[0] in COMMANDS:
        return None
    word = args_list[0]
    if os.path.lexists(word):
        return None
    from .usage import nearest_command  # (argparse: a run of an existing lab does not import it)

    command = nearest_command(word, COMMANDS)
    if command is None:
        return None
    return f"agilab-run: error: unknown command {word!r} (did you mean {command!r}?)"


def _dispatch(args: argparse.Namespace, out: TextIO) -> int:
    """Run the command ``args`` names, importing its module only."""
    module, _, function = COMMANDS[args.command].partition(":")
    function = function or module
    # the import statement's own machinery (importlib itself is not loaded for this)
    loaded = __import__(f"{__name__}.{module}", fromlist=[function])
    command: Callable[[argparse.Namespace, TextIO], int] = getattr(loaded, function)
    return command(args, out)
