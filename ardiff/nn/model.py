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


class ResidualMLP:
    """Residual network `x -> h_0 = f(x W_0 + b_0) -> h_k = h_{k-1} + f(h_{k-1} W_k + b_k)
    -> h_L W_out + b_out`, of configurable depth.

    Every residual block's output is marked as a relaxation unit (`ardiff.unit`), as
    are the input layer's; under `units="layers"` (the `"paper"` preset) the branch
    `f(h W_k + b_k)` (a nonlinear output) relaxes too, so a network of `depth` blocks has
    2 `depth` + 1 units in a row (D = 2 `depth` + 1 from the clamped output layer).

    Parameters
    ----------
    n_in : int
        Input width (784 for 28 x 28 images).
    width : int
        Width of every hidden layer (the issue's 128).
    depth : int
        Number of residual blocks L (0: a single hidden layer).
    n_out : int
        Output width (10 classes).
    activation : str
        Nonlinearity of the input layer and of every residual branch (default tanh).
    init_std : float
        Weights are drawn from `N(0, init_std**2)`; biases start at 0.  The default
        0.01 is smaller than the paper's 0.05, with which the residual stream grows and
        SGD on the paper's summed squared error diverges at depths 8 and 32.
    seed : int
        Seed of the weight initialisation.
    dtype : numpy dtype
        Parameter precision.

    Attributes
    ----------
    weights, biases : list of numpy.ndarray
        Input layer, the `depth` blocks, the output layer; updated in place.
    sizes : list of int
        `[n_in, width, ..., width, n_out]` (`width` repeated `depth + 1` times): the
        input and output widths that `ardiff.nn.train` checks.
    """

    def __init__(self, n_in: int = 784, width: int = 128, depth: int = 8, n_out: int = 10,
                 activation: str = "tanh", init_std: float = 0.01, seed: int = 0,
                 dtype=np.float64):
        n_in, width, depth, n_out = int(n_in), int(width), int(depth), int(n_out)
        if min(n_in, width, n_out) < 1 or depth < 0:
            raise ValueError(f"ResidualMLP needs positive widths and depth >= 0; got n_in="
                             f"{n_in}, width={width}, depth={depth}, n_out={n_out}.")
        check_activation(activation)
        self.depth, self.width, self.activation = depth, width, activation
        self.sizes = [n_in] + [width] * (depth + 1) + [n_out]
        shapes = [(n_in, width)] + [(width, width)] * depth + [(width, n_out)]
        rng = np.random.default_rng(seed)
        self.weights = [(init_std * rng.standard_normal(s)).astype(dtype) for s in shapes]
        self.biases = [np.zeros(s[1], dtype=dtype) for s in shapes]

    def parameters(self) -> list[np.ndarray]:
        """All parameter arrays in the order `W1, b1, W2, b2, ...`."""
        return [p for pair in zip(self.weights, self.biases) for p in pair]

    def parameter_names(self) -> list[str]:
        """Names matching `parameters`: `W1, b1, W2, ...`."""
        return [f"{kind}{k}" for k in range(1, len(self.weights) + 1) for kind in "Wb"]

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Plain NumPy forward pass (no graph)."""
        f = ACTIVATIONS[self.activation][0]
        h = f(x @ self.weights[0] + self.biases[0])
        for W, b in zip(self.weights[1:-1], self.biases[1:-1]):
            h = h + f(h @ W + b)
        return h @ self.weights[-1] + self.biases[-1]

    __call__ = forward

    def layers(self, x, params):
        """Yield the input layer, every residual block and the output, from `params`
        (plain or traced, in the order of `parameters`); the hidden ones are marked as
        units (`ardiff.unit`), the output is not (a loss after it leaves it clamped)."""
        it = iter(params)
        h = unit(dense(x, next(it), next(it), activation=self.activation))
        yield h
        for _ in range(self.depth):
            W, b = next(it), next(it)
            h = unit(h + dense(h, W, b, activation=self.activation))
            yield h
        yield dense(h, next(it), next(it), activation="linear")

    def trace(self, x: np.ndarray) -> tuple[Graph, object, list, list]:
        """Record the forward pass on input `x` into a new graph (see `trace_layers`)."""
        return trace_layers(self, x)

    def __repr__(self) -> str:
        return (f"ResidualMLP(n_in={self.sizes[0]}, width={self.width}, depth={self.depth}, "
                f"n_out={self.sizes[-1]}, activation={self.activation!r})")
