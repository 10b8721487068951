"""autograd's generalised `scipy.signal.convolve` (`axes=`, `dot_axes=`) as one op.

The references are independent of the op: loops of SciPy's 2-d `convolve` over the
kept axes, summed over the dot axes; the gradients are checked against finite
differences (forward and reverse mode, second order) and against autograd's own
convolve where autograd is installed.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import scipy.signal

import ardiff
import ardiff.numpy as anp
from ardiff.ops.signal import convolve as convolve_op
from ardiff.scipy import signal as asignal
from ardiff.testing import check_grads

RNG = np.random.default_rng(11)
CONVNET = dict(axes=([2, 3], [2, 3]), dot_axes=([1], [0]))


def reference(a, b, mode):
    """The convnet layout by loops: a [n, c, y, x], b [c, f, ky, kx] -> [n, f, ...]."""
    return np.array([[sum(scipy.signal.convolve(a[i, c], b[c, f], mode=mode)
                          for c in range(a.shape[1]))
                      for f in range(b.shape[1])] for i in range(a.shape[0])])


@pytest.mark.parametrize("mode", ["valid", "full", "same"])
def test_convnet_layout_matches_scipy_loops(mode):
    a = RNG.standard_normal((3, 2, 7, 6))
    b = RNG.standard_normal((2, 4, 3, 2))
    traced = ardiff.trace(lambda a: asignal.convolve(a, b, mode=mode, **CONVNET), a)
    np.testing.assert_allclose(traced.output.value, reference(a, b, mode), rtol=1e-12,
                               atol=1e-12)


def test_valid_with_the_second_operand_larger_puts_the_first_operands_axes_first():
    small = RNG.standard_normal((3, 2, 2, 3))  # [n, c, y, x], smaller along y and x
    large = RNG.standard_normal((2, 4, 5, 6))  # [c, f, y, x]
    out = ardiff.trace(lambda a: asignal.convolve(a, large, mode="valid", **CONVNET),
                       small).output.value
    expected = np.array([[sum(scipy.signal.convolve(small[i, c], large[c, f], mode="valid")
                              for c in range(2)) for f in range(4)] for i in range(3)])
    assert out.shape == (3, 4, 4, 4)
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12)


def test_two_dot_axes_and_kept_axes_on_both_sides():
    # a [c, n, d, x], b [f, d, c, x]: dot axes (0, 2) with (2, 1), conv axis 3 with 3
    a = RNG.standard_normal((2, 3, 2, 6))
    b = RNG.standard_normal((4, 2, 2, 3))
    out = ardiff.trace(lambda a: asignal.convolve(a, b, axes=([3], [3]),
                                                  dot_axes=([0, 2], [2, 1]), mode="valid"),
                       a).output.value
    expected = np.zeros((3, 4, 4))
    for n, f, c, d in itertools.product(range(3), range(4), range(2), range(2)):
        expected[n, f] += np.convolve(a[c, n, d], b[f, d, c], mode="valid")
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("mode", ["valid", "full", "same"])
def test_gradients_against_finite_differences_second_order_both_modes(mode):
    a = RNG.standard_normal((2, 2, 5, 4))
    b = RNG.standard_normal((2, 3, 3, 2))
    w = RNG.standard_normal(reference(a, b, mode).shape)

    def loss(a, b):
        return anp.sum(anp.tanh(asignal.convolve(a, b, mode=mode, **CONVNET)) * w)

    check_grads(loss, argnum=(0, 1), order=2, modes=["fwd", "rev"])(a, b)


def test_swapped_valid_gradients_against_finite_differences():
    small = RNG.standard_normal((2, 2, 2, 3))
    large = RNG.standard_normal((2, 3, 4, 4))

    def loss(a, b):
        return anp.sum(asignal.convolve(a, b, mode="valid", **CONVNET) ** 2)

    check_grads(loss, argnum=(0, 1), order=2)(small, large)


@pytest.mark.parametrize("mode", ["full", "valid"])
def test_the_op_layout_keywords_against_its_plain_form(mode):
    # keep = dot = 0 is the plain n-d convolution; a kept axis of b (b has more axes)
    # is a stack of plain convolutions
    a, b = RNG.standard_normal((5, 4)), RNG.standard_normal((3, 2, 2))
    out = convolve_op(a, b, mode=mode)
    expected = np.stack([scipy.signal.convolve(a, b[k], mode=mode) for k in range(3)])
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="dot axes"):
        convolve_op(a, b, mode=mode, keep=0, dot=1)


def test_convnet_gradient_matches_autograd():
    autograd = pytest.importorskip("autograd")
    agsignal = pytest.importorskip("autograd.scipy.signal")
    import autograd.numpy as agnp

    a = RNG.standard_normal((3, 2, 8, 8))
    b = RNG.standard_normal((2, 4, 3, 3))

    def loss(xp, conv):
        return lambda a, b: xp.sum(xp.tanh(conv(a, b, mode="valid", **CONVNET)) ** 2)

    mine = ardiff.grad(loss(anp, asignal.convolve), argnum=(0, 1))(a, b)
    theirs = autograd.grad(loss(agnp, agsignal.convolve), argnum=(0, 1))(a, b)
    for x, y in zip(mine, theirs):
        np.testing.assert_allclose(x, y, rtol=1e-11, atol=1e-12)


def test_compiled_replay_and_triangular_solver_agree_with_grad():
    a = RNG.standard_normal((2, 2, 6, 6))
    b0 = RNG.standard_normal((2, 3, 3, 3))

    def loss(b):
        return anp.sum(anp.tanh(asignal.convolve(a, b, mode="valid", **CONVNET)) ** 2)

    compiled = ardiff.compile(loss)
    for b in (b0, 1.5 * b0):  # the replay at a second point
        exact = ardiff.grad(loss)(b)
        np.testing.assert_array_equal(compiled(b), exact)
        np.testing.assert_allclose(ardiff.grad(loss, method="triangular")(b), exact,
                                   rtol=1e-12, atol=1e-14)
