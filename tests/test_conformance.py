"""The conformance suite: every file under lab_steps/conformance/ gives exactly its golden diagnostics.

A golden file ``NAME.expected`` sits beside ``NAME.toml``: one line per diagnostic,
``LINE:COL severity code: message``. Files without one (settings snapshots, helpers) are fixtures;
every ``.toml`` in ``valid/`` must give no diagnostic at all.
Regenerate after a deliberate wording change with ``AGILAB_REGEN=1 pytest tests/test_conformance.py``
and review the diff.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import CONFORMANCE

from agilab_dsl.check.files import check_file
from agilab_dsl.load.errors import CODES

INVALID = sorted(
    p
    for p in (CONFORMANCE / "invalid").rglob("*.toml")
    if p.with_suffix(".expected").exists() or os.environ.get("AGILAB_REGEN")
)
INVALID = [p for p in INVALID if p.name != "app_settings.toml"]
VALID = sorted(p for p in (CONFORMANCE / "valid").glob("*.toml"))
# Codes about the file itself, which a file in a folder cannot show; tests/test_cli.py covers them.
# stage-no-inputs is an info `check` adds beside check_file's diagnostics (tests/test_infer.py).
# input-empty and function-unimportable are found when a contract runs, not when it is checked
# (tests/test_parallel.py covers them).
NOT_REPRESENTABLE = {
    "file-missing",
    "file-unreadable",
    "stage-no-inputs",
    "input-empty",
    "function-unimportable",
}


def diagnostics_of(path: Path) -> list[str]:
    result, _ = check_file(path)
    diags = sorted(result.diagnostics, key=lambda d: (d.line or 0, d.column or 0, d.code))
    return [f"{d.line}:{d.column} {d.severity.value} {d.code}: {d.message}" for d in diags]


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.name)
def test_invalid_file_gives_its_golden_diagnostics(path: Path) -> None:
    golden = path.with_suffix(".expected")
    got = diagnostics_of(path)
    if os.environ.get("AGILAB_REGEN"):
        golden.write_text("".join(line + "\n" for line in got), encoding="utf-8")
    assert got, f"{path.name} is in invalid/ but gives no diagnostic"
    assert got == golden.read_text(encoding="utf-8").splitlines()


@pytest.mark.parametrize("path", VALID, ids=lambda p: p.name)
def test_valid_file_gives_no_diagnostic(path: Path) -> None:
    assert diagnostics_of(path) == []


def test_suite_is_large_enough_and_covers_every_code() -> None:
    assert len(INVALID) >= 40
    covered = set()
    for path in INVALID:
        for line in path.with_suffix(".expected").read_text(encoding="utf-8").splitlines():
            covered.add(line.split(" ")[2].rstrip(":"))
    missing = set(CODES) - covered - NOT_REPRESENTABLE
    assert not missing, f"codes with no conformance case: {sorted(missing)}"
    assert covered <= set(CODES)


def test_every_invalid_diagnostic_is_located() -> None:
    for path in INVALID:
        for line in path.with_suffix(".expected").read_text(encoding="utf-8").splitlines():
            if " file-kind-unknown:" in line:
                continue  # about the whole file
            position = line.split(" ")[0]
            assert position != "None:None", f"{path.name}: unlocated diagnostic {line!r}"
