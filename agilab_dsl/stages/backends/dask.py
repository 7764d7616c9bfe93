"""``dask``: dask.distributed. The scheduler is the one given (``--scheduler``, or ``[cluster]
scheduler`` when ``cluster_enabled``), else a LocalCluster on 127.0.0.1 started for the stage and
closed after it. The dashboard link is said when the client connects.

Partitions are submitted with ``client.map`` (consecutive partitions batched into one task) and
gathered back in partition order a few tasks at a time, so the reducer streams them. A worker lost
mid-stage is dask's business: the scheduler re-runs its partitions on the workers left (up to
``distributed.scheduler.allowed-failures`` times, after which they fail with ``KilledWorker``,
named like any failing partition).
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from ..splits import Partition
from . import BackendUnavailable, Failed, PartitionCall, thread_limits

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
    except (TypeError, ValueError) as exc:  # distributed's word for a tls:// address with no TLS set up
        if not address(scheduler).startswith("tls://"):
            raise
        raise BackendUnavailable(
            f"the scheduler at {scheduler} speaks TLS, and Dask's TLS settings are missing or unusable "
            f"({exc}); set distributed.comm.tls.ca-file, .client.cert and .client.key in Dask's "
            "configuration (~/.config/dask/distributed.yaml, or DASK_DISTRIBUTED__COMM__TLS__CA_FILE, "
            "…__CLIENT__CERT, …__CLIENT__KEY)"
        ) from None
    except (OSError, TimeoutError) as exc:
        raise BackendUnavailable(
            f"no Dask scheduler answers at {scheduler} ({type(exc).__name__}: {exc}); is `dask scheduler` "
            "running there? (a dask stage without --scheduler or [cluster] scheduler starts a LocalCluster)"
        ) from None


def lost(future: Any, batch: list[Partition]) -> list[Failed]:
    """Each partition of a task that could not complete (its workers died), named."""
    import traceback

    try:
        exc, tb = future.exception(), future.traceback()
    except BaseException as cancelled:  # a cancelled task has no exception of its own
        exc, tb = cancelled, None
    text = "".join(traceback.format_exception(type(exc), exc, tb))
    return [Failed(p.describe(), f"{type(exc).__name__}: {exc}", text) for p in batch]


def run_batch(call: PartitionCall, batch: list[Partition]) -> list[Any]:
    """On a worker: the outcomes of consecutive partitions, in order."""
    return [call(part) for part in batch]


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

        # Tiny tasks cost the scheduler more than they do: consecutive partitions travel in batches,
        # about 32 per worker (a batch is one task; its results keep partition order).
        workers = self._workers()  # (an external scheduler is asked once)
        size = max(1, len(parts) // (workers * 32))
        batches = [parts[n : n + size] for n in range(0, len(parts), size)]
        stage = uuid.uuid4().hex[:12]
        keys = [f"partitions-{n * size}-{stage}" for n in range(len(batches))]
        futures = self.client.map(
            functools.partial(run_batch, call), batches, key=keys, pure=False, resources=self.resources
        )
        try:
            # gathered in order, a few tasks at a time: results stream to the reducer, and at most
            # that many tasks' results wait in this process
            step = 4 * workers
            for first in range(0, len(futures), step):
                chunk = futures[first : first + step]
                outcomes = self.client.gather(chunk, errors="skip")
                got = dict(zip([f.key for f in chunk if f.status == "finished"], outcomes, strict=False))
                for n, future in enumerate(chunk, first):
                    done = got[future.key] if future.key in got else lost(future, batches[n])
                    future.release()
                    yield from zip(batches[n], done, strict=True)
        finally:
            self.client.cancel(futures)  # a stage stopped by a failure leaves nothing running

    def _workers(self) -> int:
        if self.cluster is not None:
            return max(1, len(self.cluster.workers))
        return max(1, len(self.client.scheduler_info().get("workers", {})))

    def close(self) -> None:
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()
