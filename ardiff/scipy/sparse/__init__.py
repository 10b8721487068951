"""`ardiff.scipy.sparse`: sparse matrices with traced values, and products of SciPy's
sparse matrices with traced arrays.

* `csr_array`, `csc_array`, `coo_array` take SciPy's constructor signatures
  (`csr_array((data, indices, indptr), shape=...)`, `coo_array((data, (row, col)),
  shape=...)`); with traced `data` they return a `SparseArray`, whose stored values are
  traced and whose structure is constant.  It supports `@` and `dot` with dense arrays
  (traced or plain) on either side, `.T`/`transpose()`, `sum(axis)`, `multiply` by
  dense arrays or scalars, `*` by a scalar, negation and `toarray()`.  With plain
  `data` they return SciPy's own array.
* `matmul(A, x)` / `matmul(x, A)`: a constant SciPy sparse matrix or array, or a
  `SparseArray`, times a dense (traced) array of one or two axes.  `S @ x`, `x @ S`,
  `S.T @ x` and `S.dot(x)` with a SciPy matrix `S` and a traced `x` come here too.
* `linalg.spsolve` (in `ardiff.scipy.sparse.linalg`).

Memory stays O(nnz): products and their gradients touch each stored value once per
column of the dense operand.  The ops are in `ardiff.ops.sparse`.  Other names fall
through to `scipy.sparse`.
"""

from __future__ import annotations

import scipy.sparse as _sp

from . import linalg
from .arrays import (
    HELP,
    Pattern,
    SparseArray,
    coo_array,
    csc_array,
    csr_array,
    issparse,
    matmul,
    multiply,
)

__all__ = ["SparseArray", "Pattern", "HELP", "csr_array", "csc_array", "coo_array", "matmul",
           "multiply", "issparse", "linalg"]


def __getattr__(name):
    return getattr(_sp, name)
