"""`ardiff.numpy.linalg`: traced `inv`, `solve`, `det`, `slogdet`, `norm`.

Other names fall through to `numpy.linalg` (a traced argument then raises).
"""

from __future__ import annotations

import numpy as _np

from ..graph import unwrap
from ..ops.linalg import det, inv, logabsdet, solve  # noqa: F401

# ops whose namespace wrapper below keeps the NumPy name: imported under a private alias
from ..ops.linalg import norm as _norm


def slogdet(a):
    """Sign (plain, no gradient) and traced log absolute determinant."""
    sign = _np.linalg.slogdet(unwrap(a))[0]
    return sign, logabsdet(a)


def norm(x, ord=None, axis=None, keepdims=False):
    """Traced `numpy.linalg.norm`; the gradient at the zero vector is taken as 0.

    Vector norms of any order and the Frobenius matrix norm have gradients; other
    matrix norms compute their value but refuse to be differentiated (the op's VJP
    says so).
    """
    if isinstance(axis, list):
        axis = tuple(axis)
    return _norm(x, ord=ord, axis=axis, keepdims=keepdims)


__all__ = ["det", "inv", "logabsdet", "norm", "slogdet", "solve"]


def __getattr__(name):
    return getattr(_np.linalg, name)
