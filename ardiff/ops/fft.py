"""The discrete Fourier transforms as elementary ops: `fftn`, `ifftn`, `rfftn`, `irfftn`.

Every transform of `numpy.fft` is one of these four with its options normalised
(`ardiff.numpy.fft` maps `fft`, `fft2`, `rfft`, ... onto them; `hfft`/`ihfft` are
`irfft`/`rfft` of a conjugate, as in NumPy).  Each op's keyword arguments are `s`
(the transform lengths, one per axis), `axes` (non-negative, explicit) and `norm`
(`"backward"`, `"ortho"` or `"forward"`).

VJPs follow ardiff's complex convention (docs/complex.md): a VJP is the adjoint of
the op for the pairing Re(sum(a * b)), without conjugation.  Writing P for the zero
padding / truncation of the input to the lengths `s`, a complex transform is
`c W P` with W the (symmetric) DFT matrix, so

* fftn: `g -> Pᵀ fftn(g)` with the same norm; ifftn: `g -> Pᵀ ifftn(g)`;
* rfftn keeps the first s[-1] // 2 + 1 bins of the last axis: its adjoint pads g with
  zeros to s[-1] there and applies `fftn`; the input is real, so only the real part is
  kept (`ardiff.op.real_gradient`, applied by the op table to every VJP);
* irfftn reads the half spectrum as a Hermitian one: bin k (0 < k < n/2) stands for
  itself and its mirror n - k, bin 0 and (n even) bin n/2 once, their imaginary parts
  ignored.  Its adjoint is `ifftn(g)` cut to the first n // 2 + 1 bins of the last axis
  and doubled on the mirrored bins.

`Pᵀ` crops what padding added and pads with zeros what truncation removed.  The VJPs
are written with these same ops, `getitem` and `untake`, so they differentiate again.
No sparse-Jacobian family is declared: the triangular solver builds complex graphs'
systems from the VJPs (in real form).
"""

from __future__ import annotations

import numpy as np

from ..graph import unwrap
from ..op import defop
from .elementwise import multiply
from .shape import getitem, untake

NORMS = ("backward", "ortho", "forward")
#: The norm that scales the opposite direction (NumPy's `hfft`/`ihfft` use it).
SWAPPED_NORM = {"backward": "forward", "ortho": "ortho", "forward": "backward"}


def fit_axes(x, shape: tuple, axes: tuple):
    """`x` cropped or zero-padded (at the end) to `shape` along `axes` (traced)."""
    current = np.shape(unwrap(x))
    crop = [slice(None)] * len(current)
    cropped = False
    for axis in axes:
        if current[axis] > shape[axis]:
            crop[axis] = slice(0, shape[axis])
            cropped = True
    if cropped:
        x = getitem(x, tuple(crop))
        current = np.shape(unwrap(x))
    if tuple(current) != tuple(shape):
        x = untake(x, tuple(slice(0, n) for n in current), tuple(shape))
    return x


def _fftn_fwd(x, s=None, axes=(), norm="backward"):
    if len(axes) == 1:  # the 1-D routine, for NumPy's exact bits
        return np.fft.fft(x, n=None if s is None else s[0], axis=axes[0], norm=norm)
    return np.fft.fftn(x, s=s, axes=axes, norm=norm)


def _ifftn_fwd(x, s=None, axes=(), norm="backward"):
    if len(axes) == 1:
        return np.fft.ifft(x, n=None if s is None else s[0], axis=axes[0], norm=norm)
    return np.fft.ifftn(x, s=s, axes=axes, norm=norm)


def _rfftn_fwd(x, s=None, axes=(), norm="backward"):
    if np.iscomplexobj(x):
        raise TypeError("ardiff.numpy.fft.rfft/rfftn: the input must be real (NumPy discards "
                        "an imaginary part); use fft/fftn for complex input.")
    if len(axes) == 1:
        return np.fft.rfft(x, n=None if s is None else s[0], axis=axes[0], norm=norm)
    return np.fft.rfftn(x, s=s, axes=axes, norm=norm)


def _irfftn_fwd(x, s=None, axes=(), norm="backward"):
    if len(axes) == 1:
        return np.fft.irfft(x, n=None if s is None else s[0], axis=axes[0], norm=norm)
    return np.fft.irfftn(x, s=s, axes=axes, norm=norm)


def _complex_vjp(inverse: bool):
    def maker(ans, x, s=None, axes=(), norm="backward"):
        shape = np.shape(unwrap(x))
        transform = ifftn if inverse else fftn

        def vjp(g):
            return fit_axes(transform(g, axes=axes, norm=norm), shape, axes)
        return vjp
    return maker


def _rfftn_vjp(ans, x, s=None, axes=(), norm="backward"):
    shape = np.shape(unwrap(x))
    full = list(np.shape(unwrap(ans)))
    last = axes[-1]
    full[last] = shape[last] if s is None else s[-1]  # the real transform's length

    def vjp(g):
        return fit_axes(fftn(fit_axes(g, tuple(full), (last,)), axes=axes, norm=norm),
                        shape, axes)
    return vjp


def _irfftn_vjp(ans, x, s=None, axes=(), norm="backward"):
    shape = np.shape(unwrap(x))
    last = axes[-1]
    n = np.shape(unwrap(ans))[last]  # the real output's length
    bins = n // 2 + 1
    weights = np.full(bins, 2.0)
    weights[0] = 1.0
    if n % 2 == 0:
        weights[-1] = 1.0
    ndim = len(shape)
    weights = weights.reshape((bins,) + (1,) * (ndim - 1 - last % ndim))
    half = [slice(None)] * ndim
    half[last] = slice(0, bins)

    def vjp(g):
        spectrum = getitem(ifftn(g, axes=axes, norm=norm), tuple(half))
        return fit_axes(multiply(spectrum, weights), shape, axes)
    return vjp


# the VJPs read only shapes: a lean recording keeps neither the signal nor its transform;
# every transform is (real-)linear: its own tangent map
fftn = defop("fftn", _fftn_fwd, _complex_vjp(inverse=False), reads=((),), linear=True)
ifftn = defop("ifftn", _ifftn_fwd, _complex_vjp(inverse=True), reads=((),), linear=True)
rfftn = defop("rfftn", _rfftn_fwd, _rfftn_vjp, reads=((),), linear=True)
irfftn = defop("irfftn", _irfftn_fwd, _irfftn_vjp, reads=((),), linear=True)
