"""Traced values behave like NumPy arrays: operators, comparisons, indexing,
attributes and methods, NumPy calls, building arrays, and Python control flow.

Each case checks the traced forward value against plain NumPy and the gradient
against a closed form or central finite differences (first and second order).
"""

import numpy as np
import pytest

import ardiff
import ardiff.numpy as anp
from ardiff import Tracer, TracingError
from ardiff.testing import check_grads

RNG = np.random.default_rng(7)
X = RNG.uniform(0.3, 1.2, (3, 4)) * np.array([1, -1, 1, -1])  # no zeros, no ties
V = RNG.uniform(-1.0, 1.0, 4)
C = RNG.uniform(0.5, 1.5, (3, 4))     # a NumPy array, used on the left of operators
A = RNG.uniform(-1.0, 1.0, (2, 3))


def output_of(fun, *args):
    """The traced output of ``fun`` (all arguments traced)."""
    return ardiff.trace(fun, *args).output


def assert_matches_numpy_and_fd(fun, *args, order=2):
    """Same value as plain NumPy; derivatives of every argument match finite differences."""
    traced = output_of(fun, *args)
    assert isinstance(traced, Tracer), f"{fun} returned {type(traced)}, not a traced value"
    np.testing.assert_allclose(traced.value, fun(*args), rtol=1e-13, atol=1e-15)
    for argnum in range(len(args)):
        check_grads(lambda *a: anp.sum(fun(*a) * np.cos(np.arange(np.size(traced.value)))
                                       .reshape(np.shape(traced.value))),
                    argnum=argnum, order=order)(*args)


# -- operators --------------------------------------------------------------------------
OPERATORS = {
    "add": lambda x, v: x + v,
    "sub": lambda x, v: x - v,
    "mul": lambda x, v: x * v,
    "truediv": lambda x, v: x / (2.0 + v ** 2),
    "pow int": lambda x, v: x ** 3,
    "pow float": lambda x, v: (1.0 + x ** 2) ** 0.5,
    "pow negative": lambda x, v: x ** -2,
    "pow traced exponent": lambda x, v: (1.5 + np.sin(x)) ** v,
    "matmul": lambda x, v: x @ v,
    "neg": lambda x, v: -x + v,
    "pos": lambda x, v: +x * v,
    "abs": lambda x, v: abs(x) * v,
    "mod": lambda x, v: x % 0.7 + v,
    "radd scalar": lambda x, v: 2.0 + x,
    "rsub scalar": lambda x, v: 1.5 - v,
    "rmul int": lambda x, v: 3 * x,
    "rtruediv scalar": lambda x, v: 1.0 / (2.0 + x ** 2),
    "rpow scalar": lambda x, v: 2.0 ** x,
    "radd ndarray": lambda x, v: C + x,
    "rsub ndarray": lambda x, v: C - x * v,
    "rmul ndarray": lambda x, v: C * x,
    "rtruediv ndarray": lambda x, v: C / (2.0 + v),
    "rpow ndarray": lambda x, v: C ** x,
    "rmatmul ndarray": lambda x, v: A @ x,
    "rmatmul ndarray vector": lambda x, v: C @ v,
    "rmod scalar": lambda x, v: 5.0 % (2.0 + x ** 2),
}


@pytest.mark.parametrize("name", OPERATORS)
def test_operator(name):
    order = 1 if name in ("abs", "mod", "rmod scalar") else 2
    assert_matches_numpy_and_fd(OPERATORS[name], X, V, order=order)


def test_reflected_operators_with_ndarray_on_the_left_stay_traced():
    for fun in (lambda x: C + x, lambda x: C - x, lambda x: C * x, lambda x: C / x,
                lambda x: C ** x, lambda x: A @ x, lambda x: np.float64(2.0) * x,
                lambda x: np.array(2.0) * x):
        out = output_of(fun, X)
        assert isinstance(out, Tracer) and out.graph.nodes[-1].op_name != "input"


def test_floor_division_divmod_and_round():
    # floor division and rounding are piecewise constant: zero gradient
    assert ardiff.grad(lambda x: x // 0.7 + 3.0 // (1.0 + x * x))(1.5) == 0.0
    assert ardiff.grad(lambda x: divmod(x, 0.7)[0] + divmod(4.0, 1.0 + x)[1])(1.5) == \
        pytest.approx(-np.floor(4.0 / 2.5))
    assert ardiff.grad(lambda x: round(x) + round(x, 1) + x)(1.33) == pytest.approx(1.0)


# -- comparisons ------------------------------------------------------------------------
@pytest.mark.parametrize("compare", [
    lambda x, v: x < v, lambda x, v: x <= v, lambda x, v: x > v, lambda x, v: x >= v,
    lambda x, v: x == x, lambda x, v: x != v, lambda x, v: C < x, lambda x, v: 0.0 > x,
    lambda x, v: np.less(x, v), lambda x, v: np.greater_equal(C, x),
])
def test_comparisons_are_plain_booleans(compare):
    def check(x, v):
        result = compare(x, v)
        assert not isinstance(result, Tracer)
        assert np.result_type(result) == np.bool_
        np.testing.assert_array_equal(result, compare(X, V))
        return anp.sum(x * v)
    ardiff.grad(check, (0, 1))(X, V)


def test_a_comparison_mask_carries_no_gradient():
    g = ardiff.grad(lambda x: anp.sum(x * (x > 0)))(X)
    np.testing.assert_array_equal(g, (X > 0).astype(float))
    assert ardiff.grad(lambda x: x if x.sum() > 0 else -x)(np.float64(-2.0)) == -1.0


# -- indexing ---------------------------------------------------------------------------
INDICES = {
    "int": 1, "negative int": -1, "slice": slice(1, 3), "reversed": slice(None, None, -1),
    "step": (slice(None), slice(None, None, 2)), "int and slice": (1, slice(None, None, 2)),
    "negative pair": (-1, -2), "list": [0, 2, 2], "list with negatives": [-1, 0, -1],
    "int array": np.array([2, 0, 0, 1]), "2-d int array": np.array([[0, 1], [2, 2]]),
    "pair of lists": ([0, 1, 2, 2], [3, 2, 1, 3]), "list and slice": ([2, 0], slice(1, None)),
    "boolean mask": X > 0, "boolean row mask": np.array([True, False, True]),
    "boolean list": [True, False, True], "None": None, "None and int": (None, 1),
    "slice None": (slice(None), None, 0), "Ellipsis": (Ellipsis, 1), "Ellipsis None": (..., None),
    "empty": slice(2, 2),
}


@pytest.mark.parametrize("name", INDICES)
def test_indexing(name):
    index = INDICES[name]
    expected_value = X[index]
    w = np.cos(np.arange(expected_value.size)).reshape(expected_value.shape)
    value, grad = ardiff.value_and_grad(lambda x: anp.sum(x[index] * w))(X)
    assert value == pytest.approx(np.sum(X[index] * w))
    expected = np.zeros_like(X)
    np.add.at(expected, index, w)  # the adjoint of a gather is a scatter-add
    np.testing.assert_allclose(grad, expected, rtol=1e-14, atol=0)


def test_indexing_with_a_traced_mask_and_repeated_indices_of_a_vector():
    grad = ardiff.grad(lambda v: anp.sum(v[v > 0] ** 2) + anp.sum(v[[0, 0, 0]]))(V)
    np.testing.assert_allclose(grad, 2 * V * (V > 0) + np.array([3.0, 0, 0, 0]))


def test_in_place_numpy_operations_on_traced_values_raise():
    def accumulate(v):
        a = np.zeros(4)
        a += v  # np.add(a, v, out=a)
        return anp.sum(a)

    with pytest.raises(TracingError, match="in place"):
        ardiff.grad(accumulate)(V)

    def update_argument(v):
        v += 1.0  # NumPy would write into the caller's array: refused
        return anp.sum(v)

    with pytest.raises(TracingError, match=r"argument of the traced function.*x = x \+ v"):
        ardiff.grad(update_argument)(V)

    def update_local(v):
        w = v * 1.0
        w += 1.0
        w *= 2.0
        return anp.sum(w)

    np.testing.assert_allclose(ardiff.grad(update_local)(V), np.full(4, 2.0))


def test_traced_arguments_are_not_written():
    def assign(x):
        x[0] = 1.0
        return anp.sum(x)

    with pytest.raises(TracingError, match=r"argument of the traced function.*x\.copy\(\)"):
        ardiff.grad(assign)(V)


# -- attributes and methods ---------------------------------------------------------------
def test_attributes_match_numpy():
    for value in (X, V, np.float64(1.5), X.astype(np.float32)):
        def check(x, value=value):
            assert (x.shape, x.ndim, x.size, x.dtype) == (value.shape, value.ndim, value.size,
                                                          value.dtype)
            return anp.sum(x)
        ardiff.grad(check)(value)


def test_transpose_attribute():
    assert_matches_numpy_and_fd(lambda x: x.T @ A.T, X)
    np.testing.assert_allclose(ardiff.grad(lambda x: anp.sum(x.T * C.T))(X), C)


@pytest.mark.parametrize("method", [
    lambda x: x.reshape(4, 3), lambda x: x.reshape((2, 6)), lambda x: x.reshape(-1),
    lambda x: x.reshape([6, -1]), lambda x: x.sum(), lambda x: x.sum(axis=0),
    lambda x: x.sum(axis=(0, 1)), lambda x: x.sum(1, keepdims=True), lambda x: x.mean(),
    lambda x: x.mean(axis=-1), lambda x: x.max(), lambda x: x.max(axis=1), lambda x: x.min(),
    lambda x: x.min(axis=0, keepdims=True), lambda x: x.prod(), lambda x: x.prod(axis=1),
    lambda x: x.dot(V), lambda x: x.T.dot(x), lambda x: x.transpose(), lambda x: x.ravel(),
    lambda x: x.flatten(), lambda x: x.swapaxes(0, 1), lambda x: x.var(axis=0),
    lambda x: x.std(), lambda x: x.cumsum(axis=1), lambda x: x.clip(-0.5, 0.5),
    lambda x: x.squeeze(), lambda x: x.diagonal(),
    lambda x: x.trace(), lambda x: x.take([0, 2], axis=1), lambda x: x.repeat(2, axis=0),
])
def test_array_methods(method):
    assert_matches_numpy_and_fd(method, X, order=1)


def test_method_gradients_in_closed_form():
    np.testing.assert_allclose(ardiff.grad(lambda x: x.sum())(X), np.ones_like(X))
    np.testing.assert_allclose(ardiff.grad(lambda x: x.mean())(X), np.full_like(X, 1 / X.size))
    np.testing.assert_allclose(ardiff.grad(lambda x: x.max())(X), X == X.max())
    np.testing.assert_allclose(ardiff.grad(lambda x: x.min())(X), X == X.min())
    np.testing.assert_allclose(ardiff.grad(lambda x: x.prod())(V), np.prod(V) / V)
    np.testing.assert_allclose(ardiff.grad(lambda v: v.dot(V))(V), V)
    np.testing.assert_allclose(ardiff.grad(lambda v: v.dot(v))(V), 2 * V)


def test_len_and_iteration():
    def rows(x):
        assert len(x) == 3
        parts = list(x)
        assert len(parts) == 3 and all(isinstance(p, Tracer) for p in parts)
        return sum(anp.sum(r * (i + 1)) for i, r in enumerate(x))

    np.testing.assert_allclose(ardiff.grad(rows)(X), np.array([[1.0], [2.0], [3.0]]) + 0 * X)

    def scalar(x):
        with pytest.raises(TypeError, match="0-d"):
            len(x)
        with pytest.raises(TypeError):
            iter(x).__next__()
        return x * 2.0

    assert ardiff.grad(scalar)(1.0) == 2.0


# -- plain NumPy calls on traced values ----------------------------------------------------
@pytest.mark.parametrize("call", [
    lambda x: np.sin(x), lambda x: np.sum(x, axis=0), lambda x: np.dot(x, V),
    lambda x: np.dot(A, x), lambda x: np.mean(x, axis=1), lambda x: np.exp(-x ** 2),
    lambda x: np.tanh(x), lambda x: np.log(1 + x ** 2), lambda x: np.sqrt(1 + x ** 2),
    lambda x: np.matmul(x, V), lambda x: np.transpose(x), lambda x: np.reshape(x, (2, 6)),
    lambda x: np.concatenate([x, 2 * x], axis=1), lambda x: np.stack([x, x ** 2]),
    lambda x: np.where(x > 0, x, 0.5 * x), lambda x: np.maximum(x, 0.1),
    lambda x: np.clip(x, -0.5, 0.5), lambda x: np.abs(x), lambda x: np.square(x),
    lambda x: np.prod(x, axis=0), lambda x: np.max(x, axis=1), lambda x: np.linalg.norm(x),
    lambda x: np.einsum("ij,j->i", x, V), lambda x: np.outer(x[0], x[1]),
    lambda x: np.cumsum(x, axis=0), lambda x: np.flip(x, axis=1), lambda x: np.roll(x, 1),
    lambda x: np.tile(x, (1, 2)), lambda x: np.expand_dims(x, 0), lambda x: np.var(x),
    lambda x: np.sum(x, axis=(0, 1), keepdims=True), lambda x: np.arctan2(x, 1.5 + x ** 2),
])
def test_numpy_functions_on_traced_values(call):
    assert_matches_numpy_and_fd(call, X)


def test_a_method_of_a_plain_array_on_a_traced_value_raises():
    # ndarray.dot cannot be intercepted; np.dot can
    with pytest.raises(TracingError, match=r"a\.dot\(x\)"):
        ardiff.grad(lambda v: anp.sum(C.dot(v)))(V)
    np.testing.assert_allclose(ardiff.grad(lambda v: anp.sum(np.dot(C, v)))(V), C.sum(axis=0))


def test_ardiff_numpy_random_is_numpy_random():
    import ardiff.numpy.random as npr  # autograd's `import autograd.numpy.random as npr`

    assert anp.random is npr
    assert all(getattr(npr, name) is getattr(np.random, name) for name in np.random.__all__)
    assert npr.RandomState is np.random.RandomState and npr.mtrand is np.random.mtrand
    npr.seed(3)  # seeds NumPy's global state
    first = np.random.standard_normal(4)
    np.random.seed(3)
    np.testing.assert_array_equal(first, npr.standard_normal(4))
    assert anp.pi == np.pi and anp.float32 is np.float32


# -- building arrays from traced scalars -----------------------------------------------------
def test_anp_array_and_stack_of_traced_scalars():
    def build(a, b):
        row = anp.array([a, b * b, 1.0])
        grid = anp.array([[a, b], [b, a]])
        return anp.sum(row * np.array([1.0, 2.0, 3.0])) + anp.sum(anp.stack([a, b]) ** 2) \
            + anp.sum(grid * np.array([[1.0, 10.0], [100.0, 1000.0]]))

    da, db = ardiff.grad(build, (0, 1))(0.5, -1.5)
    assert da == pytest.approx(1.0 + 2 * 0.5 + 1001.0)
    assert db == pytest.approx(2 * 2 * -1.5 + 2 * -1.5 + 110.0)


@pytest.mark.parametrize("build", [
    lambda a, b: np.array([a, b]), lambda a, b: np.asarray([a, b]),
    lambda a, b: np.array([[a, 1.0], [b, 2.0]]), lambda a, b: np.array(a),
    lambda a, b: np.sum([a, b]),
])
def test_np_array_of_traced_values_raises_and_points_to_anp(build):
    with pytest.raises(TracingError, match="anp.array"):
        ardiff.grad(lambda a, b: anp.sum(build(a, b)), (0, 1))(0.5, -1.5)


# -- Python control flow --------------------------------------------------------------------
def piecewise(x):
    if x.sum() > 0:
        y = anp.sin(x) * 2.0
    else:
        y = x ** 3
    total = 0.0
    for row in y:
        total = total + anp.sum(row)
    count = 0
    while anp.max(abs(y)) > 0.1 and count < 3:
        y = y * 0.5
        count += 1
    return total + anp.sum(y)


def test_python_control_flow_follows_the_data():
    for x in (np.array([0.5, 1.0]), np.array([-0.5, -1.0])):
        if x.sum() > 0:
            expected = 2 * np.cos(x) * (1 + 0.5 ** 3)
        else:
            expected = 3 * x ** 2 * (1 + 0.5 ** 3)
        np.testing.assert_allclose(ardiff.grad(piecewise)(x), expected, rtol=1e-13)
        check_grads(piecewise, order=2)(x)


def test_a_subclass_of_the_tracer_does_not_take_over_graphs():
    class Probe(ardiff.Tracer):
        pass

    class Bare(ardiff.graph.TracerBase):
        pass

    assert ardiff.Graph.tracer_class is ardiff.Tracer
    assert ardiff.grad(lambda x: x * x + 1.0)(3.0) == 6.0
