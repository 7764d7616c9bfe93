"""Mutations of real lab files, shared by ``test_fuzz.py`` (a few hundred cases in CI) and
``fault/fuzz.py`` (10,000 cases, with memory and time figures)."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from pathlib import Path

from conftest import CONFORMANCE, corpus_files

from agilab_dsl.check.files import check_file

TIME_BOUND = 10.0  # seconds one file's check may take

CYCLE = b'\n[[cyc]]\nid = "c1"\nC = "1"\ndeps = ["c2"]\n\n[[cyc]]\nid = "c2"\nC = "2"\ndeps = ["c1"]\n'
KINDS = (
    "byte flip",
    "truncation",
    "invalid UTF-8",
    "deep nesting",
    "huge string",
    "duplicate line",
    "type swap",
    "key rename",
    "cycle",
)


def sources() -> list[Path]:
    return [*corpus_files(), *sorted(CONFORMANCE.rglob("*.toml"))]


def mutate(data: bytes, rng: random.Random) -> tuple[str, bytes]:
    kind = rng.randrange(len(KINDS))
    at = rng.randrange(max(1, len(data)))
    if kind == 0:
        out = data[:at] + bytes([data[at] ^ (1 << rng.randrange(8))]) + data[at + 1 :] if data else b"\x00"
    elif kind == 1:
        out = data[:at]
    elif kind == 2:
        out = data[:at] + b"\xff\xfe\xc3" + data[at:]
    elif kind == 3:
        out = data + b"\ndeep = " + b"[" * 5000 + b"]" * 5000 + b"\n"
    elif kind == 4:
        out = data + b'\nhuge = "' + b"x" * 2_000_000 + b'"\n'
    elif kind == 5:  # a line twice: duplicate keys, duplicate tables
        lines = data.splitlines(keepends=True) or [b""]
        n = rng.randrange(len(lines))
        out = b"".join([*lines[: n + 1], lines[n], *lines[n + 1 :]])
    elif kind == 6:  # a string becomes a number, or a list
        out = data.replace(b'"', b"", 2) if rng.random() < 0.5 else data.replace(b'= "', b'= [1, "', 1)
    elif kind == 7:
        out = data.replace(b"id", b"idd", 1).replace(b"schema", b"shema", 1)
    else:  # two stages that depend on each other
        out = data + CYCLE
    return KINDS[kind], out


def place(source: Path, folder: Path, data: bytes) -> Path:
    """Write a mutation under the name that makes it the same kind of file as its source."""
    name = "lab_steps.toml"
    for marker, written in (
        ("lab_stages", "lab_stages.toml"),
        ("lab_steps", "lab_steps.toml"),
        ("parallel_stage", "parallel_stage.toml"),
        ("app_settings", "app_settings.toml"),
    ):
        if marker in source.name:
            name = written
            break
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / name
    target.write_bytes(data)
    return target


@dataclass
class Outcome:
    seconds: float
    diagnostics: int
    unlocated: list[str]  # diagnostics without a file, line and column


def check_case(target: Path) -> Outcome:
    """Check one file in this process; any exception is the caller's to count (a traceback)."""
    started = time.perf_counter()
    result, settings = check_file(target)
    seconds = time.perf_counter() - started
    found = [*result.diagnostics, *(settings.diagnostics if settings else [])]
    unlocated = [repr(d) for d in found if not (d.path and d.line >= 1 and d.column >= 1)]
    return Outcome(seconds, len(found), unlocated)
