"""Property-based cases for reductions (``axis``/``keepdims`` drawn), cumulative sums and
products, ``logsumexp``, and the reduction methods of traced arrays.

Values of ``max``/``min`` and the variance family are distinct grid points, so no
two elements tie (ties are tested in closed form in ``test_ops``); products and
cumulative products are polynomials, so their values may contain exact zeros,
which exercises the zero-safe VJPs.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import strategies as st
from test_ops import Case, axes, grid, make_op_test, reals, shapes, special

import ardiff
import ardiff.numpy as anp


def distinct(shape):
    """Elements at least 0.2 apart: no ties, even under finite-difference steps."""
    return grid(shape, unique=True)


def with_zeros(shape):
    """Values in [-2, 2] that are often exactly 0."""
    return reals(shape, -2.0, 2.0).flatmap(
        lambda x: st.lists(st.booleans(), min_size=x.size, max_size=x.size).map(
            lambda z: np.where(np.reshape(z, x.shape), 0.0, x)))


def reduction(values, ddof=False, max_dims=3):
    """(args, kwargs) with a drawn axis and keepdims (and ddof for var/std)."""
    @st.composite
    def draw(draw_):
        shape = draw_(shapes(max_dims=max_dims))
        x = draw_(values(shape))
        kwargs = {"axis": draw_(axes(len(shape))), "keepdims": draw_(st.booleans())}
        if ddof:
            kwargs["ddof"] = draw_(st.integers(0, 1))
            axis = kwargs["axis"]
            count = np.sum(np.ones(shape), axis=axis) if axis != () else np.ones(shape)
            if np.min(count, initial=2) <= kwargs["ddof"]:
                kwargs["ddof"] = 0  # numpy divides by n - ddof
        return (x,), kwargs
    return draw()


def cumulative(values):
    @st.composite
    def draw(draw_):
        shape = draw_(shapes())
        axis = draw_(st.none() | (st.integers(-len(shape), len(shape) - 1) if shape
                                  else st.none()))
        return (draw_(values(shape)),), {"axis": axis}
    return draw()


def _reduce(name):
    return lambda xp, x, **kw: getattr(xp, name)(x, **kw)


REDUCTIONS = [
    ("sum", reals, None), ("mean", reals, None), ("prod", with_zeros, None),
    ("max", distinct, None), ("min", distinct, None), ("amax", distinct, "max"),
    ("amin", distinct, "min"),
]
CASES = [Case(name, _reduce(name), reduction(values), ops=(op or name,))
         for name, values, op in REDUCTIONS]
CASES += [
    Case("var", _reduce("var"), reduction(distinct, ddof=True)),
    Case("std", _reduce("std"), reduction(distinct, ddof=True)),
    Case("cumsum", _reduce("cumsum"), cumulative(reals)),
    Case("cumprod", _reduce("cumprod"), cumulative(with_zeros)),
    Case("cumprod_nonzero", _reduce("cumprod"), cumulative(lambda s: reals(s, 0.5, 1.5)),
         ops=("cumprod",)),
    Case("special.logsumexp", lambda xp, x, **kw: special(xp).logsumexp(x, **kw),
         reduction(reals), ops=("logsumexp",), dispatch=False),
    # a product over an all-zero slice: every derivative there is a product of zeros
    Case("prod_many_zeros", _reduce("prod"),
         reduction(lambda s: reals(s, -2.0, 2.0).map(lambda x: x * (np.abs(x) > 1.0))),
         ops=("prod",)),
]

# The same reductions as methods of traced arrays.
METHODS = [("sum", reals), ("mean", reals), ("prod", with_zeros), ("max", distinct),
           ("min", distinct), ("var", distinct), ("std", distinct)]
CASES += [Case(f"method .{name}()", lambda xp, x, name=name, **kw: getattr(x, name)(**kw),
               reduction(values, ddof=name in ("var", "std")), ops=(name,), dispatch=False)
          for name, values in METHODS]
CASES += [Case(f"method .{name}()", lambda xp, x, name=name, **kw: getattr(x, name)(**kw),
               cumulative(reals), ops=(name,), dispatch=False) for name in ("cumsum", "cumprod")]

test_reduce = make_op_test(CASES)


def test_untraced_reductions_are_numpy_with_every_option():
    a = np.array([[1.0, 4.0], [3.0, 2.0]])
    assert anp.prod([2, 3.0, 3.0], dtype=int) == np.prod([2, 3.0, 3.0], dtype=int) == 18
    assert anp.max(a, initial=7.0) == np.max(a, initial=7.0) == 7.0
    np.testing.assert_array_equal(anp.sum(a, 0, np.float32), np.sum(a, 0, np.float32))
    assert anp.sum(a, 0, np.float32).dtype == np.float32
    np.testing.assert_array_equal(anp.min(a, where=a > 1, initial=9.0, axis=1),
                                  np.min(a, where=a > 1, initial=9.0, axis=1))


def test_traced_reductions_refuse_options_they_cannot_differentiate():
    x = np.array([1.0, 2.0])
    for fun in (lambda v: anp.max(v, initial=5.0), lambda v: anp.sum(v, where=v > 1),
                lambda v: anp.sum(v, dtype=np.float32)):
        with pytest.raises(TypeError, match="not supported"):
            ardiff.grad(fun)(x)
