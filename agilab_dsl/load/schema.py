"""JSON Schemas for editors (Taplo / Even Better TOML), generated from the pydantic models.

The committed copies in ``lab_steps/schema/`` are checked against these by the tests, so the
schemas cannot drift from the models.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from pydantic import AliasChoices

from .model import META_KEY, Automation, ParallelContract, Stage
from .settings_model import AppSettings

SCHEMA_NAMES = ("lab-steps", "parallel-stage", "app-settings")
DRAFT = "https://json-schema.org/draft/2020-12/schema"
BASE_ID = "https://agilab-dsl.invalid/schema/"


def _stage_schema() -> dict[str, Any]:
    schema = Stage.model_json_schema(mode="validation")
    props: dict[str, Any] = schema["properties"]
    out: dict[str, Any] = {}
    for name, info in Stage.model_fields.items():
        if name == "notebook":
            continue
        alias = info.validation_alias
        choices = [str(c) for c in alias.choices] if isinstance(alias, AliasChoices) else [name]
        first = props.get(choices[0]) or props.get(name)
        assert first is not None, name
        for n, choice in enumerate(choices):
            entry = copy.deepcopy(first)
            if n:
                entry["description"] = f"alias of {choices[0]}. " + entry.get("description", "")
            entry.pop("title", None)
            out[choice] = entry
    schema["properties"] = out
    schema["patternProperties"] = {"^NB_": {"description": "notebook provenance, preserved"}}
    schema["additionalProperties"] = False
    schema.pop("required", None)
    schema["title"] = "Stage"
    return schema


def lab_steps_schema() -> dict[str, Any]:
    stage = _stage_schema()
    defs = stage.pop("$defs", {})
    defs["Stage"] = stage
    automation = Automation.model_json_schema()
    defs["Automation"] = automation
    meta = {
        "type": "object",
        "title": "__meta__",
        "properties": {
            "schema": {"enum": ["agilab.lab_steps.v1", "agilab.lab_stages.v1"]},
            "version": {"const": 1},
        },
        "patternProperties": {
            "__sequence$": {
                "type": "array",
                "items": {"type": "integer", "minimum": 0},
                "description": "saved order of the module's stages (0-based)",
            },
            "__automation$": {"$ref": "#/$defs/Automation"},
        },
        "additionalProperties": False,
    }
    return {
        "$schema": DRAFT,
        "$id": BASE_ID + "lab-steps.schema.json",
        "title": "AGILAB lab_steps.toml / lab_stages.toml",
        "description": "One array of stage tables per module key, plus an optional [__meta__] table.",
        "type": "object",
        "properties": {META_KEY: meta},
        "additionalProperties": {"type": "array", "items": {"$ref": "#/$defs/Stage"}},
        "$defs": defs,
    }


def parallel_stage_schema() -> dict[str, Any]:
    schema = ParallelContract.model_json_schema(mode="validation", by_alias=True)
    # the split aliases are accepted on input
    split = schema["properties"]["split"]
    split["enum"] = list(split.get("enum", [])) + ["table", "params"]
    return {
        "$schema": DRAFT,
        "$id": BASE_ID + "parallel-stage.schema.json",
        "title": "AGILAB parallel_stage.toml",
        **{k: v for k, v in schema.items() if k != "title"},
    }


def app_settings_schema() -> dict[str, Any]:
    schema = AppSettings.model_json_schema(mode="validation")
    return {
        "$schema": DRAFT,
        "$id": BASE_ID + "app-settings.schema.json",
        "title": "AGILAB app_settings.toml",
        **{k: v for k, v in schema.items() if k != "title"},
    }


def generate(name: str) -> dict[str, Any]:
    if name == "lab-steps":
        return lab_steps_schema()
    if name == "parallel-stage":
        return parallel_stage_schema()
    if name == "app-settings":
        return app_settings_schema()
    raise KeyError(name)


def render(name: str) -> str:
    return json.dumps(generate(name), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
