"""Axis bookkeeping shared by reductions and their sparse Jacobians, and the dtype of a
recorded value read without its numbers (what lean recordings keep of every value)."""

from __future__ import annotations

import numpy as np

__all__ = ["reduced_axes", "kept_shape", "reduced_count", "dtype_of"]


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


def dtype_of(value) -> np.dtype:
    """The dtype of a plain value, from its `dtype` attribute where it has one.

    Arrays, NumPy scalars and the `ardiff.graph.Released` stand-ins of lean recordings
    have one (a stand-in refuses to be converted to an array, so VJPs that need only
    the dtype must not call `np.result_type` on it); Python numbers get NumPy's type.
    """
    dtype = getattr(value, "dtype", None)
    return np.result_type(value) if dtype is None else np.dtype(dtype)
