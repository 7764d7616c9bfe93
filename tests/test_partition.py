"""Partition plans reproduce AGILAB's preview numbers exactly (DESIGN §1.2)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agilab_dsl.cli import main
from agilab_dsl.stages.partition import load_grid

CONTRACT = """schema = "agilab.parallel_stage.v1"
name = "process_csv_files"
function = "steps.py:process"
split = "{split}"
input = "{input}"
workers = "auto"
partition_strategy = "{strategy}"
target_partitions = 64
min_partitions_per_worker = 2
reducer = "concat-jsonl"
backend = "local"
output = "out.jsonl"
"""


def contract(
    tmp_path: Path,
    files: int,
    strategy: str = "file-chunks",
    split: str = "files",
    pattern: str = "data/*.csv",
) -> Path:
    (tmp_path / "data").mkdir(exist_ok=True)
    for i in range(files):
        (tmp_path / "data" / f"f{i:02d}.csv").write_text("a,b\n1,2\n", encoding="utf-8")
    (tmp_path / "steps.py").write_text("def process(part):\n    return {}\n", encoding="utf-8")
    path = tmp_path / "parallel_stage.toml"
    path.write_text(CONTRACT.format(split=split, input=pattern, strategy=strategy), encoding="utf-8")
    return path


def plan_json(path: Path, cores: int, capsys: pytest.CaptureFixture[str]) -> dict:
    assert main(["plan", str(path), "--cores", str(cores), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize(
    ("files", "strategy", "workers", "partitions", "splittable"),
    [
        (3, "file-chunks", 8, 64, True),
        (3, "one-file-per-partition", 3, 3, False),
        (10, "file-chunks", 8, 64, True),
        (10, "one-file-per-partition", 8, 10, False),
        (0, "file-chunks", 1, 1, False),
        (0, "one-file-per-partition", 1, 1, False),
    ],
)
def test_agilab_worked_examples(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    files: int,
    strategy: str,
    workers: int,
    partitions: int,
    splittable: bool,
) -> None:
    got = plan_json(contract(tmp_path, files, strategy), 8, capsys)
    assert {
        k: got[k]
        for k in ("input_files", "available_cores", "effective_workers", "planned_partitions", "splittable")
    } == {
        "input_files": files,
        "available_cores": 8,
        "effective_workers": workers,
        "planned_partitions": partitions,
        "splittable": splittable,
    }


def test_requested_times_min_partitions_wins_when_larger(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = contract(tmp_path, 3)
    path.write_text(
        path.read_text()
        .replace("target_partitions = 64", "target_partitions = 0")
        .replace("min_partitions_per_worker = 2", "min_partitions_per_worker = 5")
    )
    got = plan_json(path, 4, capsys)
    assert (got["effective_workers"], got["planned_partitions"]) == (4, 20)


def test_fixed_worker_count_and_unsplittable_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = contract(tmp_path, 5, pattern="data/*.csv")
    path.write_text(path.read_text().replace('workers = "auto"', "workers = 2"))
    got = plan_json(path, 16, capsys)
    assert (got["requested_workers"], got["effective_workers"], got["planned_partitions"]) == (2, 2, 64)
    for f in (tmp_path / "data").glob("*.csv"):
        f.rename(f.with_suffix(".csv.gz"))
    path.write_text(path.read_text().replace("data/*.csv", "data/*.csv.gz"))
    got = plan_json(path, 16, capsys)
    assert (got["splittable"], got["effective_workers"], got["planned_partitions"]) == (False, 2, 5)


def test_parameter_sweep_counts_grid_points(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "grid.toml").write_text(
        "lr = [0.1, 0.01, 0.001]\nlayers = [1, 2]\nseed = 7\n", encoding="utf-8"
    )
    path = contract(tmp_path, 0, "parameter-items", "parameter-sweep", "grid.toml")
    got = plan_json(path, 4, capsys)
    assert (got["grid_points"], got["effective_workers"], got["planned_partitions"]) == (6, 4, 6)


def test_grids_in_toml_json_and_csv(tmp_path: Path) -> None:
    (tmp_path / "g.toml").write_text('a = [1, 2]\nb = ["x", "y", "z"]\nfixed = true\n', encoding="utf-8")
    points = load_grid(tmp_path / "g.toml")
    assert len(points) == 6 and points[0] == {"fixed": True, "a": 1, "b": "x"}
    (tmp_path / "p.toml").write_text("[[points]]\nn = 1\n[[points]]\nn = 2\n", encoding="utf-8")
    assert load_grid(tmp_path / "p.toml") == [{"n": 1}, {"n": 2}]
    (tmp_path / "g.json").write_text(json.dumps({"a": [1, 2, 3], "b": [True]}), encoding="utf-8")
    assert len(load_grid(tmp_path / "g.json")) == 3
    (tmp_path / "g.csv").write_text("a,b\n1,x\n2,y\n", encoding="utf-8")
    assert load_grid(tmp_path / "g.csv") == [{"a": "1", "b": "x"}, {"a": "2", "b": "y"}]


def test_plan_of_a_lab_plans_every_stage_contract(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    contract(tmp_path, 3)
    lab = tmp_path / "lab_steps.toml"
    lab.write_text('[[m]]\nid = "fan"\nstage = "parallel_stage.toml"\n', encoding="utf-8")
    assert main(["plan", str(lab), "--cores", "8", "--json"]) == 0
    (entry,) = json.loads(capsys.readouterr().out)
    assert (entry["stage"], entry["effective_workers"], entry["planned_partitions"]) == ("fan", 8, 64)


def test_plan_text_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", str(contract(tmp_path, 3)), "--cores", "8"]) == 0
    out = capsys.readouterr().out
    assert "8 workers, 64 partitions" in out and "3 files" in out


def test_plan_of_an_invalid_contract_exits_2_with_located_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = contract(tmp_path, 1)
    path.write_text(path.read_text().replace('split = "files"', 'split = "filez"'))
    assert main(["plan", str(path)]) == 2
    assert "parallel_stage.toml:4:9: error[invalid-value]" in capsys.readouterr().err
