"""Exact reverse-mode differentiation: one sweep, the reference for every other solver."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..graph import Graph
from .common import finish, make_seed, read_out, sweep, warn_non_finite
from .plan import Plan, compile_plan, sum_of_vjps
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
    if len(plan.relaxing) >= RELEASE_FROM and not plan.staged:
        sweep_releasing(plan, x)
    elif plan.relaxing:
        sweep(plan, x)
    grads = read_out(plan, x, seed)[0]
    warn_non_finite(plan, x, grads)
    return grads


#: Plans with at least this many relaxing nodes drop activities once read (below, the
#: bookkeeping costs more than the memory is worth).
RELEASE_FROM = 32


def sweep_releasing(plan: Plan, x: dict) -> None:
    """`sweep`, dropping each activity once the last VJP that reads it has run.

    The activities are the sweep's own intermediate arrays (no `Result` exposes them
    here), so an activity read only by relaxing parents is deleted from `x` after
    its last reader, the relaxing parent with the smallest index.  Kept: the seed,
    the `wrt` nodes' activities (their gradients) and any activity a source node's
    read-out needs.  The peak memory of the backward pass then grows with the live
    cotangents, not with the whole graph.

    Parameters
    ----------
    plan : Plan
        An unstaged op-level plan (`compile_plan(..., stage=False)`).
    x : dict
        Holding the clamped output; filled in place, and emptied of released nodes.
    """
    children = plan.children
    relaxing = plan.relaxing
    readers = {}  # child -> VJP reads still to come from relaxing parents
    for i in relaxing:
        for c, _ in children[i]:
            readers[c] = readers.get(c, 0) + 1
    keep = set(plan.wrt)
    keep.add(plan.output)
    for i in plan.wrt:  # a source's read-out reads its children's activities
        for c, _ in children[i] or ():
            keep.add(c)
    nodes = plan.graph.nodes
    for i in reversed(relaxing):
        kids = children[i]
        x[i] = sum_of_vjps(kids, x, nodes)
        for c, _ in kids:
            left = readers[c] - 1
            readers[c] = left
            if not left and c not in keep:
                del x[c]


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
