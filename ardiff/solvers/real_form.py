"""The triangular system of a graph with complex values, written over the reals.

Under ardiff's complex convention (docs/complex.md) a local VJP is real-linear but not
always complex-linear (`conj`, `real`, `abs`, `rfft`'s adjoint, ...), so the fixed
point `x = N x + b` of a complex graph is not a complex linear system.  It is a real
one in the real and imaginary parts: every complex element of a relaxing node becomes
two real unknowns (real part, imaginary part, interleaved as in NumPy's memory
layout), every real element one.  A block of N coupling a complex node is built from
the edge's own VJP applied to the unit vectors 1 and 1j of each element of the child
(two VJPs per complex element, one per real one); edges between two real nodes keep
the op's sparse Jacobian.  The matrix is still strictly upper triangular in
topological order, with a unit diagonal in `I - N`: the spectrum of the dynamics is
still all ones, and `spsolve_triangular` solves it as before.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from ..graph import unwrap
from .plan import Plan

__all__ = ["SparseSystem", "RealFormSystem", "assemble_blocks", "needs_real_form",
           "real_size", "to_real", "assemble_real_form"]


def _is_complex(value: Any) -> bool:
    return np.iscomplexobj(unwrap(value))


def needs_real_form(plan: Plan, seed: Any) -> bool:
    """Whether a relaxing node, the output or the seed is complex.

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
    nodes = plan.graph.nodes
    return _is_complex(seed) or _is_complex(nodes[plan.output].value) or any(
        _is_complex(nodes[i].value) for i in plan.relaxing)


def real_size(value: Any) -> int:
    """Number of real unknowns of a value: its size, twice that when it is complex."""
    return int(np.size(unwrap(value))) * (2 if _is_complex(value) else 1)


def to_real(a: Any, complex_: bool) -> np.ndarray:
    """A (complex) array flattened to its real unknowns (re, im interleaved when complex)."""
    a = np.ravel(np.asarray(unwrap(a)))
    if complex_:
        return np.ascontiguousarray(a.astype(np.complex128)).view(np.float64)
    return np.real(a).astype(np.float64)


def assemble_blocks(rows: list, cols: list, data: list, size: int) -> sp.csr_matrix:
    """The `size x size` CSR matrix of concatenated COO blocks (duplicates summed,
    explicit zeros dropped); shared by the real and the real-form assembly.

    Parameters
    ----------
    rows, cols, data : list of numpy.ndarray
        Row indices, column indices and values of each block, already offset.
    size : int

    Returns
    -------
    scipy.sparse.csr_matrix
    """
    if rows:
        N = sp.csr_matrix((np.concatenate(data), (np.concatenate(rows), np.concatenate(cols))),
                          shape=(size, size))
    else:
        N = sp.csr_matrix((size, size))
    N.sum_duplicates()
    N.eliminate_zeros()
    return N


@dataclass
class SparseSystem:
    """An assembled fixed-point system `(I - N) x = b` of the triangular solver.

    The fields and the derived `size` and `H` shared by `TriangularSystem` (real
    graphs, `ardiff.solvers.triangular`) and `RealFormSystem` (complex graphs over
    their real and imaginary parts); each adds its `split` of a solution into
    per-node activities.

    Attributes
    ----------
    N : scipy.sparse.csr_matrix
        Strictly upper-triangular coupling, `size x size`.
    b : numpy.ndarray
        Right-hand side (the seed pushed one step into the graph).
    nodes : list of int
        Relaxing node indices in topological order (the block order).
    offsets : numpy.ndarray
        `offsets[k]:offsets[k+1]` is the slice of `nodes[k]`'s unknowns.
    fallback_ops : list of str
        Ops whose Jacobian blocks were built from VJPs of unit vectors (slow).
    vjp_evals : int
        VJP evaluations spent on the right-hand side and on fallback Jacobians.
    """

    N: sp.csr_matrix
    b: np.ndarray
    nodes: list
    offsets: np.ndarray
    fallback_ops: list
    vjp_evals: int

    @property
    def size(self) -> int:
        """Number of unknowns (the flattened activities of all relaxing nodes)."""
        return int(self.b.size)

    @property
    def H(self) -> sp.csr_matrix:
        """`I - N`: the paper's "Hessian" of the relaxation energy (eqs. 17-19)."""
        return (sp.identity(self.size, format="csr") - self.N).tocsr()


@dataclass
class RealFormSystem(SparseSystem):
    """`(I - N) x = b` over the real and imaginary parts (the fields of `SparseSystem`,
    all real; `offsets` slice each node's real unknowns: twice its size if complex)."""

    def split(self, x: np.ndarray, plan: Plan) -> dict:
        """Cut a real solution into per-node activities, complex where the node is.

        Parameters
        ----------
        x : numpy.ndarray
            The solution, `size` real entries.
        plan : Plan
            The plan the system was assembled from.

        Returns
        -------
        dict
            Node index -> activity shaped and typed like the node.
        """
        out = {}
        for k, i in enumerate(self.nodes):
            value = unwrap(plan.graph.nodes[i].value)
            block = np.ascontiguousarray(x[self.offsets[k]:self.offsets[k + 1]])
            if _is_complex(value):
                block = block.view(np.complex128)
            out[i] = block.reshape(np.shape(value)).astype(np.result_type(value), copy=False)
        return out


def _block_from_vjp(vjp: Callable, child_value: Any, parent_value: Any) -> np.ndarray:
    """The real matrix mapping the child's real unknowns to the parent's (dense), built
    by the VJP of every real unit vector of the child (1, and 1j for a complex child)."""
    child_complex, parent_complex = _is_complex(child_value), _is_complex(parent_value)
    shape = np.shape(unwrap(child_value))
    n = int(np.size(unwrap(child_value)))
    units = (1.0, 1j) if child_complex else (1.0,)
    block = np.zeros((real_size(parent_value), n * len(units)))
    dtype = np.complex128 if child_complex else np.float64
    unit = np.zeros(n, dtype=dtype)
    for j in range(n):
        for u, step in enumerate(units):
            unit[j] = step
            block[:, j * len(units) + u] = to_real(vjp(unit.reshape(shape)), parent_complex)
            unit[j] = 0.0
    return block


def assemble_real_form(plan: Plan, seed: Any, inner_edges: Callable,
                       real_edge: Callable) -> RealFormSystem:
    """Assemble the real form of `(I - N) x = b` for a plan with complex values.

    Parameters
    ----------
    plan : Plan
        The compiled graph (without rules).
    seed : array_like
        The clamped output activity.
    inner_edges : callable
        `inner_edges(plan)` yields `(parent, child, argnum)` for every edge between
        relaxing nodes (`ardiff.solvers.triangular`).
    real_edge : callable
        `real_edge(node, argnum, vjp) -> (J, slow)`: the sparse Jacobian of an edge
        between two real values (`ardiff.solvers.triangular.edge_jacobian`).

    Returns
    -------
    RealFormSystem
    """
    nodes = plan.graph.nodes
    order = list(plan.relaxing)
    position = {i: k for k, i in enumerate(order)}
    sizes = [real_size(nodes[i].value) for i in order]
    offsets = np.concatenate([[0], np.cumsum(sizes, dtype=np.int64)]).astype(np.int64)
    size = int(offsets[-1])
    staged: dict = {}
    for p in order:
        for child, vjp in plan.edges[p]:
            staged.setdefault((p, child), []).append(vjp)
    rows, cols, data = [], [], []
    fallback, evals = set(), 0
    for p, k, argnum in inner_edges(plan):
        node = nodes[k]
        # the plan staged one VJP per edge (Plan.stage), so every inner edge finds its own
        vjp = staged[(p, k)].pop(0)
        parent_value = nodes[p].value
        if not (_is_complex(node.value) or _is_complex(parent_value)):
            J, slow = real_edge(node, argnum, vjp)
            J = sp.coo_matrix(J)
            block_rows, block_cols, block_data = J.col, J.row, np.real(J.data)
            if slow:
                evals += J.shape[0]
                fallback.add(node.op_name)
        else:
            block = sp.coo_matrix(_block_from_vjp(vjp, node.value, parent_value))
            block_rows, block_cols, block_data = block.row, block.col, block.data
            evals += block.shape[1]
            fallback.add(node.op_name)
        rows.append(block_rows.astype(np.int64) + offsets[position[p]])
        cols.append(block_cols.astype(np.int64) + offsets[position[k]])
        data.append(np.asarray(block_data, dtype=np.float64))
    N = assemble_blocks(rows, cols, data, size)
    b = np.zeros(size)
    for k, i in enumerate(order):
        for child, vjp in plan.edges[i]:
            if child == plan.output:
                b[offsets[k]:offsets[k + 1]] += to_real(vjp(seed), _is_complex(nodes[i].value))
                evals += 1
    return RealFormSystem(N, b, order, offsets, sorted(fallback), evals)
