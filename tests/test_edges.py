"""The edges of the command line (issue 16, failure 5): Dask addresses that are malformed or name a
service that is not a Dask scheduler, FILEs that are not regular files or never end, outputs that
cannot be written. Each ends quickly with a clear message and no traceback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_parallel import contract

from agilab_dsl.cli import main
from agilab_dsl.load.address import scheduler_problem
from agilab_dsl.load.reading import NotReadable, read_regular

LAB = """\
[__meta__]
schema = "agilab.lab_steps.v1"
version = 1

[[demo]]
Q = "one"
C = "x = 1"
"""


class Server:
    """A loopback TCP server that accepts and stays silent, or answers any request with HTTP 400."""

    def __init__(self, http: bool) -> None:
        self.http = http
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.stop = threading.Event()
        self.conns: list[socket.socket] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        self.sock.settimeout(0.2)
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.conns.append(conn)
            if self.http:
                threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        conn.settimeout(10)
        try:
            if conn.recv(100):
                conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
        except OSError:
            pass

    def close(self) -> None:
        self.stop.set()
        for conn in self.conns:
            conn.close()
        self.sock.close()


@pytest.fixture(params=[False, True], ids=["silent", "http"])
def server(request: pytest.FixtureRequest) -> Iterator[Server]:
    srv = Server(http=request.param)
    yield srv
    srv.close()


def test_a_service_that_is_not_a_dask_scheduler_is_named_quickly(server: Server, tmp_path, capsys) -> None:
    started = time.monotonic()
    code = main(["doctor", "--scheduler", f"127.0.0.1:{server.port}", "--share", str(tmp_path)])
    took = time.monotonic() - started
    err = capsys.readouterr().err
    assert code == 1 and took <= 15
    if server.http:
        assert "is not a Dask scheduler" in err and "HTTP/1.1 400" in err
    else:
        assert f"no Dask scheduler answers at 127.0.0.1:{server.port}" in err and "sent nothing" in err
    assert "Traceback" not in err


def test_a_run_against_a_silent_service_stops_within_bounds(tmp_path: Path) -> None:
    srv = Server(http=False)
    lab = tmp_path / "lab"
    (lab / "data").mkdir(parents=True)
    (lab / "data" / "a.csv").write_text("x\n1\n", encoding="utf-8")
    contract_path = contract(lab, backend="dask")
    try:
        started = time.monotonic()
        proc = subprocess.run(
            [sys.executable, "-m", "agilab_dsl", str(contract_path), "--scheduler",
             f"127.0.0.1:{srv.port}"],
            check=False, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        took = time.monotonic() - started
    finally:
        srv.close()
    assert took <= 20, took
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "no Dask scheduler answers at" in proc.stderr + proc.stdout


@pytest.mark.parametrize(
    "address",
    ["", "  ", "inproc://x", "h:abc", "h:0", "h:70000", "tcp://", "gopher://h:1", "[::1", "a b:1", "h/x:1"],
)
def test_malformed_addresses_are_refused_by_shape(address: str, tmp_path, capsys) -> None:
    assert scheduler_problem(address)
    code = main(["doctor", "--scheduler", address, "--share", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and "argument --scheduler" in err and "Traceback" not in err


@pytest.mark.parametrize(
    "address",
    ["127.0.0.1:8786", "tcp://h:1", "tls://h.lan:8786", "h", "[::1]:8786", "::1", "me@h", "ws://h:1"],
)
def test_sound_addresses_pass(address: str) -> None:
    assert scheduler_problem(address) is None


def test_a_malformed_settings_scheduler_is_located(tmp_path: Path, capsys) -> None:
    settings = tmp_path / "app_settings.toml"
    settings.write_text('[cluster]\ncluster_enabled = true\nscheduler = "h:abc"\n', encoding="utf-8")
    assert main(["check", str(settings)]) == 1
    out = capsys.readouterr().out
    assert f"{settings}:3:13: error[scheduler-invalid]" in out and "'abc'" in out


@pytest.mark.parametrize("command", [["check"], ["plan"], ["status"], [], ["graph"], ["textconv"], ["fmt"]])
@pytest.mark.parametrize("what", ["fifo", "zero", "dir"])
def test_a_file_that_is_not_regular_is_refused_at_once(command: list[str], what: str, tmp_path: Path) -> None:
    if what == "fifo":
        target = tmp_path / "lab_steps.toml"
        os.mkfifo(target)
    elif what == "zero":
        target = Path("/dev/zero")
    else:
        target = tmp_path
    proc = subprocess.run(
        [sys.executable, "-m", "agilab_dsl", *command, str(target)],
        check=False,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 2, proc.stderr
    assert "not a regular file" in proc.stderr + proc.stdout and "Traceback" not in proc.stderr


def test_a_huge_file_is_refused_without_reading_it_all(tmp_path: Path) -> None:
    big = tmp_path / "lab_steps.toml"
    big.write_bytes(b"x = 1\n")
    with pytest.raises(NotReadable, match="too large"):
        read_regular(big, limit=4)
    assert read_regular(big) == b"x = 1\n"
    with open(big, "r+b") as fh:
        fh.truncate(65 * 2**20)  # sparse: costs no disk
    assert main(["check", str(big)]) == 2


def test_migrate_to_a_full_device_says_so(tmp_path: Path, capsys) -> None:
    lab = tmp_path / "lab_steps.toml"
    lab.write_text(LAB, encoding="utf-8")
    assert main(["migrate", str(lab), "--to", "lab_stages", "-o", "/dev/full"]) == 1
    err = capsys.readouterr().err
    assert "cannot write /dev/full" in err and "No space left on device" in err
    fifo = tmp_path / "out.fifo"
    os.mkfifo(fifo)
    assert main(["migrate", str(lab), "--to", "lab_stages", "-o", str(fifo)]) == 1
    assert "no process reads it" in capsys.readouterr().err
