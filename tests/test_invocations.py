"""A slice of ``tests/fault/invocations.py`` (malformed invocations in fresh processes): every 8th
case — odd FILEs, wrong options, malformed and non-Dask scheduler addresses, odd MLflow URIs and
``migrate -o`` targets. None may print a traceback, hang or exit with an undocumented code."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "fault"))

from invocations import failed, run_cases


def test_a_slice_of_malformed_invocations_ends_cleanly() -> None:
    outcomes = run_cases(every=8, timeout=30, jobs=2)
    assert len(outcomes) >= 40
    assert [o.args for o in outcomes if failed(o)] == []
    assert any(o.args[0] == "doctor" for o in outcomes)  # the slice crosses addresses too
