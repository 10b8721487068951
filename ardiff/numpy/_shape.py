"""Shape functions of `ardiff.numpy`, composed from the table's shape ops.

Reorderings and copies (flip, repeat, tile, sort, diagonal, padding by
reflection, ...) are one `getitem` with an index array computed on plain
integers, so their gradients come from `getitem`'s adjoint; `roll` is the
table's own `roll` op.
"""

from __future__ import annotations

import functools

import numpy as np

from ..graph import TracerBase, contains_tracer, unwrap
from ..guards import concrete
from ..op import shape_of
from ..ops.elementwise import add, where

# ops whose namespace wrapper below keeps the NumPy name: imported under a private alias
from ..ops.shape import broadcast_to as _broadcast_to
from ..ops.shape import concatenate as _concatenate
from ..ops.shape import getitem, untake
from ..ops.shape import reshape as _reshape
from ..ops.shape import roll as _roll
from ..ops.shape import transpose as _transpose


def numpy_when_plain(fun):
    """`fun`, except that a call without any traced argument is NumPy's namesake itself.

    Untraced calls then behave exactly as NumPy's, every option included (the traced
    implementation may support fewer options).  Where the installed NumPy lacks the
    function (`trapezoid` before NumPy 2.0), `fun` runs on plain values too.
    """
    numpy_fun = getattr(np, fun.__name__, None)

    @functools.wraps(fun)
    def wrapper(*args, **kwargs):
        if numpy_fun is not None and not contains_tracer(args) and \
                not contains_tracer(tuple(kwargs.values())):
            return numpy_fun(*args, **kwargs)
        return fun(*args, **kwargs)
    return wrapper


def plain_indices(indices) -> np.ndarray:
    """An integer index array; read with a guard when it comes from traced values."""
    if contains_tracer(indices):
        return np.asarray(concrete(np.asarray, indices))
    return np.asarray(indices)


def _shape_after(fun, shape, *args, **kwargs):
    """The shape `fun` would produce, computed on a zero-cost broadcast stand-in."""
    return fun(np.broadcast_to(np.empty((), dtype=bool), shape), *args, **kwargs).shape


def reshape(a, newshape=None, order="C", *, shape=None):
    """Traced `numpy.reshape` (C order)."""
    if order != "C":
        raise ValueError("ardiff.numpy.reshape: only order='C' is supported.")
    newshape = shape if newshape is None else newshape
    if isinstance(newshape, (int, np.integer)):
        newshape = (int(newshape),)
    return _reshape(a, tuple(newshape))


def ravel(a, order="C"):
    """Traced `numpy.ravel`."""
    return reshape(a, (-1,), order)


def transpose(a, axes=None):
    """Traced `numpy.transpose`."""
    return _transpose(a, None if axes is None else tuple(axes))


def swapaxes(a, axis1, axis2):
    """Traced `numpy.swapaxes`."""
    perm = list(range(len(shape_of(a))))
    perm[axis1], perm[axis2] = perm[axis2], perm[axis1]
    return _transpose(a, tuple(perm))


def moveaxis(a, source, destination):
    """Traced `numpy.moveaxis`."""
    ndim = len(shape_of(a))
    src = [s % ndim for s in np.atleast_1d(source)]
    dst = [d % ndim for d in np.atleast_1d(destination)]
    order = [n for n in range(ndim) if n not in src]
    for d, s in sorted(zip(dst, src)):
        order.insert(d, s)
    return _transpose(a, tuple(order))


def expand_dims(a, axis):
    """Traced `numpy.expand_dims`."""
    return _reshape(a, _shape_after(np.expand_dims, shape_of(a), axis))


def squeeze(a, axis=None):
    """Traced `numpy.squeeze`."""
    return _reshape(a, _shape_after(np.squeeze, shape_of(a), axis))


def broadcast_to(a, shape):
    """Traced `numpy.broadcast_to`."""
    shape = (int(shape),) if isinstance(shape, (int, np.integer)) else tuple(shape)
    return _broadcast_to(a, shape)


def atleast_1d(*arys):
    """Traced `numpy.atleast_1d` (a tuple for several arrays, as in NumPy 2)."""
    out = [a if len(shape_of(a)) >= 1 else _reshape(a, (1,)) for a in arys]
    return out[0] if len(out) == 1 else tuple(out)


def atleast_2d(*arys):
    """Traced `numpy.atleast_2d` (a tuple for several arrays, as in NumPy 2)."""
    out = [a if len(shape_of(a)) >= 2 else _reshape(a, (1,) * (2 - len(shape_of(a))) + shape_of(a))
           for a in arys]
    return out[0] if len(out) == 1 else tuple(out)


def atleast_3d(*arys):
    """Traced `numpy.atleast_3d` (a tuple for several arrays, as in NumPy 2)."""
    out = [_reshape(a, _shape_after(np.atleast_3d, shape_of(a))) for a in arys]
    return out[0] if len(out) == 1 else tuple(out)


def concatenate(arrays, axis=0, out=None, **kwargs):
    """Traced `numpy.concatenate`."""
    if out is not None:
        raise TypeError("ardiff.numpy.concatenate: out= cannot be traced.")
    arrays = list(arrays)
    if axis is None:
        arrays, axis = [ravel(a) for a in arrays], 0
    return _concatenate(*arrays, axis=axis)


def stack(arrays, axis=0, out=None, **kwargs):
    """Traced `numpy.stack`."""
    arrays = list(arrays)
    if not arrays:
        raise ValueError("need at least one array to stack")
    ndim = len(shape_of(arrays[0])) + 1
    axis = axis % ndim
    return concatenate([expand_dims(a, axis) for a in arrays], axis=axis, out=out)


def hstack(tup, **kwargs):
    """Traced `numpy.hstack`."""
    arrays = [atleast_1d(a) for a in tup]
    return concatenate(arrays, axis=0 if len(shape_of(arrays[0])) == 1 else 1)


def vstack(tup, **kwargs):
    """Traced `numpy.vstack`."""
    return concatenate([atleast_2d(a) for a in tup], axis=0)


def _along(axis, ndim, index):
    return (slice(None),) * (axis % ndim) + (index,)


def _split_with(np_split, ary, indices_or_sections, axis):
    ndim = len(shape_of(ary))
    pieces = np_split(np.arange(shape_of(ary)[axis]), indices_or_sections)
    out = []
    for p in pieces:
        start = int(p[0]) if len(p) else 0
        out.append(getitem(ary, _along(axis, ndim, slice(start, start + len(p)))))
    return out


def split(ary, indices_or_sections, axis=0):
    """Traced `numpy.split`."""
    return _split_with(np.split, ary, indices_or_sections, axis)


def array_split(ary, indices_or_sections, axis=0):
    """Traced `numpy.array_split`."""
    return _split_with(np.array_split, ary, indices_or_sections, axis)


def hsplit(ary, indices_or_sections):
    """Traced `numpy.hsplit`."""
    return split(ary, indices_or_sections, axis=1 if len(shape_of(ary)) > 1 else 0)


def vsplit(ary, indices_or_sections):
    """Traced `numpy.vsplit`."""
    return split(ary, indices_or_sections, axis=0)


@numpy_when_plain
def take(a, indices, axis=None, out=None, mode="raise"):
    """Traced `numpy.take` (modes raise, wrap and clip)."""
    if out is not None:
        raise TypeError("ardiff.numpy.take: out= cannot be traced.")
    indices = plain_indices(indices)
    if axis is None:
        a, axis = ravel(a), 0
    n = shape_of(a)[axis]
    if mode == "wrap":
        indices = indices % n
    elif mode == "clip":
        indices = np.clip(indices, 0, n - 1)
    elif mode != "raise":
        raise ValueError(f"ardiff.numpy.take: unknown mode {mode!r}.")
    return getitem(a, _along(axis, len(shape_of(a)), indices))


def _reindex(a, axis, index_fun):
    """Reorder/copy `a` along `axis` by an integer index computed from arange."""
    n = shape_of(a)[axis]
    return getitem(a, _along(axis, len(shape_of(a)), index_fun(np.arange(n))))


def repeat(a, repeats, axis=None):
    """Traced `numpy.repeat`."""
    if axis is None:
        a, axis = ravel(a), 0
    return _reindex(a, axis, lambda i: np.repeat(i, unwrap(repeats)))


def tile(A, reps):
    """Traced `numpy.tile`."""
    reps = (int(reps),) if np.isscalar(reps) else tuple(reps)
    shape = shape_of(A)
    n = max(len(shape), len(reps))
    A = _reshape(A, (1,) * (n - len(shape)) + shape)
    reps = (1,) * (n - len(reps)) + reps
    for axis, r in enumerate(reps):
        if r != 1:
            A = _reindex(A, axis, lambda i, r=r: np.tile(i, r))
    return A


def flip(m, axis=None):
    """Traced `numpy.flip`."""
    ndim = len(shape_of(m))
    axes = range(ndim) if axis is None else [a % ndim for a in np.atleast_1d(axis)]
    index = tuple(slice(None, None, -1) if i in axes else slice(None) for i in range(ndim))
    return getitem(m, index)


def fliplr(m):
    """Traced `numpy.fliplr`."""
    return flip(m, 1)


def flipud(m):
    """Traced `numpy.flipud`."""
    return flip(m, 0)


def _ints(value):
    """An int, or a tuple of ints for a sequence (plain values for the op's record)."""
    value = plain_indices(value)
    return int(value) if value.ndim == 0 else tuple(int(v) for v in value.ravel())


def roll(a, shift, axis=None):
    """Traced `numpy.roll`: one `roll` op, shifts and axes as NumPy takes them.

    `shift` and `axis` are ints or sequences of ints (broadcast against each other);
    `axis=None` rolls the flattened array and restores the shape.
    """
    shift = _ints(shift)
    if axis is not None:
        axis = _ints(axis)
    return _roll(a, shift, axis)


def diagonal(a, offset=0, axis1=0, axis2=1):
    """Traced `numpy.diagonal` (the diagonal becomes the last axis, as in NumPy)."""
    moved = moveaxis(a, (axis1, axis2), (-2, -1))
    n, m = shape_of(moved)[-2:]
    rows = np.arange(max(0, -offset), min(n, m - offset))
    return getitem(moved, (Ellipsis, rows, rows + offset))


def diag(v, k=0):
    """Traced `numpy.diag`: extract a diagonal (2-D) or build a diagonal matrix (1-D)."""
    if len(shape_of(v)) == 2:
        return diagonal(v, k)
    if len(shape_of(v)) != 1:
        raise ValueError("diag: input must be 1-D or 2-D")
    n = shape_of(v)[0] + abs(k)
    rows = np.arange(shape_of(v)[0]) + max(0, -k)
    return untake(v, (rows, rows + k), (n, n))


def _triangle(np_fun, m, k):
    mask = np_fun(np.ones(shape_of(m)[-2:], dtype=bool), k)
    return where(mask, m, 0.0)


def triu(m, k=0):
    """Traced `numpy.triu`."""
    return _triangle(np.triu, m, k)


def tril(m, k=0):
    """Traced `numpy.tril`."""
    return _triangle(np.tril, m, k)


def pad(array, pad_width, mode="constant", **kwargs):
    """Traced `numpy.pad` for modes constant, edge, reflect, symmetric and wrap."""
    shape = shape_of(array)
    widths = np.broadcast_to(np.asarray(pad_width, dtype=int), (len(shape), 2))
    if mode == "constant":
        inner = tuple(slice(int(b), int(b) + n) for (b, _), n in zip(widths, shape))
        new_shape = tuple(int(b + a) + n for (b, a), n in zip(widths, shape))
        out = untake(array, inner, new_shape)
        fill = np.pad(np.zeros(shape, dtype=np.result_type(unwrap(array))), pad_width, mode,
                      **kwargs)
        return add(out, fill) if np.any(fill) else out
    if mode not in ("edge", "reflect", "symmetric", "wrap"):
        raise ValueError(f"ardiff.numpy.pad: mode {mode!r} is not supported on traced values.")
    for axis, (before, after) in enumerate(widths):
        if before or after:
            array = _reindex(array, axis, lambda i, b=int(before), a=int(after):
                             np.pad(i, (b, a), mode, **kwargs))
    return array


def take_along_axis(arr, indices, axis):
    """Traced `numpy.take_along_axis`."""
    indices = plain_indices(indices)
    if axis is None:
        return getitem(ravel(arr), indices)
    axis = axis % len(shape_of(arr))
    grids = list(np.ogrid[tuple(slice(n) for n in indices.shape)])
    grids[axis] = indices
    return getitem(arr, tuple(grids))


def sort(a, axis=-1, kind=None, order=None):
    """Traced `numpy.sort` (gradients follow the sorting permutation)."""
    if axis is None:
        a, axis = ravel(a), 0
    # the permutation is a fact read off the values: a guard for compiled replays
    order_idx = concrete(np.argsort, a, axis=axis, kind="stable")
    return take_along_axis(a, order_idx, axis)


# -- more reorderings, joins and splits (composed; NumPy's own when nothing is traced) ------
def _labelled(a) -> np.ndarray:
    """Element numbers 1..size arranged like `a` (0 is left free for "not from `a`")."""
    return np.arange(1, int(np.prod(shape_of(a), dtype=np.int64)) + 1).reshape(shape_of(a))


def _gather_labels(labels: np.ndarray, first, second=None):
    """The array whose element is `first.flat[l - 1]` where the label l > 0 and
    `second.flat[-l - 1]` where l < 0: the result of a NumPy function run on labels."""
    labels = np.asarray(labels)
    if second is None or not np.any(labels < 0):
        return getitem(ravel(first), labels - 1)
    if np.all(labels < 0):
        return getitem(ravel(second), -labels - 1)
    ours = labels > 0
    return where(ours, getitem(ravel(first), np.where(ours, labels - 1, 0)),
                 getitem(ravel(second), np.where(ours, 0, -labels - 1)))


@numpy_when_plain
def rot90(m, k=1, axes=(0, 1)):
    """Traced `numpy.rot90`: a flip and a transposition."""
    ndim = len(shape_of(m))
    axes = tuple(a % ndim for a in axes)
    if len(axes) != 2 or axes[0] == axes[1]:
        raise ValueError("ardiff.numpy.rot90: axes must be two different axes.")
    k %= 4
    if k == 0:
        return m
    if k == 2:
        return flip(flip(m, axes[0]), axes[1])
    perm = list(range(ndim))
    perm[axes[0]], perm[axes[1]] = perm[axes[1]], perm[axes[0]]
    if k == 1:
        return _transpose(flip(m, axes[1]), tuple(perm))
    return flip(_transpose(m, tuple(perm)), axes[1])


@numpy_when_plain
def rollaxis(a, axis, start=0):
    """Traced `numpy.rollaxis`."""
    ndim = len(shape_of(a))
    axis %= ndim
    start = start + ndim if start < 0 else start
    if not 0 <= start <= ndim:
        raise np.exceptions.AxisError(f"start={start} out of range for {ndim} dimensions")
    if axis < start:
        start -= 1
    if axis == start:
        return a
    perm = [i for i in range(ndim) if i != axis]
    perm.insert(start, axis)
    return _transpose(a, tuple(perm))


def as_traced_array(obj):
    """`obj` as one array: a (nested) list or tuple holding traced values is stacked into
    one traced array, anything else untraced goes through `numpy.asarray`."""
    if isinstance(obj, TracerBase):
        return obj
    if isinstance(obj, (list, tuple)) and contains_tracer(obj):
        return stack([as_traced_array(item) for item in obj])
    return np.asarray(obj)


@numpy_when_plain
def append(arr, values, axis=None):
    """Traced `numpy.append` (lists holding traced values included)."""
    arr, values = as_traced_array(arr), as_traced_array(values)
    if axis is None:
        return _concatenate(ravel(arr), ravel(values), axis=0)
    return _concatenate(arr, values, axis=axis)


@numpy_when_plain
def insert(arr, obj, values, axis=None):
    """Traced `numpy.insert`: NumPy's own insert, run on element labels, says which element
    of `arr` or of `values` goes where (broadcasting of `values` included)."""
    from_values = -np.arange(1, np.size(unwrap(values)) + 1).reshape(np.shape(unwrap(values)))
    labels = np.insert(_labelled(arr), plain_indices(obj) if contains_tracer(obj) else obj,
                       from_values, axis)
    return _gather_labels(labels, arr, values)


@numpy_when_plain
def delete(arr, obj, axis=None):
    """Traced `numpy.delete`."""
    return _gather_labels(np.delete(_labelled(arr), obj, axis), arr)


@numpy_when_plain
def dsplit(ary, indices_or_sections):
    """Traced `numpy.dsplit` (along the third axis)."""
    if len(shape_of(ary)) < 3:
        raise ValueError("dsplit only works on arrays of 3 or more dimensions")
    return split(ary, indices_or_sections, axis=2)


@numpy_when_plain
def dstack(tup):
    """Traced `numpy.dstack`."""
    arrays = [atleast_3d(a) for a in tup]
    return concatenate(arrays, axis=2)


@numpy_when_plain
def column_stack(tup):
    """Traced `numpy.column_stack`: 1-D arrays become columns."""
    arrays = [_reshape(a, (-1, 1)) if len(shape_of(a)) < 2 else a for a in tup]
    return concatenate(arrays, axis=1)


@numpy_when_plain
def row_stack(tup, *, dtype=None, casting="same_kind"):
    """Traced `numpy.row_stack` (NumPy's deprecated alias of `vstack`)."""
    return vstack(tup)


def _nesting_depth(obj) -> int:
    if isinstance(obj, list):
        if not obj:
            raise ValueError("ardiff.numpy.block: lists cannot be empty.")
        depths = {_nesting_depth(item) for item in obj}
        if len(depths) != 1:
            raise ValueError("ardiff.numpy.block: list depths are mismatched.")
        return 1 + depths.pop()
    return 0


def _leaves(obj):
    if isinstance(obj, list):
        for item in obj:
            yield from _leaves(item)
    else:
        yield obj


@numpy_when_plain
def block(arrays):
    """Traced `numpy.block`: the innermost lists are joined along the last axis, the
    next ones along the second to last, and so on."""
    depth = _nesting_depth(arrays)
    ndim = max([depth] + [len(shape_of(a)) for a in _leaves(arrays)])

    def assemble(obj, level):
        if not isinstance(obj, list):
            shape = shape_of(obj)
            return _reshape(obj, (1,) * (ndim - len(shape)) + shape)
        parts = [assemble(item, level + 1) for item in obj]
        return _concatenate(*parts, axis=ndim - depth + level)

    return assemble(arrays, 0)


@numpy_when_plain
def meshgrid(*xi, copy=True, sparse=False, indexing="xy"):
    """Traced `numpy.meshgrid` (a tuple of arrays, as in NumPy 2)."""
    if indexing not in ("xy", "ij"):
        raise ValueError("Valid values for `indexing` are 'xy' and 'ij'.")
    ndim = len(xi)
    ones = (1,) * ndim
    out = [_reshape(x, ones[:i] + (-1,) + ones[i + 1:]) for i, x in enumerate(xi)]
    if indexing == "xy" and ndim > 1:
        out[0] = _reshape(out[0], (1, -1) + ones[2:])
        out[1] = _reshape(out[1], (-1, 1) + ones[2:])
    if not sparse:
        shape = np.broadcast_shapes(*(shape_of(o) for o in out))
        out = [_broadcast_to(o, shape) for o in out]
    return tuple(out)


@numpy_when_plain
def partition(a, kth, axis=-1, kind="introselect", order=None):
    """Traced `numpy.partition`: the values in NumPy's order, read off `numpy.argpartition`
    (a guard for compiled replays); gradients follow the values."""
    if axis is None:
        a, axis = ravel(a), -1
    index = concrete(np.argpartition, a, kth, axis=axis, kind=kind)
    return take_along_axis(a, index, axis)


def make_diagonal(D, offset=0, axis1=0, axis2=1):
    """An array whose diagonal (`numpy.diagonal(A, offset, axis1, axis2)`) is `D`, zero
    elsewhere: autograd's `make_diagonal`, the complement of `diagonal` (NumPy has none).

    `D`'s last axis runs along the diagonal; its other axes stay in order in the result,
    which has one more axis.  Traced or not, the result is a scatter of `D` (one `untake`).
    """
    shape = shape_of(D)
    if not shape:
        raise ValueError("make_diagonal: D must have at least one axis (the diagonal).")
    n = shape[-1]
    rows = np.arange(n) + max(0, -offset)
    size = n + abs(offset)
    square = untake(D, (Ellipsis, rows, rows + offset), shape[:-1] + (size, size))
    return moveaxis(square, (-2, -1), (axis1, axis2))


class AxisConcatenator:
    """`numpy.r_` and `numpy.c_` for traced values: `x[a, b, 1:4]` joins its items.

    Without a traced item the expression is NumPy's own.  With one, slices become the
    ranges NumPy makes of them (`1:10:2`, or `0:1:5j` for a linspace), items are raised
    to `ndmin` axes (1-D items become columns for `c_`) and joined along `axis`; NumPy's
    string directives (`'r'`, `'0,2,1'`) are not supported on traced values.
    """

    def __init__(self, numpy_concatenator, axis: int, ndmin: int):
        self.numpy_concatenator = numpy_concatenator
        self.axis = axis
        self.ndmin = ndmin

    def __getitem__(self, key):
        items = key if isinstance(key, tuple) else (key,)
        if not contains_tracer(items):
            return self.numpy_concatenator[key]
        arrays = []
        for item in items:
            if isinstance(item, str):
                raise TypeError("ardiff.numpy.r_/c_: string directives are not supported on "
                                "traced values; use ardiff.numpy.concatenate or stack.")
            if isinstance(item, slice):
                item = np.r_[item]  # plain: a range or a linspace
            item = as_traced_array(item)
            ndim = len(shape_of(item))
            if ndim < self.ndmin:  # scalars and 1-D items become columns (c_) or rows (r_)
                item = reshape(item, shape_of(item) + (1,) * (self.ndmin - ndim))
            arrays.append(item)
        return concatenate(arrays, axis=self.axis)

    def __len__(self) -> int:
        return 0


r_ = AxisConcatenator(np.r_, axis=0, ndmin=1)
c_ = AxisConcatenator(np.c_, axis=-1, ndmin=2)
