"""Statuses as ``status`` lists them (text, or JSON on stdout): imported by the answer from the
judgment cache (:mod:`.fast`), so only the standard library's lightest modules are loaded here."""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # typing itself is not imported: start-up pays for every module

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
        steps = [{**s.to_json(), **(shared[s.id].to_json() if shared else {})} for s in statuses]
        sys.stdout.write(steps_json(steps) + "\n")
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


def steps_json(steps: Sequence[Mapping[str, object]]) -> str:
    """``json.dumps({"steps": steps}, indent=2, ensure_ascii=False)``, as load.errors.to_json_text
    writes every JSON answer, byte for byte; but steps whose values are strings and lists of strings
    are written here, each string by the C encoder: ``indent=`` takes json's pure-Python encoder,
    ~0.4 s for 100,000 steps."""
    import json

    try:
        from _json import encode_basestring as quote  # what json itself uses, when it has it
    except ImportError:  # pragma: no cover - an interpreter without the C accelerator
        from json.encoder import py_encode_basestring as quote

    keys: dict[object, str] = {}  # each key, quoted and indented once
    parts = []
    for step in steps:
        fields = []
        for key, value in step.items():
            head = keys.get(key)
            if head is None:
                if not isinstance(key, str):
                    return json.dumps({"steps": steps}, indent=2, ensure_ascii=False)
                head = keys[key] = f"      {quote(key)}: "
            if isinstance(value, str):
                text = quote(value)
            elif isinstance(value, list) and all(isinstance(v, str) for v in value):
                text = "[\n        " + ",\n        ".join(map(quote, value)) + "\n      ]" if value else "[]"
            else:  # not a string: as json writes it, indented to its place
                text = json.dumps(value, indent=2, ensure_ascii=False).replace("\n", "\n      ")
            fields.append(head + text)
        parts.append("    {\n" + ",\n".join(fields) + "\n    }" if fields else "    {}")
    if not parts:
        return '{\n  "steps": []\n}'
    return '{\n  "steps": [\n' + ",\n".join(parts) + "\n  ]\n}"
