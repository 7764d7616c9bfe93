"""Changes between two mappings, in words — one wording for status reasons, history comparisons
and semantic diffs. Standard library only."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any


def show(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


def number(value: float) -> str:
    return f"{value:.6g}"


def key_changes(
    old: Any,
    new: Any,
    *,
    prefix: str = "",
    verb: str = "",
    numbers: bool = False,
    shown: Callable[[Any], str] | None = None,
) -> list[str]:
    """``{prefix}{key} added: v`` / ``removed (was v)`` / ``{key}{verb}: a → b`` for each key that
    differs (non-mappings count as empty); ``numbers`` shows values as numbers and the delta."""
    a = old if isinstance(old, dict) else {}
    b = new if isinstance(new, dict) else {}
    fmt = shown or (number if numbers else show)
    out = []
    for key in sorted(set(a) | set(b), key=str):
        if key not in a:
            out.append(f"{prefix}{key} added: {fmt(b[key])}")
        elif key not in b:
            out.append(f"{prefix}{key} removed (was {fmt(a[key])})")
        elif a[key] != b[key]:
            line = f"{prefix}{key}{verb}: {fmt(a[key])} → {fmt(b[key])}"
            if numbers:
                delta = b[key] - a[key]
                line += f" ({'+' if delta >= 0 else ''}{number(delta)})"
            out.append(line)
    return out


def path_changes(old: dict[str, Any], new: dict[str, Any], *, missing: Any = None) -> list[tuple[str, str]]:
    """``(path, "added" | "removed" | "missing" | "changed")`` for each path whose content hash
    differs, sorted; ``missing`` is the hash that marks a path gone from disk (said as such)."""
    out = []
    for path in sorted(set(old) | set(new)):
        if path not in old:
            out.append((path, "added"))
        elif path not in new:
            out.append((path, "removed"))
        elif missing is not None and new[path] == missing:
            out.append((path, "missing"))
        elif old[path] != new[path]:
            out.append((path, "changed"))
    return out
