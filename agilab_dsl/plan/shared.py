"""The states people share: every judged step's state in AGILAB's words (:mod:`.vocabulary`), from
this tool's judgment, the step graph and the failures remembered in ``.agilab/failed.json``
(:mod:`.failures`). ``status`` (text and ``--json``) and ``graph`` show them; the full judgment and the
judgment cache's fast answer give the same ones, since both hand over the same states and edges.

A never-ran or stale step is ``ready`` when every step upstream of it is done — ``done`` itself, or
``disabled`` / ``skipped``, which a run passes over without waiting — and ``stale`` otherwise (it runs
after them). A step whose last run failed is ``failed`` until it runs again, its reason the error's
first line. Only the standard library is imported.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import NamedTuple, Protocol

from .vocabulary import agilab_state

# Upstream states a run does not wait for.
PASSED = ("done", "disabled", "skipped")


class Judged(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def state(self) -> str: ...


class SharedState(NamedTuple):
    """AGILAB's state of one step, the reasons it adds (a failure's first line), and ours."""

    state: str
    reasons: tuple[str, ...]
    ours: str

    def label(self) -> str:
        """The state as ``status`` prints it: AGILAB's word, with ours after it where ours says
        more (``ready (never-ran)``, ``stale (never-ran)``, ``ready (stale)``) — not where the word
        is ours too, fresh (done) or a failure (its reason says it)."""
        implied = self.state == self.ours or (self.state, self.ours) == ("done", "fresh")
        if implied or self.state == "failed":
            return self.state
        return f"{self.state} ({self.ours})"

    def to_json(self) -> dict[str, object]:
        return {"agilab_state": self.state, "agilab_reasons": list(self.reasons)}


def shared_states(
    statuses: Sequence[Judged], upstream: Mapping[str, Iterable[str]], failed: Mapping[str, str]
) -> dict[str, SharedState]:
    """Step id → its :class:`SharedState`. ``upstream`` maps a step to the steps it depends on (a step
    not judged here counts as done); ``failed`` maps a step whose last run failed to the error's
    first line."""
    import graphlib

    ours = {s.id: s.state for s in statuses}
    ups = {sid: [u for u in upstream.get(sid, ()) if u in ours and u != sid] for sid in ours}
    try:
        order = list(graphlib.TopologicalSorter(ups).static_order())
    except graphlib.CycleError:  # a lab with a cycle is refused before it is judged; never loop
        order = list(ours)
    out: dict[str, SharedState] = {}
    for sid in order:
        done = all(out[u].state in PASSED for u in ups[sid] if u in out)
        state, reasons = agilab_state(ours[sid], done, failed.get(sid))
        out[sid] = SharedState(state, tuple(reasons or ()), ours[sid])
    return {sid: out[sid] for sid in ours}
