"""`ardiff.scipy.stats`: traced densities and distribution functions of `scipy.stats`.

Objects named like SciPy's distributions, with SciPy's call signatures:
`norm.logpdf(x, loc=0, scale=1)`, `t.cdf(x, df, loc=0, scale=1)`,
`poisson.logpmf(k, mu, loc=0)`, `multivariate_normal.logpdf(x, mean, cov)`, ...
Everything is composed from the ops of `ardiff.ops.special` and `ardiff.numpy`, so
gradients of every order flow to the data and to every float parameter, with these
exceptions, where the derivative has no closed form in special functions (a traced
value there raises a `TypeError` naming the op when the gradient is taken):

* the shape parameters in `cdf`, `logcdf`, `sf` and `logsf` of `t` (`df`),
  `gamma` (`a`), `beta` (`a`, `b`) and `chi2` (`df`); their `pdf` and `logpdf`
  differentiate w.r.t. everything.

The distribution functions of `poisson` and `binom` are step functions of `k` and `n`:
their derivatives w.r.t. those are 0 (w.r.t. `mu` and `p` they are exact); `logpmf`
differentiates `k` and `n` through the continuous extension `gammaln(k + 1)`, ...

Calling a distribution freezes its parameters, as in SciPy (`norm(0.0, 2.0).logpdf(x)`).
`rvs` passes through to SciPy on plain values (samples carry no gradient).
`multivariate_normal` takes a full covariance (or a scalar, or a vector of variances),
and has `logpdf` and `pdf` only.
"""

from __future__ import annotations

import sys as _sys
import types as _types

import numpy as _np

from ..graph import TracerBase as _TracerBase
from ..graph import unwrap as _unwrap
from ..numpy import absolute as _abs
from ..numpy import arctan as _arctan
from ..numpy import concatenate as _concatenate
from ..numpy import diag as _diag
from ..numpy import exp as _exp
from ..numpy import expm1 as _expm1
from ..numpy import log as _log
from ..numpy import log1p as _log1p
from ..numpy import logaddexp as _logaddexp
from ..numpy import matmul as _matmul
from ..numpy import reshape as _reshape
from ..numpy import sum as _sum
from ..numpy import swapaxes as _swapaxes
from ..numpy import where as _where
from ..numpy.linalg import slogdet as _slogdet
from ..numpy.linalg import solve as _solve
from ..ops import special as _sp

_LOG_2PI = float(_np.log(2.0 * _np.pi))
_LOG_PI = float(_np.log(_np.pi))
_LOG_2 = float(_np.log(2.0))


def _value(x):
    """A traced value as it is; anything else as a float array (SciPy accepts lists)."""
    if isinstance(x, _TracerBase):
        return x
    return _np.asarray(x, dtype=_np.float64)


def _plain(x):
    return _np.asarray(_unwrap(x))


def _select(inside, value_of, z, safe, outside):
    """`value_of(z)` where the plain mask `inside` holds, `outside` elsewhere.

    Outside, `z` is replaced by `safe` first, so that neither the value nor its
    derivative (which `where` discards there) overflows or warns.
    """
    inside = _np.asarray(inside)
    if inside.all():
        return value_of(z)
    return _where(inside, value_of(_where(inside, z, safe)), outside)


def _log_positive(v):
    """`log(v)`, -inf without a warning where `v` is 0 (a probability that underflowed)."""
    return _select(_plain(v) > 0, _log, v, 1.0, -_np.inf)


class _Frozen:
    """A distribution with its parameters bound, as `scipy.stats.norm(loc, scale)` gives."""

    def __init__(self, dist, args, kwds):
        self.dist, self.args, self.kwds = dist, args, kwds

    def __getattr__(self, method):
        if method.startswith("_") or not hasattr(self.dist, method):
            raise AttributeError(method)
        bound = getattr(self.dist, method)
        return lambda *x, **kwds: bound(*x, *self.args, **{**self.kwds, **kwds})

    def rvs(self, size=None, random_state=None):
        """Samples from SciPy (plain values)."""
        kwds = {k: v for k, v in self.kwds.items() if k != "allow_singular"}
        return self.dist.rvs(*self.args, size=size, random_state=random_state, **kwds)


class _Distribution:
    """Parameter parsing, freezing and `rvs`, shared by every distribution."""

    #: Names of the shape parameters, in SciPy's order.
    shapes: tuple = ()
    #: Names of the trailing parameters and their defaults.
    trailing: tuple = (("loc", 0.0), ("scale", 1.0))

    def __init__(self, name: str):
        self.name = name

    def __repr__(self) -> str:
        return f"<ardiff.scipy.stats.{self.name}>"

    def __call__(self, *args, **kwds):
        """Freeze the parameters: `norm(loc, scale).logpdf(x)`."""
        return _Frozen(self, args, kwds)

    def _parse(self, args, kwds) -> list:
        names = self.shapes + tuple(n for n, _ in self.trailing)
        if len(args) > len(names):
            raise TypeError(f"{self.name}: too many parameters ({len(args)} given, "
                            f"{len(names)} expected: {', '.join(names)})")
        values = dict(zip(names, args))
        for key, value in kwds.items():
            if key not in names or key in values:
                raise TypeError(f"{self.name}: unexpected or repeated parameter {key!r}")
            values[key] = value
        for key, default in self.trailing:
            values.setdefault(key, default)
        missing = [n for n in self.shapes if n not in values]
        if missing:
            raise TypeError(f"{self.name}: missing shape parameter(s) {', '.join(missing)}")
        return [_value(values[n]) for n in names]

    def rvs(self, *args, **kwds):
        """Samples from `scipy.stats.<name>.rvs` on the plain parameters (no gradient)."""
        import scipy.stats  # slow to import (0.6-1.3 s): only sampling needs it

        args = [_unwrap(a) for a in args]
        kwds = {k: _unwrap(v) for k, v in kwds.items()}
        return getattr(scipy.stats, self.name).rvs(*args, **kwds)


class _Continuous(_Distribution):
    """A location-scale family: `f((x - loc) / scale) / scale` from a standard form.

    Subclasses define the standard `_logpdf(z, *shapes)` and `_cdf`, `_sf` (and, where
    a better formula exists, `_logcdf`, `_logsf`), and the standard support
    `[lower, upper]` with a point `safe` inside it.
    """

    lower, upper, safe = -_np.inf, _np.inf, 0.0

    def _standard(self, x, args, kwds):
        *shapes, loc, scale = self._parse(args, kwds)
        z = (_value(x) - loc) / scale
        zr = _plain(z)
        return z, shapes, scale, (zr >= self.lower) & (zr <= self.upper), zr < self.lower

    def logpdf(self, x, *args, **kwds):
        """Log of the probability density at `x`."""
        z, shapes, scale, inside, _ = self._standard(x, args, kwds)
        return _select(inside, lambda z: self._logpdf(z, *shapes), z, self.safe,
                       -_np.inf) - _log(scale)

    def pdf(self, x, *args, **kwds):
        """Probability density at `x`."""
        return _exp(self.logpdf(x, *args, **kwds))

    def _tail(self, method, x, args, kwds, below, above):
        z, shapes, _, inside, under = self._standard(x, args, kwds)
        return _select(inside, lambda z: getattr(self, method)(z, *shapes), z, self.safe,
                       _np.where(under, below, above))

    def cdf(self, x, *args, **kwds):
        """Cumulative distribution function at `x`."""
        return self._tail("_cdf", x, args, kwds, 0.0, 1.0)

    def sf(self, x, *args, **kwds):
        """Survival function `1 - cdf` at `x`."""
        return self._tail("_sf", x, args, kwds, 1.0, 0.0)

    def logcdf(self, x, *args, **kwds):
        """Log of the cumulative distribution function at `x`."""
        return self._tail("_logcdf", x, args, kwds, -_np.inf, 0.0)

    def logsf(self, x, *args, **kwds):
        """Log of the survival function at `x`."""
        return self._tail("_logsf", x, args, kwds, 0.0, -_np.inf)

    def _logcdf(self, z, *shapes):
        return _log_positive(self._cdf(z, *shapes))

    def _logsf(self, z, *shapes):
        return _log_positive(self._sf(z, *shapes))


class _Norm(_Continuous):
    def _logpdf(self, z):
        return -0.5 * (z * z) - 0.5 * _LOG_2PI

    def _cdf(self, z):
        return _sp.ndtr(z)

    def _sf(self, z):
        return _sp.ndtr(-z)

    def _logcdf(self, z):
        return _sp.log_ndtr(z)

    def _logsf(self, z):
        return _sp.log_ndtr(-z)


class _T(_Continuous):
    shapes = ("df",)

    def _logpdf(self, z, df):
        return (_sp.gammaln(0.5 * (df + 1.0)) - _sp.gammaln(0.5 * df) - 0.5 * (_log(df) + _LOG_PI)
                - 0.5 * (df + 1.0) * _log1p(z * z / df))

    def _cdf(self, z, df):
        return _sp.stdtr(df, z)

    def _sf(self, z, df):
        return _sp.stdtr(df, -z)


class _Cauchy(_Continuous):
    def _logpdf(self, z):
        return -_LOG_PI - _log1p(z * z)

    def _cdf(self, z):
        return 0.5 + _arctan(z) * (1.0 / _np.pi)

    def _sf(self, z):
        return 0.5 - _arctan(z) * (1.0 / _np.pi)


class _Logistic(_Continuous):
    def _logpdf(self, z):
        return -z - 2.0 * _logaddexp(0.0, -z)

    def _cdf(self, z):
        return _sp.expit(z)

    def _sf(self, z):
        return _sp.expit(-z)

    def _logcdf(self, z):
        return -_logaddexp(0.0, -z)

    def _logsf(self, z):
        return -_logaddexp(0.0, z)


class _Laplace(_Continuous):
    def _logpdf(self, z):
        return -_LOG_2 - _abs(z)

    @staticmethod
    def _halves(z):
        """The plain mask `z <= 0` and `z` clamped to each half (nothing overflows)."""
        left = _plain(z) <= 0
        return left, _where(left, z, 0.0), _where(left, 0.0, z)

    def _cdf(self, z):
        left, zl, zr = self._halves(z)
        return _where(left, 0.5 * _exp(zl), 1.0 - 0.5 * _exp(-zr))

    def _sf(self, z):
        return self._cdf(-z)

    def _logcdf(self, z):
        left, zl, zr = self._halves(z)
        return _where(left, zl - _LOG_2, _log1p(-0.5 * _exp(-zr)))

    def _logsf(self, z):
        return self._logcdf(-z)


class _Expon(_Continuous):
    lower, safe = 0.0, 1.0

    def _logpdf(self, z):
        return -z

    def _cdf(self, z):
        return -_expm1(-z)

    def _sf(self, z):
        return _exp(-z)

    def _logcdf(self, z):
        return _select(_plain(z) > 0, lambda z: _log(-_expm1(-z)), z, 1.0, -_np.inf)

    def _logsf(self, z):
        return -z


class _Gamma(_Continuous):
    shapes = ("a",)
    lower, safe = 0.0, 1.0

    def _logpdf(self, z, a):
        return _sp.xlogy(a - 1.0, z) - z - _sp.gammaln(a)

    def _cdf(self, z, a):
        return _sp.gammainc(a, z)

    def _sf(self, z, a):
        return _sp.gammaincc(a, z)


class _Chi2(_Continuous):
    shapes = ("df",)
    lower, safe = 0.0, 1.0

    def _logpdf(self, z, df):
        half = 0.5 * df
        return _sp.xlogy(half - 1.0, z) - 0.5 * z - _sp.gammaln(half) - _LOG_2 * half

    def _cdf(self, z, df):
        return _sp.gammainc(0.5 * df, 0.5 * z)

    def _sf(self, z, df):
        return _sp.gammaincc(0.5 * df, 0.5 * z)


class _Beta(_Continuous):
    shapes = ("a", "b")
    lower, upper, safe = 0.0, 1.0, 0.5

    def _logpdf(self, z, a, b):
        return _sp.xlog1py(b - 1.0, -z) + _sp.xlogy(a - 1.0, z) - _sp.betaln(a, b)

    def _cdf(self, z, a, b):
        return _sp.betainc(a, b, z)

    def _sf(self, z, a, b):
        return _sp.betaincc(a, b, z)


class _Discrete(_Distribution):
    """Integer-valued distributions shifted by an integer `loc`."""

    trailing = (("loc", 0.0),)

    def _standard(self, k, args, kwds):
        *shapes, loc = self._parse(args, kwds)
        k = _value(k) - loc
        return k, shapes, _plain(k)

    def logpmf(self, k, *args, **kwds):
        """Log of the probability mass at `k` (-inf off the integers of the support)."""
        k, shapes, kr = self._standard(k, args, kwds)
        inside = (kr == _np.floor(kr)) & self._inside(kr, *map(_plain, shapes))
        return _select(inside, lambda k: self._logpmf(k, *shapes), k, 0.0, -_np.inf)

    def pmf(self, k, *args, **kwds):
        """Probability mass at `k`."""
        return _exp(self.logpmf(k, *args, **kwds))

    def _tail(self, k, args, kwds, upper):
        k, shapes, kr = self._standard(k, args, kwds)
        low, high = self._range(*map(_plain, shapes))
        # a step function of k: no derivative w.r.t. k (nor n), only w.r.t. the rates
        floor = _np.floor(kr)
        inside = (kr >= low) & (kr < high)
        below = 0.0 if not upper else 1.0
        outside = _np.where(kr < low, below, 1.0 - below)
        method = self._sf if upper else self._cdf
        return _select(inside, lambda f: method(f, *shapes), floor, low, outside)

    def cdf(self, k, *args, **kwds):
        """`P(K <= k)`."""
        return self._tail(k, args, kwds, False)

    def sf(self, k, *args, **kwds):
        """`P(K > k)`."""
        return self._tail(k, args, kwds, True)

    def logcdf(self, k, *args, **kwds):
        """Log of `cdf`."""
        return _log_positive(self.cdf(k, *args, **kwds))

    def logsf(self, k, *args, **kwds):
        """Log of `sf`."""
        return _log_positive(self.sf(k, *args, **kwds))


class _Poisson(_Discrete):
    shapes = ("mu",)

    @staticmethod
    def _inside(k, mu):
        return k >= 0

    @staticmethod
    def _range(mu):
        return 0.0, _np.inf

    def _logpmf(self, k, mu):
        return _sp.xlogy(k, mu) - _sp.gammaln(k + 1.0) - mu

    def _cdf(self, k, mu):
        return _sp.gammaincc(_plain(k) + 1.0, mu)

    def _sf(self, k, mu):
        return _sp.gammainc(_plain(k) + 1.0, mu)


class _Binom(_Discrete):
    shapes = ("n", "p")

    @staticmethod
    def _inside(k, n, p):
        return (k >= 0) & (k <= n)

    @staticmethod
    def _range(n, p):
        return 0.0, n

    def _logpmf(self, k, n, p):
        return (_sp.gammaln(n + 1.0) - _sp.gammaln(k + 1.0) - _sp.gammaln(n - k + 1.0)
                + _sp.xlogy(k, p) + _sp.xlog1py(n - k, -p))

    def _cdf(self, k, n, p):
        k, n = _plain(k), _plain(n)
        return _sp.betainc(n - k, k + 1.0, 1.0 - p)

    def _sf(self, k, n, p):
        k, n = _plain(k), _plain(n)
        return _sp.betainc(k + 1.0, n - k, p)


class _Dirichlet(_Distribution):
    """`dirichlet.logpdf(x, alpha)`: `x` has the `K` components along its first axis."""

    trailing = ()
    shapes = ("alpha",)

    def _parts(self, x, alpha):
        alpha, x = _value(alpha), _value(x)
        ar, xr = _plain(alpha), _plain(x)
        if ar.ndim != 1 or ar.size < 2 or _np.any(ar <= 0):
            raise ValueError("Parameter vector 'a' must be one dimensional, of length at "
                             "least 2, with all entries > 0.")
        if xr.shape[0] == ar.size - 1:  # the last component is implied
            x = _concatenate([x, 1.0 - _sum(x, axis=0, keepdims=True)], axis=0)
            xr = _plain(x)
        if xr.shape[0] != ar.size:
            raise ValueError(f"Vector 'x' must have either the same number of entries as, "
                             f"or one entry fewer than, parameter vector 'a', but alpha.shape "
                             f"= {ar.shape} and x.shape = {xr.shape}.")
        if _np.any(xr < 0) or _np.any(xr > 1):
            raise ValueError("Each entry in 'x' must be in [0, 1].")
        if _np.any(_np.abs(_np.sum(xr, axis=0) - 1.0) > 10e-10):
            raise ValueError("The input vector 'x' must lie within the normal simplex.")
        return x, alpha, ar

    def logpdf(self, x, alpha):
        """Log density of the Dirichlet distribution at `x` (components along axis 0)."""
        x, alpha, ar = self._parts(x, alpha)
        column = _reshape(alpha - 1.0, (ar.size,) + (1,) * (_plain(x).ndim - 1))
        log_beta = _sum(_sp.gammaln(alpha)) - _sp.gammaln(_sum(alpha))
        return _sum(_sp.xlogy(column, x), axis=0) - log_beta

    def pdf(self, x, alpha):
        """Density of the Dirichlet distribution at `x`."""
        return _exp(self.logpdf(x, alpha))


class _MultivariateNormal(_Distribution):
    """`multivariate_normal.logpdf(x, mean=None, cov=1)`, with a full covariance.

    The log density is `-(d log 2π + log det Σ + (x-μ)ᵀ Σ⁻¹ (x-μ)) / 2`, through
    `slogdet` and `solve`; its gradient w.r.t. `cov` is the symmetric
    `(Σ⁻¹ (x-μ)(x-μ)ᵀ Σ⁻¹ - Σ⁻¹) / 2` per point (SciPy's density reads the lower
    triangle only; a covariance built symmetric from parameters gets the same
    gradients either way).  With `allow_singular=True` a singular (positive
    semidefinite) covariance uses SciPy's pseudo-determinant and pseudo-inverse, and
    points off its support get -inf; gradients then flow to `x` and `mean` only (a
    traced singular covariance raises `NotImplementedError`).
    """

    trailing = (("mean", None), ("cov", 1.0), ("allow_singular", False))

    def __call__(self, mean=None, cov=1.0, allow_singular=False, seed=None):
        return _Frozen(self, (), {"mean": mean, "cov": cov, "allow_singular": allow_singular})

    def _parse(self, args, kwds):
        names = [n for n, _ in self.trailing]
        values = dict(self.trailing)
        values.update(zip(names, args))
        values.update(kwds)
        return values["mean"], values["cov"], values["allow_singular"]

    @staticmethod
    def _covariance(cov, dim, allow_singular=False):
        """The full covariance matrix (from a scalar or variances too), checked.

        Returns the matrix, and None or, for a singular one under `allow_singular`, SciPy's
        pseudo-inverse factor, log pseudo-determinant, rank, null-space basis and tolerance.
        """
        cov = _value(cov)
        cr = _plain(cov)
        if dim is None:
            dim = 1 if cr.ndim == 0 else cr.shape[0]
        if cr.ndim == 0:
            cov = cov * _np.eye(dim)
        elif cr.ndim == 1:
            cov = _diag(cov)
        cr = _plain(cov)
        if cr.shape != (dim, dim):
            raise ValueError(f"Array 'cov' must be of shape ({dim}, {dim}); got {cr.shape}.")
        try:
            _np.linalg.cholesky(cr)
            return cov, None
        except _np.linalg.LinAlgError:
            if not allow_singular:
                raise ValueError("the input matrix must be symmetric positive definite "
                                 "(pass allow_singular=True for a singular one)") from None
        if isinstance(cov, _TracerBase):
            raise NotImplementedError("multivariate_normal: no gradient w.r.t. a singular "
                                      "covariance matrix")
        spectrum, vectors = _np.linalg.eigh(cr)
        tol = 1e6 * _np.finfo(_np.float64).eps * _np.max(_np.abs(spectrum))
        if _np.min(spectrum) < -tol:
            raise ValueError("the input matrix must be positive semidefinite")
        keep = spectrum > tol
        factor = vectors[:, keep] / _np.sqrt(spectrum[keep])
        return cov, (factor, float(_np.sum(_np.log(spectrum[keep]))), int(keep.sum()),
                     vectors[:, ~keep], tol)

    def logpdf(self, x, *args, **kwds):
        """Log density at the points `x` (shape `(..., d)`, or `(d,)` for one point)."""
        mean, cov, allow_singular = self._parse(args, kwds)
        if mean is not None:
            mean = _value(mean)
        cov, pseudo = self._covariance(cov, None if mean is None else _plain(mean).size,
                                       allow_singular)
        dim = _plain(cov).shape[0]
        if mean is None:
            mean = _np.zeros(dim)
        x = _value(x)
        xr = _plain(x)
        if xr.ndim == 0:
            x = _reshape(x, (1,))
        elif xr.ndim == 1:
            x = _reshape(x, (-1, 1) if dim == 1 else (1, dim))
        points = _plain(x).shape[:-1]
        dev = _reshape(x - _reshape(mean, (dim,)), (-1, dim))
        if pseudo is None:
            solved = _swapaxes(_solve(cov, _swapaxes(dev, 0, 1)), 0, 1)
            out = -0.5 * (_sum(dev * solved, axis=1) + _slogdet(cov)[1] + dim * _LOG_2PI)
        else:
            factor, log_pdet, rank, null, tol = pseudo
            projected = _matmul(dev, factor)
            out = -0.5 * (_sum(projected * projected, axis=1) + log_pdet + rank * _LOG_2PI)
            inside = _np.linalg.norm(_plain(dev) @ null, axis=-1) < tol
            if not inside.all():
                out = _where(inside, out, -_np.inf)
        return _reshape(out, tuple(n for n in points if n != 1))

    def pdf(self, x, *args, **kwds):
        """Density at the points `x`."""
        return _exp(self.logpdf(x, *args, **kwds))

    def entropy(self, mean=None, cov=1.0, allow_singular=False):
        """Differential entropy `(d (1 + log 2π) + log det Σ) / 2` (w.r.t. `cov`)."""
        cov, pseudo = self._covariance(cov, None if mean is None else _plain(mean).size,
                                       allow_singular)
        if pseudo is not None:
            return 0.5 * (pseudo[2] * (1.0 + _LOG_2PI) + pseudo[1])
        return 0.5 * (_plain(cov).shape[0] * (1.0 + _LOG_2PI) + _slogdet(cov)[1])


norm = _Norm("norm")
t = _T("t")
cauchy = _Cauchy("cauchy")
logistic = _Logistic("logistic")
laplace = _Laplace("laplace")
expon = _Expon("expon")
gamma = _Gamma("gamma")
chi2 = _Chi2("chi2")
beta = _Beta("beta")
poisson = _Poisson("poisson")
binom = _Binom("binom")
dirichlet = _Dirichlet("dirichlet")
multivariate_normal = _MultivariateNormal("multivariate_normal")

__all__ = ["beta", "binom", "cauchy", "chi2", "dirichlet", "expon", "gamma", "laplace",
           "logistic", "multivariate_normal", "norm", "poisson", "t"]


def _as_module(name: str, dist) -> _types.ModuleType:
    module = _types.ModuleType(f"{__name__}.{name}", dist.__doc__)
    for attr in dir(dist):
        if not attr.startswith("_"):
            setattr(module, attr, getattr(dist, attr))
    return module


# autograd's spelling `import autograd.scipy.stats.norm as norm` works here too: the
# import system finds these entries (as `import os.path` finds os's), and the name is
# then bound to the distribution itself (an attribute of this module).
for _name in __all__:
    _sys.modules.setdefault(f"{__name__}.{_name}", _as_module(_name, globals()[_name]))
