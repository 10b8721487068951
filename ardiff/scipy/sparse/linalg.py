"""`ardiff.scipy.sparse.linalg`: `spsolve` differentiable w.r.t. the right-hand side and
the stored values of the matrix.

Other names fall through to `scipy.sparse.linalg` (a traced argument then raises).
"""

from __future__ import annotations

import numpy as _np
import scipy.sparse as _sp
import scipy.sparse.linalg as _spla

from ...graph import TracerBase as _TracerBase
from ...graph import unwrap as _unwrap
from ...ops.shape import reshape as _reshape
from ...ops.sparse import Pattern as _Pattern
from ...ops.sparse import sparse_solve as _sparse_solve
from .arrays import SparseArray, issparse

__all__ = ["spsolve", "SparseArray", "issparse"]


def spsolve(A, b, permc_spec=None, use_umfpack=True):
    """Traced `scipy.sparse.linalg.spsolve`: `x` with `A x = b` for a square sparse `A`.

    `A` is a SciPy sparse matrix or array (constant) or an `ardiff.scipy.sparse`
    array whose stored values are traced; `b` a dense vector `(n,)` or matrix `(n, k)`,
    traced or plain (`(n, 1)` gives a vector, as SciPy).  The gradient w.r.t. `b` is the
    adjoint solve `Aᵀ λ = g`, and w.r.t. the stored value `k` at `(row_k, col_k)` it is
    `-λ[row_k] x[col_k]` (summed over the columns of `b`): O(nnz) memory, no dense
    matrix.  One LU factorisation (`scipy.sparse.linalg.splu`, COLAMD ordering) serves
    the forward solve and every adjoint solve with the same values.

    Unlike SciPy, which warns and returns NaN, a singular `A` raises
    `numpy.linalg.LinAlgError`; a sparse `b` is not supported with traced values.
    `permc_spec` and `use_umfpack` are accepted for SciPy's signature; traced solves
    use SuperLU's default ordering.  With nothing traced this is SciPy's `spsolve`.
    """
    if not (issparse(A)):
        raise TypeError("spsolve: A must be a sparse matrix (a SciPy sparse matrix or array, "
                        "or an ardiff.scipy.sparse array)")
    if isinstance(A, SparseArray):
        data, pattern = A.data, A.pattern
    else:
        pattern, data = _Pattern.of(A)
    if not (isinstance(data, _TracerBase) or isinstance(b, _TracerBase)):
        matrix = A.value if isinstance(A, SparseArray) else A
        return _spla.spsolve(matrix, b, permc_spec=permc_spec, use_umfpack=use_umfpack)
    if _sp.issparse(b) or isinstance(b, SparseArray):
        raise NotImplementedError("spsolve: a sparse right-hand side is not supported with "
                                  "traced values; pass b as a dense array")
    shape = _np.shape(_unwrap(b))
    if len(shape) == 2 and shape[1] == 1:  # SciPy returns a vector for a column
        b = _reshape(b, (shape[0],))
    return _sparse_solve(data, b, pattern)


def __getattr__(name):
    return getattr(_spla, name)
