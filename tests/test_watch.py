"""Watch mode. Unit tests feed scripted change batches (no sleeping, no watcher); integration tests
use real files, the real watchfiles watcher and real signals."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from conftest import interruptible_cli

from agilab_dsl.cli.cmd_watch import run_watch
from agilab_dsl.cli.common import lab_request
from agilab_dsl.cli.parser import build_run_parser
from agilab_dsl.execute.watch import Scope, is_noise

LAB = '''[[w]]
id = "load"
C = """
from pathlib import Path
Path(outputs[0]).write_text(Path(inputs[0]).read_text().upper())
"""
consumes = ["data/a.csv"]
produces = ["out/loaded.csv"]

[[w]]
id = "count"
function = "helpers.py:count"
params = { path = "${steps.load.outputs[0]}", out = "out/count.txt" }
depends_on = ["load"]
produces = ["out/count.txt"]

[[w]]
id = "scaled"
C = "open(outputs[0], 'w').write(str(settings['args']['n'] * 2))"
settings = ["args.n"]
produces = ["out/scaled.txt"]

[[w]]
id = "par"
stage = "parallel_stage.toml"
produces = ["out/par.json"]
'''

HELPERS = """
def count(path, out):
    n = len(open(path).read().splitlines())
    open(out, "w").write(str(n))
    return {"lines": n}
"""

CONTRACT = """schema = "agilab.parallel_stage.v1"
name = "par"
function = "helpers.py:size"
split = "files"
input = "parts/*.txt"
workers = 1
partition_strategy = "one-file-per-partition"
target_partitions = 0
min_partitions_per_worker = 1
reducer = "collect-json"
backend = "local"
output = "out/par.json"
"""


def make_lab(folder: Path) -> Path:
    (folder / "data").mkdir()
    (folder / "parts").mkdir()
    (folder / "data" / "a.csv").write_text("x\n1\n2\n", encoding="utf-8")
    (folder / "parts" / "p0.txt").write_text("zero\n", encoding="utf-8")
    (folder / "helpers.py").write_text(
        HELPERS + "\ndef size(part):\n    return len(part.read_text())\n", encoding="utf-8"
    )
    (folder / "parallel_stage.toml").write_text(CONTRACT, encoding="utf-8")
    (folder / "app_settings.toml").write_text("[args]\nn = 3\nunused = 1\n", encoding="utf-8")
    path = folder / "lab_steps.toml"
    path.write_text(LAB, encoding="utf-8")
    return path


def scripted(*edits: Callable[[], list[Path]]) -> Callable[[list[str]], Iterator[set[str]]]:
    """A change source: each edit is made when the watcher asks for the next batch (that is, after
    the previous run ended), and the paths it touched are the batch."""

    def source(roots: list[str]) -> Iterator[set[str]]:
        for edit in edits:
            yield {str(p) for p in edit()}

    return source


def edit(path: Path, old: str, new: str) -> Callable[[], list[Path]]:
    def do() -> list[Path]:
        text = path.read_text(encoding="utf-8")
        assert old in text, old
        path.write_text(text.replace(old, new, 1), encoding="utf-8")
        return [path]

    return do


def watch(path: Path, source: Callable[[list[str]], Iterator[set[str]]], capsys) -> list[list[str]]:
    """Run the watch loop over ``source``; the steps that ran, per run (the first run first)."""
    args = build_run_parser().parse_args([str(path), "--watch"])
    assert run_watch(args, lab_request(args), source) == 0
    err = capsys.readouterr().err
    runs = re.split(r"^(?:⟳ .*|watching .*)$", err, flags=re.M)
    return [
        re.findall(r"^▶ (\S+)", chunk, flags=re.M) for chunk in runs if "done:" in chunk or "error" in chunk
    ]


def test_editing_a_step_runs_it_and_its_dependents_only(tmp_path: Path, capsys) -> None:
    path = make_lab(tmp_path)
    code_edit = edit(path, "read_text().upper()", "read_text().lower()")
    runs = watch(path, scripted(code_edit), capsys)
    assert sorted(runs[0]) == ["count", "load", "par", "scaled"]
    assert runs[1] == ["load", "count"]


def test_a_settings_key_runs_the_step_that_uses_it(tmp_path: Path, capsys) -> None:
    path = make_lab(tmp_path)
    settings = tmp_path / "app_settings.toml"
    runs = watch(
        path, scripted(edit(settings, "n = 3", "n = 4"), edit(settings, "unused = 1", "unused = 2")), capsys
    )
    assert runs[1:] == [["scaled"], []]
    assert (tmp_path / "out" / "scaled.txt").read_text() == "8"


def test_a_comment_runs_nothing(tmp_path: Path, capsys) -> None:
    path = make_lab(tmp_path)
    helpers = tmp_path / "helpers.py"
    runs = watch(
        path,
        scripted(
            edit(path, '[[w]]\nid = "scaled"', '# a comment\n[[w]]\nid = "scaled"'),
            edit(helpers, "def count", "# why\ndef count"),
        ),
        capsys,
    )
    assert runs[1:] == [[], []]


def test_a_new_file_under_the_contract_glob_reruns_that_stage(tmp_path: Path, capsys) -> None:
    path = make_lab(tmp_path)

    def add() -> list[Path]:
        new = tmp_path / "parts" / "p1.txt"
        new.write_text("one more\n", encoding="utf-8")
        return [new]

    runs = watch(path, scripted(add), capsys)
    assert runs[1] == ["par"]
    assert (tmp_path / "out" / "par.json").read_text().count(",") == 1  # two partitions


def test_ten_broken_saves_then_a_good_one(tmp_path: Path, capsys) -> None:
    path = make_lab(tmp_path)
    good = path.read_text(encoding="utf-8")
    broken = [edit(path, 'id = "scaled"', 'id = "scaled') if n == 0 else (lambda: [path]) for n in range(10)]

    def fixed() -> list[Path]:
        path.write_text(good.replace("n'] * 2", "n'] * 3"), encoding="utf-8")
        return [path]

    args = build_run_parser().parse_args([str(path), "--watch"])
    assert run_watch(args, lab_request(args), scripted(*broken, fixed)) == 0
    err = capsys.readouterr().err
    assert err.count("error[toml-syntax]") == 10 and err.count("the lab is invalid: still watching") == 10
    assert err.count("lab_steps.toml:") >= 10  # each error located
    last = err.rsplit("⟳", 1)[1]
    assert re.findall(r"^▶ (\S+)", last, flags=re.M) == ["scaled"]


def test_outputs_state_and_editor_files_never_trigger(tmp_path: Path) -> None:
    lab_dir = str(tmp_path)
    (tmp_path / "kept.txt").write_text("x")
    scope = Scope(lab_dir, [lab_dir], {str(tmp_path / "out" / "a.csv")}, {str(tmp_path / "gone.csv")})
    assert not scope.relevant(str(tmp_path / "out" / "a.csv"))
    assert not scope.relevant(str(tmp_path / ".agilab" / "state.json"))
    for name in (".lab_steps.toml.swp", "lab_steps.toml~", ".#lab_steps.toml", "4913", ".out.csv.123.tmp"):
        assert is_noise(str(tmp_path / name)), name
    assert not scope.relevant(str(tmp_path / "sedAb12Cd"))  # came and went
    assert scope.relevant(str(tmp_path / "gone.csv"))  # a known file removed: that counts
    assert scope.relevant(str(tmp_path / "kept.txt"))


# -- real files, the real watcher, real signals --------------------------------------------------
def start_watching(path: Path) -> tuple[subprocess.Popen[bytes], Path]:
    log = path.parent / "watch.log"
    proc = subprocess.Popen(
        interruptible_cli(str(path), "--watch"),
        stdout=subprocess.DEVNULL,
        stderr=log.open("wb"),
        start_new_session=True,
    )
    wait_for(log, "watching")
    return proc, log


def wait_for(log: Path, text: str, count: int = 1, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while True:
        content = log.read_text(encoding="utf-8", errors="replace") if log.exists() else ""
        if content.count(text) >= count:
            return content
        assert time.monotonic() < deadline, f"{text!r} ×{count} never appeared:\n{content}"
        time.sleep(0.05)


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGINT) -> int:
    os.killpg(proc.pid, sig) if sig == signal.SIGINT else proc.send_signal(sig)
    try:
        return proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)


def test_real_watcher_runs_the_affected_steps_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    path = make_lab(tmp_path)
    proc, log = start_watching(path)
    try:
        (tmp_path / "data" / "a.csv").write_text("x\n1\n2\n3\n", encoding="utf-8")
        text = wait_for(log, "done:", 2)
        assert re.findall(r"^▶ (\S+)", text.split("⟳", 1)[1], flags=re.M) == ["load", "count"]
        assert "⟳ data/a.csv changed" in text
        assert (tmp_path / "out" / "count.txt").read_text() == "4"
    finally:
        code = stop(proc)
    assert code == 0 and "watch: stopped" in log.read_text()
    assert log.read_text().count("done:") == 2  # its own outputs never triggered it


SLOW = """[[w]]
id = "slow"
C = "import time; open({marker!r}, 'w').close(); time.sleep({sleep}); open(outputs[0], 'w').write(open(inputs[0]).read())"
consumes = ["a.txt"]
produces = ["slow.txt"]

[[w]]
id = "quick"
C = "open(outputs[0], 'w').write(open(inputs[0]).read())"
consumes = ["b.txt"]
produces = ["quick.txt"]
"""


def watching_a_slow_step(tmp_path: Path, sleep: float) -> tuple[subprocess.Popen[bytes], Path]:
    """A watcher whose `slow` step has just started a run that lasts ``sleep`` seconds. The step's
    start marker is written outside the lab's folder, so the watcher never sees it."""
    (tmp_path / "a.txt").write_text("a", encoding="utf-8")
    (tmp_path / "b.txt").write_text("b", encoding="utf-8")
    marker = tmp_path.parent / f"{tmp_path.name}-slow-started"
    path = tmp_path / "lab_steps.toml"
    path.write_text(SLOW.format(sleep=0, marker=str(marker)), encoding="utf-8")
    proc, log = start_watching(path)
    marker.unlink()
    path.write_text(SLOW.format(sleep=sleep, marker=str(marker)), encoding="utf-8")  # slow runs for `sleep` s
    deadline = time.monotonic() + 30
    while not marker.exists():
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.02)
    return proc, log


def test_a_change_during_a_run_is_run_after_it(tmp_path: Path) -> None:
    proc, log = watching_a_slow_step(tmp_path, 2)
    try:
        (tmp_path / "b.txt").write_text("b2", encoding="utf-8")  # during that run
        text = wait_for(log, "done:", 3)
        last = text.rsplit("⟳", 1)[1]
        assert "b.txt changed" in last and re.findall(r"^▶ (\S+)", last, flags=re.M) == ["quick"]
        assert (tmp_path / "quick.txt").read_text() == "b2"
    finally:
        stop(proc)


def test_sigterm_ends_the_running_step_and_the_watcher(tmp_path: Path) -> None:
    proc, log = watching_a_slow_step(tmp_path, 60)
    started = time.monotonic()
    code = stop(proc, signal.SIGTERM)
    assert code == 0 and time.monotonic() - started < 20  # the 60 s step was ended
    assert "watch: stopped" in log.read_text()
    from agilab_dsl.record import query as history

    runs = [run for run, _ in history.listing(tmp_path)]
    assert runs[0].status == "interrupted" and runs[0].step("slow")["error"] == "interrupted"  # type: ignore[index]


def test_a_dask_local_cluster_stays_up_between_runs(tmp_path: Path, capsys) -> None:
    path = make_lab(tmp_path)
    path.write_text(
        LAB.replace('stage = "parallel_stage.toml"', 'stage = "parallel_stage.toml"\nbackend = "dask"'),
        encoding="utf-8",
    )

    def add(n: int) -> Callable[[], list[Path]]:
        def do() -> list[Path]:
            new = tmp_path / "parts" / f"p{n}.txt"
            new.write_text(f"{n}\n", encoding="utf-8")
            return [new]

        return do

    args = build_run_parser().parse_args([str(path), "--watch"])
    assert run_watch(args, lab_request(args), scripted(add(1), add(2))) == 0
    err = capsys.readouterr().err
    assert err.count("LocalCluster for this run") == 1  # started once, for all three runs
    address = re.search(r"LocalCluster for this run at (\S+),", err).group(1)  # type: ignore[union-attr]
    assert err.count(f"dask: scheduler {address}") == 3 and err.count("partitions on dask") == 3


def test_a_pool_stage_keeps_its_workers_between_runs(tmp_path: Path, capsys) -> None:
    path = make_lab(tmp_path)
    contract = tmp_path / "parallel_stage.toml"
    contract.write_text(
        CONTRACT.replace('backend = "local"', 'backend = "pool"')
        .replace("workers = 1", "workers = 2")
        .replace("helpers.py:size", "helpers.py:pid"),
        encoding="utf-8",
    )
    helpers = tmp_path / "helpers.py"
    helpers.write_text(helpers.read_text() + "\ndef pid(part):\n    import os\n    return os.getpid()\n")
    (tmp_path / "parts" / "p1.txt").write_text("one\n", encoding="utf-8")
    seen: list[set[int]] = []

    def add(n: int) -> Callable[[], list[Path]]:
        def do() -> list[Path]:
            seen.append(set(json.loads((tmp_path / "out" / "par.json").read_text())))
            new = tmp_path / "parts" / f"p{n}.txt"
            new.write_text(f"{n}\n", encoding="utf-8")
            return [new]

        return do

    runs = watch(path, scripted(add(2), add(3)), capsys)
    seen.append(set(json.loads((tmp_path / "out" / "par.json").read_text())))
    assert runs[1] == ["par"] and runs[2] == ["par"]
    # the same two loky workers served every run: a pool made anew for a run would bring new pids (which
    # of the two serves a run's partitions is the pool's choice, so no run is asked to meet an earlier one)
    assert len(seen[0] | seen[1] | seen[2]) <= 2, seen
    assert os.getpid() not in seen[0]  # partitions ran in the pool's processes, not the watcher's


def test_the_signal_handlers_are_restored_afterwards(tmp_path: Path, capsys) -> None:
    """(A watcher left SIGINT ignored once: every process started after it inherited that.)"""
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    path = make_lab(tmp_path)
    watch(path, scripted(), capsys)
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before


def test_watcher_survives_100_broken_saves_and_a_burst_of_1000_events(tmp_path: Path) -> None:
    from fault.watch_abuse import abuse

    f = abuse(tmp_path / "lab", broken=100, burst=1000)
    assert f.alive and f.broken_handled == 100, f.log[-3000:]
    assert 1 <= f.burst_runs <= 20  # a burst is coalesced into few reloads, not 1,000
    assert f.growth() < 4, f.rss_mib  # flat: no memory kept per broken save or per event
    assert f.good_ran == ["a", "b"], f.log[-3000:]  # the first good save runs what is stale, only that
    assert "Traceback" not in f.log


AGILAB_WRITES = [  # what AGILAB writes beside a lab (its WORKFLOW page, notebook export, runner)
    "AGI_run_stage1.py",
    "AGI_run_stage12.py",
    "AGI_run.py",
    "AGI_serve_safe_start_template.py",
    "lab_steps.ipynb",  # the export of this lab (lab_steps.toml) ...
    "lab_stages.ipynb",  # ... and of AGILAB's default name
    "lab_steps.notebook_export.json",
    "lab_steps.notebook_export.md",
    "notebooks/lab_steps.ipynb",  # the PyCharm mirror in the app's notebooks/ folder
    "notebooks/sitecustomize.py",
    "exported_notebooks/lab/sitecustomize.py",
    ".agilab/runner_state.json",
    ".agilab/runner_state.json.lock",
    ".agilab/workflow_evidence/run_1/manifest.json",
    ".agilab/multi_app_dags/dag.json",
]


def _write(folder: Path, names: list[str]) -> list[Path]:
    paths = []
    for name in names:
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("# written by AGILAB\n", encoding="utf-8")
        paths.append(path)
    return paths


def test_what_agilab_writes_beside_a_lab_never_triggers(tmp_path: Path) -> None:
    lab_dir = str(tmp_path)
    _write(tmp_path, [*AGILAB_WRITES, "my_step.py", "AGI_runner_notes.py", "notebooks/analysis.py"])
    scope = Scope(lab_dir, [lab_dir], lab_stem="lab_steps")
    for name in AGILAB_WRITES:
        assert not scope.relevant(str(tmp_path / name)), name
    for name in ("my_step.py", "AGI_runner_notes.py", "notebooks/analysis.py"):
        assert scope.relevant(str(tmp_path / name)), name
    # a file the lab reads counts, whatever its name
    reads = Scope(lab_dir, [lab_dir], known={str(tmp_path / "AGI_run.py")}, lab_stem="lab_steps")
    assert reads.relevant(str(tmp_path / "AGI_run.py"))


def test_agilab_writing_beside_the_lab_runs_nothing_then_an_edit_runs(tmp_path: Path, capsys) -> None:
    path = make_lab(tmp_path)
    runs = watch(
        path,
        scripted(
            lambda: _write(tmp_path, AGILAB_WRITES), edit(path, "read_text().upper()", "read_text().lower()")
        ),
        capsys,
    )
    assert len(runs) == 2 and runs[1] == ["load", "count"]  # the AGILAB batch was not even judged


def test_while_the_lab_is_broken_input_changes_run_under_the_last_good_definition(
    tmp_path: Path, capsys
) -> None:
    path = make_lab(tmp_path)
    data = tmp_path / "data" / "a.csv"
    broken = edit(path, 'id = "scaled"', 'id = "scaled')  # the lab no longer parses
    source = scripted(broken, edit(data, "x\n", "y\n"), edit(path, 'id = "scaled', 'id = "scaled"'))
    args = build_run_parser().parse_args([str(path), "--watch"])
    assert run_watch(args, lab_request(args), source) == 0
    err = capsys.readouterr().err
    chunks = re.split(r"^⟳ .*$", err, flags=re.M)
    assert "the last good definition stays in force" in chunks[1]
    assert re.findall(r"^▶ (\S+)", chunks[1], flags=re.M) == []  # the broken save alone runs nothing
    assert "the changes run under the last good definition" in chunks[2]
    assert re.findall(r"^▶ (\S+)", chunks[2], flags=re.M) == ["load", "count"]  # as it says
    assert (tmp_path / "out" / "loaded.csv").read_text(encoding="utf-8").startswith("Y\n")
    assert re.findall(r"^▶ (\S+)", chunks[3], flags=re.M) == []  # fixed: the input change is already run
