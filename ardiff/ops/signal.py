"""N-dimensional convolution (`scipy.signal.convolve`), the op behind
`ardiff.scipy.signal.convolve` and `correlate`.

One op, `convolve(a, b, mode)` (table name `convolve_nd`), with `mode` `"full"` or
`"valid"` (for `"valid"` `a` is at least as large as `b` along every axis; the
namespace swaps the operands otherwise, convolution being symmetric).  The adjoint of
a full convolution with `b` is a valid convolution with `b` flipped along every axis,
and the other way round, so the VJPs are convolutions again (second order works).
"""

from __future__ import annotations

import numpy as np
import scipy.signal

from ..graph import unwrap
from ..op import defop
from .shape import getitem

__all__ = ["convolve", "flip_all"]


def flip_all(x):
    """`x` reversed along every axis (traced when `x` is)."""
    return getitem(x, (slice(None, None, -1),) * np.ndim(unwrap(x)))


def _convolve_fwd(a, b, mode="full"):
    if mode not in ("full", "valid"):
        raise ValueError(f"the convolve op takes mode 'full' or 'valid', not {mode!r}")
    if mode == "valid" and any(m < n for m, n in zip(np.shape(a), np.shape(b))):
        raise ValueError("the convolve op in mode 'valid' needs the first operand at least "
                         "as large as the second along every axis")
    return scipy.signal.convolve(a, b, mode=mode)


def _convolve_vjp(k, ans, a, b, mode="full"):
    other = b if k == 0 else a
    if mode == "full":
        flipped = flip_all(other)
        return lambda g: convolve(g, flipped, mode="valid")
    if k == 0:
        flipped = flip_all(b)
        return lambda g: convolve(g, flipped, mode="full")
    return lambda g: flip_all(convolve(a, flip_all(g), mode="valid"))


#: `scipy.signal.convolve` in mode `"full"` or `"valid"` (same number of dimensions).
convolve = defop("convolve_nd", _convolve_fwd, vjp=_convolve_vjp)
