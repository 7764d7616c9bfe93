"""Changes in words: per leaf key, never a whole table; long values shortened with an ellipsis."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
from conftest import ROOT
from hypothesis import given, settings
from hypothesis import strategies as st

from agilab_dsl.cli import main
from agilab_dsl.plan.changes import (
    LIMIT,
    brief,
    brief_pair,
    change,
    key_changes,
    path_changes,
    settings_changes,
)

APPS = ROOT.parent / "shared" / "corpus" / "agilab-apps"
ARGS = {
    "ai_case_count": 2,
    "ai_topic": "AGILAB engineering diagnostics, cluster runs, pipeline DAGs, and evidence-backed fixes",
    "nfile": 1,
}


def test_a_nested_table_is_said_per_leaf_key() -> None:
    old = {"args": dict(ARGS), "cluster": {"workers": {"127.0.0.1": 2}}}
    new = {"args": {**ARGS, "ai_case_count": 3}, "cluster": {"workers": {"127.0.0.1": 4}}}
    assert key_changes(old, new, prefix="settings ", verb=" changed") == [
        "settings args.ai_case_count changed: 2 → 3",
        'settings cluster.workers["127.0.0.1"] changed: 2 → 4',
    ]


def test_added_and_removed_keys_deep_in_a_table() -> None:
    assert key_changes({"a": {"b": {"c": 1}}}, {"a": {"b": {"d": [1, 2]}}}) == [
        "a.b.c removed (was 1)",
        "a.b.d added: [1, 2]",
    ]


def test_a_table_that_became_a_value_is_one_change() -> None:
    assert key_changes({"a": {"b": 1}}, {"a": 5}) == ['a: {"b": 1} → 5']


def test_a_long_value_is_shortened_with_an_ellipsis() -> None:
    text = brief("x" * 500)
    assert len(text) == LIMIT and text.endswith("…") and text.startswith('"xxx')
    (line,) = key_changes({"topic": "a" * 200}, {"topic": "b" * 200})
    before, after = line.removeprefix("topic: ").split(" → ")
    assert len(before) == len(after) == LIMIT and before.endswith("…") and after.startswith('"bbb')
    (added,) = key_changes({}, {"topic": "c" * 200})
    assert added == f"topic added: {brief('c' * 200)}"


def test_two_long_values_differing_late_are_cut_around_the_difference() -> None:
    old, new = list(range(40)), [*range(39), 99]
    a, b = brief_pair(json.dumps(old), json.dumps(new))
    assert a != b and a.startswith("…") and a.endswith("39]") and b.endswith("99]")
    assert max(len(a), len(b)) <= LIMIT
    assert change(old, new) == f"{a} → {b}"


def test_short_values_are_kept_whole() -> None:
    assert brief_pair('"a"', '"b"') == ('"a"', '"b"')
    assert change({"n": 1}, {"n": 2}) == '{"n": 1} → {"n": 2}'


def test_settings_used_as_keys_tables_and_all_are_said_once() -> None:
    """``args.n`` from a reference, ``args`` from ``settings = ["args"]``, ``*`` from ``settings =
    "*"``: the same leaf is one line, rooted at the table."""
    old = {"args.n": 3, "args": {"n": 3, "m": 1}, "*": {"args": {"n": 3, "m": 1}, "other": {"z": 0}}}
    new = {"args.n": 4, "args": {"n": 4, "m": 1}, "*": {"args": {"n": 4, "m": 1}, "other": {"z": 1}}}
    assert settings_changes(old, new, prefix="settings ", verb=" changed") == [
        "settings args.n changed: 3 → 4",
        "settings other.z changed: 0 → 1",
    ]
    assert settings_changes(old, old) == []


def test_metrics_keep_their_delta() -> None:
    assert key_changes({"loss": 0.5}, {"loss": 0.25}, numbers=True) == ["loss: 0.5 → 0.25 (-0.25)"]


LAB = """[__meta__]
schema = "agilab.lab_stages.v1"
version = 1

[[demo]]
id = "whole"
C = "open(outputs[0], 'w').write(str(params['n']))"
params = { n = "${settings.args.n}" }
settings = ["args"]
produces = ["whole.txt"]

[[demo]]
id = "every"
C = "open(outputs[0], 'w').write('1')"
settings = "*"
produces = ["every.txt"]
"""


def _status(path: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, list[str]]:
    assert main(["status", str(path), "--json"]) == 0
    return {s["id"]: s["reasons"] for s in json.loads(capsys.readouterr().out)["steps"]}


def test_a_step_using_a_whole_table_names_the_key_that_changed(tmp_path: Path, capsys) -> None:
    topic = "x" * 300
    (tmp_path / "app_settings.toml").write_text(f'[args]\nn = 3\ntopic = "{topic}"\n', encoding="utf-8")
    lab = tmp_path / "lab_stages.toml"
    lab.write_text(LAB, encoding="utf-8")
    assert main([str(lab)]) == 0
    capsys.readouterr()
    (tmp_path / "app_settings.toml").write_text(f'[args]\nn = 4\ntopic = "{topic}y"\n', encoding="utf-8")
    reasons = _status(lab, capsys)
    expected_topic = f"settings args.topic changed: {change(topic, topic + 'y')}"
    assert reasons["whole"] == ["param n changed: 3 → 4", "settings args.n changed: 3 → 4", expected_topic]
    assert reasons["every"] == ["settings args.n changed: 3 → 4", expected_topic, "upstream whole will run"]
    assert all(len(r) < 2 * LIMIT + 40 for r in reasons["whole"] + reasons["every"])


@pytest.mark.skipif(
    not (APPS / "tescia_diagnostic_project").is_dir(),
    reason=f"AGILAB apps folder {APPS} is absent (it lives in ../shared beside the repo)",
)
@pytest.mark.skipif(
    not (Path(sys.prefix) / "bin" / "python").is_file(),
    reason="the tests' interpreter is not in a virtual environment an E can point at",
)
def test_tescia_ai_case_count_edit_names_its_key(tmp_path: Path, capsys) -> None:
    """The issue's case: an agi.run stage depends on ``[args]`` and ``[cluster]`` whole; editing
    ``args.ai_case_count`` printed both 19-key tables (~1,000 characters). The first stage's code
    is replaced by one that needs no app environment (the settings, not the code, are at stake)."""
    project = tmp_path / "tescia_diagnostic_project"
    shutil.copytree(APPS / "tescia_diagnostic_project", project)
    lab = project / "lab_stages.toml"
    text = lab.read_text(encoding="utf-8")
    start = text.index("C = '''")
    end = text.index("'''\n", start + 7) + 4
    code = (
        "C = '''\nfrom pathlib import Path\n"
        "Path('tescia_diagnostic_workflow').mkdir(exist_ok=True)\n"
        "Path('tescia_diagnostic_workflow/validated_cases.json').write_text('{}')\n'''\n"
        f"E = {json.dumps(sys.prefix)}\n"
    )
    lab.write_text(text[:start] + code + text[end:], encoding="utf-8")
    assert main([str(lab), "--only", "load_exercise_cases"]) == 0
    settings = project / "src" / "app_settings.toml"
    settings.write_text(
        settings.read_text(encoding="utf-8").replace("ai_case_count = 2", "ai_case_count = 3"),
        encoding="utf-8",
    )
    capsys.readouterr()
    assert _status(lab, capsys)["load_exercise_cases"] == ["settings args.ai_case_count changed: 2 → 3"]


def test_history_comparison_names_the_settings_key(tmp_path: Path, capsys) -> None:
    (tmp_path / "app_settings.toml").write_text("[args]\nn = 3\nm = 1\n", encoding="utf-8")
    lab = tmp_path / "lab_stages.toml"
    lab.write_text(LAB, encoding="utf-8")
    assert main([str(lab)]) == 0
    (tmp_path / "app_settings.toml").write_text("[args]\nn = 4\nm = 1\n", encoding="utf-8")
    assert main([str(lab)]) == 0
    capsys.readouterr()
    assert main(["history", str(lab), "--json"]) == 0
    new, old = (r["run_id"] for r in json.loads(capsys.readouterr().out))
    assert main(["history", str(lab), "--compare", old, new, "--json"]) == 0
    steps = {s["step_id"]: s for s in json.loads(capsys.readouterr().out)["steps"]}
    assert steps["whole"]["settings"] == ["args.n: 3 → 4"]
    assert steps["every"]["settings"] == ["args.n: 3 → 4"]


def _every_key_changes(old: dict, new: dict, missing: object = None) -> list[tuple[str, str]]:
    """What path_changes says, worked out over every key (the reference)."""
    absent = object()
    said = []
    for path in sorted(old.keys() | new.keys()):
        before, after = old.get(path, absent), new.get(path, absent)
        kind = (
            "added"
            if before is absent
            else "removed"
            if after is absent
            else "missing"
            if missing is not None and after == missing
            else "changed"
            if before != after
            else None
        )
        if kind is not None:
            said.append((path, kind))
    return said


_HASHES = st.dictionaries(
    st.sampled_from("abcdefgh"),
    st.one_of(st.sampled_from(["h1", "h2", "missing"]), st.lists(st.integers(), max_size=2)),
    max_size=6,
)


@given(_HASHES, _HASHES, st.sampled_from([None, "missing"]))
@settings(max_examples=300, deadline=None)
def test_path_changes_found_by_set_operations_are_a_loop_over_every_key(
    old: dict, new: dict, missing: str | None
) -> None:
    assert path_changes(old, new, missing=missing) == _every_key_changes(old, new, missing)


_UPSTREAM = st.dictionaries(st.sampled_from("abcdef"), st.sampled_from(["f1", "f2", "f3"]), max_size=5)


@given(_UPSTREAM, _UPSTREAM, st.dictionaries(st.sampled_from("abcdefg"), st.booleans(), max_size=4))
@settings(max_examples=300, deadline=None)
def test_a_steps_upstream_reasons_are_said_per_upstream_step_in_order(
    old: dict[str, str], new: dict[str, str], will_run: dict[str, bool]
) -> None:
    from agilab_dsl.plan.fingerprint import FileHashes
    from agilab_dsl.plan.stale import reasons
    from agilab_dsl.plan.state import StepRecord

    comps = {"code": "c", "params": {}, "settings": {}, "inputs": {}, "outputs": [], "upstream": new}
    record = StepRecord("fp", {**comps, "upstream": old}, {}, 0.0, 0.0, "run")
    expected = []
    for sid in sorted(set(old) | set(new)):  # the rule, over every upstream step
        if will_run.get(sid):
            expected.append(f"upstream {sid} ran")
        elif old.get(sid) != new.get(sid):
            verb = "changed" if sid in old and sid in new else ("added" if sid in new else "removed")
            expected.append(f"upstream {sid} {verb}")
    said = reasons(record, comps, Path("."), FileHashes(), will_run, "fp")
    assert [r for r in said if r.startswith("upstream ")] == expected
