"""Parallel stages: real partitions, streaming reducers, and the same output on every backend."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agilab_dsl.check.files import load
from agilab_dsl.stages.parallel import Located, StageFailed, attempt, run_contract
from agilab_dsl.stages.splits import Partition, make_partitions

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

def csv_text(part):
    # CSV text with CRLF line ends, the last row without one
    return "k,v\\r\\n" + "\\r\\n".join(f'"r,{part.index}",{n}' for n in range(2))

def wrong_columns(part):
    return [{"x": 1}] if part.index == 0 else [{"y": 2}]

def die_once(part):
    # the first time partition 0 runs, its worker process dies
    marker = os.path.join(os.path.dirname(part.path), "died-once")
    if part.index == 0 and not os.path.exists(marker):
        open(marker, "w").close()
        os._exit(9)
    return {"i": part.index, "file": os.path.basename(part.path)}

def slow_first(part):
    # early partitions finish last: the output must still be in partition order
    import time
    time.sleep(0.3 if part.index < 2 else 0.0)
    return {"i": part.index}

def threads(part):
    return {"i": part.index, "omp": os.environ.get("OMP_NUM_THREADS"), "pid": os.getpid()}

def with_xp(part, xp):
    return {"i": part.index, "xp": xp.__name__, "sum": int(xp.arange(part.index + 3).sum())}
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


def per_file(folder: Path, function: str, **fields: object) -> Path:
    """A contract of one partition per file, reduced to a JSON list in ``out/r.json``."""
    fields = {
        "partition_strategy": "one-file-per-partition",
        "reducer": "collect-json",
        "output": "out/r.json",
    } | fields
    return contract(folder, function=function, **fields)


def csv_files(folder: Path, sizes: tuple[int, ...] = (40, 7, 0)) -> None:
    (folder / "data").mkdir(exist_ok=True)
    for n, rows in enumerate(sizes):
        with (folder / "data" / f"f{n}.csv").open("w", newline="") as fh:
            w = csv.writer(fh, lineterminator="\n")
            w.writerow(["k", "v"])
            w.writerows([f"r{i}", i] for i in range(rows))


def run(path: Path, backend: str | dict[str, object], **options: object) -> str:
    chosen = {"backend": backend} if isinstance(backend, str) else backend
    result = run_contract(load(path, "contract"), path, **({"cores": 2} | chosen | options))  # type: ignore[arg-type]
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


def test_concat_csv_of_file_chunks_is_the_same_on_every_backend(
    tmp_path: Path, on: dict[str, object]
) -> None:
    csv_files(tmp_path)
    path = contract(tmp_path)
    expected = run(path, "local")
    assert run(path, on) == expected
    rows = list(csv.DictReader(expected.splitlines()))
    assert sum(int(r["rows"]) for r in rows) == 47 and sum(int(r["total"]) for r in rows) == 780 + 21


def test_row_chunks_of_a_parquet_table_by_row_groups(tmp_path: Path, on: dict[str, object]) -> None:
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
    got = json.loads(run(path, on))
    assert len(got) == 6 and sum(g["rows"] for g in got) == 1000 and sum(g["total"] for g in got) == 499500


def test_parameter_sweep_over_a_toml_grid_of_axes(tmp_path: Path, on: dict[str, object]) -> None:
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
    lines = [json.loads(line) for line in run(path, on).splitlines()]
    assert [(p["a"], p["b"]) for p in lines] == [(1, 10), (1, 20), (2, 10), (2, 20), (3, 10), (3, 20)]
    assert [p["product"] for p in lines] == [10, 20, 20, 40, 30, 60]


def test_empty_input_writes_an_empty_output_when_allowed(tmp_path: Path, on: dict[str, object]) -> None:
    path = contract(
        tmp_path, input="nothing/*.csv", reducer="collect-json", output="out/r.json", allow_empty=True
    )
    assert json.loads(run(path, on)) == []


def test_a_raising_partition_is_named_and_no_output_is_left(tmp_path: Path, on: dict[str, object]) -> None:
    csv_files(tmp_path, (40, 40, 40))
    path = per_file(tmp_path, "funcs.py:boom")
    with pytest.raises(StageFailed) as info:
        run(path, on)
    assert "partition 1 (" in str(info.value) and "f1.csv" in str(info.value)
    assert "partition one is bad" in info.value.failed.traceback
    assert not (tmp_path / "out" / "r.json").exists()
    assert list((tmp_path / "out").iterdir()) == []  # no temporary left either


def test_retries_rerun_a_failing_partition(tmp_path: Path, on: dict[str, object]) -> None:
    csv_files(tmp_path, (5, 5))
    path = per_file(tmp_path, "funcs.py:flaky")
    with pytest.raises(StageFailed):
        run(path, on)
    for marker in (tmp_path / "data").glob("tried-*"):
        marker.unlink()
    assert json.loads(run(path, on, retries=1)) == [{"i": 0}, {"i": 1}]


def test_a_killed_pool_worker_fails_its_partition(tmp_path: Path) -> None:
    csv_files(tmp_path, (5, 5))
    path = per_file(tmp_path, "funcs.py:die")
    with pytest.raises(StageFailed) as info:
        run(path, "pool")
    assert "partition" in str(info.value) and not (tmp_path / "out" / "r.json").exists()


def test_concat_csv_schema_mismatch_names_the_partition(tmp_path: Path) -> None:
    csv_files(tmp_path, (5, 5))
    path = contract(tmp_path, function="funcs.py:wrong_columns", partition_strategy="one-file-per-partition")
    from agilab_dsl.stages.reducers import ReduceError

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
    from agilab_dsl.stages.backends.gpu import missing

    lacking = missing()
    if lacking is None:  # a GPU machine: the contract runs there
        assert proc.returncode == 0, proc.stderr
    else:  # says what is missing, exit 1, no traceback
        assert proc.returncode == 1 and f"backend 'gpu': {lacking}" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_partition_order_is_kept_when_early_partitions_finish_last(
    tmp_path: Path, on: dict[str, object]
) -> None:
    csv_files(tmp_path, (3, 3, 3, 3, 3))
    path = contract(
        tmp_path,
        function="funcs.py:slow_first",
        partition_strategy="one-file-per-partition",
        reducer="concat-jsonl",
        output="out/r.jsonl",
    )
    assert [json.loads(line)["i"] for line in run(path, on).splitlines()] == [0, 1, 2, 3, 4]


def test_a_killed_worker_process(tmp_path: Path, on: dict[str, object]) -> None:
    """A worker process that dies mid-stage: Dask re-runs its partitions on the workers left and
    the stage completes with the same output; a joblib pool fails the partition, naming it."""
    if on["backend"] == "local":
        pytest.skip("local runs partitions in the stage's own process: a dying partition ends the stage")
    csv_files(tmp_path, (5, 5, 5, 5))
    path = per_file(tmp_path, "funcs.py:die_once")
    if on["backend"] == "pool":
        with pytest.raises(StageFailed, match=r"partition \d \(.*f\d.csv\) failed"):
            run(path, on)
        assert not (tmp_path / "out" / "r.json").exists()
        return
    got = run(path, on)
    assert (tmp_path / "data" / "died-once").exists()  # a worker did die
    assert got == run(path, "local")  # the marker is there now: local runs all four
    assert [r["i"] for r in json.loads(got)] == [0, 1, 2, 3]
    if "scheduler" in on:
        on_cluster = on["scheduler"]
        from agilab_dsl.stages.backends.dask import connect

        client = connect(str(on_cluster))
        try:  # the nanny restarted the dead worker
            client.wait_for_workers(2, timeout=60)
        finally:
            client.close()


def test_inner_threads_are_limited_to_the_stage_share(tmp_path: Path) -> None:
    csv_files(tmp_path, (2, 2, 2, 2))
    path = per_file(tmp_path, "funcs.py:threads", workers=2)
    for backend in ("pool", "dask"):
        got = json.loads(run(path, backend, cores=4, limit=4))  # 4 cores, 2 processes: 2 threads each
        assert {g["omp"] for g in got} == {"2"}, (backend, got)
        got = json.loads(run(path, backend, cores=4, limit=1))  # a share of one core: one process
        assert len({g["pid"] for g in got}) == 1 and {g["omp"] for g in got} == {"1"}, (backend, got)


def test_auto_picks_local_for_small_work_and_pool_for_large(tmp_path: Path) -> None:
    from agilab_dsl.stages.parallel import AUTO_SMALL_BYTES

    csv_files(tmp_path, (20, 20))
    path = contract(tmp_path, partition_strategy="one-file-per-partition", backend="pool")
    small = run_contract(load(path, "contract"), path, backend="auto", cores=2)
    assert small.backend == "local" and "under 1 MiB" in small.notes[0]
    csv_files(tmp_path, (AUTO_SMALL_BYTES // 8, 20))  # over 1 MiB
    large = run_contract(load(path, "contract"), path, backend="auto", cores=2)
    assert large.backend == "pool" and large.notes == ("auto: pool (2 partitions on 2 workers)",)
    assert sum(int(r["rows"]) for r in csv.DictReader(Path(large.output).read_text().splitlines())) == (
        AUTO_SMALL_BYTES // 8 + 20
    )
    path = contract(tmp_path, partition_strategy="one-file-per-partition", backend="pool", workers=1)
    one = run_contract(load(path, "contract"), path, backend="auto", cores=2)
    assert one.backend == "local" and "on 1 worker" in one.notes[0]


def test_a_dask_scheduler_that_does_not_answer_is_a_clear_failure(tmp_path: Path) -> None:
    import socket

    with socket.socket() as sock:  # a loopback port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    csv_files(tmp_path)
    path = contract(tmp_path)
    from agilab_dsl.stages.parallel import StageProblem, attempt

    got = attempt(path, backend="dask", scheduler=f"127.0.0.1:{port}")
    assert isinstance(got, StageProblem)
    assert f"no Dask scheduler answers at 127.0.0.1:{port}" in got.message and "dask scheduler" in got.message


def test_a_local_cluster_says_its_dashboard(tmp_path: Path) -> None:
    csv_files(tmp_path)
    path = contract(tmp_path)
    heard: list[str] = []
    result = run_contract(load(path, "contract"), path, backend="dask", cores=2, say=heard.append)
    assert result.backend == "dask" and result.workers == 2
    assert heard[0].startswith("dask: LocalCluster of 2 workers, dashboard http://127.0.0.1:")
    assert result.notes == tuple(heard)


def test_an_edited_function_file_is_loaded_again(tmp_path: Path) -> None:
    from agilab_dsl.stages.backends import FunctionRef

    (tmp_path / "m.py").write_text("def f(part):\n    return 1\n", encoding="utf-8")
    ref = FunctionRef.parse("m.py:f", str(tmp_path))
    assert ref.load()(None) == 1
    (tmp_path / "m.py").write_text("def f(part):\n    return 22\n", encoding="utf-8")
    assert ref.load()(None) == 22
    (tmp_path / "dotted_mod_x.py").write_text("def f(part):\n    return 1\n", encoding="utf-8")
    dotted = FunctionRef.parse("dotted_mod_x:f", str(tmp_path))
    assert dotted.load()(None) == 1
    (tmp_path / "dotted_mod_x.py").write_text("def f(part):\n    return 333\n", encoding="utf-8")
    assert dotted.load()(None) == 333  # a dotted module is reloaded too


def test_the_cython_bit_says_python_runs_when_nothing_is_compiled(tmp_path: Path) -> None:
    csv_files(tmp_path)
    path = contract(tmp_path)
    result = run_contract(load(path, "contract"), path, backend="local", cores=2, compiled=True)
    assert result.notes == ("cython: no compiled module beside funcs.py; running Python",)
    assert Path(result.output).read_text() == run(path, "local")


EXTENSION = r"""
#define PY_SSIZE_T_CLEAN
#include <Python.h>
static PyObject *stats(PyObject *self, PyObject *part) { return PyUnicode_FromString("compiled"); }
static PyMethodDef methods[] = {{"stats", stats, METH_O, NULL}, {NULL, NULL, 0, NULL}};
static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "funcs", NULL, -1, methods};
PyMODINIT_FUNC PyInit_funcs(void) { return PyModule_Create(&module); }
"""


def test_the_cython_bit_runs_a_compiled_module_when_one_is_there(tmp_path: Path) -> None:
    import importlib.machinery
    import shutil
    import subprocess
    import sysconfig

    compiler = shutil.which("cc") or shutil.which("gcc")
    include = sysconfig.get_paths()["include"]
    if compiler is None or not (Path(include) / "Python.h").exists():
        pytest.skip("no C compiler or Python headers to build a compiled twin of funcs.py")
    csv_files(tmp_path, (3,))
    path = contract(
        tmp_path, reducer="collect-json", output="out/r.json", partition_strategy="one-file-per-partition"
    )
    (tmp_path / "funcs.c").write_text(EXTENSION, encoding="utf-8")
    twin = tmp_path / f"funcs{importlib.machinery.EXTENSION_SUFFIXES[0]}"
    subprocess.run(
        [compiler, "-shared", "-fPIC", f"-I{include}", str(tmp_path / "funcs.c"), "-o", str(twin)], check=True
    )
    result = run_contract(load(path, "contract"), path, backend="local", cores=2, compiled=True)
    assert result.notes == (f"cython: running the compiled module {twin.name}",)
    assert json.loads(Path(result.output).read_text()) == ["compiled"]
    assert json.loads(run(path, "local"))[0][0]["rows"] == 3  # without the bit: the Python source


def test_concat_csv_copies_csv_text_rows_with_one_header(tmp_path: Path) -> None:
    csv_files(tmp_path, (1, 1))
    path = per_file(tmp_path, "funcs.py:csv_text", reducer="concat-csv", output="out/r.csv")
    text = run(path, "local")
    assert text == 'k,v\n"r,0",0\n"r,0",1\n"r,1",0\n"r,1",1\n'
    assert [row["k"] for row in csv.DictReader(text.splitlines())] == ["r,0", "r,0", "r,1", "r,1"]


def test_a_partition_that_keeps_killing_dask_workers_fails_named(tmp_path: Path) -> None:
    import dask

    csv_files(tmp_path, (5, 5))
    path = per_file(tmp_path, "funcs.py:die")
    # the LocalCluster's scheduler runs in this process: it gives up on the first lost worker
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}), pytest.raises(StageFailed) as info:
        run(path, "dask")
    assert str(info.value).startswith("partition 0 (") and "KilledWorker" in str(info.value)
    assert not (tmp_path / "out" / "r.json").exists()


def test_an_input_matching_no_file_is_a_located_error(tmp_path: Path) -> None:
    path = contract(tmp_path, input="nothing/*.csv", reducer="collect-json", output="out/r.json")
    with pytest.raises(Located) as info:
        run(path, "pool")
    d = info.value.diagnostic
    assert (d.code, d.line, d.column) == ("input-empty", 5, 9)  # at the glob's value
    assert d.message.startswith("input 'nothing/*.csv' matches no file")
    assert "allow_empty = true" in (d.hint or "")
    assert not (tmp_path / "out").exists()  # no output written
    problem = attempt(path, backend="local")
    assert problem.located and problem.message.startswith(f"{path}:5:9: error[input-empty]")
    assert not problem.traceback


@pytest.mark.parametrize("backend", ["local", "pool", "auto"])
@pytest.mark.parametrize(
    ("module", "expected"),
    [
        ("import nosuch_dependency\n", "ModuleNotFoundError: No module named 'nosuch_dependency'"),
        ("raise RuntimeError('no licence')\n", "RuntimeError: no licence"),
    ],
)  # (a module with a syntax error, or without the function, is located when the contract loads)
def test_a_partition_module_that_cannot_be_imported_is_a_located_error(
    tmp_path: Path, backend: str, module: str, expected: str
) -> None:
    csv_files(tmp_path, (5, 5))
    path = contract(tmp_path)
    (tmp_path / "funcs.py").write_text(module, encoding="utf-8")
    problem = attempt(path, backend=backend, cores=2)
    assert problem.located and not problem.traceback  # not each partition's traceback
    first = problem.message.splitlines()[0]
    assert first.startswith(
        f"{path}:3:12: error[function-unimportable]: cannot import the function funcs.py:stats"
    )
    assert expected in first
    assert 'function = "funcs.py:stats"' in problem.message  # the source line, under it a caret
    assert not (tmp_path / "out" / "result.csv").exists()


@given(st.integers(min_value=1, max_value=300), st.integers(min_value=1, max_value=64))
def test_dask_batches_are_consecutive_and_even(count: int, tasks: int) -> None:
    from agilab_dsl.stages.backends.dask import batched

    parts = [Partition(i) for i in range(count)]
    batches = batched(parts, tasks)
    assert [p for b in batches for p in b] == parts  # every partition once, in order
    assert len(batches) == min(tasks, count) and all(batches)
    sizes = [len(b) for b in batches]
    assert max(sizes) - min(sizes) <= 1 and sizes == sorted(sizes, reverse=True)


def test_dask_sends_a_few_tasks_per_worker_thread_and_keeps_partition_order(
    tmp_path: Path, dask_processes
) -> None:
    from agilab_dsl.stages.backends import Done, FunctionRef, PartitionCall
    from agilab_dsl.stages.backends.dask import TASKS_PER_THREAD, DaskBackend

    (tmp_path / "ident.py").write_text("def index(part):\n    return part.index\n", encoding="utf-8")
    call = PartitionCall(FunctionRef.parse("ident.py:index", str(tmp_path)))
    backend = DaskBackend(2, scheduler=dask_processes.address)
    sent: list[int] = []
    submit = backend.client.map

    def counted(function, batches, **kwargs):  # type: ignore[no-untyped-def]
        sent.extend(len(b) for b in batches)
        return submit(function, batches, **kwargs)

    backend.client.map = counted  # type: ignore[method-assign]
    try:
        threads = backend._threads()
        parts = [Partition(i) for i in range(37)]
        got = list(backend.map(call, parts))
    finally:
        backend.close()
    assert threads == 2  # two single-threaded `dask worker` processes
    assert [p.index for p, _ in got] == list(range(37))
    assert all(isinstance(o, Done) for _, o in got) and [o.value for _, o in got] == list(range(37))
    assert len(sent) == TASKS_PER_THREAD * threads and sum(sent) == 37
