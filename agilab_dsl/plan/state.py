"""What each step last ran with, in ``.agilab/`` beside the lab file; and the lock on it.

``state.json`` maps each step id to the fingerprint components it last succeeded with and the
hashes of the outputs it wrote. During a run each completed step is appended as one line to
``journal.jsonl`` (O(1) a step; once written, a line survives the runner being killed); loading
replays the journal over ``state.json``, ignoring a torn last line. At the end of a run the two are
compacted: ``state.json`` is replaced atomically (temporary file, fsync, rename) and the journal
removed. Replaying a journal twice is harmless, so a crash between those two steps loses nothing.
A lock (``fcntl.flock`` on ``.agilab/lock``, which names its holder) keeps two runners from
working on one lab at once: the second waits, saying who holds it; one that finds the lock left by
a killed runner says so and waits for that runner's step processes to end (see :func:`lab_lock`).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

FORMAT = 1
FOLDER = ".agilab"


def new_run_id() -> str:
    """``20261121T232304.123-bb0f7a`` (UTC, to the millisecond): sortable by time, unique by its
    random tail (which abbreviates it, as a prefix does)."""
    import secrets

    now = time.time()
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now))
    return f"{stamp}.{int(now * 1000) % 1000:03d}-{secrets.token_hex(3)}"


def state_dir(lab_path: str | Path) -> Path:
    return Path(lab_path).resolve().parent / FOLDER


def write_json_atomic(path: Path, payload: Any, *, durable: bool = True) -> None:
    """Replace ``path`` with ``payload`` so that readers see the old file or the new one, never half.
    ``durable``: also survive a power cut (fsync); a cache that can be rebuilt does without."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    text = json.dumps(payload, sort_keys=True)  # json.dump and indent= take the pure-Python encoder
    try:
        with tmp.open("w", encoding="utf-8") as fh:
            fh.write(text)
            if durable:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:  # a full disk, say: the old file stands, and no half-written twin is left
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(exc, OSError) and not exc.filename:
            raise OSError(exc.errno, exc.strerror, str(path)) from exc
        raise
    if not durable:
        return
    with contextlib.suppress(OSError):  # make the rename itself durable
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _ends_with_newline(path: Path) -> bool:
    with path.open("rb") as fh:
        fh.seek(-1, os.SEEK_END)
        return fh.read(1) == b"\n"


@dataclass
class StepRecord:
    fingerprint: str
    components: dict[str, Any]
    outputs: dict[str, str]  # path -> content hash
    finished_at: float
    seconds: float
    run_id: str

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class LabState:
    """Everything ``.agilab/state.json`` holds for one lab."""

    path: Path
    steps: dict[str, StepRecord] = field(default_factory=dict)
    hashes: dict[str, list[Any]] = field(default_factory=dict)  # the file-hash cache
    problem: str | None = None  # why an existing state file could not be read (it is then ignored)
    journal_lines: int = 0  # records in the journal, not yet compacted into state.json
    _journal: TextIO | None = field(default=None, repr=False)

    @classmethod
    def load(cls, lab_path: str | Path) -> LabState:
        folder = state_dir(lab_path)
        state = cls(folder / "state.json")
        try:
            data = json.loads(state.path.read_text(encoding="utf-8"))
            if data.get("format") != FORMAT:
                raise ValueError(f"unknown state format {data.get('format')!r}")
            state.steps = {k: StepRecord(**v) for k, v in data.get("steps", {}).items()}
        except FileNotFoundError:
            pass
        except (OSError, ValueError, TypeError, AttributeError) as exc:
            state.problem = (
                f"{state.path} could not be read ({exc}); the steps it recorded count as never run"
            )
            state.steps = {}
        try:
            with state.journal_path.open(encoding="utf-8") as fh:
                for line in fh:
                    state.journal_lines += 1
                    try:
                        entry = json.loads(line)
                        state.steps[entry["id"]] = StepRecord(**entry["record"])
                    except (ValueError, KeyError, TypeError):
                        continue  # a line torn by a kill: that step did not complete its record
        except FileNotFoundError:
            pass
        except OSError as exc:
            state.problem = f"{state.journal_path} could not be read ({exc})"
        try:
            state.hashes = json.loads((folder / "hashes.json").read_text(encoding="utf-8"))
            if not isinstance(state.hashes, dict):
                state.hashes = {}
        except (OSError, ValueError):
            state.hashes = {}
        return state

    @property
    def journal_path(self) -> Path:
        return self.path.with_name("journal.jsonl")

    def record(self, step_id: str, record: StepRecord) -> None:
        """Keep one step's new record: as one appended journal line, then in memory. A write that
        fails (a full disk) raises, leaving the step unrecorded: at worst a torn line, which loading
        skips and the next append starts after."""
        line = json.dumps({"id": step_id, "record": record.to_json()}, sort_keys=True) + "\n"
        try:
            if self._journal is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._journal = self.journal_path.open("a", encoding="utf-8")
                if self._journal.tell() and not _ends_with_newline(self.journal_path):
                    line = "\n" + line  # after a line torn by a kill or a full disk
            self._journal.write(line)
            self._journal.flush()
        except OSError as exc:
            if self._journal is not None:
                with contextlib.suppress(OSError):
                    self._journal.close()  # drops what it could not write
                self._journal = None
            raise OSError(exc.errno, exc.strerror, exc.filename or str(self.journal_path)) from exc
        self.steps[step_id] = record
        self.journal_lines += 1

    def settle(self) -> None:
        """End of a run: close the journal, and compact it into state.json once it holds more than
        an eighth of the records (so a run that re-ran 2 steps of 1,000 does not rewrite all 1,000)."""
        if self.journal_lines > max(32, len(self.steps) // 8):
            self.save()
        elif self._journal is not None:
            self._journal.close()
            self._journal = None

    def save(self) -> None:
        """Compact: replace state.json atomically with every record, then drop the journal."""
        write_json_atomic(
            self.path, {"format": FORMAT, "steps": {k: v.to_json() for k, v in self.steps.items()}}
        )
        if self._journal is not None:
            self._journal.close()
            self._journal = None
        with contextlib.suppress(FileNotFoundError):
            self.journal_path.unlink()
        self.journal_lines = 0

    def save_hashes(self) -> None:
        write_json_atomic(self.path.with_name("hashes.json"), self.hashes, durable=False)  # a cache


STEPS_LOCK = "steps.lock"  # held (shared) by every step process a runner starts, while it lives


@contextlib.contextmanager
def lab_lock(lab_path: str | Path, *, say: Callable[[str], None] | None = None) -> Iterator[None]:
    """Hold the lab's lock; a second runner waits, saying (through ``say``) who holds it.

    The OS releases a ``flock`` with its process, so a runner killed with SIGKILL leaves no lock
    behind, only its name in the lock file (a clean exit empties it). Finding a name there on
    taking the lock means the last runner was killed: say so, and wait until the step processes
    it left (each holds ``steps.lock`` shared for as long as it lives; the runner's workers end
    them once they see the runner gone) have exited, so that none of them writes an output while
    this run uses it."""
    folder = state_dir(lab_path)
    folder.mkdir(parents=True, exist_ok=True)

    def tell(text: str) -> None:
        if say is not None:
            say(text)

    fd = os.open(folder / "lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        _exclusive(fd, lambda: tell(f"waiting for the lab's lock, held by {_read_holder(fd)}"))
        if os.fstat(fd).st_size:  # a name left behind: its runner never released the lock
            tell(
                f"{_read_holder(fd)} was killed before it finished; taking over its lock "
                "(the steps it completed are kept, the rest run again)"
            )
            steps = os.open(folder / STEPS_LOCK, os.O_RDWR | os.O_CREAT, 0o644)
            try:  # every step process of that runner has exited once this is ours
                _exclusive(steps, lambda: tell("waiting for the steps the killed runner left running to end"))
            finally:
                os.close(steps)
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"pid": os.getpid(), "started": time.time()}).encode(), 0)
        yield
    finally:
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
        os.close(fd)  # closing releases the flock


def _exclusive(fd: int, on_wait: Callable[[], None]) -> None:
    """Take an exclusive ``flock``; when another holds it, call ``on_wait`` and then wait."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        on_wait()
        fcntl.flock(fd, fcntl.LOCK_EX)


def _read_holder(fd: int) -> str:
    try:
        info = json.loads(os.pread(fd, 4096, 0) or b"{}")
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(info["started"]))
        return f"agilab-run pid {info['pid']} (started {started})"
    except (OSError, ValueError, KeyError, TypeError):
        return "another agilab-run"
