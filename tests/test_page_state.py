"""The live page's state, feed and file rules, with synthetic events (no server, no browser)."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from agilab_dsl.cli.page.feed import FileFeed
from agilab_dsl.cli.page.server import AddressProblem, bind, log_file, parse_address, static_file
from agilab_dsl.cli.page.state import LiveState, ranks
from agilab_dsl.execute.events import EventHub


def _state() -> LiveState:
    state = LiveState("lab_stages.toml")
    state.set_graph(["a", "b", "c", "d"], [("a", "b"), ("a", "b"), ("b", "c"), ("a", "c")])
    return state


def test_ranks_are_layers_of_the_longest_path() -> None:
    assert ranks(["a", "b", "c", "d"], [("a", "b"), ("b", "c"), ("a", "c")]) == {
        "a": 0,
        "b": 1,
        "c": 2,
        "d": 0,
    }
    assert ranks(["x"], [("x", "gone")]) == {"x": 0}


def test_one_edge_per_pair_of_steps() -> None:
    assert _state().graph()["edges"] == [
        {"from": "a", "to": "b"},
        {"from": "b", "to": "c"},
        {"from": "a", "to": "c"},
    ]


def test_events_move_the_states_and_listeners_hear_snapshot_then_each_event() -> None:
    state = _state()
    heard: list[tuple[str, dict]] = []
    state.subscribe(heard.append)
    hub = EventHub([state.apply])
    hub.emit("run_started", "run", "R1", "running", "", {"states": {"a": "ready", "b": "waiting"}})
    hub.emit(
        "step_started", "step", "a", "running", "", {"reasons": ["never ran"], "attempt": 1, "log": "x.log"}
    )
    hub.emit(
        "partition_finished",
        "partition",
        "a/p1",
        "done",
        "",
        {"step": "a", "done": 1, "total": 4, "failed": 0, "backend": "pool"},
    )
    view = {s["id"]: s for s in state.snapshot()["steps"]}["a"]
    assert (view["state"], view["done"], view["total"], view["backend"], view["log"]) == (
        "running",
        1,
        4,
        "pool",
        "x.log",
    )
    hub.emit(
        "step_finished",
        "step",
        "a",
        "failed",
        "",
        {
            "outcome": {"status": "failed", "error": "ValueError: bad\nmore", "seconds": 1.5},
            "seconds": 1.5,
            "reasons": [],
        },
    )
    hub.emit(
        "step_finished",
        "step",
        "b",
        "waiting",
        "",
        {"outcome": {"status": "blocked"}, "seconds": 0.0, "reasons": ["upstream a failed"]},
    )
    hub.emit(
        "run_finished", "run", "R1", "failed", "", {"counts": {"failed": 1, "blocked": 1}, "seconds": 2.0}
    )
    steps = {s["id"]: s for s in state.snapshot()["steps"]}
    assert steps["a"]["state"] == "failed" and steps["a"]["reasons"] == ["ValueError: bad"]
    assert steps["a"]["seconds"] == 1.5
    assert steps["b"]["state"] == "waiting" and steps["b"]["seconds"] is None
    assert steps["c"]["state"] == "stale"  # not in the run: untouched
    assert state.snapshot()["run"]["status"] == "failed"
    assert state.history_version == 1
    names = [name for name, _ in heard]
    assert names[0] == "snapshot"
    assert names[1:] == ["message", "update"] * 6
    events = [data for name, data in heard if name == "message"]
    assert [e["sequence"] for e in events] == [1, 2, 3, 4, 5, 6]
    updates = [data for name, data in heard if name == "update"]
    assert updates[1]["steps"]["a"]["state"] == "running"
    assert updates[-1]["run"]["status"] == "failed"


def test_a_fresh_step_keeps_the_duration_it_last_ran_in() -> None:
    state = _state()
    state.apply(
        {
            "sequence": 1,
            "kind": "step_finished",
            "target_id": "d",
            "status": "done",
            "payload": {"outcome": {"status": "ran"}, "seconds": 0.7},
        }
    )
    state.apply(
        {
            "sequence": 2,
            "kind": "step_finished",
            "target_id": "d",
            "status": "done",
            "payload": {"outcome": {"status": "fresh"}, "seconds": 0.0},
        }
    )
    assert {s["id"]: s for s in state.snapshot()["steps"]}["d"]["seconds"] == 0.7


def test_a_run_naming_unknown_steps_asks_for_the_graph_again() -> None:
    state = _state()
    asked: list[list[str]] = []
    state.on_unknown = asked.append
    state.apply(
        {
            "sequence": 1,
            "kind": "run_started",
            "target_id": "R",
            "payload": {"states": {"a": "ready", "new": "ready"}},
        }
    )
    assert asked == [["new"]]


def test_definition_events_set_the_lab_status() -> None:
    state = _state()
    state.apply({"kind": "definition_invalid", "payload": {"diagnostics": ["lab_stages.toml:3:1: boom"]}})
    assert state.snapshot()["lab_status"]["status"] == "failed"
    state.apply({"kind": "definition_valid", "payload": {}})
    assert state.snapshot()["lab_status"] == {
        "status": "ready",
        "diagnostics": [],
        "changed": [],
        "affected": [],
    }


def _events(folder: Path, *events: dict, partial: str = "") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "events.jsonl").open("a") as fh:
        fh.write("".join(json.dumps(e) + "\n" for e in events) + partial)


def test_the_file_feed_follows_the_newest_run(tmp_path: Path) -> None:
    runs = tmp_path / ".agilab" / "runs"
    _events(
        runs / "20260101T000000.000-aaaaaa",
        {"sequence": 1, "kind": "run_started", "target_id": "old", "payload": {"states": {"a": "ready"}}},
        {"sequence": 2, "kind": "run_finished", "target_id": "old", "status": "done", "payload": {}},
    )
    state = _state()
    feed = FileFeed(tmp_path, state)
    feed.start()
    feed.close()  # the loop is driven by hand below
    assert feed.step() == 0  # a finished run is skipped at start: the judgment is newer
    new = runs / "20260102T000000.000-bbbbbb"
    _events(
        new,
        {"sequence": 1, "kind": "run_started", "target_id": "R2", "payload": {"states": {"a": "ready"}}},
        partial='{"sequence": 2, "kind": "step_st',
    )
    assert feed.step() == 1  # the partial line waits for its end
    with (new / "events.jsonl").open("a") as fh:
        fh.write('arted", "target_id": "a", "status": "running", "payload": {}}\nnot json\n')
    assert feed.step() == 1
    assert {s["id"]: s["state"] for s in state.snapshot()["steps"]}["a"] == "running"
    assert state.snapshot()["run"]["run_id"] == "R2"


def test_a_run_in_progress_is_replayed_at_start(tmp_path: Path) -> None:
    _events(
        tmp_path / ".agilab" / "runs" / "R",
        {"sequence": 1, "kind": "run_started", "target_id": "R", "payload": {"states": {"b": "waiting"}}},
    )
    state = _state()
    feed = FileFeed(tmp_path, state)
    feed.start()
    feed.close()
    assert feed.step() == 1
    assert state.snapshot()["run"] == {"run_id": "R", "status": "running", "started": None}
    # a step keeps its judged state until the run says more of it (a fresh one is never queued)
    assert {s["id"]: s["state"] for s in state.snapshot()["steps"]}["b"] == "stale"


@pytest.mark.parametrize(
    "name",
    ["../pyproject.toml", "..", "/etc/passwd", "a/../page.js", "./page.js", "", "x\\..\\y", "page.js\x00"],
)
def test_static_files_refuse_anything_but_the_package_files(name: str) -> None:
    assert static_file(name) is None


def test_static_files_are_served_from_the_package() -> None:
    for name in ("index.html", "page.js", "page.css"):
        path = static_file(name)
        assert path is not None and path.is_file()


def test_a_log_outside_agilab_is_never_served(tmp_path: Path) -> None:
    run = tmp_path / ".agilab" / "runs" / "R1"
    run.mkdir(parents=True)
    (run / "a.log").write_text("line\n")
    (tmp_path / "secret.txt").write_text("secret")
    assert log_file(tmp_path, "a", None) == (run / "a.log").resolve()
    assert (
        log_file(tmp_path, "a", "secret.txt") == (run / "a.log").resolve()
    )  # an event's path outside: ignored
    (run / "b.log").symlink_to(tmp_path / "secret.txt")
    assert log_file(tmp_path, "b", None) is None  # a link leading out of .agilab/
    assert log_file(tmp_path, "ab", None) is None  # a.log is not ab's


def test_addresses() -> None:
    assert parse_address(None) == ("127.0.0.1", None)
    assert parse_address("0.0.0.0:8000") == ("0.0.0.0", 8000)
    assert parse_address("9000") == ("127.0.0.1", 9000)
    assert parse_address("[::1]:0") == ("::1", 0)
    with pytest.raises(AddressProblem):
        parse_address("127.0.0.1:http")


def test_bind_says_a_port_in_use_and_falls_back_only_by_default() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        with pytest.raises(AddressProblem, match="in use"):
            bind("127.0.0.1", port)
    sock = bind("127.0.0.1", None)
    try:
        assert sock.getsockname()[0] == "127.0.0.1"
    finally:
        sock.close()
    with pytest.raises(AddressProblem):
        bind("no-such-host.invalid", 0)
