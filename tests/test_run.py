"""Running labs: explained staleness, isolation of failing steps, state, selection, the CLI surface."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agilab_dsl.cli import main

LAB = '''[__meta__]
schema = "agilab.lab_stages.v1"
version = 1

[[demo]]
id = "load"
D = "Load"
Q = "Load the data"
M = "model"
C = """
# read the input and copy it
from pathlib import Path
Path(outputs[0]).write_text(Path(inputs[0]).read_text().upper())
"""
consumes = ["data/a.csv"]
produces = ["work/loaded.csv"]
settings = ["args.n"]

[[demo]]
id = "count"
function = "helpers.py:count"
params = { path = "${steps.load.outputs[0]}", out = "work/count.txt", scale = 2 }
depends_on = ["load"]
produces = ["work/count.txt"]

[[demo]]
id = "side"
C = "open(outputs[0], 'w').write(str(settings['args']['n']))"
produces = ["work/side.txt"]
'''

HELPERS = '''
def count(path, out, scale):
    """Count lines."""
    with open(path) as fh:
        n = sum(1 for _ in fh) * scale
    with open(out, "w") as fh:
        fh.write(str(n))
    return {"lines": n}


def unrelated():
    return 1
'''


@pytest.fixture
def lab(tmp_path: Path) -> Path:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a.csv").write_text("x\n1\n2\n", encoding="utf-8")
    (tmp_path / "helpers.py").write_text(HELPERS, encoding="utf-8")
    (tmp_path / "app_settings.toml").write_text("[args]\nn = 3\nother = 1\n", encoding="utf-8")
    path = tmp_path / "lab_stages.toml"
    path.write_text(LAB, encoding="utf-8")
    return path


def run_json(path: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, dict]:
    code = main([str(path), "--json", *extra])
    out = capsys.readouterr().out
    return code, json.loads(out)


def statuses(path: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, tuple[str, list[str]]]:
    assert main(["status", str(path), "--json"]) == 0
    return {s["id"]: (s["state"], s["reasons"]) for s in json.loads(capsys.readouterr().out)["steps"]}


def ran(payload: dict) -> list[str]:
    return [s["id"] for s in payload["steps"] if s["status"] == "ran"]


def test_first_run_runs_everything_then_nothing(lab: Path, capsys) -> None:
    assert statuses(lab, capsys) == {
        "load": ("never-ran", ["never ran"]),
        "count": ("never-ran", ["never ran"]),
        "side": ("never-ran", ["never ran"]),
    }
    code, payload = run_json(lab, capsys)
    assert code == 0 and ran(payload) == ["load", "count", "side"]
    assert set(payload) == {"run_id", "steps"}
    assert (lab.parent / "work" / "count.txt").read_text() == "6"
    code, payload = run_json(lab, capsys)
    assert code == 0 and ran(payload) == []
    assert [s["status"] for s in payload["steps"]] == ["fresh", "fresh", "fresh"]


# ---- each reason type: exactly that change gives exactly that reason -----------------------------


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, old
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            "settings",
            {"load": ["settings args.n changed: 3 → 4"], "count": ["upstream load will run"], "side": []},
        ),
        ("input", {"load": ["input data/a.csv changed"], "count": ["upstream load will run"]}),
        ("code", {"load": ["code changed"], "count": ["upstream load will run"]}),
        ("function", {"count": ["function changed"]}),
        ("param", {"count": ["param scale changed: 2 → 3"]}),
        ("engine", {"side": ['engine changed: "" → "runpy"']}),
        ("mode", {"side": ["mode changed: unset → 5 (pool | dask)"]}),
        ("output-missing", {"count": ["output work/count.txt missing"]}),
        ("output-changed", {"side": ["output work/side.txt changed since it was written"]}),
        ("input-missing", {"load": ["input data/a.csv missing"], "count": ["upstream load will run"]}),
    ],
)
def test_each_change_gives_exactly_its_reason(lab: Path, capsys, change: str, expected: dict) -> None:
    run_json(lab, capsys)
    folder = lab.parent
    if change == "settings":
        _edit(folder / "app_settings.toml", "n = 3", "n = 4")
    elif change == "input":
        (folder / "data" / "a.csv").write_text("x\n1\n2\n3\n", encoding="utf-8")
    elif change == "code":
        _edit(lab, ".upper()", ".lower()")
    elif change == "function":
        _edit(folder / "helpers.py", "* scale", "* scale + 1")
    elif change == "param":
        _edit(lab, "scale = 2", "scale = 3")
    elif change == "engine":
        _edit(lab, 'produces = ["work/side.txt"]', 'produces = ["work/side.txt"]\nR = "runpy"')
    elif change == "mode":
        _edit(lab, 'produces = ["work/side.txt"]', 'produces = ["work/side.txt"]\nmode = "pool | dask"')
    elif change == "output-missing":
        (folder / "work" / "count.txt").unlink()
    elif change == "output-changed":
        (folder / "work" / "side.txt").write_text("tampered", encoding="utf-8")
    elif change == "input-missing":
        (folder / "data" / "a.csv").unlink()
    got = statuses(lab, capsys)
    for sid in ("load", "count", "side"):
        want = expected.get(sid, [])
        assert got[sid][1] == want, (sid, got[sid])
        assert got[sid][0] == ("stale" if want else "fresh")
    if change != "input-missing":  # the run re-runs exactly the stale steps
        code, payload = run_json(lab, capsys)
        assert code == 0
        assert ran(payload) == [s for s in ("load", "count", "side") if expected.get(s)]


def test_upstream_that_ran_is_named_in_the_run(lab: Path, capsys) -> None:
    run_json(lab, capsys)
    _edit(lab, ".upper()", ".lower()")
    _, payload = run_json(lab, capsys)
    reasons = {s["id"]: s["reasons"] for s in payload["steps"]}
    assert reasons["count"] == ["upstream load ran"]


# ---- what must NOT make a step stale ---------------------------------------------------------------


@pytest.mark.parametrize(
    "edit",
    [
        ('D = "Load"', 'D = "Load it all"'),
        ('Q = "Load the data"', 'Q = "Another question"'),
        ('M = "model"', 'M = "another-model"'),
        ("# read the input and copy it", "# a different comment"),
        ("from pathlib import Path\n", "from pathlib import Path\n\n\n"),
        (
            "Path(outputs[0]).write_text(Path(inputs[0]).read_text().upper())",
            "Path( outputs[0] ).write_text( Path(inputs[0]).read_text( ).upper() )",
        ),
        ("open(outputs[0], 'w')", 'open(outputs[0], \\"w\\")'),
        ('[[demo]]\nid = "side"', '# a TOML comment\n[[demo]]\nid = "side"'),
        (
            "C = \"open(outputs[0], 'w').write(str(settings['args']['n']))\"\nproduces = [\"work/side.txt\"]",
            "produces = [\"work/side.txt\"]\nC = \"open(outputs[0], 'w').write(str(settings['args']['n']))\"",
        ),
        ('id = "count"', 'id = "count"\nNB_CELL_ID = "cell-9"'),
    ],
)
def test_cosmetic_edits_leave_every_step_fresh(lab: Path, capsys, edit: tuple[str, str]) -> None:
    run_json(lab, capsys)
    _edit(lab, *edit)
    assert {sid: state for sid, (state, _) in statuses(lab, capsys).items()} == {
        "load": "fresh",
        "count": "fresh",
        "side": "fresh",
    }


def test_docstrings_and_other_functions_do_not_count(lab: Path, capsys) -> None:
    run_json(lab, capsys)
    _edit(lab.parent / "helpers.py", '"""Count lines."""', '"""Count the lines, a new docstring."""')
    _edit(lab.parent / "helpers.py", "return 1", "return 2")
    assert all(state == "fresh" for state, _ in statuses(lab, capsys).values())


def test_a_settings_key_no_step_uses_changes_nothing(lab: Path, capsys) -> None:
    run_json(lab, capsys)
    _edit(lab.parent / "app_settings.toml", "other = 1", "other = 2")
    assert all(state == "fresh" for state, _ in statuses(lab, capsys).values())


# ---- failures ----------------------------------------------------------------------------------------

FAILING = '''[[m]]
id = "a"
C = "open(outputs[0], 'w').write('a')"
produces = ["a.txt"]

[[m]]
id = "bad"
C = """{code}"""
deps = ["a"]
produces = ["bad.txt"]

[[m]]
id = "after"
C = "open(outputs[0], 'w').write('x')"
deps = ["bad"]
produces = ["after.txt"]

[[m]]
id = "free"
C = "open(outputs[0], 'w').write('f')"
deps = ["a"]
produces = ["free.txt"]
'''


@pytest.mark.parametrize(
    ("code", "error"),
    [
        ("raise ValueError('boom')", "exited with status 1"),
        ("import sys; sys.exit(7)", "exited with status 7"),
        ("import os, signal; os.kill(os.getpid(), signal.SIGSEGV)", "crashed: killed by signal 11 (SIGSEGV)"),
        ("import os; os._exit(3)", "exited with status 3"),
        ("x = 1", "declared output bad.txt was not written"),
    ],
)
def test_a_failing_step_is_isolated_and_blocks_only_its_dependents(
    tmp_path: Path, capsys, code: str, error: str
) -> None:
    lab = tmp_path / "lab_steps.toml"
    lab.write_text(FAILING.format(code=code), encoding="utf-8")
    status = main([str(lab), "--json", "--keep-going"])
    captured = capsys.readouterr()
    payload = json.loads(captured.out)
    assert status == 1
    got = {s["id"]: s for s in payload["steps"]}
    assert got["bad"]["status"] == "failed" and got["bad"]["error"] == error
    assert got["after"]["status"] == "blocked" and got["after"]["reasons"] == ["upstream bad failed"]
    assert got["free"]["status"] == "ran" and got["a"]["status"] == "ran"
    assert "resume with: agilab-run" in captured.err and "--from bad" in captured.err
    if "ValueError" in code:
        assert "│ ValueError: boom" in captured.err  # its own traceback, under its id
    # the state survived; the next run re-runs only the failed step and what it blocked
    lab.write_text(FAILING.format(code="open(outputs[0], 'w').write('ok')"), encoding="utf-8")
    status = main([str(lab), "--json"])
    payload = json.loads(capsys.readouterr().out)
    assert status == 0
    assert ran(payload) == ["bad", "after"]


def test_logs_keep_what_a_step_printed_even_when_it_crashed(tmp_path: Path, capsys) -> None:
    lab = tmp_path / "lab_steps.toml"
    crash = "print('about to crash', flush=True); import os, signal; os.kill(os.getpid(), signal.SIGSEGV)"
    lab.write_text(FAILING.format(code=crash), encoding="utf-8")
    assert main([str(lab), "--json", "--keep-going"]) == 1
    captured = capsys.readouterr()
    got = {s["id"]: s for s in json.loads(captured.out)["steps"]}
    assert Path(got["bad"]["log"]).read_text() == "about to crash\n"
    assert "│ about to crash" in captured.err
    assert "log" not in got["free"]  # a step that printed nothing leaves no log file
    assert sorted(p.name for p in Path(got["bad"]["log"]).parent.iterdir()) == ["bad.log", "events.jsonl"]


def test_steps_sharing_one_code_text_each_name_themselves_in_tracebacks(tmp_path: Path, capsys) -> None:
    # the worker compiles a text once and renames it per step: nested functions included
    code = "def inner():\n    raise ValueError(step_id)\ninner()"
    lab = tmp_path / "lab_steps.toml"
    lab.write_text(
        '[[m]]\nid = "a"\nC = "pass"\n\n'
        + "".join(f'[[m]]\nid = "{sid}"\nC = {json.dumps(code)}\ndeps = ["a"]\n\n' for sid in ("one", "two")),
        encoding="utf-8",
    )
    assert main([str(lab), "--json", "--keep-going"]) == 1
    got = {s["id"]: s for s in json.loads(capsys.readouterr().out)["steps"]}
    for sid in ("one", "two"):
        log = Path(got[sid]["log"]).read_text()
        assert f'File "<step {sid}>", line 3, in <module>' in log
        assert f'File "<step {sid}>", line 2, in inner' in log
        assert f"ValueError: {sid}" in log


def test_without_keep_going_independent_steps_stop(tmp_path: Path, capsys) -> None:
    lab = tmp_path / "lab_steps.toml"
    lab.write_text(FAILING.format(code="raise ValueError('boom')"), encoding="utf-8")
    assert main([str(lab), "--json"]) == 1
    got = {s["id"]: s["status"] for s in json.loads(capsys.readouterr().out)["steps"]}
    assert got["bad"] == "failed" and got["after"] == "blocked"
    assert got["free"] in ("blocked", "ran")  # "free" may already have started beside "bad"


def test_timeout_and_retries(tmp_path: Path, capsys) -> None:
    lab = tmp_path / "lab_steps.toml"
    counter = tmp_path / "tries.txt"
    lab.write_text(
        '[[a]]\nid = "slow"\nC = "import time; time.sleep(30)"\ntimeout = 0.5\n\n'
        f'[[b]]\nid = "flaky"\nretries = 2\nC = """\nfrom pathlib import Path\np = Path({str(counter)!r})\n'
        "n = int(p.read_text()) + 1 if p.exists() else 1\np.write_text(str(n))\n"
        'if n < 3:\n    raise RuntimeError(f"try {n}")\n"""\n',
        encoding="utf-8",
    )
    start = time.monotonic()
    assert main([str(lab), "--json", "--keep-going"]) == 1
    assert time.monotonic() - start < 10
    got = {s["id"]: s for s in json.loads(capsys.readouterr().out)["steps"]}
    assert got["slow"]["error"] == "timed out after 0.5 s"
    assert got["flaky"]["status"] == "ran" and counter.read_text() == "3"


def test_when_false_skips_and_disabled_steps_are_disabled(tmp_path: Path, capsys) -> None:
    (tmp_path / "app_settings.toml").write_text("[args]\nmode = 'fast'\n", encoding="utf-8")
    lab = tmp_path / "lab_steps.toml"
    lab.write_text(
        '[[m]]\nid = "cond"\nC = "x = 1"\nwhen = "settings.args.mode == \'slow\'"\n\n'
        '[[m]]\nid = "off"\nC = "x = 1"\nenabled = false\n\n[[m]]\nid = "skipped"\nC = "x = 1"\nskip = true\n',
        encoding="utf-8",
    )
    assert main([str(lab), "--json"]) == 0
    got = {s["id"]: (s["status"], s["reasons"]) for s in json.loads(capsys.readouterr().out)["steps"]}
    assert got == {
        "cond": ("skipped", ["when: settings.args.mode == 'slow' is false"]),
        "off": ("disabled", ["enabled = false"]),
        "skipped": ("disabled", ["skip = true"]),
    }
    assert main(["status", str(lab), "--json"]) == 0
    states = {s["id"]: s["state"] for s in json.loads(capsys.readouterr().out)["steps"]}
    assert states["off"] == "disabled" and states["skipped"] == "disabled"


def test_only_from_and_force(lab: Path, capsys) -> None:
    _, payload = run_json(lab, capsys, "--only", "side")
    assert ran(payload) == ["side"] and [s["id"] for s in payload["steps"]] == ["side"]
    _, payload = run_json(lab, capsys, "--from", "load")
    assert ran(payload) == ["load", "count"]
    _, payload = run_json(lab, capsys, "--force", "--only", "count")
    assert ran(payload) == ["count"] and payload["steps"][0]["reasons"] == ["forced (--force)"]
    assert main([str(lab), "--only", "nope"]) == 2
    assert "no step 'nope'" in capsys.readouterr().err


def test_dry_run_runs_nothing(lab: Path, capsys) -> None:
    assert main([str(lab), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "load" in out and "never ran" in out
    assert not (lab.parent / "work").exists()


def test_agi_engine_without_runtime_runs_in_own_interpreter_saying_so(tmp_path: Path, capsys) -> None:
    """As AGILAB's python_for_stage: no runtime anywhere → the controller's (here: this tool's) Python."""
    lab = tmp_path / "lab_steps.toml"
    lab.write_text('[[m]]\nC = "x = 1"\nR = "agi.run"\n', encoding="utf-8")
    assert main([str(lab), "--json"]) == 0
    captured = capsys.readouterr()
    assert [s["status"] for s in json.loads(captured.out)["steps"]] == ["ran"]
    assert "python: " in captured.err and "(agilab-run's own)" in captured.err


def test_agi_engine_runs_under_e_interpreter(tmp_path: Path, capsys) -> None:
    runtime = tmp_path / "runtime"
    (runtime / "bin").mkdir(parents=True)
    (runtime / "bin" / "python").symlink_to(sys.executable)
    lab = tmp_path / "lab_steps.toml"
    lab.write_text(
        '[[m]]\nC = "import sys; open(outputs[0], \'w\').write(sys.executable)"\nR = "agi.run"\n'
        'E = "runtime"\nproduces = ["which.txt"]\n',
        encoding="utf-8",
    )
    assert main([str(lab), "--json"]) == 0
    assert (tmp_path / "which.txt").read_text().endswith(os.path.join("runtime", "bin", "python"))


def test_invalid_lab_exits_2_with_located_errors(tmp_path: Path, capsys) -> None:
    lab = tmp_path / "lab_steps.toml"
    lab.write_text('[[m]]\nid = "a"\nC = "1"\ndeps = ["b"]\n', encoding="utf-8")
    assert main([str(lab)]) == 2
    assert "lab_steps.toml:4:9: error[dependency-missing]" in capsys.readouterr().err


def test_state_survives_a_corrupt_file(lab: Path, capsys) -> None:
    run_json(lab, capsys)
    (lab.parent / ".agilab" / "state.json").write_text("{broken", encoding="utf-8")
    (lab.parent / ".agilab" / "journal.jsonl").unlink(missing_ok=True)  # the records of the last run
    assert main([str(lab), "--json"]) == 0
    captured = capsys.readouterr()
    assert ran(json.loads(captured.out)) == ["load", "count", "side"]
    assert "state.json could not be read" in captured.err


def test_graph_formats_colour_by_state(lab: Path, capsys) -> None:
    run_json(lab, capsys, "--only", "side")
    assert main(["graph", str(lab)]) == 0
    mermaid = capsys.readouterr().out
    assert mermaid.startswith("flowchart LR") and "s0 --> s1" in mermaid  # load feeds count
    assert 'load<br/><small>ready (never-ran)</small>"]:::ready' in mermaid  # AGILAB's words, ours beside
    assert 'count<br/><small>stale (never-ran)</small>"]:::stale' in mermaid  # after load, which never ran
    assert 'side<br/><small>done</small>"]:::done' in mermaid
    assert "classDef ready fill:#dcfce7" in mermaid and "classDef done fill:#e0f2fe" in mermaid
    assert main(["graph", str(lab), "--format", "dot"]) == 0
    dot = capsys.readouterr().out
    assert dot.startswith("digraph lab {") and "s0 -> s1" in dot
    assert 'fillcolor="#dcfce7"' in dot and 'fillcolor="#e0f2fe"' in dot  # AGILAB's ready and done


def test_second_runner_waits_for_the_lock(lab: Path) -> None:
    lab.write_text(
        LAB.replace(
            '[[demo]]\nid = "side"\nC = "', '[[demo]]\nid = "side"\nC = "import time; time.sleep(1.5); '
        ),
        encoding="utf-8",
    )
    cmd = [sys.executable, "-m", "agilab_dsl", str(lab)]
    first = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    time.sleep(0.8)
    second = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    assert first.wait(timeout=60) == 0 and second.returncode == 0
    assert "waiting for the lab's lock, held by agilab-run pid" in second.stderr
    assert "3 fresh" in second.stderr  # it saw the first runner's completed state


def test_jobs_run_independent_steps_concurrently(tmp_path: Path, capsys) -> None:
    lab = tmp_path / "lab_steps.toml"
    # deps make the structure explicit (a file with no deps at all runs in sequence order)
    body = '[[m]]\nid = "root"\nC = "x = 1"\n\n' + "".join(
        f'[[m]]\nid = "s{i}"\nC = "import time; time.sleep(0.6)"\ndeps = ["root"]\n\n' for i in range(4)
    )
    lab.write_text(body, encoding="utf-8")
    start = time.monotonic()
    assert main([str(lab), "-j", "4"]) == 0
    assert time.monotonic() - start < 2.0  # four 0.6 s steps at once, not 2.4 s in a row
    capsys.readouterr()


@pytest.mark.parametrize("example", ["plain_lab/lab_stages.toml", "telemetry/lab_stages.toml"])
def test_examples_run_end_to_end(tmp_path: Path, capsys, example: str) -> None:
    import shutil

    from conftest import ROOT

    folder = tmp_path / "ex"
    generated = shutil.ignore_patterns(".agilab", "artifacts", "data", "total.txt", "*.out")
    shutil.copytree(ROOT / "examples" / Path(example).parent, folder, ignore=generated)
    lab = folder / Path(example).name
    code, payload = run_json(lab, capsys)
    assert code == 0 and all(s["status"] == "ran" for s in payload["steps"])
    code, payload = run_json(lab, capsys)
    assert code == 0 and ran(payload) == []
    if "plain" in example:
        assert (folder / "total.txt").read_text() == "55\n"
    else:
        assert "samples" in (folder / "artifacts" / "report.txt").read_text()
        stats = (folder / "artifacts" / "altitude_stats.csv").read_text().splitlines()
        assert stats[0] == "aircraft,samples,mean_altitude_m"  # one header over every chunk's rows
        assert {line.split(",")[0] for line in stats[1:]} == {"AC00", "AC01", "AC02"}
        assert sum(int(line.split(",")[1]) for line in stats[1:]) == 1200  # every sample, once


def test_a_parallel_step_failure_names_the_partition(tmp_path: Path, capsys) -> None:
    (tmp_path / "data").mkdir()
    for n in range(3):
        (tmp_path / "data" / f"{n}.txt").write_text(f"line {n}\n", encoding="utf-8")
    (tmp_path / "f.py").write_text(
        "def work(part):\n    if part.path.endswith('1.txt'):\n        raise KeyError('bad key')\n    return 1\n",
        encoding="utf-8",
    )
    (tmp_path / "parallel_stage.toml").write_text(
        'schema = "agilab.parallel_stage.v1"\nname = "p"\nfunction = "f.py:work"\nsplit = "files"\n'
        'input = "data/*.txt"\nworkers = 2\npartition_strategy = "one-file-per-partition"\n'
        'target_partitions = 0\nmin_partitions_per_worker = 1\nreducer = "collect-json"\n'
        'backend = "local"\noutput = "out.json"\n',
        encoding="utf-8",
    )
    lab = tmp_path / "lab_steps.toml"
    lab.write_text(
        '[[m]]\nid = "par"\nstage = "parallel_stage.toml"\nproduces = ["out.json"]\n', encoding="utf-8"
    )
    assert main([str(lab), "--json"]) == 1
    captured = capsys.readouterr()
    assert json.loads(captured.out)["steps"][0]["status"] == "failed"
    assert (
        "partition 1 (" in captured.err and "1.txt" in captured.err and "KeyError: 'bad key'" in captured.err
    )
    assert not (tmp_path / "out.json").exists()


def _processes_with(marker: str) -> list[int]:
    """Processes whose environment holds ``marker`` (descendants inherit it, whatever their session)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if marker.encode() in (entry / "environ").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs /proc to find processes")
def test_a_run_with_a_pool_stage_leaves_no_process_behind(tmp_path: Path) -> None:
    import shutil
    import uuid

    from conftest import ROOT

    folder = tmp_path / "ex"
    shutil.copytree(
        ROOT / "examples" / "telemetry", folder, ignore=shutil.ignore_patterns(".agilab", "artifacts", "data")
    )
    marker = f"AGILAB_TEST_RUN={uuid.uuid4().hex}"
    env = {**os.environ, marker.split("=")[0]: marker.split("=")[1]}
    proc = subprocess.run(
        [sys.executable, "-m", "agilab_dsl", str(folder / "lab_stages.toml")],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0 and "on pool" in proc.stderr, proc.stderr
    deadline = time.monotonic() + 10  # the history flusher may take a moment to finish
    while (left := _processes_with(marker)) and time.monotonic() < deadline:
        time.sleep(0.1)
    commands = [Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")[:120] for pid in left]
    assert left == [], commands  # no loky worker or resource tracker idles on, orphaned
