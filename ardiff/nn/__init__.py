"""Neural-network tools for the paper's experiments: the fused dense op, an MLP,
losses, optimisers and a training loop whose gradient method is a parameter.

Importing this package registers the `"dense"` op in the op table, and the
convolution and pooling ops (`"conv2d"`, `"max_pool2d"`, `"avg_pool2d"`, NCHW).

Examples
--------
>>> import numpy as np
>>> from ardiff import nn
>>> model = nn.MLP((4, 8, 3), seed=0)
>>> x, y = np.random.default_rng(0).random((16, 4)), np.arange(16) % 3
>>> hist = nn.train(model, (x, y), epochs=1, batch_size=8, method=nn.relaxation(steps=20))
>>> len(hist.train_acc)
2
"""

from .cnn import CNN
from .conv import conv2d
from .dense import ACTIVATIONS, dense, dense_op
from .losses import (
    LOSSES,
    Loss,
    MeanSquaredError,
    SoftmaxCrossEntropy,
    SumSquaredError,
    accuracy,
    get_loss,
)
from .model import MLP, ResidualMLP
from .optim import OPTIMIZERS, SGD, Adam, Optimizer
from .pool import avg_pool2d, max_pool2d
from .train import (
    BatchGradients,
    History,
    Method,
    backprop_method,
    batch_gradients,
    evaluate,
    gradient_angles,
    one_hot,
    relaxation,
    train,
)

__all__ = [
    "ACTIVATIONS", "dense", "dense_op", "conv2d", "max_pool2d", "avg_pool2d", "CNN",
    "Loss", "SumSquaredError", "MeanSquaredError",
    "SoftmaxCrossEntropy", "LOSSES", "get_loss", "accuracy", "MLP", "ResidualMLP",
    "Optimizer", "SGD", "Adam",
    "OPTIMIZERS", "Method", "backprop_method", "relaxation", "BatchGradients",
    "batch_gradients", "gradient_angles", "evaluate", "History", "train", "one_hot",
]
