"""-j 1 sends the next step to the worker before the running one's reply (issue 18): the worker goes
on to it at once. A step sent ahead of a failure is halted by its worker, unless --keep-going; one
sent ahead of a failure only the runner saw (its record) ran, and is reported as such."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import pytest

from agilab_dsl.cli import main
from agilab_dsl.execute.pool import WorkerPool
from agilab_dsl.plan.state import LabState

STEP = "[[m]]\nid = \"{id}\"\nC = '''{code}'''\nproduces = [\"out/{id}.txt\"]\n\n"  # C: a literal string
WRITE = "open(outputs[0], 'w').write('{id}')"


def lab_of(folder: Path, *steps: tuple[str, str]) -> Path:
    """A lab of independent steps (one more depends on the first, so that the file does declare a
    dependency and its steps do not simply run in file order, each after the one before)."""
    lab = folder / "lab_steps.toml"
    text = "".join(STEP.format(id=sid, code=code or WRITE.format(id=sid)) for sid, code in steps)
    text += f'[[m]]\nid = "tail"\nC = "x = 1"\ndepends_on = ["{steps[0][0]}"]\n'
    lab.write_text(text, encoding="utf-8")
    return lab


def flaky_lab(folder: Path, *, fails: int, then: str) -> tuple[Path, Path]:
    """A lab whose step ``flaky`` fails ``fails`` times (retried as often), then writes its output;
    and the file that counts its attempts. ``then``: an independent step after it in the file."""
    counter = folder / "tries.txt"
    flaky = (
        f"from pathlib import Path\np = Path({str(counter)!r})\n"
        "n = int(p.read_text()) + 1 if p.exists() else 1\np.write_text(str(n))\n"
        f"if n <= {fails}:\n    raise RuntimeError(n)\nopen(outputs[0], 'w').write('flaky')\n"
    )
    lab = lab_of(folder, ("flaky", flaky), (then, ""))
    lab.write_text(
        lab.read_text().replace('id = "flaky"\n', f'id = "flaky"\nretries = {fails}\n'), encoding="utf-8"
    )
    return lab, counter


def statuses(capsys: pytest.CaptureFixture[str]) -> dict[str, dict]:
    return {s["id"]: s for s in json.loads(capsys.readouterr().out)["steps"]}


@pytest.mark.parametrize(
    "failure",
    [
        "raise ValueError('boom')",  # an exit status
        "import os; os.kill(os.getpid(), 9)",  # a signal
        "x = 1",  # exit 0, but its declared output not written
    ],
)
def test_a_step_sent_ahead_of_a_failure_does_not_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], failure: str
) -> None:
    lab = lab_of(tmp_path, ("first", ""), ("bad", failure), ("free", ""), ("last", ""))
    assert main([str(lab), "--json", "-j", "1"]) == 1
    got = statuses(capsys)
    assert [got[s]["status"] for s in ("first", "bad", "free", "last")] == [
        "ran",
        "failed",
        "blocked",
        "blocked",
    ]
    assert got["free"]["reasons"] == ["run stopped after bad failed (--keep-going runs independent steps)"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["first.txt"]  # free never ran
    logs = {p.name for p in tmp_path.glob(".agilab/runs/*/*.log")}
    assert "free.log" not in logs and "last.log" not in logs
    # the next run knows nothing of them but that they never ran
    assert main(["status", str(lab), "--json"]) == 0
    states = {s["id"]: s["state"] for s in json.loads(capsys.readouterr().out)["steps"]}
    assert states == {
        "first": "fresh",
        "bad": "never-ran",
        "free": "never-ran",
        "last": "never-ran",
        "tail": "never-ran",
    }


def test_with_keep_going_the_step_sent_ahead_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lab = lab_of(tmp_path, ("bad", "raise ValueError('boom')"), ("free", ""), ("last", ""))
    assert main([str(lab), "--json", "-j", "1", "--keep-going"]) == 1
    got = statuses(capsys)
    assert [got[s]["status"] for s in ("bad", "free", "last")] == ["failed", "ran", "ran"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["free.txt", "last.txt"]


def test_a_retried_failure_does_not_halt_the_next_step(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lab, counter = flaky_lab(tmp_path, fails=1, then="next")
    assert main([str(lab), "--json", "-j", "1"]) == 0
    got = statuses(capsys)
    assert (got["flaky"]["status"], got["next"]["status"]) == ("ran", "ran")
    assert counter.read_text() == "2"  # its second attempt ran, then the next step


def test_steps_still_run_one_at_a_time_and_in_order(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    trace = tmp_path / "trace.txt"
    code = (
        f"import time\nt = open({str(trace)!r}, 'a')\nt.write('start {{id}}\\n'); t.flush()\n"
        "time.sleep(0.05)\nt.write('end {id}\\n'); t.close()\nopen(outputs[0], 'w').write('x')\n"
    )
    ids = [f"s{i}" for i in range(5)]
    lab = lab_of(tmp_path, *((sid, code.format(id=sid)) for sid in ids))
    assert main([str(lab), "--json", "-j", "1"]) == 0
    assert trace.read_text().split("\n")[:-1] == [f"{what} {sid}" for sid in ids for what in ("start", "end")]


def request(folder: Path, sid: str, code: str) -> dict:
    """A worker request for a code step ``sid`` run in ``folder``."""
    return {
        "step_id": sid,
        "kind": "code",
        "code": code,
        "cwd": str(folder),
        "log": str(folder / f"{sid}.log"),
        "result": str(folder / f"{sid}.json"),
        "timeout": 60,
        "required": [],
        "names": {"settings": {}, "params": {}, "inputs": [], "outputs": []},
    }


def test_the_worker_goes_on_to_a_request_sent_ahead_without_waiting(tmp_path: Path) -> None:
    stamp = "import time\nopen('{sid}.t', 'w').write(repr(time.time()))"
    first, second = (request(tmp_path, sid, stamp.format(sid=sid)) for sid in ("a", "b"))
    pool = WorkerPool(1)
    try:
        assert pool.run(first, lambda: second)["exit"] == 0
        time.sleep(0.5)  # the runner busy with the first step's outcome: the second runs meanwhile
        asked = time.time()
        assert pool.run(second)["exit"] == 0  # not sent again: only its reply is read
        third = request(tmp_path, "c", stamp.format(sid="c"))
        assert pool.run(third)["exit"] == 0  # and the replies stay in step with the requests
    finally:
        pool.close()
    assert float((tmp_path / "b.t").read_text()) < asked - 0.3
    assert (tmp_path / "c.t").exists()


def test_a_step_sent_ahead_of_a_failure_only_the_runner_saw_ran_and_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    lab = lab_of(tmp_path, ("first", ""), ("ahead", ""), ("last", ""))
    real = LabState.record

    def record(self: LabState, step_id: str, record: object) -> None:
        if step_id == "first":
            raise OSError(28, "No space left on device", str(tmp_path / ".agilab" / "journal.jsonl"))
        real(self, step_id, record)  # type: ignore[arg-type]

    monkeypatch.setattr(LabState, "record", record)
    assert main([str(lab), "--json", "-j", "1"]) == 1
    got = statuses(capsys)
    assert got["first"]["status"] == "failed" and "record could not be written" in got["first"]["error"]
    assert got["ahead"]["status"] == "ran"  # its worker had started it: it ran, and is recorded
    assert got["last"]["status"] == "blocked"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["ahead.txt", "first.txt"]


@pytest.mark.parametrize(
    "before",
    [
        "",  # killed before the worker read the request sent ahead
        "time.sleep(0.6)\n",  # killed once it had handed that request to its child
    ],
)
def test_a_request_sent_ahead_to_a_worker_that_died_runs_once_on_its_successor(
    tmp_path: Path, before: str
) -> None:
    from agilab_dsl.execute.pool import WorkerDied

    # the first step kills its worker (the worker leads its session; its step children's parent
    # is its zygote)
    killer = request(tmp_path, "a", f"import os, time\n{before}os.kill(os.getsid(0), 9)\ntime.sleep(0.2)")
    second = request(tmp_path, "b", "open('b.txt', 'a').write('b\\n')")
    pool = WorkerPool(1)
    try:
        with pytest.raises(WorkerDied):
            pool.run(killer, lambda: second)
        assert pool.run(second)["exit"] == 0  # sent again, to the worker started in its place
    finally:
        pool.close()
    time.sleep(0.3)  # (a child of the dead worker's, had it started the step, would have written by now)
    assert (tmp_path / "b.txt").read_text() == "b\n"  # once: only on the successor


def test_a_run_goes_on_after_a_worker_died_with_a_step_sent_ahead(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lab = lab_of(tmp_path, ("first", ""), ("killer", "import os\nos.kill(os.getsid(0), 9)"), ("free", ""))
    assert main([str(lab), "--json", "-j", "1", "--keep-going"]) == 1
    got = statuses(capsys)
    assert got["killer"]["status"] == "failed" and "worker died" in got["killer"]["error"]
    assert (got["first"]["status"], got["free"]["status"], got["tail"]["status"]) == ("ran", "ran", "ran")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["first.txt", "free.txt"]


def _settled_in(folder: Path) -> list[int]:
    """The processes whose working folder is ``folder`` (a step's child chdirs there as it settles in)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.readlink(entry / "cwd") == str(folder):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def test_a_request_sent_ahead_is_handed_to_its_child_which_starts_once_the_step_before_ended(
    tmp_path: Path,
) -> None:
    first = request(tmp_path, "a", "import time\ntime.sleep(1.5)\nopen('a.t', 'w').write(repr(time.time()))")
    second = request(tmp_path, "b", "import time\nopen('b.t', 'w').write(repr(time.time()))")
    pool = WorkerPool(1)
    try:
        seen: list[list[int]] = []
        watcher = threading.Thread(target=lambda: (time.sleep(0.8), seen.append(_settled_in(tmp_path))))
        watcher.start()
        assert pool.run(first, lambda: second)["exit"] == 0
        watcher.join()
        assert pool.run(second)["exit"] == 0  # (its reply only)
    finally:
        pool.close()
    # while the first step slept, its child and the second step's, settled in, waiting for the word
    assert len(seen[0]) == 2
    assert float((tmp_path / "b.t").read_text()) >= float((tmp_path / "a.t").read_text())
    assert _settled_in(tmp_path) == []  # both ended


def test_a_request_sent_ahead_of_a_failure_is_withdrawn_from_its_child(tmp_path: Path) -> None:
    first = {**request(tmp_path, "a", "import time\ntime.sleep(0.5)\nraise SystemExit(3)")}
    second = {**request(tmp_path, "b", "open('b.t', 'w').write('b')"), "unless_failed": True}
    pool = WorkerPool(1)
    try:
        assert pool.run(first, lambda: second)["exit"] == 3
        assert pool.run(second) == {"halted": True}
        third = request(tmp_path, "c", "open('c.t', 'w').write('c')")
        assert pool.run(third)["exit"] == 0  # the worker goes on
    finally:
        pool.close()
    assert not (tmp_path / "b.t").exists() and not (tmp_path / "b.log").exists()
    assert (tmp_path / "c.t").read_text() == "c"
    assert _settled_in(tmp_path) == []
