from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT.parent / "shared" / "corpus" / "agilab"
CONFORMANCE = ROOT / "lab_steps" / "conformance"


def corpus_files() -> list[Path]:
    return sorted(CORPUS.glob("*.toml")) if CORPUS.is_dir() else []


needs_corpus = pytest.mark.skipif(
    not CORPUS.is_dir(), reason=f"AGILAB corpus folder {CORPUS} is absent (it lives in ../shared beside the repo)"
)
