"""Which lab a command works on, seen how: the options every command on a lab shares."""

from __future__ import annotations

from ..load.records import FrozenRecord

TYPE_CHECKING = False  # typing is not imported at run time: ~2 ms of every run's start-up
if TYPE_CHECKING:  # pragma: no cover
    from ..plan.interpreter import InterpreterOptions


class LabRequest(FrozenRecord):
    """Which lab, seen how: the options every command on a lab shares."""

    _fields = (
        "file",
        "settings",
        "profile",
        "only",
        "from_step",
        "use_cache",
        "all_stages",
        "dataframe",
        "export_dir",
        "interpreters",
        "infer",
    )

    def __init__(
        self,
        file: str,
        settings: str | None = None,
        profile: str | None = None,
        only: tuple[str, ...] = (),
        from_step: str | None = None,
        use_cache: bool = True,
        all_stages: bool = False,  # --all: also the stages a saved __sequence leaves out
        dataframe: str | None = None,  # --dataframe: the first df step's df (see plan/dataframe.py)
        export_dir: str | None = None,  # --export-dir: where df steps save lab_out.csv
        interpreters: InterpreterOptions | None = None,  # --python, --agilab-python, --apps-path
        infer: bool = True,  # --no-infer: no artifact inferred from code or NB_ARTIFACT_REFERENCES
    ) -> None:
        self.file = file
        self.settings = settings
        self.profile = profile
        self.only = only
        self.from_step = from_step
        self.use_cache = use_cache
        self.all_stages = all_stages
        self.dataframe = dataframe
        self.export_dir = export_dir
        self.interpreters = interpreters
        self.infer = infer
