"""A small convolutional network built from the fused conv and dense ops.

`CNN` is conv-pool-conv-pool-fc-fc by default, with every layer one op of the op
table (`conv2d` with fused ReLU and max pooling, then `dense`), so a traced
network has one node per layer and relaxes at the paper's layer granularity.  It
offers the interface of `ardiff.nn.MLP` (`sizes`, `parameters`,
`parameter_names`, `forward`, `trace`), so `ardiff.nn.train`, `batch_gradients`
and `evaluate` use it unchanged: inputs are flat rows `(batch, channels * height *
width)` as the datasets give them, reshaped to NCHW inside.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..graph import Graph
from .conv import conv2d, conv_output_shape
from .dense import check_activation, dense
from .model import trace_layers


class CNN:
    """Convolutional layers (conv, activation, max pool) followed by dense layers.

    Parameters
    ----------
    image_shape : tuple of int
        `(channels, height, width)` of one input image (Fashion-MNIST: `(1, 28, 28)`).
    channels : sequence of int
        Filters of each convolutional layer.
    kernel : int
        Side of the square filters (stride 1, no padding).
    pool : int
        Side of the max-pooling windows after each convolution (1: no pooling).
    hidden : sequence of int
        Widths of the dense hidden layers after the convolutions.
    n_classes : int
        Width of the (linear) output layer.
    activation : str
        Nonlinearity of every hidden layer (`"relu"`, `"tanh"`, `"sigmoid"`).
    seed : int
        Seed of the weight initialisation: `N(0, gain / fan_in)` with gain 2 for ReLU
        layers and 1 otherwise (He / LeCun); biases start at zero.
    dtype : numpy dtype
        Parameter precision.

    Attributes
    ----------
    filters, conv_biases, weights, biases : list of numpy.ndarray
        The parameters, updated in place by the optimisers.
    sizes : tuple of int
        `(input features, ..., n_classes)`, as `MLP.sizes` (first and last entries are
        what `ardiff.nn.train` reads).

    Examples
    --------
    >>> import numpy as np
    >>> from ardiff.nn import CNN
    >>> model = CNN((1, 12, 12), channels=(2, 3), kernel=3, hidden=(8,), seed=0)
    >>> model.forward(np.zeros((5, 144))).shape
    (5, 10)
    """

    def __init__(self, image_shape: Sequence[int] = (1, 28, 28),
                 channels: Sequence[int] = (8, 16), kernel: int = 5, pool: int = 2,
                 hidden: Sequence[int] = (64,), n_classes: int = 10,
                 activation: str = "relu", seed: int = 0, dtype=np.float64):
        check_activation(activation)
        image_shape = tuple(int(s) for s in image_shape)
        if len(image_shape) != 3:
            raise ValueError(f"CNN: image_shape must be (channels, height, width), got "
                             f"{image_shape}.")
        self.image_shape = image_shape
        self.activation = activation
        self.kernel, self.pool = int(kernel), int(pool)
        rng = np.random.default_rng(seed)
        gain = 2.0 if activation == "relu" else 1.0

        def draw(shape, fan_in, g=gain):
            return (np.sqrt(g / fan_in) * rng.standard_normal(shape)).astype(dtype)

        self.filters, self.conv_biases = [], []
        shape = (1,) + image_shape
        why = ""
        for c in channels:
            w_shape = (int(c), shape[1], self.kernel, self.kernel)
            try:
                oh, ow = conv_output_shape(shape, w_shape)
            except ValueError as exc:
                oh = ow = 0
                why = f" ({exc})"
            if self.pool > 1:
                oh, ow = oh // self.pool, ow // self.pool
            if min(oh, ow) < 1:
                raise ValueError(f"CNN: the image {image_shape} is too small for "
                                 f"{len(channels)} conv layers of kernel {kernel} and pool "
                                 f"{pool}{why if oh == 0 else ''}; use fewer layers, a "
                                 "smaller kernel or pool.")
            self.filters.append(draw(w_shape, shape[1] * self.kernel ** 2))
            self.conv_biases.append(np.zeros(int(c), dtype=dtype))
            shape = (1, int(c), oh, ow)
        widths = [int(np.prod(shape[1:]))] + [int(h) for h in hidden] + [int(n_classes)]
        self.weights = [draw((m, n), m, gain if k < len(widths) - 2 else 1.0)
                        for k, (m, n) in enumerate(zip(widths[:-1], widths[1:]))]
        self.biases = [np.zeros(n, dtype=dtype) for n in widths[1:]]
        self.sizes = (int(np.prod(image_shape)),) + tuple(widths)

    @property
    def n_layers(self) -> int:
        """Number of layers (convolutional and dense)."""
        return len(self.filters) + len(self.weights)

    def parameters(self) -> list[np.ndarray]:
        """All parameter arrays, layer by layer: filters and biases of the conv layers,
        then weights and biases of the dense layers."""
        out = []
        for W, b in zip(self.filters + self.weights, self.conv_biases + self.biases):
            out += [W, b]
        return out

    def parameter_names(self) -> list[str]:
        """Names matching `parameters`: `W1, b1, W2, ...` numbered by layer (conv layers
        first), as `MLP.parameter_names`, so per-layer tools (gradient angles) see all."""
        names = []
        for k in range(1, self.n_layers + 1):
            names += [f"W{k}", f"b{k}"]
        return names

    def images(self, x: np.ndarray) -> np.ndarray:
        """Flat rows `(batch, features)` as NCHW images."""
        x = np.asarray(x)
        if x.ndim != 2 or x.shape[1] != self.sizes[0]:
            raise ValueError(f"CNN: expected inputs of shape (batch, {self.sizes[0]}) for "
                             f"images {self.image_shape}, got {x.shape}.")
        return x.reshape((x.shape[0],) + self.image_shape)

    def layers(self, x, params):
        """Yield each layer's output, first to last, from the parameters `params`
        (plain or traced, in the order of `parameters`): one fused op per layer; the
        last convolution flattens for the dense layers."""
        it = iter(params)
        h = self.images(x)
        n_conv = len(self.filters)
        for k in range(n_conv):
            K, c = next(it), next(it)
            h = conv2d(h, K, c, activation=self.activation,
                       pool=self.pool if self.pool > 1 else None, flatten=k == n_conv - 1)
            yield h
        for k in range(len(self.weights)):
            W, b = next(it), next(it)
            last = k == len(self.weights) - 1
            h = dense(h, W, b, activation="linear" if last else self.activation)
            yield h

    def forward(self, x: np.ndarray, *, return_hidden: bool = False):
        """Plain NumPy forward pass (no graph); optionally also every layer's output."""
        hidden = list(self.layers(x, self.parameters()))
        return (hidden[-1], hidden) if return_hidden else hidden[-1]

    __call__ = forward

    def trace(self, x: np.ndarray) -> tuple[Graph, object, list, list]:
        """Record the forward pass on input `x` into a new graph, one node per layer
        (`ardiff.nn.model.trace_layers`)."""
        return trace_layers(self, x)

    def __repr__(self) -> str:
        return (f"CNN(image_shape={self.image_shape}, channels="
                f"{tuple(K.shape[0] for K in self.filters)}, kernel={self.kernel}, "
                f"pool={self.pool}, hidden={self.sizes[2:-1]}, n_classes={self.sizes[-1]}, "
                f"activation={self.activation!r})")


__all__ = ["CNN"]
