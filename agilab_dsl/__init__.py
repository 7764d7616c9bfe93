"""agilab-dsl: AGILAB's pipeline files as code — load, check, plan, run, watch.

The public API is re-exported lazily so that ``import agilab_dsl`` stays cheap.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing itself is not imported: start-up pays for every module

if TYPE_CHECKING:  # pragma: no cover
    from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "load_lab": "load.lab",
    "load_contract": "load.contract",
    "load_settings": "load.settings",
    "load_any": "load.any",
    "check_file": "check.files",
    "load": "check.files",
    "StepGraph": "plan.graph",
    "Diagnostic": "load.errors",
    "LoadError": "load.errors",
    "Lab": "load.model",
    "Stage": "load.model",
    "ParallelContract": "load.model",
    "AppSettings": "load.settings_model",
    "plan_partitions": "stages.partition",
    "PartitionPlan": "stages.partition",
}

__all__ = [  # noqa: RUF022 - grouped as in _EXPORTS
    "__version__",
    "load_lab",
    "load_contract",
    "load_settings",
    "load_any",
    "check_file",
    "load",
    "StepGraph",
    "Diagnostic",
    "LoadError",
    "Lab",
    "Stage",
    "ParallelContract",
    "AppSettings",
    "plan_partitions",
    "PartitionPlan",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'agilab_dsl' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f".{module}", __name__), name)
