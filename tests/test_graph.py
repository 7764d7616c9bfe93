"""StepGraph: named shapes, waves, filters, cycles, sequence fallback."""

from __future__ import annotations

import contextlib
import graphlib
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agilab_dsl.check.files import load
from agilab_dsl.plan.graph import Edge, StepGraph


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


@settings(max_examples=150, deadline=None)
@given(
    st.integers(0, 25), st.lists(st.tuples(st.integers(0, 24), st.integers(0, 24)), max_size=60), st.randoms()
)
def test_waves_are_graphlibs_generations_in_lab_order(
    n: int, pairs: list[tuple[int, int]], rnd: random.Random
) -> None:
    ids = [f"s{i}" for i in range(n)]
    edges = tuple(Edge(ids[a], ids[b], "deps") for a, b in pairs if a < b < n)  # acyclic: low to high
    rnd.shuffle(ids)  # lab order is not the topological one
    graph = StepGraph(tuple(ids), edges)
    rank = {sid: k for k, sid in enumerate(ids)}
    sorter = graphlib.TopologicalSorter({i: graph.upstream(i) for i in ids})
    sorter.prepare()
    expected = []
    while sorter.is_active():
        ready = tuple(sorted(sorter.get_ready(), key=rank.__getitem__))
        expected.append(ready)
        sorter.done(*ready)
    assert graph.waves() == expected


@settings(max_examples=150, deadline=None)
@given(st.integers(0, 20), st.lists(st.tuples(st.integers(0, 24), st.integers(0, 24)), max_size=60))
def test_links_and_the_stored_order_survive_json(n: int, pairs: list[tuple[int, int]]) -> None:
    import json

    ids = [f"s{i}" for i in range(n)]
    # acyclic, some edges naming steps that are not in the graph (ignored), some repeated
    edges = tuple(Edge(f"s{a}", f"s{b}", "deps") for a, b in pairs if a < b)
    graph = StepGraph(tuple(ids), edges)
    inside = [e for e in edges if e.upstream in ids and e.downstream in ids]
    for sid in ids:  # as a set per step would give
        assert graph.upstream(sid) == {e.upstream for e in inside if e.downstream == sid}
        assert graph.downstream(sid) == {e.downstream for e in inside if e.upstream == sid}
    again = StepGraph.from_json(json.loads(json.dumps(graph.to_json())))
    assert again == graph and again.order() == graph.order()
    assert all(
        again.upstream(i) == graph.upstream(i) and again.downstream(i) == graph.downstream(i) for i in ids
    )
    if ids:
        other = {**graph.to_json(), "order": [*graph.order()[1:], "elsewhere"]}
        with pytest.raises(ValueError, match="stored order"):
            StepGraph.from_json(other)


def test_waves_of_a_cycle_raise_as_graphlib_does() -> None:
    graph = StepGraph(("a", "b"), (Edge("a", "b", "deps"), Edge("b", "a", "deps")))
    with pytest.raises(graphlib.CycleError):
        graph.waves()


_PART = st.sampled_from(["out", "link", "dead", "loop", "missing", ".", "", "..", "f.txt", "up"])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(_PART, max_size=5), min_size=1, max_size=4))
def test_an_outputs_real_path_below_the_lab_is_realpaths(
    tmp_path_factory: pytest.TempPathFactory, paths: list[list[str]]
) -> None:
    """output_problem resolves an output from the lab's real folder down (``_real_below``): the same
    path ``os.path.realpath`` gives for the whole, through symlinks, dead links, loops and ``..``;
    also when what the folders above earlier paths were is kept (``seen``, the lab check's memo)."""
    import os

    from agilab_dsl.plan.graph import _real_below

    root = tmp_path_factory.mktemp("lab").resolve()
    (root / "out").mkdir()
    (root / "out" / "f.txt").write_text("x")
    (root / "link").symlink_to(root / "out")
    (root / "out" / "link").symlink_to("../out")
    (root / "dead").symlink_to(root / "nowhere")
    (root / "loop").symlink_to(root / "loop")
    (root / "up").symlink_to(root.parent)
    seen: dict[str, Any] = {}
    listed: dict[str, Any] = {}  # each folder's listing read from its first output on
    for parts in paths:
        path = "/".join(parts)
        expected = os.path.realpath(os.path.join(root, path))
        assert _real_below(str(root), path) == expected
        assert _real_below(str(root), path, seen) == expected
        with _list_after(1):
            assert _real_below(str(root), path, listed) == expected


@contextlib.contextmanager
def _list_after(n: int) -> Iterator[None]:
    from agilab_dsl.plan import graph

    before, graph.LIST_AFTER = graph.LIST_AFTER, n
    try:
        yield
    finally:
        graph.LIST_AFTER = before


def test_a_symlinked_output_among_many_in_one_folder_is_found(tmp_path: Path) -> None:
    """Past LIST_AFTER outputs in one folder, the lab check reads the folder's listing instead of
    an lstat per output: a symlink leading out of the lab, among 200 outputs, is still refused."""
    from agilab_dsl.plan.graph import LIST_AFTER, OutputRules

    lab = tmp_path / "lab"
    (lab / "out").mkdir(parents=True)
    outside = tmp_path / "elsewhere.txt"
    outside.write_text("x")
    for n in range(0, 200, 2):
        (lab / "out" / f"{n:03d}.txt").write_text("x")  # half the outputs exist
    (lab / "out" / "151.txt").symlink_to(outside)
    (lab / "out" / "161.txt").symlink_to(lab / "out" / "000.txt")  # a link inside: allowed
    rules = OutputRules(str(lab), folders={})
    found = {n: rules.problem(f"out/{n:03d}.txt", allow_outside=False) for n in range(200)}
    assert LIST_AFTER < 151  # the link is judged from the listing
    assert found.pop(151) == ("output-outside-lab", f" through a symlink (it leads to {outside})")
    assert set(found.values()) == {None}
    assert OutputRules(str(lab)).problem("out/151.txt", allow_outside=True) is None


@settings(max_examples=2000, deadline=None)
@given(
    st.text(alphabet="a./\\", max_size=8)
    | st.lists(st.sampled_from(["a", ".", "..", "", "b.c"])).map("/".join)
)
def test_an_artifact_path_is_spelt_as_normpath_spells_it(path: str) -> None:
    """normalize_artifact returns a path already in normpath's spelling as it is (without calling
    normpath): the answer is normpath's for every path."""
    import posixpath

    from agilab_dsl.plan.graph import normalize_artifact

    assert normalize_artifact(path) == posixpath.normpath(path.replace("\\", "/"))
