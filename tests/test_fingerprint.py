"""Fingerprints find a function's source exactly where check does (one lookup serves both)."""

from __future__ import annotations

from pathlib import Path

from agilab_dsl.check.functions import locate_function
from agilab_dsl.load.expr import parse_funcref
from agilab_dsl.plan.fingerprint import function_hash


def test_check_and_fingerprint_agree_on_every_kind_of_module(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("", encoding="utf-8")
    (tmp_path / "pkg" / "steps.py").write_text("def run():\n    return 1\n", encoding="utf-8")
    (tmp_path / "local.py").write_text("def run():\n    return 2\n", encoding="utf-8")
    for text in ("pkg.steps:run", "local.py:run", "json:dumps"):
        ref = parse_funcref(text)
        assert locate_function(ref, tmp_path) is None, text
        assert len(function_hash(ref, tmp_path)) == 64, text  # the function's own source, hashed
    builtin = parse_funcref("math:sqrt")  # no Python source: accepted by check, not "missing"
    assert locate_function(builtin, tmp_path) is None
    assert function_hash(builtin, tmp_path).startswith("compiled:math:sqrt:")
    missing = parse_funcref("no_such_module_xyz:run")
    assert locate_function(missing, tmp_path) is not None
    assert function_hash(missing, tmp_path) == "missing:no_such_module_xyz:run"


def test_file_hashes_take_assumed_signatures_until_a_file_is_forgotten(tmp_path: Path) -> None:
    import hashlib
    import os

    from agilab_dsl.plan.fingerprint import FileHashes

    data = tmp_path / "in.txt"
    data.write_text("one\n")
    hashes = FileHashes()
    first = hashes.of(data)
    assert first == hashlib.sha256(b"one\n").hexdigest()
    st = os.stat(data)
    # a stored judgment's lookup saw this signature: the cached hash is taken without looking again
    other = tmp_path / "other.txt"
    other.write_text("other\n")
    hashes.of(other)
    looked = {str(data): f"{st.st_size}:{st.st_mtime_ns}", str(tmp_path / "x"): "missing"}
    looked[str(other)] = f"{os.stat(other).st_size}:{os.stat(other).st_mtime_ns}"
    hashes.assume(looked, but=[str(other)])  # the lookup found `other` changed: looked at again
    data.write_text("two, longer\n")
    other.write_text("other, changed\n")
    assert hashes.of(data) == first
    assert hashes.of(other) == hashlib.sha256(b"other, changed\n").hexdigest()
    hashes.forget(str(data))  # a step that writes it is about to run
    assert hashes.of(data) == hashlib.sha256(b"two, longer\n").hexdigest()
    # a signature that does not match the cache's entry is looked at again
    hashes.assume({str(data): f"{st.st_size}:{st.st_mtime_ns + 1}"})
    assert hashes.of(data) == hashlib.sha256(b"two, longer\n").hexdigest()
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom((1 << 20) + 5))  # over plan.cache.SMALL: streamed through hashlib
    assert hashes.of(big) == hashlib.sha256(big.read_bytes()).hexdigest()
