"""The helpers of bench/w1.py: the W1 workload is a valid lab and dodo file at six-digit ids, and the
staleness check the bench relies on (which steps a run ran, read from its events) tells a cold run,
a no-op, a changed and a touched input apart on a real run of a small W1 — and fails loudly when the
answer is not the expected one."""

from __future__ import annotations

import os
import sys
import tomllib
from pathlib import Path

import pytest

from agilab_dsl.load.lab import load_lab

BENCH = Path(__file__).resolve().parent.parent / "bench"
sys.path.insert(0, str(BENCH))

import _measure as m  # noqa: E402
import _w1lab as w  # noqa: E402


def test_lab_scales_to_six_digit_ids(tmp_path: Path) -> None:
    text = w.lab_text(3)
    data = tomllib.loads(text)
    assert [s["id"] for s in data["bench"]] == ["s000000", "s000001", "s000002", "gather"]
    assert data["bench"][-1]["consumes"] == ["out/000000.txt", "out/000001.txt", "out/000002.txt"]
    assert w.step_id(99_999) == "s099999" and m.doit_name("s099999") == "s:099999"
    lab = w.make_ours(tmp_path / "ours", 3)
    result = load_lab(lab)
    assert result.value is not None, result.diagnostics
    assert len(result.value.stages) == 4
    assert w.input_path(lab.parent, 2).read_text(encoding="utf-8").startswith("line 2")


def test_dodo_defines_the_same_pipeline(tmp_path: Path) -> None:
    dodo = w.make_doit(tmp_path / "doit", 3, "dbm")
    namespace: dict[str, object] = {}
    exec(compile(dodo.read_text(encoding="utf-8"), str(dodo), "exec"), namespace)
    tasks = list(namespace["task_s"]())  # type: ignore[operator]
    assert [t["name"] for t in tasks] == ["000000", "000001", "000002"]
    assert tasks[1]["actions"] == ["cp in/000001.txt out/000001.txt"]
    gather = namespace["task_gather"]()  # type: ignore[operator]
    assert gather["file_dep"] == ["out/000000.txt", "out/000001.txt", "out/000002.txt"]
    assert namespace["DOIT_CONFIG"] == {"backend": "dbm", "dep_file": ".doit.db"}


def test_touch_keeps_the_content_and_moves_the_mtime(tmp_path: Path) -> None:
    w.make_ours(tmp_path / "lab", 2)
    path = w.input_path(tmp_path / "lab", 1)
    before, mtime = path.read_bytes(), path.stat().st_mtime_ns
    w.touch(tmp_path / "lab", 1)
    assert path.read_bytes() == before and path.stat().st_mtime_ns > mtime
    w.change(tmp_path / "lab", 1)
    assert path.read_bytes() != before


def test_expect_fails_loudly() -> None:
    m.expect("same", {"a", "gather"}, {"a", "gather"})
    with pytest.raises(m.BenchFailure, match=r"ran but should not: \['b'\]; should have run: \['gather'\]"):
        m.expect("changed", {"a", "b"}, {"a", "gather"})
    with pytest.raises(m.BenchFailure, match="not fresh"):
        m.all_fresh('{"steps": [{"id": "a", "state": "stale"}]}', 1)
    with pytest.raises(m.BenchFailure, match="2 steps listed"):
        m.all_fresh('{"steps": [{"id": "a", "state": "fresh"}, {"id": "b", "state": "fresh"}]}', 1)


def test_doit_output_is_read() -> None:
    out = "-- s:000000\n.  s:000001\n.  gather\n"
    assert m.doit_ran(out) == {"s:000001", "gather"}


def test_timed_reports_rss_and_failures(tmp_path: Path) -> None:
    folder = tmp_path / "work"
    folder.mkdir()
    env = dict(os.environ)
    t = m.timed([sys.executable, "-c", "b = bytearray(64 * 2**20); print('hi')"], folder, env)
    assert t.stdout == "hi\n" and t.max_rss_mb >= 64 and t.seconds > 0
    # CPU and page faults of the command's whole tree: here a child that burns 0.3 s of CPU
    burn = "import subprocess, sys; subprocess.run([sys.executable, '-c', 'import time\\nwhile time.process_time() < 0.3: pass'])"
    t = m.timed([sys.executable, "-c", burn], folder, env)
    assert t.cpu_seconds >= 0.3 and t.page_faults > 0
    assert list(folder.iterdir()) == []  # the captured output lies beside the folder
    with pytest.raises(m.BenchFailure, match="exited 3"):
        m.timed([sys.executable, "-c", "raise SystemExit(3)"], folder, env)
    with pytest.raises(m.TimedOut):
        m.timed([sys.executable, "-c", "import time; time.sleep(30)"], folder, env, timeout=0.3)


def test_ran_steps_of_real_runs(tmp_path: Path) -> None:
    """The staleness check of the bench on real runs of W1 at N = 3 (this checkout's runner)."""
    lab = w.make_ours(tmp_path / "w1", 3)
    folder = lab.parent
    tool = [sys.executable, "-m", "agilab_dsl"]
    env = dict(os.environ)

    def run() -> set[str]:
        before = m.run_folders(folder)
        m.timed([*tool, w.LAB, "-j", "1"], folder, env)
        return m.ran_since(folder, before)

    assert run() == w.all_ids(3)
    m.all_fresh(m.timed([*tool, "status", w.LAB, "--json"], folder, env).stdout, 4)
    assert run() == set()
    w.change(folder, 1)
    assert run() == {"s000001", "gather"}
    assert w.output_path(folder, 1).read_bytes() == w.input_path(folder, 1).read_bytes()
    w.touch(folder, 2)
    assert run() == set()
    with pytest.raises(m.BenchFailure, match="no run_finished"):
        broken = folder / ".agilab" / "runs" / "19700101T000000.000-000000"
        broken.mkdir()
        (broken / "events.jsonl").write_text('{"kind": "run_started"}\n', encoding="utf-8")
        m.ran_since(folder, m.run_folders(folder) - {broken.name})


def test_the_floor_probe_times_the_gathers_reading_and_a_stat_per_file(tmp_path: Path) -> None:
    import json
    import subprocess

    import _w1report

    lab = w.make_ours(tmp_path / "l", 7).parent
    (lab / "out").mkdir(exist_ok=True)
    for name in os.listdir(lab / "in"):  # the copies, as a run leaves them
        (lab / "out" / name).write_bytes((lab / "in" / name).read_bytes())
    proc = subprocess.run(
        [sys.executable, str(BENCH / "_w1floor.py"), str(lab), "--repeat", "1"],
        capture_output=True,
        text=True,
        check=True,
    )
    floor = json.loads(proc.stdout)
    assert floor["n"] == 7 and all(floor[k] > 0 for k in ("gather", "stat", "start"))
    text = _w1report.floor_text(floor)
    assert "reading of 7 files" in text and "each of the 14 files" in text
    assert text.endswith(f"= {floor['gather'] + floor['stat'] + floor['start']:.2f} s")


def test_the_report_gives_cpu_and_page_faults_beside_the_times(capsys: pytest.CaptureFixture[str]) -> None:
    import _w1report
    from w1 import Size

    size = Size(1000)
    size.cpu["ours"]["cold -j1"] += [4.0, 5.0, 6.0]
    size.cpu["doit"]["cold -j1"] += [8.0, 10.0, 12.0]
    size.faults["ours"]["cold -j1"] += [300_000, 310_000, 320_000]
    size.faults["doit"]["cold -j1"] += [900_000, 910_000, 920_000]
    _w1report._print_cpu([size])
    out = capsys.readouterr().out
    assert "| cold run -j 1 | 1,000 | 5.00 s | 10.00 s | 0.50x | 310,000 | 910,000 |" in out
    assert "one input changed" not in out  # no samples: no row
