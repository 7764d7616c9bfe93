"""`agilab-run migrate`: lab_steps ↔ lab_stages, comments and order kept, no stage dropped, and a
round trip gives the original bytes on every corpus file."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import corpus_files, needs_corpus

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


def test_a_migration_changes_the_stamp_and_the_name_only(tmp_path: Path, capsys) -> None:
    path = tmp_path / "lab_steps.toml"
    path.write_text(LAB, encoding="utf-8")
    assert main(["migrate", str(path), "--to", "lab_stages"]) == 0
    target = tmp_path / "lab_stages.toml"
    assert target.read_text() == LAB.replace("agilab.lab_steps.v1", "agilab.lab_stages.v1")
    assert "every stage kept" in capsys.readouterr().out and path.exists()
    assert main(["migrate", str(target), "--to", "lab_steps", "-o", str(tmp_path / "back.toml")]) == 0
    assert (tmp_path / "back.toml").read_bytes() == path.read_bytes()
    assert main(["check", str(target)]) == 0


def test_a_different_existing_target_is_not_overwritten(tmp_path: Path, capsys) -> None:
    path = tmp_path / "lab_steps.toml"
    path.write_text(LAB, encoding="utf-8")
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


@needs_corpus
@pytest.mark.parametrize(
    "path", [p for p in corpus_files() if "lab_st" in p.name], ids=lambda p: p.name[-40:]
)
def test_every_corpus_lab_round_trips_byte_for_byte(path: Path, tmp_path: Path, capsys) -> None:
    name = "lab_stages" if "lab_stages" in path.name else "lab_steps"
    other = "lab_steps" if name == "lab_stages" else "lab_stages"
    source = tmp_path / f"{name}.toml"
    shutil.copy(path, source)
    assert main(["migrate", str(source), "--to", other]) == 0
    migrated = tmp_path / f"{other}.toml"
    assert migrated.exists()
    back = tmp_path / "back" / f"{name}.toml"
    back.parent.mkdir()
    assert main(["migrate", str(migrated), "--to", name, "-o", str(back)]) == 0
    assert back.read_bytes() == path.read_bytes()
