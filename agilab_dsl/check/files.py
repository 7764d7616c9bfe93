"""The check's entry points: load a file of any kind and run its semantic checks.

:func:`check_file` loads a lab, a parallel contract or a settings file, finds a lab's settings
snapshot (:func:`find_settings`) and runs the rules for its kind — the lab rules
(:mod:`.rules`) or the contract rules (:mod:`.contract`); :func:`load` does the same and raises
:class:`LoadError` when the file has errors. Every path consulted is noted for the result cache.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..load.any import load_any
from ..load.locate import settings_candidates
from ..load.parse import FileKind, LoadResult
from ..load.settings import load_settings
from ..plan.cache import Observations
from .contract import check_contract
from .rules import check_lab


def find_settings(
    lab_path: str | Path, explicit: str | Path | None = None, obs: Observations | None = None
) -> Path | None:
    """``--settings PATH``, else ``app_settings.toml`` beside the lab, else ``src/app_settings.toml``."""
    obs = obs or Observations()
    if explicit is not None:
        obs.note(explicit)
        return Path(explicit)
    for candidate in settings_candidates(lab_path):
        if obs.is_file(candidate):
            return candidate
    return None


def check_file(
    path: str | Path,
    *,
    kind: FileKind | None = None,
    settings_path: str | Path | None = None,
    obs: Observations | None = None,
    profile: str | None = None,
    text: str | None = None,
) -> tuple[LoadResult[Any], LoadResult[Any] | None]:
    """Load a file of any kind and run every check. Returns the file's result and, for labs, the
    settings result (whose own diagnostics belong to the settings file). Every path consulted is
    noted in ``obs`` (for the result cache). ``text``: check this text as if it were the file's."""
    obs = obs or Observations()
    obs.note(path)
    result = load_any(path, kind, profile=profile, text=text)
    if any(d.code == "file-missing" for d in result.diagnostics):
        obs.note(Path(path).parent)  # its listing gave the hint
    settings_result = None
    if result.kind == "lab" and result.partial is not None:
        found = find_settings(path, settings_path, obs)
        if found is not None:
            settings_result = load_settings(found)
        result.graph = check_lab(result, settings_result, obs)
    elif result.kind == "contract" and result.value is not None:
        check_contract(result, obs)
    return result, settings_result


def load(
    path: str | Path,
    kind: FileKind | None = None,
    *,
    settings_path: str | Path | None = None,
    profile: str | None = None,
) -> Any:
    """Load and check a file of any kind; return its model, or raise :class:`LoadError` carrying
    every diagnostic (warnings included) when it has errors. ``profile`` selects a stage profile."""
    from ..load.errors import LoadError

    result, _ = check_file(path, kind=kind, settings_path=settings_path, profile=profile)
    if not result.ok:
        raise LoadError(result.diagnostics)
    return result.value
