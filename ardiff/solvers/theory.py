"""Iteration theory of the relaxation: error bounds, step counts, stability, rounding.

With the local Jacobians frozen at the forward values the relaxation is linear,
`(I - N) x = b` with `N` strictly triangular in topological order and therefore
nilpotent (`N^D = 0`, D the depth in relaxing nodes).  Every prediction here
follows from that structure.

For the parallel (Jacobi) schedule the error of a node at distance k after t steps
is Σ_{m<k} C(t, m) η^m (1-η)^(t-m) times its gradient, which for η <= 1 is the
binomial tail P(Binomial(t, η) < k); for the sequential (top-down Gauss–Seidel)
schedule it is (1-η)^t Σ_{m<k} C(t+m-1, m) η^m = P(Binomial(t+k-1, η) < k).  Both
are exact on a chain; on a general DAG a node's gradient is a sum over paths of
different lengths, and the same expression with k = D bounds the error relative
to the sum of the paths' magnitudes.

Floating point adds a floor for 1 < η < 2 (measured): rounding can leave a node
flipping between two neighbouring floats (its own factor 1 - η is negative), and
each level of the graph amplifies such a period-2 oscillation by η / (2 - η) in
relative terms, so up to about eps · (η / (2 - η))^D relative error can persist
forever (0.26 % on a chain of depth 29 at η = 1.5).  For η <= 1 the factor is at
most 1 and the floor is the rounding error itself.

These functions are re-exported by `ardiff.convexity`, whose report uses them.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np
from scipy.special import gammaln, logsumexp

from .options import SCHEDULES

#: Step budget searched by `predict_iterations`.
MAX_PREDICTED = 10_000_000
#: The remaining fraction above which a fixed step budget is said not to reach a unit
#: (`reach_depth`, and the `ReachWarning` of `ardiff.relax`, `grad` and `compile`).
REACH_FRACTION = 0.05


def error_bound(t: Any, depth: int, eta: float, schedule: str = "parallel") -> np.ndarray:
    """Relative error after `t` steps of a node at distance `depth` (start from zero).

    Parameters
    ----------
    t : int or array of int
        Steps (parallel) or sweeps (sequential) taken.
    depth : int
        The node's distance from the output in relaxing nodes (use D for the worst node).
    eta : float
        Euler step.
    schedule : {"parallel", "sequential"}
        The update schedule.

    Returns
    -------
    numpy.ndarray
        Parallel: Σ_{m<depth} C(t,m) η^m |1-η|^(t-m); sequential:
        |1-η|^t Σ_{m<depth} C(t+m-1,m) η^m.  For η <= 1 these are the binomial tails
        P(Binomial(t, η) < depth) and P(Binomial(t+depth-1, η) < depth); for 1 < η < 2
        they bound the error by the triangle inequality and show its transient growth.
    """
    t = np.asarray(t, dtype=np.int64)
    if depth <= 0:
        return np.zeros(t.shape)
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be 'parallel' or 'sequential', got {schedule!r}")
    if 0.0 < eta <= 1.0:
        trials = t if schedule == "parallel" else t + depth - 1
        # imported here: scipy.stats takes about 0.6 s to import (measured), and only
        # this branch of the theory needs it; `import ardiff` stays fast
        from scipy.stats import binom

        return np.where(t > 0, binom.cdf(depth - 1, trials, eta), 1.0)
    m = np.arange(depth)
    tt = t[..., None].astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_eta, log_rest = math.log(eta), math.log(abs(1.0 - eta)) if eta != 1.0 else -np.inf
        if schedule == "parallel":
            valid = m <= tt
            log_c = gammaln(tt + 1) - gammaln(m + 1) - gammaln(np.maximum(tt - m, 0) + 1)
            terms = np.where(valid, log_c + m * log_eta + (tt - m) * log_rest, -np.inf)
            result = np.exp(logsumexp(terms, axis=-1))
        else:
            log_c = gammaln(tt + m) - gammaln(m + 1) - gammaln(np.maximum(tt, 1))
            terms = log_c + m * log_eta
            result = np.exp(t * log_rest + logsumexp(terms, axis=-1))
    return np.where(t > 0, result, 1.0)


def predict_iterations(depth: int, eta: float, schedule: str = "parallel",
                       tol: float = 1e-10) -> int | None:
    """Smallest number of steps after which `error_bound` is at most `tol`.

    Parameters
    ----------
    depth : int
        Distance of the deepest relaxing node from the output (D).
    eta : float
        Euler step.
    schedule : {"parallel", "sequential"}
        The update schedule.
    tol : float
        Target relative error.

    Returns
    -------
    int or None
        The step count; None when the Euler step is unstable (η outside (0, 2)), `tol`
        is not positive, or more than `MAX_PREDICTED` steps would be needed.  At η = 1
        this is D steps (parallel) or one sweep (sequential).
    """
    if not 0.0 < eta < 2.0 or not tol > 0:
        return None
    if depth <= 0:
        return 0
    if eta == 1.0:
        return depth if schedule == "parallel" else 1
    start, chunk = 0, 256
    while start < MAX_PREDICTED:
        ts = np.arange(start, start + chunk)
        below = np.flatnonzero(error_bound(ts, depth, eta, schedule) <= tol)
        if below.size:
            return int(ts[below[0]])
        start += chunk
        chunk = min(chunk * 2, 65536)
    return None


def remaining_fractions(t: int, depth: int, eta: float,
                        schedule: str = "parallel") -> np.ndarray:
    """`error_bound(t, k, eta, schedule)` for every unit distance k = 1 .. depth.

    After `t` steps the error of a unit at distance k from the clamped output is
    e_t = Σ_{m<k} w_m (N^m e_0) (`ardiff.solvers.closed_form`), the initial errors
    (initial activity minus final value) of the units m levels closer to the output
    propagated down to it, with weights that sum to this fraction.  From zeros on a
    chain or a layered graph every N^m e_0 equals e_0 = -x* at that unit, so the
    fraction is exactly the relative error left; from the forward values it multiplies
    the propagated initial errors, which can be much larger than the gradient.

    Parameters
    ----------
    t : int
        Steps (parallel) or sweeps (sequential).
    depth : int
        The largest distance D (the depth of the relaxing units).
    eta, schedule
        As for `error_bound`.

    Returns
    -------
    numpy.ndarray
        Shape `(depth,)`: entry k - 1 is the fraction at distance k (nondecreasing in k).
    """
    k = np.arange(1, depth + 1)
    if 0.0 < eta <= 1.0 and t > 0:  # the binomial tails at once (error_bound's branch)
        from scipy.stats import binom  # imported here: see error_bound

        return binom.cdf(k - 1, t if schedule == "parallel" else t + k - 1, eta)
    return np.array([float(error_bound(t, int(d), eta, schedule)) for d in k])


def reach_depth(t: int, eta: float, schedule: str = "parallel",
                fraction: float = REACH_FRACTION, limit: int = MAX_PREDICTED) -> int | None:
    """The largest unit distance whose remaining fraction after `t` steps is at most `fraction`.

    Units farther from the output than this still hold more than `fraction` of their
    initial error after `t` steps: the relaxation's reach.  `error_bound` grows with the
    distance, so the answer is found by doubling and bisection.

    Parameters
    ----------
    t : int
        Steps (parallel) or sweeps (sequential).
    eta : float
        Euler step, in (0, 2).
    schedule : {"parallel", "sequential"}
        The update schedule.
    fraction : float
        The threshold (default `REACH_FRACTION`, 0.05).
    limit : int
        Distances beyond this count as unlimited.

    Returns
    -------
    int or None
        The reach (0 when even the units next to the output keep more than `fraction`);
        None when every distance up to `limit` is within it (the sequential schedule at
        eta = 1, exact in one sweep).
    """
    def within(k: int) -> bool:
        return float(error_bound(t, k, eta, schedule)) <= fraction

    if not within(1):
        return 0
    low, high = 1, 2
    while within(high):
        low, high = high, high * 2
        if low > limit:
            return None
    while high - low > 1:  # within(low), not within(high)
        mid = (low + high) // 2
        low, high = (mid, high) if within(mid) else (low, mid)
    return low


@functools.lru_cache(maxsize=256)
def reach_shortfall(depth: int, t: int, eta: float, schedule: str,
                    fraction: float = REACH_FRACTION) -> tuple[float, int | None] | None:
    """Whether `t` fixed steps leave the deepest unit above `fraction` of its initial error.

    The one test behind the `ReachWarning` of `ardiff.relax`, `ardiff.grad` and
    `ardiff.compile` (`run_relaxation` calls it once per solve, with the depth of the
    plan's relaxing units); cached, since training asks the same question every batch.

    Parameters
    ----------
    depth : int
        D, the deepest relaxing unit's distance from the output.
    t : int
        The fixed number of steps (parallel) or sweeps (sequential).
    eta : float
        Euler step, in (0, 2).
    schedule : {"parallel", "sequential"}
        The update schedule.
    fraction : float
        The threshold (default `REACH_FRACTION`).

    Returns
    -------
    tuple of (float, int or None) or None
        None when `error_bound(t, depth, eta, schedule) <= fraction`; else that
        remaining fraction and the smallest number of steps that brings it to
        `fraction` or below (`predict_iterations`).
    """
    remaining = float(error_bound(t, depth, eta, schedule))
    if remaining <= fraction:
        return None
    return remaining, predict_iterations(depth, eta, schedule, fraction)


def transient_growth(depth: int, eta: float, schedule: str = "parallel",
                     steps: int | None = None) -> float:
    """Largest value of `error_bound` over the first `steps` steps.

    Above 1 for 1 < η < 2 on deep graphs: the non-normal iteration matrix amplifies
    the error before the factor |1-η|^t wins.

    Parameters
    ----------
    depth, eta, schedule
        As for `predict_iterations`.
    steps : int, optional
        Horizon; default the steps `predict_iterations` needs for 1e-16 (or 1000).

    Returns
    -------
    float
        The largest bound, at least 1 (the bound at t = 0).
    """
    if steps is None:
        steps = predict_iterations(depth, eta, schedule, 1e-16) or 1000
    return float(np.max(error_bound(np.arange(steps + 1), depth, eta, schedule)))


def rounding_floor(depth: int, eta: float, dtype: Any = np.float64) -> float:
    """Worst-case relative error that rounding can sustain (see the module docstring).

    `eps/2 · max(1, η/(2-η))^D`: a period-2 oscillation of one unit in the last
    place, amplified by η/(2-η) per level.  Whether it arises depends on how the
    roundings fall; when it does, relaxation stalls at about this level.

    Parameters
    ----------
    depth, eta
        As for `predict_iterations`.
    dtype : numpy dtype
        Floating-point type of the activities.

    Returns
    -------
    float
        The floor; infinite for an unstable `eta`.
    """
    if not 0.0 < eta < 2.0:
        return math.inf
    gain = max(1.0, eta / (2.0 - eta))
    eps = float(np.finfo(dtype).eps) / 2.0
    with np.errstate(over="ignore"):  # a NumPy power: inf past the float range, no error
        return float(min(eps * np.float64(gain) ** max(depth, 0), math.inf))


def stability(eta: float, depth: int) -> tuple[bool, str]:
    """Whether Euler steps of size `eta` converge, and why (both schedules).

    Parameters
    ----------
    eta : float
        Euler step.
    depth : int
        Depth D of the graph (it sets the growth rate at η = 2).

    Returns
    -------
    tuple of (bool, str)
        The verdict and a sentence explaining it.
    """
    rho = abs(1.0 - eta)
    if not math.isfinite(eta):
        return False, f"eta = {eta} is not a finite number."
    if eta <= 0.0:
        return False, ("eta must be positive: at eta = 0 nothing moves, and for eta < 0 the "
                       "activities run away from the fixed point.")
    if eta < 2.0:
        return True, (f"every eigenvalue of the iteration matrix is 1 - eta = {1.0 - eta:g}; "
                      f"|1 - eta| = {rho:g} < 1, so the error decays.")
    if eta == 2.0:
        growth = (f"and on this graph (depth D = {depth}) it grows polynomially, like "
                  f"t^{depth - 1}") if depth > 1 else "and it never decays"
        return False, ("every eigenvalue of the iteration matrix is 1 - eta = -1: the error "
                       f"does not decay, {growth}.")
    return False, (f"|1 - eta| = {rho:g} > 1: the error grows geometrically (diverges).")


def default_max_iter(depth: int, eta: float, schedule: str, tol: float = 1e-12) -> int:
    """A generous step budget from the depth D, `eta` and `tol`.

    For η <= 1 the error of a node at distance k after t parallel steps is the
    tail P(Binomial(t, η) < k), negligible once t exceeds about (k + 10√k)/η plus a
    term for the tolerance; for η > 1 the contraction factor per step is |1-η|
    after a transient growth.  The budget doubles that estimate; it only matters
    when the dynamics do not converge.

    Parameters
    ----------
    depth, eta, schedule, tol
        As for `predict_iterations` (`eta` in (0, 2); `tol` bounds the residual).

    Returns
    -------
    int
        The budget (1 for the sequential schedule at η = 1, which is exact in one sweep).
    """
    if schedule == "sequential" and eta == 1.0:
        return 1
    rate = min(eta, 2.0 - eta)
    log_tol = abs(math.log(max(tol, 1e-300)))
    return int(math.ceil(2.0 * (depth + 10.0 * math.sqrt(depth) + 2.0 * log_tol + 50.0) / rate))
