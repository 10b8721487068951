"""`ardiff.scipy.signal`: traced `convolve` and `correlate` of `scipy.signal`.

Both are the op `convolve_nd` (`ardiff.ops.signal`) in mode "full" or "valid", with
"same" cut from the full result; `correlate(a, b)` is `convolve(a, flip(b))`.  Both are
differentiable w.r.t. both inputs (real arrays with the same number of dimensions).
Other names fall through to `scipy.signal` (a traced argument then raises).
"""

from __future__ import annotations

import numpy as _np
import scipy.signal as _ss

from ..graph import TracerBase as _TracerBase
from ..graph import unwrap as _unwrap
from ..ops.shape import getitem as _getitem
from ..ops.signal import convolve as _convolve
from ..ops.signal import flip_all as _flip_all


def convolve(in1, in2, mode="full", method="auto"):
    """Traced `scipy.signal.convolve` (n-d, modes "full", "valid", "same").

    `method` is accepted for SciPy's signature; the op computes with SciPy's default.

    Parameters
    ----------
    in1, in2 : array_like
        Real arrays with the same number of dimensions, traced or plain.
    mode : {"full", "valid", "same"}
        The full discrete convolution, the part computed without zero padding (one
        input must be at least as large as the other along every axis), or the part
        centred on `in1`'s shape.
    method : str
        Accepted and ignored for traced input.

    Returns
    -------
    array
        The convolution, traced when an input is; differentiable w.r.t. both inputs.
    """
    if not (isinstance(in1, _TracerBase) or isinstance(in2, _TracerBase)):
        return _ss.convolve(in1, in2, mode=mode, method=method)
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
    if mode not in ("full", "same"):
        raise ValueError("acceptable mode flags are 'valid', 'same', or 'full'")
    full = _convolve(in1, in2, mode="full")
    if mode == "full":
        return full
    start = [(f - n) // 2 for f, n in zip(_np.shape(_unwrap(full)), s1)]
    return _getitem(full, tuple(slice(b, b + n) for b, n in zip(start, s1)))


def correlate(in1, in2, mode="full", method="auto"):
    """Traced `scipy.signal.correlate` (real n-d): `convolve(in1, in2 flipped, mode)`."""
    if not (isinstance(in1, _TracerBase) or isinstance(in2, _TracerBase)):
        return _ss.correlate(in1, in2, mode=mode, method=method)
    return convolve(in1, _flip_all(in2), mode=mode)


__all__ = ["convolve", "correlate"]


def __getattr__(name):
    return getattr(_ss, name)
