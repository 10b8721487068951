"""The Activation Relaxation solver: gradients as the equilibrium of local dynamics.

After the forward pass every relaxing node i follows the leaky integrator

    dx_i/dt = -x_i + Σ_{j ∈ children(i)} vjp_ji(x_j),        x_output clamped to the seed,

whose unique fixed point is the chain rule, x_i* = dL/dx_i (Millidge et al.,
Appendix A).  Euler steps of size `eta` are taken on one of two schedules:

* `"parallel"` (Jacobi; Algorithm 1 of the paper): every node updates from the
  previous state.  The iteration matrix is (1-η)I + ηN with N nilpotent, so it
  converges for 0 < η < 2; at η = 1 it is exact after D steps (D = depth).
* `"sequential"` (top-down Gauss–Seidel, as in the paper's training code):
  nodes update in reverse topological order using their children's new
  activities.  At η = 1 one sweep is exact and costs one backprop sweep.

Convergence is judged on the *relative* residual of every node,
max|target - x| / max(|target|, |x|), so nodes whose true gradient is tiny
(1e-100) are held to the same standard as the others.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from ..graph import Graph, TracerBase, unwrap
from .closed_form import run_closed_form
from .common import finish, make_seed, sweep, warn_at_caller
from .options import REACH, SolverOptions
from .plan import Plan, compile_plan
from .residuals import (
    ConvergenceWarning,
    ReachWarning,
    max_abs,
    residual_parts,
    worst_residual,
)
from .result import Result
from .theory import REACH_FRACTION, default_max_iter, predict_iterations, reach_shortfall
from .units import unit_plan


def reachable_tol(tol: float, activities: Iterable) -> float:
    """`tol`, raised to what the activities' precision can resolve.

    A relative residual cannot settle much below the machine epsilon of the least
    precise activity (about 1e-7 in float32), so a float32 graph would otherwise never
    meet the default 1e-12.  The floor is 16 eps (3.6e-15 in float64, where it leaves
    the default alone); `tol = 0` still means "run every step".

    Parameters
    ----------
    tol : float
        The requested tolerance.
    activities : iterable
        The activities (arrays or traced values) whose dtypes set the floor.

    Returns
    -------
    float
        `max(tol, 16 eps)` for the least precise float dtype, or `tol` if it is 0.
    """
    if tol <= 0:
        return tol
    eps = 0.0
    for a in activities:
        dtype = np.result_type(unwrap(a))
        if dtype.kind == "f" and dtype.itemsize < 8:
            eps = max(eps, float(np.finfo(dtype).eps))
    return max(tol, 16.0 * eps)


def _times(diff: Any, eta: float) -> Any:
    """eta * diff, in place when diff is a fresh NumPy array (it is only used once)."""
    if isinstance(diff, np.ndarray) and diff.ndim and diff.flags.writeable:
        return np.multiply(diff, eta, out=diff)
    return diff * eta


def _traced_min_iter(plan: Plan, eta: float, schedule: str, tol: float) -> int:
    """Steps needed before a traced relaxation may stop (higher-order differentiation).

    The residual is measured on plain values, but the outer graph differentiates the
    iterates: their derivatives follow the same linear recursion from their own start
    and can lag behind values that have already settled (an activity equal to its
    target in value, e.g. both zero, need not be equal in its derivative).  So a traced
    solve also runs the number of steps the error bound of the recursion needs
    (`predict_iterations`); at eta = 1 that is the depth D (parallel) or one sweep
    (sequential).
    """
    steps = predict_iterations(plan.max_depth, eta, schedule, max(tol, 1e-16))
    return steps or 0


def _parallel(plan, x, options, trajectory, scale):
    """Jacobi iteration that recomputes a node's target only when a child changed.

    VJPs are linear in the activity, so a node whose children are unchanged since
    the last evaluation has the same target: reusing it gives exactly the dense
    iteration.  At eta = 1 on a layered graph every node is then evaluated once.
    `options` has a numeric `max_iter` and the `tol` the activities can resolve.
    """
    eta, tol, max_iter = options.eta, options.tol, options.max_iter
    order = plan.relaxing[::-1]
    edges = plan.edges
    targets, parts = {}, {}
    if options.init == "forward":
        changed = None  # everything is stale at the start
    else:
        changed = set(plan.fixed_nodes)  # the seed (and clamped nodes) are new
        for i in order:  # all children at zero: the target is zero too
            targets[i] = x[i]
            parts[i] = (0.0, 0.0, 0.0)
    residuals, evals, iterations = [], 0, 0
    min_iter = None  # set once a traced target shows up (differentiating to higher order)
    while True:
        for i in order:
            stale = changed is None or any(c in changed for c, _ in edges[i])
            if stale:
                targets[i] = plan.activity_target(i, x)
                evals += len(edges[i])
                if min_iter is None and isinstance(targets[i], TracerBase):
                    min_iter = _traced_min_iter(plan, eta, "parallel", tol)
            if stale or i in changed:
                parts[i] = residual_parts(targets[i], x[i])
        scale = max(scale, max(p[1] for p in parts.values()))
        worst = worst_residual(parts.values(), scale)
        if iterations:  # residuals[k] describes the state after step k + 1 (see Result)
            residuals.append(worst)
        if worst <= tol and iterations >= (min_iter or 0):
            return iterations, True, residuals, evals
        if iterations == max_iter:
            return iterations, False, residuals, evals
        changed = set()
        for i in order:
            num, _, diff = parts[i]
            # a traced activity can equal its target in value and still lag in its
            # dependence on the outer variables: then every node keeps stepping
            if num > 0.0 or min_iter is not None:
                x[i] = targets[i] if eta == 1.0 else x[i] + _times(diff, eta)
                changed.add(i)
        iterations += 1
        if trajectory is not None:
            for i in plan.relaxing:
                trajectory[i].append(x[i])


def _sequential(plan, x, options, trajectory, scale):
    """Top-down Gauss–Seidel sweeps; the residual is that of the state after a sweep."""
    eta, tol, max_iter = options.eta, options.tol, options.max_iter
    order = plan.relaxing[::-1]
    residuals, evals, iterations = [], 0, 0
    converged = False
    min_iter = None  # set once a traced target shows up (see _parallel)
    while iterations < max_iter and not converged:
        parts = []
        for i in order:
            target = plan.activity_target(i, x)
            evals += len(plan.edges[i])
            if min_iter is None and isinstance(target, TracerBase):
                min_iter = _traced_min_iter(plan, eta, "sequential", tol)
            num, tmax, diff = residual_parts(target, x[i])
            x[i] = x[i] + _times(diff, eta)
            # After the sweep the children of i no longer change, so the residual of
            # the new state is |target - x_new| = |1 - eta| |target - x_old|.
            parts.append((abs(1.0 - eta) * num if num < math.inf else num, tmax, None))
        scale = max(scale, max(p[1] for p in parts))
        worst = worst_residual(parts, scale)
        residuals.append(worst)
        iterations += 1
        converged = worst <= tol and iterations >= (min_iter or 0)
        if trajectory is not None:
            for i in plan.relaxing:
                trajectory[i].append(x[i])
    return iterations, converged, residuals, evals


def steps_by_reach(plan: Plan, options: SolverOptions) -> tuple[SolverOptions, str | None]:
    """The number of steps, checked against the depth of the relaxing units: the one
    place where `relax`, `grad` and `compile` (all through `run_relaxation`) meet it.

    * `max_iter="reach"`: T becomes the smallest number of steps after which the
      deepest unit (distance D = `plan.max_depth`) keeps at most `tol` of its initial
      error (`predict_iterations`), and exactly those T steps are run (`tol=0`).
    * A fixed `max_iter` that leaves the deepest unit more than `REACH_FRACTION` of
      its initial error (`reach_shortfall`): the text of the solve's one
      `ReachWarning`, naming D, the fraction and the T that would bring it to 0.05
      (the solver issues it at the user's line when it ends, with the residual's
      `ConvergenceWarning` text appended where that applies too).  Not for the
      one-sweep solve (exact), nor continuous time (no steps).

    Parameters
    ----------
    plan : Plan
        The plan whose units relax (after `unit_plan`).
    options : SolverOptions

    Returns
    -------
    tuple of (SolverOptions, str or None)
        The options with a numeric `max_iter`, and the `ReachWarning` message (None
        when the steps reach the deepest unit).
    """
    depth, eta, schedule = plan.max_depth, options.eta, options.schedule
    if options.max_iter == REACH:
        steps = predict_iterations(depth, eta, schedule, options.tol)
        if steps is None:
            raise ValueError(f"max_iter='reach': no T up to 1e7 steps brings a unit at "
                             f"depth {depth} to tol={options.tol:g} ({schedule}, "
                             f"eta={eta:g}); use a larger eta or tol.")
        return replace(options, max_iter=max(steps, 1), tol=0.0), None
    if options.max_iter is None or options.one_sweep or schedule == "continuous" \
            or not plan.relaxing:
        return options, None
    shortfall = reach_shortfall(depth, options.max_iter, eta, schedule)
    if shortfall is None:
        return options, None
    remaining, needed = shortfall
    advice = (f"max_iter={needed} would bring it to {REACH_FRACTION:g}" if needed is not None
              else "no step count up to 1e7 brings it there")
    return options, (
        f"max_iter={options.max_iter} {schedule} steps of eta={eta:g} do not reach the "
        f"deepest relaxing unit: at depth {depth} from the output it still holds "
        f"{remaining:.3g} of its initial error (more than {REACH_FRACTION:g}; "
        f"ardiff.solvers.theory.error_bound), so its gradient is mostly its initial "
        f"activity. {advice}; max_iter='reach' with tol= picks T from the depth "
        "(at closed-form cost with closed_form=True).")


def run_relaxation(plan: Plan, seed: Any = None,
                   options: SolverOptions | None = None) -> Result:
    """Relax a compiled plan.

    Parameters
    ----------
    plan : Plan
        From `compile_plan` (with any rules already applied).
    seed : array_like, optional
        dL/d(output); default 1 for a scalar output.
    options : SolverOptions, optional
        Validated settings (default: `SolverOptions()`; `method` and `rules` are not
        read here).  The one way settings reach a solver (`relax` builds them from its
        keywords).

    Returns
    -------
    Result
        See `relax`.
    """
    if options is None:
        options = SolverOptions()
    plan = unit_plan(plan, options.units)
    options, reach = steps_by_reach(plan, options)
    if options.closed_form:
        return run_closed_form(plan, seed, options, reach=reach)
    eta, schedule, init = options.eta, options.schedule, options.init
    tol, max_iter, record = options.tol, options.max_iter, options.record
    seed = make_seed(plan, seed)
    x = plan.fixed_activities(seed)
    nodes = plan.graph.nodes
    fast = options.one_sweep
    if max_iter is None:
        max_iter = 1 if fast else default_max_iter(plan.max_depth, eta, schedule, tol)
    for i in ([] if fast else plan.relaxing):
        value = nodes[i].value
        if init == "forward":
            x[i] = value
        else:
            raw = unwrap(value)
            x[i] = np.zeros(np.shape(raw), dtype=np.result_type(raw))
    trajectory = {i: [x[i]] for i in plan.relaxing} if record else None
    if not fast:
        tol = reachable_tol(tol, x.values())
    if not plan.relaxing:
        iterations, converged, residuals, evals = 0, True, [], 0
    elif fast:
        # One sweep lands every node on its fixed point; the residual of the state
        # after it is zero by construction (a certificate, not a guess).
        evals = sweep(plan, x)
        iterations, converged, residuals = 1, True, [0.0]
    else:
        stepping = _parallel if schedule == "parallel" else _sequential
        iterations, converged, residuals, evals = stepping(
            plan, x, replace(options, tol=tol, max_iter=max_iter), trajectory,
            max_abs(unwrap(seed)))
    message = None
    if not converged and tol > 0 and math.isfinite(residuals[-1]):
        message = (f"Relaxation did not reach tol={tol:g} within max_iter={max_iter} "
                   f"({schedule} schedule, eta={eta:g}); final relative residual "
                   f"{residuals[-1]:.3g}. Increase max_iter, or use eta=1.")
    if reach is not None:  # one warning per solve: the reach, then the residual
        warn_at_caller(reach if message is None else f"{reach} {message}", ReachWarning)
    elif message is not None:
        warn_at_caller(message, ConvergenceWarning)
    if record:
        trajectory = {i: np.stack([unwrap(a) for a in acts]) for i, acts in trajectory.items()}
    result = finish(plan, x, seed, "relax", vjp_evals=evals, iterations=iterations,
                    converged=converged, residuals=residuals, trajectory=trajectory)
    result.sweeps = iterations
    return result


def relax(graph: Graph, output: Any = None, wrt: Sequence | None = None, *, seed: Any = None,
          eta: float | None = None, schedule: str | None = None, init: str | None = None,
          tol: float | None = None, max_iter: int | str | None = None, record: bool = False,
          closed_form: bool | None = None, time: float | Sequence | None = None,
          units: str | Sequence | None = None, rules: Sequence | None = None,
          preset: str | None = None) -> Result:
    """Compute gradients as the equilibrium of the Activation Relaxation dynamics.

    An option left at None takes the preset's value if `preset` sets it, else the
    library default given below; an option given explicitly always wins over the
    preset (as in [`ardiff.grad`][ardiff.grad]).

    Parameters
    ----------
    graph : Graph
        The recorded graph.
    output : traced value, optional
        The node whose gradient is propagated (default `graph.output`).
    wrt : sequence, optional
        Traced values (or node indices/names) to differentiate with respect to
        (default `graph.inputs`).
    seed : array_like, optional
        dL/d(output); default 1 for a scalar output.
    eta : float, optional
        Euler step ("inference learning rate"), in (0, 2); default 1.0.
    schedule : str, optional
        `"sequential"` (default: top-down Gauss–Seidel sweeps), `"parallel"`
        (simultaneous Jacobi updates, the paper's Algorithm 1) or `"continuous"` (the
        exact continuous-time flow at `time`, in closed form).
    init : str, optional
        Initial activities: `"zeros"` (default) or `"forward"` (the forward values,
        as in the paper).
    tol : float, optional
        Stop when the maximal relative residual is at most `tol` (default 1e-12); 0
        runs `max_iter` steps, stopping early only at a residual of exactly zero (a
        state that further steps leave unchanged, bit for bit).  Raised to 16 machine
        epsilons of the least precise activity (2e-6 in float32), below which rounding
        keeps the residual moving.
    max_iter : int or "reach", optional
        Step budget; default a generous bound from the graph's depth and `eta`.
        `"reach"`: the smallest T after which the deepest relaxing unit keeps at most
        `tol` of its initial error (from the depth D of the relaxing units), then
        exactly T steps (`tol` > 0 is spent on choosing T).
    record : bool
        Keep every node's activity per iteration in `result.trajectory`.
    closed_form : bool, optional
        Return the state after exactly `max_iter` steps (every step with `record`)
        computed from D sweeps instead of stepping, D being the depth of the relaxing
        graph (`ardiff.solvers.closed_form`); equal to stepping up to rounding.
        Without `max_iter` the number of steps is the theory's bound for `tol`.
        Default False (the `"paper"` preset sets it).
    time : float or sequence of float, optional
        With `schedule="continuous"`: the time t of the exact flow dx/dt = target - x
        to return (or increasing times whose states are recorded).
    units : str or sequence, optional
        Which nodes carry relaxing activities (`ardiff.solvers.units`).  `"ops"`
        (the default): every node between the inputs and the output.  `"layers"`: the
        paper's units: every output of a nonlinear op, every node where paths from
        them merge and every node marked with [`ardiff.unit`][ardiff.unit], upstream
        of the last parameter; the ops between units are folded into the edges and the
        head after the last parameter (network output, loss) is clamped to its exact
        gradient, as the paper clamps x_L = dL/dv_L.  A sequence: these nodes (traced
        values, nodes, indices or names).  Inputs are read out as always.  The fixed
        point does not depend on the choice, only the trajectory does.
    rules : sequence, optional
        Local-rule variants (see `ardiff.rules`) replacing some nodes' VJPs.
    preset : str, optional
        Named settings (`PRESETS`); `"paper"` is the paper's protocol (Algorithm 1):
        layer units with the head clamped, parallel, eta 0.1, exactly 100 steps,
        forward init, computed in closed form.  Approximate by design: 100 steps at
        eta 0.1 do not reach the fixed point on deep graphs.

    Returns
    -------
    Result
        `grads` aligned with `wrt`, plus iterations, convergence and residuals.

    Warns
    -----
    ConvergenceWarning
        If `tol > 0` was not reached within `max_iter`.
    ReachWarning
        Once, if a fixed `max_iter` leaves the deepest relaxing unit more than 0.05 of
        its initial error (its text then includes the `ConvergenceWarning`'s).
    NonFiniteWarning
        Naming the first node whose activity becomes NaN or infinite.
    """
    options = SolverOptions.from_keywords(
        preset=preset, rules=rules, eta=eta, schedule=schedule, init=init, tol=tol,
        max_iter=max_iter, record=record, closed_form=closed_form, time=time, units=units)
    plan = compile_plan(graph, output, wrt, options.rules)
    return run_relaxation(plan, seed, options)
