"""Bad input never gives a traceback: mutations of every corpus and conformance file (byte flips,
truncation, invalid UTF-8, deep nesting, huge strings, duplicated lines, type swaps) — a few
hundred cases here; every diagnostic located; every check bounded in time."""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest
from conftest import CONFORMANCE, corpus_files

from agilab_dsl.check import check_file

SOURCES = [*corpus_files(), *sorted(CONFORMANCE.rglob("*.toml"))]
CASES_PER_FILE = 4


def mutate(data: bytes, rng: random.Random) -> bytes:
    kind = rng.randrange(8)
    at = rng.randrange(max(1, len(data)))
    if kind == 0:  # flip a byte
        return data[:at] + bytes([data[at] ^ (1 << rng.randrange(8))]) + data[at + 1 :] if data else b"\x00"
    if kind == 1:  # truncate
        return data[:at]
    if kind == 2:  # invalid UTF-8
        return data[:at] + b"\xff\xfe\xc3" + data[at:]
    if kind == 3:  # deep nesting
        return data + b"\ndeep = " + b"[" * 5000 + b"]" * 5000 + b"\n"
    if kind == 4:  # a huge string
        return data + b'\nhuge = "' + b"x" * 2_000_000 + b'"\n'
    if kind == 5:  # a line twice (duplicate keys, duplicate tables)
        lines = data.splitlines(keepends=True) or [b""]
        n = rng.randrange(len(lines))
        return b"".join([*lines[: n + 1], lines[n], *lines[n + 1 :]])
    if kind == 6:  # a string becomes a number, or a list
        return data.replace(b'"', b"", 2) if rng.random() < 0.5 else data.replace(b'= "', b'= [1, "', 1)
    return data.replace(b"id", b"idd", 1).replace(b"schema", b"shema", 1)  # key renames


@pytest.mark.skipif(not SOURCES, reason="no corpus or conformance files to mutate")
def test_mutated_files_give_located_diagnostics_and_never_a_traceback(tmp_path: Path) -> None:
    rng = random.Random(20261122)
    tried = 0
    slowest = 0.0
    for source in SOURCES:
        data = source.read_bytes()
        name = (
            source.name
            if any(k in source.name for k in ("lab_st", "parallel_stage", "app_settings"))
            else None
        )
        for n in range(CASES_PER_FILE):
            target = tmp_path / f"case{tried}" / (name or "lab_steps.toml")
            if "lab_st" in source.name:
                target = target.with_name(
                    "lab_steps.toml" if "lab_steps" in source.name else "lab_stages.toml"
                )
            elif "parallel_stage" in source.name:
                target = target.with_name("parallel_stage.toml")
            elif "app_settings" in source.name:
                target = target.with_name("app_settings.toml")
            target.parent.mkdir()
            target.write_bytes(mutate(data, rng))
            started = time.perf_counter()
            result, settings = check_file(target)  # must not raise
            took = time.perf_counter() - started
            slowest = max(slowest, took)
            assert took < 10, f"{source.name} mutation {n}: check took {took:.1f} s"
            for d in [*result.diagnostics, *(settings.diagnostics if settings else [])]:
                assert d.line >= 1 and d.column >= 1 and d.path, (source.name, n, d)
            tried += 1
    assert tried >= 200, tried
    print(f"{tried} mutated files checked, slowest {slowest:.2f} s")
