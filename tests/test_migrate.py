"""`agilab-run migrate`: --to lab_stages gives a file AGILAB accepts (stamp, module key, no other
stage list), keeping every stage, comment, byte and line ending outside its edits; --to lab_steps
undoes it byte for byte; conflicts are refused, located; tested on every corpus lab."""

from __future__ import annotations

import json
import os
import shutil
import tomllib
from pathlib import Path
from typing import Any

import pytest
from conftest import CORPUS, corpus_files, needs_corpus

from agilab_dsl.check.files import check_file
from agilab_dsl.cli import main

LAB = """# the lab of a project — this comment must survive
[__meta__]
schema = 'agilab.lab_steps.v1'   # stamped by AGILAB
version = 1

[[demo]]
D = "no question and no code: AGILAB drops such a stage on save; we never do"
id = "empty"
NB_cell = { kept = true }   # preserved, not interpreted

[[demo]]
id = "load"
Q = "load it"
C = "x = 1"
"""

LEGACY = """# uav queue, as AGILAB wrote it before the rename
[[steps]]   # first
Q = "load"
C = "import json\\n[[steps]]\\nprint('a header inside code is no header')"
id = "load"

[steps.automation]   # a sub-table of the stage above
parallel_safe = false

[[steps]]
Q = "train"
C = "y = 2"
deps = ["load"]

[__meta__]
"steps__sequence" = [0, 1]
steps__automation = { profile = "fast", max_workers = 2 }
"""


def agilab_problems(path: Path, module_key: str) -> list[str]:
    """AGILAB's own verdict on a migrated file (`check --agilab --require-metadata`): its errors, as
    "check-id stage-id"."""
    from agilab_dsl.check.agilab.report import check_agilab

    (report,) = check_agilab([str(path)], kind="lab", module_key=module_key, require_metadata=True)
    return [
        f"{i['check_id']} {i.get('stage_id') or ''}".strip()
        for i in report["issues"]
        if i["severity"] == "error"
    ]


def write(folder: Path, name: str, text: str, newline: str = "\n") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(text.replace("\n", newline).encode("utf-8"))
    return path


def test_a_stamped_lab_changes_its_stamp_only_and_round_trips(tmp_path: Path, capsys) -> None:
    path = write(tmp_path / "demo_project", "lab_steps.toml", LAB)
    assert main(["migrate", str(path), "--to", "lab_stages"]) == 0
    target = path.with_name("lab_stages.toml")
    assert target.read_text() == LAB.replace("agilab.lab_steps.v1", "agilab.lab_stages.v1")
    out = capsys.readouterr().out
    assert "schema stamp agilab.lab_stages.v1, module key 'demo'; every stage kept" in out and path.exists()
    assert main(["migrate", str(target), "--to", "lab_steps", "-o", str(tmp_path / "back.toml")]) == 0
    assert (tmp_path / "back.toml").read_bytes() == path.read_bytes()
    assert main(["check", str(target)]) == 0
    # the stamp is AGILAB's; the stage without Q or C is kept, though AGILAB would not show it
    assert agilab_problems(target, "demo") == ["undisplayable-stages"]


@pytest.mark.parametrize("newline", ["\n", "\r\n"], ids=["lf", "crlf"])
def test_a_legacy_list_moves_under_the_module_key(tmp_path: Path, newline: str, capsys) -> None:
    path = write(tmp_path / "uav_queue_project", "lab_steps.toml", LEGACY, newline)
    os.chmod(path, 0o640)
    assert main(["migrate", str(path), "--to", "lab_stages"]) == 0
    out = capsys.readouterr().out
    assert (
        "[[steps]] renamed [[uav_queue]]; [__meta__] schema and version added, module key 'uav_queue'" in out
    )
    target = path.with_name("lab_stages.toml")
    raw = target.read_bytes()
    assert (b"\r\n" in raw) == (newline == "\r\n") and raw.count(b"\n") == raw.count(newline.encode())
    text = raw.decode().replace("\r\n", "\n")
    # the edits, and nothing else: headers, meta keys (their quoting kept), the stamp, the record
    inserted = json.dumps('schema = "agilab.lab_stages.v1"' + newline + "version = 1" + newline)
    expected = (
        LEGACY.replace("[[steps]]   #", "[[uav_queue]]   #")
        .replace("\n[[steps]]\nQ", "\n[[uav_queue]]\nQ")
        .replace("[steps.automation]", "[uav_queue.automation]")
        .replace("[__meta__]\n", '[__meta__]\nschema = "agilab.lab_stages.v1"\nversion = 1\n')
        .replace('"steps__sequence"', '"uav_queue__sequence"')
        .replace("steps__automation =", "uav_queue__automation =")
        + f'# agilab-run migrate: {{"list": {{"steps": "uav_queue"}}, "inserted": {inserted}}}\n'
    ).replace("\r\n", "\n")
    assert text == expected  # the [[steps]] inside C is code: untouched
    assert oct(os.stat(target).st_mode & 0o777) == oct(0o640)
    assert agilab_problems(target, "uav_queue") == []
    before, after = tomllib.loads(LEGACY), tomllib.loads(text)
    assert after["uav_queue"] == before["steps"]
    assert after["__meta__"]["uav_queue__sequence"] == [0, 1]
    assert main(["check", str(target)]) == 0
    # and back, byte for byte
    back = tmp_path / "back" / "lab_steps.toml"
    back.parent.mkdir()
    assert main(["migrate", str(target), "--to", "lab_steps", "-o", str(back)]) == 0
    assert back.read_bytes() == path.read_bytes()


@pytest.mark.parametrize(
    ("meta", "expect"),
    [
        ('[__meta__]\nsteps__automation = { profile = "fast" }\n', "[__meta__]\nschema = "),
        ("__meta__ = { steps__sequence = [0] }\n", "__meta__ = { schema = "),
        ("__meta__ = {}\n", '__meta__ = { schema = "agilab.lab_stages.v1", version = 1 }'),
        ('[__meta__.steps__automation]\nprofile = "fast"\n', "__meta__.schema = "),
        (
            '[__meta__]\nschema = "agilab.lab_steps.v1"',
            '[__meta__]\nversion = 1\nschema = "agilab.lab_stages.v1"\n',
        ),
    ],
    ids=["table", "inline", "inline-empty", "sub-table-only", "no-version-no-eol"],
)
def test_meta_keys_are_completed_in_place_and_undone(tmp_path: Path, meta: str, expect: str) -> None:
    source = '[[steps]]\nC = "x = 1"\n\n' if not meta.startswith("__meta__") else ""
    body = meta + '\n[[steps]]\nC = "x = 1"\n' if meta.startswith("__meta__") else source + meta
    path = write(tmp_path / "lab", "lab_steps.toml", body)
    assert main(["migrate", str(path), "--to", "lab_stages"]) == 0
    target = path.with_name("lab_stages.toml")
    assert expect in target.read_text()
    assert agilab_problems(target, "lab") == []
    assert tomllib.loads(target.read_text())["lab"] == tomllib.loads(body)["steps"]
    back = tmp_path / "back.toml"
    assert main(["migrate", str(target), "--to", "lab_steps", "-o", str(back)]) == 0
    assert back.read_text() == body


def test_an_unstamped_lab_without_final_newline_round_trips(tmp_path: Path) -> None:
    body = '[[stages]]\nC = "x = 1"'
    path = write(tmp_path / "x_project", "lab_steps.toml", body)
    assert main(["migrate", str(path), "--to", "lab_stages"]) == 0
    target = path.with_name("lab_stages.toml")
    assert tomllib.loads(target.read_text())["x"] == [{"C": "x = 1"}]
    assert main(["migrate", str(target), "--to", "lab_steps", "-o", str(tmp_path / "b.toml")]) == 0
    assert (tmp_path / "b.toml").read_text() == body


def test_a_list_beside_the_module_key_list_is_refused_located(tmp_path: Path, capsys) -> None:
    body = '[[uav_queue]]\nC = "a = 1"\n\n[[steps]]\nC = "b = 2"\n'
    path = write(tmp_path / "uav_queue_project", "lab_steps.toml", body)
    assert main(["migrate", str(path), "--to", "lab_stages"]) == 1
    err = capsys.readouterr().err
    assert "lab_steps.toml:4:1: error[key-conflict]: [[steps]] beside [[uav_queue]]: AGILAB reads only" in err
    assert "hint: move its stages into [[uav_queue]]" in err
    assert not path.with_name("lab_stages.toml").exists()


def test_several_lists_and_none_under_the_key_is_refused(tmp_path: Path, capsys) -> None:
    body = '[[a]]\nC = "a = 1"\n\n[[b]]\nC = "b = 2"\n'
    path = write(tmp_path / "uav_project", "lab_steps.toml", body)
    assert main(["migrate", str(path), "--to", "lab_stages"]) == 1
    assert "error[key-conflict]: 2 stage lists ([[a]], [[b]]) and none under the module key 'uav'" in (
        capsys.readouterr().err
    )
    # naming one of them the module: the other stays, and the report says AGILAB will not read it
    assert main(["migrate", str(path), "--to", "lab_stages", "--module-key", "a"]) == 0
    assert "note: [[b]] stays as written: AGILAB reads only [[a]]" in capsys.readouterr().out


def test_a_default_id_referred_to_is_refused(tmp_path: Path, capsys) -> None:
    body = '[[steps]]\nC = "a = 1"\n\n[[steps]]\nC = "b = 2"\ndeps = ["steps_001"]\n'
    path = write(tmp_path / "q_project", "lab_steps.toml", body)
    assert main(["migrate", str(path), "--to", "lab_stages"]) == 1
    err = capsys.readouterr().err
    assert "lab_steps.toml:6:9: error[dependency-missing]: stage 'steps_002' depends on 'steps_001'" in err
    assert "would make it 'q_001'" in err and "hint: give the stage that id explicitly" in err
    templated = '[[steps]]\nC = "a = 1"\nproduces = ["a.txt"]\n\n[[steps]]\nid = "b"\nC = "b = 2"\nconsumes = ["${steps.steps_001.outputs[0]}"]\n'
    write(tmp_path / "q_project", "lab_steps.toml", templated)
    assert main(["migrate", str(path), "--to", "lab_stages"]) == 1
    assert "lab_steps.toml:8:16: error[reference-invalid]: ${steps.steps_001.outputs[0]} names" in (
        capsys.readouterr().err
    )


def test_an_explicit_module_key_renames_a_single_list(tmp_path: Path, capsys) -> None:
    body = '[[flight]]\nC = "a = 1"\n'
    path = write(tmp_path / "labs", "lab_steps.toml", body)
    assert main(["migrate", str(path), "--to", "lab_stages"]) == 0  # not legacy: kept, and said
    assert "note: [[flight]] is not under the module key 'labs'" in capsys.readouterr().out
    assert "[[flight]]" in path.with_name("lab_stages.toml").read_text()
    assert main(["migrate", str(path), "--to", "lab_stages", "--module-key", "weather", "--force"]) == 0
    target = path.with_name("lab_stages.toml")
    assert agilab_problems(target, "weather") == []
    assert main(["migrate", str(target), "--to", "lab_steps", "-o", str(tmp_path / "b.toml")]) == 0
    assert (tmp_path / "b.toml").read_text() == body
    assert main(["migrate", str(target), "--to", "lab_steps", "--module-key", "x"]) == 2


def test_a_symlinked_target_is_written_through(tmp_path: Path) -> None:
    path = write(tmp_path / "m_project", "lab_steps.toml", '[[steps]]\nC = "a = 1"\n')
    real = write(tmp_path / "elsewhere", "real.toml", '[[m]]\nC = "old"\n')
    link = path.with_name("lab_stages.toml")
    link.symlink_to(real)
    assert main(["migrate", str(path), "--to", "lab_stages", "--force"]) == 0
    assert link.is_symlink() and tomllib.loads(real.read_text())["m"] == [{"C": "a = 1"}]


def test_a_different_existing_target_is_not_overwritten(tmp_path: Path, capsys) -> None:
    path = write(tmp_path, "lab_steps.toml", LAB)
    (tmp_path / "lab_stages.toml").write_text("# someone's other file\n", encoding="utf-8")
    assert main(["migrate", str(path), "--to", "lab_stages"]) == 1
    assert "exists and differs; --force replaces it" in capsys.readouterr().err
    assert (tmp_path / "lab_stages.toml").read_text() == "# someone's other file\n"
    assert main(["migrate", str(path), "--to", "lab_stages", "--force"]) == 0


def test_an_invalid_lab_is_not_migrated(tmp_path: Path, capsys) -> None:
    path = tmp_path / "lab_steps.toml"
    path.write_text('[[demo]]\nid = "a\n', encoding="utf-8")
    assert main(["migrate", str(path), "--to", "lab_stages"]) == 2
    assert "lab_steps.toml:2:" in capsys.readouterr().err and not (tmp_path / "lab_stages.toml").exists()


# -- the corpus -----------------------------------------------------------------------------


def corpus_module_key(name: str) -> str:
    """The module key of a corpus file from its name: the folder part before ``_project``
    (``…__uav_queue_project__lab_steps@…`` → ``uav_queue``), else the lab's folder."""
    parts = name.split("@")[0].split("__")[:-1]
    for part in reversed(parts):
        if part.endswith("_project"):
            return part.removesuffix("_project")
    return parts[-1]


CORPUS_LABS = [p for p in corpus_files() if "lab_st" in p.name]


@needs_corpus
def test_corpus_module_keys_are_agilabs() -> None:
    verdicts = json.loads((CORPUS / "agilab-verdicts.json").read_text(encoding="utf-8"))["verdicts"]
    keys = {v["file"]: v["module_key"] for v in verdicts if v.get("kind") == "lab"}
    assert keys and {p.name: corpus_module_key(p.name) for p in CORPUS_LABS} == keys


@needs_corpus
@pytest.mark.parametrize("path", CORPUS_LABS, ids=lambda p: p.name[-48:])
def test_every_corpus_lab_migrates_to_a_file_agilab_accepts(path: Path, tmp_path: Path, capsys) -> None:
    key = corpus_module_key(path.name)
    name = "lab_stages" if "lab_stages" in path.name else "lab_steps"
    source = tmp_path / "lab" / f"{name}.toml"
    source.parent.mkdir()
    shutil.copy(path, source)
    out = tmp_path / "migrated" / "lab_stages.toml"
    out.parent.mkdir()
    assert main(["migrate", str(source), "--to", "lab_stages", "--module-key", key, "-o", str(out)]) == 0
    # prose where code belongs is AGILAB's own error in the original too: migration carries it as it is
    prose = "stage-code-syntax" in {d.code for d in check_file(source, kind="lab")[0].diagnostics}
    problems = agilab_problems(out, key)
    assert [p for p in problems if not (prose and p.startswith("stage-code-syntax"))] == [], problems
    before, after = tomllib.loads(path.read_text(encoding="utf-8")), tomllib.loads(out.read_text())
    (listed,) = [k for k, v in before.items() if isinstance(v, list)]
    assert after[key] == before[listed]  # every stage, key and value
    assert main(["check", str(out)]) == (1 if prose else 0)
    back = tmp_path / "back" / "lab_steps.toml"
    back.parent.mkdir()
    assert main(["migrate", str(out), "--to", "lab_steps", "-o", str(back)]) == 0
    stamp: Any = (before.get("__meta__") or {}).get("schema")
    if stamp != "agilab.lab_stages.v1":  # a lab_steps-form file: the inverse gives it back
        assert back.read_bytes() == path.read_bytes()
    else:  # already as AGILAB wants it: the migration changed nothing
        assert out.read_bytes() == path.read_bytes()


@needs_corpus
@pytest.mark.parametrize(
    "path",
    [p for p in CORPUS_LABS if b"agilab.lab_stages.v1" in p.read_bytes()],
    ids=lambda p: p.name[-48:],
)
def test_a_stamped_corpus_lab_round_trips_through_lab_steps(path: Path, tmp_path: Path) -> None:
    source = tmp_path / "lab" / "lab_stages.toml"
    source.parent.mkdir()
    shutil.copy(path, source)
    assert main(["migrate", str(source), "--to", "lab_steps"]) == 0
    steps = source.with_name("lab_steps.toml")
    assert b"agilab.lab_steps.v1" in steps.read_bytes()
    back = tmp_path / "back" / "lab_stages.toml"
    back.parent.mkdir()
    key = corpus_module_key(path.name)
    assert main(["migrate", str(steps), "--to", "lab_stages", "--module-key", key, "-o", str(back)]) == 0
    assert back.read_bytes() == path.read_bytes()


@pytest.mark.parametrize(
    ("broken", "message"),
    [
        ('\n[[demo]]\nid = "load"\nC = "x = 2"\n', "would not load (stage-id-duplicate:"),
        ("", "would not hold the same stages"),
    ],
    ids=["not-loading", "stages-changed"],
)
def test_a_faulty_edit_is_never_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys, broken: str, message: str
) -> None:
    """The safety net under the text edits: the result is loaded and compared before any write."""
    from agilab_dsl.review import migrate as module
    from agilab_dsl.review.migrate_text import Outcome

    path = write(tmp_path / "demo_project", "lab_steps.toml", LAB)
    changed = LAB.replace('C = "x = 1"', 'C = "x = 2"') if not broken else LAB + broken
    monkeypatch.setattr(module, "migrated_text", lambda *a, **k: Outcome(changed))
    assert main(["migrate", str(path), "--to", "lab_stages"]) == 1
    assert message in capsys.readouterr().err
    assert not path.with_name("lab_stages.toml").exists()


def test_a_lab_with_nan_params_migrates_and_round_trips(tmp_path: Path) -> None:
    folder = tmp_path / "uav_project"
    folder.mkdir()
    original = '[[steps]]\nD = "a"\nC = "print(1)"\nparams = { n = nan, m = -nan, i = -inf }\n'
    (folder / "lab_steps.toml").write_text(original, encoding="utf-8")
    assert main(["migrate", "--to", "lab_stages", str(folder / "lab_steps.toml")]) == 0
    (folder / "lab_steps.toml").unlink()
    assert main(["migrate", "--to", "lab_steps", str(folder / "lab_stages.toml")]) == 0
    assert (folder / "lab_steps.toml").read_text(encoding="utf-8") == original
