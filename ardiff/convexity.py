"""The convexity / convergence checker: what the relaxation's matrix really guarantees.

Appendix A of the paper argues that the relaxation energy is convex because its
"Hessian" H (eqs. 17-19) is upper triangular with a unit diagonal, so all its
eigenvalues are 1.  The first half is true and this module measures it on the
assembled matrix: in topological order ``H = I - N`` with ``N`` strictly upper
triangular, so every eigenvalue is exactly 1 and ``N`` is nilpotent (``N^D = 0``,
``D`` the depth).  The conclusion is not: a matrix with positive eigenvalues is
positive definite only if it is symmetric, and ``H`` is not (it is not the Hessian
of any scalar function at all).  Its symmetric part ``(H + Hᵀ)/2`` can have
negative eigenvalues, i.e. the quadratic form ``xᵀHx`` is indefinite.

What does guarantee convergence is the *spectrum of the linear dynamics*
``dx/dt = b - Hx``: all eigenvalues of ``-H`` are -1, so the continuous-time
relaxation converges from any start, and Euler steps of size η converge exactly
when the iteration matrix's eigenvalues ``1 - η`` lie inside the unit circle,
0 < η < 2.  An indefinite symmetric part only means the distance to the fixed
point need not shrink monotonically (transient growth).

Iteration counts are predicted from the nilpotent structure.  For the parallel
(Jacobi) schedule the error of a node at distance k after t steps is
Σ_{m<k} C(t, m) η^m (1-η)^(t-m) times its gradient, which for η <= 1 is the
binomial tail P(Binomial(t, η) < k); for the sequential (top-down Gauss–Seidel)
schedule it is (1-η)^t Σ_{m<k} C(t+m-1, m) η^m = P(Binomial(t+k-1, η) < k).
Both are exact on a chain; on a general DAG a node's gradient is a sum over
paths of different lengths, and the same expression with k = D bounds the error
relative to the sum of the paths' magnitudes.

Floating point adds a floor for 1 < η < 2 (measured): rounding can leave a node
flipping between two neighbouring floats (its own factor 1 - η is negative), and
each level of the graph amplifies such a period-2 oscillation by η / (2 - η) in
relative terms, so up to about eps · (η / (2 - η))^D relative error can persist
forever (0.26 % on a chain of depth 29 at η = 1.5).  For η <= 1 the factor is at
most 1 and the floor is the rounding error itself.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from scipy.special import gammaln

from .graph import Graph, unwrap

#: Largest system whose symmetric part is diagonalised (dense eigvalsh, O(N^3)).
SYMMETRIC_LIMIT = 2000
#: Step budget searched by :func:`predict_iterations`.
MAX_PREDICTED = 10_000_000

NEGATIVE_SYMMETRIC_NOTE = (
    "A negative smallest eigenvalue of (H + H^T)/2 means the energy's quadratic form "
    "x^T H x is indefinite: H is not symmetric, so it is not the Hessian of any scalar "
    "energy, and the energy is not convex in the usual sense. The relaxation still "
    "converges, because what governs the linear dynamics dx/dt = b - Hx is the spectrum "
    "of H (all eigenvalues exactly 1), not its symmetric part; the distance to the fixed "
    "point may grow for a while before it shrinks.")


# -- predictions --------------------------------------------------------------------------
def _log_sum(log_terms: np.ndarray) -> np.ndarray:
    """log Σ exp over the last axis, -inf for empty sums."""
    if log_terms.shape[-1] == 0:
        return np.full(log_terms.shape[:-1], -np.inf)
    top = np.max(log_terms, axis=-1)
    safe = np.where(np.isfinite(top), top, 0.0)
    with np.errstate(divide="ignore"):
        return safe + np.log(np.sum(np.exp(log_terms - safe[..., None]), axis=-1))


def error_bound(t: Any, depth: int, eta: float, schedule: str = "parallel") -> np.ndarray:
    """Relative error after ``t`` steps of a node at distance ``depth`` (start from zero).

    Parameters
    ----------
    t : int or array of int
        Steps (parallel) or sweeps (sequential) taken.
    depth : int
        The node's distance from the output in relaxing nodes (use D for the worst node).
    eta : float
        Euler step.
    schedule : {"parallel", "sequential"}

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
    if schedule not in ("parallel", "sequential"):
        raise ValueError(f"schedule must be 'parallel' or 'sequential', got {schedule!r}")
    if 0.0 < eta <= 1.0:
        trials = t if schedule == "parallel" else t + depth - 1
        from scipy.stats import binom  # imported here: scipy.stats takes 0.6 s to import

        return np.where(t > 0, binom.cdf(depth - 1, trials, eta), 1.0)
    m = np.arange(depth)
    tt = t[..., None].astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_eta, log_rest = math.log(eta), math.log(abs(1.0 - eta)) if eta != 1.0 else -np.inf
        if schedule == "parallel":
            valid = m <= tt
            log_c = gammaln(tt + 1) - gammaln(m + 1) - gammaln(np.maximum(tt - m, 0) + 1)
            terms = np.where(valid, log_c + m * log_eta + (tt - m) * log_rest, -np.inf)
            result = np.exp(_log_sum(terms))
        else:
            log_c = gammaln(tt + m) - gammaln(m + 1) - gammaln(np.maximum(tt, 1))
            terms = log_c + m * log_eta
            result = np.exp(t * log_rest + _log_sum(terms))
    return np.where(t > 0, result, 1.0)


def predict_iterations(depth: int, eta: float, schedule: str = "parallel",
                       tol: float = 1e-10) -> int | None:
    """Smallest number of steps after which :func:`error_bound` is at most ``tol``.

    Returns None when the Euler step is unstable (η outside (0, 2)) or ``tol`` is not
    positive.  At η = 1 this is D steps (parallel) or one sweep (sequential).
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


def transient_growth(depth: int, eta: float, schedule: str = "parallel",
                     steps: int | None = None) -> float:
    """Largest value of :func:`error_bound` over the first ``steps`` steps (>= 1).

    Above 1 for 1 < η < 2 on deep graphs: the non-normal iteration matrix amplifies
    the error before the factor |1-η|^t wins.
    """
    if steps is None:
        steps = predict_iterations(depth, eta, schedule, 1e-16) or 1000
    return float(np.max(error_bound(np.arange(steps + 1), depth, eta, schedule)))


def rounding_floor(depth: int, eta: float, dtype: Any = np.float64) -> float:
    """Worst-case relative error that rounding can sustain (see the module docstring).

    ``eps/2 · max(1, η/(2-η))^D``: a period-2 oscillation of one unit in the last
    place, amplified by η/(2-η) per level.  Whether it arises depends on how the
    roundings fall; when it does, relaxation stalls at about this level.
    """
    if not 0.0 < eta < 2.0:
        return math.inf
    gain = max(1.0, eta / (2.0 - eta))
    eps = float(np.finfo(dtype).eps) / 2.0
    with np.errstate(over="ignore"):
        return float(min(eps * gain ** max(depth, 0), math.inf))


def stability(eta: float, depth: int) -> tuple[bool, str]:
    """Whether Euler steps of size ``eta`` converge, and why (both schedules)."""
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


# -- the report ---------------------------------------------------------------------------
@dataclass
class ConvexityReport:
    """What the checker measured; ``str(report)`` explains it, ``to_dict()`` is JSON-ready.

    Attributes are None where a check could not run (e.g. everything after ``is_dag``
    for a cyclic graph, the symmetric part beyond the size limit, measurement for an
    unstable ``eta``).
    """

    is_dag: bool
    cycle: list | None = None
    output: str | None = None
    relaxing_nodes: int | None = None
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
        """Plain, JSON-serialisable data (includes ``ok``)."""
        data = asdict(self)
        data["cycle"] = None if self.cycle is None else [_plain(n) for n in self.cycle]
        data["ok"] = self.ok
        return {k: _plain(v) for k, v in data.items()}

    def __str__(self) -> str:
        if not self.is_dag:
            from .interchange import describe_cycle

            return "\n".join([
                "Convergence report",
                f"  graph is a DAG (networkx)                    no: cycle "
                f"{describe_cycle(self.cycle)}",
                "  verdict: NOT OK",
                _wrap("A cyclic graph has no topological order, so there is no triangular "
                      "system and no relaxation to run; unroll the recurrence over its time "
                      "steps so that every step is a new node.")])
        yes = {True: "yes", False: "NO", None: "n/a"}
        lines = [f"Convergence report for the relaxation of {self.output}"]

        def row(label, value):
            import textwrap

            text = textwrap.fill(str(value), width=88, initial_indent=" " * 47,
                                 subsequent_indent=" " * 47)
            lines.append(f"  {label:<44} {text[47:]}")

        row("graph is a DAG (networkx)", yes[self.is_dag])
        row("relaxing nodes", self.relaxing_nodes)
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


def _wrap(text: str, width: int = 88, indent: str = "  ") -> str:
    import textwrap

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
    import networkx as nx

    if isinstance(target, nx.DiGraph):
        from .interchange import find_cycle, from_networkx

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
        from .transforms import trace

        graph = trace(target, *args)
        return graph, output, wrt, None
    raise TypeError(f"check_convexity expects a Graph, a networkx.DiGraph or a function, got "
                    f"{type(target).__name__}.")


def _relative_gap(a_list, b_list) -> float:
    worst = 0.0
    for a, b in zip(a_list, b_list):
        a, b = np.asarray(unwrap(a), dtype=np.float64), np.asarray(unwrap(b), dtype=np.float64)
        scale = float(np.max(np.abs(b), initial=0.0))
        gap = float(np.max(np.abs(a - b), initial=0.0))
        worst = max(worst, gap / scale if scale > 0 else gap)
    return worst


def check_convexity(target: Graph | Callable | Any, *args: Any, output: Any = None,
                    wrt: Any = None, eta: float | None = None, schedule: str = "parallel",
                    tol: float = 1e-10, seed: Any = None, init: str = "zeros",
                    measure: bool = True, symmetric_limit: int | None = None,
                    max_nnz: int | None = None) -> ConvexityReport:
    """Measure the structure, spectrum and convergence of the relaxation on a graph.

    Call as ``check_convexity(graph, output, wrt=None, ...)``,
    ``check_convexity(networkx_digraph, output=None, ...)`` or
    ``check_convexity(fun, *args, ...)`` (traced like :func:`ardiff.trace`).

    Parameters
    ----------
    target : Graph, networkx.DiGraph or callable
        What to check.  A DiGraph with a cycle gives a report with ``is_dag=False`` and
        the cycle listed (nothing else can be checked).
    *args
        ``output`` (and ``wrt``) for a graph, ``output`` for a DiGraph, the function's
        arguments for a callable.
    output, wrt
        As for :func:`ardiff.relax` (defaults: the graph's output and inputs).
    eta : float, optional
        Euler step to judge (default 1.0).
    schedule : {"parallel", "sequential"}
        Schedule to predict and measure.
    tol : float
        Target relative residual for the predicted and measured iteration counts.
    seed : array_like, optional
        Output seed for the measurement; default ones (the structure does not depend
        on it).
    init : {"zeros", "forward"}
        Initial activities of the measured relaxation (predictions assume zeros).
    measure : bool
        Run :func:`ardiff.relax` for the measured iteration count (stable eta only).
    symmetric_limit : int, optional
        Largest N for the dense eigenvalues of (H + Hᵀ)/2 (default 2000).
    max_nnz : int, optional
        Size guard of the assembly (see :func:`ardiff.solve_triangular`).

    Returns
    -------
    ConvexityReport
        ``.ok``, a readable ``str()``, and ``.to_dict()``.
    """
    import networkx as nx

    from .solvers.plan import compile_plan
    from .solvers.relax import ConvergenceWarning, run_relaxation
    from .solvers.triangular import assemble, run_triangular

    eta = 1.0 if eta is None else float(eta)
    if schedule not in ("parallel", "sequential"):
        raise ValueError(f"schedule must be 'parallel' or 'sequential', got {schedule!r}")
    graph, output, wrt, cycle = _resolve(target, args, output, wrt)
    if cycle is not None:
        return ConvexityReport(is_dag=False, cycle=cycle, eta=eta, schedule=schedule, tol=tol)
    plan = compile_plan(graph, output, wrt)
    out_value = unwrap(graph.nodes[plan.output].value)
    if seed is None:
        seed = np.ones(np.shape(out_value), dtype=np.result_type(out_value))
    dag = nx.DiGraph()
    dag.add_nodes_from(plan.edges)
    dag.add_edges_from((i, c) for i, kids in plan.edges.items() for c, _ in kids)
    system = assemble(plan, seed, max_nnz)
    H = system.H
    coo = system.N.tocoo()
    depth = plan.max_depth
    stable, reason = stability(eta, depth)
    report = ConvexityReport(
        is_dag=bool(nx.is_directed_acyclic_graph(dag)),
        output=graph.nodes[plan.output].label(),
        relaxing_nodes=len(plan.relaxing), size=system.size, nnz=int(H.nnz),
        unit_diagonal=bool(np.all(H.diagonal() == 1.0)),
        strictly_upper_triangular=bool(np.all(coo.col > coo.row)),
        depth=depth, nilpotency_index=_nilpotency_index(system.N),
        eta=eta, schedule=schedule, tol=tol, init=init, stable=stable,
        stability_reason=reason, spectral_radius=abs(1.0 - eta),
        predicted_iterations=predict_iterations(depth, eta, schedule, tol))
    # a triangular matrix's eigenvalues are its diagonal entries: exact, no eigensolver
    report.eigenvalues_all_one = report.unit_diagonal and report.strictly_upper_triangular
    if stable and eta > 1.0:
        report.transient_growth = transient_growth(depth, eta, schedule,
                                                   report.predicted_iterations)
    if stable:
        dtypes = [np.result_type(unwrap(graph.nodes[i].value)) for i in plan.relaxing]
        worst = max(dtypes, key=lambda d: np.finfo(d).eps if d.kind == "f" else 0.0,
                    default=np.dtype(np.float64))
        report.rounding_floor = rounding_floor(
            depth, eta, worst if worst.kind == "f" else np.float64)
    if stable and measure and system.size:
        exact = run_triangular(plan, seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            relaxed = run_relaxation(plan, seed, eta=eta, schedule=schedule, init=init, tol=tol)
        report.measured_iterations = relaxed.iterations
        report.measured_converged = bool(relaxed.converged)
        report.measured_error = _relative_gap(relaxed.grads, exact.grads)
    limit = SYMMETRIC_LIMIT if symmetric_limit is None else symmetric_limit
    if system.size == 0:
        report.symmetric_note = "no relaxing nodes"
    elif system.size <= limit:
        S = H.toarray()
        report.min_symmetric_eigenvalue = float(np.linalg.eigvalsh((S + S.T) / 2.0)[0])
    else:
        report.symmetric_note = f"N = {system.size} > symmetric_limit = {limit}"
    report.notes = _notes(report)
    return report


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
