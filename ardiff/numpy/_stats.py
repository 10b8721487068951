"""Statistics of `ardiff.numpy`, composed from the table's ops.

Every function here is NumPy's own when no argument is traced.  On traced values:

* the NaN-ignoring reductions (`nansum`, `nanmean`, `nanvar`, `nanstd`, `nanmax`,
  `nanmin`, `nanprod`, `nancumsum`, `nancumprod`) replace NaNs by the neutral element
  of the reduction with `where`: a NaN entry gets gradient 0, and a slice of NaNs only
  gives NaN (or 0 for sums, 1 for products) as in NumPy;
* order statistics (`median`, `quantile`, `percentile`) sort with the stable
  `argsort` (read as a guard for compiled replays) and interpolate between the two
  neighbouring order statistics, so the gradient goes to those elements: for the
  median of an even number of values, half to each of the two middle ones; with ties
  the elements that the stable sort puts at those positions take it;
* `average`, `cov`, `corrcoef`, `ptp` and `trapezoid` are the textbook formulas
  in traced ops (weights without gradient in `cov`).
"""

from __future__ import annotations

import numpy as np

from ..graph import TracerBase, unwrap
from ..guards import concrete
from ..op import shape_of
from ..ops.elementwise import clip, sqrt, where
from ..ops.linalg import dot
from ..ops.reduce import cumprod, cumsum, max_, mean, min_, prod, sum_
from ._shape import (
    concatenate,
    diagonal,
    getitem,
    moveaxis,
    numpy_when_plain,
    reshape,
    squeeze,
    take_along_axis,
    transpose,
)


def axis_argument(axis):
    """A reduction's axis as the ops take it (a list becomes a tuple)."""
    return tuple(axis) if isinstance(axis, list) else axis


def _no_out(name, out):
    if out is not None:
        raise TypeError(f"ardiff.numpy.{name}: out= writes in place and cannot be traced.")


# -- NaN-ignoring reductions ------------------------------------------------------------
def _nan_mask(a) -> np.ndarray:
    """Where `a` is NaN (a guard for compiled replays)."""
    return np.asarray(concrete(np.isnan, a))


def _filled(a, fill):
    """`a` with its NaNs replaced by `fill` (gradient 0 there)."""
    mask = _nan_mask(a)
    return where(mask, fill, a) if mask.any() else a


@numpy_when_plain
def nansum(a, axis=None, dtype=None, out=None, keepdims=False, **kwargs):
    """Traced `numpy.nansum`: NaNs count as zero."""
    _no_out("nansum", out)
    return sum_(_filled(a, 0.0), axis=axis_argument(axis), keepdims=bool(keepdims))


def _count(mask, axis, keepdims) -> np.ndarray:
    return np.sum(~mask, axis=axis_argument(axis), keepdims=keepdims)


@numpy_when_plain
def nanmean(a, axis=None, dtype=None, out=None, keepdims=False, **kwargs):
    """Traced `numpy.nanmean`: the mean of the non-NaN values (NaN for a slice of NaNs)."""
    _no_out("nanmean", out)
    mask = _nan_mask(a)
    total = sum_(_filled(a, 0.0), axis=axis_argument(axis), keepdims=bool(keepdims))
    return total / _count(mask, axis, bool(keepdims))


@numpy_when_plain
def nanvar(a, axis=None, dtype=None, out=None, ddof=0, keepdims=False, **kwargs):
    """Traced `numpy.nanvar`: the variance of the non-NaN values."""
    _no_out("nanvar", out)
    mask = _nan_mask(a)
    filled = _filled(a, 0.0)  # no NaN in any recorded value
    mean_ = sum_(filled, axis=axis_argument(axis), keepdims=True) / _count(mask, axis, True)
    centred = where(mask, 0.0, filled - mean_) if mask.any() else filled - mean_
    squares = sum_(centred * centred, axis=axis_argument(axis), keepdims=bool(keepdims))
    return squares / np.maximum(_count(mask, axis, bool(keepdims)) - ddof, 0)


@numpy_when_plain
def nanstd(a, axis=None, dtype=None, out=None, ddof=0, keepdims=False, **kwargs):
    """Traced `numpy.nanstd`: `sqrt(nanvar)` (infinite gradient where it is 0)."""
    return sqrt(nanvar(a, axis=axis, ddof=ddof, keepdims=keepdims))


def _nan_extreme(op, a, axis, keepdims):
    """`op` (max or min) over the non-NaN values: each NaN is replaced by a copy of the
    first non-NaN value of its slice, which changes no extreme; where it ties, the share
    of the gradient it takes flows back to that value through the copy.  Every recorded
    value stays finite, and the positions only depend on the (guarded) NaN mask."""
    mask = _nan_mask(a)
    axis = axis_argument(axis)
    if not mask.any():
        return op(a, axis=axis, keepdims=bool(keepdims))
    flat, kept = _reduced_last(a, axis)
    flat_mask = np.asarray(concrete(np.isnan, flat))
    first = np.argmax(~flat_mask, axis=-1)[..., None]
    all_nan = flat_mask.all(axis=-1)
    copies = take_along_axis(flat, first, -1)
    if all_nan.any():  # a slice of NaNs: any finite stand-in, NaN put back at the end
        copies = where(all_nan[..., None], 0.0, copies)
    out = op(where(flat_mask, copies, flat), axis=-1)
    if all_nan.any():
        out = where(all_nan, np.nan, out)
    return reshape(out, kept) if keepdims else out


@numpy_when_plain
def nanmax(a, axis=None, out=None, keepdims=False, **kwargs):
    """Traced `numpy.nanmax` (ties share the gradient; NaN for a slice of NaNs)."""
    _no_out("nanmax", out)
    return _nan_extreme(max_, a, axis, keepdims)


@numpy_when_plain
def nanmin(a, axis=None, out=None, keepdims=False, **kwargs):
    """Traced `numpy.nanmin` (ties share the gradient; NaN for a slice of NaNs)."""
    _no_out("nanmin", out)
    return _nan_extreme(min_, a, axis, keepdims)


@numpy_when_plain
def nanprod(a, axis=None, dtype=None, out=None, keepdims=False, **kwargs):
    """Traced `numpy.nanprod`: NaNs count as one."""
    _no_out("nanprod", out)
    return prod(_filled(a, 1.0), axis=axis_argument(axis), keepdims=bool(keepdims))


@numpy_when_plain
def nancumsum(a, axis=None, dtype=None, out=None):
    """Traced `numpy.nancumsum`: NaNs count as zero."""
    _no_out("nancumsum", out)
    return cumsum(_filled(a, 0.0), axis=axis)


@numpy_when_plain
def nancumprod(a, axis=None, dtype=None, out=None):
    """Traced `numpy.nancumprod`: NaNs count as one."""
    _no_out("nancumprod", out)
    return cumprod(_filled(a, 1.0), axis=axis)


# -- order statistics -------------------------------------------------------------------
def _sorted_along_last(a, axis):
    """`(sorted values with the reduced axes flattened last, kept shape)`."""
    flat, kept = _reduced_last(a, axis)
    order = concrete(np.argsort, flat, axis=-1, kind="stable")
    return take_along_axis(flat, order, -1), kept


def _reduced_last(a, axis):
    """`(a with the reduced axes moved last and flattened into one, kept shape)`."""
    shape = shape_of(a)
    ndim = len(shape)
    if axis is None:
        axes = tuple(range(ndim))
    else:
        axes = tuple(sorted(ax % ndim for ax in np.atleast_1d(axis)))
    rest = tuple(i for i in range(ndim) if i not in axes)
    moved = transpose(a, rest + axes) if rest + axes != tuple(range(ndim)) else a
    flat = reshape(moved, tuple(shape[i] for i in rest) + (-1,))
    kept = tuple(1 if i in axes else n for i, n in enumerate(shape))
    return flat, kept


def _finish(values, q_shape, kept, keepdims):
    """Order statistics shaped `rest + q_shape` -> NumPy's `q_shape + result shape`."""
    nq = len(q_shape)
    if nq:
        ndim = len(shape_of(values))
        values = moveaxis(values, tuple(range(ndim - nq, ndim)), tuple(range(nq)))
    if keepdims:
        values = reshape(values, q_shape + kept)
    return values


def _order_statistics(a, q, axis, method, keepdims, name):
    """Quantiles `q` (in [0, 1]) of `a` along `axis`, NumPy's definitions."""
    q_plain = np.asarray(unwrap(q), dtype=np.float64)
    if np.any((q_plain < 0) | (q_plain > 1)):
        raise ValueError(f"ardiff.numpy.{name}: quantiles must be in the range [0, 1]")
    values, kept = _sorted_along_last(a, axis)
    n = shape_of(values)[-1]
    virtual = q_plain * (n - 1)
    below = np.clip(np.floor(virtual), 0, n - 1).astype(np.intp)
    above = np.clip(below + 1, 0, n - 1)
    if method == "lower":
        out = getitem(values, (Ellipsis, below))
    elif method == "higher":
        out = getitem(values, (Ellipsis, np.clip(np.ceil(virtual), 0, n - 1).astype(np.intp)))
    elif method == "nearest":
        out = getitem(values, (Ellipsis, np.around(virtual).astype(np.intp)))
    elif method in ("linear", "midpoint"):
        lo = getitem(values, (Ellipsis, below))
        hi = getitem(values, (Ellipsis, above))
        if method == "midpoint":
            t = np.where(virtual % 1 == 0, 0.0, 0.5)
        else:  # a traced q gets its gradient through t
            t = q * (n - 1) - below if isinstance(q, TracerBase) else virtual - below
        # NumPy interpolates from the nearer end (equal up to rounding); one formula
        # keeps every recorded node on the gradient's path
        exact = not isinstance(t, TracerBase) and not np.any(t)
        out = lo if exact else lo + (hi - lo) * t  # (no node with a zero gradient)
    else:
        raise ValueError(f"ardiff.numpy.{name}: method {method!r} is not supported on "
                         "traced values (linear, lower, higher, nearest, midpoint).")
    return _finish(out, q_plain.shape, kept, keepdims)


@numpy_when_plain
def quantile(a, q, axis=None, out=None, overwrite_input=False, method="linear",
             keepdims=False, *, weights=None, interpolation=None):
    """Traced `numpy.quantile` (methods linear, lower, higher, nearest, midpoint).

    With `method="linear"` the quantile is `v[i] + (v[i+1] - v[i]) t` between the
    sorted values at `i = floor(q (n - 1))`, `t = q (n - 1) - i`: its gradient goes
    to those two elements (weights `1 - t` and `t`) and, for a traced `q`, to `q`.
    """
    _no_out("quantile", out)
    if weights is not None or interpolation is not None:
        raise TypeError("ardiff.numpy.quantile: weights= and interpolation= are not "
                        "supported on traced values.")
    return _order_statistics(a, q, axis, method, keepdims, "quantile")


@numpy_when_plain
def percentile(a, q, axis=None, out=None, overwrite_input=False, method="linear",
               keepdims=False, *, weights=None, interpolation=None):
    """Traced `numpy.percentile`: `quantile(a, q / 100)` (see `quantile`)."""
    _no_out("percentile", out)
    if weights is not None or interpolation is not None:
        raise TypeError("ardiff.numpy.percentile: weights= and interpolation= are not "
                        "supported on traced values.")
    q = q / 100.0 if isinstance(q, TracerBase) else np.true_divide(q, 100)
    return _order_statistics(a, q, axis, method, keepdims, "percentile")


@numpy_when_plain
def median(a, axis=None, out=None, overwrite_input=False, keepdims=False):
    """Traced `numpy.median`: the middle sorted value, or the mean of the two middle
    ones for an even count (each then gets half of the gradient)."""
    _no_out("median", out)
    values, kept = _sorted_along_last(a, axis)
    n = shape_of(values)[-1]
    if n % 2:
        out = getitem(values, (Ellipsis, n // 2))
    else:
        out = mean(getitem(values, (Ellipsis, slice(n // 2 - 1, n // 2 + 1))), axis=-1)
    return _finish(out, (), kept, keepdims)


# -- moments and spreads --------------------------------------------------------------
@numpy_when_plain
def average(a, axis=None, weights=None, returned=False, *, keepdims=False):
    """Traced `numpy.average`: `sum(a * w) / sum(w)` (a mean without weights)."""
    axis = axis_argument(axis)
    if weights is None:
        avg = mean(a, axis=axis, keepdims=bool(keepdims))
        scale = np.asarray(np.size(unwrap(a)) / max(np.size(unwrap(avg)), 1),
                           dtype=np.result_type(unwrap(avg)))
    else:
        if shape_of(weights) != shape_of(a):
            if axis is None:
                raise TypeError("Axis must be specified when shapes of a and weights differ.")
            axes = tuple(np.atleast_1d(axis) % len(shape_of(a)))
            if shape_of(weights) != tuple(shape_of(a)[ax] for ax in axes):
                raise ValueError("Shape of weights must be consistent with shape of a "
                                 "along specified axis.")
            weights = reshape(weights, tuple(shape_of(a)[i] if i in axes else 1
                                             for i in range(len(shape_of(a)))))
        scale = sum_(weights * np.ones(shape_of(a)), axis=axis, keepdims=bool(keepdims))
        avg = sum_(a * weights, axis=axis, keepdims=bool(keepdims)) / scale
    if returned:
        if shape_of(scale) != shape_of(avg):
            scale = scale * np.ones(shape_of(avg))
        return avg, scale
    return avg


@numpy_when_plain
def ptp(a, axis=None, out=None, keepdims=False):
    """Traced `numpy.ptp`: `max - min` (ties share the gradient)."""
    _no_out("ptp", out)
    axis = axis_argument(axis)
    return max_(a, axis=axis, keepdims=bool(keepdims)) - min_(a, axis=axis,
                                                              keepdims=bool(keepdims))


def _as_2d(x):
    shape = shape_of(x)
    return reshape(x, (1,) * (2 - len(shape)) + shape) if len(shape) < 2 else x


@numpy_when_plain
def cov(m, y=None, rowvar=True, bias=False, ddof=None, fweights=None, aweights=None, *,
        dtype=None):
    """Traced `numpy.cov` (the weights `fweights`/`aweights` carry no gradient)."""
    if len(shape_of(m)) > 2:
        raise ValueError("m has more than 2 dimensions")
    x = _as_2d(m)
    if not rowvar and shape_of(x)[0] != 1:
        x = transpose(x)
    if y is not None:
        y = _as_2d(y)
        if not rowvar and shape_of(y)[0] != 1:
            y = transpose(y)
        x = concatenate((x, y), axis=0)
    if ddof is None:
        ddof = 0 if bias else 1
    w = None
    if fweights is not None:
        w = np.asarray(unwrap(fweights), dtype=float)
    if aweights is not None:
        aw = np.asarray(unwrap(aweights), dtype=float)
        w = aw if w is None else w * aw
    n = shape_of(x)[1]
    if w is None:
        avg = mean(x, axis=1)
        fact = n - ddof
    else:
        w_sum = float(np.sum(w))
        avg = sum_(x * w, axis=1) / w_sum
        if ddof == 0:
            fact = w_sum
        elif aweights is None:
            fact = w_sum - ddof
        else:
            fact = w_sum - ddof * float(np.sum(w * aw)) / w_sum
    fact = max(fact, 0.0)
    centred = x - reshape(avg, (-1, 1))
    weighted = centred if w is None else centred * w
    return squeeze(dot(centred, transpose(weighted)) * (1.0 / fact))


@numpy_when_plain
def corrcoef(x, y=None, rowvar=True, *, dtype=None):
    """Traced `numpy.corrcoef`: `cov / sqrt(outer(var, var))`, clipped to [-1, 1] as
    in NumPy (the diagonal, 1 up to rounding, has gradient 0 there)."""
    c = cov(x, y, rowvar)
    if len(shape_of(c)) == 0:
        return c / c
    std = sqrt(diagonal(c))
    c = c / reshape(std, (-1, 1))
    c = c / reshape(std, (1, -1))
    return clip(c, -1.0, 1.0)


@numpy_when_plain
def trapezoid(y, x=None, dx=1.0, axis=-1):
    """Traced `numpy.trapezoid`: `sum(d * (y[1:] + y[:-1]) / 2)` along `axis`, with
    gradients with respect to `y` and to the sample points `x` (or `dx`)."""
    ndim = len(shape_of(y))
    axis %= ndim
    upper = (slice(None),) * axis + (slice(1, None),)
    lower = (slice(None),) * axis + (slice(None, -1),)
    if x is None:
        d = dx
    elif len(shape_of(x)) == 1:
        d = getitem(x, slice(1, None)) - getitem(x, slice(None, -1))
        d = reshape(d, tuple(-1 if i == axis else 1 for i in range(ndim)))
    else:
        d = getitem(x, upper) - getitem(x, lower)
    return sum_(d * (getitem(y, upper) + getitem(y, lower)) / 2.0, axis=axis)
