"""``agilab-run schema``: print a JSON Schema of lab-steps, parallel-stage or app-settings files for
editors (the schemas themselves are :mod:`agilab_dsl.load.schema`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .common import EXIT_OK

if TYPE_CHECKING:  # pragma: no cover
    import argparse
    from typing import TextIO


def cmd_schema(args: argparse.Namespace, out: TextIO) -> int:
    from ..load.schema import render

    out.write(render(args.name))
    return EXIT_OK
