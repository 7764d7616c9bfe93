"""``agilab-run``: the only place that parses argv, prints, and picks exit codes.

Exit codes: 0 ok; 1 a step failed, or ``check`` found problems; 2 the definition is invalid, a
file cannot be read, or the call is wrong. Every command imports what it needs when it runs, so
``--help`` and ``check`` never pay for dask, distributed, pyarrow, joblib, watchfiles or cupy.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from collections.abc import Iterator, Sequence
    from typing import TextIO

EXIT_OK = 0
EXIT_PROBLEMS = 1
EXIT_INVALID = 2

COMMANDS = (
    "check",
    "plan",
    "schema",
    "status",
    "graph",
    "doctor",
    "history",
    "diff",
    "git-setup",
    "git-diff-driver",
    "textconv",
    "migrate",
    "fmt",
)

_DESCRIPTION = """\
Read AGILAB pipeline files (lab_steps.toml / lab_stages.toml, parallel_stage.toml,
app_settings.toml) as code.

usage: agilab-run FILE [--watch] [--dry-run] [--only ID]... [--from ID] [--force] [-j N]
                       [--keep-going] [--backend NAME] [--scheduler ADDR] [--settings PATH]
                       [--profile NAME] [-v] [--json]
       run the stale steps of a lab (and say why each runs); FILE may be a parallel_stage.toml

commands:
  status FILE             every step: fresh, stale, never-ran or disabled, and why
  graph FILE              the step graph in Mermaid or dot, coloured by state (--diff / --since: by change)
  check FILE...           validate files; every problem located (file:line:col)
  plan FILE               partition plan of a parallel stage (or of every stage of a lab)
  history FILE            recorded runs; --compare RUN RUN; --export-mlflow
  diff OLD NEW            what a change means (files, or REV [REV] -- PATH)
  fmt FILE...             one canonical layout for lab files (--check)
  migrate FILE --to NAME  lab_steps <-> lab_stages
  git-setup               semantic diffs in git diff / git log -p
  doctor                  do all Dask workers read the cluster share?
  schema NAME             JSON Schema for editors: lab-steps, parallel-stage, app-settings

exit codes: 0 ok, 1 a step failed or problems found, 2 invalid definition or wrong call,
            130 interrupted (watch mode: 0)
"""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # argparse's default exits 2 too; keep the message short
        self.print_usage(sys.stderr)
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(EXIT_INVALID)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="agilab-run", description=_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    check = sub.add_parser(
        "check",
        help="validate lab, contract and settings files",
        description="Validate files. Exit 0 when clean, 1 when problems are found, "
        "2 when a file cannot be read.",
    )
    check.add_argument("files", nargs="+", metavar="FILE")
    check.add_argument("--json", action="store_true", help="same as --format json")
    check.add_argument(
        "--format",
        choices=("text", "json", "github"),
        default="text",
        help="github: ::error annotations for GitHub Actions",
    )
    check.add_argument("--strict", action="store_true", help="warnings count as problems")
    check.add_argument(
        "--settings", metavar="PATH", help="settings snapshot for labs (default: beside the lab)"
    )
    check.add_argument(
        "--kind",
        choices=("lab", "contract", "settings"),
        help="treat every file as this kind instead of recognising it",
    )
    check.add_argument(
        "--no-cache",
        action="store_true",
        help="recheck every file (results are otherwise reused while nothing they depend on changed)",
    )

    plan = sub.add_parser(
        "plan",
        help="partition plan of a parallel stage",
        description="Partition plan of a parallel_stage.toml (or of every `stage` of a lab), "
        "inputs resolved from the contract's glob beside the contract.",
    )
    plan.add_argument("file", metavar="FILE")
    plan.add_argument("--cores", type=int, metavar="N", help="cores to plan for (default: this machine's)")
    plan.add_argument("--json", action="store_true")

    status = sub.add_parser(
        "status",
        help="every step's state and why",
        description="Every step's state "
        "(fresh, stale, never-ran, disabled) and the reasons, in words. Runs nothing.",
    )
    status.add_argument("file", metavar="FILE")
    _add_lab_options(status)
    status.add_argument("--json", action="store_true")

    graph = sub.add_parser("graph", help="the step graph, coloured by state (or by change)")
    graph.add_argument("file", metavar="FILE")
    graph.add_argument("--format", choices=("mermaid", "dot"), default="mermaid")
    change = graph.add_mutually_exclusive_group()
    change.add_argument(
        "--diff", metavar="OLD", help="colour by change against an older version of the lab (a file)"
    )
    change.add_argument(
        "--since", metavar="REV", help="colour by change against the lab at a git revision (Mermaid)"
    )
    _add_lab_options(graph)

    schema = sub.add_parser("schema", help="print a JSON Schema for editors")
    schema.add_argument("name", choices=("lab-steps", "parallel-stage", "app-settings"))

    diff = sub.add_parser(
        "diff",
        help="what a change to a lab, contract or settings file means",
        description="Semantic diff: per step added / removed / renamed / reordered, code (normalised; "
        "cosmetic edits called so), mode, params, settings, deps, artifacts; which steps would re-run. "
        "OLD and NEW are files, or git revisions followed by `-- PATH` (one revision: against the "
        "working tree).",
    )
    diff.add_argument("refs", nargs="+", metavar="OLD NEW", help="two files, or one or two git revisions")
    diff.add_argument("--json", action="store_true")
    diff.add_argument("--format", choices=("text", "json", "markdown"), default="text")
    diff.add_argument("--cores", type=int, default=None, metavar="N", help="cores for contract plans")

    mig = sub.add_parser(
        "migrate",
        help="convert a stage list between lab_steps and lab_stages (name and schema stamp)",
        description="Writes FILE under the other name (lab_steps.toml ↔ lab_stages.toml) with the other "
        "schema stamp, edited with tomlkit: comments, order and unknown keys survive, and no stage is "
        "dropped (both versions are loaded and compared first). The original file is left in place.",
    )
    mig.add_argument("file", metavar="FILE")
    mig.add_argument("--to", required=True, choices=("lab_stages", "lab_steps"))
    mig.add_argument(
        "-o", "--output", metavar="PATH", help="where to write (default: FILE under the new name)"
    )
    mig.add_argument("--force", action="store_true", help="replace an existing, different target")

    fmt = sub.add_parser(
        "fmt",
        help="give lab files one canonical layout (stages as [[tables]], code in blocks)",
        description="Rewrites lab files in a canonical, stable layout so that diffs stay small: stage "
        "lists as arrays of tables, one key per line, multi-line code in a block starting on its own "
        "line. Comments and key order are kept; the result must load to the same stages.",
    )
    fmt.add_argument("files", nargs="+", metavar="FILE")
    fmt.add_argument("--check", action="store_true", help="change nothing; exit 1 if a file is not formatted")

    setup = sub.add_parser(
        "git-setup",
        help="make `git diff` / `git log -p` show semantic diffs of lab, contract and settings files",
        description="Adds `diff=agilab` to .gitattributes for lab_steps.toml, lab_stages.toml, "
        "parallel_stage.toml and app_settings.toml, and configures the driver in this repository "
        "(`git diff` runs `agilab-run diff` on both versions; `git log -p` shows a canonical text).",
    )
    setup.add_argument(
        "--global", dest="globally", action="store_true", help="configure the driver in ~/.gitconfig"
    )
    driver = sub.add_parser("git-diff-driver", help=argparse.SUPPRESS)
    driver.add_argument("args", nargs="+")
    conv = sub.add_parser("textconv", help=argparse.SUPPRESS)
    conv.add_argument("file")

    hist = sub.add_parser(
        "history",
        help="recorded runs, newest first; compare two; export to MLflow",
        description="The runs recorded in .agilab/history/ beside the lab (one Parquet file per run), "
        "newest first, with what changed since the run before. Run ids may be abbreviated: a prefix "
        "of the id, or of its random tail.",
    )
    hist.add_argument("file", metavar="FILE", help="the lab file")
    hist.add_argument("--step", metavar="ID", help="only this step of each run")
    hist.add_argument("--last", type=int, metavar="N", help="only the N newest runs")
    hist.add_argument(
        "--status",
        choices=("ok", "failed", "interrupted"),
        help="only runs that ended so (or had a step fail)",
    )
    hist.add_argument("--compare", nargs=2, metavar=("RUN_A", "RUN_B"), help="what differs, step by step")
    hist.add_argument(
        "--export-mlflow",
        nargs="?",
        const="",
        metavar="URI",
        help="export the runs to MLflow (default: $MLFLOW_TRACKING_URI, else mlruns/ beside the lab)",
    )
    hist.add_argument("--json", action="store_true")

    doctor = sub.add_parser(
        "doctor",
        help="check that every Dask worker reads the cluster share",
        description="Write a sentinel under the share and ask every worker of the Dask scheduler to read "
        "it back; report the workers that cannot (exit 1 if any).",
    )
    doctor.add_argument(
        "--scheduler", required=True, metavar="ADDR", help="Dask scheduler, e.g. 127.0.0.1:8786"
    )
    doctor.add_argument("--share", required=True, metavar="PATH", help="the folder every worker should see")
    doctor.add_argument("--json", action="store_true")
    return parser


def _add_lab_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--no-cache",
        action="store_true",
        help="judge every step again (a judgment is otherwise reused while nothing it read changed)",
    )
    parser.add_argument(
        "--settings",
        metavar="PATH",
        help="settings snapshot (default: app_settings.toml beside the lab, else src/app_settings.toml)",
    )
    parser.add_argument("--profile", metavar="NAME", help="apply each stage's profile of this name")


def build_run_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="agilab-run", description="Run the stale steps of a lab, saying why each runs.")
    parser.add_argument("file", metavar="FILE")
    parser.add_argument("--dry-run", action="store_true", help="say what would run and why; run nothing")
    parser.add_argument(
        "--watch",
        action="store_true",
        help="run, then re-run the affected steps whenever a file they depend on changes (Ctrl-C stops)",
    )
    parser.add_argument(
        "--only", action="append", default=[], metavar="ID", help="run only this step (repeatable)"
    )
    parser.add_argument(
        "--from", dest="from_step", metavar="ID", help="run this step and everything downstream"
    )
    parser.add_argument("--force", action="store_true", help="run the selected steps even when fresh")
    parser.add_argument(
        "-j", "--jobs", type=int, default=1, metavar="N", help="independent steps run at once"
    )
    parser.add_argument(
        "--keep-going", action="store_true", help="after a failure, let independent steps finish"
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="list fresh steps too (the summary counts them)"
    )
    parser.add_argument(
        "--backend",
        choices=("local", "pool", "dask", "gpu", "auto"),
        help="run every parallel stage on this backend (default: the step's, else the settings')",
    )
    parser.add_argument(
        "--scheduler",
        metavar="ADDR",
        help="Dask scheduler of dask and gpu stages (default: [cluster] scheduler when cluster_enabled, "
        "else a LocalCluster started for the run)",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help='print {"run_id", "steps": [{"id", "status", "reasons"}]} on stdout',
    )
    _add_lab_options(parser)
    return parser


def _os_failure(exc: OSError) -> int:
    """A file this tool itself had to write or read could not be: say which, and why."""
    from ..load.errors import os_error
    from ..plan.state import FOLDER

    print(f"agilab-run: error: {os_error(exc)}", file=sys.stderr)
    if exc.filename and FOLDER in Path(str(exc.filename)).parts:
        print(
            f"  hint: a lab's state lives in {FOLDER}/ beside its file; that folder must be writable",
            file=sys.stderr,
        )
    return EXIT_INVALID


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list and not args_list[0].startswith("-") and args_list[0] not in COMMANDS:
        try:
            run_args = build_run_parser().parse_args(args_list)
        except SystemExit as exc:
            return int(exc.code or 0)
        try:
            return cmd_run(run_args)
        except KeyboardInterrupt:
            print("agilab-run: interrupted; every step that completed is recorded", file=sys.stderr)
            return 130
        except OSError as exc:  # the lab's folder cannot be written (read-only, no permission, full)
            return _os_failure(exc)
    parser = build_parser()
    git_path: str | None = None
    if args_list[:1] == ["diff"] and "--" in args_list:  # diff REV [REV] -- PATH
        cut = args_list.index("--")
        if len(args_list) != cut + 2:
            print("agilab-run diff: error: give one path after --", file=sys.stderr)
            return EXIT_INVALID
        git_path, args_list = args_list[cut + 1], args_list[:cut]
    try:
        args = parser.parse_args(args_list)
    except SystemExit as exc:  # --help, or a usage error already printed
        return int(exc.code or 0)
    if args.version:
        from .. import __version__

        print(f"agilab-run {__version__}")
        return EXIT_OK
    if args.command is None:
        parser.print_help()
        return EXIT_INVALID
    try:
        if args.command == "check":
            return cmd_check(args, sys.stdout)
        if args.command == "plan":
            return cmd_plan(args, sys.stdout)
        if args.command == "status":
            return cmd_status(args, sys.stdout)
        if args.command == "graph":
            return cmd_graph(args, sys.stdout)
        if args.command == "doctor":
            return cmd_doctor(args, sys.stdout)
        if args.command == "history":
            return cmd_history(args, sys.stdout)
        if args.command == "diff":
            return cmd_diff(args, git_path, sys.stdout)
        if args.command == "fmt":
            return cmd_fmt(args, sys.stdout)
        if args.command == "migrate":
            return cmd_migrate(args, sys.stdout)
        if args.command == "git-setup":
            return cmd_git_setup(args, sys.stdout)
        if args.command == "git-diff-driver":
            return cmd_git_diff_driver(args.args, sys.stdout)
        if args.command == "textconv":
            from ..review.git_drivers import textconv

            sys.stdout.write(textconv(Path(args.file)))
            return EXIT_OK
        if args.command == "schema":
            from ..load.schema import render

            sys.stdout.write(render(args.name))
            return EXIT_OK
    except KeyboardInterrupt:
        print("agilab-run: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `agilab-run schema lab-steps | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except OSError as exc:
        return _os_failure(exc)
    raise AssertionError(args.command)  # pragma: no cover


def _use_color(stream: TextIO) -> bool:
    return stream.isatty() and "NO_COLOR" not in os.environ and os.environ.get("TERM") != "dumb"


def _check_one(path: str, args: argparse.Namespace, named: set[str]) -> list[dict[str, Any]]:
    """The reports of one named file (and of its lab's settings snapshot when that has problems),
    from the result cache when nothing they depend on changed."""
    from ..plan import cache

    options = {"kind": args.kind, "settings": args.settings, "named": sorted(named)}
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
    if use_cache:
        cache.store(path, options, obs, reports)
    return reports


def cmd_check(args: argparse.Namespace, out: TextIO) -> int:
    from ..load.errors import render_github, render_text, to_json_text

    fmt = "json" if args.json else args.format
    color = fmt == "text" and _use_color(out)
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
            diags = sorted(entry["diagnostics"], key=lambda d: (d.line or 0, d.column or 0))
            if any(d.code in ("file-missing", "file-unreadable") for d in diags):
                unreadable = True
            errors = sum(d.is_error for d in diags)
            warnings = len(diags) - errors
            ok = errors == 0 and not (args.strict and warnings)
            reports.append({"path": entry["path"], "ok": ok, "kind": entry["kind"], "diagnostics": diags})
    if fmt == "json":
        payload = [
            {"path": r["path"], "ok": r["ok"], "issues": [d.to_json() for d in r["diagnostics"]]}
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
        errors = sum(d.is_error for r in reports for d in r["diagnostics"])
        warnings = sum(not d.is_error for r in reports for d in r["diagnostics"])
        files = len(reports)
        verdict = "ok" if all(r["ok"] for r in reports) else "problems found"
        out.write(
            f"{files} file{'s' * (files != 1)} checked: {errors} error{'s' * (errors != 1)}, "
            f"{warnings} warning{'s' * (warnings != 1)} — {verdict}\n"
        )
    if unreadable:
        return EXIT_INVALID
    return EXIT_OK if all(r["ok"] for r in reports) else EXIT_PROBLEMS


def cmd_plan(args: argparse.Namespace, out: TextIO) -> int:
    from pathlib import Path

    from ..check.files import check_file
    from ..load.contract import load_contract
    from ..load.errors import render_text, to_json_text
    from ..stages.backends import available_cores
    from ..stages.partition import plan_contract

    if args.cores is not None and args.cores < 1:
        print("agilab-run plan: error: --cores must be at least 1", file=sys.stderr)
        return EXIT_INVALID
    cores = args.cores or available_cores()
    result, _ = check_file(args.file)
    if not result.ok:
        for d in result.diagnostics:
            print(render_text(d), file=sys.stderr)
        return EXIT_INVALID
    targets: list[tuple[str | None, Any, Path]] = []
    if result.kind == "contract":
        targets.append((None, result.value, Path(args.file)))
    elif result.kind == "lab" and result.value is not None:
        for s in result.value.stages:
            if s.stage.stage:
                path = Path(args.file).parent / s.stage.stage
                loaded = load_contract(path)
                if not loaded.ok:
                    for d in loaded.diagnostics:
                        print(render_text(d), file=sys.stderr)
                    return EXIT_INVALID
                targets.append((s.id, loaded.value, path))
        if not targets:
            print(
                f'{args.file}: no stage runs a parallel contract (no `stage = "parallel_stage.toml"`)',
                file=sys.stderr if args.json else out,
            )
            if args.json:
                out.write("[]\n")
            return EXIT_OK
    else:
        print(
            f"agilab-run plan: error: {args.file} is a settings file; plan takes a parallel_stage.toml or a lab",
            file=sys.stderr,
        )
        return EXIT_INVALID
    plans = []
    for step_id, contract, path in targets:
        try:
            plan = plan_contract(contract, path, cores)
        except (OSError, ValueError) as exc:
            print(f"{path}: error: {exc}", file=sys.stderr)
            return EXIT_INVALID
        plans.append((step_id, contract, path, plan))
    if args.json:
        payload = [
            ({"stage": sid} if sid else {}) | {"contract": str(p)} | plan.to_json()
            for sid, _, p, plan in plans
        ]
        out.write(to_json_text(payload[0] if result.kind == "contract" else payload) + "\n")
        return EXIT_OK
    for step_id, contract, path, plan in plans:
        title = f"{contract.name}" + (f"  (stage {step_id})" if step_id else "")
        out.write(f"{title}\n  contract   {path}\n")
        shown = ", ".join(plan.files[:5]) + (
            f", … ({len(plan.files) - 5} more)" if len(plan.files) > 5 else ""
        )
        out.write(
            f"  input      {contract.input} → {plan.input_files} file{'s' * (plan.input_files != 1)}"
            + (f": {shown}" if plan.files else "")
            + "\n"
        )
        if plan.grid_points is not None:
            out.write(f"  grid       {plan.grid_points} point{'s' * (plan.grid_points != 1)}\n")
        out.write(
            f"  strategy   {contract.partition_strategy} ({'splittable' if plan.splittable else 'not splittable'})\n"
        )
        out.write(
            f"  workers    {contract.workers!s} on {plan.available_cores} core"
            f"{'s' * (plan.available_cores != 1)} → {plan.requested_workers} requested\n"
        )
        out.write(
            f"  plan       {plan.effective_workers} worker{'s' * (plan.effective_workers != 1)}, "
            f"{plan.planned_partitions} partition{'s' * (plan.planned_partitions != 1)}\n"
        )
    return EXIT_OK


def _request(args: argparse.Namespace) -> Any:
    from ..execute.session import LabRequest

    return LabRequest(
        file=args.file,
        settings=args.settings,
        profile=args.profile,
        only=tuple(getattr(args, "only", ())),
        from_step=getattr(args, "from_step", None),
        use_cache=not args.no_cache,
    )


def _refused(refusal: Any) -> int:
    """Print why a lab cannot be judged or run; the exit code for it."""
    from ..load.errors import render_text

    color = _use_color(sys.stderr)
    for d in refusal.diagnostics:
        print(render_text(d, color=color), file=sys.stderr)
    if refusal.message:
        print(f"agilab-run: {refusal.message}", file=sys.stderr)
    return EXIT_INVALID


def _open(args: argparse.Namespace) -> Any:
    """The lab's runner, or the exit code after saying why there is none."""
    from ..execute.session import Refusal, open_lab

    runner = open_lab(_request(args))
    if isinstance(runner, Refusal):
        return _refused(runner)
    _warn(runner)
    return runner


def _warn(runner: Any) -> None:
    for warning in runner.warnings:
        print(f"agilab-run: warning: {warning}", file=sys.stderr)


def _options(args: argparse.Namespace) -> Any:
    from ..execute.outcome import RunOptions

    return RunOptions(
        only=tuple(getattr(args, "only", ())),
        from_step=getattr(args, "from_step", None),
        force=getattr(args, "force", False),
        jobs=max(1, getattr(args, "jobs", 1)),
        keep_going=getattr(args, "keep_going", False),
        backend=getattr(args, "backend", None),
        scheduler=getattr(args, "scheduler", None),
    )


def _judge(args: argparse.Namespace, options: Any) -> Any:
    """Full judgment (kept in the judgment cache); the statuses, or an exit code."""
    from ..execute.session import Refusal, judge

    judged = judge(_request(args), options)
    if isinstance(judged, Refusal):
        return _refused(judged)
    runner, statuses = judged
    _warn(runner)
    return statuses


def _print_statuses(statuses: Any, as_json: bool) -> None:
    from ..load.errors import to_json_text
    from .show import print_statuses

    if as_json:
        sys.stdout.write(to_json_text({"steps": [s.to_json() for s in statuses]}) + "\n")
    else:
        print_statuses(statuses, sys.stdout)


def cmd_run(args: argparse.Namespace) -> int:
    from ..execute import session
    from ..load.errors import to_json_text

    if args.jobs < 1:
        print("agilab-run: error: -j must be at least 1", file=sys.stderr)
        return EXIT_INVALID
    request = _request(args)
    if args.watch:
        if args.dry_run or args.json:
            print(
                "agilab-run: error: --watch runs steps as files change: not with --dry-run or --json",
                file=sys.stderr,
            )
            return EXIT_INVALID
        return _watch(args, request)
    cached = None if args.force else session.cached_judgment(request)
    if cached is not None:
        statuses, conditional = cached
        if args.dry_run:
            _print_statuses(statuses, args.json)
            return EXIT_OK
        selected = {s.id for s in statuses}
        if all(s.state in ("fresh", "disabled") for s in statuses) and not selected & set(conditional):
            return _report_nothing_to_do(args, statuses)
    options = _options(args)
    if args.dry_run:
        judged = _judge(args, options)
        if isinstance(judged, int):
            return judged
        _print_statuses(judged, args.json)
        return EXIT_OK
    reporting = _Reporting(args)
    with _sigterm_interrupts():
        ran = session.run(request, options, reporting.reporter_for, say=sys.stderr)
    if isinstance(ran, session.Refusal) and ran.kind == "contract":
        return _run_contract(args, ran.value)
    if isinstance(ran, session.Refusal):
        return _refused(ran)
    _, result = ran
    reporting.finished(result)
    if args.json:
        sys.stdout.write(to_json_text(result.to_json()) + "\n")
    return EXIT_OK if result.ok else EXIT_PROBLEMS


class _Reporting:
    """The run's text reporter, made once the lab is open (its column fits the step ids)."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.reporter: Any = None

    def reporter_for(self, runner: Any) -> Any:
        from .show import TextReporter

        _warn(runner)
        width = max([len(i) for i in runner.lab.ids] + [4])
        self.reporter = TextReporter(
            sys.stderr, width, color=_use_color(sys.stderr), verbose=self.args.verbose
        )
        return self.reporter

    def finished(self, result: Any) -> None:
        assert self.reporter is not None
        self.reporter.finished(result, self.args.file)


@contextlib.contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """SIGTERM ends a run as Ctrl-C does (its steps are ended; it is recorded as interrupted);
    the previous handler is back afterwards (a caller in the same process keeps its own)."""
    import signal

    def _terminated(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, _terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def _no_interrupts() -> Iterator[None]:
    """Ctrl-C ignored for the duration (a second one must not cut a clean-up short), then restored."""
    import signal

    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _watch(args: argparse.Namespace, request: Any, source: Any = None) -> int:
    """``--watch``: see :mod:`agilab_dsl.execute.watch`. ``source`` replaces watchfiles (tests script it)."""
    import dataclasses

    from ..execute import session
    from ..execute.machine import Warm
    from ..execute.watch import Watcher, watchfiles_source

    options = _options(args)
    warm = Warm()
    reporting = _Reporting(args)

    def run_once(first: bool) -> Any:
        ran = session.run(
            request,
            options if first else dataclasses.replace(options, force=False),
            reporting.reporter_for,
            sys.stderr,
            warm,
        )
        if isinstance(ran, session.Refusal):
            if ran.kind == "contract":
                raise _NotALab
            _refused(ran)
            return None
        runner, result = ran
        reporting.finished(result)
        return runner

    def say(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    watcher = Watcher(run_once, args.settings, source or watchfiles_source(), say)
    try:
        with _sigterm_interrupts():
            return watcher.loop(args.file)
    except KeyboardInterrupt:
        say("watch: stopped")
        return EXIT_OK
    except _NotALab:
        print(
            f"agilab-run: error: {args.file} is a parallel contract; --watch follows a lab file",
            file=sys.stderr,
        )
        return EXIT_INVALID
    finally:
        with _no_interrupts():
            warm.close()


class _NotALab(Exception):
    """--watch was given a parallel contract."""


def _run_contract(args: argparse.Namespace, contract: Any) -> int:
    """``agilab-run parallel_stage.toml``: run the (checked) contract itself, always: it has no state."""
    from ..load.errors import to_json_text
    from ..stages.parallel import StageProblem, attempt

    def say(text: str) -> None:
        print(f"  {text}", file=sys.stderr, flush=True)

    result = attempt(args.file, contract, backend=args.backend, scheduler=args.scheduler, say=say)
    if isinstance(result, StageProblem) and not result.traceback:
        print(f"agilab-run: {result.message}", file=sys.stderr)
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


def _report_nothing_to_do(args: argparse.Namespace, statuses: Any) -> int:
    """A run whose judgment, unchanged since it was made, says every step is fresh."""
    import time

    from ..load.errors import to_json_text

    started = time.perf_counter()
    width = max([len(s.id) for s in statuses] + [4])
    for s in statuses:
        if s.state == "fresh" and not args.verbose:
            continue  # counted in the summary
        status = "fresh" if s.state == "fresh" else "disabled"
        detail = status + (f": {'; '.join(s.reasons)}" if s.reasons else "")
        print(f"{'=' if status == 'fresh' else '·'} {s.id:<{width}} {detail}", file=sys.stderr)
    fresh = sum(s.state == "fresh" for s in statuses)
    disabled = len(statuses) - fresh
    summary = ", ".join(
        p for p in (f"{fresh} fresh" if fresh else "", f"{disabled} disabled" if disabled else "") if p
    )
    print(
        f"done: {summary or 'nothing to do'} — {time.perf_counter() - started:.2f} s",  # nothing recorded
        file=sys.stderr,
    )
    if args.json:
        steps = [
            {"id": s.id, "status": "fresh" if s.state == "fresh" else "disabled", "reasons": list(s.reasons)}
            for s in statuses
        ]
        sys.stdout.write(to_json_text({"run_id": None, "steps": steps}) + "\n")  # not recorded
    return EXIT_OK


def cmd_diff(args: argparse.Namespace, git_path: str | None, out: TextIO) -> int:
    """``agilab-run diff``: see :mod:`agilab_dsl.review.diff`."""
    import tempfile

    from ..review import diff as semantic

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
        return _diff_files(old, new, labels, fmt, args.cores, out)


def _diff_files(
    old: Path, new: Path, labels: tuple[str, str], fmt: str, cores: int | None, out: TextIO
) -> int:
    import tomllib

    from ..check.files import load
    from ..load.errors import LoadError, render_text, to_json_text
    from ..load.parse import detect_kind
    from ..review import diff as semantic

    kinds = []
    for path in (old, new):
        if not path.is_file():
            print(f"agilab-run diff: error: {path}: no such file", file=sys.stderr)
            return EXIT_INVALID
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError, RecursionError):
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
                    return _refused(runner)
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
        from ..stages.backends import available_cores

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


def cmd_fmt(args: argparse.Namespace, out: TextIO) -> int:
    from ..load.errors import LoadError, render_text
    from ..review.fmt import FormatProblem, format_file

    status = EXIT_OK
    changed = 0
    for name in args.files:
        path = Path(name)
        if not path.is_file():
            print(f"agilab-run fmt: error: {name}: no such file", file=sys.stderr)
            status = EXIT_INVALID
            continue
        try:
            if format_file(path, check=args.check):
                changed += 1
                print(f"{'would reformat' if args.check else 'reformatted'} {name}", file=out)
        except LoadError as exc:
            print("\n".join(render_text(d) for d in exc.diagnostics), file=sys.stderr)
            status = EXIT_INVALID
        except FormatProblem as exc:
            print(f"agilab-run fmt: error: {name}: {exc}", file=sys.stderr)
            status = max(status, EXIT_PROBLEMS)
    if status == EXIT_OK and args.check and changed:
        return EXIT_PROBLEMS
    if status == EXIT_OK and not changed:
        print(f"{len(args.files)} file{'s' * (len(args.files) != 1)} already formatted", file=out)
    return status


def cmd_migrate(args: argparse.Namespace, out: TextIO) -> int:
    from ..load.errors import LoadError, render_text
    from ..review.migrate import MigrationProblem, migrate

    path = Path(args.file)
    if not path.is_file():
        print(f"agilab-run migrate: error: {args.file}: no such file", file=sys.stderr)
        return EXIT_INVALID
    try:
        done = migrate(path, args.to, Path(args.output) if args.output else None, force=args.force)
    except LoadError as exc:
        print("\n".join(render_text(d) for d in exc.diagnostics), file=sys.stderr)
        return EXIT_INVALID
    except MigrationProblem as exc:
        print(f"agilab-run migrate: error: {exc}", file=sys.stderr)
        return EXIT_PROBLEMS
    stamp = "schema stamp changed" if done.stamp_changed else "no schema stamp to change"
    where = "in place" if done.target.resolve() == path.resolve() else f"→ {done.target}"
    print(f"{path} {where} ({stamp}; every stage kept)", file=out)
    if done.target.resolve() != path.resolve():
        print(f"  the original stays; with git: git rm {path} && git add {done.target}", file=out)
    return EXIT_OK


def cmd_git_setup(args: argparse.Namespace, out: TextIO) -> int:
    import subprocess

    from ..review.git_drivers import ATTRIBUTES

    where = ["--global"] if args.globally else []
    try:
        top = subprocess.run(
            ["git", "rev-parse", "--show-toplevel"], capture_output=True, text=True, check=True
        ).stdout.strip()
        for key, value in (
            ("diff.agilab.command", "agilab-run git-diff-driver"),
            ("diff.agilab.textconv", "agilab-run textconv"),
        ):
            subprocess.run(["git", "config", *where, key, value], check=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        print(f"agilab-run git-setup: error: not in a git repository, or git failed ({exc})", file=sys.stderr)
        return EXIT_INVALID
    attributes = Path(top) / ".gitattributes"
    lines = attributes.read_text(encoding="utf-8").splitlines() if attributes.exists() else []
    wanted = [f"{name} diff=agilab" for name in ATTRIBUTES if f"{name} diff=agilab" not in lines]
    if wanted:
        attributes.write_text("\n".join([*lines, *wanted]) + "\n", encoding="utf-8")
    print(
        f"git diff driver 'agilab' configured{' globally' if where else ''}; "
        f"{attributes} {'gains ' + str(len(wanted)) + ' line(s)' if wanted else 'already has its lines'} "
        "(commit it so collaborators get the same diffs)",
        file=out,
    )
    return EXIT_OK


def cmd_git_diff_driver(argv: list[str], out: TextIO) -> int:
    """Git's external diff protocol: PATH OLD-FILE OLD-HEX OLD-MODE NEW-FILE NEW-HEX NEW-MODE."""
    import tempfile

    from ..review.git_drivers import beside

    if len(argv) < 7:
        print("agilab-run git-diff-driver: git passes 7 arguments (see git help diff)", file=sys.stderr)
        return EXIT_INVALID
    path, old_file, new_file = argv[0], argv[1], argv[4]
    out.write(f"diff --agilab a/{path} b/{path}\n")
    if old_file == "/dev/null" or new_file == "/dev/null":
        out.write(f"{'new file' if old_file == '/dev/null' else 'deleted file'}: {path}\n")
        return EXIT_OK
    with tempfile.TemporaryDirectory(prefix="agilab-git-") as tmp:
        real = Path(path).resolve()
        (Path(tmp) / "a").mkdir()
        (Path(tmp) / "b").mkdir()
        old = beside(Path(old_file), real, Path(tmp) / "a")
        new = beside(Path(new_file), real, Path(tmp) / "b")
        code = _diff_files(old, new, (f"a/{path}", f"b/{path}"), "text", None, out)
    return EXIT_OK if code in (EXIT_OK, EXIT_INVALID) else code  # git goes on with the next file


def cmd_history(args: argparse.Namespace, out: TextIO) -> int:
    from ..load.errors import to_json_text
    from ..record import query as history
    from .show import print_comparison, print_history

    lab = Path(args.file)
    if not lab.is_file():
        print(f"agilab-run history: error: {args.file}: no such lab file", file=sys.stderr)
        return EXIT_INVALID
    if args.last is not None and args.last < 1:
        print("agilab-run history: error: --last must be at least 1", file=sys.stderr)
        return EXIT_INVALID
    lab_dir = lab.resolve().parent

    def note(text: str) -> None:  # a record left pending (a full disk, say)
        print(f"agilab-run: {text}", file=sys.stderr)

    if args.compare:
        try:
            a, b = (history.read_run(history.resolve_run(lab_dir, ref, note)) for ref in args.compare)
        except history.UnknownRun as exc:
            print(f"agilab-run history: error: {exc}", file=sys.stderr)
            return EXIT_INVALID
        except (OSError, ValueError, KeyError, IndexError) as exc:  # a damaged or foreign file
            print(f"agilab-run history: error: a run's record cannot be read ({exc})", file=sys.stderr)
            return EXIT_PROBLEMS
        diffs = history.compare(a, b)
        if args.json:
            out.write(to_json_text({"a": a.run_id, "b": b.run_id, "steps": diffs}) + "\n")
        else:
            print_comparison(a, b, diffs, out)
        return EXIT_OK
    listed = history.listing(lab_dir, last=args.last, status=args.status, step=args.step, note=note)
    for path, exc in listed.skipped:
        print(f"agilab-run history: skipping {path.name}: {exc}", file=sys.stderr)
    if args.export_mlflow is not None:
        from ..record.mlflow_export import MlflowMissing, default_uri, export

        runs = [run for run, _ in listed]
        app = runs[0].app if runs else lab_dir.name
        try:
            done = export(runs, app, args.export_mlflow or default_uri(lab_dir))
        except MlflowMissing as exc:
            print(f"agilab-run history: {exc}", file=sys.stderr)
            return EXIT_PROBLEMS
        print(
            f"MLflow {done.uri}: experiment {done.experiment!r}: {done.added} run{'s' * (done.added != 1)} "
            f"exported, {done.skipped} already there",
            file=out,
        )
        return EXIT_OK
    if args.json:
        payload = [run.to_json() | {"changes": history.changes_since(run, before)} for run, before in listed]
        out.write(to_json_text(payload) + "\n")
    else:
        print_history(listed, out)
    return EXIT_OK


def cmd_doctor(args: argparse.Namespace, out: TextIO) -> int:
    from ..load.errors import to_json_text
    from ..stages.backends import BackendUnavailable
    from ..stages.doctor import ShareProblem, check_share, render

    try:
        report = check_share(args.scheduler, args.share)
    except ShareProblem as exc:
        print(f"agilab-run doctor: error: {exc}", file=sys.stderr)
        return EXIT_INVALID
    except BackendUnavailable as exc:
        print(f"agilab-run doctor: {exc}", file=sys.stderr)
        return EXIT_PROBLEMS
    out.write(to_json_text(report.to_json()) + "\n" if args.json else render(report))
    return EXIT_OK if report.ok else EXIT_PROBLEMS


def cmd_status(args: argparse.Namespace, out: TextIO) -> int:
    from ..execute.session import cached_judgment

    cached = cached_judgment(_request(args))
    if cached is not None:
        _print_statuses(cached[0], args.json)
        return EXIT_OK
    statuses = _judge(args, None)
    if isinstance(statuses, int):
        return statuses
    _print_statuses(statuses, args.json)
    return EXIT_OK


def cmd_graph(args: argparse.Namespace, out: TextIO) -> int:
    from .show import graph_text

    runner = _open(args)
    if isinstance(runner, int):
        return runner
    edges = [(e.upstream, e.downstream) for e in runner.full_graph.edges]
    if args.diff is None and args.since is None:
        out.write(graph_text(runner.statuses(), edges, args.format))
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
        old = open_lab(LabRequest(file=str(old_path), use_cache=False))
        if isinstance(old, Refusal):
            return _refused(old)
        change = semantic.diff_labs(old, runner, args.since or args.diff, args.file)
    out.write(change_graph(list(runner.lab.ids), edges, change))
    return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
