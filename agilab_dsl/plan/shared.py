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

from collections import namedtuple

from .vocabulary import agilab_state

TYPE_CHECKING = False  # typing is not imported: `status` answered from the judgment cache loads this
if TYPE_CHECKING:  # pragma: no cover
    from collections.abc import Iterable, Mapping, Sequence
    from typing import Protocol

    class Judged(Protocol):
        @property
        def id(self) -> str: ...
        @property
        def state(self) -> str: ...


# Upstream states a run does not wait for.
PASSED = ("done", "disabled", "skipped")


class SharedState(namedtuple("SharedState", "state reasons ours")):
    """AGILAB's ``state`` of one step, the ``reasons`` it adds (a tuple: a failure's first line),
    and ``ours``."""

    __slots__ = ()

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
    ours = {s.id: s.state for s in statuses}
    ups = {sid: [u for u in upstream.get(sid, ()) if u in ours and u != sid] for sid in ours}
    order = _upstream_first(ups)
    out: dict[str, SharedState] = {}
    for sid in order:
        done = all(out[u].state in PASSED for u in ups[sid] if u in out)
        state, reasons = agilab_state(ours[sid], done, failed.get(sid))
        out[sid] = SharedState(state, tuple(reasons or ()), ours[sid])
    return {sid: out[sid] for sid in ours}


def _upstream_first(ups: Mapping[str, list[str]]) -> list[str]:
    """The steps, each after its upstream ones (Kahn's algorithm; graphlib's sorter also searches
    for a cycle first, ~10% of a 100,000-step ``status``). A lab with a cycle is refused before it
    is judged; should one come here, the steps left are taken as they come: never a loop."""
    waiting = {sid: len(set(u)) for sid, u in ups.items()}
    downstream: dict[str, list[str]] = {}
    for sid, u in ups.items():
        for up in set(u):
            downstream.setdefault(up, []).append(sid)
    order = [sid for sid, n in waiting.items() if n == 0]
    for sid in order:  # grows while it is walked
        for nxt in downstream.get(sid, ()):
            waiting[nxt] -= 1
            if waiting[nxt] == 0:
                order.append(nxt)
    if len(order) < len(ups):
        placed = set(order)
        order += [sid for sid in ups if sid not in placed]
    return order
