"""Nested containers of arrays ("trees"): flatten to a list of leaves and rebuild.

Function arguments and gradients may be tuples, lists or dicts of arrays, nested
arbitrarily. Everything else is a leaf.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def flatten(tree: Any) -> tuple[list, Callable[[list], Any]]:
    """Return the leaves of `tree` in a fixed order and a function rebuilding it.

    Tuples (namedtuples keep their type), lists and dicts are containers; everything
    else is a leaf.  The traversal recurses once per level of nesting, so nesting
    deeper than Python's recursion limit (about 1000 levels) is not supported; the
    number of leaves is not limited.

    Parameters
    ----------
    tree : Any
        A leaf or a nested container of leaves.

    Returns
    -------
    tuple of (list, callable)
        The leaves, and `rebuild(new_leaves)`, which puts a list of the same length
        back into the same structure.
    """
    leaves: list = []

    def build(node):
        if isinstance(node, (tuple, list)):
            parts = [build(child) for child in node]
            kind = type(node)
            if kind is tuple or kind is list:
                return lambda it: kind(p(it) for p in parts)
            # namedtuple and other tuple subclasses keep their type
            return lambda it: kind(*(p(it) for p in parts))
        if isinstance(node, dict):
            keys = list(node)
            parts = [build(node[k]) for k in keys]
            return lambda it: {k: p(it) for k, p in zip(keys, parts)}
        leaves.append(node)
        return lambda it: next(it)

    rebuild_from = build(tree)
    build = None  # the recursive closure refers to itself: break that cycle for prompt freeing
    return leaves, lambda new_leaves: rebuild_from(iter(new_leaves))

