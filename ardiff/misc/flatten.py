"""A nested container of arrays as one flat vector, and back (autograd's `misc.flatten`).

Unlike `ardiff.tree.flatten`, which returns the list of leaves,
`flatten` here concatenates the raveled leaves into one 1-D float array, the form
optimizers and `scipy.optimize` work on.  Both directions are written with traced ops,
so they can sit inside a differentiated function.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .. import numpy as anp
from ..graph import unwrap


def _leaves_and_builder(value: Any, leaves: list) -> Callable:
    """Append `value`'s leaves (dict keys sorted) and return `build(vector, start)`."""
    if isinstance(value, (list, tuple)):
        parts = [_leaves_and_builder(child, leaves) for child in value]
        kind = type(value)

        def build_sequence(vector, start):
            items = []
            for part in parts:
                item, start = part(vector, start)
                items.append(item)
            if kind in (list, tuple):
                return kind(items), start
            return kind(*items), start  # a namedtuple keeps its type
        return build_sequence
    if isinstance(value, dict):
        keys = sorted(value)
        parts = [_leaves_and_builder(value[k], leaves) for k in keys]

        def build_dict(vector, start):
            out = {}
            for key, part in zip(keys, parts):
                out[key], start = part(vector, start)
            return out, start
        return build_dict
    leaves.append(value)
    shape = np.shape(unwrap(value))
    size = int(np.prod(shape, dtype=np.int64))
    scalar = np.ndim(unwrap(value)) == 0 and not isinstance(unwrap(value), np.ndarray)

    def build_leaf(vector, start):
        piece = vector[start:start + size]
        if scalar:
            return piece[0], start + size
        return anp.reshape(piece, shape), start + size
    return build_leaf


def flatten(value: Any) -> tuple[Any, Callable[[Any], Any]]:
    """Concatenate the leaves of any nesting of tuples, lists and dicts into a 1-D vector.

    Parameters
    ----------
    value : Any
        Arrays or scalars, possibly nested in tuples, lists and dicts (dict keys must
        be sortable: leaves are taken in sorted key order, as in autograd).

    Returns
    -------
    tuple of (array, callable)
        The vector (traced when a leaf is) and `unflatten(vector)`, which cuts a vector
        of the same length back into the structure; scalar leaves come back as
        scalars, array leaves with their shapes.  Mixed numeric types are not kept
        (the vector has one dtype).

    Examples
    --------
    >>> import numpy as np
    >>> from ardiff.misc import flatten
    >>> vec, unflatten = flatten({"b": np.ones(2), "a": 3.0})
    >>> vec
    array([3., 1., 1.])
    >>> unflatten(vec * 2)["b"]
    array([2., 2.])
    """
    leaves: list = []
    build = _leaves_and_builder(value, leaves)
    if leaves:
        vector = anp.concatenate([anp.ravel(leaf) for leaf in leaves])
    else:
        vector = np.zeros(0)

    def unflatten(vector):
        return build(vector, 0)[0]

    return vector, unflatten


def flatten_func(func: Callable, example: Any) -> tuple[Callable, Callable, Any]:
    """`func` of a structured argument as a function of a flat vector.

    Parameters
    ----------
    func : callable
        `func(structured, *args)` returning a structured value (or an array).
    example : Any
        An argument of `func` whose structure defines the flattening.

    Returns
    -------
    tuple
        `(flat_func, unflatten, flat_example)`, where
        `flat_func(vector, *args) == flatten(func(unflatten(vector), *args))[0]`.
    """
    flat_example, unflatten = flatten(example)

    def flat_func(vector, *args):
        return flatten(func(unflatten(vector), *args))[0]

    return flat_func, unflatten, flat_example
