"""Which lab a command works on, seen how: the options every command on a lab shares."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from ..plan.interpreter import InterpreterOptions


@dataclass(frozen=True)
class LabRequest:
    """Which lab, seen how: the options every command on a lab shares."""

    file: str
    settings: str | None = None
    profile: str | None = None
    only: tuple[str, ...] = ()
    from_step: str | None = None
    use_cache: bool = True
    all_stages: bool = False  # --all: also the stages a saved __sequence leaves out
    dataframe: str | None = None  # --dataframe: the first df step's df (see plan/dataframe.py)
    export_dir: str | None = None  # --export-dir: where df steps save lab_out.csv
    interpreters: InterpreterOptions | None = None  # --python, --agilab-python, --apps-path
    infer: bool = True  # --no-infer: no artifact inferred from code or NB_ARTIFACT_REFERENCES
