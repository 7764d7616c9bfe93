"""AGILAB parity in labs (issue 14): every key AGILAB writes is accepted and kept, `automation` and
profiles are honoured as AGILAB's runner reads them, `__sequence` is the saved selection, and a lab
is checked whole (its contracts and function modules) before anything runs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from agilab_dsl.check.files import check_file, load
from agilab_dsl.cli import main

META = '[__meta__]\nschema = "agilab.lab_stages.v1"\nversion = 1\n'

# a stage as AGILAB's WORKFLOW editor, its notebook import and hand edits write it
EDITOR_STAGE = """
[[flight]]
id = "clean"
D = "Clean the telemetry"
Q = "Drop the empty rows"
M = "deterministic"
C = "open(outputs[0], 'w').write(open(inputs[0]).read())"
R = "runpy"
generation_mode = "safe_actions"
action_contract = { schema_version = 1, kind = "agilab.generated_dataframe_actions", actions = [], notes = "" }
action_contract_sha256 = "0f3c"
dataframe_schema_sha256 = "9a1b"
safe_action_pinned = true
uses = ["raw/a.csv"]
input_paths = ["raw/b.csv"]
output_paths = ["work/clean.csv"]
APP = "flight_project"
label = "Clean"
kind = "python"
runtime_role = "manager"
NB_RUNTIME_ROLE = "manager"
_orchestrate_locked_stage = false
_orchestrate_snippet_source = ""
pipeline_profiles = { smoke = { D = "smoke run" } }
template_id = "cleaner"
template_version = 2
validation_status = "ok"
skip_if_outputs_current = false
parallel_safe = false
enabled = true
skip = false
"""


# a parallel contract with every key but `reducer`
NO_REDUCER = (
    'schema = "agilab.parallel_stage.v1"\nname = "stats"\nfunction = "funcs.py:stats"\nsplit = "files"\n'
    'input = "data/*.csv"\nworkers = 2\npartition_strategy = "one-file-per-partition"\n'
    'target_partitions = 0\nmin_partitions_per_worker = 1\nbackend = "pool"\noutput = "out/s.jsonl"\n'
)


def write(folder: Path, body: str, name: str = "lab_stages.toml") -> Path:
    path = folder / name
    path.write_text(body, encoding="utf-8")
    return path


def run(path: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, dict[str, tuple]]:
    code = main([str(path), "--json", *extra])
    out = capsys.readouterr().out
    steps = json.loads(out)["steps"] if out.strip() else []
    return code, {s["id"]: (s["status"], s["reasons"]) for s in steps}


def states(path: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> dict[str, tuple]:
    assert main(["status", str(path), "--json", *extra]) == 0
    return {s["id"]: (s["state"], s["reasons"]) for s in json.loads(capsys.readouterr().out)["steps"]}


def test_every_key_the_editor_writes_is_accepted_and_modelled(tmp_path: Path) -> None:
    path = write(tmp_path, META + EDITOR_STAGE)
    result, _ = check_file(path)
    assert [d for d in result.diagnostics if d.severity == "error" or d.code == "unknown-key"] == []
    stage = result.value.stages[0].stage
    assert stage.consumes == ("raw/a.csv", "raw/b.csv")  # uses + input_paths
    assert stage.produces == ("work/clean.csv",)  # output_paths
    assert stage.app == "flight_project" and stage.runtime_role == "manager"
    assert stage.generation_mode == "safe_actions" and stage.safe_action_pinned is True
    assert stage.action_contract["kind"] == "agilab.generated_dataframe_actions"
    assert stage.profiles == {"smoke": {"D": "smoke run"}}  # pipeline_profiles
    assert stage.notebook == {"NB_RUNTIME_ROLE": "manager"}
    assert stage.automation.skip_if_outputs_exist is False and stage.off is None


def test_an_unknown_key_is_a_warning_with_a_suggestion_and_the_lab_runs(tmp_path: Path, capsys) -> None:
    path = write(tmp_path, META + '[[m]]\nid = "a"\nC = "x = 1"\ndependson = []\n')
    result, _ = check_file(path)
    (unknown,) = [d for d in result.diagnostics if d.code == "unknown-key"]
    assert unknown.severity == "warning" and (unknown.line, unknown.column) == (7, 1)
    assert "depends_on" in (unknown.hint or "")
    assert result.ok
    code, got = run(path, capsys)
    assert code == 0 and got == {"a": ("ran", ["never ran"])}


@pytest.mark.parametrize(
    ("switch", "reason"),
    [
        ("enabled = false", "enabled = false"),
        ("skip = true", "skip = true"),
        ("automation = { enabled = false }", "automation.enabled = false"),
        ("automation = { skip = true }", "automation.skip = true"),
    ],
)
def test_disabled_stages_say_which_switch(tmp_path: Path, capsys, switch: str, reason: str) -> None:
    path = write(
        tmp_path,
        META + f'[[m]]\nid = "off"\nC = "raise SystemExit(1)"\n{switch}\n\n[[m]]\nid = "on"\nC = "x = 1"\n',
    )
    assert states(path, capsys)["off"] == ("disabled", [reason])
    code, got = run(path, capsys)
    assert code == 0 and got["off"] == ("disabled", [reason]) and got["on"][0] == "ran"


@pytest.mark.parametrize(
    "where", ["automation = { skip_if_outputs_exist = true }", "skip_if_outputs_exist = true"]
)
def test_skip_if_outputs_exist(tmp_path: Path, capsys, where: str) -> None:
    path = write(
        tmp_path,
        META
        + f'[[m]]\nid = "make"\nC = "open(outputs[0], \'w\').write(\'new\')"\nproduces = ["out.txt"]\n{where}\n',
    )
    code, got = run(path, capsys)
    assert code == 0 and got == {"make": ("ran", ["never ran"])}  # the output is absent: it runs
    (tmp_path / "out.txt").write_text("kept by hand", encoding="utf-8")
    shutil.rmtree(tmp_path / ".agilab")  # forget the run: only the skip rule decides
    assert states(path, capsys)["make"] == ("disabled", ["outputs exist (skip_if_outputs_exist)"])
    code, got = run(path, capsys)
    assert code == 0 and got == {"make": ("skipped", ["outputs exist (skip_if_outputs_exist)"])}
    assert (tmp_path / "out.txt").read_text(encoding="utf-8") == "kept by hand"


def test_the_saved_sequence_is_the_selection(tmp_path: Path, capsys) -> None:
    body = (
        '[__meta__]\nschema = "agilab.lab_stages.v1"\nversion = 1\nm__sequence = [1]\n\n'
        "[[m]]\nid = \"first\"\nC = \"open('first.txt', 'w').write('1')\"\n\n"
        "[[m]]\nid = \"second\"\nC = \"open('second.txt', 'w').write('2')\"\n"
    )
    path = write(tmp_path, body)
    assert states(path, capsys) == {
        "first": ("disabled", ["not in the saved sequence"]),
        "second": ("never-ran", ["never ran"]),
    }
    code, got = run(path, capsys)
    assert code == 0 and got == {
        "first": ("disabled", ["not in the saved sequence"]),
        "second": ("ran", ["never ran"]),
    }
    assert not (tmp_path / "first.txt").exists() and (tmp_path / "second.txt").exists()
    code, got = run(path, capsys, "--all")
    assert code == 0 and got == {"first": ("ran", ["never ran"]), "second": ("fresh", [])}


def test_an_empty_sequence_means_every_stage(tmp_path: Path, capsys) -> None:
    body = META + 'm__sequence = []\n\n[[m]]\nid = "a"\nC = "x = 1"\n\n[[m]]\nid = "b"\nC = "x = 2"\n'
    code, got = run(write(tmp_path, body), capsys)
    assert code == 0 and [s for s, _ in got.values()] == ["ran", "ran"]


def test_sequence_indices_count_the_stages_agilab_displays(tmp_path: Path, capsys) -> None:
    """A stage without Q or C (a function stage, this tool's extension) is not on AGILAB's page: the
    saved indices skip it."""
    (tmp_path / "f.py").write_text("def f():\n    return 1\n", encoding="utf-8")
    body = (
        META + 'm__sequence = [1, 0]\n\n[[m]]\nid = "fn"\nfunction = "f.py:f"\n\n'
        '[[m]]\nid = "a"\nC = "x = 1"\n\n[[m]]\nid = "b"\nQ = "a prompt"\nC = "x = 2"\n'
    )
    lab = load(write(tmp_path, body), "lab")
    assert [(s.id, s.selected) for s in lab.stages] == [("b", True), ("a", True), ("fn", False)]
    bad = write(tmp_path, body.replace("[1, 0]", "[2]"), "other_lab_stages.toml")
    result, _ = check_file(bad, kind="lab")
    (problem,) = [d for d in result.diagnostics if d.code == "sequence-invalid"]
    assert "2 stage(s) AGILAB displays" in problem.message


def test_saved_automation_gives_the_default_profile_and_jobs(tmp_path: Path) -> None:
    from agilab_dsl.execute.outcome import RunOptions
    from agilab_dsl.execute.session import LabRequest, open_lab

    body = (
        META + 'm__automation = { profile = "smoke", max_workers = 3 }\n\n'
        '[[m]]\nid = "a"\nC = "x = 1"\nparams = { n = 10 }\nprofiles = { smoke = { params = { n = 1 } } }\n'
    )
    path = write(tmp_path, body)
    runner = open_lab(LabRequest(str(path), use_cache=False))
    assert runner.resolved["a"].params == {"n": 1}  # the saved profile applies
    assert runner.jobs(RunOptions()) == 3 and runner.jobs(RunOptions(jobs=1)) == 1
    other = open_lab(LabRequest(str(path), profile="none-such-in-stage", use_cache=False))
    assert getattr(other, "message", None)  # an explicit profile no stage defines is refused


def test_balanced_is_the_default_profile_as_in_agilab(tmp_path: Path) -> None:
    from agilab_dsl.execute.session import LabRequest, open_lab

    body = (
        META
        + '\n[[m]]\nid = "a"\nC = "x = 1"\nparams = { n = 10 }\nautomation_profiles = { balanced = { params = { n = 5 } } }\n'
    )
    runner = open_lab(LabRequest(str(write(tmp_path, body)), use_cache=False))
    assert runner.resolved["a"].params == {"n": 5}


def test_overlapping_parallel_safe_outputs_stop_the_run(tmp_path: Path, capsys) -> None:
    body = META + (
        '\n[[m]]\nid = "a"\nC = "open(\'made_a\', \'w\')"\nautomation = { parallel_safe = true, outputs = ["out"] }\n'
        '\n[[m]]\nid = "b"\nC = "x = 1"\nautomation = { parallel_safe = true, outputs = ["out/b.csv"] }\n'
        '\n[[m]]\nid = "c"\nC = "x = 1"\ndeps = ["a"]\n'  # with deps, a and b are unordered
    )
    path = write(tmp_path, body)
    assert main([str(path)]) == 2
    said = capsys.readouterr()
    assert "error[parallel-outputs-overlap]" in said.out + said.err
    assert not (tmp_path / "made_a").exists()
    serial = body.replace('id = "b"\n', 'id = "b"\ndeps = ["a"]\n')
    result, _ = check_file(write(tmp_path, serial))
    assert "parallel-outputs-overlap" not in [d.code for d in result.diagnostics]


def test_an_invalid_contract_stops_the_run_before_its_first_step(tmp_path: Path, capsys) -> None:
    (tmp_path / "stats_parallel_stage.toml").write_text(NO_REDUCER, encoding="utf-8")
    body = META + (
        '\n[[m]]\nid = "prepare"\nC = "open(\'prepared\', \'w\')"\nproduces = ["prepared"]\n'
        '\n[[m]]\nid = "stats"\nstage = "stats_parallel_stage.toml"\nconsumes = ["prepared"]\n'
    )
    path = write(tmp_path, body)
    assert main([str(path), "--dry-run"]) == 2
    said = capsys.readouterr()
    assert "stats_parallel_stage.toml:1:1: error[key-missing]" in said.out + said.err
    assert main([str(path)]) == 2
    capsys.readouterr()
    assert not (tmp_path / "prepared").exists()


def test_a_function_module_that_does_not_parse_stops_the_run(tmp_path: Path, capsys) -> None:
    (tmp_path / "funcs.py").write_text("def f(:\n    pass\n", encoding="utf-8")
    body = (
        META + '\n[[m]]\nid = "a"\nC = "open(\'ran\', \'w\')"\n\n[[m]]\nid = "b"\nfunction = "funcs.py:f"\n'
    )
    path = write(tmp_path, body)
    assert main([str(path)]) == 2
    said = capsys.readouterr()
    assert f"{tmp_path / 'funcs.py'}:1:7: error[function-module-invalid]" in said.out + said.err
    assert not (tmp_path / "ran").exists()


def test_stage_code_syntax_is_located_inside_the_code(tmp_path: Path) -> None:
    body = META + "\n[[m]]\nid = \"a\"\nC = '''\nx = 1\nif x\n    y = 2\n'''\n"
    result, _ = check_file(write(tmp_path, body))
    (err,) = [d for d in result.diagnostics if d.code == "stage-code-syntax"]
    assert err.severity == "error" and (err.line, err.column) == (9, 5)
    assert "expected ':'" in err.message


def test_artifact_produced_twice_is_a_warning_as_in_agilab(tmp_path: Path) -> None:
    body = (
        META
        + '\n[[m]]\nid = "a"\nC = "x = 1"\nproduces = ["o.csv"]\n\n[[m]]\nid = "b"\nC = "x = 2"\nproduces = ["o.csv"]\n'
    )
    result, _ = check_file(write(tmp_path, body))
    assert [(d.code, d.severity) for d in result.diagnostics] == [("artifact-produced-twice", "warning")]


def test_the_lab_steps_stamp_is_a_warning_that_names_migrate(tmp_path: Path) -> None:
    body = '[__meta__]\nschema = "agilab.lab_steps.v1"\nversion = 1\n\n[[m]]\nC = "x = 1"\n'
    result, _ = check_file(write(tmp_path, body))
    (warning,) = result.diagnostics
    assert warning.code == "schema-legacy" and "migrate" in (warning.hint or "") and result.ok


def test_stage_empty_hint_tells_a_prompt_from_nothing(tmp_path: Path) -> None:
    body = META + '\n[[m]]\nid = "prompt"\nQ = "Summarise the flights"\n\n[[m]]\nid = "nothing"\nD = "x"\n'
    result, _ = check_file(write(tmp_path, body))
    hints = {d.key: d.hint for d in result.diagnostics if d.code == "stage-empty"}
    assert "shows it and skips it at run time" in hints["m[0]"]
    assert "drops it on the next save" in hints["m[1]"]


def test_diff_reports_agilab_keys_and_their_effect_on_what_runs(tmp_path: Path, capsys) -> None:
    old_text = (
        '[__meta__]\nschema = "agilab.lab_steps.v1"\nversion = 1\nm__sequence = [0]\n\n'
        '[[m]]\nid = "load"\nC = "x = 1"\nprofiles = { smoke = { params = { n = 1 } } }\n\n'
        '[[m]]\nid = "evaluate"\nC = "x = 2"\n\n'
        '[[m]]\nid = "report"\nC = "x = 3"\n'
    )
    new_text = (
        old_text.replace("agilab.lab_steps.v1", "agilab.lab_stages.v1")
        .replace("m__sequence = [0]", "m__sequence = [0, 1, 2]\nm__automation = { max_workers = 2 }")
        .replace("params = { n = 1 }", "params = { n = 2 }")
        .replace('id = "report"\nC = "x = 3"\n', 'id = "report"\nC = "x = 3"\nenabled = false\n')
    )
    old, new = tmp_path / "old" / "lab_stages.toml", tmp_path / "new" / "lab_stages.toml"
    for path, text in ((old, old_text), (new, new_text)):
        path.parent.mkdir()
        path.write_text(text, encoding="utf-8")
    assert main(["diff", str(old), str(new), "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["meta"] == [
        "[__meta__] m__automation.max_workers added: 2",
        "[__meta__] m__sequence: [0] → [0, 1, 2]",
        '[__meta__] schema: "agilab.lab_steps.v1" → "agilab.lab_stages.v1"',
    ]
    steps = {s["id"]: s["changes"] for s in payload["steps"]}
    assert steps == {
        "load": ["profiles.smoke.params.n: 1 → 2"],
        "evaluate": ["now selected by the saved sequence: would run"],
        "report": [
            "disabled (enabled = false)",
            "now selected by the saved sequence, but disabled (enabled = false): would not run",
        ],
    }
    assert payload["would_rerun"] == [{"id": "evaluate", "because": "now selected by the saved sequence"}]
    assert main(["diff", str(old), str(new)]) == 0
    text = capsys.readouterr().out
    assert "  [__meta__] m__sequence: [0] → [0, 1, 2]" in text and "evaluate  (now selected" in text


def test_textconv_shows_meta_selection_and_automation(tmp_path: Path, capsys) -> None:
    body = (
        '[__meta__]\nschema = "agilab.lab_stages.v1"\nm__sequence = [1]\n\n'
        '[[m]]\nid = "a"\nC = "x=1"\nautomation = { parallel_safe = true, outputs = ["o"] }\n\n'
        '[[m]]\nid = "b"\nC = "y=2"\n'
    )
    assert main(["textconv", str(write(tmp_path, body))]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[:2] == ["[__meta__] m__sequence = [1]", '[__meta__] schema = "agilab.lab_stages.v1"']
    a = lines[lines.index("[a]") :]
    assert "  selected = false (not in the saved sequence)" in a and "  automation.parallel_safe = true" in a


def test_a_contract_named_beside_its_lab_is_reported_once(tmp_path: Path, capsys) -> None:
    (tmp_path / "parallel_stage.toml").write_text(NO_REDUCER, encoding="utf-8")
    lab = write(tmp_path, META + '\n[[m]]\nid = "s"\nstage = "parallel_stage.toml"\n')
    assert main(["check", str(lab), str(tmp_path / "parallel_stage.toml")]) == 1
    assert capsys.readouterr().out.count("error[key-missing]") == 1
    assert main(["check", str(lab)]) == 1  # alone, the lab still says what is wrong with its contract
    assert capsys.readouterr().out.count("error[key-missing]") == 1
