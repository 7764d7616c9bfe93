"""What the commands share: the exit codes, whether a stream gets colour, how a failed file
operation is reported, and how parsed arguments become a lab request, run options, an opened or
judged lab (its refusal or warnings printed on stderr) and the printed statuses. Only the standard
library is imported here; each helper imports what it needs when it is called.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # typing itself is not imported: start-up pays for every module

if TYPE_CHECKING:  # pragma: no cover
    import argparse
    from typing import TextIO

    from ..execute.outcome import RunOptions
    from ..execute.run import Runner
    from ..execute.session import LabRequest, Refusal
    from ..plan.judgment import CachedStatus, Known
    from ..plan.stale import StepStatus

EXIT_OK = 0
EXIT_PROBLEMS = 1
EXIT_INVALID = 2


def use_color(stream: TextIO) -> bool:
    return stream.isatty() and "NO_COLOR" not in os.environ and os.environ.get("TERM") != "dumb"


def os_failure(exc: OSError) -> int:
    """A file this tool itself had to write or read could not be: say which, and why."""
    from ..load.errors import os_error
    from ..plan.state import FOLDER

    print(f"agilab-run: error: {os_error(exc)}", file=sys.stderr)
    if exc.filename and FOLDER in str(exc.filename).split(os.sep):
        print(
            f"  hint: a lab's state lives in {FOLDER}/ beside its file; that folder must be writable",
            file=sys.stderr,
        )
    return EXIT_INVALID


def lab_request(args: argparse.Namespace) -> LabRequest:
    from ..execute.session import LabRequest
    from ..plan.interpreter import InterpreterOptions

    return LabRequest(
        file=args.file,
        settings=args.settings,
        profile=args.profile,
        only=tuple(getattr(args, "only", ())),
        from_step=getattr(args, "from_step", None),
        use_cache=not args.no_cache,
        all_stages=getattr(args, "all_stages", False),
        dataframe=getattr(args, "dataframe", None),
        export_dir=getattr(args, "export_dir", None),
        interpreters=InterpreterOptions(
            _program(getattr(args, "python", None)),
            _program(getattr(args, "agilab_python", None)),
            _absolute(getattr(args, "apps_path", None)),
        ),
        infer=not getattr(args, "no_infer", False),
    )


def _absolute(path: str | None) -> str | None:
    return os.path.abspath(os.path.expanduser(path)) if path else None


def _program(name: str | None) -> str | None:
    """``--python python3.13``: a bare name is looked for on the PATH; a path is made absolute."""
    if name and os.sep not in name and not os.path.exists(name):
        import shutil

        return shutil.which(name) or _absolute(name)
    return _absolute(name)


def report_refusal(refusal: Refusal) -> int:
    """Print why a lab cannot be judged or run; the exit code for it."""
    from ..load.errors import render_text

    color = use_color(sys.stderr)
    for d in refusal.diagnostics:
        print(render_text(d, color=color), file=sys.stderr)
    if refusal.message:
        print(f"agilab-run: {refusal.message}", file=sys.stderr)
    return EXIT_INVALID


def open_runner(args: argparse.Namespace) -> Runner | int:
    """The lab's runner, or the exit code after saying why there is none."""
    from ..execute.session import Refusal, open_lab

    runner = open_lab(lab_request(args))
    if isinstance(runner, Refusal):
        return report_refusal(runner)
    print_warnings(runner)
    return runner


def print_warnings(runner: Runner) -> None:
    for warning in runner.warnings:
        print(f"agilab-run: warning: {warning}", file=sys.stderr)


def run_options(args: argparse.Namespace) -> RunOptions:
    from ..execute.outcome import RunOptions

    return RunOptions(
        only=tuple(getattr(args, "only", ())),
        from_step=getattr(args, "from_step", None),
        force=getattr(args, "force", False),
        jobs=getattr(args, "jobs", None) or 0,
        all_stages=getattr(args, "all_stages", False),
        keep_going=getattr(args, "keep_going", False),
        backend=getattr(args, "backend", None),
        scheduler=getattr(args, "scheduler", None),
    )


def judge_lab(
    args: argparse.Namespace, options: RunOptions | None, known: Known | None = None
) -> list[StepStatus | CachedStatus] | int:
    """A judgment (kept in the judgment cache; from ``known`` when only steps' files changed
    since it was stored); the statuses, or an exit code."""
    from ..execute.session import Refusal, judge

    judged = judge(lab_request(args), options, known)
    if isinstance(judged, Refusal):
        return report_refusal(judged)
    runner, statuses = judged
    print_warnings(runner)
    return statuses
