"""Reductions with `axis`/`keepdims`, and cumulative sums and products.

The adjoint of a reduction spreads the incoming activity back over the reduced
axes (reshape to the kept shape, then broadcast); `max`/`min` split it evenly
among tied maxima.  `var` and `std` take NumPy's `where=` (a plain mask), which is how
`nanvar`/`nanstd` leave NaNs out in one node.
"""

from __future__ import annotations

import math

import numpy as np

from ..graph import TracerBase, unwrap
from ..op import TRANSPOSED_VJP, defop
from .axes import dtype_of, kept_shape, reduced_axes, reduced_count
from .complex_parts import conj_if_complex
from .elementwise import where
from .jacobians import Reduction, Scan
from .shape import broadcast_to, concatenate, getitem, reshape, transpose

REDUCTION = Reduction()


#: `spread` writes a plain cotangent into a new array up to this many elements (a few
#: microseconds less than `numpy.broadcast_to`'s view, which a tiny gradient notices).
SMALL_SPREAD = 4096


def spread(g, shape, axis):
    """Adjoint of summing over `axis`: copy `g` back over the reduced axes."""
    if type(g) is np.ndarray:  # a plain cotangent (the usual sweep): NumPy's, at once
        if axis is not None:  # (for None g is 0-d, or all ones: it broadcasts as it is)
            g = g.reshape(kept_shape(shape, axis))
        if math.prod(shape) <= SMALL_SPREAD:
            out = np.empty(shape, g.dtype)
            out[...] = g
            return out
        return np.broadcast_to(g, shape)
    return broadcast_to(reshape(g, kept_shape(shape, axis)), shape)


def _sum_vjp(ans, x, axis=None, keepdims=False, **_):
    shape = np.shape(unwrap(x))
    return lambda g: spread(g, shape, axis)


def _mean_vjp(ans, x, axis=None, keepdims=False, **_):
    shape = np.shape(unwrap(x))
    inv_n = 1.0 / max(reduced_count(shape, axis), 1)
    return lambda g: spread(g, shape, axis) * inv_n


sum_ = defop("sum", lambda x, axis=None, keepdims=False: np.sum(x, axis=axis, keepdims=keepdims),
             _sum_vjp, jac=REDUCTION, reads=((),), linear=True)
mean = defop("mean",
             lambda x, axis=None, keepdims=False: np.mean(x, axis=axis, keepdims=keepdims),
             _mean_vjp, jac=REDUCTION, reads=((),), linear=True)


def _extreme_vjp(ans, x, axis=None, keepdims=False):
    xr = unwrap(x)
    shape = np.shape(xr)
    hits = (xr == np.reshape(unwrap(ans), kept_shape(shape, axis))).astype(np.result_type(xr))
    share = hits / np.sum(hits, axis=axis, keepdims=True)  # ties split evenly
    return lambda g: spread(g, shape, axis) * share


def reduction_jvp(vjp_maker):
    """The tangent rule of a reduction whose VJP is `g -> spread(g) * weights`: the
    weights are that VJP of ones, and the tangent is `sum(t * weights)` over the same
    axes (prod's exclusive products, a norm's slopes)."""
    def maker(t, ans, x, *args, axis=None, keepdims=False, **kwargs):
        ones = np.ones(np.shape(unwrap(ans)))
        weights = vjp_maker(ans, x, *args, axis=axis, keepdims=keepdims, **kwargs)(ones)
        return sum_(t * weights, axis=axis, keepdims=keepdims)
    return maker


def _extreme_jvp(t, ans, x, axis=None, keepdims=False):
    """The tangent of a max/min: the mean of the tied extremes' tangents (the VJP's split)."""
    xr = unwrap(x)
    shape = np.shape(xr)
    hits = (xr == np.reshape(unwrap(ans), kept_shape(shape, axis))).astype(np.result_type(xr))
    share = hits / np.sum(hits, axis=axis, keepdims=True)
    return sum_(t * share, axis=axis, keepdims=keepdims)


max_ = defop("max", lambda x, axis=None, keepdims=False: np.max(x, axis=axis, keepdims=keepdims),
             _extreme_vjp, jac=REDUCTION, nonlinear=True, reads=(("ans", 0),),
             jvp=(_extreme_jvp,))
min_ = defop("min", lambda x, axis=None, keepdims=False: np.min(x, axis=axis, keepdims=keepdims),
             _extreme_vjp, jac=REDUCTION, nonlinear=True, reads=(("ans", 0),),
             jvp=(_extreme_jvp,))


def _centred(x, axis, ddof, included) -> tuple:
    """`(shape, x - mean, n - ddof)`: what the derivatives of var and std share.

    With `included` (NumPy's `where=`, a plain boolean array) the mean and the count are
    those of the included elements, and the excluded ones get a zero deviation."""
    shape = np.shape(unwrap(x))
    if included is None:
        return shape, x - mean(x, axis=axis, keepdims=True), \
            max(reduced_count(shape, axis) - ddof, 1)
    weight = np.broadcast_to(included, shape).astype(np.result_type(unwrap(x)))
    count = np.sum(weight, axis=axis, keepdims=True)
    mean_ = sum_(x * weight, axis=axis, keepdims=True) * (1.0 / np.maximum(count, 1))
    return shape, (x - mean_) * weight, np.maximum(count - ddof, 1)


def _var_vjp(ans, x, axis=None, ddof=0, keepdims=False, where=None):
    shape, centred, dof = _centred(x, axis, ddof, where)
    centred = conj_if_complex(centred)  # complex x: d|c|^2 = 2 Re(conj(c) dc)
    factor = centred * (2.0 / dof)
    return lambda g: spread(g, shape, axis) * factor


def _moment(np_fun):
    """The forward of `var`/`std` (`where=None` is not passed: NumPy < 1.20 lacks it)."""
    def forward(x, axis=None, ddof=0, keepdims=False, where=None):
        extra = {} if where is None else {"where": where}
        return np_fun(x, axis=axis, ddof=ddof, keepdims=keepdims, **extra)
    return forward


def _var_jvp(t, ans, x, axis=None, ddof=0, keepdims=False, where=None):
    """d var = 2 Re(sum(conj(c) dc)) / dof, with dc the tangent centred the same way."""
    _, centred, dof = _centred(x, axis, ddof, where)
    _, d_centred, _ = _centred(t, axis, ddof, where)
    total = sum_(conj_if_complex(centred) * d_centred, axis=axis, keepdims=True)
    return reshape(total * (2.0 / dof), np.shape(unwrap(ans)))


var = defop("var", _moment(np.var), _var_vjp, jac=REDUCTION, reads=((0,),),
            jvp=(_var_jvp,))


def _std_vjp(ans, x, axis=None, ddof=0, keepdims=False, where=None):
    shape, centred, dof = _centred(x, axis, ddof, where)
    centred = conj_if_complex(centred)  # complex x: d|c|^2 = 2 Re(conj(c) dc)
    std_kept = reshape(ans, kept_shape(shape, axis))
    # d std / dx = (x - mean) / ((n - ddof) std); taken as 0 where std == 0 (constant input)
    inv = where_positive(std_kept, np.asarray(unwrap(std_kept)) > 0)
    factor = centred * inv * (1.0 / dof)
    return lambda g: spread(g, shape, axis) * factor


def where_positive(value, positive):
    """1/value where `positive` (a plain boolean mask), 0 elsewhere."""
    return where(positive, 1.0 / where(positive, value, 1.0), 0.0)


def _std_jvp(t, ans, x, axis=None, ddof=0, keepdims=False, where=None):
    """d std = d var / (2 std), 0 where std = 0 (as the VJP)."""
    shape, centred, dof = _centred(x, axis, ddof, where)
    _, d_centred, _ = _centred(t, axis, ddof, where)
    total = sum_(conj_if_complex(centred) * d_centred, axis=axis, keepdims=True)
    std_kept = reshape(ans, kept_shape(shape, axis))
    inv = where_positive(std_kept, np.asarray(unwrap(std_kept)) > 0)
    return reshape(total * inv * (1.0 / dof), np.shape(unwrap(ans)))


std = defop("std", _moment(np.std), _std_vjp, jac=REDUCTION, reads=(("ans", 0),),
            jvp=(_std_jvp,))


def _centre_weights(shape, axis, weights, dtype) -> np.ndarray:
    """Each element's share of its slice's (weighted) mean, broadcast to `shape`."""
    w = np.ones(shape, dtype=dtype) if weights is None else \
        np.broadcast_to(np.asarray(weights, dtype=dtype), shape)
    return w / np.sum(w, axis=axis, keepdims=True)


def _centre_fwd(x, axis=None, weights=None):
    share = _centre_weights(np.shape(x), axis, weights, np.result_type(x, np.float64))
    return x - np.sum(x * share, axis=axis, keepdims=True)


def _centre_vjp(ans, x, axis=None, weights=None):
    shape = np.shape(unwrap(x))
    share = _centre_weights(shape, axis, weights, np.result_type(dtype_of(unwrap(x)),
                                                                 np.float64))
    # the map is x -> (I - 1 share^T) x per slice, so its adjoint is g -> g - share sum(g)
    return lambda g: g - spread(sum_(g, axis=axis), shape, axis) * share


#: `x` minus its (weighted) mean along `axis`, one node: `cov` is built on it, because a
#: separate mean node would have a gradient of exactly zero (deviations sum to zero),
#: which relaxation started from the forward values certifies only once that node's
#: activity has decayed below the smallest normal number (its residual is relative to
#: the node's own gradient): about 1,000 steps at eta 0.5 or 1.5 instead of tens.  Dense
#: within each slice: the triangular
#: solver builds its Jacobian from VJPs (tests/test_ops_numeric.py VJP_FALLBACK).
centre = defop("centre", _centre_fwd, _centre_vjp, reads=((2,),),  # of x: shape, dtype only
               linear=True)


def _flip_axis(x, axis):
    return getitem(x, (slice(None),) * axis + (slice(None, None, -1),))


def reverse_cumsum(g, axis):
    """Sum of `g` from each position to the end along `axis`."""
    return _flip_axis(cumsum(_flip_axis(g, axis), axis=axis), axis)


def _cumsum_vjp(ans, x, axis=None):
    shape = np.shape(unwrap(x))
    if axis is None:
        return lambda g: reshape(reverse_cumsum(g, 0), shape)
    axis = axis % len(shape)
    return lambda g: reverse_cumsum(g, axis)


cumsum = defop("cumsum", lambda x, axis=None: np.cumsum(x, axis=axis), _cumsum_vjp, jac=Scan(),
                reads=((),), linear=True)


def _exclusive_products(x, axis):
    """Product of all other elements along `axis` (exact with zeros present)."""
    n = np.shape(unwrap(x))[axis]
    ones_shape = list(np.shape(unwrap(x)))
    ones_shape[axis] = 1
    ones = np.ones(ones_shape, dtype=np.result_type(unwrap(x)))
    head = (slice(None),) * axis + (slice(0, n - 1),)
    before = concatenate(ones, getitem(cumprod(x, axis=axis), head), axis=axis)
    after = _flip_axis(concatenate(ones, getitem(cumprod(_flip_axis(x, axis), axis=axis), head),
                                   axis=axis), axis)
    return before * after


def _prod_vjp(ans, x, axis=None, keepdims=False):
    shape = np.shape(unwrap(x))
    axes = reduced_axes(axis, len(shape))
    rest = tuple(i for i in range(len(shape)) if i not in axes)
    perm = rest + axes
    moved = transpose(x, perm)
    flat_shape = tuple(shape[i] for i in rest) + (reduced_count(shape, axis),)
    others = _exclusive_products(reshape(moved, flat_shape), len(flat_shape) - 1)
    others = transpose(reshape(others, np.shape(unwrap(moved))), tuple(np.argsort(perm)))
    return lambda g: spread(g, shape, axis) * others


prod = defop("prod",
             lambda x, axis=None, keepdims=False: np.prod(x, axis=axis, keepdims=keepdims),
             _prod_vjp, jac=REDUCTION, nonlinear=True, reads=((0,),),
             jvp=(reduction_jvp(_prod_vjp),))


def _cumprod_vjp(ans, x, axis=None):
    shape = np.shape(unwrap(x))
    flat = axis is None
    ax = 0 if flat else axis % len(shape)
    xf = reshape(x, (-1,)) if flat else x
    xr, ansr = unwrap(xf), np.abs(unwrap(ans))
    # d ans_j / d x_i = ans_j / x_i gives the fast VJP reverse_cumsum(g * ans) / x. It
    # is only used on plain values with no zero and no under/overflowed partial product
    # (x = [1e-171, 1e-171] has ans = [1e-171, 0]): differentiated again, its quotient
    # rule cancels terms of size g / x, which loses everything when x is small.
    fast = not isinstance(x, TracerBase) and not isinstance(ans, TracerBase) and \
        np.all(xr != 0) and np.all(np.isfinite(ansr)) and \
        np.all(ansr >= np.finfo(np.result_type(ansr, np.float32)).tiny)
    inner = (lambda g: reverse_cumsum(g * ans, ax) / xf) if fast else \
        _cumprod_vjp_without_division(xf, ax)
    return (lambda g: reshape(inner(g), shape)) if flat else inner


def _cumprod_vjp_without_division(x, axis):
    """VJP of cumprod by products only: exact with zeros, stable to any order.

    grad_i = sum_{j>=i} g_j prod_{k<=j, k!=i} x_k = P_i S_i with the exclusive
    prefix product P_i = prod_{k<i} x_k and the suffix recurrence
    S_i = g_i + x_{i+1} S_{i+1}, run backwards along the axis (O(n) ops).
    """
    ndim = np.ndim(unwrap(x))
    n = np.shape(unwrap(x))[axis]
    if n <= 1:
        return lambda g: g
    perm = (axis,) + tuple(i for i in range(ndim) if i != axis)
    inverse = tuple(int(i) for i in np.argsort(perm))
    xm = transpose(x, perm)
    ones = np.ones((1,) + np.shape(unwrap(xm))[1:], dtype=np.result_type(unwrap(xm)))
    prefix = concatenate(ones, getitem(cumprod(xm, axis=0), slice(0, n - 1)), axis=0)
    nexts = [getitem(xm, slice(i + 1, i + 2)) for i in range(n - 1)]

    def vjp(g):
        gm = transpose(g, perm)
        s = getitem(gm, slice(n - 1, n))
        suffix = [s]
        for i in range(n - 2, -1, -1):
            s = getitem(gm, slice(i, i + 1)) + nexts[i] * s
            suffix.append(s)
        return transpose(prefix * concatenate(*suffix[::-1], axis=0), inverse)
    return vjp


def _cumprod_partials(lines: np.ndarray, later: np.ndarray, earlier: np.ndarray) -> np.ndarray:
    """d cumprod_r / d x_j = product of x_k for k <= r, k != j, for every line of values
    (exact with zeros); `later`/`earlier` pick the lower triangle (r >= j)."""
    n = lines.shape[1]
    full = np.empty((lines.shape[0], n, n), dtype=np.result_type(lines, np.float64))
    for j in range(n):
        masked = lines.copy()
        masked[:, j] = 1.0
        full[:, :, j] = np.cumprod(masked, axis=1)
    return full[:, later, earlier]


cumprod = defop("cumprod", lambda x, axis=None: np.cumprod(x, axis=axis), _cumprod_vjp,
                jac=Scan(_cumprod_partials), nonlinear=True, reads=(("ans", 0),),
                jvp=(TRANSPOSED_VJP,))
