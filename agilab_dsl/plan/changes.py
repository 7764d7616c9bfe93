"""Changes between two mappings, in words — one wording for status reasons, history comparisons
and semantic diffs. Standard library only (and the expression language's way to write a key).

Every change is said per leaf key (``settings args.ai_case_count changed: 2 → 3``: nested tables
are walked, never shown whole twice), and a value longer than :data:`LIMIT` characters is
shortened with an ellipsis — around the first difference when two long values differ late."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping

TYPE_CHECKING = False  # typing is not imported at run time: ~2 ms of every run's start-up
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any

LIMIT = 60
"""The most characters a value takes in a change's wording (its ellipsis included)."""

_BEFORE = 20
"""Characters kept before the first difference when the start of two values is cut."""


def show(value: Any) -> str:
    """A value in full, as JSON (for textconv output and anything that must lose nothing)."""
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


def number(value: float) -> str:
    return f"{value:.6g}"


def _cut(text: str, start: int = 0, limit: int = LIMIT) -> str:
    head = "…" if start > 0 else ""
    body = text[start:]
    if len(head) + len(body) > limit:
        body = body[: max(limit - len(head) - 1, 1)] + "…"
    return head + body


def brief(value: Any, limit: int = LIMIT) -> str:
    """``show(value)``, shortened to ``limit`` characters with an ellipsis."""
    return _cut(show(value), 0, limit)


def brief_pair(old: str, new: str, limit: int = LIMIT) -> tuple[str, str]:
    """Two shown values, each at most ``limit`` characters; when the first difference lies past
    what would be kept, both start just before it (``…``), so the two never read the same."""
    if len(old) <= limit and len(new) <= limit:
        return old, new
    same = 0
    for a, b in zip(old, new, strict=False):
        if a != b:
            break
        same += 1
    start = same - _BEFORE if same > limit - _BEFORE else 0
    return _cut(old, start, limit), _cut(new, start, limit)


def change(old: Any, new: Any) -> str:
    """``old → new``, both shown (JSON) and shortened alike."""
    a, b = brief_pair(show(old), show(new))
    return f"{a} → {b}"


def key_path(prefix: str, key: Any) -> str:
    """``prefix.key``, or ``prefix["odd key"]`` / ``prefix[0]`` — as a reference writes it."""
    from ..load.expr.nodes import Ref  # (only when a change is described)

    tail = Ref("", (key if isinstance(key, str | int) else str(key),)).dotted()
    return prefix + tail if prefix else tail.removeprefix(".")


def key_changes(
    old: Any,
    new: Any,
    *,
    prefix: str = "",
    verb: str = "",
    numbers: bool = False,
    shown: Callable[[Any], str] | None = None,
) -> list[str]:
    """``{prefix}{key} added: v`` / ``removed (was v)`` / ``{key}{verb}: a → b`` for each leaf key
    that differs (non-mappings count as empty): a key whose value is a mapping on both sides is
    walked (``args.n``), so a table is never shown whole; ``numbers`` shows values as numbers and
    the delta. Values are shortened to :data:`LIMIT` characters."""
    a = old if isinstance(old, Mapping) else {}
    b = new if isinstance(new, Mapping) else {}
    out: list[str] = []
    _walk(a, b, "", out, prefix, verb, numbers, shown)
    return out


def _walk(
    a: Mapping[Any, Any],
    b: Mapping[Any, Any],
    path: str,
    out: list[str],
    prefix: str,
    verb: str,
    numbers: bool,
    shown: Callable[[Any], str] | None,
) -> None:
    fmt = shown or (number if numbers else show)
    for key in sorted(set(a) | set(b), key=str):
        name = key_path(path, key) if path else str(key)
        if key not in a:
            out.append(f"{prefix}{name} added: {_cut(fmt(b[key]))}")
        elif key not in b:
            out.append(f"{prefix}{name} removed (was {_cut(fmt(a[key]))})")
        elif a[key] == b[key]:
            continue
        elif isinstance(a[key], Mapping) and isinstance(b[key], Mapping) and not numbers:
            _walk(a[key], b[key], name, out, prefix, verb, numbers, shown)
        else:
            before, after = brief_pair(fmt(a[key]), fmt(b[key]))
            line = f"{prefix}{name}{verb}: {before} → {after}"
            if numbers:
                delta = b[key] - a[key]
                line += f" ({'+' if delta >= 0 else ''}{number(delta)})"
            out.append(line)


def settings_changes(old: Any, new: Any, *, prefix: str = "", verb: str = "") -> list[str]:
    """:func:`key_changes` of the settings a step used: they map dotted keys (``args.n``) and whole
    tables (``args``, for ``settings = ["args"]`` and ``agi.*`` engines; ``*`` for all of them) to
    values, so the tables are walked from the root and a key seen both ways is said once."""

    def rooted(used: Any) -> dict[str, Any]:
        if not isinstance(used, Mapping):
            return {}
        every = used.get("*")
        rest = {k: v for k, v in used.items() if k != "*"}
        return {**every, **rest} if isinstance(every, Mapping) else rest

    if old == new:
        return []
    return list(dict.fromkeys(key_changes(rooted(old), rooted(new), prefix=prefix, verb=verb)))


def differing(old: Mapping[str, Any], new: Mapping[str, Any], *, also: Any = None) -> set[str]:
    """The keys whose values differ (or that one side lacks), and those ``new`` gives the value
    ``also``: found by set operations in C, not a Python loop over every key (a step gathering
    100,000 inputs compares 100,000 paths after one of them changed)."""
    try:
        keys = {key for key, _ in old.items() ^ new.items()}
    except TypeError:  # a value that cannot be hashed: compared one by one
        keys = {
            key for key in old.keys() | new.keys() if key not in old or key not in new or old[key] != new[key]
        }
    if also is not None and also in new.values():
        keys.update(key for key, value in new.items() if value == also)
    return keys


def path_changes(old: dict[str, Any], new: dict[str, Any], *, missing: Any = None) -> list[tuple[str, str]]:
    """``(path, "added" | "removed" | "missing" | "changed")`` for each path whose content hash
    differs, sorted; ``missing`` is the hash that marks a path gone from disk (said as such)."""
    out = []
    for path in sorted(differing(old, new, also=missing)):
        if path not in old:
            out.append((path, "added"))
        elif path not in new:
            out.append((path, "removed"))
        elif missing is not None and new[path] == missing:
            out.append((path, "missing"))
        elif old[path] != new[path]:
            out.append((path, "changed"))
    return out
