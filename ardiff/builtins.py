"""`ardiff.builtins`: autograd's container names, for programs ported word for word.

autograd boxes containers of traced values, so it needs its own `tuple`, `list`, `dict`
and an `isinstance` / `type` that look through boxes.  ardiff traces the values inside
ordinary Python containers, so its `tuple`, `list` and `dict` are Python's; `isinstance`
and `type` answer for the plain value inside a traced one (`isinstance(x, np.ndarray)` is
True for a traced array), as autograd's do for boxes.
"""

from __future__ import annotations

import builtins as _builtins
from typing import Any

from .graph import unwrap

__all__ = ["tuple", "list", "dict", "isinstance", "type"]

tuple = _builtins.tuple  # noqa: A001
list = _builtins.list  # noqa: A001
dict = _builtins.dict  # noqa: A001


def isinstance(obj: Any, classinfo: Any) -> bool:  # noqa: A001
    """`isinstance` of `obj`, or of the plain value inside it when it is traced.

    Parameters
    ----------
    obj : object
    classinfo : type or tuple of types

    Returns
    -------
    bool
    """
    return _builtins.isinstance(obj, classinfo) or _builtins.isinstance(unwrap(obj), classinfo)


def type(obj: Any) -> _builtins.type:  # noqa: A001
    """The type of `obj`, or of the plain value inside it when it is traced.

    Parameters
    ----------
    obj : object

    Returns
    -------
    type
    """
    return _builtins.type(unwrap(obj))
