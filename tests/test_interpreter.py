"""Which interpreter runs a step (agilab_dsl.plan.interpreter), as AGILAB chooses it: the decision
table over temporary folders, ``--python``, ``--agilab-python``, ``--apps-path``; said on the start
line and by ``status -v``; part of the fingerprint; named when an import fails. And a real AGILAB
project, tescia_diagnostic_project, run in its own ``.venv`` with no ``E`` added."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from agilab_dsl.cli import main
from agilab_dsl.plan import interpreter, pyidentity
from agilab_dsl.plan.interpreter import (
    OWN,
    PROJECT,
    Chooser,
    Interpreter,
    InterpreterOptions,
    changed,
    missing_module,
    runtime_candidates,
    uses_agi_cluster,
)
from agilab_dsl.plan.pyidentity import Identity, canonical


def fake_python(root: Path, where: str = "bin") -> Path:
    """An executable ``python`` under ``root/where`` (a shell script that runs this interpreter)."""
    folder = root / where
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "python"
    script.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n', encoding="utf-8")
    script.chmod(0o755)
    return script


def project(root: Path, venv: bool = True) -> Path:
    """A project folder: pyproject.toml and (``venv``) a .venv with a python."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "pyproject.toml").write_text('[project]\nname = "p"\nversion = "0"\n', encoding="utf-8")
    if venv:
        fake_python(root / ".venv")
        (root / ".venv" / "pyvenv.cfg").write_text("home = /usr/bin\n", encoding="utf-8")
    return root


def real_venv(root: Path) -> Path:
    """A real virtual environment (no pip) at ``root``; its interpreter."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
    return root / "bin" / "python"


def no_identify(path: str) -> Identity:
    raise AssertionError(f"{path} should not be asked")


# -- the decision table ------------------------------------------------------------------------
def test_no_e_and_no_project_is_agilab_runs_own_said_as_such(tmp_path: Path) -> None:
    chosen = Chooser(tmp_path, environ={}, identify_fn=no_identify).choose(code="x = 1", env=None)
    assert chosen.why == OWN and chosen.own and chosen.path == canonical(sys.executable)
    assert "no E, and no folder above the lab holds pyproject.toml and .venv" in chosen.describe()
    assert str(tmp_path / "pyproject.toml") in chosen.looked_at


def test_no_e_is_the_nearest_project_above_the_lab_with_a_venv(tmp_path: Path) -> None:
    outer = project(tmp_path / "outer")
    inner = project(outer / "apps" / "inner")
    lab = inner / "labs" / "one"
    lab.mkdir(parents=True)
    chosen = Chooser(lab, environ={}).choose(code="x = 1", env=None)
    assert (chosen.why, chosen.path, chosen.own) == (PROJECT, str(inner / ".venv" / "bin" / "python"), False)
    assert chosen.short() == f"{inner / '.venv' / 'bin' / 'python'} (the lab's project)"
    (inner / "pyproject.toml").unlink()  # a .venv alone does not make a project: the next one up
    assert Chooser(lab, environ={}).choose(code="", env=None).path == str(outer / ".venv" / "bin" / "python")
    project(tmp_path / "bare", venv=False)  # pyproject.toml without a .venv: not a runtime
    assert Chooser(tmp_path / "bare", environ={}).choose(code="", env=None).why == OWN


def test_a_project_whose_venv_has_no_python_is_an_error_saying_where(tmp_path: Path) -> None:
    root = project(tmp_path / "p", venv=False)
    (root / ".venv").mkdir()
    chosen = Chooser(root, environ={}).choose(code="", env=None)
    assert chosen.problem is not None and "has a .venv with no Python in it" in chosen.problem
    assert str(root / ".venv" / "bin" / "python") in chosen.problem


def test_e_relative_to_the_lab_without_apps_path_and_venv_stripped(tmp_path: Path) -> None:
    fake_python(tmp_path / "runtime")
    for raw in ("runtime", "runtime/", "./runtime"):
        chosen = Chooser(tmp_path, environ={}).choose(code="", env=raw, engine="agi.run")
        assert (chosen.why, chosen.path) == ("E", str(tmp_path / "runtime" / "bin" / "python")), raw
    app = tmp_path / "app"
    fake_python(app / ".venv")
    chosen = Chooser(tmp_path, environ={}).choose(code="", env="app/.venv", engine="agi.run")
    assert chosen.path == str(app / ".venv" / "bin" / "python")  # .venv stripped, then .venv/bin/python
    assert chosen.short() == f"{chosen.path} (E)" and "E = 'app/.venv'" in chosen.describe()


def test_e_is_resolved_against_apps_path_then_its_last_part(tmp_path: Path) -> None:
    apps = tmp_path / "apps"
    fake_python(apps / "flight_project" / ".venv")
    lab = tmp_path / "lab"
    lab.mkdir()
    env = {"APPS_PATH": str(apps)}
    expected = str(apps / "flight_project" / ".venv" / "bin" / "python")
    assert Chooser(lab, environ=env).choose(code="", env="flight_project", engine="runpy").path == expected
    # AGILAB's fallback: APPS_PATH/<name> when APPS_PATH/<E> does not exist
    assert Chooser(lab, environ=env).choose(code="", env="elsewhere/flight_project").path == expected
    assert runtime_candidates("elsewhere/flight_project", lab, str(apps)) == [
        apps / "elsewhere" / "flight_project",
        apps / "flight_project",
    ]
    # --apps-path wins over the variable
    other = tmp_path / "other"
    fake_python(other / "flight_project")
    chosen = Chooser(lab, InterpreterOptions(apps_path=str(other)), environ=env).choose(
        code="", env="flight_project"
    )
    assert chosen.path == str(other / "flight_project" / "bin" / "python")
    absolute = Chooser(lab, environ=env).choose(code="", env=str(other / "flight_project"))
    assert absolute.path == str(other / "flight_project" / "bin" / "python")


def test_an_e_naming_no_runtime_fails_an_agi_step_and_is_ignored_by_a_runpy_step(tmp_path: Path) -> None:
    apps = tmp_path / "apps"
    apps.mkdir()
    chooser = Chooser(tmp_path, environ={"APPS_PATH": str(apps)})
    failed = chooser.choose(code="", env="ghost", engine="agi.run")
    assert failed.problem is not None and failed.path == ""
    assert (
        f"E = 'ghost' names no runtime: no .venv/bin/python nor bin/python in {apps / 'ghost'}"
        in failed.problem
    )
    assert f"APPS_PATH {apps}" in failed.problem and "--apps-path" in failed.problem
    ignored = chooser.choose(code="", env="ghost", engine="runpy")
    assert ignored.problem is None and ignored.why == OWN
    assert (
        "E = 'ghost' names no runtime" in ignored.describe()
        and "ignored (as AGILAB does)" in ignored.describe()
    )
    # a folder that exists but holds neither .venv nor bin/python is no runtime either
    (apps / "empty").mkdir()
    assert chooser.choose(code="", env="empty", engine="agi.install").problem is not None


def test_python_option_overrides_every_step(tmp_path: Path) -> None:
    project(tmp_path)
    given = fake_python(tmp_path / "elsewhere")
    chooser = Chooser(tmp_path, InterpreterOptions(python=str(given)), environ={})
    for code, env in (("x = 1", None), ("x = 1", "whatever"), ("AGI.run(x)", None)):
        chosen = chooser.choose(code=code, env=env, engine="agi.run")
        assert (chosen.why, chosen.path) == ("--python", str(given))
    venv_dir = Chooser(tmp_path, InterpreterOptions(python=str(tmp_path / ".venv")), environ={})
    assert venv_dir.choose(code="", env=None).path == str(tmp_path / ".venv" / "bin" / "python")
    missing = Chooser(tmp_path, InterpreterOptions(python=str(tmp_path / "nope")), environ={})
    assert (
        missing.choose(code="", env=None).problem == f"--python {tmp_path / 'nope'}: not an executable file"
    )
    # a parallel stage stays on agilab-dsl's own backends
    contract = chooser.choose(code=None, env=None, contract=True)
    assert contract.own and "parallel stage" in contract.describe()


@pytest.mark.parametrize(
    ("code", "uses"),
    [
        ("from agi_cluster.agi_distributor import AGI\n", True),
        ("import agi_cluster\n", True),
        ("import os, agi_cluster.agi_distributor as d\n", True),
        ("if True:\n    from agi_cluster import AGI\n", True),
        ("res = await AGI.run(env, request=req)\n", True),
        ("AGI.install(env)\n", True),
        ("AGI.get_distrib(env)\n", True),
        ("AGI.serve(env)\n", True),
        ("import agi_clusters\nAGI.running = 1\n", False),
        ("df = df.copy()\n", False),
    ],
)
def test_what_counts_as_using_agi_cluster(code: str, uses: bool) -> None:
    assert uses_agi_cluster(code) is uses


def test_agi_cluster_code_runs_under_the_interpreter_that_has_it(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(interpreter, "own", lambda: Identity(canonical(sys.executable), sys.version, False))
    root = project(tmp_path)
    venv_python = str(root / ".venv" / "bin" / "python")
    fake_python(tmp_path / "runtime")
    asked: list[str] = []

    def has_it(path: str) -> Identity:
        asked.append(path)
        return Identity(path, sys.version, agi_cluster=path == venv_python)

    chosen = Chooser(root, environ={}, identify_fn=has_it).choose(code="AGI.run(env)", env="runtime")
    assert (chosen.why, chosen.path) == ("agi_cluster: the lab's project", venv_python) and asked == [
        venv_python
    ]

    def nobody(path: str) -> Identity:
        return Identity(path, sys.version, agi_cluster=False)

    none = Chooser(root, environ={}, identify_fn=nobody).choose(code="import agi_cluster", env=None)
    assert none.problem is not None and "no interpreter found has" in none.problem
    assert canonical(sys.executable) in none.problem and venv_python in none.problem
    assert "--agilab-python PATH" in none.problem
    given = fake_python(tmp_path / "agilab")
    options = InterpreterOptions(agilab_python=str(given))
    chosen = Chooser(root, options, environ={}, identify_fn=no_identify).choose(
        code="AGI.install(e)", env=None
    )
    assert (chosen.why, chosen.path) == ("agi_cluster: --agilab-python", str(given))


def test_agilab_runs_own_interpreter_first_when_it_has_agi_cluster(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(interpreter, "own", lambda: Identity(canonical(sys.executable), sys.version, True))
    project(tmp_path)
    chosen = Chooser(tmp_path, environ={}, identify_fn=no_identify).choose(code="AGI.run(e)", env=None)
    assert chosen.own and chosen.why == f"agi_cluster: {OWN}"


# -- identity: asked once, kept ------------------------------------------------------------------
def test_an_interpreter_is_asked_once_and_kept_until_it_changes(tmp_path: Path, monkeypatch) -> None:
    python = str(real_venv(tmp_path / "venv"))
    calls: list[str] = []
    ask = pyidentity._ask

    def counting(path: str):  # type: ignore[no-untyped-def]
        calls.append(path)
        return ask(path)

    monkeypatch.setattr(pyidentity, "_ask", counting)
    pyidentity._memo.clear()
    first = pyidentity.identify(python)
    assert first.version == sys.version and first.path == python and calls == [python]
    assert pyidentity.identify(python) == first and calls == [python]  # kept in this process
    pyidentity._memo.clear()
    assert pyidentity.identify(python) == first and calls == [python]  # kept on disk
    stored = json.loads((Path(os.environ["AGILAB_CACHE_DIR"]) / "interpreters.json").read_text())
    assert python in stored["interpreters"]
    site = next(Path(p) for p in stored["interpreters"][python]["sites"] if Path(p).is_dir())
    (site / "newly_installed").mkdir()  # a package installed: asked again
    assert pyidentity.identify(python) == first and calls == [python, python]
    broken = tmp_path / "broken" / "bin" / "python"
    broken.parent.mkdir(parents=True)
    broken.write_text("#!/bin/sh\necho nope >&2\nexit 3\n", encoding="utf-8")
    broken.chmod(0o755)
    bad = pyidentity.identify(str(broken))
    assert bad.version is None and bad.problem == f"{broken} is not a working Python (status 3: nope)"


# -- said, fingerprinted, and named on failure -----------------------------------------------------
def write_lab(folder: Path, body: str) -> Path:
    lab = folder / "lab_steps.toml"
    lab.write_text(body, encoding="utf-8")
    return lab


WHICH = '[[m]]\nid = "which"\nC = "import sys; open(outputs[0], \'w\').write(sys.executable)"\nproduces = ["which.txt"]\n'


def test_a_runpy_step_runs_in_the_lab_projects_venv_and_says_so(tmp_path: Path, capsys) -> None:
    root = tmp_path / "proj"
    root.mkdir()
    (root / "pyproject.toml").write_text('[project]\nname = "p"\nversion = "0"\n', encoding="utf-8")
    venv_python = real_venv(root / ".venv")
    lab = write_lab(root, WHICH)
    assert main([str(lab)]) == 0
    assert (root / "which.txt").read_text() == str(venv_python)  # the project's, not this tool's
    err = capsys.readouterr().err
    assert f"▶ which running: never ran — python: {venv_python} (the lab's project)" in err
    assert main(["status", str(lab), "-v"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines() == ["which  done", f"    python: {venv_python} (the lab's project {root})"]
    assert main(["status", str(lab), "-v", "--json"]) == 0
    (step,) = json.loads(capsys.readouterr().out)["steps"]
    assert step["interpreter"] == {
        "path": str(venv_python),
        "why": "the lab's project",
        "reason": f"the lab's project {root}",
        "problem": None,
    }


def test_a_step_in_another_interpreter_gets_what_every_step_gets(tmp_path: Path, capsys) -> None:
    """Settings, params, a function step, its result, its log and its timeout, in the project's venv."""
    root = project(tmp_path / "proj", venv=False)
    venv_python = real_venv(root / ".venv")
    (root / "app_settings.toml").write_text("[args]\nn = 3\n", encoding="utf-8")
    (root / "helpers.py").write_text(
        "import sys\n\ndef where(n, path):\n    open(path, 'w').write(f'{n} {sys.executable}')\n"
        "    print('from the function')\n    return n * 2\n",
        encoding="utf-8",
    )
    lab = write_lab(
        root,
        '[[m]]\nid = "call"\nfunction = "helpers.py:where"\nproduces = ["where.txt"]\n'
        'params = { n = "${settings.args.n}", path = "where.txt" }\n\n'
        '[[m]]\nid = "slow"\nC = "import time; time.sleep(30)"\ntimeout = 0.5\ndeps = ["call"]\n',
    )
    assert main([str(lab), "--json"]) == 1
    call, slow = json.loads(capsys.readouterr().out)["steps"]
    assert call["status"] == "ran" and (root / "where.txt").read_text() == f"3 {venv_python}"
    assert Path(call["log"]).read_text() == "from the function\n"
    assert slow["status"] == "failed" and slow["error"] == "timed out after 0.5 s"


def test_switching_interpreter_makes_the_step_stale_with_a_readable_reason(tmp_path: Path, capsys) -> None:
    root = tmp_path / "proj"
    root.mkdir()
    (root / "pyproject.toml").write_text('[project]\nname = "p"\nversion = "0"\n', encoding="utf-8")
    venv_python = real_venv(root / ".venv")
    lab = write_lab(root, WHICH)
    assert main([str(lab), "--json"]) == 0
    capsys.readouterr()
    own = canonical(sys.executable)
    short = sys.version.split()[0]
    assert main(["status", str(lab), "--json", "--python", sys.executable]) == 0
    (step,) = json.loads(capsys.readouterr().out)["steps"]
    assert step["state"] == "stale"
    assert step["reasons"] == [f"interpreter changed: {venv_python} ({short}) → {own} ({short})"]
    assert main([str(lab), "--json", "--python", sys.executable]) == 0
    capsys.readouterr()
    assert (root / "which.txt").read_text() == sys.executable
    assert main(["status", str(lab), "--json"]) == 0  # back to the project's: stale again
    (step,) = json.loads(capsys.readouterr().out)["steps"]
    assert step["reasons"] == [f"interpreter changed: {own} ({short}) → {venv_python} ({short})"]
    for command in (["status"], [], ["graph"]):  # a --python that is none: refused, exit 2
        assert main([*command, str(lab), "--python", str(tmp_path / "nope")]) == 2
        assert (
            capsys.readouterr().err == f"agilab-run: --python {tmp_path / 'nope'}: not an executable file\n"
        )
    assert main(["status", str(lab), "--apps-path", str(lab)]) == 2
    assert capsys.readouterr().err == f"agilab-run: --apps-path {lab}: not a folder\n"


def test_a_bare_python_name_is_looked_for_on_the_path(tmp_path: Path, capsys, monkeypatch) -> None:
    tools = tmp_path / "tools"
    fake_python(tools, where=".")
    (tools / "python").rename(tools / "mypython3")
    monkeypatch.setenv("PATH", f"{tools}{os.pathsep}{os.environ['PATH']}")
    (tmp_path / "lab").mkdir()
    lab = write_lab(tmp_path / "lab", WHICH)
    assert main(["status", str(lab), "-v", "--json", "--python", "mypython3"]) == 0
    (step,) = json.loads(capsys.readouterr().out)["steps"]
    assert (
        step["interpreter"]["path"] == str(tools / "mypython3") and step["interpreter"]["why"] == "--python"
    )


def test_the_judgment_cache_sees_a_new_project_venv(tmp_path: Path, capsys) -> None:
    """status is answered from its cache while nothing it read changed: a .venv made since is a change."""
    root = tmp_path / "proj"
    root.mkdir()
    (root / "pyproject.toml").write_text('[project]\nname = "p"\nversion = "0"\n', encoding="utf-8")
    lab = write_lab(root, WHICH)
    assert main([str(lab), "--json"]) == 0
    assert main(["status", str(lab), "--json"]) == 0
    capsys.readouterr()
    venv_python = real_venv(root / ".venv")
    assert main(["status", str(lab), "--json"]) == 0
    (step,) = json.loads(capsys.readouterr().out)["steps"]
    assert step["state"] == "stale" and f"→ {venv_python} (" in step["reasons"][0]


def test_an_agi_step_with_a_relative_e_uses_apps_path(tmp_path: Path, capsys, monkeypatch) -> None:
    apps = tmp_path / "apps"
    venv_python = real_venv(apps / "demo_project" / ".venv")
    lab = write_lab(tmp_path, WHICH + 'R = "agi.run"\nE = "demo_project"\n')
    monkeypatch.delenv("APPS_PATH", raising=False)
    assert main([str(lab), "--json"]) == 1
    (step,) = json.loads(capsys.readouterr().out)["steps"]
    assert step["error"].startswith(
        f"E = 'demo_project' names no runtime: no .venv/bin/python nor bin/python in {tmp_path / 'demo_project'}"
    )
    assert (
        "(a relative E is looked for in the lab's folder (no APPS_PATH); --apps-path DIR sets it)"
        in step["error"]
    )
    assert main([str(lab), "--json", "--apps-path", str(apps)]) == 0
    capsys.readouterr()
    assert (tmp_path / "which.txt").read_text() == str(venv_python)
    monkeypatch.setenv("APPS_PATH", str(apps))  # the variable does the same
    assert main(["status", str(lab), "-v"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "which  done",
        f"    python: {venv_python} (E = 'demo_project')",
    ]


def test_agi_cluster_code_runs_in_the_project_venv_that_has_it(tmp_path: Path, capsys) -> None:
    if pyidentity.own().agi_cluster:
        pytest.skip("this interpreter has agi_cluster: it would be chosen first")
    root = project(tmp_path / "proj", venv=False)
    venv_python = real_venv(root / ".venv")
    fake_python(tmp_path / "runtime")  # an E that the agi_cluster rule overrides, as in AGILAB
    lab = write_lab(
        root,
        '[[m]]\nid = "dist"\nR = "agi.run"\nE = "../runtime"\nproduces = ["which.txt"]\n'
        "C = \"import sys, agi_cluster; open(outputs[0], 'w').write(sys.executable)\"\n",
    )
    assert main([str(lab), "--json"]) == 1  # nobody has agi_cluster yet
    (step,) = json.loads(capsys.readouterr().out)["steps"]
    assert step["error"].startswith("the code uses agi_cluster (AGILAB's cluster package), which no")
    site = next((root / ".venv" / "lib").glob("python3*/site-packages"))
    (site / "agi_cluster").mkdir()
    (site / "agi_cluster" / "__init__.py").write_text("", encoding="utf-8")
    assert main([str(lab), "--json"]) == 0
    assert (root / "which.txt").read_text() == str(venv_python)
    assert f"python: {venv_python} (agi_cluster: the lab's project)" in capsys.readouterr().err


def test_ctrl_c_ends_steps_running_under_another_interpreter(tmp_path: Path) -> None:
    """Two slow steps at once (-j 2), each in a worker of the project's venv: Ctrl-C ends both."""
    import signal
    import time

    from conftest import interruptible_cli

    root = project(tmp_path / "proj", venv=False)
    real_venv(root / ".venv")
    slow = "import os, time; open(step_id + '.pid', 'w').write(str(os.getpid())); time.sleep(60)"
    body = "".join(f'[[m]]\nid = "{sid}"\nC = "{slow}"\n\n' for sid in ("a", "b"))
    lab = write_lab(root, body + '[[m]]\nid = "c"\nC = "pass"\ndeps = ["a", "b"]\n')
    runner = subprocess.Popen(interruptible_cli(str(lab), "-j", "2"), stderr=subprocess.PIPE, text=True)
    pids = [root / "a.pid", root / "b.pid"]
    deadline = time.monotonic() + 30
    while not all(p.is_file() and p.read_text() for p in pids):
        assert time.monotonic() < deadline and runner.poll() is None, "the steps did not start"
        time.sleep(0.05)
    started = time.monotonic()
    runner.send_signal(signal.SIGINT)
    _, err = runner.communicate(timeout=30)
    assert runner.returncode == 130 and time.monotonic() - started < 15, err
    for pid in (int(p.read_text()) for p in pids):
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_steps_under_another_interpreter_run_at_j2_and_what_follows_them_too(tmp_path: Path, capsys) -> None:
    """At -j N such steps run in threads beside the loop's own polling (dispatch.py): their ends
    wake it through a pipe."""
    root = project(tmp_path / "proj", venv=False)
    real_venv(root / ".venv")
    quick = "import sys, time; time.sleep(0.2); open(step_id + '.txt', 'w').write(sys.executable)"
    body = "".join(f'[[m]]\nid = "{sid}"\nC = "{quick}"\n\n' for sid in ("a", "b"))
    lab = write_lab(root, body + '[[m]]\nid = "c"\nC = "pass"\ndeps = ["a", "b"]\n')
    assert main([str(lab), "--json", "-j", "2"]) == 0
    steps = {s["id"]: s["status"] for s in json.loads(capsys.readouterr().out)["steps"]}
    assert steps == {"a": "ran", "b": "ran", "c": "ran"}
    assert {(root / f"{sid}.txt").read_text() for sid in ("a", "b")} == {
        str(root / ".venv" / "bin" / "python")
    }


def test_a_missing_module_names_the_interpreter_and_how_to_pick_another(tmp_path: Path, capsys) -> None:
    lab = write_lab(tmp_path, '[[m]]\nid = "uses"\nC = "import no_such_module_for_agilab"\n')
    assert main([str(lab), "--json"]) == 1
    captured = capsys.readouterr()
    (step,) = json.loads(captured.out)["steps"]
    own = canonical(sys.executable)
    assert step["error"] == (
        f"exited with status 1: no module named 'no_such_module_for_agilab' in {own} "
        "(agilab-run's own: no E, and no folder above the lab holds pyproject.toml and .venv); "
        'pick another with --python PATH, E = "<project or venv>" on the stage, or a .venv in the '
        "lab's project (a folder above the lab holding pyproject.toml)"
    )
    assert "ModuleNotFoundError: No module named 'no_such_module_for_agilab'" in captured.err  # the traceback


def test_interpreter_change_reasons() -> None:
    old = {"path": "/a/bin/python", "version": "3.12.3 (main, Apr  1 2025) [GCC 13.2.0]"}
    new = {"path": "/b/bin/python", "version": "3.13.0 (main, Oct  7 2024) [GCC 12.2.0]"}
    assert changed(old, new) == "interpreter changed: /a/bin/python (3.12.3) → /b/bin/python (3.13.0)"
    rebuilt = {"path": "/a/bin/python", "version": "3.12.3 (main, May  2 2025) [GCC 14.1.0]"}
    assert changed(old, rebuilt) == (  # only the build differs: said in full
        f"interpreter changed: /a/bin/python ({old['version']}) → /a/bin/python ({rebuilt['version']})"
    )
    assert changed(None, new) == "interpreter not recorded at its last run (now /b/bin/python (3.13.0))"
    assert changed(new, {"path": "", "problem": "E = 'x' names no runtime"}) == (
        "interpreter changed: /b/bin/python (3.13.0) → none (E = 'x' names no runtime)"
    )


def test_missing_module_reads_the_last_failed_import() -> None:
    chosen = Interpreter("/p/bin/python", "E", "= 'p'")
    log = "Traceback…\nImportError: cannot import name 'CASE_SCHEMA' from 'tescia_diagnostic' (unknown location)\n"
    assert missing_module(log, chosen).startswith(
        "cannot import name 'CASE_SCHEMA' from 'tescia_diagnostic' in /p/bin/python (E = 'p'); pick another"
    )
    assert missing_module("ValueError: no module named 'x'\n", chosen) is None


# -- a real AGILAB project: tescia_diagnostic_project in its own .venv ------------------------------
APPS = Path(__file__).resolve().parent.parent.parent / "shared" / "corpus" / "agilab-apps"
TESCIA = APPS / "tescia_diagnostic_project"
TESCIA_STEPS = ("load_exercise_cases", "evaluate_answer", "export_classroom_feedback")


def python_at_least(minimum: tuple[int, int]) -> str | None:
    """An interpreter of at least that version on this machine: ``python3.N`` on the PATH, else one
    of pyenv's versions; its real executable, or None."""
    candidates = [shutil.which(f"python3.{minor}") for minor in range(minimum[1], minimum[1] + 4)]
    versions = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv") / "versions"
    candidates += [str(p) for p in sorted(versions.glob("3.*/bin/python3"), reverse=True)]
    for candidate in filter(None, candidates):
        probe = f"import sys; print(sys.version_info[:2] >= {minimum!r}, sys.executable)"
        try:
            done = subprocess.run(
                [candidate, "-c", probe], check=False, capture_output=True, text=True, timeout=30
            )
        except (OSError, subprocess.TimeoutExpired):
            continue
        answer = done.stdout.split()
        if done.returncode == 0 and answer[:1] == ["True"]:
            return answer[1]
    return None


def project_venv(source: Path, python: str) -> Path:
    """A virtual environment with the project at ``source`` installed (``pip install``), built once and
    kept in ``~/.cache/agilab-dsl/test-venvs/`` under a hash of the project's files and the Python;
    skips the test, naming the package, when a dependency cannot be found."""
    import hashlib

    digest = hashlib.sha256(
        subprocess.run([python, "-VV"], check=False, capture_output=True, text=True).stdout.encode()
    )
    for path in sorted(p for p in source.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(source)).encode() + b"\0" + path.read_bytes())
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "agilab-dsl" / "test-venvs"
    try:
        base.mkdir(parents=True, exist_ok=True)
    except OSError:  # no writable home: kept for this machine's session only
        base = Path(tempfile.gettempdir()) / "agilab-dsl-test-venvs"
        base.mkdir(parents=True, exist_ok=True)
    final = base / f"{source.name}-{digest.hexdigest()[:16]}"
    if (final / ".complete").is_file():
        return final
    with tempfile.TemporaryDirectory(prefix=".building-", dir=base) as tmp:
        copy = Path(tmp) / source.name  # pip builds in the source folder: never in the corpus itself
        shutil.copytree(source, copy)
        venv = Path(tmp) / "venv"
        made = subprocess.run([python, "-m", "venv", str(venv)], check=False, capture_output=True, text=True)
        if made.returncode != 0:
            pytest.skip(f"{python} cannot make a virtual environment: {made.stderr.strip()[-300:]}")
        done = subprocess.run(
            [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", str(copy)],
            check=False,
            capture_output=True,
            text=True,
            timeout=1200,
        )
        if done.returncode != 0:
            said = done.stdout + done.stderr
            lacking = re.findall(
                r"(?:No matching distribution found for|satisfies the requirement) (\S+)", said
            )
            if lacking:
                pytest.skip(f"pip cannot install {source.name}: no distribution of {lacking[-1]} found")
            pytest.fail(f"pip install {source.name} failed:\n{said[-3000:]}")
        (venv / ".complete").write_text(python + "\n", encoding="utf-8")
        with contextlib.suppress(OSError):  # another session may have built it meanwhile
            venv.rename(final)
    return final


@pytest.mark.skipif(not TESCIA.is_dir(), reason=f"{TESCIA} is absent (../shared beside the repo)")
def test_tescia_runs_its_three_agi_run_stages_in_its_own_venv_with_no_e(tmp_path: Path, capsys) -> None:
    python = python_at_least((3, 13))
    if python is None:
        pytest.skip("tescia_diagnostic_project requires Python >= 3.13: none found (python3.13+, pyenv)")
    venv = project_venv(TESCIA, python)
    root = tmp_path / TESCIA.name
    shutil.copytree(TESCIA, root)
    (root / ".venv").symlink_to(venv, target_is_directory=True)
    lab = root / "lab_stages.toml"
    assert not re.search(r"(?m)^E\s*=", lab.read_text(encoding="utf-8"))  # as shipped: no E
    assert main([str(lab), "--json"]) == 0
    captured = capsys.readouterr()
    assert [(s["id"], s["status"]) for s in json.loads(captured.out)["steps"]] == [
        (sid, "ran") for sid in TESCIA_STEPS
    ]
    python_line = f"python: {root / '.venv' / 'bin' / 'python'} (the lab's project)"
    assert [line.split()[1] for line in captured.err.splitlines() if line.endswith(python_line)] == list(
        TESCIA_STEPS
    )
    reports = root / "tescia_diagnostic" / "reports"
    summary = json.loads((reports / "diagnostic_reports.json").read_text(encoding="utf-8"))
    assert summary["schema"] == "agilab.tescia_diagnostic.reports.v1" and summary["reports"]
    assert (reports / "correction_sheets" / "correction_sheets_index.md").is_file()
    assert main(["status", str(lab), "--json"]) == 0
    assert {s["state"] for s in json.loads(capsys.readouterr().out)["steps"]} == {"fresh"}
    settings = root / "src" / "app_settings.toml"
    settings.write_text(
        settings.read_text(encoding="utf-8").replace("ai_case_count = 2", "ai_case_count = 3"),
        encoding="utf-8",
    )
    assert main(["status", str(lab), "--json"]) == 0
    steps = json.loads(capsys.readouterr().out)["steps"]
    assert [s["state"] for s in steps] == ["stale"] * 3  # agi.run stages depend on [args]
    assert "settings args.ai_case_count changed: 2 → 3" in steps[0]["reasons"], steps[0]["reasons"]
    assert main([str(lab), "--json"]) == 0
    assert [s["status"] for s in json.loads(capsys.readouterr().out)["steps"]] == ["ran"] * 3
