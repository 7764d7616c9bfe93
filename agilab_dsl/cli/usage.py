"""What ``agilab-run`` says of a wrong call: the parser class every command's arguments are read with
(a short error, exit 2, the nearest known option for a mistyped one), the nearest command for a
mistyped command, and the stand-in for the sub-commands a call does not name (:mod:`.parser` builds
only the one it does)."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from .common import EXIT_INVALID

if TYPE_CHECKING:  # pragma: no cover
    from collections.abc import Callable, Iterable, Sequence
    from typing import NoReturn


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # argparse's default exits 2 too; keep the message short
        self.print_usage(sys.stderr)
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(EXIT_INVALID)

    def parse_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> argparse.Namespace:
        """As argparse's, but an unknown option gets the nearest known one as a hint (``--dryrun``:
        did you mean '--dry-run'?), taken from the sub-command's options when one was given."""
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            parser: argparse.ArgumentParser = self
            command = getattr(parsed, "command", None)
            for action in self._actions:
                if isinstance(action, argparse._SubParsersAction) and command in action.choices:
                    parser = action.choices[command]
            known = list(parser._option_string_actions)
            misplaced = [e for e in extras if e.split("=")[0] in known]
            if misplaced:  # `agilab-run --json status FILE`
                parser.error(
                    f"{' '.join(misplaced)} goes after the command: {parser.prog} ... {misplaced[0]}"
                )
            hints = [f"{e} -> {m}" for e in extras for m in _nearest(e, known)]
            hint = f" (did you mean {', '.join(hints)}?)" if len(hints) > 1 else ""
            if len(hints) == 1:
                hint = f" (did you mean {hints[0].split(' -> ')[1]!r}?)"
            parser.error(f"unrecognized arguments: {' '.join(extras)}{hint}")
        return parsed


def _nearest(word: str, known: Iterable[str]) -> list[str]:
    """The known word ``word`` most likely mistypes (``--dryrun`` -> ``--dry-run``), if any: options
    are matched with and without their dashes, so ``dryrun`` finds ``--dry-run`` too."""
    import difflib

    if not word.startswith("-") or len(word) < 3:
        return []
    bare = {k.lstrip("-").replace("-", ""): k for k in known if k.startswith("--")}
    found = difflib.get_close_matches(word.lstrip("-").replace("-", ""), list(bare), n=1, cutoff=0.75)
    return [bare[f] for f in found]


def nearest_command(word: str, commands: Iterable[str]) -> str | None:
    """The command ``word`` most likely mistypes (``stauts`` -> ``status``), or None."""
    import difflib

    found = difflib.get_close_matches(word, [c for c in commands if c not in HIDDEN], n=1, cutoff=0.7)
    return found[0] if found else None


# Commands that git runs for `git-setup`, not people: not listed in --help, never suggested.
HIDDEN = frozenset({"git-diff-driver", "textconv"})


class Unused:
    """A sub-command's parser that this call will not parse with: what it is told is dropped."""

    def __getattr__(self, name: str) -> Callable[..., Unused]:
        return self._drop

    def _drop(self, *args: object, **kwargs: object) -> Unused:
        return self
