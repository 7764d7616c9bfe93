"""AGILAB's verdict on several files: which validator judges each file, the exit code AGILAB's
``workflow validate`` gives (fail 2, warn with ``--strict`` 1, else 0), and the reports as JSON, as
compiler-style text (the same rendering as plain ``check``) or as GitHub annotations. Returns text;
the CLI prints it.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from ...load.errors import render_github, render_text, to_json_text
from ...load.parse import detect_kind
from ...load.reading import NotReadable, read_regular
from .contract import validate_contract
from .finding import Finding, Places
from .lab import validate_lab

EXIT_OK, EXIT_WARN_STRICT, EXIT_FAIL = 0, 1, 2


def which_validator(file: str, kind: str | None = None) -> str:
    """``lab``, ``contract`` or ``settings``: ``kind`` when given, else the schema stamp, the
    file's name or its shape (as plain ``check`` recognises files); a file that is none of these is
    judged as a lab, as ``agilab workflow validate`` would."""
    if kind:
        return kind
    path = Path(file).expanduser()
    try:
        data = tomllib.loads(read_regular(path).decode("utf-8"))
    except (OSError, NotReadable, UnicodeDecodeError, tomllib.TOMLDecodeError, RecursionError):
        data = {}
    return detect_kind(path, data) or "lab"


def check_agilab(
    files: list[str],
    *,
    kind: str | None = None,
    module_key: str | None = None,
    apps_root: str | None = None,
    require_metadata: bool = False,
) -> list[dict[str, Any]]:
    """One report per file, in order (with a ``_findings`` key the renderers use)."""
    reports = []
    for file in files:
        validator = which_validator(file, kind)
        if validator == "contract":
            reports.append(validate_contract(file))
        elif validator == "lab":
            lab = validate_lab(
                file, module_key=module_key, apps_root=apps_root, require_metadata=require_metadata
            )
            reports.append({"kind": "lab", "path": file, **lab})
        else:
            reports.append(_unsupported(file, validator))
    return reports


def _unsupported(file: str, kind: str) -> dict[str, Any]:
    finding = Places(file, None).finding(
        "agilab-kind-unsupported",
        f"this is a {kind} file: check --agilab mirrors AGILAB's lab and parallel-contract validators only",
        None,
        hint="check it without --agilab",
    )
    return {
        "kind": kind,
        "path": file,
        "status": "fail",
        "issues": [finding.as_dict()],
        "_findings": [finding],
    }


def exit_code(reports: list[dict[str, Any]], *, strict: bool) -> int:
    statuses = {r["status"] for r in reports}
    if "fail" in statuses:
        return EXIT_FAIL
    if "warn" in statuses and strict:
        return EXIT_WARN_STRICT
    return EXIT_OK


def to_json(reports: list[dict[str, Any]]) -> str:
    """One report: its object; several: a list of them, in the order the files were named."""
    payload = [{k: v for k, v in r.items() if k != "_findings"} for r in reports]
    return to_json_text(payload[0] if len(payload) == 1 else payload)


def to_github(reports: list[dict[str, Any]]) -> str:
    return "".join(render_github(f.diagnostic()) + "\n" for r in reports for f in r["_findings"])


def to_text(reports: list[dict[str, Any]], *, color: bool = False) -> str:
    out: list[str] = []
    totals = {"error": 0, "warning": 0, "info": 0}
    for r in reports:
        findings: list[Finding] = r["_findings"]
        for f in sorted(findings, key=lambda f: (f.where.line, f.where.column) if f.where else (0, 0)):
            out.append(render_text(f.diagnostic(), color=color))
        counts = {sev: sum(f.severity == sev for f in findings) for sev in totals}
        for sev, n in counts.items():
            totals[sev] += n
        out.append(f"{r['path']}: {r['status']} — {_what(r)}; {_counts(counts)}")
    if len(reports) > 1:
        worst = (
            "fail"
            if any(r["status"] == "fail" for r in reports)
            else ("warn" if any(r["status"] == "warn" for r in reports) else "pass")
        )
        out.append(f"{len(reports)} files checked with AGILAB's rules: {_counts(totals)} — {worst}")
    return "".join(line + "\n" for line in out)


def _what(report: dict[str, Any]) -> str:
    if report["kind"] == "contract":
        return f"AGILAB's parallel_stage --check: {'ok' if report['ok'] else 'invalid'}"
    if report["kind"] != "lab":
        return "not judged"
    s = report["summary"]
    return (
        f"AGILAB's workflow validate, module key {report['module_key']!r}: "
        f"{_n(s['stage_count'], 'stage')}, {_n(s['dependency_count'], 'dependency', 'dependencies')}, "
        f"{_n(len(report['artifact_edges']), 'artifact flow')}, {_n(s['external_input_count'], 'external input')}"
    )


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(_n(n, sev) for sev, n in counts.items())


def _n(n: int, one: str, many: str | None = None) -> str:
    return f"{n} {one if n == 1 else many or one + 's'}"
