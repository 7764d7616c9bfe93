"""Nothing escapes the lab (issue 16, failure 3): hostile labs and contracts, checked and run for real.

    python tests/fault/escapes.py [--only SUBSTRING]

Each case is a lab (or a parallel contract) in a folder of its own inside a sandbox, beside an
``outside/`` folder and a file ``outside/victim.txt``. Its step tries to get out: a step id that is a
path (its log would land elsewhere), an output that climbs out, is absolute, goes through a symlink,
names ``.agilab/`` or the lab's own files, is empty or ``.``; a function from a file outside the lab,
or a standard-library callable that runs a shell command or code; a contract doing the same. Each
case is checked (``agilab-run check``) and run (``agilab-run LAB``), in this process.

An **escape** is any of: a file made or changed anywhere in the sandbox outside the lab's folder; a
byte changed in the lab, its settings or its contract; a step's marker found under ``.agilab/``; the
risky callable's marker file made. A case is also counted **unflagged** when ``check`` reported no
located diagnostic for it (every case here must be flagged at a line of its file). Prints the cases
tried, escapes (must be 0) and unflagged (must be 0); ``tests/test_security.py`` runs it in CI.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

WRITE = "open(outputs[0], 'w').write('PWNED')"
EVIL = "def f(**kw):\n    open({marker!r}, 'w').write('PWNED')\n"
CONTRACT = (
    'schema = "agilab.parallel_stage.v1"\nname = "p"\nfunction = "{function}"\nsplit = "files"\n'
    'input = "*.txt"\nworkers = 1\npartition_strategy = "one-file-per-partition"\n'
    'target_partitions = 0\nmin_partitions_per_worker = 1\nreducer = "collect-json"\n'
    'backend = "local"\noutput = "{output}"\n'
)


@dataclass
class Case:
    name: str
    lab: str  # the lab's text ({outside} is the outside folder's path); "" when the contract runs alone
    setup: Callable[[Path, Path], None] | None = None  # (lab_dir, outside) -> None: symlinks, modules
    contract: str | None = None  # a parallel_stage.toml's text, beside the lab
    at_run: bool = False  # a rendered path: flagged by the run (its step refused), not by check


@dataclass
class Figures:
    tried: int = 0
    escapes: list[str] = field(default_factory=list)
    unflagged: list[str] = field(default_factory=list)


def _step(id_line: str, body: str) -> str:
    return f"[[m]]\n{id_line}\n{body}\n"


def _link(name: str, target: str) -> Callable[[Path, Path], None]:
    def make(lab_dir: Path, outside: Path) -> None:
        link = lab_dir / name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(target.format(outside=outside, lab=lab_dir))

    return make


def _evil_module(where: str) -> Callable[[Path, Path], None]:
    def make(lab_dir: Path, outside: Path) -> None:
        marker = outside / "RAN"
        if where == "outside":
            (outside / "evil.py").write_text(EVIL.format(marker=str(marker)), encoding="utf-8")
        else:  # a module inside the lab that is a symlink to one outside
            (outside / "evil.py").write_text(EVIL.format(marker=str(marker)), encoding="utf-8")
            (lab_dir / "evil.py").symlink_to(outside / "evil.py")

    return make


def cases() -> list[Case]:
    out: list[Case] = []
    log = "C = \"print('log line')\""
    bad_ids = [
        "../x",
        "../../../../outside/pwn",
        "{outside}/pwn",
        "/tmp/agilab-escape-id",
        "a/b",
        "a\\\\b",
        "..",
        ".",
        "x\\u0000y",
        "x\\ny",
        "~/pwn",
        "",
    ]
    for n, sid in enumerate(bad_ids):
        out.append(Case(f"id {n}: {sid!r}", _step(f'id = "{sid}"', log)))
    out.append(Case("id from a module key '../m'", '[["../m"]]\n' + log + "\n"))
    out.append(Case("id from a module key '/abs'", '[["/abs"]]\n' + log + "\n"))
    outputs = [
        "../victim.txt",
        "../outside/victim.txt",
        "{outside}/victim.txt",
        "{outside}/new.txt",
        "sub/../../outside/victim.txt",
        "./../outside/new.txt",
        "..\\\\outside\\\\new.txt",
    ]
    for n, o in enumerate(outputs):
        out.append(Case(f"output {n}: {o!r}", _step(f'id = "s{n}"', f'C = "{WRITE}"\nproduces = ["{o}"]')))
    links = [
        ("file link", "f.txt", "{outside}/victim.txt", "f.txt"),
        ("folder link", "d", "{outside}", "d/new.txt"),
        ("nested folder link", "a/b", "{outside}", "a/b/new.txt"),
        ("link to the parent", "up", "..", "up/outside/new.txt"),
        ("link to the lab file", "l.toml", "{lab}/lab_steps.toml", "l.toml"),
        ("link into .agilab", "st", "{lab}/.agilab", "st/state.json"),
        ("dangling link outside", "g.txt", "{outside}/missing.txt", "g.txt"),
    ]
    for what, name, target, written in links:
        out.append(
            Case(
                f"output through a {what}",
                _step('id = "s"', f'C = "{WRITE}"\nproduces = ["{written}"]'),
                _link(name, target),
            )
        )
    protected = [
        ".agilab/state.json",
        ".agilab/runs/x.txt",
        ".agilab",
        "./.agilab/hashes.json",
        "lab_steps.toml",
        "./lab_steps.toml",
        "out/../lab_steps.toml",
        "app_settings.toml",
        "parallel_stage.toml",
        "",
        ".",
        "./",
        "out/..",
    ]
    for n, o in enumerate(protected):
        for allow in (False, True):
            body = f'C = "{WRITE}"\nproduces = ["{o}"]' + ("\nallow_outside = true" if allow else "")
            out.append(
                Case(f"protected {n}: {o!r}{' (allow_outside)' if allow else ''}", _step('id = "s"', body))
            )
    out.append(
        Case(
            "rendered output: a settings value outside",
            _step('id = "s"', f'C = "{WRITE}"\nproduces = ["${{settings.args.out}}/new.txt"]'),
            at_run=True,
        )
    )
    out.append(
        Case(
            "rendered output: a param climbing out",
            _step(
                'id = "s"',
                f'C = "{WRITE}"\nparams = {{ p = "../outside" }}\nproduces = ["${{params.p}}/new.txt"]',
            ),
            at_run=True,
        )
    )
    functions = [
        ("os:system", True),
        ("os:popen", True),
        ("os:execv", False),
        ("os:execvp", False),
        ("os:spawnl", False),
        ("os:posix_spawn", False),
        ("posix:system", True),
        ("subprocess:run", False),
        ("subprocess:Popen", False),
        ("subprocess:call", False),
        ("subprocess:check_output", False),
        ("subprocess:getoutput", True),
        ("builtins:eval", False),
        ("builtins:exec", False),
        ("builtins:compile", False),
        ("builtins:__import__", False),
        ("pty:spawn", False),
        ("runpy:run_path", False),
    ]
    for fn, takes_command in functions:
        params = '\nparams = { command = "touch {outside}/RAN" }' if takes_command else ""
        out.append(Case(f"function {fn}", _step('id = "s"', f'function = "{fn}"{params}')))
    out.append(
        Case(
            "function from an absolute path",
            _step('id = "s"', 'function = "{outside}/evil.py:f"'),
            _evil_module("outside"),
        )
    )
    out.append(
        Case(
            "function from ../",
            _step('id = "s"', 'function = "../outside/evil.py:f"'),
            _evil_module("outside"),
        )
    )
    out.append(
        Case(
            "function through a symlinked module",
            _step('id = "s"', 'function = "evil.py:f"'),
            _evil_module("link"),
        )
    )
    stage = _step('id = "s"', 'stage = "parallel_stage.toml"')
    for what, function, output in [
        ("output outside", "fn.py:f", "../outside/new.json"),
        ("output absolute", "fn.py:f", "{outside}/new.json"),
        ("output into .agilab", "fn.py:f", ".agilab/state.json"),
        ("output over itself", "fn.py:f", "parallel_stage.toml"),
        ("output over the lab", "fn.py:f", "lab_steps.toml"),
        ("output '.'", "fn.py:f", "."),
        ("function os:system", "os:system", "out.json"),
        ("function from ../", "../outside/evil.py:f", "out.json"),
    ]:
        out.append(
            Case(
                f"contract {what}",
                stage,
                _evil_module("outside"),
                CONTRACT.format(function=function, output=output),
            )
        )
    out.append(
        Case(
            "contract output through a folder link",
            stage,
            _link("res", "{outside}"),
            CONTRACT.format(function="fn.py:f", output="res/new.json"),
        )
    )
    return out


def snapshot(root: Path, lab_dir: Path) -> dict[str, bytes | str]:
    """Every file under the sandbox outside the lab's folder, and the lab's own pipeline files."""
    seen: dict[str, bytes | str] = {}
    for folder, dirs, files in os.walk(root):
        here = Path(folder)
        if here == lab_dir:
            dirs.clear()
            continue
        for name in files + [d for d in dirs if (here / d).is_symlink()]:
            p = here / name
            try:
                seen[str(p)] = p.read_bytes() if p.is_file() and not p.is_symlink() else os.readlink(p)
            except OSError:
                seen[str(p)] = "?"
    for name in ("lab_steps.toml", "app_settings.toml", "parallel_stage.toml"):
        p = lab_dir / name
        if p.is_file():
            seen[str(p)] = p.read_bytes()
    return seen


def marker_in_state(lab_dir: Path) -> bool:
    for folder, _dirs, files in os.walk(lab_dir / ".agilab"):
        for name in files:
            with contextlib.suppress(OSError):
                if b"PWNED" in (Path(folder) / name).read_bytes():
                    return True
    return False


def try_case(case: Case, root: Path) -> tuple[bool, bool]:
    """(escaped, flagged) for one case, in a fresh sandbox under ``root``."""
    from agilab_dsl.cli import main

    sandbox = Path(tempfile.mkdtemp(dir=root))
    outside = sandbox / "outside"
    lab_dir = sandbox / "lab"
    outside.mkdir()
    lab_dir.mkdir()
    (outside / "victim.txt").write_text("untouched\n", encoding="utf-8")
    (lab_dir / "fn.py").write_text("def f(partition):\n    return 1\n", encoding="utf-8")
    (lab_dir / "a.txt").write_text("a\n", encoding="utf-8")
    (lab_dir / "app_settings.toml").write_text(f'[args]\nout = "{outside}"\n', encoding="utf-8")
    lab = lab_dir / "lab_steps.toml"
    lab.write_text(case.lab.replace("{outside}", str(outside)), encoding="utf-8")
    if case.contract is not None:
        (lab_dir / "parallel_stage.toml").write_text(
            case.contract.replace("{outside}", str(outside)), encoding="utf-8"
        )
    if case.setup is not None:
        case.setup(lab_dir, outside)
    before = snapshot(sandbox, lab_dir)
    absolute = Path("/tmp/agilab-escape-id.log")  # where the case with that absolute id would log
    with contextlib.suppress(OSError):
        absolute.unlink()
    home = os.environ.get("HOME")
    os.environ["HOME"] = str(sandbox)  # an id or output starting with ~ lands in the sandbox
    sink = io.StringIO()
    old = os.getcwd()
    os.chdir(sandbox)  # a relative escape from the working folder lands in the sandbox too
    try:
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            main(["check", "--json", "--no-cache", str(lab)])
            checked = sink.getvalue()
            main([str(lab), "--no-cache", "--keep-going"])
    finally:
        os.chdir(old)
        if home is not None:
            os.environ["HOME"] = home
    after = snapshot(sandbox, lab_dir)
    escaped = after != before or marker_in_state(lab_dir) or (outside / "RAN").exists()
    escaped = escaped or absolute.exists()
    with contextlib.suppress(OSError):
        absolute.unlink()
    try:
        issues = json.loads(checked[: checked.rindex("}") + 1])["issues"]
    except (ValueError, KeyError):
        issues = []
    flagged = any(i["severity"] in ("error", "warning") and i.get("line") for i in issues)
    if case.at_run:
        flagged = "outside the lab's folder" in sink.getvalue()[len(checked) :]
    return escaped, flagged


# the detector's own test: a stage that opts in does write outside, and that is seen
CONTROL = Case(
    "control: allow_outside writes outside",
    _step('id = "s"', f'C = "{WRITE}"\nproduces = ["{{outside}}/new.txt"]\nallow_outside = true'),
)


def run(only: str | None = None) -> Figures:
    figures = Figures()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        if not try_case(CONTROL, root)[0]:
            raise SystemExit("the detector missed the control case's write outside the lab")
        for case in cases():
            if only and only not in case.name:
                continue
            figures.tried += 1
            escaped, flagged = try_case(case, root)
            if escaped:
                figures.escapes.append(case.name)
            if not flagged:
                figures.unflagged.append(case.name)
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="the cases whose name holds this")
    args = parser.parse_args()
    figures = run(args.only)
    print(f"security cases tried: {figures.tried}")
    print(f"escapes: {len(figures.escapes)}" + "".join(f"\n  {n}" for n in figures.escapes))
    print(f"unflagged by check: {len(figures.unflagged)}" + "".join(f"\n  {n}" for n in figures.unflagged))
    return 0 if not figures.escapes and not figures.unflagged else 1


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    sys.exit(main())
