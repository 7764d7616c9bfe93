"""How one step is executed: the request sent to a step worker (a snippet, a function or a parallel
stage's contract, with its backend and share of the machine), served by a pooled worker, by this
process (watch mode's warm pools) or by a worker started under the AGILAB runtime's interpreter
(``agi.*`` engines), and the worker's reply turned into a :class:`~.outcome.StepOutcome`.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..load.errors import os_error
from ..plan.resolve import ResolvedStep
from ..plan.state import STEPS_LOCK
from .machine import Machine, contract_backend
from .outcome import StepOutcome


class StepExecutor:
    """Executes the steps of one lab, one step (attempt) per call of :meth:`execute`."""

    def __init__(self, lab_dir: Path, settings: Mapping[str, Any]) -> None:
        self.lab_dir = lab_dir
        self.settings = settings
        self._made: set[Path] = set()  # folders already created in this run

    def execute(
        self, step: ResolvedStep, run_id: str, attempt: int, pool: Any, machine: Machine
    ) -> StepOutcome:
        stage = step.placed.stage
        run_dir = self.lab_dir / ".agilab" / "runs" / run_id
        suffix = f".{attempt}" if attempt > 1 else ""
        log = run_dir / f"{step.id}{suffix}.log"
        result_file = run_dir / f"{step.id}{suffix}.json"
        declared = [out for out in step.outputs if out not in step.inferred]  # the code makes its own
        for folder in [run_dir, *((self.lab_dir / out).parent for out in declared)]:
            if folder not in self._made:
                try:
                    folder.mkdir(parents=True, exist_ok=True)
                except OSError as exc:  # read-only, no permission, a file in the way, a full disk
                    return StepOutcome(step.id, "failed", error=f"cannot create the folder {os_error(exc)}")
                self._made.add(folder)
        request: dict[str, Any] = {
            "step_id": step.id,
            "kind": "function" if stage.function else "code",
            "code": stage.code or "",
            "cwd": str(self.lab_dir),
            "hold": str(self.lab_dir / ".agilab" / STEPS_LOCK),
            "log": str(log),
            "result": str(result_file),
            "timeout": stage.timeout,
            "names": {
                "settings": dict(self.settings),
                "params": step.params,
                "inputs": step.inputs,
                "outputs": step.outputs,
            },
        }
        if machine.share is not None:
            request["env"] = machine.thread_env()
        served_by: str | None = None  # a contract step's backend, its own or the contract's
        if step.contract is not None:
            contract = os.path.join(self.lab_dir, step.contract)
            backend = self._backend(step, machine.backend)
            served_by = backend or contract_backend(contract)
            request.update(
                kind="contract",
                contract=contract,
                backend=backend,
                retries=stage.retries,
                fallback=stage.fallback,
                cython=self._cython(step),
                limit=machine.share,
                scheduler=machine.scheduler_for(served_by),
            )
        elif stage.function:
            module, _, function = stage.function.rpartition(":")
            request["module"], request["function"] = module, function
        if (stage.engine or "").startswith("agi."):
            return self._execute_agi(step, request, log, result_file)
        if machine.keeps_pools and served_by in ("pool", "dask") and stage.timeout is None:
            # watch mode: the user's code runs in the pool's / cluster's workers, kept warm
            return self._outcome(step, machine.serve_here(request, log, result_file), log, result_file)
        from .pool import WorkerDied

        try:
            reply = pool.run(request)
        except WorkerDied as exc:
            return StepOutcome(step.id, "failed", error=str(exc), log=_existing(log))
        return self._outcome(step, reply, log, result_file)

    def _backend(self, step: ResolvedStep, override: str | None) -> str | None:
        """The backend of a parallel step (DESIGN §1.3): ``--backend``, else its own ``backend``
        (``auto`` included) or ``mode``, else the one the settings' ``[cluster]`` flags give; None
        leaves the contract's own."""
        stage = step.placed.stage
        if override is not None:
            return override
        if stage.backend is not None:
            return stage.backend
        bits = self._mode_bits(step)
        for bit, name in ((8, "gpu"), (4, "dask"), (1, "pool")):
            if bits & bit:
                return name
        return None

    def _mode_bits(self, step: ResolvedStep) -> int:
        """``pool + 2*cython + 4*cluster_enabled + 8*rapids``: the step's ``mode``, else the settings'."""
        stage = step.placed.stage
        if stage.mode is not None:
            from ..load.expr import parse_mode

            return parse_mode(stage.mode)
        cluster = self.settings.get("cluster") or {}
        return (
            int(bool(cluster.get("pool")))
            + 2 * int(bool(cluster.get("cython")))
            + 4 * int(bool(cluster.get("cluster_enabled")))
            + 8 * int(bool(cluster.get("rapids")))
        )

    def _cython(self, step: ResolvedStep) -> bool:
        return bool(self._mode_bits(step) & 2)

    def _execute_agi(
        self, step: ResolvedStep, request: dict[str, Any], log: Path, result_file: Path
    ) -> StepOutcome:
        env = step.env
        python = _interpreter(self.lab_dir / env) if env else None
        if python is None:
            where = f"E = {env!r} has no Python interpreter" if env else "the stage sets no E (runtime)"
            return StepOutcome(
                step.id,
                "failed",
                error=(
                    f"R = {step.placed.stage.engine!r} needs the AGILAB runtime: {where} "
                    "(point E at an AGILAB project or virtual environment)"
                ),
            )
        from .pool import Worker, WorkerDied

        source = (Path(__file__).with_name("worker.py")).read_text(encoding="utf-8")
        worker = Worker(python, source_code=source)
        try:
            reply = worker.run(request)
        except WorkerDied as exc:
            return StepOutcome(step.id, "failed", error=str(exc), log=_existing(log))
        finally:
            worker.close()
        return self._outcome(step, reply, log, result_file)

    def _outcome(
        self, step: ResolvedStep, reply: Mapping[str, Any], log: Path, result_file: Path
    ) -> StepOutcome:
        seconds = float(reply.get("seconds", 0.0))
        # a declared output must be written; an inferred one (from the code) may be on a branch not taken
        missing = [p for p in step.outputs if p not in step.inferred and not (self.lab_dir / p).exists()]
        error = None
        if reply.get("timed_out"):
            error = f"timed out after {step.placed.stage.timeout} s"
        elif reply.get("signal"):
            error = f"crashed: killed by signal {reply['signal']} ({_signal_name(reply['signal'])})"
        elif reply.get("exit"):
            error = f"exited with status {reply['exit']}"
        elif missing:
            error = f"declared output {missing[0]} was not written"
        if error is not None:
            if reply.get("log_error"):
                error += f"; its log could not be written ({reply['log_error']})"
            return StepOutcome(step.id, "failed", seconds=seconds, log=_existing(log), error=error)
        returned = None
        with contextlib.suppress(OSError, ValueError):  # a step that called sys.exit(0) returned nothing
            returned = json.loads(result_file.read_text(encoding="utf-8"))
        return StepOutcome(step.id, "ran", seconds=seconds, log=_existing(log), returned=returned)


def _existing(log: Path) -> str | None:
    """The step's log, if it printed anything (a silent step leaves none)."""
    return str(log) if log.exists() else None


def _interpreter(env: Path) -> str | None:
    for candidate in (env / ".venv" / "bin" / "python", env / "bin" / "python", env):
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def _signal_name(number: int) -> str:
    import signal

    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"
