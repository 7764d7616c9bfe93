"""The committed JSON Schemas are exactly what the models generate, and they accept the valid files."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest
from conftest import CONFORMANCE, ROOT

from agilab_dsl.cli import main
from agilab_dsl.load.schema import SCHEMA_NAMES, generate, render

SCHEMA_DIR = ROOT / "lab_steps" / "schema"


@pytest.mark.parametrize("name", SCHEMA_NAMES)
def test_committed_schema_matches_the_models(name: str) -> None:
    committed = SCHEMA_DIR / f"{name}.schema.json"
    assert committed.read_text(encoding="utf-8") == render(name), (
        f"{committed} drifted from the models: regenerate with `agilab-run schema {name} > {committed}`"
    )


@pytest.mark.parametrize("name", SCHEMA_NAMES)
def test_schema_command_prints_it(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema", name]) == 0
    assert json.loads(capsys.readouterr().out) == generate(name)


def test_lab_schema_lists_every_alias_and_nb_keys() -> None:
    stage = generate("lab-steps")["$defs"]["Stage"]
    for key in (
        "D",
        "description",
        "C",
        "code",
        "id",
        "stage_id",
        "deps",
        "depends_on",
        "dependencies",
        "produces",
        "outputs",
        "consumes",
        "inputs",
        "backend",
        "mode",
        "when",
        "settings",
    ):
        assert key in stage["properties"], key
    assert "^NB_" in stage["patternProperties"] and stage["additionalProperties"] is False


def _errors(name: str, data: object) -> list[str]:
    from jsonschema import Draft202012Validator

    validator = Draft202012Validator(generate(name))
    return sorted(e.message for e in validator.iter_errors(data))


@pytest.mark.parametrize("path", sorted((CONFORMANCE / "valid").glob("*.toml")), ids=lambda p: p.name)
def test_valid_files_satisfy_their_schema(path: Path) -> None:
    name = (
        "app-settings"
        if "app_settings" in path.name
        else "parallel-stage"
        if "parallel_stage" in path.name
        else "lab-steps"
    )
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    assert _errors(name, data) == []


def test_schema_rejects_an_unknown_stage_key() -> None:
    errs = _errors("lab-steps", {"m": [{"C": "x", "dependson": ["a"]}]})
    assert len(errs) == 1 and "'dependson'" in errs[0]


def test_schema_rejects_a_bad_contract_enum_and_a_bool_worker_count() -> None:
    base = tomllib.loads((CONFORMANCE / "valid" / "parallel_stage.toml").read_text(encoding="utf-8"))
    assert _errors("parallel-stage", base | {"reducer": "concat-json"})
    assert _errors("parallel-stage", base | {"workers": True})
    assert _errors("parallel-stage", base | {"split": "table"}) == []
