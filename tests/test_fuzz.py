"""Bad input never gives a traceback: mutations of every corpus and conformance file (byte flips,
truncation, invalid UTF-8, deep nesting, huge strings, duplicated lines, type swaps, key renames,
cycles) — a few hundred cases here (``tests/fault/fuzz.py`` tries 10,000); every diagnostic
located; every check bounded in time."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from fuzzing import TIME_BOUND, check_case, mutate, place, sources

SOURCES = sources()
CASES_PER_FILE = 4


@pytest.mark.skipif(not SOURCES, reason="no corpus or conformance files to mutate")
def test_mutated_files_give_located_diagnostics_and_never_a_traceback(tmp_path: Path) -> None:
    rng = random.Random(20261122)
    tried = 0
    slowest = 0.0
    for source in SOURCES:
        data = source.read_bytes()
        for n in range(CASES_PER_FILE):
            kind, mutated = mutate(data, rng)
            outcome = check_case(place(source, tmp_path / f"case{tried}", mutated))  # must not raise
            slowest = max(slowest, outcome.seconds)
            assert outcome.seconds < TIME_BOUND, (
                f"{source.name} {kind} {n}: check took {outcome.seconds:.1f} s"
            )
            assert not outcome.unlocated, (source.name, kind, n, outcome.unlocated)
            tried += 1
    assert tried >= 200, tried
    print(f"{tried} mutated files checked, slowest {slowest:.2f} s")
