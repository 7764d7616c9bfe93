"""The run loop's executor for ``-j N`` (N > 1): no thread per step.

The loop's own thread sends each step's request to one of N step workers and waits for the replies
of all of them at once (``poll`` on their pipes). Like ``-j 1`` with its one worker, a worker whose
steps are short is sent the next step's request before its reply, so that it goes on at once instead
of waiting for the loop to record the step that ended; the loop may then hand over up to one step
more per such worker than ``-j``. Without ``--keep-going`` such a request carries
``unless_failed``: its worker does not run it if the step before it there failed, nor once the loop
has sent it the halt notice that another worker's step failed (the run stops there, as it would
have). A step whose interpreter is another one runs as before, in a thread of its own.

Only short steps get a request queued behind them, as the worker cannot give one back: a step that
turned out long would keep it waiting while another worker idles. "Short" is judged as it goes:
the run's steps so far took less than :data:`AHEAD_BELOW` seconds (a moving average), and the one
running has not run for longer. So a lab of long steps runs as with one request per worker, and a
long step among short ones delays at most the one step queued behind it.

``-j N`` is a ceiling. Every step costs the loop's own thread some CPU (judging what it read,
recording it, reporting it); when the steps take not much longer than that, one worker fed ahead
already keeps the loop busy, and more workers only compete with it for the cores (cold runs of
10,000 tiny steps on two cores: ``-j 2`` took 24-26 s where ``-j 1`` took 20-22 s). How many
workers are kept busy is measured, not guessed (:class:`Width`): while the steps are short next to
the loop's CPU per step, the run's step rate with all N workers and with one are compared over short
windows (a trial of the other width between two of the kept one), the wider kept only while it is
clearly faster, and the comparison repeated ever more rarely, so that a lab whose steps change
gets its workers back.
"""

from __future__ import annotations

import json
import os
import select
import time
from collections import deque

from .executors import Done
from .outcome import StepOutcome
from .pool import WorkerDied
from .worker import HALT

TYPE_CHECKING = False  # typing is not imported at run time: ~2 ms of every run's start-up
if TYPE_CHECKING:  # pragma: no cover
    from collections.abc import Callable
    from typing import Any

    from ..plan.resolve import ResolvedStep
    from .machine import Machine
    from .pool import Worker, WorkerPool
    from .steps import StepExecutor

AHEAD_BELOW = 0.05  # seconds: a worker gets a second request only while steps take less than this
WINDOW = 0.25  # seconds (and WINDOW_REPLIES replies, at least) over which a step rate is measured
WINDOW_REPLIES = 20
SHORT = 8  # steps are short while they take less than this many times the loop's CPU per step
# (and long from twice that on)
CLEARLY = 1.1  # the wider width is kept only while its step rate is this much higher
AGAIN = 2.0  # seconds until the widths are compared again (doubled each time the choice stands)


class Width:
    """How many of ``jobs`` workers to keep busy (see the module's docstring): ``width`` is ``jobs``
    until measured otherwise. :meth:`replied` is told of every reply.

    A trial of the other width is one window between two windows of the kept width; it is compared
    with their mean, so that a step rate drifting during the run (here it rose from ~240 to ~700
    steps a second within one run of 10,000 tiny steps) does not favour the width tried last. One
    worker is kept unless ``jobs`` are clearly faster: ``-j N`` is then never slower than ``-j 1``
    by more than the measuring costs, and more workers are given back only where they pay."""

    def __init__(self, jobs: int, now: float) -> None:
        self.jobs = self.width = jobs
        self._since: float | None = None  # the window's start (None: the next reply starts one)
        self._replies = 0  # in the window
        self._skip = 0  # replies not counted yet after a change of width (steps sent before it)
        self._phase = "kept"  # the window measures the kept width ("kept"), the other ("trial"),
        # or the kept width again after a trial ("after")
        self._before = 0.0  # the kept width's step rate in the window before the trial
        self._tried = 0.0  # and the other width's in the trial
        self._kept = jobs  # the width a trial is measured against
        self._again = AGAIN
        self._next = now + 2 * WINDOW  # when the widths may be compared (not on start-up)
        self._loop = 0.0  # the loop's CPU per reply, a moving average
        self._cpu: float | None = None
        self._long = False  # the steps are long next to the loop's CPU per step

    def replied(self, now: float, cpu: float, typical: float) -> None:
        """A step replied at ``now`` (monotonic) with the loop's process at ``cpu`` seconds of CPU;
        the run's steps take ``typical`` seconds (a moving average)."""
        if self._cpu is not None:
            self._loop = 0.9 * self._loop + 0.1 * (cpu - self._cpu)
        self._cpu = cpu
        # long steps: every worker is worth its core. Steps count as long from twice the threshold
        # on and as short again below it: two workers' steps take longer (they share the cores),
        # and one slow step moves the average, which must not hand back the workers each time
        if self.jobs == 1 or typical >= (SHORT if self._long else 2 * SHORT) * self._loop:
            self.width, self._phase, self._since, self._skip = self.jobs, "kept", None, 0
            self._long = True
            return
        if self._long:  # short again: measured again soon
            self._long, self._next, self._again = False, now + 2 * WINDOW, AGAIN
        if self._skip:
            self._skip -= 1
            return
        if self._since is None:
            self._since, self._replies = now, 0
            return
        self._replies += 1
        elapsed = now - self._since
        if elapsed < WINDOW or self._replies < WINDOW_REPLIES:
            return
        rate, self._since = self._replies / elapsed, None
        if self._phase == "trial":  # back to the kept width, to measure it again
            self._tried = rate
            self._set(self._kept, "after")
        elif self._phase == "after":  # the trial's rate against the kept width's around it
            kept = (self._before + rate) / 2
            wide, narrow = (self._tried, kept) if self._kept == 1 else (kept, self._tried)
            chosen = self.jobs if wide > narrow * CLEARLY else 1
            self._again = AGAIN if chosen != self._kept else self._again * 2
            self._next = now + self._again
            if chosen != self._kept:
                self._set(chosen, "kept")
            else:
                self._phase, self._before = "kept", rate
        else:
            self._before = rate
            if now >= self._next:  # try the other width for a window
                self._kept = self.width
                self._set(1 if self.width == self.jobs else self.jobs, "trial")

    def _set(self, width: int, phase: str) -> None:
        """Keep ``width`` busy from now on, the next window measuring it in ``phase``; the steps
        sent before the change still reply at the width before it: not counted."""
        changed = width != self.width
        self.width, self._phase, self._since = width, phase, None
        self._skip = self.jobs - 1 if changed else 0


class _Attempt:
    """A step's attempt on a worker (sent, or queued there behind another)."""

    __slots__ = ("attempt", "call", "prepared", "run_id", "said", "started", "step", "tries", "why")

    def __init__(self, call: Done, step: ResolvedStep, run_id: str, why: list[str], tries: int) -> None:
        self.call, self.step, self.run_id, self.why, self.tries = call, step, run_id, why, tries
        self.attempt = 1
        self.prepared: Any = None
        self.started = 0.0  # when it started (monotonic), 0 while queued behind another
        self.said = False  # its start reported


class Dispatch:
    """``submit``, ``room``, ``wait_first``, ``halt`` and ``shutdown`` for the run loop."""

    def __init__(
        self,
        steps: StepExecutor,
        pool: WorkerPool,
        machine: Machine,
        jobs: int,
        reporter: Any,
        keep_going: bool,
    ) -> None:
        self._steps, self._pool, self._machine, self._jobs = steps, pool, machine, jobs
        self._reporter, self._keep_going = reporter, keep_going
        self._queues: dict[Worker, deque[_Attempt]] = {}  # each worker's attempts, in order
        self._by_fd: dict[int, Worker] = {}
        self._unread: dict[int, bytes] = {}  # a reply's start, read before its end
        self._poll = select.poll()
        self._finished: list[Done] = []  # calls whose outcome is known, for wait_first
        self._announce: list[_Attempt] = []  # queued attempts that started, said at the next call
        self._held: list[_Attempt] = []  # attempts that ended before their start was said
        self._typical: float | None = None  # the run's step durations, a moving average
        self._width = Width(jobs, time.monotonic())
        self._halted = False
        self._wake_read, self._wake_write = os.pipe()  # a thread's step (another interpreter) ended
        self._poll.register(self._wake_read, select.POLLIN)
        self._threads: Any = None
        self._from_threads: Any = None

    # -- the loop's calls ------------------------------------------------------------------------
    def room(self, running: int) -> bool:
        """Whether the loop may hand over one more step now (``running``: those handed over and
        not finished)."""
        return running < self._width.width or self._ahead() is not None

    def submit(
        self,
        attempts: Callable[..., StepOutcome],
        step: ResolvedStep,
        run_id: str,
        execute: Callable[[ResolvedStep, str, int], StepOutcome],
        reporter: Any,
        why: list[str],
    ) -> Done:
        """Start ``step`` (its attempts; ``attempts(step, run_id, execute, reporter, why)`` in a
        thread for a step under another interpreter)."""
        self._say_started()
        call = Done()
        chosen = self._steps.interpreter(step.id) if self._steps.interpreter is not None else None
        if chosen is not None and not chosen.own and chosen.problem is None:
            self._in_thread(call, attempts, (step, run_id, execute, reporter, why))
            return call
        tries = 1 if step.contract is not None else step.placed.stage.retries + 1
        self._send(_Attempt(call, step, run_id, why, tries))
        return call

    def wait_first(self, running: list[Any]) -> list[Done]:
        """The calls that have finished (at least one: this waits for it)."""
        self._say_started()
        while not self._finished:
            for fd, _ in self._poll.poll():
                if fd == self._wake_read:
                    os.read(fd, 512)
                    while not self._from_threads.empty():
                        self._finished.append(self._from_threads.get())
                elif fd in self._by_fd:
                    self._read(self._by_fd[fd])
        finished, self._finished = self._finished, []
        return finished

    def halt(self) -> None:
        """The run stops at a failure: what is queued behind a running step is not run."""
        self._halted = True
        for worker, queue in self._queues.items():
            if len(queue) > 1:
                try:
                    worker.proc.stdin.write(HALT.decode("ascii") + "\n")
                    worker.proc.stdin.flush()
                except OSError:  # it died: its queue is sent to its successor, which halts it
                    pass

    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        if self._threads is not None:
            self._threads.shutdown(wait=wait, cancel_futures=cancel_futures)
        for worker in self._queues:
            self._pool.give_back(worker)
        self._queues.clear()
        os.close(self._wake_read)
        os.close(self._wake_write)

    # -- sending and reading ---------------------------------------------------------------------
    def _worker(self) -> Worker:
        """An idle worker (one more from the pool while fewer than -j are held) while fewer than the
        width are busy, else the worker that may get a request queued behind its step."""
        if sum(1 for queue in self._queues.values() if queue) < self._width.width:
            for worker, queue in self._queues.items():
                if not queue:
                    return worker
            if len(self._queues) < self._jobs:
                worker = self._pool.take()
                self._hold(worker)
                return worker
        # the loop hands over a step when there is room: behind a short step (or, had it turned long
        # since, behind the worker with the fewest)
        return self._ahead() or min(self._queues, key=lambda worker: len(self._queues[worker]))

    def _ahead(self) -> Worker | None:
        if self._halted or self._typical is None or self._typical >= AHEAD_BELOW:
            return None
        now = time.monotonic()
        for worker, queue in self._queues.items():
            if (
                len(queue) == 1
                and queue[0].attempt == queue[0].tries
                and now - queue[0].started < AHEAD_BELOW
            ):
                return worker
        return None

    def _hold(self, worker: Worker) -> None:
        fd = worker.proc.stdout.fileno()
        self._queues[worker] = deque()
        self._by_fd[fd] = worker
        self._unread[fd] = b""
        self._poll.register(fd, select.POLLIN)

    def _send(self, attempt: _Attempt, worker: Worker | None = None) -> None:
        made = self._steps.prepare(attempt.step, attempt.run_id, attempt.attempt, self._machine)
        if isinstance(made, StepOutcome):  # refused before it runs
            self._start(attempt)
            self._finish(attempt, made)
            return
        attempt.prepared = made
        worker = worker or self._worker()
        queue = self._queues[worker]
        request = made[0]
        if queue and not self._keep_going:
            request = {**request, "unless_failed": True}
        queue.append(attempt)
        if len(queue) == 1:
            self._start(attempt)
        try:
            worker.send(request)
        except WorkerDied as exc:
            self._died(worker, exc)

    def _start(self, attempt: _Attempt) -> None:
        attempt.started = time.monotonic()
        self._say(attempt)

    def _say(self, attempt: _Attempt) -> None:
        attempt.said = True
        chosen = self._steps.interpreter(attempt.step.id) if self._steps.interpreter is not None else None
        self._reporter.step_started(
            attempt.step.id, attempt.why, attempt.attempt, chosen.short() if chosen is not None else None
        )

    def _say_started(self) -> None:
        """Queued attempts that started since: said now, after the loop has said the step before
        (and those that ended meanwhile are handed to the loop now, after their start)."""
        announce, self._announce = self._announce, []
        for attempt in announce:
            if not attempt.said:
                self._say(attempt)
        held, self._held = self._held, []
        self._finished.extend(attempt.call for attempt in held)

    def _read(self, worker: Worker) -> None:
        fd = worker.proc.stdout.fileno()
        try:
            data = os.read(fd, 1 << 16)
        except OSError:
            data = b""
        if not data:
            self._died(worker, WorkerDied(worker.proc.poll()))
            return
        *lines, self._unread[fd] = (self._unread[fd] + data).split(b"\n")
        for line in lines:
            if worker not in self._queues:  # it died meanwhile (a retry sent to it): replaced
                break
            self._replied(worker, json.loads(line))

    def _replied(self, worker: Worker, reply: dict[str, Any]) -> None:
        queue = self._queues[worker]
        attempt = queue.popleft()
        if queue:  # the next one started as this one ended (said at the loop's next call)
            queue[0].started = time.monotonic()
            self._announce.append(queue[0])
        if reply.get("halted"):  # it never started: nor is it said to have
            attempt.said = True
            self._finish(attempt, StepOutcome(attempt.step.id, "blocked"))
            return
        seconds = float(reply.get("seconds", 0.0))
        self._typical = seconds if self._typical is None else 0.8 * self._typical + 0.2 * seconds
        self._width.replied(time.monotonic(), time.process_time(), self._typical)
        outcome = self._steps.outcome(attempt.step, reply, attempt.prepared)
        self._retry_or_finish(attempt, outcome)

    def _retry_or_finish(self, attempt: _Attempt, outcome: StepOutcome) -> None:
        if outcome.status != "ran" and attempt.attempt < attempt.tries:
            attempt.attempt += 1
            self._send(attempt)
            return
        self._finish(attempt, outcome)

    def _finish(self, attempt: _Attempt, outcome: StepOutcome) -> None:
        outcome.attempts = attempt.attempt
        attempt.call._value = outcome
        if attempt.said:
            self._finished.append(attempt.call)
        else:
            self._held.append(attempt)

    def _died(self, worker: Worker, exc: WorkerDied) -> None:
        """A worker died: its running attempt failed; what was queued behind goes to its successor."""
        fd = worker.proc.stdout.fileno()
        self._poll.unregister(fd)
        del self._by_fd[fd], self._unread[fd]
        queue = self._queues.pop(worker)
        successor = self._pool.replace(worker)
        if successor is not worker:
            self._hold(successor)
        if queue:
            running = queue.popleft()
            self._retry_or_finish(running, self._steps.died(running.step, running.prepared, exc))
        for queued in queue:  # in their order, on the worker that takes the dead one's place
            if successor is worker:  # the pool is closing
                self._finish(queued, StepOutcome(queued.step.id, "failed", error=str(exc)))
            else:
                self._send(queued, successor)

    def _in_thread(self, call: Done, attempts: Callable[..., StepOutcome], args: tuple[Any, ...]) -> None:
        if self._threads is None:
            import queue
            from concurrent.futures import ThreadPoolExecutor

            self._threads = ThreadPoolExecutor(max_workers=self._jobs)
            self._from_threads = queue.SimpleQueue()

        def run() -> None:
            try:
                call._value = attempts(*args)
            except BaseException as exc:  # re-raised by .result(), as with a thread pool
                call._error = exc
            self._from_threads.put(call)
            os.write(self._wake_write, b"\0")

        self._threads.submit(run)
