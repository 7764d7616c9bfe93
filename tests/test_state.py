"""State survives kills: the journal, torn lines, SIGKILL and Ctrl-C of a real runner."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from agilab_dsl.state import LabState, StepRecord

SLOW_LAB = "".join(
    f'[[m]]\nid = "s{i}"\nC = """\nimport time\nfrom pathlib import Path\n'
    f'{"time.sleep(30)" if i == 3 else "pass"}\nPath(outputs[0]).write_text("{i}")\n"""\n'
    f'produces = ["out/{i}.txt"]\n\n'
    for i in range(5)
)  # no deps: runs in order; s3 hangs


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
    again.save()
    assert not again.journal_path.exists()
    assert set(json.loads(again.path.read_text())["steps"]) == {"a", "b"}


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


def _ran(lab: Path) -> list[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "agilab_dsl", str(lab), "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return [s["id"] for s in json.loads(proc.stdout)["steps"] if s["status"] == "ran"]


def _runner_in_slow_step(tmp_path: Path, **popen: object) -> tuple[Path, subprocess.Popen[str]]:
    """A real runner on SLOW_LAB, caught while step s3 sleeps (s0-s2 have completed)."""
    lab = tmp_path / "lab_steps.toml"
    lab.write_text(SLOW_LAB, encoding="utf-8")
    from conftest import interruptible_cli

    runner = subprocess.Popen(interruptible_cli(str(lab)), text=True, **popen)  # type: ignore[call-overload]
    _wait_for(tmp_path / "out" / "2.txt")
    time.sleep(0.3)
    return lab, runner


def test_sigkill_mid_run_keeps_what_completed(tmp_path: Path) -> None:
    lab, runner = _runner_in_slow_step(tmp_path, stderr=subprocess.DEVNULL, start_new_session=True)
    os.killpg(runner.pid, signal.SIGKILL)  # the runner, its workers and the step: no clean-up at all
    runner.wait()
    state = LabState.load(lab)
    assert state.problem is None
    assert set(state.steps) == {"s0", "s1", "s2"}
    lab.write_text(SLOW_LAB.replace("time.sleep(30)", "pass"), encoding="utf-8")
    assert _ran(lab) == ["s3", "s4"]


def test_ctrl_c_ends_the_running_step_and_exits_130(tmp_path: Path) -> None:
    lab, runner = _runner_in_slow_step(tmp_path, stderr=subprocess.PIPE)
    started = time.monotonic()
    runner.send_signal(signal.SIGINT)
    _, err = runner.communicate(timeout=30)
    assert runner.returncode == 130
    assert time.monotonic() - started < 10  # the 30 s step was ended, not waited for
    assert "interrupted" in err and "Traceback" not in err
    state = LabState.load(lab)
    assert set(state.steps) == {"s0", "s1", "s2"}
    assert state.journal_path.exists()  # 3 records stay journalled until the journal grows (settle)
    out = subprocess.run(["pgrep", "-f", "time.sleep(30)"], capture_output=True, text=True, check=False)
    assert out.stdout.strip() == ""
