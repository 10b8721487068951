"""Array workloads of the benchmark suite and their hand-written NumPy baselines.

Each program is written once against a NumPy-like module (``ardiff.numpy``,
``autograd.numpy``, ``numpy`` or ``torch``) so that every engine runs the same
operations; each ``*_by_hand`` function is the floor the issue measures against:
a forward and backward pass written out with the same BLAS calls.  Nothing here
imports the optional engines; `bench_suite.py` passes them in.
"""

from __future__ import annotations

import numpy as np

SIZES = (784, 300, 300, 100, 10)


# -- mlp: the paper's network -------------------------------------------------------------
def mlp_params(rng, dtype=np.float64, sizes=SIZES):
    """Weights (normal, scale 0.05) and zero biases of an MLP, alternating in a flat list."""
    params = []
    for n, m in zip(sizes[:-1], sizes[1:]):
        params += [rng.normal(0.0, 0.05, (n, m)).astype(dtype), np.zeros(m, dtype=dtype)]
    return params


def mlp_loss(np_mod, torch=None):
    """Summed squared error of a ReLU MLP; `torch` is the torch module when np_mod is it."""
    def loss(params, X, Y):
        h = X
        for k in range(0, len(params), 2):
            h = h @ params[k] + params[k + 1]
            if k < len(params) - 2:
                h = torch.relu(h) if np_mod is torch else np_mod.maximum(h, 0.0)
        return np_mod.sum((h - Y) ** 2)
    return loss


def mlp_forward(params, X):
    """The MLP's forward pass by hand: each layer's input (the last is the output) and
    pre-activation, as its backward pass needs them."""
    hs, pre, h = [X], [], X
    for k in range(0, len(params), 2):
        a = h @ params[k] + params[k + 1]
        pre.append(a)
        h = np.maximum(a, 0.0) if k < len(params) - 2 else a
        hs.append(h)
    return hs, pre


def mlp_by_hand(params, X, Y):
    """Hand-written forward and backward pass of the MLP (the NumPy baseline)."""
    hs, pre = mlp_forward(params, X)
    g = 2.0 * (hs[-1] - Y)
    grads = [None] * len(params)
    for k in range(len(params) - 2, -1, -2):
        layer = k // 2
        if k < len(params) - 2:
            g = g * (pre[layer] > 0)
        grads[k] = hs[layer].T @ g
        grads[k + 1] = g.sum(0)
        if k > 0:
            g = g @ params[k].T
    return grads


def mlp_problem(dtype=np.float64, batch=64, sizes=SIZES):
    """(params, X, Y) of the suite's mlp workload."""
    rng = np.random.default_rng(0)
    params = mlp_params(rng, dtype, sizes)
    X = rng.random((batch, sizes[0])).astype(dtype)
    Y = np.eye(sizes[-1], dtype=dtype)[rng.integers(0, sizes[-1], batch)]
    return params, X, Y


# -- rnn: tanh recurrence ----------------------------------------------------------------------
def rnn_fun(np_mod, X, torch=None):
    """Sum of squares of the last state of a tanh RNN over the steps of X."""
    batch, hidden = X.shape[1], 128

    def f(Wx, Wh):
        h = np_mod.zeros((batch, hidden)) if np_mod is not torch else torch.zeros(
            batch, hidden, dtype=torch.float64)
        for t in range(X.shape[0]):
            h = np_mod.tanh(X[t] @ Wx + h @ Wh)
        return np_mod.sum(h ** 2)
    return f


def rnn_by_hand(X, Wx, Wh):
    """Hand-written forward and backward pass of the RNN (the NumPy baseline)."""
    hs = [np.zeros((X.shape[1], Wh.shape[0]))]
    for t in range(X.shape[0]):
        hs.append(np.tanh(X[t] @ Wx + hs[-1] @ Wh))
    g = 2.0 * hs[-1]
    gWx, gWh = np.zeros_like(Wx), np.zeros_like(Wh)
    for t in range(X.shape[0] - 1, -1, -1):
        g = g * (1.0 - hs[t + 1] * hs[t + 1])
        gWx += X[t].T @ g
        gWh += hs[t].T @ g
        g = g @ Wh.T
    return gWx, gWh


def rnn_problem(steps=50):
    """(X, Wx, Wh) of the suite's rnn workload (hidden 128, batch 16, 32 inputs)."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((steps, 16, 32))
    return X, rng.standard_normal((32, 128)) * 0.1, rng.standard_normal((128, 128)) * 0.05


# -- lstm ------------------------------------------------------------------------------------
def lstm_fun(np_mod, X, hidden=128, torch=None):
    """Sum of squares of the last hidden state of an LSTM (gates i, f, o, g in that order).

    The four gates come from one product each with the input and the state,
    `z = x_t Wx + h Wh + b` (columns [i | f | o | g]); sigmoid is written as
    ``1 / (1 + exp(-z))`` for every engine.
    """
    batch, H = X.shape[1], hidden

    def sigmoid(z):
        return 1.0 / (1.0 + np_mod.exp(-z))

    def f(Wx, Wh, b):
        if np_mod is torch:
            h = torch.zeros(batch, H, dtype=torch.float64)
        else:
            h = np_mod.zeros((batch, H))
        c = h
        for t in range(X.shape[0]):
            z = X[t] @ Wx + h @ Wh + b
            i, fg, o = sigmoid(z[:, :H]), sigmoid(z[:, H:2 * H]), sigmoid(z[:, 2 * H:3 * H])
            g = np_mod.tanh(z[:, 3 * H:])
            c = fg * c + i * g
            h = o * np_mod.tanh(c)
        return np_mod.sum(h ** 2)
    return f


def lstm_by_hand(X, Wx, Wh, b):
    """Hand-written forward and backward pass of the LSTM (the NumPy baseline)."""
    steps, batch = X.shape[0], X.shape[1]
    H = Wh.shape[0]
    h = c = np.zeros((batch, H))
    tape = []
    for t in range(steps):
        z = X[t] @ Wx + h @ Wh + b
        i = 1.0 / (1.0 + np.exp(-z[:, :H]))
        f = 1.0 / (1.0 + np.exp(-z[:, H:2 * H]))
        o = 1.0 / (1.0 + np.exp(-z[:, 2 * H:3 * H]))
        g = np.tanh(z[:, 3 * H:])
        c_new = f * c + i * g
        tc = np.tanh(c_new)
        tape.append((h, c, i, f, o, g, tc))
        h, c = o * tc, c_new
    gWx, gWh, gb = np.zeros_like(Wx), np.zeros_like(Wh), np.zeros_like(b)
    dh, dc = 2.0 * h, np.zeros((batch, H))
    dz = np.empty((batch, 4 * H))
    for t in range(steps - 1, -1, -1):
        h_prev, c_prev, i, f, o, g, tc = tape[t]
        dc = dc + dh * o * (1.0 - tc * tc)
        dz[:, :H] = dc * g * i * (1.0 - i)
        dz[:, H:2 * H] = dc * c_prev * f * (1.0 - f)
        dz[:, 2 * H:3 * H] = dh * tc * o * (1.0 - o)
        dz[:, 3 * H:] = dc * i * (1.0 - g * g)
        dc = dc * f
        gWx += X[t].T @ dz
        gWh += h_prev.T @ dz
        gb += dz.sum(0)
        dh = dz @ Wh.T
    return gWx, gWh, gb


def lstm_loss_by_hand(X, Wx, Wh, b):
    """The LSTM's loss by plain NumPy (for finite-difference checks of `lstm_by_hand`)."""
    return float(lstm_fun(np, X, Wh.shape[0])(Wx, Wh, b))


def lstm_problem(steps=30, batch=16, inputs=32, hidden=128):
    """(X, Wx, Wh, b) of the suite's lstm workload (hidden 128, 30 steps, batch 16)."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((steps, batch, inputs))
    Wx = rng.standard_normal((inputs, 4 * hidden)) * 0.1
    Wh = rng.standard_normal((hidden, 4 * hidden)) * 0.05
    return X, Wx, Wh, rng.standard_normal(4 * hidden) * 0.1
