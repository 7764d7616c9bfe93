"""Partition functions of bench/parallel.py (a module, so that raw joblib and raw Dask import them
by name exactly as the stage's workers do)."""

from __future__ import annotations

import time
from typing import Any


def tiny(part: Any) -> dict[str, int]:
    return {"i": part.index}


def busy(part: Any) -> dict[str, int]:
    """About 50 ms of CPU work."""
    end = time.process_time() + 0.05
    n = 0
    while time.process_time() < end:
        n += 1
    return {"i": part.index, "loops": n}


def big_csv(part: Any) -> str:
    """About ``params['mb']`` MB of CSV text, built in one piece (``header + row * n`` would hold the
    text twice for a moment: the function's own peak, not the stage's)."""
    row = f"{part.index},{'x' * 90}\n"
    return "".join(["partition,payload\n", *[row] * (int(part.params["mb"]) * 1_000_000 // len(row))])
