"""agilab-run check / plan / schema from the outside: exit codes, output shapes, no tracebacks."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import CONFORMANCE, corpus_files, needs_corpus

from agilab_dsl.cli import main

INVALID = CONFORMANCE / "invalid"
VALID = CONFORMANCE / "valid"


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("agilab-run", path=str(Path(sys.executable).parent))
    cmd = [exe] if exe else [sys.executable, "-m", "agilab_dsl"]
    return subprocess.run(
        [*cmd, *args],
        check=False,
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=60,
        env={**os.environ, "NO_COLOR": "1"},
    )


def test_clean_file_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", str(VALID / "extensions.lab_stages.toml")]) == 0
    assert "0 errors, 0 warnings — ok" in capsys.readouterr().out


def test_problems_exit_1_with_compiler_style_text(capsys: pytest.CaptureFixture[str]) -> None:
    path = INVALID / "dependency_missing.lab_steps.toml"
    assert main(["check", str(path)]) == 1
    out = capsys.readouterr().out
    assert (
        f"{path}:12:15: error[dependency-missing]: stage 'train' depends on 'lod', which no stage has" in out
    )
    assert ' 12 | depends_on = ["lod"]' in out
    assert "    |               ^^^^^" in out
    assert "hint: did you mean 'load'?" in out


def test_json_shape(capsys: pytest.CaptureFixture[str]) -> None:
    path = INVALID / "stage_backend_unknown.lab_steps.toml"
    assert main(["check", str(path), "--json"]) == 1
    payload = json.loads(capsys.readouterr().out)
    assert payload["path"] == str(path) and payload["ok"] is False
    (issue,) = payload["issues"]
    assert {k: issue[k] for k in ("severity", "code", "line", "column", "key")} == {
        "severity": "error",
        "code": "invalid-value",
        "line": 7,
        "column": 11,
        "key": "flight[0].backend",
    }
    assert issue["message"].startswith("backend must be one of")


def test_json_for_several_files_is_a_list(capsys: pytest.CaptureFixture[str]) -> None:
    files = [str(VALID / "parallel_stage.toml"), str(INVALID / "engine_unknown.lab_steps.toml")]
    assert main(["check", *files, "--format", "json"]) == 0  # a warning alone does not fail
    payload = json.loads(capsys.readouterr().out)
    assert [p["ok"] for p in payload] == [True, True]
    assert payload[1]["issues"][0]["severity"] == "warning"


def test_strict_makes_warnings_fail(capsys: pytest.CaptureFixture[str]) -> None:
    path = str(INVALID / "engine_unknown.lab_steps.toml")
    assert main(["check", path]) == 0
    assert main(["check", path, "--strict"]) == 1


def test_github_annotations(capsys: pytest.CaptureFixture[str]) -> None:
    path = INVALID / "stage_id_duplicate.lab_steps.toml"
    assert main(["check", str(path), "--format", "github"]) == 1
    line = capsys.readouterr().out.strip()
    assert line == (
        f"::error file={path},line=10,col=6,title=stage-id-duplicate::stage id 'load' is already used "
        "by the stage at line 5 (give each stage its own id)"
    )


def test_missing_file_exits_2_with_a_hint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "lab_steps.toml").write_text('[[m]]\nC = "1"\n', encoding="utf-8")
    assert main(["check", str(tmp_path / "lab_step.toml")]) == 2
    out = capsys.readouterr().out
    assert "lab_step.toml: error[file-missing]: no such file" in out
    assert "did you mean 'lab_steps.toml'?" in out


def test_unreadable_path_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "lab_steps.toml"
    folder.mkdir()
    assert main(["check", str(folder)]) == 2
    assert "error[file-unreadable]" in capsys.readouterr().out


def test_settings_file_problems_are_reported_with_the_lab(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "lab_steps.toml").write_text(
        '[[m]]\nC = "1"\nproduces = ["${settings.args.out}"]\n', encoding="utf-8"
    )
    (tmp_path / "app_settings.toml").write_text(
        '[args]\nout = "x"\n[cluster]\npool = "yes"\n', encoding="utf-8"
    )
    assert main(["check", str(tmp_path / "lab_steps.toml")]) == 1
    out = capsys.readouterr().out
    assert "app_settings.toml:4:8: error[wrong-type]: cluster.pool must be true, false or an integer" in out


def test_explicit_settings_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "lab_steps.toml").write_text(
        '[[m]]\nC = "1"\nproduces = ["${settings.args.out}"]\n', encoding="utf-8"
    )
    (tmp_path / "snap.toml").write_text('[args]\nout = "x"\n', encoding="utf-8")
    assert main(["check", str(tmp_path / "lab_steps.toml")]) == 0  # no snapshot: a warning
    assert "settings-not-found" in capsys.readouterr().out
    assert main(["check", str(tmp_path / "lab_steps.toml"), "--settings", str(tmp_path / "snap.toml")]) == 0
    assert "0 errors, 0 warnings" in capsys.readouterr().out


def test_src_app_settings_is_found(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "lab_steps.toml").write_text(
        '[[m]]\nC = "1"\nproduces = ["${settings.args.nope}"]\n', encoding="utf-8"
    )
    (tmp_path / "src" / "app_settings.toml").write_text('[args]\nout = "x"\n', encoding="utf-8")
    assert main(["check", str(tmp_path / "lab_steps.toml")]) == 1
    assert "[args] has no key 'nope'" in capsys.readouterr().out


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check"]) == 2
    assert main(["schema", "nope"]) == 2
    assert main([]) == 2
    assert main(["plan", "x.toml", "--cores", "0"]) == 2


def test_help_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    assert "check FILE..." in capsys.readouterr().out


def test_every_invalid_conformance_file_through_the_real_script() -> None:
    files = sorted(str(p) for p in INVALID.rglob("*.toml") if p.name != "app_settings.toml")
    proc = run_cli("check", *files)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stdout + proc.stderr
    assert f"{len(files)} files checked" in proc.stdout


def test_garbage_bytes_never_give_a_traceback(tmp_path: Path) -> None:
    path = tmp_path / "lab_steps.toml"
    path.write_bytes(bytes(range(256)) * 4)
    proc = run_cli("check", str(path))
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr and "error[encoding-invalid]" in proc.stdout


@needs_corpus
def test_check_judges_every_corpus_file_through_the_real_script() -> None:
    """Only the legacy lab whose C is prose fails (stage-code-syntax, as AGILAB's validator)."""
    proc = run_cli("check", *(str(p) for p in corpus_files()))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stdout.count("error[stage-code-syntax]") == 3
    assert proc.stdout.count("error[") == 3 and " 3 errors" in proc.stdout
