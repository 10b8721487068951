"""Pooling layers as elementary ops of the op table (NCHW), and what the fused
convolution of `ardiff.nn.conv` shares with them.

* `max_pool2d(x, size)` (op `"max_pool2d"`) and `avg_pool2d(x, size)` (op
  `"avg_pool2d"`): non-overlapping `size x size` windows, stride `size`; rows and
  columns that fill no window are dropped (floor pooling).
* Max pooling routes each window's derivative to its **first** largest entry
  (`pool_argmax`), a valid subgradient at ties and the entry the sparse Jacobian uses
  too.  Its VJP scatters with `unpool`, written with the table's `untake` and
  `reshape`, so it is traced at higher order; average pooling's VJP spreads each
  activity evenly over its window with `reshape` and `multiply`.
* `LayerJacobian`: the sparse-Jacobian family of these layer ops (the matrix, and a
  bound on its stored entries for the triangular solver's memory check).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from ..graph import unwrap
from ..op import OPS, defop
from ..ops.elementwise import multiply
from ..ops.shape import getitem, reshape, untake

__all__ = ["max_pool2d", "avg_pool2d", "max_pool2d_op", "avg_pool2d_op", "pool_argmax",
           "unpool", "pool_size", "block_shape", "LayerJacobian"]


class LayerJacobian:
    """A sparse-Jacobian family of a layer op (see `ardiff.ops.jacobians`): the matrix
    from `build(k, ans, *args, **kwargs)`, and a bound on its stored entries without
    building it (`per_row(k, args, kwargs)` entries per output element), which the
    triangular solver uses to refuse systems too large for memory."""

    def __init__(self, build, per_row):
        self.build, self.per_row = build, per_row

    def matrix(self, op, k, ans, args, kwargs):
        """The sparse Jacobian of the answer w.r.t. argument `k`."""
        return self.build(k, ans, *args, **kwargs)

    def nnz(self, op, k, ans, args, kwargs):
        """An upper bound on the stored entries of `matrix`."""
        return int(np.size(unwrap(ans))) * int(self.per_row(k, args, kwargs))


# -- checks and NumPy kernels ---------------------------------------------------------
def pool_size(size: Any, op: str) -> int:
    """The side of square pooling windows, checked (the error names `op`)."""
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
        raise ValueError(f"{op}: the pool size must be a positive int (square, "
                         f"non-overlapping windows), got {size!r}.")
    return int(size)


def _check_pool_input(x, size, op: str) -> int:
    k = pool_size(size, op)
    shape = np.shape(unwrap(x))
    if len(shape) != 4:
        raise ValueError(f"{op}: the input must be 4-D NCHW (batch, channels, height, width), "
                         f"got shape {shape}.")
    if k > min(shape[2:]):
        raise ValueError(f"{op}: a {k}x{k} window does not fit the {shape[2]}x{shape[3]} "
                         f"input (shape {shape}).")
    return k


def _pool_view(h: np.ndarray, k: int) -> np.ndarray:
    """`(n, c, ph, k, pw, k)` view of the windows (incomplete rows/columns dropped)."""
    n, c, height, width = h.shape
    ph, pw = height // k, width // k
    return h[:, :, :ph * k, :pw * k].reshape(n, c, ph, k, pw, k)


def _max_pool(h: np.ndarray, k: int) -> np.ndarray:
    return _pool_view(h, k).max(axis=(3, 5))


def _avg_pool(h: np.ndarray, k: int) -> np.ndarray:
    return _pool_view(h, k).mean(axis=(3, 5))


def pool_argmax(h: np.ndarray, k: int) -> np.ndarray:
    """Flat index into `h` of every window's first largest entry, shaped like the pool."""
    n, c, height, width = h.shape
    ph, pw = height // k, width // k
    windows = _pool_view(h, k).transpose(0, 1, 2, 4, 3, 5).reshape(n, c, ph, pw, k * k)
    di, dj = np.divmod(windows.argmax(axis=-1), k)
    rows = np.arange(ph)[:, None] * k + di
    cols = np.arange(pw)[None, :] * k + dj
    planes = (np.arange(n)[:, None] * c + np.arange(c)[None, :])[:, :, None, None]
    return (planes * height + rows) * width + cols


def unpool(g, flat_index: np.ndarray, shape: tuple):
    """Traced adjoint of max pooling: `g` scattered to the recorded argmax entries."""
    size = int(np.prod(shape))
    spread = untake(reshape(g, (flat_index.size,)), flat_index.reshape(-1), (size,))
    return reshape(spread, shape)


# -- pooling ops -----------------------------------------------------------------------
def _max_pool_fwd(x, size=2):
    k = _check_pool_input(x, size, "max_pool2d")
    return _max_pool(np.asarray(x), k)


def _max_pool_vjp(ans, x, size=2):
    xr = np.asarray(unwrap(x))
    index = pool_argmax(xr, size)
    return lambda g: unpool(g, index, xr.shape)


def _max_pool_jvp(t, ans, x, size=2):
    """The tangent of each window's maximum: the tangent at its (first) argmax."""
    index = pool_argmax(np.asarray(unwrap(x)), size)
    return reshape(getitem(reshape(t, (-1,)), index.reshape(-1)), np.shape(unwrap(ans)))


def _max_pool_jac(k: int, ans, x, size=2):
    xr = np.asarray(unwrap(x))
    cols = pool_argmax(xr, size).ravel()
    return sp.csr_matrix((np.ones(cols.size), (np.arange(cols.size), cols)),
                         shape=(cols.size, xr.size))


def _avg_pool_fwd(x, size=2):
    k = _check_pool_input(x, size, "avg_pool2d")
    return _avg_pool(np.asarray(x), k)


def _avg_pool_vjp(ans, x, size=2):
    shape = np.shape(unwrap(x))
    share = np.full((1, 1, 1, size, 1, size), 1.0 / (size * size))

    def spread(g):
        n, c, ph, pw = np.shape(unwrap(g))
        # every window entry gets 1/size^2 of its window's activity
        tiled = multiply(reshape(g, (n, c, ph, 1, pw, 1)), share)
        block = reshape(tiled, (n, c, ph * size, pw * size))
        if block_shape(shape, size) == shape:
            return block
        return untake(block, (slice(None), slice(None), slice(0, ph * size),
                              slice(0, pw * size)), shape)

    return spread


def block_shape(shape: tuple, size: int) -> tuple:
    """The part of an NCHW shape covered by whole `size x size` windows."""
    return shape[:2] + (shape[2] // size * size, shape[3] // size * size)


def _avg_pool_jac(k: int, ans, x, size=2):
    xr = np.asarray(unwrap(x))
    n, c, height, width = xr.shape
    ph, pw = height // size, width // size
    N, C, PH, PW, A, B = np.ix_(range(n), range(c), range(ph), range(pw), range(size),
                                range(size))
    full = (n, c, ph, pw, size, size)
    rows = np.broadcast_to(((N * c + C) * ph + PH) * pw + PW, full).ravel()
    cols = np.broadcast_to(((N * c + C) * height + PH * size + A) * width + PW * size + B,
                           full).ravel()
    return sp.csr_matrix((np.full(rows.size, 1.0 / (size * size)), (rows, cols)),
                         shape=(n * c * ph * pw, xr.size))


max_pool2d_op = OPS["max_pool2d"] if "max_pool2d" in OPS else defop(
    "max_pool2d", _max_pool_fwd, _max_pool_vjp,
    jac=LayerJacobian(_max_pool_jac, lambda k, args, kwargs: 1), nonlinear=True,
    jvp=(_max_pool_jvp,))
avg_pool2d_op = OPS["avg_pool2d"] if "avg_pool2d" in OPS else defop(
    "avg_pool2d", _avg_pool_fwd, _avg_pool_vjp,
    jac=LayerJacobian(_avg_pool_jac, lambda k, args, kwargs: kwargs.get("size", 2) ** 2),
    linear=True)


# -- public functions ------------------------------------------------------------------
def max_pool2d(x: Any, size: int = 2) -> Any:
    """Max pooling over non-overlapping `size x size` windows (NCHW), one graph node.

    Parameters
    ----------
    x : array_like or Tracer
        `(batch, channels, height, width)`.
    size : int
        Window side and stride; trailing rows/columns that fill no window are dropped.

    Returns
    -------
    array or Tracer
        `(batch, channels, height // size, width // size)`.  The derivative goes to each
        window's first largest entry.
    """
    _check_pool_input(x, size, "max_pool2d")
    return max_pool2d_op(x, size=int(size))


def avg_pool2d(x: Any, size: int = 2) -> Any:
    """Average pooling over non-overlapping `size x size` windows (NCHW), one graph node.

    Parameters
    ----------
    x : array_like or Tracer
        `(batch, channels, height, width)`.
    size : int
        Window side and stride; trailing rows/columns that fill no window are dropped.

    Returns
    -------
    array or Tracer
        `(batch, channels, height // size, width // size)`.
    """
    _check_pool_input(x, size, "avg_pool2d")
    return avg_pool2d_op(x, size=int(size))
