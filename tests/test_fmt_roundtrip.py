"""A slice of tests/fault/fmt_roundtrip.py: fmt and migrate on odd but valid labs lose nothing."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "fault"))

from fmt_roundtrip import Figures, generate, run


def test_fmt_and_migrate_round_trips_lose_nothing() -> None:
    cases = generate(24, seed=7)
    assert any("\r\n" in c.text for c in cases) and any("interleaved" in c.name for c in cases)
    fig = run(cases)
    assert fig.tried == 24 and fig.round_trips == 24 and fig.reformatted > 0
    assert fig.failures() == 0, {k: v for k, v in vars(fig).items() if isinstance(v, list) and v}


def test_the_figures_count_a_loss() -> None:
    fig = Figures()
    fig.comments_lost.append("x")
    assert fig.failures() == 1
