"""StepGraph: named shapes, waves, filters, cycles, sequence fallback."""

from __future__ import annotations

from pathlib import Path

import pytest

from agilab_dsl.check.files import load
from agilab_dsl.plan.graph import StepGraph


def lab_of(tmp_path: Path, body: str) -> StepGraph:
    path = tmp_path / "lab_steps.toml"
    path.write_text('[__meta__]\nschema = "agilab.lab_stages.v1"\nversion = 1\n\n' + body, encoding="utf-8")
    return StepGraph.from_lab(load(path, "lab"))


def stages(*specs: tuple[str, list[str]]) -> str:
    out = ""
    for sid, deps in specs:
        out += f'[[m]]\nid = "{sid}"\nC = "pass"\ndeps = {deps!r}\n\n'.replace("'", '"')
    return out


def test_chain(tmp_path: Path) -> None:
    g = lab_of(tmp_path, stages(("a", []), ("b", ["a"]), ("c", ["b"])))
    assert g.waves() == [("a",), ("b",), ("c",)]
    assert g.descendants("a") == {"b", "c"} and g.ancestors("c") == {"a", "b"}


def test_fan_out_fan_in(tmp_path: Path) -> None:
    g = lab_of(
        tmp_path,
        stages(("src", []), ("x", ["src"]), ("y", ["src"]), ("z", ["src"]), ("sink", ["x", "y", "z"])),
    )
    assert g.waves() == [("src",), ("x", "y", "z"), ("sink",)]
    assert g.upstream("sink") == {"x", "y", "z"}


def test_diamond(tmp_path: Path) -> None:
    g = lab_of(tmp_path, stages(("a", []), ("b", ["a"]), ("c", ["a"]), ("d", ["b", "c"])))
    assert g.waves() == [("a",), ("b", "c"), ("d",)]
    assert g.from_step("b").ids == ("b", "d")
    assert g.downstream_of("a").ids == ("b", "c", "d")


def test_independent_branches(tmp_path: Path) -> None:
    g = lab_of(tmp_path, stages(("a1", []), ("b1", []), ("a2", ["a1"]), ("b2", ["b1"])))
    assert g.waves() == [("a1", "b1"), ("a2", "b2")]
    assert g.from_step("a1").ids == ("a1", "a2")


def test_filters_return_new_graphs_and_keep_edges_inside(tmp_path: Path) -> None:
    g = lab_of(tmp_path, stages(("a", []), ("b", ["a"]), ("c", ["b"])))
    only = g.only("a", "c")
    assert only.ids == ("a", "c") and only.edges == ()
    assert g.ids == ("a", "b", "c")  # unchanged
    with pytest.raises(KeyError):
        g.only("nope")


def test_no_deps_at_all_runs_in_sequence_order(tmp_path: Path) -> None:
    body = '[[m]]\nC = "1"\n\n[[m]]\nC = "2"\n\n[[m]]\nC = "3"\n'
    path = tmp_path / "lab_steps.toml"
    path.write_text(
        '[__meta__]\nschema = "agilab.lab_stages.v1"\nm__sequence = [2, 0, 1]\n\n' + body, encoding="utf-8"
    )
    g = StepGraph.from_lab(load(path, "lab"))
    assert g.order() == ("m_003", "m_001", "m_002")
    assert {e.kind for e in g.edges} == {"sequence"}


def test_artifacts_and_step_references_make_edges(tmp_path: Path) -> None:
    body = (
        '[[m]]\nid = "make"\nC = "1"\nproduces = ["out/a.csv"]\n\n'
        '[[m]]\nid = "use"\nC = "2"\nconsumes = ["./out/a.csv"]\n\n'
        '[[m]]\nid = "ref"\nC = "3"\nparams = { p = "${steps.use.outputs[0]}" }\nproduces = ["x"]\n\n'
        '[[m]]\nid = "tail"\nC = "4"\nparams = { p = "${steps.ref.outputs[0]}" }\n'
    )
    path = tmp_path / "lab_steps.toml"
    path.write_text(body, encoding="utf-8")
    from agilab_dsl.check.files import check_file

    result, _ = check_file(path)
    codes = [d.code for d in result.diagnostics]
    assert "reference-invalid" in codes  # 'use' declares no outputs
    body = body.replace('consumes = ["./out/a.csv"]', 'consumes = ["./out/a.csv"]\nproduces = ["u"]')
    path.write_text(body, encoding="utf-8")
    result, _ = check_file(path)
    assert result.ok, result.diagnostics
    from agilab_dsl.check.rules import check_lab

    g = check_lab(result, None)
    assert g is not None
    kinds = {(e.upstream, e.downstream): e.kind for e in g.edges}
    assert kinds == {("make", "use"): "artifact", ("use", "ref"): "reference", ("ref", "tail"): "reference"}


def test_cycle_is_reported_with_its_path(tmp_path: Path) -> None:
    path = tmp_path / "lab_steps.toml"
    path.write_text(stages(("a", ["c"]), ("b", ["a"]), ("c", ["b"])), encoding="utf-8")
    from agilab_dsl.check.files import check_file

    result, _ = check_file(path)
    (cycle,) = [d for d in result.diagnostics if d.code == "dependency-cycle"]
    assert cycle.message == "dependency cycle: a → b → c → a"
    assert (cycle.line, cycle.column) == (4, 1)
