"""Parallel stages: real partitions, streaming reducers, and the same output on every backend."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from agilab_dsl.check import load
from agilab_dsl.parallel import StageFailed, run_contract
from agilab_dsl.splits import Partition, make_partitions

BACKENDS = ["local", "pool"]  # dask and gpu: not in this version yet

FUNCS = """
import json, os

def stats(part):
    rows = [line.split(",") for line in part.read_text().splitlines()[1:]]
    return [{"file": os.path.basename(part.path), "rows": len(rows), "total": sum(int(r[1]) for r in rows)}]

def table_sum(part):
    t = part.read_table()
    return {"rows": t.num_rows, "total": sum(t.column("v").to_pylist())}

def sweep(part):
    return {"a": part.params["a"], "b": part.params["b"], "product": part.params["a"] * part.params["b"]}

def boom(part):
    if part.index == 1:
        raise ValueError("partition one is bad")
    return {"i": part.index}

def flaky(part):
    marker = os.path.join(os.path.dirname(part.path), f"tried-{part.index}")
    if not os.path.exists(marker):
        open(marker, "w").close()
        raise RuntimeError("first try fails")
    return {"i": part.index}

def die(part):
    if part.index == 0:
        os._exit(9)
    return {"i": part.index}

def wrong_columns(part):
    return [{"x": 1}] if part.index == 0 else [{"y": 2}]
"""


def contract(folder: Path, **fields: object) -> Path:
    base = {
        "schema": "agilab.parallel_stage.v1",
        "name": "t",
        "function": "funcs.py:stats",
        "split": "files",
        "input": "data/*.csv",
        "workers": 2,
        "partition_strategy": "file-chunks",
        "target_partitions": 6,
        "min_partitions_per_worker": 1,
        "reducer": "concat-csv",
        "backend": "local",
        "output": "out/result.csv",
        "notes": "test",
    }
    base.update(fields)
    lines = [f"{k} = {json.dumps(v)}" for k, v in base.items()]
    path = folder / "parallel_stage.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    (folder / "funcs.py").write_text(FUNCS, encoding="utf-8")
    return path


def csv_files(folder: Path, sizes: tuple[int, ...] = (40, 7, 0)) -> None:
    (folder / "data").mkdir(exist_ok=True)
    for n, rows in enumerate(sizes):
        with (folder / "data" / f"f{n}.csv").open("w", newline="") as fh:
            w = csv.writer(fh, lineterminator="\n")
            w.writerow(["k", "v"])
            w.writerows([f"r{i}", i] for i in range(rows))


def run(path: Path, backend: str, **options: object) -> str:
    result = run_contract(load(path, "contract"), path, backend=backend, cores=2, **options)
    return Path(result.output).read_text(encoding="utf-8")


def test_file_chunks_cover_each_file_exactly_with_its_header(tmp_path: Path) -> None:
    csv_files(tmp_path, (500, 3))
    files = [str(tmp_path / "data" / "f0.csv"), str(tmp_path / "data" / "f1.csv")]
    parts = make_partitions("file-chunks", files, 10, True)
    assert [p.index for p in parts] == list(range(len(parts))) and len(parts) > 2
    for f in files:
        mine = [p for p in parts if p.path == f]
        text = Path(f).read_text()
        header, body = text.split("\n", 1)
        assert all(p.read_text().startswith(header + "\n") for p in mine)  # header carried
        assert "".join(p.read_text()[len(header) + 1 :] for p in mine) == body  # nothing lost or doubled
        assert all(p.read_text().endswith("\n") for p in mine)  # whole lines only


def test_header_only_and_empty_files_yield_no_rows(tmp_path: Path) -> None:
    csv_files(tmp_path, (0,))
    parts = make_partitions("file-chunks", [str(tmp_path / "data" / "f0.csv")], 4, True)
    assert parts == []


@pytest.mark.parametrize("backend", BACKENDS)
def test_concat_csv_of_file_chunks_is_the_same_on_every_backend(tmp_path: Path, backend: str) -> None:
    csv_files(tmp_path)
    path = contract(tmp_path)
    expected = run(path, "local")
    assert run(path, backend) == expected
    rows = list(csv.DictReader(expected.splitlines()))
    assert sum(int(r["rows"]) for r in rows) == 47 and sum(int(r["total"]) for r in rows) == 780 + 21


@pytest.mark.parametrize("backend", BACKENDS)
def test_row_chunks_of_a_parquet_table_by_row_groups(tmp_path: Path, backend: str) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    (tmp_path / "data").mkdir()
    pq.write_table(pa.table({"v": list(range(1000))}), tmp_path / "data" / "t.parquet", row_group_size=100)
    path = contract(
        tmp_path,
        function="funcs.py:table_sum",
        split="data-partitions",
        input="data/*.parquet",
        partition_strategy="row-chunks",
        reducer="collect-json",
        output="out/sums.json",
    )
    got = json.loads(run(path, backend))
    assert len(got) == 6 and sum(g["rows"] for g in got) == 1000 and sum(g["total"] for g in got) == 499500


@pytest.mark.parametrize("backend", BACKENDS)
def test_parameter_sweep_over_a_toml_grid_of_axes(tmp_path: Path, backend: str) -> None:
    (tmp_path / "grid.toml").write_text("a = [1, 2, 3]\nb = [10, 20]\n", encoding="utf-8")
    path = contract(
        tmp_path,
        function="funcs.py:sweep",
        split="parameter-sweep",
        input="grid.toml",
        partition_strategy="parameter-items",
        reducer="concat-jsonl",
        output="out/sweep.jsonl",
    )
    lines = [json.loads(line) for line in run(path, backend).splitlines()]
    assert [(p["a"], p["b"]) for p in lines] == [(1, 10), (1, 20), (2, 10), (2, 20), (3, 10), (3, 20)]
    assert [p["product"] for p in lines] == [10, 20, 20, 40, 30, 60]


@pytest.mark.parametrize("backend", BACKENDS)
def test_empty_input_writes_an_empty_output(tmp_path: Path, backend: str) -> None:
    path = contract(tmp_path, input="nothing/*.csv", reducer="collect-json", output="out/r.json")
    assert json.loads(run(path, backend)) == []


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_raising_partition_is_named_and_no_output_is_left(tmp_path: Path, backend: str) -> None:
    csv_files(tmp_path, (40, 40, 40))
    path = contract(
        tmp_path,
        function="funcs.py:boom",
        partition_strategy="one-file-per-partition",
        reducer="collect-json",
        output="out/r.json",
    )
    with pytest.raises(StageFailed) as info:
        run(path, backend)
    assert "partition 1 (" in str(info.value) and "f1.csv" in str(info.value)
    assert "partition one is bad" in info.value.failed.traceback
    assert not (tmp_path / "out" / "r.json").exists()
    assert list((tmp_path / "out").iterdir()) == []  # no temporary left either


@pytest.mark.parametrize("backend", BACKENDS)
def test_retries_rerun_a_failing_partition(tmp_path: Path, backend: str) -> None:
    csv_files(tmp_path, (5, 5))
    path = contract(
        tmp_path,
        function="funcs.py:flaky",
        partition_strategy="one-file-per-partition",
        reducer="collect-json",
        output="out/r.json",
    )
    with pytest.raises(StageFailed):
        run(path, backend)
    for marker in (tmp_path / "data").glob("tried-*"):
        marker.unlink()
    assert json.loads(run(path, backend, retries=1)) == [{"i": 0}, {"i": 1}]


def test_a_killed_pool_worker_fails_its_partition(tmp_path: Path) -> None:
    csv_files(tmp_path, (5, 5))
    path = contract(
        tmp_path,
        function="funcs.py:die",
        partition_strategy="one-file-per-partition",
        reducer="collect-json",
        output="out/r.json",
    )
    with pytest.raises(StageFailed) as info:
        run(path, "pool")
    assert "partition" in str(info.value) and not (tmp_path / "out" / "r.json").exists()


def test_concat_csv_schema_mismatch_names_the_partition(tmp_path: Path) -> None:
    csv_files(tmp_path, (5, 5))
    path = contract(tmp_path, function="funcs.py:wrong_columns", partition_strategy="one-file-per-partition")
    from agilab_dsl.reducers import ReduceError

    with pytest.raises(ReduceError, match=r"partition 1 \(.*f1.csv\) returned columns \['y'\]"):
        run(path, "local")


def test_partition_describes_itself() -> None:
    assert Partition(3, params={"a": 1}).describe() == "partition 3 (params {'a': 1})"
    assert Partition(0, "x.csv", 10, 20, "bytes").describe() == "partition 0 (x.csv bytes 10-20)"


def test_a_contract_runs_directly_from_the_command_line(tmp_path: Path) -> None:
    import subprocess
    import sys

    csv_files(tmp_path)
    path = contract(tmp_path)
    proc = subprocess.run(
        [sys.executable, "-m", "agilab_dsl", str(path), "--json", "--backend", "pool"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["backend"] == "pool" and (tmp_path / "out" / "result.csv").exists()
    proc = subprocess.run(
        [sys.executable, "-m", "agilab_dsl", str(path), "--backend", "gpu"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 1 and "backend 'gpu' is not available" in proc.stderr
    assert "Traceback" not in proc.stderr
