"""state.json read lazily (issue 18): a trusted state file's records are indexed, parsed when asked
for, and written back as they were; anything laid out otherwise is parsed whole, as before."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agilab_dsl.plan.state import LabState, StepRecord
from agilab_dsl.plan.steprecords import FORMAT, Records, open_indexed, state_bytes

ODD_IDS = ["a", 'quote"d', "back\\slash", "é-accent", "new\nline", 's, "steps": {']


def record(n: int, **components: object) -> StepRecord:
    return StepRecord(f"fp{n}", {"code": str(n), **components}, {"out/x": f"h{n}"}, 1.5, 0.25, "run")


def saved(tmp_path: Path, records: dict[str, StepRecord]) -> Path:
    LabState(tmp_path / ".agilab" / "state.json", dict(records)).save()
    return tmp_path / "lab.toml"


def test_records_are_indexed_and_parsed_only_when_asked_for(tmp_path: Path) -> None:
    records = {sid: record(n, text='line\nbreak, "quoted" é') for n, sid in enumerate(ODD_IDS)}
    lab = saved(tmp_path, records)
    state = LabState.load(lab, trusted=True)
    assert state.problem is None and state.steps.pending == len(records)
    assert state.steps.fingerprints() == {sid: r.fingerprint for sid, r in records.items()}
    assert state.steps.brief("a") == ("fp0", "run")
    assert state.steps.pending == len(records)  # fingerprints and run ids come from the index
    assert state.steps["new\nline"] == records["new\nline"] and state.steps.pending == len(records) - 1
    assert state.steps.get("missing") is None and "missing" not in state.steps
    assert set(state.steps) == set(records) and len(state.steps) == len(records)
    assert dict(state.steps.items()) == records and state.steps.pending == 0


def test_records_never_parsed_are_written_back_byte_for_byte(tmp_path: Path) -> None:
    records = {f"s{i}": record(i, weird=[1.0, 1e300, "\u2028"]) for i in range(30)}
    lab = saved(tmp_path, records)
    before = (tmp_path / ".agilab" / "state.json").read_bytes()
    state = LabState.load(lab, trusted=True)
    state.save()
    assert (tmp_path / ".agilab" / "state.json").read_bytes() == before
    state = LabState.load(lab, trusted=True)
    state.record("s7", record(700))  # one record replaced: only it is written anew
    state.save()
    again = LabState.load(lab)  # parsed whole, checked
    assert again.problem is None and again.steps == {**records, "s7": record(700)}


def test_the_index_refuses_any_other_layout(tmp_path: Path) -> None:
    records = Records({sid: record(n) for n, sid in enumerate(ODD_IDS)})
    text = b"".join(state_bytes(records)).decode()
    path = tmp_path / "state.json"
    assert with_index(text) == text  # the edits below change only what they say
    path.write_text(text, encoding="utf-8")
    assert open_indexed(str(path), Records())
    data = json.loads(text)
    for other in (
        json.dumps({"format": 1, "steps": data["steps"]}, sort_keys=True),  # the first format
        old_layout(data["steps"]),  # the second: its index first, without offsets
        json.dumps(data, indent=2),  # the same, laid out by hand
        text[: len(text) // 2],  # cut short
        text.replace('"fp3"', "3"),  # a fingerprint that is not a string
        with_index(text, lengths=lambda c: [10**6, *c[1:]]),  # a record past the index
        with_index(text, offsets=lambda c: [-5, *c[1:]]),  # one before the first
        with_index(text, offsets=lambda c: [0.5, *c[1:]]),  # an offset that is not a whole number
        with_index(text, runs=lambda c: c[1:]),  # a column shorter than the others
        text.replace("}}\n", '}, "extra": 1}\n'),  # something after the index
        with_index(text, ids=lambda c: [c[1], *c[1:]]),  # an id twice
        text.replace("\n}, ", "\n}\n, "),  # the index not on the last line alone
        "",
    ):
        path.write_text(other, encoding="utf-8")
        target = Records()
        assert not open_indexed(str(path), target) and len(target) == 0, other[-300:]
    assert not open_indexed(str(tmp_path / "missing.json"), Records())


def with_index(text: str, **edits: Callable[[list[object]], list[object]]) -> str:
    """``text`` with its index's columns edited."""
    head, line = text.rstrip("\n").rsplit("\n", 1)
    lead = '}, "index": '
    index = json.loads(line[len(lead) : -1])
    for name, edit in edits.items():
        index[name] = edit(index[name])
    return f"{head}\n{lead}{json.dumps(index)}}}\n"


def old_layout(steps: dict[str, dict[str, object]]) -> str:
    """state.json as FORMAT 2 wrote it: the index of (fingerprint, run id) first, no offsets."""
    index = {sid: [r["fingerprint"], r["run_id"]] for sid, r in sorted(steps.items())}
    lines = ",\n".join(
        f"{json.dumps(sid)}: {json.dumps(r, sort_keys=True)}" for sid, r in sorted(steps.items())
    )
    return '{"format": 2, "index": ' + json.dumps(index) + ', "steps": {\n' + lines + "\n}}\n"


def test_a_state_in_the_older_layout_is_read_whole_and_rewritten_in_this_one(tmp_path: Path) -> None:
    records = {f"s{i}": record(i) for i in range(5)}
    lab = saved(tmp_path, records)
    path = tmp_path / ".agilab" / "state.json"
    path.write_text(old_layout(json.loads(path.read_text())["steps"]), encoding="utf-8")
    for trusted in (True, False):
        state = LabState.load(lab, trusted=trusted)
        assert state.problem is None and state.steps == records and state.repair
    state.settle()  # the end of a run: rewritten, as the repair asks
    assert json.loads(path.read_text())["format"] == FORMAT
    again = LabState.load(lab, trusted=True)
    assert again.steps.pending == 5 and again.steps == records and not again.repair


def test_records_are_read_from_the_file_indexed_even_once_it_is_replaced(tmp_path: Path) -> None:
    records = {f"s{i}": record(i) for i in range(100)}
    lab = saved(tmp_path, records)
    state = LabState.load(lab, trusted=True)
    assert state.steps["s1"] == records["s1"]
    state.record("s2", record(200))
    state.save()  # compaction replaces state.json while the other records are still unread
    (tmp_path / ".agilab" / "state.json").write_text("{}", encoding="utf-8")  # and then anything
    assert state.steps["s50"] == records["s50"] and state.steps["s2"] == record(200)
    assert dict(state.steps.items()) == {**records, "s2": record(200)}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    count=st.sampled_from([3, 70, 140]),  # 70 and 140: the file is read whole, stretches copied
    edits=st.lists(st.tuples(st.sampled_from(["replace", "delete", "add"]), st.integers(0, 200)), max_size=8),
)
def test_a_compaction_writes_what_writing_every_record_anew_writes(
    tmp_path_factory: pytest.TempPathFactory, count: int, edits: list[tuple[str, int]]
) -> None:
    tmp_path = tmp_path_factory.mktemp("state")
    records = {f"s{i:03d}": record(i, text="é\u2028") for i in range(count)}
    lab = saved(tmp_path, records)
    state = LabState.load(lab, trusted=True)
    for kind, n in edits:  # replaced, deleted and added records, the first and last ones among them
        sid = f"s{n % (count + 1):03d}" if kind != "add" else f"s{n % (count + 1):03d}b"
        if kind == "delete":
            state.steps.pop(sid, None)
        else:
            state.steps[sid] = record(1000 + n)
    expected = {sid: state.steps[sid] for sid in sorted(state.steps)}
    lab = saved(tmp_path, records)  # read anew: every record not edited is still unparsed
    state = LabState.load(lab, trusted=True)
    for sid in set(state.steps) - set(expected):
        del state.steps[sid]
    for sid, rec in expected.items():
        if sid not in records or rec != records[sid]:
            state.steps[sid] = rec
    assert state.steps.pending == sum(1 for sid in expected if expected[sid] == records.get(sid))
    assert b"".join(state_bytes(state.steps)) == b"".join(state_bytes(Records(expected)))
    state.save()
    again = LabState.load(lab, trusted=True)
    assert again.steps.pending == len(expected) and dict(again.steps.items()) == expected


def test_records_between_keys_written_otherwise_are_copied_one_by_one(tmp_path: Path) -> None:
    records = {f"s{i:03d}": record(i) for i in range(80)}
    lab = saved(tmp_path, records)
    path = tmp_path / ".agilab" / "state.json"
    text = path.read_text(encoding="utf-8")
    # the same records, a few keys followed by a tab rather than a space: the same places, other bytes
    for sid in ("s000", "s050", "s051", "s079"):
        text = text.replace(f'"{sid}": {{"components"', f'"{sid}":\t{{"components"')
    path.write_text(text, encoding="utf-8")
    state = LabState.load(lab, trusted=True)
    assert state.steps.pending == 80 and state.steps["s040"] == records["s040"]
    state.steps["s041"] = record(4100)
    state.save()  # laid out as written here again, every record as it was
    again = LabState.load(lab, trusted=True)
    assert again.steps.pending == 80 and dict(again.steps.items()) == {**records, "s041": record(4100)}
    assert path.read_bytes() == b"".join(state_bytes(Records({**records, "s041": record(4100)})))


@pytest.mark.parametrize(
    "layout",
    [
        lambda data: json.dumps({"format": 1, "steps": data["steps"]}, sort_keys=True),
        lambda data: json.dumps(data, indent=2),
    ],
)
def test_a_trusted_file_laid_out_otherwise_is_parsed_whole(tmp_path: Path, layout) -> None:  # type: ignore[no-untyped-def]
    records = {f"s{i}": record(i) for i in range(5)}
    lab = saved(tmp_path, records)
    path = tmp_path / ".agilab" / "state.json"
    path.write_text(layout(json.loads(path.read_text())), encoding="utf-8")
    state = LabState.load(lab, trusted=True)
    assert state.problem is None and state.steps.pending == 0 and state.steps == records


def test_a_record_that_does_not_parse_counts_as_never_run(tmp_path: Path) -> None:
    lab = saved(tmp_path, {"a": record(1), "b": record(2)})
    path = tmp_path / ".agilab" / "state.json"
    path.write_text(path.read_text().replace('"fingerprint": "fp2"', '"fingerprint": 2'), encoding="utf-8")
    state = LabState.load(lab, trusted=True)  # (a judgment vouched for it: the layout is checked only)
    assert state.steps.get("b") is None and "b" not in state.steps
    assert state.steps == {"a": record(1)}
    untrusted = LabState.load(lab)
    assert "step 'b'" in (untrusted.problem or "") and untrusted.repair


@pytest.mark.parametrize("step", ["gather", 'odd", "record": {\\', "é\n"])
def test_the_journal_parses_only_each_steps_last_line(tmp_path: Path, step: str) -> None:
    lab = tmp_path / "lab.toml"
    state = LabState.load(lab)
    for n in range(3):
        state.record(step, record(n))
    state.record("other", record(9))
    state.settle()
    journal = state.journal_path
    lines = journal.read_bytes().split(b"\n")
    # an earlier line of the step damaged inside its record: never parsed, so never named
    lines[0] = lines[0].replace(b'"fingerprint": "fp0"', b'"fingerprint": \x00\x00')
    torn = json.dumps({"id": step})[:-1].encode() + b', "record": {"fingerp'
    journal.write_bytes(b"\n".join(lines) + torn)  # and a torn last line
    again = LabState.load(lab)
    assert again.problem is None and not again.repair and again.journal_lines == 5
    assert again.steps == {step: record(2), "other": record(9)}  # the torn line falls back to fp2


def test_a_run_after_one_change_parses_only_the_records_it_judges(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agilab_dsl.cli import main

    (tmp_path / "in").mkdir()
    steps = []
    for i in range(12):
        (tmp_path / "in" / f"{i}.txt").write_text(str(i))
        steps.append(
            f'[[m]]\nid = "s{i}"\nC = "open(outputs[0], \'w\').write(open(inputs[0]).read())"\n'
            f'consumes = ["in/{i}.txt"]\nproduces = ["out/{i}.txt"]\n'
        )
    gathered = json.dumps([f"out/{i}.txt" for i in range(12)])
    steps.append(
        '[[m]]\nid = "gather"\nC = "open(outputs[0], \'w\').write(str(len(inputs)))"\n'
        f'consumes = {gathered}\nproduces = ["total.txt"]\n'
    )
    lab = tmp_path / "lab_stages.toml"
    lab.write_text("\n".join(steps), encoding="utf-8")
    assert main([str(lab)]) == 0 and main([str(lab)]) == 0  # cold, then compacted and judged
    LabState.load(lab).save()  # the state as one file, no journal
    assert main([str(lab)]) == 0  # the judgment now vouches for that file
    loaded: list[tuple[bool, LabState]] = []
    load = LabState.load.__func__  # type: ignore[attr-defined]

    def spy(cls: type[LabState], path: str, *, trusted: bool = False) -> LabState:
        state = load(cls, path, trusted=trusted)
        loaded.append((trusted, state))
        return state

    monkeypatch.setattr(LabState, "load", classmethod(spy))
    (tmp_path / "in" / "3.txt").write_text("changed")
    assert main([str(lab)]) == 0
    trusted, state = loaded[-1]
    assert trusted and state.steps.pending == 11  # s3 and gather judged (and recorded again)
    assert (tmp_path / "out" / "3.txt").read_text() == "changed"
    assert LabState.load(lab).steps.keys() == {f"s{i}" for i in range(12)} | {"gather"}
