"""`ardiff.numpy.linalg`: traced `numpy.linalg`.

Differentiable: `inv`, `solve`, `det`, `slogdet`, `norm` (every `ord` and `axis`
NumPy accepts), `matrix_norm`, `vector_norm`, `cholesky`, `eigh`, `eigvalsh`, `svd`,
`svdvals`, `pinv`, `qr`, `lstsq`, `matrix_power`, `multi_dot`, `tensorsolve`,
`tensorinv`, `matrix_transpose`, `cond` (from `svdvals`, or `norm` and `inv`).
`matrix_rank` returns a plain integer (remembered as a guard under `ardiff.compile`).
Every function takes stacks of matrices where NumPy does.

Decompositions with several outputs call one op per output used (see
`ardiff.ops.decompositions`); a function of some outputs only is differentiated
through those.  Other names fall through to `numpy.linalg` (a traced argument then
raises).
"""

from __future__ import annotations

from collections import namedtuple

import numpy as _np

from ..graph import TracerBase as _TracerBase
from ..graph import unwrap as _unwrap
from ..guards import concrete as _concrete
from ..ops.decompositions import cholesky as _cholesky
from ..ops.decompositions import eig_vectors as _eig_vectors
from ..ops.decompositions import eigh_vectors as _eigh_vectors
from ..ops.decompositions import eigvals as _eigvals
from ..ops.decompositions import eigvalsh as _eigvalsh
from ..ops.decompositions import pinv as _pinv
from ..ops.decompositions import qr_q as _qr_q
from ..ops.decompositions import qr_r as _qr_r
from ..ops.decompositions import svd_u as _svd_u
from ..ops.decompositions import svd_vt as _svd_vt
from ..ops.decompositions import svdvals as _svdvals
from ..ops.elementwise import absolute as _absolute
from ..ops.linalg import det, inv, logabsdet, solve  # noqa: F401
from ..ops.linalg import dot as _dot
from ..ops.linalg import matmul as _matmul
from ..ops.linalg import matrix_transpose as _matrix_transpose

# ops whose namespace wrapper below keeps the NumPy name: imported under a private alias
from ..ops.linalg import norm as _norm
from ..ops.reduce import max_ as _max
from ..ops.reduce import min_ as _min
from ..ops.reduce import sum_ as _sum
from ..ops.shape import concatenate as _concatenate
from ..ops.shape import reshape as _reshape
from ..ops.shape import transpose as _transpose
from ._arrays import vecdot as _vecdot
from ._shape import diagonal as _diagonal

#: `(sign, logabsdet)` as NumPy 2 returns it.
SlogdetResult = namedtuple("SlogdetResult", ["sign", "logabsdet"])
#: `(eigenvalues, eigenvectors)` as NumPy 2 returns it.
EighResult = namedtuple("EighResult", ["eigenvalues", "eigenvectors"])
EigResult = namedtuple("EigResult", ["eigenvalues", "eigenvectors"])
#: `(U, S, Vh)` as NumPy 2 returns it.
SVDResult = namedtuple("SVDResult", ["U", "S", "Vh"])
#: `(Q, R)` as NumPy 2 returns it.
QRResult = namedtuple("QRResult", ["Q", "R"])


def _traced(*objs) -> bool:
    """Whether any of `objs` (or an element of a list or tuple among them) is traced;
    composed functions called on plain values return NumPy's own result instead."""
    return any(isinstance(o, _TracerBase) or (isinstance(o, (list, tuple)) and _traced(*o))
               for o in objs)


def _stacked(x):
    """A (nested) list or tuple holding traced values as one traced array."""
    if not isinstance(x, (list, tuple)):
        return x
    rows = [_stacked(e) for e in x]
    rows = [_reshape(r, (1,) + _np.shape(_unwrap(r))) if isinstance(r, _TracerBase)
            else _np.asarray(r, dtype=float)[None] for r in rows]
    return _concatenate(*rows, axis=0)


def slogdet(a):
    """Sign and traced log absolute determinant (stacks allowed).  A real sign is
    piecewise constant (plain, no gradient); a complex one, det / |det|, is traced."""
    if isinstance(a, _TracerBase) and _np.iscomplexobj(_unwrap(a)):
        d = det(a)
        return SlogdetResult(d / _absolute(d), logabsdet(a))
    sign = _np.linalg.slogdet(_unwrap(a))[0]
    return SlogdetResult(sign, logabsdet(a))


def matrix_transpose(x):
    """Traced `numpy.linalg.matrix_transpose`: swap the last two axes."""
    return _matrix_transpose(x)


# -- norms ---------------------------------------------------------------------------
def _is_matrix_norm(ndim, ord, axis) -> bool:
    if isinstance(axis, tuple):
        return len(axis) == 2
    return axis is None and ndim == 2 and ord is not None


def norm(x, ord=None, axis=None, keepdims=False):
    """Traced `numpy.linalg.norm`, for every `ord` and `axis` NumPy accepts.

    Vector norms (`ord` None, inf, -inf, 0 or any number) and the Frobenius norm are one
    op; the other matrix norms are composed from traced ops: `"nuc"`, `2` and `-2` from
    the singular values (`svdvals`: sum, largest, smallest), `1`/`-1` and `inf`/`-inf`
    from the largest/smallest absolute column/row sum.

    Where a norm is not differentiable the gradient is a subgradient: 0 at the zero
    vector; ties among the largest (smallest) entries, column or row sums share the
    gradient evenly; an entry at 0 contributes 0 through `abs`.  The gradient of the
    2-norm or nuclear norm at repeated singular values is that of the singular values
    alone (well defined, see `svdvals`).
    """
    if isinstance(axis, list):
        axis = tuple(axis)
    if not _traced(x):
        return _np.linalg.norm(x, ord=ord, axis=axis, keepdims=keepdims)
    x = _stacked(x)  # a list of traced values, as autograd allows
    ndim = _np.ndim(_unwrap(x))
    if not _is_matrix_norm(ndim, ord, axis) or ord in (None, "fro"):
        return _norm(x, ord=ord, axis=axis, keepdims=keepdims)
    if axis is None:
        axis = (0, 1)
    row, col = (int(a) % ndim for a in axis)
    if row == col:
        raise ValueError("Duplicate axes given.")
    others = tuple(i for i in range(ndim) if i not in (row, col))
    shape = _np.shape(_unwrap(x))
    y = _transpose(x, others + (row, col)) if others + (row, col) != tuple(range(ndim)) else x
    if ord in ("nuc", 2, -2):
        s = _svdvals(y)
        out = _sum(s, axis=-1) if ord == "nuc" else (_max if ord == 2 else _min)(s, axis=-1)
    elif ord in (1, -1):
        sums = _sum(_absolute(y), axis=-2)
        out = (_max if ord == 1 else _min)(sums, axis=-1)
    elif ord in (_np.inf, -_np.inf):
        sums = _sum(_absolute(y), axis=-1)
        out = (_max if ord == _np.inf else _min)(sums, axis=-1)
    else:
        raise ValueError("Invalid norm order for matrices.")
    if keepdims:
        kept = tuple(1 if i in (row, col) else n for i, n in enumerate(shape))
        out = _reshape(out, kept)
    return out


def matrix_norm(x, /, *, keepdims=False, ord="fro"):
    """Traced `numpy.linalg.matrix_norm`: `norm` over the last two axes."""
    if not _traced(x):
        return _np.linalg.matrix_norm(x, keepdims=keepdims, ord=ord)
    return norm(x, ord=ord, axis=(-2, -1), keepdims=keepdims)


def vector_norm(x, /, *, axis=None, keepdims=False, ord=2):
    """Traced `numpy.linalg.vector_norm`: a vector norm over `axis` (all axes: None)."""
    if not _traced(x):
        return _np.linalg.vector_norm(x, axis=axis, keepdims=keepdims, ord=ord)
    if axis is None:
        out = _norm(_reshape(x, (-1,)), ord=ord)
        if keepdims:
            out = _reshape(out, (1,) * _np.ndim(_unwrap(x)))
        return out
    if isinstance(axis, (tuple, list)) and len(axis) != 1:
        ndim = _np.ndim(_unwrap(x))
        axes = tuple(int(a) % ndim for a in axis)
        rest = tuple(i for i in range(ndim) if i not in axes)
        shape = _np.shape(_unwrap(x))
        moved = _transpose(x, rest + axes)
        flat = _reshape(moved, tuple(shape[i] for i in rest) + (-1,))
        out = _norm(flat, ord=ord, axis=-1)
        if keepdims:
            out = _reshape(out, tuple(1 if i in axes else n for i, n in enumerate(shape)))
        return out
    if isinstance(axis, (tuple, list)):
        axis = axis[0]
    return _norm(x, ord=ord, axis=axis, keepdims=keepdims)


# -- decompositions ------------------------------------------------------------------
def cholesky(a, /, *, upper=False):
    """Traced `numpy.linalg.cholesky` (stacks allowed).

    Reads the lower triangle of `a` (the upper one with `upper=True`), as NumPy does;
    the gradient is zero on the other triangle and an off-diagonal entry of the read
    triangle collects the gradient of both symmetric positions (see
    `ardiff.ops.decompositions`).  For a symmetric input built from parameters (`B @
    B.T + c I`) the chain rule gives the same gradient as the symmetric convention.
    """
    return _cholesky(a, upper=upper)


def eigvalsh(a, UPLO="L"):
    """Traced `numpy.linalg.eigvalsh`: eigenvalues of the symmetric matrix whose triangle
    `UPLO` is that of `a`, ascending (stacks allowed).

    The gradient `V diag(g) Vᵀ` (moved onto the triangle read, see `cholesky`) also
    exists at repeated eigenvalues for functions symmetric in the tied eigenvalues (a
    sum, a trace); in general the sorted eigenvalues are only directionally
    differentiable there and the value returned is the gradient for the eigenvectors
    LAPACK picked.
    """
    return _eigvalsh(a, UPLO=UPLO)


def eigh(a, UPLO="L"):
    """Traced `numpy.linalg.eigh`: `(eigenvalues, eigenvectors)` of a symmetric matrix.

    Two ops, `eigvalsh` and `eigh_vectors`: the eigenvector part of the gradient is
    `V (F ∘ Vᵀ Ḡ) Vᵀ` with `F_ij = 1 / (w_j - w_i)`, which does not exist at a repeated
    eigenvalue; differentiating through the eigenvectors there raises `ValueError`
    (functions of the eigenvalues alone stay differentiable).  Eigenvectors are defined
    up to sign: the gradient is that of the signs NumPy returns, so functions that do
    not depend on the signs are the meaningful ones.  The input's triangle `UPLO` is
    read, as NumPy does (see `cholesky` for the gradient convention).

    Parameters
    ----------
    a : array_like, shape `(..., n, n)`
        Traced or plain; only its triangle `UPLO` is read.
    UPLO : {"L", "U"}
        The triangle read.

    Returns
    -------
    EighResult
        `(eigenvalues, eigenvectors)`: ascending eigenvalues `(..., n)` and the
        eigenvectors as columns `(..., n, n)`, traced when `a` is.

    Raises
    ------
    ValueError
        When the gradient flows through the eigenvectors at a repeated eigenvalue.
    """
    if not _traced(a):
        return _np.linalg.eigh(a, UPLO=UPLO)
    return EighResult(_eigvalsh(a, UPLO=UPLO), _eigh_vectors(a, UPLO=UPLO))


def svdvals(x, /):
    """Traced `numpy.linalg.svdvals`: singular values, descending (stacks allowed).

    The gradient `U diag(g) Vᵀ` holds wherever the singular values are distinct and
    nonzero; at ties it is the gradient for the singular vectors LAPACK picked (exact
    for functions symmetric in the tied values, such as the nuclear norm).
    """
    return _svdvals(x)


def svd(a, full_matrices=True, compute_uv=True, hermitian=False):
    """Traced `numpy.linalg.svd` (stacks allowed; `hermitian` must be False).

    `compute_uv=False` returns the singular values (op `svdvals`).  Otherwise
    `(U, S, Vh)` from the ops `svd_u`, `svdvals`, `svd_vt`.  The gradient through `U` or
    `Vh` needs distinct singular values, and nonzero ones for a rectangular matrix:
    where they tie (or vanish) making the gradient raises `ValueError`.  With
    `full_matrices=True` and a rectangular `a`, the larger factor's extra singular
    vectors are an arbitrary basis of a null space: differentiating through that factor
    raises `NotImplementedError` (through the other factor and `S` it works).  Singular
    vectors are defined up to a joint sign; the gradient is that of NumPy's choice.

    Parameters
    ----------
    a : array_like, shape `(..., m, n)`
        Traced or plain.
    full_matrices : bool
        Square `U` and `Vh` (True) or `k = min(m, n)` columns/rows (False).
    compute_uv : bool
        False: return the singular values only.
    hermitian : bool
        Must be False for traced input.

    Returns
    -------
    SVDResult or array
        `(U, S, Vh)`, or `S` (descending) without `compute_uv`.
    """
    if not _traced(a):
        return _np.linalg.svd(a, full_matrices=full_matrices, compute_uv=compute_uv,
                              hermitian=hermitian)
    if hermitian:
        raise NotImplementedError("ardiff: svd(hermitian=True) has no gradient; use eigh.")
    s = _svdvals(a)
    if not compute_uv:
        return s
    return SVDResult(_svd_u(a, full_matrices=full_matrices), s,
                     _svd_vt(a, full_matrices=full_matrices))


def qr(a, mode="reduced"):
    """Traced `numpy.linalg.qr` with `mode` "reduced", "complete" or "r" (stacks allowed).

    Ops `qr_q` and `qr_r`.  The gradient needs the first `min(m, n)` columns of `a`
    linearly independent (R without a zero on its diagonal), else making it raises
    `ValueError`; with `mode="complete"` and more rows than columns the extra columns of
    `Q` have no gradient (`NotImplementedError`); `mode="raw"` has none either.
    """
    if not _traced(a):
        return _np.linalg.qr(a, mode=mode)
    if mode == "r":
        return _qr_r(a, mode="reduced")
    if mode == "raw":
        raise NotImplementedError("ardiff: qr(mode='raw') has no gradient; use 'reduced'.")
    return QRResult(_qr_q(a, mode=mode), _qr_r(a, mode=mode))


def pinv(a, rcond=None, hermitian=False, **kwargs):
    """Traced `numpy.linalg.pinv` (stacks allowed).

    Differentiable where the rank is locally constant (the singular values cut off by
    `rcond`/`rtol` stay cut off): the gradient there is the classical one (Golub and
    Pereyra).  At a change of rank the pseudo-inverse is discontinuous.
    """
    if rcond is not None:
        kwargs["rcond"] = rcond
    if hermitian:
        kwargs["hermitian"] = True
    return _pinv(a, **kwargs)


def lstsq(a, b, rcond=None):
    """Traced `numpy.linalg.lstsq`: `(x, residuals, rank, s)`.

    `x = pinv(a, rcond) @ b` (differentiable where the rank is locally constant, see
    `pinv`), `residuals` the traced squared residual norms (empty unless `a` has full
    column rank and more rows than columns, as in NumPy), `rank` a plain int and `s`
    the traced singular values.  The cut-off follows NumPy: singular values below
    `rcond` times the largest are treated as zero, `rcond=None` meaning machine
    precision times `max(m, n)`.

    Parameters
    ----------
    a : array_like, shape `(m, n)`
        Coefficient matrix, traced or plain.
    b : array_like, shape `(m,)` or `(m, k)`
        Right-hand side(s), traced or plain.
    rcond : float, optional
        Relative cut-off for small singular values.

    Returns
    -------
    tuple
        `(x, residuals, rank, s)` as NumPy returns them.
    """
    if not _traced(a, b):
        return _np.linalg.lstsq(a, b, rcond=rcond)
    m, n = _np.shape(_unwrap(a))[-2:]
    cutoff = _np.finfo(_np.float64).eps * max(m, n) if rcond is None else rcond
    rank = int(_concrete(_np.linalg.matrix_rank, a,
                         tol=cutoff * _np.max(_np.linalg.svd(_unwrap(a), compute_uv=False),
                                              initial=0.0)))
    x = _matmul(_pinv(a, rcond=cutoff), b)
    if rank == n and m > n:
        r = b - _matmul(a, x)
        residuals = _sum(r * r, axis=0)
        if _np.ndim(_unwrap(b)) == 1:
            residuals = _reshape(residuals, (1,))
    else:
        residuals = _np.empty((0,))
    return x, residuals, rank, _svdvals(a)


def matrix_power(a, n):
    """Traced `numpy.linalg.matrix_power`: `a` to the integer power `n` (stacks allowed),
    by repeated squaring; negative `n` inverts first, `n = 0` gives the identity
    (gradient zero)."""
    if not _traced(a):
        return _np.linalg.matrix_power(a, n)
    n = int(_np.asarray(n))
    shape = _np.shape(_unwrap(a))
    if len(shape) < 2 or shape[-1] != shape[-2]:
        raise _np.linalg.LinAlgError("Last 2 dimensions of the array must be square")
    if n == 0:
        return a * 0.0 + _np.eye(shape[-1])
    if n < 0:
        a, n = inv(a), -n
    result = None
    power = a
    while True:
        if n & 1:
            result = power if result is None else _matmul(result, power)
        n >>= 1
        if not n:
            return result
        power = _matmul(power, power)


def multi_dot(arrays, *, out=None):
    """Traced `numpy.linalg.multi_dot`: the chained product, a first 1-D array read as a
    row and a last one as a column; multiplied in NumPy's cheapest order."""
    if out is not None:
        raise TypeError("ardiff.numpy.linalg.multi_dot: out= is not supported")
    arrays = list(arrays)
    if not _traced(arrays):
        return _np.linalg.multi_dot(arrays)
    if len(arrays) < 2:
        raise ValueError("Expecting at least two arrays.")
    shapes = [_np.shape(_unwrap(x)) for x in arrays]
    dims = [shapes[0][0] if len(shapes[0]) == 2 else 1] + \
        [s[-1] if len(s) == 2 or i == 0 else 1 for i, s in enumerate(shapes)]
    k = len(arrays)
    # the matrix-chain order (dynamic programming over split points)
    cost = [[0] * k for _ in range(k)]
    split = [[0] * k for _ in range(k)]
    for length in range(1, k):
        for i in range(k - length):
            j = i + length
            best = None
            for s in range(i, j):
                c = cost[i][s] + cost[s + 1][j] + dims[i] * dims[s + 1] * dims[j + 1]
                if best is None or c < best:
                    best, split[i][j] = c, s
            cost[i][j] = best

    def product(i, j):
        if i == j:
            return arrays[i]
        return _dot(product(i, split[i][j]), product(split[i][j] + 1, j))
    return product(0, k - 1)


def tensorinv(a, ind=2):
    """Traced `numpy.linalg.tensorinv`: `inv` of `a` reshaped to a square matrix."""
    if not _traced(a):
        return _np.linalg.tensorinv(a, ind=ind)
    shape = _np.shape(_unwrap(a))
    rows = int(_np.prod(shape[:ind]))
    return _reshape(inv(_reshape(a, (rows, -1))), shape[ind:] + shape[:ind])


def tensorsolve(a, b, axes=None):
    """Traced `numpy.linalg.tensorsolve`: `solve` on `a` reshaped to a square matrix."""
    if not _traced(a, b):
        return _np.linalg.tensorsolve(a, b, axes=axes)
    nd = _np.ndim(_unwrap(a))
    if axes is not None:
        axes = [int(i) % nd for i in axes]
        order = [i for i in range(nd) if i not in axes] + axes
        a = _transpose(a, tuple(order))
    shape = _np.shape(_unwrap(a))
    b_size = int(_np.size(_unwrap(b)))
    x_shape = shape[_np.ndim(_unwrap(b)):]
    x = solve(_reshape(a, (b_size, -1)), _reshape(b, (b_size,)))
    return _reshape(x, x_shape)


# -- plain values ----------------------------------------------------------------------
def matrix_rank(A, tol=None, hermitian=False, **kwargs):
    """`numpy.linalg.matrix_rank` of the plain value (an integer: no gradient)."""
    return _concrete(_np.linalg.matrix_rank, A, tol=tol, hermitian=hermitian, **kwargs)


def cond(x, p=None):
    """Traced `numpy.linalg.cond`: the ratio of the largest to the smallest singular value
    (`p` None, 2 or -2: its inverse) from `svdvals`, else `norm(x, p) * norm(inv(x), p)`,
    NumPy's formulas.  A singular matrix (an infinite condition number) has no gradient:
    `ValueError`."""
    if not _traced(x):
        return _np.linalg.cond(x, p)
    value = _np.linalg.cond(_unwrap(x), p)
    if not _np.all(_np.isfinite(value)):
        raise ValueError("ardiff.numpy.linalg.cond: the matrix is singular (or holds NaN), "
                         "so its condition number is not differentiable.")
    if p is None or p == 2 or p == -2:
        s = _svdvals(x)
        largest, smallest = s[..., 0], s[..., -1]
        return smallest / largest if p == -2 else largest / smallest
    return norm(x, p, axis=(-2, -1)) * norm(inv(x), p, axis=(-2, -1))


def eigvals(a):
    """Traced `numpy.linalg.eigvals`: eigenvalues of a general square matrix (complex in
    general; stacks allowed).  The gradient is V^-T diag(g) V^T (docs/complex.md); a real
    matrix gets the real part."""
    if not _traced(a):
        return _np.linalg.eigvals(a)
    return _eigvals(a)


def eig(a):
    """Traced `numpy.linalg.eig`: `(eigenvalues, eigenvectors)` of a general square matrix.

    Two ops, `eigvals` and `eig_vectors`.  NumPy normalises each eigenvector to unit norm
    but fixes its phase by no rule the input determines, so only functions invariant
    under those phases (abs(v), v v^H / (v^H v), ...) have a meaningful gradient; the
    gradient through the eigenvectors does not exist at a repeated eigenvalue
    (`ValueError`).
    """
    if not _traced(a):
        return _np.linalg.eig(a)
    return EigResult(_eigvals(a), _eig_vectors(a))


# -- the array-API names of numpy.linalg (NumPy 2) ---------------------------------------
def matmul(x1, x2, /):
    """Traced `numpy.linalg.matmul`."""
    return _matmul(x1, x2)


def outer(x1, x2, /):
    """Traced `numpy.linalg.outer` of two vectors."""
    if _np.ndim(_unwrap(x1)) != 1 or _np.ndim(_unwrap(x2)) != 1:
        raise ValueError("Input arrays must be one-dimensional")
    return _reshape(x1, (-1, 1)) * _reshape(x2, (1, -1))


def diagonal(x, /, *, offset=0):
    """Traced `numpy.linalg.diagonal`: diagonals of the last two axes."""
    return _diagonal(x, offset, -2, -1)


def trace(x, /, *, offset=0, dtype=None):
    """Traced `numpy.linalg.trace`: traces over the last two axes."""
    if dtype is not None:
        raise TypeError("ardiff.numpy.linalg.trace: dtype= is not supported on traced values.")
    return _sum(diagonal(x, offset=offset), axis=-1)


def vecdot(x1, x2, /, *, axis=-1):
    """Traced `numpy.linalg.vecdot`: `sum(conj(x1) * x2, axis)`."""
    return _vecdot(x1, x2, axis=axis)


def T(x):
    """The transpose of the last two axes (autograd's `numpy.linalg.T`; not a NumPy name,
    so outside `__all__`)."""
    return matrix_transpose(x)


__all__ = ["cholesky", "cond", "det", "diagonal", "eig", "eigh", "eigvals", "eigvalsh", "inv",
           "logabsdet", "lstsq", "matmul", "matrix_norm", "matrix_power", "matrix_rank",
           "matrix_transpose", "multi_dot", "norm", "outer", "pinv", "qr", "slogdet", "solve",
           "svd", "svdvals", "tensorinv", "tensorsolve", "trace", "vecdot", "vector_norm"]


def __getattr__(name):
    return getattr(_np.linalg, name)
