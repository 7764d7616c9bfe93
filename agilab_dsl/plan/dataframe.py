"""AGILAB's dataframe hand-over (``df``), planned: which steps use the name ``df``, whose saved
frame each one reads, and where each one's frame is saved.

AGILAB runs a ``runpy`` stage's code with ``df`` bound to the selected dataframe and, afterwards,
saves a non-empty ``df`` to ``lab_out.csv`` in the app's export folder (``~/export/<app>/lab_out.csv``,
``df.to_csv(index=False)``); that file is what the next stage's ``df`` is read from (it becomes
``df_file_in``). Generated ("safe action") stages are written against that contract:
``df = df.copy()`` ….

Here the same contract, made explicit so that staleness can follow it:

* a **df step** is a step with code, run by ``runpy`` or with ``R`` blank (never ``agi.*``: AGILAB
  runs those in a subprocess without ``df``), whose code uses the name ``df`` at module level
  (decided from its syntax tree, never by running it);
* it **reads** ``df`` when the code loads that name before binding it (``df = df.copy()`` reads;
  ``df = pd.read_csv(…)`` only binds). A reader's frame is the one saved by the df step before it
  in its module's order (the saved ``__sequence`` order); the first reader's is ``--dataframe``;
* every df step saves its frame to a file **of its own**, ``<export>/<step id>/lab_out.csv``
  (``<export>`` = ``.agilab/export`` beside the lab, or ``--export-dir``), which is its output for
  staleness and the next reader's input: the graph orders them (``dataframe`` edges). AGILAB
  overwrites one shared file instead, so two stages' frames cannot be told apart there.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping

from ..load.records import FrozenRecord

TYPE_CHECKING = False  # typing is not imported at run time: ~2 ms of every run's start-up
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any

FRAME_FILE = "lab_out.csv"  # AGILAB's DEFAULT_DF
EXPORT_DIR = os.path.join(".agilab", "export")

_MENTION = re.compile(r"\bdf\b")


class FrameUse(FrozenRecord):
    """How a step's code uses ``df``: ``reads`` when it loads the name before binding it."""

    _fields = ("reads",)

    def __init__(
        self,
        reads: bool,
    ) -> None:
        self.reads = reads


class FrameLink(FrozenRecord):
    """A df step's place in its module's chain: whether it reads ``df`` and, if so, the df step
    whose saved frame it reads (None: the first reader, which reads ``--dataframe``)."""

    _fields = ("reads", "source")

    def __init__(
        self,
        reads: bool,
        source: str | None = None,
    ) -> None:
        self.reads = reads
        self.source = source


class FramePaths(FrozenRecord):
    """Where a df step's frame comes from and goes: paths relative to the lab's folder when they
    lie inside it, else absolute. ``input`` is None when the step does not read ``df`` or has no
    frame to read (a first reader without ``--dataframe``: its ``df`` is None, as in AGILAB with
    no dataframe selected)."""

    _fields = ("reads", "input", "output", "source")

    def __init__(
        self,
        reads: bool,
        input: str | None,
        output: str,
        source: str | None = None,  # the df step whose frame ``input`` is, if any
    ) -> None:
        self.reads = reads
        self.input = input
        self.output = output
        self.source = source


def frame_use(code: str | None) -> FrameUse | None:
    """How ``code`` uses the name ``df`` at module level, or None when it does not."""
    if not code or "df" not in code or not _MENTION.search(code):
        return None  # most code never mentions it: no parse (nor ast's import: ~3 ms)
    from .dataframe_scan import frame_use as scanned

    reads = scanned(code)
    return None if reads is None else FrameUse(reads)


def is_df_candidate(stage: Any) -> bool:
    """A step that AGILAB would run in-process with ``df`` (code, ``runpy`` or no ``R``)."""
    return (
        bool(stage.code) and not stage.function and not stage.stage and (stage.engine or "runpy") == "runpy"
    )


def frame_links(stages: Iterable[Any]) -> dict[str, FrameLink]:
    """Every df step's link, by step id. ``stages`` are placed stages (``.id``, ``.module``,
    ``.selected``, ``.stage``) in each module's order. A selected reader reads the frame of the
    selected df step before it (AGILAB runs only the saved selection); a step the selection leaves
    out (run with ``--all``) reads that of the df step before it, selected or not. A disabled step
    saves nothing and is passed over."""
    links: dict[str, FrameLink] = {}
    before: dict[str, list[Any]] = {}  # module -> its df steps so far
    for placed in stages:
        stage = placed.stage
        use = frame_use(stage.code) if is_df_candidate(stage) else None
        if use is None:
            continue
        earlier = before.setdefault(placed.module, [])
        source = None
        if use.reads:
            source = next(
                (p.id for p in reversed(earlier) if p.selected or not placed.selected),
                None,
            )
        links[placed.id] = FrameLink(use.reads, source)
        if stage.off is None:
            earlier.append(placed)
    return links


def frame_paths(
    links: Mapping[str, FrameLink],
    lab_dir: str,
    dataframe: str | None = None,
    export_dir: str | None = None,
) -> dict[str, FramePaths]:
    """Each df step's input and output paths. ``dataframe`` (``--dataframe``) and ``export_dir``
    (``--export-dir``) are absolute, or relative to ``lab_dir``."""
    root = os.path.join(lab_dir, export_dir) if export_dir else os.path.join(lab_dir, EXPORT_DIR)
    outputs = {sid: _lab_path(os.path.join(root, folder_name(sid), FRAME_FILE), lab_dir) for sid in links}
    first = _lab_path(os.path.join(lab_dir, dataframe), lab_dir) if dataframe else None
    out = {}
    for sid, link in links.items():
        source = outputs[link.source] if link.source is not None else first
        out[sid] = FramePaths(link.reads, source if link.reads else None, outputs[sid], link.source)
    return out


def folder_name(step_id: str) -> str:
    """A step id as one folder name (ids may hold ``/`` or ``:``)."""
    name = re.sub(r"[^A-Za-z0-9._-]", "_", step_id).strip(".")
    return name or "_"


def _lab_path(path: str, lab_dir: str) -> str:
    """``path`` relative to the lab's folder when inside it (posix separators), else absolute."""
    full = os.path.normpath(path)
    rel = os.path.relpath(full, lab_dir)
    if rel == os.pardir or rel.startswith(os.pardir + os.sep) or os.path.isabs(rel):
        return full
    return rel.replace(os.sep, "/")
