"""Building one stage of a lab: its keys and aliases, its profiles, and the expressions in its strings.

:func:`build_stage` maps the written keys (``C``, ``D``, ``R``…) to the model's fields, reports
unknown and conflicting keys, validates each profile's overrides and deep-merges the selected one;
:func:`check_stage_expressions` parses ``mode``, ``when``, ``function`` and ``${…}`` holes and
records every reference they hold.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from . import expr
from .errors import Severity, did_you_mean, nearest_key
from .parse import LoadResult, Locator, StringRef, toml_repr
from .source import KeyPath, iter_strings
from .validation import report_validation

# Stage fields whose strings may hold ${…} holes. Code (C), prose (D, Q, M) and provenance (NB_*)
# are taken literally: interpolating Python source would be a trap.
TEMPLATE_FIELDS = ("env", "produces", "consumes", "params", "stage")


@functools.cache
def _model_names() -> tuple[tuple[str, ...], tuple[str, ...], Mapping[str, str]]:
    """The model's known engines, automation keys lifted from a stage's top level, and stage key
    aliases: imported once (the model imports pydantic), not once per stage of a 10,000-stage lab."""
    from .model import KNOWN_ENGINES, LIFTED_AUTOMATION_KEYS, stage_key_aliases

    return KNOWN_ENGINES, LIFTED_AUTOMATION_KEYS, stage_key_aliases()


def build_stage(
    raw: Mapping[str, Any],
    base: KeyPath,
    aliases: Mapping[str, str],
    loc: Locator,
    stage_cls: Any,
    validation_error: Any,
    profile: str | None = None,
) -> Any:
    known_engines, lifted_keys, _ = _model_names()
    selected = _selected_profile(raw, profile)
    if selected:  # AGILAB deep-merges the written stage with the profile's overrides, then reads it
        written_as = {aliases[k]: k for k in raw if k in aliases}  # an override lands on the key written
        known = {k: v for k, v in selected.items() if k in aliases or k in lifted_keys}
        raw = deep_merge(raw, {written_as.get(aliases.get(k, ""), k): v for k, v in known.items()})
    canon: dict[str, Any] = {}
    written: dict[str, str] = {}
    notebook: dict[str, Any] = {}
    lifted: dict[str, Any] = {}
    for key, value in raw.items():
        if key.startswith("NB_"):
            notebook[key] = value
            continue
        if key in lifted_keys:  # read as automation.<key> when automation lacks it
            lifted[key] = value
            continue
        name = aliases.get(key)
        if name is None:
            loc.at_key(
                "unknown-key",
                f"unknown stage key {key!r} (kept, not used)",
                base + (key,),
                hint=nearest_key(key, aliases),
                severity=Severity.WARNING,
            )
            continue
        if name in canon and name in JOINED and _joinable(canon[name], value):
            canon[name] = _joined(canon[name], value)  # AGILAB reads every alias of these and joins them
            continue
        if name in canon:
            loc.at_key(
                "key-conflict",
                f"{key!r} and {written[name]!r} both set the stage's {name}",
                base + (key,),
                hint=f"keep one of {written[name]!r} and {key!r}",
            )
            continue
        canon[name] = value
        written[name] = key
    actions = [written[k] for k in ("code", "function", "stage") if k in canon and canon[k] not in (None, "")]
    if len(actions) > 1:
        both = " and ".join(actions) if len(actions) == 2 else ", ".join(actions)
        loc.at_key(
            "key-conflict",
            f"a stage runs one thing: {both} are {'both' if len(actions) == 2 else 'all'} set",
            base + (actions[1],),
            hint="keep exactly one of C, function, stage",
        )
    if "timeout" in canon and (isinstance(canon["timeout"], (bool, str))):
        loc.at_value(
            "wrong-type",
            f"timeout must be a number of seconds, not {toml_repr(canon['timeout'])}",
            base + (written["timeout"],),
        )
        canon.pop("timeout")
    canon["notebook"] = notebook
    if lifted:
        automation = canon.get("automation", {})
        if isinstance(automation, dict):
            canon["automation"] = {**lifted, **automation}
    profiles = canon.get("profiles")
    if isinstance(profiles, dict):
        for pname, overrides in profiles.items():
            _check_profile(
                pname,
                overrides,
                canon,
                base + (written["profiles"], pname),
                aliases,
                loc,
                stage_cls,
                validation_error,
            )
    try:
        stage = stage_cls.model_validate(canon)
    except validation_error as exc:
        report_validation(loc, exc, base, canon, written, known_keys=tuple(aliases))
        # drop the fields just reported and build what remains, so that the later phases
        # (expressions, ids, deps) still report this stage's other problems
        bad = {e["loc"][0] for e in exc.errors() if e["loc"]}
        try:
            stage = stage_cls.model_validate({k: v for k, v in canon.items() if k not in bad})
        except validation_error:
            return None
    if stage.engine is not None and stage.engine not in known_engines:
        loc.at_value(
            "engine-unknown",
            f"unknown engine R = {toml_repr(stage.engine)}",
            base + (written["engine"],),
            hint=did_you_mean(stage.engine, [e for e in known_engines if e])
            or 'known engines: "", "runpy", "agi.run", "agi.install"',
        )
    if not actions and not stage.disabled:
        prompt = isinstance(stage.question, str) and stage.question.strip()
        loc.at_key(
            "stage-empty",
            "this stage has no C, function or stage to run",
            base,
            hint="a prompt awaiting its code: AGILAB shows it and skips it at run time, as this tool does"
            if prompt
            else "AGILAB's WORKFLOW page hides a stage with neither Q nor C and drops it on the next save; "
            "this tool keeps it and skips it",
        )
    declared_out = [p for p in stage.automation.outputs if p not in stage.produces]
    declared_in = [p for p in stage.automation.inputs if p not in stage.consumes]
    if declared_out or declared_in:  # automation's declared paths are artifacts too
        stage = stage.model_copy(
            update={
                "produces": stage.produces + tuple(dict.fromkeys(declared_out)),
                "consumes": stage.consumes + tuple(dict.fromkeys(declared_in)),
            }
        )
    return stage


def id_problem(sid: str) -> str | None:
    """Why a step id is not a plain name, or None. A step's log and result are
    ``.agilab/runs/<run>/<id>.log``: an id must not lead anywhere else (a separator, ``..``, an
    absolute path, NUL or another control character)."""
    if sid.strip() in ("", ".", ".."):
        return "is not a name" if not sid.strip() else f"is {sid.strip()!r}, a folder, not a name"
    for ch in sid:
        if ch in "/\\":
            return f"holds {ch!r}, a path separator"
        if ord(ch) < 32 or ord(ch) == 127:
            return f"holds the control character {ch!r}"
    if sid.startswith("~") or (sid[1:2] == ":" and sid[0].isalpha()):
        return "reads as a path"
    return None


# Fields AGILAB reads under several keys at once, joining them (consumes + uses + inputs …);
# other aliases of one field are a conflict.
JOINED = ("produces", "consumes", "profiles")


def _joinable(a: Any, b: Any) -> bool:
    return (isinstance(a, list) and isinstance(b, list)) or (isinstance(a, dict) and isinstance(b, dict))


def _joined(a: Any, b: Any) -> Any:
    if isinstance(a, dict):
        return {**b, **a}  # the first key written wins a profile name, as AGILAB looks them up in order
    return list(dict.fromkeys([*a, *b]))


def _selected_profile(raw: Mapping[str, Any], profile: str | None) -> dict[str, Any]:
    """The overrides of ``profile`` in the first of ``profiles``, ``pipeline_profiles``,
    ``automation_profiles`` that defines it (AGILAB's ``_stage_profile_override``)."""
    if not profile:
        return {}
    for key in ("profiles", "pipeline_profiles", "automation_profiles"):
        table = raw.get(key)
        if isinstance(table, Mapping) and isinstance(table.get(profile), Mapping):
            return dict(table[profile])
    return {}


def deep_merge(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``overrides`` applied: tables merge key by key, other values are replaced."""
    out = dict(base)
    for key, value in overrides.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _check_profile(
    name: str,
    overrides: Any,
    canon: Mapping[str, Any],
    at: KeyPath,
    aliases: Mapping[str, str],
    loc: Locator,
    stage_cls: Any,
    validation_error: Any,
) -> dict[str, Any] | None:
    """Validate one profile's overrides (as the stage they would make); the merged stage, or None."""
    if not isinstance(overrides, dict):
        return None  # the stage's own validation reports it (profiles.<name> must be a table)
    _, lifted_keys, _ = _model_names()
    over: dict[str, Any] = {}
    written: dict[str, str] = {}
    for key, value in overrides.items():
        if key in lifted_keys:
            over.setdefault("automation", {})[key] = value
            written.setdefault("automation", key)
            continue
        field_name = aliases.get(key)
        if field_name is None or field_name == "profiles":
            loc.at_key(
                "unknown-key",
                f"profile {name!r} overrides unknown stage key {key!r} (kept, not used)",
                at + (key,),
                hint=nearest_key(key, aliases),
                severity=Severity.WARNING,
            )
            continue
        over[field_name] = value
        written[field_name] = key
    merged = deep_merge(canon, over)
    try:
        stage_cls.model_validate(merged)
    except validation_error as exc:
        relevant = [e for e in exc.errors() if e["loc"] and e["loc"][0] in over]
        if relevant:
            report_validation(
                loc,
                _Errors(relevant),
                at,
                over,
                written,
                known_keys=tuple(aliases),
                context=f"in profile {name!r}: ",
            )
            return None
    return merged


class _Errors:
    """A subset of a pydantic ValidationError's errors, with the same ``errors()`` interface."""

    def __init__(self, errors: list[Any]) -> None:
        self._errors = errors

    def errors(self, include_url: bool = False) -> list[Any]:
        return self._errors


def check_stage_expressions(result: LoadResult[Any], loc: Locator, n: int, placed: Any) -> None:
    """Parse mode, when, function and ${…} holes of one stage, reporting errors inside the strings."""
    stage = placed.stage
    base: KeyPath = (placed.module, placed.index)
    raw = result.data[placed.module][placed.index]  # type: ignore[index]
    by_field: dict[str, str] = {}
    aliases = _model_names()[2]
    for key in raw:
        if key in aliases:
            by_field.setdefault(aliases[key], key)

    def report(exc: expr.ExprSyntaxError, path: KeyPath, shift: int = 0) -> None:
        loc.in_string(exc.code, exc.message, path, exc.offset + shift, hint=exc.hint, width=exc.width)

    if isinstance(stage.mode, str):
        try:
            expr.parse_mode(stage.mode)
        except expr.ExprSyntaxError as exc:
            report(exc, base + ("mode",))
    elif isinstance(stage.mode, int):
        try:
            expr.parse_mode(stage.mode)
        except expr.ExprSyntaxError as exc:
            loc.at_value("invalid-value", exc.message, base + ("mode",), hint="mode is a bitmask: 0..15")
    if stage.when is not None:
        try:
            node = expr.parse_condition(stage.when)
        except expr.ExprSyntaxError as exc:
            report(exc, base + ("when",))
        else:
            for ref in expr.iter_refs(node):
                result.refs.append(StringRef(n, ref, base + ("when",), ref.pos, False))
    if stage.function is not None:
        try:
            expr.parse_funcref(stage.function)
        except expr.ExprSyntaxError as exc:
            loc.at_value(exc.code, exc.message, base + ("function",), hint=exc.hint)
    for fname in TEMPLATE_FIELDS:
        key = by_field.get(fname)
        if key is None:
            continue
        for sub, text in iter_strings(raw[key]):
            if not expr.is_template(text):
                continue
            path = base + (key,) + sub
            try:
                template = expr.parse_template(text)
            except expr.ExprSyntaxError as exc:
                report(exc, path)
                continue
            for ref in expr.iter_refs(template):
                result.refs.append(StringRef(n, ref, path, ref.pos, True))
