"""Loading a big lab: our loader against tomllib and tomlkit on the same file, in this process.

    python bench/parse.py [--steps N] [--runs R]

Generates a lab of N stages (default 1,000, ~150 KiB: ids, deps, produces/consumes, multi-line code,
params with ${...} holes, NB_* keys), then prints the median time of
  tomllib.loads                 (the baseline: the fastest full TOML parse available)
  tomli.loads                   (the same parser compiled: what load_lab uses when tomli has a wheel)
  tomlkit.parse                 (the round-trip parser; what DESIGN §2 keeps off the hot path)
  SourceMap                     (our position index)
  load_lab                      (tomllib + positions + schema + expressions)
  check_file                    (load_lab + semantics: ids, deps, cycles, references)
and each one's ratio to tomllib. Import costs are excluded (every module is imported before timing).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import tomllib
from pathlib import Path


def make_lab(steps: int) -> str:
    out = ['[__meta__]\nschema = "agilab.lab_stages.v1"\nversion = 1\n']
    for i in range(steps):
        deps = f'depends_on = ["s{i - 1:04d}"]\n' if i else ""
        consumes = f'consumes = ["work/s{i - 1:04d}.csv"]\n' if i else ""
        out.append(
            f"[[bench]]\n"
            f'id = "s{i:04d}"\n'
            f'D = "Stage {i}"\nQ = "Compute stage {i} from the previous one"\nM = "model"\n'
            f"C = '''\nimport csv\nrows = [r for r in range({i % 50})]\n# comment {i}\n"
            f"with open(outputs[0], 'w') as fh:\n    fh.write(str(len(rows)))\n'''\n"
            f'R = "runpy"\n{deps}{consumes}'
            f'produces = ["work/s{i:04d}.csv"]\n'
            f'params = {{ n = {i}, src = "${{settings.args.data_in}}/part-{i}.csv" }}\n'
            f'NB_CELL_ID = "cell-{i}"\n\n'
        )
    return "".join(out)


def median_ms(fn, runs: int) -> float:  # type: ignore[no-untyped-def]
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()

    import tomli
    import tomlkit

    from agilab_dsl.check.files import check_file
    from agilab_dsl.load.lab import load_lab
    from agilab_dsl.load.source import SourceMap

    text = make_lab(args.steps)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        lab = folder / "lab_stages.toml"
        lab.write_text(text, encoding="utf-8")
        (folder / "app_settings.toml").write_text('[args]\ndata_in = "data"\n', encoding="utf-8")

        def forget_code() -> None:
            """Answers kept per code text in the process (inferred artifacts, df use) are dropped
            before each timed check: a command reads a lab's code cold."""
            from agilab_dsl.plan.dataframe_scan import frame_use as _frame_use
            from agilab_dsl.plan.infer_code import from_code

            for cached in (from_code, _frame_use):
                cached.cache_clear()

        result, _ = check_file(lab)  # warm up (grammar build, model schemas) and validate the workload
        assert result.ok, result.diagnostics[:3]
        rows = [
            ("tomllib.loads (baseline)", median_ms(lambda: tomllib.loads(text), args.runs)),
            ("tomli.loads", median_ms(lambda: tomli.loads(text), args.runs)),
            ("tomlkit.parse", median_ms(lambda: tomlkit.parse(text), max(1, args.runs // 2))),
            ("SourceMap (positions, scanned)", median_ms(lambda: SourceMap(text).spans, args.runs)),
            ("load_lab", median_ms(lambda: load_lab(lab), args.runs)),
            ("check_file", median_ms(lambda: (forget_code(), check_file(lab)), args.runs)),
        ]
    base = rows[0][1]
    print(f"{args.steps} stages, {len(text) / 1024:.0f} KiB, median of {args.runs} runs")
    for label, ms in rows:
        print(f"  {label:<28} {ms:8.1f} ms  {ms / base:6.2f}x tomllib")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
