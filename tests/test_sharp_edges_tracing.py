"""Catalogue of sharp edges, part 1: what cannot be traced, bad arguments and outputs.

Every case is either an error of an exact type whose message names the culprit
(the conversion, the NumPy function, the user's function, the option) and says
what to do instead, or a documented correct result.  docs/sharp-edges.md lists
the same cases for users.
"""

from __future__ import annotations

import array
import ctypes
import math
import warnings
from contextlib import contextmanager

import numpy as np
import pytest

import ardiff
import ardiff.numpy as anp
from ardiff import TracingError


@contextmanager
def raises_exactly(exc_type, *fragments):
    """Expect an exception of exactly ``exc_type`` whose message contains every fragment."""
    with pytest.raises(exc_type) as info:
        yield info
    assert info.type is exc_type, f"raised {info.type.__name__}, expected {exc_type.__name__}"
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in message:\n{message}"


# ---------------------------------------------------------------------------------------
# 1. Conversions that would silently detach a traced value from its graph
# ---------------------------------------------------------------------------------------
KEEP_TRACED = "use ardiff.numpy"

DETACHING = {
    "float()": (lambda x: float(x), "float()"),
    "int()": (lambda x: int(x) * x, "int()"),
    "complex()": (lambda x: complex(x), "complex()"),
    "math.sin": (lambda x: math.sin(x), "math.* functions"),
    "math.fsum": (lambda x: math.fsum([x, x]), "math.* functions"),
    "C extension array.array": (lambda x: array.array("d", [x])[0], "C extensions"),
    "C extension ctypes.c_double": (lambda x: ctypes.c_double(x).value, "C extensions"),
    "np.array of tracers": (lambda x: np.array([x, 2.0 * x]).sum(), "np.array/np.asarray"),
    "np.asarray": (lambda x: np.asarray(x) * 2.0, "np.array/np.asarray"),
    "np.float64()": (lambda x: np.float64(x), "np.array/np.asarray"),
    "list index": (lambda x: [1.0, 2.0][x], "integer index"),
}


@pytest.mark.parametrize("name", list(DETACHING))
def test_detaching_conversion_raises_tracing_error(name):
    fun, culprit = DETACHING[name]
    with raises_exactly(TracingError, culprit, "would drop its gradient", KEEP_TRACED):
        ardiff.grad(fun)(1.0)


def test_tracing_error_is_a_type_error():
    """Code that already catches TypeError for bad conversions keeps working."""
    assert issubclass(TracingError, TypeError)


def test_assigning_traced_scalar_into_numpy_array_names_function_and_fix():
    def fill(x):
        a = np.zeros(3)
        a[0] = x
        return a.sum()

    with raises_exactly(TracingError, "fill:", "a[i] = x", "anp.stack"):
        ardiff.grad(fill)(1.0)


def test_assigning_traced_slice_into_numpy_array():
    def fill(x):
        a = np.zeros(3)
        a[:2] = x
        return a.sum()

    with raises_exactly(TracingError, "`a[:2] = x`", "a[i] = x", "like=x"):
        ardiff.grad(fill)(np.ones(2))


def test_item_assignment_into_traced_argument():
    def poke(x):
        x[0] = 1.0
        return anp.sum(x)

    with raises_exactly(TracingError, "`x[0] = 1.0`", "argument of the traced function",
                        "x = x.copy()"):
        ardiff.grad(poke)(np.ones(2))


def test_numpy_in_place_operator_with_traced_right_hand_side():
    def accumulate(x):
        a = np.zeros(2)
        a += x
        return anp.sum(a)

    with raises_exactly(TracingError, "np.add(..., out=...)", "use the returned value"):
        ardiff.grad(accumulate)(np.ones(2))


def test_out_argument_of_a_ufunc():
    with raises_exactly(TracingError, "np.sin(..., out=...)", "in place"):
        ardiff.grad(lambda x: np.sin(x, out=np.zeros(3)).sum())(np.ones(3))


def test_in_place_operators_on_traced_arrays_follow_numpy():
    """``y += 1`` on a traced array updates the array every name of it sees, as NumPy does
    (tests/test_in_place.py has the full set); here the value and gradient of one chain of
    updates against NumPy's value and the closed form."""
    def fun(x, np=np):
        y = x * 1.0
        before = y
        y += 1.0
        y *= 3.0
        y **= 2
        y -= x
        y /= 2.0
        return np.sum(y * before)

    x = np.array([0.5, -1.0])
    y = (9.0 * (x + 1.0) ** 2 - x) / 2.0  # `before` is y too: the sum is sum(y ** 2)
    assert ardiff.value_and_grad(fun)(x)[0] == pytest.approx(fun(x.copy()))
    np.testing.assert_allclose(ardiff.grad(fun)(x), 2 * y * (9.0 * (x + 1.0) - 0.5))


def test_float_used_as_index():
    with raises_exactly(TracingError, "cannot be used as an index"):
        ardiff.grad(lambda x: anp.sum(x[x]))(np.ones(2))


def test_value_attribute_is_the_documented_way_to_stop_gradients():
    """``x.value`` is the plain number: no gradient flows through it (and no error)."""
    np.testing.assert_allclose(ardiff.grad(lambda x: x * x.value)(3.0), 3.0)
    np.testing.assert_allclose(ardiff.grad(lambda x: float(x.value) * x)(3.0), 3.0)


def test_python_round_of_traced_value_is_piecewise_constant():
    np.testing.assert_allclose(ardiff.grad(lambda x: round(x) + x)(1.3), 1.0)


# ---------------------------------------------------------------------------------------
# 2. NumPy functions that are not in the op table
# ---------------------------------------------------------------------------------------
NOT_IN_TABLE = "not in ardiff's op table"

UNSUPPORTED = {
    "np.i0": (lambda x: np.i0(x).sum(), "numpy.i0"),
    "np.trim_zeros": (lambda x: np.trim_zeros(x).sum(), "numpy.trim_zeros"),
    "np.polyfit": (lambda x: np.polyfit(x, x, 1).sum(), "numpy.polyfit"),
    "np.unwrap": (lambda x: np.unwrap(x).sum(), "numpy.unwrap"),
    "ufunc np.nextafter": (lambda x: np.nextafter(x, 2.0).sum(), "np.nextafter"),
}


@pytest.mark.parametrize("name", list(UNSUPPORTED))
def test_numpy_function_outside_the_op_table(name):
    fun, culprit = UNSUPPORTED[name]
    with raises_exactly(TracingError, culprit, NOT_IN_TABLE, "add it to the op table"):
        ardiff.grad(fun)(np.array([0.5, 1.5, -1.0]))


def test_ufunc_method_names_the_replacement():
    with raises_exactly(TracingError, "np.add.reduce", "anp.sum"):
        ardiff.grad(lambda x: np.add.reduce(x))(np.ones(3))


def test_eigenvectors_at_a_repeated_eigenvalue_name_the_cause():
    with raises_exactly(ValueError, "eigenvectors of eigh", "two eigenvalues are equal"):
        ardiff.grad(lambda x: anp.sum(anp.linalg.eigh(x)[1] ** 3))(np.eye(2))


# ---------------------------------------------------------------------------------------
# 3. What grad's function returns
# ---------------------------------------------------------------------------------------
def named_vector(x):
    return x * 2.0


def test_grad_of_non_scalar_output():
    with raises_exactly(TypeError, "grad: named_vector", "shape (3,)",
                        "Use elementwise_grad, jacobian, or sum the output"):
        ardiff.grad(named_vector)(np.ones(3))


@pytest.mark.parametrize("returned, kind", [
    ("hello", "str"), (None, "NoneType"), (True, "bool")])
def test_grad_of_non_numeric_output(returned, kind):
    def fun(x):
        return returned

    with raises_exactly(TypeError, "grad: ", f"returned a {kind}",
                        "must return a float array or scalar"):
        ardiff.grad(fun)(1.0)


@pytest.mark.parametrize("container", [tuple, list])
def test_grad_of_several_outputs(container):
    def two(x):
        return container([x, 2.0 * x])

    with raises_exactly(TypeError, "two", f"returned a {container.__name__}",
                        "differentiate each one separately"):
        ardiff.grad(two)(1.0)


def test_grad_of_a_boolean_traced_output():
    with raises_exactly(TypeError, "dtype bool", "must return a float array"):
        ardiff.grad(lambda x: x > 0)(1.0)


def test_jacobian_of_a_string():
    with raises_exactly(TypeError, "jacobian: ", "returned a str"):
        ardiff.jacobian(lambda x: "s")(np.ones(2))


def test_output_that_does_not_depend_on_the_argument_has_zero_gradient():
    """Documented: no error, no warning, gradient zero shaped like the argument."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        g = ardiff.grad(lambda x, y: anp.sum(y ** 2), argnum=0)(np.ones(3), np.ones(2))
        value, (gx, gy) = ardiff.value_and_grad(
            lambda x, y: anp.sum(y ** 2), argnum=(0, 1))(np.ones(3), np.ones(2))
        const = ardiff.grad(lambda x: 3.0)(np.ones(2))
        egrad = ardiff.elementwise_grad(lambda x: np.ones(2))(np.ones(2))
        stopped = ardiff.grad(lambda x: (x * 2.0).value)(1.5)
    np.testing.assert_array_equal(g, np.zeros(3))
    np.testing.assert_array_equal(gx, np.zeros(3))
    np.testing.assert_allclose(gy, 2.0 * np.ones(2))
    assert value == 2.0
    np.testing.assert_array_equal(const, np.zeros(2))
    np.testing.assert_array_equal(egrad, np.zeros(2))
    assert stopped == 0.0


def test_graph_output_independent_of_wrt_has_zero_gradient():
    g = ardiff.Graph()
    x = g.input(np.ones(3), name="x")
    y = g.input(np.ones(2), name="y")
    out = anp.sum(anp.sin(x))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for run in (ardiff.relax, ardiff.backprop):
            np.testing.assert_array_equal(run(g, out, [y]).grads[0], np.zeros(2))
        parallel = ardiff.relax(g, out, [y], schedule="parallel", eta=0.5)
    np.testing.assert_array_equal(parallel.grads[0], np.zeros(2))


# ---------------------------------------------------------------------------------------
# 4. argnum
# ---------------------------------------------------------------------------------------
def product(x, y):
    return x * y


@pytest.mark.parametrize("argnum, shown", [(2, "argnum=2"), (-3, "argnum=-3"),
                                           ((0, 5), "argnum=5")])
def test_argnum_out_of_range(argnum, shown):
    with raises_exactly(ValueError, shown, "out of range", "product was called with 2 "
                        "positional argument(s)"):
        ardiff.grad(product, argnum=argnum)(1.0, 2.0)


@pytest.mark.parametrize("argnum", [1.0, "1", True, None])
def test_argnum_of_wrong_type(argnum):
    with raises_exactly(TypeError, "product", "argnum must be an int or a tuple of ints"):
        ardiff.grad(product, argnum=argnum)(1.0, 2.0)


def test_argnum_given_twice():
    with raises_exactly(ValueError, "product", "names the same argument twice"):
        ardiff.grad(product, argnum=(1, -1))(1.0, 2.0)


def test_argument_passed_by_keyword_is_not_positional():
    with raises_exactly(ValueError, "argnum=0 is out of range", "0 positional argument(s)"):
        ardiff.grad(lambda x=1.0: x * x)(x=2.0)


def test_negative_argnum_counts_from_the_end():
    assert ardiff.grad(product, argnum=-1)(3.0, 2.0) == 3.0


# ---------------------------------------------------------------------------------------
# 5. Input types
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("value", [3, np.int64(3), np.int32(3), np.uint8(3)])
def test_integer_scalar_inputs_are_cast_to_float64(value):
    g = ardiff.grad(lambda x: x * x)(value)
    assert g == 6.0 and np.result_type(g) == np.float64


def test_integer_array_input_is_cast_to_float64():
    g = ardiff.grad(lambda x: anp.sum(x * x))(np.arange(3))
    assert g.dtype == np.float64
    np.testing.assert_array_equal(g, [0.0, 2.0, 4.0])


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_lower_precision_floats_are_kept(dtype):
    g = ardiff.grad(lambda x: anp.sum(x * x))(np.ones(2, dtype=dtype))
    assert g.dtype == dtype
    np.testing.assert_array_equal(g, [2.0, 2.0])


BAD_INPUTS = {
    "bool": (True, "boolean; pass a float"),
    "bool array": (np.array([True, False]), "boolean array; cast it with .astype(float)"),
    "object array": (np.ones(2, object), "dtype object; convert it to a float array"),
    "string": ("1.0", "with respect to a str; expected a float"),
    "None": (None, "with respect to a NoneType"),
}


@pytest.mark.parametrize("name", list(BAD_INPUTS))
def test_non_float_inputs_are_refused(name):
    value, fix = BAD_INPUTS[name]

    def f(x):
        return anp.sum(x * 1.0)

    with raises_exactly(TypeError, "Graph.input(", "f:arg0", fix):
        ardiff.grad(f)(value)


def test_nested_containers_of_inputs_get_the_same_structure_back():
    g = ardiff.grad(lambda d: d["a"][0] * d["b"] + d["a"][1])({"a": [2.0, 1.0], "b": 3.0})
    assert g == {"a": [3.0, 1.0], "b": 2.0}


def test_cast_to_integer_inside_the_function_has_zero_gradient():
    """Rounding to int is piecewise constant: the gradient through it is 0, not 1."""
    x = np.array([1.5, 2.5])
    np.testing.assert_array_equal(ardiff.grad(lambda x: anp.sum(x.astype(int) * x))(x),
                                  [1.0, 2.0])
    np.testing.assert_array_equal(ardiff.grad(lambda x: anp.sum(x.astype(bool) * x))(x),
                                  [1.0, 1.0])
    np.testing.assert_array_equal(ardiff.grad(lambda x: anp.sum(x.astype(np.float32)))(x),
                                  [1.0, 1.0])


# ---------------------------------------------------------------------------------------
# 6. Failures inside the traced function, closures, higher order
# ---------------------------------------------------------------------------------------
def test_function_raising_midway_leaves_nothing_behind():
    calls = {"n": 0}

    def flaky(x):
        y = anp.sin(x) * 2.0
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("boom")
        return y * x

    grad = ardiff.grad(flaky)
    with pytest.raises(RuntimeError, match="boom"):
        grad(1.0)
    expected = 2.0 * (np.cos(1.0) * 1.0 + np.sin(1.0))
    np.testing.assert_allclose(grad(1.0), expected, rtol=1e-14)
    # and an error raised by a nested grad does not poison the outer one
    def outer(x):
        try:
            ardiff.grad(lambda y: float(y))(x)
        except TracingError:
            pass
        return x ** 3

    np.testing.assert_allclose(ardiff.grad(outer)(2.0), 12.0)


@pytest.mark.parametrize("options", [{}, {"schedule": "parallel", "eta": 0.5},
                                     {"method": "backprop"}, {"init": "forward", "eta": 0.8}])
def test_inner_function_closing_over_outer_traced_value(options):
    """d/dx [d/dy sin(x y)]_{y=1} = cos x - x sin x: the inner grad closes over x."""
    def outer(x):
        return ardiff.grad(lambda y: anp.sin(x * y), **options)(1.0)

    x = 0.7
    got = ardiff.grad(outer, **options)(x)
    np.testing.assert_allclose(got, np.cos(x) - x * np.sin(x), rtol=1e-8)


def test_no_perturbation_confusion():
    """d/dx [x * d/dy (x + y)] = d/dx [x * 1] = 1 (the inner derivative must not see x)."""
    assert ardiff.grad(lambda x: x * ardiff.grad(lambda y: x + y)(1.0))(2.0) == 1.0


# -- errors where users land (issue 20, point 4): one message naming the line and the fix --
def test_sort_method_names_the_traced_alternative():
    def fun(x):
        x.sort()
        return anp.sum(x)

    with raises_exactly(TracingError, "`x.sort()`", "in place", "np.sort(x"):
        ardiff.grad(fun)(np.ones(3))


def test_other_ndarray_attributes_say_what_they_are():
    def fun(x):
        return anp.sum(x) * x.strides[0]

    with pytest.raises(AttributeError, match="ndarray.strides is not supported.*x.value"):
        ardiff.grad(fun)(np.ones(3))
    assert not hasattr(ardiff.Graph().input(np.ones(2)), "strides")  # hasattr still works


@pytest.mark.parametrize("draw", [
    lambda mu: np.random.normal(mu, 1.0),
    lambda mu: np.random.default_rng(0).normal(loc=mu, scale=1.0),
    lambda mu: np.random.RandomState(0).uniform(mu, mu + 1.0),
], ids=["np.random.normal", "Generator.normal", "RandomState.uniform"])
def test_random_draw_with_traced_parameter_gives_the_reparameterisation(draw):
    def fun(mu):
        return anp.sum(draw(mu) * mu)

    with raises_exactly(TracingError, "`lambda mu: np.random.", "random draw cannot take a traced",
                        "mu + sigma * rng.standard_normal"):
        ardiff.grad(fun)(np.zeros(3))


def test_item_assignment_into_numpy_array_is_one_message():
    def fill(w):
        a = np.zeros(3)
        a[0] = w
        return anp.sum(a * w)

    with raises_exactly(TracingError, "fill:", "`a[0] = w`", "np.zeros_like(x)",
                        "like=x") as info:
        ardiff.grad(fill)(1.0)
    # not NumPy's "setting an array element with a sequence" between two copies of it
    assert info.value.__cause__ is None and info.value.__suppress_context__
