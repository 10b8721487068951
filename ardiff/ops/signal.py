"""N-dimensional convolution (`scipy.signal.convolve`), the op behind
`ardiff.scipy.signal.convolve` and `correlate`.

One op, `convolve(a, b, mode, keep=0, dot=0)` (table name `convolve_nd`), with `mode`
`"full"` or `"valid"` (for `"valid"` `a` is at least as large as `b` along every
convolved axis; the namespace swaps the operands otherwise, convolution being
symmetric).  With `keep` and `dot` it is autograd's generalised convolution
(`axes=`, `dot_axes=`) in one canonical layout: `a` is `[kept of a | dot | conv]`,
`b` is `[dot | kept of b | conv]` and the answer `[kept of a | kept of b | conv]`,
summed over the `dot` axes (a tensordot) and convolved over the `conv` axes; with
`keep = dot = 0` it is SciPy's plain n-d convolution.  The adjoint of a full
convolution with `b` is a valid convolution with `b` flipped along its convolved axes,
and the other way round, so the VJPs are convolutions again (second order works).
"""

from __future__ import annotations

import math

import numpy as np

from ..graph import unwrap
from ..op import defop
from .shape import getitem, transpose

__all__ = ["convolve", "dot_convolve", "flip_all", "sliding_convolve",
           "sliding_is_cheaper"]


def flip_all(x):
    """`x` reversed along every axis (traced when `x` is)."""
    return getitem(x, (slice(None, None, -1),) * np.ndim(unwrap(x)))


def _convolve_fwd(a, b, mode="full", keep=0, dot=0):
    if mode not in ("full", "valid"):
        raise ValueError(f"the convolve op takes mode 'full' or 'valid', not {mode!r}")
    a, b = np.asarray(a), np.asarray(b)
    conv = a.ndim - keep - dot
    if conv < 0 or b.ndim < dot + conv or a.shape[keep:keep + dot] != b.shape[:dot]:
        raise ValueError(f"the convolve op with keep={keep}, dot={dot} needs a laid out as "
                         "[kept | dot | conv] and b as [dot | kept | conv], the dot axes "
                         f"of equal lengths; got shapes {a.shape} and {b.shape}")
    if mode == "valid" and any(m < n for m, n in zip(a.shape[a.ndim - conv:],
                                                      b.shape[b.ndim - conv:])):
        raise ValueError("the convolve op in mode 'valid' needs the first operand at least "
                         "as large as the second along every convolved axis")
    if keep or dot or b.ndim != a.ndim:
        return dot_convolve(a, b, mode, keep, dot)
    if a.ndim and sliding_is_cheaper(a.shape, b.shape, mode):
        return sliding_convolve(a, b, mode)
    import scipy.signal  # slow to import (about 1 s, scipy.stats with it): only here

    return scipy.signal.convolve(a, b, mode=mode)


def sliding_is_cheaper(shape_a: tuple, shape_b: tuple, mode: str) -> bool:
    """Whether `sliding_convolve` beats SciPy's FFT: out x kernel multiply-adds against
    full x log2(full) for the transforms.

    SciPy's own choice (`choose_conv_method`) misjudges the n-d convolutions that
    autograd-style `dot_axes` produce (long axes met by length 1, a batch axis convolved
    with itself in "valid" mode): measured, the kernel gradient of autograd's convnet
    took 9.1 s by FFT and 1.0 s by SciPy's direct method against 0.06 s by einsum; where
    the FFT wins by the estimate (long 1-d signals, large kernels), SciPy is kept.
    """
    full = math.prod(m + n - 1 for m, n in zip(shape_a, shape_b))
    out = full if mode == "full" else math.prod(m - n + 1 for m, n in zip(shape_a, shape_b))
    return out * math.prod(shape_b) < full * math.log2(max(full, 2))


_LETTERS = "abcdefghijklmnopqrstuvwxyz"


def sliding_convolve(a: np.ndarray, b: np.ndarray, mode: str = "full") -> np.ndarray:
    """`scipy.signal.convolve(a, b, mode)` by einsum over the sliding windows of `a`.

    The same multiply-adds as SciPy's direct method, but NumPy's einsum runs them
    10-20x faster on n-d arrays (measured: the kernel gradient of autograd's convnet
    example, a valid convolution of (256, 6, 1, 32, 32) with (256, 1, 1, 28, 28), took
    1.0 s in SciPy's direct method, 0.05 s here).  The convolve op uses it where
    `sliding_is_cheaper` says so.

    Parameters
    ----------
    a, b : numpy.ndarray
        Same number of dimensions (at most 13); for `mode="valid"` `a` at least as large
        as `b` along every axis.
    mode : {"full", "valid"}

    Returns
    -------
    numpy.ndarray
    """
    if a.ndim == 0:
        return a * b
    if mode == "full":  # a full convolution is a valid one of `a` padded by the kernel
        a = np.pad(a, [(n - 1, n - 1) for n in b.shape])
    windows = np.lib.stride_tricks.sliding_window_view(a, b.shape)
    out, kernel = _LETTERS[:a.ndim], _LETTERS[a.ndim:2 * a.ndim]
    return np.einsum(f"{out}{kernel},{kernel}->{out}", windows,
                     b[(slice(None, None, -1),) * b.ndim])


def dot_convolve(a: np.ndarray, b: np.ndarray, mode: str, keep: int, dot: int
                 ) -> np.ndarray:
    """The convolve op's generalised form, by one tensordot over sliding windows.

    The windows of `a` (padded by the kernel in `"full"` mode) along its convolved
    axes are contracted with `b` flipped there, over the dot axes and the window axes
    together: one BLAS product, whose only copy is the windows' (as autograd's
    convolve).  Composing the general case from an n-d convolution over all axes
    instead (kept axes as outer products, dot axes convolved in full and their middle
    taken, then the valid part cut) cost 10-40 times the multiply-adds on autograd's
    convnet example.

    Parameters
    ----------
    a : numpy.ndarray
        Laid out as `[kept of a | dot | conv]`.
    b : numpy.ndarray
        Laid out as `[dot | kept of b | conv]`, with as many convolved axes as `a`.
    mode : {"full", "valid"}
        For `"valid"`, `a` at least as large as `b` along every convolved axis.
    keep, dot : int
        The number of `a`'s kept axes and of the dot axes.

    Returns
    -------
    numpy.ndarray
        Laid out as `[kept of a | kept of b | conv]`.
    """
    conv = a.ndim - keep - dot
    kernel = b.shape[b.ndim - conv:]
    if mode == "full":
        a = np.pad(a, [(0, 0)] * (keep + dot) + [(n - 1, n - 1) for n in kernel])
    windows = np.lib.stride_tricks.sliding_window_view(
        a, kernel, axis=tuple(range(keep + dot, a.ndim)))  # [kept | dot | out | kernel]
    flipped = b[(Ellipsis,) + (slice(None, None, -1),) * conv]
    out = np.tensordot(windows, flipped, axes=(
        list(range(keep, keep + dot)) + list(range(a.ndim, a.ndim + conv)),
        list(range(dot)) + list(range(b.ndim - conv, b.ndim))))  # [kept a | out | kept b]
    return out.transpose(tuple(range(keep)) + tuple(range(keep + conv, out.ndim))
                         + tuple(range(keep, keep + conv)))


def _flip_last(x, n: int):
    """`x` reversed along its last `n` axes (traced when `x` is)."""
    return getitem(x, (Ellipsis,) + (slice(None, None, -1),) * n) if n else x


def _moved(x, order: tuple):
    """`x` transposed to `order`, left alone when that is the identity."""
    return x if order == tuple(range(len(order))) else transpose(x, order)


def _convolve_vjp(k, ans, a, b, mode="full", keep=0, dot=0):
    na, nb = np.ndim(unwrap(a)), np.ndim(unwrap(b))
    conv = na - keep - dot
    kept_b = nb - dot - conv
    # (a's kept, the dot, b's kept and the convolved axes of a, b, and the answer
    # [keep | kept_b | conv] are consecutive runs; the comments name them so)
    if k == 0:  # a [keep | dot | conv] from g [keep | kept_b | conv] and b flipped
        other = _flip_last(_moved(b, tuple(range(dot, dot + kept_b)) + tuple(range(dot))
                                  + tuple(range(dot + kept_b, nb))), conv)  # [kept_b|dot|conv]
        inner = "valid" if mode == "full" else "full"
        return lambda g: convolve(g, other, mode=inner, **_layout(keep, kept_b))
    # b [dot | kept_b | conv]
    if mode == "full":  # from g [kept_b | keep | conv] and a flipped [keep | dot | conv]
        flipped = _flip_last(a, conv)
        to_g = tuple(range(keep, keep + kept_b)) + tuple(range(keep)) + tuple(
            range(keep + kept_b, keep + kept_b + conv))
        back = tuple(range(kept_b, kept_b + dot)) + tuple(range(kept_b)) + tuple(
            range(kept_b + dot, kept_b + dot + conv))
        return lambda g: _moved(convolve(_moved(g, to_g), flipped, mode="valid",
                                         **_layout(kept_b, keep)), back)
    # valid: a as [dot | keep | conv] with g flipped [keep | kept_b | conv]: [dot|kept_b|conv]
    a_moved = _moved(a, tuple(range(keep, keep + dot)) + tuple(range(keep))
                     + tuple(range(keep + dot, na)))
    return lambda g: _flip_last(convolve(a_moved, _flip_last(g, conv), mode="valid",
                                         **_layout(dot, keep)), conv)


def _layout(keep: int, dot: int) -> dict:
    """The op's layout keywords, left out when zero (the plain convolution's node)."""
    return {"keep": keep, "dot": dot} if keep or dot else {}


#: `scipy.signal.convolve` in mode `"full"` or `"valid"`, generalised with `keep` and
#: `dot` (see the module docstring).
convolve = defop("convolve_nd", _convolve_fwd, vjp=_convolve_vjp, reads=((1,), (0,)),
                 multilinear=True)  # linear in each of a, b
