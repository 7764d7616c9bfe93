"""``pool``: loky worker processes (``workers`` of them, joblib's process executor), results
streamed in order.

Partitions travel in batches sized from the time the first ones took (about :data:`BATCH_SECONDS`
of work each, and never more than a quarter of what is left per worker, so the last batches are
small and the workers finish together); at most two batches per worker are in flight, and results
are taken in partition order as their batch completes (no polling: joblib's ``Parallel`` sleeps
10 ms whenever the next result is not in, which was a third of the time of 1,000 tiny partitions).

The executor is this module's own (joblib's global reusable one would be taken by a later
``joblib.Parallel`` in this process for one of its own, and break it); the next stage with the same
workers and threads reuses it. A crashed worker fails its batch with TerminatedWorkerError, reported
as the failure of the batch's first partition. A stage that stops early (a failed partition, a
reducer's refusal, a crash) ends the workers still running its partitions, as ``joblib.Parallel``
does; the next stage starts new ones. Each worker's inner thread pools (BLAS, OpenMP, Polars, …)
are limited to ``threads`` so that workers × threads stays within the stage's share of the cores.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from typing import Any

from ..splits import Partition
from . import Done, Failed, PartitionCall, Started

BATCH_SECONDS = 0.05  # of partition work per batch, once the first partitions were timed
IDLE_SECONDS = 300  # a worker left idle this long exits (joblib's default)

_own: dict[str, Any] = {}  # "key": (workers, env), "executor": this process's executor


def executor_for(workers: int, env: dict[str, str]) -> Any:
    """This process's executor for ``workers`` processes with ``env``: the last one when it matches."""
    key = (workers, sorted(env.items()))
    executor = _own.get("executor")
    if executor is not None:
        flags = getattr(executor, "_flags", None)  # a worker killed from outside breaks it
        usable = flags is None or not (flags.broken or flags.shutdown)
        if _own["key"] == key and usable:
            return executor
        del _own["executor"], _own["key"]
        executor.shutdown(wait=True, kill_workers=not usable)
    from joblib.externals.loky import ProcessPoolExecutor

    if "exit" not in _own:  # shut (and dropped) while the interpreter is whole: else loky complains
        import atexit

        atexit.register(shutdown)
        _own["exit"] = True
    _own["key"] = key
    _own["executor"] = ProcessPoolExecutor(max_workers=workers, timeout=IDLE_SECONDS, env=env)
    return _own["executor"]


def run_batch(call: PartitionCall, batch: list[Partition]) -> list[Any]:
    """On a worker: the outcomes of consecutive partitions, in order."""
    return [call(part) for part in batch]


class PoolBackend:
    name = "pool"

    def __init__(self, workers: int, threads: int = 1) -> None:
        self.workers = max(1, workers)
        self.threads = max(1, threads)

    def map(
        self, call: PartitionCall, parts: list[Partition], started: Started = None
    ) -> Iterator[tuple[Partition, Any]]:
        """``started`` hears each partition as its batch is handed to the executor."""
        if not parts:
            return
        import os

        from ..cores import thread_limits

        workers = min(self.workers, len(parts))
        env = thread_limits(self.threads)
        if "ENABLE_IPC" not in os.environ:  # TBB's schedulers coordinate across processes (as joblib sets)
            env["ENABLE_IPC"] = "1"
        executor = executor_for(workers, env)
        flying: deque[tuple[int, int, Any]] = deque()  # (first partition, count, future) in order
        sent = 0
        took = 0.0  # seconds of the partitions timed so far
        timed = 0

        def send() -> None:
            nonlocal sent
            while sent < len(parts) and len(flying) < 2 * workers:
                left = len(parts) - sent
                size = 1
                if timed:
                    ideal = int(BATCH_SECONDS * timed / took) if took > 0 else left
                    size = max(1, min(ideal, left // (4 * workers)))
                batch = parts[sent : sent + size]
                if started is not None:
                    for part in batch:
                        started(part.describe())
                flying.append((sent, size, executor.submit(run_batch, call, batch)))
                sent += size

        finished = broken = False
        try:
            send()
            while flying:
                first, size, future = flying.popleft()
                try:
                    outcomes = future.result()
                except Exception as exc:  # a worker process died: the batch's first partition is named
                    import traceback

                    broken = True
                    part = parts[first]
                    text = f"{type(exc).__name__}: {exc}"
                    yield part, Failed(part.describe(), text, traceback.format_exc())
                    return
                for outcome in outcomes:
                    if isinstance(outcome, Done):
                        took += outcome.seconds
                        timed += 1
                send()  # the next batches go out before these results are reduced
                yield from zip(parts[first : first + size], outcomes, strict=True)
            finished = True
        finally:
            if broken or (not finished and flying):
                for _, _, future in flying:
                    future.cancel()
                # what still runs would write on (spill files, the function's own files): end it; a
                # broken executor is replaced by the next stage
                shutdown(kill=True)

    def close(self) -> None:
        return None


def shutdown(kill: bool = False) -> None:
    """End the loky worker processes this process started, if any (this module's, and joblib's
    reusable executor's, which a partition's own code may have started); ``kill``: without letting
    their running calls finish. A step's process calls it before it exits with ``os._exit`` (which
    skips the interpreter's exit hooks, loky's among them): else its workers would idle on,
    orphaned, for the idle timeout (300 s)."""
    import sys

    own = _own.pop("executor", None)
    _own.pop("key", None)
    if own is not None:
        own.shutdown(wait=True, kill_workers=kill)
    if kill:
        return
    module = sys.modules.get("joblib.externals.loky.reusable_executor")
    executor = getattr(module, "_executor", None)
    if executor is not None:
        executor.shutdown(wait=True)
