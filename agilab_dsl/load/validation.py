"""Pydantic's validation errors as located diagnostics, in words a lab's author reads.

:func:`report_validation` groups the errors of one ``ValidationError`` by key, says what each
value should have been (an integer, one of "a"/"b", ≥ 0…) and points at the key or value in the
file; the builders of labs, stages, contracts and settings all report through it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from .errors import did_you_mean, nearest_key
from .parse import Locator, key_text, toml_repr
from .source import KeyPath

_PHRASES = {
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "string_type": "a string",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "float_type": "a number",
    "float_parsing": "a number",
    "dict_type": "a table",
    "tuple_type": "an array",
    "list_type": "an array",
    "model_type": "a table",
    "model_attributes_type": "a table",
}


def _phrase(err: Mapping[str, Any]) -> tuple[str, str]:
    """(code, phrase) for one pydantic error: what the value should have been."""
    etype = err["type"]
    ctx = err.get("ctx") or {}
    if etype in _PHRASES:
        return "wrong-type", _PHRASES[etype]
    if etype == "literal_error":
        return "invalid-value", "one of " + str(ctx.get("expected", "")).replace("'", '"')
    if etype == "greater_than_equal":
        return "invalid-value", f"≥ {ctx.get('ge')}"
    if etype == "greater_than":
        return "invalid-value", f"> {ctx.get('gt')}"
    if etype in ("less_than_equal", "less_than"):
        return "invalid-value", f"≤ {ctx.get('le', ctx.get('lt'))}"
    if etype == "string_too_short":
        return "invalid-value", "a non-empty string"
    if etype == "string_pattern_mismatch":
        return "function-reference-invalid", "a function reference module_or_path:function"
    return "invalid-value", err.get("msg", "valid").removeprefix("Value error, ").lower()


def _allowed_values(errors: list[Mapping[str, Any]]) -> list[str]:
    out: list[str] = []
    for err in errors:
        if err["type"] == "literal_error":
            out += re.findall(r"'([^']*)'", str((err.get("ctx") or {}).get("expected", "")))
    return out


def report_validation(
    loc: Locator,
    exc: Any,
    base: KeyPath,
    data: Mapping[str, Any],
    written: Mapping[str, str] | None = None,
    *,
    known_keys: tuple[str, ...] = (),
    context: str = "",
) -> None:
    """Turn a pydantic ValidationError on ``data`` (found at ``base`` in the file) into diagnostics;
    ``context`` prefixes each message (e.g. which profile the data came from)."""
    grouped: dict[KeyPath, list[Mapping[str, Any]]] = {}
    for err in exc.errors(include_url=False):
        path = _trim_loc(tuple(err["loc"]), data)
        if written and path and isinstance(path[0], str) and path[0] in written:
            path = (written[path[0]],) + path[1:]
        grouped.setdefault(path, []).append(err)
    for path, errs in grouped.items():
        full = base + path
        name = key_text(path) or "value"
        first = errs[0]
        if first["type"] == "missing":
            loc.at_key(
                "key-missing", f"{context}required key {name!r} is missing", base, hint=f"add {name} = …"
            )
            continue
        if first["type"] == "extra_forbidden":
            loc.at_key(
                "unknown-key",
                f"{context}unknown key {name!r}",
                full,
                hint=nearest_key(str(path[-1]), known_keys),
            )
            continue
        codes_phrases = [_phrase(e) for e in errs]
        codes = [c for c, _ in codes_phrases]
        code = codes[0]
        if len(codes) > 1 and "invalid-value" in codes:  # a union (int | "auto"): a wrong type wins
            code = "wrong-type" if "wrong-type" in codes else "invalid-value"
        phrases = list(dict.fromkeys(p for _, p in codes_phrases))
        value = first.get("input")
        hint = None
        allowed = _allowed_values(errs)
        if allowed and isinstance(value, str):
            hint = did_you_mean(value, allowed)
        if isinstance(value, str) and "a table" in phrases:
            hint = hint or f"write [{name}] as a table"
        if isinstance(value, str) and "an array" in phrases:
            hint = hint or f'write {name} = ["{value}"]'
        loc.at_value(
            code, f"{context}{name} must be {' or '.join(phrases)}, not {toml_repr(value)}", full, hint=hint
        )


def _trim_loc(loc: tuple[Any, ...], data: Any) -> KeyPath:
    """The part of a pydantic error location that names real keys (drops union-member labels)."""
    out: list[str | int] = []
    node = data
    for part in loc:
        if (isinstance(node, Mapping) and part in node) or (
            isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        ):
            out.append(part)
            node = node[part]
        elif not out and isinstance(part, str):
            out.append(part)  # a missing or extra top-level key
            break
        else:
            break
    return tuple(out)
