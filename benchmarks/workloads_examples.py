"""Two of HIPS autograd's example programs as benchmark workloads (issue 27).

* ``convnet``: the LeNet-like network of autograd's ``examples/convnet.py``, written
  here again in the same shape: one flat parameter vector sliced into the layers'
  weights; two convolution layers by ``scipy.signal.convolve`` with autograd's
  ``axes=([2, 3], [2, 3]), dot_axes=([1], [0])`` (kernels ``[color_in, color_out, y,
  x]``), each followed by 2x2 max pooling (two ``max`` reductions over a reshape); two
  tanh layers and a log-softmax layer; the loss is the L2 prior minus the summed
  log-likelihood of one-hot targets.  The batch is small (the example's "test size"):
  the fixed costs of the n-d convolutions, not BLAS, dominate.
* ``define_gradient``: autograd's ``examples/define_gradient.py``: a user primitive
  (a numerically stable logsumexp with its own VJP) inside ``sum(logsumexp(y ** 2))``
  on a 10-element vector, where the fixed cost of one gradient call is what is
  measured.

Every program takes the engine's NumPy-like module (and, for the convnet, its
``convolve``), so that ardiff and autograd run the same operations.
"""

from __future__ import annotations

import math

import numpy as np

#: (input channels, height, width) of the images, as in the example (MNIST-sized).
CONVNET_INPUT = (1, 28, 28)
#: Layers: ("conv", kernel, filters), ("pool", size), ("tanh", units), ("softmax", units).
CONVNET_LAYERS = (("conv", (5, 5), 6), ("pool", 2), ("conv", (5, 5), 16), ("pool", 2),
                  ("tanh", 120), ("tanh", 84), ("softmax", 10))
CONVNET_L2 = 1.0


def convnet_layout(input_shape=CONVNET_INPUT, layers=CONVNET_LAYERS):
    """The slices of the flat parameter vector: a list of (kind, setting, pieces) per
    layer, pieces being ``(start, stop, shape)`` of the weights and the biases; and
    the vector's length."""
    layout, n, shape = [], 0, tuple(input_shape)
    for kind, *setting in layers:
        pieces = []
        if kind == "conv":
            kernel, filters = setting
            shapes = [(shape[0], filters) + tuple(kernel), (1, filters, 1, 1)]
            shape = (filters,) + tuple(s - k + 1 for s, k in zip(shape[1:], kernel))
        elif kind == "pool":
            shape = (shape[0],) + tuple(s // setting[0] for s in shape[1:])
            shapes = []
        else:
            units = setting[0]
            shapes = [(math.prod(shape), units), (units,)]
            shape = (units,)
        for s in shapes:
            pieces.append((n, n + math.prod(s), s))
            n += math.prod(s)
        layout.append((kind, setting, pieces))
    return layout, n


def convnet_loss(np_mod, convolve, input_shape=CONVNET_INPUT, layers=CONVNET_LAYERS,
                 l2=CONVNET_L2):
    """loss(W, X, T) of the example's network for one engine's `np_mod` and `convolve`."""
    layout, _ = convnet_layout(input_shape, layers)

    def piece(W, p):
        start, stop, shape = p
        return np_mod.reshape(W[start:stop], shape)

    def predictions(W, X):
        h = X
        for kind, setting, pieces in layout:
            if kind == "conv":
                kernels, bias = (piece(W, p) for p in pieces)
                h = convolve(h, kernels, axes=([2, 3], [2, 3]), dot_axes=([1], [0]),
                             mode="valid") + bias
            elif kind == "pool":
                size = setting[0]
                n, c, y, x = h.shape
                h = np_mod.reshape(h, (n, c, y // size, size, x // size, size))
                h = np_mod.max(np_mod.max(h, axis=3), axis=4)
            else:
                weights, bias = (piece(W, p) for p in pieces)
                if h.ndim > 2:
                    h = np_mod.reshape(h, (h.shape[0], math.prod(h.shape[1:])))
                a = np_mod.dot(h, weights) + bias
                if kind == "tanh":
                    h = np_mod.tanh(a)
                else:
                    top = np_mod.max(a)
                    h = a - (top + np_mod.log(np_mod.sum(np_mod.exp(a - top), axis=1,
                                                         keepdims=True)))
        return h

    def loss(W, X, T):
        log_prior = -l2 * np_mod.dot(W, W)
        log_lik = np_mod.sum(predictions(W, X) * T)
        return -log_prior - log_lik

    return loss


def convnet_problem(batch=8, seed=0, input_shape=CONVNET_INPUT, layers=CONVNET_LAYERS):
    """Weights (scale 0.1, as in the example), images in [0, 1] and one-hot targets."""
    rng = np.random.default_rng(seed)
    _, n = convnet_layout(input_shape, layers)
    W = 0.1 * rng.standard_normal(n)
    X = rng.random((batch,) + tuple(input_shape))
    T = np.eye(layers[-1][-1])[rng.integers(0, layers[-1][-1], batch)]
    return W, X, T


def define_gradient_fun(np_mod, primitive, defvjp):
    """The example's ``y -> sum(logsumexp(y ** 2))`` with logsumexp a user primitive.

    The primitive's forward pass uses plain NumPy (it is a black box), its VJP maker the
    engine's `np_mod`, as in the example.
    """
    @primitive
    def logsumexp(x):
        top = np.max(x)
        return top + np.log(np.sum(np.exp(x - top)))

    def logsumexp_vjp(ans, x):
        shape = x.shape
        return lambda g: np_mod.full(shape, g) * np_mod.exp(x - np_mod.full(shape, ans))

    defvjp(logsumexp, logsumexp_vjp)

    def example_func(y):
        return np_mod.sum(logsumexp(y ** 2))

    return example_func


def define_gradient_by_hand(y: np.ndarray) -> np.ndarray:
    """d sum(logsumexp(y ** 2)) / dy = softmax(y ** 2) * 2 y."""
    z = y ** 2
    e = np.exp(z - np.max(z))
    return e / np.sum(e) * 2.0 * y
