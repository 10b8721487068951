"""Property-based cases for the sparse ops (``sparse_matmul``, ``sparse_solve``): products of a
constant SciPy sparse matrix with traced arrays (plain syntax, ``S @ x`` and ``x @ S``),
``ardiff.scipy.sparse`` arrays with traced stored values (products, transpose, ``sum``,
``multiply``) and ``spsolve`` w.r.t. the right-hand side and the stored values.

The NumPy side of every case (the reference forward of the harness) computes with the dense
matrix, so it does not depend on SciPy's sparse API; solved matrices are diagonally dominant
(the drawn stored values lie in [-1, 1] and 4 is added on the diagonal).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from hypothesis import strategies as st
from test_ops import Case, make_op_test, reals

import ardiff.scipy.sparse as asp
from ardiff.scipy.sparse import linalg as aspl

# a fixed 4 x 3 pattern with an empty row and a duplicate position, in CSR layout
S = sp.csr_array((np.array([1.5, -2.0, 0.5, 3.0, -1.0]), np.array([0, 2, 1, 1, 2]),
                  np.array([0, 2, 2, 4, 5])), shape=(4, 3))
S_DENSE = S.toarray()
ROW = np.repeat(np.arange(4), np.diff(S.indptr))
COL = S.indices

# a 5 x 5 tridiagonal pattern in CSC layout (column j holds rows j-1, j, j+1)
N = 5
_rows = [[i for i in (j - 1, j, j + 1) if 0 <= i < N] for j in range(N)]
T_INDICES = np.concatenate([np.array(r) for r in _rows])
T_INDPTR = np.concatenate([[0], np.cumsum([len(r) for r in _rows])])
T_COL = np.repeat(np.arange(N), np.diff(T_INDPTR))
T_SHIFT = np.where(T_INDICES == T_COL, 4.0, 0.0)  # added to the diagonal
T_CONST = sp.csc_array((np.linspace(-1.0, 1.0, T_INDICES.size) + T_SHIFT, T_INDICES, T_INDPTR),
                       shape=(N, N))


def dense(data, row, col, shape):
    """The dense matrix of stored values (duplicates summed), plain NumPy."""
    out = np.zeros(shape)
    np.add.at(out, (row, col), data)
    return out


def _vector_or_matrix(n):
    return st.sampled_from([(n,), (n, 2)]).flatmap(reals)


def _args(*strategies):
    return st.tuples(*strategies).map(lambda a: (a, {}))


def _constant_times(xp, x):
    return S @ x  # the same line for NumPy and traced x: the plain-syntax path


def _times_constant(xp, y):
    return y @ S_DENSE if xp is np else y @ S


def _csr_product(xp, data, x):
    if xp is np:
        return dense(data, ROW, COL, S.shape) @ x
    return asp.csr_array((data, S.indices, S.indptr), shape=S.shape) @ x


def _coo_left_product(xp, data, y):
    if xp is np:
        return y @ dense(data, ROW, COL, S.shape)
    return y @ asp.coo_array((data, (ROW, COL)), shape=S.shape)


def _transpose_sums(xp, data, d):
    """(A ∘ D)ᵀ summed along both axes, and the total."""
    if xp is np:
        m = dense(data, ROW, COL, S.shape) * d
        return np.concatenate([m.T.sum(axis=0), m.T.sum(axis=1), [m.sum()]])
    m = asp.csr_array((data, S.indices, S.indptr), shape=S.shape).multiply(d).T
    return xp.concatenate([m.sum(axis=0), m.sum(axis=1), xp.reshape(m.sum(), (1,))])


def _spsolve_rhs(xp, b):
    if xp is np:
        return np.linalg.solve(T_CONST.toarray(), b)
    return aspl.spsolve(T_CONST, b)


def _spsolve_values(xp, data, b):
    if xp is np:
        return np.linalg.solve(dense(data + T_SHIFT, T_INDICES, T_COL, (N, N)), b)
    A = asp.csc_array((data + T_SHIFT, T_INDICES, T_INDPTR), shape=(N, N))
    return aspl.spsolve(A, b)


CASES = [
    Case("sparse.constant @ x", _constant_times, _args(_vector_or_matrix(3)),
         ops=("sparse_matmul",)),
    Case("sparse.x @ constant", _times_constant, _args(_vector_or_matrix(4).map(
        lambda y: y if y.ndim == 1 else y.T)), ops=("sparse_matmul",), dispatch=False),
    Case("sparse.csr_array @ x", _csr_product,
         _args(reals((S.nnz,)), _vector_or_matrix(3)), ops=("sparse_matmul",),
         dispatch=False),
    Case("sparse.x @ coo_array", _coo_left_product,
         _args(reals((S.nnz,)), st.sampled_from([(4,), (2, 4)]).flatmap(reals)),
         ops=("sparse_matmul",), dispatch=False),
    Case("sparse.multiply_transpose_sum", _transpose_sums,
         _args(reals((S.nnz,)), st.sampled_from([(), (3,), (4, 1), (4, 3)]).flatmap(reals)),
         ops=("sparse_matmul", "multiply", "sum"), dispatch=False),
    Case("sparse.linalg.spsolve b", _spsolve_rhs, _args(_vector_or_matrix(N)),
         ops=("sparse_solve",), dispatch=False),
    Case("sparse.linalg.spsolve values", _spsolve_values,
         _args(reals((T_INDICES.size,), -1.0, 1.0), _vector_or_matrix(N)),
         ops=("sparse_solve",), dispatch=False),
]

test_sparse = make_op_test(CASES)

# (op name, args, kwargs, argnums) for tests/test_triangular.py: the Jacobians against the
# VJP of every unit vector, with vector and matrix operands, the transposed solve too
_RNG = np.random.default_rng(26)
_PAT = asp.Pattern(ROW, COL, S.shape)
_TPAT = asp.Pattern(T_INDICES, T_COL, (N, N))
_TDATA = _RNG.uniform(-1.0, 1.0, T_INDICES.size) + T_SHIFT
JACOBIAN_CASES = [
    ("sparse_matmul", (_RNG.standard_normal(S.nnz), _RNG.standard_normal(3), _PAT), {}, [0, 1]),
    ("sparse_matmul", (_RNG.standard_normal(S.nnz), _RNG.standard_normal((3, 2)), _PAT), {},
     [0, 1]),
    ("sparse_matmul", (_RNG.standard_normal(S.nnz), _RNG.standard_normal(4), _PAT.T), {},
     [0, 1]),
    ("sparse_solve", (_TDATA, _RNG.standard_normal(N), _TPAT), {}, [0, 1]),
    ("sparse_solve", (_TDATA, _RNG.standard_normal((N, 2)), _TPAT), {}, [0, 1]),
    ("sparse_solve", (_TDATA, _RNG.standard_normal((N, 3)), _TPAT), {"trans": True}, [0, 1]),
]
