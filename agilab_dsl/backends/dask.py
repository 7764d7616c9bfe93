"""``dask``: dask.distributed. The scheduler is the one given (``--scheduler``, or ``[cluster]
scheduler`` when ``cluster_enabled``), else a LocalCluster on 127.0.0.1 started for the stage and
closed after it. The dashboard link is said when the client connects.

Partitions are submitted with ``client.map`` and taken back with ``as_completed`` so the reducer
streams them in partition order. A worker lost mid-stage is dask's business: the scheduler re-runs
its partitions on the workers left (up to ``distributed.scheduler.allowed-failures`` times, after
which the partition fails with ``KilledWorker``, named like any failing partition).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

from ..splits import Partition
from . import BackendUnavailable, Failed, PartitionCall, in_order, thread_limits

CONNECT_TIMEOUT = "10s"


def address(scheduler: str) -> str:
    """AGILAB writes ``127.0.0.1:8786``; dask wants a protocol."""
    return scheduler if "://" in scheduler else f"tcp://{scheduler}"


def start_local_cluster(workers: int, threads: int) -> Any:
    """A LocalCluster of ``workers`` single-threaded processes on 127.0.0.1 (dashboard on a free
    port), each process's inner thread pools limited to ``threads``."""
    import logging

    from distributed import LocalCluster

    return LocalCluster(
        n_workers=max(1, workers),
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address="127.0.0.1:0",
        silence_logs=logging.ERROR,
        env=thread_limits(threads),
    )


def connect(scheduler: str) -> Any:
    from distributed import Client

    try:
        return Client(address(scheduler), timeout=CONNECT_TIMEOUT)
    except (OSError, TimeoutError) as exc:
        raise BackendUnavailable(
            f"no Dask scheduler answers at {scheduler} ({type(exc).__name__}: {exc}); is `dask scheduler` "
            "running there? (a dask stage without --scheduler or [cluster] scheduler starts a LocalCluster)"
        ) from None


class DaskBackend:
    name = "dask"

    def __init__(
        self,
        workers: int,
        threads: int = 1,
        scheduler: str | None = None,
        *,
        resources: dict[str, float] | None = None,
        say: Callable[[str], None] = lambda _: None,
    ) -> None:
        self.cluster: Any = None
        if scheduler:
            self.client = connect(scheduler)
            where = f"scheduler {scheduler}"
        else:
            from distributed import Client

            self.cluster = start_local_cluster(workers, threads)
            self.client = Client(self.cluster)
            where = f"LocalCluster of {max(1, workers)} worker{'s' * (workers > 1)}"
        self.resources = resources
        self.dashboard: str | None = self.client.dashboard_link
        say(f"dask: {where}, dashboard {self.dashboard}")

    def map(self, call: PartitionCall, parts: list[Partition]) -> Iterator[tuple[Partition, Any]]:
        if not parts:
            return
        from distributed import as_completed

        stage = uuid.uuid4().hex[:12]
        keys = [f"partition-{n}-{stage}" for n in range(len(parts))]
        futures = self.client.map(call, parts, key=keys, pure=False, resources=self.resources)
        position = {key: n for n, key in enumerate(keys)}

        def arrivals() -> Iterator[tuple[int, Any]]:
            for future, got in as_completed(futures, with_results=True, raise_errors=False):
                n = position[future.key]
                outcome = got
                if future.status == "error":  # not the function's exception (that is a value): a lost worker
                    _, exc, tb = got
                    import traceback

                    outcome = Failed(
                        parts[n].describe(),
                        f"{type(exc).__name__}: {exc}",
                        "".join(traceback.format_exception(type(exc), exc, tb)),
                    )
                future.release()
                yield n, outcome

        try:
            yield from in_order(parts, arrivals())
        finally:
            self.client.cancel(futures)  # a stage stopped by a failure leaves nothing running

    def close(self) -> None:
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()
