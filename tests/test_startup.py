"""`agilab-run --help` and `check` import none of the heavy optional dependencies."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import CONFORMANCE

HEAVY = ("dask", "distributed", "pyarrow", "joblib", "watchfiles", "cupy", "starlette", "uvicorn", "rich")

PROBE = """
import json, sys
from agilab_dsl.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {heavy})), file=sys.stderr)
"""


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["check", str(CONFORMANCE / "valid" / "extensions.lab_stages.toml")],
        ["check", str(CONFORMANCE / "valid" / "parallel_stage.toml"), "--json"],
        ["schema", "lab-steps"],
    ],
)
def test_no_heavy_imports(argv: list[str]) -> None:
    code = PROBE.replace("{heavy}", repr(set(HEAVY)))
    proc = subprocess.run(
        [sys.executable, "-c", code, *argv], check=False, capture_output=True, text=True, timeout=60
    )
    imported = json.loads(proc.stderr.strip().splitlines()[-1])
    assert imported == [], f"{argv} imported {imported}"


def test_help_does_not_import_pydantic_or_lark() -> None:
    code = PROBE.replace("{heavy}", repr({"pydantic", "lark"}))
    proc = subprocess.run(
        [sys.executable, "-c", code, "--help"], check=False, capture_output=True, text=True, timeout=60
    )
    assert json.loads(proc.stderr.strip().splitlines()[-1]) == []


def test_a_cached_check_does_not_import_pydantic_or_lark() -> None:
    """The second `check` of an unchanged file is answered from the result cache: the models and
    the grammars stay unloaded (the first, cold `check` loads them)."""
    code = PROBE.replace("{heavy}", repr({"pydantic", "lark"}))
    argv = ["check", str(CONFORMANCE / "valid" / "extensions.lab_stages.toml")]
    runs = [
        subprocess.run(
            [sys.executable, "-c", code, *argv], check=False, capture_output=True, text=True, timeout=60
        )
        for _ in range(2)
    ]
    cold, warm = (json.loads(p.stderr.strip().splitlines()[-1]) for p in runs)
    assert "pydantic" in cold and "lark" in cold
    assert warm == []
