"""`ardiff.scipy.signal`: traced `convolve` and `correlate` of `scipy.signal`.

Both are the op `convolve_nd` (`ardiff.ops.signal`) in mode "full" or "valid", with
"same" cut from the full result; `correlate(a, b)` is `convolve(a, flip(b))`.  Both are
differentiable w.r.t. both inputs (real arrays with the same number of dimensions).
Other names fall through to `scipy.signal` (a traced argument then raises).
"""

from __future__ import annotations

import numpy as _np

from ..graph import TracerBase as _TracerBase
from ..graph import unwrap as _unwrap
from ..ops.shape import getitem as _getitem
from ..ops.shape import transpose as _transpose
from ..ops.signal import convolve as _convolve
from ..ops.signal import flip_all as _flip_all


def convolve(in1, in2, mode="full", method="auto", *, axes=None, dot_axes=((), ())):
    """Traced `scipy.signal.convolve` (n-d, modes "full", "valid", "same"), with
    autograd's generalisation `axes=` / `dot_axes=`.

    `method` is accepted for SciPy's signature; the op computes with SciPy's default.

    Parameters
    ----------
    in1, in2 : array_like
        Real arrays, traced or plain; without `axes` and `dot_axes` they have the same
        number of dimensions and every axis is convolved (SciPy's function).
    mode : {"full", "valid", "same"}
        The full discrete convolution, the part computed without zero padding (one
        input must be at least as large as the other along every convolved axis), or
        the part centred on `in1`'s shape.
    method : str
        Accepted and ignored for traced input.
    axes : pair of sequences of int, optional
        As in autograd: the axes of `in1` and of `in2` convolved with each other
        (default: all, pairwise).
    dot_axes : pair of sequences of int, optional
        As in autograd: axes of `in1` and `in2` summed over in pairs (a tensordot).
        The answer's axes are `in1`'s other axes, then `in2`'s, then the convolved ones.

    Returns
    -------
    array
        The convolution, traced when an input is; differentiable w.r.t. both inputs.
    """
    general = axes is not None or any(len(d) for d in dot_axes)
    if not general and not (isinstance(in1, _TracerBase) or isinstance(in2, _TracerBase)):
        return _scipy_signal().convolve(in1, in2, mode=mode, method=method)
    if mode not in ("full", "valid", "same"):
        raise ValueError("acceptable mode flags are 'valid', 'same', or 'full'")
    if general:
        return _general_convolve(in1, in2, mode, axes, dot_axes)
    s1, s2 = _np.shape(_unwrap(in1)), _np.shape(_unwrap(in2))
    if len(s1) != len(s2):
        raise ValueError("in1 and in2 should have the same dimensionality")
    if mode == "valid":
        if all(m >= n for m, n in zip(s1, s2)):
            return _convolve(in1, in2, mode="valid")
        if all(m <= n for m, n in zip(s1, s2)):
            return _convolve(in2, in1, mode="valid")
        raise ValueError("For 'valid' mode, one must be at least as large as the other "
                         "in every dimension")
    full = _convolve(in1, in2, mode="full")
    return full if mode == "full" else _cut(full, list(range(len(s1))), s1, s2, mode)


def _cut(full, positions, s1, s2, mode):
    """The 'valid' or 'same' part of a full convolution along the axes `positions`
    (with input lengths `s1`, `s2` there)."""
    index = [slice(None)] * _np.ndim(_unwrap(full))
    for p, m, n in zip(positions, s1, s2):
        if mode == "valid":
            index[p] = slice(min(m, n) - 1, max(m, n))
        else:
            start = (m + n - 1 - m) // 2
            index[p] = slice(start, start + m)
    return _getitem(full, tuple(index))


def _axis_list(axes, ndim):
    return [int(a) % ndim for a in axes]


def _general_convolve(a, b, mode, axes, dot_axes):
    na, nb = _np.ndim(_unwrap(a)), _np.ndim(_unwrap(b))
    if axes is None:
        if na != nb:
            raise ValueError("in1 and in2 should have the same dimensionality")
        axes = (range(na), range(na))
    conv_a, conv_b = _axis_list(axes[0], na), _axis_list(axes[1], nb)
    dot_a, dot_b = _axis_list(dot_axes[0], na), _axis_list(dot_axes[1], nb)
    if len(conv_a) != len(conv_b) or len(dot_a) != len(dot_b):
        raise ValueError("axes and dot_axes must pair axes of in1 with axes of in2")
    keep_a = [i for i in range(na) if i not in conv_a + dot_a]
    keep_b = [i for i in range(nb) if i not in conv_b + dot_b]
    sa, sb = _np.shape(_unwrap(a)), _np.shape(_unwrap(b))
    if any(sa[i] != sb[j] for i, j in zip(dot_a, dot_b)):
        raise ValueError("the dot_axes of in1 and in2 must have the same lengths")
    la, lb = [sa[i] for i in conv_a], [sb[i] for i in conv_b]
    if mode == "valid" and not (all(m >= n for m, n in zip(la, lb))
                                or all(m <= n for m, n in zip(la, lb))):
        raise ValueError("One array must be larger than the other along all convolved "
                         "dimensions")
    # the op's layout: a as [kept of a | dot | conv], b as [dot | kept of b | conv];
    # the answer is [kept of a | kept of b | conv], autograd's order
    first = _moved(a, keep_a + dot_a + conv_a)
    second = _moved(b, dot_b + keep_b + conv_b)
    if mode == "valid" and not all(m >= n for m, n in zip(la, lb)):
        # b is the larger one: convolution is symmetric, so convolve b's windows with a
        # ([kept of b | dot | conv] by [dot | kept of a | conv]) and put a's axes first
        swapped = _convolve(_moved(b, keep_b + dot_b + conv_b),
                            _moved(a, dot_a + keep_a + conv_a), mode="valid",
                            keep=len(keep_b), dot=len(dot_b))
        nk_a, nk_b = len(keep_a), len(keep_b)
        return _moved(swapped, list(range(nk_b, nk_b + nk_a)) + list(range(nk_b))
                      + list(range(nk_a + nk_b, nk_a + nk_b + len(conv_a))))
    out = _convolve(first, second, mode="valid" if mode == "valid" else "full",
                    keep=len(keep_a), dot=len(dot_a))
    if mode != "same":
        return out
    first_conv = len(keep_a) + len(keep_b)
    return _cut(out, list(range(first_conv, first_conv + len(conv_a))), la, lb, mode)


def _moved(x, order: list):
    """`x` transposed to `order`, left alone when that is the identity."""
    return x if order == list(range(len(order))) else _transpose(x, tuple(order))


def correlate(in1, in2, mode="full", method="auto"):
    """Traced `scipy.signal.correlate` (real n-d): `convolve(in1, in2 flipped, mode)`.

    Parameters
    ----------
    in1, in2 : array_like
        Real arrays with the same number of dimensions, traced or plain.
    mode : {"full", "valid", "same"}
        As in `convolve`.
    method : str
        Accepted and ignored for traced input.

    Returns
    -------
    array
        The cross-correlation, traced when an input is.
    """
    if not (isinstance(in1, _TracerBase) or isinstance(in2, _TracerBase)):
        return _scipy_signal().correlate(in1, in2, mode=mode, method=method)
    return convolve(in1, _flip_all(in2), mode=mode)


__all__ = ["convolve", "correlate"]


def _scipy_signal():
    """`scipy.signal`, imported on first use (about 1 s: `import ardiff` does not pay it)."""
    import scipy.signal

    return scipy.signal


def __getattr__(name):
    return getattr(_scipy_signal(), name)
