"""`ardiff.scipy.special`: traced `expit`, `erf` and `logsumexp`."""

from __future__ import annotations

from ..ops.special import erf, expit  # noqa: F401

# ops whose namespace wrapper below keeps the NumPy name: imported under a private alias
from ..ops.special import logsumexp as _logsumexp


def logsumexp(a, axis=None, keepdims=False):
    """Traced `scipy.special.logsumexp` (no `b=` weights)."""
    if isinstance(axis, list):
        axis = tuple(axis)
    return _logsumexp(a, axis=axis, keepdims=keepdims)

__all__ = ["erf", "expit", "logsumexp"]
