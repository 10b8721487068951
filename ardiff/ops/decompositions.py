"""Matrix decompositions and matrix functions: triangular solves, Cholesky, eigh, SVD,
QR, pseudo-inverse, LU, matrix exponential and square root, Sylvester equations.

Decompositions that return several arrays are **one op per output**: `eigh` is
`eigvalsh` (the eigenvalues) and `eigh_vectors`; the SVD is `svdvals`, `svd_u`
and `svd_vt`; QR is `qr_q` and `qr_r`.  Each op's VJP is the part of the
decomposition's derivative that flows through its own output (the derivative of a
decomposition is linear in the cotangents of its outputs, so the parts add up), and it
reads the other factors by calling their ops on the same argument, traced, so that
second order works.  The namespaces (`ardiff.numpy.linalg`, `ardiff.scipy.linalg`)
call the ops whose outputs are asked for: an output that is not used adds nothing to the
gradient, so a function of the eigenvalues alone stays differentiable at repeated
eigenvalues.  The price is that the forward decomposition runs once per output used.

Every op works on stacks of matrices (leading batch axes), like NumPy.

Symmetric inputs.  `cholesky`, `eigvalsh` and `eigh_vectors` read one triangle of
their argument, as LAPACK does (the lower one by default, `UPLO="U"` the upper one),
and their gradient is the derivative of that function: it is zero on the triangle that
is not read, and an off-diagonal entry of the read triangle collects the gradient of
both symmetric positions.  For any input built symmetrically (`B + B.T`, `B @ B.T`)
the chain rule then gives the same gradient as the symmetric convention.

Where a derivative does not exist (repeated eigenvalues or singular values under a
function of the eigenvectors or singular vectors, a rank-deficient QR or rectangular
SVD), making the VJP raises `ValueError` saying so, instead of returning inf or NaN.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg

from ..graph import unwrap
from ..op import TRANSPOSED_VJP, defop
from .complex_parts import conj, conj_if_complex, imag, real, real_only
from .linalg import inv, matmul, matrix_transpose, solve
from .reduce import sum_
from .shape import concatenate, getitem, reshape

__all__ = ["solve_triangular", "cholesky", "eigvalsh", "eigh_vectors", "eigvals", "eig_vectors",
           "svdvals", "svd_u",
           "svd_vt", "qr_q", "qr_r", "pinv", "lu_factor", "expm", "sqrtm",
           "solve_sylvester", "trans_code"]

mT = matrix_transpose


def _shape(x) -> tuple:
    return np.shape(unwrap(x))


def _plain(x) -> np.ndarray:
    return np.asarray(unwrap(x))


def _as_row(v):
    """(..., k) -> (..., 1, k): scales the columns of a matrix."""
    s = _shape(v)
    return reshape(v, s[:-1] + (1,) + s[-1:])


def _as_column(v):
    """(..., k) -> (..., k, 1): scales the rows of a matrix."""
    return reshape(v, _shape(v) + (1,))


def _off_diagonal(n: int) -> np.ndarray:
    return 1.0 - np.eye(n)


def _read_triangle(G, n: int, lower: bool):
    """The gradient w.r.t. a matrix of which only one triangle is read (and mirrored).

    `G` is the gradient w.r.t. the full symmetric matrix (any matrix whose
    symmetric part is that gradient); the triangle read collects `G_ij + G_ji`
    off the diagonal and `G_ii` on it, the other triangle gets zero.  For a complex
    (Hermitian) matrix the mirrored entry is the conjugate and only the real part of
    the diagonal is read: `G_ij + conj(G_ji)` and `Re G_ii` (docs/complex.md).
    """
    ones = np.ones((n, n))
    mask = (np.tril(ones) if lower else np.triu(ones)) - 0.5 * np.eye(n)
    return (G + conj_if_complex(mT(G))) * mask


def _distinct_or_raise(values, what: str, through: str) -> None:
    """Raise when two of the last-axis `values` are exactly equal: the derivative through
    `through` divides by their difference and does not exist there."""
    v = _plain(values)
    if v.shape[-1] < 2:
        return
    if np.any(np.diff(np.sort(v, axis=-1), axis=-1) == 0):
        raise ValueError(
            f"ardiff: the gradient through {through} does not exist where two {what} are "
            f"equal (they are not unique there). A function of the {what} alone "
            f"is differentiable at first order; otherwise perturb the input.")


# -- triangular solves -----------------------------------------------------------------
def trans_code(trans) -> int:
    """SciPy's `trans` argument (0/1/2 or 'N'/'T'/'C') as 0 (A x = b) or 1 (Aᵀ x = b)."""
    codes = {0: 0, 1: 1, 2: 1, "N": 0, "T": 1, "C": 1}
    if trans not in codes:
        raise ValueError(f"trans must be one of 0, 1, 2, 'N', 'T', 'C', not {trans!r}")
    return codes[trans]


def per_matrix(fun, arrays, core_ndims):
    """`fun` applied to each matrix of stacked `arrays` (`core_ndims` trailing axes each
    form one item), results stacked; one direct call without batch axes.

    SciPy batches its linear algebra only from version 1.15, and ardiff supports older
    versions, so stacks are looped over here.
    """
    arrays = [np.asarray(x) for x in arrays]
    batch = np.broadcast_shapes(*(x.shape[:x.ndim - c] for x, c in zip(arrays, core_ndims)))
    if not batch:
        return fun(*arrays)
    items = [np.broadcast_to(x, batch + x.shape[x.ndim - c:])
             for x, c in zip(arrays, core_ndims)]
    results = [fun(*(x[index] for x in items)) for index in np.ndindex(*batch)]
    return np.stack(results).reshape(batch + np.shape(results[0]))


def _solve_triangular_fwd(a, b, trans=0, lower=False, unit_diagonal=False):
    return per_matrix(lambda a, b: scipy.linalg.solve_triangular(
        a, b, trans=trans, lower=lower, unit_diagonal=unit_diagonal, check_finite=False),
        (a, b), (2, 1 if np.ndim(b) == 1 else 2))


def _triangle_mask(n: int, lower: bool, unit_diagonal: bool) -> np.ndarray:
    ones = np.ones((n, n))
    k = 1 if unit_diagonal else 0
    return np.tril(ones, -k) if lower else np.triu(ones, k)


def _solve_triangular_vjp(k, ans, a, b, trans=0, lower=False, unit_diagonal=False):
    t = trans_code(trans)
    vector = len(_shape(b)) == 1

    def adjoint(g):  # op(T)^-T g
        if vector and len(_shape(g)) > 1:  # a batch of vectors: solve them as columns
            x = solve_triangular(a, _as_column(g), trans=1 - t, lower=lower,
                                 unit_diagonal=unit_diagonal)
            return reshape(x, _shape(x)[:-1])
        return solve_triangular(a, g, trans=1 - t, lower=lower, unit_diagonal=unit_diagonal)

    if k == 1:
        return adjoint
    mask = _triangle_mask(_shape(a)[-1], lower, unit_diagonal)

    def vjp(g):
        gb = adjoint(g)
        outer = _as_column(gb) * _as_row(ans) if vector else matmul(gb, mT(ans))
        return -(outer if t == 0 else mT(outer)) * mask
    return vjp


def _solve_triangular_jvp(k, t, ans, a, b, trans=0, lower=False, unit_diagonal=False):
    """op(T) x = b: dx = op(T)^-1 (db - op(dT) x), dT the tangent's read triangle."""
    flags = dict(trans=trans, lower=lower, unit_diagonal=unit_diagonal)
    if k == 1:
        return solve_triangular(a, t, **flags)
    dT = t * _triangle_mask(_shape(a)[-1], lower, unit_diagonal)
    op_dT = dT if trans_code(trans) == 0 else mT(dT)
    if len(_shape(b)) == 1:  # a vector (or a batch of them): op(dT) x as columns
        product = matmul(op_dT, _as_column(ans))
        return -reshape(solve_triangular(a, product, **flags), _shape(ans))
    return -solve_triangular(a, matmul(op_dT, ans), **flags)


#: `scipy.linalg.solve_triangular`: `op(T) x = b` with `T` the lower or upper triangle
#: of `a` (unit diagonal if asked), `op` the identity (`trans=0`) or the transpose.
solve_triangular = defop("solve_triangular", _solve_triangular_fwd, vjp=_solve_triangular_vjp,
                         reads=(("ans", 0), (0,)),  # of b, only its number of dimensions
                         jvp=_solve_triangular_jvp)


def _right_solve_upper_t(X, R):
    """`X R^-T` for upper-triangular `R`: `(R^-1 Xᵀ)ᵀ`."""
    return mT(solve_triangular(R, mT(X), lower=False))


# -- Cholesky ------------------------------------------------------------------------
def _cholesky_vjp(ans, a, upper=False):
    n = _shape(a)[-1]
    # L = ans (lower); for upper=True the op returns U = Lᵀ of the upper triangle read
    L = mT(ans) if upper else ans
    phi = np.tril(np.ones((n, n)), -1) + 0.5 * np.eye(n)

    def vjp(g):
        gl = mT(g) if upper else g
        P = matmul(mT(L), gl) * phi                       # Φ(Lᵀ Ḡ)
        Y = solve_triangular(L, P, trans=1, lower=True)   # L^-T Φ
        S = mT(solve_triangular(L, mT(Y), trans=1, lower=True))  # L^-T Φ L^-1
        return _read_triangle(S, n, lower=not upper)
    return vjp


def _symmetric_from_triangle(t, n: int, lower: bool):
    """The symmetric matrix a real tangent `t` stands for when one triangle is read
    (the adjoint of `_read_triangle`): that triangle, mirrored."""
    ones = np.ones((n, n))
    tri, strict = (np.tril(ones), np.tril(ones, -1)) if lower else (np.triu(ones),
                                                                    np.triu(ones, 1))
    return t * tri + mT(t * strict)


def _cholesky_jvp(t, ans, a, upper=False):
    """dL = L Φ(L^-1 dS L^-T), Φ the lower triangle with half the diagonal, dS the
    symmetric tangent read from the triangle (real matrices; complex ones raise)."""
    if np.iscomplexobj(_plain(a)) or np.iscomplexobj(_plain(t)):
        return TRANSPOSED_VJP  # whose VJP refuses complex input, naming the op
    n = _shape(a)[-1]
    L = mT(ans) if upper else ans
    dS = _symmetric_from_triangle(t, n, lower=not upper)
    X = solve_triangular(L, dS, lower=True)                 # L^-1 dS
    Y = solve_triangular(L, mT(X), lower=True)              # L^-1 dS L^-T
    dL = matmul(L, Y * (np.tril(np.ones((n, n)), -1) + 0.5 * np.eye(n)))
    return mT(dL) if upper else dL


#: `numpy.linalg.cholesky` (lower factor of the lower triangle; `upper=True`: the upper
#: factor of the upper triangle, as NumPy >= 2 and `scipy.linalg.cholesky` give it).
cholesky = defop("cholesky", lambda a, upper=False: _cholesky_fwd(a, upper), _cholesky_vjp,
                 nonlinear=True, reads=(("ans",),), jvp=(_cholesky_jvp,))


def _cholesky_fwd(a, upper):
    if upper:
        return np.swapaxes(np.linalg.cholesky(np.swapaxes(a, -1, -2)), -1, -2)
    return np.linalg.cholesky(a)


# -- symmetric eigendecomposition ----------------------------------------------------
def _eigvalsh_vjp(ans, a, UPLO="L"):
    n = _shape(a)[-1]
    V = eigh_vectors(a, UPLO=UPLO)
    Vt = mT(V)
    Vc = conj_if_complex(V)  # dw_k = (V^H dA V)_kk: the gradient is conj(V) diag(g) V^T
    return lambda g: _read_triangle(matmul(Vc * _as_row(g), Vt), n, UPLO.upper() == "L")


def _eigh_vectors_vjp(ans, a, UPLO="L"):
    n = _shape(a)[-1]
    w = eigvalsh(a, UPLO=UPLO)
    _distinct_or_raise(w, "eigenvalues", "the eigenvectors of eigh")
    V = ans
    F = _off_diagonal(n) / (_as_row(w) - _as_column(w) + np.eye(n))  # 1/(w_j - w_i)

    Vc = conj_if_complex(V)  # conj(V) (F * (V^T g)) V^T; for a complex matrix up to
    # the eigenvectors' phases, which NumPy fixes by no rule: only functions that do not
    # depend on them (abs(v), v v^H, ...) have a gradient

    def vjp(g):
        G = matmul(matmul(Vc, F * matmul(mT(V), g)), mT(V))
        return _read_triangle(G, n, UPLO.upper() == "L")
    return vjp


def _eigvalsh_jvp(t, ans, a, UPLO="L"):
    """dw_k = (Vᵀ dS V)_kk, dS the symmetric tangent read from the triangle `UPLO`."""
    if np.iscomplexobj(_plain(a)) or np.iscomplexobj(_plain(t)):
        return TRANSPOSED_VJP  # Hermitian: the adjoint of the VJP's conjugate formula
    V = eigh_vectors(a, UPLO=UPLO)
    dS = _symmetric_from_triangle(t, _shape(a)[-1], UPLO.upper() == "L")
    return sum_(V * matmul(dS, V), axis=-2)


def _eigh_vectors_jvp(t, ans, a, UPLO="L"):
    """dV = V (F ∘ (Vᵀ dS V)), F_ij = 1 / (w_j - w_i) off the diagonal (real matrices)."""
    if np.iscomplexobj(_plain(a)) or np.iscomplexobj(_plain(t)):
        return TRANSPOSED_VJP
    n = _shape(a)[-1]
    w = eigvalsh(a, UPLO=UPLO)
    _distinct_or_raise(w, "eigenvalues", "the eigenvectors of eigh")
    F = _off_diagonal(n) / (_as_row(w) - _as_column(w) + np.eye(n))
    dS = _symmetric_from_triangle(t, n, UPLO.upper() == "L")
    return matmul(ans, F * matmul(mT(ans), matmul(dS, ans)))


#: Eigenvalues of a symmetric matrix (ascending), from the triangle `UPLO`.
eigvalsh = defop("eigvalsh", lambda a, UPLO="L": np.linalg.eigvalsh(a, UPLO=UPLO),
                 _eigvalsh_vjp, nonlinear=True, reads=((0,),), jvp=(_eigvalsh_jvp,))
#: Eigenvectors (columns) of a symmetric matrix, from the triangle `UPLO`.
eigh_vectors = defop("eigh_vectors", lambda a, UPLO="L": np.linalg.eigh(a, UPLO=UPLO)[1],
                     _eigh_vectors_vjp, nonlinear=True, reads=(("ans", 0),),
                     jvp=(_eigh_vectors_jvp,))


# -- general (non-symmetric) eigendecomposition ----------------------------------------
def _eigvals_vjp(ans, a):
    # dλ = diag(V^-1 dA V): the gradient is V^-T diag(g) V^T (holomorphic; a real matrix
    # keeps the real part, see ardiff.op.real_gradient)
    Vt = mT(eig_vectors(a))
    left = inv(Vt)
    return lambda g: matmul(left, _as_column(g) * Vt)


def _eigvals_jvp(t, ans, a):
    """dλ = diag(V^-1 dA V)."""
    V = eig_vectors(a)
    return sum_(mT(inv(V)) * matmul(t, V), axis=-2)


def _eig_vectors_vjp(ans, a):
    """dV = V C with C_ij = (V^-1 dA V)_ij / (λ_j - λ_i) off the diagonal, and a real
    diagonal keeping every column at unit norm (NumPy's normalisation; the phase of each
    eigenvector is not determined by `a`: only functions invariant under it, such as
    abs(v), have a gradient).  Its adjoint: V^-T [E * (B - V^T conj(V) Re(diag B))] V^T,
    B = V^T g, E_ij = 1 / (λ_j - λ_i) off the diagonal."""
    n = _shape(a)[-1]
    w = eigvals(a)
    _distinct_or_raise(w, "eigenvalues", "the eigenvectors of eig")
    V = ans
    Vt = mT(V)
    E = _off_diagonal(n) / (_as_row(w) - _as_column(w) + np.eye(n))
    gram = matmul(Vt, conj_if_complex(V))
    left = inv(Vt)
    eye = np.eye(n)

    def vjp(g):
        B = matmul(Vt, g)
        diagonal = real(B * eye) if np.iscomplexobj(unwrap(B)) else B * eye
        return matmul(matmul(left, E * (B - matmul(gram, diagonal))), Vt)
    return vjp


#: Eigenvalues of a general square matrix (complex in general), as `numpy.linalg.eigvals`.
eigvals = defop("eigvals", np.linalg.eigvals, _eigvals_vjp, nonlinear=True, reads=((0,),),
                jvp=(_eigvals_jvp,))
#: Unit-norm eigenvectors (columns) of a general square matrix, as `numpy.linalg.eig`.
eig_vectors = defop("eig_vectors", lambda a: np.linalg.eig(a)[1], _eig_vectors_vjp,
                    nonlinear=True, reads=(("ans", 0),), jvp=TRANSPOSED_VJP)


# -- singular value decomposition ----------------------------------------------------
def _svdvals_vjp(ans, a):
    U = svd_u(a, full_matrices=False)
    Vt = svd_vt(a, full_matrices=False)
    # ds_k = Re(u_k^H dA v_k): the gradient is conj(U diag(g) Vh) for a complex matrix
    return lambda g: conj_if_complex(matmul(U * _as_row(g), Vt))


def _svdvals_jvp(t, ans, a):
    """ds_k = Re(u_kᴴ dA v_k)."""
    U = svd_u(a, full_matrices=False)
    V = conj_if_complex(mT(svd_vt(a, full_matrices=False)))
    return sum_(conj_if_complex(U) * matmul(t, V), axis=-2)


def _svd_setup(a, full_matrices, factor):
    m, n = _shape(a)[-2:]
    k = min(m, n)
    if full_matrices and ((factor == "U" and m > n) or (factor == "Vt" and n > m)):
        raise NotImplementedError(
            f"ardiff: the gradient through svd's {factor} with full_matrices=True is not "
            f"defined for a {m}x{n} matrix: its last {abs(m - n)} singular vectors span a "
            "null space in no particular basis. Use full_matrices=False.")
    s = svdvals(a)
    _distinct_or_raise(s, "singular values", f"the singular vectors ({factor}) of svd")
    if m != n and np.any(_plain(s) == 0):
        raise ValueError(f"ardiff: svd: the singular vectors of a rank-deficient {m}x{n} "
                         "matrix are not differentiable (a zero singular value).")
    s2 = s * s
    F = _off_diagonal(k) / (_as_row(s2) - _as_column(s2) + np.eye(k))  # 1/(s_j² - s_i²)
    return m, n, s, F


def _svd_u_vjp_complex(U, Vt, m, n, s, F):
    """svd_u's VJP for a complex matrix A = U S V^H, in the gauge where the phases of the
    right singular vectors stay fixed (the pair's common phase is not determined by A:
    only functions invariant under it, such as abs(u), have a gradient):
    conj(U) [F * (B - B^H) S + i Im(diag B) / S] conj(Vh), B = U^T g, plus the part of
    g outside the span of U for a tall matrix."""
    Uc, Vc = conj(U), conj(Vt)
    k = min(m, n)
    eye = np.eye(k)

    def vjp(g):
        B = matmul(mT(U), g)
        core = (F * (B - conj(mT(B)))) * _as_row(s) + \
            eye * (imag(B) * 1j / _as_row(s))
        out = matmul(matmul(Uc, core), Vc)
        if m > n:
            out = out + matmul((g - matmul(Uc, B)) / _as_row(s), Vc)
        return out
    return vjp


def _svd_vt_vjp_complex(U, Vt, m, n, s, F):
    """svd_vt's VJP for a complex matrix (the gauge of `_svd_u_vjp_complex`):
    conj(U) [S F * (D - D^H)] conj(Vh), D = conj(Vh) g^H, plus the part of g outside the
    span of Vh for a wide matrix."""
    Uc, Vc = conj(U), conj(Vt)

    def vjp(g):
        D = matmul(Vc, mT(conj(g)))
        out = matmul(matmul(Uc, _as_column(s) * (F * (D - conj(mT(D))))), Vc)
        if n > m:
            out = out + matmul(Uc, (g - matmul(matmul(g, mT(Vt)), Vc)) / _as_column(s))
        return out
    return vjp


def _svd_u_vjp(ans, a, full_matrices=True):
    m, n, s, F = _svd_setup(a, full_matrices, "U")
    U = ans
    Vt = svd_vt(a, full_matrices=False)
    if np.iscomplexobj(_plain(a)):
        return _svd_u_vjp_complex(U, Vt, m, n, s, F)

    def vjp(g):
        UtG = matmul(mT(U), g)
        out = matmul(matmul(U, (F * (UtG - mT(UtG))) * _as_row(s)), Vt)
        if m > n:
            out = out + matmul((g - matmul(U, UtG)) / _as_row(s), Vt)
        return out
    return vjp


def _svd_vt_vjp(ans, a, full_matrices=True):
    m, n, s, F = _svd_setup(a, full_matrices, "Vt")
    Vt = ans
    V = mT(Vt)
    U = svd_u(a, full_matrices=False)
    if np.iscomplexobj(_plain(a)):
        return _svd_vt_vjp_complex(U, Vt, m, n, s, F)

    def vjp(g):
        gv = mT(g)
        VtG = matmul(Vt, gv)
        out = matmul(matmul(U, _as_column(s) * (F * (VtG - mT(VtG)))), Vt)
        if n > m:
            out = out + matmul(U, mT((gv - matmul(V, VtG)) / _as_row(s)))
        return out
    return vjp


#: Singular values (descending), as `numpy.linalg.svd(a, compute_uv=False)`.
svdvals = defop("svdvals", lambda a: np.linalg.svd(a, compute_uv=False), _svdvals_vjp,
                nonlinear=True, reads=((0,),), jvp=(_svdvals_jvp,))
#: The left singular vectors `U` of `numpy.linalg.svd`.
svd_u = defop("svd_u", lambda a, full_matrices=True: np.linalg.svd(a, full_matrices)[0],
              _svd_u_vjp, nonlinear=True, reads=(("ans", 0),), jvp=TRANSPOSED_VJP)
#: The right singular vectors `Vh` of `numpy.linalg.svd`.
svd_vt = defop("svd_vt", lambda a, full_matrices=True: np.linalg.svd(a, full_matrices)[2],
               _svd_vt_vjp, nonlinear=True, reads=(("ans", 0),), jvp=TRANSPOSED_VJP)


# -- QR ------------------------------------------------------------------------------
def _copyltu(M, k: int):
    """The symmetric matrix whose lower triangle is that of `M`."""
    strict = M * np.tril(np.ones((k, k)), -1)
    return strict + mT(strict) + M * np.eye(k)


def _qr_square(Q, R, gq, gr, k: int):
    """`(Ḡ_Q + Q copyltu(M)) R^-T` with `M = R Ḡ_Rᵀ - Ḡ_Qᵀ Q`, for `A = Q R`, `R` square."""
    M = None
    if gr is not None:
        M = matmul(R, mT(gr))
    if gq is not None:
        M = -matmul(mT(gq), Q) if M is None else M - matmul(mT(gq), Q)
    B = matmul(Q, _copyltu(M, k))
    if gq is not None:
        B = B + gq
    return _right_solve_upper_t(B, R)


def _qr_setup(a, mode, factor):
    if mode not in ("reduced", "complete"):
        raise NotImplementedError(f"ardiff: qr mode {mode!r} has no gradient; use 'reduced', "
                                  "'complete' or 'r'.")
    m, n = _shape(a)[-2:]
    if factor == "Q" and mode == "complete" and m > n:
        raise NotImplementedError(
            f"ardiff: the gradient through Q of qr(mode='complete') is not defined for a "
            f"{m}x{n} matrix: its last {m - n} columns span a null space in no particular "
            "basis. Use mode='reduced'.")
    k = min(m, n)
    Q = qr_q(a, mode="reduced")
    R = qr_r(a, mode="reduced")
    if np.any(np.diagonal(_plain(R), axis1=-2, axis2=-1)[..., :k] == 0):
        raise ValueError("ardiff: qr of a matrix whose first min(m, n) columns are linearly "
                         "dependent (R has a zero on its diagonal) is not differentiable.")
    return m, n, k, Q, R


def _split_columns(x, k: int, n: int):
    nd = len(_shape(x))
    left = getitem(x, (Ellipsis, slice(0, k)))
    right = getitem(x, (Ellipsis, slice(k, n))) if n > k else None
    return left, right, nd


def _qr_q_vjp(ans, a, mode="reduced"):
    m, n, k, Q, R = _qr_setup(a, mode, "Q")
    R1, _, _ = _split_columns(R, k, n)

    def vjp(g):
        gx = _qr_square(Q, R1, g, None, k)
        if n > k:
            zeros = np.zeros(_shape(gx)[:-1] + (n - k,))
            return concatenate(gx, zeros, axis=-1)
        return gx
    return vjp


def _qr_r_vjp(ans, a, mode="reduced"):
    m, n, k, Q, R = _qr_setup(a, mode, "R")
    R1, _, _ = _split_columns(R, k, n)
    Y = getitem(a, (Ellipsis, slice(k, n))) if n > k else None

    def vjp(g):
        if mode == "complete" and m > n:
            g = getitem(g, (Ellipsis, slice(0, k), slice(None)))
        g1, g2, _ = _split_columns(g, k, n)
        if Y is None:
            return _qr_square(Q, R1, None, g1, k)
        gx = _qr_square(Q, R1, matmul(Y, mT(g2)), g1, k)
        return concatenate(gx, matmul(Q, g2), axis=-1)
    return vjp


#: The orthonormal factor `Q` of `numpy.linalg.qr`.
qr_q = defop("qr_q", lambda a, mode="reduced": np.linalg.qr(a, mode=mode)[0], _qr_q_vjp,
             nonlinear=True, reads=((0,),), jvp=TRANSPOSED_VJP)
#: The triangular factor `R` of `numpy.linalg.qr`.
qr_r = defop("qr_r", lambda a, mode="reduced": np.linalg.qr(a, mode=mode)[1], _qr_r_vjp,
             nonlinear=True, reads=((0,),), jvp=TRANSPOSED_VJP)


# -- pseudo-inverse ------------------------------------------------------------------
def _pinv_vjp(ans, a, **kwargs):
    m, n = _shape(a)[-2:]
    P = ans  # n x m
    Pt = mT(P)

    def vjp(g):
        gt = mT(g)
        out = -matmul(matmul(Pt, g), Pt)
        out = out + matmul(gt - matmul(a, matmul(P, gt)), matmul(P, Pt))   # (I - A A⁺) Ḡᵀ A⁺ A⁺ᵀ
        out = out + matmul(matmul(Pt, P), gt - matmul(gt, matmul(P, a)))   # A⁺ᵀ A⁺ Ḡᵀ (I - A⁺ A)
        return out
    return vjp


#: `numpy.linalg.pinv` (keyword arguments passed on); differentiable where the rank is
#: locally constant.
pinv = defop("pinv", lambda a, **kwargs: np.linalg.pinv(a, **kwargs), _pinv_vjp,
             nonlinear=True, reads=(("ans", 0),), jvp=TRANSPOSED_VJP)


# -- LU ------------------------------------------------------------------------------
def lu_permutation(piv) -> np.ndarray:
    """LAPACK's row interchanges `piv` (stacks allowed) as permutations: `A[perm] = L U`
    for each matrix of the stack."""
    piv = np.asarray(piv)
    perm = np.empty(piv.shape, dtype=np.intp)
    for index in np.ndindex(*piv.shape[:-1]):
        p = np.arange(piv.shape[-1])
        for i, j in enumerate(piv[index]):
            p[[i, j]] = p[[j, i]]
        perm[index] = p
    return perm


def permute_rows(x, perm):
    """`x` with the rows of each matrix (or the entries of a vector) reordered by `perm`
    (one permutation per matrix of a stack), traced when `x` is."""
    perm = np.asarray(perm)
    if len(_shape(x)) == 1 or perm.ndim == 1:  # one matrix, or one vector for a stack
        return getitem(x, perm)
    batch = perm.shape[:-1]
    grids = tuple(np.arange(n).reshape((1,) * k + (n,) + (1,) * (len(batch) - k))
                  for k, n in enumerate(batch))
    return getitem(x, grids + (perm,))


def lu_pivots(a) -> tuple:
    """`scipy.linalg.lu_factor(a)` for a matrix or a stack of them: `(lu, piv)`."""
    a = np.asarray(a)
    lu = per_matrix(lambda m: scipy.linalg.lu_factor(m, check_finite=False)[0], (a,), (2,))
    piv = per_matrix(lambda m: scipy.linalg.lu_factor(m, check_finite=False)[1], (a,), (2,))
    return lu, piv


def _lu_factor_vjp(ans, a):
    n = _shape(a)[-1]
    if _shape(a)[-2] != n:
        raise NotImplementedError("ardiff: lu_factor has a gradient for square matrices.")
    piv = lu_pivots(_plain(a))[1]
    inverse = np.argsort(lu_permutation(piv), axis=-1)
    strict = np.tril(np.ones((n, n)), -1)

    def vjp(g):
        # A[perm] = L U with L = I + tril(lu, -1), U = triu(lu); the packed output
        # moves by tril(L X, -1) + triu(X U) where X = L^-1 dA[perm] U^-1.
        Lt_g = matmul(mT(ans * strict + np.eye(n)), g * strict)   # Lᵀ tril(Ḡ, -1)
        g_Ut = matmul(g * (1.0 - strict), mT(ans * (1.0 - strict)))  # triu(Ḡ) Uᵀ
        M = Lt_g * strict + g_Ut * (1.0 - strict)
        Y = solve_triangular(ans, M, trans=1, lower=True, unit_diagonal=True)  # L^-T M
        Z = mT(solve_triangular(ans, mT(Y), trans=0, lower=False))  # (U^-1 Yᵀ)ᵀ = Y U^-T
        return permute_rows(Z, inverse)
    return vjp


#: The packed `lu` of `scipy.linalg.lu_factor` (the pivots are plain: see
#: `ardiff.scipy.linalg.lu_factor`).
lu_factor = defop("lu_factor", lambda a: lu_pivots(a)[0],
                  _lu_factor_vjp, nonlinear=True, reads=(("ans", 0),), jvp=TRANSPOSED_VJP)


# -- matrix functions ----------------------------------------------------------------
def _expm_vjp(ans, a):
    s = _shape(a)
    n = s[-1]
    at = mT(a)
    zeros = np.zeros(s)

    def vjp(g):
        # the Fréchet derivative of exp at Aᵀ in the direction Ḡ is the upper-right
        # block of exp([[Aᵀ, Ḡ], [0, Aᵀ]])
        block = concatenate(concatenate(at, g, axis=-1), concatenate(zeros, at, axis=-1),
                            axis=-2)
        return getitem(expm(block), (Ellipsis, slice(0, n), slice(n, 2 * n)))
    return vjp


def _expm_jvp(t, ans, a):
    """The Fréchet derivative: the upper-right block of exp([[A, dA], [0, A]])."""
    n = _shape(a)[-1]
    zeros = np.zeros(_shape(a))
    block = concatenate(concatenate(a, t, axis=-1), concatenate(zeros, a, axis=-1), axis=-2)
    return getitem(expm(block), (Ellipsis, slice(0, n), slice(n, 2 * n)))


#: `scipy.linalg.expm`.
expm = defop("expm", lambda a: scipy.linalg.expm(a), _expm_vjp, nonlinear=True,
             reads=((0,),), jvp=(_expm_jvp,))


def _sqrtm_fwd(a):
    out = per_matrix(scipy.linalg.sqrtm, (a,), (2,))
    if np.iscomplexobj(out) and not np.iscomplexobj(a) and np.all(out.imag == 0):
        return out.real
    # a real matrix with an eigenvalue on the negative real axis has a complex principal
    # root: kept complex (the gradient of the real input is real, docs/complex.md)
    return out


def _sqrtm_vjp(ans, a):
    Xt = mT(ans)
    # X dX + dX X = dA, so Ā solves Xᵀ Ā + Ā Xᵀ = Ḡ
    return lambda g: solve_sylvester(Xt, Xt, g)


#: The principal square root `scipy.linalg.sqrtm` (complex where it is complex).
sqrtm = defop("sqrtm", _sqrtm_fwd, _sqrtm_vjp, nonlinear=True, reads=(("ans",),),
              jvp=(lambda t, ans, a: solve_sylvester(ans, ans, t),))  # X dX + dX X = dA


def _sylvester_vjp(k, ans, a, b, q):
    def adjoint(g):  # Aᵀ Y + Y Bᵀ = Ḡ
        return solve_sylvester(mT(a), mT(b), g)
    if k == 2:
        return adjoint
    if k == 0:
        return lambda g: -matmul(adjoint(g), mT(ans))
    return lambda g: -matmul(mT(ans), adjoint(g))


def _sylvester_jvp(k, t, ans, a, b, q):
    """A dX + dX B = dQ - dA X - X dB."""
    if k == 2:
        return solve_sylvester(a, b, t)
    return solve_sylvester(a, b, -(matmul(t, ans) if k == 0 else matmul(ans, t)))


#: `scipy.linalg.solve_sylvester`: `X` with `A X + X B = Q`.
solve_sylvester = defop("solve_sylvester",
                        lambda a, b, q: per_matrix(scipy.linalg.solve_sylvester, (a, b, q),
                                                   (2, 2, 2)),
                        vjp=_sylvester_vjp, nonlinear=True,
                        reads=(("ans", 0, 1), ("ans", 0, 1), (0, 1)), jvp=_sylvester_jvp)

# their complex versions are Hermitian / unitary: the real VJP formulas do not hold
for _op in (cholesky, qr_q, qr_r, pinv, lu_factor):
    real_only(_op, "its VJP is written for real matrices; the complex factorisation is "
                   "Hermitian or unitary")
del _op

# `solve` is re-exported for the namespaces' composite functions
__all__ += ["solve", "lu_permutation", "lu_pivots", "permute_rows", "per_matrix"]
