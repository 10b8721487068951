"""The fused dense layer `h = f(x @ W + b)` as one elementary op of the op table.

The paper's network relaxes one unit per layer, the post-activation `h`, and
clamps the output layer to `x_L = dL/dv_L`.  A traced `f(x @ W + b)` records
three nodes (matmul, add, activation); at op level (`units="ops"`) all three
relax, with a longer path to the output.  One `"dense"` node per layer relaxes
one unit per layer at any granularity, and the paper's dynamics hold exactly
when the output layer is clamped too: either the graph's output is the network
output and the seed is dL/d(output) (as `ardiff.nn.train` does), or the loss is
in the graph and the relaxation runs with `units="layers"` (the `"paper"`
preset), which clamps everything after the last parameter.  A traced
`f(x @ W + b)` network under `units="layers"` relaxes the same way (its matmul
and add folded into the edges), so both give the same trajectories.

Local derivatives, staged once per recorded node (i.e. once per batch):

* w.r.t. `x`: `g -> (g * f'(z)) @ W.T`
* w.r.t. `W`: `g -> x.T @ (g * f'(z))` (the paper's weight update, eq. 1)
* w.r.t. `b`: `g -> sum over the batch of g * f'(z)`

`f'` is computed from the stored output `h` (relu: `h > 0`, tanh:
`1 - h**2`, sigmoid: `h (1 - h)`, linear: 1), so no pre-activation is kept.
The VJPs are written with ardiff's own ops, so higher order works as elsewhere.
The op carries `nonlinear=True`: `ardiff.rules.NoDerivative` drops
`f'` from its input edge (`g -> g @ W.T`) while the weight and bias edges
keep it, as in the paper's code.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from ..graph import unwrap
from ..op import OPS, defop
from ..ops.elementwise import multiply
from ..ops.linalg import matmul
from ..ops.shape import reshape, transpose


def _relu(z):
    return np.maximum(z, 0.0)


def _sigmoid(z):
    # exp of a non-positive number only: no overflow warnings for large |z|
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


# name -> (forward on plain arrays, derivative from the output h; None means f' = 1)
ACTIVATIONS: dict[str, tuple] = {
    "relu": (_relu, lambda h: (unwrap(h) > 0).astype(np.result_type(unwrap(h)))),
    "tanh": (np.tanh, lambda h: 1.0 - h * h),
    "sigmoid": (_sigmoid, lambda h: h * (1.0 - h)),
    "linear": (lambda z: z, None),
}


def check_activation(activation: str) -> None:
    """Raise a clear error for an unknown activation name."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"Unknown activation {activation!r} for the dense op; choose one of "
                         f"{sorted(ACTIVATIONS)}.")


def _check_shapes(x, W, b) -> None:
    xs, ws = np.shape(unwrap(x)), np.shape(unwrap(W))
    if len(ws) != 2:
        raise ValueError(f"dense: the weight must be a matrix (n_in, n_out), got shape {ws}.")
    if len(xs) not in (1, 2) or xs[-1] != ws[0]:
        raise ValueError(f"dense: input of shape {xs} does not fit a weight of shape {ws}; "
                         "the input must be (n_in,) or (batch, n_in).")
    if b is not None and np.shape(unwrap(b)) not in ((ws[1],), (1, ws[1])):
        raise ValueError(f"dense: bias of shape {np.shape(unwrap(b))} does not fit a weight of "
                         f"shape {ws}; expected ({ws[1]},).")


def _forward(x, W, b=None, activation: str = "relu"):
    check_activation(activation)
    _check_shapes(x, W, b)
    z = x @ W
    if b is not None:
        z = z + b
    return ACTIVATIONS[activation][0](z)


def local_slope(ans, activation: str):
    """`f'(z)` at the recorded point, from the output; None when it is 1 (linear)."""
    deriv = ACTIVATIONS[activation][1]
    return None if deriv is None else deriv(ans)


def _vjp(k: int, ans, x, W, b=None, activation: str = "relu"):
    slope = local_slope(ans, activation)

    def pre_activation(g):
        return g if slope is None else multiply(g, slope)

    if k == 0:
        Wt = transpose(W)
        return lambda g: matmul(pre_activation(g), Wt)
    if k == 1:
        if np.ndim(unwrap(x)) == 1:
            n_in = np.shape(unwrap(x))[0]
            col = reshape(x, (n_in, 1))
            return lambda g: matmul(col, reshape(pre_activation(g), (1, np.size(unwrap(g)))))
        xt = transpose(x)
        return lambda g: matmul(xt, pre_activation(g))
    if k == 2:
        return pre_activation  # summed over the batch by the generic unbroadcast
    raise TypeError("ardiff op 'dense' has no derivative with respect to argument "
                    f"{k}; only x (0), W (1) and b (2) are differentiable.")


def _jac(k: int, ans, x, W, b=None, activation: str = "relu"):
    """Sparse local Jacobian of vec(h) w.r.t. vec(args[k]) (row-major)."""
    h = np.asarray(unwrap(ans))
    xr, Wr = np.asarray(unwrap(x)), np.asarray(unwrap(W))
    slope = local_slope(h, activation)
    slope = np.ones_like(h) if slope is None else np.asarray(unwrap(slope))
    h2 = slope.reshape(-1, Wr.shape[1])
    x2 = xr.reshape(-1, Wr.shape[0])
    batch, n_out = h2.shape
    n_in = Wr.shape[0]
    rows = np.arange(batch * n_out).reshape(batch, n_out)
    if k == 0:  # d h[s, j] / d x[s, i] = f'[s, j] W[i, j]
        r = np.repeat(rows, n_in, axis=1).ravel()
        c = (np.arange(batch)[:, None, None] * n_in + np.arange(n_in)[None, None, :])
        c = np.broadcast_to(c, (batch, n_out, n_in)).ravel()
        v = (h2[:, :, None] * Wr.T[None, :, :]).ravel()
        return sp.csr_matrix((v, (r, c)), shape=(h.size, xr.size))
    if k == 1:  # d h[s, j] / d W[i, j] = f'[s, j] x[s, i]
        r = np.repeat(rows, n_in, axis=1).ravel()
        c = (np.arange(n_in)[None, None, :] * n_out + np.arange(n_out)[None, :, None])
        c = np.broadcast_to(c, (batch, n_out, n_in)).ravel()
        v = (h2[:, :, None] * x2[:, None, :]).ravel()
        return sp.csr_matrix((v, (r, c)), shape=(h.size, Wr.size))
    if k == 2:  # d h[s, j] / d b[j] = f'[s, j]
        r = rows.ravel()
        c = np.tile(np.arange(n_out), batch)
        return sp.csr_matrix((h2.ravel(), (r, c)), shape=(h.size, np.size(unwrap(b))))
    raise TypeError(f"ardiff op 'dense' has no Jacobian with respect to argument {k}.")


def _jvp(k: int, t, ans, x, W, b=None, activation: str = "relu"):
    """Tangent: `f'(z) * dz` with `dz = t @ W`, `x @ t` or `t` for x, W, b."""
    if k == 0:
        dz = matmul(t, W)
    elif k == 1:
        dz = matmul(x, t)
    elif k == 2:
        dz = t
    else:
        raise TypeError("ardiff op 'dense' has no tangent with respect to argument "
                        f"{k}; only x (0), W (1) and b (2) are differentiable.")
    slope = local_slope(ans, activation)
    return dz if slope is None else multiply(dz, slope)


dense_op = OPS["dense"] if "dense" in OPS else defop(
    "dense", _forward, vjp=_vjp, jac=_jac, nonlinear=True, jvp=_jvp)


def dense(x: Any, W: Any, b: Any = None, activation: str = "relu") -> Any:
    """Apply one fully connected layer `f(x @ W + b)` as a single graph node.

    Parameters
    ----------
    x : array_like or Tracer
        Input, shape `(n_in,)` or `(batch, n_in)`.
    W : array_like or Tracer
        Weight matrix, shape `(n_in, n_out)`.
    b : array_like or Tracer, optional
        Bias, shape `(n_out,)`; omitted for a layer without bias.
    activation : {"relu", "tanh", "sigmoid", "linear"}
        The nonlinearity `f`.

    Returns
    -------
    array or Tracer
        `f(x @ W + b)`, recorded as one `"dense"` node when any argument is traced.

    Examples
    --------
    >>> import numpy as np, ardiff
    >>> from ardiff.nn import dense
    >>> W = np.ones((3, 2))
    >>> ardiff.grad(lambda W: dense(np.ones(3), W, activation="tanh").sum())(W).shape
    (3, 2)
    """
    check_activation(activation)
    return dense_op(x, W, b, activation=activation)
