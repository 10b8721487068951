"""A multi-layer perceptron built from the fused dense op.

Parameters live in plain NumPy arrays that the optimisers update in place.  For a
gradient the network is traced into a fresh `Graph` (one `dense`
node per layer, parameters as named inputs `W1, b1, W2, ...`) so any solver and
any local rule can run on it; for evaluation a plain NumPy forward pass is used.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..graph import Graph
from ..tracer import unit
from .dense import ACTIVATIONS, check_activation, dense


def trace_layers(model, x: np.ndarray) -> tuple[Graph, object, list, list]:
    """Record a layered model's forward pass on input `x` into a new graph: the one
    `trace` of `MLP` and `ardiff.nn.CNN`.

    Parameters
    ----------
    model : MLP or CNN
        Anything with `parameters()`, `parameter_names()` and `layers(x, params)`.
    x : numpy.ndarray
        The input batch.

    Returns
    -------
    graph : Graph
    output : Tracer
        The network output (one fused op per layer: `dense`, `conv2d`).
    params : list of Tracer
        The parameter inputs, in the order of `parameters`, named as
        `parameter_names` (`W1, b1, ...`).
    layers : list of Tracer
        Every layer's output, first to last (the last is `output`).
    """
    graph = Graph()
    params = [graph.input(p, name=n) for p, n in zip(model.parameters(),
                                                      model.parameter_names())]
    layers = list(model.layers(x, params))
    graph.output = layers[-1]
    return graph, layers[-1], params, layers


class MLP:
    """Fully connected network `x -> f(x W1 + b1) -> ... -> g(h W_L + b_L)`.

    Parameters
    ----------
    sizes : sequence of int
        Layer widths including input and output, e.g. the paper's
        `(784, 300, 300, 100, 10)`.
    activation : str
        Hidden nonlinearity (`"relu"`, `"tanh"`, `"sigmoid"`, `"linear"`).
    output_activation : str
        Nonlinearity of the last layer (the paper: `"linear"`).
    bias : bool
        Whether layers have a bias (initialised to zero).
    init_std : float
        Weights are drawn from `N(0, init_std**2)` (the paper: 0.05).
    seed : int
        Seed of the weight initialisation.
    dtype : numpy dtype
        Parameter precision (float64 by default).

    Attributes
    ----------
    weights, biases : list of numpy.ndarray
        The parameters, updated in place by the optimisers (`biases` holds `None`
        entries when `bias=False`).
    """

    def __init__(self, sizes: Sequence[int] = (784, 300, 300, 100, 10), activation: str = "relu",
                 output_activation: str = "linear", bias: bool = True, init_std: float = 0.05,
                 seed: int = 0, dtype=np.float64):
        sizes = [int(s) for s in sizes]
        if len(sizes) < 2 or min(sizes) < 1:
            raise ValueError(f"MLP sizes must list at least an input and an output width, all "
                             f"positive; got {sizes}.")
        check_activation(activation)
        check_activation(output_activation)
        self.sizes = sizes
        self.activation = activation
        self.output_activation = output_activation
        self.has_bias = bias
        rng = np.random.default_rng(seed)
        self.weights = [(init_std * rng.standard_normal((m, n))).astype(dtype)
                        for m, n in zip(sizes[:-1], sizes[1:])]
        self.biases = [np.zeros(n, dtype=dtype) if bias else None for n in sizes[1:]]

    @property
    def n_layers(self) -> int:
        """Number of dense layers."""
        return len(self.weights)

    def activations(self) -> list[str]:
        """The activation of every layer, first to last."""
        return [self.activation] * (self.n_layers - 1) + [self.output_activation]

    def parameters(self) -> list[np.ndarray]:
        """All parameter arrays in the order `W1, b1, W2, b2, ...` (biases if present)."""
        out = []
        for W, b in zip(self.weights, self.biases):
            out.append(W)
            if b is not None:
                out.append(b)
        return out

    def parameter_names(self) -> list[str]:
        """Names matching `parameters`: `W1, b1, W2, ...`."""
        out = []
        for k, b in enumerate(self.biases, start=1):
            out.append(f"W{k}")
            if b is not None:
                out.append(f"b{k}")
        return out

    def forward(self, x: np.ndarray, *, return_hidden: bool = False):
        """Plain NumPy forward pass (no graph); optionally also every layer's output."""
        h = x
        hidden = []
        for W, b, act in zip(self.weights, self.biases, self.activations()):
            z = h @ W
            if b is not None:
                z += b
            h = ACTIVATIONS[act][0](z)
            hidden.append(h)
        return (h, hidden) if return_hidden else h

    __call__ = forward

    def layers(self, x, params):
        """Yield each layer's output, first to last, from the parameters `params` (plain
        or traced, in the order of `parameters`); the hidden layers are marked as
        relaxation units (`ardiff.unit`), so `units="layers"` (the `"paper"` preset)
        relaxes one unit per hidden layer; the output layer is not marked, so a loss
        added after it leaves it clamped, as in the paper."""
        it = iter(params)
        h = x
        for k, (b, act) in enumerate(zip(self.biases, self.activations())):
            W = next(it)
            bt = next(it) if b is not None else None
            h = dense(h, W, bt, activation=act)
            yield unit(h) if k < len(self.biases) - 1 else h

    def trace(self, x: np.ndarray) -> tuple[Graph, object, list, list]:
        """Record the forward pass on input `x` into a new graph (see `trace_layers`)."""
        return trace_layers(self, x)

    def __repr__(self) -> str:
        return (f"MLP(sizes={self.sizes}, activation={self.activation!r}, "
                f"output_activation={self.output_activation!r}, bias={self.has_bias})")
