"""Run a lab: one scheduling loop over the step graph, steps executed by forked workers.

The loop (as in kedro's runner) takes every step whose upstream steps are settled, decides what
it is — disabled, skipped by ``when``, blocked by a failure, fresh, or to run and why — and hands
the ones to run to a pool of ``-j`` workers, waiting for the first to finish. State is saved after
every step that succeeds, so an interrupted run loses nothing that completed. Outcomes are values
(:class:`~.outcome.StepOutcome`) sent to a reporter; nothing here prints. How one step is executed
is in :mod:`.steps`, how a step is judged (and ``status`` answered) in :mod:`.statuses`, what a run
shares of the machine in :mod:`.machine`, and the run's entry in the experiment history in
:mod:`.recording`.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from ..load.errors import os_error
from ..plan.fingerprint import FileHashes
from ..plan.graph import StepGraph
from ..plan.interpreter import Chooser, Interpreter, InterpreterOptions
from ..plan.longlived import long_lived
from ..plan.resolve import ResolvedStep
from ..plan.spec import LabSpec
from ..plan.stale import StepStatus
from ..plan.state import LabState, StepRecord, new_run_id
from .agilab_env import AgilabOptions, step_context
from .events import EventHub, RunStream
from .executors import executor
from .follow import follow
from .machine import Machine, Warm
from .outcome import (
    Reporter,
    RunOptions,
    RunResult,
    SilentReporter,
    StepOutcome,
    not_run,
)
from .recording import record_run, remember_failures
from .rendered import Rendered
from .reuse import Known
from .statuses import StepJudge
from .steps import StepExecutor

# a pass that judges this many ready steps or more runs with the collector off, and what it built
# (what the run keeps of every step settled) is frozen (plan.longlived): at 100,000 steps after one
# change, the full collections it set off took ~0.4 s of the run
MANY = 1000

TYPE_CHECKING = False  # typing is not imported at run time: ~2 ms of every run's start-up
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any

    from .pool import Worker


class Runner(StepJudge):
    """Runs (or, for ``status``/``--dry-run``, judges) the steps of one lab."""

    def __init__(
        self,
        lab: LabSpec,
        settings: Mapping[str, Any],
        state: LabState,
        graph: StepGraph,
        *,
        environ: Mapping[str, str] | None = None,
        agilab: AgilabOptions | None = None,
        interpreters: InterpreterOptions | None = None,
    ) -> None:
        self.lab = lab
        self.lab_dir = Path(lab.path).resolve().parent
        self.settings = settings
        self.state = state
        self.full_graph = graph
        self.hashes = FileHashes(state.hashes)
        self.environ = dict(os.environ if environ is None else environ)
        self.context = step_context(lab, self.lab_dir, agilab or AgilabOptions())  # df, profile
        # each step rendered when first needed (df's input and lab_out.csv added)
        self.resolved = Rendered(
            self.full_graph.order(),
            {s.id: s for s in lab.stages},
            settings,
            self.environ,
            self.context.frames,
        )
        self.chooser = Chooser(self.lab_dir, interpreters, self.environ)  # which Python runs each step
        self.choices: dict[str, Interpreter] = {}
        self.judged_ids: set[str] = set()  # the steps the last run judged (not reused, :mod:`.reuse`)
        self.warnings: list[str] = []  # said once by the caller (an unreadable state file, say)
        self._steps = StepExecutor(
            self.lab_dir, settings, self.context, self.interpreter
        )  # how each step is executed

    # -- preparation -------------------------------------------------------------------------
    def conditional(self) -> list[str]:
        return [s.id for s in self.lab.stages if s.stage.when is not None]

    def jobs(self, options: RunOptions) -> int:
        """``-j``, else the lab's saved ``max_workers`` (``"auto"``: this machine's cores), else 1."""
        if options.jobs:
            return options.jobs
        saved = self.lab.max_workers
        if saved == "auto":
            from ..stages.cores import available_cores

            return available_cores()
        return saved if isinstance(saved, int) and saved > 0 else 1

    # -- running -----------------------------------------------------------------------------
    def run(
        self,
        options: RunOptions,
        reporter: Reporter | None = None,
        run_id: str | None = None,
        execute: Callable[[ResolvedStep, str, int], StepOutcome] | None = None,
        warm: Warm | None = None,
        events: EventHub | None = None,
        known: Known | None = None,
        early: Worker | None = None,
    ) -> RunResult:
        """Run the selected stale steps. ``warm`` (watch mode) keeps the step workers and a Dask
        LocalCluster up between runs: this run neither starts nor ends them. Its events go to the
        run's ``events.jsonl`` and to ``events`` (a caller's hub). ``known``: a stored judgment that
        holds but for some steps' files; only those steps and what is downstream are judged.
        ``early``: a step worker the caller started while the lab loaded; the run's pool takes it
        (and closes it with its other workers)."""
        run_id = run_id or new_run_id()
        if not options.jobs:
            options = options.replace(jobs=self.jobs(options))
        stream = RunStream(self.lab_dir, run_id, str(self.lab.path), options.jobs, events)
        reporter = stream.reporter(reporter or SilentReporter())
        reporter, unfollow = follow(  # live output, and a parallel stage's progress
            reporter,
            self.lab_dir / ".agilab" / "runs" / run_id,
            progress=lambda sid: self.resolved[sid].contract is not None,
        )
        machine = (
            warm.machine(options, self.settings, reporter)
            if warm
            else Machine(options, self.settings, reporter)
        )
        started = time.time()
        attempted: dict[str, dict[str, Any]] = {}  # what each started step ran with
        started_for: dict[str, list[str]] = {}  # and why it started
        git: Any = None  # `git status`, started with the first step, read when the run is recorded
        graph = self.select(options)
        selected = set(graph.ids)
        reuse = self._reuse(known, options, self.conditional())
        order = [sid for sid in self.full_graph.order() if sid in selected]
        fingerprints = self.state.steps.fingerprints()
        ran: dict[str, bool] = {}
        settled: dict[str, StepOutcome] = {}
        broken: set[str] = set()  # the settled steps that failed or were blocked
        stopped_by: str | None = None
        from .pool import WorkerPool

        pool = warm.pool(options.jobs) if warm else WorkerPool(options.jobs)
        execute_is_real = execute is None  # a test's stand-in executor leaves no history
        if execute is None and order:
            pool.prestart(early)  # its interpreter starts (or started) while the steps are judged
        elif early is not None:
            early.close()
        # -j 1: the next runnable step is sent to the worker while one runs, so that the worker goes
        # on to it without waiting for this loop to record the one that ended and send the next
        # (not in watch mode, whose warm workers outlive the run). Its worker halts it if the step
        # before failed (and --keep-going is not given), as this loop would.
        pipelined = execute is None and options.jobs == 1 and warm is None

        def ahead() -> dict[str, Any] | None:
            if stopped_by is not None or not runnable:
                return None
            step = self.resolved[runnable[0][0]]
            return self._steps.send_ahead(step, run_id, machine, halt=not options.keep_going)

        if execute is None:

            def execute(step: ResolvedStep, rid: str, attempt: int) -> StepOutcome:
                # only a step's last attempt sends the next ahead: a failed attempt it retries
                # must not halt the next step
                last = step.contract is not None or attempt > step.placed.stage.retries
                later = ahead if pipelined and last else None
                return self._steps.execute(step, rid, attempt, pool, machine, later)

        interrupted = recorded = False
        running: dict[Any, tuple[str, StepStatus, list[str]]] = {}  # future -> (id, judged, why)
        # -j 1 runs each step from this thread: no hand-off to a thread and back per step (and no
        # import of concurrent.futures); -j N sends requests and reads replies from it (dispatch.py)
        if execute_is_real and options.jobs > 1 and warm is None:
            from .dispatch import Dispatch

            threads: Any = Dispatch(self._steps, pool, machine, options.jobs, reporter, options.keep_going)
        else:
            threads = executor(options.jobs)
        try:
            # Kahn's algorithm: a step is ready when its last selected upstream step settles.
            rank = {sid: n for n, sid in enumerate(order)}
            upstream, downstream = self.full_graph.upstream, self.full_graph.downstream
            whole = len(selected) == len(self.full_graph.ids)  # all selected: nothing to intersect with
            waiting = {sid: len(upstream(sid) if whole else upstream(sid) & selected) for sid in order}
            ready = deque(sid for sid in order if waiting[sid] == 0)
            reporter.run_started(run_id, {sid: "waiting" if waiting[sid] else "ready" for sid in order})
            runnable: deque[tuple[str, StepStatus, list[str]]] = deque()  # judged stale, not started

            def settle(sid: str, outcome: StepOutcome) -> None:
                settled[sid] = outcome
                if outcome.status in ("failed", "blocked"):
                    broken.add(sid)
                reporter.step_finished(outcome)
                down = downstream(sid)
                if not down:
                    return
                for nxt in sorted(down if whole else down & selected, key=rank.__getitem__):
                    waiting[nxt] -= 1
                    if waiting[nxt] == 0:
                        ready.append(nxt)

            def judge_ready() -> None:
                while ready:
                    sid = ready.popleft()
                    ups = upstream(sid) if whole else upstream(sid) & selected
                    outcome = reuse.outcome(sid) if reuse is not None and stopped_by is None else None
                    if outcome is None:
                        outcome, judged, why = self._decide(
                            sid, ups, settled, broken, fingerprints, ran, options, stopped_by
                        )
                        if reuse is not None:
                            reuse.judged_as(sid, outcome.status if outcome is not None else None)
                    if outcome is not None:
                        settle(sid, outcome)
                    else:
                        assert judged is not None and judged.components is not None
                        runnable.append((sid, judged, why))
                        reporter.step_queued(sid, why)

            while ready or runnable or running:
                # judge every ready step now (judging does not wait for running steps) ...
                if len(ready) < MANY:
                    judge_ready()
                else:  # what it settles lives as long as the run: not scanned by each collection
                    with long_lived():
                        judge_ready()
                # ... and start at most -j at a time (Dispatch: and one more per worker whose short
                # step it follows)
                while runnable and threads.room(len(running)):
                    sid, judged, why = runnable.popleft()
                    # a step sent ahead of a failure its worker could not see ran: it is collected
                    if stopped_by is not None and not (pipelined and self._steps.ran_ahead(sid, pool)):
                        settle(sid, StepOutcome(sid, "blocked", [_stopped(stopped_by)]))
                        continue
                    if git is None and execute_is_real:
                        from ..record.history import GitProbe

                        git = GitProbe(self.lab_dir)
                    attempted[sid] = judged.components
                    started_for[sid] = why
                    for out in self.resolved[sid].outputs:  # it may rewrite them: looked at again
                        self.hashes.forget(os.path.join(self.lab_dir, out))
                    fut = threads.submit(self._attempts, self.resolved[sid], run_id, execute, reporter, why)
                    running[fut] = (sid, judged, why)
                if not running:
                    continue  # more steps became ready while settling
                done = threads.wait_first(list(running))
                stopped_before = stopped_by
                for fut in done:
                    sid, judged, why = running.pop(fut)
                    outcome = fut.result()
                    if outcome.status == "blocked":  # halted by its worker (-j N): the run had stopped
                        outcome.reasons = [_stopped(stopped_by or sid)]
                        attempted.pop(sid, None)
                        settle(sid, outcome)
                        continue
                    outcome.reasons = why
                    if outcome.status == "ran":
                        comps = judged.components
                        fp = judged.fingerprint  # digest(comps), taken when it was judged
                        fingerprints[sid] = fp
                        ran[sid] = True
                        step = self.resolved[sid]
                        outputs = {p: self.hashes.of(os.path.join(self.lab_dir, p)) for p in step.outputs}
                        # an optional output the run did not write (no frame, a branch not taken) is not kept
                        required = self.context.required_outputs(step)
                        outputs = {p: h for p, h in outputs.items() if h != "missing" or p in required}
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
                if stopped_by is not None and stopped_before is None:
                    threads.halt()  # what is queued behind other workers' steps does not start
            assert len(settled) == len(order), "every selected step settles"
        except KeyboardInterrupt:
            interrupted = True
            pool.close(kill=True)  # ends the running steps; their threads return at once
            self._steps.interrupt()  # and those running under other interpreters
            for sid in attempted:  # running, or (with -j 1) being run from this very thread
                if sid not in settled:
                    settled[sid] = StepOutcome(sid, "failed", started_for[sid], error="interrupted")
            raise
        finally:
            threads.shutdown(wait=True, cancel_futures=True)
            unfollow()
            if not interrupted and warm is None:
                pool.release()  # the workers exit while the state is saved
            try:
                self.state.settle()
                self.state.hashes = self.hashes.cache
                if self.hashes.changed or self.state.hashes_damaged:
                    self.state.save_hashes(self.hashes.updated)
            except OSError as exc:  # the journal still holds every step recorded
                reporter.note(
                    f"state: could not be saved ({os_error(exc)}); the journal keeps what completed"
                )
            if interrupted:
                pool.close(kill=True)
            if warm is None or interrupted:
                machine.close()
            try:
                if execute_is_real and (interrupted or attempted):
                    try:
                        record_run(
                            self.lab,
                            self.lab_dir,
                            self.state,
                            self.resolved,
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
                if execute_is_real:
                    remember_failures(self.lab_dir, run_id, settled.values(), reporter.note)
                lab_order = [sid for sid in self.lab.ids if sid in settled]
                result = RunResult(run_id, [settled[sid] for sid in lab_order], interrupted, recorded)
                reporter.run_finished(result)
                stream.close()
            finally:
                if warm is None and not interrupted:
                    pool.close()  # told to exit above, the workers exited while the run was recorded
        return result

    def _decide(
        self,
        sid: str,
        ups: Iterable[str],
        settled: Mapping[str, StepOutcome],
        broken: set[str],
        fingerprints: dict[str, str],
        ran: Mapping[str, bool],
        options: RunOptions,
        stopped_by: str | None,
    ) -> tuple[StepOutcome | None, StepStatus | None, list[str]]:
        """An outcome decided without running (disabled, skipped, blocked, fresh), or the status
        (components and their digest) and reasons of a step that must run."""
        step = self.resolved[sid]
        bad = sorted(broken.intersection(ups))  # (a step gathering 100,000: not each looked at)
        if bad:
            return StepOutcome(sid, "blocked", [f"upstream {bad[0]} {settled[bad[0]].status}"]), None, []
        if stopped_by is not None:
            return StepOutcome(sid, "blocked", [_stopped(stopped_by)]), None, []
        if step.problem:
            return StepOutcome(sid, "failed", [], error=f"cannot resolve the step: {step.problem}"), None, []
        status = self._judge(sid, fingerprints, ran, options.force, options.all_stages)
        if status.state == "disabled":
            return StepOutcome(sid, not_run(status.reasons), list(status.reasons)), None, []
        if step.when is False:
            return StepOutcome(sid, "skipped", [f"when: {step.placed.stage.when} is false"]), None, []
        if status.state == "fresh":
            return StepOutcome(sid, "fresh", []), None, []
        return None, status, list(status.reasons)

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
            reporter.step_started(step.id, why, attempt, self.interpreter(step.id).short())
            outcome = execute(step, run_id, attempt)
            outcome.attempts = attempt
            if outcome.status == "ran":
                break
        return outcome


def _stopped(failed: str) -> str:
    return f"run stopped after {failed} failed (--keep-going runs independent steps)"
