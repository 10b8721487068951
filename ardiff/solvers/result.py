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
        Gradients aligned with ``wrt`` (each shaped like its input).
    value : array_like
        Forward value of the output.
    method : str
        ``"relax"``, ``"backprop"`` or ``"triangular"``.
    iterations : int
        Relaxation steps (parallel) or sweeps (sequential) performed; 1 for backprop.
    converged : bool
        Whether the relative residual fell to ``tol`` (always True for exact solvers).
    residuals : numpy.ndarray
        Max relative residual over relaxing nodes, per iteration.
    trajectory : dict or None
        With ``record=True``: node index -> array of activities, one row per
        iteration (row 0 is the initial state).
    activities : dict
        Final activity of every relaxing node (its gradient at equilibrium).
    vjp_evals : int
        Number of local VJP evaluations performed.
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
    plan: Plan | None = None

    def __repr__(self) -> str:
        last = f"{self.residuals[-1]:.3g}" if len(self.residuals) else "n/a"
        return (f"Result(method={self.method!r}, iterations={self.iterations}, "
                f"converged={self.converged}, final residual={last}, "
                f"grads=[{', '.join(str(np.shape(unwrap(g))) for g in self.grads)}])")


def read_out(plan: Plan, x: dict, seed: Any) -> tuple[list, int]:
    """Gradients of the ``wrt`` nodes from the equilibrium activities.

    A relaxing or clamped node's gradient is its activity; a source node (input,
    parameter) reads it from its children with one local VJP each (the paper's
    weight update).
    """
    graph = plan.graph
    grads = []
    evals = 0
    for i in plan.wrt:
        if i == plan.output:
            grads.append(seed)
        elif i in x:
            grads.append(x[i])
        elif plan.children[i]:
            grads.append(plan.activity_target(i, x))
            evals += len(plan.children[i])
        else:  # not connected to the output: the gradient is exactly zero
            value = unwrap(graph.nodes[i].value)
            grads.append(np.zeros(np.shape(value), dtype=np.result_type(value)))
    return grads, evals
