"""autograd's extension API and helpers in ardiff (issue 11, point 6).

`ardiff.extend` (primitive, defvjp, defvjp_argnum(s), checkpoint), `ardiff.misc`
(flatten, flatten_func, sgd/rmsprop/adam, fixed_point), the transforms autograd users
have (hessian_vector_product, make_hvp, make_ggnvp, tensor_jacobian_product,
grad_and_aux, deriv), `check_grads(modes=...)` and `ardiff.scipy.integrate.odeint`,
each checked against finite differences or a closed form.
"""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

import ardiff
import ardiff.numpy as anp
from ardiff.extend import checkpoint, defjvp, defvjp, defvjp_argnum, defvjp_argnums, primitive
from ardiff.misc import adam, fixed_point, flatten, flatten_func, rmsprop, sgd
from ardiff.op import OPS
from ardiff.scipy.integrate import odeint
from ardiff.testing import check_grads

SOLVERS = [{}, {"schedule": "parallel"}, {"method": "triangular"}, {"method": "backprop"}]


def numeric_grad(f, x, eps=1e-6):
    x = np.array(x, dtype=float)
    out = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        d = np.zeros_like(x)
        d[i] = eps
        out[i] = (f(x + d) - f(x - d)) / (2 * eps)
    return out


# -- ardiff.extend -----------------------------------------------------------------------------
@primitive
def logsumexp(x):
    """A log-sum-exp with a hand-written VJP."""
    m = np.max(x)
    return m + np.log(np.sum(np.exp(x - m)))


defvjp(logsumexp, lambda ans, x: lambda g: g * anp.exp(x - ans))


@primitive
def scaled_shift(a, b, c):
    return a * b[0] + b[1] + 0.0 * c


defvjp(scaled_shift, None, lambda ans, a, b, c: lambda g: (anp.sum(g * a), g), argnums=(0, 1))


def test_primitive_joins_the_op_table_and_keeps_its_name():
    assert logsumexp.__name__ == "logsumexp" and logsumexp.__doc__.startswith("A log")
    assert OPS[logsumexp.op.name] is logsumexp.op
    assert logsumexp.op.name.startswith("extend.")
    x = np.array([1.0, 2.0])
    assert logsumexp(x) == pytest.approx(np.log(np.exp(1) + np.exp(2)))  # untraced: plain


def test_primitive_with_same_name_gets_a_new_op():
    first = primitive(lambda x: x)
    second = primitive(lambda x: x)
    assert first.op.name != second.op.name


@pytest.mark.parametrize("options", SOLVERS, ids=str)
def test_primitive_in_every_solver(options):
    x = np.array([1.0, 2.0, 0.5])
    f = lambda x: logsumexp(anp.sin(x) * 2.0) ** 2  # noqa: E731
    expected = numeric_grad(f, x)
    np.testing.assert_allclose(ardiff.grad(f, **options)(x), expected, rtol=1e-6)


def test_primitive_compiled_and_second_order():
    x = np.array([1.0, 2.0, 0.5])
    f = lambda x: logsumexp(x * x) ** 2  # noqa: E731
    compiled = ardiff.compile(f)
    for point in (x, x + 1.0):
        np.testing.assert_allclose(compiled(point), numeric_grad(f, point), rtol=1e-6)
    assert compiled.replays == 1
    check_grads(f, order=2)(x)
    p = np.exp(x - logsumexp(x))
    np.testing.assert_allclose(ardiff.hessian(logsumexp)(x), np.diag(p) - np.outer(p, p),
                               atol=1e-12)


def test_none_maker_is_a_zero_vjp_and_containers_work():
    x = np.array([1.0, -2.0, 0.5])
    ga, gb = ardiff.grad(lambda a, b: anp.sum(scaled_shift(a, b, 1.0) ** 2),
                         argnum=(0, 1))(x, (3.0, x))
    np.testing.assert_array_equal(ga, 0.0)
    out = 3.0 * x + x
    np.testing.assert_allclose(gb[0], np.sum(2 * out * x))
    np.testing.assert_allclose(gb[1], 2 * out)


def test_argument_without_maker_names_function_and_argument():
    x = np.array([1.0, 2.0])
    with pytest.raises(NotImplementedError, match="scaled_shift with respect to argument 2"):
        ardiff.grad(lambda c: anp.sum(scaled_shift(x, (1.0, x), c)))(x)


def test_wrong_vjp_shape_fails_clearly():
    @primitive
    def double(x):
        return 2 * x

    defvjp(double, lambda ans, x: lambda g: anp.sum(g))
    with pytest.raises(ValueError, match=r"double with respect to argument 0 returned shape"):
        ardiff.grad(lambda x: anp.sum(double(x)))(np.ones(3))


def test_one_leaf_arguments_vjp_answers_none_a_tuple_or_a_wrong_shape():
    # the usual call (every argument one array or scalar) takes its own path: the same
    # answers as for containers (None: zeros; a 1-tuple: its leaf; a wrong shape raises)
    @primitive
    def weighted(x, w):
        return x * w

    x, w = np.array([1.0, -2.0, 0.5]), np.array([3.0, 4.0, 5.0])
    defvjp(weighted, lambda ans, x, w: lambda g: (g * w,), lambda ans, x, w: lambda g: None)
    gx, gw = ardiff.grad(lambda x, w: anp.sum(weighted(x, w) ** 2), argnum=(0, 1))(x, w)
    np.testing.assert_array_equal(gx, 2 * x * w * w)
    np.testing.assert_array_equal(gw, np.zeros(3))
    defvjp(weighted, lambda ans, x, w: lambda g: ())
    with pytest.raises(ValueError, match="weighted with respect to argument 0 returned 0"):
        ardiff.grad(lambda x: anp.sum(weighted(x, w)))(x)
    defvjp(weighted, None, lambda ans, x, w: lambda g: g[:2])
    with pytest.raises(ValueError, match="weighted with respect to argument 1 returned "
                                         r"shape \(2,\)"):
        ardiff.grad(lambda w: anp.sum(weighted(x, w)))(w)


def test_defvjp_checks_its_arguments():
    with pytest.raises(TypeError, match="not a primitive"):
        defvjp(lambda x: x, None)
    with pytest.raises(TypeError, match="bad VJP maker"):
        defvjp(primitive(lambda x: x), 3)


def test_defvjp_argnum_and_argnums():
    @primitive
    def mul(a, b):
        return a * b

    def maker(argnum, ans, args, kwargs):
        other = args[1 - argnum]
        return lambda g: g * other

    defvjp_argnum(mul, maker)
    assert ardiff.grad(lambda a, b: mul(a, b) * a, argnum=(0, 1))(2.0, 3.0) == (12.0, 4.0)

    def together(argnums, ans, args, kwargs):
        return lambda g: [g * args[1 - k] for k in argnums]

    defvjp_argnums(mul, together)
    assert ardiff.grad(lambda a, b: mul(a, b) * a, argnum=(0, 1))(2.0, 3.0) == (12.0, 4.0)
    check_grads(lambda a: mul(a, anp.sin(a)), order=2)(np.array([0.3, 1.1]))


def test_checkpoint_gradient_and_memory():
    """A checkpointed chain: the same gradient, and measured peak memory much lower."""
    def block(x):
        for _ in range(20):
            x = anp.tanh(x * 1.01 + 0.1)
        return x

    segment = checkpoint(block)

    def plain(x):
        for _ in range(5):
            x = block(x)
        return anp.sum(x ** 2)

    def saved(x):
        for _ in range(5):
            x = segment(x)
        return anp.sum(x ** 2)

    x = np.random.default_rng(0).standard_normal(10_000)
    np.testing.assert_allclose(ardiff.grad(saved)(x), ardiff.grad(plain)(x), rtol=1e-12)
    peaks = {}
    for f in (plain, saved):
        tracemalloc.start()
        ardiff.grad(f)(x)
        peaks[f.__name__] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    # measured: about 24 MB without (grad drops each cotangent once read), 10.5 MB with
    assert peaks["saved"] < 0.5 * peaks["plain"], peaks
    check_grads(lambda x: anp.sum(segment(x) ** 2), order=2)(x[:4])


# -- ardiff.misc -------------------------------------------------------------------------------
def test_flatten_sorted_dicts_and_round_trip():
    value = {"b": np.ones(2), "a": 3.0, "c": [np.eye(2), (1.5,)]}
    vec, unflatten = flatten(value)
    np.testing.assert_array_equal(vec, [3.0, 1, 1, 1, 0, 0, 1, 1.5])
    back = unflatten(vec)
    assert set(back) == {"a", "b", "c"} and isinstance(back["c"][1], tuple)
    np.testing.assert_array_equal(back["c"][0], np.eye(2))
    assert np.ndim(back["a"]) == 0
    empty, unflatten_empty = flatten([])
    assert empty.shape == (0,) and unflatten_empty(empty) == []


def test_flatten_is_differentiable():
    value = {"w": np.arange(4.0).reshape(2, 2), "b": 0.5}
    vec, unflatten = flatten(value)

    def loss(v):
        p = unflatten(v)
        return anp.sum(p["w"] ** 2) * p["b"]

    check_grads(loss, order=2)(vec)
    grads = ardiff.grad(lambda p: anp.sum(flatten(p)[0] ** 2))(value)
    np.testing.assert_allclose(grads["w"], 2 * value["w"])


def test_flatten_func():
    def func(p, k):
        return {"y": p["w"] * k, "z": anp.sum(p["w"])}

    example = {"w": np.array([1.0, 2.0])}
    flat_func, unflatten, flat_example = flatten_func(func, example)
    np.testing.assert_array_equal(flat_example, [1.0, 2.0])
    np.testing.assert_array_equal(flat_func(flat_example, 3.0), [3.0, 6.0, 3.0])
    assert unflatten(flat_example)["w"].shape == (2,)


@pytest.mark.parametrize("optimizer,kwargs", [
    (sgd, {"num_iters": 400, "step_size": 0.1}),
    (rmsprop, {"num_iters": 400, "step_size": 0.01}),
    (adam, {"num_iters": 400, "step_size": 0.05}),
])
def test_optimizers_on_nested_parameters(optimizer, kwargs):
    target = {"w": np.array([1.0, -2.0]), "b": (0.5,)}

    def loss(p, i):
        return anp.sum((p["w"] - target["w"]) ** 2) + (p["b"][0] - 0.5) ** 2

    seen = []
    result = optimizer(ardiff.grad(loss), {"w": np.zeros(2), "b": (0.0,)},
                       callback=lambda x, i, g: seen.append((i, type(x), type(g))), **kwargs)
    assert seen[0] == (0, dict, dict) and len(seen) == kwargs["num_iters"]
    np.testing.assert_allclose(result["w"], target["w"], atol=0.05)
    assert abs(result["b"][0] - 0.5) < 0.05


def test_adam_matches_autograds_update_rule():
    g = np.array([0.5, -1.0])
    x = adam(lambda x, i: g, np.zeros(2), num_iters=1, step_size=0.1)
    np.testing.assert_allclose(x, -0.1 * g / (np.abs(g) + 1e-8))


def test_fixed_point_implicit_gradient_first_and_second_order():
    def newton_sqrt(a):
        return lambda x: 0.5 * (x + a / x)

    def root(a):
        return fixed_point(newton_sqrt, a, 1.0, lambda x, y: anp.abs(x - y), 1e-13)

    assert root(2.0) == pytest.approx(np.sqrt(2.0))
    assert ardiff.grad(root)(2.0) == pytest.approx(0.5 / np.sqrt(2.0), rel=1e-10)
    assert ardiff.grad(ardiff.grad(root))(2.0) == pytest.approx(-0.25 * 2.0 ** -1.5,
                                                                rel=1e-8)


def test_fixed_point_of_a_vector_contraction():
    """x = tanh(W x + a): the implicit gradient against finite differences of the loop."""
    w = np.array([[0.2, -0.3], [0.1, 0.25]])

    def step(a):
        return lambda x: anp.tanh(anp.dot(w, x) + a)

    def loss(a):
        x = fixed_point(step, a, np.zeros(2), lambda x, y: anp.max(anp.abs(x - y)), 1e-14)
        return anp.sum(x * np.array([1.0, -2.0]))

    a = np.array([0.3, -0.7])
    np.testing.assert_allclose(ardiff.grad(loss)(a), numeric_grad(loss, a), rtol=1e-7)
    for options in SOLVERS[1:]:
        np.testing.assert_allclose(ardiff.grad(loss, **options)(a), ardiff.grad(loss)(a),
                                   rtol=1e-9)


# -- transforms ---------------------------------------------------------------------------------
def f_scalar(x):
    return anp.sum(anp.sin(x) ** 2 * x[::-1])


def f_vector(x):
    return anp.tanh(x * x[::-1])


X = np.array([0.3, 1.2, -0.5])
V = np.array([1.0, 2.0, 3.0])


def test_hessian_vector_products():
    hess = ardiff.hessian(f_scalar)(X)
    np.testing.assert_allclose(ardiff.hessian_vector_product(f_scalar)(X, V), hess @ V)
    assert ardiff.hessian_vector_product is ardiff.hessian_tensor_product
    hvp, gradient = ardiff.make_hvp(f_scalar)(X)
    np.testing.assert_allclose(hvp(V), hess @ V)
    np.testing.assert_allclose(hvp(2 * V), 2 * hess @ V)
    np.testing.assert_allclose(gradient, ardiff.grad(f_scalar)(X))


def test_tensor_jacobian_and_ggn_products():
    jac = ardiff.jacobian(f_vector)(X)
    np.testing.assert_allclose(ardiff.tensor_jacobian_product(f_vector)(X, V), V @ jac)
    assert ardiff.vector_jacobian_product is ardiff.tensor_jacobian_product
    np.testing.assert_allclose(ardiff.make_ggnvp(f_vector)(X)(V), jac.T @ jac @ V)
    weights = np.array([1.0, 3.0, 2.0])
    ggnvp = ardiff.make_ggnvp(f_vector, lambda y: anp.sum(weights * y ** 2))(X)
    np.testing.assert_allclose(ggnvp(V), jac.T @ np.diag(2 * weights) @ jac @ V)


def test_grad_and_aux_and_deriv():
    gradient, aux = ardiff.grad_and_aux(lambda x: (f_scalar(x), {"s": anp.sin(x)}))(X)
    np.testing.assert_allclose(gradient, ardiff.grad(f_scalar)(X))
    assert type(aux["s"]) is np.ndarray
    np.testing.assert_allclose(aux["s"], np.sin(X))
    with pytest.raises(TypeError, match="pair"):
        ardiff.grad_and_aux(f_scalar)(X)
    np.testing.assert_allclose(ardiff.deriv(lambda t: anp.sin(t * V))(0.5),
                               V * np.cos(0.5 * V))
    with pytest.raises(ValueError, match="scalar"):
        ardiff.deriv(f_vector)(X)


def test_check_grads_accepts_autograds_modes():
    check_grads(f_vector, modes=["fwd", "rev"], order=2)(X)
    check_grads(f_scalar, modes=["rev"], order=1)(X)
    check_grads(f_scalar, modes="fwd", order=1)(X)
    with pytest.raises(ValueError, match="modes"):
        check_grads(f_scalar, modes=["bwd"])

    @primitive
    def wrong(x):
        return np.sin(x)

    defvjp(wrong, lambda ans, x: lambda g: g * anp.sin(x))  # not cos: a wrong derivative
    defjvp(wrong, lambda t, ans, x: t * anp.sin(x))  # forward mode's rule, as wrong
    for modes in (["fwd"], ["rev"]):
        with pytest.raises(AssertionError):
            check_grads(wrong, modes=modes, order=1)(X)


@primitive
def scaled_second(x, y):
    """x * y with the derivative w.r.t. y wrong by a factor 2 (x's is right)."""
    return x * y


defvjp(scaled_second, lambda ans, x, y: lambda g: g * y, lambda ans, x, y: lambda g: 2 * g * x)


def test_check_grads_takes_autograds_argnums_keywords_and_container_outputs():
    """autograd's test files call check_grads with a sequence argnum, keyword arguments
    for fun, and functions returning tuples; each part must be checked (a wrong
    derivative in any of them is caught)."""
    y = np.array([0.3, -1.2, 0.8])
    check_grads(lambda a, b: a * anp.sin(b), argnum=(0, 1))(X, y)
    check_grads(lambda a, b: a * anp.sin(b), argnum=[1])(X, y)
    with pytest.raises(AssertionError):
        check_grads(scaled_second, argnum=(0, 1), order=1)(X, y)
    check_grads(scaled_second, argnum=0)(X, y)  # only x perturbed: right
    with pytest.raises(AssertionError):
        check_grads(scaled_second, argnum=1, order=1)(X, y)
    # keyword arguments reach fun and are not differentiated
    check_grads(anp.sum, modes=["rev"])(np.ones((2, 3)) * X, axis=1, keepdims=True)
    # container outputs: every part is seeded
    check_grads(lambda a: (anp.sin(a), {"k": a ** 3}))(X)
    with pytest.raises(AssertionError):
        check_grads(lambda a: (anp.sin(a), scaled_second(a, a)), order=1)(X)
    with pytest.raises(TypeError, match="argnum"):
        check_grads(f_scalar, argnum="0")(X)


def test_combo_check_runs_every_combination():
    """autograd's test_util.combo_check: every combination of candidate arguments and
    keyword arguments is checked (counted here), and a wrong one is caught."""
    from ardiff.testing import combo_check

    calls = []

    def fun(a, b, axis=None):
        calls.append((np.shape(a), np.shape(b), axis))
        return anp.sum(a * b, axis=axis)

    combo_check(fun, (0, 1), order=1)([X, X[:, None] * X], [2.0, X], axis=[None, 0])
    assert {c for c in calls} == {(np.shape(a), np.shape(b), axis)
                                  for a in (X, X[:, None] * X) for b in (2.0, X)
                                  for axis in (None, 0)}
    with pytest.raises(AssertionError):
        combo_check(scaled_second, [1], order=1)([X], [X, 2 * X])


# -- odeint ---------------------------------------------------------------------------------------
ODE_TOL = {"rtol": 1e-11, "atol": 1e-12}


def linear_loss(y0, t, a):
    ys = odeint(lambda y, t, a: anp.dot(a, y), y0, t, (a,), **ODE_TOL)
    return anp.sum(ys ** 2 * np.arange(1.0, 5.0)[:, None])


def test_odeint_linear_against_closed_form():
    """y(t) = expm(A (t - t0)) y0: the forward value and all three gradients."""
    import scipy.linalg

    a = np.array([[-0.5, 1.0], [-1.0, -0.3]])
    y0 = np.array([1.0, 0.5])
    t = np.array([0.0, 0.4, 1.1, 2.0])
    ys = odeint(lambda y, t, a: anp.dot(a, y), y0, t, (a,), **ODE_TOL)
    np.testing.assert_allclose(ys, [scipy.linalg.expm(a * s) @ y0 for s in t], rtol=1e-9)
    g_y0, g_t, g_a = ardiff.grad(linear_loss, argnum=(0, 1, 2))(y0, t, a)

    def closed(y0, t, a):
        ys = np.array([scipy.linalg.expm(a * (s - t[0])) @ y0 for s in t])
        return np.sum(ys ** 2 * np.arange(1.0, 5.0)[:, None])

    np.testing.assert_allclose(g_y0, numeric_grad(lambda v: closed(v, t, a), y0), rtol=1e-6)
    np.testing.assert_allclose(g_t, numeric_grad(lambda v: closed(y0, v, a), t), rtol=1e-6,
                               atol=1e-8)
    np.testing.assert_allclose(g_a, numeric_grad(lambda v: closed(y0, t, v), a), rtol=1e-6)


def test_odeint_nonlinear_with_container_args():
    """Lotka-Volterra with parameters in a dict, against finite differences of odeint."""
    def dynamics(y, t, p, scale):
        prey, predator = y[0], y[1]
        return anp.stack([p["a"] * prey - p["b"] * prey * predator,
                          scale * (p["c"] * prey * predator - p["d"] * predator)])

    params = {"a": 1.1, "b": 0.4, "c": 0.1, "d": 0.4}
    y0 = np.array([10.0, 5.0])
    t = np.linspace(0.0, 2.0, 5)

    def loss(y0, params, scale):
        ys = odeint(dynamics, y0, t, (params, scale), **ODE_TOL)
        return anp.sum(anp.log(ys))

    g_y0, g_p, g_s = ardiff.grad(loss, argnum=(0, 1, 2))(y0, params, 1.0)
    np.testing.assert_allclose(g_y0, numeric_grad(lambda v: loss(v, params, 1.0), y0),
                               rtol=1e-5)
    for key in params:
        numeric = numeric_grad(lambda v, key=key: loss(y0, {**params, key: float(v)}, 1.0),
                               params[key])
        assert g_p[key] == pytest.approx(float(numeric), rel=1e-5)
    assert g_s == pytest.approx(float(numeric_grad(lambda v: loss(y0, params, float(v)),
                                                   1.0)), rel=1e-5)


def test_odeint_second_order_and_no_extra_args():
    """dy/dt = -k y^2 has y = y0 / (1 + k y0 t): first and second derivatives in k."""
    def total(k):
        ys = odeint(lambda y, t, k: -k * y * y, np.array([1.0, 2.0]),
                    np.array([0.0, 0.5, 1.0]), (k,), **ODE_TOL)
        return anp.sum(ys)

    def closed(k):
        return sum(y0 / (1 + k * y0 * t) for y0 in (1.0, 2.0) for t in (0.0, 0.5, 1.0))

    def d_closed(k):
        return -sum(y0 ** 2 * t / (1 + k * y0 * t) ** 2 for y0 in (1.0, 2.0)
                    for t in (0.0, 0.5, 1.0))

    def dd_closed(k):
        return sum(2 * y0 ** 3 * t ** 2 / (1 + k * y0 * t) ** 3 for y0 in (1.0, 2.0)
                   for t in (0.0, 0.5, 1.0))

    assert total(0.7) == pytest.approx(closed(0.7), rel=1e-9)
    assert ardiff.grad(total)(0.7) == pytest.approx(d_closed(0.7), rel=1e-7)
    assert ardiff.grad(ardiff.grad(total))(0.7) == pytest.approx(dd_closed(0.7), rel=1e-6)
    final = ardiff.grad(lambda y0: anp.sum(odeint(lambda y, t: -y ** 3, y0,
                                                  np.array([0.0, 1.0]), **ODE_TOL)[-1]))
    y0 = np.array([1.0, 0.5])
    np.testing.assert_allclose(final(y0), (1 + 2 * y0 ** 2) ** -1.5, rtol=1e-7)


# -- the migration page ---------------------------------------------------------------------------
def test_migration_page_examples_run():
    """Every Python block of docs/autograd.md runs as written."""
    import re
    from pathlib import Path

    page = (Path(__file__).resolve().parent.parent / "docs" / "autograd.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", page, flags=re.S)
    assert len(blocks) >= 3
    for block in blocks:
        exec(compile(block, "docs/autograd.md", "exec"), {})
