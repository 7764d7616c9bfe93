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

    from .judgment import Known

    class Judged(Protocol):
        @property
        def id(self) -> str: ...
        @property
        def state(self) -> str: ...


# Upstream states a run does not wait for.
PASSED = ("done", "disabled", "skipped")
WAITS = ("stale", "never-ran")  # our states whose AGILAB word depends on the upstream steps


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
    first line.

    No order is needed: whether an upstream step lets a step be ``ready`` (done, disabled or
    skipped) depends on that step's own state and failure only, never on its upstream in turn
    (ready and stale are both not done)."""
    ours = {s.id: s.state for s in statuses}

    known: dict[str, bool] = {}

    def passed(sid: str) -> bool:  # asked only about a waiting step's upstream: none, when all are fresh
        answer = known.get(sid)
        if answer is None:
            state = ours.get(sid)
            answer = known[sid] = state is None or agilab_state(state, True, failed.get(sid))[0] in PASSED
        return answer

    out: dict[str, SharedState] = {}
    done_fresh = SharedState("done", (), "fresh")  # the common answer, shared
    for sid, state in ours.items():
        if state == "fresh" and sid not in failed:
            out[sid] = done_fresh
            continue
        done = state not in WAITS or all(passed(u) for u in upstream.get(sid, ()) if u != sid)
        word, reasons = agilab_state(state, done, failed.get(sid))
        out[sid] = SharedState(word, tuple(reasons), state)
    return out


def stored_upstream(known: Known) -> Mapping[str, Iterable[str]] | None:
    """The upstream steps :func:`shared_states` needs for a stored judgment's statuses: none when no
    step waits on its upstream (every step fresh or disabled), else the judgment's stored graph;
    None when that graph is not recorded (the caller judges in full)."""
    if not any(s.state in WAITS for s in known.statuses):
        return {}
    return known.graph.upstream()
