"""The sweep example's partition function: integrate a damped oscillator with one grid point's
parameters and measure its error against the exact solution.

It takes ``xp``: on the ``gpu`` backend it gets ``cupy``; elsewhere the default, ``numpy``."""

from __future__ import annotations

import math
from typing import Any

import numpy


def evaluate(part: Any, xp: Any = numpy) -> dict[str, Any]:
    damping = float(part.params["damping"])
    step = float(part.params["step"])
    n = round(10.0 / step)
    omega = math.sqrt(1.0 - damping**2)
    t = xp.arange(n + 1, dtype=xp.float64) * step
    exact = xp.exp(-damping * t) * (xp.cos(omega * t) + damping / omega * xp.sin(omega * t))
    # semi-implicit Euler, in plain Python: the work each partition does
    x, v = 1.0, 0.0
    approx = [x]
    for _ in range(n):
        v += step * (-2.0 * damping * v - x)
        x += step * v
        approx.append(x)
    error = float(xp.max(xp.abs(xp.asarray(approx) - exact)))
    return {"damping": damping, "step": step, "samples": n + 1, "error": round(error, 9)}
