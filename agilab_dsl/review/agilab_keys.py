"""What a lab diff says of AGILAB's own keys: ``[__meta__]`` (schema stamp, version, each module's
``__sequence`` and ``__automation``), a stage's ``automation`` table and profiles, and the effect of
each on what runs — a stage the saved sequence now selects would run, one it leaves out or that is
now disabled would not.

These keys change what runs without changing a step's fingerprint, so they are read from the files
themselves (as written) and from each step's selection, not from the fingerprint components.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from typing import Any

from ..plan.changes import change, key_changes

STAGE_TABLES = ("automation", "profiles", "pipeline_profiles", "automation_profiles")


def _raw(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError):
        return {}  # both sides loaded already: only a file removed meanwhile lands here


def flat(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, Mapping) and data:
        out: dict[str, Any] = {}
        for key, value in data.items():
            out |= flat(value, f"{prefix}{key}.")
        return out
    return {prefix.rstrip("."): data} if prefix else {}


def meta_changes(old_path: str, new_path: str) -> list[str]:
    """``[__meta__]`` changes in words (``[__meta__] flight__sequence: [0, 1] → [1]``)."""
    old = _raw(old_path).get("__meta__")
    new = _raw(new_path).get("__meta__")
    if (isinstance(old, Mapping) and isinstance(new, Mapping)) or old is None or new is None:
        return key_changes(flat(old or {}), flat(new or {}), prefix="[__meta__] ")
    return [f"[__meta__]: {change(old, new)}"]


class Raw:
    """Each side's stages as written, for the tables a step spec does not keep."""

    def __init__(self, runner: Any) -> None:
        self.data = _raw(runner.lab.path)

    def tables(self, placed: Any) -> dict[str, Any]:
        try:
            stage = self.data[placed.module][placed.index]
        except (KeyError, IndexError, TypeError):
            return {}
        return flat({k: stage[k] for k in STAGE_TABLES if k in stage})


def stage_changes(old_raw: Raw, new_raw: Raw, old: Any, new: Any) -> list[str]:
    """A step's automation and profile changes, and its selection's, with the effect on the run."""
    changes = key_changes(old_raw.tables(old), new_raw.tables(new))
    if old.selected != new.selected:
        if not new.selected:
            changes.append("left out of the saved sequence: would not run")
        elif new.stage.off is None:
            changes.append("now selected by the saved sequence: would run")
        else:
            changes.append(
                f"now selected by the saved sequence, but disabled ({new.stage.off}): would not run"
            )
    return changes


def selection_reason(old: Any | None, new: Any) -> str | None:
    """Why a step that changed nothing it computes would now run: it is newly selected or enabled."""
    if old is None:
        return None
    if new.selected and not old.selected and new.stage.off is None:
        return "now selected by the saved sequence"
    if new.selected and new.stage.off is None and old.stage.off is not None:
        return f"enabled again (was {old.stage.off})"
    return None


def runs(placed: Any) -> bool:
    """Whether a step is selected and enabled (the run would consider it at all)."""
    return bool(placed.selected) and placed.stage.off is None
