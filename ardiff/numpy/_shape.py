"""Shape functions of `ardiff.numpy`, composed from the table's shape ops.

Reorderings and copies (flip, roll, repeat, tile, sort, diagonal, padding by
reflection, ...) are one `getitem` with an index array computed on plain
integers, so their gradients come from `getitem`'s adjoint.
"""

from __future__ import annotations

import numpy as np

from ..graph import unwrap
from ..ops.elementwise import add, where

# ops whose namespace wrapper below keeps the NumPy name: imported under a private alias
from ..ops.shape import broadcast_to as _broadcast_to
from ..ops.shape import concatenate as _concatenate
from ..ops.shape import getitem, untake
from ..ops.shape import reshape as _reshape
from ..ops.shape import transpose as _transpose


def _shape(a):
    return np.shape(unwrap(a))


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
    perm = list(range(len(_shape(a))))
    perm[axis1], perm[axis2] = perm[axis2], perm[axis1]
    return _transpose(a, tuple(perm))


def moveaxis(a, source, destination):
    """Traced `numpy.moveaxis`."""
    ndim = len(_shape(a))
    src = [s % ndim for s in np.atleast_1d(source)]
    dst = [d % ndim for d in np.atleast_1d(destination)]
    order = [n for n in range(ndim) if n not in src]
    for d, s in sorted(zip(dst, src)):
        order.insert(d, s)
    return _transpose(a, tuple(order))


def expand_dims(a, axis):
    """Traced `numpy.expand_dims`."""
    return _reshape(a, _shape_after(np.expand_dims, _shape(a), axis))


def squeeze(a, axis=None):
    """Traced `numpy.squeeze`."""
    return _reshape(a, _shape_after(np.squeeze, _shape(a), axis))


def broadcast_to(a, shape):
    """Traced `numpy.broadcast_to`."""
    shape = (int(shape),) if isinstance(shape, (int, np.integer)) else tuple(shape)
    return _broadcast_to(a, shape)


def atleast_1d(*arys):
    """Traced `numpy.atleast_1d`."""
    out = [a if len(_shape(a)) >= 1 else _reshape(a, (1,)) for a in arys]
    return out[0] if len(out) == 1 else out


def atleast_2d(*arys):
    """Traced `numpy.atleast_2d`."""
    out = [a if len(_shape(a)) >= 2 else _reshape(a, (1,) * (2 - len(_shape(a))) + _shape(a))
           for a in arys]
    return out[0] if len(out) == 1 else out


def atleast_3d(*arys):
    """Traced `numpy.atleast_3d`."""
    out = [_reshape(a, _shape_after(np.atleast_3d, _shape(a))) for a in arys]
    return out[0] if len(out) == 1 else out


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
    ndim = len(_shape(arrays[0])) + 1
    axis = axis % ndim
    return concatenate([expand_dims(a, axis) for a in arrays], axis=axis, out=out)


def hstack(tup, **kwargs):
    """Traced `numpy.hstack`."""
    arrays = [atleast_1d(a) for a in tup]
    return concatenate(arrays, axis=0 if len(_shape(arrays[0])) == 1 else 1)


def vstack(tup, **kwargs):
    """Traced `numpy.vstack`."""
    return concatenate([atleast_2d(a) for a in tup], axis=0)


def _along(axis, ndim, index):
    return (slice(None),) * (axis % ndim) + (index,)


def _split_with(np_split, ary, indices_or_sections, axis):
    ndim = len(_shape(ary))
    pieces = np_split(np.arange(_shape(ary)[axis]), indices_or_sections)
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
    return split(ary, indices_or_sections, axis=1 if len(_shape(ary)) > 1 else 0)


def vsplit(ary, indices_or_sections):
    """Traced `numpy.vsplit`."""
    return split(ary, indices_or_sections, axis=0)


def take(a, indices, axis=None, **kwargs):
    """Traced `numpy.take`."""
    indices = np.asarray(unwrap(indices))
    if axis is None:
        return getitem(ravel(a), indices)
    return getitem(a, _along(axis, len(_shape(a)), indices))


def _reindex(a, axis, index_fun):
    """Reorder/copy `a` along `axis` by an integer index computed from arange."""
    n = _shape(a)[axis]
    return getitem(a, _along(axis, len(_shape(a)), index_fun(np.arange(n))))


def repeat(a, repeats, axis=None):
    """Traced `numpy.repeat`."""
    if axis is None:
        a, axis = ravel(a), 0
    return _reindex(a, axis, lambda i: np.repeat(i, unwrap(repeats)))


def tile(A, reps):
    """Traced `numpy.tile`."""
    reps = (int(reps),) if np.isscalar(reps) else tuple(reps)
    shape = _shape(A)
    n = max(len(shape), len(reps))
    A = _reshape(A, (1,) * (n - len(shape)) + shape)
    reps = (1,) * (n - len(reps)) + reps
    for axis, r in enumerate(reps):
        if r != 1:
            A = _reindex(A, axis, lambda i, r=r: np.tile(i, r))
    return A


def flip(m, axis=None):
    """Traced `numpy.flip`."""
    ndim = len(_shape(m))
    axes = range(ndim) if axis is None else [a % ndim for a in np.atleast_1d(axis)]
    index = tuple(slice(None, None, -1) if i in axes else slice(None) for i in range(ndim))
    return getitem(m, index)


def fliplr(m):
    """Traced `numpy.fliplr`."""
    return flip(m, 1)


def flipud(m):
    """Traced `numpy.flipud`."""
    return flip(m, 0)


def roll(a, shift, axis=None):
    """Traced `numpy.roll`."""
    if axis is None:
        return reshape(roll(ravel(a), shift, 0), _shape(a))
    shifts, axes = np.broadcast_arrays(np.atleast_1d(shift), np.atleast_1d(axis))
    for s, ax in zip(shifts, axes):
        a = _reindex(a, int(ax), lambda i, s=s: np.roll(i, s))
    return a


def diagonal(a, offset=0, axis1=0, axis2=1):
    """Traced `numpy.diagonal` (the diagonal becomes the last axis, as in NumPy)."""
    moved = moveaxis(a, (axis1, axis2), (-2, -1))
    n, m = _shape(moved)[-2:]
    rows = np.arange(max(0, -offset), min(n, m - offset))
    return getitem(moved, (Ellipsis, rows, rows + offset))


def diag(v, k=0):
    """Traced `numpy.diag`: extract a diagonal (2-D) or build a diagonal matrix (1-D)."""
    if len(_shape(v)) == 2:
        return diagonal(v, k)
    if len(_shape(v)) != 1:
        raise ValueError("diag: input must be 1-D or 2-D")
    n = _shape(v)[0] + abs(k)
    rows = np.arange(_shape(v)[0]) + max(0, -k)
    return untake(v, (rows, rows + k), (n, n))


def _triangle(np_fun, m, k):
    mask = np_fun(np.ones(_shape(m)[-2:], dtype=bool), k)
    return where(mask, m, 0.0)


def triu(m, k=0):
    """Traced `numpy.triu`."""
    return _triangle(np.triu, m, k)


def tril(m, k=0):
    """Traced `numpy.tril`."""
    return _triangle(np.tril, m, k)


def pad(array, pad_width, mode="constant", **kwargs):
    """Traced `numpy.pad` for modes constant, edge, reflect, symmetric and wrap."""
    shape = _shape(array)
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
    indices = np.asarray(unwrap(indices))
    if axis is None:
        return getitem(ravel(arr), indices)
    axis = axis % len(_shape(arr))
    grids = list(np.ogrid[tuple(slice(n) for n in indices.shape)])
    grids[axis] = indices
    return getitem(arr, tuple(grids))


def sort(a, axis=-1, kind=None, order=None):
    """Traced `numpy.sort` (gradients follow the sorting permutation)."""
    if axis is None:
        a, axis = ravel(a), 0
    order_idx = np.argsort(unwrap(a), axis=axis, kind="stable")
    return take_along_axis(a, order_idx, axis)
