"""What a run in progress needs from the command line (``agilab-run FILE`` and ``--watch``): the
reporter, made once the lab is open — on a terminal a live block drawn with rich (:mod:`.live`),
else plain lines (:mod:`.plain`) —, and the signal handling around a run (SIGTERM as Ctrl-C;
Ctrl-C held off during a clean-up).
"""

from __future__ import annotations

import contextlib
import os
import sys

from .common import print_warnings, use_color

TYPE_CHECKING = False  # typing is not imported at run time: ~2 ms of every run's start-up
if TYPE_CHECKING:  # pragma: no cover
    import argparse
    from collections.abc import Iterator
    from types import FrameType
    from typing import TextIO

    from ..execute.events import EventHub
    from ..execute.outcome import RunResult
    from ..execute.run import Runner
    from .show import TextReporter


def live_terminal(stream: TextIO) -> bool:
    """Whether a run's progress is drawn live on ``stream``: a terminal that is not ``TERM=dumb``
    (``NO_COLOR`` keeps the block, without colours)."""
    return stream.isatty() and os.environ.get("TERM") != "dumb"


class Reporting:
    """The run's reporter, made once the lab is open (its column fits the step ids)."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.reporter: TextReporter | None = None

    def reporter_for(self, runner: Runner) -> TextReporter:
        print_warnings(runner)
        width = max([len(i) for i in runner.lab.ids] + [4])
        color, verbose = use_color(sys.stderr), self.args.verbose
        if live_terminal(sys.stderr):
            from .live import LiveReporter  # rich: only for a terminal

            self.reporter = LiveReporter(sys.stderr, width, color=color, verbose=verbose)
        else:
            from .plain import PlainReporter

            self.reporter = PlainReporter(sys.stderr, width, color=color, verbose=verbose)
        return self.reporter

    def finished(self, result: RunResult) -> None:
        assert self.reporter is not None
        close = getattr(self.reporter, "close", None)
        if close is not None:  # the live block, if a step left it up
            close()
        self.reporter.finished(result, self.args.file)


@contextlib.contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """SIGTERM ends a run as Ctrl-C does (its steps are ended; it is recorded as interrupted);
    the previous handler is back afterwards (a caller in the same process keeps its own)."""
    import signal

    def _terminated(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, _terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def no_interrupts() -> Iterator[None]:
    """Ctrl-C ignored for the duration (a second one must not cut a clean-up short), then restored."""
    import signal

    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def events_hub(target: str | None) -> EventHub | int | None:
    """``--events PATH|-``: a hub writing the run's events there; None without the option; the exit
    status when PATH cannot be opened (said)."""
    if not target:
        return None
    from ..execute.events import EventHub, JsonlSink
    from ..load.errors import os_error
    from .common import EXIT_INVALID

    try:
        sink = JsonlSink(sys.stdout if target == "-" else target)
    except OSError as exc:
        print(f"agilab-run: error: --events: {os_error(exc)}", file=sys.stderr)
        return EXIT_INVALID
    return EventHub([sink])


def close_events(hub: EventHub | int | None) -> None:
    for sink in getattr(hub, "sinks", ()):
        close = getattr(sink, "close", None)
        if close is not None:
            close()
