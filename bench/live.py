"""Latency of the live page: from an event's emission to an SSE client of the page receiving it.

Two measures, each over at least 50 events, p50 and p90 printed (goal: p50 <= 100 ms):

1. in-process: a page server whose state is a sink of an EventHub (as in ``--watch --serve``);
   events emitted in a burst-free stream (one every 10 ms), the client a raw HTTP connection
   reading ``/api/events``; the emission time is taken when ``hub.emit`` is called;
2. end to end: ``agilab-run LAB --watch --serve 127.0.0.1:0`` on a lab of quick steps; an input is
   edited again and again (each edit a run); latency is the client's receipt time minus the
   event's own ``timestamp`` (milliseconds, written by the runner in the other process).

Run: ``.venv/bin/python bench/live.py`` (about 20 s).
"""

from __future__ import annotations

import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

LAB = """[__meta__]
schema = "agilab.lab_stages.v1"
version = 1

[[lab]]
id = "read"
C = "from pathlib import Path\\nPath('mid.txt').write_text(Path('input.txt').read_text())"
consumes = ["input.txt"]
produces = ["mid.txt"]

[[lab]]
id = "count"
C = "from pathlib import Path\\nPath('n.txt').write_text(str(len(Path('mid.txt').read_text())))"
consumes = ["mid.txt"]
produces = ["n.txt"]
"""


def sse(url: str, received: list[tuple[float, dict]], ready: threading.Event, stop: threading.Event) -> None:
    """Read ``/api/events``: each run event (a ``data:`` line of the default event) with its receipt time."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    conn.request("GET", "/api/events")
    reply = conn.getresponse()
    name = "message"
    while not stop.is_set():
        line = reply.fp.readline()
        if not line:
            return
        text = line.decode().rstrip("\n")
        if text.startswith("event: "):
            name = text[7:]
        elif text.startswith("data: "):
            if name == "snapshot":
                ready.set()
            elif name == "message":
                received.append((time.time(), json.loads(text[6:])))
        elif not text:
            name = "message"


def figures(label: str, latencies_ms: list[float]) -> float:
    p50 = statistics.median(latencies_ms)
    p90 = statistics.quantiles(latencies_ms, n=10)[-1]
    print(
        f"{label}: {len(latencies_ms)} events, p50 {p50:.1f} ms, p90 {p90:.1f} ms, "
        f"max {max(latencies_ms):.1f} ms",
        flush=True,
    )
    return p50


def in_process(lab: Path, count: int = 200) -> float:
    from agilab_dsl.cli.page import LiveState, start_page
    from agilab_dsl.execute.events import EventHub

    state = LiveState(str(lab))
    state.set_graph(["read", "count"], [("read", "count")])
    hub = EventHub([state.apply])
    serving = start_page(str(lab), "127.0.0.1:0", state)
    received: list[tuple[float, dict]] = []
    ready, stop = threading.Event(), threading.Event()
    threading.Thread(target=sse, args=(serving.url, received, ready, stop), daemon=True).start()
    ready.wait(10)
    sent: dict[int, float] = {}
    for n in range(count):
        step = ("read", "count")[n % 2]
        kind, status = (("step_started", "running"), ("step_finished", "done"))[n // 2 % 2]
        sent[hub.sequence + 1] = time.time()
        hub.emit(kind, "step", step, status, "", {"outcome": {"status": "ran"}, "seconds": 0.01})
        time.sleep(0.01)
    end = time.monotonic() + 5
    while len(received) < count and time.monotonic() < end:
        time.sleep(0.01)
    stop.set()
    serving.close()
    return figures("in-process hub → SSE client", [(at - sent[e["sequence"]]) * 1000 for at, e in received])


def end_to_end(lab: Path, edits: int = 10) -> float:
    proc = subprocess.Popen(
        [sys.executable, "-m", "agilab_dsl", str(lab), "--watch", "--serve", "127.0.0.1:0"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stderr is not None
    url = ""
    for line in proc.stderr:
        if "live page at" in line:
            url = line.split()[-1]
        if "watching" in line:
            break
    threading.Thread(target=proc.stderr.read, daemon=True).start()  # keep the pipe drained
    received: list[tuple[float, dict]] = []
    ready, stop = threading.Event(), threading.Event()
    threading.Thread(target=sse, args=(url, received, ready, stop), daemon=True).start()
    ready.wait(10)
    try:
        for n in range(edits):
            finished = sum(e["kind"] == "run_finished" for _, e in received)
            (lab.parent / "input.txt").write_text("x" * (n + 2))
            end = time.monotonic() + 15
            while (
                sum(e["kind"] == "run_finished" for _, e in received) == finished and time.monotonic() < end
            ):
                time.sleep(0.02)
    finally:
        stop.set()
        proc.send_signal(2)
        proc.wait(timeout=20)

    def emitted(e: dict) -> float:
        return datetime.fromisoformat(e["timestamp"].replace("Z", "+00:00")).timestamp()

    # the event's timestamp is truncated to the millisecond: add half of one
    return figures(
        "watch run → SSE client (end to end)", [(at - emitted(e)) * 1000 - 0.5 for at, e in received]
    )


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="agilab-live-") as tmp:
        lab = Path(tmp) / "lab_stages.toml"
        lab.write_text(LAB)
        (Path(tmp) / "input.txt").write_text("x")
        p50 = in_process(lab)
        e2e = end_to_end(lab)
    goal = max(p50, e2e) <= 100
    print(f"goal p50 <= 100 ms: {'met' if goal else 'NOT met'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
