"""``history --export-mlflow`` writes what AGILAB's UI shows: ``<app>:<lab>:pipeline`` with nested
``…:stage_N`` runs, AGILAB's tags and D/Q/M/E/R params, in ``MLFLOW_EXPERIMENT_NAME`` (else
"Default"); read back with MlflowClient from a file store in tmp_path."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from agilab_dsl.cli import main

pytest.importorskip("mlflow", reason="MLflow is an optional extra: pip install 'agilab-dsl[mlflow]'")

LAB = '''[__meta__]
schema = "agilab.lab_stages.v1"
version = 1

[[flights]]
id = "load"
D = "Load the flights"
Q = "Which flights are late? {question_tail}"
M = "gpt-oss-120b"
C = """
print("loading")
metrics["rows"] = 3
open("loaded.txt", "w").write("x")
"""
R = "runpy"
produces = ["loaded.txt"]

[[flights]]
id = "score"
C = "metrics['score'] = params['model'] * 2"
E = {runtime}
params = {{ model = 21 }}
depends_on = ["load"]
'''


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A lab in ``lab`` of an app folder ``flights_project`` (AGILAB's ``env.app``)."""
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    lab_dir = tmp_path / "flights_project" / "lab"
    lab_dir.mkdir(parents=True)
    path = lab_dir / "lab_stages.toml"
    path.write_text(LAB.format(question_tail="q" * 600, runtime=json.dumps(sys.prefix)), encoding="utf-8")
    return path


def _client(uri: str) -> Any:
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def _runs(uri: str, experiment: str) -> list:
    client = _client(uri)
    found = client.get_experiment_by_name(experiment)
    assert found is not None, [e.name for e in client.search_experiments()]
    return client.search_runs([found.experiment_id])


def test_runs_carry_agilabs_names_tags_and_params(project: Path, tmp_path: Path, capsys) -> None:
    assert main([str(project)]) == 0
    uri = (tmp_path / "mlruns").as_uri()
    capsys.readouterr()
    assert main(["history", str(project), "--export-mlflow", uri]) == 0
    assert "experiment 'Default': 1 run exported, 0 already there" in capsys.readouterr().out
    runs = _runs(uri, "Default")
    (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    stages = sorted(
        (r for r in runs if "mlflow.parentRunId" in r.data.tags),
        key=lambda r: r.data.tags["agilab.stage_index"],
    )
    assert parent.info.run_name == "flights_project:lab:pipeline"
    assert {k: parent.data.tags[k] for k in ("agilab.component", "agilab.mlflow.evidence_schema")} == {
        "agilab.component": "pipeline",
        "agilab.mlflow.evidence_schema": "workflow.v2",
    }
    assert parent.data.tags["agilab.app"] == "flights_project" and parent.data.tags["agilab.lab"] == "lab"
    assert parent.data.tags["agilab.stages_file"] == str(project.resolve())
    assert parent.data.params == {"sequence": "1,2", "stage_count": "2"}
    assert parent.data.metrics == {"executed_stages": 2.0, "skipped_stages": 0.0}
    assert parent.info.status == "FINISHED"
    load, score = stages
    assert [r.info.run_name for r in stages] == ["flights_project:lab:stage_1", "flights_project:lab:stage_2"]
    for n, stage in enumerate(stages, 1):
        assert stage.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert stage.data.tags["agilab.component"] == "pipeline-stage"
        assert stage.data.tags["agilab.mlflow.evidence_schema"] == "workflow.stage.v2"
        assert stage.data.tags["agilab.app"] == "flights_project" and stage.data.tags["agilab.lab"] == "lab"
        assert stage.data.tags["agilab.stage_index"] == str(n)
    question = load.data.params["question"]
    assert len(question) == 500 and question.startswith("Which flights are late? qqq") and question[-1] == "…"
    assert {k: v for k, v in load.data.params.items() if k != "question"} == {
        "description": "Load the flights",
        "model": "gpt-oss-120b",
        "runtime": "",
        "engine": "runpy",
    }
    assert load.data.tags["agilab.engine"] == "runpy" and load.data.metrics["rows"] == 3.0
    # no R, an E: AGILAB runs it with agi.run; the step's own `model` param does not hide M's
    assert score.data.params == {
        "description": "",
        "question": "",
        "model": "",
        "runtime": sys.prefix,
        "engine": "agi.run",
        "param.model": "21",
    }
    assert score.data.tags["agilab.engine"] == "agi.run" and score.data.tags["agilab.runtime"] == sys.prefix
    assert score.data.metrics["score"] == 42.0
    artifacts = _client(uri).list_artifacts(load.info.run_id, "stage_1")
    assert [a.path for a in artifacts] == ["stage_1/stdout.txt"]


def test_the_experiment_is_mlflow_experiment_name_and_export_is_idempotent(
    project: Path, tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "flights-study")
    assert main([str(project)]) == 0
    assert main([str(project), "--force"]) == 0
    uri = (tmp_path / "mlruns").as_uri()
    capsys.readouterr()
    assert main(["history", str(project), "--export-mlflow", uri]) == 0
    assert "experiment 'flights-study': 2 runs exported, 0 already there" in capsys.readouterr().out
    assert main(["history", str(project), "--export-mlflow", uri]) == 0
    assert "0 runs exported, 2 already there" in capsys.readouterr().out
    runs = _runs(uri, "flights-study")
    assert len(runs) == 6 and not _runs(uri, "Default")
    assert sorted(r.info.run_name for r in runs).count("flights_project:lab:pipeline") == 2


def test_a_lab_outside_any_project_is_named_by_its_module(tmp_path: Path, capsys) -> None:
    lab_dir = tmp_path / "mylab"
    lab_dir.mkdir()
    path = lab_dir / "lab_stages.toml"
    path.write_text(LAB.format(question_tail="", runtime='""'), encoding="utf-8")
    assert main([str(path)]) == 0
    uri = (tmp_path / "mlruns").as_uri()
    assert main(["history", str(path), "--export-mlflow", uri]) == 0
    names = sorted(r.info.run_name for r in _runs(uri, "Default"))
    assert names == ["flights:mylab:pipeline", "flights:mylab:stage_1", "flights:mylab:stage_2"]


def test_a_history_file_of_schema_1_is_still_read_and_exported(project: Path, tmp_path: Path, capsys) -> None:
    """Runs recorded before D/Q/M/E/R were: listed, compared and exported (stage N = its place)."""
    import pyarrow.parquet as pq

    assert main([str(project)]) == 0
    (file,) = (project.parent / ".agilab" / "history").glob("*.parquet")
    table = pq.read_table(file)
    new = ["stage_index", "description", "question", "model", "engine", "runtime"]
    old = table.drop_columns(new).replace_schema_metadata({"agilab.history.schema": "1"})
    pq.write_table(old, file)
    capsys.readouterr()
    assert main(["history", str(project), "--json"]) == 0
    (run,) = json.loads(capsys.readouterr().out)
    assert [s["step_id"] for s in run["steps"]] == ["load", "score"]
    assert "description" not in run["steps"][0]
    uri = (tmp_path / "mlruns").as_uri()
    assert main(["history", str(project), "--export-mlflow", uri]) == 0
    stages = {r.info.run_name: r for r in _runs(uri, "Default") if "mlflow.parentRunId" in r.data.tags}
    assert sorted(stages) == ["flights_project:lab:stage_1", "flights_project:lab:stage_2"]
    load = stages["flights_project:lab:stage_1"]
    assert load.data.params["description"] == "" and load.data.params["engine"] == "runpy"


def test_the_history_records_d_q_m_e_r_and_the_stage_index(project: Path, capsys) -> None:
    assert main([str(project)]) == 0
    assert main([str(project)]) == 0  # nothing stale: not recorded
    project.write_text(project.read_text().replace("* 2", "* 3"), encoding="utf-8")
    assert main([str(project)]) == 0  # `load` fresh, `score` ran
    capsys.readouterr()
    assert main(["history", str(project), "--json"]) == 0
    newest, _ = json.loads(capsys.readouterr().out)
    load, score = newest["steps"]
    assert load["status"] == "fresh" and score["status"] == "ran"
    assert {k: load[k] for k in ("stage_index", "description", "model", "engine")} == {
        "stage_index": 1,
        "description": "Load the flights",
        "model": "gpt-oss-120b",
        "engine": "runpy",
    }
    assert score["stage_index"] == 2 and score["runtime"] == sys.prefix and score.get("engine") is None


@pytest.mark.parametrize("uri", ["bogus://x", "http://127.0.0.1:1"])
def test_a_tracking_uri_mlflow_cannot_use_is_a_clear_error(uri: str, project: Path, capsys) -> None:
    assert main([str(project)]) == 0
    capsys.readouterr()
    assert main(["history", str(project), "--export-mlflow", uri]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"agilab-run history: cannot export to the MLflow tracking store {uri!r}: ")
    assert "Traceback" not in err and err.count("\n") == 1
