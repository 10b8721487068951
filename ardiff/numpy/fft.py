"""`ardiff.numpy.fft`: NumPy's discrete Fourier transforms, traced.

Every transform reduces to one of the four ops of `ardiff.ops.fft` (`fftn`, `ifftn`,
`rfftn`, `irfftn`) with NumPy's options normalised: the one-axis and two-axis
functions (`fft`, `fft2`, `rfft`, `irfft2`, ...) name their axes, `hfft`/`ihfft` are
`irfft`/`rfft` of a conjugate with the opposite norm (NumPy's own definition), and
`fftshift`/`ifftshift` are rolls.  On plain arguments every function is NumPy's.
`fftfreq` and `rfftfreq` have no traced argument and are NumPy's.  Gradients follow
the complex convention of docs/complex.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as _np
from numpy.fft import fftfreq, rfftfreq  # noqa: F401  (no traced argument: NumPy's own)

from ..graph import TracerBase as _TracerBase
from ..graph import unwrap as _unwrap
from ..ops import fft as _ops
from ..ops.complex_parts import conj as _conj
from ._shape import roll as _roll

__all__ = ["fft", "ifft", "fft2", "ifft2", "fftn", "ifftn", "rfft", "irfft", "rfft2", "irfft2",
           "rfftn", "irfftn", "hfft", "ihfft", "fftshift", "ifftshift", "fftfreq", "rfftfreq"]


def _norm(norm: str | None) -> str:
    norm = "backward" if norm is None else norm
    if norm not in _ops.NORMS:
        raise ValueError(f"ardiff.numpy.fft: norm={norm!r} is not one of {_ops.NORMS} (or None).")
    return norm


def _axis(axis: int, ndim: int, name: str) -> int:
    if not -ndim <= axis < ndim:
        raise ValueError(f"ardiff.numpy.fft.{name}: axis {axis} is out of range for an array "
                         f"with {ndim} dimensions.")
    return axis % ndim


def _lengths_and_axes(x, s: Sequence | None, axes: Sequence | None, name: str) -> tuple:
    """NumPy's rules for `s` and `axes`: the last len(s) axes when only `s` is given,
    every axis when neither is; axes made non-negative."""
    ndim = _np.ndim(_unwrap(x))
    if axes is None:
        axes = tuple(range(ndim)) if s is None else tuple(range(ndim - len(s), ndim))
    axes = tuple(_axis(int(a), ndim, name) for a in axes)
    if s is not None:
        s = tuple(int(n) for n in s)
        if len(s) != len(axes):
            raise ValueError(f"ardiff.numpy.fft.{name}: s and axes have different lengths "
                             f"({len(s)} and {len(axes)}).")
        for n in s:
            if n < 1:
                raise ValueError(f"ardiff.numpy.fft.{name}: invalid transform length {n} "
                                 "(must be at least 1).")
    if not axes:
        raise ValueError(f"ardiff.numpy.fft.{name}: no axes to transform.")
    return s, axes


def _traced(x: Any) -> bool:
    return isinstance(x, _TracerBase)


def _one_axis(op, numpy_fun, name: str):
    def transform(a, n: int | None = None, axis: int = -1, norm: str | None = None):
        if not _traced(a):
            return numpy_fun(a, n=n, axis=axis, norm=norm)
        s, axes = _lengths_and_axes(a, None if n is None else (n,), (axis,), name)
        return op(a, s=s, axes=axes, norm=_norm(norm))
    transform.__name__ = transform.__qualname__ = name
    transform.__doc__ = f"Traced `numpy.fft.{name}`."
    return transform


def _many_axes(op, numpy_fun, name: str, default_axes):
    def transform(a, s: Sequence | None = None, axes: Sequence | None = default_axes,
                  norm: str | None = None):
        if not _traced(a):
            return numpy_fun(a, s=s, axes=axes, norm=norm)
        s, axes = _lengths_and_axes(a, s, axes, name)
        return op(a, s=s, axes=axes, norm=_norm(norm))
    transform.__name__ = transform.__qualname__ = name
    transform.__doc__ = f"Traced `numpy.fft.{name}`."
    return transform


fft = _one_axis(_ops.fftn, _np.fft.fft, "fft")
ifft = _one_axis(_ops.ifftn, _np.fft.ifft, "ifft")
rfft = _one_axis(_ops.rfftn, _np.fft.rfft, "rfft")
fft2 = _many_axes(_ops.fftn, _np.fft.fft2, "fft2", (-2, -1))
ifft2 = _many_axes(_ops.ifftn, _np.fft.ifft2, "ifft2", (-2, -1))
rfft2 = _many_axes(_ops.rfftn, _np.fft.rfft2, "rfft2", (-2, -1))
fftn = _many_axes(_ops.fftn, _np.fft.fftn, "fftn", None)
ifftn = _many_axes(_ops.ifftn, _np.fft.ifftn, "ifftn", None)
rfftn = _many_axes(_ops.rfftn, _np.fft.rfftn, "rfftn", None)


def _irfft_lengths(a, s, axes, name):
    """irfftn's default lengths: the input's along every axis but the last transformed
    one, 2 (m - 1) along that one."""
    shape = _np.shape(_unwrap(a))
    if s is None:
        _, axes = _lengths_and_axes(a, None, axes, name)
        s = tuple(shape[ax] for ax in axes[:-1]) + (2 * (shape[axes[-1]] - 1),)
    return _lengths_and_axes(a, s, axes, name)


def irfftn(a, s: Sequence | None = None, axes: Sequence | None = None, norm: str | None = None):
    """Traced `numpy.fft.irfftn`."""
    if not _traced(a):
        return _np.fft.irfftn(a, s=s, axes=axes, norm=norm)
    s, axes = _irfft_lengths(a, s, axes, "irfftn")
    return _ops.irfftn(a, s=s, axes=axes, norm=_norm(norm))


def irfft2(a, s: Sequence | None = None, axes: Sequence = (-2, -1), norm: str | None = None):
    """Traced `numpy.fft.irfft2`."""
    if not _traced(a):
        return _np.fft.irfft2(a, s=s, axes=axes, norm=norm)
    s, axes = _irfft_lengths(a, s, axes, "irfft2")
    return _ops.irfftn(a, s=s, axes=axes, norm=_norm(norm))


def _irfft(a, n: int | None = None, axis: int = -1, norm: str | None = None):
    if not _traced(a):
        return _np.fft.irfft(a, n=n, axis=axis, norm=norm)
    s, axes = _irfft_lengths(a, None if n is None else (n,), (axis,), "irfft")
    return _ops.irfftn(a, s=s, axes=axes, norm=_norm(norm))


irfft = _irfft
irfft.__name__ = irfft.__qualname__ = "irfft"
irfft.__doc__ = "Traced `numpy.fft.irfft`."


def hfft(a, n: int | None = None, axis: int = -1, norm: str | None = None):
    """Traced `numpy.fft.hfft`: `irfft(conj(a), n, axis)` with the opposite norm."""
    if not _traced(a):
        return _np.fft.hfft(a, n=n, axis=axis, norm=norm)
    conjugated = _conj(a) if _np.iscomplexobj(_unwrap(a)) else a
    return irfft(conjugated, n=n, axis=axis, norm=_ops.SWAPPED_NORM[_norm(norm)])


def ihfft(a, n: int | None = None, axis: int = -1, norm: str | None = None):
    """Traced `numpy.fft.ihfft`: `conj(rfft(a, n, axis))` with the opposite norm."""
    if not _traced(a):
        return _np.fft.ihfft(a, n=n, axis=axis, norm=norm)
    return _conj(rfft(a, n=n, axis=axis, norm=_ops.SWAPPED_NORM[_norm(norm)]))


def _shift(x, axes, sign: int):
    shape = _np.shape(_unwrap(x))
    if axes is None:
        axes = tuple(range(len(shape)))
    elif isinstance(axes, (int, _np.integer)):
        axes = (int(axes),)
    shifts = tuple(sign * (shape[ax] // 2) for ax in axes)
    return _roll(x, shifts, tuple(axes))


def fftshift(x, axes: int | Sequence | None = None):
    """Traced `numpy.fft.fftshift` (a roll by half of each axis)."""
    if not _traced(x):
        return _np.fft.fftshift(x, axes=axes)
    return _shift(x, axes, 1)


def ifftshift(x, axes: int | Sequence | None = None):
    """Traced `numpy.fft.ifftshift` (fftshift's inverse roll)."""
    if not _traced(x):
        return _np.fft.ifftshift(x, axes=axes)
    return _shift(x, axes, -1)
