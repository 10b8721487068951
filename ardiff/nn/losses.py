"""Loss functions: value (traceable), derivative w.r.t. the network output, accuracy.

In the paper (and its code) the output layer is clamped to the loss derivative,
the "top-layer error", and only the hidden layers relax.  A loss here therefore
offers both its value, written with `ardiff.numpy` so it can be traced like
any other function, and its derivative `d loss / d output` in closed form,
which the training loop uses as the relaxation's seed.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import numpy as anp
from ..graph import unwrap
from ..scipy.special import logsumexp


class Loss:
    """Base class: `loss(out, target)` is the value, `loss.grad(out, target)` its
    derivative with respect to `out` (both for a whole batch)."""

    name = "loss"
    #: "sum" when the value adds up over examples, "mean" when it averages
    reduction = "sum"

    def __call__(self, out: Any, target: Any) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def grad(self, out: np.ndarray, target: np.ndarray) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class SumSquaredError(Loss):
    """`sum((out - target)**2)` over batch and units: the paper's loss.

    Its derivative `2 (out - target)` is the paper's output error.
    """

    name = "sse"

    def __call__(self, out, target):
        diff = out - target
        return anp.sum(diff * diff)

    def grad(self, out, target):
        return 2.0 * (out - target)


class MeanSquaredError(Loss):
    """`mean((out - target)**2)` over all elements."""

    name = "mse"
    reduction = "mean"

    def __call__(self, out, target):
        diff = out - target
        return anp.mean(diff * diff)

    def grad(self, out, target):
        return 2.0 * (out - target) / np.size(out)


class SoftmaxCrossEntropy(Loss):
    """Cross-entropy of `softmax(out)` against one-hot (or soft) targets, summed over
    the batch: `sum(logsumexp(out) - sum(target * out))`."""

    name = "xent"

    def __call__(self, out, target):
        return anp.sum(logsumexp(out, axis=-1)) - anp.sum(target * out)

    def grad(self, out, target):
        out = np.asarray(unwrap(out))
        shifted = np.exp(out - out.max(axis=-1, keepdims=True))
        return shifted / shifted.sum(axis=-1, keepdims=True) * np.sum(target, axis=-1,
                                                                       keepdims=True) - target


LOSSES = {"sse": SumSquaredError, "mse": MeanSquaredError, "xent": SoftmaxCrossEntropy}


def get_loss(loss: str | Loss) -> Loss:
    """A `Loss` from its name (`"sse"`, `"mse"`, `"xent"`) or itself."""
    if isinstance(loss, Loss):
        return loss
    if loss not in LOSSES:
        raise ValueError(f"Unknown loss {loss!r}; choose one of {sorted(LOSSES)} or pass a "
                         "Loss instance.")
    return LOSSES[loss]()


def accuracy(out: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of rows whose largest output is at the label (labels as ints or one-hot)."""
    labels = np.asarray(labels)
    if labels.ndim == 2:
        labels = labels.argmax(axis=1)
    return float(np.mean(np.argmax(out, axis=1) == labels)) if len(labels) else float("nan")
