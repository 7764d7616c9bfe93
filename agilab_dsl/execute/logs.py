"""What a finished step left behind, read back: the tail of its log (a failed step's traceback)
and, for a parallel stage, the result it handed back (partitions, backend, notes).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

LOG_TAIL = 40  # lines of a failed step's log printed under its id


def log_tail(path: str | None, lines: int = LOG_TAIL) -> list[str]:
    if not path:
        return []
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    return text.rstrip("\n").splitlines()[-lines:] if text.strip() else []


def stage_result(returned: object) -> dict[str, Any] | None:
    """What a parallel stage's step handed back (its partitions, backend and notes), if it is one."""
    inner = returned.get("returned") if isinstance(returned, dict) else None
    return inner if isinstance(inner, dict) and "partitions" in inner else None
