"""``agilab-run plan``: the partition plan of a parallel stage (or of every stage of a lab that
runs one): inputs found, strategy, workers and partitions, as text or JSON.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from .common import EXIT_INVALID, EXIT_OK

if TYPE_CHECKING:  # pragma: no cover
    import argparse
    from typing import TextIO


def cmd_plan(args: argparse.Namespace, out: TextIO) -> int:
    from pathlib import Path

    from ..check.files import check_file
    from ..load.contract import load_contract
    from ..load.errors import render_text, to_json_text
    from ..stages.cores import available_cores
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
