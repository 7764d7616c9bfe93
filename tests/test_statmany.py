"""Files' signatures in bulk (plan.statmany): helper processes answer exactly as this process would."""

from __future__ import annotations

import os
import sys

import pytest

from agilab_dsl.plan import statmany
from agilab_dsl.plan.statmany import signature, signatures_of


@pytest.fixture
def paths(tmp_path):
    """Files, a missing one, a folder, a path under a file, a name that is not UTF-8, repeated."""
    (tmp_path / "d" / "sub").mkdir(parents=True)
    (tmp_path / "d" / "sub" / "x.txt").write_text("x")
    for i in range(20):
        (tmp_path / f"f{i}.txt").write_text("a" * i)
    odd = os.fsdecode(b"odd-\xff.txt")  # surrogate-escaped, as os.listdir gives it
    (tmp_path / odd).write_text("odd")
    names = [f"f{i}.txt" for i in range(20)] + ["missing.txt", "d", "f1.txt/under", odd, "f3.txt"]
    return [str(tmp_path / n) for n in names] * 3


def test_helpers_answer_as_this_process_does(paths, monkeypatch):
    monkeypatch.setattr(statmany, "_cores", lambda: 3)
    looked_here = []
    real = statmany.signature
    monkeypatch.setattr(statmany, "signature", lambda p: looked_here.append(p) or real(p))
    got = signatures_of(paths, share=1)
    looked = len(looked_here)
    assert got == [real(p) for p in paths]
    assert "missing" in got and any(s.startswith("dir:") for s in got)
    # this process looked at its own third (and the file in its folder), and at the folder each
    # helper left to it (the folder and its file, twice): not at the helpers' files
    assert looked == (25 + 1) + 2 * 2


def test_a_helper_that_cannot_start_leaves_its_part_here(paths, monkeypatch):
    monkeypatch.setattr(statmany, "_cores", lambda: 2)
    monkeypatch.setattr(sys, "executable", os.path.join(os.path.dirname(paths[0]), "no-python"))
    assert signatures_of(paths, share=1) == [signature(p) for p in paths]


@pytest.mark.parametrize(
    "helper",
    [
        "import sys; sys.stdout.write('1:1')",  # too few answers
        "import sys; sys.stdin.buffer.read(); sys.exit(3)",  # failed
        "import sys; sys.stdout.write('\\n'.join([''] * sys.stdin.buffer.read().count(b'\\0')) + '\\n')",
    ],
    ids=["wrong-count", "failed", "left-all-here"],
)
def test_a_wrong_helper_changes_no_answer(paths, monkeypatch, helper):
    monkeypatch.setattr(statmany, "_cores", lambda: 2)
    monkeypatch.setattr(statmany, "_HELPER", helper)
    assert signatures_of(paths, share=1) == [signature(p) for p in paths]


def test_small_lists_start_no_helper(paths, monkeypatch):
    monkeypatch.setattr(statmany, "_start", lambda chunk: pytest.fail("a helper for a small list"))
    assert signatures_of(paths) == [signature(p) for p in paths]
