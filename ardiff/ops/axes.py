"""Axis bookkeeping shared by reductions and their sparse Jacobians."""

from __future__ import annotations

import numpy as np

__all__ = ["reduced_axes", "kept_shape", "reduced_count"]


def reduced_axes(axis, ndim: int) -> tuple:
    """The non-negative axes a reduction over `axis` (None, an int or a tuple) removes."""
    if axis is None:
        return tuple(range(ndim))
    if isinstance(axis, (tuple, list)):
        return tuple(a % ndim for a in axis)
    return (axis % ndim,)


def kept_shape(shape: tuple, axis) -> tuple:
    """Shape of a reduction over `axis` with `keepdims=True`."""
    axes = reduced_axes(axis, len(shape))
    return tuple(1 if i in axes else n for i, n in enumerate(shape))


def reduced_count(shape: tuple, axis) -> int:
    """How many elements each output of a reduction over `axis` combines."""
    return int(np.prod([shape[a] for a in reduced_axes(axis, len(shape))], dtype=np.int64))
