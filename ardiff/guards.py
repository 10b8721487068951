"""Concrete facts read off traced values, kept so a replay can tell when they change.

Tracing is concrete: a comparison, a truth test in an `if` or an integer index of
a traced value is answered from its plain value, and the Python program simply
runs.  `concrete` answers such a question and records it as a `Guard`
in every graph whose values it read; `ardiff.compile` evaluates the guards again on
new inputs and re-traces when an answer changes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .graph import TracerBase, unwrap

__all__ = ["Guard", "plain", "concrete"]


class Guard:
    """A concrete value read off traced values: `fun(*args)` gave `result`.

    `args` keeps the traced arguments as slots naming their node, so that a
    replay on new inputs can evaluate it again (`holds`).
    """

    __slots__ = ("fun", "args", "kwargs", "result")

    def __init__(self, fun, args, kwargs, result):
        self.fun, self.args, self.kwargs, self.result = fun, args, kwargs, result

    def holds(self, values: list) -> bool:
        """Whether `fun` still gives `result` with node values from `values`."""
        now = self.fun(*_fill(self.args, values), **self.kwargs)
        return _same(now, self.result)

    def same_as(self, other: Guard, same: Callable[[Any, Any], bool]) -> bool:
        """Whether `other` asks the same question of the same nodes with the same answer.

        `same(a, b)` compares the function, the constant arguments and the answers;
        the traced arguments match when they name the same node.  A compiled
        function compares the guards of two traces with it (`ardiff.compile`).
        """
        return (same(self.fun, other.fun) and _same_template(self.args, other.args, same)
                and same(self.kwargs, other.kwargs) and same(self.result, other.result))


class _Slot:
    """Stands for the value of one node of the guarded graph."""

    __slots__ = ("node",)

    def __init__(self, node):
        self.node = node


def _template(obj, graph):
    """`obj` with this graph's tracers replaced by slots (lists/tuples walked)."""
    if isinstance(obj, TracerBase) and obj._graph is graph:
        return _Slot(obj._node)
    if isinstance(obj, (list, tuple)):
        return type(obj)(_template(o, graph) for o in obj)
    return unwrap(obj)


def _same_template(a, b, same) -> bool:
    if isinstance(a, _Slot) or isinstance(b, _Slot):
        return isinstance(a, _Slot) and isinstance(b, _Slot) and a.node == b.node
    if isinstance(a, (list, tuple)) and type(a) is type(b):
        return len(a) == len(b) and all(_same_template(x, y, same) for x, y in zip(a, b))
    return same(a, b)


def _fill(obj, values):
    if isinstance(obj, _Slot):
        return values[obj.node]
    if isinstance(obj, (list, tuple)):
        return type(obj)(_fill(o, values) for o in obj)
    return obj


def _same(a, b) -> bool:
    if isinstance(a, tuple) and isinstance(b, tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return np.shape(a) == np.shape(b) and bool(np.array_equal(a, b))


def _graphs_in(obj, found: dict) -> None:
    if isinstance(obj, TracerBase):
        found.setdefault(id(obj._graph), obj._graph)
        _graphs_in(obj._value, found)
    elif isinstance(obj, (list, tuple)):
        for o in obj:
            _graphs_in(o, found)


def plain(obj: Any) -> Any:
    """Strip tracing from a value or from every item of a (nested) list/tuple."""
    if isinstance(obj, (list, tuple)):
        return type(obj)(plain(o) for o in obj)
    return unwrap(obj)


def concrete(fun: Callable, *args, **kwargs):
    """Evaluate `fun` on the plain values of `args` and remember the answer as a
    guard in every graph whose traced values it read.

    This is how comparisons, truth tests and integer indices of traced values are
    made: tracing stays concrete, and a compiled replay can tell when the same
    Python code would now take another branch.
    """
    result = fun(*plain(args), **kwargs)
    graphs: dict = {}
    _graphs_in(args, graphs)
    for graph in graphs.values():
        graph.guards.append(Guard(fun, _template(args, graph), kwargs, result))
    return result
