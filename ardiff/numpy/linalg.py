"""``ardiff.numpy.linalg``: traced ``inv``, ``solve``, ``det``, ``slogdet``, ``norm``.

Other names fall through to ``numpy.linalg`` (a traced argument then raises).
"""

from __future__ import annotations

import numpy as _np

from ..graph import unwrap
from ..ops.linalg import det, inv, logabsdet, solve  # noqa: F401
from ..ops.linalg import norm as _norm


def slogdet(a):
    """Sign (plain, no gradient) and traced log absolute determinant."""
    sign = _np.linalg.slogdet(unwrap(a))[0]
    return sign, logabsdet(a)


def norm(x, ord=None, axis=None, keepdims=False):
    """Traced ``numpy.linalg.norm``; the gradient at the zero vector is taken as 0.

    Vector norms of any order and the Frobenius matrix norm are supported.
    """
    if isinstance(axis, list):
        axis = tuple(axis)
    matrix = (axis is None and _np.ndim(unwrap(x)) == 2) or (isinstance(axis, tuple)
                                                          and len(axis) == 2)
    if matrix and ord not in (None, "fro"):
        raise NotImplementedError(
            f"ardiff.numpy.linalg.norm: the matrix norm ord={ord!r} has no gradient in the "
            "op table; use ord='fro', or compute it from supported ops.")
    return _norm(x, ord=ord, axis=axis, keepdims=keepdims)


def __getattr__(name):
    return getattr(_np.linalg, name)
