"""``agilab-run status`` and ``graph``: every step's state and why (from the judgment cache while
nothing it read changed), and the step graph in Mermaid or dot, coloured by state or, with
``--diff`` / ``--since``, by change.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

from .common import (
    EXIT_INVALID,
    EXIT_OK,
    lab_request,
    open_runner,
    print_warnings,
    report_refusal,
)
from .listing import show_statuses

if TYPE_CHECKING:  # pragma: no cover
    import argparse
    from typing import TextIO


def cmd_status(args: argparse.Namespace, out: TextIO) -> int:
    """Every step's state in AGILAB's words (ours beside it where it says more) and why: from the
    judgment cache while nothing it read changed (judging again only the steps whose files changed,
    when only steps' files did), else a full judgment; the same answer either way."""
    from ..execute.judging import known_judgment, shared_states, upstream_of
    from ..execute.session import Refusal, judge
    from ..plan.shared import stored_upstream

    request = lab_request(args)
    if args.verbose:
        return _status_verbose(args, out)
    known = known_judgment(request)
    upstream = stored_upstream(known) if known is not None and not known.changed else None
    if known is not None and upstream is not None:
        show_statuses(known.statuses, args.json, shared_states(request, known.statuses, upstream))
        return EXIT_OK
    judged = judge(request, None, known)
    if isinstance(judged, Refusal):
        return report_refusal(judged)
    runner, full = judged
    print_warnings(runner)
    show_statuses(full, args.json, shared_states(request, full, upstream_of(runner)))
    return EXIT_OK


def _status_verbose(args: argparse.Namespace, out: TextIO) -> int:
    """``status -v``: a full judgment, and under each step what the lab does not say: the interpreter
    that runs it (and why), and its inferred artifacts, each with where it was found."""
    from ..execute.judging import shared_states, upstream_of
    from ..execute.session import Refusal, judge
    from ..load.errors import to_json_text
    from .listing import print_statuses

    request = lab_request(args)
    judged = judge(request, None)
    if isinstance(judged, Refusal):
        return report_refusal(judged)
    runner, statuses = judged
    print_warnings(runner)
    shared = shared_states(request, statuses, upstream_of(runner))
    inferred = {
        s.id: [
            {"direction": d, "path": p, "origin": origin, "how": how}
            for d, p, origin, how in s.stage.inferred
        ]
        for s in runner.lab.stages
    }
    if args.json:
        steps = [
            {
                **s.to_json(),
                **shared[s.id].to_json(),
                "interpreter": runner.interpreter(s.id).to_json(),
                "inferred": inferred.get(s.id, []),
            }
            for s in statuses
        ]
        out.write(to_json_text({"steps": steps}) + "\n")
    else:
        details = {
            s.id: [f"python: {runner.interpreter(s.id).describe()}"]
            + [
                f"{a['direction']} {a['path']}, inferred from {a['origin']} ({a['how']})"
                for a in inferred.get(s.id, [])
            ]
            for s in statuses
        }
        print_statuses(statuses, out, details, shared)
    return EXIT_OK


def cmd_graph(args: argparse.Namespace, out: TextIO) -> int:
    from ..execute.judging import shared_states, upstream_of
    from .show import graph_text

    runner = open_runner(args)
    if isinstance(runner, int):
        return runner
    # one arrow per pair of steps, however many reasons (deps, artifacts, sequence, df) join them,
    # labelled with the artifacts it carries
    carried: dict[tuple[str, str], list[str]] = {}
    for e in runner.full_graph.edges:
        shared = carried.setdefault((e.upstream, e.downstream), [])
        if e.detail and e.detail not in shared:
            shared.append(e.detail)
    edges = list(carried)
    if args.diff is None and args.since is None:
        statuses = runner.statuses()
        shared = shared_states(lab_request(args), statuses, upstream_of(runner))
        out.write(graph_text(statuses, edges, args.format, carried, shared))
        return EXIT_OK
    import tempfile

    from ..execute.session import LabRequest, Refusal, open_lab
    from ..review import diff as semantic
    from .show import change_graph

    with tempfile.TemporaryDirectory(prefix="agilab-graph-") as tmp:
        try:
            old_path = (
                semantic.materialize(args.since, Path(args.file), Path(tmp))
                if args.since
                else Path(args.diff)
            )
        except semantic.GitProblem as exc:
            print(f"agilab-run graph: error: {exc}", file=sys.stderr)
            return EXIT_INVALID
        old = open_lab(LabRequest(file=str(old_path), use_cache=False, infer=not args.no_infer))
        if isinstance(old, Refusal):
            return report_refusal(old)
        change = semantic.diff_labs(old, runner, args.since or args.diff, args.file)
    out.write(change_graph(list(runner.lab.ids), edges, change))
    return EXIT_OK
