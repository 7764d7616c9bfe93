"""-j N without a thread per step (issue 18): the run loop sends requests and reads replies itself,
and a worker whose steps are short gets the next step's request before its reply. A failure stops
what is queued behind other workers' steps (a halt notice), a dead worker's queue goes to its
successor, retries and steps under another interpreter still run."""

from __future__ import annotations

import binascii
import json
import time
from pathlib import Path
from typing import Any

import pytest
from test_ahead import flaky_lab, lab_of, request, statuses

from agilab_dsl.cli import main
from agilab_dsl.execute import dispatch
from agilab_dsl.execute.pool import WorkerPool
from agilab_dsl.execute.worker import HALT, encode


@pytest.fixture
def queue_always(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Every step counts as short (whatever this machine's load), and the most steps handed over at
    once is recorded: above -j, some were queued behind others."""
    monkeypatch.setattr(dispatch, "AHEAD_BELOW", 60.0)
    most = [0]
    real_submit, real_wait = dispatch.Dispatch.submit, dispatch.Dispatch.wait_first
    live = [0]

    def submit(self, *args):  # type: ignore[no-untyped-def]
        live[0] += 1
        most[0] = max(most[0], live[0])
        return real_submit(self, *args)

    def wait_first(self, running):  # type: ignore[no-untyped-def]
        done = real_wait(self, running)
        live[0] -= len(done)
        return done

    monkeypatch.setattr(dispatch.Dispatch, "submit", submit)
    monkeypatch.setattr(dispatch.Dispatch, "wait_first", wait_first)
    return most


def _send(worker, req: dict) -> None:  # type: ignore[no-untyped-def]
    worker.proc.stdin.write(binascii.b2a_base64(encode(req, portable=False)).decode("ascii"))
    worker.proc.stdin.flush()


@pytest.mark.parametrize("notice", [True, False])
def test_a_halt_notice_stops_the_request_queued_behind_a_running_step(tmp_path: Path, notice: bool) -> None:
    pool = WorkerPool(1)
    worker = pool.take()
    try:
        _send(worker, request(tmp_path, "a", "import time\ntime.sleep(0.3)"))
        _send(worker, {**request(tmp_path, "b", "open('b.txt', 'w').write('b')"), "unless_failed": True})
        if notice:
            worker.proc.stdin.write(HALT.decode() + "\n")
            worker.proc.stdin.flush()
        first, second = worker.receive(), worker.receive()
    finally:
        pool.give_back(worker)
        pool.close()
    assert first["exit"] == 0
    assert (second == {"halted": True}) is notice  # without the notice it ran
    assert (tmp_path / "b.txt").exists() is not notice


def test_j2_runs_every_step_queueing_behind_short_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], queue_always: list[int]
) -> None:
    lab = lab_of(tmp_path, *((f"s{i:02d}", "") for i in range(30)))
    assert main([str(lab), "--json", "-j", "2"]) == 0
    got = statuses(capsys)
    assert {s["status"] for s in got.values()} == {"ran"} and len(got) == 31
    assert queue_always[0] > 2  # more than -j handed over at once: some queued behind others
    assert len(list((tmp_path / "out").iterdir())) == 30


def test_j2_a_failure_stops_what_is_queued_behind_other_workers_steps(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], queue_always: list[int]
) -> None:
    # a1 ends at once (the run's steps are then known short); b1 and slowbad run, c1 is queued
    # behind b1 and c2 behind slowbad; slowbad fails at 0.3 s: its worker halts c2, and the halt
    # notice stops c1, which would start when b1 ends at 0.6 s
    lab = lab_of(
        tmp_path,
        ("a1", ""),
        ("slowbad", "import time\ntime.sleep(0.3)\nraise ValueError('boom')"),
        ("b1", "import time\ntime.sleep(0.6)\nopen(outputs[0], 'w').write('b1')"),
        ("c1", ""),
        ("c2", ""),
        ("c3", ""),
    )
    assert main([str(lab), "--json", "-j", "2"]) == 1
    got = statuses(capsys)
    assert got["slowbad"]["status"] == "failed" and got["a1"]["status"] == "ran"
    assert got["b1"]["status"] == "ran"  # it had started: a failure elsewhere does not end it
    for sid in ("c1", "c2", "c3"):
        assert got[sid]["status"] == "blocked", sid
        assert got[sid]["reasons"] == [
            "run stopped after slowbad failed (--keep-going runs independent steps)"
        ]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a1.txt", "b1.txt"]


def test_j2_with_keep_going_what_was_queued_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], queue_always: list[int]
) -> None:
    lab = lab_of(
        tmp_path,
        ("a1", ""),
        ("bad", "import time\ntime.sleep(0.2)\nraise ValueError('boom')"),
        ("c1", ""),
        ("c2", ""),
    )
    assert main([str(lab), "--json", "-j", "2", "--keep-going"]) == 1
    got = statuses(capsys)
    assert [got[s]["status"] for s in ("a1", "bad", "c1", "c2", "tail")] == [
        "ran",
        "failed",
        "ran",
        "ran",
        "ran",
    ]


def test_j2_a_dead_workers_queue_goes_to_its_successor(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], queue_always: list[int]
) -> None:
    killer = "import os, time\ntime.sleep(0.2)\nos.kill(os.getsid(0), 9)"  # its worker leads its session
    lab = lab_of(tmp_path, ("a1", ""), ("killer", killer), ("b1", ""), ("c1", ""), ("c2", ""), ("c3", ""))
    assert main([str(lab), "--json", "-j", "2", "--keep-going"]) == 1
    got = statuses(capsys)
    assert got["killer"]["status"] == "failed" and "worker died" in got["killer"]["error"]
    assert all(got[s]["status"] == "ran" for s in ("a1", "b1", "c1", "c2", "c3", "tail"))


def test_j2_retries_a_failed_attempt(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lab, counter = flaky_lab(tmp_path, fails=2, then="other")
    assert main([str(lab), "--json", "-j", "2"]) == 0
    got = statuses(capsys)
    assert (got["flaky"]["status"], got["other"]["status"], got["tail"]["status"]) == ("ran", "ran", "ran")
    assert counter.read_text() == "3"


def test_long_steps_get_nothing_queued_behind_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dispatch, "AHEAD_BELOW", 0.05)
    trace = tmp_path / "trace.txt"
    code = (
        f"import time\nt = open({str(trace)!r}, 'a')\nt.write(f'{{time.time()}} start {{step_id}}\\n'); t.flush()\n"
        "time.sleep(0.3)\nopen(outputs[0], 'w').write('x')\n"
    )
    lab = lab_of(tmp_path, *((f"s{i}", code) for i in range(4)))
    started = time.monotonic()
    assert main([str(lab), "--json", "-j", "2"]) == 0
    assert {s["status"] for s in statuses(capsys).values()} == {"ran"}
    # two at a time: four steps of 0.3 s take two rounds; each started when a worker was free
    starts = sorted(float(line.split()[0]) for line in trace.read_text().splitlines())
    assert starts[2] - starts[0] >= 0.25 and time.monotonic() - started < 30


def test_events_say_each_step_started_before_it_finished(tmp_path: Path, queue_always: list[int]) -> None:
    lab = lab_of(tmp_path, *((f"s{i:02d}", "") for i in range(12)))
    assert main([str(lab), "-j", "2", "--json"]) == 0
    events = [
        json.loads(line)
        for line in next(tmp_path.glob(".agilab/runs/*/events.jsonl")).read_text().splitlines()
    ]
    seen: dict[str, list[str]] = {}
    for event in events:
        if event["kind"] in ("step_started", "step_finished"):
            seen.setdefault(event["target_id"], []).append(event["kind"])
    assert all(kinds == ["step_started", "step_finished"] for kinds in seen.values()) and len(seen) == 13


def test_j2_a_step_past_its_timeout_fails_and_the_others_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lab = lab_of(tmp_path, ("a1", ""), ("slow", "import time\ntime.sleep(30)"), ("b1", ""), ("b2", ""))
    lab.write_text(lab.read_text().replace('id = "slow"\n', 'id = "slow"\ntimeout = 0.5\n'), encoding="utf-8")
    started = time.monotonic()
    assert main([str(lab), "--json", "-j", "2", "--keep-going"]) == 1
    got = statuses(capsys)
    assert got["slow"]["status"] == "failed" and "timed out" in got["slow"]["error"]
    assert all(got[s]["status"] == "ran" for s in ("a1", "b1", "b2", "tail"))
    assert time.monotonic() - started < 20


def test_j2_a_step_refused_before_it_runs_stops_the_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # a1 makes out/escape a symlink out of the lab: bad, which writes through it, is refused when
    # its turn comes (checked again then), and the run stops there
    (tmp_path / "out").mkdir()
    escape = (
        f"import os\nos.symlink({str(tmp_path.parent)!r}, 'out/escape')\nopen(outputs[0], 'w').write('a1')"
    )
    lab = lab_of(tmp_path, ("a1", escape), ("bad", ""))
    text = lab.read_text().replace('produces = ["out/bad.txt"]', 'produces = ["out/escape/bad.txt"]')
    text = text.replace('id = "bad"\n', 'id = "bad"\ndepends_on = ["a1"]\n')
    lab.write_text(text, encoding="utf-8")
    assert main([str(lab), "--json", "-j", "2"]) == 1
    got = statuses(capsys)
    assert got["a1"]["status"] == "ran"
    assert got["bad"]["status"] == "failed" and "refused to run" in got["bad"]["error"]
    assert not (tmp_path.parent / "bad.txt").exists()


class _Run:
    """Replies fed to a :class:`dispatch.Width` as a run at a given step rate per width would give
    them (a rate, or a function of the seconds since the run started), the loop spending ``loop``
    seconds of CPU per reply: the widths it chose, in order, and how many replies came at each."""

    def __init__(self, jobs: int, loop: float = 0.001) -> None:
        self.start = self.now = 100.0
        self.cpu, self.loop = 5.0, loop
        self.width = dispatch.Width(jobs, self.now)
        self.widths = [jobs]
        self.at: dict[int, int] = {}

    def replies(self, count: int, rates: dict[int, Any], typical: float) -> None:
        for _ in range(count):
            width = self.width.width
            self.at[width] = self.at.get(width, 0) + 1
            rate = rates[width]
            self.now += 1 / (rate(self.now - self.start) if callable(rate) else rate)
            self.cpu += self.loop
            self.width.replied(self.now, self.cpu, typical)
            if self.width.width != self.widths[-1]:
                self.widths.append(self.width.width)


def test_width_narrows_to_one_worker_when_it_is_clearly_faster_and_tries_again_ever_more_rarely() -> None:
    run = _Run(2)
    run.replies(8000, {2: 400.0, 1: 460.0}, typical=0.003)  # 17 s of tiny steps, 1 worker 15% faster
    # -j 2 measured, then 1 worker (a trial), -j 2 again, then 1 kept; -j 2 tried again (between
    # two windows of 1) 2, 4 and 8 s later, given up each time
    assert run.widths[:4] == [2, 1, 2, 1] and run.widths[4:] == [2, 1] * 3
    assert run.at[1] > 0.9 * 8000


def test_width_keeps_one_worker_when_more_are_not_clearly_faster() -> None:
    run = _Run(2)
    run.replies(7000, {2: 420.0, 1: 400.0}, typical=0.003)  # -j 2 5% faster: within noise
    assert run.width.width == 1  # so -j 2 is never slower than -j 1 but for its trials
    assert run.at[1] > 0.85 * 7000


def test_width_stays_at_j_when_more_workers_are_clearly_faster() -> None:
    run = _Run(2)
    run.replies(7000, {2: 460.0, 1: 400.0}, typical=0.003)  # -j 2 15% faster
    assert run.widths == [2, 1, 2, 1, 2, 1, 2]  # 1 tried after 0.5 s, then 4 and 8 s after that
    assert run.width.width == 2 and run.at[2] > 0.9 * 7000


def test_a_drifting_step_rate_does_not_pick_the_width_tried_last() -> None:
    # the machine speeds up from 250 to ~700 steps a second over the run, whatever the width: a
    # trial compared with the window before it alone looks 10-20 % faster each time
    for speed_up in (1.0, 1.25):  # and with -j 2 truly 25 % faster, it is found so all the same
        run = _Run(2)
        run.replies(
            9000, {1: lambda t: 250.0 + 25.0 * t, 2: lambda t, s=speed_up: s * (250.0 + 25.0 * t)}, 0.003
        )
        kept = 2 if speed_up > 1 else 1
        assert run.width.width == kept and run.at[kept] > 0.85 * 9000, (speed_up, run.widths)


def test_width_never_narrows_for_steps_long_next_to_the_loops_cpu() -> None:
    run = _Run(4, loop=0.0015)
    run.replies(2000, {4: 180.0, 1: 50.0}, typical=0.02)  # 20 ms steps: 13x the loop's CPU per step
    assert run.widths == [4]


def test_width_gives_every_worker_back_as_soon_as_steps_turn_long() -> None:
    run = _Run(2)
    run.replies(600, {2: 400.0, 1: 460.0}, typical=0.003)
    assert run.width.width == 1
    run.replies(1, {2: 400.0, 1: 460.0}, typical=0.5)
    assert run.width.width == 2


def test_a_slow_step_or_two_does_not_give_every_worker_back() -> None:
    run = _Run(2)
    run.replies(600, {2: 400.0, 1: 460.0}, typical=0.003)
    assert run.width.width == 1
    run.replies(20, {2: 400.0, 1: 460.0}, typical=0.012)  # the average 12x the loop's CPU: a bump
    assert run.width.width == 1
    run.replies(1, {2: 400.0, 1: 460.0}, typical=0.02)  # 20x: long steps now
    assert run.width.width == 2
    run.replies(1, {2: 400.0, 1: 460.0}, typical=0.012)  # long until short again (under 8x)
    assert run.width.width == 2
    before = len(run.widths)
    run.replies(600, {2: 400.0, 1: 460.0}, typical=0.003)  # short again: measured again soon
    assert run.width.width == 1 and run.widths[before:] == [1, 2, 1]


def test_width_follows_a_lab_whose_steps_grow() -> None:
    run = _Run(2)
    run.replies(600, {2: 400.0, 1: 460.0}, typical=0.003)
    assert run.width.width == 1
    at_two = run.at[2]
    # still short next to the loop (5 ms against 1 ms), but now two workers are clearly faster: they
    # are tried again within 2 s, and kept
    run.replies(2000, {2: 300.0, 1: 160.0}, typical=0.005)
    assert run.width.width == 2 and run.widths[:3] == [2, 1, 2] and run.at[2] - at_two > 1500
