"""Sparse ops: products and solves with a sparse matrix of constant structure.

A sparse matrix is split into its constant structure, a `Pattern` (shape and the row
and column of every stored value), and its stored values `data`, which may be traced.
Two ops work on that pair:

* `sparse_matmul(data, x, pattern)`: `A @ x` for a dense `x` of shape `(n,)` or
  `(n, k)`; differentiable w.r.t. `data` (`g[row] * x[col]`, one number per stored
  value) and `x` (`Aᵀ @ g`, the same op on the transposed pattern);
* `sparse_solve(data, b, pattern, trans=False)`: `A x = b` (or `Aᵀ x = b`) by one
  sparse LU factorisation (`scipy.sparse.linalg.splu`), cached on the pattern, so the
  adjoint solve `Aᵀ λ = g` reuses the forward's factors; the gradient w.r.t. the stored
  value `k` at `(row_k, col_k)` is `-λ[row_k] * x[col_k]` (summed over the columns of
  a matrix right-hand side).

Nothing here builds a dense `n x n` array except `sparse_solve`'s Jacobians for the
exact triangular solver, which are dense by nature (the inverse of `A`); their declared
size lets that solver refuse a large system before building it.  Duplicate positions in
a pattern are summed, as SciPy does.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from ..graph import unwrap
from ..op import defop
from .elementwise import multiply, negative
from .jacobians import Family
from .reduce import sum_
from .shape import getitem

__all__ = ["Pattern", "FACTOR_CACHE", "sparse_matmul", "sparse_solve"]

#: How many factorisations (of different values on one pattern) a pattern keeps.
FACTOR_CACHE = 4


class Pattern:
    """The constant structure of a sparse matrix: its shape and the `(row, col)` of each
    stored value, in the order of its `data` (duplicate positions are summed).

    Parameters
    ----------
    row, col : array_like of int, shape `(nnz,)`
        Positions of the stored values.
    shape : tuple of two ints
    """

    __slots__ = ("shape", "row", "col", "_layout", "_transpose", "_factors", "__weakref__")

    def __init__(self, row, col, shape):
        row = np.asarray(row)
        col = np.asarray(col)
        if len(shape) != 2:
            raise ValueError(f"a sparse matrix has two axes, got shape {tuple(shape)}")
        self.shape = (int(shape[0]), int(shape[1]))
        for name, index, bound in (("row", row, self.shape[0]), ("col", col, self.shape[1])):
            if index.ndim != 1 or (index.size and index.dtype.kind not in "iu"):
                raise ValueError(f"{name} indices must be a 1-D integer array")
            if index.size and (index.min() < 0 or index.max() >= bound):
                raise ValueError(f"{name} index out of bounds for shape {self.shape}")
        if row.shape != col.shape:
            raise ValueError(f"row and col differ in length ({row.size} and {col.size})")
        self.row = row.astype(np.intp, copy=False)
        self.col = col.astype(np.intp, copy=False)
        self._layout = None
        self._transpose = None
        self._factors: list = []

    @classmethod
    def of(cls, matrix) -> tuple[Pattern, np.ndarray]:
        """`(pattern, data)` of a SciPy sparse matrix or array."""
        coo = matrix.tocoo()
        if len(coo.shape) != 2:
            raise ValueError(f"a sparse matrix has two axes, got shape {coo.shape}")
        row, col = coo.row, coo.col  # the attributes SciPy 1.11 already has
        return cls(row, col, coo.shape), coo.data

    def __repr__(self) -> str:
        return f"Pattern(shape={self.shape}, nnz={self.nnz})"

    @property
    def nnz(self) -> int:
        """The number of stored values (duplicates counted)."""
        return int(self.row.size)

    @property
    def T(self) -> Pattern:
        """The transposed pattern (the same stored values)."""
        if self._transpose is None:
            t = Pattern(self.col, self.row, self.shape[::-1])
            t._transpose = self
            self._transpose = t
        return self._transpose

    def _csr_layout(self) -> tuple:
        if self._layout is None:
            order = np.lexsort((self.col, self.row))
            indptr = np.zeros(self.shape[0] + 1, dtype=np.intp)
            np.cumsum(np.bincount(self.row, minlength=self.shape[0]), out=indptr[1:])
            self._layout = (order, self.col[order], indptr)
        return self._layout

    def csr(self, data) -> sp.csr_array:
        """The matrix with these stored values, in CSR format."""
        order, indices, indptr = self._csr_layout()
        return sp.csr_array((_values(data, self)[order], indices, indptr), shape=self.shape)

    def csc(self, data) -> sp.csc_array:
        """The matrix with these stored values, in CSC format."""
        order, indices, indptr = self.T._csr_layout()
        return sp.csc_array((_values(data, self)[order], indices, indptr), shape=self.shape)

    def factor(self, data):
        """The sparse LU factors (`scipy.sparse.linalg.SuperLU`) of the matrix with these
        values; the last `FACTOR_CACHE` are kept, so solves with the same values (a
        forward solve and its adjoint) factorise once."""
        data = _values(data, self)
        for values, lu in self._factors:
            if np.array_equal(values, data):
                return lu
        if self.shape[0] != self.shape[1]:
            raise ValueError(f"spsolve needs a square matrix, got shape {self.shape}")
        try:
            lu = spla.splu(self.csc(data))
        except RuntimeError as exc:  # SuperLU: "Factor is exactly singular"
            raise np.linalg.LinAlgError(f"the sparse matrix is singular ({exc})") from exc
        self._factors = [(data.copy(), lu)] + self._factors[:FACTOR_CACHE - 1]
        return lu


def _values(data, pattern: Pattern) -> np.ndarray:
    data = np.asarray(data)
    if data.shape != (pattern.nnz,):
        raise ValueError(f"data has shape {data.shape}; the pattern stores {pattern.nnz} "
                         "values")
    if data.dtype.kind not in "f":
        if data.dtype.kind == "c":
            raise TypeError("ardiff's sparse ops are real: complex data is not supported")
        data = data.astype(np.float64)
    return data


def _dense_operand(x, n: int, what: str) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim not in (1, 2) or x.shape[0] != n:
        raise ValueError(f"{what}: the dense operand has shape {x.shape}; expected ({n},) or "
                         f"({n}, k)")
    return x


def _coo(values, rows, cols, shape) -> sp.csr_matrix:
    return sp.csr_matrix((np.ravel(values), (np.ravel(rows), np.ravel(cols))), shape=shape)


# -- products ----------------------------------------------------------------------------
def _matmul_fwd(data, x, pattern):
    x = _dense_operand(x, pattern.shape[1], "sparse_matmul")
    if x.dtype.kind == "c":
        raise TypeError("ardiff's sparse ops are real: complex operands are not supported")
    return np.asarray(pattern.csr(data) @ x)


def _matmul_vjp_data(ans, data, x, pattern):
    # ans[i] = Σ_k [row_k = i] data_k x[col_k]: ∂/∂data_k = x[col_k] (rows of x for k > 1)
    x_col = getitem(x, pattern.col)
    row = pattern.row
    if np.ndim(unwrap(x)) == 1:
        return lambda g: multiply(getitem(g, row), x_col)
    return lambda g: sum_(multiply(getitem(g, row), x_col), axis=1)


def _matmul_vjp_x(ans, data, x, pattern):
    transposed = pattern.T
    return lambda g: sparse_matmul(data, g, transposed)


class _MatmulJacobian(Family):
    """`A @ x`: w.r.t. `x` the matrix itself (block diagonal over the columns of `x`),
    w.r.t. the stored values one entry per value and column of `x`."""

    def matrix(self, op, argnum, ans, args, kwargs):
        data, x, pattern = args
        x = np.asarray(unwrap(x))
        k = 1 if x.ndim == 1 else x.shape[1]
        m, n = pattern.shape
        out_rows = pattern.row[:, None] * k + np.arange(k)  # (nnz, k)
        if argnum == 0:
            values = x[pattern.col].reshape(pattern.nnz, k)
            cols = np.broadcast_to(np.arange(pattern.nnz)[:, None], out_rows.shape)
            return _coo(values, out_rows, cols, (m * k, pattern.nnz))
        values = np.broadcast_to(_values(unwrap(data), pattern)[:, None], out_rows.shape)
        cols = pattern.col[:, None] * k + np.arange(k)
        return _coo(values, out_rows, cols, (m * k, n * k))

    def nnz(self, op, argnum, ans, args, kwargs):
        data, x, pattern = args
        x_shape = np.shape(unwrap(x))
        return pattern.nnz * (1 if len(x_shape) == 1 else x_shape[1])


sparse_matmul = defop("sparse_matmul", _matmul_fwd, _matmul_vjp_data, _matmul_vjp_x, None,
                      jac=_MatmulJacobian(), reads=((1,), (0,), ()),
                      multilinear=True)  # A x: linear in the values of A and in x


# -- solves ------------------------------------------------------------------------------
def _solve_fwd(data, b, pattern, trans=False):
    b = _dense_operand(b, pattern.shape[0], "spsolve")
    if b.dtype.kind == "c":
        raise TypeError("ardiff's sparse ops are real: complex right-hand sides are not "
                        "supported")
    lu = pattern.factor(data)
    return lu.solve(np.asarray(b, dtype=np.float64), trans="T" if trans else "N")


def _solve_vjp_data(ans, data, b, pattern, trans=False):
    # A x = b:  dL/dA = -λ xᵀ with Aᵀ λ = g, and value k sits at (row_k, col_k);
    # Aᵀ x = b: dL/dA[r, c] = -λ[c] x[r] with A λ = g.
    first, second = (pattern.col, pattern.row) if trans else (pattern.row, pattern.col)
    x_second = getitem(ans, second)
    vector = np.ndim(unwrap(ans)) == 1

    def vjp(g):
        lam = sparse_solve(data, g, pattern, trans=not trans)
        product = multiply(getitem(lam, first), x_second)
        return negative(product if vector else sum_(product, axis=1))

    return vjp


def _solve_vjp_b(ans, data, b, pattern, trans=False):
    return lambda g: sparse_solve(data, g, pattern, trans=not trans)


def _solve_inverse(data, pattern, trans) -> np.ndarray:
    """The dense inverse of the solved operator (`A` or `Aᵀ`): the Jacobians need it."""
    n = pattern.shape[0]
    return pattern.factor(unwrap(data)).solve(np.eye(n), trans="T" if trans else "N")


def _solve_jacobian(argnum, ans, data, b, pattern, trans=False):
    """Dense by nature: `∂x/∂b` is the inverse of the solved operator (`kron(inv, I_k)`
    for `k` right-hand sides), and `∂x/∂data_p` is `-inv[:, first_p] x[second_p]`."""
    inverse = _solve_inverse(data, pattern, trans)
    x = np.asarray(unwrap(ans))
    k = 1 if x.ndim == 1 else x.shape[1]
    if argnum == 1:
        return sp.csr_matrix(sp.kron(inverse, sp.identity(k), format="csr"))
    first, second = (pattern.col, pattern.row) if trans else (pattern.row, pattern.col)
    block = -inverse[:, first][:, None, :] * x.reshape(-1, k)[second].T[None, :, :]
    return sp.csr_matrix(block.reshape(x.size, pattern.nnz))


def _solve_jvp_data(t, ans, data, b, pattern, trans=False):
    """A x = b: dx = -A^-1 dA x (dA has the values `t` on A's pattern; Aᵀ for trans)."""
    product = sparse_matmul(t, ans, pattern.T if trans else pattern)
    return negative(sparse_solve(data, product, pattern, trans=trans))


def _solve_jvp_b(t, ans, data, b, pattern, trans=False):
    return sparse_solve(data, t, pattern, trans=trans)


sparse_solve = defop("sparse_solve", _solve_fwd, _solve_vjp_data, _solve_vjp_b, None,
                     jac=_solve_jacobian, reads=(("ans", 0), (0,), ()),
                     jvp=(_solve_jvp_data, _solve_jvp_b))
