"""What a finished step left behind, read back: the tail of its log (a failed step's traceback)
and, for a parallel stage, the result it handed back (partitions, backend, notes).
"""

from __future__ import annotations

import os
from pathlib import Path

TYPE_CHECKING = False  # typing is not imported at run time: ~2 ms of every run's start-up
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any

LOG_TAIL = 40  # lines of a failed step's log printed under its id


def log_name(run_id: str, step_id: str, attempt: int = 1) -> str:
    """Where a step's output goes, from the lab's folder: ``.agilab/runs/<run_id>/<step>.log``
    (``<step>.<n>.log`` for attempt n > 1)."""
    suffix = f".{attempt}" if attempt > 1 else ""
    return f".agilab/runs/{run_id}/{step_id}{suffix}.log"


def log_path(lab_dir: Path, run_id: str, step_id: str, attempt: int = 1) -> Path:
    """:func:`log_name` in ``lab_dir`` (one path made, not one per part: this is on every step's path)."""
    return Path(os.path.join(lab_dir, log_name(run_id, step_id, attempt)))


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


def failure_line(error: str | None, log: str | None) -> str:
    """One line saying why a step failed: the exception its log ends with (``ValueError: …``) when
    the error is only its exit status, else the error's first line."""
    first = next((line.strip() for line in (error or "").splitlines() if line.strip()), "failed")
    if first.startswith("exited with status"):
        tail = log_tail(log, 40)
        # the exception line follows the last traceback's frames (its message may run on below it)
        starts = [n for n, line in enumerate(tail) if line.startswith("Traceback (most recent call last)")]
        after = tail[starts[-1] + 1 :] if starts else []
        raised = [line for line in after if line.strip() and not line.startswith(" ")]
        if raised:
            return raised[0].strip()
        tail = [line for line in tail[-5:] if line.strip() and not line.startswith(" ")]
        if tail:
            return tail[-1].strip()
    return first
