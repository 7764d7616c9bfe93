"""``pool``: joblib with loky worker processes (``workers`` of them), results streamed in order.

joblib's loky backend reuses its process pool across calls and survives a crashed worker (the
partition's call then fails with TerminatedWorkerError, reported as that partition's failure).
Each worker's inner thread pools (BLAS, OpenMP, …) are limited to ``threads`` so that
workers × threads stays within the stage's share of the cores.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ..splits import Partition
from . import Failed, PartitionCall, Started


class PoolBackend:
    name = "pool"

    def __init__(self, workers: int, threads: int = 1) -> None:
        self.workers = max(1, workers)
        self.threads = max(1, threads)

    def map(
        self, call: PartitionCall, parts: list[Partition], started: Started = None
    ) -> Iterator[tuple[Partition, Any]]:
        if not parts:
            return
        import os

        from joblib import Parallel, delayed, parallel_config

        from . import thread_limits

        # joblib limits BLAS/OpenMP/numexpr in its workers; the pools it does not know of (Polars,
        # Rayon) are limited by what the workers inherit
        for name, value in thread_limits(self.threads).items():
            os.environ.setdefault(name, value)
        with parallel_config(backend="loky", inner_max_num_threads=self.threads):
            parallel = Parallel(n_jobs=min(self.workers, len(parts)), return_as="generator")

        def dispatched() -> Iterator[Any]:  # joblib takes each call as it hands it to a worker
            for p in parts:
                if started is not None:
                    started(p.describe())
                yield delayed(call)(p)

        results = parallel(dispatched())
        position = 0
        try:
            for outcome in results:
                yield parts[position], outcome
                position += 1
        except Exception as exc:  # a worker process died: the partition it ran is named
            import traceback

            yield (
                parts[position],
                Failed(parts[position].describe(), f"{type(exc).__name__}: {exc}", traceback.format_exc()),
            )

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
