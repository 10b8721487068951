"""Property-based cases of the convolution and pooling ops of ``ardiff.nn``: ``conv2d``
(with every activation, stride and padding), its two VJP ops ``conv2d_input_vjp`` and
``conv2d_weight_vjp``, ``max_pool2d`` and ``avg_pool2d``, run by the op-table harness
of ``test_ops`` (finite differences to second order, relaxation vs backprop).

The NumPy references are direct loops over output positions written here, not the
library's im2col.  Max pooling draws distinct grid values (no ties within a window);
the fused pooling of ``conv2d`` is checked on random data in ``test_nn_conv``, since
drawn filters can make a whole window equal.
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st
from test_ops import Case, grid, make_op_test, reals

from ardiff.nn.conv import conv2d, conv2d_input_vjp, conv2d_weight_vjp
from ardiff.nn.pool import avg_pool2d, max_pool2d


def loop_conv(x, W, stride, padding):
    """Cross-correlation by a loop over output positions (NCHW)."""
    n, c, h, w = x.shape
    f, _, kh, kw = W.shape
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    oh, ow = (h + 2 * padding - kh) // stride + 1, (w + 2 * padding - kw) // stride + 1
    out = np.zeros((n, f, oh, ow))
    for i in range(oh):
        for j in range(ow):
            patch = xp[:, :, i * stride:i * stride + kh, j * stride:j * stride + kw]
            out[:, :, i, j] = np.einsum("nchw,fchw->nf", patch, W)
    return out


def loop_conv_transpose(g, W, stride, padding, input_hw):
    """The adjoint of `loop_conv` in its input: each output scatters back its patch."""
    n, f, oh, ow = g.shape
    _, c, kh, kw = W.shape
    h, w = input_hw
    out = np.zeros((n, c, h + 2 * padding, w + 2 * padding))
    for i in range(oh):
        for j in range(ow):
            out[:, :, i * stride:i * stride + kh, j * stride:j * stride + kw] += np.einsum(
                "nf,fchw->nchw", g[:, :, i, j], W)
    return out[:, :, padding:padding + h, padding:padding + w]


def loop_conv_weight(x, g, stride, padding, kernel_hw):
    """The adjoint of `loop_conv` in its filters."""
    kh, kw = kernel_hw
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    out = np.zeros((g.shape[1], x.shape[1], kh, kw))
    for i in range(g.shape[2]):
        for j in range(g.shape[3]):
            patch = xp[:, :, i * stride:i * stride + kh, j * stride:j * stride + kw]
            out += np.einsum("nf,nchw->fchw", g[:, :, i, j], patch)
    return out


ACT = {"tanh": np.tanh, "linear": lambda z: z, "sigmoid": lambda z: 1 / (1 + np.exp(-z))}


@st.composite
def conv_args(draw):
    """x (n, c, h, w), W (f, c, kh, kw), b (f,) and static stride/padding/activation."""
    n, c, f = (draw(st.integers(1, 2)) for _ in range(3))
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    stride, padding = draw(st.integers(1, 2)), draw(st.integers(0, 1))
    h = draw(st.integers(max(kh - 2 * padding, 1), 4))
    w = draw(st.integers(max(kw - 2 * padding, 1), 4))
    kwargs = {"stride": stride, "padding": padding,
              "activation": draw(st.sampled_from(sorted(ACT)))}
    return (draw(reals((n, c, h, w), -1, 1)), draw(reals((f, c, kh, kw), -1, 1)),
            draw(reals((f,), -1, 1))), kwargs


def _conv(xp, x, W, b, stride, padding, activation):
    if xp is np:
        return ACT[activation](loop_conv(x, W, stride, padding) + b[None, :, None, None])
    return conv2d(x, W, b, stride=stride, padding=padding, activation=activation)


@st.composite
def transpose_args(draw):
    (x, W, _), kw = draw(conv_args())
    g_shape = loop_conv(x, W, kw["stride"], kw["padding"]).shape
    g = draw(reals(g_shape, -1, 1))
    return (g, W), {"stride": kw["stride"], "padding": kw["padding"], "input_hw": x.shape[2:]}


def _transpose(xp, g, W, stride, padding, input_hw):
    if xp is np:
        return loop_conv_transpose(g, W, stride, padding, input_hw)
    return conv2d_input_vjp(g, W, stride=stride, padding=padding, input_hw=input_hw)


@st.composite
def weight_args(draw):
    (x, W, _), kw = draw(conv_args())
    g = draw(reals(loop_conv(x, W, kw["stride"], kw["padding"]).shape, -1, 1))
    return (x, g), {"stride": kw["stride"], "padding": kw["padding"], "kernel_hw": W.shape[2:]}


def _weight(xp, x, g, stride, padding, kernel_hw):
    if xp is np:
        return loop_conv_weight(x, g, stride, padding, kernel_hw)
    return conv2d_weight_vjp(x, g, stride=stride, padding=padding, kernel_hw=kernel_hw)


@st.composite
def pool_args(draw, unique: bool):
    size = draw(st.integers(1, 3))
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 2)),
             draw(st.integers(size, 5)), draw(st.integers(size, 5)))
    x = draw(grid(shape, step=0.05, unique=True, bound=60)) if unique else draw(reals(shape))
    return (x,), {"size": size}


def _loop_pool(x, size, reduce):
    n, c, h, w = x.shape
    out = np.zeros((n, c, h // size, w // size))
    for i in range(h // size):
        for j in range(w // size):
            out[:, :, i, j] = reduce(x[:, :, i * size:(i + 1) * size, j * size:(j + 1) * size],
                                     axis=(2, 3))
    return out


def _max_pool(xp, x, size):
    return _loop_pool(x, size, np.max) if xp is np else max_pool2d(x, size)


def _avg_pool(xp, x, size):
    return _loop_pool(x, size, np.mean) if xp is np else avg_pool2d(x, size)


CASES = [
    Case("conv2d", _conv, conv_args(), dispatch=False),
    Case("conv2d_input_vjp", _transpose, transpose_args(), dispatch=False),
    Case("conv2d_weight_vjp", _weight, weight_args(), dispatch=False),
    Case("max_pool2d", _max_pool, pool_args(unique=True), dispatch=False),
    Case("avg_pool2d", _avg_pool, pool_args(unique=False), dispatch=False),
]

test_conv = make_op_test(CASES)

# For tests/test_triangular.py: the bilinear helper ops of conv2d's VJPs appear in a graph
# only when a VJP is itself differentiated (second order); there the triangular solver
# builds their Jacobian from their VJPs (themselves convolutions), one column at a time.
VJP_FALLBACK = [(name, "bilinear helper of conv2d's VJP, in graphs of second derivatives "
                 "only: the Jacobian is assembled from its VJPs (convolutions)")
                for name in ("conv2d_input_vjp", "conv2d_weight_vjp")]
_G = np.linspace(-1.0, 1.0, 2 * 2 * 3 * 3).reshape(2, 2, 3, 3)  # conv of (2,1,4,4) by 2x2
_W = np.linspace(0.5, -0.5, 2 * 1 * 2 * 2).reshape(2, 1, 2, 2)
_X = np.linspace(-0.7, 0.9, 2 * 1 * 4 * 4).reshape(2, 1, 4, 4)
JACOBIAN_CASES = [
    ("conv2d_input_vjp", (_G, _W), {"stride": 1, "padding": 0, "input_hw": (4, 4)}, [0, 1]),
    ("conv2d_weight_vjp", (_X, _G), {"stride": 1, "padding": 0, "kernel_hw": (2, 2)}, [0, 1]),
    ("conv2d", (_X, _W, np.array([0.1, -0.2])),
     {"stride": 1, "padding": 1, "activation": "tanh"}, [0, 1, 2]),
    ("conv2d", (_X, _W, np.array([0.1, -0.2])),
     {"stride": 2, "padding": 0, "activation": "relu", "pool": 2}, [0, 1, 2]),
    ("max_pool2d", (_X,), {"size": 2}, [0]),
    ("avg_pool2d", (_X,), {"size": 2}, [0]),
]
