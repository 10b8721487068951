"""What every solver shares (ardiff.solvers.common) against independent truths.

Truths: NumPy's own `isfinite` (for `is_finite`, on every kind of value it is handed:
Python and NumPy scalars, small and large, contiguous and strided, real, complex,
float16/32/64 and integer arrays, sums that overflow although every entry is finite);
exact rational arithmetic with `fractions.Fraction` (for `relative_error`); closed-form
derivatives written in the test (the activities and gradients of a sweep, of a
read-out at an intermediate node, the zero gradient of an unconnected input) and edge
counts of graphs built by hand (VJP evaluations); for the warnings, the node labels and
texts written out here and the test's own line numbers (where a warning is attributed).
"""

import inspect
import os
import warnings
from fractions import Fraction

import numpy as np
import pytest

import ardiff
import ardiff.numpy as anp
from ardiff.graph import Released
from ardiff.op import OPS, defop
from ardiff.solvers import common, compile_plan
from ardiff.solvers.common import (
    NonFiniteWarning,
    is_finite,
    make_seed,
    read_out,
    relative_error,
    sweep,
    warn_at_caller,
    warn_non_finite,
)

NAN, INF = float("nan"), float("inf")


# -- is_finite: NumPy's answer for every kind of value ---------------------------------------
def finite_cases():
    rng = np.random.default_rng(0)
    big = rng.standard_normal(40)
    strided = rng.standard_normal((6, 7)).T  # not C-contiguous, 42 entries
    cases = [
        0.5, NAN, INF, -INF, 3, 10 ** 400 // 10 ** 399, complex(1, 2), complex(NAN, 0),
        complex(0, INF), np.float64(NAN), np.float64(-2.0), np.float32(INF),
        np.float32(1.5), np.float16(NAN), np.float16(1.0), np.complex128(1j),
        np.complex128(complex(0, NAN)), np.complex64(complex(INF, 0)), np.complex64(1 + 1j),
        [1.0, NAN], [1.0, 2.0], (1.0, INF), np.array(2.0), np.array(NAN),
        np.array([1.0, 2.0, NAN]), np.array([1.0, 2.0]), np.ones(32), np.r_[np.ones(31), INF],
        np.ones(33), np.r_[np.ones(32), NAN], np.array([1j, 2.0]), np.array([1j, NAN]),
        np.array([1j, complex(0, INF)], dtype=np.complex64),
        big, np.r_[big, INF], np.r_[big, NAN], big.astype(np.float32),
        np.r_[big, -INF].astype(np.float32), big.astype(np.float16),
        np.r_[big, NAN].astype(np.float16), big + 1j * big, np.r_[big, complex(NAN, 1)],
        np.r_[big, complex(1, INF)].astype(np.complex64),
        big.reshape(5, 8), np.r_[big[:34], NAN].reshape(5, 7),  # 2-D, contiguous, not square
        strided, np.where(np.arange(42).reshape(7, 6) == 41, NAN, strided),
        # every entry finite, the sum of squares (or the sum) overflows: confirmed entry
        # by entry
        np.full(40, 1e200), np.full((8, 6), 1e300).T, np.full(40, 1e300 + 1e300j),
        np.full(40, 6e4, dtype=np.float16), np.full(40, 1e30, dtype=np.float32),
        # infinities of both signs: the sum is NaN (an invalid operation)
        np.r_[np.full(20, INF), np.full(20, -INF)].reshape(8, 5).T,
        np.r_[np.full(20, INF), np.full(20, -INF)],
        np.arange(40), np.arange(5), np.ones(40, dtype=bool), np.zeros(0), np.zeros((0, 3)),
    ]
    return cases


@pytest.mark.parametrize("value", finite_cases(), ids=lambda v: type(v).__name__)
def test_is_finite_is_numpys_answer(value):
    want = bool(np.all(np.isfinite(np.asarray(value))))
    assert is_finite(value) is want
    if isinstance(value, np.ndarray) and value.dtype.kind in "fc":
        g = ardiff.Graph()
        assert is_finite(g.input(value.astype(np.float64) if value.dtype.kind == "f"
                                 else value)) is want


def test_is_finite_raises_no_floating_point_warning():
    """The overflowing reductions are silent even with every trap raised."""
    with np.errstate(all="raise"):
        assert is_finite(np.full((8, 6), 1e300).T)
        assert is_finite(np.full(40, 1e200))
        assert not is_finite(np.r_[np.full(20, INF), np.full(20, -INF)].reshape(8, 5).T)
        assert not is_finite(np.r_[np.full(20, INF), np.full(20, -INF)] * (1 + 1j))


# -- relative_error: exact rational arithmetic ------------------------------------------------
def exact_relative_error(a, b):
    """max|a - b| / max(max|a|, max|b|) in exact arithmetic (real inputs)."""
    a = [Fraction(float(v)) for v in np.ravel(a)]
    b = [Fraction(float(v)) for v in np.ravel(b)]
    gap = max((abs(p - q) for p, q in zip(a, b)), default=Fraction(0))
    scale = max([abs(v) for v in a + b], default=Fraction(0))
    return float(gap / scale) if scale else float(gap)


@pytest.mark.parametrize("a, b", [
    (np.float32([1.0, 0.5]), np.float32([-1e-8, 0.5])),  # float32 arithmetic would round
    (np.float32([3.0]), np.float32([3.0000002])),
    (np.array([2 ** 62, 1]), np.array([-2 ** 62, 1])),  # int64 arithmetic would overflow
    (np.array([1.0, -3.0, 2.5]), np.array([1.5, -3.0, 2.0])),
    (np.zeros(3), np.zeros(3)),
    (np.zeros(0), np.zeros(0)),  # empty: the absolute gap, 0
    (np.zeros((0, 2), dtype=np.float32), np.zeros((0, 2), dtype=np.float32)),
    (0.25, np.array([0.25, 0.5])),  # broadcast
])
def test_relative_error_is_exact_rational_arithmetic(a, b):
    want = exact_relative_error(*np.broadcast_arrays(a, b))
    assert relative_error(a, b) == pytest.approx(want, rel=1e-15, abs=0.0)
    assert relative_error(b, a) == pytest.approx(want, rel=1e-15, abs=0.0)


def test_relative_error_of_complex_values_is_measured_by_modulus():
    # |3 + 4i - 0| = 5 exactly; |(1 + 1i) - 1| = 1, scale max(|1 + 1i|, |2|) = 2
    for a, b, want in (([3 + 4j, 1.0], [0.0, 1.0], 1.0),
                       ([1 + 1j, 2.0], [1.0, 2.0], 0.5),
                       (np.complex64([1j]), np.float32([0.0]), 1.0)):
        assert relative_error(np.asarray(a), np.asarray(b)) == want
        assert relative_error(np.asarray(b), np.asarray(a)) == want
    assert np.isnan(relative_error(np.array([NAN, 1.0]), np.array([1.0, 1.0])))
    g = ardiff.Graph()
    assert relative_error(g.input(np.array([2.0, 4.0])), np.array([2.0, 3.0])) == 0.25


# -- make_seed ---------------------------------------------------------------------------------
@pytest.fixture
def scalar_ops():
    """Ops whose forward value is a Python number (not a NumPy array or scalar)."""
    real = defop("t_py_real", lambda t: float(2.0 * np.sum(t)),
                 lambda ans, t: (lambda g: 2.0 * np.real(g) * np.ones_like(t)))
    cplx = defop("t_py_complex", lambda t: complex(np.sum(t)) * 1j,
                 lambda ans, t: (lambda g: np.real(g * 1j) * np.ones_like(t)))
    yield real, cplx
    OPS.pop("t_py_real")
    OPS.pop("t_py_complex")


@pytest.mark.parametrize("shape", [(), (1,), (1, 1)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.complex64])
def test_default_seed_is_one_of_the_outputs_shape_and_dtype(shape, dtype):
    g = ardiff.Graph()
    x = g.input(np.array([0.3, -0.7]), name="x")
    out = anp.reshape(anp.sum(anp.tanh(x)), shape).astype(dtype)
    seed = make_seed(compile_plan(g, out), None)
    assert isinstance(seed, np.ndarray) and seed.shape == shape and seed.dtype == dtype
    np.testing.assert_array_equal(seed, np.ones(shape, dtype))


@pytest.mark.parametrize("shape", [(), (1,), (1, 1)])
def test_float32_gradient_through_a_size_one_output(shape):
    """d/dx sum(tanh(x)) = 1 - tanh(x)^2, in float32 and shaped like x, whatever the
    shape of the size-one output."""
    xv = np.array([0.3, -0.7], dtype=np.float32)
    g = ardiff.Graph()
    x = g.input(xv, name="x")
    out = anp.reshape(anp.sum(anp.tanh(x)), shape)
    for result in (ardiff.backprop(g, out, [x, out]), ardiff.solve_triangular(g, out, [x, out]),
                   ardiff.relax(g, out, [x, out])):
        got, own = result.grads
        assert got.dtype == np.float32 and got.shape == (2,)
        np.testing.assert_allclose(got, 1 - np.tanh(xv.astype(np.float64)) ** 2, rtol=1e-6)
        assert own.shape == shape and own.dtype == np.float32 and np.all(own == 1)


def test_output_whose_value_is_a_python_number(scalar_ops):
    """f(x) = 2 sum(tanh(x)) (a Python float) and f(x) = 1j sum(tanh(x)) (a Python
    complex); the seed is 1 of the output's dtype, the gradient of the pairing
    Re(seed * f) of docs/complex.md is 2 (1 - tanh^2) and, with the seed 1, 0 (with the
    seed 1j: Re(1j * 1j sum(tanh)) = -sum(tanh), gradient -(1 - tanh^2))."""
    real, cplx = scalar_ops
    xv = np.array([0.3, -0.7])
    dt = 1 - np.tanh(xv) ** 2
    for op, dtype, want in ((real, np.float64, 2.0 * dt), (cplx, np.complex128, 0.0 * dt)):
        g = ardiff.Graph()
        x = g.input(xv, name="x")
        out = op(anp.tanh(x))
        assert type(g.nodes[-1].value) in (float, complex)
        seed = make_seed(compile_plan(g, out, [x, out]), None)
        assert seed.shape == () and seed.dtype == dtype and seed == 1
        result = ardiff.backprop(g, out, [x, out])
        assert result.grads[1].dtype == dtype and result.grads[1] == 1
        np.testing.assert_allclose(result.grads[0], want, rtol=1e-14, atol=1e-300)
    seeded = ardiff.backprop(g, out, [x], seed=1j)
    np.testing.assert_allclose(seeded.grads[0], -dt, rtol=1e-14)


def test_seed_is_cast_to_the_outputs_dtype():
    g = ardiff.Graph()
    x = g.input(np.array([0.3, -0.7], dtype=np.float32), name="x")
    out = anp.tanh(x)
    plan = compile_plan(g, out)
    for given in ([2, 3], np.array([2.0, 3.0]), (2, 3)):
        seed = make_seed(plan, given)
        assert seed.dtype == np.float32 and seed.shape == (2,)
        np.testing.assert_array_equal(seed, [2.0, 3.0])
    result = ardiff.backprop(g, out, [x], seed=np.array([2.0, 3.0]))
    assert result.grads[0].dtype == np.float32
    np.testing.assert_allclose(result.grads[0], [2.0, 3.0] * (1 - np.tanh([0.3, -0.7]) ** 2),
                               rtol=1e-6)
    outer = ardiff.Graph()
    v = outer.input(np.array([1.0, 2.0]), name="v")
    assert make_seed(plan, v) is v  # a traced seed is kept as it is


def test_seed_refusals_name_the_shapes():
    g = ardiff.Graph()
    x = g.input(np.array([0.3, -0.7]), name="x")
    out = anp.tanh(x)
    plan = compile_plan(g, out)
    with pytest.raises(ValueError) as info:
        make_seed(plan, None)
    assert str(info.value) == (
        "The output node 1 (op tanh, shape (2,)) is not a scalar; pass seed= (an array "
        "shaped like the output), or use elementwise_grad/jacobian.")
    with pytest.raises(ValueError) as info:
        make_seed(plan, np.ones(3))
    assert str(info.value) == "seed has shape (3,) but the output has shape (2,)"
    with pytest.raises(ValueError) as info:
        make_seed(plan, 1.0)
    assert str(info.value) == "seed has shape () but the output has shape (2,)"


# -- sweep and read_out: closed-form derivatives and hand-counted edges ------------------------
def reused_and_skip():
    """t = tanh(x); u = t * t (t read twice); v = u + t (a skip connection); sum(v)."""
    xv = np.array([0.3, -0.7, 1.1])
    g = ardiff.Graph()
    x = g.input(xv, name="x")
    t = anp.tanh(x)
    u = t * t
    v = u + t
    return g, anp.sum(v), x, t, xv


@pytest.mark.parametrize("stage", [False, True])
def test_sweep_lands_on_the_derivatives_and_counts_each_edge(stage):
    g, out, x, t, xv = reused_and_skip()
    plan = compile_plan(g, out, stage=stage)
    assert plan.staged is stage
    activities = {plan.output: np.float64(1.0)}
    # the edges out of the relaxing nodes t (two into u, one into v), u (one) and v (one)
    assert sweep(plan, activities) == 5
    tv = np.tanh(xv)
    np.testing.assert_allclose(activities[1], 2 * tv + 1, rtol=1e-15)  # dL/dt
    np.testing.assert_allclose(activities[2], np.ones(3))  # dL/du
    np.testing.assert_allclose(activities[3], np.ones(3))  # dL/dv


@pytest.mark.parametrize("method", ["backprop", "triangular", "relax"])
def test_gradient_at_an_intermediate_node_is_its_activity(method):
    g, out, x, t, xv = reused_and_skip()
    solve = {"backprop": ardiff.backprop, "triangular": ardiff.solve_triangular,
             "relax": ardiff.relax}[method]
    result = solve(g, out, [x, t])
    tv = np.tanh(xv)
    np.testing.assert_allclose(result.grads[1], 2 * tv + 1, rtol=1e-12)  # dL/dt
    np.testing.assert_allclose(result.grads[0], (2 * tv + 1) * (1 - tv ** 2), rtol=1e-12)
    assert result.converged
    if method == "backprop":  # five edges in the sweep, one read-out of x
        assert result.vjp_evals == 6
        assert result.iterations == 1 and list(result.residuals) == [0.0]


@pytest.mark.parametrize("method", ["backprop", "triangular", "relax"])
def test_unconnected_input_has_an_exact_zero_gradient_of_its_shape_and_dtype(method):
    g = ardiff.Graph()
    x = g.input(np.array([0.3, -0.7]), name="x")
    z = g.input(np.ones((2, 3), dtype=np.float32), name="z")
    w = g.input(np.array([1j, 2.0], dtype=np.complex64), name="w")
    out = anp.sum(anp.tanh(x))
    solve = {"backprop": ardiff.backprop, "triangular": ardiff.solve_triangular,
             "relax": ardiff.relax}[method]
    result = solve(g, out, [x, z, w])
    np.testing.assert_allclose(result.grads[0], 1 - np.tanh([0.3, -0.7]) ** 2, rtol=1e-12)
    for got, want in zip(result.grads[1:], (np.zeros((2, 3), np.float32),
                                            np.zeros(2, np.complex64))):
        assert got.shape == want.shape and got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)
    plan = compile_plan(g, out, [z, w])
    grads, evals = read_out(plan, {plan.output: np.float64(1.0)}, np.float64(1.0))
    assert evals == 0 and [a.shape for a in grads] == [(2, 3), (2,)]
    assert [a.dtype for a in grads] == [np.float32, np.complex64]


def test_float32_relaxation_reports_float64_residuals():
    xv = np.array([0.3, -0.7], dtype=np.float32)
    g = ardiff.Graph()
    x = g.input(xv, name="x")
    out = anp.sum(anp.tanh(anp.tanh(x) * 1.5))
    for result in (ardiff.relax(g, out, schedule="parallel", eta=0.5, tol=1e-4),
                   ardiff.relax(g, out, schedule="parallel", eta=0.5, tol=1e-4,
                                closed_form=True),
                   ardiff.backprop(g, out), ardiff.solve_triangular(g, out)):
        assert result.residuals.dtype == np.float64 and result.converged


# -- warn_at_caller: the first frame outside the package ----------------------------------------
def test_warning_is_attributed_to_the_first_frame_outside_the_package(monkeypatch):
    """Two frames of a (stand-in) package module between the caller and the warning: it
    points at the caller's line.  PACKAGE_DIR is pointed at the directory of the code
    the name `warn_at_caller` runs first (ardiff/solvers normally; a wrapper's, when the
    function is wrapped, e.g. by a mutation-testing tool), and the stand-in module is
    compiled under the same directory, so every frame in between is inside it."""
    package = os.path.dirname(warn_at_caller.__code__.co_filename) + os.sep
    monkeypatch.setattr(common, "PACKAGE_DIR", package)
    source = ("def outer(warn, message, category):\n"
              "    return inner(warn, message, category)\n"
              "\n"
              "def inner(warn, message, category):\n"
              "    warn(message, category)\n")
    namespace = {}
    exec(compile(source, package + "stand_in_module.py", "exec"), namespace)
    with warnings.catch_warnings(record=True) as found:
        warnings.simplefilter("always")
        line = inspect.currentframe().f_lineno + 1
        namespace["outer"](warn_at_caller, "through two package frames", NonFiniteWarning)
        direct = inspect.currentframe().f_lineno + 1
        warn_at_caller("directly", UserWarning)
    assert [(w.filename, w.lineno, w.category, str(w.message)) for w in found] == [
        (__file__, line, NonFiniteWarning, "through two package frames"),
        (__file__, direct, UserWarning, "directly")]


# -- warn_non_finite: the node where a NaN or infinity starts -----------------------------------
def two_input_graph():
    """x -> tanh -> (* y) -> (+ exp(y)) -> sum; y has two children (exp and multiply)."""
    g = ardiff.Graph()
    x = g.input(np.array([0.5, 2.0]), name="x")
    y = g.input(np.array([1.0, -1.0]), name="y")
    b = anp.tanh(x) * y
    out = anp.sum(b + anp.exp(y))
    plan = compile_plan(g, out)
    assert plan.relaxing == [2, 3, 4, 5] and plan.wrt == [0, 1]
    return g, plan


def messages(call):
    with warnings.catch_warnings(record=True) as found:
        warnings.simplefilter("always")
        call()
    assert all(w.category is NonFiniteWarning for w in found), found
    return [str(w.message) for w in found]


FINITE = np.array([1.0, 2.0])
BAD = np.array([1.0, NAN])
LEAN = (" (Forward values no local derivative reads were not kept by this one-sweep "
        "recording; method='triangular' keeps them all and names the first non-finite one.)")
ACTIVITY = ("Non-finite activity first appears at {}: the local derivative of one of its "
            "children is not finite there (e.g. sqrt or log at 0, or an overflow).")
READ_OUT = ("Non-finite gradient read out at {} from its children {}; check their local "
            "derivatives (e.g. sqrt or log at 0).")
LABELS = {1: "node 1 'y' (op input, shape (2,))", 2: "node 2 (op tanh, shape (2,))",
          3: "node 3 (op multiply, shape (2,))", 4: "node 4 (op exp, shape (2,))",
          5: "node 5 (op add, shape (2,))"}


def test_finite_gradients_are_not_checked_further():
    g, plan = two_input_graph()
    activities = {2: BAD, 3: BAD, 4: BAD, 5: BAD}
    values = [BAD] * 7
    assert messages(lambda: warn_non_finite(plan, activities, [FINITE, FINITE], values)) == []


def test_first_non_finite_forward_value_in_topological_order():
    g, plan = two_input_graph()
    values = [node.value for node in g.nodes]
    values[3], values[5] = BAD, BAD
    activities = {2: BAD, 3: FINITE, 4: FINITE, 5: FINITE}
    assert messages(lambda: warn_non_finite(plan, activities, [FINITE, BAD], values)) == [
        "Non-finite forward value at node 3 (op multiply, shape (2,)): the gradients "
        "through it are not finite. Check the inputs and the ops feeding this node."]
    # a released value (a lean recording) is passed over, not the end of the search
    values = [node.value for node in g.nodes]
    values[2] = Released(np.asarray(values[2]), 2, "tanh")
    values[4] = BAD
    assert messages(lambda: warn_non_finite(plan, activities, [BAD, FINITE], values)) == [
        "Non-finite forward value at node 4 (op exp, shape (2,)): the gradients through it "
        "are not finite. Check the inputs and the ops feeding this node."]


def test_first_non_finite_activity_from_the_output_down():
    g, plan = two_input_graph()
    full = {5: FINITE, 4: BAD, 3: FINITE, 2: BAD}  # from the output down: 5, 4, 3, 2
    assert messages(lambda: warn_non_finite(plan, full, [FINITE, BAD])) == [
        ACTIVITY.format(LABELS[4])]
    partial = {2: BAD}  # a node with no activity is skipped
    assert messages(lambda: warn_non_finite(plan, partial, [BAD, FINITE])) == [
        ACTIVITY.format(LABELS[2])]
    lean = [node.value for node in g.nodes]
    lean[3] = Released(np.asarray(lean[3]), 3, "multiply")
    assert messages(lambda: warn_non_finite(plan, full, [FINITE, BAD], lean)) == [
        ACTIVITY.format(LABELS[4]) + LEAN]


def test_non_finite_read_out_names_the_node_and_its_children():
    g, plan = two_input_graph()
    activities = {5: FINITE, 4: FINITE, 3: FINITE, 2: FINITE}
    children = f"{LABELS[4]}, {LABELS[3]}"
    assert messages(lambda: warn_non_finite(plan, activities, [FINITE, BAD])) == [
        READ_OUT.format(LABELS[1], children)]
    lean = [node.value for node in g.nodes]
    lean[5] = Released(np.asarray(lean[5]), 5, "add")
    assert messages(lambda: warn_non_finite(plan, activities, [FINITE, BAD], lean)) == [
        READ_OUT.format(LABELS[1], children) + LEAN]
    assert messages(lambda: warn_non_finite(plan, activities, [BAD, BAD])) == [
        READ_OUT.format("node 0 'x' (op input, shape (2,))", LABELS[2])]


def test_a_solve_warns_at_the_node_and_is_not_converged():
    """End to end: sqrt has an infinite derivative at 0, so the activity of its parent
    (x * 1.0) is the first one, from the output down, that is not finite."""
    g = ardiff.Graph()
    x = g.input(np.array([0.0, 1.0]), name="x")
    s = anp.sqrt(x * 1.0)
    out = anp.sum(anp.tanh(s))
    for solve in (ardiff.backprop, ardiff.solve_triangular):
        results = []
        with np.errstate(divide="ignore", invalid="ignore"):
            found = messages(lambda: results.append(solve(g, out)))
        assert found == [ACTIVITY.format("node 1 (op multiply, shape (2,))")]
        assert results[0].converged is False and np.isinf(results[0].grads[0][0])
