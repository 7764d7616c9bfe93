"""``agilab_dsl.load.records``: the run path's value classes behave as the dataclasses they replaced
(equality over the compared fields of the same class, ``replace``, a hash for frozen ones only), and
a run imports neither ``dataclasses`` nor ``inspect``."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agilab_dsl.execute.outcome import RunOptions, StepOutcome
from agilab_dsl.plan.graph import Edge, StepGraph
from agilab_dsl.plan.interpreter import Interpreter
from agilab_dsl.plan.spec import PlacedSpec, StepSpec
from agilab_dsl.plan.stale import StepStatus


def test_equality_is_over_the_compared_fields_of_one_class() -> None:
    assert StepOutcome("a", "ran") == StepOutcome("a", "ran", [], 0.0)
    assert StepOutcome("a", "ran") != StepOutcome("a", "failed")
    assert StepOutcome("a", "ran").reasons is not StepOutcome("a", "ran").reasons  # a list each
    # fields left out of equality, as dataclass fields with compare=False were
    assert StepStatus("a", "fresh", (), "fp", {"x": 1}) == StepStatus("a", "fresh", (), "fp", {"y": 2})
    assert Interpreter("/p", "E", looked_at=("x",)) == Interpreter("/p", "E", looked_at=("y",))
    assert Edge("a", "b", "deps") != ("a", "b", "deps", "")  # not a tuple
    assert repr(Edge("a", "b", "deps")) == "Edge(upstream='a', downstream='b', kind='deps', detail='')"


def test_frozen_records_hash_and_mutable_ones_do_not() -> None:
    assert len({Edge("a", "b", "deps"), Edge("a", "b", "deps"), Edge("b", "a", "deps")}) == 2
    assert hash(Interpreter("/p", "E")) == hash(Interpreter("/p", "E", looked_at=("z",)))
    with pytest.raises(TypeError):
        hash(RunOptions())


def test_replace_makes_a_new_record_through_init() -> None:
    options = RunOptions(jobs=2, keep_going=True)
    changed = options.replace(jobs=4)
    assert (changed.jobs, changed.keep_going, options.jobs) == (4, True, 2)
    spec = PlacedSpec("m", 0, "a", StepSpec(code="x = 1"))  # slotted: no __dict__
    assert not hasattr(spec, "__dict__")
    assert spec.replace(id="b") == PlacedSpec("m", 0, "b", StepSpec(code="x = 1"))
    graph = StepGraph(("a", "b"), (Edge("a", "b", "deps"),))
    again = graph.replace(ids=("a", "b", "c"))
    assert again.upstream("b") == {"a"} and again.downstream("c") == frozenset()  # its maps rebuilt


def test_a_run_imports_none_of_the_modules_it_does_without(tmp_path: Path) -> None:
    lab = tmp_path / "lab_stages.toml"
    lab.write_text(
        '[[m]]\nid = "a"\nC = "open(outputs[0], \'w\').write(\'x\')"\nproduces = ["a.txt"]\n',
        encoding="utf-8",
    )
    probe = (
        "import sys; from agilab_dsl.cli import main; main([sys.argv[1]]); main([sys.argv[1]]);"
        "print(sorted(m for m in ('dataclasses', 'inspect', 'argparse', 'hashlib', 'typing', 'ast',"
        " 'subprocess', 'pickle') if m in sys.modules))"
    )
    # the history record is written by the detached writer, as outside the tests (in process, its
    # pyarrow would import them all): waited for below, so that it does not outlive the test
    env = {k: v for k, v in os.environ.items() if k != "AGILAB_HISTORY_SYNC"}
    run = [sys.executable, "-c", probe, str(lab)]
    subprocess.run(run, capture_output=True, text=True, check=True, env=env)
    (tmp_path / "a.txt").unlink()  # the next run starts from the spec cache, as after a change
    out = subprocess.run(run, capture_output=True, text=True, check=True, env=env)
    pending = tmp_path / ".agilab" / "history-pending"
    deadline = time.monotonic() + 60
    while pending.is_dir() and any(pending.glob("*.json")) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stdout + out.stderr
