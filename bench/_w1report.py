"""The printed report of bench/w1.py: the table (Markdown, as in issue 18), the lab file load, the CPU
workload, and a verdict for each of the issue's goals 1-3 that the run measured."""

from __future__ import annotations

import argparse
import statistics
from typing import Any

ROWS = ("no-op status", "no-op run", "one changed", "one touched", "cold -j1", "cold -j2")
LABELS = {
    "no-op status": "no-op status",
    "no-op run": "no-op run",
    "one changed": "one input changed (2 steps run)",
    "one touched": "one input touched (same content)",
    "cold -j1": "cold run -j 1",
    "cold -j2": "cold run -j 2",
}


def _med(samples: list[float]) -> float | None:
    return statistics.median(samples) if samples else None


def _ratio(size: Any, scenario: str) -> float | None:
    ours, doit = _med(size.ours[scenario]), _med(size.doit[scenario])
    return ours / doit if ours is not None and doit else None


def _verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def _s(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f} s"


def print_report(
    sizes: list[Any], cpu: dict[str, list[float]] | None, args: argparse.Namespace, context: dict[str, Any]
) -> None:
    load = context["load"]
    print()
    print(
        f"W1 — N steps copying one input each + 1 gather; ours: {context['install']} (Python "
        f"{context['python']}); {context['doit']}"
    )
    print(
        f"{context['cores']} cores, shared (load average {load[0][0]:.2f} at the start, {load[1][0]:.2f} "
        f"at the end); {context['minutes']:.1f} min in all. Whole-process wall time, medians; "
        "ratio = ours / doit (below 1: ours faster);"
    )
    print(
        "peak RSS = ours' largest ru_maxrss over the repeats (os.wait4: the run's process, or a child "
        "it waited for if larger). doit's no-op status is a no-op doit run."
    )
    print()
    print("| scenario | N | ours | doit | ratio | ours peak RSS |")
    print("|---|---|---|---|---|---|")
    for scenario in ROWS:
        for size in sizes:
            ratio = _ratio(size, scenario)
            skipped = size.doit_skipped.get(scenario)
            doit = (
                f"skipped ({skipped})"
                if skipped and not size.doit[scenario]
                else _s(_med(size.doit[scenario]))
            )
            rss = max(size.rss[scenario]) if size.rss[scenario] else None
            print(
                f"| {LABELS[scenario]} | {size.n:,} | {_s(_med(size.ours[scenario]))} | {doit} | "
                f"{'—' if ratio is None else f'{ratio:.2f}x'} | {'—' if rss is None else f'{rss:.0f} MB'} |"
            )
    repeats = ", ".join(f"N = {s.n:,}: {len(s.ours['cold -j1'])}" for s in sizes)
    print(f"(repeats: {repeats}; every run of ours was checked for which steps ran, and so was doit's)")
    waits = [
        f"{scenario}, N = {s.n:,}: {_s(_med(w))}"
        for s in sizes
        for scenario, w in s.history_wait.items()
        if w and scenario in ("cold -j1", "one changed")
    ]
    if waits:
        print(
            "our detached history writer finished after the run returned (medians; the next command was "
            f"timed after it): {'; '.join(waits)}"
        )
    _print_cpu(sizes)
    _print_load(sizes)
    _print_floor(sizes)
    if cpu is not None:
        j1, j2 = _med(cpu["-j1"]), _med(cpu["-j2"])
        print()
        print(
            f"CPU workload: {args.cpu_steps:,} steps × {args.cpu_ms:g} ms CPU, cold, ours, median of "
            f"{len(cpu['-j1'])}: -j 1 {_s(j1)}, -j 2 {_s(j2)}: speed-up {j1 / j2:.2f}x"
            if j1 and j2
            else ""
        )
    print()
    for line in goals(sizes, cpu):
        print(line)


def _print_cpu(sizes: list[Any]) -> None:
    """CPU and page faults of the same runs (the page faults hardly move between runs of the same
    code; the CPU time moves with the machine, as wall time does)."""
    rows = []
    for scenario in ROWS:
        for size in sizes:
            ours, doit = _med(size.cpu["ours"][scenario]), _med(size.cpu["doit"][scenario])
            ours_pf, doit_pf = _med(size.faults["ours"][scenario]), _med(size.faults["doit"][scenario])
            if ours is None and doit is None:
                continue
            rows.append(
                [
                    LABELS[scenario],
                    f"{size.n:,}",
                    _s(ours),
                    _s(doit),
                    f"{ours / doit:.2f}x" if ours is not None and doit else "—",
                    "—" if ours_pf is None else f"{ours_pf:,.0f}",
                    "—" if doit_pf is None else f"{doit_pf:,.0f}",
                ]
            )
    _table(
        "CPU (user + system) and page faults of each timed run's process tree (os.wait4: the command "
        "and every process reaped within it; not our detached history writer), medians",
        ["scenario", "N", "ours CPU", "doit CPU", "ratio", "ours page faults", "doit page faults"],
        rows,
    )


def _table(title: str, columns: list[str], rows: list[list[str]]) -> None:
    """A Markdown table under a blank line and its title."""
    print()
    print(title)
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for row in rows:
        print("| " + " | ".join(row) + " |")


def _print_floor(sizes: list[Any]) -> None:
    floors = [s for s in sizes if s.floor]
    if not floors:
        return
    rows = []
    for s in floors:
        f, total, ours = s.floor, floor_total(s.floor), _med(s.ours["one changed"])
        rows.append(
            [f"{s.n:,}", _s(f["gather"]), _s(f["stat"]), _s(f["start"]), _s(total), _s(ours)]
            + ["—" if ours is None else f"{ours / total:.1f}x"]
        )
    _table(
        "What one input changed cannot avoid here (bench/_w1floor.py, in process, medians of 3): the "
        "gather step's own reading of its N inputs, a stat of each of the 2N files, the interpreter's start",
        ["N", "gather's reading", "2N stats", "start", "sum", "ours, one changed", "ours / sum"],
        rows,
    )


def _print_load(sizes: list[Any]) -> None:
    loads = [s for s in sizes if s.load]
    if not loads:
        return
    rows = []
    for s in loads:
        d = s.load
        cached = f"{d['cached'] * 1000:.0f} ms" + (
            "" if d["cache_answered"] else " (the cache did NOT answer)"
        )
        rows.append(
            [
                f"{s.n:,}",
                f"{d['bytes'] / 1024:,.0f} KiB",
                f"{d['tomllib'] * 1000:.0f} ms",
                f"{d['cold'] * 1000:.0f} ms",
                f"{d['cold'] / d['tomllib']:.2f}x",
                cached,
                f"{d['cached'] / d['tomllib']:.2f}x",
                f"{d['parse_validate'] * 1000:.0f} ms",
            ]
        )
    _table(
        "The lab file load, in process (bench/_labload.py under the same interpreter): "
        "execute.session.open_lab, as status and a run call it, against tomllib.loads of the same text",
        [
            "N",
            "lab size",
            "tomllib.loads",
            "ours, no cache (parse, validate, check)",
            "ratio",
            "ours through the spec cache",
            "ratio",
            "parse + validate only (load_lab)",
        ],
        rows,
    )
    print(f"(medians of {', '.join(str(s.load['repeat']) for s in loads)}, each after one untimed call)")


def goals(sizes: list[Any], cpu: dict[str, list[float]] | None) -> list[str]:
    by_n = {s.n: s for s in sizes}
    out = ["Goals (issue 18):"]
    for n in (1000, 10_000):
        s = by_n.get(n)
        if s is None:
            out.append(f"  1. N = {n:,}: not measured")
            continue
        for scenario in ("one changed", "one touched"):
            r = _ratio(s, scenario)
            out.append(
                f"  1. {LABELS[scenario]}, N = {n:,}: "
                + ("no doit figure" if r is None else f"{r:.2f}x doit (goal ≤ 0.5x): {_verdict(r <= 0.5)}")
            )
    s = by_n.get(100_000)
    if s is None:
        out.append("  2. N = 100,000: not measured (--sizes 100000)")
    else:
        status, changed = _med(s.ours["no-op status"]), _med(s.ours["one changed"])
        peak = max((x for v in s.rss.values() for x in v), default=None)
        if status is not None:
            out.append(f"  2. N = 100,000 no-op status {status:.2f} s (goal ≤ 1 s): {_verdict(status <= 1)}")
        if changed is not None:
            out.append(
                f"  2. N = 100,000 one input changed {changed:.2f} s (goal ≤ 2 s): {_verdict(changed <= 2)}"
            )
            if s.floor:
                out.append(f"     {floor_text(s.floor)}")
        if peak is not None:
            out.append(f"  2. N = 100,000 peak RSS {peak:.0f} MB (goal ≤ 1,024 MB): {_verdict(peak <= 1024)}")
    for s in sizes:
        if s.load:
            d = s.load
            tail = "" if s.n == 100_000 else " (the goal is at N = 100,000)"
            out.append(
                f"  2. lab file load, N = {s.n:,}: {d['cold'] / d['tomllib']:.2f}x tomllib without a cache, "
                f"{d['cached'] / d['tomllib']:.2f}x through the spec cache (goal ≤ 2x){tail}: "
                f"{_verdict(d['cold'] / d['tomllib'] <= 2)} without, {_verdict(d['cached'] / d['tomllib'] <= 2)} with"
            )
    s = by_n.get(1000)
    r = _ratio(s, "cold -j1") if s else None
    out.append(
        "  3. cold run -j 1, N = 1,000: "
        + ("not measured" if r is None else f"{r:.2f}x doit (goal ≤ 0.5x): {_verdict(r <= 0.5)}")
    )
    for s in sizes:
        j1, j2 = _med(s.ours["cold -j1"]), _med(s.ours["cold -j2"])
        if j1 and j2:
            out.append(
                f"  3. -j 2 never slower than -j 1, N = {s.n:,}: {j2:.2f} s vs {j1:.2f} s: {_verdict(j2 <= j1)}"
            )
    if cpu is not None and cpu["-j1"] and cpu["-j2"]:
        speed = _med(cpu["-j1"]) / _med(cpu["-j2"])  # type: ignore[operator]
        out.append(
            f"  3. CPU workload -j 2 speed-up {speed:.2f}x (goal ≥ 1.7x on 2 cores): {_verdict(speed >= 1.7)}"
        )
    out.append("  4. start-up: bench/startup.py --wheel;  5-6. partitions and memory: bench/parallel.py")
    return out


def floor_total(floor: dict[str, Any]) -> float:
    """The sum of bench/_w1floor.py's figures: what one change cannot avoid."""
    return float(floor["gather"] + floor["stat"] + floor["start"])


def floor_text(floor: dict[str, Any]) -> str:
    """What one change cannot avoid, from bench/_w1floor.py's figures."""
    total = floor_total(floor)
    return (
        f"unavoidable here, without judging or recording anything: the gather step's own reading of "
        f"{floor['n']:,} files {floor['gather']:.2f} s + a stat of each of the {2 * floor['n']:,} files "
        f"{floor['stat']:.2f} s + the interpreter's start {floor['start']:.2f} s = {total:.2f} s"
    )


def samples(sizes: list[Any], cpu: dict[str, list[float]] | None, context: dict[str, Any]) -> dict[str, Any]:
    return {
        "context": context,
        "sizes": [
            {
                "n": s.n,
                "ours": s.ours,
                "ours_rss_mb": s.rss,
                "cpu_seconds": s.cpu,
                "page_faults": s.faults,
                "doit": s.doit,
                "doit_skipped": s.doit_skipped,
                "history_wait": s.history_wait,
                "lab_load": s.load,
                "floor": s.floor,
            }
            for s in sizes
        ],
        "cpu": cpu,
    }
