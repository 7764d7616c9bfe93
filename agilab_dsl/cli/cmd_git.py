"""git integration: ``agilab-run git-setup`` configures the ``agilab`` diff driver and
.gitattributes; ``git-diff-driver`` (git's external diff protocol) and ``textconv`` (canonical text
for ``git log -p``) are what git then calls.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

from .cmd_diff import diff_files
from .common import EXIT_INVALID, EXIT_OK

if TYPE_CHECKING:  # pragma: no cover
    import argparse
    from typing import TextIO


def cmd_git_setup(args: argparse.Namespace, out: TextIO) -> int:
    import subprocess

    from ..review.git_drivers import ATTRIBUTES

    where = ["--global"] if args.globally else []
    try:
        top = subprocess.run(
            ["git", "rev-parse", "--show-toplevel"], capture_output=True, text=True, check=True
        ).stdout.strip()
        for key, value in (
            ("diff.agilab.command", "agilab-run git-diff-driver"),
            ("diff.agilab.textconv", "agilab-run textconv"),
        ):
            subprocess.run(["git", "config", *where, key, value], check=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        print(f"agilab-run git-setup: error: not in a git repository, or git failed ({exc})", file=sys.stderr)
        return EXIT_INVALID
    attributes = Path(top) / ".gitattributes"
    lines = attributes.read_text(encoding="utf-8").splitlines() if attributes.exists() else []
    wanted = [f"{name} diff=agilab" for name in ATTRIBUTES if f"{name} diff=agilab" not in lines]
    if wanted:
        attributes.write_text("\n".join([*lines, *wanted]) + "\n", encoding="utf-8")
    print(
        f"git diff driver 'agilab' configured{' globally' if where else ''}; "
        f"{attributes} {'gains ' + str(len(wanted)) + ' line(s)' if wanted else 'already has its lines'} "
        "(commit it so collaborators get the same diffs)",
        file=out,
    )
    return EXIT_OK


def cmd_git_diff_driver(args: argparse.Namespace, out: TextIO) -> int:
    """Git's external diff protocol: PATH OLD-FILE OLD-HEX OLD-MODE NEW-FILE NEW-HEX NEW-MODE."""
    import tempfile

    from ..review.git_drivers import beside

    argv: list[str] = args.args
    if len(argv) < 7:
        print("agilab-run git-diff-driver: git passes 7 arguments (see git help diff)", file=sys.stderr)
        return EXIT_INVALID
    path, old_file, new_file = argv[0], argv[1], argv[4]
    out.write(f"diff --agilab a/{path} b/{path}\n")
    if old_file == "/dev/null" or new_file == "/dev/null":
        out.write(f"{'new file' if old_file == '/dev/null' else 'deleted file'}: {path}\n")
        return EXIT_OK
    with tempfile.TemporaryDirectory(prefix="agilab-git-") as tmp:
        real = Path(path).resolve()
        (Path(tmp) / "a").mkdir()
        (Path(tmp) / "b").mkdir()
        old = beside(Path(old_file), real, Path(tmp) / "a")
        new = beside(Path(new_file), real, Path(tmp) / "b")
        code = diff_files(old, new, (f"a/{path}", f"b/{path}"), "text", None, out)
    return EXIT_OK if code in (EXIT_OK, EXIT_INVALID) else code  # git goes on with the next file


def cmd_textconv(args: argparse.Namespace, out: TextIO) -> int:
    """Git's textconv: the file as canonical text (what ``git log -p`` compares)."""
    from ..load.reading import NotReadable
    from ..review.git_drivers import textconv

    try:
        text = textconv(Path(args.file))
    except (NotReadable, OSError) as exc:
        why = str(exc) if isinstance(exc, NotReadable) else f"cannot read: {exc.strerror or exc}"
        print(f"agilab-run textconv: error: {args.file}: {why}", file=sys.stderr)
        return EXIT_INVALID
    out.write(text)
    return EXIT_OK
