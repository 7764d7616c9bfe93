"""In-process time of loading a lab file, against ``tomllib.loads`` of the same text (goal 2).

    PYTHON bench/_labload.py LAB [--repeat K]      (prints one JSON object)

Run by bench/w1.py under the installed interpreter it benchmarks. Times, each the median of K:

- ``tomllib``: ``tomllib.loads`` of the file's text (the text read once, outside the timing);
- ``cold``: what ``agilab-run status`` / a run does to read and validate a lab when no cache
  answers — ``execute.session.open_lab`` with the caches off: read, parse, validate (pydantic), check,
  infer artifacts, build the graph (``load_state=False``: the lab's run state is not the lab file);
- ``cached``: the same call through the spec cache (``~/.cache/agilab-dsl/spec``, here a private
  folder), filled by one untimed call first; it says whether the cache answered;
- ``parse_validate``: ``load.lab.load_lab`` alone (phases 1 and 2, no cross-step check), for the record.
The first call of each kind runs once untimed (imports, pydantic's model build).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import tomllib
from collections.abc import Callable
from typing import Any


def median_time(fn: Callable[[], Any], repeat: int) -> float:
    fn()
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("lab")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as cache_dir:
        os.environ["AGILAB_CACHE_DIR"] = cache_dir  # before the cache module reads it
        os.environ.pop("AGILAB_NO_CACHE", None)
        import agilab_dsl
        from agilab_dsl.execute import session
        from agilab_dsl.load.lab import load_lab

        with open(args.lab, encoding="utf-8") as fh:
            text = fh.read()
        cold_request = session.LabRequest(file=args.lab, use_cache=False)
        cached_request = session.LabRequest(file=args.lab)

        def opened(request: session.LabRequest) -> None:
            result = session.open_lab(request, load_state=False)
            if isinstance(result, session.Refusal):
                raise SystemExit(f"the lab was refused: {result.message or result.diagnostics[:3]}")

        out: dict[str, Any] = {
            "bytes": len(text.encode("utf-8")),
            "module": os.path.dirname(agilab_dsl.__file__),
            "tomllib": median_time(lambda: tomllib.loads(text), args.repeat),
            "cold": median_time(lambda: opened(cold_request), args.repeat),
            "parse_validate": median_time(lambda: load_lab(args.lab), args.repeat),
        }
        opened(cached_request)  # fills the spec cache
        out["cache_answered"] = session._cached_spec(cached_request) is not None
        out["cached"] = median_time(lambda: opened(cached_request), args.repeat)
    json.dump(out, sys.stdout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
