"""The text edits of ``agilab-run migrate``: pure functions from a lab's text to the migrated text.

Only what the migration changes is touched, at the offsets the source scanner reports; every other
character (comments, layout, quoting, line endings) stays as it was:

* the ``[__meta__]`` stamp: its ``schema`` value replaced; missing ``schema``/``version`` keys
  inserted right after the ``[__meta__]`` header (or inside an inline ``__meta__ = {…}``); a missing
  ``[__meta__]`` table appended at the end of the file, as AGILAB's own writer places it;
* a stage list renamed to the module key: every header that names it (``[[steps]]``,
  ``[steps.automation]``), a root ``steps = […]``, and its ``steps__sequence`` / ``steps__automation``
  keys in ``[__meta__]``.

What ``--to lab_stages`` did beyond the stamp is recorded in a last comment line
(``# agilab-run migrate: {"list": {"steps": "uav_queue"}, "meta": "added"}``), which
``--to lab_steps`` reads to undo exactly that; without it, ``--to lab_steps`` only changes the stamp.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..load.source import SourceMap, WrittenKey, written_keys

STAGES_STAMP = "agilab.lab_stages.v1"
STEPS_STAMP = "agilab.lab_steps.v1"
LEGACY_LISTS = ("steps", "stages")
META = "__meta__"
META_SUFFIXES = ("__sequence", "__automation")
MARKER = "# agilab-run migrate: "
_MARKER_LINE = re.compile(r"# agilab-run migrate: (\{.*\})[ \t]*\r?\n?\Z")
_BARE = re.compile(r"[A-Za-z0-9_-]+")
_TOKEN = re.compile(r'"(?:[^"\\\n]|\\.)*"|\'[^\'\n]*\'|[A-Za-z0-9_-]+')

Edit = tuple[int, int, str]  # replace text[start:end] with the string


class MigrationProblem(Exception):
    """Why a file was not migrated (nothing was written); ``at`` is the key path it is about."""

    def __init__(
        self, message: str, at: tuple[str | int, ...] | None = None, hint: str | None = None
    ) -> None:
        super().__init__(message)
        self.at = at
        self.hint = hint
        self.diagnostic: Any = None  # a located Diagnostic, once placed in the file


@dataclass
class Outcome:
    """The migrated text and what was done, in words (for the command's report)."""

    text: str
    done: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    renamed: dict[str, str] = field(default_factory=dict)  # old list name -> new


def newline_of(text: str) -> str:
    """The file's line ending (CRLF files stay CRLF)."""
    return "\r\n" if "\r\n" in text else "\n"


def stage_lists(data: Mapping[str, Any]) -> list[str]:
    """The top-level lists: what AGILAB's validator counts as stage lists."""
    return [k for k, v in data.items() if k != META and isinstance(v, list)]


def _key_token(name: str, like: str) -> str:
    """``name`` written as a key in the quoting style of ``like`` (bare when it can be)."""
    if like.startswith("'") and "'" not in name and "\n" not in name:
        return f"'{name}'"
    if like.startswith('"') or not _BARE.fullmatch(name):
        return json.dumps(name, ensure_ascii=False)
    return name


def _rename(text: str, keys: list[WrittenKey], old: str, new: str) -> list[Edit]:
    """Edits renaming the root key ``old`` to ``new``, with its ``[__meta__]`` companion keys."""
    meta_names = {old + s: new + s for s in META_SUFFIXES}
    edits: list[Edit] = []

    def rename_at(offset: int, to: str) -> None:
        m = _TOKEN.match(text, offset)
        assert m is not None, offset
        edits.append((offset, m.end(), _key_token(to, m.group())))

    for key in keys:
        names = [name for name, _ in key.segments]
        root = key.kind != "key" or key.table == ()
        if root and names[0] == old:
            rename_at(key.segments[0][1], new)
        elif root and names[0] == META and len(names) > 1 and names[1] in meta_names:
            rename_at(key.segments[1][1], meta_names[names[1]])
        elif key.kind == "key" and key.table == (META,) and names[0] in meta_names:
            rename_at(key.segments[0][1], meta_names[names[0]])
    return edits


def _line_end(text: str, offset: int) -> int:
    end = text.find("\n", offset)
    return len(text) if end < 0 else end + 1


def _apply(text: str, edits: list[Edit]) -> str:
    for start, end, new in sorted(edits, reverse=True):
        text = text[:start] + new + text[end:]
    return text


def _meta_block(nl: str) -> str:
    return f'[__meta__]{nl}schema = "{STAGES_STAMP}"{nl}version = 1{nl}'


def _marker(record: Mapping[str, Any], nl: str) -> str:
    return MARKER + json.dumps(record, ensure_ascii=False) + nl


def to_lab_stages(text: str, data: Mapping[str, Any], module_key: str, *, explicit: bool) -> Outcome:
    """Stamp ``agilab.lab_stages.v1`` and put the stages under ``module_key``. ``explicit``: the
    user named the key (then a single list of any name is renamed, not only a legacy one)."""
    nl = newline_of(text)
    out = Outcome(text)
    lists = stage_lists(data)
    rename: str | None = None
    if module_key in lists:
        legacy = [name for name in lists if name in LEGACY_LISTS and name != module_key]
        if legacy:
            raise MigrationProblem(
                f"[[{legacy[0]}]] beside [[{module_key}]]: AGILAB reads only the module key's list, "
                f"so the stages of [[{legacy[0]}]] would vanish from it, and merging two lists decides "
                "their order, which is not the migration's call",
                (legacy[0],),
                hint=f"move its stages into [[{module_key}]] (or into a lab of their own), then migrate",
            )
        out.notes += [
            f"[[{n}]] stays as written: AGILAB reads only [[{module_key}]] (unexpected-stage-lists)"
            for n in lists
            if n != module_key
        ]
    elif len(lists) == 1 and (lists[0] in LEGACY_LISTS or explicit):
        rename = lists[0]
    elif len(lists) == 1:
        out.notes.append(
            f"[[{lists[0]}]] is not under the module key {module_key!r} (the lab folder's name), so "
            f"AGILAB will not show it: pass --module-key {module_key} to rename it, or --module-key "
            f"{lists[0]} if that is the app's module"
        )
    elif len(lists) > 1:
        raise MigrationProblem(
            f"{len(lists)} stage lists ({', '.join(f'[[{n}]]' for n in lists)}) and none under the "
            f"module key {module_key!r}: which one AGILAB should read is not the migration's call",
            (lists[0],),
            hint="name the module with --module-key KEY (one of the lists), or merge the lists",
        )
    keys = written_keys(text)
    edits: list[Edit] = []
    record: dict[str, Any] = {}
    if rename is not None:
        edits += _rename(text, keys, rename, module_key)
        out.renamed[rename] = module_key
        record["list"] = {rename: module_key}
        out.done.append(f"[[{rename}]] renamed [[{module_key}]]")
    meta = data.get(META)
    source = SourceMap(text)
    if meta is None:
        block = (nl if text and not text.endswith("\n") else "") + nl + _meta_block(nl)
        if text and not text.endswith("\n"):
            record["eol"] = False
        record["meta"] = "added"
        out.done.append("[__meta__] added")
    else:
        block = ""
        stamp = meta.get("schema")
        if stamp is not None and stamp != STAGES_STAMP:
            span = source.spans[(META, "schema")]
            quote = "'" if span.kind == "literal" else '"'
            edits.append((span.value, span.end, f"{quote}{STAGES_STAMP}{quote}"))
            record["meta"] = "stamped"
            out.done.append(f"schema stamp {STAGES_STAMP}")
        missing = [k for k in ("schema", "version") if k not in meta]
        if missing:
            edits.append(_insert_meta_keys(text, source, missing, nl, record))
            out.done.append(f"[__meta__] {' and '.join(missing)} added")
    if not edits and not block:
        return out
    new = _apply(text, edits) + block
    if record.get("meta") != "stamped" or len(record) > 1:  # a stamp alone needs no record to undo
        if not new.endswith("\n"):
            new += nl
            record["eol"] = False
        new += _marker(record, nl)
    out.text = new
    return out


def _meta_insert_point(text: str, source: SourceMap) -> tuple[int, str]:
    """Where missing ``[__meta__]`` keys go, and in which form: after the ``[__meta__]`` header
    line ('lines'), inside an inline ``__meta__ = {…}`` ('inline'), else at the top of the root
    table as dotted keys ('dotted': ``__meta__.x = …`` keys or only ``[__meta__.x]`` sub-tables)."""
    span = source.spans.get((META,))
    if span is not None and span.kind == "header":
        return _line_end(text, span.end), "lines"
    if span is not None and span.kind == "table":
        return span.value + 1, "inline"
    return 0, "dotted"


def _insert_meta_keys(
    text: str, source: SourceMap, missing: list[str], nl: str, record: dict[str, Any]
) -> Edit:
    values = {"schema": f'"{STAGES_STAMP}"', "version": "1"}
    at, form = _meta_insert_point(text, source)
    if form == "lines":
        snippet = "".join(f"{k} = {values[k]}{nl}" for k in missing)
        if at == len(text) and not text.endswith("\n"):
            snippet = nl + snippet
    elif form == "inline":
        span = source.spans[(META,)]
        empty = text[at : span.end - 1].strip() == ""
        snippet = " " + ", ".join(f"{k} = {values[k]}" for k in missing) + (" " if empty else ",")
    else:
        snippet = "".join(f"__meta__.{k} = {values[k]}{nl}" for k in missing)
    record["inserted"] = snippet
    return (at, at, snippet)


def read_marker(text: str) -> tuple[dict[str, Any], str] | None:
    """The record ``--to lab_stages`` left on the last line, and the text without that line."""
    start = text.rfind(MARKER)
    if start < 0 or (start and text[start - 1] != "\n"):
        return None
    m = _MARKER_LINE.match(text, start)
    if m is None:
        return None
    try:
        record = json.loads(m.group(1))
    except ValueError:
        return None
    return (record, text[:start]) if isinstance(record, dict) else None


def to_lab_steps(text: str) -> Outcome:
    """The inverse, on a file ``--to lab_stages`` produced: what its record says is undone (the
    list's former name, the added ``[__meta__]`` or keys); on any other file, only the stamp."""
    import tomllib

    out = Outcome(text)
    marked = read_marker(text)
    record: dict[str, Any] = {}
    if marked is not None:
        record, text = marked
        nl = newline_of(text)
        eol = record.get("eol") is not False
        if record.get("meta") == "added":
            tail = nl + _meta_block(nl)
            if text.endswith(tail) and (eol or text[: -len(tail)].endswith(nl)):
                text = text[: -len(tail)]
                out.done.append("[__meta__] removed (migrate had added it)")
            else:
                out.notes.append("[__meta__] was edited after migrate added it: kept, stamped lab_steps")
        if not eol and text.endswith(nl):
            text = text[: -len(nl)]
        inserted = record.get("inserted")
        if isinstance(inserted, str) and inserted:
            at, _ = _meta_insert_point(text, SourceMap(text))
            if text.startswith(inserted, at):
                text = text[:at] + text[at + len(inserted) :]
                out.done.append("[__meta__] keys removed (migrate had added them)")
    data = tomllib.loads(text)
    edits: list[Edit] = []
    lists = stage_lists(data)
    keys = written_keys(text)
    renames = record.get("list")
    for old, new in renames.items() if isinstance(renames, dict) else ():
        if isinstance(old, str) and isinstance(new, str) and new in lists and old not in data:
            edits += _rename(text, keys, new, old)
            out.renamed[new] = old
            out.done.append(f"[[{new}]] renamed back [[{old}]]")
        else:
            out.notes.append(f"[[{new}]] not renamed back to [[{old}]]: the file changed since")
    meta = data.get(META)
    if isinstance(meta, Mapping) and meta.get("schema") == STAGES_STAMP:
        span = SourceMap(text).spans[(META, "schema")]
        quote = "'" if span.kind == "literal" else '"'
        edits.append((span.value, span.end, f"{quote}{STEPS_STAMP}{quote}"))
        out.done.append(f"schema stamp {STEPS_STAMP}")
    out.text = _apply(text, edits)
    return out
