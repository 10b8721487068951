"""The user API: grad, value_and_grad, elementwise_grad, jacobian, hessian, make_vjp,
trace; input types and containers; higher order; and the errors that keep
gradients from being silently lost.

Truth comes from closed forms, the exact backprop reference and finite
differences.
"""

import gc
import re
from pathlib import Path

import networkx as nx
import numpy as np
import pytest

import ardiff
import ardiff.numpy as anp
from ardiff import TracingError
from ardiff.testing import check_grads

RNG = np.random.default_rng(3)
X = RNG.uniform(-1.0, 1.0, 3)
Y = RNG.uniform(-1.0, 1.0, (2, 3))
METHODS = ["relax", "backprop"]


def f(x, y):
    """A scalar function of two arrays with closed-form derivatives."""
    return anp.sum(anp.sin(y @ x) * anp.tanh(x[0]))


def df_dx(x, y):
    u = y @ x
    return y.T @ np.cos(u) * np.tanh(x[0]) + np.eye(3)[0] * np.sum(np.sin(u)) / \
        np.cosh(x[0]) ** 2


def df_dy(x, y):
    return np.outer(np.cos(y @ x) * np.tanh(x[0]), x)


# -- the functions, each argnum form and method -------------------------------------------
@pytest.mark.parametrize("method", METHODS)
def test_grad_argnum_int_and_tuple(method):
    np.testing.assert_allclose(ardiff.grad(f, method=method)(X, Y), df_dx(X, Y), rtol=1e-12)
    np.testing.assert_allclose(ardiff.grad(f, 1, method=method)(X, Y), df_dy(X, Y), rtol=1e-12)
    gy, gx = ardiff.grad(f, (1, 0), method=method)(X, Y)
    np.testing.assert_allclose(gx, df_dx(X, Y), rtol=1e-12)
    np.testing.assert_allclose(gy, df_dy(X, Y), rtol=1e-12)
    (gy_only,) = ardiff.grad(f, (-1,), method=method)(X, Y)
    np.testing.assert_allclose(gy_only, df_dy(X, Y), rtol=1e-12)


@pytest.mark.parametrize("method", METHODS)
def test_value_and_grad(method):
    value, (gx, gy) = ardiff.value_and_grad(f, (0, 1), method=method)(X, Y)
    assert value == pytest.approx(float(np.sum(np.sin(Y @ X) * np.tanh(X[0]))), rel=1e-14)
    assert not isinstance(value, ardiff.Tracer)
    np.testing.assert_allclose(gx, df_dx(X, Y), rtol=1e-12)
    np.testing.assert_allclose(gy, df_dy(X, Y), rtol=1e-12)


@pytest.mark.parametrize("method", METHODS)
def test_elementwise_grad(method):
    x = np.linspace(-1, 1, 5)
    np.testing.assert_allclose(ardiff.elementwise_grad(anp.tanh, method=method)(x),
                               1 / np.cosh(x) ** 2, rtol=1e-13)
    ga, gb = ardiff.elementwise_grad(lambda a, b: a * anp.sin(b), (0, 1), method=method)(x, 2 * x)
    np.testing.assert_allclose(ga, np.sin(2 * x))
    np.testing.assert_allclose(gb, x * np.cos(2 * x))


@pytest.mark.parametrize("method", METHODS)
def test_jacobian(method):
    fun = lambda x, y: anp.sin(y @ x) * x[0]  # noqa: E731
    u = Y @ X
    expected_x = np.cos(u)[:, None] * Y * X[0] + np.outer(np.sin(u), np.eye(3)[0])
    np.testing.assert_allclose(ardiff.jacobian(fun, method=method)(X, Y), expected_x,
                               rtol=1e-12)
    jy = ardiff.jacobian(fun, 1, method=method)(X, Y)
    assert jy.shape == (2, 2, 3)
    expected_y = np.zeros((2, 2, 3))
    for i in range(2):
        expected_y[i, i] = np.cos(u[i]) * X * X[0]
    np.testing.assert_allclose(jy, expected_y, rtol=1e-12)
    jx, jy2 = ardiff.jacobian(fun, (0, 1), method=method)(X, Y)
    np.testing.assert_allclose(jx, expected_x, rtol=1e-12)
    np.testing.assert_allclose(jy2, expected_y, rtol=1e-12)


@pytest.mark.parametrize("method", METHODS)
def test_hessian(method):
    A = np.array([[2.0, 0.5, 0.0], [0.5, 1.0, 0.3], [0.0, 0.3, 3.0]])
    quad = lambda x: 0.5 * x @ A @ x + anp.sum(anp.sin(x))  # noqa: E731
    np.testing.assert_allclose(ardiff.hessian(quad, method=method)(X),
                               A - np.diag(np.sin(X)), rtol=1e-12)
    # a matrix argument: the Hessian is shaped x.shape * 2
    H = ardiff.hessian(lambda w: anp.sum(w ** 3), method=method)(Y)
    expected = np.zeros(Y.shape * 2)
    for i in range(2):
        for j in range(3):
            expected[i, j, i, j] = 6 * Y[i, j]
    np.testing.assert_allclose(H, expected, rtol=1e-12)
    # a tuple argnum gives the blocks of the joint Hessian
    fun = lambda a, b: anp.sum(a ** 2 * anp.sin(b)) + a @ b  # noqa: E731
    a, b = np.array([0.5, 1.0]), np.array([0.3, -0.2])
    (Haa, Hab), (Hba, Hbb) = ardiff.hessian(fun, (0, 1), method=method)(a, b)
    np.testing.assert_allclose(Haa, np.diag(2 * np.sin(b)), rtol=1e-13)
    np.testing.assert_allclose(Hab, np.diag(2 * a * np.cos(b)) + np.eye(2), rtol=1e-13)
    np.testing.assert_allclose(Hba, Hab.T, rtol=1e-13)
    np.testing.assert_allclose(Hbb, np.diag(-a ** 2 * np.sin(b)), rtol=1e-13, atol=1e-16)
    ((only,),) = ardiff.hessian(fun, (1,), method=method)(a, b)
    np.testing.assert_allclose(only, Hbb, rtol=1e-13, atol=1e-16)


@pytest.mark.parametrize("method", METHODS)
def test_make_vjp(method):
    fun = lambda x, y: anp.sin(y @ x)  # noqa: E731
    vjp, value = ardiff.make_vjp(fun, (0, 1), method=method)(X, Y)
    np.testing.assert_allclose(value, np.sin(Y @ X))
    for g in (np.array([1.0, 0.0]), np.array([0.3, -2.0])):  # one trace, many VJPs
        gx, gy = vjp(g)
        c = g * np.cos(Y @ X)
        np.testing.assert_allclose(gx, Y.T @ c, rtol=1e-13)
        np.testing.assert_allclose(gy, np.outer(c, X), rtol=1e-13)
    assert ardiff.vjp is ardiff.make_vjp
    with pytest.raises(ValueError, match="shape"):
        vjp(np.ones(3))


@pytest.mark.parametrize("api", [ardiff.grad, ardiff.elementwise_grad, ardiff.jacobian])
@pytest.mark.parametrize("options", [
    dict(), dict(schedule="parallel"), dict(schedule="parallel", eta=0.5, init="forward"),
    dict(schedule="sequential", eta=0.7), dict(method="relax", tol=1e-14),
])
def test_relaxation_equals_exact_reverse_mode(api, options):
    fun = (lambda x, y: f(x, y)) if api is ardiff.grad else \
        (lambda x, y: anp.tanh(y @ anp.exp(anp.sin(x))))
    for argnum in (0, 1, (0, 1)):
        got = api(fun, argnum, **options)(X, Y)
        exact = api(fun, argnum, method="backprop")(X, Y)
        pairs = zip(got, exact) if argnum == (0, 1) else [(got, exact)]
        for a, b in pairs:
            # relative to the array's scale: exact zeros come out as ~1e-13 when the
            # relaxation is damped, which is what tol=1e-12 promises
            np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-10 * np.max(np.abs(b)))


def test_defaults_equal_exact_reverse_mode_for_every_function():
    scalar = lambda x, y: anp.sum(anp.tanh(y @ anp.exp(anp.sin(x))) ** 2)  # noqa: E731
    vector = lambda x, y: anp.tanh(y @ anp.exp(anp.sin(x)))  # noqa: E731
    pairs = [
        (ardiff.value_and_grad(scalar, (0, 1))(X, Y),
         ardiff.value_and_grad(scalar, (0, 1), method="backprop")(X, Y)),
        (ardiff.hessian(scalar)(X, Y), ardiff.hessian(scalar, method="backprop")(X, Y)),
        (ardiff.hessian(scalar, 1)(X, Y), ardiff.hessian(scalar, 1, method="backprop")(X, Y)),
        (ardiff.make_vjp(vector, (0, 1))(X, Y)[0](np.array([0.3, -1.2])),
         ardiff.make_vjp(vector, (0, 1), method="backprop")(X, Y)[0](np.array([0.3, -1.2]))),
    ]
    for got, exact in pairs:
        for a, b in zip(ardiff.tree.flatten(got)[0], ardiff.tree.flatten(exact)[0]):
            np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-10 * np.max(np.abs(b)))


def test_options_are_validated():
    with pytest.raises(ValueError, match="Unknown method 'newton'"):
        ardiff.grad(f, method="newton")
    with pytest.raises(TypeError, match="Unknown option"):
        ardiff.grad(f, method="backprop", eta=0.5)
    with pytest.raises(ValueError, match="eta"):
        ardiff.grad(f, eta=2.5)(X, Y)


# -- inputs ----------------------------------------------------------------------------
def test_python_scalars_and_ints():
    g = ardiff.grad(lambda a: a * a)(3.0)
    assert g == 6.0 and isinstance(g, np.float64)
    g = ardiff.grad(lambda a: a * a)(3)  # ints are cast to float
    assert g == 6.0 and np.result_type(g) == np.float64
    g = ardiff.grad(lambda v: anp.sum(v ** 2))(np.arange(3))
    np.testing.assert_array_equal(g, [0.0, 2.0, 4.0])
    assert g.dtype == np.float64
    assert ardiff.grad(lambda a: a ** 3)(np.int32(2)) == 12.0


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_float_dtypes_are_kept(dtype):
    x = np.array([0.5, -1.0, 2.0], dtype=dtype)
    g = ardiff.grad(lambda v: anp.sum(anp.sin(v) * v))(x)
    assert g.dtype == dtype and g.shape == x.shape
    expected = np.cos(x.astype(float)) * x + np.sin(x.astype(float))
    np.testing.assert_allclose(g, expected, rtol=float(np.finfo(dtype).eps) * 20)
    s = ardiff.grad(lambda v: v * v)(dtype(1.5))
    assert isinstance(s, dtype) and s == 3.0


def test_nested_containers_get_gradients_of_the_same_structure():
    params = {"w": [np.array([1.0, 2.0]), 3.0], "b": (0.5, {"c": np.ones((2, 2))})}

    def loss(p, scale):
        w0, w1 = p["w"]
        b, inner = p["b"]
        return scale * (anp.sum(w0 ** 2) * w1 + b * anp.sum(inner["c"]))

    g = ardiff.grad(loss)(params, 2.0)
    assert set(g) == {"w", "b"} and isinstance(g["w"], list) and isinstance(g["b"], tuple)
    np.testing.assert_allclose(g["w"][0], 2.0 * 2 * np.array([1.0, 2.0]) * 3.0)
    assert g["w"][1] == pytest.approx(2.0 * 5.0)
    assert g["b"][0] == pytest.approx(2.0 * 4.0)
    np.testing.assert_allclose(g["b"][1]["c"], np.full((2, 2), 2.0 * 0.5))
    gp, gs = ardiff.grad(loss, (0, 1))(params, 2.0)
    assert gs == pytest.approx(float(loss(params, 1.0)))
    assert gp["w"][1] == g["w"][1]


def test_an_unused_argument_has_zero_gradient():
    g = ardiff.grad(lambda x, y: anp.sum(y ** 2), 0)(X, Y)
    np.testing.assert_array_equal(g, np.zeros_like(X))
    assert ardiff.value_and_grad(lambda x: 3.0)(X)[0] == 3.0


# -- higher order ---------------------------------------------------------------------------
@pytest.mark.parametrize("method", METHODS)
def test_higher_order_closed_forms(method):
    grad = lambda fun: ardiff.grad(fun, method=method)  # noqa: E731
    x = 0.7
    assert grad(grad(anp.sin))(x) == pytest.approx(-np.sin(x), rel=1e-13)
    assert grad(grad(grad(anp.sin)))(x) == pytest.approx(-np.cos(x), rel=1e-13)
    assert grad(grad(lambda t: t ** 4))(x) == pytest.approx(12 * x ** 2, rel=1e-13)
    assert grad(grad(lambda t: anp.exp(t) * t))(x) == pytest.approx(np.exp(x) * (x + 2))
    # jacobian of jacobian: third-order tensor of an elementwise map, diagonal
    x3 = np.array([0.3, -0.4, 1.1])
    J2 = ardiff.jacobian(ardiff.jacobian(anp.sin, method=method), method=method)(x3)
    expected = np.zeros((3, 3, 3))
    for i in range(3):
        expected[i, i, i] = -np.sin(x3[i])
    np.testing.assert_allclose(J2, expected, atol=1e-15)
    # mixed partials of a two-argument function
    mixed = ardiff.grad(ardiff.grad(lambda a, b: a * a * anp.sin(b), 0, method=method), 1,
                        method=method)
    assert mixed(0.5, 0.3) == pytest.approx(2 * 0.5 * np.cos(0.3), rel=1e-13)


@pytest.mark.parametrize("options", [dict(schedule="parallel", eta=0.9),
                                     dict(schedule="sequential", eta=0.8, init="forward")])
def test_higher_order_with_damped_relaxation(options):
    # the outer relaxation runs on the recorded inner one (one node per step and edge)
    second = ardiff.grad(ardiff.grad(lambda t: anp.sin(t) * t, **options), **options)(0.7)
    assert second == pytest.approx(2 * np.cos(0.7) - 0.7 * np.sin(0.7), rel=1e-10)
    fun = lambda x: anp.sum(anp.sin(x) * x ** 2)  # noqa: E731
    H = ardiff.hessian(fun, schedule="parallel", init="forward")(X)
    expected = np.diag(-np.sin(X) * X ** 2 + 4 * X * np.cos(X) + 2 * np.sin(X))
    np.testing.assert_allclose(H, expected, rtol=1e-12, atol=1e-15)
    check_grads(fun, order=3)(X)


# -- errors -----------------------------------------------------------------------------------
def _raises(exc_type, words, fun, *args):
    with pytest.raises(exc_type) as info:
        fun(*args)
    message = str(info.value)
    for word in words:
        assert re.search(word, message), f"{word!r} not in: {message}"
    return info.value


def test_float_and_int_of_a_traced_value():
    _raises(TracingError, ["float\\(\\)", "anp", "x.value"], ardiff.grad(lambda x: float(x)), 1.0)
    _raises(TracingError, ["int\\(\\)", "anp"], ardiff.grad(lambda x: x * int(x)), 1.0)
    import math
    _raises(TracingError, ["math", "ardiff.numpy"], ardiff.grad(lambda x: math.sin(x)), 1.0)
    _raises(TracingError, ["item"], ardiff.grad(lambda x: x.item()), 1.0)


def test_assigning_a_traced_value_into_a_numpy_array():
    def element(x):
        a = np.zeros(3)
        a[0] = x[1]
        return anp.sum(a)

    def block(x):
        a = np.zeros((2, 3))
        a[1] = x
        return anp.sum(a)

    for fun in (element, block):
        _raises(TracingError, ["assign", "a\\[i\\] = x", "anp.stack|anp.where"],
                ardiff.grad(fun), X)


@pytest.mark.parametrize("call,name", [
    (lambda x: np.unwrap(x), "unwrap"), (lambda x: np.polyfit(x, x, 1), "polyfit"),
    (lambda x: np.add.reduce(x), "reduce"), (lambda x: np.sin(x, out=np.empty(3)), "out="),
    (lambda x: np.gcd(x, x), "gcd"),
])
def test_unsupported_numpy_functions(call, name):
    _raises(TracingError, [name, "op table|ardiff.numpy|returned value"],
            ardiff.grad(lambda x: anp.sum(call(x))), X)


@pytest.mark.parametrize("api", [ardiff.grad, ardiff.value_and_grad])
def test_grad_needs_a_scalar_output(api):
    _raises(TypeError, ["grad", "shape \\(3,\\)", "scalar", "elementwise_grad|jacobian"],
            api(lambda x: x * 2), X)


@pytest.mark.parametrize("output", ["text", None, (1.0, 2.0), [1.0], {"a": 1.0},
                                    np.array(["a"]), True])
@pytest.mark.parametrize("api", [ardiff.grad, ardiff.elementwise_grad, ardiff.jacobian,
                                 ardiff.make_vjp])
def test_outputs_that_are_not_arrays(api, output):
    def returns(x):
        return output

    _raises(TypeError, ["returns", "float array or scalar"], api(returns), X)


@pytest.mark.parametrize("argnum", [1, -2, (0, 1), (0, 0), 1.0, "x", None, True])
def test_bad_argnum(argnum):
    exc = (ValueError, TypeError)
    with pytest.raises(exc, match="argnum"):
        ardiff.grad(lambda x: anp.sum(x), argnum)(X)


@pytest.mark.parametrize("value,words", [
    (True, ["boolean", "float"]), (np.array([True, False]), ["boolean", "astype"]),
    (object(), ["object", "float"]), (np.array([1.0], dtype=object), ["dtype object"]),
    ("1.5", ["str", "float"]), (None, ["NoneType"]), ([1.0, "a"], ["str"]),
])
def test_non_differentiable_inputs(value, words):
    _raises(TypeError, ["cannot|not supported"] + words, ardiff.grad(lambda x: x * 1.0), value)


def test_an_exception_inside_a_traced_function_leaves_nothing_behind():
    def broken(x):
        anp.sin(x)
        raise KeyError("user bug")

    for _ in range(2):
        with pytest.raises(KeyError, match="user bug"):
            ardiff.grad(broken)(X)
        with pytest.raises(TracingError):
            ardiff.grad(lambda x: float(anp.sum(x)))(X)
        assert gc.isenabled()
        np.testing.assert_allclose(ardiff.grad(f)(X, Y), df_dx(X, Y), rtol=1e-12)
        # a nested call that fails inside the outer trace does not poison the outer one
        def outer(x):
            with pytest.raises(KeyError):
                ardiff.grad(broken)(x)
            return anp.sum(x ** 2)
        np.testing.assert_allclose(ardiff.grad(outer)(X), 2 * X)


# -- trace, Graph, networkx, README --------------------------------------------------------------
def test_trace_returns_a_graph_with_inputs_and_output():
    g = ardiff.trace(f, X, Y)
    assert isinstance(g, ardiff.Graph)
    assert [t.node.op for t in g.inputs] == ["input", "input"]
    assert g.output.graph is g and g.output.value == pytest.approx(f(X, Y))
    res = ardiff.relax(g)
    np.testing.assert_allclose(res.grads[0], df_dx(X, Y), rtol=1e-12)
    nested = ardiff.trace(lambda p: p["a"] * anp.sum(p["b"]), {"a": 2.0, "b": X})
    assert len(nested.inputs) == 2
    only_y = ardiff.trace(f, X, Y, argnum=(1,))
    assert len(only_y.inputs) == 1 and only_y.inputs[0].shape == Y.shape


def test_to_networkx_attributes():
    g = ardiff.Graph()
    x = g.input(X, name="x")
    w = g.input(Y.astype(np.float32), name="W")
    h = anp.tanh(w @ x)
    loss = anp.sum(h * h)
    G = ardiff.to_networkx(g)
    assert isinstance(G, nx.DiGraph) and nx.is_directed_acyclic_graph(G)
    assert G.number_of_nodes() == len(g)
    attrs = G.nodes[x.node.index]
    assert (attrs["op"], attrs["name"], tuple(attrs["shape"]), attrs["dtype"]) == \
        ("input", "x", (3,), "float64")
    assert G.nodes[w.node.index]["dtype"] == "float32"
    assert G.nodes[h.node.index]["op"] == "tanh"
    assert tuple(G.nodes[loss.node.index]["shape"]) == ()
    matmul = w @ x
    G = ardiff.to_networkx(g)
    assert G.edges[w.node.index, matmul.node.index]["argnum"] == 0
    assert G.edges[x.node.index, matmul.node.index]["argnum"] == 1
    # h * h uses one parent twice
    square = g.nodes[loss.node.parents[0][1]]
    assert sorted(np.atleast_1d(G.edges[h.node.index, square.index]["argnum"])) == [0, 1]


def test_readme_graph_example_runs_verbatim():
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, flags=re.S)
    graph_blocks = [b for b in blocks if "ardiff.Graph()" in b]
    assert graph_blocks, "README has no programmatic Graph example"
    namespace = {}
    for block in blocks[:blocks.index(graph_blocks[0]) + 1]:
        exec(block, namespace)
    res = namespace["res"]
    exact = ardiff.backprop(namespace["g"], namespace["loss"], [namespace["x"], namespace["W"]])
    assert res.converged
    for a, b in zip(res.grads, exact.grads):
        np.testing.assert_allclose(a, b, rtol=1e-10)


# -- Python lists are containers of scalars --------------------------------------------
def test_list_argument_failing_like_an_array_says_lists_are_containers():
    def f(x):
        return anp.sum(x ** 2)

    with pytest.raises(TypeError, match=r"\*\* or pow\(\).*Python list.*containers? of "
                                        r"scalars.*np\.asarray") as info:
        ardiff.grad(f)([1.0, 2.0, 3.0])
    assert isinstance(info.value.__cause__, TypeError)  # the original error is chained
    np.testing.assert_allclose(ardiff.grad(f)(np.asarray([1.0, 2.0, 3.0])), [2.0, 4.0, 6.0])
    # a function written for a list of scalars still works
    assert ardiff.grad(lambda xs: xs[0] * xs[1])([2.0, 3.0]) == [3.0, 2.0]


def test_type_error_without_a_list_argument_is_left_alone():
    def f(x, n):
        return anp.sum(x) + None

    with pytest.raises(TypeError) as info:
        ardiff.grad(f)(np.ones(2), [1, 2])  # the list is not differentiated
    assert "list" not in str(info.value).split(":")[0] and "np.asarray" not in str(info.value)


AUTOGRAD_NAMES = ["hessian_vector_product", "hessian_tensor_product", "make_hvp", "make_ggnvp",
                  "tensor_jacobian_product", "vector_jacobian_product", "grad_and_aux",
                  "deriv", "checkpoint"]


def test_autograds_further_transforms_are_public():
    """They are in `ardiff.__all__` (so `from ardiff import *` and docs/api.md have them),
    with autograd's aliases being the same functions."""
    namespace: dict = {}
    exec("from ardiff import *", namespace)
    for name in AUTOGRAD_NAMES:
        assert name in ardiff.__all__ and namespace[name] is getattr(ardiff, name), name
    assert ardiff.hessian_vector_product is ardiff.hessian_tensor_product
    assert ardiff.vector_jacobian_product is ardiff.tensor_jacobian_product
    from ardiff.extend import checkpoint
    assert ardiff.checkpoint is checkpoint
    # closed forms: f = sum(x^3) has Hessian diag(6 x); d/dt sin(t) = cos(t)
    v = np.array([1.0, -2.0, 0.5])
    np.testing.assert_allclose(ardiff.hessian_vector_product(lambda x: anp.sum(x ** 3))(X, v),
                               6.0 * X * v, rtol=1e-13)
    assert ardiff.deriv(anp.sin)(0.3) == pytest.approx(np.cos(0.3), rel=1e-14)
