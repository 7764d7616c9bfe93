"""The rules of a parallel contract: its function and reducer references must name a function
that can be found (and risky calls in the lab's own modules are warnings), and its output must stay
inside the contract's folder unless ``allow_outside`` says otherwise.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..load.parse import LoadResult
from ..plan.cache import Observations
from ..plan.graph import escapes
from .functions import check_function

OUTSIDE_HINT = "write inside the folder, or set allow_outside = true {where} to let it write there"


def check_contract(result: LoadResult[Any], obs: Observations | None = None) -> None:
    obs = obs or Observations()
    contract = result.value
    assert contract is not None
    loc = result.locator()
    base_dir = Path(result.path).parent
    check_function(loc, contract.function, base_dir, ("function",), obs)
    if escapes(contract.output) and not contract.allow_outside:
        loc.at_value(
            "output-outside-lab",
            f"output {contract.output!r} is outside the contract's folder",
            ("output",),
            hint=OUTSIDE_HINT.format(where="in this contract"),
        )
    if contract.reducer_function:
        check_function(loc, contract.reducer_function, base_dir, ("reducer_function",), obs)


def contract_problems(path: Path, obs: Observations) -> list[Any]:
    """A stage's parallel contract, loaded and checked as ``check`` checks it: its diagnostics
    (located in the contract's own file)."""
    from ..load.contract import load_contract

    obs.note(path)
    found = load_contract(path)
    if found.value is not None:
        check_contract(found, obs)
    return list(found.diagnostics)
