"""`check --agilab` on small files: each of AGILAB's lab rules and contract rules, where each issue is
located, the JSON shapes, the options and the exit codes (fail 2, warn with --strict 1, else 0).

The expected outcomes are AGILAB's (``workflow_validation.py``, ``lab_stages_contract.py`` and
``tools/parallel_stage.py`` at 37a3333c0); tests/test_agilab_parity.py holds the real corpus."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from agilab_dsl.check.agilab.ids import CHECKS
from agilab_dsl.cli import main
from agilab_dsl.load.source import SourceMap

META = '[__meta__]\nschema = "agilab.lab_stages.v1"\nversion = 1\n\n'


def write(tmp_path: Path, text: str, folder: str = "demo_project", name: str = "lab_stages.toml") -> Path:
    path = tmp_path / folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def judge(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, dict[str, Any]]:
    code = main(["check", "--agilab", "--json", *map(str, argv)])
    return code, json.loads(capsys.readouterr().out)


def text_of(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, str]:
    code = main(["check", "--agilab", *map(str, argv)])
    return code, capsys.readouterr().out


def found(report: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [(i["severity"], i["check_id"], i.get("stage_id", "")) for i in report["issues"]]


def only(report: dict[str, Any], check_id: str) -> dict[str, Any]:
    (issue,) = [i for i in report["issues"] if i["check_id"] == check_id]
    return issue


# ---------------------------------------------------------------------------------------------
# the file itself


def test_missing_file_fails_with_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, report = judge(capsys, tmp_path / "nope_project" / "lab_stages.toml")
    assert code == 2 and report["status"] == "fail"
    assert found(report) == [("error", "stages-file-missing", "")]
    assert report["issues"][0]["message"].startswith("Workflow stages file does not exist: ")


@pytest.mark.parametrize(
    ("content", "line", "column"),
    [
        (b'[__meta__\nschema = "x"\n', 1, 10),
        (b'[[demo]]\nQ = "ok"\nC = "unterminated\n', 3, 18),
        (b"\xef\xbb\xbf[[demo]]\nQ = 'x'\n", 1, 1),  # a BOM: AGILAB's tomllib rejects it too
        (b"[[demo]]\nQ = '\xff'\n", 2, 6),
    ],
)
def test_unreadable_file_is_located(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes, line: int, column: int
) -> None:
    path = tmp_path / "demo_project" / "lab_stages.toml"
    path.parent.mkdir()
    path.write_bytes(content)
    code, report = judge(capsys, path)
    assert code == 2
    issue = only(report, "stages-file-unreadable")
    assert issue["message"].startswith("Could not read lab_stages.toml: ")
    assert (issue["line"], issue["column"]) == (line, column)


def test_a_file_this_tools_loader_rejects_is_still_judged(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(
        tmp_path, META + '[[demo]]\nQ = "Load"\nC = "x = 1"\nretries = "many"\nNB_RUNTIME_ROLE = "manager"\n'
    )
    assert main(["check", str(path)]) == 1  # plain check: retries must be an int
    capsys.readouterr()
    code, report = judge(capsys, path)
    assert (code, report["status"], report["issues"]) == (0, "pass", [])


# ---------------------------------------------------------------------------------------------
# metadata


def test_metadata_missing_is_info_and_passes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, '[[demo]]\nQ = "Ask"\n')
    code, report = judge(capsys, path)
    assert (code, report["status"]) == (0, "pass")
    issue = only(report, "metadata-missing")
    assert (issue["severity"], issue["line"], issue["column"]) == ("info", 1, 1)
    assert issue["hint"] == "Add [__meta__] schema = 'agilab.lab_stages.v1', version = 1."
    assert main(["check", "--agilab", "--strict", str(path)]) == 0  # infos never fail
    capsys.readouterr()


def test_require_metadata_makes_missing_metadata_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, '[[demo]]\nQ = "Ask"\n')
    code, report = judge(capsys, path, "--require-metadata")
    assert code == 2 and found(report) == [("error", "metadata-missing", "")]


def test_require_metadata_wants_schema_and_version(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, '[__meta__]\ndemo__sequence = [0]\n\n[[demo]]\nQ = "Ask"\n')
    assert judge(capsys, path)[1]["issues"] == []
    code, report = judge(capsys, path, "--require-metadata")
    assert code == 2
    assert [i["check_id"] for i in report["issues"]] == ["metadata-schema", "metadata-version"]
    assert report["issues"][0]["message"] == "lab_stages.toml metadata must declare its schema."
    assert report["issues"][0]["line"] == 1  # the [__meta__] header


def test_empty_meta_table_is_missing_metadata_located_at_its_header(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, '[[demo]]\nQ = "Ask"\n\n[__meta__]\n')
    issue = only(judge(capsys, path)[1], "metadata-missing")
    assert (issue["line"], issue["column"]) == (4, 1)


def test_metadata_shape(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, '__meta__ = "legacy"\n\n[[demo]]\nQ = "Ask"\n')
    code, report = judge(capsys, path)
    issue = only(report, "metadata-shape")
    assert code == 2 and (issue["line"], issue["column"]) == (1, 1)


@pytest.mark.parametrize(
    ("schema", "message"),
    [
        ("agilab.lab_steps.v1", "Unsupported lab_stages.toml schema 'agilab.lab_steps.v1'."),
        ("agilab.unknown", "Unsupported lab_stages.toml schema 'agilab.unknown'."),
    ],
)
def test_metadata_schema(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], schema: str, message: str
) -> None:
    path = write(tmp_path, f'[__meta__]\nschema = "{schema}"\nversion = 1\n\n[[demo]]\nQ = "Ask"\n')
    code, report = judge(capsys, path)
    issue = only(report, "metadata-schema")
    assert code == 2 and issue["message"] == message
    assert (issue["line"], issue["column"]) == (2, 10)


@pytest.mark.parametrize(
    ("version", "message"),
    [
        ('"1"', "Unsupported lab_stages.toml schema version '1'."),
        ("true", "Unsupported lab_stages.toml schema version True."),
        ("1.0", "Unsupported lab_stages.toml schema version 1.0."),
        ("2", "Unsupported lab_stages.toml schema version 2; upgrade AGILAB before editing this pipeline."),
        ("0", "Unsupported lab_stages.toml schema version 0; upgrade AGILAB before editing this pipeline."),
    ],
)
def test_metadata_version(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], version: str, message: str
) -> None:
    path = write(
        tmp_path, f'[__meta__]\nschema = "agilab.lab_stages.v1"\nversion = {version}\n\n[[demo]]\nQ = "Ask"\n'
    )
    code, report = judge(capsys, path)
    issue = only(report, "metadata-version")
    assert code == 2 and issue["message"] == message
    assert (issue["line"], issue["column"]) == (3, 11)


# ---------------------------------------------------------------------------------------------
# the stage lists


def test_unexpected_stage_lists_any_top_level_list(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, 'tags = ["x"]\n\n' + META + '[[demo]]\nQ = "Ask"\n\n[[steps]]\nQ = "Hidden"\n')
    code, report = judge(capsys, path)
    issue = only(report, "unexpected-stage-lists")
    assert code == 2 and report["summary"]["stage_count"] == 1
    assert issue["message"] == "lab_stages.toml contains stage lists WORKFLOW will ignore: ['steps', 'tags']."
    assert "will not delete user-owned stages" in issue["hint"]
    assert (issue["line"], issue["column"]) == (1, 1)  # the first of them in the file


def test_module_key_missing_when_stages_sit_under_another_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, META + '[[steps]]\nQ = "Not rendered for demo"\nC = "value = 1"\n')
    code, report = judge(capsys, path)
    assert code == 2 and report["module_key"] == "demo"
    assert sorted(i["check_id"] for i in report["issues"]) == ["module-key-missing", "unexpected-stage-lists"]
    issue = only(report, "module-key-missing")
    assert issue["message"] == "No workflow stage list exists under the module key 'demo'; found ['steps']."
    assert issue["line"] == 5


def test_module_key_option_picks_the_list(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, META + '[[steps]]\nQ = "Ask"\nC = "x = 1"\n', folder="elsewhere")
    code, report = judge(capsys, path, "--module-key", "steps")
    assert code == 0 and report["module_key"] == "steps"
    assert [s["id"] for s in report["stages"]] == ["steps_001"]


def test_no_stages(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, META)
    code, report = judge(capsys, path)
    assert code == 2 and found(report) == [("error", "no-stages", "")]
    assert report["issues"][0]["message"] == "No workflow stages were found in lab_stages.toml."


def test_no_displayable_stages_and_undisplayable_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, META + '[[demo]]\nD = "Description alone"\n\n[[demo]]\nQ = "  "\nC = ""\n')
    code, report = judge(capsys, path)
    assert code == 2
    assert [i["check_id"] for i in report["issues"]] == ["undisplayable-stages", "no-displayable-stages"]
    pruned = only(report, "undisplayable-stages")
    assert pruned["message"] == "WORKFLOW would prune stage entries at indices [0, 1] under 'demo'."
    assert (pruned["line"], pruned["column"]) == (5, 1)


def test_a_q_only_stage_is_kept_and_default_ids_count_raw_entries(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(
        tmp_path, 'demo = [{ D = "pruned" }, { Q = "Ask the model" }, { C = "x = 1", role = "worker" }]\n'
    )
    code, report = judge(capsys, path)
    assert code == 2  # the pruned entry is an error
    assert [s["id"] for s in report["stages"]] == ["demo_002", "demo_003"]
    assert [s["label"] for s in report["stages"]] == ["Ask the model", "demo_003"]
    assert only(report, "undisplayable-stages")["column"] == 9


# ---------------------------------------------------------------------------------------------
# stage rules


def test_stage_code_syntax_located_in_a_one_line_string(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(
        tmp_path, META + '[[demo]]\nid = "s"\nNB_RUNTIME_ROLE = "manager"\nC = "x = 1\\nLoad the data"\n'
    )
    code, report = judge(capsys, path)
    issue = only(report, "stage-code-syntax")
    assert code == 2 and issue["stage_id"] == "s"
    assert issue["message"] == "Stage code is not valid Python: invalid syntax"
    # "Load the data" is line 2 of the code; "the" sits after `C = "x = 1\nLoad ` on the TOML line
    assert (issue["line"], issue["column"]) == (8, 18)


def test_stage_code_syntax_located_in_a_multiline_string_after_stripping(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lab = META + "[[demo]]\nrole = 'worker'\nC = '''\n\n    x = 1\n    y = = 2\n'''\n"
    path = write(tmp_path, lab)
    code, text = text_of(capsys, path)
    assert code == 2
    # AGILAB parses the stripped code, "x = 1\n    y = = 2": its second line is indented
    assert (
        f"{path}:10:4: error[stage-code-syntax]: [demo_001] Stage code is not valid Python: unexpected indent"
        in text
    )
    assert " 10 |     y = = 2" in text
    assert "    |    ^\n" in text


def test_stage_code_syntax_located_in_a_crlf_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "demo_project" / "lab_stages.toml"
    path.parent.mkdir()
    path.write_bytes(b"[[demo]]\r\nrole = 'worker'\r\nC = '''\r\nx = 1\r\ny = = 2\r\n'''\r\n")
    issue = only(judge(capsys, path)[1], "stage-code-syntax")
    assert (issue["line"], issue["column"]) == (5, 5)


def test_risky_calls_are_agilabs_narrower_list(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code_text = (
        "import os, subprocess\\nimport subprocess as sp\\n"
        "os.system('ls')\\nsubprocess.check_output(['ls'])\\nsp.run(['ls'])\\nexec('1')"
    )
    path = write(tmp_path, META + f'[[demo]]\nrole = "worker"\nC = "{code_text}"\n')
    code, report = judge(capsys, path)
    risky = [i for i in report["issues"] if i["check_id"] == "stage-code-risky-call"]
    assert code == 0 and report["status"] == "warn"
    assert [i["message"].rsplit(": ", 1)[1] for i in risky] == ["os.system", "exec"]
    assert main(["check", "--agilab", "--strict", str(path)]) == 1
    capsys.readouterr()
    # located at the callee inside the TOML string
    line = path.read_text(encoding="utf-8").splitlines()[risky[0]["line"] - 1]
    assert line[risky[0]["column"] - 1 :].startswith("os.system")


def test_stage_engine_unknown(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(
        tmp_path, META + '[[demo]]\nQ = "Ask"\nR = "Custom-Engine"\n\n[[demo]]\nQ = "Ask"\nR = "AGI.Run"\n'
    )
    code, report = judge(capsys, path)
    issue = only(report, "stage-engine-unknown")
    assert (code, report["status"]) == (0, "warn")
    assert issue["message"] == "Stage engine 'custom-engine' is not a standard AGILAB dry-run engine."
    assert (issue["stage_id"], issue["line"], issue["column"]) == ("demo_001", 7, 5)
    assert [s["engine"] for s in report["stages"]] == ["custom-engine", "agi.run"]


def test_runtime_role(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(
        tmp_path,
        META
        + '[[demo]]\nC = "x = 1"\n\n[[demo]]\nC = "NB_RUNTIME_ROLE = \'Manager\'"\n\n'
        + '[[demo]]\nC = "AGI.run(data_in=\'a\', role=\'worker\')"\n\n[[demo]]\nAGILAB_RUNTIME_ROLE = "analysis"\nC = "x = 1"\n',
    )
    code, report = judge(capsys, path)
    assert (code, report["status"]) == (0, "pass")
    assert found(report) == [("info", "runtime-role-missing", "demo_001")]
    assert (report["issues"][0]["line"], report["issues"][0]["column"]) == (6, 1)
    assert [s["runtime_role"] for s in report["stages"]] == ["unspecified", "manager", "worker", "analysis"]


def test_stage_id_missing_only_under_the_key_stages(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(
        tmp_path, META + '[[stages]]\nQ = "Ask"\n\n[[stages]]\nid = "named"\nQ = "Ask"\n', folder="stages"
    )
    code, report = judge(capsys, path)
    assert (code, found(report)) == (0, [("warning", "stage-id-missing", "stages_001")])
    assert report["issues"][0]["line"] == 5


# ---------------------------------------------------------------------------------------------
# apps


APP_LAB = META + '[[demo]]\nrole = "worker"\nC = "APP = \'flight_project\'"\n'


def test_app_reference_missing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, APP_LAB)
    code, report = judge(capsys, path)
    issue = only(report, "app-reference-missing")
    assert (code, report["status"]) == (0, "warn")
    assert issue["message"] == "Referenced app project was not found locally: flight_project"
    assert (issue["line"], issue["column"]) == (7, 6)  # the APP assignment inside C


def test_apps_root_finds_the_app(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, APP_LAB)
    (tmp_path / "apps" / "flight_project").mkdir(parents=True)
    code, report = judge(capsys, path, "--apps-root", tmp_path / "apps")
    assert (code, report["status"], report["issues"]) == (0, "pass", [])
    assert report["stages"][0]["app"] == "flight_project"


def test_the_lab_folder_named_like_the_app_is_found(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, APP_LAB, folder="flight_project")
    assert judge(capsys, path, "--module-key", "demo")[1]["status"] == "pass"


def test_an_agilab_checkout_above_the_lab_is_searched(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'agilab'\n", encoding="utf-8")
    (tmp_path / "src" / "agilab" / "apps" / "builtin" / "flight_project").mkdir(parents=True)
    path = write(tmp_path, APP_LAB, folder="labs/demo_project")
    assert judge(capsys, path)[1]["status"] == "pass"


def test_app_key_wins_over_code(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, META + '[[demo]]\nQ = "Ask"\napp = "other_project"\nAPP = "third_project"\n')
    issue = only(judge(capsys, path)[1], "app-reference-missing")
    assert issue["message"].endswith(": other_project") and (issue["line"], issue["column"]) == (7, 7)


# ---------------------------------------------------------------------------------------------
# graph


def test_duplicate_ids_missing_forward_and_cyclic_dependencies(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lab = (
        META
        + '[[demo]]\nid = "a"\nQ = "A"\ndepends_on = ["b", "ghost"]\ndeps = ["ignored"]\n\n'
        + '[[demo]]\nid = "b"\nQ = "B"\ndepends_on = ["a"]\n\n'
        + '[[demo]]\nid = "c"\nQ = "C"\n\n[[demo]]\nid = "c"\nQ = "C again"\n'
    )
    path = write(tmp_path, lab)
    code, report = judge(capsys, path)
    assert code == 2
    assert found(report) == [
        ("error", "stage-id-duplicate", "c"),
        ("warning", "dependency-forward-reference", "a"),
        ("error", "dependency-missing", "a"),
        ("error", "dependency-cycle", ""),
    ]
    dup, forward, missing, cycle = report["issues"]
    assert (dup["line"], dup["column"]) == (21, 6)
    assert forward["message"] == "Stage depends on a later stage: b" and (
        forward["line"],
        forward["column"],
    ) == (8, 15)
    assert missing["message"] == "Stage depends on unknown stage: ghost" and missing["column"] == 20
    assert cycle["message"] == "Workflow dependency cycle detected: a -> b -> a"
    assert (cycle["line"], cycle["column"]) == (14, 15)  # b's dependency on a closes it
    assert report["dependency_edges"] == [
        {"source": "a", "target": "b", "kind": "depends_on"},
        {"source": "b", "target": "a", "kind": "depends_on"},
        {"source": "ghost", "target": "a", "kind": "depends_on"},
    ]


def test_a_long_chain_is_walked_without_recursion(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    n = 3000
    rows = [f'{{ id = "s{i}", Q = "q", depends_on = ["s{i + 1}"] }}' for i in range(n - 1)]
    rows.append(f'{{ id = "s{n - 1}", Q = "q", depends_on = ["s0"] }}')
    path = write(tmp_path, "demo = [\n" + ",\n".join(rows) + "\n]\n")
    report = judge(capsys, path)[1]
    (cycle,) = [i for i in report["issues"] if i["check_id"] == "dependency-cycle"]
    assert cycle["message"].endswith(f"s{n - 1} -> s0") and cycle["line"] == n + 1


def test_artifacts_edges_and_produced_twice(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lab = (
        META
        + '[[demo]]\nid = "load"\nrole = "manager"\nC = "data_out = \'raw\'"\n\n'
        + "[[demo]]\nid = \"train\"\nR = \"agi.run\"\nC = \"AGI.run(data_in='raw', data_out='model', role='worker')\"\n"
        + 'inputs = [{ artifact = "wheelhouse" }]\n\n'
        + '[[demo]]\nid = "again"\nQ = "Reload"\noutputs = [{ path = "raw" }]\n'
    )
    path = write(tmp_path, lab)
    code, report = judge(capsys, path)
    assert (code, report["status"]) == (0, "warn")
    issue = only(report, "artifact-produced-twice")
    assert issue["message"] == "Artifact 'raw' is produced by both load and again."
    assert (issue["severity"], issue["stage_id"], issue["line"], issue["column"]) == (
        "warning",
        "again",
        19,
        21,
    )
    train = report["stages"][1]
    assert (train["kind"], train["consumes"], train["produces"]) == ("run", ["wheelhouse", "raw"], ["model"])
    assert report["artifact_edges"] == [
        {"source": "load", "target": "train", "artifact": "raw", "kind": "artifact_flow"}
    ]
    assert report["external_inputs"] == [
        {"stage_id": "train", "artifact": "wheelhouse", "kind": "external_input"}
    ]
    assert report["summary"] == {
        "stage_count": 3,
        "dependency_count": 0,
        "artifact_produced_count": 3,
        "artifact_consumed_count": 2,
        "external_input_count": 1,
        "error_count": 0,
        "warning_count": 1,
        "info_count": 0,
    }
    assert len(train["code_sha256"]) == 64 and report["stages"][2]["code_sha256"] == ""


def test_report_shape(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, META + '[[demo]]\nQ = "Ask"\n')
    report = judge(capsys, path)[1]
    assert report["schema"] == "agilab.workflow_dry_run_report.v1"
    assert report["mode"] == "static_dry_run" and report["kind"] == "lab" and report["path"] == str(path)
    assert set(report["stages"][0]) == {
        "id", "source_key", "index", "label", "kind", "engine", "runtime_role", "app",
        "code_sha256", "depends_on", "consumes", "produces",
    }  # fmt: skip


# ---------------------------------------------------------------------------------------------
# contracts

CONTRACT = {
    "schema": '"agilab.parallel_stage.v1"',
    "name": '"sweep"',
    "function": '"experiments.grid:run_one"',
    "split": '"parameter-sweep"',
    "input": '"params.json"',
    "workers": "4",
    "partition_strategy": '"parameter-items"',
    "target_partitions": "0",
    "min_partitions_per_worker": "2",
    "reducer": '"collect-json"',
    "backend": '"pool"',
    "output": '"out.json"',
}


def contract(tmp_path: Path, **changes: str | None) -> Path:
    values = {**CONTRACT, **changes}
    text = "".join(f"{k} = {v}\n" for k, v in values.items() if v is not None)
    return write(tmp_path, text, folder="c", name="parallel_stage.toml")


def test_a_clean_contract_passes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, report = judge(capsys, contract(tmp_path))
    assert code == 0
    assert {k: report[k] for k in ("kind", "ok", "status", "issues", "warnings", "located")} == {
        "kind": "contract",
        "ok": True,
        "status": "pass",
        "issues": [],
        "warnings": [],
        "located": [],
    }


@pytest.mark.parametrize(
    ("changes", "check_id", "message", "line"),
    [
        ({"output": None}, "contract-key-missing", "missing required key: output", 1),
        ({"schema": '"agilab.parallel_stage.v2"'}, "contract-schema", "schema must be 'agilab.parallel_stage.v1'", 1),
        ({"name": '"  "'}, "contract-name", "name must be a non-empty string", 2),
        ({"function": '"grid.run_one"'}, "contract-function", "function must use 'module_or_path:function_name' format", 3),
        ({"split": '"rows"'}, "contract-split", "split must be one of: files, data-partitions, parameter-sweep", 4),
        ({"input": "3"}, "contract-input", "input must be a non-empty string", 5),
        ({"workers": "0"}, "contract-workers", "workers must be a positive integer or 'auto'", 6),
        ({"workers": '"4"'}, "contract-workers", "workers must be a positive integer or 'auto'", 6),
        (
            {"partition_strategy": '"chunks"'},
            "contract-partition-strategy",
            "partition_strategy must be one of: one-file-per-partition, file-chunks, row-chunks, parameter-items",
            7,
        ),
        ({"target_partitions": "-1"}, "contract-target-partitions", "target_partitions must be a non-negative integer", 8),
        ({"min_partitions_per_worker": "0"}, "contract-min-partitions-per-worker", "min_partitions_per_worker must be a positive integer", 9),
        ({"reducer": '"sum"'}, "contract-reducer", "reducer must be one of: collect-json, concat-jsonl, concat-csv, custom", 10),
        ({"backend": '"ray"'}, "contract-backend", "backend must be one of: local, pool, dask", 11),
        ({"output": '""'}, "contract-output", "output must be a non-empty string", 12),
    ],
)  # fmt: skip
def test_contract_errors(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    changes: dict[str, str | None],
    check_id: str,
    message: str,
    line: int,
) -> None:
    code, report = judge(capsys, contract(tmp_path, **changes))
    assert (code, report["ok"], report["status"]) == (2, False, "fail")
    assert message in report["issues"]
    located = [i for i in report["located"] if i["check_id"] == check_id]
    assert located and located[0]["message"] == message and located[0]["line"] == line


def test_a_missing_schema_gives_both_of_agilabs_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = judge(capsys, contract(tmp_path, schema=None))[1]
    assert report["issues"] == ["missing required key: schema", "schema must be 'agilab.parallel_stage.v1'"]


@pytest.mark.parametrize(
    ("changes", "warnings", "check_ids"),
    [
        ({"workers": "1"}, ["workers=1 is valid for preview but does not parallelize execution"], ["contract-workers-single"]),
        ({"workers": "true"}, ["workers=1 is valid for preview but does not parallelize execution"], ["contract-workers-single"]),
        (
            {"split": '"files"', "partition_strategy": '"one-file-per-partition"'},
            ["if file count is lower than workers, one-file-per-partition caps useful parallelism at file count"],
            ["contract-one-file-per-partition"],
        ),
        (
            {"split": '"files"', "partition_strategy": '"file-chunks"'},
            ["file-chunks should set target_partitions to over-partition large files"],
            ["contract-file-chunks-target"],
        ),
        ({"split": '"files"', "partition_strategy": '"file-chunks"', "workers": '"auto"'}, [], []),
        ({"partition_strategy": '"file-chunks"'}, [], []),  # not split = files
        ({"split": '"files"', "partition_strategy": '"file-chunks"', "target_partitions": "64"}, [], []),
        ({"reducer": '"custom"'}, ["custom reducer should describe the merge contract in notes"], ["contract-custom-reducer-notes"]),
        ({"reducer": '"custom"', "notes": '""'}, [], []),  # AGILAB asks for the key only
        (
            {"backend": '"dask"', "workers": "1"},
            [
                "workers=1 is valid for preview but does not parallelize execution",
                "dask backend normally needs more than one worker to be useful",
            ],
            ["contract-workers-single", "contract-dask-single-worker"],
        ),
    ],
)  # fmt: skip
def test_contract_warnings(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    changes: dict[str, str],
    warnings: list[str],
    check_ids: list[str],
) -> None:
    path = contract(tmp_path, **changes)
    code, report = judge(capsys, path)
    assert (code, report["ok"], report["issues"], report["warnings"]) == (0, True, [], warnings)
    assert report["status"] == ("warn" if warnings else "pass")
    assert [i["check_id"] for i in report["located"]] == check_ids
    assert main(["check", "--agilab", "--strict", str(path)]) == (1 if warnings else 0)
    capsys.readouterr()


def test_gpu_backend_is_a_warning_naming_agilabs_backends(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, report = judge(capsys, contract(tmp_path, backend='"gpu"'))
    assert (code, report["ok"], report["issues"]) == (0, True, [])
    (located,) = report["located"]
    assert located["check_id"] == "contract-backend-extension" and located["line"] == 11
    assert "AGILAB's contract checker accepts local, pool, dask" in located["message"]


def test_unreadable_and_missing_contracts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = write(
        tmp_path, 'schema = "agilab.parallel_stage.v1"\nname = \n', folder="c", name="parallel_stage.toml"
    )
    code, report = judge(capsys, bad)
    (located,) = report["located"]
    assert code == 2 and located["check_id"] == "contract-file-unreadable" and located["line"] == 2
    code, report = judge(capsys, tmp_path / "parallel_stage.toml")
    assert code == 2 and report["located"][0]["check_id"] == "contract-file-missing"


# ---------------------------------------------------------------------------------------------
# the command


def test_text_output_summarises_each_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lab = write(tmp_path, '[[demo]]\nQ = "Ask"\nR = "custom"\n')
    code, text = text_of(capsys, lab, contract(tmp_path))
    assert code == 0
    assert f"{lab}:3:5: warning[stage-engine-unknown]: [demo_001] Stage engine 'custom'" in text
    assert f"{lab}: warn — AGILAB's workflow validate, module key 'demo': 1 stage," in text
    assert (
        "parallel_stage.toml: pass — AGILAB's parallel_stage --check: ok; 0 errors, 0 warnings, 0 infos"
        in text
    )
    assert text.endswith("2 files checked with AGILAB's rules: 0 errors, 1 warning, 1 info — warn\n")


def test_github_annotations(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lab = write(tmp_path, '[[demo]]\nQ = "Ask"\nR = "custom"\n')
    assert main(["check", "--agilab", "--format", "github", str(lab)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("::notice file=") and "title=metadata-missing" in lines[0]
    assert lines[1].startswith("::warning file=") and ",line=3,col=5,title=stage-engine-unknown::" in lines[1]


def test_the_options_need_agilab(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lab = write(tmp_path, '[[demo]]\nQ = "Ask"\n')
    assert main(["check", "--module-key", "x", "--apps-root", str(tmp_path), str(lab)]) == 2
    assert "--module-key, --apps-root need --agilab" in capsys.readouterr().err
    assert main(["check", "--require-metadata", str(lab)]) == 2
    assert main(["check", "--agilab", "--settings", str(lab), str(lab)]) == 2


def test_settings_files_are_not_judged(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "[cluster]\npool = true\n", name="app_settings.toml")
    code, report = judge(capsys, path)
    assert code == 2 and report["kind"] == "settings"
    assert [i["check_id"] for i in report["issues"]] == ["agilab-kind-unsupported"]


def test_kind_decides_the_validator(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, '[[demo]]\nQ = "Ask"\n', name="pipeline.toml")
    assert judge(capsys, path)[1]["kind"] == "lab"
    report = judge(capsys, path, "--kind", "contract")[1]
    assert report["kind"] == "contract" and "missing required key: schema" in report["issues"]


def test_every_check_id_is_listed_and_exercised() -> None:
    source = Path(__file__).read_text(encoding="utf-8")
    for check_id in CHECKS:
        assert f'"{check_id}"' in source, f"no test names {check_id}"


def test_a_crlf_multiline_string_maps_decoded_characters_back() -> None:
    text = "C = '''\r\nab\r\ncd'''\r\nD = \"\"\"\r\nxy\r\nz\"\"\"\r\n"
    source = SourceMap(text)
    # decoded "ab\ncd": index 3 is "c"
    assert text[source.string_offset(("C",), 3) or 0] == "c"
    assert text[source.string_offset(("D",), 3) or 0] == "z"


def test_check_agilab_stays_light(tmp_path: Path) -> None:
    """AGILAB's verdict needs tomllib and ast only: no models, grammars or heavy dependencies."""
    path = write(tmp_path, META + '[[demo]]\nQ = "Ask"\nC = "x = 1"\n')
    probe = (
        "import json, sys\nfrom agilab_dsl.cli import main\n"
        "code = main(['check', '--agilab', sys.argv[1]])\n"
        "heavy = {'pydantic', 'lark', 'tomlkit', 'dask', 'distributed', 'pyarrow', 'joblib', 'cupy'}\n"
        "print(json.dumps([code, sorted(m for m in sys.modules if m.split('.')[0] in heavy)]), file=sys.stderr)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe, str(path)], check=False, capture_output=True, text=True, timeout=60
    )
    assert json.loads(proc.stderr.strip().splitlines()[-1]) == [0, []]
