"""How far a relaxation state is from its fixed point: the solvers' relative residual.

Shared by the stepping solver (`ardiff.solvers.relaxation`) and the closed form
(`ardiff.solvers.closed_form`), so both report the same number for the same state.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable
from typing import Any

import numpy as np

from ..graph import unwrap

__all__ = ["ConvergenceWarning", "ReachWarning", "NEGLIGIBLE", "max_abs", "residual_parts",
           "worst_residual"]


class ConvergenceWarning(RuntimeWarning):
    """The relaxation stopped at `max_iter` before reaching `tol`."""


class ReachWarning(ConvergenceWarning):
    """A fixed number of relaxation steps does not reach the deepest unit.

    Issued once per solve by `ardiff.relax`, `ardiff.grad` and `ardiff.compile` when
    `max_iter` is a fixed number and the deepest relaxing unit still holds more than
    `ardiff.solvers.theory.REACH_FRACTION` (0.05) of its initial error after it
    (`ardiff.solvers.theory.reach_shortfall`); the message names that unit's depth,
    the fraction and the number of steps that would bring it to 0.05.  A
    `ConvergenceWarning`, so filters on that class cover it too.
    """


def max_abs(a: np.ndarray) -> float:
    """max |a| (0 for an empty array)."""
    return float(np.max(np.abs(a))) if np.size(a) else 0.0


_largest, _smallest = np.maximum.reduce, np.minimum.reduce
_FLOAT = np.dtype(np.float64)


def residual_parts(target: Any, x: Any) -> tuple[float, float, Any]:
    """`(max|target - x|, max|target|, target - x)` of one node's activity.

    The difference is returned so the Euler step can reuse it.

    Parameters
    ----------
    target : array_like
        The node's target (the sum of its children's VJPs).
    x : array_like
        The node's activity.

    Returns
    -------
    tuple of (float, float, array_like)
        Entries finite on only one side count as an infinite difference.
    """
    diff = target - x  # traced when differentiating to higher order
    t, d = unwrap(target), unwrap(diff)
    if not np.size(d):
        return 0.0, 0.0, diff
    if getattr(d, "dtype", _FLOAT).kind == "c":  # complex activities: measured by modulus
        t, d = np.abs(t), np.abs(d)
    # the ufunc reductions directly: np.max's Python wrapper costs as much as the
    # reduction itself on the small arrays of a relaxation step
    num = max(float(_largest(d, axis=None)), -float(_smallest(d, axis=None)))
    tmax = max(float(_largest(t, axis=None)), -float(_smallest(t, axis=None)))
    if not math.isfinite(num + tmax):
        return _non_finite_parts(t, unwrap(x), diff)
    if 0.0 < tmax < _LARGEST_SMALLEST_NORMAL:
        # Below the smallest normal number rounding is absolute, not relative: an
        # Euler step with eta > 1 can cycle between +-1 subnormal ulp around a tiny
        # target forever.  Measure such a target against the smallest normal number,
        # where one ulp is eps relative, so the cycle counts as converged.
        tmax = max(tmax, _smallest_normal(getattr(d, "dtype", _FLOAT)))
    return num, tmax, diff


#: float16's smallest normal number, the largest of any float dtype: a target above it is
#: never subnormal, so the hot path skips the dtype lookup.
_LARGEST_SMALLEST_NORMAL = float(np.finfo(np.float16).smallest_normal)


@functools.cache
def _smallest_normal(dtype: np.dtype) -> float:
    """The smallest positive normal number of a (real or complex) float dtype."""
    try:
        return float(np.finfo(dtype).smallest_normal)
    except (TypeError, ValueError):  # integer or object activities: no subnormals
        return 0.0


def _non_finite_parts(t: Any, v: Any, diff: Any) -> tuple[float, float, Any]:
    """Residual parts of a node with a NaN or infinite entry in its target or activity.

    Such an entry never settles (inf - inf is NaN), so convergence is judged on the
    entries finite on both sides; an entry finite on one side only is still moving and
    counts as an infinite residual, so the node keeps being updated.  Without this the
    first NaN would stop the iteration with every finite entry unfinished.  After the
    solve, warn_non_finite names the node where the non-finite values start.
    """
    t, v = np.broadcast_arrays(t, v)
    ft, fv = np.isfinite(t), np.isfinite(v)
    both = ft & fv
    num = math.inf if np.any(ft != fv) else max_abs(t[both] - v[both])
    return num, max_abs(t[both]), diff


#: A target below this fraction of the graph's largest is measured against that fraction
#: (see `worst_residual`).
NEGLIGIBLE = 1e-100


def worst_residual(parts: Iterable, scale: float) -> float:
    """The largest relative residual over nodes, from their `residual_parts`.

    A node is measured against its own size, so a node whose gradient is 1e-100 is
    held to the same relative standard as one of size 1: the residual is
    max|t - x| / (max|t| + max|t - x|), where the denominator is the bound on
    max(|t|, |x|) that needs no extra pass over x (it is within a factor 1 + r of
    it, so tolerances mean the same).  A node whose target is exactly zero has no
    size of its own (any x != 0 is infinitely wrong relative to 0); it is measured
    against `scale`, the largest target in the graph, so dead units started from
    forward values still converge.  The same holds below `NEGLIGIBLE` times `scale`:
    upstream of a dead unit (a branch `maximum` did not choose) the target is not
    exactly zero while the relaxation runs but a remnant of the start decaying
    geometrically, with the activity one step behind it, so their ratio never
    settles; such a node is measured against `NEGLIGIBLE * scale` (the relative
    standard still holds for every gradient down to 1e-100 of the largest one).
    A NaN gap counts as an infinite residual (never converged).

    Parameters
    ----------
    parts : iterable
        `residual_parts` of the nodes (the third entry is ignored).
    scale : float
        The largest target seen, for nodes whose target is zero.

    Returns
    -------
    float
        The largest relative residual (0 when every node is at its target).
    """
    worst = 0.0
    for num, tmax, _ in parts:
        if num == 0.0:
            continue
        den = max(tmax + num, NEGLIGIBLE * scale) if tmax > 0.0 else scale
        # an infinite or NaN gap is an infinite residual (inf / inf would be NaN, which
        # the next node's finite residual replaced: an entry still moving went unseen)
        r = num / den if den > 0.0 and num < math.inf else math.inf
        if not r <= worst:
            worst = r
    return worst
