"""Watch mode: run once, then re-run exactly the steps a file change affected (DESIGN §3.5).

The loop takes change batches from a *change source*: a callable that, given the folders to
watch, yields sets of changed paths. The real one is :func:`watchfiles_source`; tests give a
scripted one, so the loop's logic is tested without sleeping.

What is watched: the lab's folder (recursively: the lab file, the settings snapshot, inputs,
function sources, contracts and whatever their globs may find later), plus the folders of any
of those that live outside it. What is ignored: ``.agilab/``, the steps' declared outputs (the
runner's own writes), version-control and cache folders, editor swap / temporary files, and what
AGILAB writes beside a lab (:func:`is_agilab_output`; its ``.agilab/`` state is ignored whole). A
change to anything else re-judges the lab; only stale steps and their dependents run, so a change
that affects no step runs nothing.

Policy for a change that arrives during a run: the run finishes, then the change is evaluated
(the watcher keeps collecting events while the run goes on, so none is lost).

Between runs the step workers, the joblib/loky workers of pool stages and a Dask LocalCluster
stay up (:class:`~agilab_dsl.execute.machine.Warm`).
Ctrl-C or SIGTERM ends a running step (the run is recorded as interrupted) and the watcher; the
exit status is 0 — stopping is how watch mode ends.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ChangeSource = Callable[[list[str]], Iterable[set[str]]]

IGNORED_FOLDERS = {
    ".agilab",
    ".git",
    ".hg",
    ".svn",
    "__pycache__",
    ".mypy_cache",
    ".pytest_cache",
    ".ruff_cache",
    "mlruns",
    ".ipynb_checkpoints",
    "node_modules",
    ".venv",
    ".idea",
}
IGNORED_SUFFIXES = (
    ".swp",
    ".swo",
    ".swx",
    ".swpx",
    "~",
    ".tmp",
    ".temp",
    ".part",
    ".crdownload",
    ".pyc",
    "___jb_tmp___",
    "___jb_old___",
)
IGNORED_PREFIXES = (".#", ".goutputstream-", "#")


def is_noise(path: str, root: str | None = None) -> bool:
    """Editor swap and backup files, temporary files, caches and version control (folders are
    looked for below ``root``: a lab may itself live under a folder of such a name)."""
    name = os.path.basename(path)
    if name.startswith(IGNORED_PREFIXES) or name.endswith(IGNORED_SUFFIXES) or name == "4913":  # vim's probe
        return True
    below = os.path.relpath(path, root) if root and path.startswith(root + os.sep) else path
    return any(part in IGNORED_FOLDERS for part in Path(below).parts)


# What AGILAB writes beside a lab (pipeline_run_controls, pipeline_lab, 3_WORKFLOW,
# notebook_export_support): generated stage scripts, the notebook export and its PyCharm mirror
# (<app>/notebooks/ or <repo>/exported_notebooks/<lab>/, with a sitecustomize.py); its run state,
# workflow evidence and multi-app DAGs are under .agilab/, ignored whole above.
AGILAB_SCRIPTS = ("AGI_run.py", "AGI_serve_safe_start_template.py")
AGILAB_NOTEBOOK_SUFFIXES = (".ipynb", ".notebook_export.json", ".notebook_export.md")
AGILAB_MIRROR_FOLDERS = ("notebooks", "exported_notebooks")


def is_agilab_output(path: str, lab_stem: str = "lab_stages") -> bool:
    """A file AGILAB writes beside a lab: ``AGI_run_stage<N>.py``, ``AGI_run.py``,
    ``AGI_serve_safe_start_template.py``, the lab's notebook export (``lab_stages.ipynb`` and its
    ``.notebook_export.json`` / ``.md``, also for a lab of another name) and the PyCharm mirror's
    ``sitecustomize.py``."""
    name = os.path.basename(path)
    if name in AGILAB_SCRIPTS or (name.startswith("AGI_run_stage") and name.endswith(".py")):
        return True
    if any(name == stem + suffix for stem in {lab_stem, "lab_stages"} for suffix in AGILAB_NOTEBOOK_SUFFIXES):
        return True
    folders = Path(path).parent.parts[-2:]
    return name == "sitecustomize.py" and any(f in AGILAB_MIRROR_FOLDERS for f in folders)


def _identity(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _own_output() -> set[tuple[int, int]]:
    """The files this process's stdout and stderr are redirected to, if any (by device and inode)."""
    import stat

    out = set()
    for fd in (1, 2):
        try:
            st = os.fstat(fd)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode):
            out.add((st.st_dev, st.st_ino))
    return out


@dataclass
class Scope:
    """What the last good lab says to watch and to ignore."""

    lab_dir: str
    roots: list[str]
    outputs: set[str] = field(default_factory=set)
    known: set[str] = field(default_factory=set)  # files the lab reads: their removal counts
    own: set[tuple[int, int]] = field(default_factory=_own_output)  # where our output goes
    lab_stem: str = "lab_stages"  # the lab file's name without .toml (its notebook export's)

    def relevant(self, path: str) -> bool:
        path = os.path.abspath(path)
        if path in self.outputs or is_noise(path, self.lab_dir):
            return False
        if is_agilab_output(path, self.lab_stem) and path not in self.known:
            return False  # AGILAB's own writes beside the lab (unless a step reads one)
        if path not in self.known and not os.path.exists(path):
            return False  # a file that came and went (an editor's or sed's temporary)
        if os.path.isdir(path):
            return False  # a folder made or touched: the files in it report for themselves
        if self.own and _identity(path) in self.own:
            return False  # the file our own stdout/stderr goes to (`--watch 2> watch.log`)
        return any(path.startswith(r + os.sep) or path == r for r in self.roots)  # the lab's folder is one


def scope_of(runner: Any, settings_file: str | None) -> Scope:
    """The folders to watch and the outputs to ignore, from an opened lab."""
    lab_dir = str(runner.lab_dir)
    files, _ = runner.dependencies()
    outputs = {os.path.abspath(os.path.join(lab_dir, p)) for s in runner.resolved.values() for p in s.outputs}
    roots = {lab_dir}
    for name in [*files, *([settings_file] if settings_file else [])]:
        f = os.path.abspath(name)
        if f.startswith(lab_dir + os.sep) or f in outputs or ".agilab" in Path(f).parts:
            continue
        roots.add(f if os.path.isdir(f) else os.path.dirname(f))
    known = {os.path.abspath(f) for f in [*files, *runner.data_files()]} - outputs
    stem = Path(runner.lab.path).stem
    return Scope(lab_dir, sorted(roots), outputs, known, lab_stem=stem)


def watchfiles_source(step_ms: int = 30, debounce_ms: int = 400) -> ChangeSource:
    """Changes as watchfiles reports them: a batch is yielded ``step_ms`` after the last event
    (bursts within ``debounce_ms`` are grouped). The watcher runs in a thread from the moment the
    source is opened, so changes made while a run goes on are collected, not missed."""

    def source(roots: list[str]) -> Iterator[set[str]]:
        import queue
        import threading

        import watchfiles

        batches: queue.SimpleQueue[set[str] | BaseException | None] = queue.SimpleQueue()
        stop = threading.Event()

        def pump() -> None:
            try:
                for changes in watchfiles.watch(
                    *[r for r in roots if os.path.exists(r)],
                    watch_filter=None,  # ours is applied with the lab's outputs in view
                    step=step_ms,
                    debounce=debounce_ms,
                    stop_event=stop,
                    raise_interrupt=False,
                ):
                    batches.put({path for _, path in changes})
            except BaseException as exc:  # handed to the loop, which raises it
                batches.put(exc)
            finally:
                batches.put(None)

        threading.Thread(target=pump, name="watchfiles", daemon=True).start()

        def take() -> Iterator[set[str]]:
            try:
                while True:
                    try:
                        item = batches.get(timeout=0.25)  # a timeout keeps Ctrl-C responsive
                    except queue.Empty:
                        continue
                    if item is None:
                        return
                    if isinstance(item, BaseException):
                        raise item
                    yield item
            finally:
                stop.set()

        return take()

    return source


class Watcher:
    """The watch loop. ``run_once(first)`` runs the lab (``first``: the initial run) and returns
    the opened runner, or None when the lab is invalid (it has said why)."""

    def __init__(
        self,
        run_once: Callable[[bool], Any],
        settings_file: str | None,
        source: ChangeSource,
        say: Callable[[str], None],
        rerun: Callable[[Any], Any] | None = None,
        seen: Callable[[list[str]], None] | None = None,
    ) -> None:
        self.run_once = run_once
        self.seen = seen  # hears each batch of relevant changes (absolute paths) before it runs
        self.rerun = rerun  # runs a runner's (the last good) definition again, the file unread
        self.last: Any = None  # the runner of the last good definition
        self.settings_file = settings_file
        self.source = source
        self.say = say
        self.scope: Scope | None = None
        self.runs = 0

    def _rescope(self, runner: Any) -> None:
        if runner is not None:
            self.last = runner
            self.scope = scope_of(runner, self.settings_file)

    def loop(self, lab_file: str) -> int:
        folder = str(Path(lab_file).resolve().parent)
        extra = {str(Path(self.settings_file).resolve().parent)} if self.settings_file else set()
        roots = sorted({folder} | extra)
        batches = iter(self.source(roots))  # opened first: changes during the first run count too
        self._rescope(self.run_once(True))
        self.runs += 1
        if self.scope is None:  # invalid from the start: watch its folder until it is fixed
            self.scope = Scope(folder, roots, lab_stem=Path(lab_file).stem)
        if self.scope.roots != roots and _restartable(self.source):
            batches, roots = self._reopen(batches, self.scope.roots), self.scope.roots
        self.say(f"watching {len(roots)} folder{'s' * (len(roots) != 1)} for changes (Ctrl-C to stop)")
        while True:
            batch = next(batches, None)
            if batch is None:
                return 0  # the source ended (a scripted one)
            changed = sorted(p for p in batch if self.scope.relevant(p))
            if not changed:
                continue
            shown = [os.path.relpath(p, self.scope.lab_dir) for p in changed]
            more = f" (+{len(shown) - 5})" if len(shown) > 5 else ""
            self.say(f"⟳ {', '.join(shown[:5])}{more} changed")
            if self.seen is not None:
                self.seen(changed)
            gc.unfreeze()  # the last run's spec and state (plan.longlived): collectable again
            runner = self.run_once(False)
            self.runs += 1
            if runner is None:
                self._while_broken(changed, lab_file)
                continue
            self._rescope(runner)
            if self.scope.roots != roots and _restartable(self.source):
                # a new folder to watch (an input outside the lab, say)
                batches, roots = self._reopen(batches, self.scope.roots), self.scope.roots

    def _while_broken(self, changed: list[str], lab_file: str) -> None:
        """The lab file does not load: the last good definition stays in force, so a change to
        anything but the definition itself runs that definition's affected steps."""
        definition = {os.path.abspath(lab_file)}
        if self.settings_file:
            definition.add(os.path.abspath(self.settings_file))
        if self.last is None or self.rerun is None:
            self.say(
                "  the lab is invalid: still watching (runs wait until it is valid: no good definition yet)"
            )
            return
        if all(p in definition for p in changed):
            self.say("  the lab is invalid: still watching (the last good definition stays in force)")
            return
        self.say("  the lab is invalid: the changes run under the last good definition")
        self.rerun(self.last)
        self.runs += 1

    def _reopen(self, batches: Iterator[set[str]], roots: list[str]) -> Iterator[set[str]]:
        close = getattr(batches, "close", None)
        if close is not None:
            close()
        return iter(self.source(roots))


def _restartable(source: ChangeSource) -> bool:
    return getattr(source, "restartable", True)
