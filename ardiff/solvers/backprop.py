"""Exact reverse-mode differentiation: one sweep, the reference for every other solver."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..graph import Graph
from .plan import Plan, compile_plan, warn_non_finite
from .relax import make_seed, sweep
from .result import Result, read_out


def run_backprop(plan: Plan, seed: Any = None) -> Result:
    """One reverse sweep over a compiled plan."""
    seed = make_seed(plan, seed)
    x = {plan.output: seed}
    evals = sweep(plan, x)
    grads, read_evals = read_out(plan, x, seed)
    warn_non_finite(plan, x, grads)
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
