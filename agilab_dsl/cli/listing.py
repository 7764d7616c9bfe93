"""Statuses as ``status`` lists them (text, or JSON on stdout): imported by the answer from the
judgment cache (:mod:`.fast`), so only the standard library's lightest modules are loaded here."""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # typing itself is not imported: start-up pays for every module

if TYPE_CHECKING:  # pragma: no cover
    from collections.abc import Mapping, Sequence
    from typing import Any, TextIO

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
        sys.stdout.write(statuses_json(statuses, shared) + "\n")
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
    shared = shared or {}
    for s in statuses:
        state, reasons = s.state, s.reasons
        agilab = shared.get(s.id)
        if agilab is not None:
            state = agilab.label()
            if agilab.state == "failed":
                reasons = agilab.reasons
        rows.append((s.id, state, reasons))
    states = max([len(state) for _, state, _ in rows] + [9])
    lines = []  # written at once: a print a line was ~0.2 s of a 100,000-step status
    for sid, state, reasons in rows:
        if reasons:
            lines.append(f"{sid:<{width}}  {state:<{states}}  {'; '.join(reasons)}".rstrip())
        else:  # (most steps: the same line, without padding the state only to strip it)
            lines.append(f"{sid:<{width}}  {state}".rstrip())
        if details and sid in details:
            lines.extend(f"    {line}" for line in details[sid])
    if lines:
        out.write("\n".join(lines) + "\n")


def _quote() -> Any:
    try:
        from _json import encode_basestring as quote  # what json itself uses, when it has it
    except ImportError:  # pragma: no cover - an interpreter without the C accelerator
        from json.encoder import py_encode_basestring as quote
    return quote


def steps_json(steps: Sequence[Mapping[str, object]]) -> str:
    """``json.dumps({"steps": steps}, indent=2, ensure_ascii=False)``, as load.errors.to_json_text
    writes every JSON answer, byte for byte; but steps whose values are strings and lists of strings
    are written here, each string by the C encoder: ``indent=`` takes json's pure-Python encoder,
    ~0.4 s for 100,000 steps."""
    quote = _quote()
    keys: dict[object, str] = {}  # each key, quoted and indented once
    parts = []
    for step in steps:
        text = _step_text(step, keys, quote)
        if text is None:
            import json

            return json.dumps({"steps": steps}, indent=2, ensure_ascii=False)
        parts.append(text)
    return _wrapped(parts)


def statuses_json(
    statuses: Sequence[StepStatus | CachedStatus], shared: Mapping[str, SharedState] | None = None
) -> str:
    """:func:`steps_json` of each status's JSON (with its shared state's), byte for byte; but what
    follows a step's id is written once for each distinct state, reasons and shared state: at
    100,000 steps nearly all are alike (fresh, done), and building and writing a dict per step was
    a fifth of a no-op ``status --json``."""
    quote = _quote()
    keys: dict[object, str] = {}
    tails: dict[tuple[object, ...], str] = {}
    parts = []
    for s in statuses:
        extra = shared[s.id] if shared else None
        key = (s.state, tuple(s.reasons), extra)
        tail = tails.get(key)
        head = '    {\n      "id": ' + quote(s.id)
        if tail is None:
            text = _step_text({**s.to_json(), **(extra.to_json() if extra else {})}, keys, quote)
            assert text is not None and text.startswith(head)  # string keys, the id first
            tail = tails[key] = text[len(head) :]
        parts.append(head + tail)
    return _wrapped(parts)


def _step_text(step: Mapping[str, object], keys: dict[object, str], quote: Any) -> str | None:
    """One step as ``json.dumps(indent=2)`` writes it inside the list (None: a key that is not a
    string, which only json itself writes as it does)."""
    fields = []
    for key, value in step.items():
        head = keys.get(key)
        if head is None:
            if not isinstance(key, str):
                return None
            head = keys[key] = f"      {quote(key)}: "
        if isinstance(value, str):
            text = quote(value)
        elif isinstance(value, list) and all(isinstance(v, str) for v in value):
            text = "[\n        " + ",\n        ".join(map(quote, value)) + "\n      ]" if value else "[]"
        else:  # not a string: as json writes it, indented to its place
            import json

            text = json.dumps(value, indent=2, ensure_ascii=False).replace("\n", "\n      ")
        fields.append(head + text)
    return "    {\n" + ",\n".join(fields) + "\n    }" if fields else "    {}"


def _wrapped(parts: list[str]) -> str:
    if not parts:
        return '{\n  "steps": []\n}'
    return '{\n  "steps": [\n' + ",\n".join(parts) + "\n  ]\n}"
