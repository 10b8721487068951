"""What every solver shares: the seed, the exact sweep, the read-out and the epilogue.

A solve clamps the output to the seed (`make_seed`), brings the relaxing nodes'
activities to (or towards) their fixed point, and ends with `finish`: the
gradients of the `wrt` nodes are read out (`read_out`), a NaN or infinity is
reported at the node where it starts (`warn_non_finite`), and the `Result` is
built.  `sweep` is the exact one-pass solve that the reference solver
(backprop), the triangular solver's traced branch and the relaxation's fast path
all run.

Warnings are attributed to the first caller outside ardiff (`warn_at_caller`), so
they point at the user's line whether the solver was called directly or through
`ardiff.grad`.
"""

from __future__ import annotations

import cmath
import math
import os
import sys
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..graph import Released, TracerBase, unwrap
from .plan import Plan, sum_of_vjps
from .result import Result

# Frames in files under this directory belong to ardiff (warn_at_caller skips them).
PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep


class NonFiniteWarning(RuntimeWarning):
    """A NaN or infinity appeared in a forward value or in a relaxing activity."""


def warn_at_caller(message: str, category: type[Warning]) -> None:
    """Issue a warning attributed to the first calling frame outside the ardiff package.

    A fixed `stacklevel` cannot do this: the same solver is reached from the user's
    code directly (`ardiff.relax`), through a transform (`ardiff.grad`), through a
    compiled replay or from nested transforms, each with a different number of
    ardiff frames in between.

    Parameters
    ----------
    message : str
        The warning text.
    category : type
        The warning class.
    """
    frame = sys._getframe(1)
    level = 2  # stacklevel 2 is the frame that called this function
    while frame is not None and frame.f_code.co_filename.startswith(PACKAGE_DIR):
        frame = frame.f_back
        level += 1
    warnings.warn(message, category, stacklevel=level)


def relative_error(a: Any, b: Any) -> float:
    """`max|a - b| / max(max|a|, max|b|)`: how far apart two arrays are, relative to their size.

    Symmetric in `a` and `b`, scale-free, and 0 for equal arrays; when both are
    zero everywhere the absolute gap (0) is returned.  Traced values are unwrapped
    and the arithmetic is done in float64 (complex128 for complex values, measured by
    modulus); a NaN gives NaN.

    Parameters
    ----------
    a, b : array_like
        Arrays of the same (or broadcastable) shape.

    Returns
    -------
    float
        The relative error (the maximum norm of the difference over the larger
        maximum norm of the two).
    """
    a, b = np.asarray(unwrap(a)), np.asarray(unwrap(b))
    # float64 arithmetic, complex128 where a value is complex (|.| is then the modulus)
    a, b = (v.astype(np.result_type(a, b, np.float64)) for v in (a, b))
    gap = float(np.max(np.abs(a - b), initial=0.0))
    scale = max(float(np.max(np.abs(a), initial=0.0)), float(np.max(np.abs(b), initial=0.0)))
    return gap / scale if scale > 0 else gap


def make_seed(plan: Plan, seed: Any) -> Any:
    """The clamped output activity: ones for a scalar output, else the given array.

    Parameters
    ----------
    plan : Plan
        The compiled graph.
    seed : array_like or None
        dL/d(output), shaped like the output; None for a scalar output.

    Returns
    -------
    array_like
        The seed as an array of the output's dtype (a traced seed is kept as it is).
    """
    out_value = unwrap(plan.graph.nodes[plan.output].value)
    if isinstance(out_value, (np.ndarray, np.generic)):  # read the attributes: cheaper
        dtype, shape, size = out_value.dtype, out_value.shape, out_value.size
    else:
        dtype, shape, size = np.result_type(out_value), np.shape(out_value), np.size(out_value)
    if seed is None:
        if size != 1:
            raise ValueError(
                f"The output {plan.graph.nodes[plan.output].label()} is not a scalar; pass "
                "seed= (an array shaped like the output), or use elementwise_grad/jacobian.")
        if not shape:  # a 0-d seed: np.array is several times cheaper than np.ones
            return np.array(1, dtype=dtype)
        return np.ones(shape, dtype=dtype)
    if np.shape(unwrap(seed)) != np.shape(out_value):
        raise ValueError(f"seed has shape {np.shape(unwrap(seed))} but the output has shape "
                         f"{np.shape(out_value)}")
    if not isinstance(seed, TracerBase):
        seed = np.asarray(seed, dtype=dtype)
    return seed


def sweep(plan: Plan, x: dict) -> int:
    """One top-down pass setting every relaxing node to its target.

    This is the sequential schedule at eta = 1, and also exact backprop: children are
    final before their parents are visited, so each node lands on its fixed point.

    Parameters
    ----------
    plan : Plan
        The compiled graph.
    x : dict
        Node index -> activity; must hold the clamped output.  Filled in place.

    Returns
    -------
    int
        The number of local VJP evaluations.
    """
    evals = 0
    children = plan.children
    if plan.staged:
        edges = plan.edges
        for i in reversed(plan.relaxing):
            x[i] = sum_of_vjps(edges[i], x)
            evals += len(edges[i])
    else:  # stage each VJP just before its only use (see Plan.activity_target)
        nodes = plan.graph.nodes
        for i in reversed(plan.relaxing):
            x[i] = sum_of_vjps(children[i], x, nodes)
            evals += len(children[i])
    return evals


def read_out(plan: Plan, x: dict, seed: Any) -> tuple[list, int]:
    """Gradients of the `wrt` nodes from the equilibrium activities.

    A relaxing or clamped node's gradient is its activity; a source node (input,
    parameter) reads it from its children with one local VJP each (the paper's
    weight update); under a unit plan, through the folded nodes below it.

    Parameters
    ----------
    plan : Plan
        The compiled graph.
    x : dict
        Node index -> activity, including the clamped output.
    seed : array_like
        The clamped output activity.

    Returns
    -------
    tuple of (list, int)
        The gradients aligned with `plan.wrt`, and the VJP evaluations spent.
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


#: Arrays up to this size are checked element by element in Python (`is_finite`).
SMALL_ARRAY = 32
_BLAS_REAL = (np.dtype(np.float64), np.dtype(np.float32))
#: Added to a NonFiniteWarning when some forward values were not kept (`Released`).
LEAN_HINT = (" (Forward values no local derivative reads were not kept by this one-sweep "
             "recording; method='triangular' keeps them all and names the first non-finite "
             "one.)")


def is_finite(value: Any) -> bool:
    """Whether every entry of `value` (traced values unwrapped) is finite.

    A sum is finite when every term is, so one cheap reduction decides the common case
    (for contiguous float32/float64 arrays the sum of squares by BLAS, a few times
    faster than `sum`; an overflowing sum of finite entries is confirmed entry by
    entry); Python and NumPy scalars are checked with `math`/`cmath`, without building
    an array.

    Parameters
    ----------
    value : array_like
        An array, scalar or traced value.

    Returns
    -------
    bool
    """
    raw = unwrap(value)
    kind = type(raw)
    if kind is float or kind is np.float64 or kind is np.float32 or kind is int:
        return math.isfinite(raw)
    if kind is complex or kind is np.complex128 or kind is np.complex64:
        return cmath.isfinite(raw)
    if kind is np.ndarray and raw.dtype.kind in "fc":
        if raw.size <= SMALL_ARRAY:  # Python's checks beat two ufunc calls here
            check = math.isfinite if raw.dtype.kind == "f" else cmath.isfinite
            return all(map(check, raw.ravel().tolist()))
        with np.errstate(over="ignore", invalid="ignore"):  # overflow: confirmed below
            if raw.dtype in _BLAS_REAL and raw.flags.c_contiguous:
                flat = raw.reshape(-1)  # the sum of squares, by BLAS: finite only if
                total = np.dot(flat, flat)  # every entry is (NaN and inf propagate)
            else:
                total = raw.sum()
        if cmath.isfinite(total):
            return True
    return bool(np.all(np.isfinite(raw)))


def warn_non_finite(plan: Plan, activities: Any, grads: list, values: Sequence | None = None,
                    ) -> None:
    """If a gradient is not finite, name the first node where a NaN or infinity appears.

    Checked once after solving (not per node per step, which would cost as much as
    the solve): first the forward values in topological order, then the activities
    in the order the relaxation computes them (from the output down).

    Parameters
    ----------
    plan : Plan
        The compiled graph.
    activities : mapping
        Node index -> activity (supports `in` and indexing).
    grads : list
        The gradients read out.
    values : sequence, optional
        Forward values indexed by node, replacing the recorded ones (a compiled replay).

    Warns
    -----
    NonFiniteWarning
        At the first caller outside ardiff.
    """
    if all(map(is_finite, grads)):
        return
    nodes = plan.graph.nodes
    if values is None:
        values = [node.value for node in nodes]
    lean = ""
    for i in plan.relevant:
        if type(values[i]) is Released:  # a lean recording kept no value here
            lean = LEAN_HINT
            continue
        if not np.all(np.isfinite(unwrap(values[i]))):
            warn_at_caller(
                f"Non-finite forward value at {nodes[i].label()}: the gradients through it "
                "are not finite. Check the inputs and the ops feeding this node.",
                NonFiniteWarning)
            return
    for i in reversed(plan.relaxing):
        if i in activities and not np.all(np.isfinite(unwrap(activities[i]))):
            warn_at_caller(
                f"Non-finite activity first appears at {nodes[i].label()}: the local "
                "derivative of one of its children is not finite there (e.g. sqrt or log "
                "at 0, or an overflow)." + lean, NonFiniteWarning)
            return
    for i, g in zip(plan.wrt, grads):
        if not np.all(np.isfinite(unwrap(g))):
            children = ", ".join(nodes[c].label() for c, _ in plan.children[i] or ())
            warn_at_caller(
                f"Non-finite gradient read out at {nodes[i].label()} from its children "
                f"{children}; check their local derivatives (e.g. sqrt or log at 0)." + lean,
                NonFiniteWarning)
            return


def finish(plan: Plan, x: dict, seed: Any, method: str, *, vjp_evals: int,
           iterations: int = 1, converged: bool = True, residuals: Any = (0.0,),
           trajectory: dict | None = None) -> Result:
    """The epilogue of every solver: read out, check for NaN/inf, build the `Result`.

    A gradient that is not finite makes the result `converged=False`, whatever the
    solver's residuals said (they measure the relaxing activities, not the read-out of
    the sources, and an exact sweep certifies 0 by construction), and
    `warn_non_finite` names the node where the NaN or infinity starts.  Every solver
    ends here, so this is the one place that decides it.

    Parameters
    ----------
    plan : Plan
        The compiled graph.
    x : dict
        Node index -> final activity, including the clamped output (and a unit plan's
        clamped nodes), which are removed (they are computed, not relaxed).
    seed : array_like
        The clamped output activity.
    method : str
        The solver's name for `Result.method`.
    vjp_evals : int
        VJP evaluations of the solve (the read-out's are added).
    iterations, converged, residuals, trajectory
        As in `Result`; the defaults describe an exact one-step solve.  `converged`
        is overridden to False when a gradient is not finite.

    Returns
    -------
    Result
    """
    grads, read_evals = read_out(plan, x, seed)
    if not all(map(is_finite, grads)):
        warn_non_finite(plan, x, grads)
        converged = False
    for i in plan.fixed_nodes:
        del x[i]
    return Result(grads=grads, value=plan.graph.nodes[plan.output].value, method=method,
                  iterations=iterations, converged=converged,
                  residuals=np.asarray(residuals, dtype=np.float64), trajectory=trajectory,
                  activities=x, vjp_evals=vjp_evals + read_evals, plan=plan)
