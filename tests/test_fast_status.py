"""``status FILE [--json]`` answered from the judgment cache, and ``check FILE... [--json]`` from the
result cache, before the argument parser or the runner is loaded (:mod:`agilab_dsl.cli.fast`): the
same answer as the full path, or no answer."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from test_events import LAB  # make → check (fails on 'bad') → after

from agilab_dsl.cli import fast, main


@pytest.fixture
def lab(tmp_path: Path) -> Path:
    (tmp_path / "lab_stages.toml").write_text(LAB)
    (tmp_path / "in.txt").write_text("good\n")
    return tmp_path / "lab_stages.toml"


def _both(
    lab: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, *extra: str
) -> tuple[str, str]:
    capsys.readouterr()
    assert main(["status", str(lab), *extra]) == 0  # stores the judgment, or answers from it
    capsys.readouterr()
    answered = fast.status_answer(["status", str(lab), *extra])
    quick = capsys.readouterr().out
    with monkeypatch.context() as m:
        m.setattr(fast, "status_answer", lambda argv: None)
        assert main(["status", str(lab), *extra]) == 0
    full = capsys.readouterr().out
    assert answered == 0, "the stored judgment should have answered"
    return quick, full


@pytest.mark.parametrize("extra", [(), ("--json",)])
def test_the_quick_answer_is_the_full_one(
    lab: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, extra: tuple[str, ...]
) -> None:
    quick, full = _both(lab, capsys, monkeypatch, *extra)  # never ran: ready / stale
    assert quick == full and "make" in quick
    assert main([str(lab)]) == 0
    quick, full = _both(lab, capsys, monkeypatch, *extra)  # done
    assert quick == full
    (lab.parent / "in.txt").write_text("bad\n")
    assert main([str(lab)]) == 1
    quick, full = _both(lab, capsys, monkeypatch, *extra)  # a failure remembered
    assert quick == full
    if extra:
        states = {s["id"]: s["agilab_state"] for s in json.loads(quick)["steps"]}
        assert states["check"] == "failed"
    else:
        assert "the input says bad" in quick


@pytest.mark.parametrize(
    "argv",
    [
        ["status"],
        ["status", "a.toml", "b.toml"],
        ["status", "LAB", "-v"],
        ["status", "LAB", "--no-cache"],
        ["status", "LAB", "--json", "--json"],
        ["status", "LAB", "--only", "make"],
        ["check", "LAB"],
        ["status", "LAB", "--strict"],
    ],
)
def test_other_calls_take_the_full_path(lab: Path, argv: list[str]) -> None:
    assert main([str(lab)]) == 0
    assert main(["status", str(lab)]) == 0
    assert fast.status_answer([str(lab) if a == "LAB" else a for a in argv]) is None


def test_a_change_or_no_cache_takes_the_full_path(lab: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert main([str(lab)]) == 0
    assert main(["status", str(lab)]) == 0
    monkeypatch.setenv("AGILAB_NO_CACHE", "1")
    assert fast.status_answer(["status", str(lab)]) is None
    monkeypatch.delenv("AGILAB_NO_CACHE")
    (lab.parent / "in.txt").write_text("changed\n")
    assert fast.status_answer(["status", str(lab)]) is None  # judged again, for what changed


def test_the_quick_answer_loads_neither_the_parser_nor_the_runner(lab: Path) -> None:
    probe = (
        "import sys\nfrom agilab_dsl.cli import main\ncode = main(sys.argv[1:])\n"
        "heavy = [m for m in ('argparse', 'dataclasses', 'agilab_dsl.execute.session', 'agilab_dsl.cli.parser')"
        " if m in sys.modules]\nprint(code, heavy, file=sys.stderr)\n"
    )
    assert main([str(lab)]) == 0
    for expected in ("0 [", "0 []"):  # the first call stores the judgment under this interpreter's key
        proc = subprocess.run(
            [sys.executable, "-c", probe, "status", str(lab)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert proc.stderr.strip().splitlines()[-1].startswith(expected), proc.stderr
    assert "make" in proc.stdout


BROKEN = 'stages = [\n  { id = "a", C = "x = 1", depends_on = ["nowhere"] },\n]\n'


def _check_both(
    files: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, *extra: str
) -> tuple[tuple[int | None, str], tuple[int, str]]:
    capsys.readouterr()
    main(["check", *files, *extra])  # stores each file's reports, or answers from them
    capsys.readouterr()
    quick = fast.check_answer(["check", *files, *extra])
    quick_out = capsys.readouterr().out
    with monkeypatch.context() as m:
        m.setattr(fast, "check_answer", lambda argv: None)
        full = main(["check", *files, *extra])
    return (quick, quick_out), (full, capsys.readouterr().out)


@pytest.mark.parametrize("extra", [(), ("--json",)])
def test_check_answered_from_its_cache_is_the_full_check(
    lab: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    extra: tuple[str, ...],
) -> None:
    monkeypatch.setenv("AGILAB_CACHE_DIR", str(tmp_path / "cache"))
    broken = tmp_path / "broken" / "lab_steps.toml"
    broken.parent.mkdir()
    broken.write_text(BROKEN)
    for files in ([str(lab)], [str(broken)], [str(lab), str(broken), str(lab)]):
        quick, full = _check_both(files, capsys, monkeypatch, *extra)
        assert quick == full, files
    assert full[0] == 1 and "nowhere" in full[1]  # the broken lab's problem, located
    broken.write_text(BROKEN.replace("nowhere", "elsewhere"))  # changed: checked again, in full
    assert fast.check_answer(["check", str(broken), *extra]) is None


@pytest.mark.parametrize(
    "argv",
    [
        ["check"],
        ["check", "LAB", "--strict"],
        ["check", "LAB", "--format", "github"],
        ["check", "LAB", "--no-cache"],
    ],
)
def test_other_checks_take_the_full_path(
    lab: Path, argv: list[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("AGILAB_CACHE_DIR", str(tmp_path / "cache"))
    assert main(["check", str(lab)]) == 0
    assert fast.check_answer([str(lab) if a == "LAB" else a for a in argv]) is None
    monkeypatch.setenv("AGILAB_NO_CACHE", "1")
    assert fast.check_answer(["check", str(lab)]) is None


def test_the_judgments_graph_is_read_only_when_needed(lab: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(lab)]) == 0  # every step done
    graph = lab.parent / ".agilab" / "judgment-graph.json"
    graph.unlink()
    capsys.readouterr()
    assert fast.status_answer(["status", str(lab)]) == 0  # all done: no upstream steps needed
    assert "done" in capsys.readouterr().out
    (lab.parent / "in.txt").write_text("changed\n")  # a step file changed: who reads it is needed
    assert fast.status_answer(["status", str(lab)]) is None
    assert main(["status", str(lab)]) == 0  # judged in full, and kept with its graph again
    assert graph.is_file()
    graph.write_text(graph.read_text().replace('"token": "', '"token": "x'))  # another judgment's
    assert fast.status_answer(["status", str(lab)]) is None  # stale steps need it: the full path


@pytest.mark.parametrize(
    "damage", ['{"token": "TOKEN"}', '{"token": "TOKEN", "upstream": {"a": 1}, "readers": 2}', "[", ""]
)
def test_a_damaged_judgment_graph_means_a_full_judgment(
    lab: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, damage: str
) -> None:
    assert main(["status", str(lab)]) == 0  # never ran: stale steps, so the graph is needed
    full = capsys.readouterr().out
    folder = lab.parent / ".agilab"
    token = json.loads((folder / "judgment.json").read_text())["token"]
    (folder / "judgment-graph.json").write_text(damage.replace("TOKEN", token))
    assert fast.status_answer(["status", str(lab)]) is None
    assert main(["status", str(lab)]) == 0
    assert capsys.readouterr().out == full


RUN_CALLS = [
    ["lab.toml"],
    *([flag, "lab.toml"] for flag in fast.RUN_FLAGS),
    *(["lab.toml", flag] for flag in fast.RUN_FLAGS),
    ["lab.toml", "-j", "2"],
    ["--jobs", "12", "lab.toml", "--json", "--force"],
    ["lab.toml", "--keep-going", "-j", "0", "-v", "--dry-run"],
]


@pytest.mark.parametrize("argv", RUN_CALLS, ids=" ".join)
def test_a_run_s_arguments_parsed_without_argparse_are_the_parser_s(argv: list[str]) -> None:
    from agilab_dsl.cli.parser import build_run_parser

    assert vars(fast.run_arguments(argv)) == vars(build_run_parser().parse_args(argv))


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["--json"],
        ["a.toml", "b.toml"],
        ["lab.toml", "--json", "--json"],
        ["lab.toml", "-j"],
        ["lab.toml", "-j", "x"],
        ["lab.toml", "-j", "-1"],
        ["lab.toml", "-j2"],
        ["lab.toml", "-j", "2", "--jobs", "3"],
        ["lab.toml", "--only", "a"],
        ["lab.toml", "--dry"],  # argparse's abbreviation: left to it
        ["lab.toml", "--profile=fast"],
    ],
    ids=repr,
)
def test_other_run_calls_are_left_to_argparse(argv: list[str]) -> None:
    assert fast.run_arguments(argv) is None
