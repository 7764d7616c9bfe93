"""Parallel stages inside a lab run: the backend each step gets (its own, its mode, the settings'
[cluster] flags, --backend), one LocalCluster per run, an existing scheduler, the core share of -j N."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from agilab_dsl.cli import main
from agilab_dsl.stages.cores import available_cores

FUNCS = """
import os

def work(part):
    return {"i": part.index, "omp": os.environ.get("OMP_NUM_THREADS")}

def arrays(part, xp):
    return {"i": part.index, "xp": xp.__name__}
"""


def contract(folder: Path, backend: str = "local", function: str = "work") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "data").mkdir(exist_ok=True)
    for n in range(3):
        (folder / "data" / f"{n}.txt").write_text(f"line {n}\n", encoding="utf-8")
    (folder / "funcs.py").write_text(FUNCS, encoding="utf-8")
    (folder / "parallel_stage.toml").write_text(
        'schema = "agilab.parallel_stage.v1"\nname = "p"\n'
        f'function = "funcs.py:{function}"\nsplit = "files"\n'
        'input = "data/*.txt"\nworkers = 2\npartition_strategy = "one-file-per-partition"\n'
        'target_partitions = 0\nmin_partitions_per_worker = 1\nreducer = "collect-json"\n'
        f'backend = "{backend}"\noutput = "out.json"\n',
        encoding="utf-8",
    )


def lab(folder: Path, steps: dict[str, str], settings: str = "") -> Path:
    """A lab of parallel steps: name → extra TOML lines of the step (its contract in ``name/``)."""
    body = ""
    for name, extra in steps.items():
        body += f'[[m]]\nid = "{name}"\nstage = "{name}/parallel_stage.toml"\nproduces = ["{name}/out.json"]\n{extra}\n'
    path = folder / "lab_steps.toml"
    path.write_text(body, encoding="utf-8")
    if settings:
        (folder / "app_settings.toml").write_text(settings, encoding="utf-8")
    return path


def run(path: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, dict, str]:
    code = main([str(path), "--json", *extra])
    captured = capsys.readouterr()
    return code, json.loads(captured.out), captured.err


def test_dask_steps_share_one_local_cluster_started_for_the_run(tmp_path: Path, capsys) -> None:
    contract(tmp_path / "a", "dask")
    contract(tmp_path / "b", "local")
    path = lab(tmp_path, {"a": "", "b": 'backend = "dask"'})
    code, _, err = run(path, capsys, "-j", "2")
    assert code == 0, err
    said = [line.strip() for line in err.splitlines() if "dask:" in line]
    (started,) = [line for line in said if "LocalCluster for this run" in line]
    address = started.split(" at ")[1].split(",")[0]
    assert "dashboard http://127.0.0.1:" in started
    # both steps connected to that cluster (each says so under its ✓ line)
    assert sum(f"dask: scheduler {address}" in line for line in said) == 2, err
    assert "partitions on dask" in err
    for step in ("a", "b"):
        assert [r["i"] for r in json.loads((tmp_path / step / "out.json").read_text())] == [0, 1, 2]


def test_cluster_enabled_settings_send_the_step_to_their_scheduler(
    tmp_path: Path, capsys, dask_processes
) -> None:
    contract(tmp_path / "a", "local")
    settings = f'[cluster]\npool = false\ncluster_enabled = true\nscheduler = "{dask_processes.address.removeprefix("tcp://")}"\n'
    path = lab(tmp_path, {"a": ""}, settings)
    code, _, err = run(path, capsys)
    assert code == 0, err
    assert f"dask: scheduler {dask_processes.address.removeprefix('tcp://')}" in err
    assert "LocalCluster" not in err


def test_scheduler_option_and_backend_option_win(tmp_path: Path, capsys, dask_processes) -> None:
    contract(tmp_path / "a", "local")
    path = lab(tmp_path, {"a": 'backend = "pool"'})
    code, _, err = run(path, capsys, "--backend", "dask", "--scheduler", dask_processes.address)
    assert code == 0, err
    assert f"dask: scheduler {dask_processes.address}" in err and "3 partitions on dask" in err


def test_mode_bits_choose_the_backend_and_the_cython_bit_says_what_ran(tmp_path: Path, capsys) -> None:
    contract(tmp_path / "a", "local")
    path = lab(tmp_path, {"a": "mode = 3"})  # pool + cython
    code, _, err = run(path, capsys)
    assert code == 0, err
    assert "3 partitions on pool" in err
    assert "cython: no compiled module beside funcs.py; running Python" in err


def test_a_gpu_step_with_fallback_cpu_runs_on_the_cpu(tmp_path: Path, capsys) -> None:
    from agilab_dsl.stages.backends.gpu import missing

    lacking = missing()
    contract(tmp_path / "a", "local", "arrays")
    path = lab(tmp_path, {"a": 'backend = "gpu"\nfallback = "cpu"'})
    code, _, err = run(path, capsys)
    assert code == 0, err
    xp = {r["xp"] for r in json.loads((tmp_path / "a" / "out.json").read_text())}
    assert xp == ({"cupy"} if lacking is None else {"numpy"})
    if lacking is not None:
        assert "partitions on pool (gpu fallback)" in err and "running on pool with numpy" in err
        path = lab(tmp_path, {"a": 'backend = "gpu"'})
        code, _, err = run(path, capsys, "--force")
        assert code == 1 and f"backend 'gpu': {lacking}" in err


def test_jobs_share_the_cores_with_inner_thread_pools(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    cores = available_cores()
    contract(tmp_path / "a", "pool")
    (tmp_path / "lab_steps.toml").write_text(
        '[[m]]\nid = "a"\nstage = "a/parallel_stage.toml"\nproduces = ["a/out.json"]\n\n'
        "[[m]]\nid = \"code\"\nC = \"import os; open(outputs[0], 'w').write(os.environ['OMP_NUM_THREADS'])\"\n"
        'produces = ["omp.txt"]\n',
        encoding="utf-8",
    )
    code, _, err = run(tmp_path / "lab_steps.toml", capsys, "-j", "2")
    assert code == 0, err
    share = max(1, cores // 2)
    assert (tmp_path / "omp.txt").read_text() == str(share)
    # the pool stage starts at most `share` processes, each with share // processes threads
    got = json.loads((tmp_path / "a" / "out.json").read_text())
    workers = min(2, share)
    assert {r["omp"] for r in got} == {str(max(1, share // workers))}


def test_a_thread_limit_the_user_set_is_kept(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "7")
    (tmp_path / "lab_steps.toml").write_text(
        "[[m]]\nid = \"code\"\nC = \"import os; open(outputs[0], 'w').write(os.environ['OMP_NUM_THREADS'])\"\n"
        'produces = ["omp.txt"]\n\n[[m]]\nid = "other"\nC = "x = 1"\n',
        encoding="utf-8",
    )
    code, _, err = run(tmp_path / "lab_steps.toml", capsys, "-j", "2")
    assert code == 0, err
    assert (tmp_path / "omp.txt").read_text() == "7"
    assert os.environ["OMP_NUM_THREADS"] == "7"


def test_a_new_file_matching_the_contract_glob_or_an_edited_function_makes_the_stage_stale(
    tmp_path: Path, capsys
) -> None:
    contract(tmp_path / "a", "local")
    path = lab(tmp_path, {"a": ""})
    assert run(path, capsys)[0] == 0
    assert run(path, capsys)[1]["steps"][0]["status"] == "fresh"  # judged, and the judgment kept
    (tmp_path / "a" / "data" / "3.txt").write_text("line 3\n", encoding="utf-8")
    assert main(["status", str(path), "--json"]) == 0
    (step,) = json.loads(capsys.readouterr().out)["steps"]
    assert step["state"] == "stale" and step["reasons"] == ["parallel input a/data/3.txt added"]
    code, payload, _ = run(path, capsys)
    assert code == 0 and payload["steps"][0]["status"] == "ran"
    assert len(json.loads((tmp_path / "a" / "out.json").read_text())) == 4
    funcs = tmp_path / "a" / "funcs.py"
    funcs.write_text(funcs.read_text().replace('"i": part.index', '"index": part.index'), encoding="utf-8")
    assert main(["status", str(path), "--json"]) == 0
    (step,) = json.loads(capsys.readouterr().out)["steps"]
    assert step["reasons"] == ["partition function changed"]
    funcs.write_text(funcs.read_text() + "\n# a comment\n", encoding="utf-8")  # cosmetic: no change
    assert main(["status", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["steps"][0]["reasons"] == ["partition function changed"]


def test_a_declared_input_found_by_the_glob_too_is_named_once(tmp_path: Path, capsys) -> None:
    contract(tmp_path / "a", "local")
    path = lab(tmp_path, {"a": 'consumes = ["a/data/0.txt"]'})
    assert run(path, capsys)[0] == 0
    (tmp_path / "a" / "data" / "0.txt").write_text("changed\n", encoding="utf-8")
    assert main(["status", str(path), "--json"]) == 0
    (step,) = json.loads(capsys.readouterr().out)["steps"]
    assert step["reasons"] == ["input a/data/0.txt changed"]
