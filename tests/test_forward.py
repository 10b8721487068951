"""Forward mode (ardiff/forward.py): `jvp`, `make_jvp`, `jacfwd`, `extend.defjvp`.

Truth: central finite differences of plain NumPy, and closed forms (the derivative of
x**3, of a matrix inverse, a linear map's own matrix).  Nothing is compared with
another output of ardiff's forward mode.
"""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from hypothesis import assume, given
from test_fuzz import smooth_directional_derivative

import ardiff
import ardiff.numpy as anp
from ardiff.extend import checkpoint, defjvp, defvjp, primitive
from ardiff.forward import Dual
from ardiff.graph import TracingError
from ardiff.op import NoTangentRuleError, defop
from ardiff.strategies import random_programs
from ardiff.testing import check_grads

RNG = np.random.default_rng(21)


def central(fun, primals, tangents, eps=1e-6):
    """(fun(p + eps t) - fun(p - eps t)) / (2 eps), leaf by leaf of the output tree."""
    from ardiff.tree import flatten

    plus = fun(*[p + eps * t for p, t in zip(primals, tangents)])
    minus = fun(*[p - eps * t for p, t in zip(primals, tangents)])
    pl, rebuild = flatten(plus)
    mi, _ = flatten(minus)
    return rebuild([(np.asarray(a) - np.asarray(b)) / (2 * eps) for a, b in zip(pl, mi)])


def mlp(x, W1, W2):
    return np.tanh(np.tanh(x @ W1) @ W2)


# -- jvp ------------------------------------------------------------------------------------
def test_jvp_of_scalar_closed_form():
    value, tangent = ardiff.jvp(lambda x: x ** 3, (2.0,), (1.0,))
    assert value == 8.0 and tangent == 12.0
    value, tangent = ardiff.jvp(np.sin, (0.3,), (2.0,))
    np.testing.assert_allclose(tangent, 2 * np.cos(0.3), rtol=1e-15)


def test_jvp_of_several_arguments_matches_finite_differences():
    x, W1, W2 = RNG.standard_normal((4, 3)), RNG.standard_normal((3, 5)), \
        RNG.standard_normal((5, 2))
    ts = tuple(RNG.standard_normal(np.shape(a)) for a in (x, W1, W2))
    value, tangent = ardiff.jvp(mlp, (x, W1, W2), ts)
    np.testing.assert_allclose(value, mlp(x, W1, W2), rtol=1e-14)
    np.testing.assert_allclose(tangent, central(mlp, (x, W1, W2), ts), rtol=1e-7, atol=1e-9)
    assert type(tangent) is np.ndarray and type(value) is np.ndarray


def test_containers_in_and_out():
    params = {"W": RNG.standard_normal((3, 3)), "b": [RNG.standard_normal(3), 0.5]}
    tangent_in = {"W": RNG.standard_normal((3, 3)), "b": [RNG.standard_normal(3), -1.0]}

    def f(p):
        h = np.tanh(p["W"] @ p["b"][0] + p["b"][1])
        return {"h": h, "parts": (np.sum(h ** 2), h[0] * 2.0)}

    value, tangent = ardiff.jvp(f, (params,), (tangent_in,))
    assert set(value) == {"h", "parts"} and isinstance(tangent["parts"], tuple)

    def flat(W, b0, b1):
        return f({"W": W, "b": [b0, b1]})

    fd = central(flat, (params["W"], params["b"][0], params["b"][1]),
                 (tangent_in["W"], tangent_in["b"][0], tangent_in["b"][1]))
    np.testing.assert_allclose(tangent["h"], fd["h"], rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(tangent["parts"][0], fd["parts"][0], rtol=1e-7)
    np.testing.assert_allclose(tangent["parts"][1], fd["parts"][1], rtol=1e-7)


def test_output_independent_of_the_input_has_a_zero_tangent():
    value, tangent = ardiff.jvp(lambda x: (np.ones(3), 2.0), (1.0,), (1.0,))
    np.testing.assert_array_equal(tangent[0], np.zeros(3))
    assert tangent[1] == 0.0


def test_float32_stays_float32():
    x = np.array([0.5, -1.0, 2.0], dtype=np.float32)
    t = np.ones(3, dtype=np.float32)
    value, tangent = ardiff.jvp(lambda x: np.exp(x) * 0.5 + x @ np.eye(3, dtype=np.float32),
                                (x,), (t,))
    assert value.dtype == np.float32 and tangent.dtype == np.float32
    np.testing.assert_allclose(tangent, 0.5 * np.exp(x.astype(np.float64)) + 1.0, rtol=1e-6)


def test_complex_holomorphic_and_real_valued_functions():
    z = np.array([0.3 + 0.4j, -1.0 + 0.2j])
    t = np.array([1.0 - 0.5j, 0.25 + 1j])
    _, tangent = ardiff.jvp(lambda z: np.sin(z) * z, (z,), (t,))
    np.testing.assert_allclose(tangent, (np.cos(z) * z + np.sin(z)) * t, rtol=1e-14)
    _, tangent = ardiff.jvp(lambda z: np.abs(z) ** 2 + np.angle(z), (z,), (t,))
    fd = central(lambda z: np.abs(z) ** 2 + np.angle(z), (z,), (t,))
    assert tangent.dtype == np.float64  # a real output has a real tangent
    np.testing.assert_allclose(tangent, fd, rtol=1e-7)
    x = np.array([0.5, 1.5])  # real input, complex inside (an FFT filter), real output
    _, tangent = ardiff.jvp(lambda x: np.fft.irfft(np.fft.rfft(x * x) * 0.5, n=2), (x,),
                            (np.ones(2),))
    np.testing.assert_allclose(tangent, x, rtol=1e-14)


def test_argument_checks():
    with pytest.raises(TypeError, match="tuples"):
        ardiff.jvp(np.sin, 1.0, 1.0)
    with pytest.raises(ValueError, match="one tangent per argument"):
        ardiff.jvp(np.sin, (1.0,), (1.0, 2.0))
    with pytest.raises(ValueError, match="shape"):
        ardiff.jvp(np.sin, (np.ones(3),), (np.ones(2),))
    with pytest.raises(TypeError, match="complex tangent for a real primal"):
        ardiff.jvp(np.sin, (1.0,), (1j,))
    with pytest.raises(ValueError, match="structures"):
        ardiff.jvp(lambda p: p[0], ((1.0, 2.0),), ((1.0,),))


def test_an_int_primal_becomes_float():
    value, tangent = ardiff.jvp(lambda x: x * x, (3,), (1,))
    assert value == 9.0 and tangent == 6.0


# -- make_jvp and jacfwd ----------------------------------------------------------------
def test_make_jvp_is_autograds():
    push = ardiff.make_jvp(lambda x, y: np.sin(x) * y, 1)(0.5, 3.0)
    value, tangent = push(2.0)
    assert value == np.sin(0.5) * 3.0 and tangent == pytest.approx(2.0 * np.sin(0.5))
    push = ardiff.make_jvp(lambda x, y, scale=1.0: x * y * scale, (0, 1))(2.0, 3.0, scale=2.0)
    assert push((1.0, 0.0))[1] == 6.0 and push((0.0, 1.0))[1] == 4.0
    with pytest.raises(ValueError, match="tangent"):
        push((1.0,))


def test_jacfwd_of_a_linear_map_is_its_matrix_and_matches_differences():
    A = RNG.standard_normal((4, 3))
    np.testing.assert_allclose(ardiff.jacfwd(lambda x: A @ x)(np.ones(3)), A, rtol=1e-15)
    X = RNG.standard_normal((2, 2)) + 3 * np.eye(2)  # d inv(X) / dX_kl = -inv e_k e_l^T inv
    J = ardiff.jacfwd(np.linalg.inv)(X)
    Xi = np.linalg.inv(X)
    assert J.shape == (2, 2, 2, 2)
    np.testing.assert_allclose(J, -np.einsum("ik,lj->ijkl", Xi, Xi), rtol=1e-12)
    f = lambda x, c: np.sin(x) * c  # noqa: E731
    np.testing.assert_allclose(ardiff.jacfwd(f, 1)(0.4, np.array([1.0, 2.0])),
                               np.diag([np.sin(0.4)] * 2), rtol=1e-15)
    assert ardiff.jacfwd(np.sin)(np.zeros((0,))).shape == (0, 0)


# -- errors -------------------------------------------------------------------------------
def test_an_op_without_a_tangent_rule_names_itself():
    op = defop("t_no_tangent_rule", np.sin, lambda ans, x: lambda g: g * np.cos(x))
    try:
        with pytest.raises(NoTangentRuleError, match="'t_no_tangent_rule'.*defjvp"):
            ardiff.jvp(op, (1.0,), (1.0,))
        assert float(ardiff.grad(op)(1.0)) == pytest.approx(np.cos(1.0))  # reverse works
    finally:
        from ardiff.op import OPS
        OPS.pop("t_no_tangent_rule", None)


def test_losing_the_tangent_is_refused():
    with pytest.raises(TracingError, match="float"):
        ardiff.jvp(lambda x: float(x), (1.0,), (1.0,))
    with pytest.raises(TracingError):
        ardiff.jvp(lambda x: np.array([x, 1.0]), (1.0,), (1.0,))


# -- user primitives -------------------------------------------------------------------
def test_defjvp_for_a_primitive_with_containers_and_same():
    @primitive
    def weighted(pair, w):
        return (pair[0] + np.sin(pair[1])) * w  # linear in w

    with pytest.raises(NoTangentRuleError, match="weighted.*defjvp"):
        ardiff.jvp(lambda a: weighted((a, a), 2.0), (1.0,), (1.0,))
    # the rule for a container argument gets the container's tangent (zeros elsewhere)
    defjvp(weighted, lambda t, ans, pair, w: (t[0] + anp.cos(pair[1]) * t[1]) * w, "same")
    a, b, w = 0.3, 1.1, 2.0
    ts = (0.5, -1.0, 0.25)
    value, tangent = ardiff.jvp(lambda a, b, w: weighted((a, b), w), (a, b, w), ts)
    assert value == (a + np.sin(b)) * w
    fd = central(lambda a, b, w: (a + np.sin(b)) * w, (a, b, w), ts)
    assert tangent == pytest.approx(fd, rel=1e-8)
    with pytest.raises(TypeError, match="bad tangent rule"):
        defjvp(weighted, 3.0)
    defjvp(weighted, None)  # a zero tangent
    assert ardiff.jvp(lambda a: weighted((a, a), 2.0), (1.0,), (1.0,))[1] == 0.0


def test_checkpoint_runs_in_forward_mode():
    segment = checkpoint(lambda x, W: np.tanh(x @ W))
    x, W = RNG.standard_normal(3), RNG.standard_normal((3, 3))
    ts = (RNG.standard_normal(3), RNG.standard_normal((3, 3)))
    _, tangent = ardiff.jvp(lambda x, W: segment(segment(x, W), W), (x, W), ts)
    fd = central(lambda x, W: np.tanh(np.tanh(x @ W) @ W), (x, W), ts)
    np.testing.assert_allclose(tangent, fd, rtol=1e-7, atol=1e-10)


def test_check_grads_forward_mode_catches_a_wrong_rule():
    check_grads(mlp, modes=["fwd"], order=1)(np.ones((2, 3)), np.ones((3, 2)) * 0.1,
                                             np.ones((2, 2)))

    @primitive
    def wrong(x):
        return np.sin(x)

    defvjp(wrong, lambda ans, x: lambda g: g * anp.cos(x))  # right in reverse mode
    defjvp(wrong, lambda t, ans, x: t * anp.sin(x))  # wrong in forward mode
    check_grads(wrong, modes=["rev"], order=1)(np.array([0.5, 1.0]))
    with pytest.raises(AssertionError, match="mode 'fwd'"):
        check_grads(wrong, modes=["fwd"], order=1)(np.array([0.5, 1.0]))


# -- in-place writes (NumPy's semantics, as in reverse mode) -------------------------
def test_fill_loop_stencil_and_aliases():
    def fill(x):
        out = np.zeros_like(x)
        for i in range(len(x)):
            out[i] = x[i] ** 2 + (out[i - 1] if i else 0.0)
        return out

    x, t = np.array([0.5, -1.0, 2.0]), np.array([1.0, 2.0, -0.5])
    _, tangent = ardiff.jvp(fill, (x,), (t,))
    np.testing.assert_allclose(tangent, np.cumsum(2 * x * t), rtol=1e-15)

    def heat(u):
        u = u.copy()
        for _ in range(5):
            u[1:-1] += 0.2 * (u[2:] - 2 * u[1:-1] + u[:-2])
        return u

    u0 = np.sin(np.linspace(0, 3, 7))
    tu = RNG.standard_normal(7)
    np.testing.assert_allclose(ardiff.jvp(heat, (u0,), (tu,))[1], central(heat, (u0,), (tu,)),
                               rtol=1e-7, atol=1e-10)

    def aliased(x):
        y = x * 1.0
        z = y  # another name for the same array: it sees the write, as in NumPy
        y += 1.0
        row = y[0:2]  # a view: writes through to y
        row *= 3.0
        return np.sum(z * y)

    x = np.array([1.0, 2.0, 3.0])
    value, tangent = ardiff.jvp(aliased, (x,), (np.ones(3),))
    assert value == aliased(x)  # NumPy's own value
    np.testing.assert_allclose(tangent, central(aliased, (x,), (np.ones(3),)), rtol=1e-7)


def test_writing_into_an_argument_is_refused():
    def write(x):
        x[0] = 1.0
        return x

    with pytest.raises(TracingError, match="argument of the traced function"):
        ardiff.jvp(write, (np.ones(2),), (np.ones(2),))


# -- nesting with itself and with reverse mode ------------------------------------------
def test_nesting_forward_and_reverse():
    f = lambda x: np.sin(x) * x  # noqa: E731
    second = 2 * np.cos(0.7) - 0.7 * np.sin(0.7)  # f''(x) = 2 cos x - x sin x

    def first(x):
        return ardiff.jvp(f, (x,), (1.0,))[1]

    assert ardiff.grad(first)(0.7) == pytest.approx(second, rel=1e-14)  # reverse of forward
    assert ardiff.jvp(ardiff.grad(f), (0.7,), (1.0,))[1] == pytest.approx(second, rel=1e-14)
    assert ardiff.jvp(first, (0.7,), (1.0,))[1] == pytest.approx(second, rel=1e-14)
    W = RNG.standard_normal((3, 3))
    g = lambda x: np.sum(np.tanh(W @ x) ** 2)  # noqa: E731
    x, v = RNG.standard_normal(3), RNG.standard_normal(3)
    hvp = ardiff.jvp(ardiff.grad(g), (x,), (v,))[1]  # forward over reverse
    fd = central(ardiff.grad(g), (x,), (v,))
    np.testing.assert_allclose(hvp, fd, rtol=1e-6, atol=1e-9)


def test_duals_are_tracers_with_primal_and_tangent():
    seen = []

    def f(x):
        seen.append(x)
        return x * 2.0

    ardiff.jvp(f, (np.ones(2),), (np.full(2, 3.0),))
    (x,) = seen
    assert isinstance(x, Dual) and isinstance(x, ardiff.Tracer)
    np.testing.assert_array_equal(x.primal, np.ones(2))
    np.testing.assert_array_equal(x.tangent, np.full(2, 3.0))
    assert "tangent" in repr(x) and x.shape == (2,)


# -- memory: nothing is kept ---------------------------------------------------------------
def test_memory_does_not_grow_with_the_chain():
    """The acceptance figure in small (benchmarks/bench_forward_memory.py measures it)."""
    def chain(x, steps):
        for _ in range(steps):
            x = np.tanh(x) * 0.9 + 0.1 * np.sin(x)
        return x

    x, v = np.linspace(-1, 1, 64), np.ones(64)
    peaks = []
    for steps in (200, 2000):
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        ardiff.jvp(lambda y, s=steps: chain(y, s), (x,), (v,))
        peaks.append(tracemalloc.get_traced_memory()[1] - base)
        tracemalloc.stop()
    assert peaks[1] <= 2 * peaks[0], peaks


def test_a_chain_of_views_keeps_nothing_either():
    """Views note their parent for in-place writes, weakly: a loop of reshapes and
    transposes does not keep every earlier view alive."""
    def chain(x, steps):
        for _ in range(steps):
            x = x.reshape(8, 8).T.reshape(-1)[::-1]
        return x

    peaks = []
    for steps in (300, 3000):
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        _, tangent = ardiff.jvp(lambda y, s=steps: chain(y, s), (np.arange(64.0),),
                                (np.arange(64.0),))
        peaks.append(tracemalloc.get_traced_memory()[1] - base)
        tracemalloc.stop()
        np.testing.assert_array_equal(tangent, chain(np.arange(64.0), steps))  # linear
    assert peaks[1] <= 2 * peaks[0], peaks


# -- random programs (ardiff.strategies) ------------------------------------------------
@given(random_programs(min_nodes=30, max_nodes=60))
def test_fuzz_random_programs_in_forward_mode(drawn):
    """Random NumPy programs (indexing, broadcasting, reductions, control flow, stacks of
    traced values): the JVP against central differences of the plain program."""
    program, args = drawn
    rng = np.random.default_rng(len(program.source))
    args = tuple(np.asarray(a, dtype=np.float64) for a in args)
    directions = [rng.standard_normal(np.shape(a)) for a in args]
    value, tangent = ardiff.jvp(program, args, tuple(directions))
    assert float(value) == float(program(*args))

    def evaluate(t):
        return float(program(*[a + t * d for a, d in zip(args, directions)]))

    numeric = smooth_directional_derivative(evaluate, directions)
    assume(numeric is not None)  # a kink within eps: no smooth truth
    assert np.isclose(float(tangent), numeric, rtol=1e-5, atol=1e-6), (
        f"{program!r}: jvp {float(tangent)!r} != finite differences {numeric!r}")


# -- ardiff's own primitives: fixed_point and odeint ------------------------------------
def test_fixed_point_and_odeint_in_forward_mode():
    from ardiff.misc import fixed_point
    from ardiff.scipy.integrate import odeint

    def newton_sqrt(a):
        return lambda x: 0.5 * (x + a / x)

    root = lambda a: fixed_point(newton_sqrt, a, 1.0, lambda x, y: abs(x - y), 1e-12)  # noqa: E731
    assert ardiff.jvp(root, (2.0,), (1.0,))[1] == pytest.approx(0.5 / np.sqrt(2.0), rel=1e-10)

    # dy/dt = -k y^2: y = y0 / (1 + k y0 t)
    y0, t, k = np.array([1.0]), np.array([0.0, 0.5, 1.0]), np.array(0.7)
    sol = lambda y0, t, k: odeint(lambda y, s, k: -k * y ** 2, y0, t, (k,))  # noqa: E731
    d = 1.0 + k * y0 * t
    closed = {0: 1.0 / d ** 2, 1: -k * y0 ** 2 / d ** 2, 2: -y0 ** 2 * t / d ** 2}
    for which, tangents in enumerate([(np.ones(1), np.zeros(3), np.array(0.0)),
                                      (np.zeros(1), np.array([0.0, 1.0, 1.0]), np.array(0.0)),
                                      (np.zeros(1), np.zeros(3), np.array(1.0))]):
        _, tangent = ardiff.jvp(sol, (y0, t, k), tangents)
        np.testing.assert_allclose(tangent.ravel(), closed[which] * (tangents[1] if which == 1
                                                                     else 1.0),
                                   rtol=1e-5, atol=1e-7)


def test_nesting_through_a_decomposition():
    """Tangent rules by transposition (TRANSPOSED_VJP) nest with reverse mode too."""
    B = RNG.standard_normal((3, 3))
    A, T = B @ B.T + 3 * np.eye(3), RNG.standard_normal((3, 3))
    f = lambda A: np.sum(np.linalg.cholesky(A)) + np.linalg.eigvalsh(A)[-1]  # noqa: E731
    h = lambda A: ardiff.jvp(f, (A,), (T,))[1]  # noqa: E731
    E = RNG.standard_normal((3, 3))
    np.testing.assert_allclose(np.sum(ardiff.grad(h)(A) * E), central(h, (A,), (E,)),
                               rtol=1e-6)
    np.testing.assert_allclose(ardiff.jvp(ardiff.grad(f), (A,), (T,))[1],
                               central(ardiff.grad(f), (A,), (T,)), rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("trans", [0, 1, "T"])
@pytest.mark.parametrize("lower", [True, False])
@pytest.mark.parametrize("unit_diagonal", [False, True])
def test_closed_form_decomposition_rules_over_their_flags(trans, lower, unit_diagonal):
    import ardiff.scipy.linalg as asl

    B = RNG.standard_normal((2, 4, 4))
    A = B @ np.swapaxes(B, -1, -2) + 4 * np.eye(4)
    T, b, bm = RNG.standard_normal((2, 4, 4)), RNG.standard_normal(4), \
        RNG.standard_normal((2, 4, 3))
    flags = dict(trans=trans, lower=lower, unit_diagonal=unit_diagonal)
    cases = [(lambda a: asl.solve_triangular(a, bm, **flags), A, T),
             (lambda a: asl.solve_triangular(a, b, **flags), A[0], T[0]),
             (lambda v: asl.solve_triangular(A[1], v, **flags), b, bm[0, :, 0]),
             (lambda a: np.linalg.cholesky(a), A, T),
             (lambda a: asl.cholesky(a, lower=lower), A, T),
             (lambda a: np.linalg.eigh(a, UPLO="L" if lower else "U")[0], A, T),
             (lambda a: np.linalg.eigh(a, UPLO="L" if lower else "U")[1] ** 2, A, T)]
    for f, x, t in cases:
        value, tangent = ardiff.jvp(f, (x,), (t,))
        np.testing.assert_allclose(tangent, central(f, (x,), (t,)), rtol=1e-6, atol=1e-8)


def test_jacfwd_of_several_and_container_arguments_and_inside_grad():
    def f(x, p):
        return np.sum(p["W"] @ x) * x + p["b"]

    x, p = np.array([1.0, 2.0]), {"W": np.array([[1.0, 2.0], [0.5, -1.0]]), "b": np.ones(2)}
    jx, jp = ardiff.jacfwd(f, (0, 1))(x, p)
    # closed forms: s = 1ᵀ W x; d(s x)/dx = x (1ᵀW) + s I, d(s x_i)/dW_kl = x_i x_l, d/db = I
    s = np.sum(p["W"] @ x)
    np.testing.assert_allclose(jx, np.outer(x, p["W"].sum(axis=0)) + s * np.eye(2),
                               rtol=1e-15)
    np.testing.assert_allclose(jp["W"], np.einsum("i,l,k->ikl", x, x, np.ones(2)), rtol=1e-15)
    np.testing.assert_allclose(jp["b"], np.eye(2), rtol=1e-15)
    # second order: the Hessian of sum(sin^3) is diagonal, 6 sin cos^2 - 3 sin^3
    g = lambda x: np.sum(np.sin(x) ** 3)  # noqa: E731
    np.testing.assert_allclose(ardiff.jacfwd(ardiff.grad(g))(x),
                               np.diag(6 * np.sin(x) * np.cos(x) ** 2 - 3 * np.sin(x) ** 3),
                               rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(ardiff.grad(lambda x: np.sum(ardiff.jacfwd(np.sin)(x)))(x),
                               -np.sin(x), rtol=1e-15)


# -- the declarations: defop(jvp=, linear=, multilinear=) ----------------------------------
def test_defop_tangent_declarations():
    from ardiff.op import NEGATED, OPS, PASS_THROUGH, TRANSPOSED_VJP, Scale

    made = []

    def make(name, *vjps, **kw):
        made.append(name)
        return defop(name, kw.pop("fwd", lambda *a: a[0]), *vjps, **kw)

    try:
        cube = make("t_fwd_cube", Scale(lambda ans, x: 3.0 * x * x), fwd=lambda x: x ** 3)
        assert cube.jvp_maker(0)(2.0, 8.0, 2.0) == 24.0  # derived from Scale: t * 3x^2
        assert make("t_fwd_pass", PASS_THROUGH).jvp_maker(0)(5.0, None, 1.0) == 5.0
        assert make("t_fwd_neg", NEGATED).jvp_maker(0)(5.0, None, 1.0) == -5.0
        explicit = make("t_fwd_explicit", Scale(lambda ans, x: x),
                        jvp=(lambda t, ans, x: 7.0 * t,))  # an explicit rule wins
        assert explicit.jvp_maker(0)(1.0, None, 1.0) == 7.0
        bilinear = make("t_fwd_bilinear", None, None, fwd=np.multiply, multilinear=True)
        assert bilinear.jvp_maker(1)(2.0, None, 3.0, 4.0) == 6.0  # x * t
        variadic = make("t_fwd_variadic", vjp=lambda k, ans, *a: lambda g: g,
                        jvp=lambda k, t, ans, *a: (k + 1) * t)
        assert variadic.jvp_maker(2)(1.0, None) == 3.0
        assert variadic.differentiable_positions(3) == (0, 1, 2)
        assert make("t_fwd_transposed", lambda ans, x: lambda g: g,
                    jvp=TRANSPOSED_VJP).jvp_maker(0) is TRANSPOSED_VJP
        assert make("t_fwd_lin", lambda ans, x, i: lambda g: g, None,
                    fwd=lambda x, i: x[i], linear=True).differentiable_positions(2) == (0,)
        # a linear op: its tangent is the op applied to the tangent (zeros elsewhere)
        tangent = ardiff.jvp(lambda x: OPS["t_fwd_lin"](x, slice(1, None)),
                             (np.arange(3.0),), (np.array([1.0, 2.0, 3.0]),))[1]
        np.testing.assert_array_equal(tangent, [2.0, 3.0])
        with pytest.raises(NoTangentRuleError, match="'t_fwd_none' has no tangent rule"):
            make("t_fwd_none", lambda ans, x: lambda g: g).jvp_maker(0)
    finally:
        for name in made:
            OPS.pop(name, None)


def test_forward_over_every_reverse_solver_and_compile():
    f = lambda w: np.sum(np.tanh(w) ** 2)  # noqa: E731
    w, v = np.array([0.3, -0.2]), np.array([1.0, 0.5])
    sech2 = 1.0 / np.cosh(w) ** 2  # d²/dw² tanh(w)² = 2 sech²(w) (sech²(w) - 2 tanh²(w))
    exact = 2 * sech2 * (sech2 - 2 * np.tanh(w) ** 2) * v
    for gradient in (ardiff.grad(f), ardiff.grad(f, schedule="parallel", eta=1.0),
                     ardiff.grad(f, method="triangular"), ardiff.compile(f)):
        np.testing.assert_allclose(ardiff.jvp(gradient, (w,), (v,))[1], exact, rtol=1e-12)


def test_check_grads_second_order_in_forward_mode():
    """order=2 with "fwd" checks the JVP as a function of the point (forward over forward):
    a tangent rule that is right at first order but computes its factor off the trace
    (plain NumPy on the plain value) has the wrong second derivative, and is caught."""
    from ardiff.graph import unwrap

    @primitive
    def sine(x):
        return np.sin(x)

    defvjp(sine, lambda ans, x: lambda g: g * anp.cos(x))
    defjvp(sine, lambda t, ans, x: t * np.cos(unwrap(x)))  # a constant factor: order 1 only
    x = np.array([0.4, 1.3])
    check_grads(sine, modes=["fwd"], order=1)(x)
    with pytest.raises(AssertionError, match="jvp_"):
        check_grads(sine, modes=["fwd"], order=2)(x)
    defjvp(sine, lambda t, ans, x: t * anp.cos(x))  # traced: right at every order
    check_grads(sine, modes=["fwd", "rev"], order=3)(x)


def test_defjvp_argnum():
    from ardiff.extend import defjvp_argnum

    @primitive
    def mul(x, y):
        return x * y

    defjvp_argnum(mul, lambda argnum, t, ans, args, kwargs: t * args[1 - argnum])
    assert ardiff.jvp(mul, (2.0, 3.0), (1.0, 10.0))[1] == 3.0 + 20.0
