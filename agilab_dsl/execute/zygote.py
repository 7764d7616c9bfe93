"""The step worker's zygote: a copy of the worker made once, before its first step, that forks each
step's process on request and reports how each one ended (:mod:`.worker` uses it under this tool's
own interpreter; a worker started from source under another interpreter forks its one step itself).

The worker itself then never forks, so its pages are never shared with a child: it takes no
copy-on-write fault after each fork (~180 a step, on the path from a step's end to the next one's
start), and the zygote's fork overlaps the running step on another core. Standard library only, as
the worker.
"""

from __future__ import annotations

import os
import sys

try:
    import _signal as signal  # as the worker: `signal` only wraps it in enums (enum's import: ~3 ms)
except ImportError:  # pragma: no cover - not CPython
    import signal  # type: ignore[no-redef]

TYPE_CHECKING = False  # typing is not imported at run time: each worker's start-up is on a run's path
if TYPE_CHECKING:  # pragma: no cover
    from collections.abc import Callable
    from typing import Any

    Spare = tuple[int, int, int, int]  # as the worker's (this module imports nothing of it)


class Zygote:
    """Step children forked by the zygote, as the worker sees them: it asks for spares, takes them,
    and hears each child's wait status. A cold run of 1,000 tiny steps: ~8 % faster than with the
    worker forking them itself.

    Its messages: ``S`` + pid, with the spare's three descriptors (see :func:`.worker.prefork`); ``X`` + pid
    + wait status when a child ended. The worker's: ``f`` for a spare, ``e`` + a marshalled table
    for the environment variables every step of the run sets (:meth:`stand`), ``a`` + a marshalled
    table for AGILAB's variables that stay the same from step to step (:meth:`steady`), ``h`` + the
    path of a ``steps.lock`` to hold (:meth:`hold`). It exits when the worker closes its socket (or
    dies), once every child of it has ended."""

    # Two spares are kept forked ahead: with one, its fork and warm-up (on the core the running
    # step does not use, beside the runner and the exit of the step before) were not done in 4 of
    # 10 steps when the step's request came; a cold run of 1,000 tiny steps took 1.398 s, 1.340 s
    # with two (A/B, 8 rounds).
    ahead = 2

    def __init__(
        self,
        fork: Callable[..., Spare],
        gone: type[Exception],
        standing: dict[str, str],
        streams: list[Any],
        make_streams: Callable[[], list[Any]],
        steady: dict[str, tuple[str, str | None]],
        held: set[str],
        hold: Callable[[str], bool],
    ) -> None:
        """``fork``: the worker's :func:`~.worker.prefork`; ``gone``: what to raise when the zygote
        is found ended; ``standing``: the worker's table of the variables set ahead (:meth:`stand`),
        filled in the zygote; ``streams``: the worker's list its spares take their stdout and
        stderr from, filled in the zygote with what ``make_streams`` makes (:func:`_streams_ahead`);
        ``steady``: the worker's table of the AGILAB variables set ahead (:meth:`steady`) and
        ``held``: its set of the locks held (:meth:`hold`, with the worker's ``hold``), both filled
        in the zygote. (Passed in: this module imports nothing of the worker's, which imports it.)"""
        import _socket

        self._socket = _socket
        self._gone = gone
        mine, its = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_SEQPACKET)
        sys.stdout.flush()
        self.pid = os.fork()
        if self.pid == 0:  # the zygote never returns from here
            code = 1
            try:
                mine.close()
                _streams_ahead(streams, make_streams)
                _zygote(its, fork, standing, steady, held, hold)
                code = 0
            finally:
                os._exit(code)
        its.close()
        self._sock = mine
        self.fileno = mine.fileno()
        self._spares: list[Spare] = []
        self._ended: dict[int, int] = {}  # pid -> wait status, the latest 64 reported

    def ask(self, inherited: tuple[int, ...]) -> None:
        try:
            self._sock.send(b"f")
        except OSError as exc:
            raise self._gone from exc

    def stand(self, env: dict[str, str]) -> None:
        """Environment variables each step of the run sets (``-j N``'s thread limits): set in the
        zygote, the spares it forks from now on have them already, instead of each setting eight
        variables (~0.25 ms in a forked child, on the way to its step's start)."""
        import marshal

        try:
            self._sock.send(b"e" + marshal.dumps(env))
        except OSError as exc:
            raise self._gone from exc

    def steady(self, agilab: dict[str, str]) -> None:
        """AGILAB's variables that stayed the same from one step's request to the next (the run's id
        and profile): set in the zygote, each step's child then sets only the others, those that
        differ (the stage index), and puts back what the zygote set that its step does not set."""
        import marshal

        try:
            self._sock.send(b"a" + marshal.dumps(agilab))
        except OSError as exc:
            raise self._gone from exc

    def hold(self, path: str) -> None:
        """Hold the lab's ``steps.lock`` (shared) in the zygote: its spares inherit the lock, so that a
        step's child no longer takes it itself. It is released as each child's own was, once the
        zygote and every child of it have ended: the zygote ends with the worker, after its
        children."""
        try:
            self._sock.send(b"h" + os.fsencode(path))
        except OSError as exc:
            raise self._gone from exc

    def take(self) -> Spare:
        while not self._spares:
            self._read(block=True)
        return self._spares.pop(0)

    def status(self, pid: int, *, block: bool) -> int | None:
        while pid not in self._ended and self._read(block=block):
            pass
        return self._ended.pop(pid, None)

    def _read(self, *, block: bool) -> bool:
        """Read one message; False when none was there (not ``block``)."""
        size = self._socket.CMSG_LEN(12)
        try:
            data, extra, _, _ = self._sock.recvmsg(16, size, 0 if block else self._socket.MSG_DONTWAIT)
        except BlockingIOError:
            return False
        except OSError as exc:
            raise self._gone from exc
        if not data:
            raise self._gone
        pid = int.from_bytes(data[1:5], "little")
        if data[:1] == b"S":
            fds = [int.from_bytes(extra[0][2][i : i + 4], "little") for i in (0, 4, 8)]
            os.set_blocking(fds[2], False)
            self._spares.append((pid, fds[0], fds[1], fds[2]))
        else:
            self._ended[pid] = int.from_bytes(data[5:9], "little")
            if len(self._ended) > 64:
                del self._ended[next(iter(self._ended))]
        return True

    def ended(self, pid: int, reaped: bool) -> None:
        return None  # the zygote reaps it

    def close(self) -> None:
        """No more spares: the zygote waits for its children, then exits; this waits for it."""
        self._sock.close()
        os.waitpid(self.pid, 0)


def _stand(standing: dict[str, str], env: dict[str, str]) -> None:
    """In the zygote: set the variables each step would (those the user has not set), so that the
    spares forked from now on start with them (:meth:`Zygote.stand`); ``standing`` keeps which."""
    for name, value in env.items():
        if name in standing or name not in os.environ:
            os.environ[name] = standing[name] = value


def _steady(table: dict[str, tuple[str, str | None]], agilab: dict[str, str]) -> None:
    """In the zygote: set AGILAB's steady variables (:meth:`Zygote.steady`), and put back what it
    had set of those no longer steady; ``table`` keeps each one's value and its value before."""
    environ = os.environ
    for name in [n for n in table if n not in agilab]:
        was = table.pop(name)[1]
        if was is None:
            environ.pop(name, None)
        else:
            environ[name] = was
    for name, value in agilab.items():
        was = table[name][1] if name in table else environ.get(name)
        environ[name] = value
        table[name] = (value, was)


def _streams_ahead(streams: list[Any], make: Callable[[], list[Any]]) -> None:
    """In the zygote, once: make the text streams every spare takes as its stdout and stderr, so
    that no step's child makes its own (its codec lookup and buffers: ~25 of the ~390 pages a step's
    processes copied, counted over a cold run of 1,000 tiny steps). They are made on a pipe put
    on descriptors 1 and 2 for the while, as a spare's are (not seekable, line-buffered), and
    never written in the zygote: a spare starts with them empty."""
    try:
        read_end, write_end = os.pipe()
        saved = os.dup(1), os.dup(2)
    except OSError:  # (out of descriptors, say) each spare makes its own
        return
    try:
        os.dup2(write_end, 1)
        os.dup2(write_end, 2)
        streams[:] = make()
    except OSError:
        streams.clear()
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (read_end, write_end, *saved):
            os.close(fd)


def _zygote(
    sock: Any,
    fork: Callable[..., Spare],
    standing: dict[str, str],
    steady: dict[str, tuple[str, str | None]],
    held: set[str],
    hold: Callable[[str], bool],
) -> None:
    """The zygote's loop (see :class:`Zygote`): a spare per request, a message per child ended."""
    import _socket
    import select

    # not the runner's pipes: a worker that dies must read as dead at once, whatever still runs
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    os.close(null)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # it ends with the worker's socket, not before
    wake, woken = os.pipe()
    os.set_blocking(woken, False)
    signal.signal(signal.SIGCHLD, lambda signum, frame: None)  # a handler: SIGCHLD then wakes poll
    signal.set_wakeup_fd(woken)
    poll = select.poll()
    poll.register(sock.fileno(), select.POLLIN)
    poll.register(wake, select.POLLIN)
    serving = True
    while serving:
        for fd, _ in poll.poll():
            if fd == wake:
                try:  # noqa: SIM105 - no contextlib: its import is ~2 ms of each worker's start-up
                    os.read(wake, 512)
                except OSError:
                    pass
            elif (message := sock.recv(1 << 16))[:1] == b"e":
                import marshal

                _stand(standing, marshal.loads(message[1:]))
            elif message[:1] == b"a":
                import marshal

                _steady(steady, marshal.loads(message[1:]))
            elif message[:1] == b"h":
                path = os.fsdecode(message[1:])
                if hold(path):
                    held.add(path)
            elif message:
                pid, *fds = fork(inherited=(sock.fileno(), wake, woken))
                rights = (
                    _socket.SOL_SOCKET,
                    _socket.SCM_RIGHTS,
                    b"".join(n.to_bytes(4, "little") for n in fds),
                )
                try:
                    sock.sendmsg([b"S" + pid.to_bytes(4, "little")], [rights])
                except OSError:
                    serving = False  # the worker is gone: the spare reads no request and exits
                for end in fds:
                    os.close(end)
            else:
                serving = False  # the worker closed its end (or died)
        _reap(sock, block=False)
    while _reap(sock, block=True):
        pass


def _reap(sock: Any, *, block: bool) -> bool:
    """Reap the zygote's ended children and report them; False when it has none left (``block``:
    wait for one)."""
    while True:
        try:
            pid, wait_status = os.waitpid(-1, 0 if block else os.WNOHANG)
        except ChildProcessError:
            return not block
        if not pid:
            return True
        try:  # noqa: SIM105 - (the worker may be gone; no contextlib, as above)
            sock.send(b"X" + pid.to_bytes(4, "little") + (wait_status & 0xFFFFFFFF).to_bytes(4, "little"))
        except OSError:
            pass
        if block:
            return True
