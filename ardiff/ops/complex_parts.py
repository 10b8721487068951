"""The non-holomorphic complex ops: `real`, `imag`, `conj`, `angle` (and `absolute`'s rule).

ardiff's complex convention (docs/complex.md, the one HIPS autograd documents): a
VJP is the adjoint of the op's real-linear differential for the pairing
Re(sum(a * b)), so a holomorphic op's VJP is `g * f'(z)` (no conjugate) and the
gradient of a real loss is dL/dx - i dL/dy.  These ops are not holomorphic, so their
VJPs are written from the four real partial derivatives:

* `real`: d Re z = Re dz, VJP `g -> g` (as a complex array);
* `imag`: d Im z = Im dz = Re(-i dz), VJP `g -> -i g`;
* `conj`: d conj z = conj dz, VJP `g -> conj g` (real-linear, not complex-linear);
* `angle`: d arg z = Im(dz / z) = Re(-i dz / z), VJP `g -> -i g / z`
  (times 180/pi with `deg=True`).

`real`, `imag` and `angle` have real answers, so `g` is real there (the gradient of a
real node is real: `ardiff.op.real_gradient`).  `absolute` of a complex input lives with
the other elementwise ops; its derivative `conj(z) / |z|` uses `conj` from here.
None of them declares a sparse-Jacobian family: a complex-linear matrix cannot
represent `conj`, and the triangular solver assembles complex graphs in real form from
the VJPs themselves (`ardiff.solvers.triangular`).
"""

from __future__ import annotations

import numpy as np

from ..graph import unwrap
from ..op import defop

RAD_TO_DEG = float(180.0 / np.pi)


def _real_vjp(ans, z):
    # g is real (the answer is real); + 0j gives the complex gradient of a complex z
    return lambda g: g + 0j


def _imag_vjp(ans, z):
    return lambda g: g * -1j


def _conj_vjp(ans, z):
    return lambda g: conj(g)


def _angle_vjp(ans, z, deg=False):
    factor = -1j / z
    if deg:
        factor = factor * RAD_TO_DEG
    return lambda g: g * factor


def _angle_jvp(t, ans, z, deg=False):
    # d arg z = Im(dz / z) = Re(-i dz / z): the VJP's factor, the real part kept
    return t * _angle_vjp(ans, z, deg)(1.0)


# real, imag and conj are real-linear: each is its own tangent map
real = defop("real", np.real, _real_vjp, reads=((),), view=True, linear=True)
imag = defop("imag", np.imag, _imag_vjp, reads=((),), view=True, linear=True)
conj = defop("conj", np.conjugate, _conj_vjp, reads=((),), linear=True)
angle = defop("angle", lambda z, deg=False: np.angle(z, deg=deg), _angle_vjp, nonlinear=True,
              reads=((0,),), jvp=(_angle_jvp,))


def conj_if_complex(x):
    """`conj(x)` (traced) when `x` is complex, else `x` itself (no node is recorded).

    For the VJPs of real functions of |z| (variance, norm): d|z|^2 = 2 Re(conj(z) dz),
    so their real-input factor `z` becomes `conj(z)` under the complex convention.
    """
    return conj(x) if np.iscomplexobj(unwrap(x)) else x


def real_only(op, reason: str) -> None:
    """Make `op`'s derivatives refuse complex arguments with a clear TypeError.

    For ops whose VJPs are written for real values only (decompositions of symmetric
    or orthogonal factors, whose complex versions are Hermitian or unitary and need
    conjugates the real formulas lack).  The forward still runs on complex values, so
    plain NumPy calls are unaffected; asking for a gradient through a complex value
    raises, naming the op.

    Parameters
    ----------
    op : Op
        An op of the table; its VJP makers are wrapped in place.
    reason : str
        Why the real formula does not hold, for the message.
    """
    def guard(maker, first_arg: int):
        def checked(*args, **kwargs):
            if any(np.iscomplexobj(unwrap(a)) for a in args[first_arg:]):
                raise TypeError(f"ardiff op '{op.name}': no derivative for complex input "
                                f"({reason}); differentiate it on real input, or express "
                                "the computation with ops that support complex values.")
            return maker(*args, **kwargs)
        return checked

    if op.vjp is not None:
        op.vjp = guard(op.vjp, 1)  # vjp(k, ans, *args)
    op.vjps = tuple(None if m is None else guard(m, 0) for m in op.vjps)
