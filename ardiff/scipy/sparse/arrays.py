"""The `SparseArray` class and the functions of `ardiff.scipy.sparse` (see there)."""

from __future__ import annotations

import numpy as _np
import scipy.sparse as _sp

from ...graph import TracerBase as _TracerBase
from ...graph import unwrap as _unwrap
from ...ops.elementwise import multiply as _multiply
from ...ops.elementwise import negative as _negative
from ...ops.reduce import sum_ as _sum
from ...ops.shape import broadcast_to as _broadcast_to
from ...ops.shape import getitem as _getitem
from ...ops.shape import transpose as _transpose
from ...ops.shape import untake as _untake
from ...ops.sparse import Pattern
from ...ops.sparse import sparse_matmul as _sparse_matmul

__all__ = ["SparseArray", "Pattern", "HELP", "csr_array", "csc_array", "coo_array",
           "matmul", "multiply", "issparse"]

#: The hint of every refusal: where the traced sparse functions are.
HELP = ("use ardiff.scipy.sparse.matmul(S, x) (or S @ x) for products, "
        "ardiff.scipy.sparse.multiply(S, x) for elementwise products, "
        "ardiff.scipy.sparse.csr_array/csc_array/coo_array for matrices whose stored values "
        "are traced, and ardiff.scipy.sparse.linalg.spsolve for solves")


def _traced(*objs) -> bool:
    return any(isinstance(o, _TracerBase) for o in objs)


class SparseArray:
    """A sparse matrix whose stored values `data` are traced and whose structure (a
    `Pattern`: shape and the row and column of each value) is constant.

    Made by `csr_array`, `csc_array` and `coo_array` when their data is traced.  `format`
    records the constructor (`"csr"`, `"csc"`, `"coo"`); every format computes the same
    way, and `data` keeps the order it was given in.  `__array_ufunc__ = None` makes
    NumPy's operators defer to this class (`ndarray @ A` calls `A.__rmatmul__`).
    """

    __array_ufunc__ = None
    ndim = 2

    def __init__(self, data, pattern: Pattern, format: str = "coo"):
        if _np.shape(_unwrap(data)) != (pattern.nnz,):
            raise ValueError(f"data has shape {_np.shape(_unwrap(data))}; the structure "
                             f"stores {pattern.nnz} values")
        self.data = data
        self.pattern = pattern
        self.format = format

    def __repr__(self) -> str:
        return (f"<ardiff {self.format} SparseArray of shape {self.shape} with {self.nnz} "
                f"stored values{' (traced)' if _traced(self.data) else ''}>")

    @property
    def shape(self) -> tuple:
        return self.pattern.shape

    @property
    def nnz(self) -> int:
        return self.pattern.nnz

    @property
    def dtype(self):
        return _np.result_type(_unwrap(self.data))

    @property
    def coords(self) -> tuple:
        """`(row, col)` of the stored values, in the order of `data`."""
        return self.pattern.row, self.pattern.col

    @property
    def value(self) -> _sp.coo_array:
        """The plain SciPy matrix of the current values (no gradient flows through it)."""
        data = self.data
        while isinstance(data, _TracerBase):
            data = data.value
        return _sp.coo_array((_np.asarray(data), self.coords), shape=self.shape).asformat(
            self.format)

    # -- structure ---------------------------------------------------------------------
    @property
    def T(self) -> SparseArray:
        return self.transpose()

    def transpose(self, axes=None, copy=False) -> SparseArray:
        if axes is not None and tuple(axes) != (1, 0):
            raise ValueError("a sparse matrix has two axes: axes must be None or (1, 0)")
        format = {"csr": "csc", "csc": "csr"}.get(self.format, self.format)
        return SparseArray(self.data, self.pattern.T, format)

    def asformat(self, format, copy=False) -> SparseArray:
        if format not in (None, "csr", "csc", "coo"):
            raise ValueError(f"ardiff.scipy.sparse has csr, csc and coo formats, not {format!r}")
        return self if format is None else SparseArray(self.data, self.pattern, format)

    def tocsr(self, copy=False) -> SparseArray:
        return self.asformat("csr")

    def tocsc(self, copy=False) -> SparseArray:
        return self.asformat("csc")

    def tocoo(self, copy=False) -> SparseArray:
        return self.asformat("coo")

    def toarray(self):
        """The dense matrix (O(m n) memory; duplicate positions summed)."""
        return _untake(self.data, self.coords, self.shape)

    todense = toarray

    # -- arithmetic --------------------------------------------------------------------
    def __matmul__(self, other):
        return matmul(self, other)

    def __rmatmul__(self, other):
        return matmul(other, self)

    def dot(self, other):
        if _np.ndim(_unwrap(other)) == 0:
            return self.multiply(other)
        return matmul(self, other)

    def multiply(self, other) -> SparseArray:
        """Elementwise product with a scalar or a dense array broadcastable to `shape`:
        a `SparseArray` with the same structure."""
        return multiply(self, other)

    def __mul__(self, other):
        return multiply(self, other)

    __rmul__ = __mul__

    def __truediv__(self, other):
        if _np.ndim(_unwrap(other)) != 0:
            raise TypeError(f"a SparseArray is divided by scalars only; {HELP}")
        return SparseArray(self.data / other, self.pattern, self.format)

    def __neg__(self) -> SparseArray:
        return SparseArray(_negative(self.data), self.pattern, self.format)

    def __pos__(self) -> SparseArray:
        return self

    def sum(self, axis=None, dtype=None, out=None, keepdims=False):
        """The sum of the stored values, or of each column (`axis=0`) or row (`axis=1`):
        one-dimensional, as SciPy's sparse arrays return."""
        if out is not None or dtype is not None or keepdims:
            raise TypeError("SparseArray.sum: dtype=, out= and keepdims= are not supported")
        if axis is None:
            return _sum(self.data)
        axis = int(axis)
        if axis not in (-2, -1, 0, 1):
            raise ValueError(f"axis {axis} is out of bounds for a sparse matrix")
        axis %= 2
        pattern = self.pattern.T if axis == 0 else self.pattern
        ones = _np.ones(pattern.shape[1])
        return _sparse_matmul(self.data, ones, pattern)

    def __array__(self, dtype=None, copy=None):
        raise TypeError("a SparseArray with traced values cannot become a NumPy array; use "
                        "A.toarray() (traced) or A.value (plain)")

    def __iter__(self):
        raise TypeError("a SparseArray is not iterable")

    def __bool__(self):
        raise ValueError("the truth value of a sparse matrix is ambiguous")

    def __add__(self, other):
        raise TypeError(f"SparseArray supports @, dot, multiply, * and / by scalars, "
                        f"transpose, sum and toarray; add A.toarray() for a dense sum ({HELP})")

    __radd__ = __sub__ = __rsub__ = __add__


# -- functions ---------------------------------------------------------------------------
def issparse(x) -> bool:
    """True for SciPy sparse matrices and arrays and for `SparseArray`."""
    return isinstance(x, SparseArray) or _sp.issparse(x)


def _parts(matrix) -> tuple:
    """`(data, pattern)` of a `SparseArray` or a SciPy sparse matrix."""
    if isinstance(matrix, SparseArray):
        return matrix.data, matrix.pattern
    pattern, data = Pattern.of(matrix)
    return data, pattern


def _check_dense(x, what: str):
    if issparse(x):
        raise NotImplementedError(f"{what}: a product of two sparse matrices with traced "
                                  f"values is not supported; {HELP}")
    ndim = _np.ndim(_unwrap(x))
    if ndim not in (1, 2):
        raise ValueError(f"{what}: the dense operand must have one or two axes, not {ndim}")
    return ndim


def matmul(a, b):
    """`a @ b` where one operand is sparse (a SciPy sparse matrix or array, or a
    `SparseArray`) and the other dense with one or two axes, traced or plain.

    Returns a dense array (traced when an operand is), as SciPy returns for a product
    with a dense operand.  O(nnz) work and memory per column of the dense operand.
    """
    if issparse(a):
        _check_dense(b, "matmul")
        data, pattern = _parts(a)
        if not _traced(data, b):
            return a.value @ b if isinstance(a, SparseArray) else a @ b
        return _sparse_matmul(data, b, pattern)
    if issparse(b):
        ndim = _check_dense(a, "matmul")
        data, pattern = _parts(b)
        if not _traced(data, a):
            return a @ (b.value if isinstance(b, SparseArray) else b)
        if ndim == 1:  # x @ S = Sᵀ x
            return _sparse_matmul(data, a, pattern.T)
        return _transpose(_sparse_matmul(data, _transpose(a), pattern.T))  # (Sᵀ Xᵀ)ᵀ
    raise TypeError(f"ardiff.scipy.sparse.matmul: neither operand is sparse ({HELP})")


def multiply(a, b):
    """Elementwise product of a sparse matrix and a scalar or a dense array broadcastable
    to its shape: a `SparseArray` with the sparse operand's structure (SciPy sparse
    arrays give a sparse result too).  Plain operands give SciPy's result."""
    if not issparse(a):
        a, b = b, a
    if not issparse(a):
        raise TypeError(f"ardiff.scipy.sparse.multiply: neither operand is sparse ({HELP})")
    if issparse(b):
        raise NotImplementedError(f"multiply: the product of two sparse matrices is not "
                                  f"supported with traced values; {HELP}")
    data, pattern = _parts(a)
    if not _traced(data, b):
        return (a.value if isinstance(a, SparseArray) else a).multiply(b)
    format = a.format if isinstance(a, SparseArray) else "coo"
    shape = _np.shape(_unwrap(b))
    if len(shape) == 0:
        return SparseArray(_multiply(data, b), pattern, format)
    if _np.broadcast_shapes(shape, pattern.shape) != pattern.shape:
        raise ValueError(f"multiply: a dense operand of shape {shape} does not broadcast to "
                         f"the sparse shape {pattern.shape}")
    picked = _getitem(_broadcast_to(b, pattern.shape), (pattern.row, pattern.col))
    return SparseArray(_multiply(data, picked), pattern, format)


def _compressed(arg1, shape, format: str):
    """`(data, indices, indptr)` of CSR (`format="csr"`) or CSC as a `SparseArray`."""
    data, indices, indptr = arg1
    indices, indptr = _np.asarray(indices), _np.asarray(indptr)
    counts = _np.diff(indptr)
    if indptr.ndim != 1 or indptr.size == 0 or indptr[0] != 0 or _np.any(counts < 0) \
            or indptr[-1] != indices.size:
        raise ValueError("indptr must start at 0, not decrease, and end at len(indices)")
    major = _np.repeat(_np.arange(indptr.size - 1), counts)
    if shape is None:
        minor_size = int(indices.max()) + 1 if indices.size else 0
        shape = (indptr.size - 1, minor_size) if format == "csr" else \
            (minor_size, indptr.size - 1)
    rows, cols = (major, indices) if format == "csr" else (indices, major)
    return SparseArray(data, Pattern(rows, cols, shape), format)


def _build(arg1, shape, dtype, copy, format: str, constructor):
    traced = isinstance(arg1, tuple) and len(arg1) in (2, 3) and _traced(arg1[0])
    if not traced:
        return constructor(arg1, shape=shape, dtype=dtype, copy=copy)
    if dtype is not None and _np.dtype(dtype) != _np.result_type(_unwrap(arg1[0])):
        raise TypeError("dtype= would cast the traced data; cast it with astype first")
    if len(arg1) == 3:
        if format == "coo":
            raise ValueError("coo_array takes (data, (row, col))")
        return _compressed(arg1, shape, format)
    data, coords = arg1
    if not (isinstance(coords, tuple) and len(coords) == 2):
        raise ValueError("expected (data, (row, col)) or (data, indices, indptr)")
    row, col = (_np.asarray(c) for c in coords)
    if shape is None:
        shape = (int(row.max()) + 1 if row.size else 0, int(col.max()) + 1 if col.size else 0)
    return SparseArray(data, Pattern(row, col, shape), format)


def csr_array(arg1, shape=None, dtype=None, copy=False):
    """`scipy.sparse.csr_array` with traced `data`: `csr_array((data, indices, indptr),
    shape=...)` or `csr_array((data, (row, col)), shape=...)` gives a `SparseArray`;
    anything else (plain data, a dense array, another sparse matrix) SciPy's array."""
    return _build(arg1, shape, dtype, copy, "csr", _sp.csr_array)


def csc_array(arg1, shape=None, dtype=None, copy=False):
    """`scipy.sparse.csc_array` with traced `data` (`indices` are row numbers, `indptr`
    runs over columns); see `csr_array`."""
    return _build(arg1, shape, dtype, copy, "csc", _sp.csc_array)


def coo_array(arg1, shape=None, dtype=None, copy=False):
    """`scipy.sparse.coo_array((data, (row, col)), shape=...)` with traced `data`
    (duplicate positions are summed); see `csr_array`."""
    return _build(arg1, shape, dtype, copy, "coo", _sp.coo_array)
