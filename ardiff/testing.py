"""Testing tools for users: finite-difference gradient checks (and, in
`ardiff.strategies`, hypothesis strategies for random graphs and programs).

`check_grads(fun)(x)` compares the VJP that ardiff computes with central finite
differences along random directions, and recurses to check higher orders
(differentiating ardiff's own derivative), exactly as a user would check a
hand-written model.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from . import numpy as anp
from .transforms import make_vjp
from .tree import flatten


def _random_like(rng, leaves):
    return [rng.standard_normal(np.shape(leaf)) for leaf in leaves]


def _inner(a_leaves, b_leaves):
    return sum(float(np.sum(np.asarray(a) * np.asarray(b))) for a, b in zip(a_leaves, b_leaves))


def _check_jvp(fun: Callable, argnum: int, args: tuple, direction: list, rebuild: Callable,
               plus: Any, minus: Any, eps: float, rtol: float, atol: float,
               options: dict) -> None:
    """J·d as the VJP of the VJP (reverse mode twice), against central differences."""
    vjp, value = make_vjp(fun, argnum, **options)(*args)
    d = rebuild(direction)

    def along(u):
        grads = flatten(vjp(u))[0]
        return sum(anp.sum(g * dd) for g, dd in zip(grads, flatten(d)[0]))

    jvp = np.asarray(make_vjp(along, 0, **options)(np.zeros(np.shape(value)))[0](1.0))
    numeric = (plus - minus) / (2 * eps)
    if not np.allclose(jvp, numeric, rtol=rtol, atol=atol):
        raise AssertionError(
            f"check_grads: JVP mismatch (mode 'fwd') for {getattr(fun, '__name__', fun)}: "
            f"ardiff gives {jvp!r}, finite differences give {numeric!r}.")


def check_grads(fun: Callable, argnum: int = 0, order: int = 2, *, modes: Any = ("rev",),
                eps: float = 1e-6, rtol: float = 1e-5, atol: float = 1e-6, seed: int = 0,
                **options: Any) -> Callable:
    """Return a checker `(*args) -> None` that raises AssertionError on a mismatch.

    Accepts autograd's call, `check_grads(fun, modes=["fwd", "rev"], order=2)(*args)`
    (with keywords: autograd's third positional parameter is `modes`, ardiff's is
    `order`).

    Parameters
    ----------
    fun : callable
        Function of NumPy-like arguments returning an array or scalar.
    argnum : int
        Which positional argument to perturb (it may be a nested container).
    order : int
        Highest derivative order to check (1 = gradients, 2 = also Hessian-vector
        products, ...).
    eps : float
        Finite-difference step.
    rtol : float
        Relative tolerance on the directional derivative.
    atol : float
        Absolute tolerance on the directional derivative.
    modes : sequence of str
        `"rev"` checks `u · J · d` from the VJP (`J^T u`) against finite differences,
        for random `u` and `d`.  `"fwd"` checks the whole vector `J · d` against finite
        differences; ardiff has no forward mode, so `J · d` is computed as the VJP of
        the VJP (the VJP is linear in its seed), which also exercises the second-order
        machinery.  Higher orders (`order > 1`) are checked in reverse mode.
    seed : int
        Seed of the random directions.
    **options
        Solver options passed to [`ardiff.make_vjp`][ardiff.make_vjp] (`method`, `eta`, ...).

    Returns
    -------
    callable
        `checker(*args)`, which returns None or raises AssertionError.
    """
    modes = (modes,) if isinstance(modes, str) else tuple(modes)
    unknown = [m for m in modes if m not in ("fwd", "rev")]
    if unknown or not modes:
        raise ValueError(f"check_grads: modes must be a non-empty sequence of 'fwd' and "
                         f"'rev', got {modes!r}.")

    def checker(*args):
        rng = np.random.default_rng(seed)
        x = args[argnum]
        x_leaves, rebuild = flatten(x)
        x_leaves = [np.asarray(leaf, dtype=np.float64) for leaf in x_leaves]
        direction = _random_like(rng, x_leaves)

        def at(t):
            shifted = [leaf + t * d for leaf, d in zip(x_leaves, direction)]
            new_args = list(args)
            new_args[argnum] = rebuild(shifted)
            return new_args

        vjp, value = make_vjp(fun, argnum, **options)(*args)
        out_leaves, _ = flatten(value)
        if len(out_leaves) != 1:
            raise TypeError("check_grads: fun must return a single array or scalar.")
        u = rng.standard_normal(np.shape(value))
        if np.ndim(value) == 0:
            u = np.float64(u)
        plus = np.asarray(fun(*at(eps)), dtype=np.float64)
        minus = np.asarray(fun(*at(-eps)), dtype=np.float64)
        numeric = float(np.sum(u * (plus - minus))) / (2 * eps)
        if "fwd" in modes:
            _check_jvp(fun, argnum, args, direction, rebuild, plus, minus, eps, rtol, atol,
                       options)
        analytic = _inner(flatten(vjp(u))[0], direction)
        if "rev" in modes and not np.isclose(analytic, numeric, rtol=rtol, atol=atol):
            raise AssertionError(
                f"check_grads: derivative mismatch for {getattr(fun, '__name__', fun)}: "
                f"ardiff gives {analytic!r}, finite differences give {numeric!r}.")
        if order > 1:
            def projected_vjp(*a):
                vjp_a, _ = make_vjp(fun, argnum, **options)(*a)
                grads = flatten(vjp_a(u))[0]
                return sum(anp.sum(g * d) for g, d in zip(grads, direction))

            check_grads(projected_vjp, argnum, order - 1, eps=eps, rtol=rtol, atol=atol,
                        seed=seed + 1, **options)(*args)

    return checker


def assert_close(actual: Any, expected: Any, rtol: float = 1e-10, atol: float = 0.0) -> None:
    """Assert two (nested) gradient structures agree, with a clear message.

    Parameters
    ----------
    actual, expected : Any
        Arrays, scalars or containers of them, with the same structure.
    rtol : float
        Relative tolerance.
    atol : float
        Absolute tolerance.
    """
    a_leaves, _ = flatten(actual)
    e_leaves, _ = flatten(expected)
    assert len(a_leaves) == len(e_leaves), "different structures"
    for a, e in zip(a_leaves, e_leaves):
        np.testing.assert_allclose(np.asarray(a), np.asarray(e), rtol=rtol, atol=atol)
