"""Where a parallel stage's partitions run: one small module per backend behind one interface.

A backend maps a :class:`PartitionCall` over partitions and yields ``(partition, outcome)`` in
partition order, as results arrive (so a reducer can stream them); it calls ``started`` (when given)
with each partition's description as the partition starts (``pool``: is handed to a worker process;
``dask``: is submitted), for the stage's progress. An outcome is a value, never a
raised exception: :class:`Failed` carries the partition's description and traceback, so a failure
crosses process and machine boundaries intact.
"""

from __future__ import annotations

import functools
import os
import sys
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from ..splits import Partition

NAMES = ("local", "pool", "dask", "gpu")
T = TypeVar("T")


@dataclass(frozen=True)
class Failed:
    partition: str  # how the partition is named: file, range or params
    error: str  # the exception, one line
    traceback: str
    attempts: int = 1


@dataclass(frozen=True)
class Done:
    value: Any  # what the function returned
    seconds: float  # how long the call took


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

    @property
    def is_path(self) -> bool:
        return self.module.endswith(".py") or "/" in self.module

    def path(self) -> str:
        return self.module if os.path.isabs(self.module) else os.path.join(self.base, self.module)

    def load(self, compiled: bool = False) -> Any:
        """The function. A ``.py`` path is loaded again when its file changed, so a long-lived
        worker (a pool's, a Dask cluster's) never runs an edited function's old code. With
        ``compiled`` (the cython bit), a compiled extension module beside the source is preferred."""
        if self.is_path:
            path = self.path()
            if compiled:
                path = compiled_twin(path) or path
            try:
                st = os.stat(path)
            except OSError as exc:
                raise ImportError(f"cannot load {path}: {exc.strerror}") from None
            return _load_path(path, self.name, st.st_mtime_ns, st.st_size)
        return _load_module(self.module, self.name, self.base, _stamp(_origin(self.module, self.base)))


def compiled_twin(source: str) -> str | None:
    """The compiled extension module built from ``source`` (``x.py`` → ``x.cpython-311-….so``)."""
    import importlib.machinery

    stem = source[:-3] if source.endswith(".py") else source
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        if os.path.exists(stem + suffix):
            return stem + suffix
    return None


def _function(mod: Any, where: str, name: str) -> Any:
    fn = getattr(mod, name, None)
    if not callable(fn):
        raise AttributeError(f"{where} has no function {name!r}")
    return fn


@functools.lru_cache(maxsize=64)
def _load_path(path: str, name: str, mtime_ns: int, size: int) -> Any:
    import importlib.machinery
    import importlib.util

    stem = os.path.basename(path).split(".", 1)[0]
    if path.endswith(".py"):
        spec = importlib.util.spec_from_file_location(f"agilab_stage_{stem}_{abs(hash(path))}", path)
    else:  # a compiled extension: its init function fixes the module's name
        loader = importlib.machinery.ExtensionFileLoader(stem, path)
        spec = importlib.util.spec_from_file_location(stem, path, loader=loader)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return _function(mod, path, name)


@functools.cache
def _origin(module: str, base: str) -> str | None:
    """The file a dotted module is loaded from (looked up once)."""
    import importlib.util

    if base not in sys.path:
        sys.path.insert(0, base)
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    return spec.origin if spec is not None and spec.has_location else None


def _stamp(path: str | None) -> tuple[int, int]:
    try:
        st = os.stat(path) if path else None
    except OSError:
        return (0, 0)
    return (st.st_mtime_ns, st.st_size) if st else (0, 0)


_stamps: dict[str, tuple[int, int]] = {}  # module -> (mtime_ns, size) it was loaded at


@functools.lru_cache(maxsize=64)
def _load_module(module: str, name: str, base: str, stamp: tuple[int, int]) -> Any:
    """A dotted module's function; the module is reloaded when its file changed since it was
    loaded (a long-lived pool or Dask worker never runs an edited function's old code)."""
    import importlib

    if base not in sys.path:
        sys.path.insert(0, base)
    mod = importlib.import_module(module)
    if _stamps.get(module, stamp) != stamp:
        mod = importlib.reload(mod)
    _stamps[module] = stamp
    return _function(mod, module, name)


def where_loaded(fn: Any) -> str:
    """The file a function came from, for saying whether a compiled module ran."""
    mod = sys.modules.get(getattr(fn, "__module__", "") or "")
    return str(getattr(mod, "__file__", None) or getattr(getattr(fn, "__code__", None), "co_filename", "?"))


@dataclass(frozen=True)
class PartitionCall:
    """What runs on a worker for one partition: the function, how many times a failure is retried,
    the array module a function taking ``xp`` gets (``"cupy"`` or ``"numpy"``: a module cannot
    travel to a worker, its name can), and whether a compiled twin is preferred (cython bit)."""

    function: FunctionRef
    retries: int = 0
    xp: str | None = None
    compiled: bool = False

    def __call__(self, part: Partition) -> Done | Failed:
        last: Failed | None = None
        for attempt in range(1, self.retries + 2):
            started = time.perf_counter()
            try:
                fn = self.function.load(self.compiled)
                if self.xp is not None and takes_xp(fn):
                    import importlib

                    value = fn(part, xp=importlib.import_module(self.xp))
                else:
                    value = fn(part)
                return Done(value, time.perf_counter() - started)
            except Exception as exc:  # the partition's own failure: reported as a value
                last = Failed(
                    part.describe(), f"{type(exc).__name__}: {exc}", traceback.format_exc(), attempt
                )
        assert last is not None
        return last


def takes_xp(fn: Any) -> bool:
    """Whether ``fn`` accepts an ``xp`` keyword (by name, or through ``**kwargs``)."""
    import inspect

    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):  # a builtin or compiled function without a signature
        return False
    return "xp" in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


Started = Callable[[str], None] | None  # hears a partition's description as it starts


class Backend(Protocol):
    name: str

    def map(
        self, call: PartitionCall, parts: list[Partition], started: Started = None
    ) -> Iterator[tuple[Partition, Any]]: ...

    def close(self) -> None: ...


def in_order(parts: list[T], arrivals: Iterable[tuple[int, Any]]) -> Iterator[tuple[T, Any]]:
    """Yield ``(partition, outcome)`` in partition order from ``(position, outcome)`` arriving in
    any order; only results that arrived early are held. (A partition, or a batch of them.)"""
    held: dict[int, Any] = {}
    nxt = 0
    for position, outcome in arrivals:
        held[position] = outcome
        while nxt in held:
            yield parts[nxt], held.pop(nxt)
            nxt += 1


class BackendUnavailable(Exception):
    """The backend a stage asks for cannot run here; the message says what is missing."""


@dataclass(frozen=True)
class Placement:
    """Where a stage may run: ``workers`` processes (already within this stage's share of the
    machine), each allowed ``threads`` inner threads; a Dask scheduler to use instead of a
    LocalCluster; whether a GPU stage may fall back to the CPU."""

    workers: int = 1
    threads: int = 1
    scheduler: str | None = None
    fallback: str | None = None


def get(name: str, where: Placement, say: Callable[[str], None] = lambda _: None) -> Backend:
    """The backend ``name`` for one stage; :class:`BackendUnavailable` says what is missing."""
    if name == "local":
        from .local import LocalBackend

        return LocalBackend()
    if name == "pool":
        from .pool import PoolBackend

        return PoolBackend(where.workers, where.threads)
    if name == "dask":
        from .dask import DaskBackend

        return DaskBackend(where.workers, where.threads, where.scheduler, say=say)
    if name == "gpu":
        from .gpu import gpu_backend

        return gpu_backend(where, say)
    raise BackendUnavailable(f"unknown backend {name!r} (known: {', '.join(NAMES)})")
