"""Solvers for the relaxation's fixed point: `relax` (AR dynamics), `backprop` (exact
sweep) and `solve_triangular` (exact sparse solve).

Layers, lowest first: `plan` (the pruned graph) and `result`; `common` (seed,
exact sweep, read-out, the epilogue every solver ends with); `options` (one
validated options object, presets) and `theory` (error bounds, step counts);
`units` (which nodes relax: `UnitPlan`; the marks of `ardiff.unit`); then the solver modules
`relaxation` (`relax`), `reverse` (`backprop`) and
`triangular` (`solve_triangular`).  The modules are not named after the functions,
so that `ardiff.solvers.relax` is the function, for Python and for the docs alike.
"""

from typing import Any

from .common import NonFiniteWarning, relative_error
from .options import PRESETS, SolverOptions
from .plan import Plan, compile_plan
from .relaxation import ConvergenceWarning, ReachWarning, relax, run_relaxation
from .result import Result
from .reverse import backprop, run_backprop
from .triangular import run_triangular, solve_triangular
from .units import UnitPlan, unit_plan

#: method name -> runner(plan, seed, options) -> Result, for every name in
#: `options.METHODS`; `solve_plan` dispatches through it.
RUNNERS = {
    "relax": run_relaxation,
    "backprop": lambda plan, seed=None, options=None: run_backprop(plan, seed),
    "triangular": lambda plan, seed=None, options=None: run_triangular(plan, seed),
}


def solve_plan(plan: Plan, seed: Any, options: SolverOptions) -> Result:
    """Run the solver `options.method` on a compiled plan.

    Parameters
    ----------
    plan : Plan
        From `compile_plan` (with `options.rules`).
    seed : array_like or None
        dL/d(output); None for a scalar output.
    options : SolverOptions
        Validated settings.

    Returns
    -------
    Result
    """
    return RUNNERS[options.method](plan, seed, options)


__all__ = ["backprop", "relax", "compile_plan", "Plan", "Result", "ConvergenceWarning",
           "ReachWarning", "NonFiniteWarning", "PRESETS", "RUNNERS", "SolverOptions",
           "relative_error",
           "run_backprop", "run_relaxation", "solve_plan", "solve_triangular",
           "run_triangular", "unit_plan", "UnitPlan"]
