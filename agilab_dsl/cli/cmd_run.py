"""``agilab-run FILE``: run the stale steps of a lab, saying why each runs (or, with ``--dry-run``,
only say so); answer from the judgment cache when every step is still fresh; run a parallel
contract given instead of a lab by itself. ``--watch`` hands over to :mod:`.cmd_watch`.
"""

from __future__ import annotations

import sys

from .common import (
    EXIT_INVALID,
    EXIT_OK,
    EXIT_PROBLEMS,
    judge_lab,
    lab_request,
    report_refusal,
    run_options,
)
from .listing import show_statuses
from .progress import Reporting, close_events, events_hub, sigterm_interrupts

TYPE_CHECKING = False  # typing is not imported at run time: ~2 ms of every run's start-up
if TYPE_CHECKING:  # pragma: no cover
    import argparse

    from ..load.model import ParallelContract
    from ..plan.judgment import CachedStatus


def cmd_run(args: argparse.Namespace) -> int:
    from ..execute import session
    from ..execute.judging import known_judgment
    from ..load.errors import to_json_text

    if args.jobs is not None and args.jobs < 1:
        print("agilab-run: error: -j must be at least 1", file=sys.stderr)
        return EXIT_INVALID
    request = lab_request(args)
    if args.serve is not None and not args.watch:
        print(
            "agilab-run: error: --serve serves a watch session's live page: add --watch "
            "(or `agilab-run serve FILE` to follow the runs other commands make)",
            file=sys.stderr,
        )
        return EXIT_INVALID
    if args.watch:
        if args.dry_run or args.json:
            print(
                "agilab-run: error: --watch runs steps as files change: not with --dry-run or --json",
                file=sys.stderr,
            )
            return EXIT_INVALID
        from .cmd_watch import run_watch

        return run_watch(args, request)
    if args.events == "-" and args.json:
        print(
            "agilab-run: error: --events - and --json both write to stdout: give --events a PATH",
            file=sys.stderr,
        )
        return EXIT_INVALID
    # with --events, even a run with nothing to do goes through the runner (its events are the answer)
    known = None if args.force else known_judgment(request)
    if known is not None and not known.changed and not args.events:
        statuses, conditional = known.statuses, known.conditional
        if args.dry_run:
            show_statuses(statuses, args.json)
            return EXIT_OK
        selected = {s.id for s in statuses}
        if all(s.state in ("fresh", "disabled") for s in statuses) and not selected & set(conditional):
            session.sweep_temps(request)
            return _report_nothing_to_do(args, statuses)
    options = run_options(args)
    if args.dry_run:
        judged = judge_lab(args, options, known)
        if isinstance(judged, int):
            return judged
        show_statuses(judged, args.json)
        return EXIT_OK
    reporting = Reporting(args)
    hub = events_hub(args.events)
    if isinstance(hub, int):
        return hub
    try:
        with sigterm_interrupts():
            ran = session.run(
                request,
                options,
                reporting.reporter_for,
                say=_say,
                events=hub,
                known=known if known is not None and not args.dry_run else None,
            )
    finally:
        close_events(hub)
    if isinstance(ran, session.Refusal) and ran.kind == "contract":
        return _run_contract(args, ran.value)
    if isinstance(ran, session.Refusal):
        return report_refusal(ran)
    _, result = ran
    reporting.finished(result)
    if args.json:
        sys.stdout.write(to_json_text(result.to_json()) + "\n")
    return EXIT_OK if result.ok else EXIT_PROBLEMS


def _say(text: str) -> None:
    """Where a run waiting for the lab's lock says so."""
    print(f"agilab-run: {text}", file=sys.stderr, flush=True)


def _run_contract(args: argparse.Namespace, contract: ParallelContract) -> int:
    """``agilab-run parallel_stage.toml``: run the (checked) contract itself, always: it has no state."""
    from ..load.errors import to_json_text
    from ..stages.parallel import StageProblem, attempt

    def say(text: str) -> None:
        print(f"  {text}", file=sys.stderr, flush=True)

    result = attempt(args.file, contract, backend=args.backend, scheduler=args.scheduler, say=say)
    if isinstance(result, StageProblem) and not result.traceback:
        print(result.message if result.located else f"agilab-run: {result.message}", file=sys.stderr)
        return EXIT_PROBLEMS
    if isinstance(result, StageProblem):  # a partition failed
        print(f"✗ {result.message}", file=sys.stderr)
        print("\n".join(f"    │ {line}" for line in result.traceback.rstrip().splitlines()), file=sys.stderr)
        return EXIT_PROBLEMS
    print(
        f"✓ {result.name}: {result.partitions} partitions on {result.backend} → {result.output} "
        f"({result.seconds:.2f} s)",
        file=sys.stderr,
    )
    if args.json:
        sys.stdout.write(to_json_text(result.to_json()) + "\n")
    return EXIT_OK


def _report_nothing_to_do(args: argparse.Namespace, statuses: list[CachedStatus]) -> int:
    """A run whose judgment, unchanged since it was made, says every step is fresh."""
    import time

    from ..execute.outcome import not_run
    from ..load.errors import to_json_text

    def outcome(s: CachedStatus) -> str:  # what a run would record for it
        if s.state == "fresh":
            return "fresh"
        return not_run(s.reasons)

    started = time.perf_counter()
    width = max([len(s.id) for s in statuses] + [4])
    marks = {"fresh": "=", "skipped": "-", "disabled": "·"}
    for s in statuses:
        if s.state == "fresh" and not args.verbose:
            continue  # counted in the summary
        status = outcome(s)
        detail = status + (f": {'; '.join(s.reasons)}" if s.reasons else "")
        print(f"{marks[status]} {s.id:<{width}} {detail}", file=sys.stderr)
    counts = {k: sum(outcome(s) == k for s in statuses) for k in marks}
    summary = ", ".join(f"{n} {k}" for k, n in counts.items() if n)
    print(
        f"done: {summary or 'nothing to do'} — {time.perf_counter() - started:.2f} s",  # nothing recorded
        file=sys.stderr,
    )
    if args.json:
        steps = [{"id": s.id, "status": outcome(s), "reasons": list(s.reasons)} for s in statuses]
        sys.stdout.write(to_json_text({"run_id": None, "steps": steps}) + "\n")  # not recorded
    return EXIT_OK
