"""Solvers for the relaxation's fixed point: relax (AR dynamics), backprop (exact sweep)
and triangular (exact sparse solve)."""

from .backprop import backprop, run_backprop
from .plan import NonFiniteWarning, Plan, compile_plan
from .relax import PRESETS, ConvergenceWarning, relax, run_relaxation
from .result import Result
from .triangular import run_triangular, solve_triangular

# method name -> function(plan, seed, **options) -> Result; other solvers register here
RUNNERS = {
    "relax": run_relaxation,
    "backprop": lambda plan, seed=None: run_backprop(plan, seed),
    "triangular": run_triangular,
}

__all__ = ["backprop", "relax", "compile_plan", "Plan", "Result", "ConvergenceWarning",
           "NonFiniteWarning", "PRESETS", "RUNNERS", "run_backprop", "run_relaxation",
           "solve_triangular", "run_triangular"]
