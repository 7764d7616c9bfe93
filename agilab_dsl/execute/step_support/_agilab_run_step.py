"""agilab-run's side of AGILAB's ``df`` and tracker, inside the process that runs one step.

The step worker loads this file by its path (it imports only the standard library, and pandas
only to read a step's frame: a worker under a foreign interpreter runs it too), then calls
:func:`before` ahead of the step's code and :func:`after` once it returned:

* ``df``: a df step (see ``agilab_dsl/plan/dataframe.py``) finds ``df`` bound to the frame it reads
  (CSV, Parquet or JSON records, read as AGILAB's ``load_df`` reads them), or to None when it has
  none; afterwards a non-empty pandas ``df`` is saved to its ``lab_out.csv`` with
  ``to_csv(index=False)``, as AGILAB's ``save_csv`` does (so the index is not kept, there either);
* the tracker: ``agilab.tracking`` (and ``agilab.evidence.tracking``, where AGILAB keeps it now) is
  imported through a finder put first on ``sys.meta_path``. Where AGILAB is installed, the real
  module is loaded and its ``tracker`` observed: each logging call runs as it would, then what it
  logged is noted. Where it is not, the stand-in beside this file (``agilab/tracking.py``) is
  loaded, and observed the same way. What was noted comes back in the step's result.

Notes for the step's log go to stderr: this runs in the step's process, whose stdio is its log.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # typing is not imported: every step worker loads this at its start
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
SHIM = os.path.join(HERE, "agilab")
TRACKED = ("agilab.tracking", "agilab.evidence.tracking")

# the tracker's methods that log, and the names of their positional parameters (AGILAB's)
LOGGING = {
    "log_metric": ("key", "value"),
    "log_metrics": ("metrics",),
    "log_param": ("key", "value"),
    "log_params": ("params",),
    "set_tag": ("key", "value"),
    "set_tags": ("tags",),
    "log_artifact": ("artifact",),
    "log_text": ("text", "artifact_file"),
}

_noted: list[tuple[Any, ...]] = []  # what the step's tracker logged, in order
_inside = [False]  # a logging call running now (one that calls another is noted once)


# -- before and after the step ------------------------------------------------------------------
def before(namespace: dict[str, Any], request: dict[str, Any]) -> str | None:
    """Make the tracker importable and bind ``df``; a message (the step must not run) or None."""
    if not (sys.meta_path and type(sys.meta_path[0]) is TrackerFinder):  # (the worker's, inherited)
        install()
    frame = request.get("frame")
    if frame is None:
        return None
    namespace["df"] = None
    if not frame.get("reads"):
        return None
    source = frame.get("input")
    if not source:
        note("df: this step reads df and no dataframe was given (--dataframe PATH): df is None")
        return None
    if not os.path.exists(source):
        earlier = frame.get("source")
        note(
            f"df: {source} does not exist"
            + (f" ({earlier} saved no frame)" if earlier else "")
            + ": df is None"
        )
        return None
    try:
        import pandas
    except ImportError:
        return no_pandas(sys.executable, sys.version.split()[0], source)
    try:
        namespace["df"] = read_frame(pandas, source)
    except (OSError, ValueError, ImportError) as exc:  # a damaged file; pyarrow missing for Parquet
        return f"df: cannot read {source}: {type(exc).__name__}: {exc}"
    return None


def install() -> None:
    """Put the tracker's finder first on ``sys.meta_path``, once per process. The worker does it as
    it loads this file, so that each step's process, forked from it, starts with it there."""
    if not any(isinstance(f, TrackerFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, TrackerFinder())


def uninstall() -> None:
    """Take the tracker's finder off ``sys.meta_path`` (a parallel stage's process: its function
    imports ``agilab`` as it would without this tool)."""
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, TrackerFinder)]


def after(namespace: dict[str, Any], request: dict[str, Any]) -> dict[str, Any]:
    """What the step's result gains: the frame it saved (``frame``), what it logged (``tracked``)."""
    out: dict[str, Any] = {}
    frame = request.get("frame")
    if frame is not None:
        out["frame"] = save_frame(namespace.get("df"), frame["output"])
    tracked = tracked_payload()
    if tracked:
        out["tracked"] = tracked
    return out


def no_pandas(python: str, version: str, source: str) -> str:
    """Why a step cannot be given its ``df``: no pandas where it runs."""
    return (
        f"df: pandas is not installed in this step's interpreter, {python} (Python {version}); "
        f"it is needed to read the step's dataframe {source}. Install it there "
        f"({python} -m pip install pandas), or run the step under an interpreter that has it "
        "(the stage's E, or --python)."
    )


def note(text: str) -> None:
    print(text, file=sys.stderr)


# -- df -----------------------------------------------------------------------------------------
def read_frame(pandas: Any, path: str) -> Any:
    """A frame as AGILAB's ``load_df`` reads one: CSV (UTF-8, else Latin-1), Parquet, JSON records."""
    suffix = os.path.splitext(path)[1].lower()
    if suffix == ".csv":
        try:
            return pandas.read_csv(path, encoding="utf-8", index_col=None)
        except UnicodeDecodeError:
            return pandas.read_csv(path, encoding="latin-1", index_col=None)
    if suffix == ".parquet":
        return pandas.read_parquet(path)
    if suffix == ".json":
        return pandas.read_json(path, orient="records")
    raise ValueError("a dataframe is a .csv, .parquet or .json file")


def save_frame(df: Any, path: str) -> dict[str, Any]:
    """Save a non-empty pandas ``df`` to ``path`` (AGILAB saves nothing else); otherwise remove
    a frame an earlier run left there, so that no reader takes it for this run's."""
    pandas = sys.modules.get("pandas")  # a pandas DataFrame means pandas is imported already
    is_frame = pandas is not None and isinstance(df, pandas.DataFrame)
    if not is_frame or df.empty:
        try:  # noqa: SIM105 - contextlib's import (~2 ms) is paid at each worker's start
            os.remove(path)
        except OSError:
            pass
        if is_frame:
            note(f"df: empty ({df.shape[0]} × {df.shape[1]}): {os.path.basename(path)} not written")
        return {"path": None, "kind": type(df).__name__}
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = os.path.join(
        os.path.dirname(path), f".{os.path.basename(path)}.{os.getpid()}.tmp"
    )  # swept if killed
    df.to_csv(tmp, index=False)
    os.replace(tmp, path)
    return {"path": path, "rows": int(df.shape[0]), "columns": int(df.shape[1])}


# -- the tracker --------------------------------------------------------------------------------
class TrackerFinder:
    """First on ``sys.meta_path``: ``agilab.tracking`` is the real module, observed, where one is
    found; else the stand-in beside this file (``agilab`` itself too, where AGILAB is absent)."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        if name != "agilab" and name not in TRACKED:
            return None
        import importlib.util

        spec = self._elsewhere(name, path, target)
        if spec is None and name == "agilab":
            return importlib.util.spec_from_file_location(
                name, os.path.join(SHIM, "__init__.py"), submodule_search_locations=[SHIM]
            )
        if spec is None and name == "agilab.tracking":
            spec = importlib.util.spec_from_file_location(name, os.path.join(SHIM, "tracking.py"))
        if spec is not None and name in TRACKED and spec.loader is not None:
            spec.loader = ObservingLoader(spec.loader)
        return spec

    def _elsewhere(self, name: str, path: Any, target: Any) -> Any:
        for finder in sys.meta_path:
            find = getattr(finder, "find_spec", None)
            if finder is self or isinstance(finder, TrackerFinder) or find is None:
                continue
            spec = find(name, path, target)
            if spec is not None:
                return spec
        return None


class ObservingLoader:
    """Loads the tracking module as its own loader would, then observes its ``tracker``."""

    def __init__(self, loader: Any) -> None:
        self.loader = loader

    def create_module(self, spec: Any) -> Any:
        create = getattr(self.loader, "create_module", None)
        return create(spec) if create is not None else None

    def exec_module(self, module: Any) -> None:
        self.loader.exec_module(module)
        tracker = getattr(module, "tracker", None)
        if tracker is not None:
            observe_tracker(tracker)

    def __getattr__(self, name: str) -> Any:  # get_source, is_package, …
        return getattr(self.loader, name)


def observe_tracker(tracker: Any) -> None:
    """Have each logging method of ``tracker`` note what it logged (after it ran, as it would)."""
    if getattr(tracker, "_agilab_run_observed", False):
        return
    try:
        for method in LOGGING:
            original = getattr(tracker, method, None)
            if callable(original):
                setattr(tracker, method, _observed(method, original))
        tracker._agilab_run_observed = True
    except (AttributeError, TypeError):  # a tracker that takes no attributes: it stays unobserved
        pass


def _observed(method: str, original: Any) -> Any:
    def call(*args: Any, **kwargs: Any) -> Any:
        if _inside[0]:
            return original(*args, **kwargs)
        _inside[0] = True
        try:
            result = original(*args, **kwargs)
        finally:
            _inside[0] = False
        observe(method, args, kwargs)
        return result

    call.__name__ = method
    call.__doc__ = getattr(original, "__doc__", None)
    call.__wrapped__ = original  # type: ignore[attr-defined]
    return call


def observe(method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """Note one logging call (its arguments as the tracker's signature names them)."""
    given = dict(zip(LOGGING[method], args))  # noqa: B905 - strict= is Python 3.10+, this runs on any
    given.update(kwargs)
    step = given.get("step")
    step = int(step) if step is not None else None
    if method == "log_metric":
        _noted.append(("metric", str(given["key"]), float(given["value"]), step))
    elif method == "log_metrics":
        _noted.extend(("metric", str(k), float(v), step) for k, v in dict(given["metrics"]).items())
    elif method in ("log_param", "set_tag"):
        _noted.append(("param" if method == "log_param" else "tag", str(given["key"]), given["value"]))
    elif method in ("log_params", "set_tags"):
        kind = "param" if method == "log_params" else "tag"
        _noted.extend((kind, str(k), v) for k, v in dict(given[method[4:]]).items())
    elif method == "log_artifact" and os.path.exists(os.fspath(given["artifact"])):
        _noted.append(("artifact", os.fspath(given["artifact"])))
    elif method == "log_text":
        _noted.append(("artifact", str(given["artifact_file"])))


def tracked_payload() -> dict[str, Any]:
    """What was noted, as the step's result carries it (empty parts left out)."""
    metrics = [{"key": n[1], "value": n[2], "step": n[3]} for n in _noted if n[0] == "metric"]
    params = {n[1]: _text(n[2]) for n in _noted if n[0] == "param"}
    tags = {n[1]: _text(n[2]) for n in _noted if n[0] == "tag"}
    artifacts = list(dict.fromkeys(n[1] for n in _noted if n[0] == "artifact"))
    out: dict[str, Any] = {}
    for name, value in (("metrics", metrics), ("params", params), ("tags", tags), ("artifacts", artifacts)):
        if value:
            out[name] = value
    return out


def _text(value: Any) -> str:
    """A param's or tag's value as MLflow keeps it: text."""
    return value if isinstance(value, str) else str(value)
