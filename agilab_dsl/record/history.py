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
from pathlib import Path

from ..plan.safe_read import read_json
from ..plan.tempfiles import temp_path
from .parquet_schema import schema
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


def _rows(run: RunRecord) -> list[dict[str, Any]]:
    from datetime import UTC, datetime

    head = {
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
    rows = []
    for s in run.steps:
        row = head | vars(s)
        row["params"] = _json(s.params)
        row["settings"] = _json(s.settings)
        row["metrics"] = list(s.metrics.items())
        row["tracked_params"] = list(s.tracked_params.items())
        row["tracked_tags"] = list(s.tracked_tags.items())
        rows.append(row)
    return rows


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, sort_keys=True, default=str)


def flush(lab_dir: Path, note: Callable[[str], None] | None = None) -> int:
    """Turn every pending record into its Parquet file; how many were turned. A record that
    cannot be written stays pending, and ``note`` (if given) is told so, in words."""
    pending = lab_dir / PENDING
    try:
        names = sorted(n for n in os.listdir(pending) if n.endswith(".json") and not n.startswith("."))
    except (FileNotFoundError, NotADirectoryError):
        return 0
    if not names:
        return 0
    import pyarrow as pa
    import pyarrow.parquet as pq

    history = lab_dir / HISTORY
    try:  # never ``parents``: a lab folder deleted since the run stays deleted (the record is dropped)
        history.mkdir(exist_ok=True)
    except OSError:
        return 0
    sources: dict[str, dict[str, dict[str, Any]]] = {}  # run id -> step id -> row, as read
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
                _fill_fresh(lab_dir, run, sources)
                table = pa.Table.from_pylist(_rows(run), schema=schema())
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
        sources[run.run_id] = {s.step_id: vars(s) for s in run.steps}
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


def _fill_fresh(lab_dir: Path, run: RunRecord, sources: dict[str, dict[str, dict[str, Any]]]) -> None:
    """A fresh step's row is written by the runner as a reference (its fingerprint and the run it
    last ran in: no cost on the hot path); its code, params, settings, inputs and outputs are
    copied here from that run's record — the same fingerprint means the same values. Outputs'
    sizes are read now."""
    for row in run.steps:
        if row.status != "fresh" or row.ran_in is None or row.params is not None:
            continue
        if row.ran_in not in sources:
            sources[row.ran_in] = _steps_of(lab_dir, row.ran_in)
        earlier = sources[row.ran_in].get(row.step_id)
        if earlier is None or earlier.get("fingerprint") != row.fingerprint:
            continue  # that run is not recorded (history began later): the details stay empty
        for name in FROM_RAN_IN:
            setattr(row, name, earlier.get(name))
        row.outputs = [dict(o) | {"size": size_of(lab_dir / o["path"])} for o in row.outputs or ()]


def _steps_of(lab_dir: Path, run_id: str) -> dict[str, dict[str, Any]]:
    """The rows of a recorded run by step id (params and settings decoded), or {}."""
    import pyarrow.parquet as pq

    try:
        rows = pq.read_table(lab_dir / HISTORY / f"{run_id}.parquet").to_pylist()
    except (OSError, ValueError):
        return {}
    for r in rows:
        for name in ("params", "settings"):
            r[name] = json.loads(r[name]) if r[name] is not None else None
    return {r["step_id"]: r for r in rows}


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
    for folder in args:  # its own stderr: /dev/null when the runner spawned it
        flush(Path(folder), lambda text: print(f"agilab-run: {text}", file=sys.stderr))
    return 0


if __name__ == "__main__":  # pragma: no cover - the detached flusher
    raise SystemExit(main())
