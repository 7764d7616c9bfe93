"""A wheel-like install of this checkout for the benches that time whole processes (w1.py, startup.py).

The checkout's wheel is built (``pip wheel . --no-deps``) and installed with the ``bench`` extra
(doit) into a private virtual environment kept under ``~/.cache/agilab-dsl/bench-venvs/<hash>``, the
hash being the wheel's SHA-256 (hatchling builds reproducible wheels: the same code gives the same
venv). pip compiles the bytecode on install, so the timed commands start as an installed tool does,
not as an editable checkout does. ``--python PATH`` takes an interpreter that is already installed
instead (it must import ``agilab_dsl``; doit is looked for beside it).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENVS = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "agilab-dsl" / "bench-venvs"


@dataclass(frozen=True)
class Install:
    python: str  # the interpreter
    tool: tuple[str, ...]  # how to call agilab-run
    doit: tuple[str, ...] | None  # how to call doit (None: not installed there)
    origin: str  # where it came from, for the printed header

    def env(self) -> dict[str, str]:
        """The environment the timed children get: bytecode caching on (as in a normal install),
        nothing that points Python at this checkout."""
        drop = ("PYTHONDONTWRITEBYTECODE", "PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")
        return {k: v for k, v in os.environ.items() if k not in drop}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _quiet(cmd: list[str], what: str) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = "\n".join(line for line in proc.stderr.splitlines() if "is ignored" not in line)
        raise SystemExit(f"{what} failed ({' '.join(cmd)}):\n{tail[-3000:]}")


def build_wheel(folder: Path) -> Path:
    _quiet(
        [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "-q", "-w", str(folder)],
        "building the wheel",
    )
    wheels = sorted(folder.glob("agilab_dsl-*.whl"))
    if len(wheels) != 1:
        raise SystemExit(f"expected one agilab_dsl wheel in {folder}, found {[w.name for w in wheels]}")
    return wheels[0]


def wheel_install(say: object = print) -> Install:
    """The private venv for this checkout's wheel, created (minutes, once) when missing."""
    with tempfile.TemporaryDirectory() as tmp:
        wheel = build_wheel(Path(tmp))
        key = _sha256(wheel)[:16]
        venv = VENVS / key
        python = venv / "bin" / "python"
        if not (venv / ".complete").is_file():
            say(f"installing {wheel.name} (sha256 {key}…) and doit into {venv} (once per wheel) …")  # type: ignore[operator]
            shutil.rmtree(venv, ignore_errors=True)
            venv.parent.mkdir(parents=True, exist_ok=True)
            _quiet([sys.executable, "-m", "venv", str(venv)], "creating the venv")
            # pip compiles every module's bytecode on install (its default; said here for the reader)
            _quiet(
                [str(python), "-m", "pip", "install", "-q", "--compile", f"{wheel}[bench]"],
                "installing the wheel",
            )
            (venv / ".complete").write_text(wheel.name + "\n", encoding="utf-8")
    return _describe(python, f"wheel {wheel.name} sha256 {key}… in {venv}")


def existing_install(python: str) -> Install:
    """``--python PATH``: an interpreter (or a venv folder) with agilab_dsl installed."""
    path = Path(python)
    if path.is_dir():
        path = path / "bin" / "python"
    if not path.is_file():
        raise SystemExit(f"--python {python}: no such interpreter")
    probe = subprocess.run(
        [str(path), "-c", "import agilab_dsl"], capture_output=True, text=True, check=False
    )
    if probe.returncode != 0:
        raise SystemExit(f"--python {python}: it cannot import agilab_dsl:\n{probe.stderr[-1000:]}")
    return _describe(path, f"the interpreter {path}")


def _describe(python: Path, origin: str) -> Install:
    # not resolved: a venv's bin/python is a symlink whose target knows nothing of the venv
    bindir = python.parent
    exe = bindir / "agilab-run"
    tool = (str(exe),) if exe.is_file() else (str(python), "-m", "agilab_dsl")
    has_doit = (
        subprocess.run([str(python), "-c", "import doit"], capture_output=True, check=False).returncode == 0
    )
    doit = (str(python), "-m", "doit") if has_doit else None
    return Install(str(python), tool, doit, origin)


def resolve(python: str | None) -> Install:
    return existing_install(python) if python else wheel_install()
