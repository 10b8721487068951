"""The exact sparse triangular solver for the relaxation's fixed point.

At equilibrium every relaxing node satisfies x_i = Σ_j J_jiᵀ x_j (the chain rule),
with the output clamped to the seed.  Stacking the relaxing nodes' activities,
flattened, in topological order gives the linear system

    (I - N) x = b,     N[i, j] = J_jiᵀ for every edge i -> j between relaxing nodes,
                       b_i = Σ_{edges i -> output} J_oiᵀ seed.

Children come after their parents in topological order, so N is strictly upper
triangular and `I - N` (the matrix the paper calls the Hessian of the energy,
eqs. 17-19) is upper triangular with a unit diagonal.  This module assembles it
from the op table's sparse local Jacobians (`ardiff.ops.jacobians`) and
solves it with `scipy.sparse.linalg.spsolve_triangular`.  The same
assembly feeds `ardiff.check_convexity`.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import spsolve_triangular

from ..graph import Graph, Node, TracerBase, unwrap
from ..interchange import from_networkx
from ..ops.jacobians import jacobian_from_vjp
from .common import finish, make_seed, relative_error, sweep
from .plan import Plan, compile_plan
from .real_form import SparseSystem, assemble_blocks, assemble_real_form, needs_real_form
from .result import Result

#: Default limit on the stored entries of `I - N`; change it here or per call.
MAX_NNZ = 20_000_000


class SystemTooLargeError(MemoryError):
    """The triangular system would store more entries than the configured limit."""


@dataclass
class TriangularSystem(SparseSystem):
    """The assembled fixed-point system `(I - N) x = b`.

    Attributes
    ----------
    N : scipy.sparse.csr_matrix
        Strictly upper-triangular coupling, `size x size`.
    b : numpy.ndarray
        Right-hand side (the seed pushed one step into the graph).
    nodes : list of int
        Relaxing node indices in topological order (the block order).
    offsets : numpy.ndarray
        `offsets[k]:offsets[k+1]` is the slice of `nodes[k]` in `x`.
    fallback_ops : list of str
        Ops whose Jacobian had to be built from VJPs of unit vectors (slow).
    vjp_evals : int
        VJP evaluations spent on the right-hand side and on fallback Jacobians.
    """

    def split(self, x: np.ndarray, plan: Plan) -> dict:
        """Cut a solution vector into per-node activities shaped and typed like the nodes.

        Parameters
        ----------
        x : numpy.ndarray
            The solution, `size` entries.
        plan : Plan
            The plan the system was assembled from.

        Returns
        -------
        dict
            Node index -> activity.
        """
        out = {}
        for k, i in enumerate(self.nodes):
            value = unwrap(plan.graph.nodes[i].value)
            block = x[self.offsets[k]:self.offsets[k + 1]]
            out[i] = block.reshape(np.shape(value)).astype(np.result_type(value), copy=False)
        return out


def is_networkx_graph(obj: Any) -> bool:
    """Whether `obj` is a `networkx.DiGraph`, without importing networkx.

    networkx costs about 0.2 s to import (measured) and `import ardiff` does not need
    it; if it has not been imported, `obj` cannot be one of its graphs.

    Parameters
    ----------
    obj : object
        Anything.

    Returns
    -------
    bool
    """
    nx = sys.modules.get("networkx")
    return nx is not None and isinstance(obj, nx.DiGraph)


def edge_jacobian(node: Node, argnum: int, vjp: Callable | None = None,
                  ) -> tuple[sp.csr_matrix, bool]:
    """Local Jacobian `∂node/∂args[argnum]` at the recorded point, and whether it was slow.

    Asks the op for its sparse Jacobian (`Op.jacobian`, from the family named in its
    `defop`); without one (or if the family declines) applies the edge's VJP to every
    unit vector of the output, one VJP per output element.

    Parameters
    ----------
    node : Node
        An op node of the graph.
    argnum : int
        Which argument of the op.
    vjp : callable, optional
        The edge's staged VJP, reused by the slow path.

    Returns
    -------
    tuple of (scipy.sparse.csr_matrix, bool)
        The Jacobian, shaped `(node size, argument size)`, and whether it was built
        from VJPs of unit vectors.
    """
    op = node.op
    args = tuple(unwrap(a) for a in node.args)
    ans = unwrap(node.value)
    J = op.jacobian(argnum, ans, args, node.kwargs)
    if J is not None:
        return sp.csr_matrix(J), False
    if vjp is None:
        vjp = op.local_vjp(argnum, ans, args, node.kwargs)
    return jacobian_from_vjp(vjp, np.shape(ans), np.shape(args[argnum])), True


def _edge_bound(node, argnum: int) -> int:
    args = tuple(unwrap(a) for a in node.args)
    return node.op.jacobian_nnz(argnum, unwrap(node.value), args, node.kwargs)


def _inner_edges(plan: Plan):
    """Every edge (parent, child, argnum) with both ends relaxing, in child order."""
    relaxing = set(plan.relaxing)
    nodes = plan.graph.nodes
    for k in plan.relaxing:
        for argnum, p in nodes[k].parents:
            if p in relaxing:
                yield p, k, argnum


def estimate_nnz(plan: Plan) -> int:
    """Upper bound on the stored entries of `I - N` without assembling it.

    Parameters
    ----------
    plan : Plan
        The compiled graph.

    Returns
    -------
    int
        The unit diagonal plus, per edge between relaxing nodes, the bound its op
        declares (`Op.jacobian_nnz`).
    """
    nodes = plan.graph.nodes
    total = sum(int(np.size(unwrap(nodes[i].value))) for i in plan.relaxing)
    return total + sum(_edge_bound(nodes[k], argnum) for _, k, argnum in _inner_edges(plan))


def _refuse_if_too_large(plan: Plan, max_nnz: int) -> None:
    nodes = plan.graph.nodes
    size = sum(int(np.size(unwrap(nodes[i].value))) for i in plan.relaxing)
    bound = estimate_nnz(plan)
    if bound > max_nnz:
        raise SystemTooLargeError(
            f"The triangular system for this graph has {size:,} unknowns and up to "
            f"{bound:,} stored non-zeros (about {bound * 16 / 2**20:.2g} MiB), over the limit "
            f"max_nnz={max_nnz:,}. Use method='backprop' (the same exact answer by one "
            "reverse sweep, no matrix) or relax(); or raise the limit with "
            "solve_triangular(..., max_nnz=...) or ardiff.solvers.triangular.MAX_NNZ.")


def assemble(plan: Plan, seed: Any, max_nnz: int | None = None) -> TriangularSystem:
    """Assemble `(I - N) x = b` for a compiled plan (float64).

    Parameters
    ----------
    plan : Plan
        From `ardiff.solvers.compile_plan` (without rules: the system is that of
        the exact chain rule).
    seed : array_like
        The clamped output activity (see `ardiff.solvers.common.make_seed`).
    max_nnz : int, optional
        Refuse (`SystemTooLargeError`) when the bound on stored entries exceeds
        it; default `MAX_NNZ`.
    """
    _refuse_if_too_large(plan, MAX_NNZ if max_nnz is None else max_nnz)
    if needs_real_form(plan, seed):  # complex values: real and imaginary parts as unknowns
        return assemble_real_form(plan, seed, _inner_edges, edge_jacobian)
    nodes = plan.graph.nodes
    order = list(plan.relaxing)
    position = {i: k for k, i in enumerate(order)}
    sizes = [int(np.size(unwrap(nodes[i].value))) for i in order]
    offsets = np.concatenate([[0], np.cumsum(sizes, dtype=np.int64)]).astype(np.int64)
    size = int(offsets[-1])
    rows, cols, data = [], [], []
    fallback, evals = [], 0
    staged = {(p, k): [] for p, k, _ in _inner_edges(plan)}
    for p in order:  # the plan's VJPs, only needed by the slow fallback
        for child, vjp in plan.edges[p]:
            if (p, child) in staged:
                staged[(p, child)].append(vjp)
    for p, k, argnum in _inner_edges(plan):
        vjps = staged[(p, k)]
        J, slow = edge_jacobian(nodes[k], argnum, vjps.pop(0) if vjps else None)
        if slow:
            fallback.append(nodes[k].op_name)
            evals += J.shape[0]
        J = J.tocoo()
        # N block (rows of parent p, columns of child k) is J_kpᵀ
        rows.append(J.col.astype(np.int64) + offsets[position[p]])
        cols.append(J.row.astype(np.int64) + offsets[position[k]])
        data.append(J.data.astype(np.float64, copy=False))
    N = assemble_blocks(rows, cols, data, size)
    b = np.zeros(size)
    for k, i in enumerate(order):
        for child, vjp in plan.edges[i]:
            if child == plan.output:
                b[offsets[k]:offsets[k + 1]] += np.ravel(unwrap(vjp(seed)))
                evals += 1
    return TriangularSystem(N, b, order, offsets, sorted(set(fallback)), evals)


def is_traced(plan: Plan, seed: Any) -> bool:
    """True when the seed or the plan's values are tracers of an outer graph.

    That is the case under higher-order differentiation (`hessian`, `grad(grad(f))`).

    Parameters
    ----------
    plan : Plan
        The compiled graph.
    seed : array_like
        The clamped output activity.

    Returns
    -------
    bool
    """
    if isinstance(seed, TracerBase):
        return True
    nodes = plan.graph.nodes
    return any(isinstance(nodes[i].value, TracerBase)
               or any(isinstance(a, TracerBase) for a in nodes[i].args)
               for i in plan.edges)


def run_triangular(plan: Plan, seed: Any = None, *, max_nnz: int | None = None) -> Result:
    """Solve a compiled plan's fixed point exactly (see `solve_triangular`).

    Parameters
    ----------
    plan : Plan
        From `compile_plan` (without rules).
    seed : array_like, optional
        dL/d(output); default 1 for a scalar output.
    max_nnz : int, optional
        Size guard of the assembly (default `MAX_NNZ`).

    Returns
    -------
    Result
        With `method="triangular"`, `iterations=1` and the solve's certificate as
        the only residual.
    """
    seed = make_seed(plan, seed)
    x = {plan.output: seed}
    if is_traced(plan, seed):
        # Sparse matrices cannot carry an outer trace.  Back substitution block by
        # block with the staged (traced) VJPs solves the same triangular system and
        # records it in the outer graph, so grad(grad(f)) stays correct.
        evals = sweep(plan, x)
        return finish(plan, x, seed, "triangular", vjp_evals=evals)
    system = assemble(plan, seed, max_nnz)
    H = system.H
    if system.size:
        x_flat = spsolve_triangular(H, system.b, lower=False, unit_diagonal=True)
        # a certificate of the solve, one sparse product
        residual = relative_error(H @ x_flat, system.b)
    else:
        x_flat, residual = np.zeros(0), 0.0
    x.update(system.split(np.asarray(x_flat, dtype=np.float64), plan))
    return finish(plan, x, seed, "triangular", vjp_evals=system.vjp_evals,
                  converged=math.isfinite(residual), residuals=[residual])


def solve_triangular(graph: Graph, output: Any = None, wrt: Sequence | None = None,
                     seed: Any = None, *, max_nnz: int | None = None) -> Result:
    """Exact gradients by assembling and solving the relaxation's fixed point.

    Parameters
    ----------
    graph : Graph or networkx.DiGraph
        The recorded graph (a DiGraph is imported with
        [`ardiff.from_networkx`][ardiff.from_networkx], which refuses a cycle and names it).
    output : traced value, optional
        The node whose gradient is propagated (default `graph.output`).
    wrt : sequence, optional
        Values, node indices or names to differentiate with respect to (default
        `graph.inputs`).
    seed : array_like, optional
        dL/d(output); default 1 for a scalar output.
    max_nnz : int, optional
        Refuse systems whose `I - N` could store more entries (default
        `MAX_NNZ`, 20 million), naming the size and the alternatives.

    Returns
    -------
    Result
        As for [`ardiff.relax`][ardiff.relax], with `method="triangular"`, `iterations=1` and
        `residuals=[‖Hx - b‖∞ / max(‖Hx‖∞, ‖b‖∞)]` (H = I - N) as a certificate.

    Raises
    ------
    SystemTooLargeError
        When the system would exceed `max_nnz`.

    Notes
    -----
    Ops declared without a sparse-Jacobian family (see `ardiff.ops.jacobians`) get
    their Jacobian from one VJP per output element, which is slow for large ops.  When the
    graph was recorded inside another trace (`hessian`, `grad(grad(f))`), the
    same triangular system is solved by block back substitution with traced VJPs
    so that the outer derivative is recorded.
    """
    if is_networkx_graph(graph):
        graph = from_networkx(graph, output=output)
        output = None
    plan = compile_plan(graph, output, wrt)
    return run_triangular(plan, seed, max_nnz=max_nnz)
