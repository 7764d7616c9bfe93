"""bench/reporting.py runs against this checkout and prints both of its figures with their ratios."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"
sys.path.insert(0, str(BENCH))

import reporting  # noqa: E402


def test_the_reporting_bench_prints_its_figures(capsys: pytest.CaptureFixture[str]) -> None:
    assert reporting.main(["--steps", "50", "--repeat", "1"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"1\. the whole stack: [\d.]+ ms .* bare JSON lines .*: [\d.]+ ms \([\d.]+x\)", out)
    assert re.search(
        r"2\. following plain steps .*: [\d.]+ ms as the runner asks, [\d.]+ ms .*\([\d.]+x\)", out
    )
