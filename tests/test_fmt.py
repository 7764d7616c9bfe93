"""`agilab-run fmt`: one canonical layout, idempotent, every comment kept, same stages."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import ROOT, corpus_files, needs_corpus

from agilab_dsl.cli import main
from agilab_dsl.load.lab import require_lab

INLINE = """# a lab as AGILAB writes it
demo = [
  { D = "load", C = "import json\\nx = json.loads('{}')\\nprint(x)", R = "runpy" },
  { D = "quoted", C = "s = 'a'\\nt = 1 # it ends with a quote: '", R = "runpy" },
]

[__meta__]
schema = "agilab.lab_stages.v1"   # the stamp
version = 1
# a closing comment
"""


def stages(path: Path) -> list[tuple[str, dict]]:
    return [(s.id, s.stage.model_dump()) for s in require_lab(path).stages]


def test_inline_stages_become_tables_with_code_blocks(tmp_path: Path, capsys) -> None:
    path = tmp_path / "lab_stages.toml"
    path.write_text(INLINE, encoding="utf-8")
    before = stages(path)
    assert main(["fmt", str(path), "--check"]) == 1 and "would reformat" in capsys.readouterr().out
    assert path.read_text() == INLINE  # --check changes nothing
    assert main(["fmt", str(path)]) == 0
    text = path.read_text()
    assert "[[demo]]\nD = \"load\"\nC = '''\nimport json\nx = json.loads('{}')\nprint(x)'''\n" in text
    assert (
        'C = """\ns = \'a\'\nt = 1 # it ends with a quote: \'"""\n' in text
    )  # ends in a quote: a basic block
    assert stages(path) == before
    for comment in ("# a lab as AGILAB writes it", "# the stamp", "# a closing comment"):
        assert comment in text
    assert main(["fmt", str(path), "--check"]) == 0  # idempotent
    assert "already formatted" in capsys.readouterr().out


def test_an_invalid_lab_is_not_formatted(tmp_path: Path, capsys) -> None:
    path = tmp_path / "lab_steps.toml"
    path.write_text('[[demo]]\nid = "a\n', encoding="utf-8")
    assert main(["fmt", str(path)]) == 2
    assert "lab_steps.toml:2:" in capsys.readouterr().err and path.read_text() == '[[demo]]\nid = "a\n'


LABS = [p for p in corpus_files() if "lab_st" in p.name]


@needs_corpus
@pytest.mark.parametrize("path", LABS, ids=lambda p: p.name[-40:])
def test_every_corpus_lab_formats_idempotently_keeping_comments_and_stages(
    path: Path, tmp_path: Path
) -> None:
    name = "lab_stages.toml" if "lab_stages" in path.name else "lab_steps.toml"
    copy = tmp_path / name
    shutil.copy(path, copy)
    original = copy.read_text(encoding="utf-8")
    assert main(["fmt", str(copy)]) == 0
    once = copy.read_text(encoding="utf-8")
    assert main(["fmt", str(copy), "--check"]) == 0 and copy.read_text(encoding="utf-8") == once
    assert stages(copy) == stages(path)
    comments = [line.strip() for line in original.splitlines() if line.strip().startswith("#")]
    assert all(c in once for c in comments)


@pytest.mark.parametrize("example", ["telemetry", "table", "sweep"])
def test_the_examples_are_formatted(example: str) -> None:
    assert main(["fmt", "--check", str(ROOT / "examples" / example / "lab_stages.toml")]) == 0


def test_crlf_mode_and_symlink_are_kept(tmp_path: Path) -> None:
    real = tmp_path / "real" / "lab_stages.toml"
    real.parent.mkdir()
    real.write_bytes(INLINE.replace("\n", "\r\n").encode("utf-8"))
    real.chmod(0o640)
    link = tmp_path / "lab_stages.toml"
    link.symlink_to(real)
    before = stages(real)
    assert main(["fmt", str(link)]) == 0
    assert link.is_symlink() and oct(real.stat().st_mode & 0o777) == "0o640"
    data = real.read_bytes()
    assert b"\r\n" in data and b"\n" not in data.replace(b"\r\n", b"")  # every line ends CRLF
    assert stages(real) == before
    assert main(["fmt", str(link), "--check"]) == 0


META = '\n[__meta__]\nschema = "agilab.lab_stages.v1"\nversion = 1\n'
COMMENTED_INLINE = (
    'm = [ # first stage\n  { D = "a", C = "print(1)" }, # second\n'
    '  { D = "b", C = "print(2)" }, # trailing\n] # after\n' + META
)
ONE_LINE_COMMENTED = 'm = [{ D = "a", C = "x = 1\\ny = 2" }] # after\n' + META


@pytest.mark.parametrize("text", [COMMENTED_INLINE, ONE_LINE_COMMENTED], ids=["between", "after"])
def test_an_inline_array_with_comments_is_left_as_written(tmp_path: Path, text: str) -> None:
    path = tmp_path / "lab_stages.toml"
    path.write_text(text, encoding="utf-8")
    assert main(["fmt", str(path)]) == 0 and path.read_text(encoding="utf-8") == text
    assert main(["fmt", str(path), "--check"]) == 0


NAN = '[[m]]\nD = "a"\nC = "print(1)\\nprint(2)"\nparams = { n = nan, m = -inf }\n' + META
CONTROL = '[[m]]\nD = "a"\nC = "x = 1\\ny = \'\\u0001\\u007f\\b\\r\\n\'"  # raw\n' + META


@pytest.mark.parametrize("text", [NAN, CONTROL], ids=["nan", "control"])
def test_a_value_fmt_cannot_lay_out_never_makes_it_refuse(tmp_path: Path, text: str) -> None:
    from agilab_dsl.review.fmt import comments, same_data

    path = tmp_path / "lab_stages.toml"
    path.write_text(text, encoding="utf-8")
    assert main(["fmt", str(path)]) == 0
    new = path.read_text(encoding="utf-8")
    assert same_data(text, new) and comments(new) == comments(text)
    assert main(["fmt", str(path), "--check"]) == 0  # so CI can pass once fmt has run


def test_comments_are_found_outside_strings_only() -> None:
    from agilab_dsl.review.fmt import comments

    text = 'a = "#no \\" #no" # yes1\nb = \'\'\'\n#no\n\'\'\'\'  # yes2\nc = """#no\\"""#no"""\n#yes3\r\n'
    assert comments(text) == ["# yes1", "# yes2", "#yes3"]
