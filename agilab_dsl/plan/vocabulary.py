"""AGILAB's words for a step's state (its WORKFLOW page: ready, waiting, running, done, failed,
stale) and its colours, mapped from this tool's finer judgment (fresh, stale, never-ran, disabled)
and a run's outcomes (ran, fresh, failed, blocked, skipped, disabled).

- fresh → done; never-ran or stale → ready when every upstream step is done (it can run now),
  else stale (it runs after its upstream);
- a step whose last run failed, and which has not run successfully since → failed, its reason the
  error's first line (:mod:`.failures`);
- during a run: running, waiting (blocked behind a failed upstream), skipped, disabled.
"""

from __future__ import annotations

COLORS = {  # each state's fill, AGILAB's (src/agilab/pipeline: runnable, running, completed, blocked, failed, stale)
    "ready": "#dcfce7",
    "running": "#dbeafe",
    "done": "#e0f2fe",
    "waiting": "#fef3c7",
    "failed": "#fee2e2",
    "stale": "#f1f5f9",
    "disabled": "#e5e7eb",
    "skipped": "#f5f5f4",
}

OUTCOMES = {"ran": "done", "fresh": "done", "failed": "failed", "blocked": "waiting"}


def agilab_state(state: str, upstream_done: bool = True, failed: str | None = None) -> tuple[str, list[str]]:
    """AGILAB's state of a judged step, and the reason it adds (the failure's first line)."""
    if failed is not None and state != "disabled":
        return "failed", [failed]
    if state == "fresh":
        return "done", []
    if state in ("stale", "never-ran"):
        return ("ready" if upstream_done else "stale"), []
    return state, []  # disabled


def outcome_state(status: str) -> str:
    """AGILAB's state of a run's outcome (ran → done, blocked → waiting, …)."""
    return OUTCOMES.get(status, status)
