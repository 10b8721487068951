"""Relaxation trajectories in closed form: the state after T steps for D sweeps.

With the local Jacobians frozen at the forward values the relaxation is linear.
Stack the relaxing activities in a vector x; the fixed point x* satisfies
x* = N x* + b, where N (strictly triangular in topological order) holds the VJPs
between relaxing nodes and b the clamped output's contribution.  The error
e_t = x_t - x* then follows e_{t+1} = M e_t with

* parallel (Jacobi): M = (1 - eta) I + eta N, so
  e_T = sum_k C(T, k) (1 - eta)^(T-k) eta^k N^k e_0 (binomial weights);
* sequential (top-down Gauss-Seidel): (I - eta N) x_{t+1} = (1 - eta) x_t + eta b, so
  M = (1 - eta) (I - eta N)^-1 and e_T = (1 - eta)^T sum_k C(T+k-1, k) eta^k N^k e_0
  (negative-binomial weights);
* continuous time, dx/dt = -(I - N) x + b: e(t) = e^-t sum_k t^k / k! N^k e_0
  (Poisson weights).

N is nilpotent: N^k e_0 vanishes at every node whose longest path to the output is
at most k, so the sum stops at k = D - 1 (D = the depth of the relaxing graph).  One
exact sweep gives x* and D - 1 applications of N give the vectors N^k e_0 (the k-th
touching only nodes deeper than k): D sweeps for any T, any set of recorded steps or
any time, instead of T sweeps.  Every rule of the paper replaces VJPs by other
linear maps, so the same holds for them (the plan's staged VJPs include the rules).
With units (`ardiff.solvers.units`) the same formulas hold between units: N is the
coupling of a `UnitPlan` (its composite edges), D its depth, and the clamped nodes
enter b.

Accuracy: for eta <= 1 the weights are probabilities, evaluated with `scipy.stats`
(no overflow or underflow for T up to 1e6 and beyond); the state equals explicit
stepping up to rounding.  For 1 < eta < 2 the weights alternate in sign and grow
before they decay (the non-normal transient of the iteration): they are evaluated
in log space with their signs.  The sum loses digits to their cancellation only
(at most 2.5 measured against exact rational arithmetic), fewer than stepping, which
carries its rounding errors through the transient (docs/theory.md).
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np
from scipy.special import gammaln

from ..graph import unwrap
from .common import finish, make_seed, sweep, warn_at_caller
from .options import SolverOptions
from .plan import Plan, sum_of_vjps
from .residuals import (
    ConvergenceWarning,
    ReachWarning,
    max_abs,
    residual_parts,
    worst_residual,
)
from .result import Result
from .theory import predict_iterations

__all__ = ["trajectory_weights", "error_vectors", "run_closed_form"]


def trajectory_weights(steps: Any, depth: int, eta: float, schedule: str) -> np.ndarray:
    """The weights w_k of N^k e_0 in the error after `steps` steps (or time), k < depth.

    Parameters
    ----------
    steps : int, float or array_like
        Numbers of steps T (discrete schedules) or times t >= 0 (`"continuous"`).
    depth : int
        D: how many weights (k = 0 .. D-1).
    eta : float
        Euler step in (0, 2) (not used in continuous time).
    schedule : {"parallel", "sequential", "continuous"}

    Returns
    -------
    numpy.ndarray
        Shape `np.shape(steps) + (depth,)`: `e_T = sum_k w[..., k] N^k e_0`.
    """
    from scipy import stats  # imported here: scipy.stats takes ~0.6 s to import

    t = np.asarray(steps, dtype=np.float64)[..., None]
    k = np.arange(depth, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore", under="ignore"):
        if schedule == "continuous":
            weights = stats.poisson.pmf(k, t)
        elif schedule == "parallel" and eta <= 1.0:
            weights = stats.binom.pmf(k, t, eta)
        elif schedule == "sequential" and eta <= 1.0:
            # nbinom.pmf(k, T, 1 - eta) = C(T+k-1, k) (1 - eta)^T eta^k; T = 0 is the start
            nbinom = stats.nbinom.pmf(k, np.maximum(t, 1.0), 1.0 - eta) if eta < 1.0 \
                else np.zeros(np.broadcast_shapes(t.shape, k.shape))
            weights = np.where(t == 0, k == 0, nbinom)
        else:  # 1 < eta < 2: alternating signs, evaluated in log space
            q = eta - 1.0
            if schedule == "parallel":  # C(T, k) eta^k (1 - eta)^(T - k), 0 for k > T
                log_w = (gammaln(t + 1) - gammaln(k + 1) - gammaln(np.maximum(t - k, 0) + 1)
                         + k * math.log(eta) + (t - k) * math.log(q))
                sign = np.where((t - k) % 2 == 1, -1.0, 1.0)
                weights = np.where(k <= t, sign * np.exp(log_w), 0.0)
            else:  # (1 - eta)^T C(T+k-1, k) eta^k
                log_w = (gammaln(t + k) - gammaln(k + 1) - gammaln(np.maximum(t, 1.0))
                         + k * math.log(eta) + t * math.log(q))
                sign = np.where(t % 2 == 1, -1.0, 1.0)
                weights = np.where(t == 0, k == 0, sign * np.exp(log_w))
    return np.asarray(weights, dtype=np.float64)


@functools.lru_cache(maxsize=32)
def _single_weights(step: float, depth: int, eta: float, schedule: str) -> np.ndarray:
    weights = trajectory_weights(np.array([step]), depth, eta, schedule)
    weights.flags.writeable = False  # shared by every call with these settings
    return weights


def _weights(times: np.ndarray, depth: int, eta: float, schedule: str) -> np.ndarray:
    """`trajectory_weights`, cached for a single time: training asks for the same
    (T, D, eta, schedule) every batch, and scipy.stats costs about as much as a small
    layer's VJP."""
    if len(times) == 1:
        return _single_weights(float(times[0]), depth, eta, schedule)
    return trajectory_weights(times, depth, eta, schedule)


def error_vectors(plan: Plan, start: dict, exact: dict) -> tuple[list[dict], int, int]:
    """`[N^0 e_0, N^1 e_0, ...]` for `e_0 = start - exact`, as dicts over relaxing nodes.

    A node whose entry is exactly zero by nilpotency (its longest path to the output is
    at most k) is absent from the k-th dict.  Returns the vectors, the applications of
    N made (sweeps) and the VJP evaluations.
    """
    vectors = [{i: start[i] - exact[i] for i in plan.relaxing}]
    edges = plan.edges
    order = plan.relaxing[::-1]
    sweeps = evals = 0
    for _ in range(1, plan.max_depth):
        previous = vectors[-1]
        following = {}
        for i in order:
            terms = [(child, vjp) for child, vjp in edges[i] if child in previous]
            if terms:
                following[i] = sum_of_vjps(terms, previous)
                evals += len(terms)
        sweeps += 1
        if not following:
            break
        vectors.append(following)
    return vectors, sweeps, evals


def _combine(base: dict, weights: np.ndarray, vectors: list[dict], nodes: list[int]) -> dict:
    """`base + sum_k weights[k] vectors[k]` for every node (absent entries are zero)."""
    out = {}
    for i in nodes:
        value = base[i] if base is not None else 0.0
        for w, v in zip(weights, vectors):
            if w != 0.0 and i in v:
                value = value + float(w) * v[i]
        out[i] = value
    return out


def run_closed_form(plan: Plan, seed: Any, options: SolverOptions, *,
                    reach: str | None = None) -> Result:
    """The relaxation's state after `options.max_iter` steps (or at `options.time`) from
    at most D sweeps; see the module docstring.  `run_relaxation` calls it when
    `options.closed_form` is set.

    Parameters
    ----------
    plan : Plan
        From `compile_plan` (with any rules applied).
    seed : array_like or None
        dL/d(output); None for a scalar output.
    options : SolverOptions
        `schedule`, `eta`, `init`, `max_iter` (or `time`), `tol`, `record`.
    reach : str, optional
        A `ReachWarning` message for this solve (`steps_by_reach`): issued instead of
        the `ConvergenceWarning`, with its text appended, so that one warning says both.

    Returns
    -------
    Result
        As from stepping, with `sweeps` (at most D) and `times`.
    """
    seed = make_seed(plan, seed)
    nodes = plan.graph.nodes
    schedule = options.schedule
    if schedule == "continuous":
        times = np.atleast_1d(np.asarray(options.time, dtype=np.float64))
    else:
        horizon = options.max_iter
        if horizon is None:  # the theory's bound on the steps that `tol` needs
            horizon = max(predict_iterations(plan.max_depth, options.eta, schedule,
                                             max(options.tol, 1e-16)) or 1, 1)
        times = np.arange(horizon + 1.0) if options.record else np.array([float(horizon)])
    relaxing = plan.relaxing
    fixed = plan.fixed_activities(seed)  # the seed (and a unit plan's clamped nodes)
    exact = dict(fixed)
    evals = sweep(plan, exact) if relaxing else 0  # x*: one exact sweep
    start = {}
    for i in relaxing:
        if options.init == "forward":
            start[i] = nodes[i].value
        else:
            raw = unwrap(exact[i])
            start[i] = np.zeros(np.shape(raw), dtype=np.result_type(raw))
    vectors, sweeps, more = error_vectors(plan, start, exact) if relaxing else ([{}], 0, 0)
    weights = _weights(times, len(vectors), options.eta, schedule)
    states = [_combine(exact, w, vectors, relaxing) for w in weights]
    # target - x = (N - I) e = sum_k w_k (N^{k+1} e_0 - N^k e_0), with N^D e_0 = 0
    steps_up = [{i: vectors[k + 1].get(i, 0.0) - vectors[k][i] if k + 1 < len(vectors)
                 else -vectors[k][i] for i in vectors[k]} for k in range(len(vectors))]
    scale = max_abs(unwrap(seed))
    residuals = []
    measured = range(1, len(states)) if options.record and schedule != "continuous" \
        else range(len(states) - 1, len(states))
    for n in measured:
        diff = _combine(None, weights[n], steps_up, relaxing)
        parts = [residual_parts(states[n][i] + diff[i], states[n][i]) for i in relaxing]
        scale = max([scale] + [p[1] for p in parts])
        residuals.append(worst_residual(parts, scale))
    x = states[-1]
    trajectory = None
    if options.record:
        trajectory = {i: np.stack([unwrap(s[i]) for s in states]) for i in relaxing}
    x.update(fixed)
    # no early stop: `iterations` is the number of steps the returned state describes
    converged = not relaxing or residuals[-1] <= options.tol
    message = None
    if not converged and options.tol > 0 and np.isfinite(residuals[-1]):
        message = (
            f"The closed-form relaxation state after {times[-1]:g} "
            f"{'time units' if schedule == 'continuous' else 'steps'} ({schedule}, "
            f"eta={options.eta:g}) has relative residual {residuals[-1]:.3g} > "
            f"tol={options.tol:g}. Ask for more steps (max_iter) or a longer time.")
    if reach is not None:
        warn_at_caller(reach if message is None else f"{reach} {message}", ReachWarning)
    elif message is not None:
        warn_at_caller(message, ConvergenceWarning)
    result = finish(plan, x, seed, "relax", vjp_evals=evals + more,
                    iterations=0 if schedule == "continuous" else int(times[-1]),
                    converged=bool(converged), residuals=residuals, trajectory=trajectory)
    # the exact sweep (x*, and a unit plan's clamped nodes) counts once
    result.sweeps = (1 if relaxing or len(plan.fixed_nodes) > 1 else 0) + sweeps
    result.times = times
    return result
