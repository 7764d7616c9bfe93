"""The step worker: a small, single-threaded fork server that runs one step per forked child.

Starting a fresh interpreter per step costs ~30 ms; forking an already-started one costs ~1-2 ms
and keeps the same isolation: the child has its own memory and process, so a crash, ``sys.exit``
or a segfault in a step ends the child only. The runner starts one worker per parallel slot
(:func:`serve`) and talks to it over its stdin/stdout, one object per line (a request is base64
of a tag and a marshal, or for settings with TOML's dates and times or a foreign interpreter, a
pickle; a reply is JSON):

request  {"step_id", "kind": "code"|"function"|"contract", "code", "module", "function", "cwd",
          "log", "result", "timeout", "names": {settings, params, inputs, outputs}}
          (a contract step adds "contract", "backend", "retries", "scheduler", "fallback",
          "cython", "cores", "limit"; a step sharing the machine (-j N) carries "env": the thread-pool
          limits of BLAS, OpenMP, … that its process inherits unless the user set them; "environ":
          AGILAB's stage variables, set; "support" and "frame": AGILAB's tracker and ``df``, see
          ``step_support/_agilab_run_step.py``)
reply    {"exit": int, "signal": int|null, "timed_out": bool, "seconds": float, "result": bool (it
         wrote ``result``, or may have: it crashed)} (+ "log_error": str when the step's log could
         not be written)

A runner may send the next step's request before the running step's reply (``-j 1``: the worker then
never waits for the runner between two steps). The worker hands such a request to the next step's
child as soon as it comes, while the step before it runs: the child decodes it and settles in (the
lab's lock, its folder, its environment), then waits for one byte, the word to start, which the
worker writes as the step before it ends. Such a request carries ``"unless_failed": true`` when
the run stops at a failure: if the step this worker ran before it failed (an exit status, a signal,
a timeout, or one of its ``"required"`` outputs not written, as the runner judges it), the worker
does not run it (its child gets no word and exits) and replies ``{"halted": true}``; nor once the
runner has sent the line ``!halt`` (``-j N``: another worker's step failed), which it looks for
before starting such a request.

Under this tool's own interpreter the children are forked by the worker's zygote, a copy of the
worker made before the first step (:mod:`.zygote`), so that the worker itself never forks; a
worker started from source under another interpreter runs one step and forks it itself.
The child writes what the step returned to ``result`` (JSON). Its stdout/stderr (C level and
subprocesses included, and a traceback on failure) go to a pipe that the worker empties into
``log`` as the step runs, so that the runner can follow it live (:mod:`agilab_dsl.execute.follow`).
The log is made at the first byte: a silent step leaves no log, and no file is made and removed per
step (on a journal-less ext4, making a file where many were removed in the last minutes costs up to
~1 ms, the kernel skipping each recently freed inode). What a step's own background processes print
after it ended is not kept. This module imports only the standard library, and at start only what its
own work needs (no json, pickle, contextlib or typing: ~8 ms of the first step's wait); a step's
process imports what the step does.
"""

from __future__ import annotations

import binascii
import fcntl  # imported before the fork: each step's process would pay for it
import marshal
import os
import sys
import time

try:
    import _signal as signal  # the C module: `signal` only wraps it in enums (enum's import: ~3 ms)
except ImportError:  # pragma: no cover - not CPython
    import signal  # type: ignore[no-redef]

TYPE_CHECKING = False  # typing is not imported: each worker's start-up is on a run's path
if TYPE_CHECKING:  # pragma: no cover
    from collections.abc import Callable
    from typing import Any

    from .zygote import Zygote

KILL_GRACE = 2.0  # seconds between SIGTERM and SIGKILL when a step overruns its timeout
GO = b"\x01"  # the word a spare waits for, after its request, to start its step


Spare = tuple[int, int, int, int]  # pid, request pipe, status pipe, output pipe (their ends we hold)


class _Running:
    """The step child running now (read by the SIGTERM handler, which ends it with the worker)."""

    child: int | None = None
    spare: int | None = None  # the pre-forked child waiting for the next request
    output: _Output | None = None  # the running child's output, on its way to its log
    runner: int | None = None  # the pipe the runner's requests come on: its hang-up ends the step
    children: _Own | Zygote | None = None  # who forks and waits for the step children
    result = False  # in a step's child: whether it wrote its result file (said to the worker)
    stood: dict[str, str] | None = None  # in the worker: the last table the zygote was told to set
    steady: dict[str, str] | None = None  # in the worker: the last AGILAB variables it was told to set
    environ: dict[str, str] | None = None  # in the worker: the last request's AGILAB variables
    held: str | None = None  # in the worker: the steps.lock the zygote was told to hold
    running: _Step | None = None  # in the worker: the step running now
    handed: _Step | None = None  # in the worker: the next step, handed to its child, not started


class _suppress:
    """``contextlib.suppress`` without contextlib's import (collections, functools: ~2 ms of each
    worker's start-up)."""

    def __init__(self, *kinds: type[BaseException]) -> None:
        self.kinds = kinds

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, value: object, tb: object) -> bool:
        return kind is not None and issubclass(kind, self.kinds)


def encode(request: dict[str, Any], *, portable: bool) -> bytes:
    """A request's bytes: ``M`` and a marshal (no import at either end), or ``P`` and a pickle when
    it holds what marshal cannot (TOML's dates and times) or when ``portable``: for an interpreter
    of another version, whose marshal may differ."""
    if not portable:
        with _suppress(ValueError):
            return b"M" + marshal.dumps(request)
    import pickle

    return b"P" + pickle.dumps(request, protocol=4)


def decode(data: bytes) -> dict[str, Any]:
    """The request :func:`encode` made."""
    if data[:1] == b"M":
        return marshal.loads(data[1:])  # type: ignore[no-any-return]
    import pickle

    return pickle.loads(data[1:])  # type: ignore[no-any-return]


def reply_text(reply: dict[str, Any]) -> str:
    """A reply as one line of JSON; its usual fields (numbers, booleans, null) without json."""
    words = {None: "null", True: "true", False: "false"}
    parts = []
    for key, value in reply.items():
        if type(value) is bool or value is None:
            text = words[value]
        elif type(value) is int or (type(value) is float and value - value == 0):  # finite
            text = repr(value)
        else:
            import json

            return json.dumps(reply)
        parts.append(f'"{key}": {text}')
    return "{" + ", ".join(parts) + "}"


def _jsonable(value: Any) -> Any:
    import json

    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError):
        return repr(value)


def _settle(req: dict[str, Any]) -> None:
    """In the forked child, before the word to start: what depends only on its request, not on
    the steps before it (the lock, its folder, its environment), done while the step before it
    still runs (:func:`prefork`)."""
    hold = req.get("hold")
    if hold and hold not in _HELD:  # (held by the zygote since before this child's fork: inherited)
        _hold(hold)
    os.chdir(req["cwd"])
    sys.path.insert(0, req["cwd"])
    # each set by itself: os.environ.update's isinstance check against an ABC costs ~0.1 ms in a
    # forked child (its first touch of abc's caches), on the way to every step's start
    environ = os.environ
    standing, env = _STANDING, req.get("env", {})
    for name, value in env.items():  # the user's own settings win
        if name in standing:
            if standing[name] != value:
                environ[name] = value
        elif name not in environ:
            environ[name] = value
    for name in standing:  # set ahead by the zygote for other steps than this one
        if name not in env:
            environ.pop(name, None)
    steady, agilab = _STEADY, req.get("environ", {})
    for name, value in agilab.items():  # AGILAB's stage variables (agilab_env.py), always set
        ahead = steady.get(name)
        if ahead is None or ahead[0] != value:
            environ[name] = value
    for name, (_, was) in steady.items():  # set ahead by the zygote, not a variable of this step
        if name not in agilab:
            if was is None:
                environ.pop(name, None)
            else:
                environ[name] = was


def _run_child(req: dict[str, Any]) -> int:
    """In the forked child, once told to start (:func:`_settle` done): run the step, write its
    result, return the exit status. Its output goes to the worker, which writes it to the step's
    log (see :class:`_Output`)."""
    names = req["names"]
    namespace: dict[str, Any] = {}
    try:
        if req["kind"] == "contract":
            return _run_contract(req)
        extras = _support(req.get("support"))  # AGILAB's df and tracker (step_support/)
        if req["kind"] == "function":
            if extras is not None:
                extras.before(namespace, req)
            fn = _load_function(req["module"], req["function"], req["cwd"])
            returned = fn(**names["params"])
            payload = {"returned": _jsonable(returned)}
        else:
            namespace = {
                "__name__": "__agilab_step__",
                "settings": names["settings"],
                "params": names["params"],
                "inputs": names["inputs"],
                "outputs": names["outputs"],
                "step_id": req["step_id"],
                "metrics": {},
            }
            problem = extras.before(namespace, req) if extras is not None else None
            if problem:
                print(problem, file=sys.stderr)
                return 1
            compiled = req.get("compiled")
            code = (
                marshal.loads(compiled)
                if compiled is not None
                else compile(req["code"], f"<step {req['step_id']}>", "exec")  # raises its SyntaxError here
            )
            exec(code, namespace)  # the step's own code: running it is the point
            metrics = namespace.get("metrics")
            payload = {"metrics": _jsonable(metrics)} if metrics else {}
        if extras is not None:
            payload.update(extras.after(namespace, req))
        if not payload:
            return 0  # nothing to hand back: no result file to write
    except SystemExit as exc:
        status = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if status:
            print(f"step {req['step_id']} called sys.exit({exc.code!r})", file=sys.stderr)
        else:
            _write_result(req["result"], {"exited": 0})
        return status
    except BaseException as exc:
        import traceback

        tb = exc.__traceback__
        # from the step's own frame on: this function's frame is the runner's, not the user's
        traceback.print_exception(type(exc), exc, tb.tb_next if tb is not None else None)
        return 1
    _write_result(req["result"], payload)
    return 0


def _support(folder: str | None) -> Any:
    """``step_support/_agilab_run_step.py``, loaded by its path (a worker under a foreign interpreter
    cannot import agilab_dsl), once per process; None without a folder."""
    module = sys.modules.get("_agilab_run_step")
    if module is None and folder:
        try:  # importlib.util's own two functions, without its imports (contextlib: ~2 ms)
            from _frozen_importlib import module_from_spec
            from _frozen_importlib_external import spec_from_file_location
        except ImportError:  # pragma: no cover - not CPython
            from importlib.util import module_from_spec, spec_from_file_location

        spec = spec_from_file_location("_agilab_run_step", os.path.join(folder, "_agilab_run_step.py"))
        assert spec is not None and spec.loader is not None
        module = module_from_spec(spec)
        spec.loader.exec_module(module)
        sys.modules[spec.name] = module  # once it loaded: a failed load is tried again
        module.install()  # the tracker's finder: in the worker, each step's process inherits it
    return module if folder else None


def _hold(path: str) -> bool:
    """Hold the lab's ``steps.lock`` shared for as long as this step's process lives (the
    descriptor is never closed: the OS releases the lock with the process, and with every child
    forked from it that still lives; the zygote takes it for its spares). A runner taking over from
    a killed one waits on it, so no step of the old run still writes while the new one runs.
    Whether it is held."""
    with _suppress(OSError):
        fcntl.flock(os.open(path, os.O_RDWR | os.O_CREAT, 0o644), fcntl.LOCK_SH)
        return True
    return False


def _run_contract(req: dict[str, Any]) -> int:
    """A parallel stage (only under this tool's own interpreter: it needs agilab_dsl)."""
    support = sys.modules.get("_agilab_run_step")
    if support is not None:  # (its tracker and df are a code or function step's, not a contract's)
        support.uninstall()
    from agilab_dsl.stages.backends.pool import shutdown
    from agilab_dsl.stages.parallel import serve

    def complain(text: str) -> None:
        print(text, file=sys.stderr)

    try:
        status, payload = serve(req, print, complain)
    finally:
        shutdown()  # this process ends with os._exit: its pool's workers must not outlive it
    if payload is not None:
        _write_result(req["result"], payload)
    return status


def _write_result(path: str, payload: dict[str, Any]) -> None:
    import json

    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(payload, fh)
    os.replace(tmp, path)
    _Running.result = True


def _load_function(module: str, name: str, cwd: str) -> Any:
    import importlib
    import importlib.util

    if module.endswith(".py") or "/" in module:
        path = os.path.join(cwd, module)
        spec = importlib.util.spec_from_file_location(os.path.splitext(os.path.basename(path))[0], path)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot load {module}")
        mod = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = mod
        spec.loader.exec_module(mod)
    else:
        mod = importlib.import_module(module)
    fn = getattr(mod, name, None)
    if not callable(fn):
        raise AttributeError(f"{module} has no function {name!r}")
    return fn


def _decode(wait_status: int) -> tuple[int, int | None]:
    """(exit code, or -1 when killed; the signal that killed it, or None)."""
    if os.WIFSIGNALED(wait_status):
        return -1, os.WTERMSIG(wait_status)
    return (os.WEXITSTATUS(wait_status) if os.WIFEXITED(wait_status) else -1), None


def _wait(
    pid: int,
    done: int,
    timeout: float | None,
    output: _Output,
    children: _Own | Zygote,
    next_line: Callable[[], bool] | None = None,
) -> tuple[int, int | None, bool, bool, bool]:
    """Wait for a step child, moving what it prints to its log (``output``) meanwhile. It writes
    its exit status on ``done`` just before it exits, and whether it wrote its result, so the reply
    need not wait for the teardown of its address space; a child that dies without writing (a
    crash, a signal) is known by its wait status. A child that overruns ``timeout`` has its process
    group ended. ``next_line``: called when the runner's pipe has something to read, until it
    returns False (it hands the next request to its child meanwhile). Returns (exit code, signal,
    timed out, reaped, whether it wrote its result: true when it did not say)."""
    import select

    poll = select.poll()
    poll.register(done, select.POLLIN)
    if next_line is not None and not next_line():  # (it may have come with the one running now)
        next_line = None
    runner = _Running.runner
    if runner is not None:  # a hang-up: the runner is gone
        poll.register(runner, select.POLLIN if next_line is not None else 0)
    poll.register(output.source, select.POLLIN)
    if children.fileno is not None:
        poll.register(children.fileno, select.POLLIN)  # the zygote says when its children end
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        left = 0.05 if deadline is None else max(0.0, min(0.05, deadline - time.monotonic()))
        ready = dict(poll.poll(left * 1000))
        # the runner hung up: killed (SIGKILL, no SIGTERM came): end its step, then go
        if runner is not None and ready.get(runner, 0) & ~select.POLLIN:
            _on_term(signal.SIGHUP, None)
        if runner in ready and next_line is not None and not next_line():
            poll.modify(runner, 0)
        if output.source in ready and not output.pump():
            poll.unregister(output.source)  # every writer closed it: nothing more will come
        if ready.get(done):
            status = os.read(done, 2)  # its exit status, and whether it wrote its result
            if status:
                return status[0], None, False, False, status[1:] == b"\x01"
            return (*_decode(children.status(pid, block=True)), False, True, True)  # no status said
        wait_status = children.status(pid, block=False)
        if wait_status is not None:  # (its pipe may still be held open by something it started)
            return (*_decode(wait_status), False, True, True)
        if deadline is not None and time.monotonic() >= deadline:
            break
    _signal_group(pid, signal.SIGTERM)
    grace = time.monotonic() + KILL_GRACE
    while time.monotonic() < grace:
        wait_status = children.status(pid, block=False)
        if wait_status is not None:
            return (*_decode(wait_status), True, True, True)
        time.sleep(0.02)
    _signal_group(pid, signal.SIGKILL)
    return (*_decode(children.status(pid, block=True)), True, True, True)


def _signal_group(pid: int, sig: int) -> None:
    with _suppress(ProcessLookupError):
        os.killpg(pid, sig)


def prefork(inherited: tuple[int, ...] = ()) -> Spare:
    """Fork the next step's child ahead of time; it waits for its request on a pipe.

    Forking (copying the page tables) then overlaps the step running now instead of adding to
    the next one. ``inherited``: the worker's descriptors the child must not keep. Returns (child
    pid, write end of its request pipe, read end of the pipe on which it writes its exit status
    as it exits, read end (non-blocking) of the pipe its stdout and stderr go to)."""
    read_end, write_end = os.pipe()
    done_read, done_write = os.pipe()
    out_read, out_write = os.pipe()
    sys.stdout.flush()
    pid = os.fork()
    if pid == 0:  # the child never returns from here
        status = 1
        try:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # (a zygote's handler: not the step's)
            signal.set_wakeup_fd(-1)
            os.setpgid(0, 0)  # its own process group, so that a timeout ends whatever it starts too
            os.close(write_end)
            os.close(done_read)
            os.close(out_read)
            for fd in inherited:
                os.close(fd)
            null = os.open(os.devnull, os.O_RDONLY)
            os.dup2(null, 0)  # the worker's stdin carries the runner's requests: never the step's
            os.close(null)
            os.dup2(out_write, 1)  # the step's stdout and stderr, C level and subprocesses included
            os.dup2(out_write, 2)
            os.close(out_write)
            _warm_up()
            # its request (its length, then the request), then the word to start: nothing at all
            # when the worker is closing and this spare is not needed, no word when its step was
            # halted before it started (the step before it, which it was handed during, failed)
            header = _read_exact(read_end, 4)
            if len(header) == 4:
                req = decode(_read_exact(read_end, int.from_bytes(header, "little")))
                _settle(req)
                start = os.read(read_end, 1) == GO
                os.close(read_end)
                status = _run_child(req) if start else 0
            else:
                status = 0
        finally:
            try:
                sys.stdout.flush()
                sys.stderr.flush()
                os.write(done_write, bytes([status & 0xFF, _Running.result]))
            finally:
                os._exit(status)
    os.close(read_end)
    os.close(done_write)
    os.close(out_write)
    os.set_blocking(out_read, False)
    return pid, write_end, done_read, out_read


def _read_exact(fd: int, size: int) -> bytes:
    """``size`` bytes from ``fd``, fewer where it ends first."""
    chunks, left = [], size
    while left and (chunk := os.read(fd, min(left, 1 << 16))):
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


class _Own:
    """Step children forked by this worker itself (and waited for with ``waitpid``): under another
    interpreter, whose worker runs one step."""

    fileno = None
    ahead = 1  # spares kept forked ahead of the steps

    def __init__(self) -> None:
        self._next: Spare | None = None
        self._exiting: list[int] = []  # children that said their status and may still be exiting

    def ask(self, inherited: tuple[int, ...]) -> None:
        """Fork the next spare now (the step running meanwhile)."""
        self._next = prefork(inherited)
        _Running.spare = self._next[0]

    def stand(self, env: dict[str, str]) -> None:
        """(A worker under another interpreter runs one step: nothing to prepare its children for.)"""

    def steady(self, agilab: dict[str, str]) -> None:
        """(As :meth:`stand`.)"""

    def hold(self, path: str) -> None:
        """(As :meth:`stand`: each child holds the lock itself.)"""

    def take(self) -> Spare:
        spare, self._next = self._next or prefork(), None
        return spare

    def status(self, pid: int, *, block: bool) -> int | None:
        finished, wait_status = os.waitpid(pid, 0 if block else os.WNOHANG)
        return wait_status if finished else None

    def ended(self, pid: int, reaped: bool) -> None:
        """``pid`` said its status (or was reaped): reaped later, without waiting for its exit."""
        if not reaped:
            self._exiting.append(pid)
        self._exiting = [p for p in self._exiting if not os.waitpid(p, os.WNOHANG)[0]]

    def close(self) -> None:
        for pid in self._exiting:
            os.waitpid(pid, 0)


class ZygoteGone(Exception):
    """The zygote ended (killed: it never ends on its own while the worker runs). The worker exits,
    as if it had died itself: the runner reports the step it ran as failed and starts another."""


class _Output:
    """A step's output on its way from the pipe its child writes to (``source``, non-blocking) to
    its log, which is made at the first byte. A log that cannot be written is said in ``error``,
    and the rest of the output is read and dropped (a full pipe would stall the step)."""

    def __init__(self, source: int, path: str) -> None:
        self.source = source
        self.path = path
        self.log: int | None = None
        self.error: str | None = None

    def pump(self, reads: int = 16) -> bool:
        """Move what the pipe holds now to the log, in at most ``reads`` reads of 64 KiB (a step
        printing without pause must not keep the worker from its timeout: the caller's poll comes
        back for the rest); False once every writer has closed it."""
        for _ in range(reads):
            try:
                chunk = os.read(self.source, 1 << 16)
            except BlockingIOError:
                return True
            if not chunk:
                return False
            if self.error is None:
                self._write(chunk)
        return True

    def _write(self, chunk: bytes) -> None:
        try:
            if self.log is None:
                flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND | os.O_CLOEXEC
                self.log = os.open(self.path, flags, 0o644)
            view = memoryview(chunk)
            while view:
                view = view[os.write(self.log, view) :]
        except OSError as exc:  # a full disk, say: the step's outcome stands, its output is lost
            self.error = f"{exc.filename or self.path}: {exc.strerror or exc}"

    def close(self) -> None:
        """Take what is left in the pipe (its child has ended; 64 MiB at most, as something it started
        may go on writing), then close both ends we hold."""
        try:
            self.pump(reads=1024)
        finally:
            os.close(self.source)
            if self.log is not None:
                os.close(self.log)


# Set in the zygote (:mod:`.zygote`) before it forks its spares, and so inherited by them: the
# environment variables it set ahead for every step (:meth:`.zygote.Zygote.stand`), the AGILAB
# variables it set ahead (:meth:`.zygote.Zygote.steady`: each one's value, and its value before,
# None where it was unset), the steps.lock files it holds (:meth:`.zygote.Zygote.hold`), and the
# step's text streams, made once (``[stdout, stderr]``; empty: each child makes its own).
_STANDING: dict[str, str] = {}
_STEADY: dict[str, tuple[str, str | None]] = {}
_HELD: set[str] = set()
_STREAMS: list[Any] = []


def _text_streams() -> list[Any]:
    """A step's stdout and stderr: text streams on descriptors 1 and 2, line-buffered, never
    closing them."""
    return [open(fd, "w", buffering=1, closefd=False) for fd in (1, 2)]


def _warm_up() -> None:
    """In a spare child, before its request: the step's text streams on descriptors 1 and 2 (its
    output pipe), those its zygote made ahead or made now (a forked child's first text files cost
    ~0.3 ms), overlapping the step running now. Nothing is written before the request arrives."""
    sys.stdout, sys.stderr = _STREAMS or _text_streams()


_CODE: dict[str, Any] = {}  # code steps' texts, compiled: templated steps share one text


def _compiled(req: dict[str, Any]) -> dict[str, Any]:
    """Compile a code step in the long-lived worker: a forked child's first compile costs ~1.5 ms
    (its allocator's fresh pages), the worker's ~0.02 ms; a text compiled before is only renamed.
    Code that does not compile is left to the child, which reports the SyntaxError in the step's
    log."""
    if req.get("kind") != "code":
        return req
    text = req["code"]
    code = _CODE.get(text)
    if code is None:
        try:
            code = compile(text, f"<step {req['step_id']}>", "exec")  # (its warnings name the step)
        except (SyntaxError, ValueError):
            return req
        if len(_CODE) >= 64:
            _CODE.clear()
        _CODE[text] = code
    return {**req, "compiled": marshal.dumps(_named(code, f"<step {req['step_id']}>"))}


def _named(code: Any, filename: str) -> Any:
    """``code`` with ``filename`` in its tracebacks, the functions and classes it defines included."""
    consts = tuple(_named(c, filename) if isinstance(c, type(code)) else c for c in code.co_consts)
    return code.replace(co_filename=filename, co_consts=consts)


class _Step:
    """A step handed to a spare: its request, the spare's pid, the ends of its pipes the worker
    holds (request, exit status, output) and when it was told to start."""

    __slots__ = ("done", "output", "pid", "pipe", "req", "started")

    def __init__(self, req: dict[str, Any], spare: Spare) -> None:
        self.req = req
        self.pid, self.pipe, self.done, source = spare
        self.output = _Output(source, req["log"])
        self.started = 0.0

    def fds(self) -> tuple[int, ...]:
        return (self.pipe, self.done, self.output.source)


def _hand(req: dict[str, Any], children: _Own | Zygote) -> _Step:
    """Hand a step's request to the spare ``children`` has ready (which then does what it can
    before it is told to start, :func:`_settle`), having the next spare forked meanwhile."""
    req = _compiled(req)
    with _suppress(Exception):  # loaded here, the next steps' children inherit it
        _support(req.get("support"))
    env = req.get("env")
    if env and env != _Running.stood:
        children.stand(env)  # for the spares forked from now on
        _Running.stood = env
    _ahead(req, children)
    step = _Step(req, children.take())
    _Running.spare = None  # handed a request: it is this step's child now
    _Running.handed = step
    payload = encode(req, portable=False)
    view = memoryview(len(payload).to_bytes(4, "little") + payload)
    while view:
        view = view[os.write(step.pipe, view) :]
    running = _Running.running
    children.ask(inherited=step.fds() + (running.fds()[1:] if running is not None else ()))
    return step


def _start(step: _Step) -> None:
    """Tell a handed step's child to start (a child that died meanwhile is reported as the step's
    outcome by :func:`_finish`)."""
    with _suppress(OSError):
        os.write(step.pipe, GO)
    os.close(step.pipe)
    step.started = time.perf_counter()
    _Running.handed = None
    _Running.running = step
    _Running.child = step.pid
    _Running.output = step.output


def _withdraw(step: _Step, children: _Own | Zygote) -> None:
    """A handed step not to run after all: its child reads no word to start and exits."""
    os.close(step.pipe)
    os.close(step.done)
    step.output.close()
    children.ended(step.pid, reaped=False)
    _Running.handed = None


def _finish(step: _Step, children: _Own | Zygote, next_line: Callable[[], bool] | None) -> dict[str, Any]:
    """Wait for a started step to end (``next_line``: see :func:`_wait`). Returns the reply."""
    reaped = True
    try:
        code, sig, timed_out, reaped, wrote = _wait(
            step.pid, step.done, step.req.get("timeout"), step.output, children, next_line
        )
    finally:
        _Running.output = None
        _Running.running = None
        os.close(step.done)
        step.output.close()
        children.ended(step.pid, reaped)
    _Running.child = None  # (where the zygote is gone, the worker ends it as it exits)
    reply: dict[str, Any] = {
        "exit": code,
        "signal": sig,
        "timed_out": timed_out,
        "seconds": time.perf_counter() - step.started,
        "result": wrote,
    }
    if step.output.error is not None:
        reply["log_error"] = step.output.error
    return reply


def _ahead(req: dict[str, Any], children: _Own | Zygote) -> None:
    """Have the zygote do ahead, for the spares it forks from now on, what each step's child would
    do first: hold the lab's ``steps.lock`` (held while the zygote or any child of it lives, as
    each child's own hold is), and set the AGILAB variables that did not change since the last
    request (a run's id and profile; not the stage index). With the tracker's finder put in place
    in the worker (:func:`_support`), a child's page faults between its request and its exit in a
    cold run of 1,000 tiny steps: ~170 → ~139."""
    hold = req.get("hold")
    if hold and hold != _Running.held:
        children.hold(hold)
        _Running.held = hold
    agilab = req.get("environ")
    if agilab is None:
        return
    last, _Running.environ = _Running.environ, agilab
    if last is None:
        return
    steady = {name: value for name, value in agilab.items() if last.get(name) == value}
    if steady != _Running.steady:
        children.steady(steady)
        _Running.steady = steady


HALT = b"!halt"  # a line of the runner's: the run stops (a request never starts with "!": base64)


class _Lines:
    """The runner's lines on the worker's stdin, read with ``os.read``, so that a halt notice sent
    after a request (``-j N``: another worker's step failed) is seen before that request starts."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._buffer = b""
        self._lines: list[bytes] = []
        self._eof = False
        self._halted = False
        self._poll: Any = None  # made at the first look for a halt notice

    def next(self) -> bytes | None:
        """The next line; None once the runner closed the pipe."""
        while not self._lines and not self._eof:
            self._read()
        return self._lines.pop(0) if self._lines else None

    def halted(self) -> bool:
        """Whether a halt notice came (among the lines that arrived by now)."""
        if self._poll is None:
            import select

            self._poll = select.poll()
            self._poll.register(self.fd, select.POLLIN)
        while not self._eof and self._poll.poll(0):
            self._read()
        return self._halted

    def ready(self) -> bytes | None:
        """The next request that arrived by now (blank lines and halt notices passed over), or
        None; ``ended`` says whether the runner closed the pipe."""
        self.halted()  # (reads what arrived)
        while self._lines:
            line = self._lines.pop(0)
            if line.strip() and not line.startswith(HALT):
                return line
        return None

    @property
    def ended(self) -> bool:
        return self._eof

    def _read(self) -> None:
        data = os.read(self.fd, 1 << 16)
        if not data:
            self._eof = True
            data = b"\n" if self._buffer else b""
        *lines, self._buffer = (self._buffer + data).split(b"\n")
        self._halted = self._halted or any(line.startswith(HALT) for line in lines)
        self._lines.extend(lines)


def _failed(req: dict[str, Any], reply: dict[str, Any]) -> bool:
    """Whether a step failed, as the runner judges it from its reply (steps.py ``_outcome``)."""
    if reply["exit"] or reply["signal"] or reply["timed_out"]:
        return True
    return not all(os.path.exists(os.path.join(req["cwd"], p)) for p in req.get("required", ()))


def _on_term(signum: int, frame: Any) -> None:
    """Stopped by the runner (Ctrl-C, SIGTERM): end the running step's whole process group first."""
    if _Running.spare is not None:
        _signal_group(_Running.spare, signal.SIGKILL)
    if _Running.handed is not None:  # told nothing yet: it has not started its step
        _signal_group(_Running.handed.pid, signal.SIGKILL)
    child = _Running.child
    if child is not None:
        _signal_group(child, signal.SIGTERM)
        deadline = time.monotonic() + KILL_GRACE
        while time.monotonic() < deadline:
            try:
                if _Running.children is None or _Running.children.status(child, block=False) is not None:
                    break
            except (ChildProcessError, ZygoteGone):  # reaped already; the zygote gone
                break
            time.sleep(0.02)
        else:
            _signal_group(child, signal.SIGKILL)
    if _Running.output is not None:
        with _suppress(OSError):
            _Running.output.close()  # what the interrupted step printed
    os._exit(128 + signum)


def main(support: str | None = None, *, zygote: bool = False) -> int:
    """Serve requests until stdin closes; ``support``: the step-support folder, loaded now (while
    the runner loads the lab) rather than with the first request, and inherited by every child;
    ``zygote``: its children forked by a :class:`~.zygote.Zygote` (where it cannot start: by this
    process)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the runner decides when its workers stop
    signal.signal(signal.SIGTERM, _on_term)
    if support is not None:
        with _suppress(Exception):  # the first request loads it again, and says why it cannot
            _support(support)
    import gc

    gc.freeze()  # children's collections skip (and so do not copy) everything inherited
    _Running.runner = sys.stdin.fileno()
    out = sys.stdout
    children: _Own | Zygote = _Own()
    if zygote:
        with _suppress(ImportError, AttributeError, OSError):  # not CPython on Linux, say
            from .zygote import Zygote

            children = Zygote(prefork, ZygoteGone, _STANDING, _STREAMS, _text_streams, _STEADY, _HELD, _hold)
    _Running.children = children
    for _ in range(children.ahead):  # the first steps' spares
        children.ask(inherited=())
    last: tuple[dict[str, Any], dict[str, Any]] | None = None  # the last step run, and its reply
    lines = _Lines(sys.stdin.fileno())
    handed: _Step | None = None  # the next step, handed to its child while the one before ran

    def answer(reply: dict[str, Any]) -> None:
        try:
            out.write(reply_text(reply) + "\n")
            out.flush()
        except BrokenPipeError:  # the runner is gone (killed): nobody to answer
            os._exit(0)

    def hand_next() -> bool:
        """While a step runs: hand the next request that came (sent ahead) to its child, which
        settles in meanwhile; whether to go on looking for one."""
        nonlocal handed
        line = lines.ready()
        if line is None:
            return not lines.ended
        handed = _hand(decode(binascii.a2b_base64(line)), children)
        return False

    try:
        while True:
            if handed is not None:  # started as the step before it ended
                step, handed = handed, None
            else:
                line = lines.next()
                if line is None:
                    break
                if not line.strip() or line.startswith(HALT):
                    continue  # (a halt notice is taken by lines.halted)
                req = decode(binascii.a2b_base64(line))
                if req.get("unless_failed") and (lines.halted() or (last is not None and _failed(*last))):
                    answer({"halted": True})  # sent ahead; the run stops at that failure
                    continue
                step = _hand(req, children)
                _start(step)
            reply = _finish(step, children, hand_next)
            last = step.req, reply
            halted = (
                handed is not None
                and bool(handed.req.get("unless_failed"))
                and (lines.halted() or _failed(*last))
            )
            if handed is not None and halted:
                _withdraw(handed, children)
                handed = None
            elif handed is not None:
                _start(handed)  # at once: its reply and the one before it are written meanwhile
            answer(reply)
            if halted:
                answer({"halted": True})
    except ZygoteGone:
        for gone in (_Running.child, handed.pid if handed is not None else None):
            if gone is not None:
                _signal_group(gone, signal.SIGKILL)
        return 70  # (EX_SOFTWARE) the runner sees this worker die
    with _suppress(ZygoteGone):  # (killed since the last step: its children end on their own)
        for _ in range(children.ahead):
            spare = children.take()
            os.close(spare[1])  # release the unused spare: it reads an empty request and exits
            os.close(spare[2])
            os.close(spare[3])
            children.ended(spare[0], reaped=False)
    children.close()  # every child has ended
    return 0


def serve() -> None:
    """The worker process: :func:`main`, then an exit with nothing left to clean up, skipping the
    interpreter's shutdown (~5 ms, which the runner waits for)."""
    here = globals().get("__file__")  # none when run as source (-c) under another interpreter
    if here:
        code = main(os.path.join(os.path.dirname(os.path.realpath(here)), "step_support"), zygote=True)
    else:  # its worker runs one step: a zygote would only add a fork
        code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    serve()
