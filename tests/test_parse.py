"""Loaders: every real AGILAB file loads; dialects, aliases, order, positions; no foreign exception escapes."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from conftest import CONFORMANCE, corpus_files, needs_corpus
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agilab_dsl.check.files import check_file, load
from agilab_dsl.load.any import load_any
from agilab_dsl.load.errors import CODES, LoadError
from agilab_dsl.load.source import SourceMap


@needs_corpus
@pytest.mark.parametrize("path", corpus_files(), ids=lambda p: p.name[-60:])
def test_every_corpus_file_loads_with_errors_only_where_agilab_finds_them(path: Path) -> None:
    """Every file loads (a model, or a partial lab). The one error allowed is AGILAB's own
    stage-code-syntax: a real legacy lab holds prose where code belongs, and AGILAB fails it too."""
    result, _settings = check_file(path)
    assert result.kind is not None
    errors = [d for d in result.diagnostics if d.is_error]
    assert {d.code for d in errors} <= {"stage-code-syntax"}, errors
    assert result.value is not None if not errors else result.partial is not None
    if errors:
        assert "tescia_diagnostic_project__lab_steps" in path.name  # AGILAB: stage-code-syntax x3
        assert len(errors) == 3 and all(d.line and d.column for d in errors)


@needs_corpus
def test_corpus_kinds_and_legacy_warnings() -> None:
    kinds = {p.name: load_any(p).kind for p in corpus_files()}
    assert {k for n, k in kinds.items() if "app_settings" in n} == {"settings"}
    assert {k for n, k in kinds.items() if "lab_st" in n} == {"lab"}
    assert {k for n, k in kinds.items() if "parallel_stage" in n} == {"contract"}
    legacy = [p for p in corpus_files() if "[[steps]]" in p.read_text(encoding="utf-8")]
    assert legacy, "the corpus is expected to hold legacy [[steps]] files"
    for p in legacy:
        codes = [d.code for d in load_any(p).diagnostics]
        assert "legacy-dialect" in codes


@needs_corpus
def test_corpus_lab_with_ids_deps_and_artifacts() -> None:
    (path,) = [p for p in corpus_files() if "tescia_diagnostic_project__lab_stages" in p.name]
    lab = load(path, "lab")
    assert lab.module_keys == ("tescia_diagnostic",)
    assert lab.ids == ("load_exercise_cases", "evaluate_answer", "export_classroom_feedback")
    second = lab.stage("evaluate_answer").stage
    assert second.deps == ("load_exercise_cases",)
    assert second.engine == "agi.run"
    assert second.consumes == ("tescia_diagnostic_workflow/validated_cases.json",)
    assert lab.meta.schema_ == "agilab.lab_stages.v1"
    assert lab.position("tescia_diagnostic", 1, "depends_on") == (56, 1)


@needs_corpus
def test_corpus_notebook_keys_are_preserved() -> None:
    (path,) = [p for p in corpus_files() if "notebook_to_dask__lab_stages" in p.name]
    lab = load(path, "lab")
    first = lab.stages[0].stage
    assert first.notebook["NB_CELL_ID"] == "cell-2"
    assert first.notebook["NB_CONTEXT_IDS"] == ["markdown-1"]
    assert lab.stages[0].id == "notebook_to_dask_project_001"


def test_default_ids_sequence_order_and_automation() -> None:
    lab = load(CONFORMANCE / "valid" / "inline_module.lab_stages.toml", "lab")
    # __sequence = [1, 0]: the saved order runs the second stage first
    assert [s.id for s in lab.stages] == ["flight_002", "flight_001"]
    assert [s.index for s in lab.stages] == [1, 0]
    assert lab.meta.automation["flight"].max_workers == 4
    assert lab.meta.sequences == {"flight": (1, 0)}


def test_long_aliases_and_preserved_keys() -> None:
    lab = load(CONFORMANCE / "valid" / "table_array.lab_steps.toml", "lab")
    load_stage, clean, disabled = (s.stage for s in lab.stages)
    assert load_stage.description == "Load the raw telemetry" and load_stage.engine == "runpy"
    assert load_stage.produces == ("work/raw.txt",) and load_stage.template_version == 2
    assert clean.deps == ("load",) and clean.consumes == ("work/raw.txt",)
    assert clean.profiles == {"fast": {"params": {"n": 1}}}
    assert clean.automation.parallel_safe is True and clean.automation.skip_if_outputs_exist is False
    assert disabled.disabled and not clean.disabled
    assert lab.ids == ("load", "clean", "disabled")


def test_extensions_are_typed() -> None:
    lab = load(CONFORMANCE / "valid" / "extensions.lab_stages.toml", "lab")
    prepare, summarize, fan_out = (s.stage for s in lab.stages)
    assert prepare.settings == ("args.data_in", "cluster.workers") and prepare.mode == 0
    assert summarize.mode == "dask | rapids | pool" and summarize.retries == 2 and summarize.timeout == 30.5
    assert summarize.function == "helpers.py:summarize"
    assert fan_out.stage == "parallel_stage.toml" and fan_out.settings == "*" and fan_out.fallback == "cpu"


def test_models_are_frozen() -> None:
    lab = load(CONFORMANCE / "valid" / "extensions.lab_stages.toml", "lab")
    with pytest.raises(Exception, match="frozen"):
        lab.stages[0].stage.code = "x"  # type: ignore[misc]


def test_load_raises_load_error_with_every_diagnostic() -> None:
    with pytest.raises(LoadError) as info:
        load(CONFORMANCE / "invalid" / "many_problems_at_once.lab_steps.toml")
    assert len(info.value.diagnostics) == 6
    assert "many_problems_at_once.lab_steps.toml:8:11" in str(info.value)


def test_source_map_locates_keys_in_inline_and_table_arrays() -> None:
    text = 'a = [\n  { C = "x", deps = ["p", "q"] },\n]\n\n[[b]]\nid = "z"  # c\n\n[[b]]\nid = "w"\n[b.sub]\nk = 1\n'
    sm = SourceMap(text)
    assert sm.key_position(("a", 0, "deps")) == (2, 14)
    assert sm.value_position(("a", 0, "deps", 1)) == (2, 27)
    assert sm.key_position(("b", 1, "id")) == (9, 1)
    assert sm.key_position(("b", 1, "sub", "k")) == (11, 1)


def test_source_map_maps_escaped_and_multiline_strings() -> None:
    text = 'x = "a\\tb${here}"\ny = """\nline1\n  ${there}"""\n'
    sm = SourceMap(text)
    decoded_x = "a\tb${here}"
    assert sm.line_col(sm.string_offset(("x",), decoded_x.index("$"))) == (1, 10)
    decoded_y = "line1\n  ${there}"
    assert sm.line_col(sm.string_offset(("y",), decoded_y.index("$"))) == (4, 3)


# ---- robustness: arbitrary mutations of real and conformance files ------------------------------


def _seed_files() -> list[Path]:
    files = corpus_files() + sorted((CONFORMANCE / "valid").glob("*.toml"))
    return [p for p in files if p.stat().st_size < 20_000]


SEEDS = [p.read_bytes() for p in _seed_files()]


def _mutate(data: bytes, rng: random.Random) -> bytes:
    ops = rng.randrange(6)
    b = bytearray(data)
    if ops == 0 and b:  # flip bytes
        for _ in range(rng.randint(1, 4)):
            b[rng.randrange(len(b))] = rng.randrange(256)
    elif ops == 1:  # truncate
        b = b[: rng.randrange(len(b) + 1)]
    elif ops == 2 and b:  # delete a slice
        i = rng.randrange(len(b))
        del b[i : i + rng.randint(1, 40)]
    elif ops == 3:  # duplicate a line
        lines = bytes(b).split(b"\n")
        i = rng.randrange(len(lines))
        lines.insert(i, lines[i])
        b = bytearray(b"\n".join(lines))
    elif ops == 4:  # swap a value's type
        text = bytes(b).decode("utf-8", "replace")
        for old, new in (('"', "'"), ("true", '"true"'), ("[", "{"), ("=", "=="), ("1", "true")):
            if old in text:
                text = text.replace(old, new, 1)
                break
        b = bytearray(text.encode())
    else:  # rename a key
        text = bytes(b).decode("utf-8", "replace")
        for old, new in (("C =", "Cc ="), ("depends_on", "depend_on"), ("schema", "shema"), ("id =", "ID =")):
            if old in text:
                text = text.replace(old, new, 1)
                break
        b = bytearray(text.encode())
    return bytes(b)


@pytest.mark.skipif(not SEEDS, reason="no seed files")
@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(min_value=0, max_value=len(SEEDS) - 1 if SEEDS else 0), st.randoms(use_true_random=False))
def test_mutated_files_give_diagnostics_never_tracebacks(
    tmp_path_factory, index: int, rng: random.Random
) -> None:
    data = SEEDS[index]
    for _ in range(rng.randint(1, 3)):
        data = _mutate(data, rng)
    folder = tmp_path_factory.mktemp("mut")
    path = folder / ("lab_steps.toml" if index % 2 else "mutated.toml")
    path.write_bytes(data)
    result, _ = check_file(path)  # must not raise
    for d in result.diagnostics:
        assert d.code in CODES
        if d.code != "file-kind-unknown":
            assert d.line is not None and d.column is not None, d
    try:
        load(path)
    except LoadError as exc:
        assert exc.diagnostics


def test_selected_profile_is_deep_merged(tmp_path: Path) -> None:
    path = tmp_path / "lab_steps.toml"
    path.write_text(
        '[[m]]\nid = "train"\nC = "fit()"\nbackend = "local"\n'
        'params = { epochs = 10, lr = 0.1, opt = { name = "adam", beta = 0.9 } }\n'
        'profiles = { fast = { params = { epochs = 1, opt = { beta = 0.5 } }, backend = "pool" } }\n\n'
        '[[m]]\nid = "other"\nC = "x"\n',
        encoding="utf-8",
    )
    plain = load(path).stages[0].stage
    assert plain.params["epochs"] == 10 and plain.backend == "local"
    fast = load(path, profile="fast")
    train = fast.stages[0].stage
    assert train.backend == "pool"
    assert train.params == {"epochs": 1, "lr": 0.1, "opt": {"name": "adam", "beta": 0.5}}
    assert fast.stages[1].stage.params == {}  # stages without the profile are untouched


def test_stages_sharing_one_code_text_are_each_reported_at_their_own_place(tmp_path: Path) -> None:
    """A code text is parsed once however many stages hold it (check/code.py): each stage still
    gets its own syntax error or risky-call warning, at its own line."""
    stage = '[[s]]\nid = "{id}"\nC = "{code}"\n\n'
    bad, risky = "x = (", "import os; os.system(1)"
    text = "".join(
        stage.format(id=sid, code=code)
        for sid, code in (("a", bad), ("b", risky), ("c", bad), ("d", risky), ("e", "y = 1"))
    )
    lab = tmp_path / "lab_stages.toml"
    lab.write_text(text, encoding="utf-8")
    result, _ = check_file(lab)
    found = sorted((d.code, d.line, d.message.split(":")[0]) for d in result.diagnostics)
    assert found == [
        ("risky-call", 7, "stage 'b' calls os.system"),
        ("risky-call", 15, "stage 'd' calls os.system"),
        ("stage-code-syntax", 3, "stage 'a'"),
        ("stage-code-syntax", 11, "stage 'c'"),
    ]


_MALFORMED = [
    "a = [1,\n",
    "a = 1\na = 2\n",
    "[t]\nx = 1\n[t]\n",
    'a = "unterminated\n',
    "a = {b = 1,}\n",
    "= 1\n",
    "a = 1 b = 2\n",
    "[[s]]\nid = 'x'\n[s]\n",
    "a = 1979-05-27T07:32\n",
    "a = 0x\n",
]
# TOML 1.1 only: newlines in inline tables, \e and \x escapes, seconds-less times. AGILAB reads its
# files with tomllib (TOML 1.0 on Python 3.11-3.14), so the lab parser must refuse them too.
_TOML_1_1 = ["a = {\n  b = 1,\n}\n", 'a = "\\e"\n', 'a = "\\x41"\n', "a = 07:32\n"]


@pytest.mark.parametrize("text", _MALFORMED + _TOML_1_1)
def test_the_lab_parser_refuses_what_tomllib_refuses_with_the_same_words(text: str) -> None:
    """read_toml parses with tomli where its compiled wheel is installed (tomllib's parser, ~3x
    faster on a big lab): the same grammar (TOML 1.0, tomli < 2.4) and the same messages."""
    import tomllib

    from agilab_dsl.load import parse

    with pytest.raises(tomllib.TOMLDecodeError) as expected:
        tomllib.loads(text)
    with pytest.raises(parse.TOMLDecodeError) as got:
        parse.toml_loads(text)
    assert str(got.value) == str(expected.value)
    data, _source, loc = parse.read_toml("lab.toml", text)
    assert data is None and [d.code for d in loc.diagnostics] == ["toml-syntax"]


def test_the_lab_parser_is_tomli_where_installed() -> None:
    tomli = pytest.importorskip("tomli", reason="tomli not installed: labs are parsed with tomllib")
    from importlib.metadata import version

    from agilab_dsl.load import parse

    assert parse.toml_loads is tomli.loads
    major, minor = (int(p) for p in version("tomli").split(".")[:2])
    assert (major, minor) < (2, 4), "tomli 2.4 reads TOML 1.1, which AGILAB's tomllib refuses"
