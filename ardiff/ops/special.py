"""Special functions from `scipy.special`, each an elementwise op (plus `logsumexp`).

Every derivative is written with the ops of this table, so each one can be
differentiated again: `digamma`'s derivative is `polygamma(1, x)`, the Bessel
functions' derivatives are Bessel functions of the neighbouring orders, and so on.

Arguments without a derivative (declared `None` in the `defop` call; passing a
traced value there raises a `TypeError` naming the op when the gradient is taken):

* integer or real orders: `n` of `polygamma`, `yn`; `v` of `iv`, `ive`, `jv`;
* the shape parameters of the incomplete functions: `a` of `gammainc`/`gammaincc`,
  `a`, `b` of `betainc`/`betaincc`, and `df` of `stdtr` (their derivatives have no
  closed form in special functions that SciPy provides).

Conventions at the edges: `xlogy(0, y)` and `xlog1py(0, y)` are 0 for every `y`, and so is
their derivative with respect to `y` there.
"""

from __future__ import annotations

import numpy as np
import scipy.special as sps

from ..graph import unwrap
from ..op import Scale, defop
from .axes import kept_shape
from .elementwise import exp, log, log1p, unary, where, zero_gradient
from .jacobians import ELEMENTWISE, Reduction
from .reduce import spread, sum_
from .shape import reshape

TWO_OVER_SQRT_PI = float(2.0 / np.sqrt(np.pi))
SQRT_PI_OVER_TWO = float(np.sqrt(np.pi) / 2.0)
INV_SQRT_2PI = float(1.0 / np.sqrt(2.0 * np.pi))
SQRT_2PI = float(np.sqrt(2.0 * np.pi))
LOG_PI = float(np.log(np.pi))


def _sign(x):
    """The plain sign of a possibly traced value (a constant factor: no derivative)."""
    return np.sign(unwrap(x))


def _x_over(x, y):
    """`x / y`, taken as 0 where `x == y == 0` (the derivative of `xlogy` w.r.t. `y`).

    Where only `x` is 0 it stays `x / y`, so that its derivative w.r.t. `x`, `1 / y`,
    is right at second order.
    """
    both_zero = np.asarray((unwrap(x) == 0) & (unwrap(y) == 0))
    if not np.any(both_zero):
        return x / y
    return x / where(both_zero, 1.0, y)


# -- error functions and the normal distribution ------------------------------------------
expit = unary("expit", sps.expit, lambda ans, x: ans * (1.0 - ans), reads=("ans",))
logit = unary("logit", sps.logit, lambda ans, x: 1.0 / (x * (1.0 - x)), reads=(0,))
erf = unary("erf", sps.erf, lambda ans, x: TWO_OVER_SQRT_PI * exp(-(x * x)), reads=(0,))
erfc = unary("erfc", sps.erfc, lambda ans, x: -TWO_OVER_SQRT_PI * exp(-(x * x)), reads=(0,))
erfinv = unary("erfinv", sps.erfinv, lambda ans, x: SQRT_PI_OVER_TWO * exp(ans * ans),
               reads=("ans",))
erfcinv = unary("erfcinv", sps.erfcinv, lambda ans, x: -SQRT_PI_OVER_TWO * exp(ans * ans),
                reads=("ans",))
ndtr = unary("ndtr", sps.ndtr, lambda ans, x: INV_SQRT_2PI * exp(-0.5 * (x * x)), reads=(0,))
# exp(-x²/2 - log Φ(x)): the exponent stays moderate where Φ(x) underflows (x << 0)
log_ndtr = unary("log_ndtr", sps.log_ndtr,
                 lambda ans, x: INV_SQRT_2PI * exp(-0.5 * (x * x) - ans), reads=("ans", 0))
ndtri = unary("ndtri", sps.ndtri, lambda ans, x: SQRT_2PI * exp(0.5 * (ans * ans)), reads=("ans",))


# -- gamma and beta functions -----------------------------------------------------------------
polygamma = defop("polygamma", sps.polygamma, None,
                  Scale(lambda ans, n, x: polygamma(n + 1, x)), jac=ELEMENTWISE, nonlinear=True,
                  reads=(None, (0, 1)))
digamma = unary("digamma", sps.digamma, lambda ans, x: polygamma(1, x), reads=(0,))
gammaln = unary("gammaln", sps.gammaln, lambda ans, x: digamma(x), reads=(0,))
gamma = unary("gamma", sps.gamma, lambda ans, x: ans * digamma(x), reads=("ans", 0))
rgamma = unary("rgamma", sps.rgamma, lambda ans, x: -ans * digamma(x), reads=("ans", 0))
gammasgn = zero_gradient("gammasgn", sps.gammasgn)  # the sign of gamma: piecewise constant


def _digamma_difference(a, b):
    """`ψ(a) - ψ(a + b)`: the derivative of `betaln(a, b)` w.r.t. `a`."""
    return digamma(a) - digamma(a + b)


beta = defop("beta", sps.beta,
             Scale(lambda ans, a, b: ans * _digamma_difference(a, b)),
             Scale(lambda ans, a, b: ans * _digamma_difference(b, a)),
             jac=ELEMENTWISE, nonlinear=True, reads=(("ans", 0, 1), ("ans", 0, 1)))
betaln = defop("betaln", sps.betaln,
               Scale(lambda ans, a, b: _digamma_difference(a, b)),
               Scale(lambda ans, a, b: _digamma_difference(b, a)),
               jac=ELEMENTWISE, nonlinear=True, reads=((0, 1), (0, 1)))


def _gamma_density(a, x):
    """`x^(a-1) e^(-x) / Γ(a)`: the derivative of `gammainc(a, x)` w.r.t. `x`."""
    return exp(xlogy(a - 1.0, x) - x - gammaln(a))


gammainc = defop("gammainc", sps.gammainc, None,
                 Scale(lambda ans, a, x: _gamma_density(a, x)), jac=ELEMENTWISE, nonlinear=True,
                 reads=(None, (0, 1)))
gammaincc = defop("gammaincc", sps.gammaincc, None,
                  Scale(lambda ans, a, x: -_gamma_density(a, x)), jac=ELEMENTWISE,
                  nonlinear=True, reads=(None, (0, 1)))


def _beta_density(a, b, x):
    """`x^(a-1) (1-x)^(b-1) / B(a, b)`: the derivative of `betainc(a, b, x)` w.r.t. `x`."""
    return exp(xlogy(a - 1.0, x) + xlog1py(b - 1.0, -x) - betaln(a, b))


betainc = defop("betainc", sps.betainc, None, None,
                Scale(lambda ans, a, b, x: _beta_density(a, b, x)), jac=ELEMENTWISE,
                nonlinear=True, reads=(None, None, (0, 1, 2)))
betaincc = defop("betaincc", sps.betaincc, None, None,
                 Scale(lambda ans, a, b, x: -_beta_density(a, b, x)), jac=ELEMENTWISE,
                 nonlinear=True, reads=(None, None, (0, 1, 2)))


def _student_density(df, t):
    """Student's t density: the derivative of `stdtr(df, t)` w.r.t. `t`."""
    log_norm = gammaln(0.5 * (df + 1.0)) - gammaln(0.5 * df) - 0.5 * (log(df) + LOG_PI)
    return exp(log_norm - 0.5 * (df + 1.0) * log1p(t * t / df))


stdtr = defop("stdtr", sps.stdtr, None, Scale(lambda ans, df, t: _student_density(df, t)),
              jac=ELEMENTWISE, nonlinear=True, reads=(None, (0, 1)))


# -- logarithms and entropy ---------------------------------------------------------------------
xlogy = defop("xlogy", sps.xlogy, Scale(lambda ans, x, y: log(y)),
              Scale(lambda ans, x, y: _x_over(x, y)), jac=ELEMENTWISE, nonlinear=True,
              reads=((1,), (0, 1)))
xlog1py = defop("xlog1py", sps.xlog1py, Scale(lambda ans, x, y: log1p(y)),
                Scale(lambda ans, x, y: _x_over(x, 1.0 + y)), jac=ELEMENTWISE, nonlinear=True,
                reads=((1,), (0, 1)))
entr = unary("entr", sps.entr, lambda ans, x: -(log(x) + 1.0), reads=(0,))


# -- Bessel functions ---------------------------------------------------------------------------
# Derivatives by the recurrences I'_v = (I_{v-1} + I_{v+1}) / 2 and
# J'_v = (J_{v-1} - J_{v+1}) / 2 (also for Y); the exponentially scaled
# versions f(x) e^{-|x|} add -sign(x) f.
iv = defop("iv", sps.iv, None, Scale(lambda ans, v, x: 0.5 * (iv(v - 1.0, x) + iv(v + 1.0, x))),
           jac=ELEMENTWISE, nonlinear=True, reads=(None, (0, 1)))
ive = defop("ive", sps.ive, None,
            Scale(lambda ans, v, x: 0.5 * (ive(v - 1.0, x) + ive(v + 1.0, x)) - _sign(x) * ans),
            jac=ELEMENTWISE, nonlinear=True, reads=(None, ("ans", 0, 1)))
i0 = unary("i0", sps.i0, lambda ans, x: i1(x), reads=(0,))
i1 = unary("i1", sps.i1, lambda ans, x: 0.5 * (i0(x) + iv(2.0, x)), reads=(0,))
i0e = unary("i0e", sps.i0e, lambda ans, x: i1e(x) - _sign(x) * ans, reads=("ans", 0))
i1e = unary("i1e", sps.i1e, lambda ans, x: 0.5 * (i0e(x) + ive(2.0, x)) - _sign(x) * ans,
            reads=("ans", 0))
jv = defop("jv", sps.jv, None, Scale(lambda ans, v, x: 0.5 * (jv(v - 1.0, x) - jv(v + 1.0, x))),
           jac=ELEMENTWISE, nonlinear=True, reads=(None, (0, 1)))
j0 = unary("j0", sps.j0, lambda ans, x: -j1(x), reads=(0,))
j1 = unary("j1", sps.j1, lambda ans, x: 0.5 * (j0(x) - jv(2.0, x)), reads=(0,))
yn = defop("yn", sps.yn, None, Scale(lambda ans, n, x: 0.5 * (yn(n - 1, x) - yn(n + 1, x))),
           jac=ELEMENTWISE, nonlinear=True, reads=(None, (0, 1)))
y0 = unary("y0", sps.y0, lambda ans, x: -y1(x), reads=(0,))
y1 = unary("y1", sps.y1, lambda ans, x: 0.5 * (y0(x) - yn(2, x)), reads=(0,))


# -- reductions ---------------------------------------------------------------------------------
def _logsumexp_vjp(ans, x, axis=None, keepdims=False):
    shape = np.shape(unwrap(x))
    softmax = exp(x - reshape(ans, kept_shape(shape, axis)))
    return lambda g: spread(g, shape, axis) * softmax


def _logsumexp_jvp(t, ans, x, axis=None, keepdims=False):
    softmax = exp(x - reshape(ans, kept_shape(np.shape(unwrap(x)), axis)))
    return sum_(t * softmax, axis=axis, keepdims=keepdims)


logsumexp = defop("logsumexp", lambda x, axis=None, keepdims=False:
                  sps.logsumexp(x, axis=axis, keepdims=keepdims), _logsumexp_vjp,
                  jac=Reduction(), nonlinear=True, reads=(("ans", 0),),
                  jvp=(_logsumexp_jvp,))
