"""Solver options: one validated object, the presets, and the rule that merges them.

Every entry point (`ardiff.relax`, `ardiff.grad` and the other transforms,
`ardiff.compile`) turns its keywords into a `SolverOptions` with
`SolverOptions.from_keywords`, so validation, error messages and the precedence
of presets are the same everywhere: **explicit keywords win over the preset, and
the preset wins over the library defaults.**  A keyword given as None counts as not
given.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: The solvers a transform can run (`ardiff.solvers.RUNNERS` maps each to its runner).
METHODS = ("backprop", "relax", "triangular")
#: Update schedules of the relaxation ("continuous": the exact ODE flow, closed form only).
SCHEDULES = ("sequential", "parallel", "continuous")
#: Initial activities of the relaxation.
INITS = ("zeros", "forward")
#: Keywords that only the relaxation accepts.
RELAX_OPTIONS = ("eta", "schedule", "init", "tol", "max_iter", "record", "closed_form", "time",
                 "units")
#: `max_iter=REACH`: T chosen from the depth so that the deepest unit is reached to `tol`.
REACH = "reach"
#: The named choices of `units=` (besides an explicit list of nodes).
UNIT_CHOICES = ("ops", "layers")

PRESETS = {
    # The paper's protocol: Algorithm 1 on layer units (units="layers": one unit per
    # layer output, the ops inside a layer folded into the edges, the output layer and
    # the loss clamped to their exact gradient, x_L = dL/dv_L), η = 0.1, exactly
    # T = 100 steps, units start at their forward values.  tol = 0 means "run all the
    # steps".  The state after the 100 steps is computed in closed form from D sweeps
    # (the same numbers as stepping, up to rounding; ardiff.solvers.closed_form).
    "paper": dict(schedule="parallel", eta=0.1, max_iter=100, init="forward", tol=0.0,
                  closed_form=True, units="layers"),
}


@dataclass(frozen=True)
class SolverOptions:
    """Validated settings of one solve; the field defaults are the library defaults.

    Construct it directly (every field is checked, with a message saying what is
    wrong) or from user keywords with `from_keywords`, which also applies presets.

    Attributes
    ----------
    method : {"relax", "backprop", "triangular"}
        Which solver runs.
    eta : float
        Euler step of the relaxation, in (0, 2).
    schedule : {"sequential", "parallel", "continuous"}
        Top-down Gauss–Seidel sweeps, simultaneous (Jacobi) updates, or the
        continuous-time flow dx/dt = target - x (closed form only, at `time`).
    init : {"zeros", "forward"}
        Initial activities: zeros, or the forward values (the paper).
    tol : float
        Target maximal relative residual; 0 runs `max_iter` steps
        (fewer only where the residual is exactly zero: no step would change the state).
    max_iter : int, None or "reach"
        Step budget; None for a generous bound from the graph's depth and `eta`;
        `"reach"`: the smallest T after which the deepest relaxing unit keeps at most
        `tol` of its initial error (`ardiff.solvers.theory.predict_iterations` with the
        plan's depth D), then exactly T steps are run (as `tol=0`; best with
        `closed_form`, whose cost is D sweeps whatever T).
    record : bool
        Keep every relaxing node's activity per step (`Result.trajectory`).
    closed_form : bool
        Compute the state after `max_iter` steps exactly from D sweeps (D = depth of
        the relaxing graph) instead of stepping (`ardiff.solvers.closed_form`).
    time : float or tuple of float, optional
        Continuous time: the time t of the returned state, or increasing times whose
        states are recorded (the last is returned).  Only with
        `schedule="continuous"`, which implies `closed_form`.
    units : {"ops", "layers"} or tuple
        Which nodes carry relaxing activities (`ardiff.solvers.units`): every node
        (`"ops"`), the layers (`"layers"`: nonlinear outputs, merges and marked nodes
        upstream of a parameter, the head after the last parameter clamped), or the
        listed nodes (traced values, nodes, indices or names).  The fixed point does
        not depend on it.
    rules : tuple
        Local-rule variants (`ardiff.rules`) replacing some edges' VJPs.
    """

    method: str = "relax"
    eta: float = 1.0
    schedule: str = "sequential"
    init: str = "zeros"
    tol: float = 1e-12
    max_iter: int | str | None = None
    record: bool = False
    closed_form: bool = False
    time: float | tuple | None = None
    units: str | tuple = "ops"
    rules: tuple = field(default=())

    def __post_init__(self) -> None:
        _check_method(self.method)
        try:
            eta = float(self.eta)
        except (TypeError, ValueError):
            raise TypeError(f"eta must be a real number, got {self.eta!r}") from None
        if not math.isfinite(eta) or not 0.0 < eta < 2.0:
            raise ValueError(
                f"eta={self.eta!r} is outside (0, 2). The Euler step of the relaxation "
                "dynamics has iteration matrix (1-eta)I + eta*N whose eigenvalues are all "
                "1-eta, so it only converges for 0 < eta < 2 (eta = 1 is exact fastest).")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        object.__setattr__(self, "closed_form", bool(self.closed_form)
                           or self.schedule == "continuous")
        object.__setattr__(self, "time", _check_time(self.time, self.schedule))
        if self.init not in INITS:
            raise ValueError(f"init must be one of {INITS}, got {self.init!r}")
        tol = self.tol
        if not isinstance(tol, (int, float, np.floating)) or not math.isfinite(tol) or tol < 0:
            raise ValueError(f"tol must be a finite number >= 0, got {tol!r}")
        max_iter = self.max_iter
        if isinstance(max_iter, str):
            if max_iter != REACH:
                raise TypeError(f"max_iter must be a positive integer or None, got "
                                f"{max_iter!r}")
            if self.schedule == "continuous":
                raise ValueError("max_iter='reach' chooses a number of steps; "
                                 "schedule='continuous' takes time= instead.")
            if not tol > 0:
                raise ValueError(
                    "max_iter='reach' picks the smallest T whose remaining fraction at the "
                    "deepest unit is at most tol, so it needs tol > 0 (e.g. tol=1e-3); "
                    f"got tol={tol!r}.")
        elif max_iter is not None:
            if isinstance(max_iter, bool) or not isinstance(max_iter, (int, np.integer)):
                raise TypeError(
                    f"max_iter must be a positive integer or None, got {max_iter!r}")
            if max_iter < 1:
                raise ValueError(f"max_iter must be at least 1, got {max_iter}")
            max_iter = int(max_iter)
        object.__setattr__(self, "units", _check_units(self.units))
        rules = tuple(self.rules or ())
        if rules and self.method != "relax":
            raise ValueError("rules= change the relaxation dynamics and need method='relax'.")
        # frozen: normalised values are written once, here
        object.__setattr__(self, "eta", eta)
        object.__setattr__(self, "tol", float(tol))
        object.__setattr__(self, "max_iter", max_iter)
        object.__setattr__(self, "rules", rules)

    @classmethod
    def from_keywords(cls, method: str | None = None, preset: str | None = None,
                      rules: Sequence | None = None, **given: Any) -> SolverOptions:
        """Options from user keywords: explicit keywords, then the preset, then defaults.

        Parameters
        ----------
        method : str, optional
            `"relax"` (default), `"backprop"` or `"triangular"`.
        preset : str, optional
            A key of `PRESETS` (`"paper"`); it fills the relaxation keywords not given.
        rules : sequence, optional
            Local-rule variants (relaxation only).
        **given
            Relaxation keywords (`RELAX_OPTIONS`); a value of None counts as not given.

        Returns
        -------
        SolverOptions

        Raises
        ------
        ValueError
            For an unknown method or preset, a preset or rules with another method than
            `"relax"`, or an invalid value.
        TypeError
            For an unknown keyword (the exact solvers take none) or a value of the
            wrong type.
        """
        method = "relax" if method is None else method
        _check_method(method)  # first: the keywords allowed depend on it
        if preset is not None and preset not in PRESETS:
            raise ValueError(f"Unknown preset {preset!r}; available: {sorted(PRESETS)}")
        allowed = RELAX_OPTIONS if method == "relax" else ()
        unknown = sorted(set(given) - set(allowed))
        if unknown:
            raise TypeError(f"Unknown option(s) {unknown} for method={method!r}; "
                            f"allowed: {sorted(allowed) or 'none'}.")
        if preset is not None and method != "relax":
            raise ValueError(f"preset={preset!r} sets relaxation options and needs "
                             "method='relax'.")
        settings = dict(PRESETS[preset]) if preset is not None else {}
        settings.update((k, v) for k, v in given.items() if v is not None)
        return cls(method=method, rules=tuple(rules or ()), **settings)

    @property
    def one_sweep(self) -> bool:
        """Whether the solve's gradients are exactly one top-down reverse sweep.

        The one place that decides it (`grad`'s Result-free path, `run_relaxation`'s
        fast path and `ardiff.compile`'s generated sweep all read it): backprop, and
        the relaxation with the sequential schedule at eta = 1 without a recorded
        trajectory, whose first top-down sweep lands every activity on its fixed
        point (each node's update reads only its finished children).  That holds
        for any choice of `units` (the fixed point does not depend on them), with
        local rules (their fixed point is their own sweep's) and for the closed form
        (the state after T >= 1 such steps is the fixed point).

        Returns
        -------
        bool
        """
        if self.method == "backprop":
            return True
        return (self.method == "relax" and self.schedule == "sequential"
                and self.eta == 1.0 and not self.record)


def _check_time(time: Any, schedule: str) -> float | tuple | None:
    """`time` as a float or a tuple of increasing floats >= 0; required exactly in
    continuous time."""
    if schedule != "continuous":
        if time is not None:
            raise ValueError("time= is the time of the continuous flow; it needs "
                             "schedule='continuous' (the discrete schedules count steps "
                             "with max_iter).")
        return None
    if time is None:
        raise ValueError("schedule='continuous' needs time= (a time t >= 0, or increasing "
                         "times to record).")
    times = np.atleast_1d(np.asarray(time, dtype=np.float64))
    if times.ndim != 1 or not times.size or not np.all(np.isfinite(times)) \
            or np.any(times < 0) or np.any(np.diff(times) <= 0):
        raise ValueError(f"time must be a finite t >= 0 or increasing such times, got {time!r}")
    return float(times[0]) if np.ndim(time) == 0 else tuple(float(t) for t in times)


def _check_units(units: Any) -> str | tuple:
    """`units` as one of `UNIT_CHOICES` or a tuple of node references."""
    if isinstance(units, str):
        if units not in UNIT_CHOICES:
            raise ValueError(f"units must be one of {UNIT_CHOICES} or a list of nodes (traced "
                             f"values, nodes, indices or names), got {units!r}")
        return units
    if isinstance(units, (list, tuple, set, frozenset)):
        return tuple(units)
    raise TypeError(f"units must be one of {UNIT_CHOICES} or a list of nodes, got "
                    f"{type(units).__name__}")


def _check_method(method: Any) -> None:
    if method not in METHODS:
        raise ValueError(f"Unknown method {method!r}; available: {sorted(METHODS)}")
