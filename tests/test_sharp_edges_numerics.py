"""Catalogue of sharp edges, part 2: empty arrays, badly built graphs, NaN and inf,
solver options, and the conventions at kinks.

Every case is an error of an exact type whose message names the op, node or
option and the fix, or a documented result (see docs/sharp-edges.md).
"""

from __future__ import annotations

import warnings
from contextlib import contextmanager

import numpy as np
import pytest

import ardiff
import ardiff.numpy as anp
from ardiff import ConvergenceWarning, NonFiniteWarning

# every solver configuration a user can pick; kink conventions must not depend on it
SOLVERS = {
    "relax": {},
    "relax-parallel": {"schedule": "parallel", "eta": 0.5},
    "relax-forward-init": {"init": "forward", "eta": 0.8},
    "backprop": {"method": "backprop"},
    "triangular": {"method": "triangular"},
}


@contextmanager
def raises_exactly(exc_type, *fragments):
    """Expect an exception of exactly ``exc_type`` whose message contains every fragment."""
    with pytest.raises(exc_type) as info:
        yield info
    assert info.type is exc_type, f"raised {info.type.__name__}, expected {exc_type.__name__}"
    for fragment in fragments:
        assert fragment in str(info.value), f"{fragment!r} not in:\n{info.value}"


@contextmanager
def no_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


def non_finite_warnings(fun, *args, **options):
    """Call ``grad(fun, **options)(*args)``; return the gradient and the NonFiniteWarnings."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with np.errstate(all="ignore"):
            g = ardiff.grad(fun, **options)(*args)
    return g, [str(w.message) for w in caught if issubclass(w.category, NonFiniteWarning)]


# ---------------------------------------------------------------------------------------
# 1. Empty arrays and zero-size axes
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape, fun", [
    ((0,), lambda x: anp.sum(x)),
    ((0, 3), lambda x: anp.sum(anp.sum(x, axis=0))),
    ((0, 3), lambda x: anp.sum(anp.tanh(x) * 2.0, axis=1).sum()),
    ((2, 0), lambda x: anp.sum(x @ x.T)),
    ((3, 0), lambda x: anp.sum(anp.concatenate([x, x], axis=1))),
], ids=["sum", "sum-axis0", "tanh-axis1", "matmul-inner-0", "concatenate"])
@pytest.mark.parametrize("solver", list(SOLVERS))
def test_empty_arrays_give_empty_gradients(shape, fun, solver):
    with no_warnings():
        g = ardiff.grad(fun, **SOLVERS[solver])(np.zeros(shape))
    assert g.shape == shape and g.dtype == np.float64


def test_jacobian_and_elementwise_grad_of_empty_arrays():
    assert ardiff.jacobian(lambda x: x * 2.0)(np.zeros(0)).shape == (0, 0)
    assert ardiff.jacobian(lambda x: anp.sum(x))(np.zeros((0, 2))).shape == (0, 2)
    assert ardiff.elementwise_grad(lambda x: anp.sin(x))(np.zeros((2, 0))).shape == (2, 0)


def test_mean_of_empty_array_is_nan_as_in_numpy_with_empty_gradient():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value, g = ardiff.value_and_grad(lambda x: anp.mean(x))(np.zeros(0))
    assert np.isnan(value) and g.shape == (0,)
    assert any("Mean of empty slice" in str(w.message) for w in caught)  # NumPy's own warning


def test_max_of_empty_array_names_the_op():
    with raises_exactly(ValueError, "ardiff op 'max'", "node 1", "arguments ((0,))",
                        "zero-size array", "Check the arguments"):
        ardiff.grad(lambda x: anp.max(x))(np.zeros(0))


# ---------------------------------------------------------------------------------------
# 2. Programmatically built graphs
# ---------------------------------------------------------------------------------------
@pytest.fixture
def graph():
    g = ardiff.Graph()
    a = g.input(np.ones(3), name="a")
    b = g.input(np.ones((2, 3)), name="b")
    return g, a, b


def test_broadcast_mismatch_names_op_node_and_shapes(graph):
    g, a, b = graph
    c = g.input(np.ones(4), name="c")
    with raises_exactly(ValueError, "ardiff op 'add'", "recording node 3",
                        "arguments ((3,), (4,))", "could not be broadcast"):
        a + c
    assert len(g) == 3  # nothing was recorded


def test_matmul_mismatch(graph):
    g, a, b = graph
    with raises_exactly(ValueError, "ardiff op 'matmul'", "arguments ((2, 3), (2, 3))",
                        "mismatch in its core dimension"):
        b @ b


def test_reshape_to_wrong_size(graph):
    g, a, b = graph
    with raises_exactly(ValueError, "ardiff op 'reshape'", "cannot reshape array of size 3"):
        anp.reshape(a, (2, 2))


def test_index_out_of_bounds(graph):
    g, a, b = graph
    with raises_exactly(IndexError, "ardiff op 'getitem'", "index 5 is out of bounds"):
        a[5]


def test_reduction_over_missing_axis(graph):
    g, a, b = graph
    with raises_exactly(np.exceptions.AxisError, "ardiff op 'sum'", "axis 2 is out of bounds"):
        anp.sum(b, axis=2)


def test_value_of_another_graph(graph):
    g, a, b = graph
    other = ardiff.Graph()
    x = other.input(2.0, name="x")
    with raises_exactly(ValueError, "belongs to a different graph", "g.input(...)"):
        ardiff.relax(g, anp.sum(a) * x, [a])


def test_differentiating_with_respect_to_a_constant(graph):
    g, a, b = graph
    k = g.constant(np.ones(3), name="k")
    with raises_exactly(ValueError, "node 2 'k' (op constant", "use Graph.input"):
        ardiff.relax(g, anp.sum(a * k), [k])


def test_non_scalar_output_needs_a_seed(graph):
    g, a, b = graph
    with raises_exactly(ValueError, "(op multiply, shape (2, 3)) is not a scalar",
                        "pass seed="):
        ardiff.relax(g, a * b, [a])
    np.testing.assert_allclose(ardiff.relax(g, a * b, [a], seed=np.ones((2, 3))).grads[0],
                               2.0 * np.ones(3))


def test_seed_of_wrong_shape(graph):
    g, a, b = graph
    with raises_exactly(ValueError, "seed has shape (3,) but the output has shape ()"):
        ardiff.relax(g, anp.sum(a), [a], seed=np.ones(3))


@pytest.mark.parametrize("wrt, exc, fragment", [
    ("a", TypeError, "wrt must be a list or tuple"),
    (["nope"], KeyError, "no node named 'nope'"),
    ([99], IndexError, "Node index 99 out of range"),
    ([1.5], TypeError, "Cannot refer to a graph node with float"),
])
def test_bad_wrt(graph, wrt, exc, fragment):
    g, a, b = graph
    with raises_exactly(exc, fragment):
        ardiff.relax(g, anp.sum(a), wrt)


def test_no_output(graph):
    g, a, b = graph
    with raises_exactly(ValueError, "No output given", "pass output="):
        ardiff.relax(g)


def test_wrt_an_intermediate_node_and_after_the_output(graph):
    """Any node can be a wrt: an intermediate one gets dL/dnode; one created after the
    output (so it cannot influence it) gets zero."""
    g, a, b = graph
    h = a * 2.0
    out = anp.sum(h * h)
    later = a * 3.0
    with no_warnings():
        grads = ardiff.relax(g, out, [h, a, later]).grads
    np.testing.assert_allclose(grads[0], 2.0 * 2.0 * np.ones(3))
    np.testing.assert_allclose(grads[1], 8.0 * np.ones(3))
    np.testing.assert_array_equal(grads[2], np.zeros(3))


# ---------------------------------------------------------------------------------------
# 3. NaN and inf: the relaxation names the first node where they appear
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("solver", list(SOLVERS))
def test_nan_input_is_named(solver):
    x = np.array([1.0, np.nan])

    def loss(x):
        return anp.sum(anp.tanh(x))

    g, messages = non_finite_warnings(loss, x, **SOLVERS[solver])
    assert np.isclose(g[0], 1.0 - np.tanh(1.0) ** 2) and np.isnan(g[1])
    assert messages and "loss:arg0' (op input" in messages[0]
    assert messages[0].startswith("Non-finite forward value at node 0 ")


@pytest.mark.parametrize("solver", list(SOLVERS))
@pytest.mark.parametrize("fun, op", [
    (lambda x: anp.sum(anp.tanh(anp.exp(x)) * 3.0), "op exp"),
    (lambda x: anp.sum(anp.tanh(anp.log(x)) * 2.0), "op log"),
], ids=["exp-overflow", "log-zero"])
def test_non_finite_forward_value_names_the_op(fun, op, solver):
    g, messages = non_finite_warnings(fun, np.array([1.0, 0.0 if op == "op log" else 1e3]),
                                      **SOLVERS[solver])
    assert np.isfinite(g[0]) and not np.isfinite(g[1])
    if op == "op log" and solver in ("relax", "backprop"):
        # one sweep: a lean recording, where log's value (read by no derivative: log's
        # reads x, tanh's its own answer) is not kept; the read-out names the log node
        assert messages and messages[0].startswith("Non-finite gradient read out at node 0")
        assert f"node 1 ({op}" in messages[0] and "method='triangular'" in messages[0]
        return
    assert messages and f"Non-finite forward value at node 1 ({op}" in messages[0]


@pytest.mark.parametrize("solver", list(SOLVERS))
def test_infinite_local_derivative_names_the_node(solver):
    """sqrt(sin x) at x = 0: the forward pass is finite, the derivative of sqrt is not.
    The finite entries of the gradient are still exact."""
    def loss(x):
        return anp.sum(anp.tanh(anp.sqrt(anp.sin(x))) * 3.0)

    x = np.array([1.0, 0.0])
    g, messages = non_finite_warnings(loss, x, **SOLVERS[solver])
    s = np.sqrt(np.sin(1.0))
    expected = 3.0 * (1.0 - np.tanh(s) ** 2) * 0.5 / s * np.cos(1.0)
    np.testing.assert_allclose(g[0], expected, rtol=1e-9)
    assert not np.isfinite(g[1])
    assert messages, "no NonFiniteWarning"
    if solver != "triangular":
        assert "Non-finite activity first appears at node 1 (op sin" in messages[0]


def test_infinite_input_with_a_finite_limit_of_the_gradient():
    """tanh'(inf) = 0 is finite: no warning."""
    with no_warnings():
        g = ardiff.grad(lambda x: anp.sum(anp.tanh(x)))(np.array([1.0, np.inf]))
    np.testing.assert_allclose(g, [1.0 - np.tanh(1.0) ** 2, 0.0])


# ---------------------------------------------------------------------------------------
# 4. Solver options
# ---------------------------------------------------------------------------------------
def deep(x):
    return anp.sum(anp.tanh(anp.tanh(anp.tanh(x))))


BAD_OPTIONS = [
    ({"eta": 0}, ValueError, "eta=0 is outside (0, 2)"),
    ({"eta": -0.5}, ValueError, "eta=-0.5 is outside (0, 2)"),
    ({"eta": 2}, ValueError, "eta=2 is outside (0, 2)"),
    ({"eta": 2.5}, ValueError, "only converges for 0 < eta < 2"),
    ({"eta": float("nan")}, ValueError, "eta=nan is outside (0, 2)"),
    ({"eta": float("inf")}, ValueError, "eta=inf is outside (0, 2)"),
    ({"eta": "fast"}, TypeError, "eta must be a real number"),
    ({"max_iter": 0}, ValueError, "max_iter must be at least 1, got 0"),
    ({"max_iter": -3}, ValueError, "max_iter must be at least 1, got -3"),
    ({"max_iter": 2.5}, TypeError, "max_iter must be a positive integer or None"),
    ({"max_iter": True}, TypeError, "max_iter must be a positive integer or None"),
    ({"tol": -1e-9}, ValueError, "tol must be a finite number >= 0"),
    ({"tol": float("nan")}, ValueError, "tol must be a finite number >= 0"),
    ({"tol": float("inf")}, ValueError, "tol must be a finite number >= 0"),
    ({"schedule": "random"}, ValueError,
     "schedule must be one of ('sequential', 'parallel', 'continuous')"),
    ({"init": "ones"}, ValueError, "init must be one of ('zeros', 'forward')"),
]


@pytest.mark.parametrize("options, exc, fragment", BAD_OPTIONS,
                         ids=[repr(o) for o, _, _ in BAD_OPTIONS])
def test_bad_relaxation_options(options, exc, fragment):
    with raises_exactly(exc, fragment):
        ardiff.grad(deep, **options)(np.ones(2))
    g = ardiff.trace(deep, np.ones(2))
    with raises_exactly(exc, fragment):
        ardiff.relax(g, **options)


@pytest.mark.parametrize("options, exc, fragment", [
    ({"method": "bogus"}, ValueError, "Unknown method 'bogus'; available: ['backprop'"),
    ({"preset": "fast"}, ValueError, "Unknown preset 'fast'; available: ['paper']"),
    ({"temperature": 1.0}, TypeError, "Unknown option(s) ['temperature'] for method='relax'"),
    ({"method": "backprop", "eta": 0.5}, TypeError, "for method='backprop'; allowed: none"),
    ({"method": "backprop", "rules": [object()]}, ValueError, "rules= change the relaxation"),
])
def test_bad_api_options_fail_when_the_function_is_made(options, exc, fragment):
    with raises_exactly(exc, fragment):
        ardiff.grad(deep, **options)


def test_too_few_steps_warn_and_say_what_to_do():
    with pytest.warns(ConvergenceWarning, match="did not reach tol=1e-12 within max_iter=3 "
                      r"\(parallel schedule, eta=0.5\).*Increase max_iter, or use eta=1"):
        g = ardiff.grad(deep, schedule="parallel", eta=0.5, max_iter=3)(np.ones(2))
    assert np.all(np.isfinite(g))


def test_tol_zero_runs_exactly_max_iter_steps_without_warning():
    graph = ardiff.trace(deep, np.ones(2))
    with no_warnings():
        result = ardiff.relax(graph, schedule="parallel", eta=0.1, tol=0.0, max_iter=100)
    assert result.iterations == 100 and not result.converged


# ---------------------------------------------------------------------------------------
# 5. Kinks: documented subgradients, never NaN where a finite one exists
# ---------------------------------------------------------------------------------------
KINKS = {
    # name: (function, argument, documented gradient)
    "abs at 0": (lambda x: anp.abs(x), 0.0, 0.0),
    "np.abs at 0": (lambda x: np.abs(x), 0.0, 0.0),
    "builtin abs at 0": (lambda x: abs(x), 0.0, 0.0),
    "relu maximum(x, 0) at 0": (lambda x: anp.maximum(x, 0.0), 0.0, 0.5),
    "np.maximum(x, 0) at 0": (lambda x: np.maximum(x, 0.0), 0.0, 0.5),
    "minimum tie": (lambda x: anp.minimum(x, 1.0), 1.0, 0.5),
    "relu via where at 0 (branch taken)": (lambda x: anp.where(x > 0, x, 0.0), 0.0, 0.0),
    "relu via mask at 0": (lambda x: x * (x > 0), 0.0, 0.0),
    "clip at lower bound": (lambda x: anp.clip(x, 0.0, 1.0), 0.0, 1.0),
    "clip at upper bound": (lambda x: anp.clip(x, 0.0, 1.0), 1.0, 1.0),
    "sign at 0": (lambda x: anp.sign(x), 0.0, 0.0),
    "x**2 at 0": (lambda x: x ** 2, 0.0, 0.0),
    "d/dy 0**y": (lambda y: 0.0 ** y, 2.0, 0.0),
    "max of ties": (lambda x: anp.max(x), np.array([1.0, 1.0, 0.0]), [0.5, 0.5, 0.0]),
    "min of ties": (lambda x: anp.min(x), np.array([2.0, 2.0, 2.0]), [1 / 3, 1 / 3, 1 / 3]),
    "norm of zero vector": (lambda x: anp.linalg.norm(x), np.zeros(3), [0.0, 0.0, 0.0]),
    "np.linalg.norm of zero vector": (lambda x: np.linalg.norm(x), np.zeros(2), [0.0, 0.0]),
    "norm ord=1 of zero": (lambda x: anp.linalg.norm(x, ord=1), np.zeros(2), [0.0, 0.0]),
    "norm ord=inf of zero": (lambda x: anp.linalg.norm(x, ord=np.inf), np.zeros(2), [0., 0.]),
    "norm ord=3 of zero": (lambda x: anp.linalg.norm(x, ord=3), np.zeros(2), [0.0, 0.0]),
    "frobenius norm of zero": (lambda x: anp.linalg.norm(x), np.zeros((2, 2)), np.zeros((2, 2))),
    "row norms, one row zero": (lambda x: anp.sum(anp.linalg.norm(x, axis=1)),
                                np.array([[0.0, 0.0], [3.0, 4.0]]), [[0, 0], [0.6, 0.8]]),
    "hypot at the origin": (lambda x: anp.hypot(x[0], x[1]), np.zeros(2), [0.0, 0.0]),
    "std of a constant": (lambda x: anp.std(x), np.ones(3), [0.0, 0.0, 0.0]),
    "prod with two zeros": (lambda x: anp.prod(x), np.array([0.0, 0.0, 2.0]), [0.0, 0.0, 0.0]),
    "prod with one zero": (lambda x: anp.prod(x), np.array([0.0, 3.0, 2.0]), [6.0, 0.0, 0.0]),
}


@pytest.mark.parametrize("solver", list(SOLVERS))
@pytest.mark.parametrize("name", list(KINKS))
def test_kink_convention(name, solver):
    fun, x, expected = KINKS[name]
    with no_warnings():
        g = ardiff.grad(fun, **SOLVERS[solver])(x)
    np.testing.assert_allclose(g, expected, rtol=1e-12, atol=0)


def test_maximum_and_minimum_ties_split_between_both_arguments():
    for op in (anp.maximum, anp.minimum, np.maximum, np.minimum):
        gx, gy = ardiff.grad(lambda x, y: op(x, y), argnum=(0, 1))(1.0, 1.0)
        assert (gx, gy) == (0.5, 0.5)


@pytest.mark.parametrize("fun, x, value, culprit", [
    (lambda x: anp.sqrt(x), 0.0, np.inf, "(op sqrt"),
    (lambda x: x ** 0.5, 0.0, np.inf, "(op power"),
    (lambda x: anp.sqrt(anp.sum(x ** 2)), np.zeros(2), np.nan, "(op sum"),
    (lambda x: anp.arctan2(x[0], x[1]), np.zeros(2), np.nan, "(op getitem"),
], ids=["sqrt", "power-half", "hand-written-norm", "arctan2-origin"])
def test_kinks_without_a_finite_subgradient_warn(fun, x, value, culprit):
    """No finite subgradient exists (sqrt at 0 is vertical; arctan2 is discontinuous at the
    origin), so the gradient is inf or NaN and a NonFiniteWarning names the node."""
    g, messages = non_finite_warnings(fun, x)
    np.testing.assert_array_equal(np.ravel(g)[:1], [value])
    assert messages and culprit in messages[0]


def test_power_with_zero_exponent_at_zero_base_has_zero_derivative():
    # x**0 is the constant 1, so its derivative is 0 everywhere, also at x = 0 where
    # the textbook formula y * x**(y-1) would give 0 * inf = NaN.
    assert ardiff.grad(lambda x: x ** 0)(0.0) == 0.0
    exponents = np.array([0.0, 2.0, 3.0])
    got = ardiff.grad(lambda x: anp.sum(x ** exponents))(np.zeros(3))
    np.testing.assert_array_equal(got, [0.0, 0.0, 0.0])
    # d/dy x**y = x**y log x is unaffected at y = 0, x != 0 (first and second order)
    assert np.isclose(ardiff.grad(lambda y: 0.5 ** y)(0.0), np.log(0.5))
    assert np.isclose(ardiff.grad(ardiff.grad(lambda y: 0.5 ** y))(0.0), np.log(0.5) ** 2)


def test_zero_exponent_keeps_float32_and_pruning_ignores_constant_only_nodes():
    x32 = np.array([1.5, 2.0], np.float32)
    assert ardiff.grad(lambda x: anp.sum(x ** 0.0 + x))(x32).dtype == np.float32
    g = ardiff.Graph()
    c = g.constant(np.array([0.3, 0.5]))
    x = g.input(np.array([1.0, 2.0]), "x")
    out = anp.sum(anp.tanh(anp.tanh(c * 2.0)) * x)  # the tanh chain depends on c only
    res = ardiff.relax(g, out, [x], schedule="parallel")
    assert len(res.plan.relaxing) == 1
    np.testing.assert_allclose(res.grads[0], np.tanh(np.tanh(np.array([0.6, 1.0]))))
