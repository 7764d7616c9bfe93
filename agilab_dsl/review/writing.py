"""Rewriting a user's file without losing what is around the edit: atomically (a temporary file
beside it, then a rename), keeping the file's mode, and through a symlink (the link stays, its
target is rewritten). The temporary file is named ``.<name>.<pid>.tmp`` so that the next run of the
lab removes one a killed process left (:mod:`agilab_dsl.plan.tempfiles`).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from ..plan.tempfiles import temp_path


def replace_kept(target: Path, text: str, mode_of: Path) -> None:
    """Write ``text`` over ``target``, keeping the replaced file's mode (else ``mode_of``'s)."""
    real = Path(os.path.realpath(target)) if target.is_symlink() else target
    tmp = Path(temp_path(real))
    try:
        tmp.write_bytes(text.encode("utf-8"))
        os.chmod(tmp, stat.S_IMODE((real if real.exists() else mode_of).stat().st_mode))
        tmp.replace(real)
    finally:
        if tmp.exists():
            tmp.unlink()
