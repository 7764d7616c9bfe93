from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT.parent / "shared" / "corpus" / "agilab"
CONFORMANCE = ROOT / "lab_steps" / "conformance"


def corpus_files() -> list[Path]:
    return sorted(CORPUS.glob("*.toml")) if CORPUS.is_dir() else []


needs_corpus = pytest.mark.skipif(
    not CORPUS.is_dir(),
    reason=f"AGILAB corpus folder {CORPUS} is absent (it lives in ../shared beside the repo)",
)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test gets its own, empty check-result cache (never the user's)."""
    monkeypatch.setenv("AGILAB_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
