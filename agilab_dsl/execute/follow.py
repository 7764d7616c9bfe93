"""Follow the running steps as they run: what each one prints and how far a parallel stage is.

A step's output goes straight to its log (``.agilab/runs/<run_id>/<step>[.n].log``, see
:mod:`.worker`) and a parallel stage appends a JSON line per partition started and finished to
``<step>[.n].progress.jsonl`` beside it (:mod:`agilab_dsl.stages.progress`). One thread in the
runner's process polls the files of the steps running now every :data:`POLL` seconds and hands what
is new to the reporter: ``step_output(step_id, line)`` for each whole line printed, and
``step_progress(step_id, progress)`` for each partition event. When a step finishes, what is left in
its files is read before the reporter hears ``step_finished``, so its last lines come first.

The thread runs only for a reporter that wants it: one whose ``wants_live`` attribute is true
(everything) or names what it wants, ``"output"`` and/or ``"progress"`` (a reporter forwarding to
others, with a ``reporters`` attribute, wants what they want). Nothing here prints.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Callable, Iterable
from pathlib import Path

TYPE_CHECKING = False  # typing is not imported at run time: ~2 ms of every run's start-up
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any

POLL = 0.05  # seconds between two looks at the running steps' files
BEHIND = 1 << 20  # a file that grew more than this since the last look is skipped to its end ...
KEEP = 1 << 16  # ... but for its last 64 KiB (a step flooding its log must not stall the display)
LONGEST = 10_000  # characters of one output line handed on (the log has it all)
KINDS = frozenset({"output", "progress"})


def progress_file(log: str | Path) -> Path:
    """The progress file beside a step's log: ``step.2.log`` → ``step.2.progress.jsonl``."""
    log = Path(log)
    return log.with_name(log.name.removesuffix(".log") + ".progress.jsonl")


def live_wants(reporter: Any) -> frozenset[str]:
    """What a reporter (or those it forwards to) wants followed: ``"output"``, ``"progress"``."""
    inner = getattr(reporter, "reporters", None)
    if inner is not None:  # a fan-out (outcome.Reporters): what those it forwards to want
        return frozenset().union(*(live_wants(r) for r in inner))
    live = getattr(reporter, "wants_live", None)
    return KINDS if live is True else frozenset(live or ()) & KINDS


class _Tail:
    """The new whole lines of a file that is being appended to (a partial last line waits for its
    newline, or for :meth:`read` with ``final``)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.partial = b""

    def read(self, final: bool = False) -> list[str]:
        try:
            with open(self.path, "rb") as fh:
                size = os.fstat(fh.fileno()).st_size
                skipped = 0
                if size - self.offset > BEHIND:
                    skipped = size - KEEP - self.offset
                    self.offset = size - KEEP
                    self.partial = b""
                fh.seek(self.offset)
                data = fh.read(size - self.offset) if size > self.offset else b""
        except OSError:  # not written yet (a silent step has no log), or gone
            data, skipped = b"", 0
        self.offset += len(data)
        data = self.partial + data
        lines = data.split(b"\n")
        self.partial = lines.pop()
        if skipped:  # the first line after a skip is a fragment
            lines = lines[1:]
        if final and self.partial:
            lines.append(self.partial)
            self.partial = b""
        text = [_shown(line) for line in lines]
        if skipped:
            text.insert(0, f"[… {skipped} bytes not shown: see {self.path}]")
        return text


def _shown(raw: bytes) -> str:
    """One line as a terminal would show it: after its last carriage return (a progress bar's
    redraws), decoded, at most :data:`LONGEST` characters."""
    line = raw.decode("utf-8", errors="replace").rstrip("\r")
    if "\r" in line:
        line = line.rsplit("\r", 1)[1]
    return line[:LONGEST]


class Follower:
    """Polls the running steps' logs and progress files and tells ``reporter`` what is new."""

    def __init__(
        self,
        reporter: Any,
        run_dir: Path,
        wants: Iterable[str] = KINDS,
        interval: float = POLL,
        progress: Callable[[str], bool] | None = None,
    ) -> None:
        """``progress``: whether a step can write a progress file (only a parallel stage's request
        names one); None: any step can."""
        self.reporter = reporter
        self.run_dir = Path(run_dir)
        self.wants = frozenset(wants)
        self.interval = interval
        self.progress = progress
        self._steps: dict[str, tuple[_Tail | None, _Tail | None]] = {}  # step id -> (log, progress)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def started(self, step_id: str, attempt: int = 1) -> None:
        """A step (attempt) started: follow its files (a retry's are ``<step>.<n>.log``)."""
        log = self.run_dir / f"{step_id}{f'.{attempt}' if attempt > 1 else ''}.log"
        output = "output" in self.wants
        progress = "progress" in self.wants and (self.progress is None or self.progress(step_id))
        if not (output or progress):  # nothing of it to follow (a plain step, progress only wanted)
            return
        with self._lock:
            if step_id in self._steps:  # the attempt before: what it left is said first
                self._drain(step_id)
            self._steps[step_id] = (
                _Tail(log) if output else None,
                _Tail(progress_file(log)) if progress else None,
            )
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="agilab-follow", daemon=True)
            self._thread.start()

    def finished(self, step_id: str) -> None:
        """A step finished: what is left in its files is said now, and it is followed no more."""
        with self._lock:
            if step_id in self._steps:
                self._drain(step_id)
                del self._steps[step_id]

    def poll(self) -> None:
        """One look at every running step's files (the thread's; a test calls it directly)."""
        with self._lock:
            for step_id, (log, progress) in list(self._steps.items()):
                self._say(step_id, log, progress, final=False)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _drain(self, step_id: str) -> None:
        log, progress = self._steps[step_id]
        self._say(step_id, log, progress, final=True)

    def _say(self, step_id: str, log: _Tail | None, progress: _Tail | None, final: bool) -> None:
        for line in progress.read(final) if progress is not None else ():
            with contextlib.suppress(ValueError):
                event = json.loads(line)
                if isinstance(event, dict):
                    self.reporter.step_progress(step_id, event)
        for line in log.read(final) if log is not None else ():
            self.reporter.step_output(step_id, line)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.poll()
            except Exception:  # a reporter's failure must not end the run; the next look tries again
                continue


class Following:
    """A reporter that follows the steps it hears start (through a :class:`Follower`) and passes
    every call on to the reporter it wraps."""

    def __init__(self, inner: Any, follower: Follower) -> None:
        self._inner = inner
        self.follower = follower

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def step_started(
        self, step_id: str, why: list[str], attempt: int, interpreter: str | None = None
    ) -> None:
        self._inner.step_started(step_id, why, attempt, interpreter)
        self.follower.started(step_id, attempt)

    def step_finished(self, outcome: Any) -> None:
        self.follower.finished(outcome.id)
        self._inner.step_finished(outcome)


def follow(
    reporter: Any,
    run_dir: Path,
    interval: float = POLL,
    progress: Callable[[str], bool] | None = None,
) -> tuple[Any, Callable[[], None]]:
    """The reporter the runner sends its calls to, and what stops the following at the end of the
    run: ``reporter`` itself and a no-op unless it wants live output or progress. ``progress``:
    whether a step can write a progress file (see :class:`Follower`)."""
    wants = live_wants(reporter)
    if not wants:
        return reporter, lambda: None
    follower = Follower(reporter, run_dir, wants, interval, progress)
    return Following(reporter, follower), follower.stop
