"""`odeint` with gradients by the adjoint method (autograd's `scipy.integrate.odeint`).

The forward solve is `scipy.integrate.odeint`.  The VJP with respect to the initial
state `y0`, the output times `t` and the extra arguments `args` integrates the adjoint
ODE backwards between consecutive output times, with the VJPs of `func` at each
right-hand-side evaluation obtained from [`ardiff.make_vjp`][ardiff.make_vjp]: for
`dy/dt = f(y, t, p)` and a cotangent `g` of the outputs, the augmented state
`(y, λ, μ, ν)` solves

    dy/dt = f,   dλ/dt = -λᵀ ∂f/∂y,   dμ/dt = -λᵀ ∂f/∂t,   dν/dt = -λᵀ ∂f/∂p

from `t[i]` back to `t[i-1]`, `λ` jumping by `g[i-1]` at each output time (Froehlich
et al. 2017, sec. 2.4.2, the construction autograd uses).  The gradient of `t[i]` is
`g[i] · f(y_i, t_i)` for `i > 0`; that of `t[0]` collects `-Σ g[i] · f(y_i, t_i)` and
the integrated `μ`.

This module is not imported by `import ardiff` or `import ardiff.scipy` (it needs the
transforms, a layer above the traced namespaces): import `ardiff.scipy.integrate`.

Derivatives are first order: the backward integration runs on plain values, so
`grad(grad(...))` through `odeint` raises NotImplementedError.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.integrate

from ..extend import defvjp_argnums, primitive
from ..graph import TracerBase
from ..misc.flatten import flatten
from ..transforms import make_vjp

__all__ = ["odeint"]


@primitive
def _odeint(func, y0, t, args, **kwargs):
    return scipy.integrate.odeint(func, y0, t, args=tuple(args), **kwargs)


def odeint(func: Callable, y0: Any, t: Any, args: tuple = (), **kwargs: Any) -> np.ndarray:
    """Integrate `dy/dt = func(y, t, *args)`, differentiably in `y0`, `t` and `args`.

    Parameters
    ----------
    func : callable
        `func(y, t, *args)` -> `dy/dt`, written with `ardiff.numpy` (it is called on
        plain values by the integrator and traced by the adjoint solve).
    y0 : array
        The initial state (1-D), at `t[0]`.
    t : array
        The output times, a monotone sequence starting at the initial time.
    args : tuple
        Extra arguments of `func`: arrays or containers of arrays, differentiable.
    **kwargs
        Passed to `scipy.integrate.odeint` for the forward and the adjoint solves
        (`rtol`, `atol`, `mxstep`, ...).

    Returns
    -------
    array
        The states at the times `t`, shape `(len(t), len(y0))`.

    Examples
    --------
    >>> import numpy as np, ardiff
    >>> from ardiff.scipy.integrate import odeint
    >>> decay = lambda y, t, k: -k * y
    >>> final = lambda k: odeint(decay, np.array([1.0]), np.array([0.0, 1.0]), (k,),
    ...                          rtol=1e-10, atol=1e-12)[-1, 0]
    >>> round(float(ardiff.grad(final)(0.5)), 6)   # d exp(-k)/dk = -exp(-k)
    -0.606531
    """
    if kwargs.get("full_output"):
        return scipy.integrate.odeint(func, y0, t, args=tuple(args), **kwargs)
    return _odeint(func, y0, t, tuple(args), **kwargs)


def _plain(*values: Any) -> None:
    """Refuse traced values: a second derivative through the adjoint solve."""
    for value in values:
        for leaf in _leaves(value):
            if isinstance(leaf, TracerBase):
                raise NotImplementedError(
                    "ardiff.scipy.integrate.odeint: only first derivatives are "
                    "supported (the adjoint solve runs on plain values).")


def _leaves(value: Any) -> list:
    if isinstance(value, (list, tuple)):
        return [leaf for item in value for leaf in _leaves(item)]
    if isinstance(value, dict):
        return [leaf for item in value.values() for leaf in _leaves(item)]
    return [value]


def _adjoint_vjps(argnums, yt, args, kwargs):
    """The VJPs of `_odeint(func, y0, t, args)` for the argument indices in `argnums`."""
    func, y0, t, func_args = args
    _plain(yt, y0, t, func_args)
    yt = np.asarray(yt, dtype=float)
    t = np.asarray(t, dtype=float)
    n_times, dim = yt.shape
    flat_args, unflatten = flatten(tuple(func_args))
    flat_args = np.asarray(flat_args, dtype=float)
    n_params = flat_args.size

    def flat_func(y, time, params):
        return func(y, time, *unflatten(params))

    def augmented(state, time, params):
        y, lam = state[:dim], state[dim:2 * dim]
        vjp, dy_dt = make_vjp(flat_func, (0, 1, 2))(y, time, params)
        vjp_y, vjp_t, vjp_p = vjp(-lam)
        return np.concatenate([np.asarray(dy_dt, dtype=float).reshape(dim), vjp_y,
                               np.reshape(vjp_t, 1), np.reshape(vjp_p, n_params)])

    def all_vjps(g):
        _plain(g)
        g = np.asarray(g, dtype=float).reshape(n_times, dim)
        lam = g[-1].copy()
        mu = 0.0
        nu = np.zeros(n_params)
        time_grads = np.zeros(n_times)
        for i in range(n_times - 1, 0, -1):
            slope = np.asarray(func(yt[i], t[i], *func_args), dtype=float).reshape(dim)
            time_grads[i] = g[i] @ slope
            mu -= time_grads[i]
            state = np.concatenate([yt[i], lam, [mu], nu])
            back = scipy.integrate.odeint(augmented, state, np.array([t[i], t[i - 1]]),
                                          args=(flat_args,), **kwargs)[1]
            lam = back[dim:2 * dim] + g[i - 1]
            mu = back[2 * dim]
            nu = back[2 * dim + 1:]
        time_grads[0] = mu
        grads = {0: None, 1: lam.reshape(np.shape(y0)), 2: time_grads.reshape(np.shape(t)),
                 3: unflatten(nu)}
        return [grads[a] for a in argnums]

    return all_vjps


defvjp_argnums(_odeint, _adjoint_vjps)
