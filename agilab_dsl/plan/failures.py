"""The steps whose last run failed: ``.agilab/failed.json`` maps a step id to ``{"error": its
first line, "run_id", "at"}``. The runner adds a step when it fails and drops it when it runs
successfully, so ``status`` and the live page say ``failed`` (with why) until it runs again.
A missing or damaged file reads as no failure (it only colours what is shown).
"""

from __future__ import annotations

import os
import time

from .safe_read import read_json

TYPE_CHECKING = False  # typing is not imported: `status` answered from the judgment cache loads this
if TYPE_CHECKING:  # pragma: no cover
    from collections.abc import Mapping
    from typing import Any

FILE = "failed.json"
FOLDER = ".agilab"  # plan.state.FOLDER, not imported: status answered from its cache reads this file


def read_failures(lab_dir: str | os.PathLike[str]) -> dict[str, dict[str, Any]]:
    data, _why = read_json(os.path.join(lab_dir, FOLDER, FILE))
    if not isinstance(data, dict):
        return {}
    return {k: v for k, v in data.items() if isinstance(v, dict) and isinstance(v.get("error"), str)}


def first_line(error: str | None) -> str:
    lines = [line for line in (error or "").splitlines() if line.strip()]
    return lines[0].strip() if lines else "failed"


def update_failures(
    lab_dir: str | os.PathLike[str], run_id: str, failed: Mapping[str, str | None], succeeded: set[str]
) -> None:
    """Record ``failed`` (step id → error) and forget ``succeeded``; written only when it changes."""
    from pathlib import Path

    from .state import write_json_atomic

    before = read_failures(lab_dir)
    after = {k: v for k, v in before.items() if k not in succeeded}
    now = time.time()
    for sid, error in failed.items():
        after[sid] = {"error": first_line(error), "run_id": run_id, "at": now}
    if after != before:
        write_json_atomic(Path(lab_dir) / FOLDER / FILE, after, durable=False)


def failure_reasons(failures: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """Step id → the reason ``status`` shows: the error's first line."""
    return {sid: str(entry["error"]) for sid, entry in failures.items()}
