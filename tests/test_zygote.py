"""The worker's zygote (issue 18): step children forked by a pristine copy of the worker, which
reports their wait statuses; a worker under another interpreter forks its one step itself."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

import pytest
from test_ahead import lab_of, request

from agilab_dsl.cli import main
from agilab_dsl.execute.pool import Worker, WorkerPool

FAMILY = "import os\nopen('{sid}.txt', 'w').write(f'{{os.getppid()}} {{os.getsid(0)}}')"


def family(folder: Path, sid: str) -> tuple[int, int]:
    """The parent and session of step ``sid``'s process, as it wrote them."""
    parent, session = (folder / f"{sid}.txt").read_text().split()
    return int(parent), int(session)


def test_pooled_steps_are_forked_by_one_zygote_that_is_not_the_worker(tmp_path: Path) -> None:
    pool = WorkerPool(1)
    try:
        for sid in ("a", "b", "c"):
            assert pool.run(request(tmp_path, sid, FAMILY.format(sid=sid)))["exit"] == 0
    finally:
        pool.close()
    parents = {family(tmp_path, sid)[0] for sid in ("a", "b", "c")}
    sessions = {family(tmp_path, sid)[1] for sid in ("a", "b", "c")}
    assert len(parents) == 1 and len(sessions) == 1  # one zygote, in the worker's session
    assert parents != sessions  # the worker leads the session; the zygote is its child


def test_a_worker_under_another_interpreter_forks_its_step_itself(tmp_path: Path) -> None:
    source = Path(sys.modules[Worker.__module__].__file__).with_name("worker.py").read_text(encoding="utf-8")
    worker = Worker(sys.executable, source_code=source)  # as steps.py starts one: source through -c
    try:
        assert worker.run(request(tmp_path, "a", FAMILY.format(sid="a")))["exit"] == 0
    finally:
        worker.close()
    parent, session = family(tmp_path, "a")
    assert parent == session == worker.proc.pid


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("import os\nos.kill(os.getpid(), 9)", {"exit": -1, "signal": 9}),
        ("import os\nos._exit(3)", {"exit": 3, "signal": None}),  # no status said: its wait status
        ("raise SystemExit(4)", {"exit": 4, "signal": None}),
    ],
)
def test_the_zygote_reports_how_a_step_ended(tmp_path: Path, code: str, expected: dict[str, object]) -> None:
    pool = WorkerPool(1)
    try:
        reply = pool.run(request(tmp_path, "a", code))
    finally:
        pool.close()
    assert {k: reply[k] for k in expected} == expected and reply["timed_out"] is False


def test_a_step_that_outlives_its_timeout_is_ended_through_the_zygote(tmp_path: Path) -> None:
    stubborn = "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\ntime.sleep(60)"
    step = {**request(tmp_path, "a", stubborn), "timeout": 0.3}
    pool = WorkerPool(1)
    started = time.monotonic()
    try:
        reply = pool.run(step)
        assert pool.run(request(tmp_path, "b", "open('b.txt', 'w').write('b')"))["exit"] == 0
    finally:
        pool.close()
    assert reply["timed_out"] is True and reply["signal"] == signal.SIGKILL  # it ignored SIGTERM
    assert time.monotonic() - started < 30 and (tmp_path / "b.txt").read_text() == "b"


def test_a_step_that_kills_the_zygote_fails_its_worker_and_the_run_goes_on(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    killer = "import os, time\nos.kill(os.getppid(), 9)\ntime.sleep(1)"  # its parent: the zygote
    lab = lab_of(tmp_path, ("first", ""), ("killer", killer), ("free", ""))
    assert main([str(lab), "--json", "-j", "1", "--keep-going"]) == 1
    captured = capsys.readouterr()
    got = {s["id"]: s for s in json.loads(captured.out)["steps"]}
    assert got["killer"]["status"] == "failed"  # its worker died with the zygote
    assert (got["first"]["status"], got["free"]["status"], got["tail"]["status"]) == ("ran", "ran", "ran")
    assert "Traceback" not in captured.err


def test_no_step_process_is_left_once_the_pool_is_closed(tmp_path: Path) -> None:
    pool = WorkerPool(1)
    try:
        assert pool.run(request(tmp_path, "a", FAMILY.format(sid="a")))["exit"] == 0
        zygote, session = family(tmp_path, "a")
    finally:
        pool.close()
    with pytest.raises(ProcessLookupError):
        os.kill(zygote, 0)  # the zygote (and the unused spare it forked) ended with the worker
    with pytest.raises(ProcessLookupError):
        os.killpg(session, 0)


def test_a_worker_killed_while_its_step_runs_reads_as_dead_at_once(tmp_path: Path) -> None:
    from agilab_dsl.execute.pool import WorkerDied

    # the step kills its worker, then runs on: the zygote, which outlives the worker until its
    # children end, must not hold the runner's end of the worker's pipes
    code = (
        "import os, time\nopen('pid', 'w').write(str(os.getpid()))\nos.kill(os.getsid(0), 9)\ntime.sleep(30)"
    )
    pool = WorkerPool(1)
    started = time.monotonic()
    try:
        with pytest.raises(WorkerDied):
            pool.run(request(tmp_path, "a", code))
        assert time.monotonic() - started < 10
    finally:
        pool.close()
        os.kill(int((tmp_path / "pid").read_text()), signal.SIGKILL)


def seen_by_steps(folder: Path, code: str, extras: list[dict[str, object] | None]) -> list[object]:
    """Run one step per entry of ``extras`` (keys added to its request; None: none) in one pool;
    each step's ``code`` writes what it saw to ``{sid}.txt`` as a literal. What each one saw."""
    import ast

    seen = []
    pool = WorkerPool(1)
    try:
        for n, extra in enumerate(extras):
            req = {**request(folder, f"s{n}", code.format(sid=f"s{n}")), **(extra or {})}
            assert pool.run(req)["exit"] == 0, (folder / f"s{n}.log").read_text()
            seen.append(ast.literal_eval((folder / f"s{n}.txt").read_text()))
    finally:
        pool.close()
    return seen


SEEN = (
    "import os, sys\nw = sys.modules['agilab_dsl.execute.worker']\n"
    "open('{sid}.txt', 'w').write(repr((os.environ.get('OMP_NUM_THREADS'), dict(w._STANDING))))"
)


@pytest.mark.parametrize("user", [None, "7"])
def test_the_thread_limits_each_step_sets_are_set_ahead_in_the_zygote(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, user: str | None
) -> None:
    if user is None:
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    else:
        monkeypatch.setenv("OMP_NUM_THREADS", user)
    envs = [{"OMP_NUM_THREADS": "3"}] * 4 + [{"OMP_NUM_THREADS": "5"}] * 4 + [None] * 2
    # as a -j N run's requests carry the thread limits
    seen = seen_by_steps(tmp_path, SEEN, [{"env": env} if env is not None else None for env in envs])
    if user is not None:  # the user's own setting, never set ahead nor replaced
        assert seen == [(user, {})] * len(envs)
        return
    assert [value for value, _ in seen] == ["3"] * 4 + ["5"] * 4 + [None] * 2
    # the first two spares were forked before the worker told the zygote, the later ones after
    assert [ahead for _, ahead in seen[:4]] == [{}, {}, {"OMP_NUM_THREADS": "3"}, {"OMP_NUM_THREADS": "3"}]
    assert [ahead for _, ahead in seen[6:8]] == [{"OMP_NUM_THREADS": "5"}] * 2


STREAMS = (
    "import os, sys\nw = sys.modules['agilab_dsl.execute.worker']\n"
    "fresh = open(1, 'w', buffering=1, closefd=False)\n"
    "shape = lambda s: (s.fileno(), s.seekable(), s.line_buffering, s.encoding, s.errors, s.closed)\n"
    "open('{sid}.txt', 'w').write(repr((\n"
    "    sys.stdout is w._STREAMS[0], sys.stderr is w._STREAMS[1],\n"
    "    shape(sys.stdout), shape(sys.stderr), shape(fresh))))\n"
    "print('out {sid}')\nprint('err {sid}', file=sys.stderr)\nprint('out again {sid}')"
)


def test_every_spare_takes_the_text_streams_its_zygote_made_once(tmp_path: Path) -> None:
    import ast

    pool = WorkerPool(1)
    try:
        for sid in ("a", "b", "c", "d"):  # the first spares and later ones
            assert pool.run(request(tmp_path, sid, STREAMS.format(sid=sid)))["exit"] == 0
    finally:
        pool.close()
    for sid in ("a", "b", "c", "d"):
        is_out, is_err, out, err, fresh = ast.literal_eval((tmp_path / f"{sid}.txt").read_text())
        assert is_out and is_err  # made by the zygote, not by the step's process
        # as the child would have made them itself: on its output pipe, not seekable, line-buffered
        assert out == (1, *fresh[1:]) and err == (2, *fresh[1:])
        assert fresh[1] is False and fresh[2] is True
        # what the step printed, nothing of anyone else's, in its order
        assert (tmp_path / f"{sid}.log").read_text() == f"out {sid}\nerr {sid}\nout again {sid}\n"


AGILAB_SEEN = (
    "import os, sys\nw = sys.modules['agilab_dsl.execute.worker']\n"
    "names = ('AGILAB_PIPELINE_RUN_ID', 'AGILAB_PIPELINE_STAGE_INDEX', 'AGILAB_PIPELINE_PROFILE')\n"
    "open('{sid}.txt', 'w').write(repr(([os.environ.get(n) for n in names], sorted(w._STEADY))))"
)


def test_agilab_variables_that_stay_the_same_are_set_ahead_in_the_zygote(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AGILAB_PIPELINE_RUN_ID", raising=False)
    monkeypatch.delenv("AGILAB_PIPELINE_STAGE_INDEX", raising=False)
    monkeypatch.setenv("AGILAB_PIPELINE_PROFILE", "the user's")  # put back for a step without it

    def agilab(run: str, index: int) -> dict[str, str]:
        return {
            "AGILAB_PIPELINE_RUN_ID": run,
            "AGILAB_PIPELINE_STAGE_INDEX": str(index),
            "AGILAB_PIPELINE_PROFILE": "balanced",
        }

    environs = [agilab("r1", n) for n in range(1, 6)] + [agilab("r2", n) for n in range(1, 5)] + [None, None]
    # as agilab_env.step_extras adds them
    seen = seen_by_steps(tmp_path, AGILAB_SEEN, [{"environ": e} if e is not None else None for e in environs])
    expected = [
        [e["AGILAB_PIPELINE_RUN_ID"], e["AGILAB_PIPELINE_STAGE_INDEX"], "balanced"]
        if e is not None
        else [None, None, "the user's"]
        for e in environs
    ]
    assert [values for values, _ in seen] == expected  # each step sees its own, whatever was ahead
    ahead = [names for _, names in seen]
    # told after the second request (the first two spares forked before), run id and profile only
    assert ahead[:2] == [[], []] and ahead[3:5] == [["AGILAB_PIPELINE_PROFILE", "AGILAB_PIPELINE_RUN_ID"]] * 2
    assert all("AGILAB_PIPELINE_STAGE_INDEX" not in names for names in ahead)
    # a new run id: set ahead again once it stayed the same (a spare or two later)
    assert ahead[8] == ["AGILAB_PIPELINE_PROFILE", "AGILAB_PIPELINE_RUN_ID"]


HELD = (
    "import fcntl, os, sys\nw = sys.modules['agilab_dsl.execute.worker']\n"
    "fd = os.open({lock!r}, os.O_RDWR)\n"
    "try:\n    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)\n    free = True\n"
    "except BlockingIOError:\n    free = False\n"
    "open('{sid}.txt', 'w').write(repr((sorted(w._HELD), free)))"
)


def test_the_zygote_holds_the_steps_lock_for_the_spares_it_forks(tmp_path: Path) -> None:
    import ast
    import fcntl

    lock = tmp_path / "steps.lock"
    seen = []
    pool = WorkerPool(1)
    try:
        for sid in ("a", "b", "c", "d"):
            req = {**request(tmp_path, sid, HELD.format(lock=str(lock), sid=sid)), "hold": str(lock)}
            assert pool.run(req)["exit"] == 0, (tmp_path / f"{sid}.log").read_text()
            seen.append(ast.literal_eval((tmp_path / f"{sid}.txt").read_text()))
        fd = os.open(lock, os.O_RDWR)
        try:
            with pytest.raises(BlockingIOError):  # held (shared) while the zygote and its spares live
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(fd)
    finally:
        pool.close()
    # the first two spares, forked before the worker told the zygote, took it themselves
    assert [held for held, _ in seen] == [[], [], [str(lock)], [str(lock)]]
    assert not any(free for _, free in seen)  # every step ran with the lock held
    # released with the zygote and its children; a runner taking over waits for it (blocking), here
    # polled for 5 s at most: in ~1 run of 20 it was still held a few microseconds after the close
    # returned (no process with it open was found by then)
    fd = os.open(lock, os.O_RDWR)
    deadline = time.monotonic() + 5
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                assert time.monotonic() < deadline, "steps.lock still held 5 s after the pool closed"
                time.sleep(0.01)
    finally:
        os.close(fd)
