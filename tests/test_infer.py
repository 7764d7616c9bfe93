"""Inferred artifacts (plan/infer.py): each form found in code (and what is not guessed), declared keys
winning, ``infer = false`` / ``--no-infer``, reasons naming the artifact and its origin, the graph's
edges, ``status -v`` and ``check --json``, and the notebook_to_dask project run from a copy."""

from __future__ import annotations

import importlib.util
import json
import shutil
import textwrap
from pathlib import Path

import pytest
from conftest import ROOT

from agilab_dsl.check.files import check_file
from agilab_dsl.cli import main
from agilab_dsl.execute.session import LabRequest, open_lab
from agilab_dsl.load.model import Stage
from agilab_dsl.plan.infer import from_code, lab_spec, of_stage
from agilab_dsl.plan.spec import LabSpec

APPS = ROOT.parent / "shared" / "corpus" / "agilab-apps"
NOTEBOOK_TO_DASK = APPS / "notebook_to_dask"


def found(code: str) -> list[tuple[str, str, int | None, str]]:
    return [(a.direction, a.path, a.line, a.how) for a in from_code(textwrap.dedent(code))]


def paths(code: str) -> list[tuple[str, str]]:
    return [(a.direction, a.path) for a in from_code(textwrap.dedent(code))]


# -- each form --------------------------------------------------------------------------------------
def test_agilab_assignments() -> None:
    code = """\
    data_in = "data/in.csv"
    input_path = 'raw/a.json'
    source_path: str = "raw/b.json"
    data_out = "out/result.csv"
    output_path = "out/o.txt"
    artifact_path = "artifacts/a.bin"
    model_path = "models/m.pkl"
    other = "not/an/artifact.csv"
    """
    assert found(code) == [
        ("input", "data/in.csv", 1, "data_in = …"),
        ("input", "raw/a.json", 2, "input_path = …"),
        ("input", "raw/b.json", 3, "source_path = …"),
        ("output", "out/result.csv", 4, "data_out = …"),
        ("output", "out/o.txt", 5, "output_path = …"),
        ("output", "artifacts/a.bin", 6, "artifact_path = …"),
        ("output", "models/m.pkl", 7, "model_path = …"),
    ]


def test_agi_run_and_install_keywords() -> None:
    code = """\
    from agi_cluster.agi_distributor import AGI
    async def main():
        await AGI.install(env, data_in="share/in", modes_enabled=4)
        return await AGI.run(env, data_in="share/flight", data_out="share/flight_out", mode=0)
    """
    assert paths(code) == [
        ("input", "share/in"),
        ("input", "share/flight"),
        ("output", "share/flight_out"),
    ]
    assert found(code)[2][3] == "AGI.run(data_out=…)"
    assert paths("AGI.serve(env, data_in='x.csv')\nagi.run(data_in='y.csv')\n") == []


def test_open_by_mode() -> None:
    code = """\
    import json
    a = open("in/a.txt").read()
    b = open("in/b.bin", "rb").read()
    open("out/c.txt", "w").write(a)
    open("out/d.log", mode="a").write("x")
    open("out/e.txt", "x")
    json.dump({"k": 1}, open("out/f.json", "w"))
    with open("io/g.txt", "r+") as fh:
        fh.write("y")
    """
    assert paths(code) == [
        ("input", "in/a.txt"),
        ("input", "in/b.bin"),
        ("output", "out/c.txt"),
        ("output", "out/d.log"),
        ("output", "out/e.txt"),
        ("output", "out/f.json"),
        ("output", "io/g.txt"),  # read and written: an output
    ]
    assert found(code)[2][3] == "open(…, 'w')"


def test_path_methods() -> None:
    code = """\
    from pathlib import Path
    text = Path("in/a.txt").read_text()
    blob = Path("in/b.bin").read_bytes()
    Path("out/c.txt").write_text(text)
    Path("out/d.bin").write_bytes(blob)
    with Path("out/e.txt").open("w") as fh:
        fh.write(text)
    with Path("in/f.txt").open() as fh:
        fh.read()
    Path("artifacts").mkdir(parents=True, exist_ok=True)
    """
    assert paths(code) == [
        ("input", "in/a.txt"),
        ("input", "in/b.bin"),
        ("output", "out/c.txt"),
        ("output", "out/d.bin"),
        ("output", "out/e.txt"),
        ("input", "in/f.txt"),
    ]
    assert found(code)[2][3] == "Path.write_text"


def test_pandas_dask_pyarrow_reads_and_writes() -> None:
    code = """\
    import pandas as pd, dask.dataframe as dd, pyarrow.parquet as pq
    a = pd.read_csv("data/a.csv", sep=";")
    b = pd.read_parquet(path="data/b.parquet")
    c = pd.read_json("data/c.json")
    d = pd.read_excel("data/d.xlsx")
    e = dd.read_csv("data/e.csv", blocksize="64MB")
    f = pq.read_table("data/f.parquet")
    a.to_csv("out/a.csv", index=False)
    b.groupby("k").sum().to_parquet("out/b.parquet")
    c.to_json(path_or_buf="out/c.json")
    pq.write_table(f, "out/f.parquet")
    pq.write_table(f, where="out/g.parquet")
    s = a.to_json()
    """
    assert paths(code) == [
        ("input", "data/a.csv"),
        ("input", "data/b.parquet"),
        ("input", "data/c.json"),
        ("input", "data/d.xlsx"),
        ("input", "data/e.csv"),
        ("input", "data/f.parquet"),
        ("output", "out/a.csv"),
        ("output", "out/b.parquet"),
        ("output", "out/c.json"),
        ("output", "out/f.parquet"),
        ("output", "out/g.parquet"),
    ]
    hows = {p: how for _, p, _, how in found(code)}
    assert (hows["data/a.csv"], hows["out/b.parquet"], hows["out/f.parquet"]) == (
        "pd.read_csv",
        ".to_parquet",
        "pq.write_table",
    )


def test_literal_forms_taken() -> None:
    code = """\
    import os
    from pathlib import Path
    root = Path("data")
    name = "orders.csv"
    a = open(f"in/plain.txt").read()
    b = open(root / name).read()
    c = open(os.path.join("in", "joined.txt")).read()
    d = open(Path("in", "parts.txt")).read()
    e = open(Path("./in//dots.txt")).read()
    """
    assert paths(code) == [
        ("input", "data/orders.csv"),
        ("input", "in/plain.txt"),
        ("input", "in/joined.txt"),
        ("input", "in/parts.txt"),
        ("input", "in/dots.txt"),
    ]
    # the origin is where the path is written: the name's literal, not the call that reads it
    assert found(code)[0][2] == 3


def test_run_time_paths_are_not_guessed() -> None:
    code = """\
    import sys
    from pathlib import Path
    day = sys.argv[1]
    open(f"data/{day}.csv").read()
    open("data/" + day).read()
    open(Path(__file__).parent / "x.csv").read()
    twice = "a.csv"
    twice = "b.csv"
    open(twice).read()
    def load(p="c.csv"):
        return open(p).read()
    for p in ["d.csv"]:
        open(p).read()
    open("e.csv", mode_for(day))
    open(inputs[0]).read()
    data_in = settings["args"]["data_in"]
    pd.read_csv("data/*.csv")
    pd.read_csv("https://example.org/x.csv")
    pd.read_csv("~/x.csv")
    pd.read_csv("${settings.args.data_in}")
    s = "a" / "b"
    """
    assert paths(code) == []
    assert paths("this is not python (") == []


def test_same_stage_read_and_write_is_an_output() -> None:
    assert paths('x = open("state.json").read()\nopen("state.json", "w").write(x)\n') == [
        ("output", "state.json")
    ]


def test_notebook_artifact_references() -> None:
    code = (
        'import plotly\nfig.write_image("artifacts/plot.png")\nimg.save("plots/p.png")\nx = "data/raw.bin"\n'
    )
    stage = Stage.model_validate(
        {
            "code": code,
            "notebook": {
                "NB_ARTIFACT_REFERENCES": [
                    "artifacts/plot.png",  # no marker on its line: its folder says written
                    "plots/p.png",  # .save( on its line: written
                    "data/raw.bin",  # under data/: read
                    "notes.txt",  # neither: left out
                    "https://x/y.csv",
                ]
            },
        }
    )
    got = [(a.direction, a.path, a.origin, a.how) for a in of_stage(stage)]
    assert got == [
        ("output", "artifacts/plot.png", "NB_ARTIFACT_REFERENCES", "AGILAB's output prefix 'artifacts/'"),
        ("output", "plots/p.png", "NB_ARTIFACT_REFERENCES", "a write on C line 3"),
        ("input", "data/raw.bin", "NB_ARTIFACT_REFERENCES", "AGILAB's input prefix 'data/'"),
    ]
    # a listed path the code already places keeps the code's origin
    stage = Stage.model_validate(
        {
            "code": 'pd.read_csv("data/orders.csv")',
            "notebook": {"NB_ARTIFACT_REFERENCES": ["data/orders.csv"]},
        }
    )
    assert [(a.direction, a.origin) for a in of_stage(stage)] == [("input", "C line 1")]


def loaded(tmp_path: Path, keys: str) -> Stage:
    """The one stage of a lab written with ``keys`` (and the code below), as ``check`` loads it."""
    code = 'a = open("in/a.txt").read()\nopen("out/b.txt", "w").write(a)\nopen("out/c.txt").read()\n'
    path = tmp_path / "lab_stages.toml"
    path.write_text(f"[[m]]\nC = {json.dumps(code)}\n{keys}\n", encoding="utf-8")
    result, _ = check_file(path)
    assert result.ok, result.diagnostics
    return result.value.stages[0].stage


def test_declared_keys_win_direction_by_direction(tmp_path: Path) -> None:
    def inferred(keys: str) -> list[tuple[str, str]]:
        return [(a.direction, a.path) for a in of_stage(loaded(tmp_path, keys))]

    assert inferred("") == [("input", "in/a.txt"), ("output", "out/b.txt"), ("input", "out/c.txt")]
    assert inferred('consumes = ["in/other.txt"]') == [("output", "out/b.txt")]
    assert inferred('inputs = ["in/other.txt"]') == [("output", "out/b.txt")]
    # automation.outputs are joined to produces at load: declared outputs, so none is inferred
    assert inferred('automation = { outputs = ["out/z.txt"] }') == [
        ("input", "in/a.txt"),
        ("input", "out/c.txt"),
    ]
    assert inferred('automation = { inputs = ["in/a.txt"] }') == [("output", "out/b.txt")]
    # a path the stage declares is never inferred again, in either direction
    assert inferred('produces = ["./out/c.txt"]') == [("input", "in/a.txt")]


def test_infer_false_and_outputs_outside_the_lab() -> None:
    code = 'open("in/a.txt").read()\nopen("/tmp/x.txt", "w")\nopen("../y.txt", "w")\n'
    assert of_stage(Stage.model_validate({"code": code, "infer": False})) == ()
    # an output outside the lab's folder is left out; an input outside it is hashed
    assert [a.path for a in of_stage(Stage.model_validate({"code": code}))] == ["in/a.txt"]
    outside = Stage.model_validate({"code": code, "allow_outside": True})
    assert [a.path for a in of_stage(outside)] == ["in/a.txt", "/tmp/x.txt", "../y.txt"]


def test_a_path_several_stages_write_is_no_inferred_output(tmp_path: Path) -> None:
    path = tmp_path / "lab_stages.toml"
    path.write_text(
        "[[m]]\nC = \"open('run.log', 'a')\\nopen('a.txt', 'w')\"\n"
        "[[m]]\nC = \"open('run.log', 'a')\\nopen('b.txt', 'w')\"\n"
        "[[m]]\nproduces = ['b.txt']\nC = 'pass'\n",
        encoding="utf-8",
    )
    result, _ = check_file(path)
    spec = lab_spec(result.value)
    # run.log: two writers; b.txt: declared by the third stage too
    assert [[a[1] for a in s.stage.inferred] for s in spec.stages] == [["a.txt"], [], []]


# -- a lab ------------------------------------------------------------------------------------------
LAB = '''[[pipe]]
id = "make"
C = """
from pathlib import Path
text = Path("data/in.txt").read_text()
Path("work").mkdir(exist_ok=True)
Path("work/mid.txt").write_text(text.upper())
if text.startswith("never"):
    open("work/rare.txt", "w").write("x")
"""

[[pipe]]
id = "use"
C = """
data_in = "work/mid.txt"
open("work/out.txt", "w").write(open(data_in).read() + "!")
"""

[[pipe]]
id = "hello"
C = "print('hello')"
'''


@pytest.fixture
def lab(tmp_path: Path) -> Path:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "in.txt").write_text("abc\n", encoding="utf-8")
    path = tmp_path / "lab_stages.toml"
    path.write_text(LAB, encoding="utf-8")
    return path


def status(path: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> dict[str, dict]:
    assert main(["status", str(path), "--json", *extra]) == 0
    return {s["id"]: s for s in json.loads(capsys.readouterr().out)["steps"]}


def test_inferred_artifacts_make_steps_stale_with_their_origin(
    lab: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([str(lab)]) == 0
    # a write on a branch not taken is no failure, and is not recorded as an output
    assert (lab.parent / "work" / "out.txt").read_text(encoding="utf-8") == "ABC\n!"
    assert not (lab.parent / "work" / "rare.txt").exists()
    capsys.readouterr()
    assert {k: v["state"] for k, v in status(lab, capsys).items()} == {
        "make": "fresh",
        "use": "fresh",
        "hello": "fresh",
    }
    (lab.parent / "data" / "in.txt").write_text("abcd\n", encoding="utf-8")
    now = status(lab, capsys)
    assert now["make"]["reasons"] == ["input data/in.txt changed (inferred from C line 2)"]
    assert now["use"]["reasons"] == ["upstream make will run"]
    assert now["hello"]["reasons"] == ["upstream use will run"]  # the lab runs in sequence
    assert main([str(lab)]) == 0
    capsys.readouterr()
    (lab.parent / "work" / "out.txt").unlink()
    now = status(lab, capsys)
    assert now["make"]["state"] == "fresh"
    assert now["use"]["reasons"] == ["output work/out.txt missing (inferred from C line 2)"]
    (lab.parent / "work" / "mid.txt").write_text("tampered", encoding="utf-8")
    now = status(lab, capsys)
    assert now["make"]["reasons"] == [
        "output work/mid.txt changed since it was written (inferred from C line 4)"
    ]
    assert "input work/mid.txt changed (inferred from C line 1)" in now["use"]["reasons"]


def test_no_infer_judges_on_declared_keys_only(lab: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(lab), "--no-infer"]) == 0
    capsys.readouterr()
    (lab.parent / "data" / "in.txt").write_text("changed\n", encoding="utf-8")
    assert {k: v["state"] for k, v in status(lab, capsys, "--no-infer").items()} == {
        "make": "fresh",
        "use": "fresh",
        "hello": "fresh",
    }
    # with inference on, the same state is judged on the inferred inputs too
    assert "input data/in.txt added (inferred from C line 2)" in status(lab, capsys)["make"]["reasons"]
    # infer = false on a stage says the same for that stage alone
    lab.write_text(LAB.replace('id = "make"\n', 'id = "make"\ninfer = false\n'), encoding="utf-8")
    spec = open_lab(LabRequest(str(lab))).lab  # type: ignore[union-attr]
    assert spec.stages[0].stage.inferred == ()
    assert [a[1] for a in spec.stages[1].stage.inferred] == ["work/mid.txt", "work/out.txt"]


def test_graph_edges_through_inferred_artifacts(tmp_path: Path) -> None:
    path = tmp_path / "lab_stages.toml"
    path.write_text(
        textwrap.dedent(
            """\
            [[m]]
            id = "early"
            C = "open('late.txt').read()\\nopen('a.txt', 'w')"
            [[m]]
            id = "mid"
            C = "open('a.txt').read()\\nopen('b.txt', 'w')\\nopen('late.txt', 'w')"
            [[m]]
            id = "end"
            consumes = ["b.txt"]
            produces = ["c.txt"]
            C = "open('c.txt', 'w')"
            [[m]]
            id = "after"
            C = "open('c.txt').read()"
            """
        ),
        encoding="utf-8",
    )
    runner = open_lab(LabRequest(str(path), use_cache=False))
    edges = {(e.upstream, e.downstream, e.kind, e.detail) for e in runner.full_graph.edges}  # type: ignore[union-attr]
    # inferred -> inferred, inferred -> declared, declared -> inferred; never back to an earlier
    # step (no cycle)
    assert edges == {
        ("early", "mid", "artifact", "a.txt"),
        ("mid", "end", "artifact", "b.txt"),
        ("end", "after", "artifact", "c.txt"),
    }
    plain = open_lab(LabRequest(str(path), use_cache=False, infer=False))
    assert plain.full_graph.edges == ()  # type: ignore[union-attr]


def test_graph_command_draws_inferred_edges(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "lab_stages.toml"
    path.write_text(
        '[[m]]\nid = "w"\nC = "open(\'a.txt\', \'w\')"\n[[m]]\nid = "r"\nconsumes = ["a.txt"]\nC = "pass"\n',
        encoding="utf-8",
    )
    assert main(["graph", str(path), "--format", "dot"]) == 0
    assert 's0 -> s1 [label="a.txt"];' in capsys.readouterr().out  # the arrow names what it carries
    assert main(["graph", str(path), "--format", "dot", "--no-infer"]) == 0
    assert "->" not in capsys.readouterr().out


def test_spec_round_trips_with_inferred_artifacts(lab: Path, capsys: pytest.CaptureFixture[str]) -> None:
    result, _ = check_file(lab)
    spec = lab_spec(result.value)
    assert spec.stages[0].stage.inferred == (
        ("input", "data/in.txt", "C line 2", "Path.read_text"),
        ("output", "work/mid.txt", "C line 4", "Path.write_text"),
        ("output", "work/rare.txt", "C line 6", "open(…, 'w')"),
    )
    assert LabSpec.from_json(json.loads(json.dumps(spec.to_json()))) == spec
    assert lab_spec(result.value, infer=False) == LabSpec.of(result.value)
    assert LabSpec.of(result.value).stages[0].stage.inferred == ()
    # the second judgment starts from the spec cache: the same reasons
    assert main([str(lab)]) == 0
    (lab.parent / "data" / "in.txt").write_text("new\n", encoding="utf-8")
    capsys.readouterr()
    first = status(lab, capsys, "--no-cache")
    assert status(lab, capsys) == first


def test_status_verbose_lists_inferred_artifacts(lab: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["status", str(lab), "-v"]) == 0
    out = capsys.readouterr().out
    assert "    input data/in.txt, inferred from C line 2 (Path.read_text)\n" in out
    assert "    output work/out.txt, inferred from C line 2 (open(…, 'w'))\n" in out
    assert main(["status", str(lab), "-v", "--json"]) == 0
    steps = {s["id"]: s for s in json.loads(capsys.readouterr().out)["steps"]}
    assert steps["use"]["inferred"][0] == {
        "direction": "input",
        "path": "work/mid.txt",
        "origin": "C line 1",
        "how": "data_in = …",
    }
    assert steps["hello"]["inferred"] == []


def test_check_lists_inferred_artifacts_and_steps_without_inputs(
    lab: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["check", str(lab), "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["ok"] is True
    assert [a["path"] for a in payload["inferred"]["use"]] == ["work/mid.txt", "work/out.txt"]
    assert payload["inferred"]["use"][0]["line"] == 1
    assert "hello" not in payload["inferred"]
    (info,) = payload["issues"]
    assert (info["severity"], info["code"], info["line"]) == ("info", "stage-no-inputs", 19)
    assert "only its code and settings can make it stale" in info["message"]
    assert main(["check", str(lab), "--strict"]) == 0  # an info is not a problem
    out = capsys.readouterr().out
    assert "info[stage-no-inputs]: stage 'hello' has no declared or inferred input" in out
    assert out.endswith("0 errors, 0 warnings — ok (1 info)\n")
    # without inference, every step lacks inputs; a step with declared inputs never gets the info
    assert main(["check", str(lab), "--json", "--no-infer"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["inferred"] == {}
    assert [i["line"] for i in payload["issues"]] == [1, 12, 19]
    assert "inference is off" in payload["issues"][0]["message"]
    lab.write_text(LAB.replace('C = "print', 'consumes = ["data/in.txt"]\nC = "print'), encoding="utf-8")
    assert main(["check", str(lab), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["issues"] == []


# -- the real project ---------------------------------------------------------------------------------
ORDERS = (
    "order_id,order_date,quantity,unit_price\n1,2026-01-02,2,9.5\n2,2026-01-02,1,20.0\n3,2026-01-03,4,2.25\n"
)


@pytest.mark.skipif(not NOTEBOOK_TO_DASK.is_dir(), reason=f"{NOTEBOOK_TO_DASK} is absent (../shared)")
@pytest.mark.skipif(
    importlib.util.find_spec("pandas") is None or importlib.util.find_spec("dask") is None,
    reason="pandas and dask.dataframe are needed to run notebook_to_dask's stages (pip install pandas dask)",
)
def test_notebook_to_dask_data_changes_rerun_the_steps_that_read_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = tmp_path / "notebook_to_dask"
    shutil.copytree(NOTEBOOK_TO_DASK, project)
    (project / "data").mkdir()
    orders = project / "data" / "orders.csv"
    orders.write_text(ORDERS, encoding="utf-8")
    lab = project / "lab_stages.toml"
    ids = ["notebook_to_dask_project_001", "notebook_to_dask_project_002", "notebook_to_dask_project_003"]
    assert main([str(lab)]) == 0, capsys.readouterr().out
    summary = project / "artifacts" / "dask_summary.json"
    assert json.loads(summary.read_text(encoding="utf-8"))["revenue"]["count"] == 2.0  # two days
    capsys.readouterr()
    assert [s["state"] for s in status(lab, capsys).values()] == ["fresh"] * 3

    with orders.open("a", encoding="utf-8") as fh:
        fh.write("4,2026-01-04,3,1.0\n")
    now = status(lab, capsys)
    naming = {sid for sid, s in now.items() if any("data/orders.csv" in r for r in s["reasons"])}
    assert naming == set(ids[:2])  # exactly the steps that read it
    assert now[ids[0]]["reasons"] == ["input data/orders.csv changed (inferred from C line 4)"]
    assert "input data/orders.csv changed (inferred from C line 3)" in now[ids[1]]["reasons"]
    assert now[ids[2]]["reasons"] == [f"upstream {ids[1]} will run"]  # its input is rewritten
    assert main([str(lab)]) == 0
    assert json.loads(summary.read_text(encoding="utf-8"))["revenue"]["count"] == 3.0
    capsys.readouterr()
    assert [s["state"] for s in status(lab, capsys).values()] == ["fresh"] * 3

    summary.unlink()
    now = status(lab, capsys)
    assert {sid: s["state"] for sid, s in now.items()} == dict(
        zip(ids, ["fresh", "fresh", "stale"], strict=True)
    )
    assert now[ids[2]]["reasons"] == ["output artifacts/dask_summary.json missing (inferred from C line 8)"]
    code, ran = main([str(lab), "--json"]), json.loads(capsys.readouterr().out)
    assert code == 0
    assert [(s["id"], s["status"]) for s in ran["steps"]] == list(
        zip(ids, ["fresh", "fresh", "ran"], strict=True)
    )
    assert summary.is_file()
    assert [s["state"] for s in status(lab, capsys).values()] == ["fresh"] * 3
