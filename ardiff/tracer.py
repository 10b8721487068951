"""Traced values and the elementary-op dispatch that records them.

A :class:`Tracer` wraps a forward value together with the graph node that
produced it.  Calling an :class:`Op` on arguments that contain tracers runs the
op's NumPy forward on the unwrapped values and appends a node to the tracer's
graph.  Tracing is *concrete*: values are real arrays, so Python control flow
simply runs.

Higher order works by nesting: a graph created while another one is being traced
gets a higher level; an op unwraps only the highest level present and calls
itself again on what is inside, which records into the lower-level graph too.
There is no global "current trace", so an exception inside a traced function
leaves nothing behind and threads never share tracing state.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .graph import NO_KWARGS, Graph, TracerBase, unwrap

# Filled by ardiff.numpy: NumPy ufuncs / functions -> traced implementations.
UFUNC_IMPLS: dict = {}
FUNCTION_IMPLS: dict = {}


def _identity(x):
    return x


class TracingError(TypeError):
    """A traced value was used in a way that would silently lose its gradient."""


def shape_of(x: Any) -> tuple:
    """Shape of a possibly traced value."""
    return np.shape(unwrap(x))


def _shape_and_dtype(value: Any) -> tuple:
    try:  # arrays and NumPy scalars: attribute access is much cheaper than np.shape
        return value.shape, value.dtype
    except AttributeError:
        return np.shape(value), np.result_type(value)


def unbroadcast(grad: Any, shape: tuple) -> Any:
    """Sum ``grad`` down to ``shape``: the one place broadcasting is undone.

    Broadcasting copies an argument along new leading axes and along axes of
    length one; the adjoint of a copy is a sum over the copies.
    """
    from . import numpy as anp

    gshape = shape_of(grad)
    if gshape == shape:
        return grad
    extra = len(gshape) - len(shape)
    if extra > 0:
        grad = anp.sum(grad, axis=tuple(range(extra)))
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and shape_of(grad)[i] != 1)
    if axes:
        grad = anp.sum(grad, axis=axes, keepdims=True)
    if shape_of(grad) != shape:
        grad = anp.broadcast_to(grad, shape)
    return grad


class Op:
    """An elementary operation: a NumPy forward plus one local VJP per argument.

    Parameters
    ----------
    name : str
        Name in the op table.
    fwd : callable
        The NumPy implementation, called on plain values.
    vjps : sequence of callables or None
        ``vjps[k](ans, *args, **kwargs)`` returns a function ``g -> g · ∂ans/∂args[k]``.
        The outer call happens once per node (a good place to precompute local
        derivatives); the returned function is what relaxation iterates.
        ``None`` marks an argument that carries no gradient.
    vjp : callable, optional
        For variadic ops: ``vjp(k, ans, *args, **kwargs)`` instead of ``vjps``.
    jac : callable, optional
        ``jac(k, ans, *args, **kwargs)`` returning the local Jacobian as a scipy
        sparse matrix of shape ``(ans.size, args[k].size)`` (for the triangular solver).
    """

    def __init__(self, name: str, fwd: Callable, vjps=(), *, vjp=None, jac=None,
                 nonlinear: bool = False):
        self.name = name
        self.fwd = fwd
        self.vjps = tuple(vjps)
        self.vjp = vjp
        self.jac = jac
        self.nonlinear = nonlinear
        self.__name__ = name
        self.__doc__ = f"Traced ``{name}`` (see the op table in ardiff.ops)."

    def __repr__(self) -> str:
        return f"<ardiff op {self.name}>"

    def __call__(self, *args, **kwargs):
        # One pass for the common case (all traced arguments from the same graph);
        # anything else (several nesting levels) goes to the general path.
        graph = None
        parents = []
        for i, a in enumerate(args):
            if isinstance(a, Tracer):
                if graph is None:
                    graph = a._graph
                elif a._graph is not graph:
                    return self._call_nested(args, kwargs)
                parents.append((i, a._node))
        if graph is None:
            return self.fwd(*args, **kwargs)
        raw = list(args)
        for i, _ in parents:
            value = raw[i] = raw[i]._value
            if isinstance(value, Tracer):  # a lower-level graph inside: record there too
                return self._call_nested(args, kwargs)
        try:
            value = self.fwd(*raw, **kwargs)
        except (ValueError, IndexError) as exc:
            raise _recording_error(self, graph, raw, exc) from exc
        node = graph.append(self, tuple(raw), kwargs or NO_KWARGS, tuple(parents), value)
        return Tracer(graph, node.index, value)

    def _call_nested(self, args, kwargs):
        """Record on the highest-level graph, then again on the lower ones inside."""
        graph = None
        for a in args:
            if isinstance(a, Tracer) and (graph is None or a._graph.level > graph.level):
                graph = a._graph
        raw = list(args)
        parents = []
        for i, a in enumerate(args):
            if isinstance(a, Tracer) and a._graph is graph:
                parents.append((i, a._node))
                raw[i] = a._value
        value = self(*raw, **kwargs)  # lower-level tracers inside: records there too
        node = graph.append(self, tuple(raw), kwargs or NO_KWARGS, tuple(parents), value)
        return Tracer(graph, node.index, value)

    def local_vjp(self, argnum: int, ans, args, kwargs) -> Callable:
        """The staged VJP of argument ``argnum`` at a recorded point, shaped like it."""
        if self.vjp is not None:
            inner = self.vjp(argnum, ans, *args, **kwargs)
        else:
            maker = self.vjps[argnum] if argnum < len(self.vjps) else None
            if maker is None:
                raise TypeError(
                    f"ardiff op '{self.name}' has no derivative with respect to argument "
                    f"{argnum}; pass that argument as a plain (untraced) value."
                )
            inner = maker(ans, *args, **kwargs)
        fit = argument_fit(args[argnum], ans)
        if fit is None:  # VJPs come out shaped like the answer: nothing to undo
            return inner
        shape, dtype = fit
        return lambda g: fit_to_argument(inner(g), shape, dtype)


def argument_fit(arg: Any, ans: Any) -> tuple | None:
    """``(shape, dtype)`` of ``arg`` when a VJP from ``ans`` must be fitted to it, else None."""
    while isinstance(arg, TracerBase):
        arg = arg._value
    while isinstance(ans, TracerBase):
        ans = ans._value
    if type(arg) is np.float64 and type(ans) is np.float64:  # scalar graphs
        return None
    try:  # the common case, checked without building tuples (this runs once per edge)
        if arg.shape == ans.shape and arg.dtype == ans.dtype:
            return None
    except AttributeError:
        pass
    fit = _shape_and_dtype(arg)
    return None if _shape_and_dtype(ans) == fit else fit


def fit_to_argument(out: Any, shape: tuple, dtype) -> Any:
    """A VJP's output brought to its argument's shape (undoing broadcasting) and dtype."""
    if shape_of(out) != shape:
        out = unbroadcast(out, shape)
    if isinstance(out, (np.ndarray, np.generic)) and out.dtype != dtype:
        out = out.astype(dtype)
    return out


def _recording_error(op: Op, graph: Graph, raw: list, exc: Exception) -> Exception:
    """``exc`` (same type) naming the op, the node it would have been, and the arguments."""
    described = ", ".join(str(np.shape(v)) if isinstance(v, (np.ndarray, np.generic)) else
                          type(v).__name__ for v in map(unwrap, raw))
    detail = str(exc).strip()
    message = (f"ardiff op '{op.name}' failed while recording node {len(graph.nodes)} from "
               f"arguments ({described}): {detail}{'' if detail.endswith('.') else '.'} Check "
               "the arguments of this call (shapes, axes, indices or values); nothing was "
               "recorded.")
    try:
        return type(exc)(message)
    except Exception:  # an exception type with another constructor: keep it as it is
        return exc


class Guard:
    """A concrete value read off traced values: ``fun(*args)`` gave ``result``.

    ``args`` keeps the traced arguments as ``(graph level, node index)`` slots so
    that a replay on new inputs (:func:`ardiff.compile`) can evaluate it again and
    re-trace when the answer changes.
    """

    __slots__ = ("fun", "args", "kwargs", "result")

    def __init__(self, fun, args, kwargs, result):
        self.fun, self.args, self.kwargs, self.result = fun, args, kwargs, result

    def holds(self, values: list) -> bool:
        """Whether ``fun`` still gives ``result`` with node values from ``values``."""
        args = _fill(self.args, values)
        now = self.fun(*args, **self.kwargs)
        return _same(now, self.result)


class _Slot:
    __slots__ = ("node",)

    def __init__(self, node):
        self.node = node


def _template(obj, graph):
    """``obj`` with this graph's tracers replaced by slots (lists/tuples walked)."""
    if isinstance(obj, Tracer) and obj._graph is graph:
        return _Slot(obj._node)
    if isinstance(obj, (list, tuple)):
        return type(obj)(_template(o, graph) for o in obj)
    return unwrap(obj)


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
    if isinstance(obj, Tracer):
        found.setdefault(id(obj._graph), obj._graph)
        _graphs_in(obj._value, found)
    elif isinstance(obj, (list, tuple)):
        for o in obj:
            _graphs_in(o, found)


def _plain_tree(obj):
    if isinstance(obj, (list, tuple)):
        return type(obj)(_plain_tree(o) for o in obj)
    return unwrap(obj)


def concrete(fun: Callable, *args, **kwargs):
    """Evaluate ``fun`` on the plain values of ``args`` and remember the answer as a
    guard in every graph whose traced values it read.

    This is how comparisons, truth tests and integer indices of traced values are
    made: tracing stays concrete, and a compiled replay can tell when the same
    Python code would now take another branch.
    """
    result = fun(*_plain_tree(args), **kwargs)
    graphs: dict = {}
    _graphs_in(args, graphs)
    for graph in graphs.values():
        graph.guards.append(Guard(fun, _template(args, graph), kwargs, result))
    return result


def as_differentiable(value: Any, where: str = "input") -> Any:
    """Check and normalise a value that is about to receive a gradient.

    Python and NumPy ints become float64; floats of any precision are kept;
    booleans, complex numbers and objects are refused with a clear message.
    """
    if isinstance(value, Tracer):
        dtype = np.result_type(unwrap(value))
        if not np.issubdtype(dtype, np.floating):
            raise TypeError(f"{where}: cannot differentiate a traced {dtype} value.")
        return value
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{where}: cannot differentiate with respect to a boolean; pass a float.")
    if isinstance(value, (int, np.integer)):
        return np.float64(value)
    if isinstance(value, float):
        return np.float64(value)
    if isinstance(value, (np.floating,)):
        return value
    if isinstance(value, (complex, np.complexfloating)):
        raise TypeError(f"{where}: complex numbers are not supported; differentiate the real "
                        "and imaginary parts as separate float arguments.")
    if isinstance(value, np.ndarray):
        kind = value.dtype.kind
        if kind == "f":
            return value
        if kind in "iu":
            return value.astype(np.float64)
        if kind == "b":
            raise TypeError(f"{where}: cannot differentiate with respect to a boolean array; "
                            "cast it with .astype(float) first.")
        if kind == "c":
            raise TypeError(f"{where}: complex arrays are not supported; differentiate the real "
                            "and imaginary parts as separate float arrays.")
        raise TypeError(f"{where}: cannot differentiate an array of dtype {value.dtype}; "
                        "convert it to a float array first.")
    raise TypeError(
        f"{where}: cannot differentiate with respect to a {type(value).__name__}; expected a "
        "float, an int, a NumPy float array, or a tuple/list/dict of those."
    )


_DETACH_HELP = (
    "Keep the computation traced: use ardiff.numpy (import ardiff.numpy as anp) instead of "
    "math or plain conversions, build arrays with anp.array / anp.stack instead of np.array, "
    "and instead of assigning into an array (a[i] = x) build the result with anp.stack, "
    "anp.concatenate or anp.where. Use x.value for the plain number when you really want "
    "no gradient."
)


class Tracer(TracerBase):
    """A value recorded in a :class:`~ardiff.Graph`; behaves like a NumPy array.

    Arithmetic, indexing, NumPy ufuncs and functions on a tracer record new nodes.
    Conversions that would leave the graph (``float()``, ``np.array``, assignment into
    a NumPy array) raise :class:`TracingError` instead of silently losing the gradient.
    """

    __slots__ = ("_graph", "_node", "_value", "__weakref__")
    __array_priority__ = 1000.0

    def __init__(self, graph: Graph, node: int, value: Any):
        self._graph = graph
        self._node = node
        self._value = value

    # -- inspection -----------------------------------------------------------
    @property
    def graph(self) -> Graph:
        """The graph this value is recorded in."""
        return self._graph

    @property
    def node(self):
        """The graph node that produced this value."""
        return self._graph.nodes[self._node]

    @property
    def value(self) -> Any:
        """The plain NumPy value (no gradient flows through it)."""
        return concrete(_identity, self)

    shape = property(lambda self: np.shape(unwrap(self._value)), doc="Shape of the value.")
    ndim = property(lambda self: np.ndim(unwrap(self._value)), doc="Number of dimensions.")
    size = property(lambda self: np.size(unwrap(self._value)), doc="Number of elements.")
    dtype = property(lambda self: np.result_type(unwrap(self._value)), doc="Data type.")

    def __repr__(self) -> str:
        return f"Tracer({unwrap(self._value)!r}, node={self._node})"

    def __format__(self, spec: str) -> str:
        # f"{loss:.3f}" only reads the number for display: nothing is detached
        return format(unwrap(self._value), spec) if spec else str(self)

    def __len__(self) -> int:
        shape = self.shape
        if not shape:
            raise TypeError("len() of a 0-d traced value")
        return shape[0]

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]

    def __bool__(self) -> bool:
        return concrete(bool, self)

    __hash__ = object.__hash__

    # -- ways to lose the gradient: refuse them loudly --------------------------
    def _detach_error(self, what: str):
        raise TracingError(f"{what} on a traced value would drop its gradient. {_DETACH_HELP}")

    def __float__(self):
        self._detach_error("float() (also called by math.* functions, by C extensions, and by "
                           "assigning it into an element of a NumPy array, a[i] = x)")

    def __int__(self):
        self._detach_error("int()")

    def __complex__(self):
        self._detach_error("complex()")

    def __index__(self):
        self._detach_error("Using it as an integer index (__index__)")

    def __array__(self, dtype=None, copy=None):
        self._detach_error(
            "Converting to a NumPy array (np.array/np.asarray, a method of a plain NumPy array "
            "such as a.dot(x), or assigning it into a NumPy array with a[i] = x)")

    def __setitem__(self, key, value):
        raise TracingError(
            "Traced values are immutable: x[idx] = v is not supported. Build the new value "
            "with anp.where(mask, v, x), anp.concatenate or anp.stack instead.")

    # -- NumPy protocols ---------------------------------------------------------
    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        if method != "__call__":
            raise TracingError(
                f"np.{ufunc.__name__}.{method} is not supported on traced values; use the "
                "matching ardiff.numpy function (e.g. anp.sum instead of np.add.reduce).")
        if kwargs.get("out") is not None:
            raise TracingError(
                f"np.{ufunc.__name__}(..., out=...) writes in place, which cannot be traced; "
                "use the returned value instead.")
        impl = UFUNC_IMPLS.get(ufunc)
        if impl is None:
            raise TracingError(
                f"NumPy ufunc np.{ufunc.__name__} is not in ardiff's op table, so its gradient "
                "is unknown. Express it with supported ops, or add it to the op table "
                "(see ardiff.ops).")
        extra = sorted(k for k in kwargs if k != "out")
        if extra:
            raise TracingError(
                f"np.{ufunc.__name__}: keyword arguments {extra} are not supported on traced "
                "values.")
        return impl(*inputs)

    def __array_function__(self, func, types, args, kwargs):
        impl = FUNCTION_IMPLS.get(func)
        if impl is None:
            name = getattr(func, "__name__", str(func))
            module = getattr(func, "__module__", "numpy") or "numpy"
            raise TracingError(
                f"NumPy function {module}.{name} is not supported on traced values (it is "
                "not in ardiff's op table, so its gradient is unknown). Use the functions in "
                "ardiff.numpy, express it with supported ops, or add it to the op table.")
        return impl(*args, **kwargs)
