"""``agilab-run diff``: what a change to a lab, contract or settings file means, between two files
or two git revisions of one, as text, Markdown or JSON (the comparison itself is
:mod:`agilab_dsl.review.diff`). ``git diff`` reaches it through :mod:`.cmd_git`.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

from .common import EXIT_INVALID, EXIT_OK, report_refusal

if TYPE_CHECKING:  # pragma: no cover
    import argparse
    from typing import TextIO


def cmd_diff(args: argparse.Namespace, out: TextIO) -> int:
    """``agilab-run diff``: see :mod:`agilab_dsl.review.diff`."""
    import tempfile

    from ..review import diff as semantic

    git_path: str | None = args.git_path  # diff REV [REV] -- PATH
    fmt = "json" if args.json else args.format
    with tempfile.TemporaryDirectory(prefix="agilab-diff-") as tmp:
        try:
            if git_path is not None:
                if len(args.refs) > 2:
                    print("agilab-run diff: error: at most two revisions before --", file=sys.stderr)
                    return EXIT_INVALID
                old = semantic.materialize(args.refs[0], Path(git_path), Path(tmp) / "old")
                new = (
                    semantic.materialize(args.refs[1], Path(git_path), Path(tmp) / "new")
                    if len(args.refs) == 2
                    else Path(git_path)
                )
                labels = (
                    f"{args.refs[0]}:{git_path}",
                    f"{args.refs[1] if len(args.refs) == 2 else 'working tree'}:{git_path}",
                )
            else:
                if len(args.refs) != 2:
                    print(
                        "agilab-run diff: error: give OLD and NEW files (or revisions and -- PATH)",
                        file=sys.stderr,
                    )
                    return EXIT_INVALID
                old, new = Path(args.refs[0]), Path(args.refs[1])
                labels = (args.refs[0], args.refs[1])
        except semantic.GitProblem as exc:
            print(f"agilab-run diff: error: {exc}", file=sys.stderr)
            return EXIT_INVALID
        return diff_files(old, new, labels, fmt, args.cores, out)


def diff_files(
    old: Path, new: Path, labels: tuple[str, str], fmt: str, cores: int | None, out: TextIO
) -> int:
    import tomllib

    from ..check.files import load
    from ..load.errors import LoadError, render_text, to_json_text
    from ..load.parse import detect_kind
    from ..load.reading import NotReadable, file_problem, read_regular
    from ..review import diff as semantic

    kinds = []
    for path in (old, new):
        problem = file_problem(path)
        if problem:
            print(f"agilab-run diff: error: {path}: {problem}", file=sys.stderr)
            return EXIT_INVALID
        try:
            data = tomllib.loads(read_regular(path).decode("utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError, RecursionError, NotReadable, OSError):
            data = {}  # the load below reports it, located
        kinds.append(detect_kind(path, data))
    if kinds[0] != kinds[1] or kinds[0] is None:
        print(
            f"agilab-run diff: error: cannot compare a {kinds[0] or 'unknown'} file with a {kinds[1] or 'unknown'} file",
            file=sys.stderr,
        )
        return EXIT_INVALID
    try:
        if kinds[0] == "lab":
            from ..execute.session import LabRequest, Refusal, open_lab

            runners = []
            for path in (old, new):
                runner = open_lab(LabRequest(file=str(path), use_cache=False))
                if isinstance(runner, Refusal):
                    return report_refusal(runner)
                runners.append(runner)
            result = semantic.diff_labs(runners[0], runners[1], *labels)
            if fmt == "json":
                out.write(to_json_text(result.to_json()) + "\n")
            else:
                out.write(semantic.render_text(result, markdown=fmt == "markdown"))
            return EXIT_OK
        a, b = load(old, kinds[0]), load(new, kinds[0])
    except LoadError as exc:
        print("\n".join(render_text(d) for d in exc.diagnostics), file=sys.stderr)
        return EXIT_INVALID
    if kinds[0] == "contract":
        from ..stages.cores import available_cores

        payload = semantic.diff_contracts(a, b, old, new, cores or available_cores())
        payload["old"], payload["new"] = labels
        lines = payload["changes"] + ([payload["plan"]] if payload["plan"] else [])
    else:
        lines = semantic.diff_settings(a.model_dump(), b.model_dump())
        payload = {"kind": "settings", "old": labels[0], "new": labels[1], "changes": lines}
        lab = semantic.lab_beside(new)
        effect = semantic.settings_effect(old, new, lab) if lab is not None and lines else None
        if effect is not None and lab is not None:
            rerun, why = effect
            payload["lab"] = str(lab)
            payload["would_rerun"] = [{"id": sid, "because": why[sid]} for sid in rerun]
            lines = lines + (
                [f"makes stale in {lab.name}: " + ", ".join(f"{sid} ({why[sid]})" for sid in rerun)]
                if rerun
                else [f"makes no step of {lab.name} stale"]
            )
    if fmt == "json":
        out.write(to_json_text(payload) + "\n")
    else:
        head = f"{labels[0]} → {labels[1]}"
        out.write(f"### `{head}`\n" if fmt == "markdown" else head + "\n")
        for line in lines or ["no change"]:
            out.write(f"{'- ' if fmt == 'markdown' else '    '}{line}\n")
    return EXIT_OK
