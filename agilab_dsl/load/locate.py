"""Where AGILAB's conventions put things on disk: the settings snapshot and a function's source.

One place for both, used by ``check`` (which notes every path it consults, for its cache), by the
fingerprints and by the CLI's judgment cache. Finding never imports user code. Standard library only.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

# ``--settings PATH``, else the first of these that exists, relative to the lab's folder
SETTINGS_NAMES = ("app_settings.toml", "src/app_settings.toml")
BUILTIN = Path("<builtin>")  # a module with no file (built into the interpreter, or frozen)


def settings_candidates(lab_path: str | os.PathLike[str]) -> list[Path]:
    folder = Path(lab_path).parent
    return [folder / name for name in SETTINGS_NAMES]


def function_source(
    module: str,
    is_path: bool,
    base_dir: Path,
    is_file: Callable[[Path], bool] = Path.is_file,
    note: Callable[[str], None] = lambda path: None,
) -> Path | None:
    """The file that defines ``module`` (a dotted name, or a ``.py`` path relative to ``base_dir``):
    searched beside the file, then on ``sys.path``, then where ``find_spec`` finds installed packages.
    ``is_file`` answers every existence question (so a caller can record them); ``note`` is told the
    folders whose contents decide a ``find_spec`` answer. ``BUILTIN`` for modules without a file;
    an extension module's shared library for compiled ones; None when nothing is found."""
    if is_path:
        path = (base_dir / module).resolve()
        return path if is_file(path) else None
    parts = module.split(".")
    for root in [base_dir, *(Path(p) for p in sys.path if p)]:
        found = _in_root(root, parts, is_file)
        if found is not None:
            return found
    for entry in sys.path:  # what find_spec sees: installed packages come and go
        if entry and os.path.isdir(entry):
            note(entry)
    try:
        import importlib.util  # here: imported only for a function step

        spec = importlib.util.find_spec(parts[0])  # finds, does not execute, a top-level module
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    if len(parts) == 1:
        return Path(spec.origin) if spec.origin and spec.origin not in ("built-in", "frozen") else BUILTIN
    for location in spec.submodule_search_locations or []:
        found = _in_root(Path(location), parts[1:], is_file)
        if found is not None:
            return found
    return None


def _in_root(root: Path, parts: list[str], is_file: Callable[[Path], bool]) -> Path | None:
    folder = root.joinpath(*parts[:-1])
    for candidate in (folder / f"{parts[-1]}.py", folder / parts[-1] / "__init__.py"):
        try:
            if is_file(candidate):
                return candidate
        except OSError:
            continue
    return None
