"""The step worker's wire format and start-up (issue 18): requests marshalled when they can be,
replies written without json, and a worker that imports only what its own work needs."""

from __future__ import annotations

import atexit
import datetime as dt
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from agilab_dsl.execute import worker
from agilab_dsl.execute.agilab_env import SUPPORT_DIR

PLAIN = {
    "step_id": "s1",
    "kind": "code",
    "names": {"settings": {"a": [1, 2.5, None, True]}, "params": {}, "inputs": ["in/é.txt"], "outputs": []},
    "compiled": b"\x00\xff",
    "timeout": None,
}


def test_a_plain_request_is_marshalled_and_reads_back_the_same() -> None:
    data = worker.encode(PLAIN, portable=False)
    assert data[:1] == b"M" and worker.decode(data) == PLAIN


@pytest.mark.parametrize(
    "value",
    [dt.date(2026, 11, 21), dt.datetime(2026, 11, 21, 8, 30, tzinfo=dt.UTC), dt.time(7, 32)],
)
def test_tomls_dates_and_times_are_pickled(value: object) -> None:
    request = {**PLAIN, "names": {**PLAIN["names"], "settings": {"when": value}}}  # type: ignore[dict-item]
    data = worker.encode(request, portable=False)
    assert data[:1] == b"P" and worker.decode(data) == request


def test_a_foreign_interpreter_always_gets_a_pickle() -> None:
    data = worker.encode(PLAIN, portable=True)
    assert data[:1] == b"P" and worker.decode(data) == PLAIN


@pytest.mark.parametrize(
    "reply",
    [
        {"exit": 0, "signal": None, "timed_out": False, "seconds": 0.0012345678901234},
        {"exit": None, "signal": 9, "timed_out": True, "seconds": 3.0},
        {"exit": 1, "signal": None, "timed_out": False, "seconds": 1e-07, "log_error": 'x: "full" é\n'},
        {"exit": 0, "signal": None, "timed_out": False, "seconds": math.inf},
    ],
)
def test_a_reply_is_the_json_json_would_write(reply: dict[str, object]) -> None:
    text = worker.reply_text(reply)
    assert text == json.dumps(reply) and "\n" not in text


def test_a_worker_starts_without_json_pickle_contextlib_typing_or_enum() -> None:
    probe = (
        "import sys; from agilab_dsl.execute import worker; worker.main(sys.argv[1]);"
        "print(sorted(m for m in ('json', 'pickle', 'contextlib', 'typing', 'enum', 'importlib.util')"
        " if m in sys.modules), '_agilab_run_step' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe, SUPPORT_DIR],
        stdin=subprocess.DEVNULL,  # no request: it serves none and returns
        capture_output=True,
        text=True,
        check=True,
    )
    # the step-support module is loaded at start, and inherited by every step's process
    assert out.stdout.split("\n")[-2] == "[] True", out.stdout + out.stderr


def test_the_console_exits_at_once_only_when_nothing_is_left_to_run_at_exit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from agilab_dsl import cli

    ended: list[int] = []
    monkeypatch.setattr(cli.os, "_exit", ended.append)
    handler = atexit.register(lambda: None)
    try:
        cli._end_now(3)
        assert ended == []  # an exit handler is registered (pytest's own, and this one): a normal exit
    finally:
        atexit.unregister(handler)
    probe = (
        "import atexit, sys, os; from agilab_dsl import cli; print('out', end='');"
        "sys.stderr.write('err'); cli._end_now(int(sys.argv[1])); print('not reached')"
    )
    done = subprocess.run([sys.executable, "-c", probe, "4"], capture_output=True, text=True, check=False)
    assert (done.returncode, done.stdout, done.stderr) == (4, "out", "err")  # flushed, then ended
    held = "import atexit; atexit.register(print, 'handler ran');" + probe
    done = subprocess.run([sys.executable, "-c", held, "4"], capture_output=True, text=True, check=False)
    assert done.returncode == 0 and done.stdout == "outnot reached\nhandler ran\n"


# -- a step's output: piped to the worker, written to its log from the first byte ----------------------
def _step(tmp_path: Path, code: str, log: Path, **extra: object) -> dict[str, object]:
    return {
        "step_id": "talk",
        "kind": "code",
        "code": code,
        "cwd": str(tmp_path),
        "log": str(log),
        "result": str(tmp_path / "talk.json"),
        "timeout": 60,
        "names": {"settings": {}, "params": {}, "inputs": [], "outputs": []},
        **extra,
    }


def test_a_step_printing_more_than_a_pipe_holds_runs_to_its_end_with_all_of_it_logged(tmp_path: Path) -> None:
    from agilab_dsl.execute.pool import Worker

    code = (
        "import os, sys\n"
        "for i in range(20000): print(f'line {i:05d}', 'x' * 40)\n"  # ~1 MB: 16 pipe buffers
        "sys.stdout.flush(); os.write(2, b'straight to fd 2\\n')\n"
        "os.system('echo from a subprocess')\n"
        "open('done.txt', 'w').write('yes')\n"
    )
    log = tmp_path / "talk.log"
    silent = tmp_path / "silent.log"
    pool = Worker()
    try:
        reply = pool.run(_step(tmp_path, code, log))
        quiet = pool.run(_step(tmp_path, "x = 1", silent))
    finally:
        pool.close()
    assert reply["exit"] == 0 and "log_error" not in reply, reply
    lines = log.read_text(encoding="utf-8").splitlines()
    assert lines[:20000] == [f"line {i:05d} " + "x" * 40 for i in range(20000)]
    assert lines[20000:] == ["straight to fd 2", "from a subprocess"]
    assert (tmp_path / "done.txt").read_text() == "yes"
    assert quiet["exit"] == 0 and not silent.exists()  # a silent step leaves no log, and none was made
    assert reply["result"] is quiet["result"] is False  # neither handed anything back: no file to read


def test_the_reply_says_whether_the_step_wrote_its_result(tmp_path: Path) -> None:
    from agilab_dsl.execute.pool import Worker

    pool = Worker()
    try:
        gave = pool.run(_step(tmp_path, "metrics['rows'] = 3", tmp_path / "a.log"))
        after = pool.run(
            _step(tmp_path, "x = 1", tmp_path / "b.log")
        )  # its child forked after one that wrote
        crashed = pool.run(_step(tmp_path, "import os; os.kill(os.getpid(), 9)", tmp_path / "c.log"))
    finally:
        pool.close()
    assert gave["result"] is True and json.loads((tmp_path / "talk.json").read_text()) == {
        "metrics": {"rows": 3}
    }
    assert after["result"] is False
    assert crashed["signal"] == 9 and crashed["result"] is True  # it said nothing: the runner looks


def test_a_log_that_cannot_be_written_is_said_and_the_step_still_ends(tmp_path: Path) -> None:
    from agilab_dsl.execute.pool import Worker

    log = tmp_path / "no such folder" / "talk.log"
    code = "for i in range(20000): print('x' * 60)\nopen('done.txt', 'w').write('yes')"
    pool = Worker()
    try:
        reply = pool.run(_step(tmp_path, code, log))
        after = pool.run(_step(tmp_path, "print('next')", tmp_path / "next.log"))
    finally:
        pool.close()
    assert reply["exit"] == 0 and "No such file or directory" in str(reply["log_error"])
    assert str(log) in str(reply["log_error"])
    assert (tmp_path / "done.txt").read_text() == "yes"  # its output was drained, not left to block it
    assert after["exit"] == 0 and (tmp_path / "next.log").read_text() == "next\n"


def test_a_step_printing_without_pause_still_ends_at_its_timeout(tmp_path: Path) -> None:
    import time

    from agilab_dsl.execute.pool import Worker

    # ~2 GB a second through the pipe: its log is /dev/null, not the disk
    code = "import sys\nline = 'y' * 4000 + '\\n'\nwhile True:\n    sys.stdout.write(line)"
    pool = Worker()
    try:
        start = time.monotonic()
        reply = pool.run({**_step(tmp_path, code, Path(os.devnull)), "timeout": 1})
        took = time.monotonic() - start
    finally:
        pool.close()
    assert reply["timed_out"] and reply["signal"] == 15 and "log_error" not in reply
    assert took < 1 + 2 + 3  # its timeout, the grace before SIGKILL, slack
