"""The run's event stream (README "Event stream"): every run that starts a step keeps its events in
``.agilab/runs/<run_id>/events.jsonl`` (and ``--events PATH|-`` gets them too), in AGILAB's live-state
row shape; a step whose last run failed is remembered until it runs again."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from agilab_dsl.cli import main
from agilab_dsl.execute.events import EventHub, EventReporter, JsonlSink, timestamp
from agilab_dsl.execute.outcome import StepOutcome
from agilab_dsl.plan.failures import read_failures
from agilab_dsl.plan.vocabulary import COLORS, agilab_state

KEYS = [
    "sequence",
    "timestamp",
    "kind",
    "target_type",
    "target_id",
    "status",
    "message",
    "operator_visible",
    "payload",
]

LAB = """[__meta__]
schema = "agilab.lab_stages.v1"

[[demo]]
id = "make"
C = "print('making'); open(outputs[0], 'w').write(open(inputs[0]).read())"
consumes = ["in.txt"]
produces = ["made.txt"]

[[demo]]
id = "check"
C = '''
text = open(inputs[0]).read()
if "bad" in text:
    raise ValueError("the input says bad")
open(outputs[0], "w").write(text)
'''
depends_on = ["make"]
consumes = ["made.txt"]
produces = ["checked.txt"]

[[demo]]
id = "after"
C = "open(outputs[0], 'w').write(open(inputs[0]).read())"
depends_on = ["check"]
consumes = ["checked.txt"]
produces = ["after.txt"]
"""


@pytest.fixture
def lab(tmp_path: Path) -> Path:
    (tmp_path / "lab_stages.toml").write_text(LAB)
    (tmp_path / "in.txt").write_text("good\n")
    return tmp_path / "lab_stages.toml"


def _read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _run_folder(lab: Path) -> Path:
    (folder,) = [p for p in (lab.parent / ".agilab" / "runs").iterdir() if p.is_dir()]
    return folder


def test_a_run_keeps_its_events_in_agilab_row_shape(lab: Path, tmp_path: Path) -> None:
    mirror = tmp_path / "mirror.jsonl"
    assert main([str(lab), "--events", str(mirror)]) == 0
    events = _read(_run_folder(lab) / "events.jsonl")
    assert events == _read(mirror)  # --events PATH hears the same stream
    assert all(list(e) == KEYS for e in events)
    assert [e["sequence"] for e in events] == list(range(1, len(events) + 1))
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", e["timestamp"]) for e in events)
    kinds = [(e["kind"], e["target_id"], e["status"]) for e in events]
    run_id = _run_folder(lab).name
    assert kinds[0] == ("run_started", run_id, "running")
    assert kinds[-1] == ("run_finished", run_id, "done")
    assert events[0]["payload"]["states"] == {"make": "ready", "check": "waiting", "after": "waiting"}
    for sid in ("make", "check", "after"):
        mine = [k for k, t, _ in kinds if t == sid]
        assert mine == ["step_queued", "step_started", "step_finished"], (sid, mine)
    started = next(e for e in events if e["kind"] == "step_started" and e["target_id"] == "make")
    assert started["payload"]["reasons"] == ["never ran"]
    assert started["payload"]["log"] == f".agilab/runs/{run_id}/make.log"
    assert events[-1]["payload"]["counts"] == {"ran": 3}
    assert not any(e["kind"] == "step_output" for e in events)  # the log is the output's record


def test_failure_is_an_event_and_is_remembered_until_the_step_runs_again(lab: Path) -> None:
    (lab.parent / "in.txt").write_text("bad\n")
    assert main([str(lab)]) == 1
    events = _read(_run_folder(lab) / "events.jsonl")
    finished = {e["target_id"]: e for e in events if e["kind"] == "step_finished"}
    assert finished["check"]["status"] == "failed"
    assert "the input says bad" in finished["check"]["message"]
    assert finished["after"]["status"] == "waiting"  # blocked behind the failure
    assert events[-1]["status"] == "failed"
    failures = read_failures(lab.parent)
    assert set(failures) == {"check"}
    assert "ValueError" in failures["check"]["error"] or "exit" in failures["check"]["error"]
    (lab.parent / "in.txt").write_text("good again\n")
    assert main([str(lab)]) == 0
    assert read_failures(lab.parent) == {}


def test_a_run_with_nothing_to_do_leaves_no_run_folder_but_tells_events(
    lab: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([str(lab)]) == 0
    capsys.readouterr()
    before = sorted((lab.parent / ".agilab" / "runs").iterdir())
    assert main([str(lab), "--events", "-"]) == 0
    out = capsys.readouterr().out
    events = [json.loads(line) for line in out.splitlines()]
    assert events[0]["kind"] == "run_started"
    assert events[-1]["kind"] == "run_finished" and events[-1]["payload"]["counts"] == {"fresh": 3}
    assert events[-1]["payload"]["recorded"] is False
    assert sorted((lab.parent / ".agilab" / "runs").iterdir()) == before


def test_events_to_stdout_and_json_are_refused_together(
    lab: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([str(lab), "--events", "-", "--json"]) == 2
    assert "--events" in capsys.readouterr().err


def test_events_to_a_path_that_cannot_be_written(lab: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(lab), "--events", str(lab.parent / "no" / "such" / "dir" / "e.jsonl")]) == 2
    err = capsys.readouterr().err
    assert "--events" in err and "Traceback" not in err


def test_hub_numbers_events_and_drops_a_broken_sink(tmp_path: Path) -> None:
    heard: list[dict] = []

    def broken(event: dict) -> None:
        raise BrokenPipeError

    path = tmp_path / "e.jsonl"
    sink = JsonlSink(path)
    hub = EventHub([heard.append, broken, sink])
    hub.emit("note", "run", "r", "running", "one")
    hub.emit("step_output", "step", "s", "running", "a line", {"line": "a line"}, operator_visible=False)
    sink.close()
    assert [e["sequence"] for e in heard] == [1, 2]
    assert broken not in hub.sinks
    assert [e["kind"] for e in _read(path)] == ["note"]  # output lines stay in-process


def test_timestamp_has_milliseconds() -> None:
    assert timestamp(0.25) == "1970-01-01T00:00:00.250Z"
    # the formatted second is kept between calls: a call in another second never reuses it
    seen = [timestamp(t) for t in (86_399.999, 86_400.0, 0.5, 0.75, 1_795_000_000.123)]
    assert seen == [
        "1970-01-01T23:59:59.999Z",
        "1970-01-02T00:00:00.000Z",
        "1970-01-01T00:00:00.500Z",
        "1970-01-01T00:00:00.750Z",
        "2026-11-18T11:06:40.123Z",
    ]


def test_a_finished_steps_log_is_named_from_the_labs_folder(tmp_path: Path) -> None:
    heard: list[dict] = []
    reporter = EventReporter(EventHub([heard.append]), "lab_steps.toml", str(tmp_path))
    outside = tmp_path.parent / "elsewhere.log"
    for log in (tmp_path / ".agilab" / "runs" / "r" / "a.log", outside, tmp_path / "x" / ".." / "b.log"):
        reporter.step_finished(StepOutcome("a", "ran", log=str(log)))
    logs = [e["payload"]["log"] for e in heard]
    assert logs == [".agilab/runs/r/a.log", os.path.join("..", "elsewhere.log"), "b.log"]


@pytest.mark.parametrize(
    ("state", "upstream_done", "failed", "expected"),
    [
        ("fresh", True, None, ("done", [])),
        ("never-ran", True, None, ("ready", [])),
        ("stale", False, None, ("stale", [])),
        ("stale", True, "ValueError: x", ("failed", ["ValueError: x"])),
        ("disabled", True, "old", ("disabled", [])),
    ],
)
def test_agilab_vocabulary(state: str, upstream_done: bool, failed: str | None, expected: tuple) -> None:
    assert agilab_state(state, upstream_done, failed) == expected
    assert expected[0] in COLORS
