"""A run seen as it happens (issue 17, item 1): live step output, a parallel stage's partition
progress, and how the terminal shows them (a live block on a terminal, plain lines otherwise)."""

from __future__ import annotations

import io
import json
import os
import re
import select
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from agilab_dsl.check.files import load
from agilab_dsl.cli.plain import PlainReporter
from agilab_dsl.execute.follow import Follower, follow, live_wants, progress_file
from agilab_dsl.execute.outcome import Reporters, RunResult, SilentReporter, StepOutcome
from agilab_dsl.stages.parallel import StageFailed, run_contract

RUN = [sys.executable, "-m", "agilab_dsl"]
ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")

SLOW = """
import time

def slow(part):
    time.sleep(0.4)
    return {"i": part.index}

def bad(part):
    if part.index == 1:
        raise ValueError("partition one is bad")
    return {"i": part.index}
"""


def slow_lab(folder: Path, partitions: int = 8, function: str = "slow", sleepy: float = 0.0) -> Path:
    """A lab with a parallel stage of ``partitions`` files on ``local`` (0.4 s each with ``slow``),
    and, with ``sleepy``, a step before it that prints a line, sleeps that long, then prints another."""
    (folder / "data").mkdir(parents=True, exist_ok=True)
    for n in range(partitions):
        (folder / "data" / f"f{n}.csv").write_text(f"k,v\na,{n}\n", encoding="utf-8")
    (folder / "funcs.py").write_text(SLOW, encoding="utf-8")
    (folder / "parallel_stage.toml").write_text(
        'schema = "agilab.parallel_stage.v1"\nname = "slow"\n'
        f'function = "funcs.py:{function}"\nsplit = "files"\ninput = "data/*.csv"\nworkers = 1\n'
        f"target_partitions = {partitions}\nmin_partitions_per_worker = 1\n"
        'partition_strategy = "one-file-per-partition"\nreducer = "collect-json"\nbackend = "local"\n'
        'output = "out/r.json"\nnotes = "test"\n',
        encoding="utf-8",
    )
    steps = ""
    if sleepy:
        steps += (
            '[[m]]\nid = "sleepy"\nC = """\nimport time\nprint("hello from sleepy", flush=True)\n'
            f'time.sleep({sleepy})\nprint("bye")\n"""\n\n'
        )
    steps += '[[m]]\nid = "stats"\nstage = "parallel_stage.toml"\nproduces = ["out/r.json"]\n'
    lab = folder / "lab_stages.toml"
    lab.write_text(steps, encoding="utf-8")
    return lab


def env(**extra: str) -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "TERM")}
    return out | {"TERM": "xterm-256color", "COLUMNS": "120"} | extra


# -- (a) a terminal sees the partitions move ------------------------------------------------------
def test_a_slow_stage_under_a_terminal_shows_partitions_before_it_ends(tmp_path: Path) -> None:
    lab = slow_lab(tmp_path)
    master, slave = os.openpty()
    proc = subprocess.Popen(
        [*RUN, str(lab)], stdin=slave, stdout=slave, stderr=slave, env=env(), close_fds=True
    )
    os.close(slave)
    seen = b""
    progress_at = finished_at = None
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # the terminal closed: the process ended
                    break
                if not chunk:
                    break
                seen += chunk
                text = ESCAPE.sub("", seen.decode("utf-8", errors="replace"))
                if progress_at is None and "3/8 partitions" in text:
                    progress_at = time.monotonic()
                if finished_at is None and "✓ stats" in text:
                    finished_at = time.monotonic()
            elif proc.poll() is not None:
                break
    finally:
        proc.wait(timeout=30)
        os.close(master)
    raw = seen.decode("utf-8", errors="replace")
    text = ESCAPE.sub("", raw)
    assert proc.returncode == 0, text
    assert "\x1b[" in raw  # a live block is drawn: the terminal got cursor movements
    assert progress_at is not None and finished_at is not None, text
    assert finished_at - progress_at > 0.5, text  # seen while five partitions (2 s) were still to go
    assert re.search(r"━+.*3/8 partitions · [0-9.]+/s · ETA", text), text
    assert "✓ stats" in text and "done: 1 ran" in text


# -- (b) piped: plain lines, one per event ----------------------------------------------------------
def test_piped_output_has_no_escape_codes_and_one_line_per_event(tmp_path: Path) -> None:
    lab = slow_lab(tmp_path, partitions=3, sleepy=0.3)
    proc = subprocess.run(
        [*RUN, str(lab)], capture_output=True, text=True, env=env(), timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert "\x1b" not in proc.stderr and proc.stdout == ""
    lines = proc.stderr.splitlines()
    marks = [line.split()[0:2] for line in lines]
    assert marks == [["▶", "sleepy"], ["✓", "sleepy"], ["▶", "stats"], ["✓", "stats"], ["done:", "2"]], lines
    # the events were followed all the same: the run's stream has every partition
    events = [
        json.loads(x) for x in next(tmp_path.glob(".agilab/runs/*/events.jsonl")).read_text().splitlines()
    ]
    kinds = [e["kind"] for e in events]
    assert kinds.count("partition_started") == 3 and kinds.count("partition_finished") == 3
    last = [e for e in events if e["kind"] == "partition_finished"][-1]
    assert (last["payload"]["done"], last["payload"]["total"], last["payload"]["backend"]) == (3, 3, "local")


def test_json_output_is_unchanged_and_progress_never_on_stdout(tmp_path: Path) -> None:
    lab = slow_lab(tmp_path, partitions=2, sleepy=0.2)
    proc = subprocess.run(
        [*RUN, str(lab), "--json", "-v"], capture_output=True, text=True, env=env(), timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    assert [s["id"] for s in got["steps"]] == ["sleepy", "stats"] and set(got) == {"run_id", "steps"}
    assert "sleepy │ hello from sleepy" in proc.stderr


# -- (c) -v streams a step's output while it runs ---------------------------------------------------
def test_verbose_streams_a_line_while_the_step_still_runs(tmp_path: Path) -> None:
    lab = slow_lab(tmp_path, partitions=1, sleepy=2.0)
    proc = subprocess.Popen(
        [*RUN, str(lab), "-v", "--only", "sleepy"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env(),
    )
    assert proc.stderr is not None
    arrived: dict[str, float] = {}
    lines = []
    for raw in proc.stderr:
        line = raw.decode("utf-8")
        lines.append(line)
        for key in ("sleepy │ hello from sleepy", "sleepy │ bye", "✓ sleepy"):
            if key in line:
                arrived.setdefault(key, time.monotonic())
    assert proc.wait(timeout=60) == 0, lines
    assert set(arrived) == {"sleepy │ hello from sleepy", "sleepy │ bye", "✓ sleepy"}, lines
    # the first line came while the step slept for 2 s; its last line came before its finished line
    assert arrived["✓ sleepy"] - arrived["sleepy │ hello from sleepy"] > 1.0, lines
    assert arrived["sleepy │ bye"] <= arrived["✓ sleepy"]
    assert "\x1b" not in "".join(lines)


# -- (d) the follower, with files the test writes ---------------------------------------------------
class Heard(SilentReporter):
    wants_live = True

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, Any]] = []

    def step_output(self, step_id: str, line: str) -> None:
        self.calls.append(("output", step_id, line))

    def step_progress(self, step_id: str, progress: Any) -> None:
        self.calls.append(("progress", step_id, dict(progress)))

    def step_finished(self, outcome: StepOutcome) -> None:
        self.calls.append(("finished", outcome.id, outcome.status))


def test_the_follower_hands_on_whole_lines_and_progress_as_they_are_written(tmp_path: Path) -> None:
    heard = Heard()
    follower = Follower(heard, tmp_path, interval=3600)  # polled by hand
    follower.started("a")
    follower.poll()
    assert heard.calls == []  # nothing written yet: no log (a silent step has none)
    log = tmp_path / "a.log"
    with log.open("w") as fh:
        fh.write("one\ntw")
        fh.flush()
        follower.poll()
        assert heard.calls == [("output", "a", "one")]  # "tw" waits for its newline
        fh.write("o\n\x1b[1mbold\x1b[0m é\n10%\r50%\r100%\n")
        fh.flush()
        follower.poll()
        fh.write("last, without a newline")
    assert heard.calls[1:] == [
        ("output", "a", "two"),
        ("output", "a", "\x1b[1mbold\x1b[0m é"),
        ("output", "a", "100%"),
    ]
    with progress_file(log).open("w") as fh:
        fh.write(json.dumps({"event": "finished", "partition": "p0", "done": 1, "total": 4}) + "\n{broken\n")
    heard.calls.clear()
    follower.finished("a")  # what is left is said, the partial last line included
    assert heard.calls == [
        ("progress", "a", {"event": "finished", "partition": "p0", "done": 1, "total": 4}),
        ("output", "a", "last, without a newline"),
    ]
    heard.calls.clear()
    follower.poll()
    assert heard.calls == []  # no longer followed
    follower.stop()


def test_a_retry_is_followed_in_its_own_log_after_the_attempt_before(tmp_path: Path) -> None:
    heard = Heard()
    follower = Follower(heard, tmp_path, interval=3600)
    (tmp_path / "a.log").write_text("first attempt\n")
    (tmp_path / "a.2.log").write_text("second attempt\n")
    follower.started("a", 1)
    follower.started("a", 2)
    follower.finished("a")
    assert [c[2] for c in heard.calls] == ["first attempt", "second attempt"]


def test_a_flooding_step_is_skipped_to_its_end(tmp_path: Path) -> None:
    heard = Heard()
    follower = Follower(heard, tmp_path, interval=3600)
    follower.started("a")
    (tmp_path / "a.log").write_text("x" * 99 + "\n" + "".join(f"line {n}\n" for n in range(300_000)))
    follower.poll()
    said = [c[2] for c in heard.calls]
    assert said[0].startswith("[… ") and "bytes not shown: see" in said[0]
    assert said[-1] == "line 299999" and len(said) < 20_000


def test_the_follower_thread_polls_by_itself_and_stops(tmp_path: Path) -> None:
    heard = Heard()
    wrapped, stop = follow(heard, tmp_path, interval=0.02)
    assert wrapped is not heard
    wrapped.step_started("a", ["never ran"], 1)
    (tmp_path / "a.log").write_text("hello\n")
    deadline = time.monotonic() + 5
    while not heard.calls and time.monotonic() < deadline:
        time.sleep(0.01)
    assert heard.calls == [("output", "a", "hello")]
    wrapped.step_finished(StepOutcome("a", "ran"))
    assert heard.calls[-1] == ("finished", "a", "ran")
    stop()


def test_progress_is_followed_only_for_steps_that_can_write_it(tmp_path: Path) -> None:
    """A plain step's request names no progress file: its file is not looked for (the runner says which
    steps can write one); a step with nothing to follow is not followed at all."""
    line = json.dumps({"event": "finished", "partition": "p0", "done": 1, "total": 1, "failed": 0})
    for step in ("plain", "stage"):
        progress_file(tmp_path / f"{step}.log").write_text(line + "\n")
        (tmp_path / f"{step}.log").write_text(f"{step} says\n")
    heard = Heard()
    follower = Follower(heard, tmp_path, interval=3600, progress=lambda sid: sid == "stage")
    follower.started("plain")
    follower.started("stage")
    follower.finished("plain")
    follower.finished("stage")
    assert [c[:2] for c in heard.calls] == [("output", "plain"), ("progress", "stage"), ("output", "stage")]
    quiet = Heard()
    only_progress = Follower(quiet, tmp_path, {"progress"}, 3600, progress=lambda sid: sid == "stage")
    only_progress.started("plain")
    assert only_progress._steps == {} and only_progress._thread is None  # nothing to follow
    only_progress.finished("plain")
    assert quiet.calls == []


def test_only_a_reporter_that_wants_it_is_followed(tmp_path: Path) -> None:
    quiet = SilentReporter()
    assert follow(quiet, tmp_path)[0] is quiet  # no thread, no wrapper
    plain = PlainReporter(io.StringIO())
    assert live_wants(plain) == {"progress"}
    assert live_wants(Reporters(quiet, plain)) == {"progress"}
    assert live_wants(Reporters(quiet, PlainReporter(io.StringIO(), verbose=True))) == {"progress", "output"}
    assert live_wants(Reporters(quiet, Heard())) == {"progress", "output"}


# -- (e) not a terminal: a progress line every so often ---------------------------------------------
def test_a_running_stage_gets_a_progress_line_every_interval() -> None:
    out = io.StringIO()
    reporter = PlainReporter(out, width=6, every=0.15)
    reporter.step_started("stats", ["never ran"], 1)
    reporter.step_progress("stats", {"event": "finished", "done": 12, "total": 16, "failed": 0})
    time.sleep(0.5)
    reporter.step_finished(StepOutcome("stats", "ran", seconds=0.5))
    lines = out.getvalue().splitlines()
    ticks = [line for line in lines if line.startswith("… ")]
    assert len(ticks) >= 2, lines
    assert all(re.fullmatch(r"… stats running \d+ s; 12/16 partitions", t) for t in ticks), ticks
    assert lines[-1].startswith("✓ stats") and "\x1b" not in out.getvalue()
    time.sleep(0.4)
    assert out.getvalue().splitlines()[-1].startswith("✓ stats")  # nothing runs: no more lines


def test_the_progress_thread_ends_with_the_run() -> None:
    """Not up to ``every`` seconds later: watch mode runs again in the same process."""
    reporter = PlainReporter(io.StringIO(), every=60)
    reporter.step_started("a", ["never ran"], 1)
    ticker = reporter._ticker
    assert ticker is not None and ticker.is_alive()
    reporter.step_finished(StepOutcome("a", "ran", seconds=0.1))
    started = time.monotonic()
    reporter.run_finished(RunResult("r1", [StepOutcome("a", "ran", seconds=0.1)], False, True))
    assert not ticker.is_alive() and time.monotonic() - started < 5 and reporter._ticker is None
    reporter.step_started("b", ["never ran"], 1)  # the next run's first step starts another
    assert reporter._ticker is not None and reporter._ticker is not ticker and reporter._ticker.is_alive()
    reporter.step_finished(StepOutcome("b", "ran", seconds=0.1))
    reporter.run_finished(RunResult("r2", [StepOutcome("b", "ran", seconds=0.1)], False, True))
    assert reporter._ticker is None


def test_the_progress_line_says_a_plain_step_and_failed_partitions() -> None:
    now = [100.0]
    reporter = PlainReporter(io.StringIO(), every=10)
    reporter.running.clock = lambda: now[0]
    reporter.running.start("sleepy")
    reporter.running.start("stats")
    reporter.step_progress("stats", {"done": 3, "total": 8, "failed": 1})
    now[0] = 105.0
    assert reporter.progress_lines() == []  # not 10 s yet
    now[0] = 120.4
    assert reporter.progress_lines() == [
        "… sleepy running 20 s",
        "… stats running 20 s; 3/8 partitions (1 failed)",
    ]


# -- the stage's progress file ----------------------------------------------------------------------
def test_a_stage_writes_a_line_per_partition_started_and_finished(tmp_path: Path) -> None:
    slow_lab(tmp_path, partitions=3, function="bad")
    path = tmp_path / "parallel_stage.toml"
    progress = tmp_path / "p.progress.jsonl"
    with pytest.raises(StageFailed):
        run_contract(load(path, "contract"), path, progress=str(progress))
    lines = [json.loads(x) for x in progress.read_text().splitlines()]
    assert [(x["event"], x["done"], x["failed"]) for x in lines] == [
        ("started", 0, 0),
        ("finished", 1, 0),
        ("started", 1, 0),
        ("finished", 2, 1),
    ]
    assert lines[-1]["error"] == "ValueError: partition one is bad"
    assert {x["total"] for x in lines} == {3} and {x["backend"] for x in lines} == {"local"}
    assert lines[0]["partition"].startswith("partition 0 (") and "dashboard" not in lines[0]


def test_a_step_log_is_written_while_the_step_runs(tmp_path: Path) -> None:
    lab = slow_lab(tmp_path, partitions=1, sleepy=3.0)
    proc = subprocess.Popen(
        [*RUN, str(lab), "--only", "sleepy"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env()
    )
    try:
        deadline = time.monotonic() + 30
        logs: list[Path] = []
        while time.monotonic() < deadline and not logs:
            logs = [p for p in tmp_path.glob(".agilab/runs/*/sleepy.log") if p.stat().st_size]
            time.sleep(0.05)
        assert logs and proc.poll() is None  # written before the step ended
        assert logs[0].read_text() == "hello from sleepy\n"
    finally:
        assert proc.wait(timeout=60) == 0
    assert logs[0].read_text() == "hello from sleepy\nbye\n"


def test_every_backend_reports_each_partition_started_and_finished(
    tmp_path: Path, on: dict[str, object]
) -> None:
    slow_lab(tmp_path, partitions=4, function="bad")
    (tmp_path / "funcs.py").write_text(SLOW + "\ndef fine(part):\n    return {'i': part.index}\n")
    path = tmp_path / "parallel_stage.toml"
    path.write_text(path.read_text().replace("funcs.py:bad", "funcs.py:fine"))
    progress = tmp_path / "p.progress.jsonl"
    run_contract(load(path, "contract"), path, cores=2, progress=str(progress), **on)  # type: ignore[arg-type]
    lines = [json.loads(x) for x in progress.read_text().splitlines()]
    started = [x["partition"] for x in lines if x["event"] == "started"]
    finished = [x for x in lines if x["event"] == "finished"]
    assert sorted(started) == sorted(x["partition"] for x in finished) and len(started) == 4
    assert [x["done"] for x in finished] == [1, 2, 3, 4] and {x["total"] for x in lines} == {4}
    assert {x["backend"] for x in lines} == {on["backend"]}
    if on["backend"] == "dask":  # its dashboard, for the terminal to show
        assert all(x["dashboard"].startswith("http") for x in lines)


def test_a_dumb_terminal_gets_plain_lines(tmp_path: Path) -> None:
    lab = slow_lab(tmp_path, partitions=2, sleepy=0.2)
    master, slave = os.openpty()
    proc = subprocess.Popen(
        [*RUN, str(lab), "-v"], stdin=slave, stdout=slave, stderr=slave, env=env(TERM="dumb"), close_fds=True
    )
    os.close(slave)
    seen = b""
    try:
        while True:
            ready, _, _ = select.select([master], [], [], 60)
            try:
                chunk = os.read(master, 65536) if ready else b""
            except OSError:
                chunk = b""
            if not chunk:
                break
            seen += chunk
    finally:
        proc.wait(timeout=30)
        os.close(master)
    text = seen.decode("utf-8", errors="replace")
    assert proc.returncode == 0, text
    assert "\x1b" not in text and "sleepy │ hello from sleepy" in text and "✓ stats" in text
