"""How one step is executed: the request sent to a step worker (a snippet, a function or a parallel
stage's contract, with its backend and share of the machine), served by a pooled worker, by this
process (watch mode's warm pools) or, when the step's interpreter (:mod:`agilab_dsl.plan.interpreter`)
is another one, by a worker started under that interpreter; and the worker's reply turned into a
:class:`~.outcome.StepOutcome` (a failed import names the interpreter and how to pick another).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path

from ..load.errors import os_error
from ..plan.graph import OutputRules
from ..plan.interpreter import Interpreter, missing_module
from ..plan.resolve import ResolvedStep
from ..plan.state import STEPS_LOCK
from .agilab_env import StepContext, step_extras
from .follow import progress_file
from .logs import log_path
from .machine import Machine, contract_backend
from .outcome import StepOutcome

TYPE_CHECKING = False  # typing is not imported at run time: ~2 ms of every run's start-up
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any

# an attempt made ready: its request, log and result files, interpreter (None: this tool's), backend
Prepared = tuple["dict[str, Any]", Path, Path, "Interpreter | None", "str | None"]


class StepExecutor:
    """Executes the steps of one lab, one step (attempt) per call of :meth:`execute`."""

    def __init__(
        self,
        lab_dir: Path,
        settings: Mapping[str, Any],
        context: StepContext | None = None,
        interpreter: Callable[[str], Interpreter] | None = None,
    ) -> None:
        self.lab_dir = lab_dir
        self.settings = settings
        self.context = context or StepContext()  # AGILAB's df, tracker and environment
        self.interpreter = interpreter  # the interpreter of a step (None: this tool's own, always)
        self._foreign: set[Any] = set()  # the workers running steps under other interpreters now
        self._made: set[str] = set()  # folders already created in this run
        self._lab_text = str(lab_dir)  # (paths as strings on the per-step path: pathlib costs ~0.1 ms a step)
        self._hold = os.path.join(self._lab_text, ".agilab", STEPS_LOCK)
        self._outputs = OutputRules(lab_dir)  # (the lab folder's real path resolved once; no folder
        # memo: a step may have made a symlink since the lab was checked)
        self._ahead: dict[str, Prepared] = {}  # first attempts sent to the worker ahead (-j 1)
        self._replies: dict[str, dict[str, Any]] = {}  # and their replies, when read before their turn

    def execute(
        self,
        step: ResolvedStep,
        run_id: str,
        attempt: int,
        pool: Any,
        machine: Machine,
        ahead: Callable[[], dict[str, Any] | None] | None = None,
    ) -> StepOutcome:
        """Run one attempt of ``step``. ``ahead``: asked for the next step's request (made by
        :meth:`send_ahead`) once this one's is sent to its worker."""
        prepared = self._ahead.pop(step.id, None) if attempt == 1 else None
        if prepared is None:
            made = self._prepare(step, run_id, attempt, machine)
            if isinstance(made, StepOutcome):
                return made
            prepared = made
        request, log, result_file, chosen, served_by = prepared
        if chosen is not None and not chosen.own:
            return self._execute_foreign(step, request, log, result_file, chosen)
        if machine.keeps_pools and served_by in ("pool", "dask") and step.placed.stage.timeout is None:
            # watch mode: the user's code runs in the pool's / cluster's workers, kept warm
            return self._outcome(
                step, machine.serve_here(request, log, result_file), log, result_file, chosen
            )
        from .pool import WorkerDied

        try:
            reply = self._replies.pop(step.id, None)  # read already, by ran_ahead
            if reply is None:
                reply = pool.run(request, ahead)
        except WorkerDied as exc:
            return StepOutcome(step.id, "failed", error=str(exc), log=_existing(log))
        return self._outcome(step, reply, log, result_file, chosen)

    def send_ahead(
        self, step: ResolvedStep, run_id: str, machine: Machine, *, halt: bool
    ) -> dict[str, Any] | None:
        """The request of ``step``'s first attempt, made now to be sent to the worker before the
        step it runs now has ended (``-j 1``); None when it cannot go ahead (another interpreter,
        watch mode's warm pools, a refusal: :meth:`execute` says why when its turn comes).
        ``halt``: its worker does not run it if the step before it failed (it replies
        ``{"halted": true}``: the run stops there)."""
        made = self._prepare(step, run_id, 1, machine)
        if isinstance(made, StepOutcome) or machine.keeps_pools:
            return None
        request, chosen = made[0], made[3]
        if chosen is not None and not chosen.own:
            return None
        if halt:
            request["unless_failed"] = True
        self._ahead[step.id] = made
        return request

    def ran_ahead(self, step_id: str, pool: Any) -> bool:
        """Whether ``step_id``, sent ahead, ran (or runs: this waits for it) although the run has
        stopped: a failure its worker could not see (a record that could not be written). Its
        reply is kept for :meth:`execute`. A step its worker halted did not run."""
        prepared = self._ahead.get(step_id)
        reply = pool.collect(prepared[0]) if prepared is not None else None
        if reply is None or reply.get("halted"):
            self._ahead.pop(step_id, None)
            return False
        self._replies[step_id] = reply
        return True

    # -- for an executor that sends requests and reads replies itself (dispatch.py) --------------
    def prepare(
        self, step: ResolvedStep, run_id: str, attempt: int, machine: Machine
    ) -> StepOutcome | Prepared:
        """An attempt's request, log and result files, interpreter and backend; or the outcome of a
        step refused before it runs."""
        return self._prepare(step, run_id, attempt, machine)

    def outcome(self, step: ResolvedStep, reply: Mapping[str, Any], prepared: Prepared) -> StepOutcome:
        """The outcome of an attempt, from its worker's reply."""
        return self._outcome(step, reply, prepared[1], prepared[2], prepared[3])

    def died(self, step: ResolvedStep, prepared: Prepared, exc: Exception) -> StepOutcome:
        """The outcome of an attempt whose worker died."""
        return StepOutcome(step.id, "failed", error=str(exc), log=_existing(prepared[1]))

    def _prepare(
        self, step: ResolvedStep, run_id: str, attempt: int, machine: Machine
    ) -> StepOutcome | Prepared:
        """One attempt's request, log and result files, interpreter and backend; or the outcome of
        a step refused before it runs."""
        stage = step.placed.stage
        chosen = self.interpreter(step.id) if self.interpreter is not None else None
        if chosen is not None and chosen.problem is not None:
            return StepOutcome(step.id, "failed", error=chosen.problem)
        log = log_path(self.lab_dir, run_id, step.id, attempt)
        run_dir = log.parent
        result_file = log.with_suffix(".json")
        declared = [out for out in step.outputs if out not in step.inferred]  # the code makes its own
        for out in declared:  # a rendered path, or a symlink made since check: judged again, now
            problem = self._outputs.problem(out, allow_outside=stage.allow_outside)
            if problem is not None:
                why = problem[1].strip() or "outside the lab's folder"
                return StepOutcome(step.id, "failed", error=f"refused to run: output {out!r} {why}")
        lab = self._lab_text
        for folder in [str(run_dir), *(os.path.dirname(os.path.join(lab, out)) for out in declared)]:
            if folder not in self._made:
                try:
                    os.makedirs(folder, exist_ok=True)
                except OSError as exc:  # read-only, no permission, a file in the way, a full disk
                    return StepOutcome(step.id, "failed", error=f"cannot create the folder {os_error(exc)}")
                self._made.add(folder)
        request: dict[str, Any] = {
            "step_id": step.id,
            "kind": "function" if stage.function else "code",
            "code": stage.code or "",
            "cwd": self._lab_text,
            "hold": self._hold,
            "log": str(log),
            "result": str(result_file),
            "timeout": stage.timeout,
            # what _outcome requires: the worker judges the step failed by it too (a step sent
            # ahead after a failed one is halted)
            "required": self.context.required_outputs(step),
            "names": {
                "settings": dict(self.settings),
                "params": step.params,
                "inputs": step.inputs,
                "outputs": step.outputs,
            },
        }
        if machine.share is not None:
            request["env"] = machine.thread_env()
        request.update(step_extras(step, run_id, self.lab_dir, self.context))
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
                progress=str(progress_file(log)),  # followed live (follow.py)
            )
        elif stage.function:
            module, _, function = stage.function.rpartition(":")
            request["module"], request["function"] = module, function
        return request, log, result_file, chosen, served_by

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

    def _execute_foreign(
        self, step: ResolvedStep, request: dict[str, Any], log: Path, result_file: Path, chosen: Interpreter
    ) -> StepOutcome:
        """A step whose interpreter is not this tool's: a worker of its own, started under that
        interpreter with the worker's (standard-library only) source."""
        from .pool import Worker, WorkerDied

        source = (Path(__file__).with_name("worker.py")).read_text(encoding="utf-8")
        try:
            worker = Worker(chosen.path, source_code=source)
        except OSError as exc:
            return StepOutcome(step.id, "failed", error=f"cannot start {chosen.describe()}: {os_error(exc)}")
        self._foreign.add(worker)
        try:
            reply = worker.run(request)
        except WorkerDied as exc:
            return StepOutcome(
                step.id, "failed", error=f"{exc} under {chosen.describe()}", log=_existing(log)
            )
        finally:
            self._foreign.discard(worker)
            worker.close()
        return self._outcome(step, reply, log, result_file, chosen)

    def interrupt(self) -> None:
        """Ctrl-C: end the steps running under other interpreters (the pool ends its own)."""
        for worker in list(self._foreign):
            worker.close(kill=True)

    def _outcome(
        self,
        step: ResolvedStep,
        reply: Mapping[str, Any],
        log: Path,
        result_file: Path,
        chosen: Interpreter | None = None,
    ) -> StepOutcome:
        seconds = float(reply.get("seconds", 0.0))
        lab = self._lab_text
        missing = [p for p in self.context.required_outputs(step) if not os.path.exists(os.path.join(lab, p))]
        error = None
        if reply.get("timed_out"):
            error = f"timed out after {step.placed.stage.timeout} s"
        elif reply.get("signal"):
            error = f"crashed: killed by signal {reply['signal']} ({_signal_name(reply['signal'])})"
        elif reply.get("exit"):
            error = f"exited with status {reply['exit']}"
            hint = missing_module(_log_end(log), chosen) if chosen is not None else None
            if hint is not None:
                error += f": {hint}"
        elif missing:
            error = f"declared output {missing[0]} was not written"
        if error is not None:
            if reply.get("log_error"):
                error += f"; its log could not be written ({reply['log_error']})"
            return StepOutcome(step.id, "failed", seconds=seconds, log=_existing(log), error=error)
        returned = None
        if reply.get("result", True):  # the worker says whether the step wrote one (older: unknown)
            with contextlib.suppress(OSError, ValueError):  # a step that called sys.exit(0) returned nothing
                returned = json.loads(result_file.read_text(encoding="utf-8"))
        return StepOutcome(step.id, "ran", seconds=seconds, log=_existing(log), returned=returned)


def _existing(log: Path) -> str | None:
    """The step's log, if it printed anything (a silent step leaves none)."""
    return str(log) if os.path.exists(log) else None


def _log_end(log: Path, size: int = 1 << 16) -> str:
    """The end of a step's log (where a traceback's last line is); empty when there is none."""
    try:
        with log.open("rb") as fh:
            fh.seek(max(0, log.stat().st_size - size))
            return fh.read().decode("utf-8", errors="replace")
    except OSError:
        return ""


def _signal_name(number: int) -> str:
    import signal

    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"
