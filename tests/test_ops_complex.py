"""Property-based cases for the complex ops and the FFT ops (``real``, ``imag``, ``conj``,
``angle``, ``abs`` of complex values, ``fftn``/``ifftn``/``rfftn``/``irfftn`` behind every
function of ``ardiff.numpy.fft``) and for holomorphic ops on complex values.

Every case is a program of real arrays that builds complex values inside (``x + 1j * y``),
so the harness of ``test_ops`` checks it against finite differences in the arguments,
relaxation against backprop and NumPy dispatch as for any op; the programs' own real and
imaginary directions are those of ``x`` and ``y``.  Values stay away from branch cuts
(``angle`` and ``log`` on the negative real axis) and from the zero of ``abs``.
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st
from test_ops import Case, make_op_test, nonzero, reals, shapes

NORMS = (None, "backward", "ortho", "forward")


def pair(x_values=nonzero, y_values=nonzero, shape_strategy=None):
    """(args, kwargs): two real arrays of one drawn shape (real and imaginary parts).

    Nonzero by default: an exactly zero factor makes a target exactly zero, and then
    relax(eta=1.5, init="forward") ends in a subnormal limit cycle (a solver limitation
    that real programs share: sin(exp(x + y) * y) at y = 0 shows it)."""
    return (shapes() if shape_strategy is None else shape_strategy).flatmap(
        lambda s: st.tuples(x_values(s), y_values(s))).map(lambda a: (a, {}))


def positive(shape):
    return reals(shape, 0.3, 2.0)


def transform_args(kind: str):
    """(args, kwargs) of one FFT: a real or complex input and drawn n/axis/norm options."""
    @st.composite
    def draw(draw_):
        shape = draw_(shapes(min_dims=1, max_dims=3, max_side=4))
        ndim = len(shape)
        axis = draw_(st.integers(-ndim, ndim - 1))
        n = draw_(st.none() | st.integers(1, 6))
        if kind == "irfft" and n is None and shape[axis] < 2:
            n = draw_(st.integers(1, 6))
        args = (draw_(nonzero(shape)), draw_(nonzero(shape)))
        return args, {"n": n, "axis": axis, "norm": draw_(st.sampled_from(NORMS))}
    return draw()


def many_axes_args():
    @st.composite
    def draw(draw_):
        shape = draw_(shapes(min_dims=2, max_dims=3, min_side=2, max_side=3))
        ndim = len(shape)
        axes = tuple(draw_(st.permutations(range(ndim)))[:draw_(st.integers(1, ndim))])
        s = draw_(st.none() | st.tuples(*[st.integers(2, 4) for _ in axes]))
        args = (draw_(nonzero(shape)), draw_(nonzero(shape)))
        return args, {"s": s, "axes": axes, "norm": draw_(st.sampled_from(NORMS))}
    return draw()


def _z(x, y):
    return x + 1j * y


def _spread(x, y):
    return 0.1 * _z(x, y) + np.diag([0.0, 2.0, 4.0])


def _fft(name, real_input=False):
    def fun(xp, x, y, **kw):
        out = getattr(xp.fft, name)(x * y if real_input else _z(x, y), **kw)
        return out
    return fun


CASES = [
    Case("real", lambda xp, x, y: xp.real(xp.exp(_z(x, y)) * y), pair()),
    Case("imag", lambda xp, x, y: xp.imag(xp.sin(_z(x, y))) * x, pair()),
    Case("conj", lambda xp, x, y: xp.conj(xp.tanh(_z(x, y)) + x) * _z(y, x), pair()),
    Case("conjugate", lambda xp, x, y: xp.conjugate(_z(x, y) ** 2), pair(), ops=("conj",)),
    Case("angle", lambda xp, x, y: xp.angle(_z(x, y)), pair(positive)),
    Case("angle deg", lambda xp, x, y: xp.angle(_z(x, y) * y, deg=True),
         pair(positive, positive), ops=("angle",)),
    Case("abs complex", lambda xp, x, y: xp.abs(_z(x, y) * _z(y, x) + 0.5),
         pair(positive, positive), ops=("absolute",)),
    Case("methods .real .imag .conj()",
         lambda xp, x, y: (_z(x, y) ** 3).real * (_z(y, x) ** 2).imag + _z(x, y).conj(),
         pair(), ops=("real", "imag", "conj"), dispatch=False),
    # holomorphic ops on complex values: their real VJPs (no conjugate) are the convention's
    Case("complex elementwise",
         lambda xp, x, y: xp.log(xp.sqrt(_z(x, y)) + xp.exp(_z(y, x)) * xp.cos(_z(x, y))),
         pair(positive, positive), ops=("log", "sqrt", "exp", "cos")),
    Case("complex reciprocal power",
         lambda xp, x, y: (1.0 / _z(x, y)) ** _z(0.5, y) + xp.tan(_z(y, x) * 0.3),
         pair(positive, positive), ops=("divide", "power", "tan")),
    Case("complex matmul",
         lambda xp, x, y: xp.abs(xp.reshape(_z(x, y), (2, 2)) @ xp.reshape(_z(y, x), (2, 2))),
         pair(shape_strategy=st.just((4,))), ops=("matmul", "absolute")),
    Case("fft", _fft("fft"), transform_args("fft"), ops=("fftn",)),
    Case("ifft", _fft("ifft"), transform_args("fft"), ops=("ifftn",)),
    Case("rfft", _fft("rfft", real_input=True), transform_args("fft"), ops=("rfftn",)),
    Case("irfft", _fft("irfft"), transform_args("irfft"), ops=("irfftn",)),
    Case("hfft", _fft("hfft"), transform_args("irfft"), ops=("irfftn", "conj")),
    Case("ihfft", _fft("ihfft", real_input=True), transform_args("fft"), ops=("rfftn", "conj")),
    Case("fftn", _fft("fftn"), many_axes_args()),
    Case("ifftn", _fft("ifftn"), many_axes_args()),
    Case("rfftn", _fft("rfftn", real_input=True), many_axes_args()),
    Case("irfftn", _fft("irfftn"), many_axes_args()),
    # eigendecompositions: 0.1 z + diag(0, 2, 4) keeps the eigenvalues in disjoint
    # Gershgorin discs (distinct, so the eigenvectors are differentiable)
    Case("linalg.eigvals", lambda xp, x, y: xp.linalg.eigvals(_spread(x, y)),
         pair(shape_strategy=st.just((3, 3))), ops=("eigvals",)),
    Case("linalg.eig", lambda xp, x, y: xp.abs(xp.linalg.eig(_spread(x, y))[1]) * x,
         pair(shape_strategy=st.just((3, 3))), ops=("eigvals", "eig_vectors")),
    Case("linalg.eigh complex", lambda xp, x, y: xp.abs(xp.linalg.eigh(_spread(x, y))[1]),
         pair(shape_strategy=st.just((3, 3))), ops=("eigvalsh", "eigh_vectors")),
    Case("linalg.svd complex",
         lambda xp, x, y: xp.abs(xp.linalg.svd(_spread(x, y), full_matrices=False)[0]),
         pair(shape_strategy=st.just((3, 3))), ops=("svdvals", "svd_u", "svd_vt")),
    Case("fftshift", lambda xp, x, y: xp.fft.fftshift(_z(x, y)) * xp.fft.ifftshift(x),
         pair(shape_strategy=shapes(min_dims=1)), ops=()),  # NumPy's roll refuses 0-d
]

test_complex = make_op_test(CASES)

# For tests/test_triangular.py: these ops declare no sparse-Jacobian family.  A graph
# with complex values is assembled in real form from the edges' VJPs (see
# ardiff/solvers/real_form.py): a complex-linear sparse matrix cannot represent conj or
# the real part taken at a real input, and the transforms are dense anyway.
_REAL_FORM = ("complex values: the triangular solver assembles the graph in real form from "
              "the VJPs of the unit vectors 1 and 1j")
VJP_FALLBACK = [(name, _REAL_FORM) for name in (
    "real", "imag", "conj", "angle", "fftn", "ifftn", "rfftn", "irfftn", "eigvals",
    "eig_vectors")]
_Z = np.array([[1.0 + 0.5j, -0.3j, 0.2], [0.4, 2.0 - 1.0j, 0.1j], [0.3j, 0.2, 4.0]])
JACOBIAN_CASES = [(name, (_Z,), {}, [0]) for name in ("real", "imag", "conj", "angle",
                                                      "eigvals", "eig_vectors")]
JACOBIAN_CASES += [
    ("fftn", (_Z,), {"s": None, "axes": (1,), "norm": "backward"}, [0]),
    ("ifftn", (_Z,), {"s": (2, 4), "axes": (0, 1), "norm": "ortho"}, [0]),
    ("rfftn", (_Z.real,), {"s": None, "axes": (0, 1), "norm": "forward"}, [0]),
    ("irfftn", (_Z,), {"s": (5,), "axes": (1,), "norm": "backward"}, [0]),
]
