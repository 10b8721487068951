"""Small hand-built graphs shared by the solver tests."""

import numpy as np

import ardiff
import ardiff.numpy as anp


def scalar_chain(length, factor=1.1):
    """x -> factor * x, ``length`` times: a linear chain with gradient factor**length
    and ``length - 1`` relaxing nodes in a row."""
    g = ardiff.Graph()
    x = g.input(0.3, name="x")
    h = x
    for _ in range(length):
        h = h * factor
    return g, h, x


def tanh_mlp(seed=0, sizes=(5, 4, 4, 3)):
    """A bias-free tanh MLP with a squared-output loss: (graph, loss, [x, W1, ...])."""
    rng = np.random.default_rng(seed)
    g = ardiff.Graph()
    x = g.input(rng.standard_normal(sizes[0]), name="x")
    weights = [g.input(rng.standard_normal((m, n)) * 0.7, name=f"W{i}")
               for i, (n, m) in enumerate(zip(sizes[:-1], sizes[1:]))]
    h = x
    for W in weights:
        h = anp.tanh(W @ h)
    return g, anp.sum(h ** 2), [x] + weights
