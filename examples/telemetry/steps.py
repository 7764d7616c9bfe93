"""Functions of the telemetry example: one function step and one parallel-stage function."""

from __future__ import annotations

import csv
import json
from pathlib import Path


def summarize(data_dir: str, alert_m: float, out: str) -> dict[str, float]:
    """Read every flight CSV; write (and return) counts and the share of samples above the alert altitude."""
    rows = 0
    above = 0
    top = 0.0
    for path in sorted(Path(data_dir).glob("flight_*.csv")):
        with path.open(newline="", encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                altitude = float(row["altitude_m"])
                rows += 1
                above += altitude > alert_m
                top = max(top, altitude)
    summary = {
        "samples": rows,
        "above_alert": above,
        "max_altitude_m": top,
        "share_above_alert": above / rows if rows else 0.0,
    }
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return summary


def altitude_stats(part):  # one partition of the parallel stage
    """Per-aircraft altitude statistics of one chunk of one flight file (a CSV header is always present)."""
    reader = csv.DictReader(part.read_text().splitlines())
    stats: dict[str, list[float]] = {}
    for row in reader:
        stats.setdefault(row["aircraft"], []).append(float(row["altitude_m"]))
    return [
        {"aircraft": a, "samples": len(v), "mean_altitude_m": round(sum(v) / len(v), 3)}
        for a, v in sorted(stats.items())
    ]
