"""Which Python interpreter runs a step, and why, as a value — chosen as AGILAB chooses it (its
``_resolve_stage_engine_runtime``, ``normalize_runtime_path``, ``is_valid_runtime_root`` and
``python_for_stage``), and said.

In this order:

1. a parallel stage (``stage = …``) runs in agilab-run's own interpreter: agilab-dsl's backends run it;
2. ``--python PATH`` (an interpreter, or a project or venv folder) runs every other step;
3. code that imports ``agi_cluster`` or calls ``AGI.install/run/serve/get_distrib(`` runs under an
   interpreter that has ``agi_cluster`` (AGILAB runs it in its controller's): ``--agilab-python``, else
   the first that has it of agilab-run's own and the lab's project's;
4. ``E``, the stage's runtime: a relative value is resolved against ``APPS_PATH`` (``--apps-path``, else
   the environment variable; then ``APPS_PATH/<its last part>``), or against the lab's folder when
   there is no ``APPS_PATH``; a trailing ``.venv`` is stripped; it is valid when it holds ``.venv`` or
   ``bin/python``, and runs ``.venv/bin/python``, else ``bin/python``. An ``E`` that names no runtime
   fails an ``agi.*`` step, saying where it looked; a ``runpy`` step goes on to 5 and 6, as in AGILAB,
   and the reason says that ``E`` was ignored;
5. without ``E``, the project the lab belongs to: the nearest folder up from the lab holding both
   ``pyproject.toml`` and ``.venv`` (AGILAB's fallback to the active app's project);
6. otherwise agilab-run's own interpreter, said as such.

A ``runpy`` (or blank ``R``) step with a runtime (4 or 5) runs in that runtime: AGILAB turns it into
``agi.run``. Nothing is run here but, for rule 3, the question "do you have agi_cluster?" put to an
interpreter (:mod:`.pyidentity`, asked once).
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

from ..load.records import FrozenRecord
from .pyidentity import Identity, canonical, identify, own, same_environment

OWN = "agilab-run's own"
PROJECT = "the lab's project"
# AGILAB's uses_controller_python looks for "import agi_cluster", "from agi_cluster.agi_distributor
# import AGI" and "AGI.install(" … as substrings; this also finds "import os, agi_cluster".
AGI_CLUSTER = re.compile(
    r"(?m)^[ \t]*import\b[^#\n]*\bagi_cluster\b|\bfrom\s+agi_cluster\b"
    r"|\bAGI\.(?:install|run|serve|get_distrib)\("
)
HOW_TO_PICK = (
    'pick another with --python PATH, E = "<project or venv>" on the stage, or a .venv in the '
    "lab's project (a folder above the lab holding pyproject.toml)"
)


class InterpreterOptions(FrozenRecord):
    """The command line's say in the choice."""

    _fields = ("python", "agilab_python", "apps_path")

    def __init__(
        self,
        python: str | None = None,  # --python: every step
        agilab_python: str | None = None,  # --agilab-python: steps that use agi_cluster
        apps_path: str | None = None,  # --apps-path (else $APPS_PATH): where a relative E is looked for
    ) -> None:
        self.python = python
        self.agilab_python = agilab_python
        self.apps_path = apps_path

    def to_json(self) -> dict[str, str | None]:
        return {"python": self.python, "agilab_python": self.agilab_python, "apps_path": self.apps_path}

    def problem(self) -> str | None:
        """Why these options cannot be used (an interpreter that is not one, a folder that is not):
        the command refuses to start."""
        for raw, flag in ((self.python, "--python"), (self.agilab_python, "--agilab-python")):
            if raw and (chosen := given(raw, flag)).problem is not None:
                return chosen.problem
        if self.apps_path and not Path(self.apps_path).expanduser().is_dir():
            return f"--apps-path {self.apps_path}: not a folder"
        return None


class Interpreter(FrozenRecord):
    """The interpreter chosen for a step (``path``), why (``why``: "--python", "E", "the lab's
    project", "agilab-run's own", each maybe after "agi_cluster: "), from what (``source``: E's
    value, the project's folder…), or why none could be (``problem``: what was looked for).
    ``looked_at``: the files whose presence the choice depended on."""

    _fields = ("path", "why", "source", "problem", "own", "note", "looked_at")
    _uncompared = frozenset({"looked_at"})

    def __init__(
        self,
        path: str,
        why: str,
        source: str = "",
        problem: str | None = None,
        own: bool = False,
        note: str = "",
        looked_at: tuple[str, ...] = (),
    ) -> None:
        self.path = path
        self.why = why
        self.source = source
        self.problem = problem
        self.own = own
        self.note = note
        self.looked_at = looked_at

    @property
    def reason(self) -> str:
        text = self.why + (f" {self.source}" if self.source else "")
        if self.own and OWN not in self.why:
            text += f", {OWN}"
        return text + (f": {self.note}" if self.note else "")

    def short(self) -> str:
        """``/p/.venv/bin/python (the lab's project)``: the path and the rule that chose it."""
        if self.problem is not None:
            return "none"
        label = self.why + (f", {OWN}" if self.own and OWN not in self.why else "")
        return f"{self.path} ({label})"

    def describe(self) -> str:
        """``/p/.venv/bin/python (the lab's project /p)``, or why there is none."""
        if self.problem is not None:
            return f"no interpreter: {self.problem}"
        return f"{self.path} ({self.reason})"

    def to_json(self) -> dict[str, str | bool | None]:
        return {"path": self.path or None, "why": self.why, "reason": self.reason, "problem": self.problem}


def uses_agi_cluster(code: str | None) -> bool:
    """Whether code imports ``agi_cluster`` or calls ``AGI.install/run/serve/get_distrib(``."""
    return bool(code) and AGI_CLUSTER.search(code or "") is not None


def python_in(root: Path) -> tuple[str | None, list[str]]:
    """The interpreter of a runtime root (``.venv/bin/python`` first, then ``bin/python``), and the
    paths looked for."""
    looked = []
    for folder in (root / ".venv", root):
        for name in ("python", "python3"):
            candidate = folder / "bin" / name
            looked.append(str(candidate))
            if candidate.is_file() and os.access(candidate, os.X_OK):
                return str(candidate), looked
    return None, looked


def is_valid_runtime_root(root: Path) -> bool:
    """AGILAB's test: the folder exists and holds ``.venv`` or ``bin/python``."""
    return root.is_dir() and (
        (root / ".venv").exists() or (root / "bin" / "python").exists() or (root / "bin" / "python3").exists()
    )


def runtime_candidates(raw: str, lab_dir: Path, apps_path: str | None) -> list[Path]:
    """Where ``E`` may be, in order (AGILAB's ``normalize_runtime_path``; without ``APPS_PATH`` a
    relative ``E`` is taken from the lab's folder)."""
    candidate = Path(raw.strip()).expanduser()
    if apps_path:
        apps = Path(apps_path).expanduser()
        first = candidate if candidate.is_absolute() else apps / candidate
        out = [first, apps / candidate.name] if not first.exists() else [first]
    else:
        out = [candidate if candidate.is_absolute() else lab_dir / candidate]
    return [p.parent if p.name == ".venv" else p for p in out]


def find_project(lab_dir: Path) -> tuple[Path | None, list[str]]:
    """The nearest folder from ``lab_dir`` up holding ``pyproject.toml`` and ``.venv``; and the files
    looked at (the ``.venv``'s ``pyvenv.cfg`` stands for the folder)."""
    looked = []
    for folder in (lab_dir, *lab_dir.parents):
        looked += [str(folder / "pyproject.toml"), str(folder / ".venv" / "pyvenv.cfg")]
        if (folder / "pyproject.toml").is_file() and (folder / ".venv").exists():
            return folder, looked
    return None, looked


def found(path: str, why: str, source: str = "", looked: list[str] | None = None) -> Interpreter:
    path = canonical(path)
    return Interpreter(path, why, source, own=same_environment(path), looked_at=tuple(looked or ()))


def given(raw: str, flag: str) -> Interpreter:
    """An interpreter named on the command line: the executable, or a project or venv folder."""
    path = Path(raw).expanduser().absolute()
    if path.is_dir():
        root = path.parent if path.name == ".venv" else path
        python, looked = python_in(root)
        if python is None:
            return Interpreter(
                "", flag, problem=f"{flag} {raw}: no Python in it (looked for {', '.join(looked)})"
            )
        return found(python, flag, looked=looked)
    if not (path.is_file() and os.access(path, os.X_OK)):
        return Interpreter("", flag, problem=f"{flag} {raw}: not an executable file")
    return found(str(path), flag, looked=[str(path)])


class Chooser:
    """Chooses the interpreter of each step of one lab (the lab's project is looked for once)."""

    def __init__(
        self,
        lab_dir: Path,
        options: InterpreterOptions | None = None,
        environ: Mapping[str, str] | None = None,
        identify_fn: Callable[[str], Identity] = identify,
    ) -> None:
        self.lab_dir = lab_dir
        self.options = options or InterpreterOptions()
        environ = os.environ if environ is None else environ
        self.apps_path = self.options.apps_path or environ.get("APPS_PATH") or None
        self.identify = identify_fn
        self._project: tuple[Path | None, list[str]] | None = None

    @property
    def project(self) -> tuple[Path | None, list[str]]:
        if self._project is None:
            self._project = find_project(self.lab_dir)
        return self._project

    def choose(
        self, *, code: str | None, env: str | None, engine: str | None = None, contract: bool = False
    ) -> Interpreter:
        """The interpreter of a step with this code, ``E`` and ``R`` (``contract``: a parallel stage)."""
        if contract:
            return Interpreter(
                canonical(sys.executable),
                OWN,
                own=True,
                note="a parallel stage runs on agilab-dsl's backends",
            )
        if self.options.python:
            return given(self.options.python, "--python")
        if uses_agi_cluster(code):
            return self._with_agi_cluster()
        if env is not None and env.strip():
            chosen = self._from_e(env)
            if chosen.problem is None or (engine or "").startswith("agi."):
                return chosen  # an agi.* step asked for that runtime: without it, it fails
            # a runpy step: AGILAB ignores an E that names no runtime; so does this, saying so
            fallback = self._default()
            ignored = f"{chosen.problem.split(' (a relative E', 1)[0]}, ignored (as AGILAB does)"
            return fallback.replace(
                note="; ".join(n for n in (fallback.note, ignored) if n),
                looked_at=chosen.looked_at + fallback.looked_at,
            )
        return self._default()

    def _with_agi_cluster(self) -> Interpreter:
        why = "agi_cluster:"
        if self.options.agilab_python:
            chosen = given(self.options.agilab_python, "--agilab-python")
            return chosen.replace(why=f"{why} --agilab-python")
        asked = []
        me = own()
        project, looked = self.project
        looked = list(looked)
        if me.agi_cluster:
            return Interpreter(me.path, f"{why} {OWN}", own=True)
        asked.append(f"{OWN} ({me.path})")
        if project is not None:
            python, more = python_in(project)
            looked += more
            if python is not None:
                if self.identify(python).agi_cluster:
                    return found(python, f"{why} {PROJECT}", str(project), looked)
                asked.append(f"{PROJECT} ({python})")
        return Interpreter(
            "",
            why,
            problem="the code uses agi_cluster (AGILAB's cluster package), which no interpreter found has: "
            f"not {', nor '.join(asked)}"
            + ("" if project is not None else "; no project with a .venv above the lab")
            + "; pass --agilab-python PATH (AGILAB's own interpreter)",
            looked_at=tuple(looked),
        )

    def _from_e(self, raw: str) -> Interpreter:
        candidates = runtime_candidates(raw, self.lab_dir, self.apps_path)
        looked: list[str] = []
        for root in candidates:
            python, more = python_in(root)
            looked += more
            if is_valid_runtime_root(root) and python is not None:
                return found(python, "E", f"= {raw!r}", looked)
        where = " or ".join(str(c) for c in candidates)
        base = f"APPS_PATH {self.apps_path}" if self.apps_path else "the lab's folder (no APPS_PATH)"
        return Interpreter(
            "",
            "E",
            f"= {raw!r}",
            problem=f"E = {raw!r} names no runtime: no .venv/bin/python nor bin/python in {where} "
            f"(a relative E is looked for in {base}; --apps-path DIR sets it)",
            looked_at=tuple(looked),
        )

    def _default(self) -> Interpreter:
        project, looked = self.project
        if project is not None:
            python, more = python_in(project)
            if python is None:
                return Interpreter(
                    "",
                    PROJECT,
                    str(project),
                    problem=f"{PROJECT} {project} has a .venv with no Python in it (looked for {', '.join(more)})",
                    looked_at=tuple(looked + more),
                )
            return found(python, PROJECT, str(project), looked + more)
        return Interpreter(
            canonical(sys.executable),
            OWN,
            own=True,
            note="no E, and no folder above the lab holds pyproject.toml and .venv",
            looked_at=tuple(looked),
        )

    def identity(self, chosen: Interpreter) -> dict[str, str]:
        """The fingerprint component of a choice: path and ``sys.version`` (or why there is none)."""
        if chosen.problem is not None:
            return {"path": "", "problem": chosen.problem}
        return self.identify(chosen.path).component()


def changed(old: object, new: object) -> str:
    """The reason for an interpreter change: ``interpreter changed: /a/python (3.12.3) → /b/python (3.13.0)``."""

    def show(value: object, other: object) -> str:
        if not isinstance(value, dict):
            return "none"
        if value.get("problem"):
            return f"none ({value['problem']})"
        version = str(value.get("version", "?"))
        other_version = str(other.get("version", "")) if isinstance(other, dict) else ""
        same_short = other_version.split()[:1] == version.split()[:1] and other_version != version
        return f"{value.get('path')} ({version if same_short else version.split()[0]})"

    if not isinstance(old, dict):  # recorded by a version of this tool that did not record it
        return f"interpreter not recorded at its last run (now {show(new, old)})"
    return f"interpreter changed: {show(old, new)} → {show(new, old)}"


FAILED_IMPORT = re.compile(
    r"^(?:ModuleNotFoundError: No module named '(?P<module>[^']+)'"
    r"|ImportError: (?P<name>cannot import name '[^']+' from '[^']+')).*$",
    re.MULTILINE,
)


def missing_module(log_text: str, chosen: Interpreter) -> str | None:
    """For a step that failed on an import (``ModuleNotFoundError``, or ``ImportError: cannot import
    name``): what, in which interpreter, and how to pick another; None for any other failure."""
    found = list(FAILED_IMPORT.finditer(log_text))
    if not found:
        return None
    last = found[-1]
    what = f"no module named {last['module']!r}" if last["module"] else last["name"]
    return f"{what} in {chosen.describe()}; {HOW_TO_PICK}"
