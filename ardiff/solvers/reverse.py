"""Exact reverse-mode differentiation: one sweep, the reference for every other solver."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..graph import Graph
from .common import finish, make_seed, read_out, sweep, warn_non_finite
from .plan import Plan, compile_plan
from .result import Result


def run_backprop(plan: Plan, seed: Any = None) -> Result:
    """One reverse sweep over a compiled plan.

    Parameters
    ----------
    plan : Plan
        From `compile_plan`.
    seed : array_like, optional
        dL/d(output); default 1 for a scalar output.

    Returns
    -------
    Result
        With `iterations=1`, `converged=True` and `residuals=[0.0]`.
    """
    seed = make_seed(plan, seed)
    x = {plan.output: seed}
    evals = sweep(plan, x)
    return finish(plan, x, seed, "backprop", vjp_evals=evals)


def sweep_gradients(plan: Plan, seed: Any = None) -> list:
    """The gradients of one exact reverse sweep, without the `Result` around them.

    What `ardiff.grad` needs from every one-sweep solver (backprop, and the default
    relaxation: sequential schedule, eta 1): the same seed, sweep and read-out as
    `run_backprop`, hence the same bits, and the same NaN/infinity warning, but none
    of the diagnostics (activities, residuals, counts) a transform throws away.

    Parameters
    ----------
    plan : Plan
        From `compile_plan` (an op-level plan).
    seed : array_like, optional
        dL/d(output); default 1 for a scalar output.

    Returns
    -------
    list
        The gradients aligned with `plan.wrt`.
    """
    seed = make_seed(plan, seed)
    x = {plan.output: seed}
    if plan.relaxing:
        sweep(plan, x)
    grads = read_out(plan, x, seed)[0]
    warn_non_finite(plan, x, grads)
    return grads


def backprop(graph: Graph, output: Any = None, wrt: Sequence | None = None, *,
             seed: Any = None) -> Result:
    """Exact gradients by a reverse sweep (the reference solver).

    Parameters
    ----------
    graph, output, wrt, seed
        As for [`ardiff.relax`][ardiff.relax]: the recorded graph, the output (default
        `graph.output`), what to differentiate with respect to (default
        `graph.inputs`) and dL/d(output) (default 1 for a scalar output).

    Returns
    -------
    Result
        The same type as `ardiff.relax` returns, with `iterations=1`,
        `converged=True` and `residuals=[0.0]` (one exact sweep).

    Warns
    -----
    NonFiniteWarning
        Naming the first node whose value or activity is NaN or infinite.
    """
    return run_backprop(compile_plan(graph, output, wrt), seed)
