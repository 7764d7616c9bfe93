"""Step records as ``state.json`` keeps them, and the file's layout, which lets them be read lazily.

``state.json`` (FORMAT 2) is one JSON document laid out a record to a line::

    {"format": 2, "index": {"a": ["<fingerprint>", "<run id>"], "b": […]}, "steps": {
    "a": {"components": …, "fingerprint": "…", …},
    "b": {…}
    }}

A state file the caller trusts (the stored judgment vouches that it is the one the last run left,
see :func:`agilab_dsl.plan.state.LabState.load`) is indexed, not parsed: each record stays as its
JSON text until a step's record is asked for; its fingerprint and the run that wrote it come from
the index on the first line. A run after one change at 100,000 steps parses two records instead of all of them (~1 s). Any
other file, or one laid out otherwise (FORMAT 1, edited by hand), is parsed and checked whole.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, MutableMapping
from json.decoder import scanstring  # the C scanner: a line's step id without parsing its record

from ..load.records import Record

TYPE_CHECKING = False  # typing is not imported on a run's path for this module
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any

FORMAT = 2  # 1: one line, no index of fingerprints (still read)
_HEAD = '{"format": 2, "index": '
_STEPS = ', "steps": {'


class StepRecord(Record):
    _fields = ("fingerprint", "components", "outputs", "finished_at", "seconds", "run_id")

    def __init__(
        self,
        fingerprint: str,
        components: dict[str, Any],
        outputs: dict[str, str],  # path -> content hash
        finished_at: float,
        seconds: float,
        run_id: str,
    ) -> None:
        self.fingerprint = fingerprint
        self.components = components
        self.outputs = outputs
        self.finished_at = finished_at
        self.seconds = seconds
        self.run_id = run_id

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def json_text(self) -> str:
        """The record as JSON, keys sorted (as ``json.dumps(to_json(), sort_keys=True)`` reads):
        large components whose text their fingerprint's digest just made are not encoded again
        (:func:`~agilab_dsl.plan.fingerprint.canonical_text`)."""
        from .fingerprint import canonical_text

        components = canonical_text(self.fingerprint, self.components)
        if components is None:
            return json.dumps(self.to_json(), sort_keys=True)
        dumps = json.dumps
        return (
            f'{{"components": {components}, "finished_at": {dumps(self.finished_at)}, '
            f'"fingerprint": {dumps(self.fingerprint)}, "outputs": {dumps(self.outputs, sort_keys=True)}, '
            f'"run_id": {dumps(self.run_id)}, "seconds": {dumps(self.seconds)}}}'
        )

    @classmethod
    def from_json(cls, value: Any) -> StepRecord | str:
        """The record ``value`` holds, or why it is not one (a wrongly typed field, say)."""
        if type(value) is dict and value.keys() == _FIELDS.keys():  # as written: checked by type
            fp, comps, outputs, finished, seconds, run_id = (value[name] for name in _FIELDS)
            if (
                type(fp) is str
                and type(comps) is dict
                and type(outputs) is dict
                and type(finished) in _NUMBERS
                and type(seconds) in _NUMBERS
                and type(run_id) is str
                and all(type(k) is str and type(v) is str for k, v in outputs.items())
            ):
                return cls(fp, comps, outputs, finished, seconds, run_id)
        return cls._checked(value)

    @classmethod
    def _checked(cls, value: Any) -> StepRecord | str:
        if not isinstance(value, dict):
            return f"a {type(value).__name__}, not a record"
        for name, kinds in _FIELDS.items():
            if not isinstance(value.get(name), kinds) or isinstance(value.get(name), bool):
                return f"{name} is missing or not a {kinds[0].__name__}"
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in value["outputs"].items()):
            return "outputs is not a table of hashes"
        return cls(**{name: value[name] for name in _FIELDS})


_NUMBERS = (float, int)  # not bool: a record's times are numbers
_FIELDS: dict[str, tuple[type, ...]] = {  # in StepRecord's order
    "fingerprint": (str,),
    "components": (dict,),
    "outputs": (dict,),
    "finished_at": (float, int),
    "seconds": (float, int),
    "run_id": (str,),
}


class Records(MutableMapping[str, StepRecord]):
    """Step id → :class:`StepRecord`; a record indexed from a trusted file is parsed when first
    asked for. Iterating, ``items()`` and equality parse every record."""

    __slots__ = ("_index", "_parsed", "_text")

    def __init__(self, parsed: dict[str, StepRecord] | None = None) -> None:
        self._parsed: dict[str, StepRecord] = dict(parsed or {})
        self._text: dict[str, str] = {}  # not parsed yet: the record's JSON text
        self._index: dict[str, tuple[str, str]] = {}  # and its (fingerprint, run id), from the index

    def index(self, step_id: str, text: str, brief: tuple[str, str]) -> None:
        """Keep a record as its JSON text (from a trusted file) and its (fingerprint, run id)."""
        self._parsed.pop(step_id, None)
        self._text[step_id] = text
        self._index[step_id] = brief

    def __getitem__(self, step_id: str) -> StepRecord:
        record = self._parsed.get(step_id)
        if record is None:
            text = self._text.pop(step_id, None)
            if text is None:
                raise KeyError(step_id)
            del self._index[step_id]
            try:
                parsed = StepRecord.from_json(json.loads(text))
            except (ValueError, RecursionError):
                parsed = "not JSON"
            if isinstance(parsed, str):  # a trusted file does not hold one: it counts as never run
                raise KeyError(step_id)
            record = self._parsed[step_id] = parsed
        return record

    def __setitem__(self, step_id: str, record: StepRecord) -> None:
        self._text.pop(step_id, None)
        self._index.pop(step_id, None)
        self._parsed[step_id] = record

    def __delitem__(self, step_id: str) -> None:
        if self._text.pop(step_id, None) is not None:
            del self._index[step_id]
        else:
            del self._parsed[step_id]

    def __contains__(self, step_id: object) -> bool:
        return step_id in self._parsed or step_id in self._text

    def __iter__(self) -> Iterator[str]:
        yield from list(self._parsed)
        yield from list(self._text)

    def __len__(self) -> int:
        return len(self._parsed) + len(self._text)

    def __repr__(self) -> str:
        return f"Records({len(self._parsed)} parsed, {len(self._text)} not yet)"

    def items(self) -> Iterator[tuple[str, StepRecord]]:  # type: ignore[override]
        """Every (step id, record); a record that does not parse is left out, as never run."""
        for step_id in self:
            record = self.get(step_id)
            if record is not None:
                yield step_id, record

    def values(self) -> Iterator[StepRecord]:  # type: ignore[override]
        return (record for _, record in self.items())

    @property
    def pending(self) -> int:
        """How many records are still only text."""
        return len(self._text)

    def brief(self, step_id: str) -> tuple[str, str] | None:
        """A step's (fingerprint, run id) without parsing its record; None when it has none."""
        brief = self._index.get(step_id)
        if brief is None:
            record = self.get(step_id)
            return None if record is None else (record.fingerprint, record.run_id)
        return brief

    def fingerprints(self) -> dict[str, str]:
        """Every step's fingerprint, without parsing a record."""
        out = {sid: brief[0] for sid, brief in self._index.items()}
        out.update((sid, record.fingerprint) for sid, record in self._parsed.items())
        return out

    def text(self, step_id: str) -> str:
        """The record's JSON text, as ``state.json`` holds it."""
        text = self._text.get(step_id)
        if text is None:
            text = self._parsed[step_id].json_text()
        return text


def state_text(records: Records) -> Iterator[str]:
    """The text of ``state.json``, a record at a time (a 100,000-step state is never held whole):
    records never parsed are written back as they were read."""
    ids = sorted(records)
    yield _HEAD + json.dumps({sid: records.brief(sid) for sid in ids}) + _STEPS
    for n, sid in enumerate(ids):
        yield ("\n" if n == 0 else ",\n") + json.dumps(sid) + ": " + records.text(sid)
    yield "\n}}\n"


def index_text(text: str, records: Records) -> bool:
    """Index the records of a state file laid out as :func:`state_text` writes it into ``records``;
    False, with ``records`` untouched, when it is laid out otherwise (the caller parses it whole)."""
    first = text.find("\n")
    if not text.startswith(_HEAD) or first < 0 or not text.endswith(_STEPS, 0, first):
        return False
    try:
        index = json.loads(text[len(_HEAD) : first - len(_STEPS)])
        found: list[tuple[str, str]] = []
        pos = first + 1
        while text.startswith('"', pos):
            end_of_line = text.find("\n", pos)
            if end_of_line < 0:
                return False
            step_id, end = scanstring(text, pos + 1)
            last = end_of_line - 1 if text[end_of_line - 1] == "," else end_of_line
            if end >= last or not text.startswith(": {", end) or text[last - 1] != "}":
                return False
            found.append((step_id, text[end + 2 : last]))
            pos = end_of_line + 1
        if text[pos:].rstrip("\n") != "}}" or not isinstance(index, dict):
            return False
        briefs = [index.get(sid) for sid, _ in found]
        if not all(type(b) is list and len(b) == 2 and type(b[0]) is type(b[1]) is str for b in briefs):
            return False
    except ValueError:  # a step id that is not a JSON string
        return False
    for (step_id, record), (fingerprint, run_id) in zip(found, briefs, strict=True):
        records.index(step_id, record, (fingerprint, run_id))
    return True
