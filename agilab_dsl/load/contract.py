"""Loading a parallel contract (``parallel_stage.toml``): its schema, and AGILAB's checks and warnings.

:func:`build_contract` validates the contract, parses its function references and warns about
settings that do not do what they seem to (a single worker, a custom reducer without notes…).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from . import expr
from .errors import Diagnostic, did_you_mean
from .parse import LoadResult, Locator, read_source, toml_repr
from .validation import report_validation


def load_contract(path: str | Path, text: str | None = None) -> LoadResult[Any]:
    """Load a ``parallel_stage.toml`` and give AGILAB's checks and warnings."""
    result, loc = read_source(path, text, "contract")
    if result.data is not None:
        build_contract(result, loc)
    return result


def locate_in_contract(
    path: str | Path, code: str, message: str, key: str, hint: str | None = None
) -> Diagnostic:
    """A problem found when a contract runs (its input matches nothing, its function cannot be
    imported), located at the value of ``key`` in the contract as it is on disk now."""
    result, loc = read_source(path, None, "contract")
    if result.data is None:  # changed under the run and unreadable now: the file alone
        loc = Locator(str(path), None)
    return loc.at_value(code, message, (key,), hint=hint)


def build_contract(result: LoadResult[Any], loc: Locator) -> None:
    """Validate a parsed ``parallel_stage.toml`` and give AGILAB's checks and warnings."""
    from pydantic import ValidationError

    from .model import PARALLEL_SCHEMA, ParallelContract

    data = result.data
    assert data is not None
    known = tuple(ParallelContract.model_fields)
    known = tuple("schema" if k == "schema_" else k for k in known)
    schema = data.get("schema")
    if schema is not None and schema != PARALLEL_SCHEMA:
        loc.at_value(
            "metadata-schema",
            f"unknown contract schema {toml_repr(schema)}",
            ("schema",),
            hint=did_you_mean(str(schema), [PARALLEL_SCHEMA]) or f"use {PARALLEL_SCHEMA!r}",
        )
        data = {k: v for k, v in data.items() if k != "schema"} | {"schema": PARALLEL_SCHEMA}
    try:
        contract = ParallelContract.model_validate(data)
    except ValidationError as exc:
        report_validation(loc, exc, (), data, known_keys=known)
        return
    for key in ("function", "reducer_function"):
        value = getattr(contract, key)
        if value is not None:
            try:
                expr.parse_funcref(value)
            except expr.ExprSyntaxError as exc:
                loc.at_value(exc.code, exc.message, (key,), hint=exc.hint)
    if contract.workers == 1:
        loc.at_value(
            "workers-single",
            "workers = 1 does not parallelise",
            ("workers",),
            hint='use workers = "auto" or a count above 1',
        )
    if contract.reducer == "custom" and not (contract.notes or "").strip():
        loc.at_value(
            "reducer-custom-without-notes",
            "a custom reducer without notes: say what it does",
            ("reducer",),
            hint='add notes = "…"',
        )
    if contract.reducer == "custom" and contract.reducer_function is None:
        loc.at_value(
            "reducer-function-missing",
            'reducer = "custom" needs reducer_function to run here',
            ("reducer",),
            hint='add reducer_function = "module:function"',
        )
    if contract.backend == "dask" and contract.workers == 1:
        loc.at_value(
            "dask-single-worker",
            "the dask backend with a single worker",
            ("backend",),
            hint='use workers = "auto" or more than 1, or backend = "local"',
        )
    if contract.partition_strategy == "file-chunks" and contract.target_partitions == 0:
        loc.at_value(
            "file-chunks-auto-partitions",
            "file-chunks with target_partitions = 0: chunk count left to the runner",
            ("target_partitions",),
            hint="set target_partitions to the chunk count you want",
        )
    if not any(d.is_error for d in loc.diagnostics):
        result.value = contract
