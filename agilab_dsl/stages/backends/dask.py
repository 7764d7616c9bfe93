"""``dask``: dask.distributed. The scheduler is the one given (``--scheduler``, or ``[cluster]
scheduler`` when ``cluster_enabled``), else a LocalCluster on 127.0.0.1 started for the stage and
closed after it. The dashboard link is said when the client connects. A scheduler given as a host
alone is on AGILAB's port (8780, the first of ``AGILAB_DASK_SCHEDULER_PORT_RANGE``), not Dask's 8786.

Partitions are submitted with ``client.map``, consecutive partitions batched into about
:data:`TASKS_PER_THREAD` tasks per worker thread, and gathered back in partition order a few at a
time, so the reducer streams them. A worker lost mid-stage is dask's business: the scheduler
re-runs its partitions on the workers left (up to ``distributed.scheduler.allowed-failures`` times,
after which they fail with ``KilledWorker``, named like any failing partition).
"""

from __future__ import annotations

import functools
import itertools
import os
import uuid
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from ..cores import thread_limits
from ..splits import Partition
from . import BackendUnavailable, Failed, PartitionCall, Started

CONNECT_TIMEOUT = "10s"


PORT_RANGE = "8780:8790"
"""AGILAB's Dask scheduler ports (``agi_cluster``'s ``DEFAULT_SCHEDULER_PORT_RANGE``): the first is
the port of a scheduler given as a host alone; the others are its fallbacks when that port is busy."""

PORT_RANGE_VARIABLES = ("AGILAB_DASK_SCHEDULER_PORT_RANGE", "DASK_SCHEDULER_PORT_RANGE")


def port_range(environ: Mapping[str, str] | None = None) -> tuple[int, int]:
    """The scheduler port range as AGILAB reads it: ``AGILAB_DASK_SCHEDULER_PORT_RANGE`` (or its
    alias ``DASK_SCHEDULER_PORT_RANGE``), ``"a:b"`` inclusive or one port ``"a"``, else 8780:8790.
    A value that is neither raises :class:`BackendUnavailable`, naming the variable."""
    env = os.environ if environ is None else environ
    name, raw = next(((n, env[n]) for n in PORT_RANGE_VARIABLES if env.get(n, "").strip()), ("", PORT_RANGE))
    parts = raw.strip().split(":")
    try:
        ports = [int(part.strip()) for part in parts]
    except ValueError:
        ports = []
    valid = 0 < len(ports) <= 2 and all(0 < p < 65536 for p in ports) and ports == sorted(ports)
    if not valid:
        raise BackendUnavailable(
            f"{name}={raw!r} is not a Dask scheduler port range: write one port (8780) or an "
            "inclusive range first:last (8780:8790)"
        )
    return ports[0], ports[-1]


def with_port(scheduler: str, environ: Mapping[str, str] | None = None) -> str:
    """The scheduler with its port: a host given alone (``192.168.1.5``, ``host``, ``[::1]``,
    ``tcp://host``) gets AGILAB's port, the first of :func:`port_range` (8780) — not Dask's 8786;
    a ``user@`` before the host is dropped, as AGILAB does. Anything else is kept as written."""
    text = scheduler.strip()
    protocol, sep, rest = text.rpartition("://")
    if sep and protocol not in ("tcp", "tls"):
        return text  # inproc://, ucx://, ws://: Dask's own addresses
    rest = rest.rpartition("@")[2]
    host, slash, tail = rest.partition("/")
    if host.startswith("["):
        if host.endswith("]"):
            host = f"{host}:{port_range(environ)[0]}"
    elif host.count(":") > 1:  # a bare IPv6 address: no port can follow it
        host = f"[{host}]:{port_range(environ)[0]}"
    elif ":" not in host and host:
        host = f"{host}:{port_range(environ)[0]}"
    return f"{protocol}{sep}{host}{slash}{tail}"


def address(scheduler: str, environ: Mapping[str, str] | None = None) -> str:
    """What Dask connects to: :func:`with_port`, with ``tcp://`` when no protocol is written
    (AGILAB writes ``127.0.0.1:8786``; dask wants a protocol)."""
    full = with_port(scheduler, environ)
    return full if "://" in full else f"tcp://{full}"


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
    """A Client of the scheduler at ``scheduler``, or :class:`BackendUnavailable` saying why not.

    The address is judged by its shape first; a ``tcp://`` one is then probed (:func:`probe`): a
    Dask scheduler greets a new connection at once, so a service that stays silent, or says
    something that is not a Dask frame (HTTP, SSH), is named — distributed itself would wait for
    ever on the first, and try to allocate exabytes for the second. Connecting is bounded by
    :data:`CONNECT_TIMEOUT`."""
    from ...load.address import scheduler_problem

    problem = scheduler_problem(scheduler)
    if problem:
        raise BackendUnavailable(problem)
    target = address(scheduler)
    if target.startswith("tcp://"):
        probe(scheduler, target)
    from distributed import Client

    try:
        return Client(target, timeout=CONNECT_TIMEOUT)
    except (TypeError, ValueError) as exc:  # distributed's word for a tls:// address with no TLS set up
        if not target.startswith("tls://"):
            raise BackendUnavailable(f"cannot connect to the scheduler at {scheduler}: {exc}") from None
        raise BackendUnavailable(
            f"the scheduler at {scheduler} speaks TLS, and Dask's TLS settings are missing or unusable "
            f"({exc}); set distributed.comm.tls.ca-file, .client.cert and .client.key in Dask's "
            "configuration (~/.config/dask/distributed.yaml, or DASK_DISTRIBUTED__COMM__TLS__CA_FILE, "
            "…__CLIENT__CERT, …__CLIENT__KEY)"
        ) from None
    except (OSError, TimeoutError) as exc:
        raise _no_answer(scheduler, f"{type(exc).__name__}: {exc}") from None


GREETING_WAIT = 5.0
"""Seconds a probe waits for a scheduler's greeting after the TCP connection is made."""

MAX_GREETING = 1 << 24
"""A Dask greeting is one small frame; a first 8-byte length above this is not Dask speaking."""


def probe(scheduler: str, target: str) -> None:
    """Connect to ``target`` (``tcp://host:port``) and read the 8 bytes a Dask scheduler sends
    first (the length of its handshake frame), within :data:`GREETING_WAIT` seconds; raise
    :class:`BackendUnavailable` naming what answers instead. Nothing is sent."""
    import contextlib
    import socket
    import struct

    host, _, port = target.removeprefix("tcp://").rpartition(":")
    host = host.strip("[]")
    try:
        sock = socket.create_connection((host, int(port)), timeout=GREETING_WAIT)
    except OSError as exc:
        raise _no_answer(scheduler, f"{type(exc).__name__}: {exc.strerror or exc}") from None
    with sock:
        got = _read_some(sock, 8, GREETING_WAIT)
        if not got:  # silent: a request/response service (HTTP) answers a blank request
            with contextlib.suppress(OSError):
                sock.sendall(b"\r\n\r\n")
                got = _read_some(sock, 40, 1.0)
            if got:
                raise BackendUnavailable(
                    f"the service at {with_port(scheduler)} is not a Dask scheduler (it greets no one, "
                    f"and answered {got.decode('ascii', 'replace')!r} to a blank request); give the "
                    "address and port of `dask scheduler`"
                )
    if not got:
        raise _no_answer(
            scheduler,
            f"a service accepts connections there but sent nothing within {GREETING_WAIT:g} s, and a "
            "Dask scheduler greets at once: is it a Dask scheduler?",
        )
    size = struct.unpack("<Q", got)[0] if len(got) == 8 else None
    if size is None or not 0 < size <= MAX_GREETING:
        said = got.decode("ascii", "replace")
        raise BackendUnavailable(
            f"the service at {with_port(scheduler)} is not a Dask scheduler (it answered {said!r}, "
            "not a Dask greeting); give the address and port of `dask scheduler`"
        )


def _read_some(sock: Any, want: int, wait: float) -> bytes:
    """Up to ``want`` bytes from ``sock`` within ``wait`` seconds (fewer when it stops or closes)."""
    import time

    got, deadline = b"", time.monotonic() + wait
    try:
        while len(got) < want and time.monotonic() < deadline:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            chunk = sock.recv(want - len(got))
            if not chunk:
                break
            got += chunk
    except OSError:  # socket.timeout included: it said nothing more
        pass
    return got


def _no_answer(scheduler: str, why: str) -> BackendUnavailable:
    full = with_port(scheduler)
    defaulted = (
        f"; {scheduler!r} names no port, so AGILAB's first scheduler port is used (range "
        f"{':'.join(map(str, port_range()))}, AGILAB_DASK_SCHEDULER_PORT_RANGE): write host:port for another"
        if full != scheduler.strip() and "@" not in scheduler
        else ""
    )
    return BackendUnavailable(
        f"no Dask scheduler answers at {full} ({why}); is `dask scheduler` running there? "
        "(a dask stage without --scheduler or [cluster] scheduler starts a LocalCluster)" + defaulted
    )


def lost(future: Any, batch: list[Partition]) -> list[Failed]:
    """Each partition of a task that could not complete (its workers died), named."""
    import traceback

    try:
        exc, tb = future.exception(), future.traceback()
    except BaseException as cancelled:  # a cancelled task has no exception of its own
        exc, tb = cancelled, None
    text = "".join(traceback.format_exception(type(exc), exc, tb))
    return [Failed(p.describe(), f"{type(exc).__name__}: {exc}", text) for p in batch]


TASKS_PER_THREAD = 4
"""Consecutive partitions travel in batches, one task each, about this many per worker thread: the
scheduler spends a millisecond or so on each task, and a worker idles while the next is sent (64
partitions of 50 ms on 2 workers: 1.72x over ``local`` one task each, 1.87x in 8 batches)."""


def batched(parts: list[Partition], tasks: int) -> list[list[Partition]]:
    """``parts`` in at most ``tasks`` runs of consecutive partitions whose sizes differ by one at
    most (the larger first), so that each worker gets its share whatever the count."""
    count = max(1, min(tasks, len(parts)))
    size, extra = divmod(len(parts), count)
    bounds = list(itertools.accumulate((size + (n < extra) for n in range(count)), initial=0))
    return [parts[a:b] for a, b in itertools.pairwise(bounds)]


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
            where = f"scheduler {with_port(scheduler)}"
        else:
            from distributed import Client

            self.cluster = start_local_cluster(workers, threads)
            self.client = Client(self.cluster)
            where = f"LocalCluster of {max(1, workers)} worker{'s' * (workers > 1)}"
        self.resources = resources
        self.dashboard: str | None = self.client.dashboard_link
        say(f"dask: {where}, dashboard {self.dashboard}")

    def map(
        self, call: PartitionCall, parts: list[Partition], started: Started = None
    ) -> Iterator[tuple[Partition, Any]]:
        if not parts:
            return

        threads = self._threads()  # (an external scheduler is asked once)
        batches = batched(parts, TASKS_PER_THREAD * threads)
        stage = uuid.uuid4().hex[:12]
        firsts = itertools.accumulate((len(b) for b in batches[:-1]), initial=0)
        keys = [f"partitions-{first}-{stage}" for first in firsts]
        futures = self.client.map(
            functools.partial(run_batch, call), batches, key=keys, pure=False, resources=self.resources
        )
        for part in parts if started is not None else ():  # submitted: the scheduler decides when
            started(part.describe())
        try:
            # gathered in order, a few tasks at a time: results stream to the reducer, and at most
            # about 4 partitions' results per thread wait in this process
            step = max(1, 4 * threads // len(batches[0]))
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

    def _threads(self) -> int:
        """The threads that run tasks: the LocalCluster's workers (one each), or all that the
        scheduler knows of."""
        if self.cluster is not None:
            return max(1, len(self.cluster.workers))
        workers = self.client.scheduler_info().get("workers", {}).values()
        return max(1, sum(int(w.get("nthreads") or 1) for w in workers))

    def close(self) -> None:
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()
