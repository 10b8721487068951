"""Testing tools for users: finite-difference gradient checks (and, in
`ardiff.strategies`, hypothesis strategies for random graphs and programs).

`check_grads(fun)(x)` compares the VJP that ardiff computes with central finite
differences along random directions, and recurses to check higher orders
(differentiating ardiff's own derivative), exactly as a user would check a
hand-written model; `modes=["fwd"]` checks forward mode (`ardiff.jvp`) the same way.
Complex arguments and outputs are perturbed and seeded along random complex
directions (real and imaginary parts both), and compared under the pairing
Re(sum(a * b)) of ardiff's complex convention (docs/complex.md).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import numpy as np

from . import numpy as anp
from .forward import jvp
from .transforms import make_vjp
from .tree import flatten


def _random_like(rng, leaves):
    """Standard normal arrays shaped like `leaves`; complex (both parts random) where a
    leaf is complex, so that real and imaginary directions are both checked."""
    out = []
    for leaf in leaves:
        d = rng.standard_normal(np.shape(leaf))
        if np.iscomplexobj(leaf):
            d = d + 1j * rng.standard_normal(np.shape(leaf))
        out.append(d)
    return out


def _inner(a_leaves, b_leaves):
    """Re(sum(a * b)): the pairing under which ardiff's VJPs are adjoints (docs/complex.md)."""
    return sum(float(np.real(np.sum(np.asarray(a) * np.asarray(b))))
               for a, b in zip(a_leaves, b_leaves))


def _as_inexact(value):
    """`value` as a float64 array, or complex128 when it is complex."""
    value = np.asarray(value)
    return value.astype(np.result_type(value, np.float64))


def _check_jvp(fun: Callable, x: Any, direction: list, rebuild: Callable, plus: Any,
               minus: Any, eps: float, rtol: float, atol: float) -> None:
    """J·d in forward mode (`ardiff.jvp`), against central differences."""
    _, tangent = jvp(fun, (x,), (rebuild(direction),))
    numeric = (plus - minus) / (2 * eps)
    tangent = np.asarray(tangent)
    if np.shape(tangent) != np.shape(numeric) or not np.allclose(tangent, numeric, rtol=rtol,
                                                                  atol=atol):
        raise AssertionError(
            f"check_grads: JVP mismatch (mode 'fwd') for {getattr(fun, '__name__', fun)}: "
            f"ardiff gives {tangent!r}, finite differences give {numeric!r}.")


def _unary(fun: Callable, argnum: Any, args: tuple, kwargs: dict) -> tuple[Callable, Any]:
    """`(g, x)`: `fun` as a function of the checked arguments alone, with one flat output.

    An integer `argnum` checks `args[argnum]`; a sequence checks the tuple of those
    arguments (autograd's convention).  An output that is a container (a tuple of
    arrays, say) is concatenated into one vector so that one seed covers every part.
    """
    if isinstance(argnum, (int, np.integer)) and not isinstance(argnum, bool):
        nums, x = (int(argnum),), args[argnum]
    elif isinstance(argnum, (tuple, list)) and all(
            isinstance(n, (int, np.integer)) for n in argnum):
        nums, x = tuple(int(n) for n in argnum), tuple(args[n] for n in argnum)
    else:
        raise TypeError(f"check_grads: argnum must be an int or a sequence of ints, got "
                        f"{argnum!r}.")
    single = len(nums) == 1 and not isinstance(argnum, (tuple, list))

    def g(value):
        new_args = list(args)
        for n, part in zip(nums, (value,) if single else value):
            new_args[n] = part
        out = fun(*new_args, **kwargs)
        leaves, _ = flatten(out)
        if len(leaves) == 1:
            return leaves[0]
        return anp.concatenate([anp.ravel(leaf) for leaf in leaves])

    g.__name__ = getattr(fun, "__name__", "fun")
    return g, x


def _check_unary(fun: Callable, x: Any, order: int, modes: tuple, eps: float, rtol: float,
                 atol: float, seed: int, options: dict) -> None:
    rng = np.random.default_rng(seed)
    x_leaves, rebuild = flatten(x)
    x_leaves = [_as_inexact(leaf) for leaf in x_leaves]
    direction = _random_like(rng, x_leaves)

    def at(t):
        return rebuild([leaf + t * d for leaf, d in zip(x_leaves, direction)])

    vjp, value = make_vjp(fun, 0, **options)(x)
    u = _random_like(rng, [np.asarray(value)])[0]
    if np.ndim(value) == 0:
        u = u[()]
    plus = _as_inexact(fun(at(eps)))
    minus = _as_inexact(fun(at(-eps)))
    numeric = _inner([u], [plus - minus]) / (2 * eps)
    if "fwd" in modes:
        _check_jvp(fun, x, direction, rebuild, plus, minus, eps, rtol, atol)
    analytic = _inner(flatten(vjp(u))[0], direction)
    if "rev" in modes and not np.isclose(analytic, numeric, rtol=rtol, atol=atol):
        raise AssertionError(
            f"check_grads: derivative mismatch for {getattr(fun, '__name__', fun)}: "
            f"ardiff gives {analytic!r}, finite differences give {numeric!r}.")
    if order > 1:
        def projected_vjp(a):
            vjp_a, _ = make_vjp(fun, 0, **options)(a)
            grads = flatten(vjp_a(u))[0]
            return sum(anp.sum(g * d) for g, d in zip(grads, direction))

        projected_vjp.__name__ = f"vjp_{getattr(fun, '__name__', 'fun')}"
        _check_unary(projected_vjp, x, order - 1, ("rev",), eps, rtol, atol, seed + 1,
                     options)
    if order > 1 and "fwd" in modes:  # the JVP as a function of the point, in both modes
        def jvp_along(a):
            return jvp(fun, (a,), (rebuild(direction),))[1]

        jvp_along.__name__ = f"jvp_{getattr(fun, '__name__', 'fun')}"
        _check_unary(jvp_along, x, order - 1, modes, eps, rtol, atol, seed + 2, options)


def check_grads(fun: Callable, argnum: Any = 0, order: int = 2, *, modes: Any = ("rev",),
                eps: float = 1e-6, rtol: float = 1e-5, atol: float = 1e-6, seed: int = 0,
                **options: Any) -> Callable:
    """Return a checker `(*args, **kwargs) -> None` that raises AssertionError on a mismatch.

    Accepts autograd's call, `check_grads(fun, modes=["fwd", "rev"], order=2)(*args)`
    (with keywords: autograd's third positional parameter is `modes`, ardiff's is
    `order`).  Keyword arguments given to the checker are passed on to `fun` and not
    differentiated.

    Parameters
    ----------
    fun : callable
        Function of NumPy-like arguments returning an array or scalar, or a container
        (tuple, list, dict) of them: its parts are checked together.
    argnum : int or sequence of int
        Which positional argument to perturb (it may be a nested container); with a
        sequence, the tuple of those arguments is perturbed together.
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
        for random `u` and `d`.  `"fwd"` checks the whole vector `J · d`, computed in
        forward mode ([`ardiff.jvp`][ardiff.jvp]), against finite differences.  Higher
        orders (`order > 1`) are checked in reverse mode, and with `"fwd"` also by
        checking the JVP itself, as a function of the point, in the given modes
        (forward over forward and reverse over forward, as autograd does).
    seed : int
        Seed of the random directions.
    **options
        Solver options passed to [`ardiff.make_vjp`][ardiff.make_vjp] (`method`, `eta`, ...).

    Returns
    -------
    callable
        `checker(*args, **kwargs)`, which returns None or raises AssertionError.
    """
    modes = (modes,) if isinstance(modes, str) else tuple(modes)
    unknown = [m for m in modes if m not in ("fwd", "rev")]
    if unknown or not modes:
        raise ValueError(f"check_grads: modes must be a non-empty sequence of 'fwd' and "
                         f"'rev', got {modes!r}.")

    def checker(*args, **kwargs):
        g, x = _unary(fun, argnum, args, kwargs)
        _check_unary(g, x, order, modes, eps, rtol, atol, seed, options)

    return checker


def combo_check(fun: Callable, *check_args: Any, **check_kwargs: Any) -> Callable:
    """Return a checker that runs `check_grads` on every combination of candidates.

    autograd's `test_util.combo_check`: `combo_check(fun, (0, 1), order=2)(xs, ys,
    axis=[0, 1])` checks `fun(x, y, axis=a)` for every `x` in `xs`, `y` in `ys` and `a`
    in `[0, 1]`.

    Parameters
    ----------
    fun : callable
        The function to check.
    *check_args, **check_kwargs
        Passed to [`check_grads`][ardiff.testing.check_grads] (`argnum`, `order`,
        `modes`, ...).

    Returns
    -------
    callable
        `checker(*arg_lists, **kwarg_lists)`: one list of candidates per positional
        argument and per keyword argument of `fun`.
    """
    def checker(*arg_lists: Any, **kwarg_lists: Any) -> None:
        keyed = [[(key, value) for value in values] for key, values in kwarg_lists.items()]
        for combo_args in itertools.product(*arg_lists):
            for combo_kwargs in itertools.product(*keyed):
                check_grads(fun, *check_args, **check_kwargs)(*combo_args,
                                                              **dict(combo_kwargs))

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
