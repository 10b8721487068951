"""Gradients by argument name: autograd's `grad_named` and `multigrad_dict`.

Both are `ardiff.grad` with the argument picked by name instead of by position; the
solver options of `grad` pass through.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from .transforms import grad

__all__ = ["grad_named", "multigrad_dict"]


def grad_named(fun: Callable, argname: str, **options: Any) -> Callable:
    """Gradient of scalar `fun` with respect to the argument called `argname`.

    Parameters
    ----------
    fun : callable
        Returns a scalar.
    argname : str
        The name of a positional-or-keyword parameter of `fun`; pass it positionally
        when calling the result.
    **options
        As for `grad`.

    Returns
    -------
    callable
        Same arguments as `fun`, returning the gradient for `argname`.

    Raises
    ------
    ValueError
        If `fun` has no positional parameter called `argname`.

    Examples
    --------
    >>> import numpy as np, ardiff
    >>> f = lambda x, y: x * y ** 2
    >>> float(ardiff.grad_named(f, "y")(3.0, 2.0))
    12.0
    """
    names = [name for name, p in inspect.signature(fun).parameters.items()
             if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if argname not in names:
        raise ValueError(f"grad_named: {getattr(fun, '__name__', fun)!r} has no positional "
                         f"parameter {argname!r} (its positional parameters: {names}).")
    return grad(fun, names.index(argname), **options)


def multigrad_dict(fun: Callable, **options: Any) -> Callable:
    """Gradients of scalar `fun` with respect to all its arguments, as a dict by name.

    Defaults of parameters not passed are differentiated too (as autograd does); a
    `*args` parameter gets a tuple of gradients and a `**kwargs` parameter a dict.

    Parameters
    ----------
    fun : callable
        Returns a scalar.
    **options
        As for `grad`.

    Returns
    -------
    callable
        Same arguments as `fun`, returning `{parameter name: gradient}` in the order of
        the signature.

    Examples
    --------
    >>> import numpy as np, ardiff
    >>> f = lambda x, y=2.0: x * y ** 2
    >>> {k: float(v) for k, v in ardiff.multigrad_dict(f)(3.0).items()}
    {'x': 4.0, 'y': 12.0}
    """
    signature = inspect.signature(fun)

    def call_with(arguments: dict) -> Any:
        bound = signature.bind_partial()
        bound.arguments.update(arguments)
        return fun(*bound.args, **bound.kwargs)

    def gradients(*args: Any, **kwargs: Any) -> dict:
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        arguments = dict(bound.arguments)
        return dict(grad(call_with, **options)(arguments))

    return gradients
