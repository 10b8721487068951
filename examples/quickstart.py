"""Quickstart: gradients of a plain NumPy function by Activation Relaxation."""

import numpy as np

import ardiff
import ardiff.numpy as anp


def loss(W, x):
    """A one-layer tanh network with a squared-error loss."""
    return anp.sum((anp.tanh(W @ x) - 0.5) ** 2)


rng = np.random.default_rng(0)
W, x = rng.standard_normal((3, 4)), rng.standard_normal(4)

dW = ardiff.grad(loss)(W, x)                                # relaxation, exact in one sweep
dW_paper = ardiff.grad(loss, preset="paper")(W, x)          # the paper's eta=0.1, T=100
dW_exact = ardiff.grad(loss, method="backprop")(W, x)       # reverse-mode reference

print("dL/dW (relax, default):\n", dW)
print("max |relax - backprop|          :", np.max(np.abs(dW - dW_exact)))
print("max |paper preset - backprop|   :", np.max(np.abs(dW_paper - dW_exact)))
