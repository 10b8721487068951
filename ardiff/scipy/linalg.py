"""`ardiff.scipy.linalg`: traced functions of `scipy.linalg`, under SciPy's names.

`solve_triangular`, `cholesky`, `cho_factor`/`cho_solve`, `lu_factor`/`lu_solve`,
`sqrtm`, `expm`, `solve_sylvester`, `solve_banded`, `eigh`, `eigvalsh`, `inv`,
`det`, `solve`, `svd`, `qr`.  The ops are in `ardiff.ops.decompositions`;
functions on triangles read only the triangle SciPy reads, and their gradient is zero
on the other one (see `ardiff.numpy.linalg.cholesky`).  Other names fall through to
`scipy.linalg` (a traced argument then raises).
"""

from __future__ import annotations

import numpy as _np
import scipy.linalg as _sla

from ..graph import TracerBase as _TracerBase
from ..graph import unwrap as _unwrap
from ..numpy import linalg as _nla
from ..ops.decompositions import cholesky as _cholesky
from ..ops.decompositions import eigh_vectors as _eigh_vectors
from ..ops.decompositions import eigvalsh as _eigvalsh
from ..ops.decompositions import expm as _expm
from ..ops.decompositions import lu_factor as _lu_factor
from ..ops.decompositions import lu_permutation as _lu_permutation
from ..ops.decompositions import lu_pivots as _lu_pivots
from ..ops.decompositions import permute_rows as _permute_rows
from ..ops.decompositions import solve_sylvester as _solve_sylvester
from ..ops.decompositions import solve_triangular as _solve_triangular
from ..ops.decompositions import sqrtm as _sqrtm
from ..ops.decompositions import trans_code as _trans_code
from ..ops.linalg import det, inv  # noqa: F401
from ..ops.linalg import solve as _solve
from ..ops.shape import getitem as _getitem
from ..ops.shape import untake as _untake


def _traced(*objs) -> bool:
    """Whether any of `objs` (or an element of a tuple among them) is traced; composed
    functions called on plain values return SciPy's own result instead."""
    return any(isinstance(o, _TracerBase) or (isinstance(o, tuple) and _traced(*o))
               for o in objs)


def _check_finite(check_finite, *arrays):
    if check_finite:
        for a in arrays:
            if not _np.all(_np.isfinite(_unwrap(a))):
                raise ValueError("array must not contain infs or NaNs")


def solve_triangular(a, b, trans=0, lower=False, unit_diagonal=False, overwrite_b=False,
                     check_finite=True):
    """Traced `scipy.linalg.solve_triangular`: `op(T) x = b` for the lower or upper
    triangle `T` of `a` (with ones on the diagonal if `unit_diagonal`), `op` the
    identity (`trans` 0 or "N") or the transpose (1, 2, "T", "C"); stacks allowed.

    The gradient w.r.t. `a` lives on the triangle read (off the diagonal only with
    `unit_diagonal`); the other entries of `a` do not influence `x`.

    Parameters
    ----------
    a : array_like, shape `(..., n, n)`
        Traced or plain; only the triangle `lower` selects is read.
    b : array_like, shape `(..., n)` for one vector or `(..., n, k)`
        Right-hand side(s), traced or plain.
    trans : {0, 1, 2, "N", "T", "C"}
        Solve `T x = b` (0, "N") or `Tᵀ x = b` (the others; real input).
    lower : bool
        Use the lower triangle (default: the upper one, as SciPy).
    unit_diagonal : bool
        Take the diagonal of `T` as ones (the diagonal of `a` is not read).
    overwrite_b : bool
        Ignored (nothing is overwritten).
    check_finite : bool
        Raise `ValueError` on infinities or NaNs, as SciPy.

    Returns
    -------
    array
        `x`, shaped like `b` (with the batch axes broadcast), traced when an input is.
    """
    _check_finite(check_finite, a, b)
    return _solve_triangular(a, b, trans=_trans_code(trans), lower=bool(lower),
                             unit_diagonal=bool(unit_diagonal))


def cholesky(a, lower=False, overwrite_a=False, check_finite=True):
    """Traced `scipy.linalg.cholesky`: the upper factor of the upper triangle by default
    (`lower=False`, as SciPy), or the lower factor of the lower triangle."""
    _check_finite(check_finite, a)
    return _cholesky(a, upper=not lower)


def cho_factor(a, lower=False, overwrite_a=False, check_finite=True):
    """Traced `scipy.linalg.cho_factor`: `(c, lower)`.

    Unlike SciPy, whose `c` keeps arbitrary values in the triangle it does not use,
    `c` here is the factor with zeros there (`cho_solve` reads only the factor).
    """
    if not _traced(a):
        return _sla.cho_factor(a, lower=lower, check_finite=check_finite)
    return cholesky(a, lower=lower, check_finite=check_finite), lower


def cho_solve(c_and_lower, b, overwrite_b=False, check_finite=True):
    """Traced `scipy.linalg.cho_solve`: `A x = b` from `(c, lower) = cho_factor(A)`."""
    if not _traced(c_and_lower, b):
        return _sla.cho_solve(c_and_lower, b, check_finite=check_finite)
    c, lower = c_and_lower
    _check_finite(check_finite, c, b)
    if lower:   # A = L Lᵀ
        y = _solve_triangular(c, b, trans=0, lower=True)
        return _solve_triangular(c, y, trans=1, lower=True)
    y = _solve_triangular(c, b, trans=1, lower=False)  # A = Uᵀ U
    return _solve_triangular(c, y, trans=0, lower=False)


def lu_factor(a, overwrite_a=False, check_finite=True):
    """Traced `scipy.linalg.lu_factor` of square matrices (stacks allowed): `(lu, piv)`.

    `lu` is traced (op `lu_factor`), `piv` plain: the row interchanges are piecewise
    constant, so the gradient is that of `L` and `U` for the pivoting found.
    """
    _check_finite(check_finite, a)
    piv = _lu_pivots(_unwrap(a))[1]
    return _lu_factor(a), piv


def _triangular(lu, b, vector, **kwargs):
    """`solve_triangular` with a stack of vectors `b` solved as columns."""
    if vector and _np.ndim(_unwrap(b)) > 1:
        x = _solve_triangular(lu, _expand_last(b), **kwargs)
        return _getitem(x, (Ellipsis, 0))
    return _solve_triangular(lu, b, **kwargs)


def _expand_last(x):
    return _getitem(x, (Ellipsis, None))


def lu_solve(lu_and_piv, b, trans=0, overwrite_b=False, check_finite=True):
    """Traced `scipy.linalg.lu_solve`: `A x = b` (`trans=0`) or `Aᵀ x = b` from
    `lu_factor(A)` (stacks allowed, `b` one vector `(n,)` or matrices `(..., n, k)`),
    differentiable w.r.t. `lu` and `b`."""
    if not _traced(lu_and_piv, b):
        return _sla.lu_solve(lu_and_piv, b, trans=trans, check_finite=check_finite)
    lu, piv = lu_and_piv
    _check_finite(check_finite, lu, b)
    perm = _lu_permutation(piv)
    vector = _np.ndim(_unwrap(b)) == 1
    if _trans_code(trans) == 0:  # A[perm] = L U
        y = _triangular(lu, _permute_rows(b, perm), vector, lower=True, unit_diagonal=True)
        return _triangular(lu, y, vector, lower=False)
    # Aᵀ x = b: Uᵀ Lᵀ (x[perm]) = b
    y = _triangular(lu, b, vector, trans=1, lower=False)
    z = _triangular(lu, y, vector, trans=1, lower=True, unit_diagonal=True)
    return _permute_rows(z, _np.argsort(perm, axis=-1))


def sqrtm(A, **kwargs):
    """Traced `scipy.linalg.sqrtm`: the principal square root, for matrices whose square
    root is real.  The gradient solves the Sylvester equation `Xᵀ Ā + Ā Xᵀ = Ḡ`."""
    return _sqrtm(A)


def expm(A):
    """Traced `scipy.linalg.expm` (stacks allowed); the gradient is the Fréchet
    derivative at `Aᵀ`, the corner of the exponential of a block matrix."""
    return _expm(A)


def solve_sylvester(a, b, q):
    """Traced `scipy.linalg.solve_sylvester`: `X` with `a X + X b = q`, w.r.t. all three."""
    return _solve_sylvester(a, b, q)


def solve_banded(l_and_u, ab, b, overwrite_ab=False, overwrite_b=False, check_finite=True):
    """Traced `scipy.linalg.solve_banded`: `A x = b` for `A` given by its diagonals
    (`A[i, j] = ab[u + i - j, j]`), differentiable w.r.t. `ab` (its band entries; the
    unused corners get zero) and `b`.  Solved as a dense system."""
    if not _traced(ab, b):
        return _sla.solve_banded(l_and_u, ab, b, check_finite=check_finite)
    lower, upper = (int(v) for v in l_and_u)
    _check_finite(check_finite, ab, b)
    n = _np.shape(_unwrap(ab))[-1]
    rows, cols = [], []
    for j in range(n):
        for i in range(max(0, j - upper), min(n, j + lower + 1)):
            rows.append(i)
            cols.append(j)
    rows, cols = _np.array(rows, dtype=int), _np.array(cols, dtype=int)
    band = _getitem(ab, (upper + rows - cols, cols))
    dense = _untake(band, (rows, cols), (n, n))
    return _solve(dense, b)


def eigh(a, b=None, *, lower=True, eigvals_only=False, overwrite_a=False, overwrite_b=False,
         type=1, check_finite=True, subset_by_index=None, subset_by_value=None, driver=None):
    """Traced `scipy.linalg.eigh` for the standard problem (`b=None`, all eigenvalues):
    the triangle `lower` of `a` is read; see `ardiff.numpy.linalg.eigh` for the
    gradient and its degenerate cases."""
    if b is not None or subset_by_index is not None or subset_by_value is not None:
        raise NotImplementedError("ardiff.scipy.linalg.eigh: only the standard problem "
                                  "(b=None) with every eigenvalue has a gradient.")
    if not _traced(a):
        return _sla.eigh(a, lower=lower, eigvals_only=eigvals_only, check_finite=check_finite)
    _check_finite(check_finite, a)
    uplo = "L" if lower else "U"
    w = _eigvalsh(a, UPLO=uplo)
    return w if eigvals_only else (w, _eigh_vectors(a, UPLO=uplo))


def eigvalsh(a, b=None, *, lower=True, **kwargs):
    """Traced `scipy.linalg.eigvalsh` (standard problem)."""
    return eigh(a, b, lower=lower, eigvals_only=True, **kwargs)


def solve(a, b, **kwargs):
    """Traced `scipy.linalg.solve` for a general square `a` (other options ignored)."""
    return _solve(a, b)


def svd(a, full_matrices=True, compute_uv=True, overwrite_a=False, check_finite=True,
        lapack_driver="gesdd"):
    """Traced `scipy.linalg.svd`; see `ardiff.numpy.linalg.svd` for the gradient."""
    if not _traced(a):
        return _sla.svd(a, full_matrices=full_matrices, compute_uv=compute_uv,
                        check_finite=check_finite, lapack_driver=lapack_driver)
    _check_finite(check_finite, a)
    return _nla.svd(a, full_matrices=full_matrices, compute_uv=compute_uv)


def qr(a, overwrite_a=False, lwork=None, mode="full", pivoting=False, check_finite=True):
    """Traced `scipy.linalg.qr` without pivoting, `mode` "full", "economic" or "r" (which
    returns `(R,)` as SciPy); see `ardiff.numpy.linalg.qr` for the gradient."""
    if pivoting or mode not in ("full", "economic", "r"):
        raise NotImplementedError("ardiff.scipy.linalg.qr: only mode 'full', 'economic' or "
                                  "'r' without pivoting has a gradient.")
    if not _traced(a):
        return _sla.qr(a, mode=mode, pivoting=pivoting, check_finite=check_finite)
    _check_finite(check_finite, a)
    if mode == "r":
        return (_nla.qr(a, mode="complete")[1],)
    return tuple(_nla.qr(a, mode="complete" if mode == "full" else "reduced"))


__all__ = ["cho_factor", "cho_solve", "cholesky", "det", "eigh", "eigvalsh", "expm", "inv",
           "lu_factor", "lu_solve", "qr", "solve", "solve_banded", "solve_sylvester",
           "solve_triangular", "sqrtm", "svd"]


def __getattr__(name):
    return getattr(_sla, name)
