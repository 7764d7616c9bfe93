"""State survives kills: the journal, torn lines, SIGKILL and Ctrl-C of a real runner."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agilab_dsl.plan.hashfile import entries_of
from agilab_dsl.plan.state import LabState, StepRecord

HANG = "import os\nPath('s3.pid').write_text(str(os.getpid()))\ntime.sleep(30)"
SLOW_LAB = "".join(
    f'[[m]]\nid = "s{i}"\nC = """\nimport time\nfrom pathlib import Path\n{HANG if i == 3 else "pass"}\n'
    f'Path(outputs[0]).write_text("{i}")\n"""\nproduces = ["out/{i}.txt"]\n\n'
    for i in range(5)
)  # no deps: runs in order; s3 writes its pid and hangs


def record(n: int) -> StepRecord:
    return StepRecord(f"fp{n}", {"code": str(n)}, {}, 0.0, 0.1, "run")


def test_journal_replays_over_state_and_ignores_a_torn_line(tmp_path: Path) -> None:
    lab = tmp_path / "lab_steps.toml"
    state = LabState.load(lab)
    state.record("a", record(1))
    state.save()  # compacted
    state = LabState.load(lab)
    state.record("b", record(2))
    state.record("a", record(3))
    assert not state.path.with_name("state.json.tmp").exists()
    with state.journal_path.open("a", encoding="utf-8") as fh:
        fh.write('{"id": "c", "record": {"fingerp')  # a kill in the middle of a write
    again = LabState.load(lab)
    assert {k: v.fingerprint for k, v in again.steps.items()} == {"a": "fp3", "b": "fp2"}
    again.record("d", record(4))  # appended on a line of its own, not glued to the torn one
    again.settle()
    again = LabState.load(lab)
    assert {k: v.fingerprint for k, v in again.steps.items()} == {"a": "fp3", "b": "fp2", "d": "fp4"}
    again.save()
    assert not again.journal_path.exists()
    assert set(json.loads(again.path.read_text())["steps"]) == {"a", "b", "d"}


def test_settle_compacts_only_a_journal_that_grew(tmp_path: Path) -> None:
    lab = tmp_path / "lab_steps.toml"
    state = LabState.load(lab)
    for n in range(40):
        state.record(f"s{n}", record(n))
    state.settle()  # 40 journal lines > 32: compacted
    assert not state.journal_path.exists() and len(json.loads(state.path.read_text())["steps"]) == 40
    state = LabState.load(lab)
    state.record("s1", record(100))
    state.settle()  # one line: appended only, state.json untouched
    assert (
        state.journal_path.exists()
        and json.loads(state.path.read_text())["steps"]["s1"]["fingerprint"] == "fp1"
    )
    again = LabState.load(lab)
    assert again.steps["s1"].fingerprint == "fp100" and again.journal_lines == 1


def _wait_for(path: Path, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def _run(lab: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agilab_dsl", str(lab), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _ran(lab: Path) -> list[str]:
    proc = _run(lab, "--json")
    return [s["id"] for s in json.loads(proc.stdout)["steps"] if s["status"] == "ran"]


def _runner_in_slow_step(tmp_path: Path, *flags: str, **popen: object) -> tuple[Path, subprocess.Popen[str]]:
    """A real runner on SLOW_LAB, caught while step s3 sleeps (s0-s2 have completed)."""
    lab = tmp_path / "lab_steps.toml"
    lab.write_text(SLOW_LAB, encoding="utf-8")
    from conftest import interruptible_cli

    runner = subprocess.Popen(interruptible_cli(str(lab), *flags), text=True, **popen)  # type: ignore[call-overload]
    _wait_for(tmp_path / "s3.pid")
    time.sleep(0.05)  # the pid is written whole
    return lab, runner


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _step_pid(lab: Path) -> int:
    return int((lab.parent / "s3.pid").read_text())


def test_sigkill_mid_run_keeps_what_completed(tmp_path: Path) -> None:
    lab, runner = _runner_in_slow_step(tmp_path, stderr=subprocess.DEVNULL, start_new_session=True)
    os.killpg(runner.pid, signal.SIGKILL)  # the runner, its workers and the step: no clean-up at all
    runner.wait()
    state = LabState.load(lab)
    assert state.problem is None
    assert set(state.steps) == {"s0", "s1", "s2"}
    lab.write_text(SLOW_LAB.replace("time.sleep(30)", "pass"), encoding="utf-8")
    assert _ran(lab) == ["s3", "s4"]


@pytest.mark.parametrize("jobs", ["1", "2"])  # -j 2: the loop polls its workers (dispatch.py)
def test_ctrl_c_ends_the_running_step_and_exits_130(tmp_path: Path, jobs: str) -> None:
    lab, runner = _runner_in_slow_step(tmp_path, "-j", jobs, stderr=subprocess.PIPE)
    started = time.monotonic()
    runner.send_signal(signal.SIGINT)
    _, err = runner.communicate(timeout=30)
    assert runner.returncode == 130
    assert time.monotonic() - started < 10  # the 30 s step was ended, not waited for
    assert "interrupted" in err and "Traceback" not in err
    state = LabState.load(lab)
    assert set(state.steps) == {"s0", "s1", "s2"}
    assert state.journal_path.exists()  # 3 records stay journalled until the journal grows (settle)
    assert not _alive(_step_pid(lab))


def test_a_runner_killed_alone_leaves_no_step_running_and_its_lock_is_taken_over(tmp_path: Path) -> None:
    lab, runner = _runner_in_slow_step(tmp_path, stderr=subprocess.DEVNULL, start_new_session=True)
    step = _step_pid(lab)
    assert _alive(step)  # s3 runs in a worker's child, in a process group of its own
    runner.send_signal(signal.SIGKILL)  # the runner only: no SIGTERM reaches its workers
    runner.wait()
    deadline = time.monotonic() + 10
    while _alive(step):  # its worker saw the runner's pipe close and ended the step
        assert time.monotonic() < deadline, "the killed runner's step kept running"
        time.sleep(0.05)
    holder = json.loads((tmp_path / ".agilab" / "lock").read_text())
    assert holder["pid"] == runner.pid  # the dead runner's name is still in the lock file
    lab.write_text(SLOW_LAB.replace("time.sleep(30)", "pass"), encoding="utf-8")
    second = _run(lab)
    assert second.returncode == 0, second.stderr
    assert (
        f"agilab-run pid {runner.pid} (started " in second.stderr
        and "was killed before it finished" in second.stderr
    )
    assert "2 ran, 3 fresh" in second.stderr  # s3 (its code changed too) and s4
    assert (tmp_path / ".agilab" / "lock").read_text() == ""  # released cleanly this time


def test_taking_over_waits_for_the_killed_runners_step_processes(tmp_path: Path) -> None:
    lab = tmp_path / "lab_steps.toml"
    lab.write_text('[[m]]\nid = "a"\nC = "pass"\n', encoding="utf-8")
    folder = tmp_path / ".agilab"
    folder.mkdir()
    (folder / "lock").write_text(json.dumps({"pid": 999999, "started": time.time() - 60}), encoding="utf-8")
    # a leftover step process of that runner: it holds steps.lock shared, as every step does
    leftover = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, os, sys, time; fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT);"
            "fcntl.flock(fd, fcntl.LOCK_SH); print('held', flush=True); time.sleep(1.5)",
            str(folder / "steps.lock"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert leftover.stdout is not None and leftover.stdout.readline() == "held\n"
    started = time.monotonic()
    second = _run(lab)
    assert leftover.wait(timeout=10) == 0
    assert second.returncode == 0 and time.monotonic() - started >= 1.0, second.stderr
    assert (
        "agilab-run pid 999999" in second.stderr
        and "waiting for the steps the killed runner" in second.stderr
    )


def test_damaged_journal_lines_are_named_skipped_and_repaired(tmp_path: Path) -> None:
    lab = tmp_path / "lab_steps.toml"
    state = LabState.load(lab)
    state.record("a", record(1))
    state.record("b", record(2))
    state.settle()
    with state.journal_path.open("ab") as fh:  # NUL line, non-UTF-8, wrong types, a bad record
        fh.write(b"\0" * 40 + b'\n{"id": "\xff"}\n[1, 2]\n{"id": "b", "record": {"fingerprint": 3}}\n')
    again = LabState.load(lab)
    assert {k: v.fingerprint for k, v in again.steps.items()} == {"a": "fp1", "b": "fp2"}
    assert again.problem is not None and again.repair
    for number, why in ((3, "NUL bytes"), (4, "not UTF-8"), (5, "a list"), (6, "step 'b': fingerprint")):
        assert f"journal.jsonl:{number}: {why}" in again.problem
    again.settle()  # the next write repairs: compacted, the journal gone
    assert not again.journal_path.exists()
    clean = LabState.load(lab)
    assert clean.problem is None and set(clean.steps) == {"a", "b"}


def test_damaged_state_json_and_hashes_never_raise(tmp_path: Path) -> None:
    lab = tmp_path / "lab_steps.toml"
    folder = tmp_path / ".agilab"
    folder.mkdir()
    good = record(1).to_json()
    for text, kept in (
        ("[" * 100_000, set()),  # RecursionError inside json
        (json.dumps({"format": 1, "steps": [1]}), set()),
        (json.dumps({"format": 1, "steps": {"a": good, "b": good | {"seconds": "x"}, "c": [1]}}), {"a"}),
        ("\xff", set()),
    ):
        (folder / "state.json").write_bytes(
            text.encode("utf-8", "surrogateescape") if text != "\xff" else b"\xff"
        )
        state = LabState.load(lab)
        assert set(state.steps) == kept and state.problem and "state.json" in state.problem
    (folder / "state.json").unlink()
    (folder / "state.json").mkdir()  # a folder where the file belongs: reported, then replaced
    state = LabState.load(lab)
    assert "a folder" in (state.problem or "")
    state.steps["a"] = record(1)
    state.settle()
    assert LabState.load(lab).problem is None and (folder / "state.json").is_file()
    # a table written before the columns (format 1): its wrong entries are left out
    (folder / "hashes.json").write_text(json.dumps({"x": 5, "y": [1, 2, "h"], "z": ["1", 2, "h"]}))
    state = LabState.load(lab)
    assert state.hashes == {"y": [1, 2, "h"]} and state.hashes_damaged
    columns = {"format": 2, "paths": ["/a", "/b"], "sizes": [1, 2], "mtimes": [3, 4], "hashes": ["h", "i"]}
    (folder / "hashes.json").write_text(json.dumps(columns))
    state = LabState.load(lab)
    assert state.hashes == {"/a": [1, 3, "h"], "/b": [2, 4, "i"]} and not state.hashes_damaged
    for damage in (
        {"sizes": [1]},
        {"mtimes": [3, "4"]},
        {"hashes": None},
        {"paths": ["/a", 2]},
        {"sizes": [1, True]},
    ):
        (folder / "hashes.json").write_text(json.dumps({**columns, **damage}))
        state = LabState.load(lab)
        assert state.hashes == {} and state.hashes_damaged, damage  # hashed again, rewritten whole


def test_the_state_file_is_one_json_document_a_record_to_a_line(tmp_path: Path) -> None:
    from agilab_dsl.plan.state import FORMAT

    records = {
        f"s{i}": StepRecord(f"fp{i}", {"b": 1, "a": [i, "é\n"]}, {"o": "h"}, 1.5, 0.25, "r")
        for i in range(25)
    }
    state = LabState(tmp_path / ".agilab" / "state.json", dict(records))
    state.save()
    text = state.path.read_text(encoding="utf-8")
    data = json.loads(text)
    assert data.pop("index").keys() == {"ids", "fingerprints", "runs", "offsets", "lengths"}
    assert data == {"format": FORMAT, "steps": {k: v.to_json() for k, v in records.items()}}
    assert len(text.splitlines()) == 1 + 25 + 1  # the start, a line per record, the index
    raw = state.path.read_bytes()
    index = json.loads(text.splitlines()[-1][len('}, "index": ') : -1])
    for sid, at, size in zip(index["ids"], index["offsets"], index["lengths"], strict=True):
        assert json.loads(raw[at : at + size]) == records[sid].to_json()  # bytes, not characters
    assert LabState.load(tmp_path / "lab.toml").steps == records
    assert LabState.load(tmp_path / "lab.toml", trusted=True).steps == records


def test_the_hash_cache_writes_few_new_entries_apart_and_compacts_many(tmp_path: Path) -> None:
    lab = tmp_path / "lab.toml"
    folder = tmp_path / ".agilab"
    state = LabState.load(lab)
    state.hashes = {f"/f{i}": [i, i, f"h{i}"] for i in range(200)}
    state.save_hashes({f"/f{i}" for i in range(200)})  # no hashes.json yet: written whole
    assert not (folder / "hashes-new.json").exists()
    state = LabState.load(lab)
    assert state.hashes_base == 200 and state.hashes_new == set()
    state.hashes["/f1"] = [1, 2, "new"]
    state.hashes["/g"] = [5, 5, "g"]
    state.save_hashes({"/f1", "/g"})
    assert json.loads((folder / "hashes-new.json").read_text()) == {"/f1": [1, 2, "new"], "/g": [5, 5, "g"]}
    again = LabState.load(lab)
    assert again.hashes == state.hashes and again.hashes_new == {"/f1", "/g"}
    again.hashes.update({f"/h{i}": [i, i, "h"] for i in range(70)})  # more than max(64, 200 / 8)
    again.save_hashes({f"/h{i}" for i in range(70)})
    assert not (folder / "hashes-new.json").exists()
    assert entries_of(json.loads((folder / "hashes.json").read_text())) == (again.hashes, False)
    (folder / "hashes-new.json").write_text("{not json")  # damaged: ignored, rewritten whole
    damaged = LabState.load(lab)
    assert damaged.hashes_damaged and damaged.hashes == again.hashes
    damaged.save_hashes(set())
    assert not (folder / "hashes-new.json").exists() and LabState.load(lab).hashes_damaged is False


def test_large_components_are_written_from_their_digest_text_as_the_same_json(tmp_path: Path) -> None:
    from agilab_dsl.plan import fingerprint
    from agilab_dsl.plan.fingerprint import canonical_text, digest

    inputs = {f"out/{i:06d}.txt": f"{i:064x}" for i in range(5000)}  # ~400 KB of digest text
    comps = {"code": "c", "inputs": inputs, "upstream": {"a": "fp"}, "params": {"x": 1.5}}
    fp = digest(comps)
    assert canonical_text(fp, comps) is not None  # kept: long, ASCII, nothing stringified
    assert canonical_text(fp, dict(comps)) is None  # another object: encoded again
    rec = StepRecord(fp, comps, {"total.txt": "h"}, 12.25, 0.5, "run-1")
    expected = json.dumps(rec.to_json(), sort_keys=True)
    text = rec.json_text()
    assert text != expected and json.loads(text) == json.loads(expected)  # spliced, the same data
    lab = tmp_path / "lab_steps.toml"
    state = LabState.load(lab)
    state.record("gather", rec)
    state.settle()  # journalled
    assert LabState.load(lab).steps["gather"] == rec
    state = LabState.load(lab)
    state.save()  # compacted from the journal's parsed record (a new object: encoded again)
    again = LabState.load(lab)
    assert again.steps["gather"] == rec and not again.problem
    again.record("gather", rec)
    again.save()  # compacted in the run that recorded it: from the digest text
    assert '"inputs":{"out/000000.txt":' in again.path.read_text()
    assert (
        LabState.load(lab).steps["gather"] == rec and LabState.load(lab, trusted=True).steps["gather"] == rec
    )
    odd = {"inputs": {f"é/{i}": "h" for i in range(20000)}}  # not ASCII: never spliced
    assert canonical_text(digest(odd), odd) is None
    assert len(fingerprint._texts) <= fingerprint.KEPT_TEXTS
