"""Damaged files under ``.agilab/`` never crash a call (issue 16, failures 2 and 4): history records
and Parquet files, temporary files of dead writers, the detached writer of a deleted lab, and a
slice of ``tests/fault/damaged_state.py`` through the real CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from agilab_dsl.plan.tempfiles import sweep, temp_path
from agilab_dsl.record import history, rows
from agilab_dsl.record.query import listing

ROOT = Path(__file__).resolve().parents[1]


def run(run_id: str, **changes: object) -> dict[str, object]:
    record = rows.RunRecord(
        run_id, 1.0, 2.0, "ok", "lab_steps.toml", "h", "app", None, None, [rows.StepRow("a", "ran")]
    )
    return record.to_json() | changes


def test_one_bad_pending_record_or_history_file_never_hides_the_others(tmp_path: Path) -> None:
    pending = tmp_path / history.PENDING
    pending.mkdir(parents=True)
    (pending / "20200101T000000.000-aaaaaa.json").write_text(json.dumps(run("20200101T000000.000-aaaaaa")))
    (pending / "20200102T000000.000-bbbbbb.json").write_text(json.dumps([1, 2]))
    (pending / "20200103T000000.000-cccccc.json").write_text(
        json.dumps(run("20200103T000000.000-cccccc", started="x"))
    )
    (pending / "20200104T000000.000-dddddd.json").mkdir()  # a folder where a record belongs
    (pending / "20200105T000000.000-eeeeee.json").write_text(
        json.dumps(run("20200105T000000.000-eeeeee", steps=[{"step_id": "a", "status": 3}]))
    )
    notes: list[str] = []
    assert history.flush(tmp_path, notes.append) == 1
    assert len(notes) == 4 and all("could not be read" in n for n in notes)
    assert history.flush(tmp_path, notes.append) == 0 and len(notes) == 4  # set aside: not tried again
    import pyarrow as pa
    import pyarrow.parquet as pq

    good = tmp_path / history.HISTORY / "20200101T000000.000-aaaaaa.parquet"
    rows = pq.read_table(good).to_pylist()
    bad = good.with_name("20200109T000000.000-ffffff.parquet")
    pq.write_table(pa.Table.from_pylist([r | {"run_started": "yesterday"} for r in rows]), bad)
    good.with_name("20200108T000000.000-gggggg.parquet").write_bytes(b"\0" * 100)
    listed = listing(tmp_path)
    assert [r.run_id for r, _ in listed] == ["20200101T000000.000-aaaaaa"]
    assert sorted(str(e) for _, e in listed.skipped)[1] == "run_started is not a time"


def test_the_detached_writer_never_recreates_a_deleted_lab(tmp_path: Path) -> None:
    gone = tmp_path / "lab"
    assert history.main([str(gone)]) == 0
    assert not gone.exists()
    (gone / ".agilab").mkdir(parents=True)
    assert history.main([str(gone)]) == 0 and not (gone / history.HISTORY).exists()


def test_temporary_files_of_dead_processes_are_swept_and_live_ones_kept(tmp_path: Path) -> None:
    dead = tmp_path / ".out.csv.999999999.tmp"
    live = tmp_path / ".out.csv.1.tmp"  # pid 1 runs
    mine = Path(temp_path(tmp_path / "out.csv"))
    plain = tmp_path / "out.csv.999999999.tmp"  # not ours outside .agilab/: kept
    own = tmp_path / "own"
    own.mkdir()
    own_dead = own / "judgment.json.999999999.tmp"
    for p in (dead, live, mine, plain, own_dead):
        p.write_text("x")
    assert sorted(sweep([tmp_path], own=[own])) == sorted([dead, own_dead])
    assert live.exists() and mine.exists() and plain.exists()


def test_a_slice_of_the_damaged_state_fault_script() -> None:
    pytest.importorskip("pyarrow")
    done = subprocess.run(
        [sys.executable, str(ROOT / "tests/fault/damaged_state.py"), "--every", "8"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 tracebacks, 0 calls failed, 0 labs not recovered" in done.stdout
