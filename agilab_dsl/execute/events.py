"""The run's event stream: what happens in a run (and in watch mode between runs) as JSON lines,
in the row shape AGILAB's live-state viewers read (``agilab.global_pipeline_live_state_updates.v1``):

    {sequence, timestamp, kind, target_type, target_id, status, message, operator_visible, payload}

An :class:`EventHub` numbers and timestamps events and hands each to its sinks (callables); a
:class:`JsonlSink` writes them to a file or a stream; an :class:`EventReporter` is the reporter
(:class:`~.outcome.Reporter`) that turns the scheduling loop's calls into events; a
:class:`RunEvents` keeps a run's ``.agilab/runs/<run_id>/events.jsonl``. Statuses use AGILAB's
vocabulary (:mod:`agilab_dsl.plan.vocabulary`). README "Event stream" lists every kind.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from ..plan.vocabulary import outcome_state
from .logs import failure_line, log_name, stage_result
from .outcome import Reporter, Reporters, RunResult, SilentReporter, StepOutcome

TYPE_CHECKING = False  # typing is not imported at run time: ~2 ms of every run's start-up
if TYPE_CHECKING:  # pragma: no cover
    from typing import IO, Any

    Event = dict[str, Any]
    Sink = Callable[[Event], None]

SCHEMA = "agilab.global_pipeline_live_state_updates.v1"
IN_PROCESS_ONLY = frozenset({"step_output"})  # a step's output is recorded in its log, not the stream


_second: list[tuple[int, str]] = [(-1, "")]  # the last whole second formatted (events come in bursts)


def timestamp(now: float | None = None) -> str:
    """ISO-8601 UTC to the millisecond: ``2026-11-30T18:20:00.123Z``."""
    now = time.time() if now is None else now
    whole, text = _second[0]  # read once: another thread may replace it meanwhile, never half of it
    if whole != int(now):
        whole = int(now)
        text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
        _second[0] = whole, text
    return f"{text}.{int(now * 1000) % 1000:03d}Z"


class EventHub:
    """Numbers (from 1), timestamps and fans out events; sinks may be added and removed while
    events flow (a page's client connecting). A sink that raises is dropped, never the run."""

    def __init__(self, sinks: tuple[Sink, ...] | list[Sink] = ()) -> None:
        self.sinks: list[Sink] = list(sinks)
        self.sequence = 0
        self._lock = threading.Lock()

    def add(self, sink: Sink) -> None:
        with self._lock:
            self.sinks.append(sink)

    def remove(self, sink: Sink) -> None:
        with self._lock:
            if sink in self.sinks:
                self.sinks.remove(sink)

    def emit(
        self,
        kind: str,
        target_type: str,
        target_id: str,
        status: str,
        message: str,
        payload: Mapping[str, Any] | None = None,
        operator_visible: bool = True,
    ) -> Event:
        with self._lock:
            self.sequence += 1
            event: Event = {
                "sequence": self.sequence,
                "timestamp": timestamp(),
                "kind": kind,
                "target_type": target_type,
                "target_id": target_id,
                "status": status,
                "message": message,
                "operator_visible": operator_visible,
                "payload": dict(payload or {}),
            }
            broken = []
            for sink in self.sinks:
                try:
                    sink(event)
                except Exception:  # a closed pipe, a gone client: it hears no more
                    broken.append(sink)
            for sink in broken:
                self.sinks.remove(sink)
        return event


_ENCODE = json.JSONEncoder(default=str).encode  # json.dumps(default=str) makes an encoder per call


class JsonlSink:
    """Each event as one JSON line, flushed: to a path (appended) or an open text stream."""

    def __init__(self, target: str | os.PathLike[str] | IO[str]) -> None:
        if isinstance(target, (str, os.PathLike)):
            self.stream: IO[str] = open(target, "a", encoding="utf-8")  # noqa: SIM115 - closed by close()
            self.owned = True
        else:
            self.stream, self.owned = target, False

    def __call__(self, event: Event) -> None:
        if event["kind"] in IN_PROCESS_ONLY:
            return
        self.stream.write(_ENCODE(event) + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.owned:
            self.stream.close()


class RunEvents:
    """A run's ``events.jsonl``: nothing is written for a run in which no step starts (it leaves no
    folder, as it leaves no history); from the first step on, the events so far and every later one."""

    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir / "events.jsonl"
        self.pending: list[Event] = []
        self.sink: JsonlSink | None = None
        self.failed = False

    def __call__(self, event: Event) -> None:
        if event["kind"] in IN_PROCESS_ONLY or self.failed:
            return
        if self.sink is None:
            self.pending.append(event)
            if event["kind"] != "step_started":
                return
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self.sink = JsonlSink(self.path)
            except OSError:  # the run goes on without its stream (its history says what ran)
                self.failed = True
                return
            for earlier in self.pending:
                self.sink(earlier)
            self.pending.clear()
            return
        try:
            self.sink(event)
        except OSError:
            self.failed = True

    def close(self) -> None:
        if self.sink is not None:
            self.sink.close()


class EventReporter(SilentReporter):
    """The scheduling loop's calls as events of ``hub`` (README "Event stream")."""

    def __init__(self, hub: EventHub, lab: str = "", lab_dir: str | None = None, jobs: int = 1) -> None:
        self.hub = hub
        self.lab = lab
        self.lab_dir = lab_dir
        self._below = os.path.join(lab_dir, "") if lab_dir else ""  # its paths start so
        self.jobs = jobs
        self.run_id = ""
        self.started = time.perf_counter()

    def _relative(self, path: str | None) -> str | None:
        if not path or not self.lab_dir:
            return path
        if path.startswith(self._below) and ".." not in path:  # a step's log: no relpath walk
            return path[len(self._below) :]
        try:
            return os.path.relpath(path, self.lab_dir)
        except ValueError:
            return path

    def run_started(self, run_id: str, states: Mapping[str, str]) -> None:
        self.run_id = run_id
        self.started = time.perf_counter()
        self.hub.emit(
            "run_started",
            "run",
            run_id,
            "running",
            f"run {run_id} started: {len(states)} step(s) selected",
            {"lab": self.lab, "states": dict(states), "jobs": self.jobs},
        )

    def step_queued(self, step_id: str, why: list[str]) -> None:
        self.hub.emit("step_queued", "step", step_id, "ready", "; ".join(why), {"reasons": list(why)})

    def step_started(
        self, step_id: str, why: list[str], attempt: int, interpreter: str | None = None
    ) -> None:
        log = log_name(self.run_id, step_id, attempt)  # from the lab's folder, as _relative would give
        again = f" (attempt {attempt})" if attempt > 1 else ""
        self.hub.emit(
            "step_started",
            "step",
            step_id,
            "running",
            f"{step_id} running{again}: {'; '.join(why)}",
            {"reasons": list(why), "attempt": attempt, "interpreter": interpreter, "log": log},
        )

    def step_progress(self, step_id: str, progress: Mapping[str, Any]) -> None:
        finished = progress.get("event") == "finished"
        part = str(progress.get("partition", ""))
        status = "running"
        if finished:
            status = "failed" if progress.get("error") else "done"
        done, total = progress.get("done", 0), progress.get("total", 0)
        payload = {"step": step_id, **dict(progress)}
        payload.pop("event", None)
        self.hub.emit(
            "partition_finished" if finished else "partition_started",
            "partition",
            f"{step_id}/{part}",
            status,
            f"{step_id}: {done}/{total} partitions done",
            payload,
        )

    def step_output(self, step_id: str, line: str) -> None:
        self.hub.emit("step_output", "step", step_id, "running", line, {"line": line}, operator_visible=False)

    def step_finished(self, outcome: StepOutcome) -> None:
        if outcome.status == "fresh":
            return  # done before the run and still: run_finished counts it (a large lab's run stays small)
        status = outcome_state(outcome.status)
        if outcome.status == "failed":
            message = f"{outcome.id} failed: {failure_line(outcome.error, outcome.log)}"
        elif outcome.status == "ran":
            message = f"{outcome.id} done in {outcome.seconds:.2f} s"
        else:
            message = f"{outcome.id} {outcome.status}" + (
                f": {'; '.join(outcome.reasons)}" if outcome.reasons else ""
            )
        stage = stage_result(outcome.returned)
        payload: dict[str, Any] = {
            "outcome": outcome.to_json(),
            "seconds": round(outcome.seconds, 4),
            "reasons": list(outcome.reasons),
            "log": self._relative(outcome.log),
        }
        if stage is not None:
            payload["backend"] = stage.get("backend")
            payload["partitions"] = stage.get("partitions")
        self.hub.emit("step_finished", "step", outcome.id, status, message, payload)

    def note(self, text: str) -> None:
        self.hub.emit("note", "run", self.run_id, "running", text)

    def run_finished(self, result: RunResult) -> None:
        counts: dict[str, int] = {}
        for o in result.outcomes:
            counts[o.status] = counts.get(o.status, 0) + 1
        status = "interrupted" if result.interrupted else ("failed" if result.failed else "done")
        summary = ", ".join(f"{n} {k}" for k, n in counts.items()) or "nothing to do"
        self.hub.emit(
            "run_finished",
            "run",
            result.run_id,
            status,
            f"run {result.run_id} {status}: {summary}",
            {
                "counts": counts,
                "seconds": round(time.perf_counter() - self.started, 4),
                "recorded": result.recorded,
            },
        )


class RunStream:
    """One run's events: to its ``events.jsonl`` (:class:`RunEvents`) and to the caller's hub."""

    def __init__(self, lab_dir: Path, run_id: str, lab: str, jobs: int, hub: EventHub | None = None) -> None:
        self.hub = hub or EventHub()
        self.file = RunEvents(lab_dir / ".agilab" / "runs" / run_id)
        self.hub.add(self.file)
        self.events = EventReporter(self.hub, lab, str(lab_dir), jobs)

    def reporter(self, shown: Reporter) -> Reporter:
        """The run's reporter: what is shown (the terminal's), then the events."""
        return Reporters(shown, self.events)

    def close(self) -> None:
        self.hub.remove(self.file)
        self.file.close()
