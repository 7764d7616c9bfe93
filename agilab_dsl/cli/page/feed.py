"""Where the live page's events come from, and the state they start from.

- :func:`judged_graph`: the lab's graph and every step's AGILAB state from a judgment (the
  judgment cache while nothing changed), a step whose last run failed shown ``failed`` with its
  error's first line (``.agilab/failed.json``);
- :func:`lab_graph`: the graph of an opened runner, states left as they are (watch mode, at the
  start of each run: the lab may have gained or lost steps);
- :class:`FileFeed`: ``agilab-run serve``: follows ``.agilab/runs/<newest run>/events.jsonl``,
  polled every 50 ms, switching to a newer run's folder when one appears;
- in watch mode the state is a sink of the watch session's :class:`~agilab_dsl.execute.events.EventHub`
  (``hub.add(state.apply)``): no feed object is needed.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from ...execute.run import Runner
    from ...execute.session import LabRequest, Refusal
    from ...plan.stale import StepStatus
    from .state import LiveState

RUNS = Path(".agilab") / "runs"
EVENTS = "events.jsonl"


def _backend(stage: Any) -> str | None:
    """What runs a step, as far as the lab says (a parallel stage's partition events say more)."""
    if stage.backend:
        return str(stage.backend)
    if stage.stage:
        return "parallel stage"
    if stage.function:
        return "function"
    return str(stage.engine) if stage.engine else "code"


def lab_graph(
    runner: Runner, state: LiveState, states: dict[str, tuple[str, list[str]]] | None = None
) -> None:
    """The runner's steps and edges (one per pair of steps, whatever joins them) into ``state``."""
    edges = [(e.upstream, e.downstream) for e in runner.full_graph.edges]
    details = {s.id: {"backend": _backend(s.stage)} for s in runner.lab.stages}
    state.set_graph(list(runner.lab.ids), edges, states, details)


def agilab_states(runner: Runner, statuses: list[StepStatus]) -> dict[str, tuple[str, list[str]]]:
    """Each judged step in AGILAB's vocabulary, as ``status`` says it (:mod:`...plan.shared`)."""
    from ...plan.failures import failure_reasons, read_failures
    from ...plan.shared import shared_states

    graph = runner.full_graph
    shared = shared_states(
        statuses,
        {sid: graph.upstream(sid) for sid in graph.order()},
        failure_reasons(read_failures(runner.lab_dir)),
    )
    reasons = {s.id: list(s.reasons) for s in statuses}
    return {sid: (s.state, list(s.reasons) or reasons[sid]) for sid, s in shared.items()}


def judged_graph(request: LabRequest, state: LiveState) -> Refusal | None:
    """Judge the lab and put its graph and states into ``state``; the refusal when it is invalid."""
    from ...execute.session import Refusal, judge

    judged = judge(request, None)
    if isinstance(judged, Refusal):
        state.lab = {"status": "failed", "diagnostics": _first_lines(judged), "changed": []}
        return judged
    runner, statuses = judged
    lab_graph(runner, state, agilab_states(runner, statuses))
    return None


def _first_lines(refusal: Refusal) -> list[str]:
    lines = [f"{d.path}:{d.line or 0}: {d.message}" for d in refusal.diagnostics]
    return lines + ([refusal.message] if refusal.message else [])


def newest_run(lab_dir: Path) -> Path | None:
    """The newest run folder that has an events file (run ids sort by time)."""
    folder = lab_dir / RUNS
    try:
        names = sorted((n for n in os.listdir(folder) if not n.startswith(".")), reverse=True)
    except OSError:
        return None
    return next((folder / n for n in names if (folder / n / EVENTS).is_file()), None)


class FileFeed:
    """Follows the newest run's ``events.jsonl`` beside a lab and applies each new line to a state.

    At start, a finished run's events are skipped (the judgment is newer than them); a run still
    going (no ``run_finished`` yet) is replayed from its first event. Partial lines wait for their
    newline. ``reload`` is called when a new run starts (the lab may have changed shape)."""

    def __init__(self, lab_dir: Path, state: LiveState, poll: float = 0.05) -> None:
        self.lab_dir = lab_dir
        self.state = state
        self.poll = poll
        self.current: Path | None = None
        self.offset = 0
        self.pending = b""
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None

    def start(self) -> None:
        run = newest_run(self.lab_dir)
        if run is not None:
            self.current = run
            if self._finished(run / EVENTS):
                self.offset = (run / EVENTS).stat().st_size
        self.thread = threading.Thread(target=self._loop, name="agilab-page-feed", daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join(timeout=2)

    @staticmethod
    def _finished(path: Path) -> bool:
        try:
            with path.open("rb") as fh:
                fh.seek(max(0, path.stat().st_size - 4096))
                return b'"run_finished"' in fh.read()
        except OSError:
            return False

    def _loop(self) -> None:
        while not self.stop.wait(self.poll):
            self.step()

    def step(self) -> int:
        """Read what was appended (and switch to a newer run); the number of events applied."""
        newest = newest_run(self.lab_dir)
        applied = 0
        if newest is not None and newest != self.current:
            if self.current is not None:
                applied += self._read()  # the end of the run before, if any was still unread
            self.current, self.offset, self.pending = newest, 0, b""
        if self.current is not None:
            applied += self._read()
        return applied

    def _read(self) -> int:
        assert self.current is not None
        try:
            with (self.current / EVENTS).open("rb") as fh:
                fh.seek(self.offset)
                chunk = fh.read()
        except OSError:
            return 0
        self.offset += len(chunk)
        data = self.pending + chunk
        lines = data.split(b"\n")
        self.pending = lines.pop()
        applied = 0
        for line in lines:
            try:
                event = json.loads(line)
            except ValueError:
                continue  # a damaged line: the next ones still count
            if isinstance(event, dict):
                self.state.apply(event)
                applied += 1
        return applied
