"""Execute a parallel contract: plan, split into real partitions, dispatch on a backend, reduce.

``run_contract`` is what a step with ``stage = "parallel_stage.toml"`` runs (in its step process)
and what ``agilab-run parallel_stage.toml`` runs directly. The output is written atomically by the
reducer; a failing partition stops the stage with :class:`StageFailed`, which names the partition
(file, range or params) and carries its traceback.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .backends import Failed, FunctionRef, PartitionCall, get
from .partition import PartitionPlan, available_cores, load_grid, plan_contract
from .reducers import REDUCERS, custom
from .splits import Partition, make_partitions


class StageFailed(Exception):
    def __init__(self, failed: Failed) -> None:
        super().__init__(f"{failed.partition} failed: {failed.error}")
        self.failed = failed


@dataclass(frozen=True)
class StageResult:
    name: str
    output: str
    backend: str
    plan: PartitionPlan
    partitions: int
    seconds: float

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "output": self.output,
            "backend": self.backend,
            "partitions": self.partitions,
            "seconds": round(self.seconds, 4),
            "plan": self.plan.to_json(),
        }


def partitions_of(contract: Any, contract_path: Path, plan: PartitionPlan) -> list[Partition]:
    base = contract_path.parent
    files = [str(base / f) if not os.path.isabs(f) else f for f in plan.files]
    grid: list[dict[str, Any]] = []
    if contract.partition_strategy == "parameter-items":
        for f in files:
            grid += load_grid(Path(f))
    return make_partitions(contract.partition_strategy, files, plan.planned_partitions, plan.splittable, grid)


def run_contract(
    contract: Any,
    contract_path: str | Path,
    *,
    backend: str | None = None,
    cores: int | None = None,
    retries: int = 0,
) -> StageResult:
    """Run a validated contract (a :class:`~agilab_dsl.model.ParallelContract`)."""
    started = time.perf_counter()
    path = Path(contract_path).resolve()
    base = str(path.parent)
    plan = plan_contract(contract, path, cores or available_cores())
    parts = partitions_of(contract, path, plan)
    name = backend or contract.backend
    engine = get(name, plan.effective_workers)
    call = PartitionCall(FunctionRef.parse(contract.function, base), retries)
    output = contract.output if os.path.isabs(contract.output) else os.path.join(base, contract.output)

    def results() -> Iterator[tuple[str, Any]]:
        for part, outcome in engine.map(call, parts):
            if isinstance(outcome, Failed):
                raise StageFailed(outcome)
            yield part.describe(), outcome

    try:
        if contract.reducer == "custom":
            reducer = FunctionRef.parse(contract.reducer_function or "", base).load()
            custom(reducer, results(), output)
        else:
            REDUCERS[contract.reducer](results(), output)
    finally:
        engine.close()
    return StageResult(contract.name, output, name, plan, len(parts), time.perf_counter() - started)


@dataclass(frozen=True)
class StageProblem:
    """Why a contract did not reach its output: a message (the rendered diagnostics of an invalid
    contract, a missing backend, the failing partition) and that partition's traceback, if any."""

    message: str
    traceback: str = ""


def attempt(path: str | Path, contract: Any = None, **options: Any) -> StageResult | StageProblem:
    """Run a contract (loaded and checked from ``path`` unless given); its problems are values."""
    from .backends import BackendUnavailable
    from .errors import LoadError, render_text

    try:
        if contract is None:
            from .check import load

            contract = load(path, "contract")
        return run_contract(contract, path, **options)
    except LoadError as exc:
        return StageProblem("\n".join(render_text(d) for d in exc.diagnostics))
    except BackendUnavailable as exc:
        return StageProblem(str(exc))
    except StageFailed as exc:
        return StageProblem(str(exc), exc.failed.traceback)
