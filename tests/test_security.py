"""Expressions are parsed by the grammar and evaluated by a small evaluator: injection attempts are
diagnostics, never code that runs. A LocalCluster the runner starts listens on 127.0.0.1 only."""

from __future__ import annotations

from pathlib import Path

import pytest

from agilab_dsl.cli import main

ATTEMPTS = [
    "${__import__('os').system('touch PWNED')}",
    "${settings.__class__.__mro__}",
    "${params.x.__globals__}",
    "${env.HOME; import os}",
    "${steps.a.outputs[0].__class__}",
    "${ open('PWNED', 'w') }",
]


@pytest.mark.parametrize("attempt", ATTEMPTS)
def test_injection_attempts_are_located_errors_and_run_nothing(attempt: str, tmp_path: Path, capsys) -> None:
    (tmp_path / "app_settings.toml").write_text("[args]\nx = 1\n", encoding="utf-8")
    lab = tmp_path / "lab_steps.toml"
    lab.write_text(
        f'[[m]]\nid = "a"\nC = "x = 1"\nparams = {{ p = "{attempt}" }}\n\n[[m]]\nid = "b"\nC = "y = 2"\n',
        encoding="utf-8",
    )
    assert main(["check", str(lab)]) == 1
    said = capsys.readouterr().out
    assert "lab_steps.toml:4:" in said and "error[" in said
    assert main([str(lab)]) == 2  # the lab is invalid: nothing runs
    said = capsys.readouterr()
    assert "Traceback" not in said.out + said.err
    assert not (tmp_path / "PWNED").exists() and not Path("PWNED").exists()


def test_the_runs_local_cluster_listens_on_loopback_only() -> None:
    from agilab_dsl.backends.dask import start_local_cluster

    cluster = start_local_cluster(1, 1)
    try:
        assert cluster.scheduler_address.startswith("tcp://127.0.0.1:")
        assert all(w.address.startswith("tcp://127.0.0.1:") for w in cluster.workers.values())
        assert cluster.dashboard_link.startswith("http://127.0.0.1:")
    finally:
        cluster.close()
