"""``pool``: loky worker processes (``workers`` of them, joblib's reusable executor), results
streamed in order.

Partitions travel in batches sized from the time the first ones took (about :data:`BATCH_SECONDS`
of work each, and never more than a quarter of what is left per worker, so the last batches are
small and the workers finish together); at most two batches per worker are in flight, and results
are taken in partition order as their batch completes (no polling: joblib's ``Parallel`` sleeps
10 ms whenever the next result is not in, which was a third of the time of 1,000 tiny partitions).

The executor is reused across stages and survives a crashed worker (the partition's batch then
fails with TerminatedWorkerError, reported as the failure of its first partition). A stage that stops
early (a failed partition, a reducer's refusal) ends the workers still running its partitions, as
``joblib.Parallel`` does. Each worker's inner thread pools (BLAS, OpenMP, Polars, …) are limited to
``threads`` so that workers × threads stays within the stage's share of the cores.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from typing import Any

from ..splits import Partition
from . import Done, Failed, PartitionCall

BATCH_SECONDS = 0.05  # of partition work per batch, once the first partitions were timed
IDLE_SECONDS = 300  # a worker left idle this long exits (joblib's default)


def run_batch(call: PartitionCall, batch: list[Partition]) -> list[Any]:
    """On a worker: the outcomes of consecutive partitions, in order."""
    return [call(part) for part in batch]


class PoolBackend:
    name = "pool"

    def __init__(self, workers: int, threads: int = 1) -> None:
        self.workers = max(1, workers)
        self.threads = max(1, threads)

    def map(self, call: PartitionCall, parts: list[Partition]) -> Iterator[tuple[Partition, Any]]:
        if not parts:
            return
        import os

        from joblib.externals.loky import get_reusable_executor

        from . import thread_limits

        workers = min(self.workers, len(parts))
        env = thread_limits(self.threads)
        if "ENABLE_IPC" not in os.environ:  # TBB's schedulers coordinate across processes (as joblib sets)
            env["ENABLE_IPC"] = "1"
        executor = get_reusable_executor(max_workers=workers, timeout=IDLE_SECONDS, env=env)
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
                flying.append((sent, size, executor.submit(run_batch, call, batch)))
                sent += size

        finished = False
        try:
            send()
            while flying:
                first, size, future = flying.popleft()
                try:
                    outcomes = future.result()
                except Exception as exc:  # a worker process died: the batch's first partition is named
                    import traceback

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
            if not finished and flying:
                for _, _, future in flying:
                    future.cancel()
                # what still runs would write on (spill files, the function's own files): end it
                executor.shutdown(wait=True, kill_workers=True)

    def close(self) -> None:
        return None


def shutdown() -> None:
    """End the loky worker processes this process started, if any. A step's process calls it before
    it exits with ``os._exit`` (which skips the interpreter's exit hooks, loky's among them): else
    its workers would idle on, orphaned, for joblib's idle timeout (300 s)."""
    import sys

    module = sys.modules.get("joblib.externals.loky.reusable_executor")
    executor = getattr(module, "_executor", None)
    if executor is not None:
        executor.shutdown(wait=True)
