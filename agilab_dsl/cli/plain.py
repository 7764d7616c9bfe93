"""A run's progress where the output is not a terminal (CI logs, pipes, files): no escape codes, one
line per event as :class:`~.show.TextReporter` writes them, with ``-v`` each line a step prints
(``sleepy │ line``) as it prints it, and a line for each step still running every :data:`EVERY`
seconds (``… sleepy running 20 s; 12/16 partitions``), so that a long stage is seen to move.
Only the standard library is imported here.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping

from ..load.records import Record
from .show import TextReporter

TYPE_CHECKING = False  # typing is not imported at run time: ~2 ms of every run's start-up
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any, TextIO

    from ..execute.outcome import RunResult, StepOutcome

EVERY = 10.0  # seconds between two progress lines of a running step


class Running(Record):
    """What is known of a running step: when it started, its partitions, its last output line."""

    _fields = ("started", "progress", "first_progress", "last_line")

    def __init__(
        self,
        started: float,
        progress: dict[str, Any] | None = None,
        first_progress: float | None = None,  # when its first partition event came (for the rate)
        last_line: str = "",
    ) -> None:
        self.started = started
        self.progress = {} if progress is None else progress
        self.first_progress = first_progress
        self.last_line = last_line

    def partitions(self) -> str:
        done, total = self.progress.get("done"), self.progress.get("total")
        if done is None or total is None:
            return ""
        failed = self.progress.get("failed") or 0
        return f"{done}/{total} partitions" + (f" ({failed} failed)" if failed else "")


class RunningSteps:
    """The steps running now, updated from any thread (the runner's, the follower's)."""

    def __init__(self, clock: Any = time.monotonic) -> None:
        self.clock = clock
        self.lock = threading.Lock()
        self.steps: dict[str, Running] = {}

    def start(self, step_id: str) -> None:
        with self.lock:
            self.steps[step_id] = Running(self.clock())

    def finish(self, step_id: str) -> None:
        if step_id in self.steps:  # a step that never started (fresh: 99,999 of 100,000) takes no lock
            with self.lock:
                self.steps.pop(step_id, None)

    def progress(self, step_id: str, progress: Mapping[str, Any]) -> None:
        with self.lock:
            step = self.steps.get(step_id)
            if step is not None:
                if step.first_progress is None:
                    step.first_progress = self.clock()
                step.progress = dict(progress)

    def output(self, step_id: str, line: str) -> None:
        with self.lock:
            step = self.steps.get(step_id)
            if step is not None and line.strip():
                step.last_line = line

    def snapshot(self) -> list[tuple[str, Running]]:
        with self.lock:
            return [
                (sid, Running(s.started, dict(s.progress), s.first_progress, s.last_line))
                for sid, s in self.steps.items()
            ]


class TrackingReporter(TextReporter):
    """:class:`~.show.TextReporter` that also keeps what runs (:class:`RunningSteps`: start, partitions,
    last output line) and, with ``-v``, prints each output line (``sleepy │ line``): what the plain and
    the live reporter share."""

    def __init__(self, out: TextIO, width: int = 20, color: bool = False, verbose: bool = False) -> None:
        super().__init__(out, width, color=color, verbose=verbose)
        self.running = RunningSteps()

    def step_started(
        self, step_id: str, why: list[str], attempt: int, interpreter: str | None = None
    ) -> None:
        super().step_started(step_id, why, attempt, interpreter)
        self.running.start(step_id)

    def step_finished(self, outcome: StepOutcome) -> None:
        self.running.finish(outcome.id)
        super().step_finished(outcome)

    def step_progress(self, step_id: str, progress: Mapping[str, Any]) -> None:
        self.running.progress(step_id, progress)

    def step_output(self, step_id: str, line: str) -> None:
        self.running.output(step_id, line)
        if self.verbose:
            self._line(f"{step_id:<{self.width}} │ {line}")


class PlainReporter(TrackingReporter):
    """For a stream that is not a terminal: what :class:`TrackingReporter` says, and a progress line
    per running step every ``every`` seconds."""

    def __init__(
        self,
        out: TextIO,
        width: int = 20,
        color: bool = False,
        verbose: bool = False,
        every: float = EVERY,
    ) -> None:
        super().__init__(out, width, color=color, verbose=verbose)
        self.wants_live = frozenset({"progress", "output"} if verbose else {"progress"})
        self.every = every
        self._ticker: threading.Thread | None = None
        self._wake = threading.Event()

    def step_started(
        self, step_id: str, why: list[str], attempt: int, interpreter: str | None = None
    ) -> None:
        super().step_started(step_id, why, attempt, interpreter)
        with self.running.lock:
            if self._ticker is None:
                self._ticker = threading.Thread(target=self._tick, name="agilab-progress", daemon=True)
                self._ticker.start()

    def progress_lines(self) -> list[str]:
        """One line per step running for at least ``every`` seconds (what a tick prints)."""
        now = self.running.clock()
        lines = []
        for sid, step in self.running.snapshot():
            elapsed = now - step.started
            if elapsed < self.every:
                continue
            parts = step.partitions()
            lines.append(f"… {sid} running {elapsed:.0f} s" + (f"; {parts}" if parts else ""))
        return lines

    def run_finished(self, result: RunResult) -> None:
        """The ticker ends now, not up to ``every`` seconds later (watch mode runs again)."""
        with self.running.lock:
            ticker = self._ticker
        if ticker is not None:
            self._wake.set()
            ticker.join()
            self._wake.clear()
        super().run_finished(result)

    def _tick(self) -> None:
        while True:
            self._wake.wait(self.every)
            with self.running.lock:
                # nothing runs (the next step to start starts another), or the run ended
                if not self.running.steps or self._wake.is_set():
                    self._ticker = None
                    return
            for line in self.progress_lines():
                self._line(line)
