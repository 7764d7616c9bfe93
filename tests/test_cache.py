"""The check-result cache: reused only while everything a result depends on is unchanged."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import agilab_dsl.check.files
from agilab_dsl.cli import main
from agilab_dsl.plan import cache

LAB = """[[m]]
id = "a"
function = "helpers.py:run"
params = {{ n = "${{settings.args.{key}}}" }}
stage = "{stage}"
"""


@pytest.fixture
def lab(tmp_path: Path) -> Path:
    (tmp_path / "helpers.py").write_text("def run(n):\n    return n\n", encoding="utf-8")
    (tmp_path / "app_settings.toml").write_text("[args]\nn = 1\n", encoding="utf-8")
    path = tmp_path / "lab_steps.toml"
    path.write_text(LAB.format(key="n", stage="").replace('stage = ""\n', ""), encoding="utf-8")
    return path


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Counts real checks (cache misses)."""
    seen: list[str] = []
    real = agilab_dsl.check.files.check_file

    def counting(path, **kw):  # type: ignore[no-untyped-def]
        seen.append(str(path))
        return real(path, **kw)

    monkeypatch.setattr(agilab_dsl.check.files, "check_file", counting)
    return seen


def run(path: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, str]:
    code = main(["check", str(path), *extra])
    return code, capsys.readouterr().out


def test_unchanged_file_is_answered_from_the_cache(lab: Path, calls: list[str], capsys) -> None:
    first = run(lab, capsys)
    second = run(lab, capsys)
    assert first == second and first[0] == 0
    assert len(calls) == 1


def test_cached_problems_print_identically(lab: Path, calls: list[str], capsys) -> None:
    lab.write_text(lab.read_text().replace("args.n", "args.nn"), encoding="utf-8")
    first = run(lab, capsys)
    assert first[0] == 1 and "[args] has no key 'nn'" in first[1] and " | " in first[1]
    assert run(lab, capsys) == first
    assert run(lab, capsys, "--format", "github")[1].startswith("::error file=")
    assert len(calls) == 1  # the format is applied to cached diagnostics


@pytest.mark.parametrize("change", ["lab", "settings", "settings-created", "function-source", "stage-file"])
def test_any_input_change_invalidates(lab: Path, calls: list[str], capsys, change: str) -> None:
    folder = lab.parent
    if change == "settings-created":
        (folder / "app_settings.toml").unlink()
    if change == "stage-file":
        lab.write_text(lab.read_text().replace('function = "helpers.py:run"\n', 'stage = "p.toml"\n'))
    before = run(lab, capsys)
    if change == "lab":
        lab.write_text(lab.read_text() + "\n# a comment\n", encoding="utf-8")
    elif change == "settings":
        (folder / "app_settings.toml").write_text("[args]\nm = 1\n", encoding="utf-8")
    elif change == "settings-created":
        (folder / "src").mkdir()
        (folder / "src" / "app_settings.toml").write_text("[args]\nn = 2\n", encoding="utf-8")
    elif change == "function-source":
        (folder / "helpers.py").write_text("def other(n):\n    return n\n", encoding="utf-8")
    elif change == "stage-file":
        (folder / "p.toml").write_text("x = 1\n", encoding="utf-8")
    after = run(lab, capsys)
    assert len(calls) == 2, f"{change} did not invalidate the cached result"
    if change in ("settings", "function-source", "stage-file", "settings-created"):
        assert before != after


def test_no_cache_flag_and_env(lab: Path, calls: list[str], capsys, monkeypatch) -> None:
    run(lab, capsys, "--no-cache")
    run(lab, capsys, "--no-cache")
    assert len(calls) == 2
    monkeypatch.setenv("AGILAB_NO_CACHE", "1")
    run(lab, capsys)
    run(lab, capsys)
    assert len(calls) == 4


def test_corrupt_or_unwritable_cache_is_ignored(
    lab: Path, calls: list[str], capsys, monkeypatch, tmp_path: Path
) -> None:
    run(lab, capsys)
    folder = Path(cache.cache_dir()) / "check"
    for entry in folder.iterdir():
        entry.write_text("{not json", encoding="utf-8")
    assert run(lab, capsys)[0] == 0
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the cache folder would go", encoding="utf-8")
    monkeypatch.setenv("AGILAB_CACHE_DIR", str(blocker))
    assert run(lab, capsys)[0] == 0
    assert len(calls) == 3


def test_a_file_changing_during_the_check_is_not_stored(lab: Path) -> None:
    obs = cache.Observations()
    obs.note(lab)
    lab.write_text(lab.read_text() + "\n", encoding="utf-8")
    cache.store(str(lab), {}, obs, [{"path": str(lab), "kind": "lab", "diagnostics": []}])
    assert cache.lookup(str(lab), {}) is None
    obs = cache.Observations()
    obs.note(lab)
    cache.store(str(lab), {}, obs, [{"path": str(lab), "kind": "lab", "diagnostics": []}])
    assert cache.lookup(str(lab), {}) == [{"path": str(lab), "kind": "lab", "diagnostics": []}]


def test_entries_are_written_atomically(lab: Path, capsys) -> None:
    run(lab, capsys)
    names = os.listdir(Path(cache.cache_dir()) / "check")
    assert names and all(n.endswith(".json") for n in names)


@pytest.mark.parametrize("size", [0, 5, cache.SMALL, cache.SMALL + 1])
def test_a_files_signature_is_its_sha256_small_or_large(tmp_path: Path, size: int) -> None:
    import hashlib

    path = tmp_path / "f.bin"
    path.write_bytes(bytes(range(256)) * (size // 256) + b"x" * (size % 256))
    assert cache.signature(str(path)) == "file:" + hashlib.sha256(path.read_bytes()).hexdigest()
    names = "\n".join(["f.bin"]).encode()
    assert cache.signature(str(tmp_path)) == "dir:" + hashlib.sha256(names).hexdigest()


def test_sha256_hex_is_sha256_and_imports_nothing_per_call(monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins
    import hashlib

    from agilab_dsl.plan.cache import sha256_hex

    imports: list[str] = []
    real_import = builtins.__import__

    def counting(name: str, *args: object, **kwargs: object) -> object:
        imports.append(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", counting)
    got = [sha256_hex(data) for data in (b"", b"abc", bytes(range(256)) * 1000)]
    monkeypatch.undo()
    assert got == [hashlib.sha256(d).hexdigest() for d in (b"", b"abc", bytes(range(256)) * 1000)]
    # a failed import is not remembered: one tried per call searched all of sys.path every time
    assert imports == []


def test_sha256_hex_of_large_data_is_sha256_too() -> None:
    """Data over SMALL goes through hashlib (OpenSSL): the same digests on both sides of the line."""
    import hashlib

    from agilab_dsl.plan.cache import SMALL, sha256_hex

    for size in (SMALL - 1, SMALL, SMALL + 1, 3 * SMALL + 7):
        data = bytes(range(251)) * (size // 251) + b"y" * (size % 251)
        assert sha256_hex(data) == hashlib.sha256(data).hexdigest()


def _entries(folder: Path) -> set[str]:
    return {p.name for p in folder.glob("*.json")}


def test_a_namespace_keeps_its_recently_used_entries_within_its_size(
    tmp_path: Path, calls: list[str], capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Entries no call asks for again (another tool version, a moved lab) are removed, least
    recently used first, once the namespace exceeds $AGILAB_CACHE_MAX_MB; one just used stays."""
    labs = []
    for n in range(4):
        folder = tmp_path / f"lab{n}"
        folder.mkdir()
        path = folder / "lab_steps.toml"
        path.write_text(f'[[m]]\nid = "a{n}"\nC = "x = {n}"\n', encoding="utf-8")
        labs.append(path)
    checks = Path(cache.cache_dir()) / "check"
    for n, path in enumerate(labs[:3]):
        before = _entries(checks) if checks.is_dir() else set()
        assert run(path, capsys)[0] == 0
        (added,) = _entries(checks) - before
        os.utime(checks / added, (1000 + n, 1000 + n))  # an order of use mtimes' granularity cannot blur
    first, second, third = sorted(checks.glob("*.json"), key=lambda p: p.stat().st_mtime)
    size = first.stat().st_size
    assert run(labs[0], capsys)[0] == 0 and len(calls) == 3  # a hit marks the first as used now
    assert first.stat().st_mtime > third.stat().st_mtime
    # room for three entries: the fourth removes the least recently used (the second), not the first
    monkeypatch.setenv("AGILAB_CACHE_MAX_MB", str((3.5 * size) / 2**20))
    assert run(labs[3], capsys)[0] == 0 and len(calls) == 4
    left = _entries(checks)
    assert len(left) == 3 and second.name not in left and {first.name, third.name} <= left
    assert run(labs[1], capsys)[0] == 0 and len(calls) == 5  # checked again: its entry was removed
    assert run(labs[0], capsys)[0] == 0 and len(calls) == 5  # still answered from the cache


def test_prune_keeps_the_new_entry_and_removes_left_temporary_files(tmp_path: Path) -> None:
    folder = tmp_path / "spec"
    folder.mkdir()
    big = folder / "old.json"
    big.write_bytes(b"x" * 4000)
    os.utime(big, (1000, 1000))
    new = folder / "new.json"
    new.write_bytes(b"y" * 3000)  # alone over the limit: kept all the same
    ended = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True
    )
    torn = folder / f"new.json.{int(ended.stdout)}.tmp"  # its writer is gone
    torn.write_bytes(b"half")
    writing = folder / f"other.json.{os.getppid()}.tmp"  # a writer at work now
    writing.write_bytes(b"half")
    (folder / "notes.txt").write_text("not an entry")
    removed = cache.prune(str(folder), keep=str(new), limit=1000)
    assert sorted(Path(p).name for p in removed) == [torn.name, "old.json"]
    assert sorted(p.name for p in folder.iterdir()) == sorted(["new.json", "notes.txt", writing.name])
    assert cache.prune(str(tmp_path / "absent"), keep="", limit=0) == []


@pytest.mark.parametrize(
    ("value", "expected"), [("0", 0), ("1.5", 3 * 2**19), ("lots", cache.MAX_MB * 2**20)]
)
def test_the_size_limit_comes_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, value: str, expected: int
) -> None:
    monkeypatch.setenv("AGILAB_CACHE_MAX_MB", value)
    assert cache.max_bytes() == expected
