"""The package's layers (README "Layout"): imports only go downward, no import cycle, and nothing
below ``cli`` talks to the terminal or ends the process.

The import contracts live in pyproject.toml (``[tool.importlinter]``) and are checked by
import-linter, the kept tool made for this; the printing rule is read from the syntax trees here.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "agilab_dsl"
LINT = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which("lint-imports")

# The step worker is a process of its own: its stdout/stderr *are* the step's log, not the terminal;
# so is the step side of AGILAB's df and tracker, which runs in the step's process.
OWN_STDIO = {"execute/worker.py", "execute/step_support/_agilab_run_step.py"}

needs_linter = pytest.mark.skipif(
    LINT is None, reason="import-linter is not installed (pip install -e '.[test]')"
)


def lint(config: Path, cwd: Path, pythonpath: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(pythonpath), "NO_COLOR": "1"}
    assert LINT is not None
    return subprocess.run(
        [LINT, "--no-cache", str(config)],
        check=False,
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@needs_linter
def test_the_import_contracts_are_kept() -> None:
    proc = lint(ROOT / "pyproject.toml", ROOT, ROOT)
    assert proc.returncode == 0, proc.stdout[proc.stdout.find("Broken contracts") :] + proc.stderr


@needs_linter
def test_an_upward_import_breaks_the_contract_and_is_named(tmp_path: Path) -> None:
    """The same contracts over a copy of the layer names, with one upward import planted."""
    pkg = tmp_path / "agilab_dsl"
    for layer in ("cli", "review", "execute", "stages", "record", "check", "plan", "load"):
        (pkg / layer).mkdir(parents=True)
        (pkg / layer / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "__main__.py").write_text("from .cli import main\n")
    (pkg / "cli" / "main.py").write_text("from ..execute import run\n")
    (pkg / "load" / "model.py").write_text("def f():\n    from ..plan import graph\n")
    (pkg / "plan" / "graph.py").write_text("from ..load import model\n")
    (pkg / "execute" / "run.py").write_text("")
    config = tmp_path / "pyproject.toml"
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    config.write_text(text[text.index("[tool.importlinter]") : text.index("[tool.ruff]")], encoding="utf-8")
    proc = lint(config, tmp_path, tmp_path)
    assert proc.returncode != 0
    assert "agilab_dsl.load.model -> agilab_dsl.plan.graph" in proc.stdout
    assert "No cycles are allowed in agilab_dsl" in proc.stdout


def without_process_entry(tree: ast.Module) -> ast.Module:
    """A module run as a process of its own (``python -m …``, ``if __name__ == "__main__"``) may
    write to that process's stdio from its ``main``: drop that function from the tree."""
    guarded = any(
        isinstance(n, ast.If) and "__name__" in ast.unparse(n.test) and "__main__" in ast.unparse(n.test)
        for n in tree.body
    )
    if guarded:
        tree.body = [n for n in tree.body if not (isinstance(n, ast.FunctionDef) and n.name == "main")]
    return tree


def terminal_calls(path: Path, root: Path = ROOT) -> list[str]:
    """``print(...)`` (to any stream: the layers below hand text to their caller, as values or
    through a ``say``/``note`` callable), ``sys.exit``, ``exit``, ``quit`` and writes to
    ``sys.stdout`` / ``sys.stderr``, as ``file:line: text``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(without_process_entry(tree)):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = ast.unparse(func)
        if name in {"print", "sys.exit", "exit", "quit", "sys.stdout.write", "sys.stderr.write"}:
            found.append(f"{path.relative_to(root)}:{node.lineno}: {ast.unparse(node)[:80]}")
    return found


def test_nothing_below_cli_prints_or_exits() -> None:
    offending = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        if rel.startswith("cli/") or rel in OWN_STDIO or rel == "__main__.py":
            continue
        offending += terminal_calls(path)
    assert offending == [], "below cli, only cli/ may print or exit:\n" + "\n".join(offending)


def test_the_print_rule_can_fail(tmp_path: Path) -> None:
    sample = tmp_path / "printing.py"
    sample.write_text(
        "import sys\nprint('x')\nprint('y', file=sys.stderr)\nprint('z', file=out)\nsys.exit(3)\n"
        "def main():\n    print('entry')\nif __name__ == '__main__':\n    main()\n",
        encoding="utf-8",
    )
    found = terminal_calls(sample, tmp_path)
    assert [f.split(":")[1] for f in found] == ["2", "3", "4", "5"]
