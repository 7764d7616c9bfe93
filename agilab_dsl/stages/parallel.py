"""Execute a parallel contract: plan, split into real partitions, dispatch on a backend, reduce.

``run_contract`` is what a step with ``stage = "parallel_stage.toml"`` runs (in its step process)
and what ``agilab-run parallel_stage.toml`` runs directly. The output is written atomically by the
reducer; a failing partition stops the stage with :class:`StageFailed`, which names the partition
(file, range or params) and carries its traceback.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import spill
from .backends import Failed, FunctionRef, PartitionCall, Placement, get
from .cores import available_cores
from .partition import GridError, PartitionPlan, load_grid, plan_partitions, resolve_inputs
from .progress import StageProgress
from .reducers import REDUCERS, ReduceError, custom
from .splits import Partition, make_partitions


class StageFailed(Exception):
    def __init__(self, failed: Failed) -> None:
        super().__init__(f"{failed.partition} failed: {failed.error}")
        self.failed = failed


class Located(Exception):
    """A problem of the contract met when it runs (its input matches no file, its function module
    cannot be imported): a diagnostic located in the contract, said without a traceback."""

    def __init__(self, diagnostic: Any) -> None:
        super().__init__(diagnostic.message)
        self.diagnostic = diagnostic


@dataclass(frozen=True)
class StageResult:
    name: str
    output: str
    backend: str
    plan: PartitionPlan
    partitions: int
    workers: int
    seconds: float
    notes: tuple[str, ...] = ()  # what the run said: backend chosen by auto, dashboard, fallback
    partition_seconds: dict[str, float] | None = None  # min / median / max
    output_bytes: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "output": self.output,
            "backend": self.backend,
            "partitions": self.partitions,
            "workers": self.workers,
            "seconds": round(self.seconds, 4),
            "plan": self.plan.to_json(),
            "notes": list(self.notes),
            "partition_seconds": self.partition_seconds,
            "output_bytes": self.output_bytes,
        }


def planned(contract: Any, contract_path: Path, cores: int) -> tuple[PartitionPlan, list[Partition]]:
    """The plan ``agilab-run plan`` prints and the real partitions it makes (a grid read once)."""
    base = contract_path.parent
    files = resolve_inputs(contract, base)
    paths = [f if os.path.isabs(f) else str(base / f) for f in files]
    grid: list[dict[str, Any]] = []
    sweep = contract.partition_strategy == "parameter-items" and bool(paths)
    for f in paths if sweep else ():
        grid += load_grid(Path(f))
    plan = plan_partitions(contract, files, cores, len(grid) if sweep else None)
    parts = make_partitions(
        contract.partition_strategy, paths, plan.planned_partitions, plan.splittable, grid
    )
    return plan, parts


AUTO_SMALL_BYTES = 1 << 20


def choose_auto(
    contract: Any, plan: PartitionPlan, parts: list[Partition], fn: Any, scheduler: str | None
) -> tuple[str, str]:
    """The ``auto`` rule, in order: one partition or one worker → ``local``; a files or table split
    whose input is under 1 MiB → ``local`` (starting processes costs more than the work); a function
    taking ``xp`` on a machine where CuPy sees a CUDA device → ``gpu``; a Dask scheduler given →
    ``dask``; else ``pool``. Returns the backend and why, in words."""
    from .backends import takes_xp

    if len(parts) <= 1 or plan.effective_workers <= 1:
        return (
            "local",
            f"{len(parts)} partition{'s' * (len(parts) != 1)} on {plan.effective_workers} worker{'s' * (plan.effective_workers != 1)}",
        )
    if contract.split != "parameter-sweep":
        size = sum(os.path.getsize(f) for f in {p.path for p in parts if p.path} if os.path.exists(f))
        if size < AUTO_SMALL_BYTES:
            return "local", f"input of {size} bytes is under 1 MiB"
    if fn is not None and takes_xp(fn):
        from .backends.gpu import missing

        if missing() is None:
            return "gpu", "the function takes xp and a CUDA device is present"
    if scheduler:
        return "dask", f"a Dask scheduler is given ({scheduler})"
    return "pool", f"{len(parts)} partitions on {plan.effective_workers} workers"


def run_contract(
    contract: Any,
    contract_path: str | Path,
    *,
    backend: str | None = None,
    cores: int | None = None,
    limit: int | None = None,
    retries: int = 0,
    scheduler: str | None = None,
    fallback: str | None = None,
    compiled: bool = False,
    say: Callable[[str], None] | None = None,
    progress: str | None = None,
) -> StageResult:
    """Run a validated contract (a :class:`~agilab_dsl.load.model.ParallelContract`).

    ``cores`` is what the plan assumes (this machine's by default); ``limit`` caps the processes a
    stage starts when it shares the machine with other stages (``-j N``); inner thread pools get
    ``cores // processes`` threads each. ``compiled`` (the cython bit) prefers a compiled twin of
    the function's module. ``say`` hears what is worth telling (auto's choice, the dashboard link).
    ``progress``: a file that receives a JSON line per partition started and finished
    (:mod:`.progress`).
    """
    started = time.perf_counter()
    notes: list[str] = []

    def tell(text: str) -> None:
        notes.append(text)
        if say is not None:
            say(text)

    path = Path(contract_path).resolve()
    base = str(path.parent)
    cores = cores or available_cores()
    plan, parts = planned(contract, path, cores)
    if plan.input_files == 0 and not getattr(contract, "allow_empty", False):
        raise Located(_empty_input(contract, path))
    function = FunctionRef.parse(contract.function, base)
    if compiled:
        tell(_compiled_note(function))
    name = backend or contract.backend
    if name == "auto":
        try:
            fn = function.load(compiled)
        except Exception:  # said below (local, pool) or as the first partition's failure
            fn = None
        name, why = choose_auto(contract, plan, parts, fn, scheduler)
        tell(f"auto: {name} ({why})")
    if name in ("local", "pool") and parts:
        _importable(function, compiled, path)
    workers = min(plan.effective_workers, limit) if limit else plan.effective_workers
    workers = max(1, workers)
    where = Placement(workers, max(1, (limit or cores) // workers), scheduler, fallback)
    engine = get(name, where, tell)
    output = contract.output if os.path.isabs(contract.output) else os.path.join(base, contract.output)
    call = spill.wrap(
        PartitionCall(function, retries, compiled=compiled), engine.name, contract.reducer, output
    )

    took: list[float] = []
    tracked = StageProgress(progress, len(parts), engine.name, _dashboard(engine))

    def results() -> Iterator[tuple[str, Any]]:
        for part, outcome in engine.map(call, parts, tracked.started if progress else None):
            tracked.finished(part.describe(), outcome.error if isinstance(outcome, Failed) else None)
            if isinstance(outcome, Failed):
                raise StageFailed(outcome)
            took.append(outcome.seconds)
            yield part.describe(), outcome.value
            del outcome  # not held while the next partition runs (local: in this process)

    stream = results()
    try:
        if contract.reducer == "custom":
            reducer = FunctionRef.parse(contract.reducer_function or "", base).load()
            custom(reducer, stream, output)
        else:
            REDUCERS[contract.reducer](stream, output)
    finally:
        stream.close()  # a stage stopped early stops its partitions now, not when collected
        tracked.close()
        engine.close()
        spill.clean(output)  # what a failed stage's workers wrote ahead
    return StageResult(
        contract.name,
        output,
        engine.name,
        plan,
        len(parts),
        workers,
        time.perf_counter() - started,
        tuple(notes),
        _spread(took),
        os.path.getsize(output) if os.path.exists(output) else 0,
    )


def _dashboard(engine: Any) -> str | None:
    """The Dask dashboard link of a backend (or of the Dask backend it wraps), if it has one."""
    for backend in (engine, getattr(engine, "inner", None)):
        link = getattr(backend, "dashboard", None)
        if isinstance(link, str) and link:
            return link
    return None


def _empty_input(contract: Any, path: Path) -> Any:
    from ..load.contract import locate_in_contract

    where = contract.input if os.path.isabs(contract.input) else os.path.join(path.parent, contract.input)
    return locate_in_contract(
        path,
        "input-empty",
        f"input {contract.input!r} matches no file (looked for {where})",
        "input",
        hint="write the files first (an upstream step), fix the glob, or set allow_empty = true",
    )


def _importable(function: FunctionRef, compiled: bool, path: Path) -> None:
    """Import the partition function here, before any partition starts, when the partitions run
    on this machine under this interpreter (local, pool): one that cannot be imported is a located
    error, not each partition's traceback. (A Dask or GPU stage's workers may hold modules this
    process lacks: there a failure stays the first partition's.)"""
    from ..load.contract import locate_in_contract

    try:
        function.load(compiled)
    except Exception as exc:  # whatever the module's top-level code raises while it is imported
        raise Located(
            locate_in_contract(
                path,
                "function-unimportable",
                f"cannot import the function {function.module}:{function.name}: {type(exc).__name__}: {exc}",
                "function",
                hint=_import_hint(exc),
            )
        ) from None


def _import_hint(exc: BaseException) -> str:
    if isinstance(exc, ModuleNotFoundError) and exc.name:
        return f"install {exc.name} in the interpreter that runs the stage, or fix the import"
    if isinstance(exc, AttributeError):
        return "check the function's name after the colon"
    if isinstance(exc, SyntaxError):
        return "fix the module's syntax"
    return "the module raises while it is imported: run it with python to see why"


def _spread(seconds: list[float]) -> dict[str, float] | None:
    """min / median / max of the partitions' durations."""
    if not seconds:
        return None
    import statistics

    return {
        "min": round(min(seconds), 6),
        "median": round(statistics.median(seconds), 6),
        "max": round(max(seconds), 6),
    }


def _compiled_note(function: FunctionRef) -> str:
    """Says which module the cython bit runs: the compiled one when importable, else Python."""
    from .backends import compiled_twin, where_loaded

    if function.is_path:
        twin = compiled_twin(function.path())
        if twin:
            return f"cython: running the compiled module {os.path.basename(twin)}"
        return f"cython: no compiled module beside {function.module}; running Python"
    try:
        origin = where_loaded(function.load())
    except Exception:  # reported as the first partition's failure
        return f"cython: {function.module} could not be imported"
    import importlib.machinery

    if origin.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES)):
        return f"cython: running the compiled module {os.path.basename(origin)}"
    return f"cython: {function.module} is not compiled; running Python ({os.path.basename(origin)})"


@dataclass(frozen=True)
class StageProblem:
    """Why a contract did not reach its output: a message (the rendered diagnostics of an invalid
    contract, a missing backend, the failing partition) and that partition's traceback, if any."""

    message: str
    traceback: str = ""
    located: bool = False  # message is rendered diagnostics (file:line:col first)


def attempt(path: str | Path, contract: Any = None, **options: Any) -> StageResult | StageProblem:
    """Run a contract (loaded and checked from ``path`` unless given); its problems are values."""
    from ..load.errors import LoadError, render_text
    from .backends import BackendUnavailable

    try:
        if contract is None:
            from ..check.files import load

            contract = load(path, "contract")
        return run_contract(contract, path, **options)
    except LoadError as exc:
        return StageProblem("\n".join(render_text(d) for d in exc.diagnostics), located=True)
    except Located as exc:
        return StageProblem(render_text(exc.diagnostic), located=True)
    except (BackendUnavailable, ReduceError, GridError) as exc:
        return StageProblem(str(exc))
    except (ImportError, AttributeError) as exc:  # a custom reducer that cannot be loaded
        return StageProblem(f"{type(exc).__name__}: {exc}")
    except StageFailed as exc:
        return StageProblem(str(exc), exc.failed.traceback)


def serve(
    req: dict[str, Any], say: Callable[[str], None], complain: Callable[[str], None]
) -> tuple[int, dict[str, Any] | None]:
    """Run a contract step's request (see :mod:`agilab_dsl.execute.worker`): its exit status and what it
    hands back. ``say`` hears progress and the summary line; ``complain`` the failure."""
    result = attempt(
        req["contract"],
        backend=req.get("backend"),
        retries=req.get("retries", 0),
        scheduler=req.get("scheduler"),
        fallback=req.get("fallback"),
        compiled=req.get("cython", False),
        cores=req.get("cores"),
        limit=req.get("limit"),
        say=say,
        progress=req.get("progress"),
    )
    if isinstance(result, StageProblem):
        complain(f"{result.message}\n{result.traceback}".rstrip("\n"))
        return 1, None
    say(
        f"{result.name}: {result.partitions} partitions on {result.backend} → "
        f"{os.path.relpath(result.output, req['cwd'])} ({result.seconds:.2f} s)"
    )
    return 0, {"returned": result.to_json()}
