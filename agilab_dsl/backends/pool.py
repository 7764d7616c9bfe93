"""``pool``: joblib with loky worker processes (``workers`` of them), results streamed in order.

joblib's loky backend reuses its process pool across calls and survives a crashed worker (the
partition's call then fails with TerminatedWorkerError, reported as that partition's failure).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ..splits import Partition
from . import Failed, PartitionCall


class PoolBackend:
    name = "pool"

    def __init__(self, workers: int) -> None:
        self.workers = max(1, workers)

    def map(self, call: PartitionCall, parts: list[Partition]) -> Iterator[tuple[Partition, Any]]:
        if not parts:
            return
        from joblib import Parallel, delayed

        parallel = Parallel(n_jobs=min(self.workers, len(parts)), backend="loky", return_as="generator")
        results = parallel(delayed(call)(p) for p in parts)
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
