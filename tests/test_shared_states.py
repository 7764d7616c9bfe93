"""``status`` in AGILAB's words (ready, waiting, running, done, failed, stale, disabled, skipped): ours
kept where it says more, a failed step ``failed`` with its error until it runs again, ``--json``
keeping every key it had, and the judgment cache's fast answer equal to the full judgment's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agilab_dsl.cli import main
from agilab_dsl.cli.listing import steps_json
from agilab_dsl.plan.judgment import CachedStatus
from agilab_dsl.plan.shared import shared_states

LAB = """[[m]]
id = "make"
produces = ["a.txt"]
C = "open('a.txt', 'w').write('x')"

[[m]]
id = "check"
consumes = ["a.txt"]
produces = ["b.txt"]
C = '''
import os
if os.environ.get("AGILAB_TEST_FAIL"):
    raise ValueError("the threshold is negative\\nsecond line")
open("b.txt", "w").write("y")
'''

[[m]]
id = "report"
consumes = ["b.txt"]
C = "pass"

[[m]]
id = "off"
enabled = false
C = "pass"
"""


@pytest.fixture
def lab(tmp_path: Path) -> Path:
    path = tmp_path / "lab_stages.toml"
    path.write_text(LAB, encoding="utf-8")
    return path


def status_json(lab: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> list[dict]:
    assert main(["status", str(lab), "--json", *extra]) == 0
    return json.loads(capsys.readouterr().out)["steps"]


def status_text(lab: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, str]:
    assert main(["status", str(lab)]) == 0
    return {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}


def test_the_mapping_from_our_states() -> None:
    statuses = [
        CachedStatus("a", "fresh", ()),
        CachedStatus("b", "stale", ("code changed",)),
        CachedStatus("c", "never-ran", ("never ran",)),
        CachedStatus("d", "disabled", ()),
        CachedStatus("e", "never-ran", ("never ran",)),
        CachedStatus("f", "stale", ()),
    ]
    upstream = {"b": ["a"], "c": ["b"], "e": ["d"], "f": ["a", "outside"]}
    got = shared_states(statuses, upstream, {})
    assert {k: v.state for k, v in got.items()} == {
        "a": "done",
        "b": "ready",  # every upstream step done: it can run now
        "c": "stale",  # after b
        "d": "disabled",
        "e": "ready",  # a disabled upstream does not hold it
        "f": "ready",  # a step not judged here (outside the selection) counts as done
    }
    assert [got[k].label() for k in "abcd"] == ["done", "ready (stale)", "stale (never-ran)", "disabled"]
    failed = shared_states(statuses, upstream, {"b": "ValueError: boom"})
    assert failed["b"] == ("failed", ("ValueError: boom",), "stale")
    assert failed["c"].state == "stale"  # its upstream failed: not ready
    assert shared_states(statuses, upstream, {"d": "x"})["d"].state == "disabled"


def test_status_speaks_agilab_and_keeps_its_json_keys(lab: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lines = status_text(lab, capsys)
    assert lines["make"].split()[1:] == ["ready", "(never-ran)", "never", "ran"]
    assert lines["check"].split()[1:3] == ["stale", "(never-ran)"]
    assert lines["off"].split()[1] == "disabled"
    steps = status_json(lab, capsys)
    assert steps[0] == {
        "id": "make",
        "state": "never-ran",  # every key it had, unchanged
        "reasons": ["never ran"],
        "agilab_state": "ready",
        "agilab_reasons": [],
    }
    assert [s["agilab_state"] for s in steps] == ["ready", "stale", "stale", "disabled"]


def test_a_failed_step_is_failed_with_its_error_until_it_runs_again(
    lab: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGILAB_TEST_FAIL", "1")
    assert main([str(lab)]) == 1
    capsys.readouterr()
    lines = status_text(lab, capsys)
    assert lines["make"].split()[1] == "done"
    assert lines["check"].split()[1] == "failed"
    assert lines["check"].endswith("ValueError: the threshold is negative")  # the error's first line
    assert lines["report"].split()[1:3] == ["stale", "(never-ran)"]  # waits for check
    steps = {s["id"]: s for s in status_json(lab, capsys)}
    assert steps["check"]["agilab_state"] == "failed"
    assert steps["check"]["agilab_reasons"] == ["ValueError: the threshold is negative"]
    assert steps["check"]["state"] in ("never-ran", "stale")  # our judgment, as before
    assert status_json(lab, capsys) == list(steps.values())  # asked again: the same
    monkeypatch.delenv("AGILAB_TEST_FAIL")
    assert main([str(lab)]) == 0
    capsys.readouterr()
    assert [s["agilab_state"] for s in status_json(lab, capsys)] == ["done", "done", "done", "disabled"]


def test_the_cached_answer_is_the_full_judgments(
    lab: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import agilab_dsl.execute.session as session

    assert main([str(lab), "--only", "make"]) == 0  # a run stores its judgment; make is done
    capsys.readouterr()
    full = status_json(lab, capsys, "--no-cache")
    assert [s["agilab_state"] for s in full] == ["done", "ready", "stale", "disabled"]
    assert status_json(lab, capsys) == full  # a full judgment, kept in .agilab/judgment.json

    def no_full_judgment(*args: object, **kwargs: object) -> None:
        raise AssertionError("status judged the lab afresh: the cache was not used")

    monkeypatch.setattr(session, "judge", no_full_judgment)
    assert status_json(lab, capsys) == full  # the fast path: the same states, ready and stale alike
    before = status_text(lab, capsys)
    assert before["check"].split()[1:3] == ["ready", "(never-ran)"]


def test_states_follow_the_graph_whatever_order_the_steps_come_in() -> None:
    # c after b after a, listed backwards; d beside them; a cycle (x <-> y) never loops
    statuses = [
        CachedStatus(s, st, ())
        for s, st in [("c", "stale"), ("b", "stale"), ("a", "fresh"), ("d", "never-ran")]
    ]
    shared = shared_states(statuses, {"c": ["b"], "b": ["a", "a"], "d": []}, {})
    assert {sid: s.state for sid, s in shared.items()} == {
        "c": "stale",
        "b": "ready",
        "a": "done",
        "d": "ready",
    }
    assert list(shared) == ["c", "b", "a", "d"]  # in the statuses' order
    looped = shared_states(
        [CachedStatus("x", "stale", ()), CachedStatus("y", "stale", ())], {"x": ["y"], "y": ["x"]}, {}
    )
    assert set(looped) == {"x", "y"}


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.dictionaries(
            st.text(max_size=8),
            st.one_of(
                st.text(max_size=12),
                st.lists(st.text(max_size=12), max_size=3),
                st.none(),
                st.integers(),
                st.dictionaries(st.text(max_size=4), st.lists(st.integers(), max_size=2), max_size=2),
            ),
            max_size=5,
        ),
        max_size=4,
    )
)
def test_status_json_is_written_as_json_dumps_writes_it(steps: list[dict]) -> None:
    assert steps_json(steps) == json.dumps({"steps": steps}, indent=2, ensure_ascii=False)


_STATES = st.sampled_from(["fresh", "stale", "never-ran", "disabled", "skipped"])
_REASONS = st.lists(st.sampled_from(["input a.txt changed", "never ran", 'é\n"x"', ""]), max_size=2)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.text(max_size=6), _STATES, _REASONS), max_size=8, unique_by=lambda t: t[0]),
    st.booleans(),
    st.dictionaries(st.text(max_size=6), st.sampled_from(["boom", 'é: "bad"']), max_size=3),
)
def test_statuses_json_is_each_status_as_json_dumps_writes_it(
    rows: list[tuple[str, str, list[str]]], with_shared: bool, failed: dict[str, str]
) -> None:
    """The statuses' JSON writes what follows an id once for alike steps (listing.statuses_json): the
    text is still json.dumps' of every step's dict, ids and reasons of any characters included."""
    from agilab_dsl.cli.listing import statuses_json

    statuses = [CachedStatus(sid, state, tuple(reasons)) for sid, state, reasons in rows]
    shared = shared_states(statuses, {}, failed) if with_shared else None
    steps = [{**s.to_json(), **(shared[s.id].to_json() if shared else {})} for s in statuses]
    assert statuses_json(statuses, shared) == json.dumps({"steps": steps}, indent=2, ensure_ascii=False)
