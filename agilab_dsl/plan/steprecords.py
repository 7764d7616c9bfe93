"""Step records as ``state.json`` keeps them, and the file's layout, which lets them be read lazily.

``state.json`` (FORMAT 3) is one JSON document laid out a record to a line, its index last::

    {"format": 3, "steps": {
    "a": {"components": …, "fingerprint": "…", …},
    "b": {…}
    }, "index": {"ids": ["a", "b"], "fingerprints": […], "runs": […], "offsets": […], "lengths": […]}}

A state file the caller trusts (the stored judgment vouches that it is the one the last run left,
see :func:`agilab_dsl.plan.state.LabState.load`) is indexed, not parsed: only its last line, the
index, is read — each step's fingerprint, the run that wrote its record, and where the record's
bytes lie — and a record is read (``os.pread``) and parsed when its step's record is asked for. A
run after one change at 100,000 steps reads 12 of the file's 103 MB and parses two records. Any
other file, or one laid out otherwise (FORMAT 1 and 2, edited by hand), is parsed and checked whole.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator, MutableMapping

from ..load.records import Record

TYPE_CHECKING = False  # typing is not imported on a run's path for this module
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any

FORMAT = 3  # 1: one line, no index (still read); 2: the index first, without offsets (still read)
_HEAD = '{"format": 3, "steps": {'
_INDEX = '\n}, "index": '


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


class _Source:
    """An open ``state.json`` that records are read from by offset (``os.pread``): the file the
    index describes even once compaction has replaced its path. Closed with its last reference."""

    __slots__ = ("_fd", "_whole")

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._whole: bytes | None = None  # the whole file, once many records are read at once

    def read(self, offset: int, length: int) -> bytes:
        if self._whole is not None:
            return self._whole[offset : offset + length]
        return os.pread(self._fd, length, offset)

    def read_all(self) -> None:
        """Read the file once, for the many records a compaction writes back."""
        if self._whole is None:
            self._whole = os.pread(self._fd, os.fstat(self._fd).st_size, 0)

    @property
    def whole(self) -> bytes | None:
        """The whole file, once :meth:`read_all` read it."""
        return self._whole

    def __del__(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self._fd)


class Records(MutableMapping[str, StepRecord]):
    """Step id → :class:`StepRecord`; a record indexed from a trusted file is read and parsed when
    first asked for. Iterating, ``items()`` and equality parse every record."""

    __slots__ = ("_fingerprints", "_lengths", "_offsets", "_parsed", "_pos", "_runs", "_source")

    def __init__(self, parsed: dict[str, StepRecord] | None = None) -> None:
        self._parsed: dict[str, StepRecord] = dict(parsed or {})
        self._pos: dict[str, int] = {}  # not read yet: the record's place in the index's columns
        self._fingerprints: list[str] = []
        self._runs: list[str] = []
        self._offsets: list[int] = []
        self._lengths: list[int] = []
        self._source: _Source | None = None

    def indexed(self, source: _Source, index: dict[str, list[Any]]) -> None:
        """Take the records of a trusted file, as its (checked) index places them."""
        self._source = source
        self._fingerprints, self._runs = index["fingerprints"], index["runs"]
        self._offsets, self._lengths = index["offsets"], index["lengths"]
        self._pos = dict(zip(index["ids"], range(len(self._fingerprints)), strict=True))
        for step_id in self._parsed.keys() & self._pos.keys():
            del self._parsed[step_id]

    def _raw(self, n: int) -> bytes:
        assert self._source is not None
        return self._source.read(self._offsets[n], self._lengths[n])

    def __getitem__(self, step_id: str) -> StepRecord:
        record = self._parsed.get(step_id)
        if record is None:
            n = self._pos.pop(step_id, None)
            if n is None:
                raise KeyError(step_id)
            try:
                parsed = StepRecord.from_json(json.loads(self._raw(n)))
            except (ValueError, RecursionError, OSError):
                parsed = "not JSON"
            if isinstance(parsed, str):  # a trusted file does not hold one: it counts as never run
                raise KeyError(step_id)
            record = self._parsed[step_id] = parsed
        return record

    def __setitem__(self, step_id: str, record: StepRecord) -> None:
        self._pos.pop(step_id, None)
        self._parsed[step_id] = record

    def __delitem__(self, step_id: str) -> None:
        if self._pos.pop(step_id, None) is None:
            del self._parsed[step_id]

    def __contains__(self, step_id: object) -> bool:
        return step_id in self._parsed or step_id in self._pos

    def __iter__(self) -> Iterator[str]:
        yield from list(self._parsed)
        yield from list(self._pos)

    def __len__(self) -> int:
        return len(self._parsed) + len(self._pos)

    def __repr__(self) -> str:
        return f"Records({len(self._parsed)} parsed, {len(self._pos)} not yet)"

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
        """How many records are still only in the file."""
        return len(self._pos)

    def brief(self, step_id: str) -> tuple[str, str] | None:
        """A step's (fingerprint, run id) without parsing its record; None when it has none."""
        n = self._pos.get(step_id)
        if n is None:
            record = self.get(step_id)
            return None if record is None else (record.fingerprint, record.run_id)
        return self._fingerprints[n], self._runs[n]

    def fingerprints(self) -> dict[str, str]:
        """Every step's fingerprint, without parsing a record."""
        fingerprints = self._fingerprints
        out = {sid: fingerprints[n] for sid, n in self._pos.items()}
        out.update((sid, record.fingerprint) for sid, record in self._parsed.items())
        return out

    def raw(self, step_id: str) -> bytes:
        """The record's JSON text, as ``state.json`` holds it (UTF-8)."""
        n = self._pos.get(step_id)
        if n is None:
            return self._parsed[step_id].json_text().encode()
        return self._raw(n)

    def read_all(self) -> None:
        """About to ask for every record's text: read the file once rather than record by record."""
        if self._source is not None and len(self._pos) > 64:
            self._source.read_all()


def state_bytes(records: Records) -> Iterator[bytes | memoryview]:
    """The bytes of ``state.json``, a piece at a time (a 100,000-step state is never held whole):
    records never parsed are written back as they were read, and a stretch of them that lies in the
    file read just as it is written here (their keys between them) as one slice of it, so that
    compacting a 100,000-step state (105 MB) after a record changed copies the rest instead of
    handling 100,000 records one by one, and as bytes (its text was decoded and encoded again):
    0.40 s to 0.24 s, the save with its fsync 0.66 s to 0.46 s. The index, which needs each
    record's place, comes last."""
    records.read_all()
    ids = sorted(records)
    head = _HEAD.encode()
    yield head
    place = len(head)
    fingerprints: list[str] = []
    runs: list[str] = []
    offsets: list[int] = []
    lengths: list[int] = []
    source = records._source
    whole = source.whole if source is not None else None
    pos = records._pos
    old_offsets, old_lengths = records._offsets, records._lengths
    n, count = 0, len(ids)
    while n < count:
        sid = ids[n]
        lead = b"%s%s: " % (b"\n" if n == 0 else b",\n", _quote(sid).encode())  # escaped: ASCII
        p = pos.get(sid)
        if p is not None and whole is not None:
            start, at = old_offsets[p] - len(lead), old_offsets[p] + old_lengths[p]
            if start >= 0 and whole[start : old_offsets[p]] == lead:
                q, n = p, n + 1  # the stretch: the next ids, each the next record of the file
                while n < count and pos.get(ids[n]) == q + 1:
                    key = b",\n%s: " % _quote(ids[n]).encode()
                    if old_offsets[q + 1] != at + len(key) or whole[at : old_offsets[q + 1]] != key:
                        break
                    q, n = q + 1, n + 1
                    at = old_offsets[q] + old_lengths[q]
                shift = place + len(lead) - old_offsets[p]
                fingerprints += records._fingerprints[p : q + 1]
                runs += records._runs[p : q + 1]
                offsets += [offset + shift for offset in old_offsets[p : q + 1]]
                lengths += old_lengths[p : q + 1]
                place += at - start
                yield memoryview(whole)[start:at]
                continue
        brief = records.brief(sid)
        assert brief is not None
        text = records.raw(sid)
        fingerprints.append(brief[0])
        runs.append(brief[1])
        offsets.append(place + len(lead))
        lengths.append(len(text))
        place += len(lead) + len(text)
        yield lead + text
        n += 1
    index = {"ids": ids, "fingerprints": fingerprints, "runs": runs, "offsets": offsets, "lengths": lengths}
    yield (_INDEX + json.dumps(index) + "}\n").encode()


try:
    from _json import encode_basestring_ascii as _quote  # json.dumps's quoting of a str
except ImportError:  # pragma: no cover - an interpreter without json's C accelerator
    from json.encoder import py_encode_basestring_ascii as _quote


def open_indexed(path: str, records: Records) -> bool:
    """Index the records of a state file laid out as :func:`state_bytes` writes it into ``records``
    (read later, by offset); False, with ``records`` untouched, when it is laid out otherwise (the
    caller parses it whole)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    source = _Source(fd)  # closes fd with its last reference
    try:
        size = os.fstat(fd).st_size
        head = _HEAD.encode()
        if os.pread(fd, len(head), 0) != head:
            return False
        tail, start, cut = b"", size, -1
        while start > len(head):  # the last line, the index: read from the end, more each time
            step = max(1 << 16, len(tail))
            start = max(len(head), start - step)
            tail = os.pread(fd, size - start, start)
            cut = tail.rfind(b"\n", 0, len(tail) - 1)
            if cut >= 0:
                break
        line = tail[cut + 1 :] if cut >= 0 else b""
        lead = _INDEX.encode()[1:]  # after the newline
        if not (line.startswith(lead) and line.endswith(b"}\n")):
            return False
        index = json.loads(line[len(lead) : -2])
        end = size - len(line)  # the records lie before the index line
    except (OSError, ValueError, RecursionError):
        return False
    if not _index_holds(index, len(head), end):
        return False
    records.indexed(source, index)
    return True


def _index_holds(index: Any, start: int, end: int) -> bool:
    """Whether ``index`` is :func:`state_bytes`'s: five columns of one length, ids unique, each
    record's bytes between ``start`` and ``end``."""
    if type(index) is not dict or index.keys() != {"ids", "fingerprints", "runs", "offsets", "lengths"}:
        return False
    ids, fps, runs, offsets, lengths = (
        index[k] for k in ("ids", "fingerprints", "runs", "offsets", "lengths")
    )
    if not all(type(c) is list and len(c) == len(ids) for c in (ids, fps, runs, offsets, lengths)):
        return False
    if len(set(ids)) != len(ids) or not all(type(x) is str for c in (ids, fps, runs) for x in c):
        return False
    return all(
        type(o) is int and type(n) is int and start <= o and n >= 2 and o + n <= end
        for o, n in zip(offsets, lengths, strict=True)
    )
