"""The convexity / convergence checker: what the relaxation's matrix really guarantees.

Appendix A of the paper argues that the relaxation energy is convex because its
"Hessian" H (eqs. 17-19) is upper triangular with a unit diagonal, so all its
eigenvalues are 1.  The first half is true and this module measures it on the
assembled matrix: in topological order `H = I - N` with `N` strictly upper
triangular, so every eigenvalue is exactly 1 and `N` is nilpotent (`N^D = 0`,
`D` the depth).  The conclusion is not: a matrix with positive eigenvalues is
positive definite only if it is symmetric, and `H` is not (it is not the Hessian
of any scalar function at all).  Its symmetric part `(H + Hᵀ)/2` can have
negative eigenvalues, i.e. the quadratic form `xᵀHx` is indefinite.

What does guarantee convergence is the *spectrum of the linear dynamics*
`dx/dt = b - Hx`: all eigenvalues of `-H` are -1, so the continuous-time
relaxation converges from any start, and Euler steps of size η converge exactly
when the iteration matrix's eigenvalues `1 - η` lie inside the unit circle,
0 < η < 2.  An indefinite symmetric part only means the distance to the fixed
point need not shrink monotonically (transient growth).

Iteration counts, transient growth and the rounding floor are predicted from the
nilpotent structure by `ardiff.solvers.theory` (re-exported here: `error_bound`,
`predict_iterations`, `transient_growth`, `rounding_floor`, `stability`).

The default report describes the default gradient (`ardiff.grad`: sequential
schedule, eta = 1); pass `schedule=` and `eta=` to judge other settings.
"""

from __future__ import annotations

import math
import textwrap
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from .graph import Graph, unwrap
from .interchange import describe_cycle, find_cycle, from_networkx
from .recorder import trace
from .solvers import ConvergenceWarning, compile_plan, relative_error, run_relaxation
from .solvers.options import PRESETS, REACH, SCHEDULES, SolverOptions
from .solvers.theory import (
    MAX_PREDICTED,
    REACH_FRACTION,
    error_bound,
    predict_iterations,
    reach_depth,
    remaining_fractions,
    rounding_floor,
    stability,
    transient_growth,
)
from .solvers.triangular import assemble, is_networkx_graph, run_triangular
from .solvers.units import UnitPlan, unit_plan

__all__ = ["check_convexity", "ConvexityReport", "unit_matrix", "error_bound", "predict_iterations",
           "transient_growth", "rounding_floor", "stability", "MAX_PREDICTED",
           "remaining_fractions", "reach_depth", "REACH_FRACTION",
           "SYMMETRIC_LIMIT", "NEGATIVE_SYMMETRIC_NOTE"]

#: Largest system whose symmetric part is diagonalised (dense eigvalsh, O(N^3)).
SYMMETRIC_LIMIT = 2000

NEGATIVE_SYMMETRIC_NOTE = (
    "A negative smallest eigenvalue of (H + H^T)/2 means the energy's quadratic form "
    "x^T H x is indefinite: H is not symmetric, so it is not the Hessian of any scalar "
    "energy, and the energy is not convex in the usual sense. The relaxation still "
    "converges, because what governs the linear dynamics dx/dt = b - Hx is the spectrum "
    "of H (all eigenvalues exactly 1), not its symmetric part; the distance to the fixed "
    "point may grow for a while before it shrinks.")


# -- the report ---------------------------------------------------------------------------
@dataclass
class ConvexityReport:
    """What the checker measured; `str(report)` explains it, `to_dict()` is JSON-ready.

    Attributes are None where a check could not run (e.g. everything after `is_dag`
    for a cyclic graph, the symmetric part beyond the size limit, measurement for an
    unstable `eta`).

    The reach of the step budget: `steps` is T (the given `max_iter`, else
    `predicted_iterations`); `remaining_fraction[k - 1]` is `error_bound(T, k, eta,
    schedule)`, the fraction of its initial error a unit at distance k = 1 .. D from
    the output still holds after T steps (`remaining_fractions`: from zeros on chains
    and layered graphs exactly its relative error; from the forward values the weight
    of the propagated initial errors, docs/theory.md); `reach_depth` is the largest
    distance whose fraction is at most `REACH_FRACTION` (0.05; None: unlimited).
    """

    is_dag: bool
    cycle: list | None = None
    output: str | None = None
    relaxing_nodes: int | None = None
    units: str | None = None
    folded_nodes: int | None = None
    clamped_nodes: int | None = None
    size: int | None = None
    nnz: int | None = None
    unit_diagonal: bool | None = None
    strictly_upper_triangular: bool | None = None
    eigenvalues_all_one: bool | None = None
    depth: int | None = None
    nilpotency_index: int | None = None
    eta: float | None = None
    schedule: str | None = None
    tol: float | None = None
    init: str | None = None
    stable: bool | None = None
    stability_reason: str | None = None
    spectral_radius: float | None = None
    transient_growth: float | None = None
    rounding_floor: float | None = None
    predicted_iterations: int | None = None
    steps: int | None = None
    remaining_fraction: list | None = None
    reach_depth: int | None = None
    measured_iterations: int | None = None
    measured_converged: bool | None = None
    measured_error: float | None = None
    min_symmetric_eigenvalue: float | None = None
    symmetric_note: str | None = None
    notes: list = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when the relaxation provably converges to the gradients with these settings."""
        structure = bool(self.is_dag and self.unit_diagonal and self.strictly_upper_triangular)
        if self.measured_converged is not None:
            reached = self.measured_converged
        else:  # not measured: trust the prediction unless rounding may stall it above tol
            reached = self.rounding_floor is None or self.rounding_floor <= (self.tol or 0.0)
        return structure and bool(self.stable) and reached

    def to_dict(self) -> dict:
        """Plain, JSON-serialisable data (includes `ok`)."""
        data = asdict(self)
        data["cycle"] = None if self.cycle is None else [_plain(n) for n in self.cycle]
        data["ok"] = self.ok
        return {k: _plain(v) for k, v in data.items()}

    def __str__(self) -> str:
        if not self.is_dag:
            return "\n".join([
                "Convergence report",
                f"  graph is a DAG                               no: cycle "
                f"{describe_cycle(self.cycle)}",
                "  verdict: NOT OK",
                _wrap("A cyclic graph has no topological order, so there is no triangular "
                      "system and no relaxation to run; unroll the recurrence over its time "
                      "steps so that every step is a new node.")])
        yes = {True: "yes", False: "NO", None: "n/a"}
        lines = [f"Convergence report for the relaxation of {self.output}"]

        def row(label, value):
            text = textwrap.fill(str(value), width=88, initial_indent=" " * 47,
                                 subsequent_indent=" " * 47)
            lines.append(f"  {label:<44} {text[47:]}")

        row("graph is a DAG (a tape: parents come first)", yes[self.is_dag])
        if self.units not in (None, "ops"):
            row("units", self.units)
        row("relaxing nodes", self.relaxing_nodes)
        if self.units not in (None, "ops"):
            row("folded into edges / clamped from the seed",
                f"{self.folded_nodes} / {self.clamped_nodes}")
        row("system size N (flattened activities)", self.size)
        row("non-zeros of H = I - N (eqs. 17-19)", self.nnz)
        row("diagonal of H all exactly 1", yes[self.unit_diagonal])
        row("N strictly upper triangular (topological)", yes[self.strictly_upper_triangular])
        row("=> every eigenvalue of H is exactly 1", yes[self.eigenvalues_all_one])
        row("depth D (longest path, N^D = 0)", self.depth)
        row("nilpotency index of N's sparsity pattern", self.nilpotency_index)
        row("Euler step eta, schedule", f"{self.eta:g}, {self.schedule}")
        row("stable (0 < eta < 2)", f"{yes[self.stable]}: {self.stability_reason}")
        if self.transient_growth is not None and self.transient_growth > 1.0:
            row("transient growth of the error bound", f"up to {self.transient_growth:.3g}x")
        if self.rounding_floor is not None and self.stable:
            row("rounding floor (worst case, relative)", f"{self.rounding_floor:.2g}")
        if self.remaining_fraction and self.steps != self.predicted_iterations:
            row(f"remaining fraction after T={self.steps} steps",
                f"{self.remaining_fraction[-1]:.3g} at the deepest unit (D = {self.depth}); "
                f"{_fraction_list(self.remaining_fraction)}")
            reach = "unlimited" if self.reach_depth is None else self.reach_depth
            row(f"reach (deepest unit <= {REACH_FRACTION:g})",
                f"{reach}" + (" (D is beyond it)" if self.reach_depth is not None
                              and self.depth > self.reach_depth else ""))
        pred = "n/a (unstable)" if self.predicted_iterations is None else \
            str(self.predicted_iterations) + " (exact arithmetic)"
        row(f"predicted iterations to tol={self.tol:g}", pred)
        if self.measured_iterations is None:
            meas = "not run" + (" (relax refuses eta outside (0, 2))" if not self.stable else "")
        else:
            conv = "converged" if self.measured_converged else "NOT converged"
            meas = f"{self.measured_iterations} ({conv}, init={self.init}, max relative " \
                   f"error vs exact solve {self.measured_error:.2g})"
        row("measured iterations (relax)", meas)
        sym = (f"{self.min_symmetric_eigenvalue:.4g}" if self.min_symmetric_eigenvalue is not None
               else f"not computed ({self.symmetric_note})")
        row("smallest eigenvalue of (H + H^T)/2", sym)
        lines.append(f"  verdict: {'OK' if self.ok else 'NOT OK'}")
        for note in self.notes:
            lines.append(_wrap(note))
        return "\n".join(lines)


def _fraction_list(fractions: list, head: int = 4) -> str:
    """`k=1: 1e-05, k=2: ...` for the first few distances and the last."""
    shown = list(enumerate(fractions, start=1))
    if len(shown) > head + 1:
        shown = shown[:head] + [shown[-1]]
    return ", ".join(f"k={k}: {f:.2g}" for k, f in shown)


def _wrap(text: str, width: int = 88, indent: str = "  ") -> str:
    return textwrap.fill(text, width=width, initial_indent=indent + "- ",
                         subsequent_indent=indent + "  ")


def _plain(value: Any) -> Any:
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, (np.bool_,)):
        return bool(value)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


# -- the checker --------------------------------------------------------------------------
def _nilpotency_index(N) -> int:
    """1 + the longest path (in edges) through N's non-zeros: the least k with N^k = 0."""
    size = N.shape[0]
    if size == 0 or N.nnz == 0:
        return 1 if size else 0
    longest = np.ones(size, dtype=np.int64)
    indptr, indices = N.indptr, N.indices
    # strictly upper triangular: every column index is larger than its row, so a
    # reverse sweep over rows sees each row's successors finished
    for r in range(size - 1, -1, -1):
        cols = indices[indptr[r]:indptr[r + 1]]
        if cols.size:
            longest[r] = 1 + longest[cols].max()
    return int(longest.max())


def _resolve(target: Any, args: tuple, output: Any, wrt: Any):
    if is_networkx_graph(target):
        cycle = find_cycle(target)
        if cycle is not None:
            return None, None, None, cycle
        if len(args) > 1:
            raise TypeError("check_convexity(G, output): too many positional arguments.")
        graph = from_networkx(target, output=args[0] if args else output)
        return graph, None, wrt, None
    if isinstance(target, Graph):
        if len(args) > 2:
            raise TypeError("check_convexity(graph, output, wrt): too many positional arguments.")
        if args:
            output = args[0]
        if len(args) > 1:
            wrt = args[1]
        return target, output, wrt, None
    if callable(target):
        graph = trace(target, *args)
        return graph, output, wrt, None
    raise TypeError(f"check_convexity expects a Graph, a networkx.DiGraph or a function, got "
                    f"{type(target).__name__}.")


def check_convexity(target: Graph | Callable | Any, *args: Any, output: Any = None,
                    wrt: Any = None, eta: float | None = None, schedule: str | None = None,
                    tol: float = 1e-10, seed: Any = None, init: str | None = None,
                    measure: bool = True, symmetric_limit: int | None = None,
                    max_nnz: int | None = None, units: Any = None,
                    max_iter: int | str | None = None,
                    preset: str | None = None) -> ConvexityReport:
    """Measure the structure, spectrum and convergence of the relaxation on a graph.

    Call as `check_convexity(graph, output, wrt=None, ...)`,
    `check_convexity(networkx_digraph, output=None, ...)` or
    `check_convexity(fun, *args, ...)` (traced like [`ardiff.trace`][ardiff.trace]).

    Parameters
    ----------
    target : Graph, networkx.DiGraph or callable
        What to check.  A DiGraph with a cycle gives a report with `is_dag=False` and
        the cycle listed (nothing else can be checked).
    *args
        `output` (and `wrt`) for a graph, `output` for a DiGraph, the function's
        arguments for a callable.
    output, wrt
        As for [`ardiff.relax`][ardiff.relax] (defaults: the graph's output and inputs).
    eta : float, optional
        Euler step to judge (any real number: outside (0, 2) the report says why the
        relaxation diverges); default 1, or the preset's.
    schedule : str, optional
        Schedule to predict and measure, `"sequential"` or `"parallel"`; by default
        `"sequential"` (or the preset's), that of [`ardiff.grad`][ardiff.grad], so the
        default report describes the default gradient.
    tol : float
        Target relative residual for the predicted and measured iteration counts.
    seed : array_like, optional
        Output seed for the measurement; default ones (the structure does not depend
        on it).
    init : str, optional
        Initial activities of the measured relaxation, `"zeros"` (by default, or the
        preset's) or `"forward"`.  The predicted
        fractions are weights of the initial errors, for either start.
    measure : bool
        Run `ardiff.relax` for the measured iteration count (stable eta only).
    symmetric_limit : int, optional
        Largest N for the dense eigenvalues of (H + Hᵀ)/2 (default 2000).
    max_nnz : int, optional
        Size guard of the assembly (see [`ardiff.solve_triangular`][ardiff.solve_triangular]).
    units : str or sequence, optional
        The relaxation's units, `"ops"`, `"layers"` or a list of nodes (as for
        [`ardiff.relax`][ardiff.relax]).  With units other than `"ops"` the report
        describes the unit-level system: `N` between units (the op-level matrix with
        the folded nodes eliminated, `N_UU + N_UF (I - N_FF)^-1 N_FU`), its depth D,
        the predictions for D, and a measurement with those units.  By default
        `"ops"`, or the preset's.
    max_iter : int or "reach", optional
        The step budget T whose reach is reported (`remaining_fraction`, `reach_depth`)
        and with which the relaxation is measured; `"reach"` (or None): the predicted
        iterations for `tol`.
    preset : str, optional
        A key of `ardiff.solvers.PRESETS` (`"paper"`): fills `eta`, `schedule`, `init`,
        `units` and `max_iter` where they are not given (explicit arguments win; `tol`
        stays this function's).

    Returns
    -------
    ConvexityReport
        `.ok`, a readable `str()`, and `.to_dict()`.
    """
    given = dict(eta=eta, schedule=schedule, init=init, units=units, max_iter=max_iter)
    if preset is not None:
        if preset not in PRESETS:
            raise ValueError(f"Unknown preset {preset!r}; available: {sorted(PRESETS)}")
        given = {k: PRESETS[preset].get(k) if v is None else v for k, v in given.items()}
    defaults = dict(eta=1.0, schedule="sequential", init="zeros", units="ops")
    eta, schedule, init, units, max_iter = (
        defaults.get(k) if v is None else v for k, v in given.items())
    eta = float(eta)
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be 'parallel' or 'sequential', got {schedule!r}")
    graph, output, wrt, cycle = _resolve(target, args, output, wrt)
    if cycle is not None:
        return ConvexityReport(is_dag=False, cycle=cycle, eta=eta, schedule=schedule, tol=tol)
    plan = compile_plan(graph, output, wrt)
    out_value = unwrap(graph.nodes[plan.output].value)
    if seed is None:
        seed = np.ones(np.shape(out_value), dtype=np.result_type(out_value))
    system = assemble(plan, seed, max_nnz)
    relaxed = unit_plan(plan, units)  # the op-level plan itself for units="ops"
    N = system.N if relaxed is plan else unit_matrix(system, relaxed)
    H = (sp.identity(N.shape[0], format="csr") - N).tocsr()
    coo = N.tocoo()
    depth = relaxed.max_depth
    stable, reason = stability(eta, depth)
    report = ConvexityReport(
        is_dag=True,  # a Graph is a tape: every node's parents come before it
        output=graph.nodes[plan.output].label(),
        relaxing_nodes=len(relaxed.relaxing), size=N.shape[0], nnz=int(H.nnz),
        units=units if isinstance(units, str) else f"{len(relaxed.relaxing)} listed nodes",
        folded_nodes=len(getattr(relaxed, "folded", ())),
        clamped_nodes=len(getattr(relaxed, "clamped", ())),
        unit_diagonal=bool(np.all(H.diagonal() == 1.0)),
        strictly_upper_triangular=bool(np.all(coo.col > coo.row)),
        depth=depth, nilpotency_index=_nilpotency_index(N),
        eta=eta, schedule=schedule, tol=tol, init=init, stable=stable,
        stability_reason=reason, spectral_radius=abs(1.0 - eta),
        predicted_iterations=predict_iterations(depth, eta, schedule, tol))
    # a triangular matrix's eigenvalues are its diagonal entries: exact, no eigensolver
    report.eigenvalues_all_one = report.unit_diagonal and report.strictly_upper_triangular
    if stable and eta > 1.0:
        report.transient_growth = transient_growth(depth, eta, schedule,
                                                   report.predicted_iterations)
    if stable:
        dtypes = [np.result_type(unwrap(graph.nodes[i].value)) for i in relaxed.relaxing]
        worst = max(dtypes, key=lambda d: np.finfo(d).eps if d.kind == "f" else 0.0,
                    default=np.dtype(np.float64))
        report.rounding_floor = rounding_floor(
            depth, eta, worst if worst.kind == "f" else np.float64)
    fixed = None if max_iter in (None, REACH) else int(max_iter)
    if stable and schedule != "continuous":
        report.steps = fixed if fixed is not None else report.predicted_iterations
    if report.steps is not None:
        report.remaining_fraction = [float(f) for f in remaining_fractions(
            report.steps, depth, eta, schedule)]
        report.reach_depth = reach_depth(report.steps, eta, schedule)
    if stable and measure and system.size:
        exact = run_triangular(plan, seed)
        with warnings.catch_warnings():
            # the report states both (remaining_fraction, measured_converged)
            warnings.simplefilter("ignore", ConvergenceWarning)
            measured = run_relaxation(plan, seed, SolverOptions(
                eta=eta, schedule=schedule, init=init, tol=tol, units=units, max_iter=fixed))
        report.measured_iterations = measured.iterations
        report.measured_converged = bool(measured.converged)
        report.measured_error = max(
            (relative_error(a, b) for a, b in zip(measured.grads, exact.grads)), default=0.0)
    limit = SYMMETRIC_LIMIT if symmetric_limit is None else symmetric_limit
    if report.size == 0:
        report.symmetric_note = "no relaxing nodes"
    elif report.size <= limit:
        S = H.toarray()
        if np.all(np.isfinite(S)):
            report.min_symmetric_eigenvalue = float(np.linalg.eigvalsh((S + S.T) / 2.0)[0])
        else:  # an infinite local derivative (sqrt at 0, ...): no eigenvalues to compute
            report.symmetric_note = "H has non-finite entries"
    else:
        report.symmetric_note = f"N = {report.size} > symmetric_limit = {limit}"
    report.notes = _notes(report)
    return report


def unit_matrix(system: Any, plan: UnitPlan) -> sp.csr_matrix:
    """N between the units of `plan`, from the op-level system's N.

    With the op-level activities split into units U, folded nodes F and clamped nodes
    C, the folded values are z_F = N_FU x_U + N_FF z_F + (terms in C and the seed), so
    z_F = (I - N_FF)^-1 N_FU x_U + ... and the units see N_UU + N_UF (I - N_FF)^-1 N_FU.
    N_FF is nilpotent: the inverse is the finite sum of its powers (all sparse).

    Parameters
    ----------
    system : TriangularSystem
        `assemble` of the op-level plan (`plan.op_plan`).
    plan : UnitPlan

    Returns
    -------
    scipy.sparse.csr_matrix
        Rows and columns in the order of `plan.relaxing`, each unit's entries flattened.
    """
    position = {i: k for k, i in enumerate(system.nodes)}

    def rows(nodes):
        return np.concatenate([np.arange(system.offsets[position[i]],
                                         system.offsets[position[i] + 1]) for i in nodes]
                              + [np.zeros(0, dtype=np.int64)])

    U, F = rows(plan.relaxing), rows(plan.folded)
    N = system.N.tocsr()
    n_uu = N[U][:, U]
    if not F.size:
        return n_uu.tocsr()
    n_ff, n_fu, n_uf = N[F][:, F], N[F][:, U], N[U][:, F]
    power, total = n_fu, n_fu
    for _ in range(len(plan.folded)):  # nilpotent: at most one power per folded node
        power = n_ff @ power
        power.eliminate_zeros()
        if power.nnz == 0:
            break
        total = total + power
    out = (n_uu + n_uf @ total).tocsr()
    out.eliminate_zeros()
    return out


def _notes(r: ConvexityReport) -> list:
    notes = []
    if r.nilpotency_index is not None and r.depth and r.nilpotency_index < r.depth:
        notes.append(f"N's sparsity pattern has nilpotency index {r.nilpotency_index} < D = "
                     f"{r.depth}: some local derivatives are exactly zero here (e.g. ReLU units "
                     "that are off), so fewer steps can suffice than D predicts.")
    if r.min_symmetric_eigenvalue is not None and r.min_symmetric_eigenvalue < 0:
        notes.append(NEGATIVE_SYMMETRIC_NOTE)
    elif r.min_symmetric_eigenvalue is not None:
        notes.append("The symmetric part of H is positive definite here, so ||x - x*|| also "
                     "shrinks monotonically in continuous time; this is a property of this "
                     "graph, not a general guarantee.")
    if r.stable and r.rounding_floor is not None and r.rounding_floor > r.tol:
        notes.append(f"Rounding may stall the relaxation above tol: a node can flip between "
                     f"two neighbouring floats (its factor 1 - eta = {1 - r.eta:g} is "
                     f"negative), and each level amplifies that by eta/(2 - eta) = "
                     f"{r.eta / (2 - r.eta):.3g}, up to about {r.rounding_floor:.2g} relative "
                     "error after D levels. Use eta <= 1 on deep graphs.")
    if r.stable:
        notes.append("Prediction: smallest t with error bound <= tol for the deepest node "
                     "(parallel: P(Binomial(t, eta) < D) for eta <= 1; sequential: "
                     "P(Binomial(t + D - 1, eta) < D)); exact on a chain, starting from zero "
                     "activities; relax stops on the relative residual, which can differ by "
                     "a step or two.")
    return notes
