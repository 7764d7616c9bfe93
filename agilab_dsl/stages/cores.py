"""How many cores this process may use, and the variables that size a step's inner thread pools.

Kept apart from :mod:`.backends` (dataclasses, inspect, traceback: ~25 ms to import): a run with
``-j N`` needs these two answers for every step it shares the machine with, and nothing else of the
backends unless a step is a parallel stage. Standard library only."""

from __future__ import annotations

import os


def available_cores() -> int:
    """CPU cores this process may use (affinity-aware)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return os.cpu_count() or 1


THREAD_VARIABLES = (  # what BLAS, NumPy, numexpr, Polars and OpenMP read to size their pools
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "BLIS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "POLARS_MAX_THREADS",
    "RAYON_NUM_THREADS",
)


def thread_limits(threads: int) -> dict[str, str]:
    return dict.fromkeys(THREAD_VARIABLES, str(max(1, threads)))
