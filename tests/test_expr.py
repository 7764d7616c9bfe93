"""The expression language: parsing, printing (round-trip), evaluation, errors with offsets."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agilab_dsl.load import expr
from agilab_dsl.load.expr import And, Compare, ExprSyntaxError, ListLit, Literal, Not, Or, Ref

CTX = {
    "settings": {
        "args": {"n": 3, "mode": "fast", "data_in": "data/in"},
        "cluster": {"workers": {"127.0.0.1": 2}},
    },
    "params": {"x": 1.5, "names": ["a", "b"]},
    "env": {"HOME": "/home/me"},
    "steps": {"load": {"outputs": ["out/a.csv", "out/b.csv"]}},
}


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("settings.args.n == 3", True),
        ("settings.args.n > 3", False),
        ("settings.args.mode == 'fast' and params.x >= 1.5", True),
        ("not settings.args.n == 3 or params.x < 1", False),
        ("'a' in params.names", True),
        ("'z' not in params.names", True),
        ('settings.cluster.workers["127.0.0.1"] == 2', True),
        ("true and not false", True),
        ("null == null", True),
        ("settings.args.n in [1, 2, 3]", True),
        ("(settings.args.n == 3 or false) and (params.x != 0)", True),
    ],
)
def test_conditions_evaluate(text: str, value: bool) -> None:
    assert expr.evaluate(expr.parse_condition(text), CTX) is value


def test_precedence_not_binds_tighter_than_and_and_or() -> None:
    node = expr.parse_condition("not params.a or params.b and params.c")
    assert node == Or((Not(Ref("params", ("a",))), And((Ref("params", ("b",)), Ref("params", ("c",))))))


@pytest.mark.parametrize(
    ("text", "bits"),
    [
        ("dask | rapids | pool", 13),
        ("pool", 1),
        ("cython|dask", 6),
        ("4 | 8", 12),
        (13, 13),
        (0, 0),
        ("rapids", 8),
    ],
)
def test_mode_expressions(text: int | str, bits: int) -> None:
    assert expr.parse_mode(text) == bits


def test_mode_flags_decode() -> None:
    assert expr.mode_flags(13) == ("pool", "dask", "rapids")


@pytest.mark.parametrize(
    ("text", "offset", "hint"),
    [
        ("dask | rapid", 7, "did you mean 'rapids'?"),
        ("dask |", 6, None),
        ("16", 0, None),
    ],
)
def test_mode_errors_carry_offsets(text: str, offset: int, hint: str | None) -> None:
    with pytest.raises(ExprSyntaxError) as info:
        expr.parse_mode(text)
    assert info.value.offset == offset
    assert info.value.hint == hint


def test_mode_rejects_booleans_and_out_of_range_ints() -> None:
    with pytest.raises(ExprSyntaxError):
        expr.parse_mode(True)
    with pytest.raises(ExprSyntaxError):
        expr.parse_mode(16)


def test_template_holes_escapes_and_render() -> None:
    t = expr.parse_template("${settings.args.data_in}/x-${params.x}-$${literal}-${steps.load.outputs[1]}")
    assert [p for p in t.parts if isinstance(p, Ref)] == [
        Ref("settings", ("args", "data_in")),
        Ref("params", ("x",)),
        Ref("steps", ("load", "outputs", 1)),
    ]
    assert expr.render(t, CTX) == "data/in/x-1.5-${literal}-out/b.csv"
    assert expr.to_source(t) == "${settings.args.data_in}/x-${params.x}-$${literal}-${steps.load.outputs[1]}"


def test_plain_strings_are_one_part_and_dollars_survive() -> None:
    assert expr.parse_template("costs $5 and $$ more").parts == ("costs $5 and $ more",)  # $$ is one $
    assert expr.render(expr.parse_template("a $ b $"), CTX) == "a $ b $"


def test_template_reference_positions_point_into_the_string() -> None:
    text = "prefix ${ settings.args.n } suffix"
    (ref,) = [p for p in expr.parse_template(text).parts if isinstance(p, Ref)]
    assert text[ref.pos : ref.end] == "settings.args.n"


@pytest.mark.parametrize(
    ("text", "code", "offset"),
    [
        ("x ${settngs.args.n}", "reference-invalid", 4),
        ("x ${settings.args.n", "expression-syntax", 19),
        ("${steps.load.code}", "reference-invalid", 2),
        ("${params}", "reference-invalid", 2),
    ],
)
def test_template_errors(text: str, code: str, offset: int) -> None:
    with pytest.raises(ExprSyntaxError) as info:
        expr.parse_template(text)
    assert (info.value.code, info.value.offset) == (code, offset)


def test_unknown_root_suggests_the_right_one() -> None:
    with pytest.raises(ExprSyntaxError) as info:
        expr.parse_condition("setings.args.n == 1")
    assert info.value.hint == "did you mean 'settings'?"


def test_evaluation_errors_are_values_not_crashes() -> None:
    with pytest.raises(expr.EvalError, match=r"settings\.args\.nope is not defined"):
        expr.evaluate(expr.parse_condition("settings.args.nope == 1"), CTX)
    with pytest.raises(expr.EvalError, match="cannot compare"):
        expr.evaluate(expr.parse_condition("settings.args.mode > 1"), CTX)


@pytest.mark.parametrize(
    "attack",
    [
        "__import__('os').system('echo pwned')",
        "${__import__('os').system('id')}",
        "settings.__class__.__init__",
        "open('/etc/passwd').read()",
        "().__class__.__bases__[0]",
    ],
)
def test_injection_attempts_never_execute(attack: str) -> None:
    # Anything outside the small grammar is a syntax error; a dunder name is only ever a key looked up
    # in plain dicts (never getattr), so it is "not defined". Nothing reaches Python's eval.
    with pytest.raises((ExprSyntaxError, expr.EvalError)):
        if attack.startswith("${"):
            expr.parse_template(attack)
        else:
            expr.evaluate(expr.parse_condition(attack), CTX)


@pytest.mark.parametrize(
    ("text", "module", "function", "is_path"),
    [
        ("my_pipeline.process:process_file", "my_pipeline.process", "process_file", False),
        ("src/steps.py:run", "src/steps.py", "run", True),
        ("C:/work/x.py:f", "C:/work/x.py", "f", True),
    ],
)
def test_function_references(text: str, module: str, function: str, is_path: bool) -> None:
    ref = expr.parse_funcref(text)
    assert (ref.module, ref.function, ref.is_path) == (module, function, is_path)
    assert str(ref) == text


@pytest.mark.parametrize("text", ["nocolon", "mod:1f", "a b:c", "my-module:f", ":f"])
def test_bad_function_references(text: str) -> None:
    with pytest.raises(ExprSyntaxError) as info:
        expr.parse_funcref(text)
    assert info.value.code == "function-reference-invalid"


# ---- property tests: printing and parsing round-trip ------------------------------------------

names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,6}", fullmatch=True).filter(lambda s: s not in expr.KEYWORDS)
keys = st.one_of(names, st.text(min_size=1, max_size=6), st.integers(min_value=0, max_value=99))
literals = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**12), max_value=10**12),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
).map(Literal)
refs = st.builds(
    lambda root, path: Ref(root, tuple(path)),
    st.sampled_from(["settings", "params", "env"]),
    st.lists(keys, min_size=1, max_size=4),
) | st.builds(lambda sid, n: Ref("steps", (sid, "outputs", n)), names, st.integers(min_value=0, max_value=9))
operands = st.one_of(literals, refs, st.lists(literals, max_size=3).map(lambda xs: ListLit(tuple(xs))))


def _compare(children: st.SearchStrategy) -> st.SearchStrategy:
    return st.builds(
        Compare, st.sampled_from(["==", "!=", "<", "<=", ">", ">=", "in", "not in"]), children, children
    )


conditions = st.recursive(
    operands,
    lambda inner: st.one_of(
        _compare(inner),
        inner.map(Not),
        st.lists(inner, min_size=2, max_size=3).map(lambda xs: And(tuple(xs))),
        st.lists(inner, min_size=2, max_size=3).map(lambda xs: Or(tuple(xs))),
    ),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(conditions)
def test_print_then_parse_is_identity(node: expr.Node) -> None:
    text = expr.to_source(node)
    assert expr.parse_condition(text) == node
    assert expr.to_source(expr.parse_condition(text)) == text


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.text(max_size=8), refs), max_size=5))
def test_templates_round_trip(parts: list[str | Ref]) -> None:
    merged: list[str | Ref] = []
    for p in parts:
        if isinstance(p, str):
            if not p:
                continue
            if merged and isinstance(merged[-1], str):
                merged[-1] += p
                continue
        merged.append(p)
    template = expr.Template(tuple(merged))
    assert expr.parse_template(expr.to_source(template)) == template


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40))
def test_arbitrary_text_gives_a_node_or_a_syntax_error(text: str) -> None:
    try:
        expr.parse_condition(text)
    except ExprSyntaxError as exc:
        assert 0 <= exc.offset <= len(text)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.one_of(st.text(alphabet="ab$.{}[]0 ", max_size=6), refs), max_size=5))
def test_fast_template_path_agrees_with_the_grammar(parts: list[str | Ref]) -> None:
    text = "".join(p if isinstance(p, str) else "${" + expr.to_source(p) + "}" for p in parts)
    try:
        slow = expr.parse_template(text, fast=False)
    except ExprSyntaxError as exc:
        with pytest.raises(ExprSyntaxError) as info:
            expr.parse_template(text)
        assert (info.value.offset, info.value.code) == (exc.offset, exc.code)
        return
    fast = expr.parse_template(text)
    assert fast == slow
    assert [(r.pos, r.end) for r in expr.iter_refs(fast)] == [(r.pos, r.end) for r in expr.iter_refs(slow)]


def test_a_dollar_right_before_a_hole_round_trips() -> None:
    # found by Hypothesis: "$" + ${x} once printed as "$${x}", the escape for a literal "${"
    template = expr.Template(("$", Ref("settings", ("B",))))
    assert expr.to_source(template) == "$$${settings.B}"
    assert expr.parse_template("$$${settings.B}") == template
    assert expr.render(expr.parse_template("$${settings.B}"), CTX) == "${settings.B}"
