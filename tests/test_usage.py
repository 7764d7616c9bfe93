"""How ``agilab-run`` is called: the help text, mistyped commands and options (a did-you-mean, exit 2),
options before the lab FILE, and the graph's arrows (one per pair of steps, naming what it carries)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agilab_dsl.cli import main

TWO_STEPS = "[[m]]\nid = \"make\"\nproduces = [\"out.txt\"]\nC = \"open('out.txt', 'w').write('x')\"\n"
TWO_STEPS += '[[m]]\nid = "use"\nconsumes = ["out.txt"]\nC = "pass"\n'


@pytest.fixture
def lab(tmp_path: Path) -> Path:
    path = tmp_path / "lab_stages.toml"
    path.write_text(TWO_STEPS, encoding="utf-8")
    return path


def test_help_lists_no_suppressed_placeholder(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "==SUPPRESS==" not in out
    assert "git-diff-driver" not in out and "textconv" not in out  # for git, not for people
    assert "status" in out and "git-setup" in out


@pytest.mark.parametrize(
    ("typed", "meant"), [("stauts", "status"), ("chek", "check"), ("hisotry", "history")]
)
def test_a_mistyped_command_gets_a_did_you_mean(
    typed: str, meant: str, lab: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([typed, str(lab)]) == 2
    err = capsys.readouterr().err
    assert f"unknown command {typed!r} (did you mean {meant!r}?)" in err
    assert "Traceback" not in err


def test_a_file_named_like_a_mistyped_command_is_still_a_lab(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "stauts").write_text(TWO_STEPS, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    assert main(["stauts", "--dry-run"]) == 0  # it exists: the lab FILE, as ever
    assert "never-ran" in capsys.readouterr().out


def test_a_mistyped_option_gets_a_did_you_mean(lab: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(lab), "--dryrun"]) == 2
    assert "unrecognized arguments: --dryrun (did you mean '--dry-run'?)" in capsys.readouterr().err
    assert main(["--dryrun", str(lab)]) == 2  # before FILE too
    assert "(did you mean '--dry-run'?)" in capsys.readouterr().err
    assert main(["status", str(lab), "--jsn"]) == 2  # a command's own options
    err = capsys.readouterr().err
    assert "agilab-run status: error: unrecognized arguments: --jsn (did you mean '--json'?)" in err
    assert main(["status", str(lab), "--zzzzzz"]) == 2  # nothing near: no guess
    err = capsys.readouterr().err
    assert "unrecognized arguments: --zzzzzz" in err and "did you mean" not in err
    assert not (lab.parent / "out.txt").exists()


def test_an_option_before_the_command_is_said_so(lab: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--json", "status", str(lab)]) == 2
    assert "--json goes after the command: agilab-run status" in capsys.readouterr().err


def test_options_may_come_before_the_file(lab: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--dry-run", str(lab)]) == 0
    assert "never-ran" in capsys.readouterr().out
    assert not (lab.parent / "out.txt").exists()  # a dry run: nothing ran
    assert main(["-j", "1", "--json", str(lab)]) == 0  # an option with a value first, then FILE
    payload = json.loads(capsys.readouterr().out)
    assert [s["status"] for s in payload["steps"]] == ["ran", "ran"]
    assert (lab.parent / "out.txt").read_text(encoding="utf-8") == "x"


def test_graph_draws_one_arrow_per_pair_named_by_its_artifacts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "lab_stages.toml"
    path.write_text(
        '[[m]]\nid = "w"\nproduces = ["a.csv", "b.csv", "c.csv"]\nC = "pass"\n'
        '[[m]]\nid = "r"\ndepends_on = ["w"]\nconsumes = ["a.csv", "b.csv"]\nC = "pass"\n'
        '[[m]]\nid = "z"\nconsumes = ["a.csv", "b.csv", "c.csv"]\nC = "pass"\n',
        encoding="utf-8",
    )
    assert main(["graph", str(path), "--format", "dot"]) == 0
    dot = capsys.readouterr().out
    assert dot.count("s0 -> s1") == 1 and dot.count("s0 -> s2") == 1  # deps + 2 artifacts: one arrow
    assert 's0 -> s1 [label="a.csv, b.csv"];' in dot
    assert 's0 -> s2 [label="3 artifacts"];' in dot
    assert main(["graph", str(path)]) == 0
    mermaid = capsys.readouterr().out
    assert "  s0 -->|a.csv, b.csv| s1\n" in mermaid and "  s0 -->|3 artifacts| s2\n" in mermaid
    assert mermaid.count("s0 --") == 2


def test_the_unknown_key_hint_names_the_nearest_known_key(tmp_path: Path) -> None:
    from agilab_dsl.check.files import check_file

    path = tmp_path / "lab_stages.toml"
    path.write_text(
        '[[m]]\nid = "a"\nproduce = ["y"]\ncommand = "x"\nnb_cell = 1\nNB_CELL = 2\nC = "pass"\n'
        "profiles = { fast = { zzzq = 3 } }\n",
        encoding="utf-8",
    )
    result, _ = check_file(path)
    hints = {d.line: d.hint for d in result.diagnostics if d.code == "unknown-key"}
    assert hints[3] == "did you mean 'produces'?"
    assert hints[4] == "the nearest known key is 'code'"  # nothing close: the nearest all the same
    assert hints[5] == "did you mean 'NB_cell'? (notebook provenance keys start with NB_)"
    assert 6 not in hints  # NB_* is provenance: kept, no warning
    assert hints[8] == "the nearest known key is 'Q'"  # a profile's override too
    assert all("NB_* keys are kept" not in (h or "") for h in hints.values())
