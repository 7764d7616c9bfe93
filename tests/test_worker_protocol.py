"""The step worker's wire format and start-up (issue 18): requests marshalled when they can be,
replies written without json, and a worker that imports only what its own work needs."""

from __future__ import annotations

import atexit
import datetime as dt
import json
import math
import subprocess
import sys

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
