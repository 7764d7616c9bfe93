"""A pool of step workers (``agilab_dsl.execute.worker`` processes), started on first use.

Each worker runs one step at a time in a forked child; ``run`` takes an idle worker, sends it the
request and waits for its reply. Given ``ahead`` (``-j 1``), it also sends the request that callable
returns, the next step's, before it waits: the worker goes on to that step as soon as this one ends,
instead of waiting for the runner to record this one and send the next. The next ``run`` of that
very request only reads its reply (``collect`` reads it without sending anything further). A worker
that dies is replaced, and the step it was running is reported as failed; a request sent ahead to
it is sent again to its successor. ``close`` ends every worker and whatever step child it is
running.
"""

from __future__ import annotations

import binascii
import collections
import contextlib
import json
import os
import queue
import signal
import sys
import threading
import time

from .worker import encode

TYPE_CHECKING = False  # typing is not imported at run time: ~2 ms of every run's start-up
if TYPE_CHECKING:  # pragma: no cover
    from collections.abc import Callable
    from typing import Any


class Process:
    """A child process on two pipes (its stdin and stdout; stderr is ours), in a session of its
    own: what the workers need of :class:`subprocess.Popen`, started with ``posix_spawn``, without
    importing :mod:`subprocess` (~2.5 ms of every run's start-up)."""

    def __init__(self, cmd: list[str], env: dict[str, str]) -> None:
        child_in, self_in = os.pipe()  # not inheritable: only the descriptors dup2'd below are
        self_out, child_out = os.pipe()
        actions = [(os.POSIX_SPAWN_DUP2, child_in, 0), (os.POSIX_SPAWN_DUP2, child_out, 1)]
        try:
            self.pid = os.posix_spawnp(cmd[0], cmd, env, file_actions=actions, setsid=True)
        except BaseException:
            os.close(self_in)
            os.close(self_out)
            raise
        finally:
            os.close(child_in)
            os.close(child_out)
        self.stdin = open(self_in, "w", encoding="ascii")  # noqa: SIM115 - closed by release / close
        self.stdout = open(self_out, encoding="ascii")  # noqa: SIM115
        self.returncode: int | None = None

    def poll(self) -> int | None:
        """The exit status (negative: the signal that ended it), or None while it runs."""
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:  # reaped elsewhere
                pid, status = self.pid, 0
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for it to exit, at most ``timeout`` seconds; whether it did."""
        if timeout is None:
            if self.returncode is None:
                try:
                    self.returncode = os.waitstatus_to_exitcode(os.waitpid(self.pid, 0)[1])
                except ChildProcessError:
                    self.returncode = 0
            return True
        deadline = time.monotonic() + timeout
        pause = 0.0005
        while self.poll() is None:
            if time.monotonic() >= deadline:
                return False
            time.sleep(pause)
            pause = min(pause * 2, 0.05)
        return True


class Worker:
    def __init__(self, python: str = sys.executable, *, source_code: str | None = None) -> None:
        # A foreign interpreter (an AGILAB runtime) gets the worker's source, which is stdlib-only.
        # -c, not -m: runpy's import (~2.5 ms) is on the first step's path
        cmd = [python, "-c", source_code or "from agilab_dsl.execute.worker import serve; serve()"]
        env = dict(os.environ)
        if not source_code:
            package_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
            env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
        self.foreign = bool(source_code)  # another interpreter: requests it can read whatever its version
        self.proc = Process(cmd, env)
        # requests sent ahead, whose replies (which come in order) are still to be read
        self.ahead: collections.deque[dict[str, Any]] = collections.deque()

    def run(self, request: dict[str, Any]) -> dict[str, Any]:
        self.send(request)
        return self.receive()

    def send(self, request: dict[str, Any]) -> None:
        try:
            # marshalled or pickled, not JSON: settings keep TOML's dates and times
            line = binascii.b2a_base64(encode(request, portable=self.foreign))  # base64, newline-ended
            self.proc.stdin.write(line.decode("ascii"))
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            raise WorkerDied(self.proc.poll()) from None

    def receive(self) -> dict[str, Any]:
        """The reply to the oldest request not answered yet."""
        try:
            line = self.proc.stdout.readline()
        except OSError:
            line = ""
        if not line:
            raise WorkerDied(self.proc.poll())
        reply: dict[str, Any] = json.loads(line)
        return reply

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def release(self) -> None:
        """Tell the worker there is no more work (it exits on its own); ``close`` waits for it."""
        with contextlib.suppress(OSError):
            self.proc.stdin.close()

    def close(self, *, kill: bool = False) -> None:
        if kill and self.alive:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)  # the worker ends its running step first
        self.release()
        if not self.proc.wait(timeout=5):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.proc.stdout.close()


class WorkerDied(Exception):
    def __init__(self, status: int | None) -> None:
        super().__init__(f"the step worker died (status {status})")


class WorkerPool:
    def __init__(self, size: int) -> None:
        self.size = max(1, size)
        self._idle: queue.Queue[Worker] = queue.Queue()
        self._started = 0
        self._all: list[Worker] = []
        self._lock = threading.Lock()
        self._closed = False

    def prestart(self, early: Worker | None = None) -> None:
        """Start one worker now (it boots in the background) rather than when the first step runs;
        or take ``early``, one the caller started sooner (while the lab loaded): the pool owns it."""
        with self._lock:
            if self._started == 0 and not self._closed:
                self._started += 1
                worker = early or Worker()
                self._all.append(worker)
                self._idle.put(worker)
                return
        if early is not None:  # not needed after all
            early.close()

    def take(self) -> Worker:
        """An idle worker (a new one while fewer than ``size`` are started), the caller's until it
        gives it back (:meth:`give_back`; dispatch.py sends its requests and reads its replies itself)."""
        return self._take()

    def give_back(self, worker: Worker) -> None:
        self._idle.put(worker)

    def replace(self, worker: Worker) -> Worker:
        """A new worker in place of ``worker``, which died (``worker`` itself when closing)."""
        return self._replace(worker)

    def _take(self) -> Worker:
        with self._lock:
            if self._idle.empty() and self._started < self.size:
                self._started += 1
                worker = Worker()
                self._all.append(worker)
                return worker
        return self._idle.get()

    def run(
        self, request: dict[str, Any], ahead: Callable[[], dict[str, Any] | None] | None = None
    ) -> dict[str, Any]:
        """Run ``request`` (unless it was sent ahead already) and return its reply; ``ahead``, once
        it is sent: the next request to send now, or None."""
        worker = self._take()
        try:
            if worker.ahead and worker.ahead[0] is request:
                worker.ahead.popleft()  # sent ahead: its reply is the next to come
            elif worker.ahead:  # the runner's bug, not the user's: replies would be matched wrong
                raise RuntimeError(f"step {request.get('step_id')} run while another was sent ahead")
            else:
                worker.send(request)
            following = ahead() if ahead is not None else None
            if following is not None:
                worker.send(following)
                worker.ahead.append(following)
            return worker.receive()
        except WorkerDied:
            worker = self._replace(worker)
            raise
        finally:
            self._idle.put(worker)

    def collect(self, request: dict[str, Any]) -> dict[str, Any] | None:
        """The reply to ``request`` if it was sent ahead (read now; :meth:`run` would not send
        another ahead); None if it was not, or its worker died since."""
        worker = self._take()
        try:
            if not (worker.ahead and worker.ahead[0] is request):
                return None
            worker.ahead.popleft()
            try:
                return worker.receive()
            except WorkerDied:
                worker = self._replace(worker)
                return None
        finally:
            self._idle.put(worker)

    def _replace(self, worker: Worker) -> Worker:
        """The worker to use in place of ``worker``, which died: a new one, unless the pool is
        being closed."""
        with self._lock:
            if worker in self._all:
                self._all.remove(worker)
            if self._closed:
                return worker
            fresh = Worker()
            self._all.append(fresh)
            return fresh

    def release(self) -> None:
        """No more steps: every idle worker is told to exit, without waiting for it."""
        with self._lock:
            self._closed = True
            workers = list(self._all)
        for worker in workers:
            worker.release()

    def close(self, *, kill: bool = False) -> None:
        with self._lock:
            self._closed = True
            workers, self._all = self._all, []
        for worker in workers:
            worker.close(kill=kill)
