"""Property-based cases for matrix decompositions and matrix functions
(``ardiff.numpy.linalg`` cholesky, eigh, eigvalsh, svd, svdvals, qr, pinv, lstsq,
matrix_power, multi_dot, tensorinv/tensorsolve, the matrix norms; ``ardiff.scipy.linalg``;
``ardiff.scipy.signal`` convolve and correlate), plus closed-form checks of the symmetric
input conventions and of the degenerate cases.

Inputs are drawn where the functions are smooth: symmetric positive definite
matrices (for Cholesky, with junk in the triangle that is not read), spectra and
singular values drawn apart (at least 0.5) and rotated by orthogonal matrices
``expm(S - Sᵀ)``, diagonally dominant matrices for QR, LU and triangular solves.
Functions of eigen- and singular vectors are chosen independent of their signs
(squares, ``U Vᵀ``).  Right-hand sides and signals have no zero entry: an exactly zero
gradient at some node keeps forward-initialised relaxation at eta = 1.5 from meeting its
relative tolerance (a known limitation of the solver, not of these ops).
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import scipy.signal
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from test_ops import Case, make_op_test, nonzero, reals, shapes

import ardiff
import ardiff.numpy as anp
import ardiff.scipy.linalg
import ardiff.scipy.signal


def sla(xp):
    """``scipy.linalg`` for NumPy, ``ardiff.scipy.linalg`` for ``ardiff.numpy``."""
    return scipy.linalg if xp is np else ardiff.scipy.linalg


def sig(xp):
    return scipy.signal if xp is np else ardiff.scipy.signal


# -- strategies ------------------------------------------------------------------------
def batch_and_n(max_batch=1, max_n=3):
    return st.tuples(shapes(max_dims=max_batch), st.integers(1, max_n))


def orthogonal(batch, n):
    """Orthogonal matrices ``expm(S - Sᵀ)``."""
    return reals(batch + (n, n), -1.0, 1.0).map(
        lambda s: scipy.linalg.expm(s - np.swapaxes(s, -1, -2)))


def spread_values(batch, n, lo=1.0):
    """Ascending values at least 0.5 apart, from `lo` up."""
    return reals(batch + (n,), 0.0, 0.4).map(lambda d: lo + 0.9 * np.arange(n) + d)


def symmetric_distinct(batch, n, junk=True):
    """``Q diag(w) Qᵀ`` with well-separated eigenvalues of either sign; with `junk`,
    arbitrary values in the upper triangle (never read)."""
    return st.tuples(orthogonal(batch, n), spread_values(batch, n, lo=-1.3),
                     reals(batch + (n, n))).map(
        lambda p: _with_junk(np.einsum("...ij,...j,...kj->...ik", p[0], p[1], p[0]),
                             p[2] if junk else None))


def _with_junk(a, junk, lower=True):
    if junk is None:
        return a
    n = a.shape[-1]
    mask = np.triu(np.ones((n, n)), 1) if lower else np.tril(np.ones((n, n)), -1)
    return a * (1 - mask) + junk * mask


def spd(batch, n, junk_upper=True):
    """Symmetric positive definite matrices; junk in the strict upper (`junk_upper`
    True) or lower (False) triangle, which Cholesky does not read; None: no junk."""
    return st.tuples(reals(batch + (n, n), -1.0, 1.0), reals(batch + (n, n))).map(
        lambda p: _with_junk(p[0] @ np.swapaxes(p[0], -1, -2) + n * np.eye(n),
                             None if junk_upper is None else p[1], lower=junk_upper))


def distinct_singular(batch, m, n):
    """``U diag(s) Vᵀ`` with singular values at least 0.5 apart, from 1 up."""
    k = min(m, n)
    return st.tuples(orthogonal(batch, m), orthogonal(batch, n), spread_values(batch, k)).map(
        lambda p: np.einsum("...ij,...j,...kj->...ik", p[0][..., :k], p[2][..., ::-1],
                            p[1][..., :k]))


def dominant(batch, m, n):
    """``m x n`` matrices with a dominant leading diagonal (full rank, QR/LU stable)."""
    return st.tuples(reals(batch + (m, n), -1.0, 1.0), hnp.arrays(np.bool_, (n,))).map(
        lambda p: p[0] + 2.0 * max(m, n) * np.eye(m, n) * np.where(p[1], -1.0, 1.0))


def one(strategy_of_shape, kwargs=None):
    return strategy_of_shape.map(lambda a: ((a,), dict(kwargs or {})))


@st.composite
def square_case(draw, make, max_batch=1, **kwargs):
    batch, n = draw(batch_and_n(max_batch))
    return (draw(make(batch, n)),), {k: draw(v) for k, v in kwargs.items()}


@st.composite
def rect_case(draw, make, max_batch=1, **kwargs):
    batch = draw(shapes(max_dims=max_batch))
    m, n = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    return (draw(make(batch, m, n)),), {k: draw(v) for k, v in kwargs.items()}


@st.composite
def triangular_args(draw):
    batch, n = draw(batch_and_n())
    lower = draw(st.booleans())
    a = draw(dominant(batch, n, n))
    vector = draw(st.booleans())
    b = draw(nonzero((n,) if vector else batch + (n, draw(st.integers(1, 3)))))
    kwargs = {"lower": lower, "trans": draw(st.sampled_from([0, 1, 2, "N", "T", "C"])),
              "unit_diagonal": draw(st.booleans())}
    if kwargs["unit_diagonal"]:
        a = a / (2.0 * n)  # off-diagonal entries small next to the unit diagonal
    return (a, b), kwargs


@st.composite
def spd_and_rhs(draw):
    n = draw(st.integers(1, 3))
    lower = draw(st.booleans())
    a = draw(spd((), n, junk_upper=lower))
    b = draw(nonzero((n,) if draw(st.booleans()) else (n, draw(st.integers(1, 3)))))
    return (a, b), {"lower": lower}


@st.composite
def lu_args(draw):
    """Rows of diagonally dominant matrices permuted (so LU pivots); stacks included."""
    batch, n = draw(batch_and_n())
    a = draw(dominant(batch, n, n))
    perm = np.array(draw(st.permutations(range(n))), dtype=int)
    b = draw(nonzero((n,) if draw(st.booleans()) else batch + (n, draw(st.integers(1, 3)))))
    return (a[..., perm, :], b), {"trans": draw(st.sampled_from([0, 1]))}


@st.composite
def sylvester_args(draw):
    m, n = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    return (draw(dominant((), m, m).map(np.abs)), draw(dominant((), n, n).map(np.abs)),
            draw(nonzero((m, n)))), {}


@st.composite
def banded_args(draw):
    n = draw(st.integers(1, 4))
    lower, upper = draw(st.integers(0, 2)), draw(st.integers(0, 2))
    ab = draw(reals((lower + upper + 1, n), -1.0, 1.0))
    ab[upper] += 2.0 * (lower + upper + 1)
    b = draw(nonzero((n,) if draw(st.booleans()) else (n, 2)))
    return (ab, b), {"l_and_u": (lower, upper)}


@st.composite
def lstsq_args(draw):
    n = draw(st.integers(1, 3))
    m = n + draw(st.integers(0, 2))
    a = draw(distinct_singular((), m, n))  # s is returned: its second derivative needs ties
    b = draw(nonzero((m,) if draw(st.booleans()) else (m, draw(st.integers(1, 2)))))
    return (a, b), {}


@st.composite
def matrix_power_args(draw):
    batch, n = draw(batch_and_n())
    a = draw(dominant(batch, n, n)) / (2.0 * n)
    return (a,), {"n": draw(st.integers(-2, 4))}


@st.composite
def multi_dot_args(draw):
    k = draw(st.integers(2, 4))
    dims = [draw(st.integers(1, 3)) for _ in range(k + 1)]
    arrays = [draw(nonzero((dims[i], dims[i + 1]))) for i in range(k)]
    if draw(st.booleans()):
        arrays[0] = arrays[0][0]
    if draw(st.booleans()):
        arrays[-1] = arrays[-1][:, 0]
    return tuple(arrays), {}


@st.composite
def matrix_norm_args(draw):
    """Every matrix ord: distinct singular values for 2/-2/nuc; distinct absolute row and
    column sums and no zero entries for 1/-1/inf/-inf; any pair of axes of a stack."""
    ord_ = draw(st.sampled_from(["nuc", 2, -2, 1, -1, np.inf, -np.inf]))
    batch = draw(shapes(max_dims=1))
    r, c = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    if ord_ in ("nuc", 2, -2):
        x = draw(distinct_singular(batch, r, c))
    else:
        u = draw(reals(batch + (r, c), 0.1, 0.5))
        signs = np.where(draw(hnp.arrays(np.bool_, batch + (r, c))), -1.0, 1.0)
        x = signs * (u + 3.0 * np.arange(r * c).reshape(r, c))
    nd = x.ndim
    if nd == 2 and draw(st.booleans()):
        return (x,), {"ord": ord_, "axis": None, "keepdims": draw(st.booleans())}
    row, col = draw(st.permutations(range(nd)))[:2]
    x = np.moveaxis(x, (nd - 2, nd - 1), (row, col))
    if draw(st.booleans()):
        row -= nd
    return (x,), {"ord": ord_, "axis": (row, col), "keepdims": draw(st.booleans())}


@st.composite
def convolve_args(draw):
    nd = draw(st.integers(1, 2))
    mode = draw(st.sampled_from(["full", "valid", "same"]))
    s1 = tuple(draw(st.integers(1, 4)) for _ in range(nd))
    if mode == "valid":
        small = tuple(draw(st.integers(1, n)) for n in s1)
        s1, s2 = (s1, small) if draw(st.booleans()) else (small, s1)
    else:
        s2 = tuple(draw(st.integers(1, 4)) for _ in range(nd))
    return (draw(nonzero(s1)), draw(nonzero(s2))), {"mode": mode}


@st.composite
def general_convolve_args(draw):
    """autograd's generalised convolve: in1 (k, n1), in2 (k, j, n2), conv axes 1 and 2,
    dot axes 0 and 0."""
    k, j = draw(st.integers(1, 3)), draw(st.integers(1, 2))
    n1, n2 = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    return (draw(nonzero((k, n1))), draw(nonzero((k, j, n2)))), {
        "mode": draw(st.sampled_from(["full", "valid", "same"]))}


def _general_convolve(xp, a, b, mode):
    if xp is not np:
        return ardiff.scipy.signal.convolve(a, b, axes=([1], [2]), dot_axes=([0], [0]),
                                            mode=mode)
    # reference: one SciPy convolution per slice, summed over the dot axis
    return np.stack([sum(scipy.signal.convolve(a[i], b[i, j], mode) for i in range(a.shape[0]))
                     for j in range(b.shape[1])])


@st.composite
def tensorinv_args(draw):
    a = draw(dominant((), 4, 4))
    return (a.reshape(2, 2, 4) if draw(st.booleans()) else a.reshape(4, 2, 2),), {}


@st.composite
def tensorsolve_args(draw):
    a = draw(dominant((), 6, 6)).reshape(6, 2, 3)
    return (a, draw(nonzero((6,)))), {}


# -- the programs ------------------------------------------------------------------------
def _eigh(xp, a, UPLO):
    w, v = xp.linalg.eigh(a, UPLO=UPLO)
    return xp.concatenate([w[..., None, :], v * v * np.array([1.0, -2.0, 3.0])[:v.shape[-1]]],
                          axis=-2)


def _svd(xp, a, full_matrices):
    u, s, vt = xp.linalg.svd(a, full_matrices=full_matrices)
    k = s.shape[-1]
    polar = u[..., :, :k] @ vt[..., :k, :]
    # (a term like sum(u ** 2) would have a gradient that cancels to round-off, which
    # relaxation at eta = 1.5 cannot resolve to the harness's 1e-12 relative tolerance)
    return xp.sum(polar * polar * 1.5 + polar, axis=-1) + xp.sum(s ** 2, axis=-1, keepdims=True)


def _svd_vt(xp, a):
    _, s, vt = xp.linalg.svd(a, full_matrices=False)
    return xp.sum(vt ** 2 * np.arange(1.0, vt.shape[-1] + 1), axis=-2) * s[..., :1]


def _qr(xp, a, mode):
    q, r = xp.linalg.qr(a, mode=mode)
    return xp.sum(q * 1.5, axis=-1) + xp.sum(r[..., :q.shape[-1], :] ** 2, axis=-2).sum(
        axis=-1, keepdims=True)


def _lstsq(xp, a, b):
    x, res, rank, s = xp.linalg.lstsq(a, b, rcond=None)
    return xp.sum(x) + xp.sum(res) + xp.sum(s)


def _cho(xp, a, b, lower):
    return sla(xp).cho_solve(sla(xp).cho_factor(a, lower=lower), b)


def _lu(xp, a, b, trans):
    lu, piv = sla(xp).lu_factor(a)
    return sla(xp).lu_solve((lu, piv), b, trans=trans) + xp.sum(lu * lu)


def _scipy_eigh(xp, a, lower):
    w, v = sla(xp).eigh(a, lower=lower)
    return w + xp.sum(v ** 2 * np.arange(1.0, v.shape[-1] + 1), axis=0)


CASES = [
    Case("linalg.cholesky", lambda xp, a: xp.linalg.cholesky(a),
         square_case(lambda b, n: spd(b, n)), ops=("cholesky",)),
    Case("linalg.cholesky_upper", lambda xp, a: xp.linalg.cholesky(a, upper=True),
         square_case(lambda b, n: spd(b, n, junk_upper=False)), ops=("cholesky",)),
    Case("linalg.eigh", lambda xp, a, UPLO: _eigh(xp, a, UPLO),
         square_case(lambda b, n: symmetric_distinct(b, n), UPLO=st.just("L")),
         ops=("eigvalsh", "eigh_vectors")),
    Case("linalg.eigh_upper", lambda xp, a, UPLO: _eigh(xp, a, UPLO),
         square_case(lambda b, n: symmetric_distinct(b, n, junk=False), UPLO=st.just("U")),
         ops=("eigvalsh", "eigh_vectors")),
    Case("linalg.eigvalsh", lambda xp, a, **kw: xp.linalg.eigvalsh(a, **kw) ** 2,
         square_case(lambda b, n: symmetric_distinct(b, n), UPLO=st.sampled_from("LU")),
         ops=("eigvalsh",)),
    Case("linalg.svd", lambda xp, a, full_matrices: _svd(xp, a, full_matrices),
         st.one_of(rect_case(distinct_singular, full_matrices=st.just(False)),
                   square_case(lambda b, n: distinct_singular(b, n, n),
                               full_matrices=st.just(True))),
         ops=("svdvals", "svd_u", "svd_vt")),
    Case("linalg.svd_vt", _svd_vt, rect_case(distinct_singular), ops=("svdvals", "svd_vt")),
    Case("linalg.svd_values", lambda xp, a: xp.linalg.svd(a, compute_uv=False) ** 2,
         rect_case(distinct_singular), ops=("svdvals",)),
    Case("linalg.svdvals", lambda xp, a: xp.linalg.svdvals(a), rect_case(distinct_singular),
         ops=("svdvals",)),
    Case("linalg.qr", lambda xp, a, mode: _qr(xp, a, mode),
         rect_case(dominant, mode=st.sampled_from(["reduced", "complete"])).filter(
             lambda c: c[1]["mode"] == "reduced" or c[0][0].shape[-2] <= c[0][0].shape[-1]),
         ops=("qr_q", "qr_r")),
    Case("linalg.qr_r", lambda xp, a: xp.linalg.qr(a, mode="r") ** 2, rect_case(dominant),
         ops=("qr_r",)),
    Case("linalg.pinv", lambda xp, a: xp.linalg.pinv(a), rect_case(dominant), ops=("pinv",)),
    Case("linalg.lstsq", _lstsq, lstsq_args(), ops=("pinv", "svdvals")),
    Case("linalg.matrix_power", lambda xp, a, n: xp.linalg.matrix_power(a, n),
         matrix_power_args(), ops=()),
    Case("linalg.multi_dot", lambda xp, *arrays: xp.linalg.multi_dot(arrays),
         multi_dot_args(), ops=("dot",)),
    Case("linalg.norm_matrix_ords", lambda xp, x, **kw: xp.linalg.norm(x, **kw),
         matrix_norm_args(), ops=()),
    Case("linalg.tensorinv", lambda xp, a: xp.linalg.tensorinv(a, ind=1 if a.shape[0] == 4
                                                                else 2),
         tensorinv_args(), ops=("inv",)),
    Case("linalg.tensorsolve", lambda xp, a, b: xp.linalg.tensorsolve(a, b),
         tensorsolve_args(), ops=("solve",)),
    # scipy.linalg (no NumPy dispatch: scipy functions do not dispatch on tracers)
    Case("scipy.linalg.solve_triangular",
         lambda xp, a, b, **kw: sla(xp).solve_triangular(a, b, **kw), triangular_args(),
         ops=("solve_triangular",), dispatch=False),
    Case("scipy.linalg.cholesky", lambda xp, a, lower: sla(xp).cholesky(a, lower=lower),
         st.booleans().flatmap(lambda lower: square_case(
             lambda b, n: spd((), n, junk_upper=lower), max_batch=0,
             lower=st.just(lower))), ops=("cholesky",), dispatch=False),
    Case("scipy.linalg.cho_solve", _cho, spd_and_rhs(), ops=("cholesky", "solve_triangular"),
         dispatch=False),
    Case("scipy.linalg.lu_solve", _lu, lu_args(), ops=("lu_factor", "solve_triangular"),
         dispatch=False),
    Case("scipy.linalg.sqrtm", lambda xp, a: sla(xp).sqrtm(a),
         square_case(lambda b, n: spd(b, n, junk_upper=None)), ops=("sqrtm",),
         dispatch=False),
    Case("scipy.linalg.expm", lambda xp, a: sla(xp).expm(a),
         square_case(lambda b, n: reals(b + (n, n), -1.0, 1.0)), ops=("expm",),
         dispatch=False),
    Case("scipy.linalg.solve_sylvester", lambda xp, a, b, q: sla(xp).solve_sylvester(a, b, q),
         sylvester_args(), ops=("solve_sylvester",), dispatch=False),
    Case("scipy.linalg.solve_banded",
         lambda xp, ab, b, l_and_u: sla(xp).solve_banded(l_and_u, ab, b), banded_args(),
         ops=("solve",), dispatch=False),
    Case("scipy.linalg.eigh", lambda xp, a, lower: _scipy_eigh(xp, a, lower),
         st.booleans().flatmap(lambda lower: square_case(
             lambda b, n: symmetric_distinct((), n, junk=lower), max_batch=0,
             lower=st.just(lower))), ops=("eigvalsh", "eigh_vectors"), dispatch=False),
    Case("scipy.linalg.inv_det", lambda xp, a: sla(xp).inv(a) * sla(xp).det(a),
         square_case(lambda b, n: dominant((), n, n), max_batch=0), ops=("inv", "det"),
         dispatch=False),
    Case("scipy.signal.convolve", lambda xp, a, b, mode: sig(xp).convolve(a, b, mode=mode),
         convolve_args(), ops=("convolve_nd",), dispatch=False),
    Case("scipy.signal.convolve_axes", _general_convolve, general_convolve_args(),
         ops=("convolve_nd",), dispatch=False),
    Case("scipy.signal.correlate", lambda xp, a, b, mode: sig(xp).correlate(a, b, mode=mode),
         convolve_args(), ops=("convolve_nd",), dispatch=False),
]

# NumPy 1.26 (the oldest supported) has neither svdvals nor cholesky(upper=): its reference
# forward does not exist there; the ops themselves are covered by the other cases.
if np.lib.NumpyVersion(np.__version__) < "2.0.0":
    CASES = [c for c in CASES if c.name not in ("linalg.svdvals", "linalg.cholesky_upper")]

test_decompositions = make_op_test(CASES)


# -- the exact triangular solver: every op, through the VJP fallback -----------------------
RNG = np.random.default_rng(3)


def _spd(n, batch=()):
    m = RNG.standard_normal(batch + (n, n))
    return m @ np.swapaxes(m, -1, -2) + n * np.eye(n)


_A = _spd(3, (2,))
_R = RNG.standard_normal((3, 2))
JACOBIAN_CASES = [
    ("solve_triangular", (_A, RNG.standard_normal((2, 3, 2))), {"lower": True}, [0, 1]),
    ("solve_triangular", (_A[0], RNG.standard_normal(3)), {"trans": 1, "unit_diagonal": True},
     [0, 1]),
    ("cholesky", (_A,), {}, [0]),
    ("eigvalsh", (_A,), {}, [0]),
    ("eigh_vectors", (_A,), {"UPLO": "U"}, [0]),
    ("svdvals", (_R,), {}, [0]),
    ("svd_u", (_R,), {"full_matrices": False}, [0]),
    ("svd_vt", (_R.T,), {"full_matrices": True}, [0]),
    ("qr_q", (_R,), {}, [0]),
    ("qr_r", (_R.T,), {}, [0]),
    ("pinv", (_R,), {}, [0]),
    ("lu_factor", (_A[0],), {}, [0]),
    ("lu_factor", (_A[:, ::-1],), {}, [0]),
    ("expm", (_A[0] / 5,), {}, [0]),
    ("sqrtm", (_A[0],), {}, [0]),
    ("solve_sylvester", (_A[0], _A[1], _R @ _R.T), {}, [0, 1, 2]),
    ("convolve_nd", (RNG.standard_normal((3, 2)), RNG.standard_normal((2, 2))),
     {"mode": "full"}, [0, 1]),
    ("convolve_nd", (RNG.standard_normal(5), RNG.standard_normal(3)), {"mode": "valid"},
     [0, 1]),
]
_DENSE = "dense Jacobian (every output depends on every input entry): built from VJPs"
VJP_FALLBACK = [(name, _DENSE) for name in (
    "cholesky", "eigvalsh", "eigh_vectors", "svdvals", "svd_u", "svd_vt", "qr_q", "qr_r",
    "pinv", "lu_factor", "expm", "sqrtm", "solve_sylvester")] + [
    ("solve_triangular", "triangular inverse times the solution: dense within each matrix"),
    ("convolve_nd", "banded Toeplitz blocks, small in practice: built from VJPs")]


# -- closed forms -------------------------------------------------------------------------
SOLVERS = [dict(method="backprop"), dict(method="relax"), dict(method="triangular")]


@pytest.mark.parametrize("options", SOLVERS, ids=lambda o: o["method"])
def test_cholesky_gradient_lives_on_the_lower_triangle(options):
    # f(A) = sum(L) with A = [[a, b], [b, c]] read from the lower triangle:
    # L = [[sqrt(a), 0], [b / sqrt(a), sqrt(c - b²/a)]]
    a, b, c = 4.0, 1.0, 3.0
    A = np.array([[a, 99.0], [b, c]])
    g = ardiff.grad(lambda A: anp.sum(anp.linalg.cholesky(A)), **options)(A)
    d = np.sqrt(c - b * b / a)
    expected = [[0.5 / np.sqrt(a) - 0.5 * b / a ** 1.5 + 0.5 * b * b / (a * a * d), 0.0],
                [1.0 / np.sqrt(a) - b / (a * d), 0.5 / d]]
    np.testing.assert_allclose(g, expected, rtol=1e-12)
    # through a symmetric parametrisation both conventions agree: d/dB of logdet(B Bᵀ + I)
    B = np.array([[1.0, 0.5], [-0.3, 2.0]])
    gb = ardiff.grad(lambda B: 2.0 * anp.sum(anp.log(anp.diagonal(
        anp.linalg.cholesky(B @ B.T + np.eye(2))))), **options)(B)
    np.testing.assert_allclose(gb, 2.0 * np.linalg.inv(B @ B.T + np.eye(2)) @ B, rtol=1e-12)


@pytest.mark.parametrize("options", SOLVERS, ids=lambda o: o["method"])
def test_eigenvalue_gradients_closed_form(options):
    # dλ_i/dA = v_i v_iᵀ (symmetric), moved onto the lower triangle
    A = np.array([[2.0, 0.0], [1.0, 2.0]])  # eigenvalues 1 and 3, v = (1, ∓1)/√2
    g = ardiff.grad(lambda A: anp.linalg.eigvalsh(A)[1], **options)(A)
    np.testing.assert_allclose(g, [[0.5, 0.0], [1.0, 0.5]], atol=1e-12)
    # a function of the eigenvalues alone is fine at a repeated eigenvalue: trace(A)
    g = ardiff.grad(lambda A: anp.sum(anp.linalg.eigh(A)[0]), **options)(np.eye(3))
    np.testing.assert_allclose(g, np.eye(3), atol=1e-12)


def test_eigenvectors_at_a_repeated_eigenvalue_raise():
    with pytest.raises(ValueError, match="two eigenvalues are equal"):
        ardiff.grad(lambda A: anp.sum(anp.linalg.eigh(A)[1] ** 3))(np.eye(3))
    with pytest.raises(ValueError, match="two singular values are equal"):
        ardiff.grad(lambda A: anp.sum(anp.linalg.svd(A)[0] ** 3))(np.eye(2))


def test_singular_value_gradient_and_norms_closed_form():
    x = np.array([[3.0, 0.0], [0.0, -2.0], [0.0, 0.0]])
    # nuclear norm: U Vᵀ; 2-norm: u1 v1ᵀ; -2: u2 v2ᵀ
    for ord_, expected in (("nuc", [[1, 0], [0, -1], [0, 0]]), (2, [[1, 0], [0, 0], [0, 0]]),
                           (-2, [[0, 0], [0, -1], [0, 0]])):
        g = ardiff.grad(lambda x: anp.linalg.norm(x, ord=ord_))(x)
        np.testing.assert_allclose(g, expected, atol=1e-12)
    # 1-norm: the largest absolute column sum, its signs; inf: the largest row
    y = np.array([[1.0, -4.0], [2.0, 2.0]])
    np.testing.assert_allclose(ardiff.grad(lambda y: anp.linalg.norm(y, 1))(y),
                               [[0, -1], [0, 1]])
    np.testing.assert_allclose(ardiff.grad(lambda y: anp.linalg.norm(y, np.inf))(y),
                               [[1, -1], [0, 0]])
    # tied rows share the gradient evenly (the max's convention)
    y = np.array([[1.0, -4.0], [2.0, 3.0]])
    np.testing.assert_allclose(ardiff.grad(lambda y: anp.linalg.norm(y, np.inf))(y),
                               [[0.5, -0.5], [0.5, 0.5]])


def test_full_matrices_factor_without_gradient_and_plain_values():
    a = np.arange(6.0).reshape(3, 2) + np.eye(3, 2)
    with pytest.raises(NotImplementedError, match="full_matrices=False"):
        ardiff.grad(lambda a: anp.sum(anp.linalg.svd(a)[0]))(a)
    # the other factor and the singular values of the same call are fine
    g = ardiff.grad(lambda a: anp.sum(anp.linalg.svd(a)[1]))(a)
    u, _, vt = np.linalg.svd(a, full_matrices=False)
    np.testing.assert_allclose(g, u @ vt, atol=1e-12)

    expected = np.linalg.cond(a)

    def plain(a):
        assert anp.linalg.matrix_rank(a) == 2  # an integer: plain
        # cond is traced (issue 20): its value is NumPy's; its gradient is in the survey
        assert anp.linalg.cond(a).value == pytest.approx(expected)
        return anp.sum(a)

    np.testing.assert_allclose(ardiff.grad(plain)(a), np.ones((3, 2)))


def test_numpy_dispatch_of_decompositions():
    a = np.array([[4.0, 1.0], [1.0, 3.0]])

    def f(a):
        w, v = np.linalg.eigh(a)
        return np.sum(np.linalg.cholesky(a)) + np.sum(w) + np.sum(np.linalg.svd(a)[1]) \
            + np.sum(np.linalg.qr(a)[1] ** 2) + np.sum(np.linalg.pinv(a)) + \
            np.linalg.norm(a, "nuc")

    graph = ardiff.trace(f, a)
    names = {node.op_name for node in graph.nodes}
    assert {"cholesky", "eigvalsh", "svdvals", "qr_r", "pinv"} <= names


@pytest.mark.parametrize("mode", ["full", "valid"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.int64])
def test_sliding_convolve_equals_scipy_direct(mode, dtype):
    # the convolve op's fast path where SciPy would run its direct method
    from ardiff.ops.signal import sliding_convolve

    rng = np.random.default_rng(3)
    for shape_a, shape_b in [((7,), (3,)), ((6, 5), (2, 3)), ((4, 1, 6, 5), (2, 3, 1, 2)),
                             ((9, 2, 1, 7, 7), (9, 1, 3, 3, 3))]:
        if mode == "valid":
            shape_a = tuple(max(m, n) for m, n in zip(shape_a, shape_b))
        a = (rng.standard_normal(shape_a) * 10).astype(dtype)
        b = (rng.standard_normal(shape_b) * 10).astype(dtype)
        expected = scipy.signal.convolve(a, b, mode=mode, method="direct")
        got = sliding_convolve(a, b, mode)
        assert got.shape == expected.shape and got.dtype == expected.dtype
        # rounding relative to the largest output (sums of terms of mixed signs)
        eps = 1e-5 if dtype == np.float32 else 1e-12
        np.testing.assert_allclose(got, expected, rtol=eps,
                                   atol=eps * float(np.max(np.abs(expected))))
