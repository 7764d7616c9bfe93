"""What one run shares and what watch mode keeps up between runs: :class:`Machine` divides the cores
among ``-j`` slots and starts the run's Dask LocalCluster when a dask step first needs one;
:class:`Warm` keeps the step workers and that cluster up between the runs of watch mode.
"""

from __future__ import annotations

import functools
import json
import threading
import time
from collections.abc import Mapping
from pathlib import Path

from .outcome import Reporter, RunOptions

TYPE_CHECKING = False  # typing is not imported at run time: ~2 ms of every run's start-up
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any


class Machine:
    """How one run shares this machine and its cluster.

    ``-j N`` divides the cores among N slots: a step's inner thread pools (BLAS, OpenMP, Polars, …)
    and a parallel stage's processes get ``cores // N`` each, so that concurrently running steps
    never assume they own every core. Dask steps use ``--scheduler``, else ``[cluster] scheduler``
    when ``cluster_enabled``, else one LocalCluster started for the run when the first dask step
    needs it and closed after the run.
    """

    def __init__(self, options: RunOptions, settings: Mapping[str, Any], reporter: Reporter) -> None:
        self.share = max(1, self.cores // options.jobs) if options.jobs > 1 else None
        self.backend = options.backend  # --backend: every parallel step's
        cluster = settings.get("cluster") or {}
        given = cluster.get("scheduler") if cluster.get("cluster_enabled") else None
        self.scheduler: str | None = options.scheduler or (str(given) if given else None)
        self.reporter = reporter
        self._local: Any = None
        self._lock = threading.Lock()
        # watch mode: pool and dask stages are served from this process, so that the joblib/loky
        # workers they start stay up between runs (their partitions still run in other processes)
        self.keeps_pools = False
        self._serving = threading.Lock()

    def serve_here(self, request: dict[str, Any], log: Path, result_file: Path) -> dict[str, Any]:
        """Run a contract step in this process (one at a time); its log (written line by line, as a
        worker's is, so that it can be followed) and result as a worker would leave them, and a
        worker's reply."""
        from ..stages.parallel import serve

        started = time.perf_counter()
        with self._serving, _LineLog(log) as say:
            status, payload = serve(request, say, say)
        if payload is not None:
            result_file.write_text(json.dumps(payload), encoding="utf-8")
        return {"exit": status, "signal": None, "timed_out": False, "seconds": time.perf_counter() - started}

    @functools.cached_property
    def cores(self) -> int:
        from ..stages.cores import available_cores  # only when shared (-j N) or a cluster is started

        return available_cores()

    def thread_env(self) -> dict[str, str]:
        from ..stages.cores import thread_limits

        return thread_limits(self.share or self.cores)

    def scheduler_for(self, backend: str | None) -> str | None:
        if backend != "dask" or self.scheduler:
            return self.scheduler
        with self._lock:
            if self._local is None:
                from ..stages.backends.dask import start_local_cluster

                try:
                    self._local = start_local_cluster(self.share or self.cores, 1)
                except Exception as exc:  # the stage then starts its own and says why it cannot
                    self.reporter.note(f"dask: no LocalCluster for this run ({type(exc).__name__}: {exc})")
                    return None
                self.reporter.note(
                    f"dask: LocalCluster for this run at {self._local.scheduler_address}, "
                    f"dashboard {self._local.dashboard_link}"
                )
        return str(self._local.scheduler_address)

    def close(self) -> None:
        if self._local is not None:
            self._local.close()


class _LineLog:
    """A step's log written a line at a time, flushed; created with its first line (a stage that
    said nothing leaves no log)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._out: Any = None

    def __enter__(self) -> Any:
        return self.say

    def say(self, text: str) -> None:
        if self._out is None:
            self._out = self.path.open("w", encoding="utf-8")
        self._out.write(text + "\n")
        self._out.flush()

    def __exit__(self, *exc: object) -> None:
        if self._out is not None:
            self._out.close()


class Warm:
    """What watch mode keeps up between runs (AGILAB's service mode): the step workers (forked
    servers, so a re-run does not start an interpreter) and the Dask LocalCluster of dask steps."""

    def __init__(self) -> None:
        self._pool: Any = None
        self._machine: Machine | None = None

    def pool(self, jobs: int) -> Any:
        from .pool import WorkerPool

        if self._pool is None or self._pool.size != max(1, jobs) or self._pool._closed:
            if self._pool is not None:
                self._pool.close()
            self._pool = WorkerPool(jobs)
        return self._pool

    def machine(self, options: RunOptions, settings: Mapping[str, Any], reporter: Reporter) -> Machine:
        fresh = Machine(options, settings, reporter)
        old = self._machine
        if old is not None and (old.share, old.scheduler) == (fresh.share, fresh.scheduler):
            old.reporter, old.backend = reporter, fresh.backend  # its LocalCluster stays up
            return old
        if old is not None:
            old.close()
        fresh.keeps_pools = True
        self._machine = fresh
        return fresh

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
        if self._machine is not None:
            self._machine.close()


def contract_backend(path: str) -> str | None:
    """A contract's own ``backend`` (read only to know whether the run needs a Dask cluster; the
    step loads and checks the contract itself)."""
    import tomllib

    try:
        with open(path, "rb") as fh:
            backend = tomllib.load(fh).get("backend")
    except (OSError, tomllib.TOMLDecodeError, RecursionError):
        return None
    return backend if isinstance(backend, str) else None
