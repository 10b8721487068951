"""The result type shared by every solver."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..graph import unwrap
from .plan import Plan


@dataclass(repr=False)
class Result:
    """Gradients and diagnostics of one solve.

    Attributes
    ----------
    grads : list
        Gradients aligned with `wrt` (each shaped like its input).
    value : array_like
        Forward value of the output.
    method : str
        `"relax"`, `"backprop"` or `"triangular"`.
    iterations : int
        Relaxation steps (parallel) or sweeps (sequential) performed; 1 for the exact
        solvers (backprop, triangular) and for the relaxation's one-sweep solve.
    converged : bool
        Whether the relative residual fell to `tol` (always True for exact solvers)
        and every gradient is finite: a NaN or infinity in a gradient makes it False
        for every solver (with a `NonFiniteWarning` naming where it starts).
    residuals : numpy.ndarray
        One entry per iteration, for every solver and schedule:
        `residuals[k]` is the largest relative residual over relaxing nodes of the
        state *after* step `k + 1`, so `len(residuals) == iterations` and
        `residuals[-1]` describes the returned activities.  The starting state is not
        measured.  For the exact solvers it is the certificate of the solve (0 for a
        sweep; `‖Hx - b‖ / max(‖Hx‖, ‖b‖)` for the triangular solve).
    trajectory : dict or None
        With `record=True`: node index -> array of activities with `iterations + 1`
        rows; row 0 is the initial state and row `k + 1` the state that
        `residuals[k]` describes.
    activities : dict
        Final activity of every relaxing node (its gradient at equilibrium).
    vjp_evals : int
        Number of local VJP evaluations performed (with units other than `"ops"`,
        each unit edge, a composite map through the folded ops, counts once).
    sweeps : int or None
        Passes over the graph's edges: one per step when stepping, at most D (the
        depth of the relaxing graph) for a closed-form solve, whatever the number of
        steps it describes.  With units, the clamped nodes are computed once from the
        seed: within the first (exact) sweep of a closed form, before the first step
        when stepping (not counted there).
    times : numpy.ndarray or None
        Closed form: the steps (or continuous times) of the trajectory's rows, or of
        the returned state without `record`.  With a closed form and no `record`,
        `residuals` has one entry: the returned state's.
    plan : Plan
        The compiled graph the solver ran on.
    """

    grads: list
    value: Any
    method: str
    iterations: int = 1
    converged: bool = True
    residuals: np.ndarray = field(default_factory=lambda: np.zeros(0))
    trajectory: dict | None = None
    activities: dict = field(default_factory=dict)
    vjp_evals: int = 0
    sweeps: int | None = None
    times: np.ndarray | None = None
    plan: Plan | None = None

    def __repr__(self) -> str:
        last = f"{self.residuals[-1]:.3g}" if len(self.residuals) else "n/a"
        return (f"Result(method={self.method!r}, iterations={self.iterations}, "
                f"converged={self.converged}, final residual={last}, "
                f"grads=[{', '.join(str(np.shape(unwrap(g))) for g in self.grads)}])")

