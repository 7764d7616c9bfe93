"""The judgment cache: status and no-op runs answered without the models, invalidated by any input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from test_run import HELPERS, LAB

from agilab_dsl.cli import main

PROBE = """
import json, sys
from agilab_dsl.cli import main
code = main(sys.argv[1:])
print(json.dumps({"code": code, "pydantic": "pydantic" in sys.modules}), file=sys.stderr)
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
    import os

    proc = subprocess.run(
        [sys.executable, "-c", PROBE, *argv],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, **(env or {})},
    )
    info = json.loads(proc.stderr.strip().splitlines()[-1])
    return info["code"], info["pydantic"], proc.stdout


def states(out: str) -> dict[str, str]:
    return {s["id"]: s["state"] for s in json.loads(out)["steps"]}


def test_status_after_a_run_is_answered_without_loading_the_models(lab: Path) -> None:
    assert probe(str(lab))[0] == 0  # the run leaves its judgment: every step fresh
    code, loaded, cached = probe("status", str(lab), "--json")
    assert code == 0 and not loaded and set(states(cached).values()) == {"fresh"}
    code, loaded, full = probe("status", str(lab), "--json", "--no-cache")
    assert code == 0 and loaded and full == cached  # the same answer as a full judgment
    code, loaded, _ = probe(str(lab), "--json")  # a run with nothing to do
    assert code == 0 and not loaded


def test_a_failed_run_leaves_no_judgment(lab: Path) -> None:
    broken = HELPERS.replace(
        "    with open(path) as fh:", "    raise ValueError('boom')\n    with open(path) as fh:"
    )
    (lab.parent / "helpers.py").write_text(broken, encoding="utf-8")
    assert probe(str(lab))[0] == 1
    code, loaded, out = probe("status", str(lab), "--json")
    assert code == 0 and loaded and states(out)["count"] == "never-ran"


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
    code, loaded, out = probe("status", str(lab), "--json", env=env)
    assert code == 0 and loaded, f"{change}: answered from a stale judgment"
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
