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

import functools
import inspect

import numpy as np

from ..graph import TracerBase, unwrap
from ..guards import concrete
from ..op import shape_of
from ..ops.complex_parts import conj_if_complex
from ..ops.elementwise import clip, sqrt, where
from ..ops.linalg import dot
from ..ops.reduce import centre, cumprod, cumsum, max_, mean, min_, prod, std, sum_, var
from ._shape import (
    concatenate,
    contains_tracer,
    diagonal,
    getitem,
    moveaxis,
    numpy_when_plain,
    reshape,
    squeeze,
    stack,
    take_along_axis,
    transpose,
)


def axis_argument(axis):
    """A reduction's axis as the ops take it (a list becomes a tuple)."""
    return tuple(axis) if isinstance(axis, list) else axis


def as_array(a):
    """`a`, with a (nested) list or tuple holding traced values stacked into one traced
    array (`np.median([x, 1.0, y])`), as NumPy would convert it."""
    if isinstance(a, (list, tuple)) and contains_tracer(a):
        return stack([as_array(item) for item in a])
    return a


def statistic(*array_parameters: str):
    """Decorator: NumPy's namesake when nothing is traced (`numpy_when_plain`); else the
    function, with the named parameters converted by `as_array` (lists of traced values)."""
    def decorate(fun):
        signature = inspect.signature(fun)

        @functools.wraps(fun)
        def traced(*args, **kwargs):
            bound = signature.bind(*args, **kwargs)
            for name in array_parameters:
                if name in bound.arguments:
                    bound.arguments[name] = as_array(bound.arguments[name])
            return fun(*bound.args, **bound.kwargs)
        return numpy_when_plain(traced)
    return decorate


def _no_out(name, out):
    if out is not None:
        raise TypeError(f"ardiff.numpy.{name}: out= writes in place and cannot be traced.")


def _quantile_options(name: str, out, weights, interpolation) -> None:
    """Refuse the options of the quantile family that have no traced version."""
    _no_out(name, out)
    if weights is not None or interpolation is not None:
        raise TypeError(f"ardiff.numpy.{name}: weights= and interpolation= are not "
                        "supported on traced values.")


# -- NaN-ignoring reductions ------------------------------------------------------------
def _nan_mask(a) -> np.ndarray:
    """Where `a` is NaN (a guard for compiled replays)."""
    return np.asarray(concrete(np.isnan, a))


def _filled(a, fill):
    """`a` with its NaNs replaced by `fill` (gradient 0 there)."""
    mask = _nan_mask(a)
    return where(mask, fill, a) if mask.any() else a


@statistic("a")
def nansum(a, axis=None, dtype=None, out=None, keepdims=False, **kwargs):
    """Traced `numpy.nansum`: NaNs count as zero."""
    _no_out("nansum", out)
    return sum_(_filled(a, 0.0), axis=axis_argument(axis), keepdims=bool(keepdims))


def _count(mask, axis, keepdims) -> np.ndarray:
    return np.sum(~mask, axis=axis_argument(axis), keepdims=keepdims)


@statistic("a")
def nanmean(a, axis=None, dtype=None, out=None, keepdims=False, **kwargs):
    """Traced `numpy.nanmean`: the mean of the non-NaN values (NaN for a slice of NaNs)."""
    _no_out("nanmean", out)
    mask = _nan_mask(a)
    total = sum_(_filled(a, 0.0), axis=axis_argument(axis), keepdims=bool(keepdims))
    return total / _count(mask, axis, bool(keepdims))


@statistic("a")
def nanvar(a, axis=None, dtype=None, out=None, ddof=0, keepdims=False, **kwargs):
    """Traced `numpy.nanvar`: the `var` op over the non-NaN values (its `where=`), so no
    node holds the mean alone (its gradient would be zero: relaxation measures residuals
    relative to each node's own gradient)."""
    _no_out("nanvar", out)
    mask = _nan_mask(a)
    if not mask.any():
        return var(a, axis=axis_argument(axis), ddof=ddof, keepdims=bool(keepdims))
    return var(_filled(a, 0.0), axis=axis_argument(axis), ddof=ddof,
               keepdims=bool(keepdims), where=~mask)


@statistic("a")
def nanstd(a, axis=None, dtype=None, out=None, ddof=0, keepdims=False, **kwargs):
    """Traced `numpy.nanstd`: the `std` op over the non-NaN values (gradient 0 where the
    deviation is 0, as for `std`)."""
    _no_out("nanstd", out)
    mask = _nan_mask(a)
    if not mask.any():
        return std(a, axis=axis_argument(axis), ddof=ddof, keepdims=bool(keepdims))
    return std(_filled(a, 0.0), axis=axis_argument(axis), ddof=ddof,
               keepdims=bool(keepdims), where=~mask)


def _nan_extreme(op, a, axis, keepdims, name):
    """`op` (max or min) over the non-NaN values: each NaN is replaced by a plain value
    beyond every non-NaN one (below for max, above for min), so it is never chosen and
    never ties.  A guard records that the fill stays beyond the values, so a compiled
    replay re-traces only when a new value crosses it; every recorded value is finite
    (a NaN forward value would stay NaN under damped relaxation from forward values)."""
    mask = _nan_mask(a)
    axis = axis_argument(axis)
    if not mask.any():
        return op(a, axis=axis, keepdims=bool(keepdims))
    plain = np.asarray(unwrap(a))
    if mask.all():
        fill = 0.0
    else:
        finite = plain[~mask]
        spread_ = float(np.max(finite) - np.min(finite)) + 1.0
        fill = float(np.min(finite)) - spread_ if name == "nanmax" else \
            float(np.max(finite)) + spread_
    below = name == "nanmax"

    def fill_is_beyond(values):
        values = np.asarray(values)
        beyond = values > fill if below else values < fill
        return bool(np.all(beyond | np.isnan(values)))

    concrete(fill_is_beyond, a)
    out = op(where(mask, fill, a), axis=axis, keepdims=bool(keepdims))
    all_nan = np.all(mask, axis=axis, keepdims=bool(keepdims))
    if np.any(all_nan):  # NumPy's answer for a slice of NaNs
        out = where(all_nan, np.nan, out)
    return out


@statistic("a")
def nanmax(a, axis=None, out=None, keepdims=False, **kwargs):
    """Traced `numpy.nanmax` (ties share the gradient; NaN for a slice of NaNs)."""
    _no_out("nanmax", out)
    return _nan_extreme(max_, a, axis, keepdims, "nanmax")


@statistic("a")
def nanmin(a, axis=None, out=None, keepdims=False, **kwargs):
    """Traced `numpy.nanmin` (ties share the gradient; NaN for a slice of NaNs)."""
    _no_out("nanmin", out)
    return _nan_extreme(min_, a, axis, keepdims, "nanmin")


@statistic("a")
def nanprod(a, axis=None, dtype=None, out=None, keepdims=False, **kwargs):
    """Traced `numpy.nanprod`: NaNs count as one."""
    _no_out("nanprod", out)
    return prod(_filled(a, 1.0), axis=axis_argument(axis), keepdims=bool(keepdims))


@statistic("a")
def nancumsum(a, axis=None, dtype=None, out=None):
    """Traced `numpy.nancumsum`: NaNs count as zero."""
    _no_out("nancumsum", out)
    return cumsum(_filled(a, 0.0), axis=axis)


@statistic("a")
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


@statistic("a", "q")
def quantile(a, q, axis=None, out=None, overwrite_input=False, method="linear",
             keepdims=False, *, weights=None, interpolation=None):
    """Traced `numpy.quantile` (methods linear, lower, higher, nearest, midpoint).

    With `method="linear"` the quantile is `v[i] + (v[i+1] - v[i]) t` between the
    sorted values at `i = floor(q (n - 1))`, `t = q (n - 1) - i`: its gradient goes
    to those two elements (weights `1 - t` and `t`) and, for a traced `q`, to `q`.
    """
    _quantile_options("quantile", out, weights, interpolation)
    return _order_statistics(a, q, axis, method, keepdims, "quantile")


@statistic("a", "q")
def percentile(a, q, axis=None, out=None, overwrite_input=False, method="linear",
               keepdims=False, *, weights=None, interpolation=None):
    """Traced `numpy.percentile`: `quantile(a, q / 100)` (see `quantile`)."""
    _quantile_options("percentile", out, weights, interpolation)
    q = q / 100.0 if isinstance(q, TracerBase) else np.true_divide(q, 100)
    return _order_statistics(a, q, axis, method, keepdims, "percentile")


@statistic("a")
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


# -- NaN-ignoring order statistics ---------------------------------------------------
def _nan_last_order(values, axis):
    """The stable sorting order of each reduced slice (axes as `_reduced_last`), NaNs
    last (NumPy's argsort puts them there)."""
    values = np.asarray(values)
    axes = tuple(range(values.ndim)) if axis is None else \
        tuple(sorted(ax % values.ndim for ax in np.atleast_1d(axis)))
    rest = tuple(i for i in range(values.ndim) if i not in axes)
    moved = np.transpose(values, rest + axes)
    flat = moved.reshape(tuple(values.shape[i] for i in rest) + (-1,))
    return np.argsort(flat, axis=-1, kind="stable")


def _nan_order_statistics(a, q, axis, method, keepdims, name):
    """Quantiles `q` (in [0, 1]) of the non-NaN values of `a` along `axis`.

    As `_order_statistics`, with a count of values per slice: NaNs are zeroed before any
    other op (every recorded value stays finite) and sorted last by a guarded order, and
    each slice interpolates among its own first `count` sorted values.  A slice of NaNs
    gives NaN, as in NumPy.
    """
    q_plain = np.asarray(unwrap(q), dtype=np.float64)
    if np.any((q_plain < 0) | (q_plain > 1)):
        raise ValueError(f"ardiff.numpy.{name}: quantiles must be in the range [0, 1]")
    axis = axis_argument(axis)
    mask = _nan_mask(a)
    if not mask.any():
        return _order_statistics(a, q, axis, method, keepdims, name)
    flat, kept = _reduced_last(where(mask, 0.0, a), axis)
    order = np.asarray(concrete(_nan_last_order, a, axis=axis))
    values = take_along_axis(flat, order, -1)  # each slice: sorted values, then zeros
    counts = np.sum(~_nan_last_mask(mask, axis), axis=-1)
    last = np.maximum(counts - 1, 0)[..., None]
    q_flat = q_plain.reshape(-1)
    virtual = q_flat * last  # rest + (len(q),)
    below = np.minimum(np.floor(virtual), last).astype(np.intp)

    def pick(index):
        return take_along_axis(values, np.minimum(index, last).astype(np.intp), -1)

    if method == "lower":
        out = pick(below)
    elif method == "higher":
        out = pick(np.ceil(virtual))
    elif method == "nearest":
        out = pick(np.around(virtual))
    elif method in ("linear", "midpoint"):
        lo, hi = pick(below), pick(below + 1)
        if method == "midpoint":
            t = np.where(virtual % 1 == 0, 0.0, 0.5)
        elif isinstance(q, TracerBase):  # the level's gradient flows through t
            t = reshape(q, (-1,)) * last - below
        else:
            t = virtual - below
        exact = not isinstance(t, TracerBase) and not np.any(t)
        out = lo if exact else lo + (hi - lo) * t
    else:
        raise ValueError(f"ardiff.numpy.{name}: method {method!r} is not supported on "
                         "traced values (linear, lower, higher, nearest, midpoint).")
    if np.any(counts == 0):  # NumPy's answer for a slice of NaNs
        out = where((counts == 0)[..., None], np.nan, out)
    out = reshape(out, shape_of(out)[:-1] + q_plain.shape)
    return _finish(out, q_plain.shape, kept, keepdims)


def _nan_last_mask(mask, axis):
    """The plain NaN mask laid out as `_reduced_last` lays out the values."""
    ndim = mask.ndim
    axes = tuple(range(ndim)) if axis is None else \
        tuple(sorted(ax % ndim for ax in np.atleast_1d(axis)))
    rest = tuple(i for i in range(ndim) if i not in axes)
    return np.transpose(mask, rest + axes).reshape(tuple(mask.shape[i] for i in rest) + (-1,))


@statistic("a", "q")
def nanquantile(a, q, axis=None, out=None, overwrite_input=False, method="linear",
                keepdims=False, *, weights=None, interpolation=None):
    """Traced `numpy.nanquantile`: `quantile` of the non-NaN values of each slice (NaN
    entries get gradient 0; a slice of NaNs gives NaN)."""
    _quantile_options("nanquantile", out, weights, interpolation)
    return _nan_order_statistics(a, q, axis, method, keepdims, "nanquantile")


@statistic("a", "q")
def nanpercentile(a, q, axis=None, out=None, overwrite_input=False, method="linear",
                  keepdims=False, *, weights=None, interpolation=None):
    """Traced `numpy.nanpercentile`: `nanquantile(a, q / 100)`."""
    _quantile_options("nanpercentile", out, weights, interpolation)
    q = q / 100.0 if isinstance(q, TracerBase) else np.true_divide(q, 100)
    return _nan_order_statistics(a, q, axis, method, keepdims, "nanpercentile")


@statistic("a")
def nanmedian(a, axis=None, out=None, overwrite_input=False, keepdims=False):
    """Traced `numpy.nanmedian`: the median of the non-NaN values of each slice (half of
    the gradient to each of the two middle values of an even count)."""
    _no_out("nanmedian", out)
    if not _nan_mask(a).any():
        return median(a, axis=axis, keepdims=keepdims)
    return _nan_order_statistics(a, 0.5, axis, "linear", keepdims, "nanmedian")


# -- moments and spreads --------------------------------------------------------------
@statistic("a", "weights")
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


@statistic("a")
def ptp(a, axis=None, out=None, keepdims=False):
    """Traced `numpy.ptp`: `max - min` (ties share the gradient)."""
    _no_out("ptp", out)
    axis = axis_argument(axis)
    return max_(a, axis=axis, keepdims=bool(keepdims)) - min_(a, axis=axis,
                                                              keepdims=bool(keepdims))


def _as_2d(x):
    shape = shape_of(x)
    return reshape(x, (1,) * (2 - len(shape)) + shape) if len(shape) < 2 else x


@statistic("m", "y")
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
        fact = n - ddof
    else:
        w_sum = float(np.sum(w))
        if ddof == 0:
            fact = w_sum
        elif aweights is None:
            fact = w_sum - ddof
        else:
            fact = w_sum - ddof * float(np.sum(w * aw)) / w_sum
    fact = max(fact, 0.0)
    centred = centre(x, axis=1, weights=w)  # one node (a mean alone has gradient 0)
    weighted = centred if w is None else centred * w
    # NumPy conjugates the second factor: X conj(X)^T for complex data
    return squeeze(dot(centred, conj_if_complex(transpose(weighted))) * (1.0 / fact))


@statistic("x", "y")
def corrcoef(x, y=None, rowvar=True, *, dtype=None):
    """Traced `numpy.corrcoef`: `cov / sqrt(outer(var, var))`, clipped to [-1, 1] as
    in NumPy (the diagonal, 1 up to rounding, has gradient 0 there)."""
    c = cov(x, y, rowvar)
    if len(shape_of(c)) == 0:
        return c / c
    std = sqrt(diagonal(c))
    c = c / reshape(std, (-1, 1))
    c = c / reshape(std, (1, -1))
    if np.iscomplexobj(unwrap(c)):  # NumPy clips both parts; that only moves rounding
        return c
    return clip(c, -1.0, 1.0)


@statistic("y", "x")
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
