"""The ``gpu`` backend: CuPy on this machine's devices or Dask workers offering ``GPU``, its clear
failure where neither is, and ``fallback = "cpu"``. Tests that need a CUDA device skip, saying so,
where none is."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from agilab_dsl.check.files import load
from agilab_dsl.stages.backends import BackendUnavailable
from agilab_dsl.stages.backends.gpu import missing
from agilab_dsl.stages.parallel import StageProblem, attempt, run_contract

LACKING = missing()
needs_gpu = pytest.mark.skipif(LACKING is not None, reason=f"no GPU here: {LACKING}")

FUNCS = """
import time

def total(part, xp):
    n = part.params["n"]
    return {"n": n, "xp": xp.__name__, "sum": int(xp.arange(n, dtype=xp.int64).sum())}

def on_device(part, xp):
    start = time.perf_counter()
    x = xp.ones((512, 512))
    for _ in range(20):
        x = x @ x / 512
    float(x.sum())
    return {"device": int(xp.cuda.Device().id), "start": start, "end": time.perf_counter()}
"""


def sweep(folder: Path, function: str = "funcs.py:total", points: int = 6) -> Path:
    (folder / "funcs.py").write_text(FUNCS, encoding="utf-8")
    (folder / "grid.json").write_text(json.dumps([{"n": 10**k} for k in range(points)]), encoding="utf-8")
    path = folder / "parallel_stage.toml"
    path.write_text(
        "\n".join(
            [
                'schema = "agilab.parallel_stage.v1"',
                'name = "gpu-sweep"',
                f'function = "{function}"',
                'split = "parameter-sweep"',
                'input = "grid.json"',
                "workers = 2",
                'partition_strategy = "parameter-items"',
                "target_partitions = 0",
                "min_partitions_per_worker = 1",
                'reducer = "concat-jsonl"',
                'backend = "gpu"',
                'output = "out/sweep.jsonl"',
            ]
        )
        + "\n",
        encoding="utf-8",
    )
    return path


def lines(path: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines()]


EXPECTED = [sum(range(10**k)) for k in range(6)]


def test_without_a_gpu_the_stage_fails_saying_what_is_missing(tmp_path: Path) -> None:
    if LACKING is None:
        pytest.skip("this machine has a usable GPU: the failure cannot happen here")
    got = attempt(sweep(tmp_path), cores=2)
    assert isinstance(got, StageProblem) and got.message.startswith(f"backend 'gpu': {LACKING}")
    assert 'fallback = "cpu"' in got.message and not (tmp_path / "out" / "sweep.jsonl").exists()


def test_fallback_cpu_gives_numpy_to_functions_taking_xp(tmp_path: Path) -> None:
    path = sweep(tmp_path)
    heard: list[str] = []
    result = run_contract(load(path, "contract"), path, cores=2, fallback="cpu", say=heard.append)
    got = lines(result.output)
    assert [g["sum"] for g in got] == EXPECTED
    if LACKING is None:  # a GPU machine: the fallback is not taken
        assert result.backend == "gpu" and {g["xp"] for g in got} == {"cupy"}
    else:
        assert result.backend == "pool (gpu fallback)" and {g["xp"] for g in got} == {"numpy"}
        assert heard == [f'gpu: {LACKING}; fallback = "cpu": running on pool with numpy']


def test_on_dask_partitions_need_a_worker_offering_gpu(tmp_path: Path, dask_processes: object) -> None:
    """The test cluster's workers offer no GPU resource: a clear failure, or the CPU fallback."""
    path = sweep(tmp_path)
    address = dask_processes.address  # type: ignore[attr-defined]
    with pytest.raises(BackendUnavailable, match=r"no worker of the Dask scheduler .* offers resource GPU"):
        run_contract(load(path, "contract"), path, cores=2, scheduler=address)
    result = run_contract(load(path, "contract"), path, cores=2, scheduler=address, fallback="cpu")
    assert result.backend == "dask (gpu fallback)"
    assert [g["sum"] for g in lines(result.output)] == EXPECTED


@needs_gpu
def test_cupy_computes_what_numpy_computes(tmp_path: Path) -> None:
    path = sweep(tmp_path)
    result = run_contract(load(path, "contract"), path, cores=2)
    got = lines(result.output)
    assert result.backend == "gpu" and {g["xp"] for g in got} == {"cupy"}
    assert [g["sum"] for g in got] == EXPECTED


@needs_gpu
def test_one_partition_per_device_at_a_time(tmp_path: Path) -> None:
    path = sweep(tmp_path, "funcs.py:on_device", points=8)
    result = run_contract(load(path, "contract"), path, cores=2)
    got = lines(result.output)
    import cupy

    devices = cupy.cuda.runtime.getDeviceCount()
    assert {g["device"] for g in got} <= set(range(devices))
    for device in {g["device"] for g in got}:
        spans = sorted((g["start"], g["end"]) for g in got if g["device"] == device)
        assert all(a_end <= b_start for (_, a_end), (b_start, _) in itertools.pairwise(spans))
