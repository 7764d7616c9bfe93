"""Loading an app's settings (``app_settings.toml``): ``[args]``, ``[cluster]``, other tables as written.

Unknown ``[cluster]`` keys are warnings, not errors; the rest is validated by the model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .errors import Severity, did_you_mean
from .parse import LoadResult, Locator, read_source
from .validation import report_validation


def load_settings(path: str | Path, text: str | None = None) -> LoadResult[Any]:
    """Load an ``app_settings.toml``: ``[args]``, ``[cluster]``, and other tables kept as written."""
    result, loc = read_source(path, text, "settings")
    if result.data is not None:
        build_settings(result, loc)
    return result


def build_settings(result: LoadResult[Any], loc: Locator) -> None:
    """Validate a parsed ``app_settings.toml``: ``[args]``, ``[cluster]``, other tables kept as written."""
    from pydantic import ValidationError

    from .model import CLUSTER_KEYS, AppSettings

    data = result.data
    assert data is not None
    cluster = data.get("cluster")
    if isinstance(cluster, dict):
        for key in cluster:
            if key not in CLUSTER_KEYS:
                loc.at_key(
                    "unknown-key",
                    f"unknown [cluster] key {key!r}",
                    ("cluster", key),
                    severity=Severity.WARNING,
                    hint=did_you_mean(key, CLUSTER_KEYS),
                )
    try:
        settings = AppSettings.model_validate(data)
    except ValidationError as exc:
        report_validation(loc, exc, (), data, known_keys=("args", "cluster"))
        return
    if not any(d.is_error for d in loc.diagnostics):
        result.value = settings
