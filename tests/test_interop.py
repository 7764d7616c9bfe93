"""Interop with AGILAB: a host-only Dask scheduler is on AGILAB's port (8780, the first of
``AGILAB_DASK_SCHEDULER_PORT_RANGE``), not Dask's 8786. No network: Dask's Client is replaced."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest

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
    monkeypatch.setenv("AGILAB_DASK_SCHEDULER_PORT_RANGE", "8781")
    said: list[str] = []
    backend = dask_backend.DaskBackend(1, scheduler="10.1.2.3", say=said.append)
    backend.close()
    assert _Client.seen[-1] == "tcp://10.1.2.3:8781"
    assert said == ["dask: scheduler 10.1.2.3:8781, dashboard http://x/status"]
