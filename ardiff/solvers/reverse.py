"""Exact reverse-mode differentiation: one sweep, the reference for every other solver."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..graph import Graph
from . import plan as plan_module
from .common import finish, make_seed, read_out, sweep, warn_non_finite
from .plan import SOLE_REFERENCE, Plan, add_into, compile_plan, reference_count, sum_of_vjps
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
        With `iterations=1`, `converged=True` (False if a gradient is not finite)
        and `residuals=[0.0]`.
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
    its last reader, the relaxing parent with the smallest index.  A source's
    gradient (a parameter's: the read-out) is summed on the way, each child's
    contribution added as soon as the child's activity is final, in the order the
    read-out sums them (`Plan.children`: from the last child down), so the bits are
    `read_out`'s; the sums are left in `x` under the sources' indices.  Kept: the
    seed and the activities of `wrt` nodes that relax.  The peak memory of the
    backward pass then grows with the live cotangents, not with the whole graph.

    Parameters
    ----------
    plan : Plan
        An unstaged op-level plan (`compile_plan(..., stage=False)`).
    x : dict
        Holding the clamped output; filled in place, and emptied of released nodes.
    """
    children = plan.children
    relaxing = plan.relaxing
    readers = [0] * len(children)  # node -> VJP reads still to come from relaxing parents
    for i in relaxing:
        for c, _ in children[i]:
            readers[c] += 1
    keep = set(plan.wrt)
    keep.add(plan.output)
    read_by_sources: dict = {}  # child -> [(source, argnum)], in each source's summing order
    for i in plan.sources:
        for c, argnum in children[i]:
            read_by_sources.setdefault(c, []).append((i, argnum))
    nodes = plan.graph.nodes
    sums: dict = {}  # source -> [total, owned]
    if plan.output in read_by_sources:
        add_source_terms(plan.output, read_by_sources, x, nodes, sums)
    for i in reversed(relaxing):
        kids = children[i]
        x[i] = sum_of_vjps(kids, x, nodes)
        if i in read_by_sources:
            add_source_terms(i, read_by_sources, x, nodes, sums)
            if not readers[i] and i not in keep:
                del x[i]
        for c, _ in kids:
            left = readers[c] - 1
            readers[c] = left
            if not left and c not in keep:
                del x[c]
    for source, (total, _) in sums.items():
        x[source] = total


def add_source_terms(child: int, read_by_sources: dict, x: dict, nodes: list,
                     sums: dict) -> None:
    """Add `child`'s contributions to the running sums of the sources that read it.

    The additions of `sum_of_vjps`, one term at a time: the first term is kept (and
    owned when it is a fresh array nothing else refers to), later ones are added into
    an owned sum in place, otherwise out of place: the same elementwise sums.
    """
    node = nodes[child]
    g = x[child]
    for source, argnum in read_by_sources[child]:
        term = node.op.apply_vjp(argnum, node.value, node.args, node.kwargs, g)
        entry = sums.get(source)
        if entry is None:
            owned = (plan_module.ACCUMULATE_IN_PLACE and type(term) is np.ndarray and term.ndim > 0
                     and term.base is None and term.flags.writeable
                     and reference_count(term) == SOLE_REFERENCE)
            sums[source] = [term, owned]
            continue
        total, owned = entry
        total = add_into(total, term) if owned else total + term
        entry[0] = total
        entry[1] = type(total) is np.ndarray and total.ndim > 0


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
        `converged=True` (False if a gradient is not finite) and `residuals=[0.0]`
        (one exact sweep).

    Warns
    -----
    NonFiniteWarning
        Naming the first node whose value or activity is NaN or infinite.
    """
    return run_backprop(compile_plan(graph, output, wrt), seed)
