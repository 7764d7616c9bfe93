"""The argument parsers of ``agilab-run``: :func:`build_parser` for the sub-commands (``check``,
``status``, ``diff`` ...) with the top-level help text, :func:`build_run_parser` for running a lab
(``agilab-run FILE [options]``), and the lab options both share. Only argparse is imported here.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from .usage import Parser, Unused

if TYPE_CHECKING:  # pragma: no cover
    pass

_DESCRIPTION = """\
Read AGILAB pipeline files (lab_steps.toml / lab_stages.toml, parallel_stage.toml,
app_settings.toml) as code.

usage: agilab-run FILE [--watch] [--dry-run] [--only ID]... [--from ID] [--force] [-j N]
                       [--keep-going] [--backend NAME] [--scheduler ADDR] [--settings PATH]
                       [--profile NAME] [--all] [-v] [--json]
       run the stale steps of a lab (and say why each runs); FILE may be a parallel_stage.toml

commands:
  status FILE             every step's state in AGILAB's words (ready, done, stale, failed...), and why
  serve FILE              the live page of a lab on 127.0.0.1 (view only; --serve HOST:PORT)
  graph FILE              the step graph in Mermaid or dot, coloured by state (--diff / --since: by change)
  check FILE...           validate files; every problem located (file:line:col)
  plan FILE               partition plan of a parallel stage (or of every stage of a lab)
  history FILE            recorded runs; --compare RUN RUN; --export-mlflow
  diff OLD NEW            what a change means (files, or REV [REV] -- PATH)
  fmt FILE...             one canonical layout for lab files (--check)
  migrate FILE --to NAME  lab_steps <-> lab_stages (stamp, module key)
  git-setup               semantic diffs in git diff / git log -p
  doctor                  do all Dask workers read the cluster share?
  schema NAME             JSON Schema for editors: lab-steps, parallel-stage, app-settings

exit codes: 0 ok, 1 a step failed or problems found, 2 invalid definition or wrong call,
            130 interrupted (watch mode: 0)
"""


NO_INFER_HELP = (
    "take only declared inputs and outputs (none inferred from code or NB_ARTIFACT_REFERENCES; "
    "a stage says the same with infer = false)"
)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser of ``agilab-run COMMAND …``. Given the ``command`` that argv names, only that
    sub-command's arguments are built (each ``add_argument`` costs a help formatter: building all of
    them took ~4 ms of every call); the others are names only, for argparse's list of choices."""
    parser = Parser(
        prog="agilab-run", description=_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    if command is not None:
        register = sub.add_parser

        def add_parser(name: str, **kwargs: Any) -> Any:
            if name == command:
                return register(name, **kwargs)
            sub.choices[name] = Unused()  # type: ignore[index]
            return Unused()

        sub.add_parser = add_parser  # type: ignore[method-assign]

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
    check.add_argument("--no-infer", action="store_true", help=NO_INFER_HELP)
    agilab = check.add_argument_group(
        "AGILAB's verdict",
        "--agilab: AGILAB's own validators, rule for rule (`agilab workflow validate` for labs, "
        "tools/parallel_stage.py for contracts), every issue located. Exit 2 on fail, 1 on warn "
        "with --strict, else 0.",
    )
    agilab.add_argument("--agilab", action="store_true", help="judge the files with AGILAB's rules")
    agilab.add_argument(
        "--module-key",
        metavar="KEY",
        help="the lab's stage list (default: its folder's name without _project)",
    )
    agilab.add_argument(
        "--apps-root", metavar="DIR", help="where the apps that stages name (app, APP) are looked for"
    )
    agilab.add_argument(
        "--require-metadata",
        action="store_true",
        help="a lab without [__meta__] schema and version fails",
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
    status.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="also each step's interpreter (and why) and its inferred artifacts",
    )

    serve = sub.add_parser(
        "serve",
        help="the live page of a lab (view only: runs nothing)",
        description="Serve the lab's live page: the step graph coloured by AGILAB's states, each step's "
        "reasons, partitions, duration and log tail, and the recorded history; it follows the runs "
        "other commands make. Loopback (127.0.0.1) unless --serve names another address.",
    )
    serve.add_argument("file", metavar="FILE")
    _add_serve_option(
        serve, "HOST:PORT to serve on (default 127.0.0.1, port 8765 when free, else a free one)"
    )
    _add_lab_options(serve)

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
        help="convert a stage list between lab_steps and lab_stages (stamp, module key)",
        description="--to lab_stages writes FILE as AGILAB accepts it today: [__meta__] schema = "
        '"agilab.lab_stages.v1" and version = 1 (other [__meta__] keys kept), a legacy [[steps]] or '
        "[[stages]] list (or, with --module-key, the file's single list) renamed to the module key with "
        "its __sequence/__automation keys. --to lab_steps undoes what a migration did (it leaves a "
        "record on the last line), else changes the stamp only. Text edits only: comments, order, "
        "line endings and unknown keys survive, and no stage is dropped (both versions are loaded and "
        "compared first). The file is written under its new name (lab_steps.toml <-> lab_stages.toml); "
        "the original is left in place.",
    )
    mig.add_argument("file", metavar="FILE")
    mig.add_argument("--to", required=True, choices=("lab_stages", "lab_steps"))
    mig.add_argument(
        "-o", "--output", metavar="PATH", help="where to write (default: FILE under the new name)"
    )
    mig.add_argument("--force", action="store_true", help="replace an existing, different target")
    mig.add_argument(
        "--module-key",
        metavar="KEY",
        help="the app's module key, whose list AGILAB reads (default: the lab folder's name without "
        "_project, as AGILAB derives it)",
    )

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
    # no help= at all: argparse lists a sub-command given help=SUPPRESS as "==SUPPRESS==" (HIDDEN)
    driver = sub.add_parser("git-diff-driver")
    driver.add_argument("args", nargs="+")
    conv = sub.add_parser("textconv")
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
        "--scheduler",
        required=True,
        metavar="ADDR",
        type=_scheduler,
        help="Dask scheduler, e.g. 127.0.0.1:8786",
    )
    doctor.add_argument("--share", required=True, metavar="PATH", help="the folder every worker should see")
    doctor.add_argument("--json", action="store_true")
    return parser


def _add_serve_option(parser: argparse.ArgumentParser, help_text: str) -> None:
    parser.add_argument("--serve", nargs="?", const="", default=None, metavar="HOST:PORT", help=help_text)


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
    parser.add_argument(
        "--profile",
        metavar="NAME",
        help="apply each stage's profile of this name (default: the lab's saved profile, else balanced)",
    )
    _add_dataframe_options(parser)
    parser.add_argument(
        "--all",
        dest="all_stages",
        action="store_true",
        help="also the stages a saved __sequence leaves out (AGILAB runs only the saved selection)",
    )
    parser.add_argument("--no-infer", action="store_true", help=NO_INFER_HELP)
    python = parser.add_argument_group(
        "which Python runs a step (default: E, else the lab's project's .venv)"
    )
    python.add_argument("--python", metavar="PATH", help="run every step under this interpreter (or venv)")
    python.add_argument(
        "--agilab-python",
        metavar="PATH",
        help="the interpreter with agi_cluster, for code that uses it (default: the first found)",
    )
    python.add_argument(
        "--apps-path", metavar="DIR", help="where a relative E is looked for (default: $APPS_PATH)"
    )


def _add_dataframe_options(parser: argparse.ArgumentParser) -> None:
    """AGILAB's ``df`` (README "Running AGILAB projects")."""
    parser.add_argument(
        "--dataframe",
        metavar="PATH",
        help="the df of the first step that reads df (CSV, Parquet or JSON records); each later one "
        "reads the lab_out.csv the df step before it saved",
    )
    parser.add_argument(
        "--export-dir",
        metavar="DIR",
        help="where df steps save their frame, DIR/<step id>/lab_out.csv (default: .agilab/export "
        "beside the lab)",
    )


def build_run_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="agilab-run", description="Run the stale steps of a lab, saying why each runs.")
    parser.add_argument("file", metavar="FILE")
    parser.add_argument("--dry-run", action="store_true", help="say what would run and why; run nothing")
    parser.add_argument(
        "--watch",
        action="store_true",
        help="run, then re-run the affected steps whenever a file they depend on changes (Ctrl-C stops)",
    )
    _add_serve_option(
        parser,
        "with --watch: serve the live page on HOST:PORT (default 127.0.0.1, port 8765 when free, else a "
        "free one; another address than loopback only when given, with a warning)",
    )
    parser.add_argument(
        "--only", action="append", default=[], metavar="ID", help="run only this step (repeatable)"
    )
    parser.add_argument(
        "--from", dest="from_step", metavar="ID", help="run this step and everything downstream"
    )
    parser.add_argument("--force", action="store_true", help="run the selected steps even when fresh")
    parser.add_argument(
        "-j",
        "--jobs",
        type=int,
        default=None,
        metavar="N",
        help="independent steps run at once (default: the lab's saved max_workers, else 1)",
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
        type=_scheduler,
        help="Dask scheduler of dask and gpu stages (default: [cluster] scheduler when cluster_enabled, "
        "else a LocalCluster started for the run)",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help='print {"run_id", "steps": [{"id", "status", "reasons"}]} on stdout',
    )
    parser.add_argument(
        "--events",
        metavar="PATH",
        help="also write the run's events as JSON lines to PATH ('-': stdout); every run that starts a "
        "step keeps them in .agilab/runs/<run_id>/events.jsonl",
    )
    _add_lab_options(parser)
    return parser


def _scheduler(text: str) -> str:
    """``--scheduler``: a Dask address whose shape is sound (a malformed one is a usage error, exit 2)."""
    from ..load.address import scheduler_problem

    problem = scheduler_problem(text)
    if problem:
        raise argparse.ArgumentTypeError(problem)
    return text.strip()
