"""`ardiff.scipy.special`: traced functions of `scipy.special`, under SciPy's names.

Elementwise functions are ops of the table (`ardiff.ops.special`); `softmax`,
`log_softmax`, `multigammaln` and `logsumexp` with weights `b=` are composed from
them here.  `scipy.special` ufuncs called on traced values dispatch to the
functions of the same name below (see `__all__`).

Some arguments carry no gradient: the orders `n` and `v` of `polygamma`, `iv`,
`ive`, `jv`/`jn`, `yn`; `a` of `gammainc`/`gammaincc`; `a`, `b` of
`betainc`/`betaincc`; `df` of `stdtr`.
"""

from __future__ import annotations

import numpy as _np
import scipy.special as _sps

from ..graph import unwrap as _unwrap
from ..numpy import exp as _exp
from ..numpy import log as _log
from ..numpy import reshape as _reshape
from ..numpy import sinc  # noqa: F401  (scipy.special.sinc is numpy.sinc)
from ..numpy import sum as _sum
from ..numpy import where as _where
from ..ops.axes import kept_shape as _kept_shape
from ..ops.special import (  # noqa: F401
    beta,
    betainc,
    betaincc,
    betaln,
    digamma,
    entr,
    erf,
    erfc,
    erfcinv,
    erfinv,
    expit,
    gamma,
    gammainc,
    gammaincc,
    gammaln,
    gammasgn,
    i0,
    i0e,
    i1,
    i1e,
    iv,
    ive,
    j0,
    j1,
    jv,
    log_ndtr,
    logit,
    ndtr,
    ndtri,
    polygamma,
    rgamma,
    stdtr,
    xlog1py,
    xlogy,
    y0,
    y1,
    yn,
)

# ops whose namespace wrapper below keeps the SciPy name: imported under a private alias
from ..ops.special import logsumexp as _logsumexp

#: `scipy.special.psi` is `digamma`.
psi = digamma
#: `scipy.special.jn` is `jv` (Bessel function of the first kind, real order `v`).
jn = jv


def _axis(axis):
    return tuple(axis) if isinstance(axis, list) else axis


def logsumexp(a, axis=None, b=None, keepdims=False, return_sign=False):
    """Traced `scipy.special.logsumexp`: `log(sum(b * exp(a)))` over `axis`.

    Parameters
    ----------
    a : array_like
        Input (traced or plain).
    axis : None or int or tuple of ints
        Axes summed over (default all).
    b : array_like, optional
        Weights, broadcast against `a` (traced or plain; differentiable).
    keepdims : bool
        Keep the reduced axes with length one.
    return_sign : bool
        Also return the sign of the sum (a plain array: it has no derivative);
        without it, a negative sum gives NaN, as in SciPy.

    Returns
    -------
    value : traced or plain array
        `log |sum(b * exp(a))|`.
    sign : ndarray
        Only with `return_sign=True`.
    """
    axis = _axis(axis)
    if b is None:
        out = _logsumexp(a, axis=axis, keepdims=keepdims)
        if not return_sign:
            return out
        return out, _sps.logsumexp(_unwrap(a), axis=axis, keepdims=keepdims,
                                   return_sign=True)[1]
    plain, sign = _sps.logsumexp(_unwrap(a), axis=axis, b=_unwrap(b), keepdims=keepdims,
                                 return_sign=True)
    # shift by the largest exponent among the weighted terms (a constant: no derivative)
    raw_a, raw_b = _np.broadcast_arrays(_unwrap(a), _unwrap(b))
    shift = _np.max(_np.where(raw_b != 0, raw_a, -_np.inf), axis=axis, keepdims=True)
    shift = _np.where(_np.isfinite(shift), shift, 0.0)
    total = _sum(b * _exp(a - shift), axis=axis, keepdims=True)
    negative = _np.asarray(_unwrap(total) < 0)
    magnitude = total * _np.where(negative, -1.0, 1.0) if _np.any(negative) else total
    out = _reshape(_log(magnitude) + shift, _np.shape(plain))
    if return_sign:
        return out, sign
    if _np.any(negative):
        out = _where(_np.reshape(negative, _np.shape(plain)), _np.nan, out)
    return out


def log_softmax(x, axis=None):
    """Traced `scipy.special.log_softmax`: `x - logsumexp(x, axis, keepdims=True)`."""
    axis = _axis(axis)
    # SciPy's logsumexp keeps a 0-d input as shape (1,): reshape to the kept shape
    kept = _reshape(_logsumexp(x, axis=axis, keepdims=True), _kept_shape(_np.shape(_unwrap(x)),
                                                                          axis))
    return x - kept


def softmax(x, axis=None):
    """Traced `scipy.special.softmax`: `exp(log_softmax(x, axis))`."""
    return _exp(log_softmax(x, axis))


def multigammaln(a, d):
    """Traced `scipy.special.multigammaln`: the log of the multivariate gamma function.

    `d (d-1)/4 log(pi) + sum_{j=0}^{d-1} gammaln(a - j/2)`, differentiable w.r.t. `a`;
    `d` is a positive integer.  Like SciPy, raises ValueError unless `a > (d-1)/2`.
    """
    d = int(d)
    if d < 1 or _np.any(_np.asarray(_unwrap(a)) <= 0.5 * (d - 1)):
        raise ValueError(f"condition a ({_np.min(_unwrap(a)):f}) > 0.5 * (d-1) "
                         f"({0.5 * (d - 1):f}) not met")
    total = gammaln(a)
    for j in range(1, d):
        total = total + gammaln(a - 0.5 * j)
    return total + 0.25 * d * (d - 1) * float(_np.log(_np.pi))


__all__ = ["beta", "betainc", "betaincc", "betaln", "digamma", "entr", "erf", "erfc",
           "erfcinv", "erfinv", "expit", "gamma", "gammainc", "gammaincc", "gammaln", "gammasgn",
           "i0", "i0e", "i1", "i1e", "iv", "ive", "j0", "j1", "jn", "jv", "log_ndtr",
           "log_softmax", "logit", "logsumexp", "multigammaln", "ndtr", "ndtri", "polygamma",
           "psi", "rgamma", "sinc", "softmax", "stdtr", "xlog1py", "xlogy", "y0", "y1", "yn"]
