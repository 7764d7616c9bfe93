"""The judgment cache: status and no-op runs answered without judging, invalidated by any input;
and the spec cache: a run after a data change judged from plain data, without pydantic."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from test_run import HELPERS, LAB

from agilab_dsl.cli import main

PROBE = """
import json, sys
from agilab_dsl.cli import main
code = main(sys.argv[1:])
print(json.dumps({"code": code, "judged": "agilab_dsl.plan.stale" in sys.modules,
                  "pydantic": "pydantic" in sys.modules}), file=sys.stderr)
"""


@pytest.fixture
def lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("AGILAB_TEST_VAR", "one")  # read by the side step's ${env.…} hole
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a.csv").write_text("x\n1\n", encoding="utf-8")
    (tmp_path / "helpers.py").write_text(HELPERS, encoding="utf-8")
    (tmp_path / "app_settings.toml").write_text("[args]\nn = 3\nother = 1\n", encoding="utf-8")
    path = tmp_path / "lab_stages.toml"
    path.write_text(
        LAB.replace(
            "C = \"open(outputs[0], 'w')", 'env = "${env.AGILAB_TEST_VAR}"\nC = "open(outputs[0], \'w\')'
        ),
        encoding="utf-8",
    )
    return path


def probe(*argv: str, env: dict[str, str] | None = None) -> tuple[int, bool, str]:
    """Exit code, whether the steps were judged (not answered from a stored judgment), stdout."""
    info = probe_info(*argv, env=env)
    return info["code"], info["judged"], info["stdout"]


def probe_info(*argv: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    import os

    proc = subprocess.run(
        [sys.executable, "-c", PROBE, *argv],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, **(env or {})},
    )
    info: dict[str, Any] = json.loads(proc.stderr.strip().splitlines()[-1])
    info["stdout"] = proc.stdout
    return info


def states(out: str) -> dict[str, str]:
    return {s["id"]: s["state"] for s in json.loads(out)["steps"]}


def test_status_after_a_run_is_answered_without_judging(lab: Path) -> None:
    assert probe(str(lab))[0] == 0  # the run leaves its judgment: every step fresh
    code, judged, cached = probe("status", str(lab), "--json")
    assert code == 0 and not judged and set(states(cached).values()) == {"fresh"}
    code, judged, full = probe("status", str(lab), "--json", "--no-cache")
    assert code == 0 and judged and full == cached  # the same answer as a full judgment
    code, judged, _ = probe(str(lab), "--json")  # a run with nothing to do
    assert code == 0 and not judged


@pytest.mark.parametrize(
    "damage",
    [
        {"states": []},  # one state short
        {"ids": [1]},
        {"states": None},
        {"reasons": {"x": "not a list"}},
        {"reasons": {"x": [3]}},
    ],
)
def test_damaged_status_columns_mean_a_full_judgment(lab: Path, damage: dict[str, Any]) -> None:
    assert probe(str(lab))[0] == 0
    path = lab.parent / ".agilab" / "judgment.json"
    entry = json.loads(path.read_text())
    columns = entry["statuses"]
    assert len(columns["ids"]) == len(columns["states"]) > 1 and set(columns["states"]) == {"fresh"}
    path.write_text(json.dumps({**entry, "statuses": {**columns, **damage}}))
    code, judged, out = probe("status", str(lab), "--json")
    assert code == 0 and judged and set(states(out).values()) == {"fresh"}


@pytest.mark.parametrize(
    "damage",
    [
        {"paths": None},
        {"signatures": "1:2"},
        {"signatures": []},  # fewer signatures than paths
    ],
)
def test_damaged_signature_columns_mean_a_full_judgment(lab: Path, damage: dict[str, Any]) -> None:
    assert probe(str(lab))[0] == 0
    path = lab.parent / ".agilab" / "judgment.json"
    entry = json.loads(path.read_text())
    assert len(entry["paths"]) == len(entry["signatures"]) > 1 and "files" not in entry
    path.write_text(json.dumps({**entry, **damage}))
    (lab.parent / "data" / "a.csv").write_text("x\n2\n", encoding="utf-8")
    code, judged, out = probe("status", str(lab), "--json")
    assert code == 0 and judged and set(states(out).values()) != {"fresh"}  # the change is seen


def test_reasons_are_kept_by_step_in_the_columns(lab: Path) -> None:
    assert probe(str(lab))[0] == 0
    (lab.parent / "data" / "a.csv").write_text("x\n2\n", encoding="utf-8")
    (lab.parent / ".agilab" / "judgment.json").unlink()
    code, judged, full = probe("status", str(lab), "--json")  # judged in full, and kept
    stale = {s["id"]: s["reasons"] for s in json.loads(full)["steps"] if s["state"] != "fresh"}
    assert code == 0 and judged and stale and all(stale.values())
    columns = json.loads((lab.parent / ".agilab" / "judgment.json").read_text())["statuses"]
    assert columns["reasons"] == stale  # only the steps that have reasons
    code, judged, cached = probe("status", str(lab), "--json")
    assert code == 0 and not judged and cached == full  # the stored reasons, in the same order


def test_a_failed_run_leaves_no_judgment(lab: Path) -> None:
    broken = HELPERS.replace(
        "    with open(path) as fh:", "    raise ValueError('boom')\n    with open(path) as fh:"
    )
    (lab.parent / "helpers.py").write_text(broken, encoding="utf-8")
    assert probe(str(lab))[0] == 1
    code, judged, out = probe("status", str(lab), "--json")
    assert code == 0 and judged and states(out)["count"] == "never-ran"


@pytest.mark.parametrize(
    "change", ["input", "output", "lab", "settings", "settings-created", "function", "env"]
)
def test_any_change_is_seen(lab: Path, change: str, capsys: pytest.CaptureFixture[str]) -> None:
    folder = lab.parent
    assert main([str(lab)]) == 0
    assert main(["status", str(lab)]) == 0
    capsys.readouterr()
    env = {}
    if change == "input":
        (folder / "data" / "a.csv").write_text("x\n1\n2\n", encoding="utf-8")
    elif change == "output":
        (folder / "work" / "count.txt").unlink()
    elif change == "lab":
        lab.write_text(lab.read_text().replace("scale = 2", "scale = 5"), encoding="utf-8")
    elif change == "settings":
        (folder / "app_settings.toml").write_text("[args]\nn = 4\nother = 1\n", encoding="utf-8")
    elif change == "settings-created":
        (folder / "app_settings.toml").rename(folder / "moved.toml")
        (folder / "src").mkdir()
        (folder / "src" / "app_settings.toml").write_text("[args]\nn = 9\nother = 1\n", encoding="utf-8")
    elif change == "function":
        (folder / "helpers.py").write_text(HELPERS.replace("* scale", "* scale * 2"), encoding="utf-8")
    elif change == "env":
        env = {"AGILAB_TEST_VAR": "something-else"}
    code, judged, out = probe("status", str(lab), "--json", env=env)
    assert code == 0 and judged, f"{change}: answered from a stale judgment"
    assert "stale" in states(out).values()


def test_a_when_condition_keeps_runs_on_the_full_path(lab: Path) -> None:
    lab.write_text(
        lab.read_text().replace('id = "side"', 'id = "side"\nwhen = "settings.args.n > 0"'), encoding="utf-8"
    )
    assert probe(str(lab))[0] == 0
    assert probe("status", str(lab))[0] == 0
    assert not probe("status", str(lab))[1]  # status may use the judgment
    assert probe(str(lab))[1]  # a run must evaluate the condition


def test_no_cache_flag(lab: Path) -> None:
    assert probe(str(lab))[0] == 0
    probe("status", str(lab))
    assert probe("status", str(lab), "--no-cache")[1]


def run_statuses(out: str) -> dict[str, str]:
    return {s["id"]: s["status"] for s in json.loads(out)["steps"]}


def test_a_run_after_an_input_changed_starts_from_the_stored_spec(lab: Path) -> None:
    assert probe(str(lab))[0] == 0
    (lab.parent / "data" / "a.csv").write_text("x\n1\n2\n", encoding="utf-8")
    info = probe_info(str(lab), "--json")
    assert info["code"] == 0 and info["judged"] and not info["pydantic"]
    assert run_statuses(info["stdout"]) == {"load": "ran", "count": "ran", "side": "fresh"}
    assert (lab.parent / "work" / "count.txt").read_text() == "6"  # 3 lines * scale 2


@pytest.mark.parametrize("change", ["lab", "settings", "function-removed", "no-cache"])
def test_the_stored_spec_is_not_used_when_a_definition_changed(lab: Path, change: str) -> None:
    assert probe(str(lab))[0] == 0
    (lab.parent / "data" / "a.csv").write_text("x\n1\n2\n", encoding="utf-8")  # past the judgment cache
    argv = [str(lab), "--json"]
    expected = {"load": "ran", "count": "ran", "side": "fresh"}
    if change == "lab":
        lab.write_text(lab.read_text().replace("scale = 2", "scale = 5"), encoding="utf-8")
    elif change == "settings":
        (lab.parent / "app_settings.toml").write_text("[args]\nn = 4\nother = 1\n", encoding="utf-8")
    elif change == "function-removed":
        (lab.parent / "helpers.py").write_text("def other():\n    return 1\n", encoding="utf-8")
    else:
        argv.append("--no-cache")
    info = probe_info(*argv)
    assert info["pydantic"], f"{change}: a stored spec was used"
    if change == "function-removed":  # checked again (a warning), then the step fails saying why
        steps = {s["id"]: s for s in json.loads(info["stdout"])["steps"]}
        assert info["code"] == 1 and steps["count"]["status"] == "failed"
        return
    assert info["code"] == 0 and run_statuses(info["stdout"]) == expected
    if change == "lab":
        assert (lab.parent / "work" / "count.txt").read_text() == "15"
    if change == "settings":
        load = next(s for s in json.loads(info["stdout"])["steps"] if s["id"] == "load")
        assert "settings args.n changed: 3 → 4" in load["reasons"]


def test_an_invalid_edit_after_a_stored_spec_is_reported(lab: Path) -> None:
    assert probe(str(lab))[0] == 0
    lab.write_text(lab.read_text().replace('id = "side"', 'id = "side"\nretries = "x"'), encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, "-m", "agilab_dsl", str(lab)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2 and "retries" in proc.stderr and "Traceback" not in proc.stderr


def test_settings_that_json_cannot_hold_are_not_stored(lab: Path) -> None:
    (lab.parent / "app_settings.toml").write_text(
        "[args]\nn = 3\nother = 1\nday = 2026-11-21\n", encoding="utf-8"
    )
    lab.write_text(lab.read_text().replace("str(settings['args']['n'])", "repr(settings['args']['day'])"))
    assert probe(str(lab))[0] == 0
    assert (lab.parent / "work" / "side.txt").read_text() == "datetime.date(2026, 11, 21)"  # as TOML gave it
    (lab.parent / "data" / "a.csv").write_text("x\n1\n2\n", encoding="utf-8")
    info = probe_info(str(lab), "--json")
    assert info["code"] == 0 and info["pydantic"]  # loaded again: nothing was stored
    assert run_statuses(info["stdout"])["load"] == "ran"


def test_the_stored_readers_are_two_columns_scanned_for_the_changed_files(tmp_path: Path) -> None:
    from agilab_dsl.plan import judgment

    lab = str(tmp_path / "lab.toml")
    a, b, c = (str(tmp_path / name) for name in ("a.txt", "b.txt", "c.txt"))
    readers = {a: ["s1"], b: ["s2", "s1", "s2"]}
    judgment.store(lab, {}, [], [], [], [], readers=readers)
    graph_path = tmp_path / ".agilab" / judgment.GRAPH
    stored = json.loads(graph_path.read_text())
    assert stored["reader_files"] == [a, b, b] and stored["reader_steps"] == ["s1", "s1", "s2"]
    graph = judgment.StoredGraph(str(graph_path), stored["token"])
    assert graph.readers([b, c]) == {b: ["s1", "s2"]}  # c: read by no step (the caller judges in full)
    for damage in ({"reader_steps": ["s1", 2, "s2"]}, {"reader_steps": ["s1"]}, {"reader_files": None}):
        graph_path.write_text(json.dumps({**stored, **damage}))
        assert judgment.StoredGraph(str(graph_path), stored["token"]).readers([b]) is None, damage
