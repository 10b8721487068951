"""Small NumPy functions of `ardiff.numpy` composed from the table's ops: copies, the
array-API names of NumPy 2 (`vecdot`, `matrix_transpose`, `cumulative_sum`, `unstack`,
...), selections by a plain condition, and the floating-point decompositions `modf`,
`frexp` and `ldexp`.

Every function here is NumPy's own when no argument is traced.  Integer parts (the
exponent of `frexp`, the integer part of `modf`) carry no gradient.
"""

from __future__ import annotations

import numpy as np

from ..graph import copy_of
from ..guards import concrete, plain
from ..op import shape_of
from ..ops.complex_parts import conj_if_complex
from ..ops.elementwise import multiply, power, trunc
from ..ops.reduce import cumprod, cumsum, sum_
from ..ops.shape import astype
from ._shape import (
    broadcast_to,
    concatenate,
    contains_tracer,
    diag,
    getitem,
    numpy_when_plain,
    ravel,
    stack,
    swapaxes,
    take,
)

#: Whether NumPy returns tuples where it used to return lists (`broadcast_arrays`).
_NUMPY_2 = np.lib.NumpyVersion(np.__version__) >= "2.0.0"


def _as_array(a):
    if isinstance(a, (list, tuple)) and contains_tracer(a):
        return stack([_as_array(item) for item in a])
    return a


@numpy_when_plain
def copy(a, order="K", subok=False):
    """Traced `numpy.copy`: a new traced object for the same value (`ardiff.graph.copy_of`)."""
    return copy_of(_as_array(a))


@numpy_when_plain
def vecdot(x1, x2, /, *, axis=-1):
    """Traced `numpy.vecdot`: `sum(conj(x1) * x2, axis)`."""
    return sum_(multiply(conj_if_complex(x1), x2), axis=axis)


@numpy_when_plain
def matrix_transpose(x, /):
    """Traced `numpy.matrix_transpose`: the last two axes swapped."""
    if len(shape_of(x)) < 2:
        raise ValueError("Input array must be at least 2-dimensional")
    return swapaxes(x, -1, -2)


def _cumulative(op, neutral, x, axis, include_initial):
    x = _as_array(x)
    if axis is None:
        if len(shape_of(x)) != 1:
            raise ValueError("axis must be specified for multi-dimensional arrays.")
        axis = 0
    out = op(x, axis=axis)
    if include_initial:
        shape = list(shape_of(x))
        shape[axis] = 1
        first = np.full(shape, neutral, dtype=np.result_type(plain(x)))
        out = concatenate([first, out], axis=axis)
    return out


@numpy_when_plain
def cumulative_sum(x, /, *, axis=None, dtype=None, out=None, include_initial=False):
    """Traced `numpy.cumulative_sum` (NumPy 2.1)."""
    if out is not None or dtype is not None:
        raise TypeError("ardiff.numpy.cumulative_sum: out= and dtype= cannot be traced.")
    return _cumulative(cumsum, 0, x, axis, include_initial)


@numpy_when_plain
def cumulative_prod(x, /, *, axis=None, dtype=None, out=None, include_initial=False):
    """Traced `numpy.cumulative_prod` (NumPy 2.1)."""
    if out is not None or dtype is not None:
        raise TypeError("ardiff.numpy.cumulative_prod: out= and dtype= cannot be traced.")
    return _cumulative(cumprod, 1, x, axis, include_initial)


@numpy_when_plain
def unstack(x, /, *, axis=0):
    """Traced `numpy.unstack` (NumPy 2.1): the slices along `axis`."""
    ndim = len(shape_of(x))
    if ndim == 0:
        raise ValueError("Input array must be at least 1-d.")
    axis %= ndim
    return tuple(getitem(x, (slice(None),) * axis + (i,)) for i in range(shape_of(x)[axis]))


@numpy_when_plain
def broadcast_arrays(*args, subok=False):
    """Traced `numpy.broadcast_arrays`."""
    shape = np.broadcast_shapes(*(np.shape(plain(a)) for a in args))
    out = [broadcast_to(a, shape) for a in args]
    return tuple(out) if _NUMPY_2 else out


@numpy_when_plain
def ediff1d(ary, to_end=None, to_begin=None):
    """Traced `numpy.ediff1d`: differences of the flattened array, with `to_begin` and
    `to_end` (traced or not) around them."""
    flat = ravel(_as_array(ary))
    parts = [getitem(flat, slice(1, None)) - getitem(flat, slice(None, -1))]
    if to_begin is not None:
        parts.insert(0, ravel(_as_array(to_begin)))
    if to_end is not None:
        parts.append(ravel(_as_array(to_end)))
    return concatenate(parts) if len(parts) > 1 else parts[0]


@numpy_when_plain
def diagflat(v, k=0):
    """Traced `numpy.diagflat`: the flattened input on diagonal `k`."""
    return diag(ravel(_as_array(v)), k)


@numpy_when_plain
def compress(condition, a, axis=None, out=None):
    """Traced `numpy.compress`: the slices where the plain `condition` holds."""
    if out is not None:
        raise TypeError("ardiff.numpy.compress: out= cannot be traced.")
    condition = np.ravel(concrete(np.asarray, condition))
    index = np.flatnonzero(condition)
    return take(a, index, axis=axis)


@numpy_when_plain
def extract(condition, arr):
    """Traced `numpy.extract`: the elements where the plain `condition` holds."""
    condition = np.ravel(concrete(np.asarray, condition))
    return take(ravel(_as_array(arr)), np.flatnonzero(condition))


@numpy_when_plain
def vander(x, N=None, increasing=False):
    """Traced `numpy.vander`: the columns are repeated products of `x`, as NumPy's."""
    x = _as_array(x)
    if len(shape_of(x)) != 1:
        raise ValueError("x must be a one-dimensional array or sequence.")
    n = shape_of(x)[0] if N is None else int(N)
    columns = [np.ones_like(plain(x))] if n > 0 else []
    for _ in range(1, n):
        columns.append(x if len(columns) == 1 else columns[-1] * x)
    if not increasing:
        columns = columns[::-1]
    if not columns:
        return np.zeros((shape_of(x)[0], 0), dtype=np.result_type(plain(x)))
    return stack(columns, axis=1)


@numpy_when_plain
def float_power(x1, x2, /):
    """Traced `numpy.float_power`: `power` in float64 (complex128 for complex input)."""
    target = np.result_type(plain(x1), plain(x2), np.float64)
    x1 = astype(x1, target) if np.result_type(plain(x1)) != target else x1
    x2 = astype(x2, target) if np.result_type(plain(x2)) != target else x2
    return power(x1, x2)


def _exponent_of(x):
    return np.frexp(x)[1]


@numpy_when_plain
def frexp(x, /):
    """Traced `numpy.frexp`: `(mantissa, exponent)`; the mantissa `x * 2**-exponent` is
    traced, the integer exponent is plain (a guard)."""
    exponent = concrete(_exponent_of, x)
    return multiply(x, np.ldexp(np.ones_like(plain(x)), -exponent)), exponent


@numpy_when_plain
def ldexp(x1, x2, /):
    """Traced `numpy.ldexp`: `x1 * 2**x2` with a plain integer `x2`."""
    if contains_tracer(x2):
        raise TypeError("ardiff.numpy.ldexp: the exponent is an integer, so it cannot be "
                        "traced; use x1 * 2.0 ** x2 for a float exponent.")
    scale = np.ldexp(np.ones_like(plain(x1), dtype=np.result_type(plain(x1), 1.0)), x2)
    return multiply(x1, scale)


@numpy_when_plain
def modf(x, /):
    """Traced `numpy.modf`: `(x - trunc(x), trunc(x))` (the integer part has gradient 0)."""
    whole = trunc(x)
    return x - whole, whole
