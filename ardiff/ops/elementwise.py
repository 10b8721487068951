"""Elementwise ops: unary math ufuncs, binary arithmetic, `where` and `clip`.

Each entry gives the local derivative; `scale_by` turns it into the staged VJP
`g -> g * f'` so the derivative is computed once per node, not once per
relaxation step.  Ops marked `nonlinear=True` are the ones the
`ardiff.rules.NoDerivative` rule passes through without `f'`.

Kink conventions (documented subgradients): `abs` and `sign` give 0 at 0;
ties of `maximum`/`minimum`/`fmax`/`fmin` split the gradient evenly;
`clip` passes the gradient to x where `a_min <= x <= a_max` and to the bound
that the value follows elsewhere.
"""

from __future__ import annotations

import numpy as np

from ..graph import TracerBase, unwrap
from ..op import NEGATED, OPS, PASS_THROUGH, Scale, defop, scale_by
from .axes import dtype_of
from .jacobians import ELEMENTWISE

LN2 = float(np.log(2.0))
LN10 = float(np.log(10.0))


def unary(name, fwd, deriv, nonlinear=True, reads=None, scalar=None):
    """Register an elementwise op with local derivative `deriv(ans, x)`.

    `reads` names what `deriv` reads: `"ans"`, `0` (x) or both; `scalar` its form on
    Python floats, the derivative written operation for operation as `deriv` (see
    `defop`).
    """
    return defop(name, fwd, Scale(deriv), jac=ELEMENTWISE, nonlinear=nonlinear,
                 reads=None if reads is None else (tuple(reads),), scalar=scalar)


def zero_tangent(t, ans, *args, **kwargs):
    """The tangent rule of a piecewise-constant op: zeros shaped like the answer."""
    inner = unwrap(ans)
    return np.zeros(np.shape(inner), dtype=dtype_of(inner))


def zero_gradient(name, fwd):
    """Register a piecewise-constant op: its derivative is zero almost everywhere."""
    def vjp(ans, x, *args, **kwargs):
        zeros = np.zeros(np.shape(unwrap(x)), dtype=dtype_of(unwrap(x)))
        return lambda g: zeros
    return defop(name, fwd, vjp, jac=ELEMENTWISE, reads=((),), jvp=(zero_tangent,))


negative = defop("negative", np.negative, NEGATED, jac=ELEMENTWISE,
                 scalar=("-{0}", None))
positive = defop("positive", np.positive, PASS_THROUGH, jac=ELEMENTWISE)
def _abs_slope(ans, x):
    """sign(x) for real x; conj(z)/|z| for complex z (docs/complex.md), 0 at 0 in both."""
    if not np.iscomplexobj(unwrap(x)):
        return np.sign(unwrap(x))
    nonzero = unwrap(ans) != 0
    return where(nonzero, OPS["conj"](x) / where(nonzero, ans, 1.0), 0.0)


absolute = unary("absolute", np.absolute, _abs_slope, reads=("ans", 0),
                 scalar=("abs({0})", ("sign({0})",)))
square = unary("square", np.square, lambda ans, x: 2.0 * x, reads=(0,),
               scalar=("{0} * {0}", ("2.0 * {0}",)))
sqrt = unary("sqrt", np.sqrt, lambda ans, x: 0.5 / ans, reads=("ans",),
             scalar=("sqrt({0})", ("0.5 / {ans}",)))
reciprocal = unary("reciprocal", np.reciprocal, lambda ans, x: -(ans * ans), reads=("ans",))
exp = unary("exp", np.exp, lambda ans, x: ans, reads=("ans",),
            scalar=("exp({0})", ("{ans}",)))
exp2 = unary("exp2", np.exp2, lambda ans, x: ans * LN2, reads=("ans",))
expm1 = unary("expm1", np.expm1, lambda ans, x: ans + 1.0, reads=("ans",),
              scalar=("expm1({0})", ("{ans} + 1.0",)))
log = unary("log", np.log, lambda ans, x: 1.0 / x, reads=(0,),
            scalar=("log({0})", ("1.0 / {0}",)))
log2 = unary("log2", np.log2, lambda ans, x: 1.0 / (x * LN2), reads=(0,))
log10 = unary("log10", np.log10, lambda ans, x: 1.0 / (x * LN10), reads=(0,))
log1p = unary("log1p", np.log1p, lambda ans, x: 1.0 / (x + 1.0), reads=(0,),
              scalar=("log1p({0})", ("1.0 / ({0} + 1.0)",)))
sin = unary("sin", np.sin, lambda ans, x: cos(x), reads=(0,),
            scalar=("sin({0})", ("cos({0})",)))
cos = unary("cos", np.cos, lambda ans, x: -sin(x), reads=(0,),
            scalar=("cos({0})", ("-sin({0})",)))
tan = unary("tan", np.tan, lambda ans, x: 1.0 + ans * ans, reads=("ans",),
            scalar=("tan({0})", ("1.0 + {ans} * {ans}",)))
arcsin = unary("arcsin", np.arcsin, lambda ans, x: 1.0 / sqrt(1.0 - x * x), reads=(0,))
arccos = unary("arccos", np.arccos, lambda ans, x: -1.0 / sqrt(1.0 - x * x), reads=(0,))
arctan = unary("arctan", np.arctan, lambda ans, x: 1.0 / (1.0 + x * x), reads=(0,),
               scalar=("arctan({0})", ("1.0 / (1.0 + {0} * {0})",)))
sinh = unary("sinh", np.sinh, lambda ans, x: cosh(x), reads=(0,),
             scalar=("sinh({0})", ("cosh({0})",)))
cosh = unary("cosh", np.cosh, lambda ans, x: sinh(x), reads=(0,),
             scalar=("cosh({0})", ("sinh({0})",)))
tanh = unary("tanh", np.tanh, lambda ans, x: 1.0 - ans * ans, reads=("ans",),
             scalar=("tanh({0})", ("1.0 - {ans} * {ans}",)))
arcsinh = unary("arcsinh", np.arcsinh, lambda ans, x: 1.0 / sqrt(x * x + 1.0), reads=(0,))
#: The real cube root; its slope 1 / (3 cbrt(x)^2) is infinite at 0, as sqrt's.
cbrt = unary("cbrt", np.cbrt, lambda ans, x: 1.0 / (3.0 * ans * ans), reads=("ans",))
def _arccosh_slope(ans, x):
    """1 / sqrt(x^2 - 1); for complex x 1 / (sqrt(x - 1) sqrt(x + 1)), the derivative of
    NumPy's principal branch (the one-root form has the wrong sign where Re x < 0)."""
    if np.iscomplexobj(unwrap(x)):
        return 1.0 / (sqrt(x - 1.0) * sqrt(x + 1.0))
    return 1.0 / sqrt(x * x - 1.0)


arccosh = unary("arccosh", np.arccosh, _arccosh_slope, reads=(0,))
arctanh = unary("arctanh", np.arctanh, lambda ans, x: 1.0 / (1.0 - x * x), reads=(0,))
deg2rad = unary("deg2rad", np.deg2rad, lambda ans, x: float(np.pi / 180.0), nonlinear=False,
                reads=())
rad2deg = unary("rad2deg", np.rad2deg, lambda ans, x: float(180.0 / np.pi), nonlinear=False,
                reads=())



def _sinc_slope(ans, x):
    """d sinc/dx = (cos(pi x) - sinc(x)) / x, taken as 0 at x = 0 (its limit)."""
    nonzero = unwrap(x) != 0
    if np.all(nonzero):
        return (cos(np.pi * x) - ans) / x
    return where(nonzero, (cos(np.pi * x) - ans) / where(nonzero, x, 1.0), 0.0)


#: The normalised sinc, sin(pi x) / (pi x).  Its VJP is exact to first order
#: everywhere; at exactly x = 0 the second derivative reads 0 (not -pi^2/3).
sinc = defop("sinc", np.sinc, Scale(_sinc_slope), jac=ELEMENTWISE, nonlinear=True,
             reads=(("ans", 0),))

def _sign_vjp(ans, x):
    if np.iscomplexobj(unwrap(x)):  # z / |z| is not piecewise constant
        raise TypeError("ardiff op 'sign': the sign of a complex value (z / |z|) has a "
                        "non-zero derivative; write it as z / abs(z) to differentiate it.")
    zeros = np.zeros(np.shape(unwrap(x)), dtype=dtype_of(unwrap(x)))
    return lambda g: zeros


def _sign_jvp(t, ans, x):
    _sign_vjp(ans, x)  # the same refusal for complex x
    return zero_tangent(t, ans)


sign = defop("sign", np.sign, _sign_vjp, jac=ELEMENTWISE, reads=((),), jvp=(_sign_jvp,))
floor = zero_gradient("floor", np.floor)
ceil = zero_gradient("ceil", np.ceil)
rint = zero_gradient("rint", np.rint)
trunc = zero_gradient("trunc", np.trunc)
round_ = zero_gradient("round", lambda x, decimals=0: np.round(x, decimals))

add = defop("add", np.add, PASS_THROUGH, PASS_THROUGH, jac=ELEMENTWISE, infix="+",
            scalar=("{0} + {1}", None))
subtract = defop("subtract", np.subtract, PASS_THROUGH, NEGATED, jac=ELEMENTWISE, infix="-",
                 scalar=("{0} - {1}", None))
multiply = defop("multiply", np.multiply, Scale(lambda ans, x, y: y),
                 Scale(lambda ans, x, y: x), jac=ELEMENTWISE, infix="*", reads=((1,), (0,)),
                 scalar=("{0} * {1}", ("{1}", "{0}")))
divide = defop("divide", np.divide, Scale(lambda ans, x, y: 1.0 / y),
               Scale(lambda ans, x, y: -ans / y), jac=ELEMENTWISE, infix="/",
               reads=((1,), ("ans", 1)),
               scalar=("{0} / {1}", ("1.0 / {1}", "-{ans} / {1}")))


def _log_base(x):
    """log(x) where x > 0 and 0 elsewhere: d(x**y)/dy for x <= 0 is taken as 0.  For
    complex x, x**y = exp(y log x) on the principal branch: log(x) wherever x != 0."""
    positive_part = unwrap(x) != 0 if np.iscomplexobj(unwrap(x)) else unwrap(x) > 0
    return where(positive_part, log(where(positive_part, x, 1.0)), 0.0)


def _exponent_less_one(x, y):
    """y - 1, except 1 where x = y = 0: d(x**y)/dx = y * x**(y-1) is then 0 there
    instead of 0 * inf = NaN (x**0 is constant).  Elsewhere y - 1 is kept, so the
    derivative with respect to y stays right."""
    raw = unwrap(y)
    if not isinstance(y, TracerBase) and np.ndim(raw) == 0:  # a plain scalar exponent
        return y - 1.0 if raw != 0 else 1.0  # a Python float keeps float32 float32
    return where((raw != 0) | (unwrap(x) != 0), y - 1.0, 1.0)


def _power_factor(ans, x, y):
    """d(x**y)/dx = y * x**(y-1); for a real array squared, 2 * x (x**1.0 is x exactly,
    so the bits are the general form's, without its power)."""
    if type(y) is int and y == 2 and type(x) is np.ndarray and x.dtype.kind == "f":
        return y * x
    return y * x ** _exponent_less_one(x, y)


power = defop("power", np.power,
              Scale(_power_factor),
              Scale(lambda ans, x, y: ans * _log_base(x)), jac=ELEMENTWISE,
              reads=((0, 1), ("ans", 0)))


def _tie_split(x, y, x_wins):
    """Derivative of a max/min-like selection w.r.t. x: 1 if x wins, 1/2 on ties.

    Without ties it stays a boolean mask: `g * mask` gives the same numbers as
    `g * mask.astype(float)` (0 * g keeps its sign, NaN stays NaN) without a float
    copy per unit, which a ReLU network would otherwise allocate for every layer.
    """
    xr, yr = unwrap(x), unwrap(y)
    share = x_wins(xr, yr)
    ties = xr == yr
    if np.any(ties):
        return share.astype(np.result_type(xr, yr)) + 0.5 * ties
    return share


maximum = defop("maximum", np.maximum,
                Scale(lambda ans, x, y: _tie_split(x, y, np.greater)),
                Scale(lambda ans, x, y: _tie_split(y, x, np.greater)),
                jac=ELEMENTWISE, nonlinear=True, reads=((0, 1), (0, 1)))
minimum = defop("minimum", np.minimum,
                Scale(lambda ans, x, y: _tie_split(x, y, np.less)),
                Scale(lambda ans, x, y: _tie_split(y, x, np.less)), jac=ELEMENTWISE, nonlinear=True,
                reads=((0, 1), (0, 1)))


def _nan_aware(x, y, x_wins):
    """fmax/fmin ignore NaN: the non-NaN argument takes the whole gradient."""
    xr, yr = unwrap(x), unwrap(y)
    d = _tie_split(x, y, x_wins)
    return np.where(np.isnan(yr), 1.0, np.where(np.isnan(xr), 0.0, d)).astype(d.dtype)


fmax = defop("fmax", np.fmax,
             Scale(lambda ans, x, y: _nan_aware(x, y, np.greater)),
             Scale(lambda ans, x, y: _nan_aware(y, x, np.greater)), jac=ELEMENTWISE, nonlinear=True,
             reads=((0, 1), (0, 1)))
fmin = defop("fmin", np.fmin,
             Scale(lambda ans, x, y: _nan_aware(x, y, np.less)),
             Scale(lambda ans, x, y: _nan_aware(y, x, np.less)), jac=ELEMENTWISE, nonlinear=True,
             reads=((0, 1), (0, 1)))
arctan2 = defop("arctan2", np.arctan2,
                Scale(lambda ans, y, x: x / (x * x + y * y)),
                Scale(lambda ans, y, x: -y / (x * x + y * y)), jac=ELEMENTWISE, nonlinear=True,
                reads=((0, 1), (0, 1)))
def _over_hypot(x, ans):
    """x / hypot, taken as 0 at the origin (as for the norm of a zero vector)."""
    nonzero = unwrap(ans) != 0
    return where(nonzero, x / where(nonzero, ans, 1.0), 0.0)


hypot = defop("hypot", np.hypot,
              Scale(lambda ans, x, y: _over_hypot(x, ans)),
              Scale(lambda ans, x, y: _over_hypot(y, ans)), jac=ELEMENTWISE, nonlinear=True,
              reads=(("ans", 0), ("ans", 1)))
logaddexp = defop("logaddexp", np.logaddexp,
                  Scale(lambda ans, x, y: exp(x - ans)),
                  Scale(lambda ans, x, y: exp(y - ans)), jac=ELEMENTWISE, nonlinear=True,
                  reads=(("ans", 0), ("ans", 1)))
logaddexp2 = defop("logaddexp2", np.logaddexp2,
                   Scale(lambda ans, x, y: exp2(x - ans)),
                   Scale(lambda ans, x, y: exp2(y - ans)), jac=ELEMENTWISE, nonlinear=True,
                   reads=(("ans", 0), ("ans", 1)))
remainder = defop("remainder", np.remainder,
                  PASS_THROUGH,
                  Scale(lambda ans, x, y: -np.floor_divide(unwrap(x), unwrap(y))), jac=ELEMENTWISE,
                  reads=((), (0, 1)))


def _fmod_y_slope(ans, x, y):
    """d fmod(x, y) / dy = -trunc(x / y) (the quotient rounded towards zero).

    (x - fmod(x, y)) / y is that integer up to rounding (2.9999998 for 3 in float32):
    rounded to the nearest integer, not truncated."""
    xr, yr = unwrap(x), unwrap(y)
    return -np.rint(np.divide(xr - np.fmod(xr, yr), yr))


#: C's fmod: the remainder takes the sign of x (`remainder` takes the sign of y).
fmod = defop("fmod", np.fmod, PASS_THROUGH, Scale(_fmod_y_slope), jac=ELEMENTWISE,
             reads=((), (0, 1)))


def _copysign_slope(ans, x, y):
    """d copysign(x, y) / dx = sign(x) * (+1 or -1 by the sign bit of y); 0 at x = 0 (the
    kink of |x|).  The result is piecewise constant in y: its derivative there is 0."""
    xr = unwrap(x)
    dtype = np.result_type(unwrap(ans))
    return (np.sign(xr) * np.copysign(np.ones_like(xr), unwrap(y))).astype(dtype, copy=False)


def _copysign_y_slope(ans, x, y):
    return np.zeros(np.shape(unwrap(ans)), dtype=np.result_type(unwrap(ans)))


copysign = defop("copysign", np.copysign, Scale(_copysign_slope), Scale(_copysign_y_slope),
                 jac=ELEMENTWISE, nonlinear=True, reads=((0, 1), ()))


def _where_vjp(k, ans, condition, x, y):
    if k == 0:
        raise TypeError("ardiff op 'where': the condition carries no gradient.")
    mask = np.asarray(unwrap(condition), dtype=bool)
    return (lambda g: where(mask, g, 0.0)) if k == 1 else (lambda g: where(mask, 0.0, g))


def _where_jvp(k, t, ans, condition, x, y):
    if k == 0:
        raise TypeError("ardiff op 'where': the condition carries no tangent.")
    mask = np.asarray(unwrap(condition), dtype=bool)
    return where(mask, t, 0.0) if k == 1 else where(mask, 0.0, t)


where = defop("where", np.where, vjp=_where_vjp, jac=ELEMENTWISE, reads=((), (0,), (0,)),
              jvp=_where_jvp)


def _clip_masks(ans, x, a_min, a_max):
    """Which of x, a_min, a_max the clipped value follows, as float masks shaped like ans.

    x owns the closed interval a_min <= x <= a_max; a_min owns x < a_min <= a_max;
    a_max owns the rest (x > a_max, or a_min > a_max where NumPy returns a_max).
    """
    xr = unwrap(x)
    shape, dtype = np.shape(unwrap(ans)), np.result_type(xr)
    inside = np.ones(shape, dtype=bool)
    below = np.zeros(shape, dtype=bool)
    if a_min is not None:
        lo = unwrap(a_min)
        inside = inside & (xr >= lo)
        below = (xr < lo) & (True if a_max is None else lo <= unwrap(a_max))
    if a_max is not None:
        inside = inside & (xr <= unwrap(a_max))
    above = ~(inside | below)
    return inside.astype(dtype), below.astype(dtype), above.astype(dtype)


def _clip_vjp(which):
    def maker(ans, x, a_min=None, a_max=None):
        return scale_by(_clip_masks(ans, x, a_min, a_max)[which])
    return maker


def _clip_jvp(which):
    def maker(t, ans, x, a_min=None, a_max=None):
        return t * _clip_masks(ans, x, a_min, a_max)[which]
    return maker


clip = defop("clip", lambda x, a_min=None, a_max=None: np.clip(x, a_min, a_max),
             _clip_vjp(0), _clip_vjp(1), _clip_vjp(2), jac=ELEMENTWISE, nonlinear=True,
             reads=((0, 1, 2),) * 3, jvp=(_clip_jvp(0), _clip_jvp(1), _clip_jvp(2)))
