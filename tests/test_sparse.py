"""``ardiff.scipy.sparse`` (issue 26): SciPy sparse matrices in traced programs.

Truth: central finite differences (``check_grads``), dense NumPy on small sizes (the
closed-form adjoint ``-λ xᵀ`` read off at the stored positions), the count of
factorisations SuperLU makes, and tracemalloc's peak on a 200,000-unknown problem.
"""

from __future__ import annotations

import re
import time
import tracemalloc
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spla

import ardiff
import ardiff.numpy as anp
import ardiff.scipy.sparse as asp
from ardiff.graph import TracingError
from ardiff.ops.sparse import Pattern, sparse_solve
from ardiff.scipy.sparse.linalg import spsolve
from ardiff.testing import check_grads

RNG = np.random.default_rng(2026)


def tridiagonal(n, rng=RNG, fmt="csc"):
    """A diagonally dominant tridiagonal matrix with random entries."""
    off = rng.uniform(-1.0, 1.0, (2, n - 1))
    return sp.diags_array([off[0], rng.uniform(3.0, 4.0, n), off[1]], offsets=[-1, 0, 1],
                          format=fmt) if hasattr(sp, "diags_array") else \
        sp.diags([off[0], rng.uniform(3.0, 4.0, n), off[1]], [-1, 0, 1], format=fmt)


def random_sparse(m, n, density=0.4, fmt="csr"):
    dense = RNG.standard_normal((m, n)) * (RNG.random((m, n)) < density)
    return {"csr": sp.csr_array, "csc": sp.csc_array, "coo": sp.coo_array,
            "csr_matrix": sp.csr_matrix}[fmt](dense)


# -- spsolve -----------------------------------------------------------------------------

@pytest.mark.parametrize("b_shape", [(6,), (6, 3)])
@pytest.mark.parametrize("fmt", ["csc", "csr"])
def test_spsolve_gradient_wrt_b_matches_finite_differences(b_shape, fmt):
    A = tridiagonal(6, fmt=fmt)
    b = RNG.standard_normal(b_shape)
    w = RNG.standard_normal(b_shape)
    f = lambda b: anp.sum(anp.sin(spsolve(A, b)) * w)  # noqa: E731
    check_grads(f, order=2)(b)
    x = np.linalg.solve(A.toarray(), b)
    expected = np.linalg.solve(A.toarray().T, np.cos(x) * w)  # Aᵀ λ = ∂L/∂x
    np.testing.assert_allclose(ardiff.grad(f)(b), expected, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(spsolve(A, b), x, rtol=1e-12)  # plain: SciPy's own


@pytest.mark.parametrize("b_shape", [(7,), (7, 2)])
@pytest.mark.parametrize("layout", ["csc", "csr", "coo"])
def test_spsolve_gradient_wrt_stored_values(b_shape, layout):
    """dL/d data_k = -Σ_j λ[row_k, j] x[col_k, j], against finite differences and dense."""
    A0 = tridiagonal(7, fmt=layout)
    b = RNG.standard_normal(b_shape)
    w = RNG.standard_normal(b_shape)
    if layout == "coo":
        row, col = A0.row, A0.col
        # tocsc: SciPy's spsolve warns on a coo matrix (the finite differences call it)
        build = lambda data: asp.coo_array((data, (row, col)), shape=A0.shape).tocsc()  # noqa: E731
        dense_of = lambda data: sp.coo_array((data, (row, col)), shape=A0.shape).toarray()  # noqa: E731
    else:
        constructor = {"csc": (asp.csc_array, sp.csc_array),
                       "csr": (asp.csr_array, sp.csr_array)}[layout]
        ind, ptr = A0.indices, A0.indptr
        build = lambda data: constructor[0]((data, ind, ptr), shape=A0.shape)  # noqa: E731
        dense_of = lambda data: constructor[1]((data, ind, ptr), shape=A0.shape).toarray()  # noqa: E731

    def f(data, b):
        return anp.sum(spsolve(build(data), b) ** 2 * w)

    data = A0.data.copy()
    check_grads(f, argnum=(0, 1), order=2)(data, b)
    Ad = dense_of(data)
    x = np.linalg.solve(Ad, b)
    lam = np.linalg.solve(Ad.T, 2 * x * w)
    dA = -(lam.reshape(7, -1) @ x.reshape(7, -1).T)  # dense n x n: the small reference
    r, c = A0.nonzero() if layout != "coo" else (A0.row, A0.col)
    if layout != "coo":  # the stored order of data
        csr = sp.csr_array(A0) if layout == "csr" else sp.csc_array(A0)
        major = np.repeat(np.arange(len(csr.indptr) - 1), np.diff(csr.indptr))
        r, c = (major, csr.indices) if layout == "csr" else (csr.indices, major)
    grad_data, grad_b = ardiff.grad(f, argnum=(0, 1))(data, b)
    np.testing.assert_allclose(grad_data, dA[r, c], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(grad_b, lam, rtol=1e-12, atol=1e-14)


def test_spsolve_duplicate_positions_are_summed():
    """A coo array with a repeated position: both stored values get the same gradient."""
    row, col = np.array([0, 1, 1, 2, 0]), np.array([0, 1, 1, 2, 2])
    data = np.array([3.0, 2.0, 1.5, 4.0, 0.5])
    b = np.array([1.0, -2.0, 0.5])
    f = lambda d: anp.sum(spsolve(asp.coo_array((d, (row, col)), shape=(3, 3)).tocsr(), b) ** 2)  # noqa: E731
    g = ardiff.grad(f)(data)
    check_grads(f)(data)
    assert g[1] == g[2]


def test_transposed_solve_op_matches_finite_differences():
    A = tridiagonal(5)
    pattern, data = Pattern.of(A)
    b = RNG.standard_normal((5, 2))
    f = lambda d, b: anp.sum(anp.tanh(sparse_solve(d, b, pattern, trans=True)))  # noqa: E731
    check_grads(f, argnum=(0, 1), order=2)(data, b)
    np.testing.assert_allclose(sparse_solve(data, b, pattern, trans=True),
                               np.linalg.solve(A.toarray().T, b), rtol=1e-12)


def test_one_factorisation_serves_forward_and_adjoint(monkeypatch):
    calls = []
    splu = spla.splu

    def counting(A, *args, **kwargs):
        calls.append(A.shape)
        return splu(A, *args, **kwargs)

    monkeypatch.setattr(spla, "splu", counting)
    A0 = tridiagonal(50)
    b = RNG.standard_normal(50)

    def f(data, b):
        A = asp.csc_array((data, A0.indices, A0.indptr), shape=A0.shape)
        return anp.sum(spsolve(A, b) ** 2)

    ardiff.grad(f, argnum=(0, 1))(A0.data, b)
    assert calls == [(50, 50)]  # the forward's factors, reused by both adjoint solves
    ardiff.grad(f, argnum=(0, 1))(A0.data * 2, b)
    assert len(calls) == 2  # new values: factorised again


def test_spsolve_column_rhs_gives_a_vector_as_scipy():
    A = tridiagonal(4)
    b = RNG.standard_normal((4, 1))
    expected = spla.spsolve(A, b)
    assert expected.shape == (4,)
    out = ardiff.trace(lambda b: spsolve(A, b), b).output
    assert out.shape == (4,)
    np.testing.assert_allclose(out.value, expected, rtol=1e-12)
    check_grads(lambda b: anp.sum(spsolve(A, b) ** 2))(b)


def test_spsolve_refusals():
    singular = sp.csc_array(np.array([[1.0, 2.0], [2.0, 4.0]]))
    b = np.ones(2)
    with pytest.raises(np.linalg.LinAlgError, match="singular"):
        ardiff.grad(lambda b: anp.sum(spsolve(singular, b)))(b)
    with pytest.raises(ValueError, match="square"):
        ardiff.grad(lambda b: anp.sum(spsolve(sp.csc_array(np.ones((2, 3))), b)))(b)
    with pytest.raises(TypeError, match="sparse matrix"):
        ardiff.grad(lambda b: anp.sum(spsolve(np.eye(2), b)))(b)
    with pytest.raises(ValueError, match="shape"):
        ardiff.grad(lambda b: anp.sum(spsolve(sp.csc_array(np.eye(3)), b)))(b)


# -- constant SciPy matrices meet traced values ----------------------------------------

def _products():
    return {
        "S @ x": (lambda S, v: S @ v, lambda D, v: D @ v, "right"),
        "S.dot(x)": (lambda S, v: S.dot(v), lambda D, v: D @ v, "right"),
        "S.T @ y": (lambda S, v: S.T @ v, lambda D, v: D.T @ v, "transposed"),
        "y @ S": (lambda S, v: v @ S, lambda D, v: v @ D, "left"),
        "ardiff matmul(S, x)": (lambda S, v: asp.matmul(S, v), lambda D, v: D @ v, "right"),
        "ardiff matmul(y, S)": (lambda S, v: asp.matmul(v, S), lambda D, v: v @ D, "left"),
    }


@pytest.mark.parametrize("fmt", ["csr", "csc", "coo", "csr_matrix"])
@pytest.mark.parametrize("name", sorted(_products()))
@pytest.mark.parametrize("columns", [None, 2])
def test_plain_syntax_products_with_a_constant_matrix(fmt, name, columns):
    S = random_sparse(5, 4, fmt=fmt)
    D = S.toarray()
    traced_fun, dense_fun, side = _products()[name]
    n = 4 if side == "right" else 5
    if columns is None:
        v = RNG.standard_normal(n)
    else:
        v = RNG.standard_normal((columns, n) if side == "left" else (n, columns))
    if fmt == "coo" and name == "S.dot(x)" and "coo" in type(S).dot.__qualname__:
        # SciPy >= 1.15 gives coo its own n-D dot, which raises TypeError on any operand
        # it cannot convert (no NotImplemented for the operand to take over): refused
        with pytest.raises(TracingError, match=r"ardiff\.scipy\.sparse\.matmul"):
            ardiff.trace(lambda v: traced_fun(S, v), v)
        return
    w = RNG.standard_normal(np.shape(dense_fun(D, v)))

    def f(v):
        return anp.sum(anp.sin(traced_fun(S, v)) * w)

    graph = ardiff.trace(lambda v: traced_fun(S, v), v)
    assert "sparse_matmul" in {node.op_name for node in graph.nodes}
    np.testing.assert_allclose(graph.output.value, dense_fun(D, v), rtol=1e-12, atol=1e-14)
    check_grads(f, order=2)(v)
    # the dense linear map v -> dense_fun(D, v), column by column: its transpose is the VJP
    units = np.eye(v.size).reshape((v.size,) + v.shape)
    J = np.stack([np.ravel(dense_fun(D, u)) for u in units], axis=1)
    expected = (J.T @ np.ravel(np.cos(dense_fun(D, v)) * w)).reshape(v.shape)
    np.testing.assert_allclose(ardiff.grad(f)(v), expected, rtol=1e-12, atol=1e-14)


def test_spmatrix_star_is_a_product_and_sparray_star_is_elementwise():
    x = RNG.standard_normal(4)
    S = random_sparse(5, 4, fmt="csr_matrix")
    f = lambda x: anp.sum(anp.sin(S * x))  # noqa: E731  (np.matrix semantics: S @ x)
    np.testing.assert_allclose(ardiff.grad(f)(x), S.toarray().T @ np.cos(S.toarray() @ x),
                               rtol=1e-12)
    A = random_sparse(5, 4, fmt="csr")
    g = lambda x: (x * A).sum()  # noqa: E731  (sparse array: elementwise, broadcast rows)
    np.testing.assert_allclose(ardiff.grad(g)(x), A.toarray().sum(axis=0), rtol=1e-12)


def test_scipy_methods_that_would_drop_the_gradient_point_to_ardiff():
    """SciPy's own methods that convert a traced operand: refused with a pointer to the
    ardiff function (SciPy 1.17), or, where an older SciPy hands the operand to a NumPy
    ufunc (which dispatches to ardiff), the right gradient; never a wrong one."""
    S = random_sparse(3, 3)
    x = np.full((3, 3), 2.0)
    D = S.toarray()
    for fun, expected, pointer in [
            (lambda x: S.multiply(x), D, r"ardiff\.scipy\.sparse\.multiply"),
            (lambda x: S / x, -D / x**2, r"ardiff\.scipy\.sparse\.matmul")]:
        try:
            grad = ardiff.grad(lambda x: anp.sum(fun(x)))(x)
        except TracingError as exc:
            assert re.search(pointer, str(exc)), str(exc)
        else:
            np.testing.assert_allclose(grad, expected, rtol=1e-12)
    with pytest.raises(ValueError, match="one or two axes"):
        ardiff.grad(lambda x: anp.sum(S @ x))(np.ones((2, 3, 3)))


def test_plain_values_keep_scipy_results():
    S = random_sparse(4, 3)
    x = RNG.standard_normal(3)
    np.testing.assert_array_equal(asp.matmul(S, x), S @ x)
    assert isinstance(asp.csr_array((S.data, S.indices, S.indptr), shape=S.shape), sp.csr_array)


# -- sparse arrays with traced values -----------------------------------------------------

def _csr_parts():
    S = random_sparse(4, 5, density=0.5, fmt="csr")
    return S, S.data.copy()


def test_sparse_array_products_transpose_and_toarray():
    S, data = _csr_parts()
    x, X, y = RNG.standard_normal(5), RNG.standard_normal((5, 2)), RNG.standard_normal(4)

    def f(data, x, X, y):
        A = asp.csr_array((data, S.indices, S.indptr), shape=S.shape)
        parts = [A @ x, A.dot(x), y @ A, A.T @ y, (A @ X).ravel(), (y[None] @ A).ravel(),
                 (X.T @ A.T).ravel(), A.toarray().ravel(), A.T.toarray().ravel()]
        return anp.concatenate(parts)

    def reference(data, x, X, y):
        D = sp.csr_array((data, S.indices, S.indptr), shape=S.shape).toarray()
        return np.concatenate([D @ x, D @ x, y @ D, D.T @ y, (D @ X).ravel(),
                               (y[None] @ D).ravel(), (X.T @ D.T).ravel(), D.ravel(),
                               D.T.ravel()])

    out = ardiff.trace(f, data, x, X, y, argnum=(0, 1, 2, 3)).output
    np.testing.assert_allclose(out.value, reference(data, x, X, y), rtol=1e-12, atol=1e-14)
    w = RNG.standard_normal(out.shape)
    check_grads(lambda *a: anp.sum(anp.sin(f(*a)) * w), argnum=(0, 1, 2, 3), order=2)(
        data, x, X, y)


@pytest.mark.parametrize("other_shape", [(), (5,), (4, 1), (4, 5)])
def test_sparse_array_multiply_and_sum(other_shape):
    S, data = _csr_parts()
    other = RNG.standard_normal(other_shape)

    def f(data, other):
        A = asp.csr_array((data, S.indices, S.indptr), shape=S.shape).multiply(other)
        B = 2.0 * A.T / 3.0
        return anp.concatenate([A.sum(axis=0), A.sum(axis=1), A.sum(axis=-1),
                                anp.reshape(A.sum(), (1,)), (-B).sum(axis=0)])

    D = S.toarray() * other
    np.testing.assert_allclose(
        ardiff.trace(f, data, other, argnum=(0, 1)).output.value,
        np.concatenate([D.sum(axis=0), D.sum(axis=1), D.sum(axis=1), [D.sum()],
                        -2.0 / 3.0 * D.sum(axis=1)]), rtol=1e-12)
    check_grads(lambda d, o: anp.sum(anp.sin(f(d, o))), argnum=(0, 1), order=2)(data, other)


def test_constructor_signatures_and_shapes():
    S, data = _csr_parts()
    traced_shapes = []

    def f(data):
        csr = asp.csr_array((data, S.indices, S.indptr))  # shape inferred, as SciPy
        csc = asp.csc_array((data, S.indices, S.indptr), shape=(5, 4))  # the transpose
        coo = asp.coo_array((data, S.nonzero()), shape=S.shape)
        traced_shapes.extend([csr.shape, csc.shape, coo.shape, csr.T.format, csc.format])
        assert isinstance(csr, asp.SparseArray) and csr.nnz == S.nnz
        return anp.concatenate([csr.toarray().ravel(), csc.toarray().ravel(),
                                coo.toarray().ravel()])

    out = ardiff.trace(f, data).output.value
    plain = [sp.csr_array((data, S.indices, S.indptr)),
             sp.csc_array((data, S.indices, S.indptr), shape=(5, 4)),
             sp.coo_array((data, S.nonzero()), shape=S.shape)]
    assert traced_shapes == [p.shape for p in plain] + ["csc", "csc"]
    np.testing.assert_allclose(out, np.concatenate([p.toarray().ravel() for p in plain]))


def test_sparse_array_refusals():
    S, data = _csr_parts()

    def check(action, error, match):
        def f(d):
            action(asp.csr_array((d, S.indices, S.indptr), shape=S.shape))
            return anp.sum(d)
        with pytest.raises(error, match=match):
            ardiff.grad(f)(data)

    check(lambda A: A + A, TypeError, "toarray")
    check(lambda A: np.asarray(A), TypeError, "toarray")
    check(lambda A: A @ A, NotImplementedError, "two sparse")
    check(lambda A: A.multiply(np.ones((3, 5))), ValueError, "broadcast")
    check(lambda A: A.sum(axis=2), ValueError, "out of bounds")
    with pytest.raises(ValueError, match="stores"):
        ardiff.grad(lambda d: anp.sum(asp.csr_array((d, S.indices, S.indptr)).data))(
            data[:-1])
    with pytest.raises(ValueError, match="out of bounds"):
        Pattern(np.array([0, 3]), np.array([0, 0]), (3, 3))


# -- the solvers on programs with sparse ops ------------------------------------------

def test_relax_triangular_and_convexity_handle_sparse_programs():
    A0 = tridiagonal(6)
    S = random_sparse(6, 6, density=0.3)

    def program(data, b):
        A = asp.csc_array((data, A0.indices, A0.indptr), shape=A0.shape)
        x = spsolve(A, anp.tanh(S @ b) + b)
        return anp.sum(anp.sin(A @ x + x) ** 2)

    args = (A0.data.copy(), RNG.standard_normal(6))
    graph = ardiff.trace(program, *args, argnum=(0, 1))
    exact = ardiff.backprop(graph).grads
    check_grads(program, argnum=(0, 1), order=1)(*args)
    triangular = ardiff.solve_triangular(graph).grads
    for got, want in zip(triangular, exact):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
    for schedule, eta in (("sequential", 1.0), ("parallel", 0.5)):
        res = ardiff.relax(graph, schedule=schedule, eta=eta, max_iter=5000)
        assert res.converged
        for got, want in zip(res.grads, exact):
            np.testing.assert_allclose(got, want, rtol=1e-8, atol=1e-10)
    report = ardiff.check_convexity(graph)
    assert report.is_dag and report.stable and report.measured_converged


def test_triangular_solver_refuses_a_large_sparse_solve_before_building_it():
    from ardiff.solvers.triangular import SystemTooLargeError

    A = tridiagonal(3000)
    graph = ardiff.trace(lambda b: anp.sum(spsolve(A, anp.sin(b)) ** 2),
                         RNG.standard_normal(3000))
    with pytest.raises(SystemTooLargeError):
        ardiff.solve_triangular(graph, max_nnz=1_000_000)  # the inverse has 9e6 entries


# -- memory and time at scale -----------------------------------------------------------

def test_large_tridiagonal_gradient_stays_linear_in_memory():
    """n = 200,000: the gradient w.r.t. the stored values and b of sum(spsolve(A, b)**2)
    peaks far below one dense n x n array (320 GB), at O(nnz) (measured 45 MB)."""
    n = 200_000
    A0 = tridiagonal(n, rng=np.random.default_rng(0))
    b = np.random.default_rng(1).standard_normal(n)

    def f(data, b):
        A = asp.csc_array((data, A0.indices, A0.indptr), shape=A0.shape)
        return anp.sum(spsolve(A, b) ** 2)

    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        spla.spsolve(A0, b)
    forward = time.perf_counter() - start
    tracemalloc.start()
    try:
        start = time.perf_counter()
        g_data, g_b = ardiff.grad(f, argnum=(0, 1))(A0.data, b)
        elapsed = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 200e6, f"peak {peak / 1e6:.0f} MB"
    # O(nnz): a few dozen arrays of n or nnz numbers, not n^2 (a single dense row of the
    # inverse would already be 1.6 MB per row)
    assert peak < 120 * A0.nnz * 8
    x = spla.spsolve(A0, b)
    lam = spla.spsolve(A0.T.tocsc(), 2 * x)
    np.testing.assert_allclose(g_b, lam, rtol=1e-10, atol=1e-12)
    major = np.repeat(np.arange(n), np.diff(A0.indptr))
    np.testing.assert_allclose(g_data, -lam[A0.indices] * x[major], rtol=1e-10, atol=1e-12)
    # generous against load on shared CI cores: the target is 10 forward solves
    assert elapsed < 30 * forward + 2.0, f"gradient {elapsed:.2f} s, forward {forward:.2f} s"
