"""What a judgment of a lab depends on, for the judgment cache: the files it read (the lab, function
sources, inputs, outputs, contracts and what their globs search, the state; apart, the files the
choice of each step's interpreter looked at) and the environment variables its ``${env.…}`` holes (and
an ``E``: ``APPS_PATH``) use; the signatures of the data files as last hashed; and each step's
interpreter, chosen once (:mod:`agilab_dsl.plan.interpreter`).

A mixin of :class:`~.run.Runner` (it reads the runner's lab, resolved steps, state and hashes).
"""

from __future__ import annotations

import os
from pathlib import Path

TYPE_CHECKING = False  # typing is not imported at run time: ~2 ms of every run's start-up
if TYPE_CHECKING:  # pragma: no cover
    from collections.abc import Iterable, Mapping

    from ..plan.fingerprint import FileHashes
    from ..plan.interpreter import Chooser, Interpreter
    from ..plan.resolve import ResolvedStep
    from ..plan.spec import LabSpec
    from ..plan.state import LabState


class JudgedFiles:
    lab: LabSpec
    lab_dir: Path
    resolved: Mapping[str, ResolvedStep]
    state: LabState
    hashes: FileHashes
    chooser: Chooser
    choices: dict[str, Interpreter]

    def interpreter(self, sid: str) -> Interpreter:
        """The interpreter that runs a step, and why (chosen once per runner)."""
        chosen = self.choices.get(sid)
        if chosen is None:
            step = self.resolved[sid]
            chosen = self.chooser.choose(
                code=step.placed.stage.code,
                env=step.env,
                engine=step.placed.stage.engine,
                contract=step.contract is not None,
            )
            self.choices[sid] = chosen
        return chosen

    def dependencies(self) -> tuple[list[str], list[str]]:
        """What a judgment of this lab read: files (lab, function sources, inputs, outputs,
        contracts, state) and the names of environment variables its ``${env.…}`` holes use."""
        files = [self.lab.path, str(self.state.path), str(self.state.journal_path)]
        env: set[str] = set()
        for sid, step in self.resolved.items():
            files += self.files_of(sid)
            env.update(step.env_names)
            if step.env and not self.chooser.options.apps_path:
                env.add("APPS_PATH")
        return files, sorted(env)

    def readers(self, ids: Iterable[str] | None = None) -> dict[str, list[str]]:
        """Each step file (input, output, function source, contract, the folder a glob searches)
        and the steps whose judgment reads it."""
        out: dict[str, list[str]] = {}
        for sid in self.resolved if ids is None else ids:
            for path in self.files_of(sid):
                out.setdefault(path, []).append(sid)
        return out

    def files_of(self, sid: str) -> list[str]:
        """The files one step's judgment reads, absolute (found once per runner)."""
        memo: dict[str, list[str]] = self.__dict__.setdefault("_files_memo", {})
        if sid not in memo:
            memo[sid] = self._files_of(sid)
        return memo[sid]

    def _files_of(self, sid: str) -> list[str]:
        from ..load.locate import function_source

        step = self.resolved[sid]
        stage = step.placed.stage
        root = str(self.lab_dir)
        files = [os.path.join(root, p) for p in (*step.inputs, *step.outputs)]
        if step.contract is not None:
            from ..plan.stale import contract_parts, glob_root

            contract = os.path.join(root, step.contract)
            files.append(contract)
            pattern, function = contract_parts(contract)
            if pattern:  # the folder its glob searches: a new matching file changes it
                files.append(glob_root(pattern, os.path.dirname(contract)))
            if function:
                from ..load.expr import parse_funcref

                ref = parse_funcref(function)
                source = function_source(ref.module, ref.is_path, Path(contract).parent)
                files.append(str(source) if source else os.path.join(os.path.dirname(contract), ref.module))
        if stage.function:
            from ..load.expr import parse_funcref

            ref = parse_funcref(stage.function)
            source = function_source(ref.module, ref.is_path, self.lab_dir)
            files.append(str(source) if source else str(self.lab_dir / ref.module))
        return files

    def interpreter_files(self) -> list[str]:
        """What the choice of each step's interpreter looked at (a judgment depends on them; watch
        mode does not watch them: they are in folders up to the root), and the interpreters."""
        files: list[str] = []
        for sid in self.resolved:
            chosen = self.interpreter(sid)
            files += [*chosen.looked_at, *([chosen.path] if chosen.path else [])]
        return list(dict.fromkeys(files))

    def data_files(self) -> list[str]:
        """Every input and output path (absolute), as the file-hash cache knows them."""
        root = str(self.lab_dir)
        files = [
            os.path.join(root, p) for step in self.resolved.values() for p in (*step.inputs, *step.outputs)
        ]
        for step in self.resolved.values():
            if step.contract is not None:  # what its glob finds: hashed like inputs
                from ..plan.stale import contract_parts, resolve_glob

                contract = os.path.join(root, step.contract)
                files += resolve_glob(contract_parts(contract)[0], os.path.dirname(contract))
        return files

    def hashed_signatures(self, paths: list[str]) -> dict[str, str] | None:
        """``size:mtime_ns`` of each file when its hash was last taken; None if one was never hashed."""
        out = {}
        for path in paths:
            hashed = self.hashes.signature(path)
            if hashed is None:
                return None
            out[path] = hashed
        return out
