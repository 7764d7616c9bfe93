"""AGILAB's ``df`` hand-over and tracker, as steps see them here: ``df`` read from ``--dataframe``
and then from the previous df step's ``lab_out.csv`` (which is each df step's output for
staleness), ``from agilab.tracking import tracker`` with and without AGILAB installed (what it
logs lands in ``history --json``), and AGILAB's stage environment variables.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import venv
from pathlib import Path
from types import SimpleNamespace

import pytest

from agilab_dsl.cli import main
from agilab_dsl.execute.session import LabRequest, Refusal, open_lab
from agilab_dsl.plan.dataframe import FRAME_FILE, frame_links, frame_use

HEAD = '[__meta__]\nschema = "agilab.lab_stages.v1"\nversion = 1\n'

# two generated ("safe action") stages, as AGILAB's assistant writes them
SAFE_ACTIONS = (
    HEAD
    + '''
[[shop]]
D = "Add the order total"
Q = "add a column total = quantity * unit_price"
C = """
df = df.copy()
df["total"] = df["quantity"] * df["unit_price"]
"""
R = "runpy"

[[shop]]
D = "Keep the big orders"
Q = "keep the rows whose total is above 10"
C = """
df = df.copy()
df = df[df["total"] > 10]
"""
'''
)

ORDERS = "order_id,quantity,unit_price\n1,2,3.5\n2,5,4\n3,1,20\n"


def export(lab_dir: Path, step: str) -> Path:
    return lab_dir / ".agilab" / "export" / step / FRAME_FILE


def status(path: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> dict[str, tuple[str, list[str]]]:
    assert main(["status", str(path), "--json", *extra]) == 0
    steps = json.loads(capsys.readouterr().out)["steps"]
    return {s["id"]: (s["state"], s["reasons"]) for s in steps}


def run(path: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, dict]:
    code = main([str(path), "--json", *extra])
    captured = capsys.readouterr()
    return code, json.loads(captured.out) | {"stderr": captured.err}


def history_steps(path: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, dict]:
    assert main(["history", str(path), "--json", "--last", "1"]) == 0
    (latest,) = json.loads(capsys.readouterr().out)
    return {s["step_id"]: s for s in latest["steps"]}


@pytest.fixture
def shop(tmp_path: Path) -> Path:
    (tmp_path / "orders.csv").write_text(ORDERS, encoding="utf-8")
    path = tmp_path / "lab_stages.toml"
    path.write_text(SAFE_ACTIONS, encoding="utf-8")
    return path


# -- which steps use df, read off the syntax tree ---------------------------------------------------
@pytest.mark.parametrize(
    ("code", "reads"),
    [
        ("df = df.copy()\ndf['x'] = 1", True),  # a safe action: read, then rebound
        ("features = df.copy()", True),
        ("df['a'] = 1", True),  # a subscript store loads df first
        ("df += 1", True),
        ("def f():\n    return df.x\n", True),  # a function of the module reads its df
        ("rows = [r for r in df]", True),
        ("del df", True),
        ("import pandas as pd\ndf = pd.read_csv('a.csv')\ndf.head()", False),  # binds before use
        ("for df in []:\n    pass\nprint(df)", False),
        ("with open('x') as df:\n    pass", False),
        ("def f():\n    global df\n    df = 1\n", False),
        ("(df := 3)\nprint(df)", False),
        ("import df", False),
    ],
)
def test_a_step_using_df_is_known_from_its_code(code: str, reads: bool) -> None:
    use = frame_use(code)
    assert use is not None and use.reads is reads


@pytest.mark.parametrize(
    "code",
    [
        "print('df')",  # a word in a string
        "def f(df):\n    return df\n",  # a parameter of its own
        "rows = [df for df in range(3)]",  # the comprehension's own name
        "f = lambda df: df",
        "class A:\n    df = 3\n",
        "df: int",  # an annotation binds nothing
        "x = 1",
        "df = (",  # not Python: check reports it
    ],
)
def test_code_that_does_not_use_the_modules_df_is_no_df_step(code: str) -> None:
    assert frame_use(code) is None


def _placed(
    sid: str, code: str | None, *, module: str = "m", engine: str | None = None, **more
) -> SimpleNamespace:
    stage = SimpleNamespace(code=code, engine=engine, function=None, stage=None, off=more.get("off"))
    return SimpleNamespace(id=sid, module=module, selected=more.get("selected", True), stage=stage)


def test_each_reader_reads_the_frame_of_the_df_step_before_it_in_its_module() -> None:
    links = frame_links(
        [
            _placed("load", "import pandas as pd\ndf = pd.read_csv('x.csv')"),
            _placed("other", "print(1)"),
            _placed("clean", "df = df.dropna()"),
            _placed("agi", "df = df.copy()", engine="agi.run"),  # AGILAB's subprocess: no df
            _placed("off", "df = df.head()", off="enabled = false"),  # disabled: saves nothing
            _placed("top", "df = df.head()"),
            _placed("first", "df = df.copy()", module="n"),  # another module: its own chain
            _placed("extra", "df = df.tail()", selected=False),  # run with --all only
        ]
    )
    assert {sid: (link.reads, link.source) for sid, link in links.items()} == {
        "load": (False, None),
        "clean": (True, "load"),
        "off": (True, "clean"),
        "top": (True, "clean"),
        "first": (True, None),
        "extra": (True, "top"),
    }


# -- df through two safe-action steps ----------------------------------------------------------------
def test_df_chains_through_two_safe_action_steps(shop: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pd = pytest.importorskip("pandas")
    code, result = run(shop, capsys, "--dataframe", str(shop.parent / "orders.csv"))
    assert code == 0, result["stderr"]
    assert [s["status"] for s in result["steps"]] == ["ran", "ran"]
    first = pd.read_csv(export(shop.parent, "shop_001"))
    assert first["total"].tolist() == [7.0, 20.0, 20.0]
    second = pd.read_csv(export(shop.parent, "shop_002"))
    assert second["order_id"].tolist() == [2, 3] and list(second.columns)[-1] == "total"
    # the saved frames are the steps' outputs, and the first one is the second's input
    steps = history_steps(shop, capsys)
    assert [i["path"] for i in steps["shop_001"]["inputs"]] == ["orders.csv"]
    assert [o["path"] for o in steps["shop_001"]["outputs"]] == [".agilab/export/shop_001/lab_out.csv"]
    assert [i["path"] for i in steps["shop_002"]["inputs"]] == [".agilab/export/shop_001/lab_out.csv"]
    runner = open_lab(LabRequest(file=str(shop)))
    assert not isinstance(runner, Refusal)
    assert ("shop_001", "shop_002", "dataframe") in {
        (e.upstream, e.downstream, e.kind) for e in runner.full_graph.edges
    }
    assert main(["graph", str(shop)]) == 0
    mermaid = capsys.readouterr().out
    assert mermaid.count("s0 --") == 1  # one arrow: sequence and df join them
    assert "  s0 -->|lab_out.csv| s1\n" in mermaid  # named by the frame it hands over


def test_a_changed_input_frame_makes_the_df_steps_stale(
    shop: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("pandas")
    frame = ["--dataframe", str(shop.parent / "orders.csv")]
    assert run(shop, capsys, *frame)[0] == 0
    assert status(shop, capsys, *frame) == {"shop_001": ("fresh", []), "shop_002": ("fresh", [])}
    with open(shop.parent / "orders.csv", "a", encoding="utf-8") as fh:
        fh.write("4,9,9\n")
    assert status(shop, capsys, *frame) == {
        "shop_001": ("stale", ["input orders.csv changed"]),
        "shop_002": ("stale", ["upstream shop_001 will run"]),
    }
    code, result = run(shop, capsys, *frame)
    assert code == 0 and [s["status"] for s in result["steps"]] == ["ran", "ran"]
    assert (export(shop.parent, "shop_002")).read_text(encoding="utf-8").count("\n") == 4  # 3 rows + header
    # a saved frame deleted is rebuilt: it is the step's output
    export(shop.parent, "shop_002").unlink()
    assert status(shop, capsys, *frame)["shop_002"] == (
        "stale",
        ["output .agilab/export/shop_002/lab_out.csv missing"],
    )


def test_a_parquet_dataframe_and_an_export_dir(
    shop: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    parquet = tmp_path / "orders.parquet"
    pd.read_csv(shop.parent / "orders.csv").to_parquet(parquet)
    out = tmp_path / "elsewhere"
    code, result = run(shop, capsys, "--dataframe", str(parquet), "--export-dir", str(out))
    assert code == 0, result["stderr"]
    assert pd.read_csv(out / "shop_002" / FRAME_FILE)["order_id"].tolist() == [2, 3]
    assert not (shop.parent / ".agilab" / "export").exists()


def test_an_empty_df_saves_no_frame_and_the_step_stays_fresh(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("pandas")
    (tmp_path / "orders.csv").write_text(ORDERS, encoding="utf-8")
    path = tmp_path / "lab_stages.toml"
    path.write_text(HEAD + '[[shop]]\nC = "df = df[df.quantity > 100]"\n', encoding="utf-8")
    frame = ["--dataframe", str(tmp_path / "orders.csv")]
    code, result = run(path, capsys, *frame)
    assert code == 0 and result["steps"][0]["status"] == "ran", result["stderr"]
    assert not export(tmp_path, "shop_001").exists()  # AGILAB saves only a non-empty df
    log = Path(result["steps"][0]["log"]).read_text(encoding="utf-8")
    assert "df: empty (0 × 3): lab_out.csv not written" in log
    assert status(path, capsys, *frame) == {"shop_001": ("fresh", [])}


def test_a_reader_without_a_dataframe_gets_none(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "lab_stages.toml"
    path.write_text(HEAD + "[[shop]]\nC = \"df = df\\nprint('df is', df)\"\n", encoding="utf-8")
    code, result = run(path, capsys)
    assert code == 0, result["stderr"]
    log = Path(result["steps"][0]["log"]).read_text(encoding="utf-8")
    assert "no dataframe was given (--dataframe PATH): df is None" in log and "df is None" in log


@pytest.mark.parametrize(("name", "why"), [("absent.csv", "no such file"), ("orders.txt", "a dataframe is")])
def test_a_wrong_dataframe_is_refused(
    shop: Path, capsys: pytest.CaptureFixture[str], name: str, why: str
) -> None:
    (shop.parent / "orders.txt").write_text(ORDERS, encoding="utf-8")
    assert main([str(shop), "--dataframe", str(shop.parent / name)]) == 2
    assert why in capsys.readouterr().err


# -- without pandas ------------------------------------------------------------------------------------
def test_the_no_pandas_message_names_the_interpreter() -> None:
    from agilab_dsl.execute.agilab_env import SUPPORT_DIR

    sys.path.insert(0, SUPPORT_DIR)
    try:
        import _agilab_run_step as support
    finally:
        sys.path.remove(SUPPORT_DIR)
    text = support.no_pandas("/opt/app/.venv/bin/python", "3.13.1", "data/orders.csv")
    assert text.startswith(
        "df: pandas is not installed in this step's interpreter, /opt/app/.venv/bin/python"
    )
    assert "(Python 3.13.1)" in text and "data/orders.csv" in text and "-m pip install pandas" in text


def test_a_step_whose_interpreter_lacks_pandas_fails_saying_which(tmp_path: Path) -> None:
    """The worker under a foreign interpreter (as for an AGILAB runtime) with no pandas in it."""
    from agilab_dsl.execute.agilab_env import SUPPORT_DIR
    from agilab_dsl.execute.pool import Worker

    bare = tmp_path / "bare"
    venv.EnvBuilder(with_pip=False).create(bare)
    python = str(bare / "bin" / "python")
    if subprocess.run([python, "-c", "import pandas"], capture_output=True, check=False).returncode == 0:
        pytest.skip("the base interpreter of a fresh virtual environment has pandas")
    (tmp_path / "orders.csv").write_text(ORDERS, encoding="utf-8")
    worker_py = Path(SUPPORT_DIR).parent / "worker.py"
    worker = Worker(python, source_code=worker_py.read_text(encoding="utf-8"))
    try:
        reply = worker.run(
            {
                "step_id": "shop_001",
                "kind": "code",
                "code": "df = df.copy()",
                "cwd": str(tmp_path),
                "log": str(tmp_path / "step.log"),
                "result": str(tmp_path / "step.json"),
                "timeout": 60,
                "names": {"settings": {}, "params": {}, "inputs": [], "outputs": []},
                "support": SUPPORT_DIR,
                "frame": {
                    "reads": True,
                    "input": str(tmp_path / "orders.csv"),
                    "output": str(tmp_path / "out" / FRAME_FILE),
                    "source": None,
                },
            }
        )
    finally:
        worker.close()
    assert reply["exit"] == 1
    log = (tmp_path / "step.log").read_text(encoding="utf-8")
    assert f"pandas is not installed in this step's interpreter, {python}" in log
    assert "Traceback" not in log


# -- the tracker ------------------------------------------------------------------------------------------
TRACKED = (
    HEAD
    + '''
[[exp]]
D = "Train"
C = """
from pathlib import Path
from agilab.tracking import tracker

for epoch, loss in enumerate([0.9, 0.5, 0.25]):
    tracker.log_metric("loss", loss, step=epoch)
tracker.log_metrics({"accuracy": 0.8, "f1": 0.75}, step=2)
tracker.log_param("lr", 0.01)
tracker.log_params({"epochs": 3, "model": "tree"})
tracker.set_tag("team", "ops")
Path("model.txt").write_text("weights")
tracker.log_artifact("model.txt")
tracker.log_artifact("absent.txt")  # AGILAB's returns False for it: nothing logged
print("backend:", tracker.backend)
"""
'''
)


def test_the_tracker_without_agilab_records_into_history(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "lab_stages.toml"
    path.write_text(TRACKED, encoding="utf-8")
    code, result = run(path, capsys)
    assert code == 0, result["stderr"]
    assert "backend: agilab-run" in Path(result["steps"][0]["log"]).read_text(encoding="utf-8")
    step = history_steps(path, capsys)["exp_001"]
    assert step["tracked_metrics"] == [
        {"key": "loss", "value": 0.9, "step": 0},
        {"key": "loss", "value": 0.5, "step": 1},
        {"key": "loss", "value": 0.25, "step": 2},
        {"key": "accuracy", "value": 0.8, "step": 2},
        {"key": "f1", "value": 0.75, "step": 2},
    ]
    assert step["metrics"] == {"loss": 0.25, "accuracy": 0.8, "f1": 0.75}  # each at its latest step
    assert step["tracked_params"] == {"lr": "0.01", "epochs": "3", "model": "tree"}
    assert step["tracked_tags"] == {"team": "ops"}
    assert step["tracked_artifacts"] == ["model.txt"]


def test_the_tracker_checks_its_arguments_as_agilabs_does(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "lab_stages.toml"
    path.write_text(
        HEAD
        + '[[exp]]\nC = """\nfrom agilab.tracking import tracker\ntracker.log_metric("m", 1.0, 3)\n"""\n',
        encoding="utf-8",
    )
    code, result = run(path, capsys)
    assert code == 1  # `step` is keyword-only in AGILAB's facade
    assert "TypeError" in Path(result["steps"][0]["log"]).read_text(encoding="utf-8")


FAKE_EVIDENCE = '''
"""A stand-in for an installed AGILAB: its tracker writes each call to calls.jsonl."""
import json


class Tracker:
    backend = "fake-agilab"

    def _write(self, *call):
        with open("calls.jsonl", "a") as fh:
            fh.write(json.dumps(call) + "\\n")
        return True

    def log_metric(self, key, value, *, step=None):
        return self._write("log_metric", key, value, step)

    def log_metrics(self, metrics, *, step=None):
        return self._write("log_metrics", metrics, step)

    def log_param(self, key, value):
        return self._write("log_param", key, value)

    def set_tag(self, key, value):
        return self._write("set_tag", key, value)


tracker = Tracker()
'''

FAKE_COMPAT = '''
"""AGILAB's compatibility module: agilab.tracking re-exports agilab.evidence.tracking."""
import importlib

globals().update(importlib.import_module("agilab.evidence.tracking").__dict__)
'''


def test_an_installed_agilab_tracker_is_used_and_what_it_logs_recorded(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    site = tmp_path / "site"
    (site / "agilab" / "evidence").mkdir(parents=True)
    (site / "agilab" / "__init__.py").write_text("", encoding="utf-8")
    (site / "agilab" / "evidence" / "__init__.py").write_text("", encoding="utf-8")
    (site / "agilab" / "evidence" / "tracking.py").write_text(FAKE_EVIDENCE, encoding="utf-8")
    (site / "agilab" / "tracking.py").write_text(FAKE_COMPAT, encoding="utf-8")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")])))
    lab_dir = tmp_path / "lab"
    lab_dir.mkdir()
    path = lab_dir / "lab_stages.toml"
    path.write_text(
        HEAD
        + textwrap.dedent('''
        [[exp]]
        C = """
        from agilab.tracking import tracker
        print("backend:", tracker.backend)
        tracker.log_metric("loss", 0.5, step=1)
        tracker.log_metrics({"loss": 0.25}, step=2)
        tracker.log_param("lr", 0.1)
        tracker.set_tag("kind", "demo")
        """
        '''),
        encoding="utf-8",
    )
    code, result = run(path, capsys)
    assert code == 0, result["stderr"]
    assert "backend: fake-agilab" in Path(result["steps"][0]["log"]).read_text(encoding="utf-8")
    calls = [json.loads(line) for line in (lab_dir / "calls.jsonl").read_text().splitlines()]
    assert calls == [
        ["log_metric", "loss", 0.5, 1],
        ["log_metrics", {"loss": 0.25}, 2],
        ["log_param", "lr", 0.1],
        ["set_tag", "kind", "demo"],
    ]  # the real one ran, each call once
    step = history_steps(path, capsys)["exp_001"]
    assert step["tracked_metrics"] == [
        {"key": "loss", "value": 0.5, "step": 1},
        {"key": "loss", "value": 0.25, "step": 2},
    ]
    assert step["metrics"] == {"loss": 0.25}
    assert step["tracked_params"] == {"lr": "0.1"} and step["tracked_tags"] == {"kind": "demo"}


def test_a_function_step_can_use_the_tracker(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "train.py").write_text(
        "from agilab.tracking import tracker\n\n\ndef fit(n):\n"
        "    tracker.log_metric('n', n, step=0)\n    return {'ok': 1}\n",
        encoding="utf-8",
    )
    path = tmp_path / "lab_stages.toml"
    path.write_text(
        HEAD + '[[exp]]\nQ = "fit"\nfunction = "train.py:fit"\nparams = { n = 4 }\n', encoding="utf-8"
    )
    code, result = run(path, capsys)
    assert code == 0, result["stderr"]
    step = history_steps(path, capsys)["exp_001"]
    assert step["tracked_metrics"] == [{"key": "n", "value": 4.0, "step": 0}]
    assert step["metrics"] == {"ok": 1.0, "n": 4.0}


# -- AGILAB's environment variables --------------------------------------------------------------------------
ENVIRON = (
    HEAD
    + '''
[[exp]]
C = "print('first')"

[[exp]]
profiles = { fast = { timeout = 60 } }
C = """
import json, os
names = ["AGILAB_PIPELINE_RUN_ID", "AGILAB_PIPELINE_STAGE_INDEX", "AGILAB_PIPELINE_PROFILE", "MLFLOW_TRACKING_URI"]
open("seen.json", "w").write(json.dumps({n: os.environ.get(n) for n in names}))
"""
'''
)


def test_steps_see_agilabs_environment_variables(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "lab_stages.toml"
    path.write_text(ENVIRON, encoding="utf-8")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    code, result = run(path, capsys)
    assert code == 0, result["stderr"]
    assert json.loads((tmp_path / "seen.json").read_text()) == {
        "AGILAB_PIPELINE_RUN_ID": result["run_id"],
        "AGILAB_PIPELINE_STAGE_INDEX": "2",  # AGILAB's: 1-based (str(idx + 1))
        "AGILAB_PIPELINE_PROFILE": "balanced",
        "MLFLOW_TRACKING_URI": None,
    }
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "file:///tmp/mlruns")
    code, result = run(path, capsys, "--force", "--profile", "fast")
    assert code == 0, result["stderr"]
    seen = json.loads((tmp_path / "seen.json").read_text())
    assert seen["AGILAB_PIPELINE_PROFILE"] == "fast"
    assert seen["MLFLOW_TRACKING_URI"] == "file:///tmp/mlruns"
    assert seen["AGILAB_PIPELINE_RUN_ID"] == result["run_id"]


# -- history files written before the tracker columns -------------------------------------------------------
def test_a_history_file_without_the_tracker_columns_still_reads(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from agilab_dsl.record import history, query
    from agilab_dsl.record.rows import RunRecord, StepRow

    old = pa.schema([f for f in history.schema() if not f.name.startswith("tracked_")])
    run = RunRecord(
        "20260101T000000.000-abcdef",
        1.0,
        2.0,
        "ok",
        "lab",
        "h",
        "app",
        None,
        None,
        [StepRow("a", "ran", metrics={"m": 1.0})],
    )
    table = history._table(tmp_path, run)
    target = tmp_path / "old.parquet"
    pq.write_table(table.select(old.names).cast(old), target)
    step = query.read_run(target).steps[0]
    assert step["metrics"] == {"m": 1.0}
    assert (
        step["tracked_metrics"],
        step["tracked_params"],
        step["tracked_tags"],
        step["tracked_artifacts"],
    ) == (
        [],
        {},
        {},
        [],
    )
