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

The backward pass is written with traced ops and integrates the augmented system with
`odeint` itself, so it can be differentiated again: second derivatives come from a
nested adjoint solve (slow: every right-hand-side evaluation of the outer adjoint is
traced).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.integrate

from .. import numpy as anp
from ..extend import defjvp, defvjp_argnums, primitive
from ..graph import unwrap
from ..misc.flatten import flatten
from ..op import TRANSPOSED_VJP
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


def _adjoint_vjps(argnums, yt, args, kwargs):
    """The VJPs of `_odeint(func, y0, t, args)` for the argument indices in `argnums`.

    Written with traced ops, and integrating the augmented system with `odeint` itself,
    so that the VJP can be differentiated again (second derivatives by a nested adjoint).
    """
    func, y0, t, func_args = args
    n_times, dim = np.shape(unwrap(yt))
    flat_args, unflatten = flatten(tuple(func_args))
    n_params = int(np.size(unwrap(flat_args)))

    def flat_func(y, time, params):
        return func(y, time, *unflatten(params))

    def augmented(state, time, params):
        y, lam = state[:dim], state[dim:2 * dim]
        vjp, dy_dt = make_vjp(flat_func, (0, 1, 2))(y, time, params)
        vjp_y, vjp_t, vjp_p = vjp(-lam)
        return anp.concatenate([anp.reshape(dy_dt, (dim,)), vjp_y, anp.reshape(vjp_t, (1,)),
                                anp.reshape(vjp_p, (n_params,))])

    def all_vjps(g):
        g = anp.reshape(g, (n_times, dim))
        lam = g[-1]
        mu = np.zeros(1)
        nu = np.zeros(n_params)
        time_grads = []
        for i in range(n_times - 1, 0, -1):
            slope = anp.reshape(func(yt[i], t[i], *func_args), (dim,))
            time_grads.append(anp.reshape(anp.dot(g[i], slope), (1,)))
            mu = mu - time_grads[-1]
            state = anp.concatenate([yt[i], lam, mu, nu])
            back = odeint(augmented, state, anp.stack([t[i], t[i - 1]]), (flat_args,),
                          **kwargs)[1]
            lam = back[dim:2 * dim] + g[i - 1]
            mu = back[2 * dim:2 * dim + 1]
            nu = back[2 * dim + 1:]
        time_grads.append(mu)
        grads = {0: None, 1: anp.reshape(lam, np.shape(unwrap(y0))),
                 2: anp.reshape(anp.concatenate(time_grads[::-1]), np.shape(unwrap(t))),
                 3: unflatten(nu)}
        return [grads[a] for a in argnums]

    return all_vjps


defvjp_argnums(_odeint, _adjoint_vjps)
# forward mode: the adjoint of the adjoint solve (one reverse pass through it per call)
defjvp(_odeint, None, TRANSPOSED_VJP, TRANSPOSED_VJP, TRANSPOSED_VJP)
