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


def test_a_shared_run_of_code_steps_does_not_import_the_backends(tmp_path) -> None:
    """``-j 2`` shares the cores among the steps' thread pools: the run asks how many cores there
    are (``stages.cores``) but loads no backend (``stages.backends``: dataclasses, inspect,
    traceback, ~25 ms) while no step is a parallel stage."""
    lab = tmp_path / "lab_stages.toml"
    lab.write_text(
        '[[w]]\nid = "a"\nC = "open(outputs[0], \'w\').write(\'a\')"\nproduces = ["a.txt"]\n\n'
        '[[w]]\nid = "b"\nC = "open(outputs[0], \'w\').write(\'b\')"\nproduces = ["b.txt"]\n',
        encoding="utf-8",
    )
    code = (
        "import json, sys\nfrom agilab_dsl.cli import main\ncode = main(sys.argv[1:])\n"
        "print(json.dumps([code, sorted(m for m in sys.modules if m.startswith('agilab_dsl.stages'))]),"
        " file=sys.stderr)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(lab), "-j", "2"],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    status, stages = json.loads(proc.stderr.strip().splitlines()[-1])
    assert status == 0 and (tmp_path / "b.txt").read_text() == "b"
    assert stages == ["agilab_dsl.stages", "agilab_dsl.stages.cores"]
