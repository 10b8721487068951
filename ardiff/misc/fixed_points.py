"""A fixed-point iteration differentiated implicitly (autograd's `misc.fixed_points`).

`fixed_point(f, a, x0, distance, tol)` iterates `x <- f(a)(x)` from `x0` until
`distance(x, x_prev) <= tol` and returns the last `x`.  Its gradient with respect to
`a` does not differentiate through the iterations.  At the fixed point
`x* = f(a)(x*)`, so `dx*/da = (I - ∂f/∂x)^-1 ∂f/∂a`, and the VJP of an incoming
`g` is `(∂f/∂a)^T x̄` where `x̄` solves the adjoint fixed point

    x̄ = g + (∂f/∂x)^T x̄,

found by iterating that map from zero with the same `distance` and `tol` (it converges
when the forward iteration is a contraction: both have the iteration matrix
`∂f/∂x` at `x*`, transposed).

This is the same equation Activation Relaxation solves for a whole graph: the
gradient of a recorded program is the fixed point of the linear map
`x̄ <- seed + Jᵀ x̄` (J the graph's strictly lower-triangular Jacobian), which ardiff's
relaxation reaches by iterating, and its exact default reaches in one sweep because J
is nilpotent.  Here the map's `∂f/∂x` comes from a loop the program runs, so it is
not nilpotent and the iteration needs `tol`.  The adjoint iteration is itself a
`fixed_point`, so second derivatives are implicit too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..extend import defjvp, defvjp, primitive
from ..forward import jvp
from ..graph import unwrap
from ..transforms import make_vjp

__all__ = ["fixed_point"]


@primitive
def fixed_point(f: Callable, a: Any, x0: Any, distance: Callable, tol: float) -> Any:
    """Iterate `x <- f(a)(x)` from `x0` until `distance(x, x_prev) <= tol`.

    Parameters
    ----------
    f : callable
        `f(a)` returns the map to iterate, `x -> x_new`.
    a : array or container of arrays
        The parameters; the result is differentiable with respect to them
        (implicit differentiation, see the module's description).
    x0 : array
        The starting point (no gradient flows to it: the fixed point does not
        depend on it).
    distance : callable
        `distance(x, x_prev)` -> float.
    tol : float
        Stop when the distance between two iterates is at most `tol`.

    Returns
    -------
    array
        The last iterate.

    Examples
    --------
    >>> import numpy as np, ardiff
    >>> from ardiff.misc import fixed_point
    >>> def newton_sqrt(a):
    ...     return lambda x: 0.5 * (x + a / x)
    >>> dist = lambda x, y: abs(x - y)
    >>> root = lambda a: fixed_point(newton_sqrt, a, 1.0, dist, 1e-12)
    >>> round(float(ardiff.grad(root)(2.0)), 10)   # d sqrt(a)/da = 1 / (2 sqrt(2))
    0.3535533906
    """
    step = f(a)
    x, x_prev = step(x0), x0
    while distance(x, x_prev) > tol:
        x, x_prev = step(x), x
    return x


def _adjoint_map(f: Callable) -> Callable:
    """`params -> (x̄ -> (∂f/∂x)ᵀ x̄ + g)` at the fixed point; params = `(a, x_star, g)`."""
    def at(params: tuple) -> Callable:
        a, x_star, g = params
        vjp_x, _ = make_vjp(f(a))(x_star)
        return lambda x_bar: vjp_x(x_bar) + g
    return at


def _fixed_point_vjp(ans, f, a, x0, distance, tol):
    vjp_a, _ = make_vjp(lambda params, x: f(params)(x))(a, ans)

    def vjp(g):
        start = np.zeros(np.shape(unwrap(ans)))
        x_bar = fixed_point(_adjoint_map(f), (a, ans, g), start, distance, tol)
        return vjp_a(x_bar)

    return vjp


def _tangent_map(f: Callable) -> Callable:
    """`params -> (dx -> (∂f/∂x) dx + b)` at the fixed point; params = `(a, x_star, b)`."""
    def at(params: tuple) -> Callable:
        a, x_star, b = params
        return lambda dx: jvp(f(a), (x_star,), (dx,))[1] + b
    return at


def _fixed_point_jvp(t, ans, f, a, x0, distance, tol):
    """Forward mode: dx* = (∂f/∂x) dx* + (∂f/∂a) da, the tangent fixed point (iterated
    from zero with the same `distance` and `tol`, like the adjoint one)."""
    _, b = jvp(lambda params: f(params)(ans), (a,), (t,))
    start = np.zeros(np.shape(unwrap(ans)))
    return fixed_point(_tangent_map(f), (a, ans, b), start, distance, tol)


defvjp(fixed_point, None, _fixed_point_vjp, None, None, None)
defjvp(fixed_point, None, _fixed_point_jvp, None, None, None)
