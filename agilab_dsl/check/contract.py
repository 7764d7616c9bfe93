"""The rules of a parallel contract: its function and reducer references must name a function
that can be found (and risky calls in the lab's own modules are warnings), and its output must stay
inside the contract's folder unless ``allow_outside`` says otherwise.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..load.parse import LoadResult, Locator
from ..plan.cache import Observations
from ..plan.graph import output_problem
from .functions import check_function

OUTSIDE_HINT = "write inside the folder, or set allow_outside = true {where} to let it write there"
OUTPUT_HINTS = {
    "output-invalid": "name a file or a folder inside the folder",
    "output-protected": "write somewhere else: the run's state and the pipeline's own files are not outputs",
}


def report_output(
    loc: Locator, problem: tuple[str, str], what: str, outside: str, key: tuple[str | int, ...], where: str
) -> None:
    """An output that may not be written (:func:`~agilab_dsl.plan.graph.output_problem`), at its
    value; ``outside`` is the message of one outside the folder (its detail is appended)."""
    code, why = problem
    if code == "output-outside-lab":
        loc.at_value(code, outside + why, key, hint=OUTSIDE_HINT.format(where=where))
    else:
        loc.at_value(code, f"{what}: it {why}", key, hint=OUTPUT_HINTS[code])


def check_contract(result: LoadResult[Any], obs: Observations | None = None) -> None:
    obs = obs or Observations()
    contract = result.value
    assert contract is not None
    loc = result.locator()
    base_dir = Path(result.path).parent
    check_function(loc, contract.function, base_dir, ("function",), obs, contract.allow_outside)
    problem = output_problem(
        contract.output, base_dir, allow_outside=contract.allow_outside, protected=[result.path]
    )
    if problem is not None:
        what = f"output {contract.output!r}"
        outside = f"{what} is outside the contract's folder"
        report_output(loc, problem, what, outside, ("output",), "in this contract")
    if contract.reducer_function:
        check_function(
            loc, contract.reducer_function, base_dir, ("reducer_function",), obs, contract.allow_outside
        )


def contract_problems(path: Path, obs: Observations) -> list[Any]:
    """A stage's parallel contract, loaded and checked as ``check`` checks it: its diagnostics
    (located in the contract's own file)."""
    from ..load.contract import load_contract

    obs.note(path)
    found = load_contract(path)
    if found.value is not None:
        check_contract(found, obs)
    return list(found.diagnostics)
