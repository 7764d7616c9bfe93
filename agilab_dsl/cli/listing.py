"""Statuses as ``status`` lists them (text, or JSON on stdout): imported by the answer from the
judgment cache (:mod:`.fast`), so only the standard library's lightest modules are loaded here."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from collections.abc import Mapping, Sequence
    from typing import TextIO

    from ..plan.judgment import CachedStatus
    from ..plan.shared import SharedState
    from ..plan.stale import StepStatus


def show_statuses(
    statuses: Sequence[StepStatus | CachedStatus],
    as_json: bool,
    shared: Mapping[str, SharedState] | None = None,
) -> None:
    """The statuses as text or JSON (``status -v`` adds its details in cmd_status); ``shared``, the
    states in AGILAB's words (``status``): the text shows them, the JSON adds them to each step."""
    if as_json:
        import json

        steps = [{**s.to_json(), **(shared[s.id].to_json() if shared else {})} for s in statuses]
        # as load.errors.to_json_text writes every JSON answer
        sys.stdout.write(json.dumps({"steps": steps}, indent=2, ensure_ascii=False) + "\n")
    else:
        print_statuses(statuses, sys.stdout, shared=shared)


def print_statuses(
    statuses: Sequence[StepStatus | CachedStatus],
    out: TextIO,
    details: Mapping[str, Sequence[str]] | None = None,
    shared: Mapping[str, SharedState] | None = None,
) -> None:
    """One line per step (id, state, reasons); ``details`` (``status -v``) adds lines under a step.
    With ``shared`` (``status``) the state is AGILAB's word, ours beside it where it says more, and a
    failed step's reason is its error's first line."""
    width = max([len(s.id) for s in statuses] + [4])
    rows = []
    for s in statuses:
        state, reasons = s.state, list(s.reasons)
        if shared and s.id in shared:
            state = shared[s.id].label()
            if shared[s.id].state == "failed":
                reasons = list(shared[s.id].reasons)
        rows.append((s.id, state, reasons))
    states = max([len(state) for _, state, _ in rows] + [9])
    for sid, state, reasons in rows:
        print(f"{sid:<{width}}  {state:<{states}}  {'; '.join(reasons)}".rstrip(), file=out)
        for line in (details or {}).get(sid, ()):
            print(f"    {line}", file=out)
