"""Where a parallel stage's partitions run: one small module per backend behind one interface.

A backend maps a :class:`PartitionCall` over partitions and yields ``(partition, outcome)`` in
partition order, as results arrive (so a reducer can stream them). An outcome is a value, never a
raised exception: :class:`Failed` carries the partition's description and traceback, so a failure
crosses process and machine boundaries intact.
"""

from __future__ import annotations

import functools
import os
import sys
import traceback
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from ..splits import Partition

NAMES = ("local", "pool", "dask", "gpu")


@dataclass(frozen=True)
class Failed:
    partition: str  # how the partition is named: file, range or params
    error: str  # the exception, one line
    traceback: str
    attempts: int = 1


@dataclass(frozen=True)
class FunctionRef:
    """``module_or_path:function``; a path is relative to ``base`` (the contract's folder)."""

    module: str
    name: str
    base: str

    @classmethod
    def parse(cls, ref: str, base: str) -> FunctionRef:
        module, _, name = ref.rpartition(":")
        return cls(module, name, base)

    def load(self) -> Any:
        return _load(self.module, self.name, self.base)


@functools.cache
def _load(module: str, name: str, base: str) -> Any:
    import importlib
    import importlib.util

    if module.endswith(".py") or "/" in module:
        path = module if os.path.isabs(module) else os.path.join(base, module)
        spec = importlib.util.spec_from_file_location(f"agilab_stage_{abs(hash(path))}", path)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot load {path}")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
    else:
        if base not in sys.path:
            sys.path.insert(0, base)
        mod = importlib.import_module(module)
    fn = getattr(mod, name, None)
    if not callable(fn):
        raise AttributeError(f"{module} has no function {name!r}")
    return fn


@dataclass(frozen=True)
class PartitionCall:
    """What runs on a worker for one partition: the function, its extra keyword arguments (``xp``
    for GPU steps), and how many times a failure is retried."""

    function: FunctionRef
    retries: int = 0
    kwargs: tuple[tuple[str, Any], ...] = ()

    def __call__(self, part: Partition) -> Any:
        last: Failed | None = None
        for attempt in range(1, self.retries + 2):
            try:
                return self.function.load()(part, **dict(self.kwargs))
            except Exception as exc:  # the partition's own failure: reported as a value
                last = Failed(
                    part.describe(), f"{type(exc).__name__}: {exc}", traceback.format_exc(), attempt
                )
        return last


class Backend(Protocol):
    name: str

    def map(self, call: PartitionCall, parts: list[Partition]) -> Iterator[tuple[Partition, Any]]: ...

    def close(self) -> None: ...


def in_order(parts: list[Partition], arrivals: Iterable[tuple[int, Any]]) -> Iterator[tuple[Partition, Any]]:
    """Yield ``(partition, outcome)`` in partition order from ``(position, outcome)`` arriving in
    any order; only results that arrived early are held."""
    held: dict[int, Any] = {}
    nxt = 0
    for position, outcome in arrivals:
        held[position] = outcome
        while nxt in held:
            yield parts[nxt], held.pop(nxt)
            nxt += 1


class BackendUnavailable(Exception):
    """The backend a stage asks for cannot run here; the message says what is missing."""


def get(name: str, workers: int) -> Backend:
    if name == "local":
        from .local import LocalBackend

        return LocalBackend()
    if name == "pool":
        from .pool import PoolBackend

        return PoolBackend(workers)
    raise BackendUnavailable(f"backend {name!r} is not available in this version (available: local, pool)")
