"""Run a lab: one scheduling loop over the step graph, steps executed by forked workers.

The loop (as in kedro's runner) takes every step whose upstream steps are settled, decides what
it is — disabled, skipped by ``when``, blocked by a failure, fresh, or to run and why — and hands
the ones to run to a pool of ``-j`` workers, waiting for the first to finish. State is saved after
every step that succeeds, so an interrupted run loses nothing that completed. Outcomes are values
(:class:`StepOutcome`) sent to a reporter; nothing here prints.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from ..cli.show import stage_result
from ..load.errors import os_error
from ..plan.fingerprint import FileHashes, digest
from ..plan.graph import StepGraph
from ..plan.resolve import ResolvedStep, resolve_step
from ..plan.spec import LabSpec
from ..plan.stale import StepStatus, components, reasons
from ..plan.state import STEPS_LOCK, LabState, StepRecord, new_run_id

Status = Literal["ran", "fresh", "skipped", "disabled", "failed", "blocked"]


@dataclass
class RunOptions:
    only: tuple[str, ...] = ()
    from_step: str | None = None
    force: bool = False
    jobs: int = 1
    keep_going: bool = False
    backend: str | None = None  # --backend: the backend of every parallel step
    scheduler: str | None = None  # --scheduler: the Dask scheduler of every dask (and gpu) step


@dataclass
class StepOutcome:
    id: str
    status: Status
    reasons: list[str] = field(default_factory=list)
    seconds: float = 0.0
    error: str | None = None
    log: str | None = None
    attempts: int = 0
    returned: Any = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "status": self.status, "reasons": self.reasons}
        if self.status in ("ran", "failed"):
            out["seconds"] = round(self.seconds, 4)
        if self.error:
            out["error"] = self.error
        if self.log:
            out["log"] = self.log
        return out


@dataclass
class RunResult:
    run_id: str
    outcomes: list[StepOutcome]
    interrupted: bool = False
    recorded: bool = False  # in the experiment history (a run in which no step started is not)

    @property
    def failed(self) -> list[StepOutcome]:
        return [o for o in self.outcomes if o.status == "failed"]

    @property
    def ok(self) -> bool:
        return not self.failed and not self.interrupted

    def to_json(self) -> dict[str, Any]:
        # null when the run is not in the history (no step started): an id `history` cannot find
        return {
            "run_id": self.run_id if self.recorded else None,
            "steps": [o.to_json() for o in self.outcomes],
        }


class Reporter(Protocol):
    def step_started(self, step_id: str, why: list[str], attempt: int) -> None: ...
    def step_finished(self, outcome: StepOutcome) -> None: ...
    def note(self, text: str) -> None: ...


class SilentReporter:
    def step_started(self, step_id: str, why: list[str], attempt: int) -> None:
        return None

    def step_finished(self, outcome: StepOutcome) -> None:
        return None

    def note(self, text: str) -> None:
        return None


class Runner:
    """Runs (or, for ``status``/``--dry-run``, judges) the steps of one lab."""

    def __init__(
        self,
        lab: LabSpec,
        settings: Mapping[str, Any],
        state: LabState,
        graph: StepGraph,
        *,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.lab = lab
        self.lab_dir = Path(lab.path).resolve().parent
        self.settings = settings
        self.state = state
        self.full_graph = graph
        self.hashes = FileHashes(state.hashes)
        self.environ = dict(os.environ if environ is None else environ)
        self.resolved = self._resolve_all()
        self.warnings: list[str] = []  # said once by the caller (an unreadable state file, say)
        self._made: set[Path] = set()  # folders already created in this run

    # -- preparation -------------------------------------------------------------------------
    def _resolve_all(self) -> dict[str, ResolvedStep]:
        steps: dict[str, dict[str, list[str]]] = {}
        resolved: dict[str, ResolvedStep] = {}
        placed = {s.id: s for s in self.lab.stages}
        for sid in self.full_graph.order():
            step = resolve_step(placed[sid], self.settings, steps, self.environ)
            resolved[sid] = step
            steps[sid] = {"outputs": step.outputs}
        return resolved

    def dependencies(self) -> tuple[list[str], list[str]]:
        """What a judgment of this lab read: files (lab, function sources, inputs, outputs,
        contracts, state) and the names of environment variables its ``${env.…}`` holes use."""
        from ..load import expr
        from ..load.locate import function_source

        root = str(self.lab_dir)
        files = [self.lab.path, str(self.state.path), str(self.state.journal_path)]
        env: set[str] = set()
        for step in self.resolved.values():
            stage = step.placed.stage
            files += [os.path.join(root, p) for p in (*step.inputs, *step.outputs)]
            if step.contract is not None:
                from ..plan.stale import contract_parts, glob_root

                contract = os.path.join(root, step.contract)
                files.append(contract)
                pattern, function = contract_parts(contract)
                if pattern:  # the folder its glob searches: a new matching file changes it
                    files.append(glob_root(pattern, os.path.dirname(contract)))
                if function:
                    ref = expr.parse_funcref(function)
                    source = function_source(ref.module, ref.is_path, Path(contract).parent)
                    files.append(
                        str(source) if source else os.path.join(os.path.dirname(contract), ref.module)
                    )
            if stage.function:
                ref = expr.parse_funcref(stage.function)
                source = function_source(ref.module, ref.is_path, self.lab_dir)
                files.append(str(source) if source else str(self.lab_dir / ref.module))
            env.update(step.env_names)
        return files, sorted(env)

    def data_files(self) -> list[str]:
        """Every input and output path (absolute), as the file-hash cache knows them."""
        root = str(self.lab_dir)
        files = [
            os.path.join(root, p) for step in self.resolved.values() for p in (*step.inputs, *step.outputs)
        ]
        for step in self.resolved.values():
            if step.contract is not None:  # what its glob finds: hashed like inputs
                from ..plan.stale import contract_parts, resolve_glob

                contract = os.path.join(root, step.contract)
                files += resolve_glob(contract_parts(contract)[0], os.path.dirname(contract))
        return files

    def hashed_signatures(self, paths: list[str]) -> dict[str, str] | None:
        """``size:mtime_ns`` of each file when its hash was last taken; None if one was never hashed."""
        out = {}
        for path in paths:
            entry = self.hashes.cache.get(path)
            if entry is None:
                return None
            out[path] = f"{entry[0]}:{entry[1]}"
        return out

    def conditional(self) -> list[str]:
        return [sid for sid, step in self.resolved.items() if step.placed.stage.when is not None]

    def select(self, options: RunOptions) -> StepGraph:
        graph = self.full_graph
        if options.from_step:
            graph = graph.from_step(options.from_step)
        if options.only:
            graph = graph.subgraph([i for i in graph.ids if i in set(options.only)])
        return graph

    def _judge(
        self, sid: str, fingerprints: Mapping[str, str], ran: Mapping[str, bool], force: bool
    ) -> tuple[StepStatus, dict[str, Any] | None]:
        """The state of one step now: disabled, or fresh / stale / never-ran with reasons."""
        step = self.resolved[sid]
        if step.placed.stage.disabled:
            switch = "enabled = false" if not step.placed.stage.enabled else "skip = true"
            return StepStatus(sid, "disabled", (switch,)), None
        upstream = {u: fingerprints.get(u, "") for u in sorted(self.full_graph.upstream(sid))}
        comps = components(step, self.lab_dir, self.hashes, upstream)
        record = self.state.steps.get(sid)
        # equal components have the recorded digest: hash only what changed (most steps are fresh)
        fingerprint = (
            record.fingerprint if record is not None and record.components == comps else digest(comps)
        )
        why = reasons(record, comps, self.lab_dir, self.hashes, ran, fingerprint)
        if force and not why:
            why = ["forced (--force)"]
        state: Literal["never-ran", "stale", "fresh"] = (
            "never-ran" if record is None else ("stale" if why else "fresh")
        )
        return StepStatus(sid, state, tuple(why), fingerprint, comps), comps

    def statuses(self, options: RunOptions | None = None) -> list[StepStatus]:
        """Every selected step's state and reasons, without running anything (``status``, ``--dry-run``).

        A step downstream of one that would run is stale too: ``upstream X will run``."""
        options = options or RunOptions()
        graph = self.select(options)
        fingerprints = {sid: rec.fingerprint for sid, rec in self.state.steps.items()}
        will: dict[str, bool] = {}
        out = []
        for sid in self.full_graph.order():
            status, _ = self._judge(sid, fingerprints, {}, options.force and sid in graph.ids)
            if status.state in ("fresh", "stale"):
                upstream_running = [u for u in sorted(self.full_graph.upstream(sid)) if will.get(u)]
                extra = tuple(
                    f"upstream {u} will run"
                    for u in upstream_running
                    if f"upstream {u} ran" not in status.reasons
                )
                if extra and status.state == "fresh":
                    status = StepStatus(sid, "stale", extra, status.fingerprint, status.components)
                elif extra:
                    status = StepStatus(
                        sid, status.state, status.reasons + extra, status.fingerprint, status.components
                    )
                will[sid] = status.state != "fresh" and sid in graph.ids
            if sid in graph.ids:
                out.append(status)
        position = {sid: n for n, sid in enumerate(self.lab.ids)}
        return sorted(out, key=lambda s: position[s.id])

    # -- running -----------------------------------------------------------------------------
    def run(
        self,
        options: RunOptions,
        reporter: Reporter | None = None,
        run_id: str | None = None,
        execute: Callable[[ResolvedStep, str, int], StepOutcome] | None = None,
        warm: Warm | None = None,
    ) -> RunResult:
        """Run the selected stale steps. ``warm`` (watch mode) keeps the step workers and a Dask
        LocalCluster up between runs: this run neither starts nor ends them."""
        reporter = reporter or SilentReporter()
        run_id = run_id or new_run_id()
        machine = (
            warm.machine(options, self.settings, reporter)
            if warm
            else _Machine(options, self.settings, reporter)
        )
        started = time.time()
        attempted: dict[str, dict[str, Any]] = {}  # what each started step ran with
        started_for: dict[str, list[str]] = {}  # and why it started
        git: Any = None  # `git status`, started with the first step, read when the run is recorded
        graph = self.select(options)
        selected = set(graph.ids)
        order = [sid for sid in self.full_graph.order() if sid in selected]
        fingerprints = {sid: rec.fingerprint for sid, rec in self.state.steps.items()}
        ran: dict[str, bool] = {}
        settled: dict[str, StepOutcome] = {}
        stopped_by: str | None = None
        from .pool import WorkerPool

        pool = warm.pool(options.jobs) if warm else WorkerPool(options.jobs)
        execute_is_real = execute is None  # a test's stand-in executor leaves no history
        if execute is None:
            if order:
                pool.prestart()  # its interpreter starts while the steps are judged
            execute = lambda step, rid, attempt: self._execute(step, rid, attempt, pool, machine)  # noqa: E731
        interrupted = recorded = False
        running: dict[Any, tuple[str, dict[str, Any], list[str]]] = {}  # future -> (id, comps, why)
        # -j 1 runs each step from this thread: no hand-off to a thread and back per step (and no
        # import of concurrent.futures)
        threads: Any = _Inline() if options.jobs == 1 else _threads(options.jobs)
        try:
            # Kahn's algorithm: a step is ready when its last selected upstream step settles.
            rank = {sid: n for n, sid in enumerate(order)}
            waiting = {sid: len(self.full_graph.upstream(sid) & selected) for sid in order}
            ready = deque(sid for sid in order if waiting[sid] == 0)
            runnable: deque[tuple[str, dict[str, Any], list[str]]] = deque()  # judged stale, not started

            def settle(sid: str, outcome: StepOutcome) -> None:
                settled[sid] = outcome
                reporter.step_finished(outcome)
                for nxt in sorted(self.full_graph.downstream(sid) & selected, key=rank.__getitem__):
                    waiting[nxt] -= 1
                    if waiting[nxt] == 0:
                        ready.append(nxt)

            while ready or runnable or running:
                # judge every ready step now (judging does not wait for running steps) ...
                while ready:
                    sid = ready.popleft()
                    ups = self.full_graph.upstream(sid) & selected
                    outcome, comps, why = self._decide(
                        sid, ups, settled, fingerprints, ran, options, stopped_by
                    )
                    if outcome is not None:
                        settle(sid, outcome)
                    else:
                        assert comps is not None
                        runnable.append((sid, comps, why))
                # ... and start at most -j at a time
                while runnable and len(running) < options.jobs:
                    sid, comps, why = runnable.popleft()
                    if stopped_by is not None:
                        settle(sid, StepOutcome(sid, "blocked", [_stopped(stopped_by)]))
                        continue
                    if git is None and execute_is_real:
                        from ..record.history import GitProbe

                        git = GitProbe(self.lab_dir)
                    attempted[sid] = comps
                    started_for[sid] = why
                    fut = threads.submit(self._attempts, self.resolved[sid], run_id, execute, reporter, why)
                    running[fut] = (sid, comps, why)
                if not running:
                    continue  # more steps became ready while settling
                done = threads.wait_first(list(running))
                for fut in done:
                    sid, comps, why = running.pop(fut)
                    outcome = fut.result()
                    outcome.reasons = why
                    if outcome.status == "ran":
                        fp = digest(comps)
                        fingerprints[sid] = fp
                        ran[sid] = True
                        outputs = {
                            p: self.hashes.of(os.path.join(self.lab_dir, p))
                            for p in self.resolved[sid].outputs
                        }
                        try:
                            self.state.record(
                                sid, StepRecord(fp, comps, outputs, time.time(), outcome.seconds, run_id)
                            )
                        except OSError as exc:  # a full disk: nothing more can be kept; stop here
                            del fingerprints[sid], ran[sid]
                            outcome = StepOutcome(
                                sid,
                                "failed",
                                seconds=outcome.seconds,
                                log=outcome.log,
                                error=f"it ran, but its record could not be written ({os_error(exc)}); "
                                "it will run again",
                            )
                            stopped_by = stopped_by or sid
                    elif outcome.status == "failed" and not options.keep_going and stopped_by is None:
                        stopped_by = sid
                    settle(sid, outcome)
            assert len(settled) == len(order), "every selected step settles"
        except KeyboardInterrupt:
            interrupted = True
            pool.close(kill=True)  # ends the running steps; their threads return at once
            for sid in attempted:  # running, or (with -j 1) being run from this very thread
                if sid not in settled:
                    settled[sid] = StepOutcome(sid, "failed", started_for[sid], error="interrupted")
            raise
        finally:
            threads.shutdown(wait=True, cancel_futures=True)
            if not interrupted and warm is None:
                pool.release()  # the workers exit while the state is saved
            try:
                self.state.settle()
                self.state.hashes = self.hashes.cache
                if self.hashes.changed:
                    self.state.save_hashes()
            except OSError as exc:  # the journal still holds every step recorded
                reporter.note(
                    f"state: could not be saved ({os_error(exc)}); the journal keeps what completed"
                )
            if warm is None or interrupted:
                pool.close(kill=interrupted)
                machine.close()
            if execute_is_real and (interrupted or attempted):
                try:
                    self._record(
                        run_id,
                        started,
                        [settled[sid] for sid in order if sid in settled],
                        attempted,
                        interrupted,
                        git,
                        reporter.note,
                    )
                    recorded = True
                except OSError as exc:  # the run itself is complete and saved; only its record is not
                    reporter.note(f"history: this run is not recorded ({os_error(exc)})")
        lab_order = [sid for sid in self.lab.ids if sid in settled]
        return RunResult(run_id, [settled[sid] for sid in lab_order], interrupted, recorded)

    def _record(
        self,
        run_id: str,
        started: float,
        outcomes: list[StepOutcome],
        attempted: Mapping[str, dict[str, Any]],
        interrupted: bool,
        git: Any,
        note: Callable[[str], None],
    ) -> None:
        """Append this run to the experiment history (see :mod:`agilab_dsl.record.history`);
        ``note`` hears of a record left pending when it is written here and now."""
        import hashlib

        from ..record import history

        rows = []
        root = str(self.lab_dir)
        for o in outcomes:
            rec = self.state.steps.get(o.id) if o.status in ("ran", "fresh") else None
            if o.status == "fresh" and rec is not None:
                # a reference: the flusher copies its details from the run it last ran in
                rows.append(history.StepRow(o.id, "fresh", fingerprint=rec.fingerprint, ran_in=rec.run_id))
                continue
            step = self.resolved[o.id]
            comps = rec.components if rec is not None else attempted.get(o.id)
            stage = stage_result(o.returned)
            spread = (stage or {}).get("partition_seconds") or {}
            rows.append(
                history.StepRow(
                    o.id,
                    o.status,
                    list(o.reasons),
                    fingerprint=rec.fingerprint if rec is not None else (digest(comps) if comps else None),
                    code=(comps or {}).get("code"),
                    backend=(stage or {}).get("backend"),
                    workers=(stage or {}).get("workers"),
                    partitions=(stage or {}).get("partitions"),
                    partition_seconds_min=spread.get("min"),
                    partition_seconds_median=spread.get("median"),
                    partition_seconds_max=spread.get("max"),
                    output_bytes=(stage or {}).get("output_bytes"),
                    duration=round(o.seconds, 6) if o.status in ("ran", "failed") else None,
                    attempts=o.attempts or None,
                    params=step.params,
                    settings=step.settings_used,
                    metrics=history.metrics_of(o.returned) if stage is None else {},
                    inputs=[{"path": p, "hash": h} for p, h in ((comps or {}).get("inputs") or {}).items()],
                    outputs=[
                        {"path": p, "hash": h, "size": history.size_of(os.path.join(root, p))}
                        for p, h in (rec.outputs if rec is not None else {}).items()
                    ],
                    error=_error_text(o),
                )
            )
        failed = any(o.status in ("failed", "blocked") for o in outcomes)
        commit, dirty = git.result() if git is not None else (None, None)
        lab = Path(self.lab.path).resolve()
        try:
            lab_hash = hashlib.sha256(lab.read_bytes()).hexdigest()
        except OSError:
            lab_hash = ""
        modules = getattr(self.lab, "module_keys", ())
        history.record(
            self.lab_dir,
            history.RunRecord(
                run_id,
                started,
                time.time(),
                "interrupted" if interrupted else ("failed" if failed else "ok"),
                str(lab),
                lab_hash,
                modules[0] if modules else self.lab_dir.name,
                commit,
                dirty,
                rows,
            ),
            note=note,
        )

    def _decide(
        self,
        sid: str,
        ups: Iterable[str],
        settled: Mapping[str, StepOutcome],
        fingerprints: dict[str, str],
        ran: Mapping[str, bool],
        options: RunOptions,
        stopped_by: str | None,
    ) -> tuple[StepOutcome | None, dict[str, Any] | None, list[str]]:
        """An outcome decided without running (disabled, skipped, blocked, fresh), or the components
        and reasons of a step that must run."""
        step = self.resolved[sid]
        bad = [u for u in sorted(ups) if settled[u].status in ("failed", "blocked")]
        if bad:
            return StepOutcome(sid, "blocked", [f"upstream {bad[0]} {settled[bad[0]].status}"]), None, []
        if stopped_by is not None:
            return StepOutcome(sid, "blocked", [_stopped(stopped_by)]), None, []
        if step.problem:
            return StepOutcome(sid, "failed", [], error=f"cannot resolve the step: {step.problem}"), None, []
        status, comps = self._judge(sid, fingerprints, ran, options.force)
        if status.state == "disabled":
            return StepOutcome(sid, "disabled", list(status.reasons)), None, []
        if step.when is False:
            return StepOutcome(sid, "skipped", [f"when: {step.placed.stage.when} is false"]), None, []
        if status.state == "fresh":
            return StepOutcome(sid, "fresh", []), None, []
        return None, comps, list(status.reasons)

    def _attempts(
        self,
        step: ResolvedStep,
        run_id: str,
        execute: Callable[[ResolvedStep, str, int], StepOutcome],
        reporter: Reporter,
        why: list[str],
    ) -> StepOutcome:
        # a parallel stage retries its failing partitions, not the whole stage
        tries = 1 if step.contract is not None else step.placed.stage.retries + 1
        outcome = StepOutcome(step.id, "failed")
        for attempt in range(1, tries + 1):
            reporter.step_started(step.id, why, attempt)
            outcome = execute(step, run_id, attempt)
            outcome.attempts = attempt
            if outcome.status == "ran":
                break
        return outcome

    def _execute(
        self, step: ResolvedStep, run_id: str, attempt: int, pool: Any, machine: _Machine
    ) -> StepOutcome:
        stage = step.placed.stage
        run_dir = self.lab_dir / ".agilab" / "runs" / run_id
        suffix = f".{attempt}" if attempt > 1 else ""
        log = run_dir / f"{step.id}{suffix}.log"
        result_file = run_dir / f"{step.id}{suffix}.json"
        for folder in [run_dir, *((self.lab_dir / out).parent for out in step.outputs)]:
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
            served_by = backend or _contract_backend(contract)
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
        missing = [p for p in step.outputs if not (self.lab_dir / p).exists()]
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


class _Done:
    """A finished call, with the interface of a finished ``concurrent.futures.Future``."""

    def __init__(self, value: Any = None, error: Exception | None = None) -> None:
        self._value, self._error = value, error

    def result(self) -> Any:
        if self._error is not None:
            raise self._error
        return self._value


class _Machine:
    """How one run shares this machine and its cluster.

    ``-j N`` divides the cores among N slots: a step's inner thread pools (BLAS, OpenMP, Polars, …)
    and a parallel stage's processes get ``cores // N`` each, so that concurrently running steps
    never assume they own every core. Dask steps use ``--scheduler``, else ``[cluster] scheduler``
    when ``cluster_enabled``, else one LocalCluster started for the run when the first dask step
    needs it and closed after the run.
    """

    def __init__(self, options: RunOptions, settings: Mapping[str, Any], reporter: Reporter) -> None:
        self.share = max(1, self.cores // options.jobs) if options.jobs > 1 else None
        self.backend = options.backend  # --backend: every parallel step's
        cluster = settings.get("cluster") or {}
        given = cluster.get("scheduler") if cluster.get("cluster_enabled") else None
        self.scheduler: str | None = options.scheduler or (str(given) if given else None)
        self.reporter = reporter
        self._local: Any = None
        self._lock = threading.Lock()
        # watch mode: pool and dask stages are served from this process, so that the joblib/loky
        # workers they start stay up between runs (their partitions still run in other processes)
        self.keeps_pools = False
        self._serving = threading.Lock()

    def serve_here(self, request: dict[str, Any], log: Path, result_file: Path) -> dict[str, Any]:
        """Run a contract step in this process (one at a time); its log and result as a worker
        would leave them, and a worker's reply."""
        from ..stages.parallel import serve

        lines: list[str] = []
        started = time.perf_counter()
        with self._serving:
            status, payload = serve(request, lines.append, lines.append)
        if lines:
            log.write_text("\n".join(lines) + "\n", encoding="utf-8")
        if payload is not None:
            result_file.write_text(json.dumps(payload), encoding="utf-8")
        return {"exit": status, "signal": None, "timed_out": False, "seconds": time.perf_counter() - started}

    @functools.cached_property
    def cores(self) -> int:
        from ..stages.backends import available_cores  # only when shared (-j N) or a cluster is started

        return available_cores()

    def thread_env(self) -> dict[str, str]:
        from ..stages.backends import thread_limits

        return thread_limits(self.share or self.cores)

    def scheduler_for(self, backend: str | None) -> str | None:
        if backend != "dask" or self.scheduler:
            return self.scheduler
        with self._lock:
            if self._local is None:
                from ..stages.backends.dask import start_local_cluster

                try:
                    self._local = start_local_cluster(self.share or self.cores, 1)
                except Exception as exc:  # the stage then starts its own and says why it cannot
                    self.reporter.note(f"dask: no LocalCluster for this run ({type(exc).__name__}: {exc})")
                    return None
                self.reporter.note(
                    f"dask: LocalCluster for this run at {self._local.scheduler_address}, "
                    f"dashboard {self._local.dashboard_link}"
                )
        return str(self._local.scheduler_address)

    def close(self) -> None:
        if self._local is not None:
            self._local.close()


class Warm:
    """What watch mode keeps up between runs (AGILAB's service mode): the step workers (forked
    servers, so a re-run does not start an interpreter) and the Dask LocalCluster of dask steps."""

    def __init__(self) -> None:
        self._pool: Any = None
        self._machine: _Machine | None = None

    def pool(self, jobs: int) -> Any:
        from .pool import WorkerPool

        if self._pool is None or self._pool.size != max(1, jobs) or self._pool._closed:
            if self._pool is not None:
                self._pool.close()
            self._pool = WorkerPool(jobs)
        return self._pool

    def machine(self, options: RunOptions, settings: Mapping[str, Any], reporter: Reporter) -> _Machine:
        fresh = _Machine(options, settings, reporter)
        old = self._machine
        if old is not None and (old.share, old.scheduler) == (fresh.share, fresh.scheduler):
            old.reporter, old.backend = reporter, fresh.backend  # its LocalCluster stays up
            return old
        if old is not None:
            old.close()
        fresh.keeps_pools = True
        self._machine = fresh
        return fresh

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
        if self._machine is not None:
            self._machine.close()


def _contract_backend(path: str) -> str | None:
    """A contract's own ``backend`` (read only to know whether the run needs a Dask cluster; the
    step loads and checks the contract itself)."""
    import tomllib

    try:
        with open(path, "rb") as fh:
            backend = tomllib.load(fh).get("backend")
    except (OSError, tomllib.TOMLDecodeError, RecursionError):
        return None
    return backend if isinstance(backend, str) else None


class _Inline:
    """The executor of ``-j 1``: runs what it is given at once. Ctrl-C (KeyboardInterrupt)
    propagates from the running step to the run loop."""

    def submit(self, fn: Callable[..., StepOutcome], *args: Any) -> _Done:
        try:
            return _Done(fn(*args))
        except Exception as exc:  # a bug surfaces from .result(), as with a thread pool
            return _Done(error=exc)

    def wait_first(self, running: list[Any]) -> list[Any]:
        return running

    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        return None


def _threads(jobs: int) -> Any:
    """The executor of ``-j N``: a thread per running step, each waiting on its worker."""
    from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

    class Threads(ThreadPoolExecutor):
        def wait_first(self, running: list[Any]) -> list[Any]:
            return list(wait(running, return_when=FIRST_COMPLETED)[0])

    return Threads(max_workers=jobs)


def _error_text(outcome: StepOutcome) -> str | None:
    """The outcome's error and, from its log, the last line of the traceback (``KeyError: 'x'``)."""
    if outcome.error is None:
        return None
    from ..cli.show import log_tail

    last = next((line.strip() for line in reversed(log_tail(outcome.log, 5)) if line.strip()), "")
    return f"{outcome.error}: {last}" if last and last not in outcome.error else outcome.error


def _existing(log: Path) -> str | None:
    """The step's log, if it printed anything (a silent step leaves none)."""
    return str(log) if log.exists() else None


def _stopped(failed: str) -> str:
    return f"run stopped after {failed} failed (--keep-going runs independent steps)"


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
