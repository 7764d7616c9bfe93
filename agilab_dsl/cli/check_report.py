"""What ``check`` prints for its files' reports (text, JSON or GitHub annotations) and the exit code
it returns: for a full check (:mod:`.cmd_check`) and for one answered from the result cache before
the argument parser is loaded (:mod:`.fast`). Only the standard library's lightest modules."""

from __future__ import annotations

import os

from .common import EXIT_INVALID, EXIT_OK, EXIT_PROBLEMS, use_color

TYPE_CHECKING = False  # typing itself is not imported: start-up pays for every module
if TYPE_CHECKING:  # pragma: no cover
    from collections.abc import Callable, Iterable
    from typing import Any, TextIO


def show_reports(
    files: Iterable[str],
    reports_of: Callable[[str], list[dict[str, Any]]],
    fmt: str,
    strict: bool,
    out: TextIO,
) -> int:
    """Print the reports of each named file (``reports_of``: the file's reports, from the cache or
    a check), each file once; the exit code."""
    from ..load.errors import Severity, render_github, render_text, to_json_text

    color = fmt == "text" and use_color(out)
    reports: list[dict[str, Any]] = []
    seen: set[str] = set()
    unreadable = False
    for path in files:
        for entry in reports_of(path):
            key = os.path.abspath(entry["path"])
            if key in seen:
                continue
            seen.add(key)
            diags = sorted(  # problems first, in file order; then the infos
                entry["diagnostics"],
                key=lambda d: (d.severity is Severity.INFO, d.line or 0, d.column or 0),
            )
            if any(d.code in ("file-missing", "file-unreadable") for d in diags):
                unreadable = True
            errors = sum(d.is_error for d in diags)
            warnings = sum(d.severity is Severity.WARNING for d in diags)  # infos are not problems
            ok = errors == 0 and not (strict and warnings)
            reports.append(
                {
                    "path": entry["path"],
                    "ok": ok,
                    "kind": entry["kind"],
                    "diagnostics": diags,
                    **({"inferred": entry["inferred"]} if "inferred" in entry else {}),
                }
            )
    if fmt == "json":
        payload = [
            {
                "path": r["path"],
                "ok": r["ok"],
                "issues": [d.to_json() for d in r["diagnostics"]],
                **({"inferred": r["inferred"]} if "inferred" in r else {}),
            }
            for r in reports
        ]
        out.write(to_json_text(payload[0] if len(payload) == 1 else payload) + "\n")
    elif fmt == "github":
        for r in reports:
            for d in r["diagnostics"]:
                out.write(render_github(d) + "\n")
    else:
        for r in reports:
            for d in r["diagnostics"]:
                out.write(render_text(d, color=color) + "\n")
        diags = [d for r in reports for d in r["diagnostics"]]
        errors = sum(d.is_error for d in diags)
        warnings = sum(d.severity is Severity.WARNING for d in diags)
        infos = len(diags) - errors - warnings
        checked = len(reports)
        verdict = "ok" if all(r["ok"] for r in reports) else "problems found"
        out.write(
            f"{checked} file{'s' * (checked != 1)} checked: {errors} error{'s' * (errors != 1)}, "
            f"{warnings} warning{'s' * (warnings != 1)} — {verdict}"
            + (f" ({infos} info{'s' * (infos != 1)})" if infos else "")
            + "\n"
        )
    if unreadable:
        return EXIT_INVALID
    return EXIT_OK if all(r["ok"] for r in reports) else EXIT_PROBLEMS
