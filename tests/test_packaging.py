"""The wheel ships the Lark grammar inside the package, py.typed, and the console script."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from conftest import ROOT


def test_wheel_contents(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    (wheel,) = tmp_path.glob("agilab_dsl-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        entry_points = next(n for n in names if n.endswith("entry_points.txt"))
        scripts = zf.read(entry_points).decode()
    for grammar in (ROOT / "grammar").glob("*.lark"):
        assert f"agilab_dsl/grammar/{grammar.name}" in names
    assert "agilab_dsl/py.typed" in names
    # the step side of AGILAB's df and tracker, loaded by path in a step's process
    for support in ("_agilab_run_step.py", "agilab/__init__.py", "agilab/tracking.py"):
        assert f"agilab_dsl/execute/step_support/{support}" in names
    assert "agilab-run = agilab_dsl.cli:console" in scripts
