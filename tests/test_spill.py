"""Large concat-csv results travel as spill files on ``pool`` (issue 18): the same output bytes as
``local``, the same refusals, and no spill file left behind."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from agilab_dsl.check.files import load
from agilab_dsl.stages import spill
from agilab_dsl.stages.backends import Done, FunctionRef, PartitionCall
from agilab_dsl.stages.parallel import StageFailed, run_contract
from agilab_dsl.stages.reducers import ReduceError
from agilab_dsl.stages.splits import Partition

ROWS = 120_000

FUNCS = """
import pyarrow as pa

ROWS = 120_000  # about 1.6 MB of CSV text: above spill.SPILL_MIN (1 MiB)

def text(part):
    # CSV text with CRLF line ends, a quoted comma, non-ASCII, the last row without a line end
    rows = [f'"r,{part.index}",{n},é' for n in range(ROWS)]
    return "k,v,w\\r\\n" + "\\r\\n".join(rows)

def mixed(part):
    if part.index == 0:
        return text(part)
    if part.index == 1:
        return pa.table({"k": [f"t{n}" for n in range(ROWS)], "v": list(range(ROWS)), "w": ["é"] * ROWS})
    if part.index == 2:
        return [{"k": f"d{n}", "v": n, "w": "x"} for n in range(ROWS)]
    return "k,v,w\\nsmall,1,x\\n"  # small: travels as a value

def other_header(part):
    return text(part) if part.index != 2 else text(part).replace("k,v,w", "k,v,z", 1)

def fails_late(part):
    import time
    if part.index == 3:
        time.sleep(0.5)  # the others are spilled by then
        raise ValueError("partition three is bad")
    return text(part)

def not_rows(part):
    return list(range(20_000))
"""


def stage(folder: Path, function: str, points: int = 4) -> Path:
    (folder / "funcs.py").write_text(FUNCS, encoding="utf-8")
    (folder / "grid.json").write_text(json.dumps([{"n": n} for n in range(points)]), encoding="utf-8")
    path = folder / "parallel_stage.toml"
    path.write_text(
        'schema = "agilab.parallel_stage.v1"\nname = "s"\n'
        f'function = "funcs.py:{function}"\nsplit = "parameter-sweep"\ninput = "grid.json"\n'
        'workers = 2\npartition_strategy = "parameter-items"\ntarget_partitions = 0\n'
        'min_partitions_per_worker = 1\nreducer = "concat-csv"\nbackend = "local"\noutput = "out/r.csv"\n',
        encoding="utf-8",
    )
    return path


def run(path: Path, backend: str) -> bytes:
    result = run_contract(load(path, "contract"), path, backend=backend, cores=2)
    return Path(result.output).read_bytes()


def leftovers(folder: Path) -> list[str]:
    out = folder / "out"
    return sorted(p.name for p in out.iterdir() if p.name.endswith(".tmp")) if out.exists() else []


@pytest.mark.parametrize("function", ["text", "mixed"])
def test_spilled_results_give_the_same_bytes_as_local(tmp_path: Path, function: str) -> None:
    path = stage(tmp_path, function)
    expected = run(path, "local")
    assert run(path, "pool") == expected
    assert expected.count(b"k,v,w\n") == 1 and b"\r" not in expected and expected.endswith(b"\n")
    lines = expected.decode("utf-8").splitlines()
    assert lines[1] == '"r,0",0,é' and len(lines) == 1 + (4 * ROWS if function == "text" else 3 * ROWS + 1)
    assert leftovers(tmp_path) == []


def test_a_spilled_result_with_other_columns_is_named(tmp_path: Path) -> None:
    path = stage(tmp_path, "other_header")
    with pytest.raises(
        ReduceError, match=r"partition 2 \(params \{'n': 2\}\) returned columns \['k', 'v', 'z'\]"
    ):
        run(path, "pool")
    assert leftovers(tmp_path) == [] and not (tmp_path / "out" / "r.csv").exists()


def test_a_failed_stage_leaves_no_spill_file(tmp_path: Path) -> None:
    path = stage(tmp_path, "fails_late", points=6)
    with pytest.raises(StageFailed, match="partition 3"):
        run(path, "pool")
    assert leftovers(tmp_path) == [] and not (tmp_path / "out" / "r.csv").exists()


def test_a_result_concat_csv_refuses_is_refused_as_before(tmp_path: Path) -> None:
    path = stage(tmp_path, "not_rows", points=2)
    with pytest.raises(ReduceError, match="a list that is not of row dicts"):
        run(path, "pool")
    assert leftovers(tmp_path) == []


def test_the_spilling_call_writes_the_rows_and_hands_back_the_file(tmp_path: Path) -> None:
    stage(tmp_path, "text")
    plain = PartitionCall(FunctionRef.parse("funcs.py:text", str(tmp_path)))
    call = spill.wrap(plain, "pool", "concat-csv", str(tmp_path / "r.csv"))
    assert spill.wrap(plain, "local", "concat-csv", "r.csv") is plain
    assert spill.wrap(plain, "pool", "concat-jsonl", "r.csv") is plain
    outcome = call(Partition(7, params={}))
    assert isinstance(outcome, Done) and isinstance(outcome.value, spill.Spilled)
    assert outcome.value.columns == ("k", "v", "w")
    assert Path(outcome.value.path).name == f".r.csv.part7.{call.pid}.tmp"  # type: ignore[attr-defined]
    body = Path(outcome.value.path).read_bytes()
    assert body.startswith('"r,7",0,é\n'.encode()) and body.endswith(b"\n") and b"\r" not in body
    spill.clean(str(tmp_path / "r.csv"))
    assert not Path(outcome.value.path).exists()


@pytest.mark.parametrize("size", [1, 2, 3, 7])
def test_text_is_written_a_slice_at_a_time_without_splitting_crlf(
    size: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(spill, "SLICE", size)
    for text in ["a\r\nb\r\n", "a\r\n\r\nb", "\r\n\r\n", "x\r", "\rx\r\n", "é\r\nü"]:
        raw = io.BytesIO()
        spill.write_text(raw, text)
        want = text.replace("\r\n", "\n")
        assert raw.getvalue() == (want if want.endswith("\n") else want + "\n").encode(), text


def test_joblib_parallel_still_works_after_a_pool_stage(tmp_path: Path) -> None:
    """The pool backend keeps its own executor: joblib's reusable one stays joblib's."""
    from joblib import Parallel, delayed

    path = stage(tmp_path, "mixed")
    run(path, "pool")
    assert Parallel(n_jobs=2)(delayed(abs)(-n) for n in range(4)) == [0, 1, 2, 3]
    run(path, "pool")  # and the other way round


def test_a_stage_after_a_crashed_worker_gets_a_working_pool(tmp_path: Path) -> None:
    (tmp_path / "dies").mkdir()
    path = stage(tmp_path / "dies", "text")
    funcs = tmp_path / "dies" / "funcs.py"
    funcs.write_text(
        funcs.read_text() + "\ndef die(part):\n    import os\n    os._exit(9)\n", encoding="utf-8"
    )
    path.write_text(path.read_text().replace("funcs.py:text", "funcs.py:die"), encoding="utf-8")
    with pytest.raises(StageFailed, match=r"partition 0 \(params"):
        run(path, "pool")
    good = stage(tmp_path, "mixed")
    assert run(good, "pool") == run(good, "local")
