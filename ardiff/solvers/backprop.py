"""Exact reverse-mode differentiation: one sweep, the reference for every other solver."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..graph import Graph
from .plan import Plan, compile_plan
from .relax import make_seed
from .result import Result, read_out


def run_backprop(plan: Plan, seed: Any = None) -> Result:
    """One reverse sweep over a compiled plan."""
    seed = make_seed(plan, seed)
    x = {plan.output: seed}
    evals = 0
    for i in reversed(plan.relaxing):
        x[i] = plan.activity_target(i, x)
        evals += len(plan.edges[i])
    grads, read_evals = read_out(plan, x, seed)
    x.pop(plan.output)
    return Result(grads=grads, value=plan.graph.nodes[plan.output].value, method="backprop",
                  activities=x, vjp_evals=evals + read_evals, plan=plan)


def backprop(graph: Graph, output: Any = None, wrt: Sequence | None = None, *,
             seed: Any = None) -> Result:
    """Exact gradients by a reverse sweep (the reference solver).

    Parameters are as for :func:`ardiff.relax`; returns the same :class:`Result`
    type with ``iterations=1`` and ``converged=True``.
    """
    return run_backprop(compile_plan(graph, output, wrt), seed)
