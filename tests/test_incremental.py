"""One change costs what it touches (issue 18): after a stored judgment, a change to some steps'
own files (an input, an output, a function source) judges only the steps that read them and what
is downstream; every other step keeps its stored state. The answers are those of a full judgment."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from agilab_dsl.cli import main
from agilab_dsl.execute.run import Runner

N = 12


def _lab(folder: Path) -> Path:
    (folder / "in").mkdir()
    parts = []
    for i in range(N):
        (folder / "in" / f"{i}.txt").write_text(f"line {i}\n")
        parts.append(
            f'[[w]]\nid = "s{i}"\nC = "open(outputs[0], \'w\').write(open(inputs[0]).read())"\n'
            f'consumes = ["in/{i}.txt"]\nproduces = ["out/{i}.txt"]\n\n'
        )
    inputs = ", ".join(f'"out/{i}.txt"' for i in range(N))
    parts.append(
        f'[[w]]\nid = "gather"\nC = "open(outputs[0], \'w\').write(str(sum(len(open(p).read()) for p in inputs)))"\n'
        f'consumes = [{inputs}]\nproduces = ["total.txt"]\n\n'
        '[[w]]\nid = "count"\nfunction = "helpers.py:count"\nparams = { path = "total.txt" }\n'
        'depends_on = ["gather"]\n'
    )
    (folder / "helpers.py").write_text("def count(path):\n    return {'n': len(open(path).read())}\n")
    lab = folder / "lab_stages.toml"
    lab.write_text("".join(parts))
    return lab


@pytest.fixture
def lab(tmp_path: Path) -> Path:
    return _lab(tmp_path)


@pytest.fixture
def judged(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The ids of the steps judged (not reused from the stored judgment)."""
    seen: list[str] = []
    original = Runner._judge

    def spy(self: Runner, sid: str, *args: object, **kwargs: object):  # type: ignore[no-untyped-def]
        seen.append(sid)
        return original(self, sid, *args, **kwargs)

    monkeypatch.setattr(Runner, "_judge", spy)
    return seen


def _run(lab: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> dict[str, str]:
    capsys.readouterr()
    main([str(lab), "--json", *extra])
    return {s["id"]: s["status"] for s in json.loads(capsys.readouterr().out)["steps"]}


def _status(lab: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> list[dict]:
    capsys.readouterr()
    assert main(["status", str(lab), "--json", *extra]) == 0
    return json.loads(capsys.readouterr().out)["steps"]


def hash_table(path: Path) -> dict[str, list[object]]:
    """hashes.json's entries by path (it keeps them as columns: plan/hashfile.py)."""
    data = json.loads(path.read_text())
    assert data["format"] == 2 and data["paths"] == sorted(data["paths"])
    return {
        p: [s, m, h]
        for p, s, m, h in zip(data["paths"], data["sizes"], data["mtimes"], data["hashes"], strict=True)
    }


def test_one_changed_input_judges_its_step_and_what_is_downstream(
    lab: Path, judged: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert set(_run(lab, capsys).values()) == {"ran"}
    judged.clear()
    (lab.parent / "in" / "3.txt").write_text("changed\n")
    statuses = _run(lab, capsys)
    assert [s for s, v in statuses.items() if v == "ran"] == ["s3", "gather", "count"]
    assert sorted(judged) == ["count", "gather", "s3"]
    assert (lab.parent / "out" / "3.txt").read_text() == "changed\n"
    judged.clear()
    assert set(_run(lab, capsys).values()) == {"fresh"}  # the judgment was kept: nothing judged
    assert judged == []


def test_a_touched_input_runs_nothing_and_is_kept(
    lab: Path, judged: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    _run(lab, capsys)
    path = lab.parent / "in" / "5.txt"
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    judged.clear()
    assert set(_run(lab, capsys).values()) == {"fresh"}
    assert judged == []  # its content is as judged (the hash cache's, hashed again): nothing to judge
    entry = json.loads((lab.parent / ".agilab" / "judgment.json").read_text())
    files = dict(zip(entry["paths"], entry["signatures"], strict=True))
    assert files[str(path)] == f"{path.stat().st_size}:{path.stat().st_mtime_ns}"
    hashes = hash_table(lab.parent / ".agilab" / "hashes.json")
    assert hashes[str(path)][:2] == [path.stat().st_size, path.stat().st_mtime_ns]
    judged.clear()
    _run(lab, capsys)
    assert judged == []


def test_a_few_new_hashes_go_to_hashes_new_and_a_touched_input_is_found_there(
    lab: Path, judged: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    _run(lab, capsys)
    folder = lab.parent / ".agilab"
    base = (folder / "hashes.json").read_bytes()
    (lab.parent / "in" / "3.txt").write_text("changed\n")
    _run(lab, capsys)
    assert (folder / "hashes.json").read_bytes() == base  # not rewritten for a few entries
    added = json.loads((folder / "hashes-new.json").read_text())
    path = lab.parent / "in" / "3.txt"
    assert added[str(path)][:2] == [path.stat().st_size, path.stat().st_mtime_ns]
    assert str(lab.parent / "out" / "3.txt") in added and len(added) < N
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    judged.clear()
    assert set(_run(lab, capsys).values()) == {"fresh"}
    assert judged == []  # its hash as judged was in hashes-new.json: only touched
    hashes = hash_table(folder / "hashes.json")
    assert hashes[str(path)][:2] == [path.stat().st_size, path.stat().st_mtime_ns]
    assert not (folder / "hashes-new.json").exists()  # all in hashes.json again


def test_what_a_run_changed_in_the_judgment_is_written_apart_and_merged(
    lab: Path, judged: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    _run(lab, capsys)
    folder = lab.parent / ".agilab"
    base = (folder / "judgment.json").read_bytes()
    for i in (3, 5):
        (lab.parent / "in" / f"{i}.txt").write_text(f"changed {i}\n")
        judged.clear()
        assert [s for s, v in _run(lab, capsys).items() if v == "ran"] == [f"s{i}", "gather", "count"]
        assert sorted(judged) == ["count", "gather", f"s{i}"]  # not s3 again: the judgment holds for it
    assert (folder / "judgment.json").read_bytes() == base  # not rewritten for two changes
    apart = json.loads((folder / "judgment-new.json").read_text())
    path = lab.parent / "in" / "5.txt"
    assert apart["token"] == json.loads(base)["token"]
    assert apart["files"][str(path)] == f"{path.stat().st_size}:{path.stat().st_mtime_ns}"
    judged.clear()
    assert set(_run(lab, capsys).values()) == {"fresh"} and judged == []  # merged: nothing to judge
    assert [s["state"] for s in _status(lab, capsys)] == ["fresh"] * (N + 2)
    (folder / "judgment-new.json").write_text(json.dumps({**apart, "token": "another"}))
    judged.clear()
    _run(lab, capsys)  # one of another judgment is ignored: the state files it had moved are not
    assert len(judged) == N + 2  # as the judgment has them, so the lab is judged in full
    assert not (folder / "judgment-new.json").exists()  # and that judgment written whole
    assert json.loads((folder / "judgment.json").read_text())["token"] != apart["token"]


@pytest.mark.parametrize("damage", ["{not json", "[1, 2]", "[" * 100_000, "\udcff", "folder"])
def test_a_damaged_judgment_new_json_means_a_full_judgment(
    lab: Path, damage: str, judged: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    _run(lab, capsys)
    (lab.parent / "in" / "3.txt").write_text("changed\n")
    _run(lab, capsys)  # judged from the judgment: its change kept apart
    apart = lab.parent / ".agilab" / "judgment-new.json"
    assert apart.exists()
    if damage == "folder":
        apart.unlink()
        (apart / "inner").mkdir(parents=True)
    else:
        apart.write_bytes(damage.encode("utf-8", "surrogateescape"))
    judged.clear()
    assert set(_run(lab, capsys).values()) == {"fresh"}  # nothing ran: the outputs are as recorded
    assert len(judged) == N + 2  # judged in full


@pytest.mark.parametrize("command", ["run", "status"])
def test_new_content_of_the_same_size_is_judged(
    lab: Path, judged: list[str], capsys: pytest.CaptureFixture[str], command: str
) -> None:
    _run(lab, capsys)
    path = lab.parent / "in" / "5.txt"
    before = path.stat()
    path.write_text("LINE 5\n")  # the same size, another content
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns + 10**9))
    judged.clear()
    if command == "status":
        stale = {s["id"] for s in _status(lab, capsys) if s["state"] == "stale"}
        assert stale == {"s5", "gather", "count"} and "s5" in judged
    else:
        ran = {s for s, v in _run(lab, capsys).items() if v == "ran"}
        assert {"s5", "gather"} <= ran
        assert (lab.parent / "out" / "5.txt").read_text() == "LINE 5\n"


@pytest.mark.parametrize("change", ["input", "output-deleted", "function", "two-inputs"])
def test_status_from_a_stored_judgment_is_the_full_answer(
    lab: Path, judged: list[str], capsys: pytest.CaptureFixture[str], change: str
) -> None:
    _run(lab, capsys)
    folder = lab.parent
    if change == "input":
        (folder / "in" / "7.txt").write_text("new\n")
    elif change == "output-deleted":
        (folder / "out" / "2.txt").unlink()
    elif change == "function":
        (folder / "helpers.py").write_text("def count(path):\n    return {'n': 2 * len(open(path).read())}\n")
    else:
        (folder / "in" / "1.txt").write_text("new\n")
        (folder / "in" / "9.txt").write_text("new\n")
    judged.clear()
    partial = _status(lab, capsys)
    assert len(judged) < N  # not every step was judged
    full = _status(lab, capsys, "--no-cache")
    assert partial == full
    assert any(s["state"] == "stale" for s in partial)
    judged.clear()
    assert _status(lab, capsys) == full and judged == []  # kept: answered without judging


def test_a_change_to_the_lab_is_judged_in_full(
    lab: Path, judged: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    _run(lab, capsys)
    lab.write_text(lab.read_text() + "\n# a comment\n")
    judged.clear()
    assert set(_run(lab, capsys).values()) == {"fresh"}
    assert len(judged) == N + 2


def test_a_failure_after_a_stored_judgment_is_not_kept(
    lab: Path, judged: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    _run(lab, capsys)
    (lab.parent / "helpers.py").write_text("def count(path):\n    raise ValueError('no')\n")
    assert _run(lab, capsys)["count"] == "failed"
    judged.clear()
    assert _run(lab, capsys)["count"] == "failed"  # judged again, not answered as fresh
    assert "count" in judged


def test_after_one_change_the_hash_cache_is_not_read_and_the_answers_are_a_full_judgments(
    lab: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """gather reads all N outputs: judged after one changed, the hashes of the N - 1 others come
    from its fresh record (hints), not from hashes.json; a small changed file is hashed afresh."""
    from agilab_dsl.plan import hashfile
    from agilab_dsl.plan.state import LabState

    _run(lab, capsys)
    _run(lab, capsys)  # the judgment stored
    read: list[str] = []
    original = hashfile.HashCache._read

    def spy(self: hashfile.HashCache, path: Path) -> dict[str, list[object]]:
        read.append(path.name)
        return original(self, path)

    monkeypatch.setattr(hashfile.HashCache, "_read", spy)
    (lab.parent / "in" / "4.txt").write_text("changed, and longer\n")
    ran = _run(lab, capsys)
    assert [s for s, v in ran.items() if v == "ran"] == ["s4", "gather", "count"]
    assert "hashes.json" not in read
    assert (lab.parent / "total.txt").read_text() == str(sum(len(f"line {i}\n") for i in range(N)) + 13)
    monkeypatch.setattr(hashfile.HashCache, "_read", original)
    _run(lab, capsys)  # a full judgment again (the state is rewritten): the same answers
    (lab.parent / ".agilab" / "judgment.json").unlink()
    assert set(_run(lab, capsys).values()) == {"fresh"}
    hashes = LabState.load(lab).hashes  # hashes.json and what runs added since
    for path in (lab.parent / "in" / "4.txt", lab.parent / "out" / "4.txt"):
        assert hashes[str(path)][:2] == [path.stat().st_size, path.stat().st_mtime_ns]


def test_a_hint_stands_only_for_a_file_still_at_the_judged_signature(tmp_path: Path) -> None:
    from agilab_dsl.plan.cache import file_sha256
    from agilab_dsl.plan.fingerprint import FileHashes

    a, b, c = (tmp_path / name for name in "abc")
    for path in (a, b, c):
        path.write_text(path.name)
    sig = {str(p): f"{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in (a, b, c)}
    hashes = FileHashes()
    hashes.assume(sig, but=[str(b)])  # b changed since the judgment
    hashes.hint({str(a): "hinted-a", str(b): "hinted-b", str(c): "hinted-c"})
    hashes.forget(str(c))  # a step about to rewrite c
    assert hashes.of(a) == "hinted-a" and hashes.signature(str(a)) == sig[str(a)]
    assert hashes.of(b) == file_sha256(b) and hashes.of(c) == file_sha256(c)
    assert hashes.signature(str(c)) == sig[str(c)]  # as hashed now (unchanged here)
    assert not FileHashes().signature(str(a))  # never hashed


def test_the_hash_cache_reads_hashes_json_only_for_an_entry_it_lacks(tmp_path: Path) -> None:
    from agilab_dsl.plan.state import LabState

    lab = tmp_path / "lab.toml"
    state = LabState.load(lab)
    state.hashes = {f"/f{i}": [i, i, f"h{i}"] for i in range(100)}
    state.save_hashes(set(state.hashes))
    state = LabState.load(lab)
    state.hashes["/new"] = [1, 1, "n"]
    state.save_hashes({"/new"})  # a few: written apart
    state = LabState.load(lab)
    cache = state.hashes
    assert state.hashes_base == 100 and state.hashes_new == {"/new"}  # from the files' first bytes
    assert cache["/new"] == [1, 1, "n"] and not cache.loaded  # hashes-new.json is read at once
    cache["/f1"] = [7, 7, "set before"]
    assert cache.get("/f2") == [2, 2, "h2"] and cache.loaded  # an entry it lacked: read now
    assert cache["/f1"] == [7, 7, "set before"] and len(cache) == 101  # what was set wins
    assert not state.hashes_damaged


def test_a_fresh_steps_inputs_are_carried_from_its_record_but_those_looked_at_since(tmp_path: Path) -> None:
    from agilab_dsl.plan.cache import file_sha256
    from agilab_dsl.plan.fingerprint import FileHashes

    lab_dir, outside = tmp_path / "lab", tmp_path / "outside.txt"
    (lab_dir / "sub").mkdir(parents=True)
    a, b, d = lab_dir / "a.txt", lab_dir / "b.txt", lab_dir / "sub" / "d.txt"
    for path in (a, b, d, outside):
        path.write_text(path.name)
    sig = {str(p): f"{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in (a, b, d, outside)}
    paths = ["a.txt", "b.txt", "sub/d.txt", str(outside)]
    recorded = {"a.txt": "ha", "b.txt": "old-b", "sub/d.txt": "hd", str(outside): "ho"}

    def fresh() -> FileHashes:
        hashes = FileHashes()
        hashes.assume(sig, but=[str(b)])  # b changed since the judgment
        return hashes

    carried = fresh().carried(str(lab_dir), paths, recorded)
    assert carried == {"a.txt": "ha", "b.txt": file_sha256(b), "sub/d.txt": "hd", str(outside): "ho"}
    looked = fresh()  # what looking at each, hinted with the same record, answers
    looked.hint({os.path.join(lab_dir, p): h for p, h in recorded.items()})
    assert carried == {p: looked.of(os.path.join(lab_dir, p)) for p in paths}
    written = fresh()
    written.forget(str(d))  # a step of this run rewrites d: looked at again
    assert written.carried(str(lab_dir), paths, recorded)["sub/d.txt"] == file_sha256(d)
    # whenever the record and the judgment do not vouch for every path: None, each is looked at
    assert fresh().carried(str(lab_dir), paths, {**recorded, "other.txt": "h"}) is None
    assert fresh().carried(str(lab_dir), [*paths[:3], "other.txt"], recorded) is None
    assert fresh().carried(str(lab_dir), paths, {**recorded, "a.txt": ["not", "a hash"]}) is None
    assert FileHashes().carried(str(lab_dir), paths, recorded) is None  # nothing assumed
    unassumed = FileHashes()
    unassumed.assume({k: v for k, v in sig.items() if k != str(a)})
    assert unassumed.carried(str(lab_dir), paths, recorded) is None


def test_after_one_change_the_gathers_inputs_are_carried_and_its_record_is_a_full_judgments(
    lab: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from agilab_dsl.plan.cache import file_sha256
    from agilab_dsl.plan.fingerprint import FileHashes
    from agilab_dsl.plan.state import LabState

    _run(lab, capsys)
    carried: list[int] = []
    original = FileHashes.carried

    def spy(self: FileHashes, *args: object):  # type: ignore[no-untyped-def]
        out = original(self, *args)  # type: ignore[arg-type]
        carried.append(-1 if out is None else len(out))
        return out

    monkeypatch.setattr(FileHashes, "carried", spy)
    (lab.parent / "in" / "5.txt").write_text("changed\n")
    assert [s for s, v in _run(lab, capsys).items() if v == "ran"] == ["s5", "gather", "count"]
    assert carried == [1, N]  # s5's input (looked at: it changed) and the gather's N inputs
    state = LabState.load(lab)
    record = state.steps["gather"]
    assert record.components["inputs"] == {
        f"out/{i}.txt": file_sha256(lab.parent / "out" / f"{i}.txt") for i in range(N)
    }
    assert record.components["upstream"] == {f"s{i}": state.steps[f"s{i}"].fingerprint for i in range(N)}
    (lab.parent / ".agilab" / "judgment.json").unlink()  # a full judgment finds that record fresh
    assert set(_run(lab, capsys).values()) == {"fresh"}


@pytest.mark.parametrize("many", [1, 10_000])
def test_a_pass_judging_many_ready_steps_runs_with_the_collector_off(
    lab: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, many: int
) -> None:
    from agilab_dsl.execute import run

    passes: list[int] = []
    original = run.long_lived

    def counted():  # type: ignore[no-untyped-def]
        passes.append(1)
        return original()

    monkeypatch.setattr(run, "MANY", many)
    monkeypatch.setattr(run, "long_lived", counted)
    assert set(_run(lab, capsys).values()) == {"ran"}
    (lab.parent / "in" / "2.txt").write_text("changed\n")
    assert [s for s, v in _run(lab, capsys).items() if v == "ran"] == ["s2", "gather", "count"]
    # with MANY = 1, each run's three passes (the N copies, gather, count); else none
    assert len(passes) == (0 if many > N else 2 * 3)


def test_a_fresh_steps_upstream_fingerprints_are_carried_only_when_they_are_the_current_ones() -> None:
    from agilab_dsl.execute.statuses import _carried_upstream

    recorded, ups = {"a": "fa", "b": "fb"}, frozenset("ab")
    now = {"a": "fa", "b": "fb2", "c": "fc"}
    assert _carried_upstream(recorded, ups, now, {"b": True}) == {"a": "fa", "b": "fb2"}  # b ran
    assert _carried_upstream(recorded, ups, {"a": "fa", "b": "fb"}, {}) == recorded
    assert _carried_upstream(recorded, ups, now, {}) is None  # b moved, and did not run here
    assert _carried_upstream(recorded, frozenset("abc"), now, {"b": True}) is None  # c is upstream now
    assert _carried_upstream(recorded, ups, {"b": "fb2"}, {"b": True}) is None  # a has no record now
    assert _carried_upstream(["a", "b"], ups, now, {}) is None  # a damaged record
