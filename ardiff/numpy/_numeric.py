"""Numerical functions of `ardiff.numpy` composed from the table's ops: differences,
integration stencils, interpolation, convolution, polynomials, piecewise selection.

Every function here is NumPy's own when no argument is traced.  Facts read off
traced values (an interval of `interp`, a condition of `piecewise`, the NaNs of
`nan_to_num`) are guards, so compiled replays re-trace when they change.
"""

from __future__ import annotations

import numpy as np

from ..graph import TracerBase, contains_tracer, copy_of, unwrap
from ..guards import concrete, plain
from ..op import shape_of
from ..ops import complex_parts
from ..ops.elementwise import where
from ..ops.linalg import matmul
from ._shape import (
    broadcast_to,
    concatenate,
    flip,
    getitem,
    moveaxis,
    numpy_when_plain,
    reshape,
    stack,
    untake,
)


def _along(axis: int, ndim: int, index) -> tuple:
    return (slice(None),) * (axis % ndim) + (index,)


#: Stands for an argument not given (NumPy's own calls never see it).
NOT_GIVEN = object()


def _as_array(a):
    """A traced value, or a list holding traced values stacked into one."""
    if isinstance(a, (list, tuple)) and contains_tracer(a):
        return stack([_as_array(item) for item in a])
    return a


# -- differences ----------------------------------------------------------------------
@numpy_when_plain
def diff(a, n=1, axis=-1, prepend=NOT_GIVEN, append=NOT_GIVEN):
    """Traced `numpy.diff`: `a[1:] - a[:-1]` along `axis`, `n` times."""
    a = _as_array(a)
    ndim = len(shape_of(a))
    if ndim == 0:
        raise ValueError("diff requires input that is at least one dimensional")
    axis %= ndim
    parts = []
    for extra, where_ in ((prepend, "before"), (append, "after")):
        if extra is NOT_GIVEN:
            continue
        if len(shape_of(extra)) == 0:
            shape = list(shape_of(a))
            shape[axis] = 1
            extra = broadcast_to(extra, tuple(shape))
        parts.append((where_, extra))
    if parts:
        before = [e for w, e in parts if w == "before"]
        after = [e for w, e in parts if w == "after"]
        a = concatenate(before + [a] + after, axis=axis)
    for _ in range(n):
        a = getitem(a, _along(axis, ndim, slice(1, None))) - \
            getitem(a, _along(axis, ndim, slice(None, -1)))
    return a


def _stencil_weights(n: int, spacing, edge_order: int) -> tuple:
    """`(start, weights)` of `numpy.gradient` along an axis of length `n`: output i is
    `sum_m weights[m][i] * f[start[i] + m]`, m = 0, 1, 2.

    Every output of NumPy's stencil reads at most three consecutive inputs, so the
    weights are read off `numpy.gradient` itself, applied to the three indicator
    vectors of the residues mod 3 (a window of three holds one element of each).
    """
    width = min(n, 3)
    start = np.clip(np.arange(n) - 1, 0, n - width)
    weights = []
    for m in range(width):
        residue = (start + m) % 3
        rows = [np.gradient((np.arange(n) % 3 == k).astype(float), *spacing,
                            edge_order=edge_order) for k in range(3)]
        weights.append(np.choose(residue, rows))
    return start, weights


def _traced_stencil_weights(n: int, h, edge_order: int) -> tuple:
    """`(start, weights)` as `_stencil_weights`, for a traced spacing `h` (a scalar, or the
    coordinates along the axis): NumPy's formulas for uneven spacing, in traced ops."""
    if len(shape_of(h)) == 0:  # an even spacing: NumPy's stencils for spacing 1, over h
        start, weights = _stencil_weights(n, [1.0], edge_order)
        return start, [w / h for w in weights]
    dx = diff(h)
    if n == 2:  # one difference for both points
        w = 1.0 / broadcast_to(dx, (2,))
        return np.zeros(2, dtype=int), [-w, w]
    dx1, dx2 = getitem(dx, slice(None, -1)), getitem(dx, slice(1, None))
    inner = [-dx2 / (dx1 * (dx1 + dx2)), (dx2 - dx1) / (dx1 * dx2), dx1 / (dx2 * (dx1 + dx2))]
    d0, d1 = getitem(dx, slice(0, 1)), getitem(dx, slice(1, 2))
    e1, e0 = getitem(dx, slice(-2, -1)), getitem(dx, slice(-1, None))
    zero = np.zeros(1)
    if edge_order == 1:
        first = [-1.0 / d0, 1.0 / d0, zero]
        last = [zero, -1.0 / e0, 1.0 / e0]
    else:
        first = [-(2.0 * d0 + d1) / (d0 * (d0 + d1)), (d0 + d1) / (d0 * d1),
                 -d0 / (d1 * (d0 + d1))]
        last = [e0 / (e1 * (e1 + e0)), -(e0 + e1) / (e1 * e0), (2.0 * e0 + e1) / (e0 * (e1 + e0))]
    start = np.clip(np.arange(n) - 1, 0, n - 3)
    weights = [concatenate([broadcast_to(a, (1,)), b, broadcast_to(c, (1,))])
               for a, b, c in zip(first, inner, last)]
    return start, weights


@numpy_when_plain
def gradient(f, *varargs, axis=None, edge_order=1):
    """Traced `numpy.gradient`, with respect to `f` and to traced spacings (scalars or
    coordinates): second-order central differences inside, one-sided ones at the edges."""
    f = _as_array(f)
    ndim = len(shape_of(f))
    axes = tuple(range(ndim)) if axis is None else tuple(
        a % ndim for a in np.atleast_1d(axis))
    spacings = [_as_array(v) if contains_tracer(v) else np.asarray(v) for v in varargs]
    if len(spacings) == 0:
        spacings = [np.asarray(1.0)] * len(axes)
    elif len(spacings) == 1 and len(axes) > 1:
        spacings = spacings * len(axes)
    if len(spacings) != len(axes):
        raise TypeError("invalid number of arguments")
    out = []
    for ax, h in zip(axes, spacings):
        n = shape_of(f)[ax]
        if n < edge_order + 1:
            raise ValueError("Shape of array too small to calculate a numerical gradient, "
                             "at least (edge_order + 1) elements are required.")
        if len(shape_of(h)) == 1 and shape_of(h)[0] != n:
            raise ValueError("when 1d, distances must match the length of the corresponding "
                             "dimension")
        if isinstance(h, TracerBase):
            start, weights = _traced_stencil_weights(n, h, edge_order)
        else:
            start, weights = _stencil_weights(n, [h] if h.ndim else [float(h)], edge_order)
        shape = tuple(n if i == ax else 1 for i in range(ndim))
        total = None
        for m, w in enumerate(weights):
            term = getitem(f, _along(ax, ndim, start + m)) * np.reshape(w, shape)
            total = term if total is None else total + term
        out.append(total)
    return out[0] if len(out) == 1 else tuple(out)


# -- products of slices -----------------------------------------------------------------
@numpy_when_plain
def cross(a, b, axisa=-1, axisb=-1, axisc=-1, axis=None):
    """Traced `numpy.cross` of 3-vectors (and of 2-vectors, whose third component is 0)."""
    if axis is not None:
        axisa = axisb = axisc = axis
    a, b = moveaxis(_as_array(a), axisa, -1), moveaxis(_as_array(b), axisb, -1)
    na, nb = shape_of(a)[-1], shape_of(b)[-1]
    if na not in (2, 3) or nb not in (2, 3):
        raise ValueError("incompatible dimensions for cross product\n"
                         "(dimension must be 2 or 3)")
    a0, a1 = getitem(a, (Ellipsis, 0)), getitem(a, (Ellipsis, 1))
    b0, b1 = getitem(b, (Ellipsis, 0)), getitem(b, (Ellipsis, 1))
    c2 = a0 * b1 - a1 * b0
    if na == nb == 2:
        return c2
    if na == 3 and nb == 3:
        a2, b2 = getitem(a, (Ellipsis, 2)), getitem(b, (Ellipsis, 2))
        c0, c1 = a1 * b2 - a2 * b1, a2 * b0 - a0 * b2
    elif na == 2:
        b2 = getitem(b, (Ellipsis, 2))
        c0, c1 = a1 * b2, -(a0 * b2)
    else:
        a2 = getitem(a, (Ellipsis, 2))
        c0, c1 = -(a2 * b1), a2 * b0
    out = stack([c0, c1, c2], axis=-1)
    return moveaxis(out, -1, axisc)


# -- interpolation ------------------------------------------------------------------------
@numpy_when_plain
def interp(x, xp, fp, left=None, right=None, period=None):
    """Traced `numpy.interp`, differentiable in `x`, `xp`, `fp`, `left` and `right`.

    The interval of each `x` is found with `numpy.searchsorted` (a guard for compiled
    replays); the value is `fp[i] + (fp[i+1] - fp[i]) (x - xp[i]) / (xp[i+1] - xp[i])`.
    At a knot `x == xp[i]` the derivative in `x` is the slope of the interval to the
    right of it (of the last interval at `xp[-1]`); outside `[xp[0], xp[-1]]` the value
    is `left`/`right` (default `fp[0]`/`fp[-1]`) and the derivative in `x` is 0.
    """
    if period is not None:
        raise NotImplementedError("ardiff.numpy.interp: period= is not supported on traced "
                                  "values.")
    xp, fp = _as_array(xp), _as_array(fp)
    if len(shape_of(xp)) != 1 or shape_of(xp) != shape_of(fp):
        raise ValueError("fp and xp are not of the same length.")
    n = shape_of(xp)[0]
    if n == 0:
        raise ValueError("array of sample points is empty")
    x_plain = np.asarray(plain(x), dtype=float)
    if n == 1:
        out = fp[0] * np.ones(x_plain.shape) if isinstance(fp, TracerBase) else \
            np.full(x_plain.shape, unwrap(fp)[0])
        value = out
    else:
        j = np.clip(concrete(np.searchsorted, xp, x, side="right") - 1, 0, n - 2)
        x0, x1 = getitem(xp, j), getitem(xp, j + 1)
        y0, y1 = getitem(fp, j), getitem(fp, j + 1)
        value = y0 + (y1 - y0) * ((x - x0) / (x1 - x0))
    below = np.asarray(concrete(np.less, x, getitem(xp, 0)))
    above = np.asarray(concrete(np.greater, x, getitem(xp, n - 1)))
    if below.any():
        value = where(below, getitem(fp, 0) if left is None else left, value)
    if above.any():
        value = where(above, getitem(fp, n - 1) if right is None else right, value)
    return value


# -- convolution ------------------------------------------------------------------------
def _full_convolution(a, v):
    """`numpy.convolve(a, v, "full")`: windows of the zero-padded `a` times flipped `v`."""
    n, m = shape_of(a)[0], shape_of(v)[0]
    zeros = np.zeros(m - 1, dtype=np.result_type(unwrap(a)))
    padded = concatenate([zeros, a, zeros]) if m > 1 else a
    windows = getitem(padded, np.arange(n + m - 1)[:, None] + np.arange(m)[None, :])
    return matmul(windows, flip(v, 0))


def _mode_slice(full, n: int, m: int, mode: str):
    small, large = min(n, m), max(n, m)
    if mode == "full":
        return full
    if mode == "same":
        start = (small - 1) // 2
        return getitem(full, slice(start, start + large))
    if mode == "valid":
        return getitem(full, slice(small - 1, large))
    raise ValueError(f"mode must be one of 'valid', 'same', or 'full' (got {mode!r})")


@numpy_when_plain
def convolve(a, v, mode="full"):
    """Traced `numpy.convolve` of 1-D arrays (modes full, same, valid), differentiable in
    both: the windows of `a` (an index array) times the reversed `v`."""
    a, v = _as_array(a), _as_array(v)
    a = reshape(a, (-1,)) if len(shape_of(a)) == 0 else a
    v = reshape(v, (-1,)) if len(shape_of(v)) == 0 else v
    n, m = shape_of(a)[0], shape_of(v)[0]
    if n == 0 or m == 0:
        raise ValueError("convolve: inputs cannot be empty")
    return _mode_slice(_full_convolution(a, v), n, m, mode)


@numpy_when_plain
def correlate(a, v, mode="valid"):
    """Traced `numpy.correlate` of 1-D arrays: `convolve(a, conj(v)[::-1])`, and for a
    longer `v` the reversed correlation of `v` with `a`, as NumPy computes it."""
    a, v = _as_array(a), _as_array(v)
    if np.iscomplexobj(unwrap(v)):  # NumPy conjugates the second argument
        v = complex_parts.conj(v)
    a = reshape(a, (-1,)) if len(shape_of(a)) == 0 else a
    v = reshape(v, (-1,)) if len(shape_of(v)) == 0 else v
    n, m = shape_of(a)[0], shape_of(v)[0]
    if n == 0 or m == 0:
        raise ValueError("correlate: inputs cannot be empty")
    if n >= m:
        return convolve(a, flip(v, 0), mode)
    return flip(convolve(v, flip(a, 0), mode), 0)


# -- building ranges and polynomials -----------------------------------------------------
@numpy_when_plain
def linspace(start, stop, num=50, endpoint=True, retstep=False, dtype=None, axis=0, *,
             device=None):
    """Traced `numpy.linspace`, differentiable with respect to `start` and `stop`."""
    num = int(num)
    if num < 0:
        raise ValueError(f"Number of samples, {num}, must be non-negative.")
    div = (num - 1) if endpoint else num
    start, stop = _as_array(start), _as_array(stop)
    delta = stop - start
    extra = len(np.broadcast_shapes(shape_of(start), shape_of(stop)))
    steps = np.arange(num, dtype=float).reshape((-1,) + (1,) * extra)
    step = delta / div if div > 0 else np.nan
    y = steps * step + start if div > 0 else steps * delta + start
    if endpoint and num > 1:
        shape = (1,) + np.broadcast_shapes(shape_of(start), shape_of(stop))
        last = reshape(stop * np.ones(shape[1:]), shape)
        y = concatenate([getitem(y, slice(0, num - 1)), last])
    if axis != 0:
        y = moveaxis(y, 0, axis)
    if dtype is not None and np.dtype(dtype).kind in "biu":
        y = concrete(lambda v: np.asarray(v).astype(dtype), y)
    return (y, step) if retstep else y


@numpy_when_plain
def polyval(p, x):
    """Traced `numpy.polyval` by Horner's scheme, differentiable in `p` and `x`."""
    p = _as_array(p)
    y = np.zeros(np.shape(plain(x)))
    for k in range(shape_of(p)[0]):
        y = y * x + getitem(p, k)
    return y


# -- piecewise selection -------------------------------------------------------------------
@numpy_when_plain
def select(condlist, choicelist, default=0):
    """Traced `numpy.select`: the first true condition picks the choice."""
    if len(condlist) != len(choicelist):
        raise ValueError("list of cases must be same length as list of conditions")
    result = default
    for cond, choice in zip(condlist[::-1], choicelist[::-1]):
        result = where(np.asarray(concrete(np.asarray, cond), dtype=bool), choice, result)
    shape = np.broadcast_shapes(*(shape_of(c) for c in list(condlist) + list(choicelist)),
                                shape_of(default))
    return result if shape_of(result) == shape else broadcast_to(result, shape)


@numpy_when_plain
def piecewise(x, condlist, funclist, *args, **kw):
    """Traced `numpy.piecewise`: each function sees only the elements of its condition
    (later conditions win, as in NumPy); elements no condition covers are 0."""
    shape = shape_of(x)
    if isinstance(condlist, np.ndarray) and condlist.ndim == len(shape) or \
            not isinstance(condlist, (list, tuple)):
        condlist = [condlist]
    conds = [np.broadcast_to(np.asarray(concrete(np.asarray, c), dtype=bool), shape)
             for c in condlist]
    if len(funclist) == len(conds) + 1:
        conds.append(~np.any(conds, axis=0))
    elif len(funclist) != len(conds):
        raise ValueError(f"with {len(conds)} condition(s), either {len(conds)} or "
                         f"{len(conds) + 1} functions are expected")
    out = np.zeros(shape, dtype=np.result_type(unwrap(x)))
    for cond, fun in zip(conds, funclist):
        if not callable(fun):
            out = where(cond, fun, out)
        elif cond.any():
            index = np.nonzero(cond)
            values = fun(getitem(x, index), *args, **kw)
            values = broadcast_to(values, (len(index[0]),)) if len(shape_of(values)) == 0 \
                else values
            out = where(cond, untake(values, index, shape), out)
    return out


@numpy_when_plain
def heaviside(x1, x2):
    """Traced `numpy.heaviside`: piecewise constant in `x1` (plain when only `x1` is
    traced); where `x1 == 0` the value and gradient are those of `x2`."""
    step = concrete(np.heaviside, x1, 0.0)
    if not contains_tracer(x2):
        return concrete(np.heaviside, x1, x2)
    return where(np.asarray(concrete(np.equal, x1, 0.0)), x2, step)


@numpy_when_plain
def nan_to_num(x, copy=True, nan=0.0, posinf=None, neginf=None):
    """Traced `numpy.nan_to_num`: NaN and infinities replaced (gradient 0 there, 1
    elsewhere)."""
    info = np.finfo(np.result_type(unwrap(x)))
    value = np.asarray(plain(x))
    out = x
    for mask, fill in ((np.isnan(value), nan),
                       (np.isposinf(value), info.max if posinf is None else posinf),
                       (np.isneginf(value), info.min if neginf is None else neginf)):
        if mask.any():
            out = where(mask, fill, out)
    concrete(np.isfinite, x)  # the positions of the replaced values: a guard
    return copy_of(out) if copy and out is x else out


# -- complex parts (ops in ardiff.ops.complex_parts; a real value is its own real part) ------
@numpy_when_plain
def real(val):
    """Traced `numpy.real`: the value itself when it is real."""
    return complex_parts.real(val) if np.iscomplexobj(unwrap(val)) else val


@numpy_when_plain
def imag(val):
    """Traced `numpy.imag`; zeros (plain, no gradient) for a real value."""
    if np.iscomplexobj(unwrap(val)):
        return complex_parts.imag(val)
    return np.zeros(shape_of(val), dtype=np.result_type(unwrap(val)))


@numpy_when_plain
def conjugate(x, *args, **kwargs):
    """Traced `numpy.conjugate`: the value itself when it is real."""
    return complex_parts.conj(x) if np.iscomplexobj(unwrap(x)) else x


@numpy_when_plain
def conj(x, *args, **kwargs):
    """Traced `numpy.conj`: the value itself when it is real."""
    return complex_parts.conj(x) if np.iscomplexobj(unwrap(x)) else x


@numpy_when_plain
def angle(z, deg=False):
    """Traced `numpy.angle`; for a real value 0 or pi (plain, piecewise constant)."""
    if np.iscomplexobj(unwrap(z)):
        return complex_parts.angle(z, deg=deg)
    return concrete(np.angle, z, deg=deg)
