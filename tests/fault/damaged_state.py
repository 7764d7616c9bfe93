"""Damaged state (issue 16, failure 2): every file under ``.agilab/`` damaged in every way we can
think of, then ``agilab-run status``, a run, ``history`` and ``status`` again, each in a fresh process.

    python tests/fault/damaged_state.py [--only SUBSTRING] [--every N]

A small two-step lab is run twice (state compacted into ``state.json`` after the first run, so a
journal, a hash cache, a judgment, two history files and a pending record all exist). For each kind
of damage — each file × truncation, emptying, invalid UTF-8, NUL bytes, deep nesting, a huge line,
wrong JSON types, wrong field types, a folder or a symlink loop where the file belongs, … — a copy
of that lab is damaged and the four calls are made. A call fails when it prints a traceback or
exits other than 0; the lab failed to recover when the last ``status`` does not show every step
fresh without a warning, or ``history`` does not list every run whose file was not damaged.

Prints kinds tried / tracebacks / calls that failed / labs that failed to recover; exits 1 if any.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

LAB = '''[[m]]
id = "a"
C = """
from pathlib import Path
Path(outputs[0]).write_text("a")
"""
produces = ["out/a.txt"]

[[m]]
id = "b"
C = """
from pathlib import Path
Path(outputs[0]).write_text(Path(inputs[0]).read_text() + "b")
"""
uses = ["out/a.txt"]
produces = ["out/b.txt"]
'''
ENV = os.environ | {"AGILAB_HISTORY_SYNC": "1", "PYTHONDONTWRITEBYTECODE": "1"}


def agilab(lab: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agilab_dsl", *args],
        check=False,
        cwd=lab,
        env=ENV,
        capture_output=True,
        text=True,
        errors="replace",
        timeout=120,
    )


def baseline(root: Path) -> Path:
    """A lab run twice: state.json, a journal, hashes (and the few a later run added apart),
    judgment, two history files, one pending record."""
    lab = root / "base"
    lab.mkdir()
    (lab / "lab_steps.toml").write_text(LAB, encoding="utf-8")
    for extra in ((), ("--force",)):
        done = agilab(lab, "lab_steps.toml", *extra)
        assert done.returncode == 0, done.stderr
        if not extra:
            subprocess.run(
                [
                    sys.executable,
                    "-c",
                    "from agilab_dsl.plan.state import LabState as S; S.load('lab_steps.toml').save()",
                ],
                cwd=lab,
                check=True,
            )
    runs = sorted((lab / ".agilab/history").glob("*.parquet"))
    assert (
        len(runs) == 2
        and (lab / ".agilab/journal.jsonl").exists()
        and (lab / ".agilab/state.json").exists()
        and (lab / ".agilab/hashes-new.json").exists()  # the forced run's few new hashes
    )
    import pyarrow.parquet as pq

    rows = pq.read_table(runs[0]).to_pylist()
    record = {
        "schema": 2,
        "run_id": "20200101T000000.000-aaaaaa",
        "started": 1577836800.0,
        "ended": 1577836801.0,
        "status": "ok",
        "lab": "lab_steps.toml",
        "lab_hash": rows[0]["lab_hash"],
        "app": rows[0]["app"],
        "git_commit": None,
        "git_dirty": None,
        "steps": [{"step_id": "a", "status": "ran"}],
    }
    (lab / ".agilab/history-pending").mkdir(exist_ok=True)
    (lab / ".agilab/history-pending/20200101T000000.000-aaaaaa.json").write_text(json.dumps(record))
    return lab


FILES = {
    "state": ".agilab/state.json",
    "journal": ".agilab/journal.jsonl",
    "hashes": ".agilab/hashes.json",
    "hashes-new": ".agilab/hashes-new.json",
    "judgment": ".agilab/judgment.json",
    "pending": ".agilab/history-pending/20200101T000000.000-aaaaaa.json",
    "parquet": "PARQUET",  # the older of the two history files
    "lock": ".agilab/lock",
}


def _bytes(fn: Callable[[bytes], bytes]) -> Callable[[Path], None]:
    return lambda p: p.write_bytes(fn(p.read_bytes()))


def _folder(p: Path) -> None:
    p.unlink()
    (p / "inner").mkdir(parents=True)


def _loop(p: Path) -> None:
    p.unlink()
    p.symlink_to(p.name)


GENERIC: dict[str, Callable[[Path], None]] = {
    "truncated": _bytes(lambda b: b[: len(b) // 2]),
    "empty": _bytes(lambda b: b""),
    "non-utf8": _bytes(lambda b: b[:10] + b"\xff\xfe\x80" + b[10:]),
    "nul-filled": _bytes(lambda b: b"\0" * max(len(b), 64)),
    "nul-line": _bytes(lambda b: b + b"\0" * 80 + b"\n"),
    "huge-line": _bytes(lambda b: b + b'{"x": "' + b"x" * 4_000_000 + b'"}\n'),
    "deep-nesting": _bytes(lambda b: b"[" * 200_000 + b"]" * 200_000),
    "list": _bytes(lambda b: b"[1, 2, 3]"),
    "string": _bytes(lambda b: b'"text"'),
    "number": _bytes(lambda b: b"42"),
    "null": _bytes(lambda b: b"null"),
    "folder": _folder,
    "symlink-loop": _loop,
}


def _json_edit(fn: Callable[[object], object]) -> Callable[[Path], None]:
    return lambda p: p.write_text(json.dumps(fn(json.loads(p.read_text()))))


def _state_step(field: str, value: object) -> Callable[[object], object]:
    def edit(data: object) -> object:
        data["steps"]["a"][field] = value  # type: ignore[index]
        return data

    return edit


def _journal_line(line: bytes) -> Callable[[Path], None]:
    return _bytes(lambda b: line + b"\n" + b)


def _parquet(**columns: object) -> Callable[[Path], None]:
    def edit(p: Path) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        rows = pq.read_table(p).to_pylist()
        for r in rows:
            r.update(columns)
        pq.write_table(
            pa.Table.from_pylist([{k: (str(v) if k in columns else v) for k, v in r.items()} for r in rows]),
            p,
        )

    return edit


SPECIFIC: dict[str, dict[str, Callable[[Path], None]]] = {
    "state": {
        "format-99": _json_edit(lambda d: d | {"format": 99}),  # type: ignore[operator]
        "steps-list": _json_edit(lambda d: d | {"steps": [1, 2]}),  # type: ignore[operator]
        "record-list": _json_edit(_state_step("outputs", [1])),
        "fingerprint-number": _json_edit(_state_step("fingerprint", 7)),
        "finished-string": _json_edit(_state_step("finished_at", "yesterday")),
        "outputs-numbers": _json_edit(_state_step("outputs", {"out/a.txt": 1})),
        "components-string": _json_edit(_state_step("components", "x")),
        "record-missing-field": _json_edit(lambda d: d | {"steps": {"a": {"fingerprint": "f"}}}),  # type: ignore[operator]
    },
    "journal": {
        "line-list": _journal_line(b"[1, 2]"),
        "line-id-number": _journal_line(b'{"id": 3, "record": {}}'),
        "line-record-string": _journal_line(b'{"id": "a", "record": "x"}'),
        "line-fingerprint-number": _journal_line(
            b'{"id": "a", "record": {"fingerprint": 1, "components": {}, "outputs": {}, '
            b'"finished_at": 0, "seconds": 0, "run_id": "r"}}'
        ),
        "line-non-utf8": _journal_line(b'{"id": "\xff\xfe"}'),
        "line-deep": _journal_line(b"[" * 100_000),
        "torn-middle": _journal_line(b'{"id": "a", "rec'),
        "crlf": _bytes(lambda b: b.replace(b"\n", b"\r\n")),
    },
    "hashes": {
        "sizes-strings": _json_edit(lambda d: d | {"sizes": [str(n) for n in d["sizes"]]}),  # type: ignore[index,operator]
        "mtimes-short": _json_edit(lambda d: d | {"mtimes": d["mtimes"][1:]}),  # type: ignore[index,operator]
        "hashes-null": _json_edit(lambda d: d | {"hashes": None}),  # type: ignore[operator]
        "paths-numbers": _json_edit(lambda d: d | {"paths": list(range(len(d["paths"])))}),  # type: ignore[index,operator]
        "table-entry-number": _json_edit(lambda d: {p: 5 for p in d["paths"]}),  # type: ignore[index]
        "table-entry-short": _json_edit(lambda d: {p: [1] for p in d["paths"]}),  # type: ignore[index]
    },
    "judgment": {
        "statuses-string": _json_edit(lambda d: d | {"statuses": "x"}),  # type: ignore[operator]
        "paths-numbers": _json_edit(lambda d: d | {"paths": [1] * len(d["paths"])}),  # type: ignore[index,operator]
        "signatures-short": _json_edit(lambda d: d | {"signatures": d["signatures"][1:]}),  # type: ignore[index,operator]
        "env-list": _json_edit(lambda d: d | {"env": [1]}),  # type: ignore[operator]
    },
    "pending": {
        "started-string": _json_edit(lambda d: d | {"started": "yesterday"}),  # type: ignore[operator]
        "steps-string": _json_edit(lambda d: d | {"steps": "x"}),  # type: ignore[operator]
        "step-list": _json_edit(lambda d: d | {"steps": [[1]]}),  # type: ignore[operator]
        "unknown-field": _json_edit(lambda d: d | {"colour": "red"}),  # type: ignore[operator]
        "step-status-number": _json_edit(lambda d: d | {"steps": [{"step_id": "a", "status": 3}]}),  # type: ignore[operator]
    },
    "parquet": {
        "started-string": _parquet(run_started="yesterday"),
        "status-number": _parquet(run_status=3),
        "random-bytes": _bytes(lambda b: os.urandom(len(b))),
        "no-rows": lambda p: __import__("pyarrow.parquet").parquet.write_table(
            __import__("pyarrow.parquet").parquet.read_table(p).slice(0, 0), p
        ),
    },
}
PENDING_FOLDER = "pending-folder"  # a folder named like a record inside history-pending/


def kinds() -> list[tuple[str, str, Callable[[Path], None]]]:
    out = []
    for name in FILES:
        damages = dict(GENERIC)
        if name == "parquet":
            damages = {k: v for k, v in damages.items() if k not in ("list", "string", "number", "null")}
        damages |= SPECIFIC.get(name, {})
        out += [(name, kind, fn) for kind, fn in damages.items()]
    out.append(("pending", PENDING_FOLDER, lambda p: (p.parent / "20200102T000000.000-bbbbbb.json").mkdir()))
    out.append(
        ("agilab", "tmp-of-dead-pid", lambda p: (p.parent / ".state.json.999999999.tmp").write_text("x"))
    )
    return out


def check(
    base: Path, scratch: Path, name: str, kind: str, damage: Callable[[Path], None]
) -> tuple[int, int, bool, list[str]]:
    """(tracebacks, failed calls, recovered, what went wrong) for one kind of damage."""
    lab = scratch / f"{name}-{kind}"
    shutil.copytree(base, lab, symlinks=True)
    parquet = sorted((lab / ".agilab/history").glob("*.parquet"))
    target = parquet[0] if FILES.get(name) == "PARQUET" else lab / FILES.get(name, ".agilab/state.json")
    damage(target)
    intact = 3 - (name == "parquet") - (name == "pending" and kind != PENDING_FOLDER)  # runs left whole
    tracebacks = failed = 0
    said = []
    calls = [("status", "lab_steps.toml"), ("lab_steps.toml",), ("history", "lab_steps.toml", "--json")]
    calls += [
        ("lab_steps.toml",),
        ("status", "lab_steps.toml", "--json"),
        ("history", "lab_steps.toml", "--json"),
    ]
    results = [agilab(lab, *c) for c in calls]
    if "warning" in results[3].stderr:  # the first run repaired what it could not read: no note now
        said.append(f"not repaired: the next run still says {results[3].stderr.strip()[:300]}")
    for call, done in zip(calls, results, strict=True):
        if "Traceback" in done.stderr + done.stdout:
            tracebacks += 1
            said.append(f"{call[0]}: traceback: {done.stderr.strip().splitlines()[-1]}")
        elif done.returncode != 0:
            failed += 1
            said.append(f"{call[0]}: exit {done.returncode}: {done.stderr.strip()[-300:]}")
    recovered = not said
    try:
        steps = json.loads(results[4].stdout)["steps"]
        runs = json.loads(results[5].stdout)
        listed = len(runs if isinstance(runs, list) else runs.get("runs", []))
        if any(s["state"] != "fresh" for s in steps) or results[4].stderr.strip():
            recovered = False
            said.append(f"not recovered: {steps} {results[4].stderr.strip()[:300]}")
        if listed < intact:  # every run whose file was not damaged
            recovered = False
            said.append(f"history lists {listed} runs, expected ≥ {intact}")
    except (ValueError, KeyError, TypeError) as exc:
        recovered = False
        said.append(f"not recovered: {exc!r}")
    if kind == "tmp-of-dead-pid" and (lab / ".agilab/.state.json.999999999.tmp").exists():
        recovered = False
        said.append("the temporary file of a dead process was left")
    shutil.rmtree(lab, ignore_errors=True)
    return tracebacks, failed, recovered, said


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", help="only kinds whose 'file/damage' name contains this")
    parser.add_argument("--every", type=int, default=1, help="every Nth kind (a slice, for CI)")
    args = parser.parse_args(argv)
    chosen = [k for k in kinds() if args.only is None or args.only in f"{k[0]}/{k[1]}"][:: args.every]
    totals = [0, 0, 0]
    with tempfile.TemporaryDirectory() as tmp:
        base = baseline(Path(tmp))
        for name, kind, damage in chosen:
            tb, failed, recovered, said = check(base, Path(tmp), name, kind, damage)
            totals[0] += tb
            totals[1] += failed
            totals[2] += not recovered
            if said:
                print(f"{name}/{kind}:", *said, sep="\n    ")
    print(
        f"damaged state: {len(chosen)} kinds tried, {totals[0]} tracebacks, {totals[1]} calls failed, "
        f"{totals[2]} labs not recovered"
    )
    return 1 if any(totals) else 0


if __name__ == "__main__":
    raise SystemExit(main())
