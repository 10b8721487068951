"""Complex numbers in ardiff (docs/complex.md) against independent truth.

The convention: for f(z) = u(x, y) + i v(x, y), grad f = du/dx - i du/dy.  Every test
here computes that quantity by central finite differences taken separately along the
real and the imaginary direction of each input element (`fd_grad`), or uses a closed
form written in the test:

* the convention's three cases: holomorphic f gives f'(z); a real loss of a complex
  parameter gives a direction whose conjugate descends; a real-to-real program with
  complex intermediates gives exactly what a real implementation gives;
* the non-holomorphic ops (real, imag, conj, angle, abs) and the elementwise table,
  reductions and linear algebra on complex values, to first and second order;
* the transforms (`holomorphic_grad`, `jacobian`, `make_vjp`, `check_grads`);
* the solvers: relax (both schedules, eta 0.5/1/1.5, both inits, the closed form) and
  the triangular solver equal backprop on complex graphs; the convexity report; the
  rule variants and the ops without complex derivatives refuse clearly;
* input dtypes: complex64/complex128 kept, ints cast, booleans and objects refused.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import ardiff
import ardiff.numpy as anp
import ardiff.scipy.linalg as aslinalg
from ardiff.rules import FeedbackAlignment, NoDerivative
from ardiff.testing import check_grads

RNG = np.random.default_rng(14)


def fd_grad(f, z, eps=1e-6):
    """du/dx - i du/dy of u = Re f (f scalar), by central differences along the real and
    (for complex z) the imaginary direction of every element of z."""
    z = np.asarray(z)
    complex_input = np.iscomplexobj(z)
    g = np.zeros(z.shape, dtype=complex if complex_input else float)
    for idx in np.ndindex(z.shape):
        e = np.zeros(z.shape, dtype=z.dtype)
        e[idx] = 1.0
        g[idx] = (np.real(f(z + eps * e)) - np.real(f(z - eps * e))) / (2 * eps)
        if complex_input:
            g[idx] -= 1j * (np.real(f(z + 1j * eps * e)) - np.real(f(z - 1j * eps * e))) / (2 * eps)
    return g


def crandn(*shape):
    return RNG.standard_normal(shape) + 1j * RNG.standard_normal(shape)


# -- the convention's three cases -----------------------------------------------------------
def test_holomorphic_function_gives_its_complex_derivative():
    z = 0.7 - 1.2j
    for f, df in [(lambda z: z ** 3, lambda z: 3 * z ** 2),
                  (lambda z: anp.exp(z) * anp.sin(z),
                   lambda z: np.exp(z) * (np.sin(z) + np.cos(z))),
                  (lambda z: 1.0 / (z + 2.0), lambda z: -1.0 / (z + 2.0) ** 2)]:
        assert ardiff.grad(f)(z) == pytest.approx(df(z), rel=1e-12)
        assert ardiff.holomorphic_grad(f)(z) == pytest.approx(df(z), rel=1e-12)
        assert ardiff.grad(f)(z) == pytest.approx(fd_grad(f, z), rel=1e-7)  # du/dx - i du/dy


def test_real_loss_of_a_complex_parameter_descends_along_the_conjugate():
    """L(z) = |z - c|^2 has grad 2 conj(z - c) = dL/dx - i dL/dy; stepping along
    -conj(grad) is gradient descent in (x, y) and reaches c."""
    c = np.array([1.5 - 0.5j, -2.0 + 1.0j])

    def loss(z):
        return anp.sum(anp.abs(z - c) ** 2)

    z = np.zeros(2, dtype=complex)
    g = ardiff.grad(loss)(z)
    np.testing.assert_allclose(g, 2 * np.conj(z - c), rtol=1e-12)
    np.testing.assert_allclose(g, fd_grad(loss, z), rtol=1e-7)
    for _ in range(60):
        z = z - 0.25 * np.conj(ardiff.grad(loss)(z))
    np.testing.assert_allclose(z, c, atol=1e-12)


def test_real_program_with_complex_intermediates_equals_its_real_implementation():
    """Rotate a 2-vector by complex multiplication and by a rotation matrix."""
    theta = 0.4

    def via_complex(p):
        z = (p[0] + 1j * p[1]) * np.exp(1j * theta)
        return anp.real(z) ** 2 * anp.imag(z) + anp.tanh(anp.imag(z))

    def via_real(p):
        R = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
        q = R @ p
        return q[0] ** 2 * q[1] + anp.tanh(q[1])

    p = np.array([0.3, -1.1])
    g = ardiff.grad(via_complex)(p)
    assert g.dtype == np.float64
    np.testing.assert_allclose(g, ardiff.grad(via_real)(p), rtol=1e-13)
    np.testing.assert_allclose(ardiff.hessian(via_complex)(p), ardiff.hessian(via_real)(p),
                               rtol=1e-12)


# -- the non-holomorphic ops ---------------------------------------------------------------
NON_HOLOMORPHIC = {
    "real": (lambda z: anp.real(z), lambda z: np.ones_like(z)),
    "imag": (lambda z: anp.imag(z), lambda z: -1j * np.ones_like(z)),
    "conj": (lambda z: anp.real(anp.conj(z) * (2 + 1j)), lambda z: (2 - 1j) * np.ones_like(z)),
    "abs": (lambda z: anp.abs(z), lambda z: np.conj(z) / np.abs(z)),
    "angle": (lambda z: anp.angle(z), lambda z: -1j / z),
    "angle deg": (lambda z: anp.angle(z, deg=True), lambda z: -1j / z * 180 / np.pi),
}


@pytest.mark.parametrize("name", sorted(NON_HOLOMORPHIC))
def test_non_holomorphic_ops_match_finite_differences_and_closed_forms(name):
    f, closed = NON_HOLOMORPHIC[name]
    z = np.array([1.1 + 1.2j, -0.4 + 0.9j, 0.8 - 2.0j])
    loss = (lambda v: anp.sum(f(v)))
    g = ardiff.grad(loss)(z)
    np.testing.assert_allclose(g, fd_grad(loss, z), rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(g, closed(z), rtol=1e-12)
    check_grads(f, order=2, modes=["fwd", "rev"])(z)


def test_parts_of_real_values_and_their_gradient_types():
    """autograd's test_real_type: grad of sum(real(x)) is real for real x, complex for complex."""
    df = ardiff.grad(lambda x: anp.sum(anp.real(x)))
    assert np.isrealobj(df(2.0)) and np.iscomplexobj(df(1.0j)) and df(1.0j) == 1.0
    x = np.array([1.0, -2.0])
    assert ardiff.grad(lambda v: anp.sum(anp.imag(v) + anp.conj(v)))(x).tolist() == [1.0, 1.0]
    np.testing.assert_array_equal(anp.angle(ardiff.Graph().input(x)), np.angle(x))
    # the methods of traced values
    z = np.array([1.0 + 2.0j, 3.0 - 1.0j])
    g = ardiff.grad(lambda v: anp.sum(v.real * v.imag + anp.real(v.conj() * 1j)))(z)
    np.testing.assert_allclose(g, fd_grad(lambda v: np.sum(v.real * v.imag + (v.conj() * 1j).real),
                                          z), rtol=1e-7)


def test_abs_at_zero_takes_the_zero_subgradient():
    assert ardiff.grad(lambda z: anp.abs(z))(0j) == 0


# -- the elementwise table, reductions and linear algebra on complex values -----------------
ELEMENTWISE = ["exp", "exp2", "expm1", "log", "log2", "log10", "log1p", "sqrt", "square",
               "reciprocal", "sin", "cos", "tan", "sinh", "cosh", "tanh", "arcsin", "arccos",
               "arctan", "arcsinh", "arccosh", "arctanh", "sinc", "negative", "positive"]
POINTS = np.array([1.3 + 0.4j, -1.3 + 0.4j, -0.5 - 1.2j, 0.2 + 0.9j])


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_elementwise_ops_on_complex_values_give_the_complex_derivative(name):
    fun = getattr(anp, name)
    w = crandn(POINTS.size)
    loss = (lambda z: anp.real(anp.sum(w * fun(z))))
    np.testing.assert_allclose(ardiff.grad(loss)(POINTS), fd_grad(loss, POINTS), rtol=1e-6,
                               atol=1e-8)
    # holomorphic: the elementwise derivative is complex-linear, equal to d/dz by FD
    eps = 1e-7
    derivative = (np.asarray(getattr(np, name)(POINTS + eps)) -
                  np.asarray(getattr(np, name)(POINTS - eps))) / (2 * eps)
    np.testing.assert_allclose(ardiff.elementwise_grad(fun)(POINTS), derivative, rtol=1e-6)
    check_grads(fun, order=2)(POINTS)


BINARY = {
    "add": anp.add, "subtract": anp.subtract, "multiply": anp.multiply, "divide": anp.divide,
    "power": anp.power, "matmul-like dot": anp.dot, "where": lambda a, b: anp.where(
        np.array([True, False, True, False]), a, b),
}


@pytest.mark.parametrize("name", sorted(BINARY))
def test_binary_ops_on_complex_values(name):
    f = BINARY[name]
    a, b = POINTS, crandn(4) * 0.5 + 1.0
    for argnum in (0, 1):
        loss = (lambda v: anp.real(anp.sum(f(v, b) if argnum == 0 else f(a, v)) * (1 - 2j)))
        x = a if argnum == 0 else b
        np.testing.assert_allclose(ardiff.grad(loss)(x), fd_grad(loss, x), rtol=1e-6, atol=1e-8)
    check_grads(f, argnum=(0, 1), order=2)(a, b)
    # a real operand meeting a complex one gets a real gradient
    real = np.array([0.5, 1.5, 2.0, 0.7])
    loss = (lambda v: anp.real(anp.sum(f(v, b) * (1 - 2j))))
    g = ardiff.grad(loss)(real)
    assert g.dtype == np.float64
    np.testing.assert_allclose(g, fd_grad(loss, real), rtol=1e-6, atol=1e-8)


def test_reductions_on_complex_values():
    z = crandn(3, 4)
    programs = [
        lambda v: anp.real(anp.sum(v * v)), lambda v: anp.imag(anp.mean(v ** 3, axis=0)[1]),
        lambda v: anp.abs(anp.prod(v[0])), lambda v: anp.var(v), lambda v: anp.sum(anp.std(
            v, axis=1, ddof=1)), lambda v: anp.real(anp.sum(anp.cumsum(v, axis=1) * v)),
        lambda v: anp.linalg.norm(v), lambda v: anp.sum(anp.linalg.norm(v, axis=0)),
    ]
    for loss in programs:
        np.testing.assert_allclose(ardiff.grad(loss)(z), fd_grad(loss, z), rtol=1e-6, atol=1e-8)
        check_grads(loss, order=2)(z)
    # var is the mean squared modulus of the deviations: closed form 2 conj(z - mean) / n
    np.testing.assert_allclose(ardiff.grad(lambda v: anp.var(v))(z),
                               2 * np.conj(z - z.mean()) / z.size, rtol=1e-12)


LINALG = {
    "matmul": lambda a, b: a @ b,
    "einsum": lambda a, b: anp.einsum("ij,jk->ik", a, b),
    "tensordot": lambda a, b: anp.tensordot(a, b, axes=1),
    "solve": lambda a, b: anp.linalg.solve(a, b),
    "inv": lambda a, b: anp.linalg.inv(a) @ b,
    "det": lambda a, b: anp.linalg.det(a) * b,
    "slogdet sign": lambda a, b: anp.linalg.slogdet(a)[0] * b,
    "slogdet log": lambda a, b: anp.linalg.slogdet(a)[1] * b,
    "expm": lambda a, b: aslinalg.expm(0.3 * a) @ b,
}


@pytest.mark.parametrize("name", sorted(LINALG))
def test_linear_algebra_on_complex_matrices(name):
    f = LINALG[name]
    a = crandn(3, 3) + 3 * np.eye(3)
    b = crandn(3, 2)
    w = crandn(3, 2)
    for argnum in (0, 1):
        loss = (lambda v: anp.real(anp.sum(w * (f(v, b) if argnum == 0 else f(a, v)))))
        x = a if argnum == 0 else b
        np.testing.assert_allclose(ardiff.grad(loss)(x), fd_grad(loss, x), rtol=1e-6, atol=1e-8)
    check_grads(f, argnum=(0, 1), order=2)(a, b)


def test_ops_without_complex_derivatives_refuse_clearly():
    z = crandn(3, 3)
    cases = [
        (lambda v: anp.abs(anp.sum(anp.linalg.qr(v)[1])), "qr_r"),
        (lambda v: anp.abs(anp.sum(anp.linalg.pinv(v))), "pinv"),
        (lambda v: anp.real(anp.sum(anp.linalg.cholesky(v @ anp.conj(v).T))), "cholesky"),
        (lambda v: anp.real(anp.sum(anp.sign(v))), "sign"),
    ]
    for fun, op in cases:
        with pytest.raises(TypeError, match=f"'{op}'.*complex"):
            ardiff.grad(fun)(z)
    # plain NumPy calls through the namespace still work on complex values
    np.testing.assert_allclose(anp.linalg.svd(z)[1], np.linalg.svd(z)[1])


# decompositions: functions that do not depend on the eigenvectors' / singular vectors'
# phases (which NumPy fixes by no rule of the input), against finite differences
DECOMPOSITIONS = {
    "eigvalsh": lambda v: anp.linalg.eigvalsh(v),
    "eigh vectors": lambda v: anp.abs(anp.linalg.eigh(v, "U")[1]) ** 2,
    "svd values": lambda v: anp.linalg.svd(v, compute_uv=False),
    "svd U": lambda v: anp.abs(anp.linalg.svd(v, full_matrices=False)[0]),
    "svd Vh": lambda v: anp.abs(anp.linalg.svd(v, full_matrices=False)[2]),
    "svd reconstruction": lambda v: (lambda u, s, vh: (u * s) @ vh)(
        *anp.linalg.svd(v, full_matrices=False)),
    "nuclear norm": lambda v: anp.linalg.norm(v, "nuc"),
    "eigvals": lambda v: anp.linalg.eigvals(v),
    "eig vectors": lambda v: anp.abs(anp.linalg.eig(v)[1]),
    "norm ord 3": lambda v: anp.linalg.norm(v, 3, axis=1),
    "norm ord inf": lambda v: anp.linalg.norm(v, np.inf, axis=0),
}


@pytest.mark.parametrize("name", sorted(DECOMPOSITIONS))
@pytest.mark.parametrize("shape", [(3, 3), (4, 3), (3, 4)])
def test_decompositions_of_complex_matrices(name, shape):
    if shape[0] != shape[1] and name.startswith(("eig", "eigh")):
        pytest.skip("square matrices only")
    f = DECOMPOSITIONS[name]
    a = crandn(*shape)
    out = np.asarray(f(a))
    w = crandn(*out.shape)
    loss = (lambda v: anp.real(anp.sum(w * f(v))))
    np.testing.assert_allclose(ardiff.grad(loss)(a), fd_grad(loss, a), rtol=1e-5, atol=1e-7)
    check_grads(f, order=2)(a)


def test_eig_of_a_real_matrix_with_complex_eigenvalues():
    """A rotation-like real matrix: eigenvalues a +- ib; the gradient of their real and
    imaginary parts is real, and d(sum of eigenvalues) = d trace."""
    a = np.array([[0.3, -2.0, 0.1], [1.5, 0.2, 0.0], [0.1, 0.4, 1.0]])
    assert np.iscomplexobj(np.linalg.eigvals(a))
    for loss in (lambda v: anp.sum(anp.imag(anp.linalg.eigvals(v)) ** 2),
                 lambda v: anp.real(anp.sum(anp.linalg.eigvals(v) ** 3))):
        g = ardiff.grad(loss)(a)
        assert g.dtype == np.float64
        np.testing.assert_allclose(g, fd_grad(loss, a), rtol=1e-6, atol=1e-8)
    g = ardiff.grad(lambda v: anp.real(anp.sum(anp.linalg.eigvals(v))))(a)
    np.testing.assert_allclose(g, np.eye(3), atol=1e-12)


# -- transforms ----------------------------------------------------------------------------
def test_jacobian_and_make_vjp_of_a_holomorphic_map():
    z = crandn(3)
    f = (lambda v: anp.sin(v) * v[::-1])
    J = ardiff.jacobian(f)(z)
    eps = 1e-7
    numeric = np.stack([(np.sin(z + eps * e) * (z + eps * e)[::-1]
                         - np.sin(z - eps * e) * (z - eps * e)[::-1]) / (2 * eps)
                        for e in np.eye(3)], axis=1)
    np.testing.assert_allclose(J, numeric, rtol=1e-7)
    vjp, value = ardiff.make_vjp(f)(z)
    g = crandn(3)
    np.testing.assert_allclose(vjp(g), g @ J, rtol=1e-12)  # no conjugate: VJP = g^T J
    np.testing.assert_allclose(value, np.sin(z) * z[::-1])


def test_holomorphic_grad_refuses_a_real_argument():
    with pytest.raises(TypeError, match="holomorphic_grad: argument 0 .* not complex"):
        ardiff.holomorphic_grad(lambda z: z ** 2)(1.5)


def test_check_grads_catches_a_wrong_complex_vjp():
    """A VJP that forgets the conjugate of conj is right along real directions and wrong
    along imaginary ones: check_grads (random complex directions) must catch it."""
    from ardiff.op import Op

    wrong = Op("wrong_conj", np.conj, [lambda ans, z: lambda g: g])
    check_grads(lambda z: anp.conj(z) * 2.0)(1.0 + 2.0j)
    with pytest.raises(AssertionError, match="derivative mismatch"):
        check_grads(lambda z: wrong(z) * 2.0)(1.0 + 2.0j)


# -- solvers ---------------------------------------------------------------------------------
def _complex_program(z, w):
    h = anp.tanh(z @ w) * anp.conj(z[::-1] @ w)
    return anp.sum(anp.abs(h) ** 2) + anp.real(anp.sum(anp.exp(1j * anp.angle(h)))) \
        + anp.imag(anp.sum(h * z[:2]))


def test_relaxation_and_triangular_solver_equal_backprop_on_complex_graphs():
    z, w = crandn(3) * 0.5, crandn(3, 2) * 0.5
    graph = ardiff.trace(_complex_program, z, w)
    reference = ardiff.backprop(graph).grads
    np.testing.assert_allclose(reference[0], fd_grad(lambda v: _complex_program(v, w), z),
                               rtol=1e-6)
    np.testing.assert_allclose(reference[1], fd_grad(lambda v: _complex_program(z, v), w),
                               rtol=1e-6)
    for schedule, eta, init in itertools.product(("sequential", "parallel"), (1.0, 0.5, 1.5),
                                                 ("zeros", "forward")):
        result = ardiff.relax(graph, schedule=schedule, eta=eta, init=init, max_iter=5000)
        assert result.converged
        for got, want in zip(result.grads, reference):
            np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12,
                                       err_msg=f"{schedule} eta={eta} init={init}")
    for schedule in ("sequential", "parallel"):
        closed = ardiff.relax(graph, schedule=schedule, eta=0.5, closed_form=True,
                              max_iter=400)
        for got, want in zip(closed.grads, reference):
            np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)
    triangular = ardiff.solve_triangular(graph)
    for got, want in zip(triangular.grads, reference):
        assert got.dtype == np.complex128
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)
    assert triangular.residuals[0] < 1e-14


def test_second_order_through_relaxation_on_complex_values():
    z = crandn(2)
    f = (lambda v: anp.sum(anp.abs(anp.sin(v) * v[::-1]) ** 2))
    for options in (dict(method="backprop"), dict(method="relax"),
                    dict(method="relax", schedule="parallel", init="forward")):
        check_grads(f, order=2, **options)(z)


def test_convexity_report_of_a_complex_graph():
    """The real form of a complex graph's system: twice the unknowns of its complex
    nodes, still strictly upper triangular with a unit diagonal (all eigenvalues 1)."""
    z, w = crandn(3) * 0.5, crandn(3, 2) * 0.5
    graph = ardiff.trace(_complex_program, z, w)
    report = ardiff.check_convexity(graph)
    assert report.ok and report.unit_diagonal and report.strictly_upper_triangular
    plan_nodes = ardiff.backprop(graph).activities
    expected = sum(np.size(a) * (2 if np.iscomplexobj(a) else 1) for a in plan_nodes.values())
    assert report.size == expected
    assert report.measured_error < 1e-12


def test_rule_variants_refuse_complex_edges():
    z = crandn(2, 2)
    graph = ardiff.trace(lambda v: anp.real(anp.sum(anp.tanh(v @ v))), z)
    for rule in (NoDerivative(), FeedbackAlignment(seed=0)):
        with pytest.raises(TypeError, match="defined for real-valued graphs"):
            ardiff.relax(graph, rules=[rule])


# -- input dtypes ---------------------------------------------------------------------------
def test_input_dtypes():
    f = (lambda v: anp.sum(anp.abs(v) ** 2))
    for dtype in (np.complex64, np.complex128):
        g = ardiff.grad(f)(np.array([1 + 2j, 3 - 1j], dtype=dtype))
        assert g.dtype == dtype
        np.testing.assert_allclose(g, [2 - 4j, 6 + 2j], rtol=1e-6)
    assert ardiff.grad(f)(np.complex64(1 + 1j)).dtype == np.complex64
    assert ardiff.grad(f)(1 + 1j) == 2 - 2j  # a Python complex
    g = ardiff.grad(lambda v: anp.real(anp.sum(v * (1 + 1j))))(np.arange(3))
    assert g.dtype == np.float64 and g.tolist() == [1.0, 1.0, 1.0]
    for bad, words in [(True, "boolean"), (np.array([1j], dtype=object), "dtype object")]:
        with pytest.raises(TypeError, match=words):
            ardiff.grad(f)(bad)
    graph = ardiff.Graph()
    z = graph.input(np.array([1j, 2.0]), name="z")
    assert np.iscomplexobj(z.value)
    out = anp.sum(anp.abs(z) ** 2)
    np.testing.assert_allclose(ardiff.backprop(graph, out, wrt=[z]).grads[0], [-2j, 4.0])


def test_the_docs_page_examples_run():
    """The code of docs/complex.md runs and its assertions hold."""
    import re
    from pathlib import Path

    page = (Path(__file__).parent.parent / "docs" / "complex.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", page, re.S)
    assert blocks
    for block in blocks:
        exec(compile(block, "docs/complex.md", "exec"), {})


def test_compiled_replay_of_a_complex_program():
    """ardiff.compile records once and replays at new points: gradients there match
    finite differences (real and imaginary directions)."""
    def f(z):
        spectrum = anp.fft.fft(anp.sin(z))
        return anp.sum(anp.abs(spectrum) ** 2) + anp.real(anp.sum(anp.conj(z) * z[::-1]))

    compiled = ardiff.compile(f)
    for z in (crandn(4), crandn(4)):
        np.testing.assert_allclose(compiled(z), fd_grad(f, z), rtol=1e-6, atol=1e-8)


COMPOSED = {  # functions of ardiff.numpy composed from ops, whose NumPy forms conjugate
    "correlate valid": lambda a, b: anp.correlate(a[0], b[1], "valid"),
    "correlate full (v longer)": lambda a, b: anp.correlate(a[0, :2], b[1], "full"),
    "vdot": lambda a, b: anp.vdot(a, b),
    "cov": lambda a, b: anp.cov(a, b),
    "corrcoef": lambda a, b: anp.corrcoef(a),
}


@pytest.mark.parametrize("name", sorted(COMPOSED))
def test_composed_functions_conjugate_as_numpy_does(name):
    f = COMPOSED[name]
    a, b = crandn(2, 4), crandn(2, 4)
    graph = ardiff.Graph()
    expected = {"correlate valid": lambda: np.correlate(a[0], b[1], "valid"),
                "correlate full (v longer)": lambda: np.correlate(a[0, :2], b[1], "full"),
                "vdot": lambda: np.vdot(a, b), "cov": lambda: np.cov(a, b),
                "corrcoef": lambda: np.corrcoef(a)}[name]()
    np.testing.assert_allclose(f(graph.input(a), b).value, expected, rtol=1e-12)
    w = crandn(*np.shape(expected))
    for argnum in (0, 1):
        def loss(v):
            return anp.real(anp.sum(w * (f(v, b) if argnum == 0 else f(a, v))))
        x = a if argnum == 0 else b
        np.testing.assert_allclose(ardiff.grad(loss)(x), fd_grad(loss, x), rtol=1e-6,
                                   atol=1e-8)


def test_sqrtm_of_a_real_matrix_with_negative_eigenvalues_is_complex():
    """SciPy's principal root is complex there; the real matrix gets a real gradient."""
    a = np.array([[1.0, 2.0, 0.0], [2.0, -1.0, 0.5], [0.0, 0.5, 2.0]])
    assert np.min(np.linalg.eigvalsh(a)) < 0
    w = crandn(3, 3)

    def loss(v):
        return anp.real(anp.sum(w * aslinalg.sqrtm(v)))

    g = ardiff.grad(loss)(a)
    assert g.dtype == np.float64
    np.testing.assert_allclose(g, fd_grad(loss, a), rtol=1e-6, atol=1e-8)
