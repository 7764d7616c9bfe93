"""agilab-run's stand-in for ``agilab.tracking`` (AGILAB's ``agilab/evidence/tracking.py``), for a
step whose interpreter has no AGILAB: the same ``tracker`` with the same methods and signatures,
which check their arguments as AGILAB's do and return True. The step's worker observes this
``tracker`` as it observes the real one, so what a step logs lands in agilab-run's history (and
from there in MLflow with ``history --export-mlflow``), whichever tracker it got.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

AGILAB_RUN_ID_ENV = "AGILAB_PIPELINE_MLFLOW_RUN_ID"
MLFLOW_RUN_ID_ENV = "MLFLOW_RUN_ID"
MLFLOW_TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"


class Tracker:
    """AGILAB's tracking facade, recorded by agilab-run instead of sent to MLflow."""

    @property
    def backend(self) -> str:
        return "agilab-run"

    @property
    def available(self) -> bool:
        return True

    @property
    def active_run_id(self) -> str | None:
        return os.environ.get("AGILAB_PIPELINE_RUN_ID")

    def configure(self, *, tracking_uri: str | None = None, run_id: str | None = None) -> bool:
        return True

    def log_param(self, key: str, value: Any) -> bool:
        return True

    def log_params(self, params: Mapping[str, Any]) -> bool:
        _named(params)
        return True

    def log_metric(self, key: str, value: float, *, step: int | None = None) -> bool:
        float(value)  # what AGILAB's does with it: a value that is no number fails here too
        return True

    def log_metrics(self, metrics: Mapping[str, float], *, step: int | None = None) -> bool:
        _numbers(metrics)
        return True

    def set_tag(self, key: str, value: Any) -> bool:
        return True

    def set_tags(self, tags: Mapping[str, Any]) -> bool:
        _named(tags)
        return True

    def log_artifact(self, artifact: str | Path, *, artifact_path: str | None = None) -> bool:
        return Path(artifact).expanduser().exists()

    def log_text(self, text: Any, artifact_file: str) -> bool:
        return True


def _named(values: Mapping[str, Any]) -> dict[str, Any]:
    return {str(key): value for key, value in values.items()}


def _numbers(values: Mapping[str, Any]) -> dict[str, float]:
    return {str(key): float(value) for key, value in values.items()}


tracker = Tracker()


__all__ = [
    "AGILAB_RUN_ID_ENV",
    "MLFLOW_RUN_ID_ENV",
    "MLFLOW_TRACKING_URI_ENV",
    "Tracker",
    "tracker",
]
