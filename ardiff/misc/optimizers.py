"""First-order optimizers with autograd's signatures (`autograd.misc.optimizers`).

Each is `optimizer(grad, x0, callback=None, num_iters=..., step_size=..., ...)`, where
`grad(x, i)` returns the gradient at `x` on iteration `i` and `callback(x, i, g)` is
called before every step.  `x0` may be any nesting of tuples, lists and dicts of
arrays: the optimizer works on the flat vector of `ardiff.misc.flatten`
and gives `grad` and `callback` structured values.  They are plain NumPy loops, not
traced (differentiate through them with `ardiff.grad` if you want meta-gradients).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np

from .flatten import flatten

__all__ = ["sgd", "rmsprop", "adam"]


def _structured(optimize: Callable) -> Callable:
    """`optimize` on flat vectors, extended to any nesting of containers."""
    @functools.wraps(optimize)
    def run(grad, x0, callback=None, *args, **kwargs):
        flat_x0, unflatten = flatten(x0)

        def flat_grad(x, i):
            return flatten(grad(unflatten(x), i))[0]

        flat_callback = None
        if callback is not None:
            def flat_callback(x, i, g):
                return callback(unflatten(x), i, unflatten(g))

        return unflatten(optimize(flat_grad, flat_x0, flat_callback, *args, **kwargs))

    return run


@_structured
def sgd(grad: Callable, x0: Any, callback: Callable | None = None, num_iters: int = 200,
        step_size: float = 0.1, mass: float = 0.9) -> Any:
    """Stochastic gradient descent with momentum.

    Parameters
    ----------
    grad : callable
        `grad(x, i)`: the gradient at `x` on iteration `i`.
    x0 : Any
        The starting point (an array or a nested container of arrays).
    callback : callable, optional
        `callback(x, i, g)`, called before each step.
    num_iters : int
        Number of steps.
    step_size : float
        Learning rate.
    mass : float
        Momentum: `v <- mass * v - (1 - mass) * g`, `x <- x + step_size * v`.

    Returns
    -------
    Any
        The final point, structured like `x0`.
    """
    x = np.asarray(x0, dtype=float)
    velocity = np.zeros(x.size)
    for i in range(num_iters):
        g = np.asarray(grad(x, i))
        if callback:
            callback(x, i, g)
        velocity = mass * velocity - (1.0 - mass) * g
        x = x + step_size * velocity
    return x


@_structured
def rmsprop(grad: Callable, x0: Any, callback: Callable | None = None, num_iters: int = 100,
            step_size: float = 0.1, gamma: float = 0.9, eps: float = 1e-8) -> Any:
    """RMSProp: steps divided by a running root mean square of the gradients.

    Parameters
    ----------
    grad : callable
        `grad(x, i)`: the gradient at `x` on iteration `i`.
    x0 : Any
        The starting point (an array or a nested container of arrays).
    callback : callable, optional
        `callback(x, i, g)`, called before each step.
    num_iters : int
        Number of steps.
    step_size : float
        Learning rate.
    gamma : float
        Decay of the running mean of squared gradients (started at ones).
    eps : float
        Added to the root mean square.

    Returns
    -------
    Any
        The final point, structured like `x0`.
    """
    x = np.asarray(x0, dtype=float)
    mean_square = np.ones(x.size)
    for i in range(num_iters):
        g = np.asarray(grad(x, i))
        if callback:
            callback(x, i, g)
        mean_square = gamma * mean_square + (1.0 - gamma) * g ** 2
        x = x - step_size * g / (np.sqrt(mean_square) + eps)
    return x


@_structured
def adam(grad: Callable, x0: Any, callback: Callable | None = None, num_iters: int = 100,
         step_size: float = 0.001, b1: float = 0.9, b2: float = 0.999,
         eps: float = 1e-8) -> Any:
    """Adam (Kingma and Ba, 2015): momentum and RMS scaling with bias correction.

    Parameters
    ----------
    grad : callable
        `grad(x, i)`: the gradient at `x` on iteration `i`.
    x0 : Any
        The starting point (an array or a nested container of arrays).
    callback : callable, optional
        `callback(x, i, g)`, called before each step.
    num_iters : int
        Number of steps.
    step_size : float
        Learning rate.
    b1 : float
        Decay rate of the first moment estimate.
    b2 : float
        Decay rate of the second moment estimate.
    eps : float
        Added to the square root of the second moment.

    Returns
    -------
    Any
        The final point, structured like `x0`.
    """
    x = np.asarray(x0, dtype=float)
    m = np.zeros(x.size)
    v = np.zeros(x.size)
    for i in range(num_iters):
        g = np.asarray(grad(x, i))
        if callback:
            callback(x, i, g)
        m = b1 * m + (1.0 - b1) * g
        v = b2 * v + (1.0 - b2) * g ** 2
        m_hat = m / (1.0 - b1 ** (i + 1))
        v_hat = v / (1.0 - b2 ** (i + 1))
        x = x - step_size * m_hat / (np.sqrt(v_hat) + eps)
    return x
