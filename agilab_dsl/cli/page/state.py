"""The live page's server-side state: the lab's step graph (ids, one edge per dependency, layer
ranks) and, per step, AGILAB's state, reasons, backend, partitions done / total, duration, attempt
and log path — built from a judgment, then moved by the run's events (:meth:`LiveState.apply`),
whatever their source (an in-process hub in watch mode, a followed ``events.jsonl`` in ``serve``).

Thread-safe: events arrive from the runner's threads or a file-follower thread; each listener (an
SSE client) is called with every message under the state's lock, so a new client's snapshot and
the events after it never miss or repeat one. Nothing here imports a web library.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

Message = tuple[str, dict[str, Any]]  # (SSE event name, data): "message" is a run event
Listener = Callable[[Message], None]

# a step_finished event's status when it says how the step ended
_FINISHED = {"done", "failed", "waiting", "skipped", "disabled", "stale", "ready"}


@dataclass
class StepView:
    """What the page shows of one step."""

    id: str
    state: str = "stale"
    reasons: list[str] = field(default_factory=list)
    rank: int = 0
    backend: str | None = None
    done: int | None = None  # partitions of a parallel stage
    total: int | None = None
    failed: int | None = None
    seconds: float | None = None  # the last attempt's duration, once finished
    started: str | None = None  # ISO timestamp of the running attempt
    attempt: int | None = None
    log: str | None = None  # relative to the lab's folder
    error: str | None = None
    last_line: str | None = None  # the last line it printed (in-process feeds only)
    dashboard: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def ranks(ids: Iterable[str], edges: Iterable[tuple[str, str]]) -> dict[str, int]:
    """Layer of each step: 0 without upstream steps, else one more than its deepest upstream step
    (the graph is acyclic: the lab's check refuses a cycle; an edge to an unknown id is ignored)."""
    order = list(ids)
    up: dict[str, set[str]] = {i: set() for i in order}
    for a, b in edges:
        if a in up and b in up and a != b:
            up[b].add(a)
    out: dict[str, int] = {}

    def rank(sid: str, seen: frozenset[str] = frozenset()) -> int:
        if sid not in out:
            parents = [u for u in up[sid] if u not in seen]  # a cycle (never in a checked lab) is cut
            out[sid] = 1 + max((rank(u, seen | {sid}) for u in parents), default=-1)
        return out[sid]

    for sid in order:
        rank(sid)
    return out


class LiveState:
    """The steps, the run in progress and the lab's validity, moved by events."""

    def __init__(self, lab_file: str) -> None:
        self.lab_file = lab_file
        self.lock = threading.RLock()
        self.steps: dict[str, StepView] = {}
        self.edges: list[tuple[str, str]] = []
        self.run: dict[str, Any] = {}  # run_id, status, started, seconds, counts
        self.lab: dict[str, Any] = {"status": "ready", "diagnostics": [], "changed": []}
        self.history_version = 0  # moves when a run finishes (the page reloads its history)
        self.sequence = 0  # of the last event applied
        self.listeners: list[Listener] = []
        self.on_unknown: Callable[[list[str]], None] | None = None  # a run names steps not in the graph

    # -- structure ---------------------------------------------------------------------------
    def set_graph(
        self,
        ids: Iterable[str],
        edges: Iterable[tuple[str, str]],
        states: Mapping[str, tuple[str, list[str]]] | None = None,
        details: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        """The lab's steps and edges (one per pair of steps); a known step keeps what it shows
        unless ``states`` says otherwise; ``details``: per step, fields of :class:`StepView`."""
        ids = list(dict.fromkeys(ids))
        pairs = list(dict.fromkeys((a, b) for a, b in edges if a in ids and b in ids))
        layer = ranks(ids, pairs)
        with self.lock:
            old = self.steps
            self.steps = {}
            for sid in ids:
                view = old.get(sid) or StepView(sid)
                view.rank = layer[sid]
                if states and sid in states:
                    view.state, view.reasons = states[sid][0], list(states[sid][1])
                for key, value in ((details or {}).get(sid) or {}).items():
                    if value is not None or getattr(view, key) is None:
                        setattr(view, key, value)
                self.steps[sid] = view
            self.edges = pairs
            self._send(("snapshot", self._snapshot()))

    # -- reading -----------------------------------------------------------------------------
    def graph(self) -> dict[str, Any]:
        with self.lock:
            return {
                "lab": self.lab_file,
                "steps": [v.to_json() for v in self.steps.values()],
                "edges": [{"from": a, "to": b} for a, b in self.edges],
            }

    def _snapshot(self) -> dict[str, Any]:
        return {
            **self.graph(),
            "run": dict(self.run),
            "lab_status": dict(self.lab),
            "history_version": self.history_version,
            "sequence": self.sequence,
        }

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return self._snapshot()

    def graph_ids(self) -> list[str]:
        with self.lock:
            return list(self.steps)

    def log_of(self, step_id: str) -> str | None:
        with self.lock:
            view = self.steps.get(step_id)
            return view.log if view else None

    # -- listeners ---------------------------------------------------------------------------
    def subscribe(self, listener: Listener) -> None:
        """Add ``listener``; its first message is a snapshot (sent under the lock: nothing between)."""
        with self.lock:
            self.listeners.append(listener)
            listener(("snapshot", self._snapshot()))

    def unsubscribe(self, listener: Listener) -> None:
        with self.lock:
            if listener in self.listeners:
                self.listeners.remove(listener)

    def close(self) -> None:
        """Tell every listener the server stops (each event stream ends)."""
        with self.lock:
            self._send(("close", {}))
            self.listeners.clear()

    def _send(self, message: Message) -> None:
        for listener in list(self.listeners):
            try:
                listener(message)
            except Exception:  # a client gone wrong must not stop the run's reporting
                self.listeners.remove(listener)

    # -- events ------------------------------------------------------------------------------
    def apply(self, event: Mapping[str, Any]) -> None:
        """Move the state by one run event (the events17 shape) and tell every listener: the event
        itself, then an ``update`` with what it changed."""
        unknown: list[str] = []
        with self.lock:
            self.sequence = int(event.get("sequence") or self.sequence)
            changed = self._apply(event, unknown)
            self._send(("message", dict(event)))
            update: dict[str, Any] = {"sequence": self.sequence, "steps": {}}
            for sid in changed:
                if sid in self.steps:
                    update["steps"][sid] = self.steps[sid].to_json()
            kind = event.get("kind")
            if kind in ("run_started", "run_finished"):
                update["run"] = dict(self.run)
                update["history_version"] = self.history_version
            if kind in ("watch_change_seen", "definition_invalid", "definition_valid"):
                update["lab_status"] = dict(self.lab)
            self._send(("update", update))
        if unknown and self.on_unknown is not None:
            self.on_unknown(unknown)

    def _apply(self, event: Mapping[str, Any], unknown: list[str]) -> list[str]:
        kind = event.get("kind")
        payload = event.get("payload") or {}
        target = str(event.get("target_id") or "")
        status = str(event.get("status") or "")
        if kind == "run_started":
            self.run = {"run_id": target, "status": "running", "started": event.get("timestamp")}
            states = payload.get("states") or {}
            unknown += [sid for sid in states if sid not in self.steps]
            # a step keeps its state until the run says more of it: one that is fresh is never
            # queued (it stays done); ``states`` (ready / waiting) is the run's queue, not the page's
            for sid in states:
                if sid in self.steps:
                    view = self.steps[sid]
                    view.done = view.total = view.failed = None
                    view.started = view.last_line = None
            return [s for s in states if s in self.steps]
        if kind == "run_finished":
            self.run = {
                **self.run,
                "run_id": target,
                "status": status,
                "seconds": payload.get("seconds"),
                "counts": payload.get("counts"),
                "recorded": payload.get("recorded"),
            }
            self.history_version += 1
            return []
        if kind in ("watch_change_seen", "definition_invalid", "definition_valid"):
            self.lab = {
                "status": "failed" if kind == "definition_invalid" else "ready",
                "diagnostics": list(payload.get("diagnostics") or []) if kind == "definition_invalid" else [],
                "changed": list(payload.get("paths") or []) if kind == "watch_change_seen" else [],
                "affected": list(payload.get("affected") or []) if kind == "watch_change_seen" else [],
            }
            if kind == "watch_change_seen":  # the lab is valid again only when a definition_valid says so
                self.lab["status"] = "running"
            return []
        step_id = (
            str(payload.get("step") or target.partition("/")[0])
            if kind and kind.startswith("partition_")
            else target
        )
        view = self.steps.get(step_id)
        if view is None:
            if kind in ("step_queued", "step_started", "step_finished"):
                unknown.append(step_id)
            return []
        if kind == "step_queued":
            view.state, view.reasons = "ready", list(payload.get("reasons") or [])
        elif kind == "step_started":
            view.state = "running"
            view.reasons = list(payload.get("reasons") or view.reasons)
            view.attempt = payload.get("attempt")
            view.log = payload.get("log") or view.log
            view.started = event.get("timestamp")
            view.seconds = view.error = view.last_line = None
            view.done = view.total = view.failed = None
        elif kind in ("partition_started", "partition_finished"):
            for key in ("done", "total", "failed", "backend", "dashboard"):
                if payload.get(key) is not None:
                    setattr(view, key, payload[key])
        elif kind == "step_output":
            view.last_line = str(payload.get("line", ""))
        elif kind == "step_finished":
            outcome = payload.get("outcome") or {}
            view.state = status if status in _FINISHED else view.state
            view.reasons = list(payload.get("reasons") or outcome.get("reasons") or [])
            seconds = payload.get("seconds", outcome.get("seconds"))
            if isinstance(seconds, int | float) and outcome.get("status") in ("ran", "failed", None):
                view.seconds = float(seconds)  # a fresh step keeps the duration it last ran in
            view.error = outcome.get("error")
            view.log = payload.get("log") or outcome.get("log") or view.log
            view.started = None
            if view.state == "failed" and view.error:
                view.reasons = [str(view.error).splitlines()[0], *view.reasons]
        else:
            return []
        return [step_id]
