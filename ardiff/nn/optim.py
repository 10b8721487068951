"""Optimisers that update parameter arrays in place and report the step they took.

The step is returned because the learned-feedback rule (eq. 6 of the paper)
moves its backward matrices by exactly the same step as the forward weights.
Buffers are allocated once per parameter, so a training step allocates nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


class Optimizer:
    """Base class: `step(params, grads)` updates `params` in place, returns the steps."""

    def __init__(self, lr: float):
        if not lr > 0:
            raise ValueError(f"learning rate must be positive, got {lr!r}")
        self.lr = float(lr)
        self._steps: list[np.ndarray] | None = None

    def _buffers(self, params: Sequence[np.ndarray]) -> list[np.ndarray]:
        if self._steps is None or len(self._steps) != len(params) or any(
                s.shape != p.shape for s, p in zip(self._steps, params)):
            self._steps = [np.zeros_like(p) for p in params]
            self._init_state(params)
        return self._steps

    def _init_state(self, params: Sequence[np.ndarray]) -> None:
        pass

    def step(self, params: Sequence[np.ndarray], grads: Sequence[np.ndarray]) -> list:
        """Apply one update; returns the list of steps `new - old` (reused buffers)."""
        raise NotImplementedError  # pragma: no cover


class SGD(Optimizer):
    """Plain stochastic gradient descent, optionally with momentum.

    Parameters
    ----------
    lr : float
        Learning rate (the paper: 5e-4 with a summed squared error).
    momentum : float
        Heavy-ball momentum coefficient (0 = plain SGD, the paper's choice).
    """

    def __init__(self, lr: float = 5e-4, momentum: float = 0.0):
        super().__init__(lr)
        self.momentum = float(momentum)

    def step(self, params, grads):
        steps = self._buffers(params)
        for p, g, s in zip(params, grads, steps):
            if self.momentum:
                s *= self.momentum
                s -= self.lr * g
            else:
                np.multiply(g, -self.lr, out=s)
            p += s
        return steps

    def __repr__(self) -> str:
        return f"SGD(lr={self.lr:g}, momentum={self.momentum:g})"


class Adam(Optimizer):
    """Adam (Kingma & Ba) with bias correction.

    Parameters
    ----------
    lr : float
        Step size.
    betas : tuple of float
        Decay rates of the first and second moment estimates.
    eps : float
        Added to the square root of the second moment.
    """

    def __init__(self, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8):
        super().__init__(lr)
        self.betas = (float(betas[0]), float(betas[1]))
        self.eps = float(eps)

    def _init_state(self, params):
        self.m = [np.zeros_like(p) for p in params]
        self.v = [np.zeros_like(p) for p in params]
        self.t = 0

    def step(self, params, grads):
        steps = self._buffers(params)
        b1, b2 = self.betas
        self.t += 1
        scale = self.lr * np.sqrt(1.0 - b2 ** self.t) / (1.0 - b1 ** self.t)
        for p, g, s, m, v in zip(params, grads, steps, self.m, self.v):
            m *= b1
            m += (1.0 - b1) * g
            v *= b2
            v += (1.0 - b2) * (g * g)
            np.sqrt(v, out=s)
            s += self.eps
            np.divide(m, s, out=s)
            s *= -scale
            p += s
        return steps

    def __repr__(self) -> str:
        return f"Adam(lr={self.lr:g}, betas={self.betas}, eps={self.eps:g})"


OPTIMIZERS = {"sgd": SGD, "adam": Adam}
