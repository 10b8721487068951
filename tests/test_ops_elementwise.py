"""Property-based cases for elementwise ops: unary ufuncs, binary ufuncs and operators,
``where``, ``clip`` and the elementwise functions of ``scipy.special``.

Domains keep every function smooth under finite differences: logs and square
roots see positive numbers, inverse trig functions see |x| < 1, piecewise
constant functions (floor, sign, ...) see values away from their jumps, and the
two arguments of max-like ops live on interleaved grids so they never tie.
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from test_ops import (
    Case,
    between,
    broadcast_shapes,
    grid,
    make_op_test,
    nonzero,
    one_arg,
    reals,
    shapes,
    special,
    two_args,
)


def away_from_integers(shape, scale=1.0):
    """k + f with f in [0.1, 0.4] or [0.6, 0.9]: away from the jumps of floor, ceil, rint,
    round and trunc (and from the half-way points where rounding switches)."""
    frac = st.one_of(st.floats(0.1, 0.4), st.floats(0.6, 0.9))
    return st.tuples(hnp.arrays(np.int64, shape, elements=st.integers(-5, 5)),
                     hnp.arrays(np.float64, shape, elements=frac)).map(
        lambda p: (p[0] + p[1]) * scale)


FREE = between(-3.0, 3.0)
POSITIVE = between(0.1, 4.0)
UNIT = between(-0.9, 0.9)

# name, values, op-table name (default: the name)
UNARY = [
    ("negative", FREE, None), ("positive", FREE, None), ("abs", nonzero, "absolute"),
    ("absolute", nonzero, None), ("builtin abs", nonzero, "absolute"),
    ("sign", nonzero, None), ("sqrt", POSITIVE, None), ("square", FREE, None),
    ("reciprocal", nonzero, None), ("exp", FREE, None), ("exp2", FREE, None),
    ("expm1", FREE, None), ("log", POSITIVE, None), ("log2", POSITIVE, None),
    ("log10", POSITIVE, None), ("log1p", between(-0.8, 3.0), None), ("sin", FREE, None),
    ("cos", FREE, None), ("tan", between(-1.3, 1.3), None), ("arcsin", UNIT, None),
    ("arccos", UNIT, None), ("arctan", FREE, None), ("sinh", FREE, None),
    ("cosh", FREE, None), ("tanh", FREE, None), ("arcsinh", FREE, None),
    ("arccosh", between(1.1, 4.0), None), ("arctanh", UNIT, None),
    ("deg2rad", between(-400.0, 400.0), None), ("rad2deg", FREE, None),
    ("floor", away_from_integers, None), ("ceil", away_from_integers, None),
    ("rint", away_from_integers, None), ("trunc", away_from_integers, None),
    ("round", away_from_integers, None), ("around", away_from_integers, "round"),
    ("cbrt", nonzero, None),
]


def _unary_fun(name):
    if name == "builtin abs":
        return lambda xp, x: abs(x)  # the builtin on a tracer
    return lambda xp, x: getattr(xp, name)(x)


CASES = [Case(name, _unary_fun(name), one_arg(values), ops=(op or name,))
         for name, values, op in UNARY]
CASES.append(Case("round_decimals", lambda xp, x, decimals: xp.round(x, decimals),
                  st.integers(-1, 2).flatmap(lambda d: shapes().flatmap(
                      lambda s: away_from_integers(s, 10.0 ** -d)).map(
                      lambda x: ((x,), {"decimals": d}))), ops=("round",)))


# -- binary ufuncs --------------------------------------------------------------------

def _binary_fun(name):
    return lambda xp, x, y: getattr(xp, name)(x, y)


def _on_grid(offset):
    return lambda shape: grid(shape, offset=offset)


BINARY = [
    ("add", FREE, FREE, None), ("subtract", FREE, FREE, None),
    ("multiply", FREE, FREE, None), ("divide", FREE, nonzero, None),
    ("true_divide", FREE, nonzero, "divide"), ("power", between(0.3, 2.5), between(-2, 2), None),
    ("maximum", _on_grid(0.0), _on_grid(0.1), None),
    ("minimum", _on_grid(0.0), _on_grid(0.1), None),
    ("fmax", _on_grid(0.1), _on_grid(0.0), None), ("fmin", _on_grid(0.1), _on_grid(0.0), None),
    # arctan2 jumps by 2 pi across y = 0 for x < 0: keep y away from 0
    ("arctan2", nonzero, FREE, None), ("hypot", nonzero, FREE, None),
    ("logaddexp", FREE, FREE, None), ("logaddexp2", FREE, FREE, None),
    # |x| has its kink at 0 and the sign of y jumps at 0: keep both away from 0
    ("copysign", nonzero, nonzero, None),
]
CASES += [Case(name, _binary_fun(name), two_args(xs, ys), ops=(op or name,))
          for name, xs, ys, op in BINARY]


@st.composite
def remainder_args(draw):
    """x, y with x / y at least 0.1 away from an integer (the jumps of x mod y).

    The argument with the full broadcast shape is built from the other one.
    """
    sx, sy = draw(broadcast_shapes(2))
    full = np.broadcast_shapes(sx, sy)
    quotient = draw(away_from_integers(full))
    if sx == full:
        y = draw(nonzero(sy, 0.5, 2.0))
        return (quotient * y, y), {}
    if sy != full:  # neither is full, e.g. (3, 1) and (1, 3): give x the full shape
        y = draw(nonzero(sy, 0.5, 2.0))
        return (quotient * y, y), {}
    x = draw(nonzero(sx, 0.5, 2.0))
    return (x, x / quotient), {}


CASES += [
    Case("remainder", _binary_fun("remainder"), remainder_args()),
    Case("fmod", _binary_fun("fmod"), remainder_args()),
    Case("mod", _binary_fun("mod"), remainder_args(), ops=("remainder",)),
    Case("power_integer_exponent", lambda xp, x, n: xp.power(x, n),
         st.tuples(shapes(), st.integers(-2, 4)).flatmap(
             lambda p: nonzero(p[0], 0.3, 2.0).map(lambda x: ((x,), {"n": float(p[1])}))),
         ops=("power",)),
]


# -- operators --------------------------------------------------------------------------

OPERATORS = {
    "operator +": (lambda x, y: x + y + 1.5, FREE, FREE, "add"),
    "operator -": (lambda x, y: (x - y) - (2.0 - x), FREE, FREE, "subtract"),
    "operator *": (lambda x, y: x * y * 3.0, FREE, FREE, "multiply"),
    "operator /": (lambda x, y: x / y + 2.0 / y, FREE, nonzero, "divide"),
    "operator **": (lambda x, y: x ** y + 2.0 ** y + x ** 2, between(0.3, 2.5), FREE, "power"),
    "operator %": (lambda x, y: x % 1.7 + 2.0 % (y + 10.0), lambda s: nonzero(s, 0.1, 1.6),
                   between(0.0, 0.1),
                   "remainder"),
    "operator unary -": (lambda x, y: -x + (+y), FREE, FREE, "negative"),
    "operator abs": (lambda x, y: abs(x) * y, nonzero, FREE, "absolute"),
    # a NumPy array on the left hands over to the tracer (__array_ufunc__ / reflected ops)
    "operator ndarray-left": (lambda x, y: np.full(np.shape(x), 2.0) - x *
                              (np.full(np.shape(y), 3.0) / y) + np.ones(np.shape(x)) ** x,
                              FREE, nonzero, "subtract"),
}
CASES += [Case(name, lambda xp, x, y, f=f: f(x, y), two_args(xs, ys), ops=(op,), dispatch=False)
          for name, (f, xs, ys, op) in OPERATORS.items()]
# floor division has no gradient: its (plain) result scales a traced value
CASES.append(Case("operator //", lambda xp, x, y: x * (x // y), remainder_args(),
                  ops=("multiply",), dispatch=False))


@st.composite
def matmul_operands(draw):
    shapes_ = draw(hnp.mutually_broadcastable_shapes(signature=np.matmul.signature,
                                                     max_dims=3, max_side=3))
    return tuple(draw(reals(s)) for s in shapes_.input_shapes), {}


CASES.append(Case("operator @", lambda xp, x, y: x @ y, matmul_operands(), ops=("matmul",),
                  dispatch=False))


def _comparisons(xp, x, y):
    # the masks are plain boolean arrays; the gradient flows through where
    return (xp.where(x > y, x, y) + xp.where(x < y, x * 2.0, 0.0) + xp.where(x >= y, y, 1.0)
            + xp.where(x <= y, y * x, x) + xp.where(x == y, x, y) + xp.where(x != y, x, 0.0))


CASES.append(Case("comparisons", _comparisons, two_args(_on_grid(0.0), _on_grid(0.1)),
                  ops=("where",)))


# -- where and clip ------------------------------------------------------------------------

@st.composite
def where_args(draw):
    sc, sx, sy = draw(broadcast_shapes(3))
    cond = draw(hnp.arrays(np.bool_, sc))
    return (draw(reals(sx)), draw(reals(sy))), {"condition": cond}


CASES.append(Case("where", lambda xp, x, y, condition: xp.where(condition, x, y), where_args()))


@st.composite
def clip_bounds(draw):
    """x on one grid, bounds (None, or scalars/broadcastable arrays) on the other."""
    sx, slo, shi = draw(broadcast_shapes(3))
    x = draw(grid(sx, offset=0.1))
    lo = draw(st.one_of(st.none(), grid((), offset=-0.4), grid(slo, offset=-1.0)))
    hi = draw(st.one_of(grid((), offset=0.4), grid(shi, offset=1.0)) if lo is None else
              st.one_of(st.none(), grid((), offset=0.4), grid(shi, offset=1.0)))
    return (x,), {"lo": lo, "hi": hi}


@st.composite
def clip_traced(draw):
    """x, a_min, a_max all differentiated; a_min > a_max happens (NumPy returns a_max)."""
    sx, slo, shi = draw(broadcast_shapes(3))
    return (draw(grid(sx, offset=0.1)), draw(grid(slo, step=0.4)),
            draw(grid(shi, offset=0.2, step=0.4))), {}


CASES += [
    Case("clip", lambda xp, x, lo, hi: xp.clip(x, lo, hi), clip_traced()),
    Case("clip_static_bounds", lambda xp, x, lo, hi: xp.clip(x, lo, hi), clip_bounds(),
         ops=("clip",)),
    Case("clip_method", lambda xp, x, lo, hi: x.clip(lo, hi), clip_bounds(), ops=("clip",),
         dispatch=False),
    # real input: the identity (autograd's test_real_ic, complex values are issue 14)
    Case("real_if_close", lambda xp, x: xp.real_if_close(x) * 2.0, one_arg(FREE),
         ops=("multiply",)),
]


# -- scipy.special (elementwise) -------------------------------------------------------------

CASES += [
    Case("special.expit", lambda xp, x: special(xp).expit(x), one_arg(between(-6.0, 6.0)),
         ops=("expit",)),
    Case("special.erf", lambda xp, x: special(xp).erf(x), one_arg(FREE), ops=("erf",)),
]

test_elementwise = make_op_test(CASES)
