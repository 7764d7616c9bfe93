"""What each step last ran with, in ``.agilab/`` beside the lab file; and the lock on it.

``state.json`` maps each step id to the fingerprint components it last succeeded with and the
hashes of the outputs it wrote, a record to a line after an index of fingerprints, so that a state
the stored judgment vouches for is read lazily (:mod:`.steprecords`). During a run each completed step is appended as one line to
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
from collections.abc import Callable, Iterable, Iterator, MutableMapping
from json.decoder import scanstring
from pathlib import Path

from ..load.records import Record
from .hashfile import HashCache, to_columns
from .judgment import HASHES, HASHES_NEW  # the file-hash cache and what runs added to it since
from .longlived import long_lived
from .safe_read import parse_json, read_json, summary
from .steprecords import FORMAT, Records, StepRecord, open_indexed, state_bytes
from .tempfiles import sweep, temp_path

TYPE_CHECKING = False  # typing is not imported at run time: ~2 ms of every run's start-up
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any, TextIO

__all__ = ["FOLDER", "FORMAT", "LabState", "StepRecord", "lab_lock", "new_run_id", "state_dir"]
FOLDER = ".agilab"


def new_run_id() -> str:
    """``20261121T232304.123-bb0f7a`` (UTC, to the millisecond): sortable by time, unique by its
    random tail (which abbreviates it, as a prefix does)."""
    now = time.time()
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now))
    return f"{stamp}.{int(now * 1000) % 1000:03d}-{os.urandom(3).hex()}"  # what secrets.token_hex(3) gives, without its imports


def state_dir(lab_path: str | Path) -> Path:
    return Path(lab_path).resolve().parent / FOLDER


def write_json_atomic(path: Path, payload: Any, *, durable: bool = True) -> None:
    """Replace ``path`` with ``payload`` so that readers see the old file or the new one, never half.
    ``durable``: also survive a power cut (fsync); a cache that can be rebuilt does without."""
    # json.dump and indent= take the pure-Python encoder
    write_text_atomic(path, [json.dumps(payload, sort_keys=True)], durable=durable)


def write_text_atomic(path: Path, chunks: Iterable[str], *, durable: bool = True) -> None:
    """:func:`write_json_atomic` for a text given piece by piece, written as UTF-8."""
    write_bytes_atomic(path, (chunk.encode("utf-8") for chunk in chunks), durable=durable)


def write_bytes_atomic(path: Path, chunks: Iterable[bytes | memoryview], *, durable: bool = True) -> None:
    """:func:`write_text_atomic` for bytes given piece by piece (a 100,000-step state is written a
    stretch of records at a time, never held whole in memory)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(temp_path(path))
    try:
        with tmp.open("wb") as fh:
            for chunk in chunks:
                fh.write(chunk)
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


class LabState(Record):
    """Everything ``.agilab/state.json`` holds for one lab."""

    _fields = (
        "path",
        "steps",
        "hashes",
        "problem",
        "repair",
        "journal_lines",
        "_journal",
        "hashes_new",
    )

    def __init__(
        self,
        path: Path,
        steps: Records | dict[str, StepRecord] | None = None,
        hashes: MutableMapping[str, list[Any]] | None = None,  # the file-hash cache (a HashCache when loaded)
        problem: str | None = None,  # what was damaged (file, line) and skipped; None when all was read
        repair: bool = False,  # something was damaged: the next save rewrites state.json, dropping the journal
        journal_lines: int = 0,  # records in the journal, not yet compacted into state.json
        _journal: TextIO | None = None,
        hashes_new: set[str] | None = None,  # the entries in hashes-new.json
    ) -> None:
        self.path = path
        self.steps = steps if isinstance(steps, Records) else Records(steps)
        self.hashes: MutableMapping[str, list[Any]] = {} if hashes is None else hashes
        self.problem = problem
        self.repair = repair
        self.journal_lines = journal_lines
        self._journal = _journal
        self.hashes_new = set() if hashes_new is None else hashes_new

    @property
    def hashes_damaged(self) -> bool:
        """Whether the hash files held something that is not an entry (read so far): the cache
        is rewritten whole at the end of the run."""
        return isinstance(self.hashes, HashCache) and self.hashes.damaged

    @property
    def hashes_base(self) -> int:
        """How many entries hashes.json itself holds (0: none, or unknown)."""
        return self.hashes.base_count if isinstance(self.hashes, HashCache) else 0

    @classmethod
    def load(cls, lab_path: str | Path, *, trusted: bool = False) -> LabState:
        """Read ``state.json``, replay the journal over it and read the hash cache, defensively: a
        damaged file or record is named (file, line) in :attr:`problem` and skipped — the steps it
        concerned count as never run and are judged again — and the next save rewrites it.

        ``trusted``: the caller knows both files are the ones the last run left (a stored judgment
        holds their signatures): state.json's records are indexed, and parsed when asked for
        (:mod:`.steprecords`)."""
        with long_lived():
            return cls._load(lab_path, trusted)

    @classmethod
    def _load(cls, lab_path: str | Path, trusted: bool = False) -> LabState:
        folder = state_dir(lab_path)
        state = cls(folder / "state.json")
        notes: list[str] = []
        data, why = _read_state(state.path, state.steps) if trusted else read_json(state.path)
        if why is None and data is not None:
            if not isinstance(data, dict) or data.get("format") not in (1, 2, FORMAT):
                found = data.get("format") if isinstance(data, dict) else type(data).__name__
                why = f"unknown state format {found!r}"
            elif not isinstance(data.get("steps", {}), dict):
                why = "its steps are not a table"
            else:
                for sid, value in data.get("steps", {}).items():
                    record = StepRecord.from_json(value)
                    if isinstance(record, str):
                        notes.append(f"{state.path}: step {sid!r}: {record}; it counts as never run")
                        state.repair = True
                    else:
                        state.steps[sid] = record
                state.repair |= data["format"] != FORMAT  # an older layout: rewritten as this one
        if why is not None:
            notes.insert(
                0, f"{state.path} could not be read ({why}); the steps it recorded count as never run"
            )
            state.repair = True
        state.journal_lines, damaged = _replay(state.journal_path, state.steps, notes)
        state.repair |= damaged
        state.hashes = HashCache(folder / HASHES, folder / HASHES_NEW)
        state.hashes_new = state.hashes.at_hand()  # hashes-new.json's
        state.problem = summary(notes)
        return state

    @property
    def journal_path(self) -> Path:
        return self.path.with_name("journal.jsonl")

    def record(self, step_id: str, record: StepRecord) -> None:
        """Keep one step's new record: as one appended journal line, then in memory. A write that
        fails (a full disk) raises, leaving the step unrecorded: at worst a torn line, which loading
        skips and the next append starts after."""
        line = f'{{"id": {json.dumps(step_id)}, "record": {record.json_text()}}}\n'
        try:
            if self._journal is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                _clear_folder(self.journal_path)
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
        an eighth of the records (so a run that re-ran 2 steps of 1,000 does not rewrite all 1,000),
        or has grown past half of state.json's size (a step gathering 10,000 inputs has a record of
        ~1.6 MB: re-run each time, its lines would otherwise pile up)."""
        if (
            self.repair
            or self.journal_lines > max(32, len(self.steps) // 8)
            or self._journal_bytes() > max(1 << 20, self._state_bytes() // 2)
        ):
            self.save()
        elif self._journal is not None:
            self._journal.close()
            self._journal = None

    def _journal_bytes(self) -> int:
        try:
            return self._journal.tell() if self._journal is not None else 0
        except (OSError, ValueError):
            return 0

    def _state_bytes(self) -> int:
        try:
            return self.path.stat().st_size
        except OSError:
            return 0

    def save(self) -> None:
        """Compact: replace state.json atomically with every record, then drop the journal."""
        _clear_folder(self.path)
        write_bytes_atomic(self.path, state_bytes(self.steps))
        if self._journal is not None:
            self._journal.close()
            self._journal = None
        with contextlib.suppress(FileNotFoundError):
            _clear_folder(self.journal_path)
            self.journal_path.unlink()
        self.journal_lines = 0
        self.repair = False

    def save_hashes(self, updated: Iterable[str] | None = None) -> None:
        """Keep the file-hash cache (not durably: it can be rebuilt). ``updated``: the entries this
        run added or changed; while they and the earlier additions are few (an eighth of the
        base), only they are written, to hashes-new.json, instead of every entry again."""
        new = None if updated is None or self.hashes_damaged else self.hashes_new | set(updated)
        base = self.path.with_name(HASHES)
        overlay = self.path.with_name(HASHES_NEW)
        if new is not None and len(new) <= max(64, self.hashes_base // 8) and base.is_file():
            _clear_folder(overlay)
            write_json_atomic(overlay, {k: self.hashes[k] for k in sorted(new)}, durable=False)
            self.hashes_new = new
            return
        _clear_folder(base)
        entries = dict(self.hashes.items())  # (a HashCache reads hashes.json for this)
        write_json_atomic(base, to_columns(entries), durable=False)  # first: the additions are in it now
        with contextlib.suppress(FileNotFoundError):
            _clear_folder(overlay)
            overlay.unlink()
        self.hashes = HashCache.of(entries)
        self.hashes_new = set()


def _read_state(path: Path, steps: Records) -> tuple[Any, str | None]:
    """:func:`read_json` for a trusted state file: when it is laid out as written, its records are
    indexed into ``steps`` and the value returned is None (nothing left to parse)."""
    if open_indexed(str(path), steps):
        return None, None
    return read_json(path)  # parsed whole; says why it cannot be


def _replay(path: Path, steps: Records, notes: list[str]) -> tuple[int, bool]:
    """Replay the journal's records over ``steps``; (records seen, whether a line was damaged).
    A damaged line (not UTF-8, NUL bytes, not a record) is named and skipped; an unfinished last
    line (no newline: torn by a kill) is skipped silently, as that step never completed.

    Read from the end: a line for a step that a later line records again is not parsed (a step
    gathering 10,000 inputs, re-run after each change, appends ~1.6 MB each time)."""
    try:
        with path.open("rb") as fh:
            lines = fh.read().split(b"\n")
    except (FileNotFoundError, NotADirectoryError):
        return 0, False
    except OSError as exc:
        notes.append(f"{path} could not be read ({exc.strerror or exc}); its records are ignored")
        return 0, True
    count, damaged = 0, False
    found: dict[str, StepRecord] = {}
    damage: list[tuple[int, str]] = []
    for number in range(len(lines), 0, -1):
        line = lines[number - 1]
        if not line.strip(b" \t\r"):
            continue
        count += 1
        cut = line.find(b'", "record": ', 8) if line.startswith(b'{"id": "') else -1  # as written
        if cut >= 0:  # the id alone is decoded (the record may be megabytes): quotes in it are escaped
            try:
                if scanstring(line[: cut + 1].decode("latin-1"), 8)[0] in found:
                    continue  # recorded again further down
            except ValueError:
                pass
        entry, why = parse_json(line)
        if why is not None and number == len(lines) and b"\0" not in line and not why.startswith("not UTF"):
            continue  # torn by a kill
        if why is None:
            if not isinstance(entry, dict) or not isinstance(entry.get("id"), str):
                why = f"a {type(entry).__name__}, not a step record"
            elif entry["id"] in found:
                continue
            else:
                record = StepRecord.from_json(entry.get("record"))
                if isinstance(record, StepRecord):
                    found[entry["id"]] = record
                    continue
                why = f"step {entry['id']!r}: {record}"
        damage.append((number, f"{path}:{number}: {why}; skipped (its step is judged again)"))
        damaged = True
    notes.extend(note for _, note in sorted(damage))
    for step_id, record in found.items():
        steps[step_id] = record
    return count, damaged


def _clear_folder(path: Path) -> None:
    """A folder where one of the tool's own files belongs (made by hand or by a sync tool) is removed,
    so that the file can be written again."""
    if path.is_dir() and not path.is_symlink():
        import shutil

        shutil.rmtree(path)


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
        own = (folder, folder / "history", folder / "history-pending")
        sweep([folder.parent], own=own)  # what killed writers left (their pid is in the name)
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
