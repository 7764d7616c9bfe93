"""Human-readable output of runs and statuses (the runner itself only emits values)."""

from __future__ import annotations

import threading
import time

from ..execute.logs import LOG_TAIL, log_tail, stage_result
from ..execute.outcome import SilentReporter

TYPE_CHECKING = False  # typing is not imported at run time: ~2 ms of every run's start-up
if TYPE_CHECKING:  # pragma: no cover - this module stays light: the judgment cache prints through it
    from collections.abc import Mapping, Sequence
    from typing import Any, TextIO

    from ..execute.outcome import RunResult, StepOutcome
    from ..plan.shared import SharedState
    from ..plan.stale import StepStatus

MARKS = {"ran": "✓", "fresh": "=", "skipped": "-", "disabled": "·", "failed": "✗", "blocked": "!"}


class TextReporter(SilentReporter):
    """One line per step event; a failed step's log tail (its traceback) printed under its id.
    Fresh steps are counted in the summary and listed only when ``verbose``."""

    def __init__(self, out: TextIO, width: int = 20, color: bool = False, verbose: bool = False) -> None:
        self.out = out
        self.verbose = verbose
        self.width = width
        self.color = color
        self._lock = threading.Lock()
        self.started = time.perf_counter()

    def _tint(self, text: str, status: str) -> str:
        if not self.color:
            return text
        code = {
            "ran": "32",
            "failed": "31",
            "blocked": "33",
            "fresh": "2",
            "skipped": "2",
            "disabled": "2",
        }.get(status)
        return f"\x1b[{code}m{text}\x1b[0m" if code else text

    def _line(self, text: str) -> None:
        with self._lock:
            print(text, file=self.out, flush=True)

    def step_started(
        self, step_id: str, why: list[str], attempt: int, interpreter: str | None = None
    ) -> None:
        again = f" (attempt {attempt})" if attempt > 1 else ""
        python = f" — python: {interpreter}" if interpreter else ""
        self._line(f"▶ {step_id:<{self.width}} running{again}: {'; '.join(why)}{python}")

    def note(self, text: str) -> None:
        self._line(f"  {text}")

    def step_finished(self, outcome: StepOutcome) -> None:
        if outcome.status == "fresh" and not self.verbose:
            return
        mark = self._tint(MARKS[outcome.status], outcome.status)
        stage = stage_result(outcome.returned)
        if outcome.status == "ran":
            detail = f"{outcome.seconds:.2f} s"
            if stage is not None:
                detail += f" — {stage['partitions']} partitions on {stage['backend']}"
        elif outcome.status == "failed":
            detail = f"failed: {outcome.error}" + (f" ({outcome.seconds:.2f} s)" if outcome.seconds else "")
        elif outcome.reasons:
            detail = f"{outcome.status}: {'; '.join(outcome.reasons)}"
        else:
            detail = outcome.status
        self._line(f"{mark} {outcome.id:<{self.width}} {detail}")
        for note in stage.get("notes", ()) if stage is not None else ():
            self._line(f"    {note}")
        if outcome.status == "failed":
            tail = log_tail(outcome.log, LOG_TAIL)
            if tail:
                self._line("\n".join(f"    │ {line}" for line in tail))
            if outcome.log:
                self._line(f"    log: {outcome.log}")

    def finished(self, result: RunResult, lab_file: str) -> None:
        counts: dict[str, int] = {}
        for o in result.outcomes:
            counts[o.status] = counts.get(o.status, 0) + 1
        order = ("ran", "fresh", "skipped", "disabled", "failed", "blocked")
        summary = ", ".join(f"{counts[k]} {k}" for k in order if counts.get(k)) or "nothing to do"
        elapsed = time.perf_counter() - self.started
        recorded = f" (run {result.run_id})" if result.recorded else ""  # an id `history` knows
        self._line(
            f"{'interrupted' if result.interrupted else 'done'}: {summary} — {elapsed:.2f} s{recorded}"
        )
        if result.failed:
            first = result.failed[0].id
            self._line(f"resume with: agilab-run {lab_file} --from {first}")


# AGILAB's fills (its WORKFLOW graph: plan/vocabulary.COLORS), on a neutral outline as its DOT draws
STATE_STROKE = "#6b7280"


def edge_label(artifacts: Sequence[str]) -> str:
    """What an arrow carries: its artifacts joined (two at most), else their count; '' for none."""
    if len(artifacts) > 2:
        return f"{len(artifacts)} artifacts"
    return ", ".join(artifacts)


def graph_text(
    statuses: list[StepStatus],
    edges: list[tuple[str, str]],
    fmt: str,
    carried: Mapping[tuple[str, str], Sequence[str]] | None = None,
    shared: Mapping[str, SharedState] | None = None,
) -> str:
    """The step graph in Mermaid or Graphviz dot, each step coloured by its state in AGILAB's words
    (``shared``; AGILAB's colours), one arrow per pair of steps labelled with the artifacts it
    carries (``carried``)."""
    from ..plan.vocabulary import COLORS

    node = {s.id: f"s{n}" for n, s in enumerate(statuses)}
    labels = {pair: edge_label(arts) for pair, arts in (carried or {}).items()}
    word = {
        s.id: (shared[s.id].state, shared[s.id].label()) if shared else (s.state, s.state) for s in statuses
    }
    if fmt == "dot":
        lines = ["digraph lab {", "  rankdir=LR;", '  node [shape=box, style="rounded,filled"];']
        for s in statuses:
            state, text = word[s.id]
            fill = COLORS.get(state, "#f8fafc")
            lines.append(
                f'  {node[s.id]} [label="{_dot_text(s.id)}\\n{_dot_text(text)}", fillcolor="{fill}", '
                f'color="{STATE_STROKE}"];'
            )
        for a, b in edges:
            if a in node and b in node:
                label = _dot_text(labels.get((a, b), ""))
                attrs = f' [label="{label}"]' if label else ""
                lines.append(f"  {node[a]} -> {node[b]}{attrs};")
        lines.append("}")
        return "\n".join(lines) + "\n"
    lines = ["flowchart LR"]
    for s in statuses:
        state, text = word[s.id]
        label = _mermaid_text(s.id)
        lines.append(f'  {node[s.id]}["{label}<br/><small>{_mermaid_text(text)}</small>"]:::{state}')
    for a, b in edges:
        if a in node and b in node:
            label = _mermaid_text(labels.get((a, b), ""))
            lines.append(f"  {node[a]} -->|{label}| {node[b]}" if label else f"  {node[a]} --> {node[b]}")
    for state, fill in COLORS.items():
        lines.append(f"  classDef {state} fill:{fill},stroke:{STATE_STROKE}")
    return "\n".join(lines) + "\n"


def _dot_text(text: str) -> str:
    """Text safe inside a quoted DOT string."""
    return text.replace("\\", "\\\\").replace('"', '\\"')


def _mermaid_text(text: str) -> str:
    """Text safe inside a Mermaid label: quotes and pipes as entities."""
    return text.replace('"', "#quot;").replace("|", "#124;")


def print_history(listed: list[tuple[Any, Any]], out: TextIO) -> None:
    """Runs newest first: status, duration, what ran, and what changed since the run before."""
    from tabulate import tabulate  # a well-kept table layout, not another hand-rolled one

    from ..record.query import changes_since

    if not listed:
        print("no run recorded yet (runs are recorded in .agilab/history/ beside the lab)", file=out)
        return
    rows = []
    for run, before in listed:
        ran = [s["step_id"] for s in run.steps if s["status"] in ("ran", "failed")]
        failed = [s["step_id"] for s in run.steps if s["status"] == "failed"]
        what = ", ".join(ran[:4]) + (f" (+{len(ran) - 4})" if len(ran) > 4 else "")
        if failed:
            what += f"; failed: {', '.join(failed[:3])}"
        changes = changes_since(run, before)
        rows.append(
            [
                run.run_id,
                _when(run.started),
                run.status,
                f"{run.seconds:.2f}",
                what or "-",
                "; ".join(changes[:3]) + (f" (+{len(changes) - 3})" if len(changes) > 3 else ""),
            ]
        )
    print(
        tabulate(
            rows, headers=["run", "started (UTC)", "status", "seconds", "ran", "changed since the run before"]
        ),
        file=out,
    )


def _when(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(epoch))


def print_comparison(a: Any, b: Any, diffs: list[dict[str, Any]], out: TextIO) -> None:
    print(
        f"{a.run_id} ({_when(a.started)}, {a.status}) → {b.run_id} ({_when(b.started)}, {b.status})", file=out
    )
    if not diffs:
        print("no step differs", file=out)
        return
    for diff in diffs:
        print(diff["step_id"], file=out)
        for kind in ("presence", "status", "code", "params", "settings", "inputs", "metrics", "outputs"):
            if kind not in diff:
                continue
            value = diff[kind]
            for n, line in enumerate(value if isinstance(value, list) else [value]):
                print(f"  {kind if n == 0 else '':<9} {line}", file=out)


CHANGE_COLORS = {  # fill, stroke
    "added": ("#d4edda", "#28a745"),
    "changed": ("#fff3cd", "#d39e00"),
    "renamed": ("#fff3cd", "#d39e00"),
    "removed": ("#e2e3e5", "#6c757d"),
    "rerun": ("#cce5ff", "#004085"),
    "same": ("#ffffff", "#adb5bd"),
}


def change_graph(ids: list[str], edges: list[tuple[str, str]], change: Any) -> str:
    """The new lab's graph in Mermaid, each step coloured by what the change does to it (added,
    changed or renamed, removed — drawn too —, re-run only because of an upstream change, or the
    same), for a pull request."""
    kinds = {s.id: s.kind for s in change.steps}
    cosmetic = {
        s.id
        for s in change.steps
        if s.kind == "changed" and all(c.startswith("code: cosmetic") for c in s.changes)
    }
    was = {s.id: s.was for s in change.steps if s.was}
    removed = [s.id for s in change.steps if s.kind == "removed"]
    node = {sid: f"s{n}" for n, sid in enumerate([*ids, *removed])}
    lines = ["flowchart LR"]
    for sid in [*ids, *removed]:
        kind = kinds.get(sid) or ("rerun" if sid in change.why else "same")
        label = sid + (f" (was {was[sid]})" if sid in was else "")
        note = {"same": "unchanged", "rerun": "re-runs (upstream)"}.get(kind, kind)
        if sid in cosmetic:
            kind, note = "same", "cosmetic edit"
        if sid in change.why and kind not in ("rerun", "removed", "same"):
            note += ", re-runs"
        label = label.replace('"', "#quot;")
        lines.append(f'  {node[sid]}["{label}<br/><small>{note}</small>"]:::{kind}')
    for a, b in edges:
        if a in node and b in node:
            lines.append(f"  {node[a]} --> {node[b]}")
    for kind, (fill, stroke) in CHANGE_COLORS.items():
        dash = ",stroke-dasharray: 4 4" if kind == "removed" else ""
        lines.append(f"  classDef {kind} fill:{fill},stroke:{stroke}{dash}")
    return "\n".join(lines) + "\n"
