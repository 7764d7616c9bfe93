"""The experiment history: every real run recorded as one Parquet file, one row per step.

Layout, beside the lab::

    .agilab/history/<run id>.parquet      one file per run (a dataset for pyarrow, pandas, DuckDB)
    .agilab/history-pending/<run id>.json  a run's record as the runner left it

A run must not pay for importing pyarrow (~0.2 s: more than a whole run after a small change), so
the runner writes its record as JSON (temporary name, then rename) and starts a detached
``python -m agilab_dsl.record.history LAB_DIR`` that turns pending records into Parquet files (again
temporary name, then rename; the JSON goes only after the Parquet file is in place). Anything that
reads the history flushes pending records first. A crash at any moment therefore never damages a
run already recorded, and at worst leaves a record pending until the next reader converts it.

The schema is versioned in each file's metadata (``agilab.history.schema``). This module writes
the history (what a run records is in :mod:`.rows`); :mod:`agilab_dsl.record.query` reads it back
(lists, resolves and compares runs).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Callable
from operator import attrgetter
from pathlib import Path

from ..plan.safe_read import read_json
from ..plan.tempfiles import temp_path
from .parquet_schema import hide_pandas, import_pyarrow, schema
from .rows import FROM_RAN_IN, RunRecord

TYPE_CHECKING = False  # typing is not imported at run time: ~2 ms of every run's start-up
if TYPE_CHECKING:  # pragma: no cover
    import subprocess
    from typing import Any

HISTORY = Path(".agilab") / "history"
PENDING = Path(".agilab") / "history-pending"


# -- git ---------------------------------------------------------------------------------------
class GitProbe:
    """``git status`` started when the run starts and read when it ends (no wait on the hot path)."""

    def __init__(self, folder: Path) -> None:
        self.proc: subprocess.Popen[bytes] | None = None
        root = next((p for p in (folder, *folder.parents) if (p / ".git").exists()), None)
        if root is None:
            return
        import subprocess  # here: only a lab in a git repository pays for its import (~2.5 ms)

        with contextlib.suppress(OSError):
            self.proc = subprocess.Popen(
                ["git", "status", "--porcelain=v2", "--branch", "--untracked-files=no"],
                cwd=root,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                stdin=subprocess.DEVNULL,
            )

    def result(self) -> tuple[str | None, bool | None]:
        """(commit, dirty), or (None, None) outside a repository or without git."""
        if self.proc is None:
            return None, None
        import subprocess  # imported already: a probe was started

        try:
            out, _ = self.proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return None, None
        if self.proc.returncode != 0:
            return None, None
        commit = None
        dirty = False
        for line in out.decode("utf-8", "replace").splitlines():
            if line.startswith("# branch.oid "):
                oid = line.split()[2]
                commit = None if oid == "(initial)" else oid
            elif line and not line.startswith("#"):
                dirty = True
        return commit, dirty


# -- writing -----------------------------------------------------------------------------------
def record(
    lab_dir: Path, run: RunRecord, *, background: bool = True, note: Callable[[str], None] | None = None
) -> Path:
    """Keep ``run`` (atomically, as pending JSON) and have it turned into Parquet: by a detached
    process (``background``), or here and now (``note`` then hears of a record left pending)."""
    pending = lab_dir / PENDING
    pending.mkdir(parents=True, exist_ok=True)
    path = pending / f"{run.run_id}.json"
    tmp = Path(temp_path(path))
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.writelines(run.json_text())
    os.replace(tmp, path)
    if background and os.environ.get("AGILAB_HISTORY_SYNC") != "1":
        _spawn_flusher(lab_dir)
        return path
    flush(lab_dir, note)
    return lab_dir / HISTORY / f"{run.run_id}.parquet"


_flushers: list[int] = []  # spawned and not yet reaped (a long-lived caller, such as watch mode)


def _spawn_flusher(lab_dir: Path) -> None:
    """Start the detached flusher. posix_spawn, not fork: forking the runner (tens of MB, maybe
    threads) costs ~12 ms; spawning costs ~1 ms. Its own session: a Ctrl-C of the run does not
    reach it."""
    for pid in list(_flushers):
        with contextlib.suppress(ChildProcessError):
            if os.waitpid(pid, os.WNOHANG)[0] == 0:
                continue
        _flushers.remove(pid)
    null = [(os.POSIX_SPAWN_OPEN, fd, os.devnull, os.O_RDWR, 0) for fd in (0, 1, 2)]
    with contextlib.suppress(OSError):
        _flushers.append(
            os.posix_spawn(
                sys.executable,
                [sys.executable, "-m", "agilab_dsl.record.history", str(lab_dir)],
                os.environ,
                file_actions=null,
                setsid=True,
            )
        )


def _head(run: RunRecord) -> dict[str, Any]:
    """The run's own columns, the same in each of its rows."""
    from datetime import UTC, datetime

    return {
        "run_id": run.run_id,
        "run_started": datetime.fromtimestamp(run.started, UTC),
        "run_ended": datetime.fromtimestamp(run.ended, UTC),
        "run_status": run.status,
        "lab": run.lab,
        "lab_hash": run.lab_hash,
        "app": run.app,
        "git_commit": run.git_commit,
        "git_dirty": run.git_dirty,
    }


_AS_JSON = ("params", "settings")  # values of any type: kept as JSON text
_AS_MAP = ("metrics", "tracked_params", "tracked_tags")


def _table(lab_dir: Path, run: RunRecord) -> Any:
    """The run's rows as a Parquet-ready table, built a column at a time. A fresh step's row comes
    from the runner as a reference (its fingerprint and the run it last ran in: no cost on the hot
    path); its code, params, settings, inputs and outputs are taken here from that run's file — the
    same fingerprint means the same values — as Arrow columns, never as a Python object per row
    (at 100,000 steps that took 25 s and 3.9 GB). Outputs' sizes are read now."""
    import pyarrow as pa

    fields = schema()
    steps = run.steps
    columns = {
        name: pa.repeat(pa.scalar(value, fields.field(name).type), len(steps))
        for name, value in _head(run).items()
    }
    names = [f.name for f in fields if f.name not in columns]
    # the rows turned into columns in C (a Python loop per cell: ~1 s at 100,000 steps)
    by_column = zip(*map(attrgetter(*names), steps), strict=True) if steps else ([] for _ in names)
    for field, cells in zip((fields.field(n) for n in names), by_column, strict=True):
        if field.name in _AS_JSON:
            cells = tuple(_json(v) for v in cells)  # noqa: PLW2901
        elif field.name in _AS_MAP:
            cells = tuple(list(v.items()) for v in cells)  # noqa: PLW2901
        columns[field.name] = pa.array(cells, field.type)
    refs: dict[str, list[int]] = {}
    for n, s in enumerate(steps):
        if s.status == "fresh" and s.ran_in is not None and s.params is None:
            refs.setdefault(s.ran_in, []).append(n)
    where = list(range(len(steps)))  # each row's place in [its own values, then every part taken]
    taken: list[Any] = []
    filled = len(steps)
    for ran_in, rows in refs.items():
        ids = [steps[n].step_id for n in rows]
        source = _source(lab_dir, ran_in, ids)
        if source is None:
            continue  # that run is not recorded (history began later): the details stay empty
        part = _taken(source, ids, [steps[n].fingerprint for n in rows])
        if part is None:
            continue
        found, table = part
        for k in found:
            where[rows[k]] = filled
            filled += 1
        taken.append(table)
    if taken:
        order = pa.array(where, pa.int64())
        for name in FROM_RAN_IN:
            parts = [columns[name], *(t.column(name).combine_chunks() for t in taken)]
            if name == "outputs":
                parts[1:] = [_sized(lab_dir, part) for part in parts[1:]]
            columns[name] = pa.concat_arrays(parts).take(order)
    return pa.Table.from_arrays([columns[f.name] for f in fields], schema=fields)


def _source(lab_dir: Path, run_id: str, ids: list[str]) -> Any:
    """The rows of these steps in a recorded run, with the columns fresh rows take from it; None
    when the run has no readable file. Only those rows are kept (a run's file is read once per
    run recorded from it: keeping 8 runs of 100,000 rows whole took ~0.5 GB)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return pq.read_table(
            lab_dir / HISTORY / f"{run_id}.parquet",
            columns=["step_id", "fingerprint", *FROM_RAN_IN],
            filters=[("step_id", "in", ids)],
        )
    except (OSError, ValueError, KeyError, pa.ArrowException):
        return None


def _taken(source: Any, ids: list[str], fingerprints: list[str | None]) -> tuple[list[int], Any] | None:
    """Which of these steps ``source`` holds with the same fingerprint (their positions in ``ids``)
    and the values they take from it, in that order (None: no column of the right type)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    fields = schema()
    try:  # (a file of another schema, or damaged: the details stay empty, the run is still recorded)
        at = pc.index_in(pa.array(ids, pa.string()), value_set=source.column("step_id").combine_chunks())
        same = pc.equal(source.column("fingerprint").take(at), pa.array(fingerprints, pa.string()))
        found = [k for k, ok in enumerate(same.to_pylist()) if ok]
        table = source.select(list(FROM_RAN_IN)).take(at.take(pa.array(found, pa.int64())))
        return found, pa.Table.from_arrays(
            [table.column(name).cast(fields.field(name).type) for name in FROM_RAN_IN],
            names=list(FROM_RAN_IN),
        )
    except (KeyError, pa.ArrowException):
        return None


def _sized(lab_dir: Path, outputs: Any) -> Any:
    """``outputs`` (a list of {path, hash, size} per row) with each size read now."""
    import pyarrow as pa

    items = outputs.values.flatten()  # path, hash, size of every listed output
    root = str(lab_dir)
    paths = items[0].to_pylist()
    sizes = pa.array([None if p is None else size_of(os.path.join(root, p)) for p in paths], pa.int64())
    struct = pa.StructArray.from_arrays([items[0], items[1], sizes], names=["path", "hash", "size"])
    return pa.ListArray.from_arrays(outputs.offsets, struct, type=outputs.type)


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, sort_keys=True, default=str)


def flush(lab_dir: Path, note: Callable[[str], None] | None = None) -> int:
    """Turn every pending record into its Parquet file; how many were turned. A record that
    cannot be written stays pending, and ``note`` (if given) is told so, in words."""
    pending = lab_dir / PENDING
    names = sorted(_pending_names(lab_dir))
    if not names:
        return 0
    pa = import_pyarrow()
    import pyarrow.parquet as pq

    history = lab_dir / HISTORY
    try:  # never ``parents``: a lab folder deleted since the run stays deleted (the record is dropped)
        history.mkdir(exist_ok=True)
    except OSError:
        return 0
    done = 0
    for name in names:
        source = pending / name
        data, why = read_json(source)
        if data is None and why is None:
            continue  # another flusher took it
        run = _run_from(data) if why is None else why
        table: Any = None
        if isinstance(run, RunRecord):
            try:
                table = _table(lab_dir, run)
            except (TypeError, ValueError, OverflowError, AttributeError, KeyError, pa.ArrowException) as exc:
                run = f"{type(exc).__name__}: {exc}"
        if not isinstance(run, RunRecord):
            _set_aside(source, run, note)
            continue
        target = history / f"{run.run_id}.parquet"
        tmp = Path(temp_path(target))  # a leading dot: datasets ignore it
        try:
            pq.write_table(table, tmp)
            os.replace(tmp, target)
        except OSError as exc:  # a full disk, say: the pending record stays for the next flush
            if note is not None:
                note(f"history: {run.run_id} stays pending ({exc})")
            with contextlib.suppress(OSError):
                tmp.unlink()
            continue
        with contextlib.suppress(FileNotFoundError):
            source.unlink()
        done += 1
    return done


def _set_aside(source: Path, why: str, note: Callable[[str], None] | None) -> None:
    """A pending record that cannot be read is renamed ``*.unreadable`` (kept for a human; never
    lost, never tried again), and named."""
    aside = source.with_suffix(".unreadable")
    try:
        os.replace(source, aside) if not aside.is_dir() else None
    except OSError:
        aside = source
    if note is not None:
        note(f"history: {source} could not be read ({why[:200]}); kept as {aside.name}, not recorded")


_RUN_TEXT = ("run_id", "status", "lab", "lab_hash", "app")


def _run_from(data: Any) -> RunRecord | str:
    """The run a pending record holds, or why it holds none (wrongly typed fields, say)."""
    if not isinstance(data, dict):
        return f"a {type(data).__name__}, not a run record"
    if any(not isinstance(data.get(k), str) for k in _RUN_TEXT):
        return f"one of {', '.join(_RUN_TEXT)} is missing or not a text"
    if any(
        not isinstance(data.get(k), int | float) or isinstance(data.get(k), bool)
        for k in ("started", "ended")
    ):
        return "started or ended is not a number"
    steps = data.get("steps")
    if not isinstance(steps, list) or not all(
        isinstance(s, dict) and isinstance(s.get("step_id"), str) for s in steps
    ):
        return "steps is not a list of step records"
    try:
        return RunRecord.from_json(data)
    except (TypeError, ValueError, KeyError) as exc:
        return f"{type(exc).__name__}: {exc}"


def size_of(path: str | Path) -> int | None:
    try:
        return os.stat(path).st_size
    except OSError:
        return None


def main(argv: list[str] | None = None) -> int:
    """``python -m agilab_dsl.record.history LAB_DIR``: turn the pending records into Parquet files."""
    args = sys.argv[1:] if argv is None else argv
    with contextlib.suppress(OSError):
        os.nice(10)  # after the run it belongs to, and never before the user's next one
    hide_pandas()  # this process runs no step's code
    for folder in args:  # its own stderr: /dev/null when the runner spawned it
        flush_alone(Path(folder), lambda text: print(f"agilab-run: {text}", file=sys.stderr))
    return 0


FLUSHER_LOCK = ".flusher.lock"  # in the pending folder: held by the detached flusher at work


def flush_alone(lab_dir: Path, note: Callable[[str], None] | None = None) -> int:
    """:func:`flush`, unless another detached flusher is at work on this lab: that one looks again
    once done, and takes the records that came meanwhile. Runs back to back each spawn a flusher,
    and without this they piled up (six at once, ~150 MB each with pyarrow, after six runs of a
    1,000-step lab), flushing the same records in turn. How many records this call turned."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not on POSIX: every flusher flushes
        return flush(lab_dir, note)
    done = 0
    while True:
        before = _pending_names(lab_dir)
        try:
            fd = os.open(lab_dir / PENDING / FLUSHER_LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError:  # no pending folder (a lab deleted since): nothing to flush
            return done
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                return done  # the flusher at work looks again after it lets go (below)
            done += flush(lab_dir, note)
        finally:
            os.close(fd)  # lets go of the lock
        if not _pending_names(lab_dir) - before:  # no record came while it worked (one that could
            return done  # not be written stays for the next flush: no looping on it)


def _pending_names(lab_dir: Path) -> set[str]:
    try:
        return {n for n in os.listdir(lab_dir / PENDING) if n.endswith(".json") and not n.startswith(".")}
    except OSError:
        return set()


if __name__ == "__main__":  # pragma: no cover - the detached flusher
    raise SystemExit(main())
