"""Interop with AGILAB: a host-only Dask scheduler is on AGILAB's port (8780, the first of
``AGILAB_DASK_SCHEDULER_PORT_RANGE``), not Dask's 8786 (no network: Dask's Client is replaced); a
run refuses to start while AGILAB's run lock for the same app is held (a fake share folder)."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from agilab_dsl.cli import main
from agilab_dsl.execute.agilab_lock import lock_path, runtime_target, share_root
from agilab_dsl.stages.backends import BackendUnavailable
from agilab_dsl.stages.backends import dask as dask_backend
from agilab_dsl.stages.backends.dask import address, port_range, with_port


@pytest.fixture(autouse=True)
def _no_range(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in dask_backend.PORT_RANGE_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("192.168.1.5", "tcp://192.168.1.5:8780"),
        ("host", "tcp://host:8780"),
        ("tcp://host", "tcp://host:8780"),
        ("tls://host", "tls://host:8780"),
        ("[::1]", "tcp://[::1]:8780"),
        ("::1", "tcp://[::1]:8780"),
        ("agi@192.168.1.5", "tcp://192.168.1.5:8780"),
        # an explicit port wins, Dask's 8786 included
        ("127.0.0.1:8786", "tcp://127.0.0.1:8786"),
        ("tls://10.0.0.2:9000", "tls://10.0.0.2:9000"),
        ("[::1]:8790", "tcp://[::1]:8790"),
        ("inproc://10.0.0.1/123/1", "inproc://10.0.0.1/123/1"),  # Dask's own, kept
    ],
)
def test_a_host_alone_gets_agilabs_first_port(given: str, expected: str) -> None:
    assert address(given) == expected


def test_the_range_variable_moves_the_default_port() -> None:
    assert port_range({}) == (8780, 8790)
    env = {"AGILAB_DASK_SCHEDULER_PORT_RANGE": "9100:9110"}
    assert port_range(env) == (9100, 9110)
    assert address("192.168.1.5", env) == "tcp://192.168.1.5:9100"
    assert address("192.168.1.5:8786", env) == "tcp://192.168.1.5:8786"
    assert port_range({"AGILAB_DASK_SCHEDULER_PORT_RANGE": " 9200 "}) == (9200, 9200)
    # AGILAB's alias, read after the main name
    assert port_range({"DASK_SCHEDULER_PORT_RANGE": "9300:9301"}) == (9300, 9301)
    both = {"AGILAB_DASK_SCHEDULER_PORT_RANGE": "9400:9401", "DASK_SCHEDULER_PORT_RANGE": "9300"}
    assert port_range(both) == (9400, 9401)
    assert port_range({"AGILAB_DASK_SCHEDULER_PORT_RANGE": ""}) == (8780, 8790)


def test_the_process_environment_is_read_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGILAB_DASK_SCHEDULER_PORT_RANGE", "8800:8810")
    assert with_port("host") == "host:8800" and address("host") == "tcp://host:8800"


@pytest.mark.parametrize("raw", ["a:b", "8790:8780", "0", "8780:8785:8790", "70000", ":"])
def test_a_wrong_range_is_said_with_its_variable(raw: str) -> None:
    with pytest.raises(BackendUnavailable, match=r"AGILAB_DASK_SCHEDULER_PORT_RANGE=.* is not a Dask"):
        port_range({"AGILAB_DASK_SCHEDULER_PORT_RANGE": raw})


class _Client:
    seen: ClassVar[list[str]] = []

    def __init__(self, target: str, timeout: Any = None) -> None:
        type(self).seen.append(target)
        if target.endswith(":8780") or target.endswith(":9100"):
            raise OSError("Timed out trying to connect")
        self.dashboard_link = "http://x/status"

    def close(self) -> None:
        pass


def test_connect_uses_the_port_and_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    distributed = pytest.importorskip("distributed")
    monkeypatch.setattr(distributed, "Client", _Client)
    monkeypatch.setattr(dask_backend, "probe", lambda scheduler, target: None)  # (tested in test_edges)
    _Client.seen = []
    with pytest.raises(BackendUnavailable) as caught:
        dask_backend.connect("192.168.1.5")
    assert _Client.seen == ["tcp://192.168.1.5:8780"]
    message = str(caught.value)
    assert "no Dask scheduler answers at 192.168.1.5:8780" in message
    assert "names no port" in message and "8780:8790" in message and "host:port" in message
    monkeypatch.setenv("AGILAB_DASK_SCHEDULER_PORT_RANGE", "9100:9110")
    with pytest.raises(BackendUnavailable, match=r"answers at h:9100 .*range 9100:9110"):
        dask_backend.connect("h")
    with pytest.raises(BackendUnavailable) as explicit:  # a port written: no word about defaults
        dask_backend.connect("h:8780")
    assert "names no port" not in str(explicit.value)


def test_the_backend_says_the_scheduler_with_its_port(monkeypatch: pytest.MonkeyPatch) -> None:
    distributed = pytest.importorskip("distributed")
    monkeypatch.setattr(distributed, "Client", _Client)
    monkeypatch.setattr(dask_backend, "probe", lambda scheduler, target: None)
    monkeypatch.setenv("AGILAB_DASK_SCHEDULER_PORT_RANGE", "8781")
    said: list[str] = []
    backend = dask_backend.DaskBackend(1, scheduler="10.1.2.3", say=said.append)
    backend.close()
    assert _Client.seen[-1] == "tcp://10.1.2.3:8781"
    assert said == ["dask: scheduler 10.1.2.3:8781, dashboard http://x/status"]


# -- AGILAB's run lock ---------------------------------------------------------------------------
LOCK_LAB = """[[flights]]
id = "load"
C = "open(outputs[0], 'w').write('x')"
produces = ["loaded.txt"]
"""


@pytest.fixture
def share(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fake AGILAB home and local share; the lab in ``flights_project`` (target ``flights``)."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for name in ("AGI_CLUSTER_SHARE", "AGILAB_WORKFLOW_DATA_ROOT", "AGILAB_PIPELINE_LOCK_TTL_SEC"):
        monkeypatch.delenv(name, raising=False)
    folder = tmp_path / "share"
    monkeypatch.setenv("AGI_LOCAL_SHARE", str(folder))
    project = tmp_path / "flights_project"
    project.mkdir()
    (project / "pyproject.toml").write_text('[project]\nname = "flights-project"\n', encoding="utf-8")
    (project / "lab_stages.toml").write_text(LOCK_LAB, encoding="utf-8")
    return folder


def _lab(share: Path) -> Path:
    return share.parent / "flights_project" / "lab_stages.toml"


def _lock(share: Path, target: str = "flights", **payload: Any) -> Path:
    path = share / ".control" / "pipeline" / target / "pipeline_run.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {
        "schema": "agilab.pipeline.lock.v1",
        "token": "abc",
        "app": "flights_project",
        "target": target,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "created_at": time.time() - 30,
        "heartbeat_at": time.time(),
        "log_file_path": "/home/ops/log/execute/flights/pipeline_stage_1.log",
    } | payload
    path.write_text(json.dumps(body), encoding="utf-8")
    return path


@contextlib.contextmanager
def _held(path: Path) -> Iterator[None]:
    """Hold the OS lock on the file, as AGILAB's runner does while it runs."""
    fd = os.open(path, os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    try:
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def test_a_held_agilab_lock_refuses_the_run_naming_its_holder(share: Path, capsys) -> None:
    path = _lock(share)
    lab = _lab(share)
    with _held(path):
        assert main([str(lab)]) == 2
        err = capsys.readouterr().err
        assert main([str(lab), "--dry-run"]) == 0  # a dry run runs nothing: not refused
    assert not (lab.parent / "loaded.txt").exists()
    assert f"AGILAB is running this app's workflow: its run lock {path} is held" in err
    assert f"host {socket.gethostname()}, pid {os.getpid()}, started " in err
    assert "log /home/ops/log/execute/flights/pipeline_stage_1.log" in err
    assert "Force unlock and run" in err and "6 h" in err and "AGILAB_PIPELINE_LOCK_TTL_SEC" in err
    assert path.read_text(encoding="utf-8").startswith('{"schema"')  # left as it was


def test_a_lock_on_another_host_is_held_while_its_os_lock_is(share: Path, capsys) -> None:
    path = _lock(share, host="node-7.example.org", pid=1)
    with _held(path):
        assert main([str(_lab(share))]) == 2
    assert "host node-7.example.org, pid 1" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("case", "why"),
    [
        ("expired", "its heartbeat expired (7200 s > 3600 s)"),
        ("dead owner", "its owner process is no longer running on this host"),
        ("nobody holds it", "no process holds it (its run ended without releasing it)"),
    ],
)
def test_a_stale_lock_is_ignored_with_a_note(
    share: Path, capsys, monkeypatch: pytest.MonkeyPatch, case: str, why: str
) -> None:
    lab = _lab(share)
    if case == "expired":
        monkeypatch.setenv("AGILAB_PIPELINE_LOCK_TTL_SEC", "3600")
        path = _lock(share)
        old = time.time() - 7200
        os.utime(path, (old, old))
    elif case == "dead owner":
        gone = subprocess.Popen([sys.executable, "-c", "pass"])
        gone.wait()
        path = _lock(share, pid=gone.pid)
    else:
        path = _lock(share, host="node-7.example.org")
    with contextlib.ExitStack() as stack:
        if case != "nobody holds it":
            stack.enter_context(_held(path))  # a lock kept by a stuck process still expires
        assert main([str(lab)]) == 0
    err = capsys.readouterr().err
    assert f"agilab-run: warning: AGILAB's run lock {path} is ignored: {why}" in err
    assert (lab.parent / "loaded.txt").read_text() == "x"


def test_a_released_or_absent_lock_says_nothing(share: Path, capsys) -> None:
    lab = _lab(share)
    assert main([str(lab)]) == 0
    path = _lock(share)
    path.write_text("{}\n", encoding="utf-8")  # AGILAB's release: an empty payload, the file kept
    (lab.parent / "loaded.txt").unlink()
    assert main([str(lab)]) == 0
    assert "AGILAB" not in capsys.readouterr().err


def test_the_share_and_target_are_agilabs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    (home / ".agilab").mkdir(parents=True)
    env = {"USER": "ana b", "AGI_LOCAL_SHARE": "/srv/local"}
    assert share_root({}, env, home) == Path("/srv/local")
    assert share_root({}, {"USER": "ana b"}, home) == home / "localshare" / "ana_b"
    cluster = {"cluster": {"cluster_enabled": True}}
    assert share_root(cluster, {"USER": "ana"}, home) == home / "clustershare" / "ana"
    assert share_root(cluster, {"AGI_CLUSTER_SHARE": "/mnt/share"}, home) == Path("/mnt/share")
    # ~/.agilab/.env first, then the environment; a workflow data root wins over both
    (home / ".agilab" / ".env").write_text(
        '# AGILAB settings\nAGI_LOCAL_SHARE="/data/agi"\nexport AGI_CLUSTER_SHARE=shares/c # mounted\n',
        encoding="utf-8",
    )
    assert share_root({}, env, home) == Path("/data/agi")
    assert share_root(cluster, env, home) == home / "shares" / "c"
    assert share_root({}, env | {"AGILAB_WORKFLOW_DATA_ROOT": "wf/1"}, home) == home / "wf" / "1"
    project = tmp_path / "apps" / "uav-queue_project"
    (project / "lab").mkdir(parents=True)
    lab = project / "lab" / "lab_stages.toml"
    assert runtime_target(lab, "anything") == "uav_queue"  # the folder, without _project
    (project / "pyproject.toml").write_text('[project]\nname = "uav_queue_project"\n', encoding="utf-8")
    assert runtime_target(lab, "anything") == "uav_queue"
    (project / "pyproject.toml").write_text('[tool.agilab]\nruntime_target = "uav_v2"\n', encoding="utf-8")
    assert runtime_target(lab, "anything") == "uav_v2"
    assert runtime_target(tmp_path / "lab_stages.toml", "notebook_to_dask_project") == "notebook_to_dask"
    assert lock_path(lab, "x", {}, {"AGI_LOCAL_SHARE": "/s"}) == Path(
        "/s/.control/pipeline/uav_v2/pipeline_run.lock"
    )


def test_watch_says_a_held_agilab_lock_and_keeps_following_the_lab(share: Path, capsys) -> None:
    """Started while AGILAB runs the app, watch refuses as a run does; a change while AGILAB runs is
    said as not run (not "the lab is invalid"), and the next change after the lock is gone runs."""
    from agilab_dsl.cli.cmd_watch import run_watch
    from agilab_dsl.cli.common import lab_request
    from agilab_dsl.cli.parser import build_run_parser

    lab = _lab(share)
    args = build_run_parser().parse_args([str(lab), "--watch"])
    path = _lock(share)
    with _held(path):
        assert run_watch(args, lab_request(args), iter) == 2
    assert "AGILAB is running this app's workflow" in capsys.readouterr().err
    path.unlink()
    held: list[Any] = []

    def lock_then_edit() -> list[Path]:
        locked = _lock(share)
        fd = os.open(locked, os.O_RDWR)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        held.append(fd)
        (lab.parent / "input.txt").write_text("1", encoding="utf-8")
        return [lab]

    def unlock_then_edit() -> list[Path]:
        fcntl.flock(held[0], fcntl.LOCK_UN)
        os.close(held[0])
        (share / ".control" / "pipeline" / "flights" / "pipeline_run.lock").unlink()
        lab.write_text(LOCK_LAB.replace("'x'", "'y'"), encoding="utf-8")
        return [lab]

    def source(roots: list[str]) -> Iterator[set[str]]:
        for change in (lock_then_edit, unlock_then_edit):
            yield {str(p) for p in change()}

    assert run_watch(args, lab_request(args), source) == 0
    err = capsys.readouterr().err
    assert "not run while AGILAB runs this app" in err and "the lab is invalid" not in err
    assert (lab.parent / "loaded.txt").read_text(encoding="utf-8") == "y"
