"""`ardiff.numpy`: the NumPy namespace whose functions trace.

`import ardiff.numpy as anp` and write NumPy code.  Differentiable functions
come from the op table (`ardiff.ops`) or are composed here from it;
functions without a gradient (`argmax`, `zeros_like`, comparisons, ...) work
on the plain values; anything else falls through to NumPy itself, where a traced
argument raises a clear error instead of silently losing its gradient.
`anp.random` is NumPy's random module.
"""

from __future__ import annotations

import builtins as _builtins

import numpy as _np

# Public names of other modules under private aliases: this namespace exports NumPy's
# names only (see __all__ at the end).
from ..graph import TracerBase as _TracerBase
from ..graph import buffer_like as _buffer_like
from ..graph import contains_tracer as _contains_tracer
from ..graph import copy_of as _copy_of
from ..graph import unwrap as _unwrap
from ..guards import concrete as _concrete
from ..guards import plain as _plain
from ..op import OPS as _OPS
from ..ops.elementwise import (  # noqa: F401
    absolute,
    add,
    arccos,
    arccosh,
    arcsin,
    arcsinh,
    arctan,
    arctan2,
    arctanh,
    cbrt,
    ceil,
    copysign,
    cos,
    cosh,
    deg2rad,
    divide,
    exp,
    exp2,
    expm1,
    floor,
    fmax,
    fmin,
    fmod,
    hypot,
    log,
    log1p,
    log2,
    log10,
    logaddexp,
    logaddexp2,
    maximum,
    minimum,
    multiply,
    negative,
    positive,
    power,
    rad2deg,
    reciprocal,
    remainder,
    rint,
    sign,
    sin,
    sinc,
    sinh,
    sqrt,
    square,
    subtract,
    tan,
    tanh,
    trunc,
)
from ..ops.linalg import dot, matmul, tensordot  # noqa: F401
from ..ops.linalg import einsum as _einsum
from ..ops.shape import astype as _astype
from . import (  # noqa: F401
    fft,
    linalg,
    random,  # noqa: F401  (NumPy's random module, importable as ardiff.numpy.random)
)
from ._arrays import (  # noqa: F401
    broadcast_arrays,
    compress,
    cumulative_prod,
    cumulative_sum,
    diagflat,
    ediff1d,
    extract,
    float_power,
    frexp,
    ldexp,
    matrix_transpose,
    modf,
    unstack,
    vander,
    vecdot,
)
from ._arrays import copy as _copy
from ._counting import (  # noqa: F401
    bincount,
    histogram,
    histogram2d,
    histogram_bin_edges,
    histogramdd,
    unique,
)
from ._numeric import (  # noqa: F401
    angle,
    conj,
    conjugate,
    convolve,
    correlate,
    cross,
    diff,
    gradient,
    heaviside,
    imag,
    interp,
    linspace,
    nan_to_num,
    piecewise,
    polyval,
    real,
    select,
)
from ._shape import (  # noqa: F401
    append,
    array_split,
    atleast_1d,
    atleast_2d,
    atleast_3d,
    block,
    broadcast_to,
    c_,
    column_stack,
    concatenate,
    delete,
    diag,
    diagonal,
    dsplit,
    dstack,
    expand_dims,
    flip,
    fliplr,
    flipud,
    hsplit,
    hstack,
    insert,
    make_diagonal,
    meshgrid,
    moveaxis,
    pad,
    partition,
    r_,
    ravel,
    repeat,
    reshape,
    roll,
    rollaxis,
    rot90,
    row_stack,
    sort,
    split,
    squeeze,
    stack,
    swapaxes,
    take,
    take_along_axis,
    tile,
    transpose,
    tril,
    triu,
    vsplit,
    vstack,
)
from ._shape import numpy_when_plain as _numpy_when_plain
from ._stats import (  # noqa: F401
    average,
    corrcoef,
    cov,
    median,
    nancumprod,
    nancumsum,
    nanmax,
    nanmean,
    nanmedian,
    nanmin,
    nanpercentile,
    nanprod,
    nanquantile,
    nanstd,
    nansum,
    nanvar,
    percentile,
    ptp,
    quantile,
    trapezoid,
)

abs = absolute
fabs = absolute
true_divide = divide
mod = remainder
radians = deg2rad
degrees = rad2deg
fix = trunc
if hasattr(_np, "trapz"):  # NumPy < 2.4 (deprecated there since 2.0)
    trapz = trapezoid


def divmod(x1, x2, out=None):
    """`(x1 // x2, x1 % x2)`: the quotient is plain (piecewise constant, read as a guard),
    the remainder traced."""
    if out is not None and any(o is not None for o in out):
        raise TypeError("ardiff.numpy.divmod: out= cannot be traced.")
    return _concrete(_np.floor_divide, x1, x2), remainder(x1, x2)


def round(a, decimals=0, out=None):
    """Round to `decimals` (zero gradient almost everywhere)."""
    _no_out("round", out)
    return _OPS["round"](a, decimals=decimals)


around = round


def _no_out(name, out, dtype=None):
    if out is not None:
        raise TypeError(f"ardiff.numpy.{name}: out= writes in place and cannot be traced.")
    if dtype is not None:
        raise TypeError(f"ardiff.numpy.{name}: dtype= is not supported on traced values; "
                        "cast with .astype() before or after.")


# -- reductions ------------------------------------------------------------------
def _reduction(name, note="with `axis` and `keepdims`", dtype_argument=True):
    """The traced `numpy.<name>`; without `dtype_argument` its third positional
    parameter is `out`, as for `numpy.max`."""
    op = _OPS[name]
    numpy_reduction = getattr(_np, name)

    def reduce(a, axis=None, dtype=None, out=None, keepdims=False, **kwargs):
        if isinstance(a, _TracerBase) and dtype is None and out is None and not kwargs \
                and not isinstance(axis, list):  # the usual traced call, at once
            return op(a, axis=axis, keepdims=bool(keepdims))
        if not _contains_tracer(a):  # nothing traced: exactly NumPy, every option included
            return numpy_reduction(a, axis=axis, dtype=dtype, out=out, keepdims=keepdims,
                                   **kwargs)
        _no_out(name, out, dtype)
        a = asarray(a)  # a list of traced values becomes one traced array
        initial = kwargs.get("initial")  # NumPy's "<no value>" sentinel, known by its repr
        if initial is not None and repr(initial) != "<no value>" or "where" in kwargs:
            raise TypeError(f"ardiff.numpy.{name}: initial= and where= are not supported.")
        if isinstance(axis, list):
            axis = tuple(axis)
        return op(a, axis=axis, keepdims=bool(keepdims))

    def extreme(a, axis=None, out=None, keepdims=False, **kwargs):
        if not _contains_tracer(a):
            return numpy_reduction(a, axis=axis, out=out, keepdims=keepdims, **kwargs)
        return reduce(a, axis, None, out, keepdims, **kwargs)

    traced = reduce if dtype_argument else extreme
    traced.__name__ = name
    traced.__doc__ = f"Traced `numpy.{name}` {note}."
    return traced


sum = _reduction("sum")
mean = _reduction("mean")
prod = _reduction("prod")
max = amax = _reduction("max", "(ties share the gradient evenly)", dtype_argument=False)
min = amin = _reduction("min", "(ties share the gradient evenly)", dtype_argument=False)


def _axis(axis):
    return tuple(axis) if isinstance(axis, list) else axis


@_numpy_when_plain
def var(a, axis=None, dtype=None, out=None, ddof=0, keepdims=False, **kwargs):
    """Traced `numpy.var`."""
    _no_out("var", out, dtype)
    return _OPS["var"](asarray(a), axis=_axis(axis), ddof=ddof, keepdims=bool(keepdims))


@_numpy_when_plain
def std(a, axis=None, dtype=None, out=None, ddof=0, keepdims=False, **kwargs):
    """Traced `numpy.std` (gradient 0 where the standard deviation is 0)."""
    _no_out("std", out, dtype)
    return _OPS["std"](asarray(a), axis=_axis(axis), ddof=ddof, keepdims=bool(keepdims))


@_numpy_when_plain
def cumsum(a, axis=None, dtype=None, out=None):
    """Traced `numpy.cumsum`."""
    _no_out("cumsum", out, dtype)
    return _OPS["cumsum"](asarray(a), axis=axis)


@_numpy_when_plain
def cumprod(a, axis=None, dtype=None, out=None):
    """Traced `numpy.cumprod`."""
    _no_out("cumprod", out, dtype)
    return _OPS["cumprod"](asarray(a), axis=axis)


def real_if_close(a, tol=100):
    """Traced `numpy.real_if_close`: a real input is returned as it is (complex values are
    not traced, issue 14)."""
    if not _contains_tracer(a):
        return _np.real_if_close(a, tol=tol)
    return asarray(a)


# -- selection ------------------------------------------------------------------
def where(condition, x=None, y=None):
    """Traced `numpy.where`; the one-argument form returns plain indices."""
    if x is None and y is None:
        return _np.where(_unwrap(condition))
    return _OPS["where"](_plain(condition), x, y)


def clip(a, a_min=None, a_max=None, out=None, *, min=None, max=None, **kwargs):
    """Traced `numpy.clip`; the gradient passes where `a_min <= a <= a_max`."""
    _no_out("clip", out)
    a_min = min if a_min is None else a_min
    a_max = max if a_max is None else a_max
    if a_min is None and a_max is None:  # NumPy >= 2.1: a copy (earlier: ValueError)
        if _np.lib.NumpyVersion(_np.__version__) < "2.1.0":
            raise ValueError("ardiff.numpy.clip: give at least one of a_min and a_max.")
        return asarray(a)
    return _OPS["clip"](a, a_min, a_max)


# -- linear algebra composed from the table ---------------------------------------
def _sublist_letters(sublist) -> str:
    letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
    return "".join("..." if s is Ellipsis else letters[int(s)] for s in sublist)


def _subscripts_from_sublists(args) -> tuple:
    """`einsum(op0, sublist0, op1, sublist1, ..., [sublistout])` -> `(string, operands)`."""
    operands = list(args[0::2][:len(args) // 2])
    inputs = [_sublist_letters(s) for s in args[1::2][:len(args) // 2]]
    subscripts = ",".join(inputs)
    if len(args) % 2:
        subscripts += "->" + _sublist_letters(args[-1])
    return subscripts, operands


def einsum(*operands, **kwargs):
    """Traced `numpy.einsum`, string or interleaved (sublist) form."""
    if not _contains_tracer(operands):
        return _np.einsum(*operands, **kwargs)
    if kwargs.get("out") is not None:
        raise TypeError("ardiff.numpy.einsum: out= cannot be traced.")
    subscripts, *operands = operands
    if not isinstance(subscripts, str):
        subscripts, operands = _subscripts_from_sublists((subscripts, *operands))
    return _einsum(subscripts, *operands)


def inner(a, b):
    """Traced `numpy.inner`: contraction over the last axes."""
    if _np.ndim(_unwrap(a)) == 0 or _np.ndim(_unwrap(b)) == 0:
        return multiply(a, b)
    return tensordot(a, b, axes=([-1], [-1]))


def outer(a, b):
    """Traced `numpy.outer`."""
    return multiply(reshape(a, (-1, 1)), reshape(b, (1, -1)))


def vdot(a, b):
    """Traced `numpy.vdot`: the first argument is conjugated when it is complex."""
    return dot(ravel(conj(a)), ravel(b))


def trace(a, offset=0, axis1=0, axis2=1, dtype=None, out=None):
    """Traced `numpy.trace`."""
    _no_out("trace", out, dtype)
    return sum(diagonal(a, offset, axis1, axis2), axis=-1)


def kron(a, b):
    """Traced `numpy.kron`."""
    sa, sb = _np.shape(_unwrap(a)), _np.shape(_unwrap(b))
    n = _builtins.max(len(sa), len(sb))
    sa, sb = (1,) * (n - len(sa)) + sa, (1,) * (n - len(sb)) + sb
    a2 = reshape(a, tuple(x for d in sa for x in (d, 1)))
    b2 = reshape(b, tuple(x for d in sb for x in (1, d)))
    return reshape(multiply(a2, b2), tuple(i * j for i, j in zip(sa, sb)))


# -- building arrays --------------------------------------------------------------
def _integer_kind(dtype) -> bool:
    return dtype is not None and _np.dtype(dtype).kind in "biu"


def array(obj, dtype=None, copy=True, **kwargs):
    """Like `numpy.array`, but nested lists of traced values are stacked and traced.

    An integer or boolean `dtype` gives a plain array (such values carry no gradient),
    read as a guard so that a compiled replay re-traces when it changes.
    """
    if _integer_kind(dtype) and _contains_tracer(obj):
        return _concrete(_np.array, obj, dtype=dtype)
    if isinstance(obj, _TracerBase):
        if dtype is not None:
            return _astype(obj, dtype)
        # NumPy copies unless told not to: a new object, so `x += 1` leaves the copy alone
        return _copy_of(obj) if copy else obj
    if isinstance(obj, (list, tuple)) and _contains_tracer(obj):
        out = stack([array(item) for item in obj])
        return out if dtype is None else _astype(out, dtype)
    return _np.array(obj, dtype=dtype, copy=copy, **kwargs)


def asarray(obj, dtype=None, **kwargs):
    """Like `numpy.asarray`, keeping traced values traced."""
    if isinstance(obj, _TracerBase) or (isinstance(obj, (list, tuple)) and _contains_tracer(obj)):
        return array(obj, dtype=dtype, copy=False)
    return _np.asarray(obj, dtype=dtype, **kwargs)


def full(shape, fill_value, dtype=None, order="C", **kwargs):
    """Like `numpy.full`; a traced `fill_value` is broadcast to `shape` and stays traced
    (autograd's examples write `np.full(x.shape, g)` inside VJPs)."""
    if type(fill_value) is _np.ndarray and dtype is None and not kwargs:
        # a VJP's `full(shape, g)` (per call): numpy.full's own steps, without its wrapper
        out = _np.empty(shape, fill_value.dtype, order=order)
        _np.copyto(out, fill_value, casting="unsafe")
        return out
    if not _contains_tracer(fill_value):  # NumPy's
        return _np.full(shape, fill_value, dtype=dtype, order=order, **kwargs)
    if _integer_kind(dtype):
        return _np.full(shape, _plain(fill_value), dtype=dtype, order=order, **kwargs)
    value = asarray(fill_value) if dtype is None else _astype(asarray(fill_value), dtype)
    return broadcast_to(value, shape)


def full_like(a, fill_value, dtype=None, order="K", subok=True, shape=None):
    """Like `numpy.full_like`; a traced `fill_value` stays traced (see `full`), and so does
    the result for a traced `a` (a buffer to write into: `out[i] = v` is traced)."""
    if not _contains_tracer(fill_value):
        return _buffer_like(a, _np.full_like(_plain(a), fill_value, dtype=dtype, order=order,
                                             subok=subok, shape=shape))
    a_plain = _plain(a)
    target = _np.shape(a_plain) if shape is None else shape
    return full(target, fill_value, dtype=_np.result_type(a_plain) if dtype is None else dtype)


copy = _copy  # (after `array`, whose parameter has the name)


def _without_gradient(name):
    fun = getattr(_np, name)

    def plain(*args, **kwargs):
        return _concrete(fun, *args, **{k: _plain(v) for k, v in kwargs.items()})

    plain.__name__ = name
    plain.__doc__ = f"`numpy.{name}` on plain values (its result carries no gradient)."
    return plain


def zeros_like(a, dtype=None, order="K", subok=True, shape=None):
    """Like `numpy.zeros_like`; for a traced `a` a traced buffer (`out[i] = v` is traced)."""
    return full_like(a, 0, dtype=dtype, order=order, subok=subok, shape=shape)


def ones_like(a, dtype=None, order="K", subok=True, shape=None):
    """Like `numpy.ones_like`; for a traced `a` a traced buffer (`out[i] = v` is traced)."""
    return full_like(a, 1, dtype=dtype, order=order, subok=subok, shape=shape)


def empty_like(a, dtype=None, order="K", subok=True, shape=None):
    """Like `numpy.empty_like` (zero-filled, so the result never depends on stale memory);
    for a traced `a` a traced buffer (`out[i] = v` is traced)."""
    return full_like(a, 0, dtype=dtype, order=order, subok=subok, shape=shape)


#: The NumPy functions offered here on plain values: their results carry no gradient.
WITHOUT_GRADIENT = (
    "argmax argmin argsort argwhere nonzero count_nonzero flatnonzero searchsorted shape ndim "
    "size isnan isinf isfinite isclose allclose "
    "array_equal array_equiv equal not_equal less less_equal greater greater_equal "
    "logical_and logical_or logical_not logical_xor any all signbit floor_divide "
    "result_type iscomplexobj isrealobj isscalar digitize "
    "may_share_memory shares_memory argpartition lexsort isreal iscomplex isposinf "
    "isneginf isin unravel_index ravel_multi_index "
    "nanargmax nanargmin"
).split()
for _name in WITHOUT_GRADIENT:
    globals()[_name] = _without_gradient(_name)
del _name


def __getattr__(name):
    """Anything not defined here is NumPy's own (e.g. `anp.pi`, `anp.float32`)."""
    try:
        return getattr(_np, name)
    except AttributeError:
        raise AttributeError(f"module 'ardiff.numpy' has no attribute {name!r}") from None


# Everything public here except the list above: the traced namesakes of NumPy functions
# (ardiff.tracer dispatches NumPy's own calls on traced values to them).
__all__ = sorted(name for name, value in globals().items()
                 if not name.startswith("_") and name not in ("annotations", "WITHOUT_GRADIENT"))
