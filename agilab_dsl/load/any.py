"""Loading a file of any of the three kinds (lab, parallel contract, settings), recognised once parsed.

The kind comes from the caller, else from the file's schema stamp, name or shape
(:func:`~agilab_dsl.load.parse.detect_kind`); the matching builder then validates it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .contract import build_contract
from .lab import build_lab
from .parse import FileKind, LoadResult, detect_kind, read_source
from .settings import build_settings


def load_any(
    path: str | Path, kind: FileKind | None = None, *, profile: str | None = None, text: str | None = None
) -> LoadResult[Any]:
    """Load a file of any of the three kinds, recognised by stamp, name or shape (parsed once);
    ``text``: this text instead of the file's, read as if it were at ``path``."""
    result, loc = read_source(path, text, kind, profile)
    if result.data is None:
        return result
    result.kind = kind or detect_kind(path, result.data)
    builders = {"lab": build_lab, "contract": build_contract, "settings": build_settings}
    if result.kind in builders:
        builders[result.kind](result, loc)
        return result
    loc.at_offset(
        "file-kind-unknown",
        "not a lab, parallel contract or settings file",
        None,
        hint="name it lab_steps.toml, lab_stages.toml, parallel_stage.toml or app_settings.toml, "
        "or add a schema stamp",
    )
    return result
