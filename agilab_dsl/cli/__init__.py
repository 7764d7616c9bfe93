"""``agilab-run``: the only place that parses argv, prints, and picks exit codes.

Exit codes: 0 ok; 1 a step failed, or ``check`` found problems; 2 the definition is invalid, a
file cannot be read, or the call is wrong. Every command imports what it needs when it runs, so
``--help`` and ``check`` never pay for dask, distributed, pyarrow, joblib, watchfiles or cupy.

This module holds :func:`main` and the dispatch only: the parsers are in :mod:`.parser`, each
command in its own ``cmd_*`` module (imported only when that command runs), what they share in
:mod:`.common`, and human-readable output in :mod:`.show`.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

from .common import EXIT_INVALID, EXIT_OK, os_failure

if TYPE_CHECKING:  # pragma: no cover
    import argparse
    from collections.abc import Sequence
    from typing import TextIO

COMMANDS = (
    "check",
    "plan",
    "schema",
    "status",
    "graph",
    "doctor",
    "history",
    "diff",
    "git-setup",
    "git-diff-driver",
    "textconv",
    "migrate",
    "fmt",
)


def main(argv: Sequence[str] | None = None) -> int:
    from .parser import build_parser, build_run_parser

    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list and not args_list[0].startswith("-") and args_list[0] not in COMMANDS:
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
    parser = build_parser()
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
        return _dispatch(args, git_path, sys.stdout)
    except KeyboardInterrupt:
        print("agilab-run: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `agilab-run schema lab-steps | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except OSError as exc:
        return os_failure(exc)


def _dispatch(args: argparse.Namespace, git_path: str | None, out: TextIO) -> int:
    """Run the command ``args`` names, importing its module only (``git_path``: ``diff ... -- PATH``)."""
    command = args.command
    if command == "check":
        from .cmd_check import cmd_check

        return cmd_check(args, out)
    if command == "plan":
        from .cmd_plan import cmd_plan

        return cmd_plan(args, out)
    if command == "status":
        from .cmd_status import cmd_status

        return cmd_status(args, out)
    if command == "graph":
        from .cmd_status import cmd_graph

        return cmd_graph(args, out)
    if command == "doctor":
        from .cmd_doctor import cmd_doctor

        return cmd_doctor(args, out)
    if command == "history":
        from .cmd_history import cmd_history

        return cmd_history(args, out)
    if command == "diff":
        from .cmd_diff import cmd_diff

        return cmd_diff(args, git_path, out)
    if command == "fmt":
        from .cmd_fmt import cmd_fmt

        return cmd_fmt(args, out)
    if command == "migrate":
        from .cmd_migrate import cmd_migrate

        return cmd_migrate(args, out)
    if command == "git-setup":
        from .cmd_git import cmd_git_setup

        return cmd_git_setup(args, out)
    if command == "git-diff-driver":
        from .cmd_git import cmd_git_diff_driver

        return cmd_git_diff_driver(args.args, out)
    if command == "textconv":
        from .cmd_git import cmd_textconv

        return cmd_textconv(args, out)
    if command == "schema":
        from .cmd_schema import cmd_schema

        return cmd_schema(args, out)
    raise AssertionError(command)  # pragma: no cover


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
