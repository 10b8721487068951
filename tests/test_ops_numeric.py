"""Property-based cases for the NumPy functions composed from the op table (issue 11,
point 1): new elementwise names, reorderings and joins, differences and stencils,
interpolation, convolution, polynomials, piecewise selection, NaN-ignoring reductions,
order statistics, moments; and closed-form tests of their conventions (median of an
even count, percentile interpolation, NaN handling, knots of interp), of untraced calls
(exactly NumPy) and of integer results of traced values (plain, guarded).

Order statistics and extrema see distinct grid values, so a finite-difference step never
reorders them; quantile levels keep ``q (n - 1)`` away from integers (the kinks in q).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import assume
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from test_ops import Case, between, grid, make_op_test, nonzero, one_arg, reals, shapes

import ardiff
import ardiff.numpy as anp
from ardiff import Tracer
from ardiff.testing import check_grads


def args_of(*strategies, **kwargs):
    """(args, kwargs) from one strategy per positional argument and fixed kwargs."""
    return st.tuples(*strategies).map(lambda a: (a, dict(kwargs)))


def distinct(shape):
    return grid(shape, unique=True)


@st.composite
def one_with(draw, values=reals, shape=None, **kw_strategies):
    """One array (shape drawn unless given) and keyword arguments drawn from the shape."""
    shape = draw(shapes() if shape is None else shape)
    kwargs = {k: draw(make(shape)) for k, make in kw_strategies.items()}
    return (draw(values(shape)),), kwargs


def axis_of(shape):
    n = len(shape)
    return st.integers(-n, n - 1) if n else st.nothing()


def reduce_axis(shape):
    options = [st.none(), hnp.valid_tuple_axes(len(shape), min_size=1)] if shape else \
        [st.none()]
    if shape:
        options.append(axis_of(shape))
    return st.one_of(options)


# -- NaN-containing arrays -------------------------------------------------------------
@st.composite
def with_nans(draw, values=distinct, max_dims=3, min_side=2):
    """An array with NaNs (at least one) in some positions of odd index sum (never a whole
    slice along the drawn axis), an axis and keepdims."""
    shape = draw(shapes(min_dims=1, max_dims=max_dims, min_side=min_side))
    x = np.asarray(draw(values(shape)), dtype=float)
    mask = draw(hnp.arrays(np.bool_, shape))
    odd = np.indices(shape).sum(axis=0) % 2 == 1
    mask.reshape(-1)[np.flatnonzero(odd)[0]] = True  # at least one NaN
    x = np.where(mask & odd, np.nan, x)
    axis = draw(reduce_axis(shape))
    return (x,), {"axis": axis, "keepdims": draw(st.booleans())}


def _nan(name):
    return lambda xp, x, **kw: getattr(xp, name)(x, **kw)


@st.composite
def nan_cumulative(draw, values=reals):
    (x,), kw = draw(with_nans(values))
    axis = draw(st.none() | axis_of(x.shape))
    return (x,), {"axis": axis}


# -- order statistics -----------------------------------------------------------------------
@st.composite
def quantile_args(draw, percent=False, traced_q=False):
    (x,), kw = draw(one_with(distinct, shapes(min_dims=1), axis=reduce_axis,
                             keepdims=lambda s: st.booleans()))
    n = int(np.prod([x.shape[a] for a in np.atleast_1d(kw["axis"])])) \
        if kw["axis"] is not None else x.size
    assume(n > 1 or not traced_q)  # with one value the level has no influence at all
    k = draw(st.integers(0, max(n - 2, 0)))
    frac = draw(st.floats(0.1, 0.9))
    q = (k + frac) / (n - 1) if n > 1 else frac
    if not traced_q and draw(st.booleans()):
        q = np.array([q, draw(st.sampled_from([0.0, 1.0]))])
    if percent:
        q = q * 100.0
    if traced_q:
        return (x, np.asarray(q)), kw
    return (x,), {**kw, "q": q}


@st.composite
def nan_quantile_args(draw, percent=False, traced_q=False):
    """NaN-containing data and a level `q`: a traced `q` keeps `q (count - 1)` of every
    slice away from integers (the kinks in q; `count` = the slice's non-NaN values)."""
    (x,), kw = draw(with_nans())
    q = draw(st.floats(0.1, 0.9))
    if traced_q:
        counts = np.sum(~np.isnan(x), axis=kw["axis"])
        frac = np.atleast_1d(q * (counts - 1.0)) % 1.0
        assume(np.all(counts >= 2) and np.all((frac > 0.05) & (frac < 0.95)))
    elif draw(st.booleans()):
        q = np.array([q, draw(st.sampled_from([0.0, 1.0]))])
    if percent:
        q = q * 100.0
    if traced_q:
        return (x, np.asarray(q)), kw
    return (x,), {**kw, "q": q}


def _in_range(shape_q):
    return lambda xp, x, q, **kw: xp.quantile(x, q, **kw)


# -- interpolation ------------------------------------------------------------------------
@st.composite
def interp_args(draw, bounds=False):
    n = draw(st.integers(2, 6))
    xp_ = np.cumsum(draw(hnp.arrays(np.float64, n, elements=st.floats(0.3, 1.0))))
    fp = draw(distinct(n))
    # query points at least 0.05 away from the knots (the kinks)
    m = draw(st.integers(1, 5))
    knots = np.concatenate([[xp_[0] - 1.0], xp_, [xp_[-1] + 1.0]])
    # every argument must have a nonzero gradient (relaxation from the forward values
    # measures a residual relative to it): one point inside, one on each side
    m = max(m, 3) if bounds else m
    seg = draw(hnp.arrays(np.int64, m, elements=st.integers(0, n)))
    seg[0] = draw(st.integers(1, n - 1))
    if bounds:
        seg[1], seg[2] = 0, n
    t = draw(hnp.arrays(np.float64, m, elements=st.floats(0.1, 0.9)))
    x = knots[seg] + t * (knots[seg + 1] - knots[seg])
    if bounds:
        return (x, fp, np.float64(draw(st.floats(-2, 2))), np.float64(draw(st.floats(-2, 2)))
                ), {"knots": xp_}
    return (x, xp_, fp), {}


# -- convolution --------------------------------------------------------------------------
@st.composite
def convolve_args(draw):
    n, m = draw(st.integers(1, 6)), draw(st.integers(1, 6))
    return (draw(reals(n)), draw(reals(m))), {"mode": draw(st.sampled_from(
        ["full", "same", "valid"]))}


# -- joins and splits --------------------------------------------------------------------
@st.composite
def same_shape(draw, count=2, min_dims=0, max_dims=3, values=reals):
    shape = draw(shapes(min_dims=min_dims, max_dims=max_dims))
    return tuple(draw(values(shape)) for _ in range(count)), {}


@st.composite
def block_args(draw):
    r1, r2, c1, c2 = (draw(st.integers(1, 3)) for _ in range(4))
    a, b = draw(reals((r1, c1))), draw(reals((r1, c2)))
    c, d = draw(reals((r2, c1))), draw(reals((r2, c2)))
    return (a, b, c, d), {}


@st.composite
def insert_args(draw):
    shape = draw(shapes(min_dims=1, max_dims=2))
    axis = draw(st.none() | st.integers(0, len(shape) - 1))
    n = int(np.prod(shape)) if axis is None else shape[axis]
    obj = draw(st.integers(0, n) | st.lists(st.integers(0, n), min_size=1, max_size=3))
    slots = [1 if np.isscalar(obj) else len(obj)]
    if axis is None:
        vshape = (len(obj),) if not np.isscalar(obj) else ()
    else:
        vshape = tuple(s for i, s in enumerate(shape) if i != axis)
        if not np.isscalar(obj):
            vshape = tuple(shape[:axis]) + (slots[0],) + tuple(shape[axis + 1:])
    return (draw(reals(shape)), draw(reals(vshape))), {"obj": obj, "axis": axis}


@st.composite
def delete_args(draw):
    shape = draw(shapes(min_dims=1, max_dims=2, min_side=2))
    axis = draw(st.none() | st.integers(0, len(shape) - 1))
    n = int(np.prod(shape)) if axis is None else shape[axis]
    obj = draw(st.integers(0, n - 1) | st.lists(st.integers(0, n - 1), max_size=3, unique=True)
               | st.just(slice(0, None, 2)))
    return (draw(reals(shape)),), {"obj": obj, "axis": axis}


@st.composite
def cov_args(draw):
    n_vars, n_obs = draw(st.integers(1, 3)), draw(st.integers(3, 5))
    x = draw(reals((n_vars, n_obs)))
    kwargs = {"rowvar": True}
    if draw(st.booleans()):
        x, kwargs = x.T, {"rowvar": False}
    weighting = draw(st.sampled_from(["none", "fweights", "aweights", "bias", "ddof"]))
    if weighting == "fweights":
        kwargs["fweights"] = draw(hnp.arrays(np.int64, n_obs, elements=st.integers(1, 3)))
    elif weighting == "aweights":
        kwargs["aweights"] = draw(hnp.arrays(np.float64, n_obs, elements=st.floats(0.5, 2)))
    elif weighting == "bias":
        kwargs["bias"] = True
    elif weighting == "ddof":
        kwargs["ddof"] = 2
    return (x,), kwargs


@st.composite
def cross_args(draw):
    """Two stacks of 3-vectors along a drawn axis."""
    shape = draw(shapes(max_dims=2))
    position = draw(st.integers(0, len(shape)))
    full = shape[:position] + (3,) + shape[position:]
    return (draw(reals(full)), draw(reals(full))), {"axis": position - len(full)}


def _first_outside(x):
    """`x` with its first element where the constant piece does not apply."""
    x = x.copy()
    x.reshape(-1)[0] = 1.05
    return x


def _stencil_spacing(shape):
    if not shape:
        return st.just(())
    return st.sampled_from([(), (0.5,)]) | st.just(
        (np.cumsum(np.linspace(0.5, 1.5, shape[-1])),))


def _weighted(xp, pieces):
    return xp.concatenate([xp.ravel(p) * (i + 1.0) for i, p in enumerate(pieces)])


CASES = [
    # -- elementwise names
    Case("radians", lambda xp, x: xp.radians(x), one_arg(between(-400, 400)),
         ops=("deg2rad",)),
    Case("degrees", lambda xp, x: xp.degrees(x), one_arg(reals), ops=("rad2deg",)),
    Case("fabs", lambda xp, x: xp.fabs(x), one_arg(nonzero), ops=("absolute",)),
    Case("sinc", lambda xp, x: xp.sinc(x), one_arg(nonzero)),
    Case("fix", lambda xp, x: xp.fix(x) * x, one_arg(lambda s: grid(s, offset=0.1)),
         ops=("trunc",)),
    Case("heaviside", lambda xp, x, h: xp.heaviside(x, h) * x + xp.heaviside(x * 0.0, h),
         st.tuples(shapes()).flatmap(lambda s: args_of(nonzero(s[0]), reals(s[0]))),
         ops=("where",)),
    # (infinite inputs are tested in closed form: relaxation started from the forward
    # values cannot start from an infinite activity)
    Case("nan_to_num", lambda xp, x: xp.nan_to_num(x, nan=1.5) * 2.0,
         with_nans().map(lambda p: (p[0], {})), ops=("where",)),
    Case("real_conj_angle", lambda xp, x: xp.real(x) * xp.conj(x) + xp.conjugate(x)
         + xp.imag(x) + xp.angle(x), one_arg(nonzero), ops=("multiply",)),
    Case("divmod", lambda xp, x: xp.divmod(x, 0.7)[1] * (x // 0.7),
         one_arg(lambda s: grid(s, offset=0.35, step=0.7)), ops=("remainder",)),
    # -- reorderings, joins, splits
    Case("rot90", lambda xp, x, k, axes: xp.rot90(x, k, axes),
         one_with(reals, shapes(min_dims=2), k=lambda s: st.integers(-2, 5),
                  axes=lambda s: st.permutations(range(len(s))).map(lambda p: tuple(p[:2]))),
         ops=()),
    Case("rollaxis", lambda xp, x, axis, start: xp.rollaxis(x, axis, start),
         one_with(reals, shapes(min_dims=1), axis=axis_of,
                  start=lambda s: st.integers(-len(s), len(s)))),
    Case("append", lambda xp, x, y, axis: xp.append(x, y, axis),
         st.one_of(same_shape(2, min_dims=1).map(lambda p: (p[0], {"axis": 0})),
                   same_shape(2).map(lambda p: (p[0], {"axis": None}))),
         ops=("concatenate",)),
    Case("insert", lambda xp, x, v, obj, axis: xp.insert(x, obj, v, axis), insert_args(),
         ops=("getitem",)),
    Case("delete", lambda xp, x, obj, axis: xp.delete(x, obj, axis) * 1.0, delete_args(),
         ops=("multiply",)),
    Case("dsplit", lambda xp, x, n: _weighted(xp, xp.dsplit(x, n)),
         one_with(reals, shapes(min_dims=3, max_dims=3).map(lambda s: s[:2] + (4,)),
                  n=lambda s: st.sampled_from([1, 2, 4, [1, 3]])), ops=("getitem",)),
    Case("dstack", lambda xp, x, y: xp.dstack([x, y]), same_shape(2, max_dims=3),
         ops=("concatenate",)),
    Case("column_stack", lambda xp, x, y: xp.column_stack([x, y, x]),
         same_shape(2, min_dims=1, max_dims=2), ops=("concatenate",)),
    Case("block", lambda xp, a, b, c, d: xp.block([[a, b], [c, d]]), block_args(),
         ops=("concatenate",)),
    Case("block_1d", lambda xp, a, b: xp.block([a, b, 2.0 * a]),
         same_shape(2, min_dims=1, max_dims=1), ops=("concatenate",)),
    Case("meshgrid", lambda xp, x, y, indexing, sparse: _weighted(
        xp, xp.meshgrid(x, y, x, indexing=indexing, sparse=sparse)),
         st.tuples(st.integers(1, 3), st.integers(1, 3)).flatmap(
             lambda n: st.tuples(reals(n[0]), reals(n[1]))).flatmap(
             lambda a: st.tuples(st.sampled_from(["xy", "ij"]), st.booleans()).map(
                 lambda o: (a, {"indexing": o[0], "sparse": o[1]}))),
         ops=("reshape",)),
    Case("partition", lambda xp, x, kth, axis: xp.partition(x, kth, axis),
         one_with(distinct, shapes(min_dims=1), axis=axis_of,
                  kth=lambda s: st.just(0)), ops=("getitem",)),
    Case("take_modes", lambda xp, x, mode: xp.take(x, [0, -1, 5, 2], axis=0, mode=mode),
         one_with(reals, shapes(min_dims=1), mode=lambda s: st.sampled_from(["wrap", "clip"])),
         ops=("getitem",)),
    # -- differences and stencils
    Case("diff", lambda xp, x, n, axis: xp.diff(x, n, axis),
         one_with(reals, shapes(min_dims=1), axis=axis_of, n=lambda s: st.integers(0, 2)),
         ops=()),
    Case("diff_prepend_append", lambda xp, x, axis: xp.diff(x, axis=axis, prepend=0.5,
                                                              append=x),
         one_with(reals, shapes(min_dims=1), axis=axis_of), ops=("concatenate",)),
    Case("gradient", lambda xp, x, spacing, edge_order: _weighted(
        xp, [xp.gradient(x, *spacing, axis=-1, edge_order=edge_order)]),
         one_with(reals, shapes(min_dims=1, min_side=3), spacing=_stencil_spacing,
                  edge_order=lambda s: st.sampled_from([1, 2])), ops=("getitem",)),
    Case("gradient_all_axes", lambda xp, x: _weighted(xp, xp.gradient(x)),
         one_with(reals, shapes(min_dims=2, min_side=2)), ops=("getitem",)),
    Case("trapezoid", lambda xp, y, x, axis: xp.trapezoid(y, x, axis=axis),
         st.tuples(shapes(min_dims=1)).flatmap(lambda s: st.tuples(
             reals(s[0]), st.integers(-len(s[0]), len(s[0]) - 1)).flatmap(
             lambda p: reals((p[0].shape[p[1]],)).map(
                 lambda x: ((p[0], x), {"axis": p[1]})))), ops=("sum",)),
    Case("trapezoid_dx", lambda xp, y, dx: xp.trapezoid(y, dx=dx),
         one_with(reals, shapes(min_dims=1), dx=lambda s: st.floats(0.1, 2.0)), ops=("sum",)),
    Case("cross", lambda xp, a, b, axis: xp.cross(a, b, axis=axis), cross_args(),
         ops=("multiply",)),
    # -- interpolation, convolution, polynomials
    Case("interp", lambda xp, x, xp_, fp: xp.interp(x, xp_, fp), interp_args(),
         ops=("getitem", "divide")),
    Case("interp_left_right", lambda xp, x, fp, left, right, knots: xp.interp(
        x, knots, fp, left=left, right=right), interp_args(bounds=True), ops=("getitem",)),
    Case("convolve", lambda xp, a, v, mode: xp.convolve(a, v, mode), convolve_args(),
         ops=("matmul",)),
    Case("correlate", lambda xp, a, v, mode: xp.correlate(a, v, mode), convolve_args(),
         ops=("matmul",)),
    Case("linspace", lambda xp, a, b, num, endpoint, axis: xp.linspace(
        a, b, num, endpoint=endpoint, axis=axis),
         st.tuples(shapes(max_dims=1), st.integers(1, 5), st.booleans()).flatmap(
             lambda p: st.tuples(reals(p[0]), reals(p[0])).map(
                 lambda a: (a, {"num": p[1], "endpoint": p[2], "axis": -1 if p[0] else 0}))),
         ops=("multiply",)),
    # nonzero coefficients and points: at x = 0 every power of x has gradient 0
    Case("polyval", lambda xp, p, x: xp.polyval(p, x),
         st.tuples(st.integers(1, 4), shapes()).flatmap(
             lambda s: st.tuples(nonzero((s[0] + 1,)), nonzero(s[1]))).map(lambda a: (a, {})),
         ops=("multiply",)),
    Case("select", lambda xp, x, y: xp.select([x > 0.5, y < 0.1], [x * y, y], default=x),
         same_shape(2, values=lambda s: grid(s, offset=0.05)), ops=("where",)),
    Case("piecewise", lambda xp, x: xp.piecewise(
        x, [x < -0.5, x > 0.5], [lambda t: t ** 2, lambda t: xp.sin(t) * 2.0, 0.25]),
         one_with(lambda s: grid(s, offset=0.05).map(_first_outside), shapes(min_dims=1)),
         ops=("where",)),
    Case("einsum_sublist", lambda xp, a, b: xp.einsum(a, [0, 1], b, [1], [0]),
         st.tuples(st.integers(1, 3), st.integers(1, 3)).flatmap(
             lambda n: st.tuples(reals(n), reals((n[1],)))).map(lambda a: (a, {})),
         ops=("einsum",)),
    Case("einsum_sublist_ellipsis", lambda xp, a: xp.einsum(a, [Ellipsis, 0], [Ellipsis]),
         one_with(reals, shapes(min_dims=1)), ops=("einsum",)),
    # -- reductions of lists of traced values (NumPy's own functions cannot see inside
    #    a Python list, so only the ardiff.numpy spelling works)
    Case("mean_of_list", lambda xp, x, y: xp.mean([x, y * 2.0], axis=0) + xp.sum([x, y])
         + xp.var([x, y]), same_shape(2), ops=("concatenate", "mean"), dispatch=False),
    # (each traced element is one node here, so the selections pick every traced one: a
    # node that a max leaves out has gradient 0, which relaxation started from the
    # forward values certifies only after ~1,000 steps per run: too slow for this table)
    Case("reductions_of_mixed_lists", lambda xp, x, y: xp.sum([x, 2.0, y])
         + xp.mean([x, 1.5]) * xp.prod([y, 3.0]) + xp.max([x, -9.0])
         + xp.median([y, -9.0, 9.0]) + xp.average([x, y], weights=[1.0, 3.0])
         + xp.ptp([x, 9.0]) + xp.std([x, 2.0, y]) + xp.quantile([y, -9.0, 9.0], 0.3),
         grid(2, offset=0.1, unique=True).map(lambda p: ((p[0], p[1]), {})),
         ops=("concatenate", "std"), dispatch=False),
    # np.full with a traced fill value (NumPy's own full writes with copyto, so only the
    # ardiff.numpy spelling traces)
    Case("full", lambda xp, x: xp.full((2, 3) + np.shape(x), x) * xp.full_like(x, 2.0)
         + xp.full_like(x, x * x), one_arg(reals, shapes(max_dims=1)), ops=("broadcast_to",),
         dispatch=False),
    # -- NaN-ignoring reductions
    *[Case(name, _nan(name), with_nans(), ops=(op,)) for name, op in [
        ("nansum", "sum"), ("nanmean", "sum"), ("nanvar", "var"), ("nanmax", "max"),
        ("nanmin", "min"), ("nanprod", "prod")]],
    # one non-NaN value would have a zero deviation, where sqrt has no derivative
    Case("nanstd", _nan("nanstd"), with_nans(min_side=3).map(
        lambda p: (p[0], {**p[1], "axis": None})), ops=("std",)),
    Case("nancumsum", _nan("nancumsum"), nan_cumulative(), ops=("cumsum",)),
    Case("nancumprod", _nan("nancumprod"), nan_cumulative(between(0.5, 1.5)),
         ops=("cumprod",)),
    # -- order statistics and moments
    Case("median", lambda xp, x, **kw: xp.median(x, **kw),
         one_with(distinct, shapes(min_dims=1), axis=reduce_axis,
                  keepdims=lambda s: st.booleans()), ops=("getitem",)),
    Case("quantile", lambda xp, x, q, **kw: xp.quantile(x, q, **kw), quantile_args(),
         ops=("getitem",)),
    Case("quantile_traced_q", lambda xp, x, q, **kw: xp.quantile(x, q, **kw),
         quantile_args(traced_q=True), ops=("getitem",)),
    Case("percentile", lambda xp, x, q, **kw: xp.percentile(x, q, **kw),
         quantile_args(percent=True), ops=("getitem",)),
    Case("nanmedian", _nan("nanmedian"), with_nans(), ops=("getitem",)),
    Case("nanquantile", lambda xp, x, q, **kw: xp.nanquantile(x, q, **kw),
         nan_quantile_args(), ops=("getitem",)),
    Case("nanquantile_traced_q", lambda xp, x, q, **kw: xp.nanquantile(x, q, **kw),
         nan_quantile_args(traced_q=True), ops=("getitem",)),
    Case("nanpercentile", lambda xp, x, q, **kw: xp.nanpercentile(x, q, **kw),
         nan_quantile_args(percent=True), ops=("getitem",)),
    Case("nanquantile_methods", lambda xp, x, method: xp.nanquantile(
        x, [0.2, 0.5, 0.9], axis=-1, method=method),
         with_nans().flatmap(lambda p: st.sampled_from(
             ["lower", "higher", "nearest", "midpoint"]).map(
             lambda m: (p[0], {"method": m}))), ops=("getitem",)),
    Case("quantile_methods", lambda xp, x, method: xp.quantile(x, [0.2, 0.5, 0.9],
                                                                 method=method),
         one_with(distinct, shapes(min_dims=1), method=lambda s: st.sampled_from(
             ["lower", "higher", "nearest", "midpoint"])), ops=("getitem",)),
    # the weights' gradient (x - average) / sum(w) is 0 for a single value or a constant
    # slice: distinct values, two or more per slice
    Case("average", lambda xp, x, w, axis: xp.average(x, axis=axis, weights=w),
         one_with(distinct, shapes(min_dims=1, min_side=2), axis=axis_of).flatmap(
             lambda p: between(0.5, 2.0)((p[0][0].shape[p[1]["axis"]],)).map(
                 lambda w: ((p[0][0], w), p[1]))), ops=("sum",)),
    Case("average_returned", lambda xp, x, w: xp.average(x, axis=0, weights=w,
                                                          returned=True)[0] * 2.0,
         one_with(distinct, shapes(min_dims=1, min_side=2)).flatmap(
             lambda p: between(0.5, 2.0)(p[0][0].shape).map(lambda w: ((p[0][0], w), {}))),
         ops=("sum",)),
    Case("ptp", lambda xp, x, **kw: xp.ptp(x, **kw),
         one_with(distinct, axis=reduce_axis, keepdims=lambda s: st.booleans()),
         ops=("max", "min")),
    Case("cov", lambda xp, x, **kw: xp.cov(x, **kw), cov_args(), ops=("dot", "centre")),
    Case("cov_two_arrays", lambda xp, x, y: xp.cov(x, y),
         same_shape(2, min_dims=1, max_dims=1, values=distinct).filter(
             lambda p: p[0][0].size > 1), ops=("dot", "centre")),
    # distinct values (no constant row) and no two rows perfectly correlated, where the
    # coefficient sits on clip's bound
    Case("corrcoef", lambda xp, x: xp.corrcoef(x),
         one_with(distinct, st.tuples(st.integers(2, 3), st.integers(3, 5))).filter(
             lambda p: np.max(np.abs(np.corrcoef(p[0][0]) - np.eye(len(p[0][0])))) < 0.99),
         ops=("clip", "centre")),
]

# Drawn arguments never have a gradient that is exactly zero (a polynomial at x = 0, the
# weights of one value): relaxation started from the forward values measures each node's
# residual relative to its own gradient, so it certifies a zero one only once the
# activity has decayed below the smallest normal number (~1,000 steps).  The functions
# themselves keep such nodes out of their graphs (nanvar is one `var` node with `where=`,
# cov centres in one `centre` node, nanmax fills NaNs with a plain value), and keep NaN out
# of every recorded value but the input's.

# Functions whose NumPy reference is NumPy 2 only (trapezoid; quantile weights; tuples from
# meshgrid and atleast_*d): compared with NumPy only where NumPy has them.
NUMPY2 = np.lib.NumpyVersion(np.__version__) >= "2.0.0"
if not NUMPY2:
    CASES = [c for c in CASES if c.name not in ("trapezoid", "trapezoid_dx")]

test_numeric = make_op_test(CASES)

# The sparse Jacobian of the one new op (everything else here is composed).
_X = np.array([[-1.5, 0.3, 2.0], [0.7, -0.2, 1.1]])
JACOBIAN_CASES = [("sinc", (_X,), {}, [0]),
                  ("centre", (_X,), {"axis": 1}, [0]),
                  ("centre", (_X,), {"axis": None, "weights": np.arange(1.0, 7.0).reshape(2, 3)},
                   [0])]
VJP_FALLBACK = [("centre", "dense within each slice: one VJP per output element is as "
                 "cheap as a family would be")]


# -- closed forms: the conventions -------------------------------------------------------
def _grad(fun, *args, **options):
    return ardiff.grad(fun, argnum=tuple(range(len(args))) if len(args) > 1 else 0,
                       **options)(*args)


SOLVERS = [dict(method="backprop"), dict(method="relax"),
           dict(method="relax", schedule="parallel"), dict(method="triangular")]


@pytest.mark.parametrize("options", SOLVERS, ids=lambda o: "-".join(map(str, o.values())))
def test_median_of_an_even_count_splits_the_gradient_between_the_middle_values(options):
    x = np.array([4.0, 1.0, 3.0, 2.0])
    assert anp.median(x) == 2.5
    np.testing.assert_allclose(_grad(anp.median, x, **options), [0.0, 0.0, 0.5, 0.5])
    np.testing.assert_allclose(_grad(anp.median, x[:3], **options), [0.0, 0.0, 1.0])
    # ties: the stable sort decides which of the tied values are "the middle ones"
    np.testing.assert_allclose(_grad(anp.median, np.array([2.0, 2.0, 2.0]), **options),
                               [0.0, 1.0, 0.0])


@pytest.mark.parametrize("options", SOLVERS, ids=lambda o: "-".join(map(str, o.values())))
def test_percentile_interpolates_linearly_between_neighbouring_order_statistics(options):
    x = np.array([10.0, 0.0, 30.0, 20.0])  # sorted: 0 10 20 30, positions q * 3
    assert anp.percentile(x, 50) == np.percentile(x, 50) == 15.0
    np.testing.assert_allclose(_grad(lambda v: anp.percentile(v, 50), x, **options),
                               [0.5, 0.0, 0.0, 0.5])
    # q = 0.9: position 2.7 -> 0.3 * x_(2) + 0.7 * x_(3); dq gives (x_(3) - x_(2)) * 3
    gx, gq = _grad(lambda v, q: anp.quantile(v, q), x, 0.9, **options)
    np.testing.assert_allclose(gx, [0.0, 0.0, 0.7, 0.3], atol=1e-12)
    assert gq == pytest.approx(30.0)
    for method, expected in [("lower", [0, 0, 0, 1]), ("higher", [0, 0, 1, 0]),
                             ("nearest", [0, 0, 1, 0]), ("midpoint", [0, 0, 0.5, 0.5])]:
        g = _grad(lambda v, m=method: anp.quantile(v, 0.9, method=m), x, **options)
        assert anp.quantile(x, 0.9, method=method) == np.quantile(x, 0.9, method=method)
        np.testing.assert_allclose(g, expected, atol=1e-12)


def test_nan_reductions_ignore_nans_with_zero_gradient():
    x = np.array([[1.0, np.nan, 3.0], [np.nan, np.nan, np.nan]])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for name in ("nansum", "nanmean", "nanmax", "nanmin", "nanprod", "nanvar"):
            expected = getattr(np, name)(x, axis=1)
            got = ardiff.trace(lambda v, n=name: getattr(anp, n)(v, axis=1), x).output.value
            np.testing.assert_array_equal(got, expected)
    y = x[0]
    np.testing.assert_array_equal(_grad(anp.nansum, y), [1.0, 0.0, 1.0])
    np.testing.assert_array_equal(_grad(anp.nanmean, y), [0.5, 0.0, 0.5])
    np.testing.assert_array_equal(_grad(anp.nanmax, y), [0.0, 0.0, 1.0])
    np.testing.assert_array_equal(_grad(anp.nanprod, y), [3.0, 0.0, 1.0])
    np.testing.assert_array_equal(_grad(lambda v: anp.sum(anp.nancumsum(v)), y), [3.0, 0.0, 1.0])
    np.testing.assert_allclose(_grad(anp.nanvar, y), [-1.0, 0.0, 1.0])
    np.testing.assert_array_equal(_grad(lambda v: anp.sum(anp.nan_to_num(v)), y),
                                  [1.0, 0.0, 1.0])


def test_interp_knots_take_the_slope_to_the_right_and_outside_is_flat():
    xp_, fp = np.array([0.0, 1.0, 3.0]), np.array([0.0, 2.0, 3.0])
    x = np.array([-1.0, 0.0, 1.0, 2.0, 3.0, 4.0])
    np.testing.assert_array_equal(anp.interp(x, xp_, fp), np.interp(x, xp_, fp))
    g = ardiff.grad(lambda x: anp.sum(anp.interp(x, xp_, fp)))(x)
    np.testing.assert_allclose(g, [0.0, 2.0, 0.5, 0.5, 0.5, 0.0])
    gfp = ardiff.grad(lambda f: anp.interp(2.0, xp_, f))(fp)
    np.testing.assert_allclose(gfp, [0.0, 0.5, 0.5])


def test_sinc_at_zero():
    assert ardiff.grad(anp.sinc)(0.0) == 0.0
    assert ardiff.grad(anp.sinc)(0.5) == pytest.approx((np.cos(np.pi / 2) - np.sinc(0.5)) / 0.5)


# -- untraced calls are NumPy's own ------------------------------------------------------
UNTRACED = [
    ("prod", ([2, 3.0, 3.0],), {"dtype": int}),
    ("cumsum", ([1, 2, 3],), {"dtype": np.float32}),
    ("var", ([1, 2, 4],), {"dtype": np.float32}),
    ("median", ([[1, 5], [2, 3]],), {"axis": 0, "overwrite_input": False}),
    ("percentile", (np.arange(10),), {"q": 30, "method": "inverted_cdf"}),
    ("quantile", (np.arange(10),), {"q": [0.1, 0.5], "weights": np.ones(10),
                                    "method": "inverted_cdf"}),
    ("convolve", ([1, 2, 3], [0, 1]), {}),
    ("interp", (2.5, [1, 2, 3], [3, 2, 0]), {"period": None}),
    ("linspace", (0, 10, 4), {"dtype": int}),
    ("einsum", ("ij->j", np.ones((2, 3))), {"dtype": np.float32, "casting": "unsafe"}),
    ("take", (np.arange(4), [5]), {"mode": "clip"}),
    ("diff", (np.array([True, False, True]),), {}),
    ("cov", (np.arange(6.0).reshape(2, 3),), {"dtype": np.float32}),
    ("nansum", ([1.0, np.nan],), {"dtype": np.float32}),
    ("average", (np.arange(6.0).reshape(2, 3),), {"axis": 1, "returned": True}),
    ("insert", (np.arange(4), 1, 9), {}),
    ("meshgrid", ([1, 2], [3, 4, 5]), {"copy": False}),
    ("atleast_2d", (1, [2, 3]), {}),
    # reductions of plain Python lists
    ("sum", ([1, 2.5],), {}),
    ("sum", ([[1, 2], [3, 4]],), {"axis": 0}),
    ("mean", ([True, False, True],), {}),
    ("max", ([1, 5, 3],), {}),
    ("prod", ([2, 3],), {}),
    ("std", ([1, 2, 4],), {"ddof": 1}),
    ("nanmedian", ([1.0, np.nan, 3.0, 4.0],), {}),
    ("nanquantile", ([[1.0, np.nan], [2.0, 5.0]],), {"q": 0.25, "axis": 1}),
    ("nanpercentile", ([1.0, np.nan, 3.0],), {"q": [10, 90], "method": "nearest"}),
    ("full", ((2, 3), 7), {}),
    ("full_like", ([1, 2],), {"fill_value": 2.5}),
]


@pytest.mark.parametrize("name, args, kwargs", UNTRACED, ids=[u[0] for u in UNTRACED])
def test_untraced_calls_are_exactly_numpy(name, args, kwargs):
    if not NUMPY2 and name in ("quantile", "meshgrid", "atleast_2d"):
        pytest.skip("NumPy 1.26 has no quantile weights and returns lists, not tuples")
    expected = getattr(np, name)(*args, **kwargs)
    got = getattr(anp, name)(*args, **kwargs)
    for e, g in zip(expected if isinstance(expected, tuple) else [expected],
                    got if isinstance(got, tuple) else [got]):
        assert type(e) is type(g)
        assert np.result_type(e) == np.result_type(g)
        np.testing.assert_array_equal(g, e)


# -- integer and boolean results of traced values: plain, usable anywhere, guarded --------
def test_integer_results_of_traced_values_are_plain_integer_arrays():
    table = np.arange(10.0) ** 2
    seen = {}

    def fun(x):
        left = anp.floor(x).astype(int)
        seen["astype"] = left
        seen["floor_divide"] = x // 1
        seen["mod"] = anp.mod(left + 1, 10)
        seen["argmax"] = anp.argmax(x)
        seen["argsort"] = x.argsort()
        seen["searchsorted"] = anp.searchsorted(np.arange(10.0), x)
        seen["isfinite"] = anp.isfinite(x)
        seen["array"] = anp.array(x, dtype=np.int32)
        total = 0.0
        for _ in range(left[0]):  # as a loop count
            total = total + x[0]
        return anp.sum(x * table[seen["mod"]]) + total + x[left[1] - 3]

    x = np.array([2.5, 3.25])
    g = ardiff.grad(fun)(x)
    for name, value in seen.items():
        assert not isinstance(value, Tracer), name
        assert isinstance(value, np.ndarray) or np.isscalar(value), name
    assert seen["astype"].dtype.kind == "i" and seen["array"].dtype == np.int32
    np.testing.assert_array_equal(seen["mod"], [3, 4])
    np.testing.assert_allclose(g, [table[3] + 2.0 + 1.0, table[4]])


def fluid_like(x):
    """fluidsim's advection step in miniature: integer cells from traced positions."""
    field = np.linspace(0.0, 1.0, 8) ** 2
    left = anp.floor(x).astype(int)
    right = anp.mod(left + 1, 8)
    left = anp.mod(left, 8)
    t = x - anp.floor(x)
    return anp.sum((1.0 - t) * field[left] + t * field[right] + x * (x // 1))


def test_compiled_replays_recompute_integer_results():
    compiled = ardiff.compile(fluid_like)
    for x in (np.array([0.5, 2.25]), np.array([0.75, 2.5]), np.array([1.5, 6.75]),
              np.array([7.5, 3.25])):
        np.testing.assert_allclose(compiled(x), ardiff.grad(fluid_like)(x), rtol=1e-13)
    assert compiled.traces == 3  # the second point has the same cells as the first

    # x // 1 alone (the old bug: recorded as a constant without a guard)
    compiled = ardiff.compile(lambda x: x * (x // 1))
    assert compiled(0.5) == 0.0
    assert compiled(2.5) == 2.0
    assert compiled(3.5) == 3.0


def test_integer_valued_tracers_convert_without_error():
    # an integer-valued traced value (here a cast recorded by the op itself) converts
    # to plain integers: it carries no gradient, so nothing is lost
    from ardiff.ops.shape import astype

    def fun(x):
        i = astype(x, np.int64)
        assert isinstance(i, Tracer)
        idx = np.arange(5)[i]
        return x[0] * float(np.sum(idx)) + x[1] * int(i[0]) + x[0] * len(range(i[1]))

    np.testing.assert_allclose(ardiff.grad(fun)(np.array([1.5, 3.5])), [4.0 + 3.0, 1.0])


def test_corrcoef_against_finite_differences():
    """corrcoef on fixed, well-conditioned rows of six observations (longer than the
    property case draws)."""
    rng = np.random.default_rng(7)
    x = rng.normal(size=(3, 6))
    weights = rng.normal(size=(3, 3))
    np.testing.assert_allclose(anp.corrcoef(x), np.corrcoef(x), rtol=1e-13)
    check_grads(lambda v: anp.sum(anp.corrcoef(v) * weights), order=2)(x)


def test_numpys_own_reductions_of_lists_holding_traced_values_raise_clearly():
    """NumPy does not look inside a list for traced values (no dispatch), so `np.sum([x,
    2.0])` converts the list and raises; `anp.sum([x, 2.0])` stacks it and traces."""
    import numpy

    with pytest.raises(ardiff.TracingError, match="anp.array / anp.stack"):
        ardiff.grad(lambda x: numpy.sum([x, 2.0]))(1.0)
    assert ardiff.grad(lambda x: anp.sum([x, 2.0, x * x]))(1.5) == pytest.approx(4.0)


def test_nan_order_statistics_skip_nans_and_replay_soundly():
    x = np.array([[4.0, np.nan, 1.0, 3.0, 2.0], [np.nan, 5.0, np.nan, 1.0, np.nan]])
    for name, extra in (("nanmedian", {}), ("nanquantile", {"q": 0.25}),
                        ("nanpercentile", {"q": [90, 10]})):
        got = ardiff.trace(lambda v, n=name, e=extra: getattr(anp, n)(v, axis=1, **e), x)
        np.testing.assert_allclose(got.output.value, getattr(np, name)(x, axis=1, **extra),
                                   rtol=1e-15)
    # row 0 has four values (median 2.5: half to 2 and to 3), row 1 two (half each)
    median_grad = [[0, 0, 0, 0.5, 0.5], [0, 0.5, 0, 0.5, 0]]
    fun = lambda v: anp.sum(anp.nanmedian(v, axis=1))  # noqa: E731
    for options in SOLVERS:
        np.testing.assert_allclose(_grad(fun, x, **options), median_grad, atol=1e-12)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # NumPy's all-NaN slice warning
        out = ardiff.trace(lambda v: anp.nanmedian(v, axis=1),
                           np.array([[np.nan, np.nan], [1.0, 2.0]])).output.value
    np.testing.assert_array_equal(out, [np.nan, 1.5])
    # a compiled replay with other NaN positions or another order re-traces
    compiled = ardiff.compile(fun)
    moved = np.array([[np.nan, 4.0, 1.0, 3.0, 2.0], [np.nan, 5.0, 0.5, 1.0, np.nan]])
    for v in (x, moved, x[:, ::-1].copy()):
        np.testing.assert_allclose(compiled(v), ardiff.grad(fun, method="backprop")(v),
                                   atol=1e-15)
