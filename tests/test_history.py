"""The experiment history: one Parquet file per run, listed, compared, queryable, exported."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agilab_dsl.cli import main

LAB = """[[exp]]
id = "train"
function = "model.py:train"
params = {{ x = {x}, label = "a" }}

[[exp]]
id = "score"
C = '''
metrics["double"] = 2 * {x}
metrics["name"] = "not a number"
'''
deps = ["train"]
"""

MODEL = """
def train(x, label):
    return {"score": x * 10, "loss": 1.0 / x, "ok": True, "label": label}
"""


def lab(folder: Path, x: int) -> Path:
    (folder / "model.py").write_text(MODEL, encoding="utf-8")
    path = folder / "lab_steps.toml"
    path.write_text(LAB.format(x=x), encoding="utf-8")
    return path


def history(path: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, object]:
    code = main(["history", str(path), *extra])
    out = capsys.readouterr().out
    return code, (json.loads(out) if "--json" in extra else out)


def run_ids(path: Path, capsys: pytest.CaptureFixture[str]) -> list[str]:
    code, runs = history(path, capsys, "--json")
    assert code == 0
    return [r["run_id"] for r in runs]  # type: ignore[union-attr]


def test_a_changed_param_is_named_with_the_metric_deltas(tmp_path: Path, capsys) -> None:
    path = lab(tmp_path, 1)
    assert main([str(path)]) == 0
    path.write_text(LAB.format(x=2), encoding="utf-8")
    assert main([str(path)]) == 0
    capsys.readouterr()
    new, old = run_ids(path, capsys)
    code, diff = history(path, capsys, "--compare", old, new, "--json")
    assert code == 0
    assert diff == {  # type: ignore[comparison-overlap]
        "a": old,
        "b": new,
        "steps": [
            {
                "step_id": "train",
                "params": ["x: 1 → 2"],
                "metrics": ["loss: 1 → 0.5 (-0.5)", "score: 10 → 20 (+10)"],
            },
            {"step_id": "score", "code": "changed", "metrics": ["double: 2 → 4 (+2)"]},
        ],
    }
    code, text = history(path, capsys, "--compare", old[-6:-2], new)  # an abbreviated id
    assert code == 0 and "params    x: 1 → 2" in text and "score: 10 → 20 (+10)" in text  # type: ignore[operator]
    code, text = history(path, capsys)
    assert code == 0
    lines = text.splitlines()  # type: ignore[union-attr]
    assert lines[2].startswith(new) and "train: x: 1 → 2" in lines[2] and lines[3].startswith(old)


def test_the_text_listing_reads_a_summary_of_each_run_and_says_the_same(tmp_path: Path) -> None:
    """The text listing reads only SUMMARY_COLUMNS of each run: the same table as from whole runs;
    a run's steps are looked up by id (the first of an id), also after its steps are replaced."""
    import io

    from agilab_dsl.cli.show import print_history
    from agilab_dsl.record.query import SUMMARY_COLUMNS, listing, read_run, run_files

    path = lab(tmp_path, 1)
    for x in (1, 2, 3):
        path.write_text(LAB.format(x=x), encoding="utf-8")
        assert main([str(path)]) == 0
    shown = []
    for columns in (None, SUMMARY_COLUMNS):
        out = io.StringIO()
        print_history(listing(tmp_path, columns=columns), out)
        shown.append(out.getvalue())
    assert shown[0] == shown[1] and "train: x: 2 → 3" in shown[0]
    run = read_run(run_files(tmp_path)[0], SUMMARY_COLUMNS)
    assert set(run.step("train")) <= {
        *SUMMARY_COLUMNS,
        "tracked_metrics",
        "tracked_params",
        "tracked_tags",
        "tracked_artifacts",
        "settings",  # (None: not read)
    }
    assert "code" in read_run(run_files(tmp_path)[0]).step("train")  # read whole: every column
    twin = {**run.step("train"), "status": "failed"}
    run.steps.append(twin)  # a second step of that id: the first is the one found
    assert run.step("train")["status"] == "ran" and run.step("nothing") is None
    run.steps = [twin]
    assert run.step("train") is twin and run.step("score") is None


def test_each_run_is_one_parquet_file_of_a_queryable_dataset(tmp_path: Path) -> None:
    import pyarrow.dataset as ds

    path = lab(tmp_path, 3)
    assert main([str(path)]) == 0
    assert main([str(path), "--force"]) == 0
    files = sorted((tmp_path / ".agilab" / "history").glob("*.parquet"))
    assert len(files) == 2
    table = ds.dataset(tmp_path / ".agilab" / "history", format="parquet").to_table()
    assert table.num_rows == 4 and table.schema.metadata[b"agilab.history.schema"] == b"2"
    rows = [r for r in table.to_pylist() if r["step_id"] == "train"]
    assert {r["run_status"] for r in rows} == {"ok"} and all(r["duration"] > 0 for r in rows)
    assert dict(rows[0]["metrics"]) == {"score": 30.0, "loss": 1 / 3}  # numbers only
    assert json.loads(rows[0]["params"]) == {"x": 3, "label": "a"}
    assert rows[0]["fingerprint"] and rows[0]["code"].startswith("function:")
    assert rows[0]["lab"] == str(path.resolve()) and len(rows[0]["lab_hash"]) == 64
    assert sorted(r["reasons"][0] for r in rows) == ["forced (--force)", "never ran"]


def test_failures_filters_and_what_is_not_recorded(tmp_path: Path, capsys) -> None:
    path = lab(tmp_path, 1)
    assert main([str(path), "--dry-run"]) == 0  # a dry run is not recorded
    assert main([str(path)]) == 0
    assert main([str(path)]) == 0  # nothing to do: not recorded either
    path.write_text(LAB.format(x=0), encoding="utf-8")  # 1 / 0
    assert main([str(path)]) == 1
    capsys.readouterr()
    assert len(run_ids(path, capsys)) == 2
    code, failed = history(path, capsys, "--status", "failed", "--json")
    assert code == 0 and len(failed) == 1  # type: ignore[arg-type]
    (train,) = [s for s in failed[0]["steps"] if s["step_id"] == "train"]  # type: ignore[index]
    assert failed[0]["status"] == "failed" and train["status"] == "failed"  # type: ignore[index]
    assert "ZeroDivisionError" in train["error"] or "exit status" in train["error"]
    code, only = history(path, capsys, "--step", "score", "--last", "1", "--json")
    assert len(only) == 1 and [s["step_id"] for s in only[0]["steps"]] == ["score"]  # type: ignore[index,arg-type]
    assert only[0]["steps"][0]["status"] == "blocked"  # type: ignore[index]


def test_run_ids_are_resolved_like_git_abbreviations(tmp_path: Path, capsys) -> None:
    path = lab(tmp_path, 1)
    assert main([str(path)]) == 0
    assert main([str(path), "--force"]) == 0
    capsys.readouterr()
    new, old = run_ids(path, capsys)
    assert main(["history", str(path), "--compare", old[:4], new]) == 2  # both share the date
    assert "is ambiguous" in capsys.readouterr().err
    assert main(["history", str(path), "--compare", "zzzz", new]) == 2
    assert "no run 'zzzz' in the history (2 runs recorded)" in capsys.readouterr().err
    assert main(["history", str(path), "--compare", old.rpartition("-")[2][:5], new]) == 0


def test_a_parallel_stage_records_partitions_timings_and_output_size(tmp_path: Path, capsys) -> None:
    from conftest import ROOT

    folder = tmp_path / "sweep"
    shutil.copytree(
        ROOT / "examples" / "sweep", folder, ignore=shutil.ignore_patterns(".agilab", "artifacts")
    )
    assert main([str(folder / "lab_stages.toml"), "--backend", "local"]) == 0
    capsys.readouterr()
    _, runs = history(folder / "lab_stages.toml", capsys, "--json", "--step", "evaluate")
    (step,) = runs[0]["steps"]  # type: ignore[index]
    assert step["partitions"] == 12 and step["backend"] == "local" and step["workers"] == 2
    assert (
        0 < step["partition_seconds_min"] <= step["partition_seconds_median"] <= step["partition_seconds_max"]
    )
    assert step["output_bytes"] == (folder / "artifacts" / "sweep.jsonl").stat().st_size
    assert (
        step["outputs"][0]["path"] == "artifacts/sweep.jsonl"
        and step["outputs"][0]["size"] == step["output_bytes"]
    )
    assert step["inputs"] == [{"path": "grid.toml", "hash": step["inputs"][0]["hash"]}]


SLOW_LAB = """[[exp]]
id = "quick"
C = "open(outputs[0], 'w').write('done')"
produces = ["quick.txt"]

[[exp]]
id = "slow"
C = "import time; open('started', 'w').close(); time.sleep({sleep})"
deps = ["quick"]
"""


def _start(path: Path) -> subprocess.Popen[bytes]:
    """The runner in its own process group (so the test can end the step it leaves behind)."""
    log = (path.parent / "runner.log").open("wb")
    return subprocess.Popen(
        [sys.executable, "-m", "agilab_dsl", str(path)], stdout=log, stderr=log, start_new_session=True
    )


def _end_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


def _wait_for(marker: Path) -> None:
    deadline = time.monotonic() + 60
    while not marker.exists():
        assert time.monotonic() < deadline, "the slow step never started"
        time.sleep(0.05)


def test_sigkill_mid_step_leaves_every_earlier_record_readable(tmp_path: Path, capsys) -> None:
    path = tmp_path / "lab_steps.toml"
    path.write_text(SLOW_LAB.format(sleep=0), encoding="utf-8")
    assert main([str(path)]) == 0
    capsys.readouterr()
    before = run_ids(path, capsys)
    path.write_text(SLOW_LAB.format(sleep=30), encoding="utf-8")
    (tmp_path / "started").unlink()
    proc = _start(path)
    _wait_for(tmp_path / "started")
    proc.send_signal(signal.SIGKILL)  # the runner only: its step is left running, as after a crash
    proc.wait(timeout=30)
    _end_group(proc)
    assert run_ids(path, capsys) == before  # the killed run left no record, and damaged none
    import pyarrow.dataset as ds

    assert ds.dataset(tmp_path / ".agilab" / "history", format="parquet").to_table().num_rows == 2


def test_a_terminated_run_is_recorded_as_interrupted(tmp_path: Path, capsys) -> None:
    path = tmp_path / "lab_steps.toml"
    path.write_text(SLOW_LAB.format(sleep=30), encoding="utf-8")
    proc = _start(path)
    _wait_for(tmp_path / "started")
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)
    _end_group(proc)
    assert proc.returncode == 130, (tmp_path / "runner.log").read_text()
    _, runs = history(path, capsys, "--json")
    (run,) = runs  # type: ignore[misc]
    assert run["status"] == "interrupted"
    assert {s["step_id"]: s["status"] for s in run["steps"]} == {"quick": "ran", "slow": "failed"}
    assert [s["error"] for s in run["steps"] if s["step_id"] == "slow"] == ["interrupted"]


def test_a_run_records_in_the_background_without_waiting_for_pyarrow(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("AGILAB_HISTORY_SYNC")
    path = lab(tmp_path, 1)
    assert main([str(path)]) == 0
    folder = tmp_path / ".agilab" / "history"
    deadline = time.monotonic() + 60
    while not list(folder.glob("*.parquet")):  # the detached flusher converts the pending record
        assert time.monotonic() < deadline, "the pending record was never turned into Parquet"
        time.sleep(0.1)
    deadline = time.monotonic() + 10
    while list((tmp_path / ".agilab" / "history-pending").glob("*.json")):
        assert time.monotonic() < deadline
        time.sleep(0.05)


_FLUSHER = """
import sys
from agilab_dsl.record import history
history.main([sys.argv[1]])  # the detached writer's own entry point
print("pandas imported:", "pandas" in sys.modules)
"""

_LISTER = """
import sys
from agilab_dsl.cli import main
assert main(["history", sys.argv[1]]) == 0
print("pandas imported:", "pandas" in sys.modules)
try:
    import pandas  # noqa: F401
except ImportError:
    print("no pandas installed")
else:  # pyarrow still turns a table into a DataFrame, importing pandas when asked to
    import pyarrow as pa
    print("to_pandas:", type(pa.table({"a": [1]}).to_pandas()).__name__)
"""


def test_the_history_writer_and_lister_do_not_import_pandas(tmp_path: Path, monkeypatch) -> None:
    """pyarrow looks for pandas (~0.3-0.4 s to import) as it loads and converts; the detached
    history writer and ``agilab-run history``, which run no step's code, hide it meanwhile: each,
    in a fresh interpreter, never imports it, and pyarrow's own pandas conversion still works."""
    from agilab_dsl.record import history as recorder

    path = lab(tmp_path, 1)
    monkeypatch.delenv("AGILAB_HISTORY_SYNC", raising=False)
    monkeypatch.setattr(recorder, "_spawn_flusher", lambda lab_dir: None)  # the record stays pending
    assert main([str(path)]) == 0
    assert len(list((tmp_path / ".agilab" / "history-pending").glob("*.json"))) == 1
    run = [sys.executable, "-c"]
    flushed = subprocess.run(
        [*run, _FLUSHER, str(tmp_path)], check=False, capture_output=True, text=True, timeout=120
    )
    assert flushed.returncode == 0, flushed.stderr
    assert "pandas imported: False" in flushed.stdout
    assert len(list((tmp_path / ".agilab" / "history").glob("*.parquet"))) == 1
    assert not list((tmp_path / ".agilab" / "history-pending").glob("*.json"))
    listed = subprocess.run(
        [*run, _LISTER, str(path)], check=False, capture_output=True, text=True, timeout=120
    )
    assert listed.returncode == 0, listed.stderr
    assert "pandas imported: False" in listed.stdout
    assert "to_pandas: DataFrame" in listed.stdout or "no pandas installed" in listed.stdout


def test_git_commit_and_dirtiness_are_recorded(tmp_path: Path, capsys) -> None:
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    path = lab(tmp_path, 1)
    git = ["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@example.org"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "lab_steps.toml", "model.py"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "lab"], check=True)
    head = subprocess.run(
        [*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert main([str(path)]) == 0
    path.write_text(LAB.format(x=5), encoding="utf-8")  # a tracked file changed
    assert main([str(path)]) == 0
    capsys.readouterr()
    _, runs = history(path, capsys, "--json")
    assert [(r["git_commit"], r["git_dirty"]) for r in runs] == [(head, True), (head, False)]  # type: ignore[index,union-attr]


def test_export_to_mlflow_is_idempotent(tmp_path: Path, capsys, monkeypatch) -> None:
    pytest.importorskip("mlflow", reason="MLflow is an optional extra: pip install 'agilab-dsl[mlflow]'")
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    path = lab(tmp_path, 1)
    assert main([str(path)]) == 0
    path.write_text(LAB.format(x=2), encoding="utf-8")
    assert main([str(path)]) == 0
    uri = (tmp_path / "mlruns").as_uri()
    capsys.readouterr()
    assert main(["history", str(path), "--export-mlflow", uri]) == 0
    assert "2 runs exported, 0 already there" in capsys.readouterr().out
    assert main(["history", str(path), "--export-mlflow", uri]) == 0
    assert "0 runs exported, 2 already there" in capsys.readouterr().out

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    (experiment,) = client.search_experiments()
    assert experiment.name == "Default"  # AGILAB's: MLFLOW_EXPERIMENT_NAME is not set
    found = client.search_runs([experiment.experiment_id])
    parents = [r for r in found if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in found if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 2 and len(children) == 4
    assert {r.data.tags["mlflow.parentRunId"] for r in children} == {p.info.run_id for p in parents}
    train = [r for r in children if r.data.tags["agilab.step"] == "train"]
    assert sorted(r.data.params["x"] for r in train) == ["1", "2"]
    assert sorted(r.data.metrics["score"] for r in train) == [10.0, 20.0]
    assert all(r.data.tags["agilab.stages_file"] == str(path.resolve()) for r in found)
    assert all(  # no *_project folder above the lab: the app is its module
        r.data.tags["agilab.app"] == "exp" and r.data.tags["agilab.lab"] == tmp_path.name for r in found
    )


def test_a_fresh_step_row_carries_the_details_of_the_run_it_ran_in(tmp_path: Path, capsys) -> None:
    path = lab(tmp_path, 4)
    assert main([str(path)]) == 0
    path.write_text(LAB.format(x=4).replace('metrics["double"]', 'metrics["twice"]'), encoding="utf-8")
    assert main([str(path)]) == 0  # only `score` runs; `train` is fresh
    capsys.readouterr()
    code, runs = history(path, capsys, "--json", "--step", "train")
    new, old = runs  # type: ignore[misc]
    assert code == 0 and new["steps"][0]["status"] == "fresh" and new["steps"][0]["ran_in"] == old["run_id"]
    for name in ("fingerprint", "code", "params", "settings", "inputs", "outputs"):
        assert new["steps"][0][name] == old["steps"][0][name], name
    assert new["steps"][0]["params"] == {"x": 4, "label": "a"}
    code, diff = history(path, capsys, "--compare", old["run_id"], new["run_id"], "--json")
    assert diff["steps"] == [  # type: ignore[index]
        {
            "step_id": "train",
            "status": "ran → fresh",
            "metrics": ["loss removed (was 0.25)", "score removed (was 40)"],
        },
        {"step_id": "score", "code": "changed", "metrics": ["double removed (was 8)", "twice added: 8"]},
    ]


def test_the_run_id_shown_is_one_the_history_knows(tmp_path: Path, capsys) -> None:
    path = lab(tmp_path, 1)
    assert main([str(path), "--json"]) == 0
    ran = capsys.readouterr()
    first = json.loads(ran.out)["run_id"]
    assert f"(run {first})" in ran.err and run_ids(path, capsys) == [first]
    for extra in ([], ["--no-cache"]):  # the judgment cache's fast path, and a full judgment
        assert main([str(path), "--json", *extra]) == 0
        noop = capsys.readouterr()
        assert json.loads(noop.out)["run_id"] is None and "(run " not in noop.err  # nothing started
        assert run_ids(path, capsys) == [first]


def test_a_pending_record_is_written_in_batches_as_json_dumps_writes_it() -> None:
    from agilab_dsl.record.rows import FreshTexts, RunRecord, StepRow, fresh_row

    rows = [
        StepRow("a", "ran", ["why"], params={"p": 1}, metrics={"m": 1.5}),
        fresh_row("b", "fp", "r", {"stage_index": 2}),
        FreshTexts().text("c", "fp", "r", 3, ("é", None, None, None, None)),  # as its text
    ]
    for n in (0, 1, 3, 4, 9, 15):
        run = RunRecord("id", 1.0, 2.0, "ok", "lab", "h", "app", None, None, (rows * 5)[:n])
        whole = json.dumps(run.to_json(), default=str, separators=(",", ":"))
        assert "".join(run.json_text(batch=3)) == whole
        assert RunRecord.from_json(json.loads(whole)).steps[: min(n, 1)] == [rows[0]][: min(n, 1)]


_TEXT = st.text(alphabet=st.characters(codec="utf-8"), max_size=8)
_SHOWN = st.fixed_dictionaries(
    {},
    optional={
        "stage_index": st.one_of(st.none(), st.integers(-5, 10**6)),
        "description": st.one_of(st.none(), _TEXT),
        "question": st.one_of(st.none(), _TEXT, st.lists(st.integers(), max_size=2)),
        "model": st.one_of(st.none(), _TEXT),
        "engine": _TEXT,
        "runtime": st.one_of(st.none(), _TEXT),
    },
)


@given(_TEXT, _TEXT, _TEXT, st.lists(_SHOWN, min_size=1, max_size=4))
@settings(max_examples=300, deadline=None)
def test_a_fresh_rows_text_is_its_row_encoded(
    step_id: str, fingerprint: str, ran_in: str, shown: list[dict[str, object]]
) -> None:
    from agilab_dsl.record.rows import DETAILS, FreshTexts, fresh_row

    texts = FreshTexts()  # shared across rows, as a run shares it across its steps
    for one in shown:
        # as the runner shows a stage: its place, then its details, in that order (FreshTexts is
        # given them as values: every detail, None when it has none)
        row = fresh_row(
            step_id, fingerprint, ran_in, {k: one[k] for k in ("stage_index", *DETAILS) if k in one}
        )
        details = tuple(one.get(k) for k in DETAILS)
        got = texts.text(step_id, fingerprint, ran_in, one.get("stage_index"), details)  # type: ignore[arg-type]
        assert got == json.dumps(row, default=str, separators=(",", ":"))


def test_the_details_a_fresh_row_takes_are_those_the_runner_shows() -> None:
    from agilab_dsl.execute.recording import _as_agilab_shows, _details
    from agilab_dsl.plan.spec import PlacedSpec, StepSpec
    from agilab_dsl.record.rows import DETAILS

    stage = StepSpec(description="d", question="q", model="m", code="x = 1", engine="r")
    placed = PlacedSpec("m", 0, "a", stage)
    shown = _as_agilab_shows(placed, "e")
    assert list(shown) == ["stage_index", *DETAILS]
    assert tuple(shown[k] for k in DETAILS) == _details(placed, "e") == ("d", "q", "m", "r", "e")


def test_fresh_rows_take_their_details_column_wise_from_the_run_each_names(tmp_path: Path) -> None:
    """What a fresh row copies (code, params, settings, inputs, outputs with sizes read now) comes
    from the run it last ran in when the fingerprint there is the same; otherwise it stays empty.
    Two pending runs flushed together: the second takes from the first, written moments before."""
    import pyarrow.parquet as pq

    from agilab_dsl.record import history as hist
    from agilab_dsl.record.rows import RunRecord, StepRow, fresh_row

    (tmp_path / "o.txt").write_text("12345")

    def ran(sid: str, fp: str, n: int) -> StepRow:
        return StepRow(
            sid,
            "ran",
            ["never ran"],
            fingerprint=fp,
            code=f"code-{sid}",
            params={"n": n, "nested": [1, {"b": None}]},
            settings={"s": f"v{n}"},
            metrics={"m": float(n)},
            inputs=[{"path": f"in/{sid}", "hash": "h" * 64}],
            outputs=[
                {"path": "o.txt", "hash": "o" * 64, "size": 1},
                {"path": "gone.txt", "hash": "g", "size": 9},
            ],
            duration=0.5,
            stage_index=n,
        )

    def run_of(
        run_id: str, at: float, steps: list, status: str = "ok", git: tuple = (None, None)
    ) -> RunRecord:
        return RunRecord(run_id, at, at + 1, status, "lab", "h", "app", *git, steps)

    first = run_of("r1", 1.0, [ran("a", "fa", 1), ran("b", "fb", 2)], git=("c0ffee", False))
    second = run_of(
        "r2",
        3.0,
        [
            fresh_row("a", "fa", "r1", {"stage_index": 7}),  # same fingerprint: details from r1
            fresh_row("b", "other", "r1", {}),  # another fingerprint: none
            fresh_row("c", "fc", "r0", {}),  # a run the history does not have: none
            ran("d", "fd", 4),
        ],
    )
    for run in (first, second):
        hist.record(tmp_path, run, background=False)  # r2 alone: r1 is read back from its file
    third = run_of("r3", 5.0, [fresh_row("d", "fd", "r2", {})])
    fourth = run_of("r4", 7.0, [fresh_row("a", "fa", "r1", {})], status="failed")
    for run in (third, fourth):  # pending together (as the runner leaves them), flushed in one go
        (tmp_path / hist.PENDING / f"{run.run_id}.json").write_text(
            "".join(run.json_text()), encoding="utf-8"
        )
    (tmp_path / "o.txt").write_text("1234567")  # sizes are read when the fresh rows are written
    assert hist.flush(tmp_path) == 2

    def rows(run_id: str) -> dict[str, dict]:
        table = pq.read_table(tmp_path / hist.HISTORY / f"{run_id}.parquet")
        return {r["step_id"]: r for r in table.to_pylist()}

    r1, r2, r3, r4 = rows("r1"), rows("r2"), rows("r3"), rows("r4")
    a = r2["a"]
    assert (a["status"], a["ran_in"], a["stage_index"], a["reasons"], a["duration"]) == (
        "fresh",
        "r1",
        7,
        [],
        None,
    )
    for name in ("code", "params", "settings", "inputs"):
        assert a[name] == r1["a"][name], name
    assert json.loads(a["params"]) == {"n": 1, "nested": [1, {"b": None}]} and a["metrics"] == []
    assert a["outputs"] == [
        {"path": "o.txt", "hash": "o" * 64, "size": 5},
        {"path": "gone.txt", "hash": "g", "size": None},
    ]
    for sid in ("b", "c"):
        row = r2[sid]
        assert (row["code"], row["params"], row["settings"], row["inputs"], row["outputs"]) == (
            None,
            None,
            None,
            [],
            [],
        )
    assert r2["d"]["metrics"] == [("m", 4.0)] and r2["d"]["run_id"] == "r2" and r2["d"]["git_commit"] is None
    assert r1["a"]["git_commit"] == "c0ffee" and r1["a"]["git_dirty"] is False
    assert list(r2) == ["a", "b", "c", "d"]  # the run's order kept
    d = r3["d"]
    assert (d["code"], d["settings"], d["inputs"]) == (
        r2["d"]["code"],
        r2["d"]["settings"],
        r2["d"]["inputs"],
    )
    assert (
        d["outputs"][0]["size"] == 7
        and r4["a"]["outputs"][0]["size"] == 7
        and r4["a"]["run_status"] == "failed"
    )


def test_a_referred_run_of_another_shape_leaves_the_details_empty_not_the_run_unrecorded(
    tmp_path: Path,
) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from agilab_dsl.record import history as hist
    from agilab_dsl.record.rows import RunRecord, fresh_row

    (tmp_path / hist.HISTORY).mkdir(parents=True)
    odd = pa.table({"step_id": pa.array([1, 2]), "fingerprint": ["fa", "fb"], "code": ["c", "c"]})
    pq.write_table(odd, tmp_path / hist.HISTORY / "r1.parquet")  # step ids of another type
    run = RunRecord("r2", 1.0, 2.0, "ok", "lab", "h", "app", None, None, [fresh_row("a", "fa", "r1", {})])
    hist.record(tmp_path, run, background=False)
    (row,) = pq.read_table(tmp_path / hist.HISTORY / "r2.parquet").to_pylist()
    assert (row["step_id"], row["status"], row["code"], row["inputs"]) == ("a", "fresh", None, [])
    assert not list((tmp_path / hist.PENDING).iterdir())


def _pending_run(folder: Path, run_id: str) -> None:
    from agilab_dsl.record import history as hist
    from agilab_dsl.record.rows import RunRecord, StepRow

    run = RunRecord(run_id, 1.0, 2.0, "ok", "lab", "h", "app", None, None, [StepRow("a", "ran", [])])
    (folder / hist.PENDING).mkdir(parents=True, exist_ok=True)
    (folder / hist.PENDING / f"{run_id}.json").write_text("".join(run.json_text()), encoding="utf-8")


def test_a_detached_flusher_leaves_the_records_to_the_one_at_work(tmp_path: Path) -> None:
    """Runs back to back each spawn a flusher: one at a time flushes, the others end at once."""
    import fcntl

    from agilab_dsl.record import history as hist

    _pending_run(tmp_path, "r1")
    with open(tmp_path / hist.PENDING / hist.FLUSHER_LOCK, "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # a flusher at work
        assert hist.flush_alone(tmp_path) == 0
        assert (tmp_path / hist.PENDING / "r1.json").exists()
    assert hist.flush_alone(tmp_path) == 1  # let go: the next flusher takes it
    assert [p.name for p in (tmp_path / hist.HISTORY).glob("*.parquet")] == ["r1.parquet"]
    assert hist.flush_alone(tmp_path) == 0  # nothing pending: nothing to do


def test_the_flusher_at_work_takes_the_records_that_came_meanwhile(tmp_path: Path, monkeypatch) -> None:
    from agilab_dsl.record import history as hist

    real = hist.flush
    calls = []

    def flush(lab_dir: Path, note=None) -> int:  # a run ends while the flusher works
        calls.append(sorted(p.name for p in (lab_dir / hist.PENDING).glob("*.json")))
        if len(calls) == 1:
            _pending_run(lab_dir, "r2")  # after the flush listed the folder: not in this pass
            return _flush_only(real, lab_dir, note, "r1.json")
        return real(lab_dir, note)

    monkeypatch.setattr(hist, "flush", flush)
    _pending_run(tmp_path, "r1")
    assert hist.flush_alone(tmp_path) == 2
    assert calls == [["r1.json"], ["r2.json"]]
    assert sorted(p.name for p in (tmp_path / hist.HISTORY).glob("*.parquet")) == ["r1.parquet", "r2.parquet"]
    assert not list((tmp_path / hist.PENDING).glob("*.json"))


def _flush_only(real, lab_dir: Path, note, name: str) -> int:
    """``real`` flush of the one pending record ``name`` (the others set apart meanwhile)."""
    from agilab_dsl.record import history as hist

    aside = lab_dir / "aside"
    aside.mkdir()
    for p in (lab_dir / hist.PENDING).glob("*.json"):
        if p.name != name:
            p.rename(aside / p.name)
    try:
        return real(lab_dir, note)
    finally:
        for p in aside.iterdir():
            p.rename(lab_dir / hist.PENDING / p.name)
        aside.rmdir()


def test_a_record_that_cannot_be_written_does_not_keep_the_flusher_going(tmp_path: Path, monkeypatch) -> None:
    from agilab_dsl.record import history as hist

    calls = []
    monkeypatch.setattr(hist, "flush", lambda lab_dir, note=None: calls.append(1) or 0)  # a full disk
    _pending_run(tmp_path, "r1")
    assert hist.flush_alone(tmp_path) == 0 and calls == [1]
    assert (tmp_path / hist.PENDING / "r1.json").exists()  # stays for the next flush
