"""AGILAB's contract checker (``tools/parallel_stage.py:validate_mapping``) on one
``parallel_stage.toml``: its errors and warnings with their exact conditions and wording, each
given a ``contract-*`` check id and located at the key it concerns.

Python's own equality decides as it does in AGILAB: ``true`` counts as the integer 1 (so
``workers = true`` passes and warns like ``workers = 1``), ``1.0 == 1``, and the ``function`` pattern
ends with ``$`` (which also matches before a final newline). One departure, on purpose:
``backend = "gpu"`` (this tool's extension) is a warning that AGILAB's checker accepts only local,
pool and dask, where AGILAB itself reports the backend error.
"""

from __future__ import annotations

import re
from typing import Any

from ...load.source import KeyPath
from .finding import Finding, Places, Where
from .read import read_table

SCHEMA = "agilab.parallel_stage.v1"
SPLIT_MODES = ("files", "data-partitions", "parameter-sweep")
BACKENDS = ("local", "pool", "dask")
EXTENSION_BACKENDS = ("gpu",)
REDUCERS = ("collect-json", "concat-jsonl", "concat-csv", "custom")
PARTITION_STRATEGIES = ("one-file-per-partition", "file-chunks", "row-chunks", "parameter-items")
FUNCTION_PATTERN = re.compile(r"^[A-Za-z0-9_./:-]+:[A-Za-z_][A-Za-z0-9_]*$")
REQUIRED = (
    "schema",
    "name",
    "function",
    "split",
    "input",
    "workers",
    "partition_strategy",
    "target_partitions",
    "min_partitions_per_worker",
    "reducer",
    "backend",
    "output",
)


def validate_contract(file: str) -> dict[str, Any]:
    """AGILAB's ``{path, ok, issues, warnings}`` plus ``kind``, ``status`` and ``located`` (every
    issue and warning with its check id, line and column); the :class:`Finding` objects are under
    ``"_findings"`` (for the text renderer)."""
    data, source, unreadable = read_table(
        file,
        missing_id="contract-file-missing",
        missing_message="parallel stage contract does not exist: {path}",
        missing_hint="name an existing parallel_stage.toml",
        unreadable_id="contract-file-unreadable",
        what="parallel_stage.toml",
        universal_newlines=False,
    )
    findings = (
        [unreadable] if data is None and unreadable else contract_findings(data or {}, Places(file, source))
    )
    return report(file, findings)


def contract_findings(data: dict[str, Any], places: Places) -> list[Finding]:
    errors: list[Finding] = []
    warnings: list[Finding] = []

    def value(key: str) -> Where | None:
        return places.value((key,)) if key in data else places.top()

    def error(check_id: str, message: str, key: str) -> None:
        errors.append(places.finding(check_id, message, value(key)))

    def warn(check_id: str, message: str, at: KeyPath, hint: str = "") -> None:
        where = places.value(at) if at[0] in data else places.top()
        warnings.append(places.finding(check_id, message, where, hint=hint))

    for key in REQUIRED:
        if key not in data:
            errors.append(
                places.finding("contract-key-missing", f"missing required key: {key}", places.top())
            )

    if data.get("schema") != SCHEMA:
        error("contract-schema", f"schema must be {SCHEMA!r}", "schema")
    name = data.get("name")
    if not isinstance(name, str) or not name.strip():
        error("contract-name", "name must be a non-empty string", "name")
    function = data.get("function")
    if not isinstance(function, str) or not FUNCTION_PATTERN.match(function):
        error("contract-function", "function must use 'module_or_path:function_name' format", "function")
    split = data.get("split")
    if split not in SPLIT_MODES:
        error("contract-split", f"split must be one of: {', '.join(SPLIT_MODES)}", "split")
    input_value = data.get("input")
    if not isinstance(input_value, str) or not input_value.strip():
        error("contract-input", "input must be a non-empty string", "input")

    workers = data.get("workers")
    if workers != "auto" and (not isinstance(workers, int) or workers < 1):
        error("contract-workers", "workers must be a positive integer or 'auto'", "workers")
    elif workers == 1:
        warn(
            "contract-workers-single",
            "workers=1 is valid for preview but does not parallelize execution",
            ("workers",),
        )

    strategy = data.get("partition_strategy")
    if strategy not in PARTITION_STRATEGIES:
        error(
            "contract-partition-strategy",
            f"partition_strategy must be one of: {', '.join(PARTITION_STRATEGIES)}",
            "partition_strategy",
        )
    target = data.get("target_partitions")
    if not isinstance(target, int) or target < 0:
        error(
            "contract-target-partitions",
            "target_partitions must be a non-negative integer",
            "target_partitions",
        )
    per_worker = data.get("min_partitions_per_worker")
    if not isinstance(per_worker, int) or per_worker < 1:
        error(
            "contract-min-partitions-per-worker",
            "min_partitions_per_worker must be a positive integer",
            "min_partitions_per_worker",
        )

    if split == "files" and workers != "auto" and isinstance(workers, int):
        if strategy == "one-file-per-partition":
            warn(
                "contract-one-file-per-partition",
                "if file count is lower than workers, one-file-per-partition caps useful parallelism at file count",
                ("partition_strategy",),
            )
        elif strategy == "file-chunks" and target == 0:
            warn(
                "contract-file-chunks-target",
                "file-chunks should set target_partitions to over-partition large files",
                ("target_partitions",),
            )

    reducer = data.get("reducer")
    if reducer not in REDUCERS:
        error("contract-reducer", f"reducer must be one of: {', '.join(REDUCERS)}", "reducer")
    backend = data.get("backend")
    if backend in EXTENSION_BACKENDS:
        warn(
            "contract-backend-extension",
            f"backend {backend!r} is an agilab-run extension: "
            f"AGILAB's contract checker accepts {', '.join(BACKENDS)}",
            ("backend",),
            hint="AGILAB itself reports this file invalid; keep gpu for contracts only agilab-run runs",
        )
    elif backend not in BACKENDS:
        error("contract-backend", f"backend must be one of: {', '.join(BACKENDS)}", "backend")
    output = data.get("output")
    if not isinstance(output, str) or not output.strip():
        error("contract-output", "output must be a non-empty string", "output")

    if reducer == "custom" and "notes" not in data:
        warn(
            "contract-custom-reducer-notes",
            "custom reducer should describe the merge contract in notes",
            ("reducer",),
        )
    if backend == "dask" and workers == 1:
        warn(
            "contract-dask-single-worker",
            "dask backend normally needs more than one worker to be useful",
            ("backend",),
        )
    return errors + warnings


def report(file: str, findings: list[Finding]) -> dict[str, Any]:
    issues = [f for f in findings if f.severity == "error"]
    warnings = [f for f in findings if f.severity != "error"]
    return {
        "kind": "contract",
        "path": file,
        "ok": not issues,
        "status": "fail" if issues else "warn" if warnings else "pass",
        "issues": [f.message for f in issues],
        "warnings": [f.message for f in warnings],
        "located": [f.as_dict() for f in findings],
        "_findings": findings,
    }
