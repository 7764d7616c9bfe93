"""The live page, end to end: a real browser (Debian's Chromium through Playwright, never a
downloaded one) drives ``agilab-run LAB --watch --serve``; the server's refusals, its loopback
default and its address errors are checked over plain HTTP. Unit tests of the state and the feed
are in test_page_state.py."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from page_support import Served, write_lab

CHROMIUM = os.environ.get("AGILAB_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"


def _browser_missing() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install -e '.[test]')"
    if not os.path.isfile(CHROMIUM):
        return f"no Chromium at {CHROMIUM} (apt-get install chromium; .ci/run does it)"
    return None


needs_browser = pytest.mark.skipif(_browser_missing() is not None, reason=str(_browser_missing()))


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as reply:
        return json.loads(reply.read())


@needs_browser
def test_the_page_follows_a_watch_session(tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    lab = write_lab(tmp_path / "lab")
    served = Served(str(lab), "--watch", "--serve", "127.0.0.1:0")
    try:
        url = served.url
        served.wait_for("watching")  # the first run is over
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.goto(url)
            # every step drawn, each with its state (the first run ran them all)
            for step in ("slow", "measure", "side"):
                page.wait_for_selector(f'g.node[data-step="{step}"][data-state="done"]', timeout=10_000)
            assert page.locator("g.node").count() == 3
            assert page.locator("path.edge").count() == 1  # slow -> measure, through mid.txt
            fill = page.locator('g.node[data-step="slow"] rect').get_attribute("fill")
            assert fill == "#e0f2fe"  # AGILAB's "done"
            page.wait_for_selector('#plot-durations circle[data-series="slow"]')
            assert page.locator('#plot-durations circle[data-series="slow"]').count() == 1
            assert page.locator('svg.plot-metric[data-metric="measure.chars"] circle').count() == 1
            seen_before = page.evaluate("() => (window.agilabSeen.slow || []).length")

            (lab.parent / "input.txt").write_text("hello again, live page\n")
            edited = time.monotonic()
            page.wait_for_function(
                """n => { const s = (window.agilabSeen.slow || []).slice(n);
                          const r = s.indexOf("running"); return r >= 0 && s.indexOf("done", r) > r; }""",
                arg=seen_before,
                timeout=5_000,
            )
            took = time.monotonic() - edited
            assert took < 5, took
            assert page.locator('g.node[data-step="slow"]').get_attribute("data-state") == "done"
            # the history plot gains a point: the new run's duration of slow, and the metric
            page.wait_for_function(
                """() => document.querySelectorAll('#plot-durations circle[data-series="slow"]').length == 2""",
                timeout=5_000,
            )
            page.wait_for_function(
                """() => document.querySelectorAll('svg.plot-metric[data-metric="measure.chars"] circle').length == 2""",
                timeout=5_000,
            )
            page.wait_for_selector("#compare tr[data-step='slow']")
            # a step's panel: its facts and its log tail
            page.click('g.node[data-step="slow"]')
            page.wait_for_function("() => document.getElementById('log').textContent.includes('slow read')")
            assert page.locator('dd[data-fact="state"]').inner_text() == "done"
            assert page.locator('dd[data-fact="backend"]').inner_text() == "code"
            shot = Path(os.environ.get("AGILAB_SCREENSHOT") or tmp_path / "live-view.png")
            page.screenshot(path=str(shot), full_page=True)
            assert shot.stat().st_size > 1000
            browser.close()
    finally:
        code = served.stop()
    assert code == 0, "\n".join(served.lines)
    assert not any("Traceback" in line for line in served.lines), "\n".join(served.lines)


def _raw(url: str, path: str, method: str = "GET") -> int:
    """The status of ``path`` sent exactly as written (no client-side normalisation of ``..``)."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    conn.putrequest(method, path, skip_accept_encoding=True)
    conn.endheaders()
    status = conn.getresponse().status
    conn.close()
    return status


def _listening_on(port: int) -> list[str]:
    """The local addresses of the listening TCP sockets on ``port`` (Linux's /proc/net/tcp{,6})."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            local, state = row.split()[1], row.split()[3]
            address, _, hexport = local.partition(":")
            if state == "0A" and int(hexport, 16) == port:  # 0A: LISTEN
                found.append(address)
    return found


def test_serve_refuses_paths_outside_its_data_and_binds_loopback(tmp_path: Path) -> None:
    lab = write_lab(tmp_path / "lab")
    (tmp_path / "secret.txt").write_text("not for the page")
    served = Served("serve", str(lab))  # no --serve: the default address
    try:
        url = served.url
        host, port = urlsplit(url).hostname, urlsplit(url).port
        assert host == "127.0.0.1"
        assert port is not None
        listening = _listening_on(port)
        if listening:  # Linux: the socket itself is bound to 127.0.0.1 (0100007F), not 0.0.0.0
            assert listening == ["0100007F"], listening
        for path in (
            "/static/../../pyproject.toml",
            "/static/%2e%2e/%2e%2e/pyproject.toml",
            "/static/..%2f..%2fpyproject.toml",
            "/static//etc/passwd",
            "/static/%2fetc%2fpasswd",
            "/api/log/../x",
            "/api/log/..%2f..%2fsecret.txt",
            "/api/log/%2e%2e",
            "/../secret.txt",
            "/secret.txt",
        ):
            assert _raw(url, path) == 404, path
        assert _raw(url, "/static/page.js") == 200
        for method in ("POST", "PUT", "DELETE"):
            assert _raw(url, "/api/state", method) == 405
        # view only: it ran nothing (no run folder), and shows the judged states
        assert not (lab.parent / ".agilab" / "runs").exists()
        state = _get(url + "api/state")
        assert {s["id"]: s["state"] for s in state["steps"]} == {
            "slow": "ready",
            "measure": "stale",  # its upstream has not run
            "side": "ready",
        }
        # a run made by another command is followed from its events.jsonl
        ran = subprocess.run(
            [sys.executable, "-m", "agilab_dsl", str(lab)],
            check=False,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert ran.returncode == 0, ran.stderr
        end = time.monotonic() + 5
        while time.monotonic() < end:
            state = _get(url + "api/state")
            if state["run"].get("status") == "done":
                break
            time.sleep(0.05)
        assert state["run"]["status"] == "done"
        assert {s["id"]: s["state"] for s in state["steps"]} == dict.fromkeys(
            ("slow", "measure", "side"), "done"
        )
        log = _get(url + "api/log/slow?lines=5")
        assert log["lines"] == ["slow read 16 characters"]
        assert log["path"].startswith(".agilab/runs/")
        history = _get(url + "api/history")
        assert len(history["runs"]) == 1
        assert history["metrics"] == ["measure.chars", "measure.words"]
    finally:
        assert served.stop() == 0


def test_a_port_in_use_is_a_usage_error(tmp_path: Path) -> None:
    lab = write_lab(tmp_path / "lab")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        for argv in (
            ["serve", str(lab), "--serve", f"127.0.0.1:{port}"],
            [str(lab), "--watch", "--serve", f"127.0.0.1:{port}"],
        ):
            proc = subprocess.run(
                [sys.executable, "-m", "agilab_dsl", *argv],
                check=False,
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert proc.returncode == 2, proc.stderr
            assert f"cannot serve on 127.0.0.1:{port}: in use" in proc.stderr
            assert "Traceback" not in proc.stderr
    assert not (lab.parent / ".agilab" / "runs").exists()  # refused before anything ran
    proc = subprocess.run(
        [sys.executable, "-m", "agilab_dsl", str(lab), "--serve"],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "--serve serves a watch session's live page: add --watch" in proc.stderr


def test_any_address_but_loopback_is_said(tmp_path: Path) -> None:
    lab = write_lab(tmp_path / "lab")
    served = Served("serve", str(lab), "--serve", "0.0.0.0:0")
    try:
        served.wait_for("live page at")
        warning = served.wait_for("warning: serving on 0.0.0.0, not loopback")
        assert "sees the lab's steps, logs and history" in warning
    finally:
        assert served.stop() == 0
