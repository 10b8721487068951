"""The fused 2-D convolution layer as an elementary op of the op table.

Layout is NCHW throughout: images `x` are `(batch, channels, height, width)`, filters
`W` are `(filters, channels, kernel_height, kernel_width)` and a convolution's output
is `(batch, filters, out_height, out_width)`.  "Convolution" means cross-correlation,
as in every deep-learning library (the filter is not flipped).

Like `ardiff.nn.dense`, a whole layer is one op, so it relaxes as one unit, the
paper's layer granularity: `conv2d(x, W, b, stride, padding, activation, pool,
flatten)` is the op `"conv2d"`, `h = flatten(maxpool(f(conv(x, W) + b)))`, where
`pool` (non-overlapping max pooling, `ardiff.nn.pool`) and `flatten` (to
`(batch, features)` for a following dense layer) are optional.  A
conv-pool-conv-pool-fc-fc network is then four nodes, each a unit.

The forward pass is im2col: `sliding_window_view` gives every receptive field as a
strided view, copied once into a `(batch * positions, channels * kernel)` matrix and
multiplied by the filters (one BLAS matrix product).  The VJPs are

* w.r.t. `x`: the transposed convolution of `g' = unpool(g * f')` (op
  `"conv2d_input_vjp"`: one matrix product gives every tap's contribution, col2im
  places them with `kernel_height * kernel_width` strided adds);
* w.r.t. `W`: the correlation of `x` with `g'` (op `"conv2d_weight_vjp"`);
* w.r.t. `b`: `g'` summed over batch and positions.

The two helper ops are bilinear and their own VJPs are convolutions and each other,
so derivatives of every order are traced with ardiff's own ops, as elsewhere.  The
op also carries a sparse-Jacobian family for `ardiff.solvers.triangular`.  Fusing a
non-decreasing activation with max pooling is exact, `max f(z) = f(max z)`, so `f'`
is read from the pooled output; the derivative of a window goes to its first largest
entry, as for `max_pool2d`.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np
import scipy.sparse as sp
from numpy.lib.stride_tricks import sliding_window_view

from ..graph import unwrap
from ..op import OPS, TRANSPOSED_VJP, defop
from ..ops.elementwise import multiply
from ..ops.reduce import sum_
from ..ops.shape import reshape
from .dense import ACTIVATIONS, local_slope
from .pool import LayerJacobian, pool_argmax, pool_size, unpool

__all__ = ["conv2d", "conv_output_shape", "conv2d_op", "conv2d_input_vjp",
           "conv2d_weight_vjp", "correlate", "im2col", "CONV_ACTIVATIONS"]

#: Activations the fused conv op accepts: the dense layer's, all non-decreasing, so
#: they commute with max pooling.
CONV_ACTIVATIONS = tuple(ACTIVATIONS)


# -- geometry and checks --------------------------------------------------------------
def _pair(value: Any, what: str, op: str, minimum: int) -> tuple[int, int]:
    items = (value, value) if np.ndim(value) == 0 else tuple(value)
    if len(items) != 2 or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool)
                                  for v in items):
        raise TypeError(f"{op}: {what} must be an int or a pair of ints, got {value!r}.")
    if min(items) < minimum:
        raise ValueError(f"{op}: {what} must be at least {minimum}, got {value!r}.")
    return int(items[0]), int(items[1])


def conv_output_shape(x_shape: tuple, w_shape: tuple, stride: Any = 1, padding: Any = 0,
                      op: str = "conv2d") -> tuple[int, int]:
    """Spatial size `(out_height, out_width)` of a convolution, with clear shape errors.

    Parameters
    ----------
    x_shape : tuple
        Input shape `(batch, channels, height, width)`.
    w_shape : tuple
        Filter shape `(filters, channels, kernel_height, kernel_width)`.
    stride, padding : int or pair of int
        Step between receptive fields; zeros added on each side.
    op : str
        Name used in error messages.

    Returns
    -------
    tuple of int

    Raises
    ------
    ValueError
        When the shapes do not fit together (naming `op` and both shapes).
    """
    (sh, sw), (ph, pw) = _pair(stride, "stride", op, 1), _pair(padding, "padding", op, 0)
    if len(w_shape) != 4:
        raise ValueError(f"{op}: the filters must be 4-D (filters, channels, kernel_height, "
                         f"kernel_width), got shape {tuple(w_shape)}.")
    if len(x_shape) != 4:
        raise ValueError(f"{op}: the input must be 4-D NCHW (batch, channels, height, width), "
                         f"got shape {tuple(x_shape)}; reshape a single image to "
                         "(1, channels, height, width).")
    if x_shape[1] != w_shape[1]:
        raise ValueError(f"{op}: the input has {x_shape[1]} channels (shape {tuple(x_shape)}) "
                         f"but the filters expect {w_shape[1]} (shape {tuple(w_shape)}).")
    hp, wp = x_shape[2] + 2 * ph, x_shape[3] + 2 * pw
    if w_shape[2] > hp or w_shape[3] > wp or min(w_shape[2:]) < 1:
        raise ValueError(f"{op}: a {w_shape[2]}x{w_shape[3]} kernel does not fit the padded "
                         f"{hp}x{wp} input (input {tuple(x_shape)}, padding {padding!r}).")
    return (hp - w_shape[2]) // sh + 1, (wp - w_shape[3]) // sw + 1


def _check_conv(x, W, b, stride, padding, activation, pool) -> tuple[int, int]:
    if activation not in ACTIVATIONS:
        raise ValueError(f"conv2d: unknown activation {activation!r}; choose one of "
                         f"{sorted(ACTIVATIONS)}.")
    ws = np.shape(unwrap(W))
    out = conv_output_shape(np.shape(unwrap(x)), ws, stride, padding)
    if b is not None and np.shape(unwrap(b)) != (ws[0],):
        raise ValueError(f"conv2d: bias of shape {np.shape(unwrap(b))} does not fit filters "
                         f"of shape {ws}; expected ({ws[0]},), one per filter.")
    if pool is not None:
        k = pool_size(pool, "conv2d")
        if k > min(out):
            raise ValueError(f"conv2d: pool={pool} is larger than the {out[0]}x{out[1]} "
                             "convolution output.")
    return out


# -- NumPy kernels ---------------------------------------------------------------------
def _padded(x: np.ndarray, ph: int, pw: int) -> np.ndarray:
    if ph == 0 and pw == 0:
        return x
    return np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))


def _fields(xp: np.ndarray, kh: int, kw: int, sh: int, sw: int, oh: int, ow: int):
    """Every receptive field as a view `(batch, channels, oh, ow, kh, kw)` (no copy)."""
    view = sliding_window_view(xp, (kh, kw), axis=(2, 3))
    return view[:, :, :(oh - 1) * sh + 1:sh, :(ow - 1) * sw + 1:sw]


def correlate(x: np.ndarray, W: np.ndarray, stride: Any = 1, padding: Any = 0) -> np.ndarray:
    """Plain NumPy cross-correlation `conv(x, W)` in NCHW (no bias, no activation)."""
    x, W = np.asarray(x), np.asarray(W)
    oh, ow = conv_output_shape(x.shape, W.shape, stride, padding)
    (sh, sw), (ph, pw) = _pair(stride, "stride", "conv2d", 1), _pair(padding, "padding",
                                                                      "conv2d", 0)
    fields = _fields(_padded(x, ph, pw), W.shape[2], W.shape[3], sh, sw, oh, ow)
    # one matrix product: rows (n, oh, ow), columns (c, kh, kw) against the filters
    z = im2col(fields) @ W.reshape(W.shape[0], -1).T  # (n * oh * ow, f)
    return np.ascontiguousarray(z.reshape(x.shape[0], oh, ow, -1).transpose(0, 3, 1, 2))


def im2col(fields: np.ndarray) -> np.ndarray:
    """The `(n * oh * ow, c * kh * kw)` matrix of receptive fields, C-contiguous.

    Copied explicitly: a strided view handed to a matrix product would take NumPy's
    slow non-BLAS loop.
    """
    n, c, oh, ow, kh, kw = fields.shape
    return np.ascontiguousarray(fields.transpose(0, 2, 3, 1, 4, 5)).reshape(n * oh * ow, -1)


def _input_vjp_fwd(g, W, stride=1, padding=0, input_hw=None):
    """Transposed convolution: d<g, conv(x, W)>/dx, shaped `(n, c) + input_hw`."""
    g, W = np.asarray(g), np.asarray(W)
    (sh, sw), (ph, pw) = _pair(stride, "stride", "conv2d", 1), _pair(padding, "padding",
                                                                      "conv2d", 0)
    n, f, oh, ow = g.shape
    _, c, kh, kw = W.shape
    height, width = input_hw
    # col2im: one matrix product gives every tap's contribution, then kh * kw strided
    # adds place them (cheaper than correlating a dilated, padded g: no big copy)
    rows = np.ascontiguousarray(g.transpose(0, 2, 3, 1)).reshape(-1, f)
    cols = (rows @ W.reshape(f, -1)).reshape(n, oh, ow, c, kh, kw)
    cols = np.ascontiguousarray(cols.transpose(4, 5, 0, 3, 1, 2))  # (kh, kw, n, c, oh, ow)
    dxp = np.zeros((n, c, height + 2 * ph, width + 2 * pw), dtype=cols.dtype)
    for i in range(kh):
        for j in range(kw):
            dxp[:, :, i:i + (oh - 1) * sh + 1:sh, j:j + (ow - 1) * sw + 1:sw] += cols[i, j]
    return np.ascontiguousarray(dxp[:, :, ph:ph + height, pw:pw + width])


def _weight_vjp_fwd(x, g, stride=1, padding=0, kernel_hw=None):
    """d<g, conv(x, W)>/dW: the correlation of `x` with `g`, shaped `(f, c) + kernel_hw`."""
    x, g = np.asarray(x), np.asarray(g)
    (sh, sw), (ph, pw) = _pair(stride, "stride", "conv2d", 1), _pair(padding, "padding",
                                                                      "conv2d", 0)
    kh, kw = kernel_hw
    oh, ow = g.shape[2:]
    fields = _fields(_padded(x, ph, pw), kh, kw, sh, sw, oh, ow)  # (n, c, oh, ow, kh, kw)
    f, c = g.shape[1], x.shape[1]
    rows = np.ascontiguousarray(g.transpose(1, 0, 2, 3)).reshape(f, -1)  # (f, n * oh * ow)
    return (rows @ im2col(fields)).reshape(f, c, kh, kw)


# -- the fused conv op -----------------------------------------------------------------
def _conv_forward(x, W, b=None, stride=1, padding=0, activation="relu", pool=None,
                  flatten=False):
    _check_conv(x, W, b, stride, padding, activation, pool)
    z = correlate(x, W, stride, padding)
    if b is not None:
        z += np.asarray(b)[None, :, None, None]
    h = ACTIVATIONS[activation][0](z)
    argmax = None
    if pool is not None:
        argmax = pool_argmax(h, pool)
        h = h.reshape(-1)[argmax]
    out = h.reshape(h.shape[0], -1) if flatten else h
    if argmax is not None:
        _remember_pooling(out, argmax)
    return out


# Pooling patterns of the latest fused outputs, so that staging a node's VJPs does not
# recompute its convolution: (output, flat argmax) pairs, found by identity.  Holding
# the output keeps it alive, so identity cannot be mistaken; a miss (an older node)
# recomputes, with the same result.  A bounded deque: appends and snapshots are atomic,
# so threads tracing at once cannot corrupt it.
_POOLING: deque = deque(maxlen=8)


def _remember_pooling(out: np.ndarray, argmax: np.ndarray) -> None:
    _POOLING.append((out, argmax))


def _recorded_pooling(ans) -> np.ndarray | None:
    for out, argmax in tuple(_POOLING):
        if out is ans:
            return argmax
    return None


class _Staged:
    """What every VJP of one recorded conv node shares: shapes, `f'`, pooling indices."""

    def __init__(self, ans, x, W, b, stride, padding, activation, pool, flatten):
        xr, Wr = np.asarray(unwrap(x)), np.asarray(unwrap(W))
        self.stride, self.padding = stride, padding
        self.x_hw, self.k_hw = xr.shape[2:], Wr.shape[2:]
        oh, ow = conv_output_shape(xr.shape, Wr.shape, stride, padding)
        self.conv_shape = (xr.shape[0], Wr.shape[0], oh, ow)
        self.flatten = flatten
        self.slope = local_slope(ans, activation)  # f' read from the (pooled) output
        self.argmax = None
        if pool is not None:
            self.argmax = _recorded_pooling(ans)
        if pool is not None and self.argmax is None:
            # the pooling pattern needs the unpooled layer: recompute it (plain NumPy)
            z = correlate(xr, Wr, stride, padding)
            if b is not None:
                z += np.asarray(unwrap(b))[None, :, None, None]
            self.argmax = pool_argmax(ACTIVATIONS[activation][0](z), pool)
        self.unflat_shape = self.conv_shape if self.argmax is None else self.argmax.shape
        if flatten and self.slope is not None:
            self.slope = reshape(self.slope, self.unflat_shape)

    def pre_activation(self, g):
        """`g` taken back through flatten, `f'` and the pooling: shaped like conv(x, W)."""
        if self.flatten:
            g = reshape(g, self.unflat_shape)
        if self.slope is not None:
            g = multiply(g, self.slope)
        if self.argmax is not None:
            g = unpool(g, self.argmax, self.conv_shape)
        return g


# The last staged node: its three VJP makers (x, W, b) share one staging.  One tuple,
# replaced whole, so a thread never pairs one node's output with another's staging.
_LAST_STAGED: list = [(None, None)]


def _staged(ans, x, W, b, stride, padding, activation, pool, flatten) -> _Staged:
    last_ans, last = _LAST_STAGED[0]
    if last_ans is ans:
        return last
    s = _Staged(ans, x, W, b, stride, padding, activation, pool, flatten)
    _LAST_STAGED[0] = (ans, s)
    return s


def _conv_vjp(k: int, ans, x, W, b=None, stride=1, padding=0, activation="relu", pool=None,
              flatten=False):
    s = _staged(ans, x, W, b, stride, padding, activation, pool, flatten)
    if k == 0:
        return lambda g: conv2d_input_vjp(s.pre_activation(g), W, stride=stride,
                                          padding=padding, input_hw=s.x_hw)
    if k == 1:
        return lambda g: conv2d_weight_vjp(x, s.pre_activation(g), stride=stride,
                                           padding=padding, kernel_hw=s.k_hw)
    if k == 2:
        return lambda g: sum_(s.pre_activation(g), axis=(0, 2, 3))
    raise TypeError("ardiff op 'conv2d' has no derivative with respect to argument "
                    f"{k}; only x (0), W (1) and b (2) are differentiable.")


def _linear_conv_jacobian(k: int, xr: np.ndarray, Wr: np.ndarray, stride, padding):
    """Sparse Jacobian of vec(conv(x, W) + b) w.r.t. x (0), W (1) or b (2), row-major."""
    (sh, sw), (ph, pw) = _pair(stride, "stride", "conv2d", 1), _pair(padding, "padding",
                                                                      "conv2d", 0)
    n, c, height, width = xr.shape
    f, _, kh, kw = Wr.shape
    oh, ow = conv_output_shape(xr.shape, Wr.shape, stride, padding)
    n_out = n * f * oh * ow
    # index grids over (n, f, oh, ow, c, kh, kw)
    N, F, OH, OW, C, KH, KW = np.ix_(range(n), range(f), range(oh), range(ow), range(c),
                                     range(kh), range(kw))
    row = ((N * f + F) * oh + OH) * ow + OW
    if k == 2:
        r = np.arange(n_out)
        return sp.csr_matrix((np.ones(n_out), (r, (r // (oh * ow)) % f)), shape=(n_out, f))
    i, j = OH * sh + KH - ph, OW * sw + KW - pw  # input row/column each tap reads
    inside = (i >= 0) & (i < height) & (j >= 0) & (j < width)
    full = (n, f, oh, ow, c, kh, kw)
    inside = np.broadcast_to(inside, full)
    r = np.broadcast_to(row, full)[inside]
    if k == 0:
        col = ((N * c + C) * height + i) * width + j
        val = np.broadcast_to(Wr[F, C, KH, KW], full)[inside]
        return sp.csr_matrix((val, (r, np.broadcast_to(col, full)[inside])),
                             shape=(n_out, xr.size))
    col = ((F * c + C) * kh + KH) * kw + KW
    ic, jc = np.clip(i, 0, height - 1), np.clip(j, 0, width - 1)
    val = np.broadcast_to(xr[N, C, ic, jc], full)[inside]
    return sp.csr_matrix((val, (r, np.broadcast_to(col, full)[inside])), shape=(n_out, Wr.size))


def _conv_jac(k: int, ans, x, W, b=None, stride=1, padding=0, activation="relu", pool=None,
              flatten=False):
    """Sparse local Jacobian of vec(h) w.r.t. vec(args[k]) (row-major)."""
    if k not in (0, 1, 2):
        raise TypeError(f"ardiff op 'conv2d' has no Jacobian with respect to argument {k}.")
    xr, Wr = np.asarray(unwrap(x)), np.asarray(unwrap(W))
    J = _linear_conv_jacobian(k, xr, Wr, stride, padding)
    z = correlate(xr, Wr, stride, padding)
    if b is not None:
        z += np.asarray(unwrap(b))[None, :, None, None]
    h = ACTIVATIONS[activation][0](z)
    slope = local_slope(h, activation)
    if slope is not None:
        J = sp.diags(np.ravel(unwrap(slope))) @ J
    if pool is not None:
        J = J.tocsr()[pool_argmax(h, pool).ravel()]
    return sp.csr_matrix(J)


def _conv_row_entries(k, args, kwargs):
    # each output reads c * kh * kw inputs and as many filter taps, and one bias
    return 1 if k == 2 else int(np.prod(np.shape(unwrap(args[1]))[1:]))


conv2d_op = OPS["conv2d"] if "conv2d" in OPS else defop(
    "conv2d", _conv_forward, vjp=_conv_vjp, jac=LayerJacobian(_conv_jac, _conv_row_entries),
    nonlinear=True, jvp=TRANSPOSED_VJP)


# -- the bilinear helper ops of the VJPs (their VJPs are convolutions again) ------------
def _input_vjp_vjp(k: int, ans, g, W, stride=1, padding=0, input_hw=None):
    # <v, convT(g, W)> = <conv(v, W), g> = <convW(v, g), W>
    if k == 0:
        return lambda v: conv2d_op(v, W, None, stride=stride, padding=padding,
                                   activation="linear")
    if k == 1:
        k_hw = np.shape(unwrap(W))[2:]
        return lambda v: conv2d_weight_vjp(v, g, stride=stride, padding=padding,
                                           kernel_hw=k_hw)
    raise TypeError(f"ardiff op 'conv2d_input_vjp' has no derivative w.r.t. argument {k}.")


def _weight_vjp_vjp(k: int, ans, x, g, stride=1, padding=0, kernel_hw=None):
    # <U, convW(x, g)> = <conv(x, U), g> = <x, convT(g, U)>
    if k == 0:
        x_hw = np.shape(unwrap(x))[2:]
        return lambda u: conv2d_input_vjp(g, u, stride=stride, padding=padding, input_hw=x_hw)
    if k == 1:
        return lambda u: conv2d_op(x, u, None, stride=stride, padding=padding,
                                   activation="linear")
    raise TypeError(f"ardiff op 'conv2d_weight_vjp' has no derivative w.r.t. argument {k}.")


conv2d_input_vjp = OPS["conv2d_input_vjp"] if "conv2d_input_vjp" in OPS else defop(
    "conv2d_input_vjp", _input_vjp_fwd, vjp=_input_vjp_vjp, multilinear=True)
conv2d_weight_vjp = OPS["conv2d_weight_vjp"] if "conv2d_weight_vjp" in OPS else defop(
    "conv2d_weight_vjp", _weight_vjp_fwd, vjp=_weight_vjp_vjp, multilinear=True)


# -- public functions ------------------------------------------------------------------
def conv2d(x: Any, W: Any, b: Any = None, stride: Any = 1, padding: Any = 0,
           activation: str = "relu", pool: int | None = None, flatten: bool = False) -> Any:
    """Apply one convolutional layer `f(conv(x, W) + b)` (NCHW) as a single graph node.

    Parameters
    ----------
    x : array_like or Tracer
        Images, shape `(batch, channels, height, width)`.
    W : array_like or Tracer
        Filters, shape `(filters, channels, kernel_height, kernel_width)`.
    b : array_like or Tracer, optional
        One bias per filter, shape `(filters,)`.
    stride : int or pair of int
        Step between receptive fields (rows, columns).
    padding : int or pair of int
        Zeros added on each side of the height and width.
    activation : {"relu", "tanh", "sigmoid", "linear"}
        The nonlinearity `f`.
    pool : int, optional
        Fuse a `pool x pool` max pooling (stride `pool`) after `f`, so that
        convolution, activation and pooling relax as one unit.
    flatten : bool
        Return `(batch, features)` (row-major over channels, rows, columns), ready for
        `ardiff.nn.dense`, without a separate reshape node.

    Returns
    -------
    array or Tracer
        `(batch, filters, out_height, out_width)` (pooled and/or flattened as asked),
        recorded as one `"conv2d"` node when any argument is traced.

    Raises
    ------
    ValueError
        For shapes that do not fit (naming the op and the shapes) or an unknown
        activation.

    Examples
    --------
    >>> import numpy as np
    >>> from ardiff.nn import conv2d
    >>> conv2d(np.ones((2, 1, 6, 6)), np.ones((4, 1, 3, 3)), pool=2).shape
    (2, 4, 2, 2)
    """
    _check_conv(x, W, b, stride, padding, activation, pool)
    return conv2d_op(x, W, b, stride=stride, padding=padding, activation=activation,
                     pool=pool, flatten=bool(flatten))
