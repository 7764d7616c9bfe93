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
