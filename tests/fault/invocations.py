"""Malformed invocations (issue 16, failure 5): argument combinations, odd FILEs, odd addresses and
odd URIs, each in a fresh ``agilab-run`` process under a time bound.

    python tests/fault/invocations.py [--timeout 30] [--jobs 2] [--every 1]

Odd FILEs: a FIFO, ``/dev/zero``, ``/dev/urandom``, ``/dev/null``, a directory, a symlink loop, a
dangling symlink, a 65 MiB (sparse) file, random bytes, an empty file, a missing file, a name that
starts with ``-``, crossed with every command that reads FILE; then wrong options on a good lab
(``--only``/``--from`` unknown, ``-j`` odd, ``--settings`` odd, …), malformed and non-Dask
``--scheduler`` addresses (a silent loopback server and one that answers HTTP), odd
``--export-mlflow`` URIs and ``migrate -o`` targets. A case fails when its stderr holds a Python
traceback, when it runs past the bound (a hang), or when its exit code is not a documented one
(0, 1, 2). Prints the figures; exits 1 if any case failed.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

LAB = """\
[__meta__]
schema = "agilab.lab_steps.v1"
version = 1

[[demo]]
id = "one"
C = "open(outputs[0], 'w').write('1')"
produces = ["one.txt"]
"""
CONTRACT = """\
schema = "agilab.parallel_stage.v1"
name = "p"
function = "work.py:f"
split = "files"
input = "parts/*.txt"
workers = 1
partition_strategy = "one-file-per-partition"
target_partitions = 0
min_partitions_per_worker = 1
reducer = "collect-json"
backend = "dask"
output = "out/p.json"
"""
EXITS = {0, 1, 2}
TRACEBACK = "Traceback (most recent call last)"


class Servers:
    """Two loopback TCP servers: one accepts and says nothing, one answers anything with HTTP 400."""

    def __init__(self) -> None:
        self.socks = [socket.create_server(("127.0.0.1", 0)) for _ in range(2)]
        self.silent, self.http = (s.getsockname()[1] for s in self.socks)
        self.conns: list[socket.socket] = []
        for sock, http in zip(self.socks, (False, True), strict=True):
            threading.Thread(target=self._serve, args=(sock, http), daemon=True).start()

    def _serve(self, sock: socket.socket, http: bool) -> None:
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            self.conns.append(conn)
            if http:
                threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    @staticmethod
    def _answer(conn: socket.socket) -> None:
        try:
            conn.settimeout(30)
            if conn.recv(100):
                conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
        except OSError:
            pass

    def close(self) -> None:
        for s in [*self.conns, *self.socks]:
            s.close()


def odd_files(root: Path) -> dict[str, str]:
    """Odd things to give as FILE, by name."""
    odd = root / "odd"
    odd.mkdir()
    os.mkfifo(odd / "fifo.toml")
    (odd / "loop1.toml").symlink_to(odd / "loop2.toml")
    (odd / "loop2.toml").symlink_to(odd / "loop1.toml")
    (odd / "dangling.toml").symlink_to(odd / "nowhere.toml")
    with open(odd / "huge.toml", "wb") as fh:
        fh.truncate(65 * 2**20)
    (odd / "binary.toml").write_bytes(bytes(range(256)) * 64)
    (odd / "empty.toml").write_bytes(b"")
    (odd / "-dash.toml").write_text(LAB, encoding="utf-8")
    (odd / "nul.toml").write_bytes(b'[[demo]]\nC = "x\x00"\n')
    return {
        "fifo": str(odd / "fifo.toml"),
        "zero": "/dev/zero",
        "urandom": "/dev/urandom",
        "null": "/dev/null",
        "directory": str(odd),
        "symlink loop": str(odd / "loop1.toml"),
        "dangling symlink": str(odd / "dangling.toml"),
        "huge": str(odd / "huge.toml"),
        "binary": str(odd / "binary.toml"),
        "empty": str(odd / "empty.toml"),
        "missing": str(odd / "missing.toml"),
        "dash name": "-dash.toml",
        "NUL in code": str(odd / "nul.toml"),
    }


def build_cases(root: Path, servers: Servers | None) -> list[list[str]]:
    """Every invocation to try (arguments after ``agilab-run``), made against files under ``root``."""
    lab_dir = root / "lab"
    (lab_dir / "parts").mkdir(parents=True)
    lab = lab_dir / "lab_steps.toml"
    lab.write_text(LAB, encoding="utf-8")
    (lab_dir / "parts" / "a.txt").write_text("a\n", encoding="utf-8")
    (lab_dir / "work.py").write_text("def f(part):\n    return 1\n", encoding="utf-8")
    contract = lab_dir / "parallel_stage.toml"
    contract.write_text(CONTRACT, encoding="utf-8")
    files = odd_files(root)
    L, C = str(lab), str(contract)
    out_fifo = root / "out.fifo"
    os.mkfifo(out_fifo)

    cases: list[list[str]] = []
    readers = [
        ["check"], ["check", "--json"], ["check", "--agilab"], ["plan"], ["status"], ["status", "-v"],
        [], ["--dry-run"], ["graph"], ["textconv"], ["fmt"], ["fmt", "--check"],
        ["migrate", "--to", "lab_stages"], ["history"], ["diff", L], ["spec"],
    ]  # fmt: skip
    for name in files.values():
        for command in readers:
            if command and command[0] == "diff":
                cases.append(["diff", L, name])
                cases.append(["diff", name, L])
            elif command and not command[0].startswith("-"):
                cases.append([command[0], name, *command[1:]])
            else:
                cases.append([name, *command])
    wrong = [
        ["--only", "nosuch"], ["--from", "nosuch"], ["-j", "0"], ["-j", "-3"], ["-j", "abc"],
        ["-j", "99999999999999999999"], ["--backend", "nosuch"], ["--profile", "nosuch"],
        ["--python", "/nonexistent/python"], ["--python", ""], ["--settings", "/nonexistent.toml"],
        ["--settings", files["fifo"]], ["--settings", "/dev/zero"], ["--settings", files["directory"]],
        ["--settings", files["binary"]], ["--only"], ["--nosuchflag"], ["--watch", "--dry-run", "--json"],
        ["--from", ""], ["--only", ""], ["--only", "one", "--from", "one"], ["--force", "--only", "one"],
    ]  # fmt: skip
    cases += [[L, *w] for w in wrong]
    cases += [["plan", L, *w] for w in wrong if w[0] in ("--settings", "--profile", "--only", "--from")]
    addresses = [
        "", " ", "garbage:abc", "inproc://x", "h:0", "h:65536", "tcp://", "tcp://:1", "gopher://h:1",
        "[::1", "[zz]:1", "a b:1", "h/x:1", "h:-1", "\t", "::::", "tls://", "user@", "@:1", "h:1:2:3x",
    ]  # fmt: skip
    if servers is not None:
        addresses += [f"127.0.0.1:{servers.silent}", f"127.0.0.1:{servers.http}"]
    for address in addresses:
        cases.append([C, "--scheduler", address])
        cases.append(["doctor", "--scheduler", address, "--share", str(root)])
    cases += [
        ["doctor", "--scheduler", "127.0.0.1:1", "--share", "/nonexistent"],
        ["doctor", "--scheduler", "127.0.0.1:1", "--share", files["fifo"]],
        ["doctor"],
        ["doctor", "--share", str(root)],
    ]
    for uri in ["bogus://x", "http://127.0.0.1:1", "file:///dev/null/x", "::", "sqlite:////nonexistent/x.db",
                "file:" + files["fifo"], "databricks://nope", "https://"]:  # fmt: skip
        cases.append(["history", L, "--export-mlflow", uri])
    cases += [["history", L, "--last", v] for v in ("-1", "0", "abc", "999999999999999999999")]
    for target in ["/dev/full", "/dev/null", str(out_fifo), str(root), "/nonexistent/dir/x.toml", ""]:
        cases.append(["migrate", L, "--to", "lab_stages", "-o", target])
    cases += [["migrate", L, "--to", t] for t in ("", "nosuch", "lab_steps")]
    cases += [
        [],
        ["--help"],
        ["nosuchcommand"],
        ["check"],
        ["graph", L, "--format", "nosuch"],
        ["schema", "nosuch"],
    ]
    return cases


@dataclass
class Outcome:
    args: list[str]
    code: int | None  # None: it ran past the bound
    traceback: bool
    seconds: float


def try_case(args: list[str], cwd: Path, timeout: float) -> Outcome:
    started = time.monotonic()
    env = dict(os.environ, AGILAB_NO_CACHE="1", PYTHONFAULTHANDLER="")
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "agilab_dsl", *args],
            cwd=cwd, capture_output=True, text=True, errors="replace", timeout=timeout,
            stdin=subprocess.DEVNULL, env=env, check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return Outcome(args, None, False, time.monotonic() - started)
    return Outcome(args, proc.returncode, TRACEBACK in proc.stderr, time.monotonic() - started)


def run_cases(every: int = 1, timeout: float = 30, jobs: int = 2) -> list[Outcome]:
    """Build the cases in a temporary folder and try every ``every``-th, ``jobs`` at a time."""
    servers = Servers()
    try:
        with tempfile.TemporaryDirectory(prefix="agilab-invocations-") as tmp:
            root = Path(tmp)
            cases = build_cases(root, servers)[::every]
            with ThreadPoolExecutor(jobs) as pool:
                return list(pool.map(lambda a: try_case(a, root / "odd", timeout), cases))
    finally:
        servers.close()


def failed(o: Outcome) -> bool:
    return o.code is None or o.traceback or o.code not in EXITS


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--timeout", type=float, default=30)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--every", type=int, default=1, help="try every Nth case only")
    opts = ap.parse_args()
    started = time.monotonic()
    outcomes = run_cases(opts.every, opts.timeout, opts.jobs)
    for o in outcomes:
        if failed(o):
            what = "hang" if o.code is None else "traceback" if o.traceback else f"exit {o.code}"
            print(f"  {what}: agilab-run {' '.join(repr(a) if not a or ' ' in a else a for a in o.args)}")
    hangs = sum(o.code is None for o in outcomes)
    tracebacks = sum(o.traceback for o in outcomes)
    odd_exits = sum(o.code is not None and o.code not in EXITS for o in outcomes)
    slowest = max(o.seconds for o in outcomes)
    print(
        f"{len(outcomes)} malformed invocations tried: {tracebacks} tracebacks, {hangs} hangs "
        f"(bound {opts.timeout:g} s; slowest {slowest:.1f} s), {odd_exits} undocumented exit codes; "
        f"{time.monotonic() - started:.0f} s"
    )
    return 1 if hangs or tracebacks or odd_exits else 0


if __name__ == "__main__":
    sys.exit(main())
