"""``agilab-run check``: validate lab, contract and settings files and print every problem,
located, as text, JSON or GitHub annotations; a file's reports come from the result cache while
nothing they depend on changed.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from .common import EXIT_INVALID, EXIT_OK, EXIT_PROBLEMS, use_color

if TYPE_CHECKING:  # pragma: no cover
    import argparse
    from typing import TextIO


def _check_one(path: str, args: argparse.Namespace, named: set[str]) -> list[dict[str, Any]]:
    """The reports of one named file (and of its lab's settings snapshot when that has problems),
    from the result cache when nothing they depend on changed."""
    from ..plan import cache

    infer = not args.no_infer
    options = {"kind": args.kind, "settings": args.settings, "named": sorted(named), "infer": infer}
    use_cache = not args.no_cache
    if use_cache:
        cached = cache.lookup(path, options)
        if cached is not None:
            return cached
    from ..check.files import check_file

    obs = cache.Observations()
    result, settings = check_file(path, kind=args.kind, settings_path=args.settings, obs=obs)
    entries = [result]
    if settings is not None and settings.diagnostics and os.path.abspath(settings.path) not in named:
        entries.append(settings)
    reports = [{"path": e.path, "kind": e.kind, "diagnostics": list(e.diagnostics)} for e in entries]
    # a stage's contract is checked with its lab; when it is named too, its problems are said once, as its own
    mine = os.path.abspath(result.path)
    reports[0]["diagnostics"] = [
        d
        for d in reports[0]["diagnostics"]
        if os.path.abspath(d.path) == mine or os.path.abspath(d.path) not in named
    ]
    if result.kind == "lab" and result.ok:  # what is inferred, and the steps nothing can make stale
        from ..check.inferred import inferred_report

        reports[0]["inferred"], notes = inferred_report(result, infer)
        reports[0]["diagnostics"] += notes
    if use_cache:
        cache.store(path, options, obs, reports)
    return reports


def cmd_check(args: argparse.Namespace, out: TextIO) -> int:
    if args.agilab or args.module_key is not None or args.apps_root is not None or args.require_metadata:
        from .cmd_check_agilab import cmd_check_agilab

        return cmd_check_agilab(args, out)
    from ..load.errors import Severity, render_github, render_text, to_json_text

    fmt = "json" if args.json else args.format
    color = fmt == "text" and use_color(out)
    reports: list[dict[str, Any]] = []
    seen: set[str] = set()
    unreadable = False
    named = {os.path.abspath(f) for f in args.files}
    for path in args.files:
        for entry in _check_one(path, args, named):
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
            ok = errors == 0 and not (args.strict and warnings)
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
        files = len(reports)
        verdict = "ok" if all(r["ok"] for r in reports) else "problems found"
        out.write(
            f"{files} file{'s' * (files != 1)} checked: {errors} error{'s' * (errors != 1)}, "
            f"{warnings} warning{'s' * (warnings != 1)} — {verdict}"
            + (f" ({infos} info{'s' * (infos != 1)})" if infos else "")
            + "\n"
        )
    if unreadable:
        return EXIT_INVALID
    return EXIT_OK if all(r["ok"] for r in reports) else EXIT_PROBLEMS
