"""Loading a lab (``lab_steps.toml`` / ``lab_stages.toml``): its modules' stage arrays and ``[__meta__]``.

:func:`build_lab` recognises the dialect (module keys, legacy ``[[steps]]`` / ``[[stages]]``),
validates ``[__meta__]`` (schema, version, per-module sequences and automation), orders each
module's stages by its sequence and builds them one by one (see :mod:`.stage`), keeping a partial
lab from the stages that validated.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from .errors import Severity, did_you_mean, nearest_key
from .parse import LoadResult, Locator, read_source, toml_repr
from .source import KeyPath
from .stage import build_stage, check_stage_expressions, id_problem
from .validation import report_validation


def load_lab(path: str | Path, text: str | None = None, *, profile: str | None = None) -> LoadResult[Any]:
    """Load ``lab_steps.toml`` / ``lab_stages.toml`` (both names, both stamps, legacy arrays).
    With ``profile``, each stage that defines that profile gets its overrides deep-merged."""
    result, loc = read_source(path, text, "lab", profile)
    if result.data is not None:
        build_lab(result, loc)
    return result


def require_lab(path: str | Path) -> Any:
    """A lab's model as its file defines it (the load phase only: no cross-stage rules, no code
    checks), for tools that rewrite the file's layout; raise LoadError when it does not build."""
    from .errors import LoadError

    result = load_lab(path)
    if result.value is None:
        raise LoadError(result.diagnostics)
    return result.value


def build_lab(result: LoadResult[Any], loc: Locator) -> None:
    from pydantic import ValidationError

    from .model import LEGACY_ARRAYS, META_KEY, Lab, LabMeta, LabStage, Stage, stage_key_aliases

    data = result.data
    assert data is not None
    aliases = stage_key_aliases()
    modules: list[str] = []
    reported = len(loc.diagnostics)
    for key, value in data.items():
        if key == META_KEY:
            continue
        if isinstance(value, list) and all(isinstance(v, dict) for v in value):
            modules.append(key)
            if key in LEGACY_ARRAYS:
                where = (key,) if result.source and (key,) in result.source.spans else (key, 0)
                loc.at_key(
                    "legacy-dialect",
                    f"legacy [[{key}]] array: AGILAB's own UI shows it as empty",
                    where,
                    hint="name the array after the app's module key, e.g. [[my_app]] "
                    "(agilab-run migrate rewrites it)",
                )
        elif isinstance(value, list):
            bad = next(i for i, v in enumerate(value) if not isinstance(v, dict))
            loc.at_value(
                "wrong-type",
                f"stages of {key!r} must be tables, not {toml_repr(value[bad])}",
                (key, bad),
                hint=f'write each stage as {{ C = "…" }} or under [[{key}]]',
            )
        elif isinstance(value, dict):
            loc.at_key(
                "wrong-type",
                f"{key!r} is a single table; a module's stages are an array of tables",
                (key,),
                hint=f"write [[{key}]] instead of [{key}]",
            )
        else:
            loc.at_key(
                "unknown-key",
                f"unknown top-level key {key!r}: a lab holds arrays of stages and [__meta__]",
                (key,),
                hint=did_you_mean(key, [META_KEY]),
            )
    if not modules and len(loc.diagnostics) == reported:
        loc.at_offset("lab-empty", "the lab defines no stage", 0)

    meta = _build_meta(data.get(META_KEY), modules, data, loc)

    stages: list[LabStage] = []
    for module in modules:
        order = list(range(len(data[module])))
        chosen = set(order)
        if meta is not None and meta.sequences.get(module):
            # AGILAB's saved selection: 0-based indices into the stages it displays, run in that order
            shown = displayable_indices(data[module])
            seq = [shown[v] for v in meta.sequences[module]]
            order = seq + [i for i in order if i not in seq]
            chosen = set(seq)
        settings = meta.automation.get(module) if meta is not None else None
        profile = result.profile or (settings.profile if settings is not None else None) or DEFAULT_PROFILE
        for index in order:
            raw = data[module][index]
            stage = build_stage(raw, (module, index), aliases, loc, Stage, ValidationError, profile)
            if stage is None:  # not even a partial stage: its id is still known
                written_id = raw.get("id", raw.get("stage_id"))
                result.invalid_ids.add(
                    written_id if isinstance(written_id, str) else f"{module}_{index + 1:03d}"
                )
                continue
            sid = stage.id or f"{module}_{index + 1:03d}"
            problem = id_problem(sid)
            if problem is not None:
                written_key = next((k for k in ("id", "stage_id") if k in raw), None)
                where: tuple[str | int, ...] = (module, index) + ((written_key,) if written_key else ())
                (loc.at_value if written_key else loc.at_key)(
                    "stage-id-invalid",
                    f"stage id {sid!r} {problem}: its log would be written outside .agilab/runs/",
                    where,
                    hint="use letters, digits, _ and -"
                    if written_key
                    else "this default id comes from the module key: give the stage an id",
                )
            # built from values of the right types already: pydantic's check of each would cost ~6%
            # of loading a big lab
            placed = LabStage.model_construct(
                module=module, index=index, id=sid, stage=stage, selected=index in chosen
            )
            stages.append(placed)

    for n, placed in enumerate(stages):
        check_stage_expressions(result, loc, n, placed)

    dialect: Literal["module-keys", "legacy-steps", "legacy-stages"] = "module-keys"
    if modules and all(m in LEGACY_ARRAYS for m in modules):
        dialect = "legacy-steps" if "steps" in modules else "legacy-stages"
    lab = Lab(
        path=result.path,
        dialect=dialect,
        module_keys=tuple(modules),
        stages=tuple(stages),
        meta=meta or LabMeta.model_validate({}),
        source=result.source,
    )
    result.partial = lab
    if not any(d.is_error for d in loc.diagnostics) and meta is not None:
        result.value = lab


DEFAULT_PROFILE = "balanced"  # AGILAB's pipeline profile when none is chosen or saved


def displayable(raw: Any) -> bool:
    """AGILAB's WORKFLOW page shows a stage that is a table with a non-blank ``Q`` or ``C``."""
    return isinstance(raw, Mapping) and any(
        isinstance(raw.get(k), str) and raw[k].strip() for k in ("Q", "C")
    )


def displayable_indices(stages: list[Any]) -> list[int]:
    """Positions (in the array as written) of the stages AGILAB displays: what __sequence counts."""
    return [i for i, raw in enumerate(stages) if displayable(raw)]


def _build_meta(raw: Any, modules: list[str], data: Mapping[str, Any], loc: Locator) -> Any:
    from pydantic import ValidationError

    from .model import LAB_SCHEMAS, Automation, LabMeta

    if raw is None:
        return LabMeta.model_validate({})
    if not isinstance(raw, dict):
        loc.at_key("wrong-type", "__meta__ must be a table", ("__meta__",))
        return None
    fields: dict[str, Any] = {}
    sequences: dict[str, tuple[int, ...]] = {}
    automation: dict[str, Any] = {}
    ok = True
    for key, value in raw.items():
        kp = ("__meta__", key)
        if key == "schema":
            if value == LAB_SCHEMAS[0]:
                loc.at_value(
                    "schema-legacy",
                    f"{toml_repr(value)}: AGILAB now refuses to save a lab with this stamp",
                    kp,
                    hint="run `agilab-run migrate FILE --to lab_stages` (stamps agilab.lab_stages.v1)",
                )
            if value not in LAB_SCHEMAS:
                loc.at_value(
                    "metadata-schema",
                    f"unknown lab schema {toml_repr(value)}",
                    kp,
                    hint=did_you_mean(str(value), LAB_SCHEMAS) or f"use {LAB_SCHEMAS[1]!r}",
                )
                ok = False
            else:
                fields["schema"] = value
        elif key == "version":
            if value != 1 or isinstance(value, bool):
                loc.at_value(
                    "metadata-version",
                    f"unsupported lab format version {toml_repr(value)}",
                    kp,
                    hint="this tool reads version = 1",
                )
                ok = False
            else:
                fields["version"] = 1
        elif key.endswith("__sequence"):
            module = key[: -len("__sequence")]
            seq = _check_sequence(module, value, modules, data, kp, loc)
            if seq is None:
                ok = False
            else:
                sequences[module] = seq
        elif key.endswith("__automation"):
            module = key[: -len("__automation")]
            if module not in modules:
                loc.at_key(
                    "sequence-invalid",
                    f"{key!r} names no module of this lab",
                    kp,
                    hint=did_you_mean(module, modules),
                )
                ok = False
                continue
            if not isinstance(value, dict):
                loc.at_value("wrong-type", f"{key} must be a table, not {toml_repr(value)}", kp)
                ok = False
                continue
            try:
                automation[module] = Automation.model_validate(value)
            except ValidationError as exc:
                report_validation(loc, exc, kp, value, known_keys=tuple(Automation.model_fields))
                ok = False
        else:
            known = (
                ["schema", "version"]
                + [f"{m}__sequence" for m in modules]
                + [f"{m}__automation" for m in modules]
            )
            loc.at_key(
                "unknown-key",
                f"unknown key {key!r} in [__meta__] (kept, not used)",
                kp,
                hint=nearest_key(key, known),
                severity=Severity.WARNING,
            )
    if not ok:
        return None
    return LabMeta.model_validate({**fields, "sequences": sequences, "automation": automation})


def _check_sequence(
    module: str, value: Any, modules: list[str], data: Mapping[str, Any], kp: KeyPath, loc: Locator
) -> tuple[int, ...] | None:
    if module not in modules:
        loc.at_key(
            "sequence-invalid",
            f"{kp[-1]!r} names no module of this lab",
            kp,
            hint=did_you_mean(module, modules),
        )
        return None
    if not isinstance(value, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        loc.at_value("wrong-type", f"{kp[-1]} must be an array of integers, not {toml_repr(value)}", kp)
        return None
    count = len(displayable_indices(data[module]))
    seen: set[int] = set()
    ok = True
    for i, v in enumerate(value):
        if not 0 <= v < count:
            loc.at_value(
                "sequence-invalid",
                f"index {v} is out of range: {module!r} has {count} stage(s) AGILAB displays (0-based)",
                kp + (i,),
                hint="indices count the stages with a non-blank Q or C, as AGILAB's WORKFLOW page shows them",
            )
            ok = False
        elif v in seen:
            loc.at_value("sequence-invalid", f"index {v} appears twice in {kp[-1]}", kp + (i,))
            ok = False
        seen.add(v)
    return tuple(value) if ok else None
