"""Read AGILAB's files into the typed model, in phases, collecting every problem at once.

Phase 1 — the bytes: the file exists, is UTF-8, is TOML (``tomllib``, fast).
Phase 2 — the schema: keys, aliases, types and enum values, per stage (pydantic); expressions inside
strings (``mode``, ``when``, ``function``, ``${…}`` holes) parse.
Semantic checks across stages and files (ids, deps, cycles, settings references) are in ``check``.

Every problem becomes a located :class:`~agilab_dsl.load.errors.Diagnostic`; foreign exceptions
(tomllib, pydantic, lark) never escape.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar

from . import expr
from .errors import Diagnostic, Severity, did_you_mean, make
from .source import KeyPath, SourceMap, iter_strings

T = TypeVar("T")
FileKind = Literal["lab", "contract", "settings"]

# Stage fields whose strings may hold ${…} holes. Code (C), prose (D, Q, M) and provenance (NB_*)
# are taken literally: interpolating Python source would be a trap.
TEMPLATE_FIELDS = ("env", "produces", "consumes", "params", "stage")


@dataclass(frozen=True)
class StringRef:
    """A ``${…}`` (or ``when``) reference found in a stage, with where it sits."""

    stage_index: int  # index into Lab.stages
    ref: expr.Ref
    key_path: KeyPath  # where the string sits in the file
    offset: int  # offset of the reference inside the string (for locating it)
    in_template: bool


@dataclass
class LoadResult(Generic[T]):
    """What loading one file gave: the value (None when an error stopped it) and every diagnostic."""

    path: str
    kind: FileKind | None
    value: T | None
    diagnostics: list[Diagnostic] = field(default_factory=list)
    source: SourceMap | None = None
    data: dict[str, Any] | None = None
    refs: list[StringRef] = field(default_factory=list)
    partial: Any = None  # for labs: the Lab built from the stages that validated, even when others did not
    invalid_ids: set[str] = field(default_factory=set)  # for labs: ids of stages that failed validation
    profile: str | None = None  # for labs: the selected profile, deep-merged into the stages that define it
    graph: Any = None  # for labs: the StepGraph, once the semantic checks found it sound

    def locator(self) -> Locator:
        """A locator that appends to this result's diagnostics."""
        loc = Locator(self.path, self.source)
        loc.diagnostics = self.diagnostics
        return loc

    @property
    def ok(self) -> bool:
        return self.value is not None and not any(d.is_error for d in self.diagnostics)


# ---------------------------------------------------------------------------------------------
# Locating diagnostics


class Locator:
    """Builds diagnostics for one file, turning key paths and offsets into line/column + source."""

    def __init__(self, path: str, source: SourceMap | None) -> None:
        self.path = path
        self.source = source
        self.diagnostics: list[Diagnostic] = []

    def _emit(
        self,
        code: str,
        message: str,
        offset: int | None,
        *,
        key: str | None,
        hint: str | None,
        width: int,
        severity: Severity | None,
    ) -> Diagnostic:
        line = col = None
        text = None
        if offset is not None and self.source is not None:
            line, col = self.source.line_col(offset)
            text = self.source.line_text(line)
        d = make(
            code,
            message,
            self.path,
            line,
            col,
            severity=severity,
            key=key,
            hint=hint,
            source_line=text,
            width=width,
        )
        self.diagnostics.append(d)
        return d

    def at_offset(
        self,
        code: str,
        message: str,
        offset: int | None,
        *,
        key: KeyPath | str | None = None,
        hint: str | None = None,
        width: int = 1,
        severity: Severity | None = None,
    ) -> Diagnostic:
        return self._emit(
            code, message, offset, key=_key_text(key), hint=hint, width=width, severity=severity
        )

    def at_key(
        self,
        code: str,
        message: str,
        path: KeyPath,
        *,
        hint: str | None = None,
        severity: Severity | None = None,
    ) -> Diagnostic:
        span = self.source.span(path) if self.source else None
        offset = span.key if span else (0 if self.source is not None and not path else None)
        width = 1
        if (
            span is not None
            and self.source is not None
            and isinstance(path[-1], str)
            and span.kind != "header"
        ):
            width = len(self._written_key(span.key)) or 1
        return self._emit(
            code, message, offset, key=_key_text(path), hint=hint, width=width, severity=severity
        )

    def at_value(
        self,
        code: str,
        message: str,
        path: KeyPath,
        *,
        hint: str | None = None,
        severity: Severity | None = None,
    ) -> Diagnostic:
        span = self.source.span(path) if self.source else None
        offset = span.value if span else None
        width = 1
        if span is not None and self.source is not None:
            line, col = self.source.line_col(span.value)
            width = min(span.end - span.value, len(self.source.line_text(line)) - col + 1)
        return self._emit(
            code, message, offset, key=_key_text(path), hint=hint, width=width, severity=severity
        )

    def in_string(
        self,
        code: str,
        message: str,
        path: KeyPath,
        index: int,
        *,
        hint: str | None = None,
        width: int = 1,
        severity: Severity | None = None,
    ) -> Diagnostic:
        offset = self.source.string_offset(path, index) if self.source else None
        if offset is None:
            return self.at_value(code, message, path, hint=hint, severity=severity)
        return self._emit(
            code, message, offset, key=_key_text(path), hint=hint, width=width, severity=severity
        )

    def _written_key(self, offset: int) -> str:
        assert self.source is not None
        m = re.compile(r'"(?:[^"\\]|\\.)*"|\'[^\']*\'|[A-Za-z0-9_-]+').match(self.source.text, offset)
        return m.group() if m else ""


def _key_text(key: KeyPath | str | None) -> str | None:
    if key is None or isinstance(key, str):
        return key
    out = ""
    for part in key:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            seg = part if re.fullmatch(r"[A-Za-z0-9_-]+", part) else json.dumps(part, ensure_ascii=False)
            out += ("." if out else "") + seg
    return out


def toml_repr(value: Any, limit: int = 60) -> str:
    """A value as TOML would show it, shortened for messages."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, str):
        text = json.dumps(value, ensure_ascii=False)
    elif isinstance(value, dict):
        text = "{" + ", ".join(f"{k} = {toml_repr(v, limit)}" for k, v in value.items()) + "}"
    elif isinstance(value, list):
        text = "[" + ", ".join(toml_repr(v, limit) for v in value) + "]"
    else:
        text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


# ---------------------------------------------------------------------------------------------
# Phase 1: bytes and TOML

_TOML_POS = re.compile(r"\(at line (\d+), column (\d+)\)")


def read_toml(
    path: str | Path, text: str | None = None
) -> tuple[dict[str, Any] | None, SourceMap | None, Locator]:
    """Read and parse a TOML file. On failure the locator holds the diagnostic and data is None."""
    name = str(path)
    loc = Locator(name, None)
    if text is None:
        p = Path(path)
        try:
            raw = p.read_bytes()
        except FileNotFoundError:
            siblings = [c.name for c in p.parent.glob("*.toml")] if p.parent.is_dir() else []
            loc.at_offset(
                "file-missing", "no such file", None, hint=did_you_mean(p.name, siblings, cutoff=0.8)
            )
            return None, None, loc
        except IsADirectoryError:
            loc.at_offset("file-unreadable", "is a directory, not a file", None)
            return None, None, loc
        except OSError as exc:
            loc.at_offset("file-unreadable", f"cannot read: {exc.strerror or exc}", None)
            return None, None, loc
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            good = raw[: exc.start].decode("utf-8")
            partial = SourceMap(good)  # only its line index is used: the text is not TOML
            line, col = partial.line_col(len(good))
            loc.diagnostics.append(
                make(
                    "encoding-invalid",
                    f"byte 0x{raw[exc.start]:02x} is not valid UTF-8",
                    name,
                    line,
                    col,
                    source_line=partial.line_text(line),
                    hint="TOML files must be UTF-8",
                )
            )
            return None, None, loc
    if text.startswith("\ufeff"):
        text = text[1:]
    try:
        data = tomllib.loads(text)
    except RecursionError:  # arrays or inline tables nested thousands deep: tomllib recurses
        partial = SourceMap(text)
        line, col = _deepest_opening(text, partial)
        loc.diagnostics.append(
            make(
                "toml-syntax",
                "arrays or inline tables are nested too deeply to read",
                name,
                line,
                col,
                source_line=partial.line_text(line),
                hint="a lab file needs a few levels of nesting, not hundreds",
            )
        )
        return None, None, loc
    except tomllib.TOMLDecodeError as exc:
        msg = str(exc)
        m = _TOML_POS.search(msg)
        reason = _TOML_POS.sub("", msg).strip()
        reason = reason[0].lower() + reason[1:] if reason else "invalid TOML"
        partial = SourceMap(text)  # only its line index is used: the text is not TOML
        if m:
            line, col = int(m.group(1)), int(m.group(2))
            if "cannot overwrite" in reason or "cannot declare" in reason:
                text_line = partial.line_text(line)
                col = len(text_line) - len(text_line.lstrip()) + 1  # point at the key, not past the value
        else:  # "at end of document"
            line, col = partial.line_col(len(text))
            reason = reason.replace("(at end of document)", "").strip() + " at end of file"
        loc.diagnostics.append(
            make(
                "toml-syntax",
                reason,
                name,
                line,
                col,
                source_line=partial.line_text(line),
                hint=_toml_hint(reason, partial.line_text(line)),
            )
        )
        return None, None, loc
    source = SourceMap(text)
    loc.source = source
    return data, source, loc


def _toml_hint(reason: str, line: str) -> str | None:
    if "cannot overwrite a value" in reason.lower() or "cannot declare" in reason.lower():
        return "a key (or table) is defined twice"
    if "invalid value" in reason.lower() and re.search(r"=\s*[A-Za-z]", line):
        return "strings need quotes; booleans are lowercase true/false"
    if "illegal character" in reason.lower() and "\\n" in reason:
        return "a string is not closed before the end of the line (use ''' or \"\"\" for multi-line text)"
    if "unclosed" in reason.lower() or ("expected" in reason.lower() and "]" in reason):
        return "check that every bracket, brace and quote is closed"
    return None


def _deepest_opening(text: str, source: SourceMap) -> tuple[int, int]:
    """Line and column of the bracket or brace that opens the deepest nesting (outside strings,
    roughly: quotes toggle a flag), for a file too deeply nested to parse."""
    depth, best, best_at, quote = 0, 0, 0, ""
    for at, ch in enumerate(text):
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "\"'":
            quote = ch
        elif ch in "[{":
            depth += 1
            if depth > best:
                best, best_at = depth, at
        elif ch in "]}":
            depth -= 1
        elif ch == "\n":
            quote = ""
    return source.line_col(best_at)


def detect_kind(path: str | Path, data: Mapping[str, Any]) -> FileKind | None:
    """Which of the three formats a parsed file is: by schema stamp, then file name, then shape."""
    schema = data.get("schema")
    meta = data.get("__meta__")
    if isinstance(schema, str) and schema.startswith("agilab.parallel_stage"):
        return "contract"
    if (
        isinstance(meta, dict)
        and isinstance(meta.get("schema"), str)
        and meta["schema"].startswith("agilab.lab_st")
    ):
        return "lab"
    name = Path(path).name.lower()
    if "parallel_stage" in name:
        return "contract"
    if "lab_steps" in name or "lab_stages" in name:
        return "lab"
    if "app_settings" in name:
        return "settings"
    if "__meta__" in data or any(_is_table_array(v) for v in data.values()):
        return "lab"
    if {"function", "split", "reducer"} <= data.keys():
        return "contract"
    if isinstance(data.get("args"), dict) or isinstance(data.get("cluster"), dict):
        return "settings"
    return None


def _is_table_array(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)


# ---------------------------------------------------------------------------------------------
# Pydantic errors → diagnostics

_PHRASES = {
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "string_type": "a string",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "float_type": "a number",
    "float_parsing": "a number",
    "dict_type": "a table",
    "tuple_type": "an array",
    "list_type": "an array",
    "model_type": "a table",
    "model_attributes_type": "a table",
}


def _phrase(err: Mapping[str, Any]) -> tuple[str, str]:
    """(code, phrase) for one pydantic error: what the value should have been."""
    etype = err["type"]
    ctx = err.get("ctx") or {}
    if etype in _PHRASES:
        return "wrong-type", _PHRASES[etype]
    if etype == "literal_error":
        return "invalid-value", "one of " + str(ctx.get("expected", "")).replace("'", '"')
    if etype == "greater_than_equal":
        return "invalid-value", f"≥ {ctx.get('ge')}"
    if etype == "greater_than":
        return "invalid-value", f"> {ctx.get('gt')}"
    if etype in ("less_than_equal", "less_than"):
        return "invalid-value", f"≤ {ctx.get('le', ctx.get('lt'))}"
    if etype == "string_too_short":
        return "invalid-value", "a non-empty string"
    if etype == "string_pattern_mismatch":
        return "function-reference-invalid", "a function reference module_or_path:function"
    return "invalid-value", err.get("msg", "valid").removeprefix("Value error, ").lower()


def _allowed_values(errors: list[Mapping[str, Any]]) -> list[str]:
    out: list[str] = []
    for err in errors:
        if err["type"] == "literal_error":
            out += re.findall(r"'([^']*)'", str((err.get("ctx") or {}).get("expected", "")))
    return out


def report_validation(
    loc: Locator,
    exc: Any,
    base: KeyPath,
    data: Mapping[str, Any],
    written: Mapping[str, str] | None = None,
    *,
    known_keys: tuple[str, ...] = (),
    context: str = "",
) -> None:
    """Turn a pydantic ValidationError on ``data`` (found at ``base`` in the file) into diagnostics;
    ``context`` prefixes each message (e.g. which profile the data came from)."""
    grouped: dict[KeyPath, list[Mapping[str, Any]]] = {}
    for err in exc.errors(include_url=False):
        path = _trim_loc(tuple(err["loc"]), data)
        if written and path and isinstance(path[0], str) and path[0] in written:
            path = (written[path[0]],) + path[1:]
        grouped.setdefault(path, []).append(err)
    for path, errs in grouped.items():
        full = base + path
        name = _key_text(path) or "value"
        first = errs[0]
        if first["type"] == "missing":
            loc.at_key(
                "key-missing", f"{context}required key {name!r} is missing", base, hint=f"add {name} = …"
            )
            continue
        if first["type"] == "extra_forbidden":
            loc.at_key(
                "unknown-key",
                f"{context}unknown key {name!r}",
                full,
                hint=did_you_mean(str(path[-1]), known_keys),
            )
            continue
        codes_phrases = [_phrase(e) for e in errs]
        codes = [c for c, _ in codes_phrases]
        code = codes[0]
        if len(codes) > 1 and "invalid-value" in codes:  # a union (int | "auto"): a wrong type wins
            code = "wrong-type" if "wrong-type" in codes else "invalid-value"
        phrases = list(dict.fromkeys(p for _, p in codes_phrases))
        value = first.get("input")
        hint = None
        allowed = _allowed_values(errs)
        if allowed and isinstance(value, str):
            hint = did_you_mean(value, allowed)
        if isinstance(value, str) and "a table" in phrases:
            hint = hint or f"write [{name}] as a table"
        if isinstance(value, str) and "an array" in phrases:
            hint = hint or f'write {name} = ["{value}"]'
        loc.at_value(
            code, f"{context}{name} must be {' or '.join(phrases)}, not {toml_repr(value)}", full, hint=hint
        )


def _trim_loc(loc: tuple[Any, ...], data: Any) -> KeyPath:
    """The part of a pydantic error location that names real keys (drops union-member labels)."""
    out: list[str | int] = []
    node = data
    for part in loc:
        if (isinstance(node, Mapping) and part in node) or (
            isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        ):
            out.append(part)
            node = node[part]
        elif not out and isinstance(part, str):
            out.append(part)  # a missing or extra top-level key
            break
        else:
            break
    return tuple(out)


# ---------------------------------------------------------------------------------------------
# Phase 2: labs


def _read(
    path: str | Path, text: str | None, kind: FileKind | None, profile: str | None = None
) -> tuple[LoadResult[Any], Locator]:
    data, source, loc = read_toml(path, text)
    return LoadResult(str(path), kind, None, loc.diagnostics, source, data, profile=profile), loc


def load_lab(path: str | Path, text: str | None = None, *, profile: str | None = None) -> LoadResult[Any]:
    """Load ``lab_steps.toml`` / ``lab_stages.toml`` (both names, both stamps, legacy arrays).
    With ``profile``, each stage that defines that profile gets its overrides deep-merged."""
    result, loc = _read(path, text, "lab", profile)
    if result.data is not None:
        build_lab(result, loc)
    return result


def load_contract(path: str | Path, text: str | None = None) -> LoadResult[Any]:
    """Load a ``parallel_stage.toml`` and give AGILAB's checks and warnings."""
    result, loc = _read(path, text, "contract")
    if result.data is not None:
        build_contract(result, loc)
    return result


def load_settings(path: str | Path, text: str | None = None) -> LoadResult[Any]:
    """Load an ``app_settings.toml``: ``[args]``, ``[cluster]``, and other tables kept as written."""
    result, loc = _read(path, text, "settings")
    if result.data is not None:
        build_settings(result, loc)
    return result


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
        if meta is not None and module in meta.sequences:
            seq = list(meta.sequences[module])
            order = seq + [i for i in order if i not in seq]
        for index in order:
            raw = data[module][index]
            stage = _build_stage(raw, (module, index), aliases, loc, Stage, ValidationError, result.profile)
            if stage is None:  # not even a partial stage: its id is still known
                written_id = raw.get("id", raw.get("stage_id"))
                result.invalid_ids.add(
                    written_id if isinstance(written_id, str) else f"{module}_{index + 1:03d}"
                )
                continue
            sid = stage.id or f"{module}_{index + 1:03d}"
            stages.append(LabStage(module=module, index=index, id=sid, stage=stage))

    for n, placed in enumerate(stages):
        _check_stage_expressions(result, loc, n, placed)

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
            loc.at_key("unknown-key", f"unknown key {key!r} in [__meta__]", kp, hint=did_you_mean(key, known))
            ok = False
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
    count = len(data[module])
    seen: set[int] = set()
    ok = True
    for i, v in enumerate(value):
        if not 0 <= v < count:
            loc.at_value(
                "sequence-invalid",
                f"index {v} is out of range: {module!r} has {count} stage(s) (0-based)",
                kp + (i,),
            )
            ok = False
        elif v in seen:
            loc.at_value("sequence-invalid", f"index {v} appears twice in {kp[-1]}", kp + (i,))
            ok = False
        seen.add(v)
    return tuple(value) if ok else None


def _build_stage(
    raw: Mapping[str, Any],
    base: KeyPath,
    aliases: Mapping[str, str],
    loc: Locator,
    stage_cls: Any,
    validation_error: Any,
    profile: str | None = None,
) -> Any:
    from .model import KNOWN_ENGINES

    canon: dict[str, Any] = {}
    written: dict[str, str] = {}
    notebook: dict[str, Any] = {}
    for key, value in raw.items():
        if key.startswith("NB_"):
            notebook[key] = value
            continue
        name = aliases.get(key)
        if name is None:
            loc.at_key(
                "unknown-key",
                f"unknown stage key {key!r}",
                base + (key,),
                hint=did_you_mean(key, aliases) or "NB_* keys are kept as notebook provenance",
            )
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
    profiles = canon.get("profiles")
    if isinstance(profiles, dict):
        for pname, overrides in profiles.items():
            merged = _check_profile(
                pname,
                overrides,
                canon,
                base + (written["profiles"], pname),
                aliases,
                loc,
                stage_cls,
                validation_error,
            )
            if merged is not None and pname == profile:
                canon = merged
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
    if stage.engine is not None and stage.engine not in KNOWN_ENGINES:
        loc.at_value(
            "engine-unknown",
            f"unknown engine R = {toml_repr(stage.engine)}",
            base + (written["engine"],),
            hint=did_you_mean(stage.engine, [e for e in KNOWN_ENGINES if e])
            or 'known engines: "", "runpy", "agi.run", "agi.install"',
        )
    if not actions and not stage.disabled:
        loc.at_key(
            "stage-empty",
            "this stage has no C, function or stage to run",
            base,
            hint="AGILAB drops such stages on save; this tool keeps them and skips them",
        )
    return stage


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
    over: dict[str, Any] = {}
    written: dict[str, str] = {}
    for key, value in overrides.items():
        field_name = aliases.get(key)
        if field_name is None or field_name == "profiles":
            loc.at_key(
                "unknown-key",
                f"profile {name!r} overrides unknown stage key {key!r}",
                at + (key,),
                hint=did_you_mean(key, aliases),
            )
            return None
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


def _check_stage_expressions(result: LoadResult[Any], loc: Locator, n: int, placed: Any) -> None:
    """Parse mode, when, function and ${…} holes of one stage, reporting errors inside the strings."""
    from .model import stage_key_aliases

    stage = placed.stage
    base: KeyPath = (placed.module, placed.index)
    raw = result.data[placed.module][placed.index]  # type: ignore[index]
    by_field: dict[str, str] = {}
    aliases = stage_key_aliases()
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


def build_contract(result: LoadResult[Any], loc: Locator) -> None:
    """Validate a parsed ``parallel_stage.toml`` and give AGILAB's checks and warnings."""
    from pydantic import ValidationError

    from .model import PARALLEL_SCHEMA, ParallelContract

    data = result.data
    assert data is not None
    known = tuple(ParallelContract.model_fields)
    known = tuple("schema" if k == "schema_" else k for k in known)
    schema = data.get("schema")
    if schema is not None and schema != PARALLEL_SCHEMA:
        loc.at_value(
            "metadata-schema",
            f"unknown contract schema {toml_repr(schema)}",
            ("schema",),
            hint=did_you_mean(str(schema), [PARALLEL_SCHEMA]) or f"use {PARALLEL_SCHEMA!r}",
        )
        data = {k: v for k, v in data.items() if k != "schema"} | {"schema": PARALLEL_SCHEMA}
    try:
        contract = ParallelContract.model_validate(data)
    except ValidationError as exc:
        report_validation(loc, exc, (), data, known_keys=known)
        return
    for key in ("function", "reducer_function"):
        value = getattr(contract, key)
        if value is not None:
            try:
                expr.parse_funcref(value)
            except expr.ExprSyntaxError as exc:
                loc.at_value(exc.code, exc.message, (key,), hint=exc.hint)
    if contract.workers == 1:
        loc.at_value(
            "workers-single",
            "workers = 1 does not parallelise",
            ("workers",),
            hint='use workers = "auto" or a count above 1',
        )
    if contract.reducer == "custom" and not (contract.notes or "").strip():
        loc.at_value(
            "reducer-custom-without-notes",
            "a custom reducer without notes: say what it does",
            ("reducer",),
            hint='add notes = "…"',
        )
    if contract.reducer == "custom" and contract.reducer_function is None:
        loc.at_value(
            "reducer-function-missing",
            'reducer = "custom" needs reducer_function to run here',
            ("reducer",),
            hint='add reducer_function = "module:function"',
        )
    if contract.backend == "dask" and contract.workers == 1:
        loc.at_value(
            "dask-single-worker",
            "the dask backend with a single worker",
            ("backend",),
            hint='use workers = "auto" or more than 1, or backend = "local"',
        )
    if contract.partition_strategy == "file-chunks" and contract.target_partitions == 0:
        loc.at_value(
            "file-chunks-auto-partitions",
            "file-chunks with target_partitions = 0: chunk count left to the runner",
            ("target_partitions",),
            hint="set target_partitions to the chunk count you want",
        )
    if not any(d.is_error for d in loc.diagnostics):
        result.value = contract


def build_settings(result: LoadResult[Any], loc: Locator) -> None:
    """Validate a parsed ``app_settings.toml``: ``[args]``, ``[cluster]``, other tables kept as written."""
    from pydantic import ValidationError

    from .model import CLUSTER_KEYS, AppSettings

    data = result.data
    assert data is not None
    cluster = data.get("cluster")
    if isinstance(cluster, dict):
        for key in cluster:
            if key not in CLUSTER_KEYS:
                loc.at_key(
                    "unknown-key",
                    f"unknown [cluster] key {key!r}",
                    ("cluster", key),
                    severity=Severity.WARNING,
                    hint=did_you_mean(key, CLUSTER_KEYS),
                )
    try:
        settings = AppSettings.model_validate(data)
    except ValidationError as exc:
        report_validation(loc, exc, (), data, known_keys=("args", "cluster"))
        return
    if not any(d.is_error for d in loc.diagnostics):
        result.value = settings


def load_any(
    path: str | Path, kind: FileKind | None = None, *, profile: str | None = None
) -> LoadResult[Any]:
    """Load a file of any of the three kinds, recognised by stamp, name or shape (parsed once)."""
    result, loc = _read(path, None, kind, profile)
    if result.data is None:
        return result
    result.kind = kind or detect_kind(path, result.data)
    builders = {"lab": build_lab, "contract": build_contract, "settings": build_settings}
    if result.kind in builders:
        builders[result.kind](result, loc)
        return result
    loc.at_offset(
        "file-kind-unknown",
        "not a lab, parallel contract or settings file",
        None,
        hint="name it lab_steps.toml, lab_stages.toml, parallel_stage.toml or app_settings.toml, "
        "or add a schema stamp",
    )
    return result
