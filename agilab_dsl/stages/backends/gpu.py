"""``gpu``: CuPy. A function that accepts ``xp`` gets ``cupy``; each partition runs on one device at
a time — device ids are handed out from a queue and returned when the partition ends, so two
partitions never share a device. With a Dask scheduler, partitions ask for worker resource
``GPU=1`` (start workers with ``--resources GPU=1``, one per device).

Without CuPy or a CUDA device (or, on Dask, without a worker offering ``GPU``) the stage fails with
a message saying what is missing — unless the step says ``fallback = "cpu"``: then it runs on the
CPU (``pool``, or the same Dask cluster) and ``xp`` is ``numpy``.
"""

from __future__ import annotations

import dataclasses
import queue
from collections.abc import Callable, Iterator
from typing import Any

from ..splits import Partition
from . import Backend, BackendUnavailable, PartitionCall, Placement, Started, in_order


def missing() -> str | None:
    """What this machine lacks for CuPy work, or None."""
    try:
        import cupy
    except ImportError as exc:
        return f"CuPy is not installed ({exc}); install it with `pip install 'agilab-dsl[gpu]'`"
    try:
        count = int(cupy.cuda.runtime.getDeviceCount())
    except Exception as exc:  # CUDARuntimeError: no driver, no device
        return f"no CUDA device is usable ({type(exc).__name__}: {exc})"
    return None if count > 0 else "no CUDA device is present"


def device_ids() -> list[int]:
    import cupy

    return list(range(int(cupy.cuda.runtime.getDeviceCount())))


class DeviceBackend:
    """Partitions on this machine's CUDA devices, one partition per device at a time."""

    name = "gpu"

    def __init__(self, devices: list[int]) -> None:
        self.devices = devices

    def map(
        self, call: PartitionCall, parts: list[Partition], started: Started = None
    ) -> Iterator[tuple[Partition, Any]]:
        if not parts:
            return
        from concurrent.futures import ThreadPoolExecutor, as_completed

        import cupy

        free: queue.SimpleQueue[int] = queue.SimpleQueue()
        for device in self.devices:
            free.put(device)

        def on_a_device(part: Partition) -> Any:
            device = free.get()  # blocks until a device is free
            if started is not None:
                started(part.describe())
            try:
                with cupy.cuda.Device(device):
                    outcome = call(part)
                    cupy.cuda.Device(device).synchronize()
                    return outcome
            finally:
                free.put(device)

        with ThreadPoolExecutor(max_workers=len(self.devices), thread_name_prefix="gpu") as threads:
            futures = {threads.submit(on_a_device, p): n for n, p in enumerate(parts)}
            try:
                yield from in_order(parts, ((futures[f], f.result()) for f in as_completed(futures)))
            finally:
                for f in futures:
                    f.cancel()

    def close(self) -> None:
        return None


class WithArrays:
    """Another backend whose calls give ``xp`` (``cupy`` or ``numpy``) to functions that take it."""

    def __init__(self, inner: Backend, xp: str, name: str) -> None:
        self.inner = inner
        self.xp = xp
        self.name = name

    def map(
        self, call: PartitionCall, parts: list[Partition], started: Started = None
    ) -> Iterator[tuple[Partition, Any]]:
        return self.inner.map(dataclasses.replace(call, xp=self.xp), parts, started)

    def close(self) -> None:
        self.inner.close()


def _dask_gpus(client: Any) -> int:
    workers = client.scheduler_info().get("workers", {})
    return sum(1 for w in workers.values() if (w.get("resources") or {}).get("GPU", 0) >= 1)


def gpu_backend(where: Placement, say: Callable[[str], None]) -> Backend:
    """The ``gpu`` backend for ``where``, its CPU fallback, or :class:`BackendUnavailable`."""
    fallback = where.fallback == "cpu"
    if where.scheduler:
        from .dask import DaskBackend

        dask = DaskBackend(where.workers, where.threads, where.scheduler, resources={"GPU": 1}, say=say)
        if _dask_gpus(dask.client):
            return WithArrays(dask, "cupy", "gpu")
        lacking = f"no worker of the Dask scheduler {where.scheduler} offers resource GPU (start them with `dask worker … --resources GPU=1`)"
        if not fallback:
            dask.close()
            raise BackendUnavailable(
                f"backend 'gpu': {lacking}; a step may set fallback = \"cpu\" to run on the CPU instead"
            )
        say(f'gpu: {lacking}; fallback = "cpu": running on its CPU workers with numpy')
        dask.resources = None
        return WithArrays(dask, "numpy", "dask (gpu fallback)")
    problem = missing()
    if problem is None:
        devices = device_ids()
        say(f"gpu: {len(devices)} CUDA device{'s' * (len(devices) > 1)}, one partition per device at a time")
        return WithArrays(DeviceBackend(devices), "cupy", "gpu")
    if not fallback:
        raise BackendUnavailable(
            f"backend 'gpu': {problem}; a step may set fallback = \"cpu\" to run on the CPU instead"
        )
    from .pool import PoolBackend

    say(f'gpu: {problem}; fallback = "cpu": running on pool with numpy')
    return WithArrays(PoolBackend(where.workers, where.threads), "numpy", "pool (gpu fallback)")
