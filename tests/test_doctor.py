"""`agilab-run doctor --scheduler ADDR --share PATH`: every Dask worker reads a sentinel back."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from conftest import DaskProcesses, private_mounts

from agilab_dsl.cli import main


def test_every_worker_reads_the_share(tmp_path: Path, capsys, dask_processes: DaskProcesses) -> None:
    code = main(["doctor", "--scheduler", dask_processes.address, "--share", str(tmp_path), "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0 and report["ok"] and len(report["workers"]) >= 2
    assert all(w["ok"] and w["detail"].startswith("reads ") for w in report["workers"])
    assert not Path(report["sentinel"]).exists()  # cleaned up
    assert list(tmp_path.iterdir()) == []


def test_a_worker_that_does_not_see_the_share_is_named(tmp_path: Path, capsys) -> None:
    why = private_mounts()
    if why is not None:
        pytest.skip(f"needs a worker in its own mount namespace: {why}")
    share = tmp_path / "share"
    share.mkdir()
    # the second worker runs with an empty tmpfs mounted over the share: it cannot see the sentinel
    blind = ["unshare", "-m", "sh", "-c", 'mount -t tmpfs none "$0" && exec "$@"', str(share)]
    cluster = DaskProcesses(tmp_path / "dask", ([], blind))
    try:
        code = main(["doctor", "--scheduler", cluster.address, "--share", str(share)])
        out = capsys.readouterr().out
    finally:
        cluster.close()
    assert code == 1
    assert out.count("✓ tcp://127.0.0.1:") == 1 and out.count("✗ tcp://127.0.0.1:") == 1
    assert "cannot read" in out and "FileNotFoundError" in out
    assert "1 of 2 workers read the sentinel; 1 cannot" in out


def test_a_missing_share_or_scheduler_is_said(tmp_path: Path, capsys) -> None:
    assert main(["doctor", "--scheduler", "127.0.0.1:1", "--share", str(tmp_path / "nope")]) == 2
    assert "is not a folder on this machine" in capsys.readouterr().err
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    assert main(["doctor", "--scheduler", f"127.0.0.1:{port}", "--share", str(tmp_path)]) == 1
    assert f"no Dask scheduler answers at 127.0.0.1:{port}" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
