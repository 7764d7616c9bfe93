"""A stored judgment reused (:func:`agilab_dsl.plan.judgment.lookup_known`): when only some steps'
own files changed since it was made, a step that reads none of them, none of whose upstream steps
was judged again to something other than fresh, and which has no ``when`` keeps its stored state
(fresh, or disabled); every other step is judged. So a change costs what it touches, not the size of the lab."""

from __future__ import annotations

from collections.abc import Iterable

from ..plan.graph import StepGraph
from ..plan.judgment import CachedStatus, Known
from .outcome import StepOutcome, not_run

__all__ = ["CachedStatus", "Known", "Reuse"]


class Reuse:
    def __init__(self, known: Known, graph: StepGraph, conditional: Iterable[str]) -> None:
        self.stored: dict[str, CachedStatus] = {s.id: s for s in known.statuses}
        self.affected = known.affected
        self.graph = graph
        self.conditional = set(conditional)
        self.judged: set[str] = set()  # judged again in this run
        self.moved: set[str] = set()  # judged again and not fresh: what is downstream is judged too

    def judged_as(self, sid: str, state: str | None) -> None:
        """A judged step's new state (None: it runs; a run's skipped is a stored disabled). It
        moved — what is downstream is judged too — unless it is fresh, or disabled, as stored."""
        stored = self.stored.get(sid)
        same = stored is not None and stored.state == ("disabled" if state == "skipped" else state)
        if not (same and state in ("fresh", "disabled", "skipped")):
            self.moved.add(sid)

    def status(self, sid: str) -> CachedStatus | None:
        """The stored status of a step that needs no judging now; None marks it judged."""
        stored = self.stored.get(sid)
        if (
            stored is None
            or sid in self.affected
            or sid in self.conditional
            or not self.graph.upstream(sid).isdisjoint(self.moved)
        ):
            self.judged.add(sid)
            return None
        return stored

    def outcome(self, sid: str) -> StepOutcome | None:
        """What a run records for a step whose stored state is fresh or disabled, unjudged."""
        stored = self.status(sid)
        if stored is None:
            return None
        if stored.state == "fresh":
            return StepOutcome(sid, "fresh", [])
        if stored.state == "disabled":
            return StepOutcome(sid, not_run(stored.reasons), list(stored.reasons))
        self.judged.add(sid)  # stale when stored: judged, to run
        return None
