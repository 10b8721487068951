"""The tape: recorded nodes in topological order, and what the tape knows of a traced value.

The bottom layer of ardiff.  A `Graph` is filled either programmatically
(`g.input(...)` then ordinary operations on the returned traced values) or by
`ardiff.trace`.  Nodes are appended as operations execute, so creation order *is*
a topological order; no sort is ever needed and every pass over the graph is a
plain loop.

A traced value is a `TracerBase`: its graph, its node index and its forward
value.  The array interface (operators, methods, NumPy dispatch) is added by
`ardiff.tracer.Tracer`, which sits above the NumPy namespace whose functions those
methods call; graphs box their values in that subclass (it registers itself by
subclassing, see `TracerBase.__init_subclass__`), so this module never imports
the layers above it.
"""

from __future__ import annotations

import itertools
import threading
import weakref
from typing import Any

import numpy as np

__all__ = ["Node", "NO_KWARGS", "TracingError", "TracerBase", "unwrap", "contains_tracer",
           "copy_of", "buffer_like", "next_level",
           "as_differentiable", "Graph", "Released", "ReleasedValueError"]

_level_lock = threading.Lock()
_level_counter = itertools.count(1)


def next_level() -> int:
    """A new nesting level, higher than every one given before (thread-safe).

    A graph (or a forward-mode trace, `ardiff.forward`) created while another is being
    traced gets a higher level; an op unwraps the highest level present first.
    """
    with _level_lock:
        return next(_level_counter)


class Node:
    """One recorded value.

    Attributes
    ----------
    index : int
        Position in the graph's topological order.
    op : Op or str
        The elementary op that produced the value, or `"input"` / `"constant"`.
    args : tuple
        The op's positional arguments as raw values (parents' values in traced slots).
    kwargs : dict
        The op's keyword arguments (never traced).
    parents : tuple of (int, int)
        `(argnum, parent index)` for every traced argument.
    value : array_like
        The forward value recorded when the op ran (in a lean recording, a
        `Released` stand-in when no local VJP reads it).
    name : str or None
        Optional label.
    unit : bool
        Marked as a relaxation unit (`ardiff.unit`; read by `units="layers"`).
    """

    __slots__ = ("index", "op", "args", "kwargs", "parents", "value", "name", "unit")

    def __init__(self, index, op, args, kwargs, parents, value, name=None):
        self.index = index
        self.op = op
        self.args = args
        self.kwargs = kwargs
        self.parents = parents
        self.value = value
        self.name = name
        self.unit = False

    @property
    def op_name(self) -> str:
        """The op's name as a string."""
        return self.op if isinstance(self.op, str) else self.op.name

    @property
    def is_leaf(self) -> bool:
        """True for inputs and constants."""
        return isinstance(self.op, str)

    def label(self) -> str:
        """A short human-readable description, used in error messages."""
        shape = np.shape(unwrap(self.value))
        named = f" '{self.name}'" if self.name else ""
        return f"node {self.index}{named} (op {self.op_name}, shape {shape})"

    def __repr__(self) -> str:
        return f"<Node {self.label()}>"


class ReleasedValueError(RuntimeError):
    """A local VJP read a forward value that a lean recording did not keep."""


class Released:
    """Stands in a lean recording for a forward value that no local VJP reads.

    A lean graph (`Graph.lean`, set by the transforms whose solve is one reverse
    sweep) keeps in its nodes only the forward values the local VJPs read, as the
    ops declare them (`defop(..., reads=...)`): the others are freed as soon as the
    traced program drops them, so a recording holds about what a hand-written
    backward pass keeps.  A `Released` keeps what the sweep still needs to know of
    the value, its shape and dtype (broadcasting is undone from them), and refuses
    to be used as an array: a VJP that reads it contradicts its op's declaration,
    which is a bug to report, not a number to compute with.

    Parameters
    ----------
    value : numpy.ndarray
        The value it replaces.
    node : int
        The node whose value it is.
    op_name : str
        That node's op.
    """

    __slots__ = ("shape", "dtype", "node", "op_name")

    def __init__(self, value: np.ndarray, node: int, op_name: str):
        self.shape, self.dtype = value.shape, value.dtype
        self.node, self.op_name = node, op_name

    @property
    def ndim(self) -> int:
        """Number of dimensions of the released value."""
        return len(self.shape)

    @property
    def size(self) -> int:
        """Number of elements of the released value."""
        return int(np.prod(self.shape, dtype=np.int64))

    def _refuse(self, *args, **kwargs):
        raise ReleasedValueError(
            f"The forward value of node {self.node} (op {self.op_name}, shape {self.shape}) "
            "was not kept by this lean recording, but a local VJP read it: an op's "
            "`reads=` declaration leaves out something its VJP uses. Fix the declaration "
            "(or leave `reads=` out, which keeps every value), and please report it if "
            "the op is one of ardiff's.")

    # every way of reading the numbers refuses (NumPy converts through __array__)
    __array__ = __getitem__ = __iter__ = __len__ = __float__ = __int__ = __complex__ = _refuse
    __bool__ = __neg__ = __pos__ = __abs__ = __invert__ = _refuse
    __lt__ = __le__ = __gt__ = __ge__ = _refuse
    __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = _refuse
    __truediv__ = __rtruediv__ = __floordiv__ = __rfloordiv__ = __mod__ = __rmod__ = _refuse
    __pow__ = __rpow__ = __matmul__ = __rmatmul__ = _refuse

    def __repr__(self) -> str:
        return f"<released value of node {self.node}: {self.dtype}{list(self.shape)}>"


class _NoKeywords(dict):
    """The keyword arguments of a node that has none: one shared, unmodifiable empty dict.

    Sharing it saves a dict per node (memory, and time to free large graphs); being
    a dict keeps `**kwargs` calls on the fast path, which a read-only mapping is not.
    """

    def _refuse(self, *args, **kwargs):
        raise TypeError("This node has no keyword arguments and its (shared) kwargs cannot "
                        "be modified; assign a new dict instead: node.kwargs = {...}.")

    __setitem__ = __delitem__ = update = setdefault = pop = popitem = clear = _refuse
    __ior__ = _refuse


NO_KWARGS: dict = _NoKeywords()


class TracingError(TypeError):
    """A traced value was used in a way that would silently lose its gradient."""


class TracerBase:
    """What the tape knows of a traced value: its graph, node index and forward value.

    Every module below the tracer recognises traced values with
    `isinstance(x, TracerBase)`.  The class users meet is its subclass
    `ardiff.tracer.Tracer`; the first subclass defined (that one: ardiff imports it
    before anything else can subclass) becomes the class graphs and ops box new
    values in, and later subclasses leave it alone.  The three fields are read
    directly by the core modules (op, guards, interchange), on the hot path of every
    recorded op: they are private to ardiff, not to this module.
    """

    __slots__ = ("_graph", "_node", "_value")

    def __init__(self, graph: Graph, node: int, value: Any):
        self._graph = graph
        self._node = node
        self._value = value

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if Graph.tracer_class is TracerBase:
            Graph.tracer_class = cls


def contains_tracer(obj: Any) -> bool:
    """Whether `obj` is a traced value or a (nested) list/tuple holding one."""
    stack = [obj]
    while stack:
        item = stack.pop()
        if isinstance(item, TracerBase):
            return True
        if isinstance(item, (list, tuple)):
            stack.extend(item)
    return False


def copy_of(x: Any) -> Any:
    """A traced value's copy: a new traced object for the same node and value.

    Where NumPy returns a copy (`x.copy()`, `np.array(x)`, `+x`) ardiff returns a new
    object holding a copy of the array rather than `x` itself, so that an in-place
    update of one (`x += 1`, which moves `x` to a new node) leaves the other as it was.
    Both stand for the same recorded node.  Plain values are returned unchanged.
    """
    if isinstance(x, TracerBase):
        inner = x._value
        # a copy of the array too, as NumPy makes: no memory shared with `x`
        inner = copy_of(inner) if isinstance(inner, TracerBase) else \
            inner.copy() if isinstance(inner, np.ndarray) else inner
        return type(x)(x._graph, x._node, inner)
    return x


def buffer_like(prototype: Any, value: Any) -> Any:
    """A new float or complex array `value` made traced like `prototype`, so that it can be
    written into.

    `np.zeros_like(x)` or `np.zeros(n, like=x)` of a traced `x` gives a constant of `x`'s
    graph: `out[i] = v` then records the writes (`Tracer.__setitem__`) and the gradient
    reaches `v`.  A plain `prototype`, or an integer or boolean `value`, gives `value`.
    """
    if isinstance(prototype, TracerBase) and np.result_type(value).kind in "fc":
        return prototype._graph.constant(value)
    return value


def unwrap(x: Any) -> Any:
    """Strip every level of tracing from `x` (the plain NumPy value inside)."""
    while isinstance(x, TracerBase):
        x = x._value
    return x


def as_differentiable(value: Any, where: str = "input") -> Any:
    """Check and normalise a value that is about to receive a gradient.

    Python and NumPy ints become float64; floats and complex numbers of any
    precision are kept (a Python complex becomes complex128; see docs/complex.md
    for the gradient convention); booleans and objects are refused with a clear
    message naming `where`.
    """
    if isinstance(value, TracerBase):
        dtype = np.result_type(unwrap(value))
        if not np.issubdtype(dtype, np.inexact):
            raise TypeError(f"{where}: cannot differentiate a traced {dtype} value.")
        return value
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{where}: cannot differentiate with respect to a boolean; pass a float.")
    if isinstance(value, (int, np.integer, float)):
        return np.float64(value)
    if isinstance(value, (np.floating, np.complexfloating)):
        return value
    if isinstance(value, complex):
        return np.complex128(value)
    if isinstance(value, np.ndarray):
        kind = value.dtype.kind
        if kind in "fc":
            return value
        if kind in "iu":
            return value.astype(np.float64)
        if kind == "b":
            raise TypeError(f"{where}: cannot differentiate with respect to a boolean array; "
                            "cast it with .astype(float) first.")
        raise TypeError(f"{where}: cannot differentiate an array of dtype {value.dtype}; "
                        "convert it to a float array first.")
    raise TypeError(
        f"{where}: cannot differentiate with respect to a {type(value).__name__}; expected a "
        "float, a complex, an int, a NumPy float or complex array, or a tuple/list/dict of those."
    )


class Graph:
    """A recorded computation graph.

    Examples
    --------
    >>> import numpy as np, ardiff, ardiff.numpy as anp
    >>> g = ardiff.Graph()
    >>> x = g.input(np.array([0.5, -1.0]), name="x")
    >>> loss = anp.sum(x ** 2)
    >>> ardiff.relax(g, loss, wrt=[x]).grads[0]
    array([ 1., -2.])
    """

    #: The class traced values are boxed in (`ardiff.tracer.Tracer`, set when it is defined).
    tracer_class: type = TracerBase
    #: Keep only the forward values local VJPs read (see `Released`); set by the
    #: transforms that solve in one reverse sweep, before anything is recorded.
    lean: bool = False

    def __init__(self) -> None:
        self.nodes: list[Node] = []
        # Nesting level for higher-order tracing: a graph created while another is
        # being traced gets a higher level and is unwrapped first.
        self.level = next_level()
        # Inputs and output are kept as nodes, not tracers: a tracer refers to its graph,
        # and that cycle would keep every forward value alive until the cyclic garbage
        # collector runs, long after the gradient has been returned.
        self._inputs: list[Node] = []
        self._output: Any = None
        # Concrete facts read off traced values while tracing (comparisons, truth
        # tests, integer indices): ardiff.compile re-checks them before a replay.
        self.guards: list = []
        # Columns kept beside the nodes for the passes over whole graphs (pruning):
        # reading them does not touch every Node object, which is slow on large graphs.
        #: `node.parents` of every node, by index (read by the solvers' pruning pass).
        self.parent_columns: list = []
        #: Indices of the nodes without parents (leaves), ascending.
        self.roots: list[int] = []
        # The traced values whose arrays share memory with another's (see `record_view`),
        # by id, weakly: each leaves when the program drops it.  (Not a WeakSet: that
        # compares its members with ==, which is elementwise on traced arrays.)
        self._sharing: dict[int, weakref.ref] = {}

    def __len__(self) -> int:
        return len(self.nodes)

    @property
    def inputs(self) -> list:
        """The differentiable leaves (added with `input`) as traced values, in order."""
        return [self.tracer_class(self, n.index, n.value) for n in self._inputs]

    @property
    def output(self) -> Any:
        """The traced output (set by `ardiff.trace`), or `None`."""
        out = self._output
        return self.tracer_class(self, out.index, out.value) if isinstance(out, Node) else out

    @output.setter
    def output(self, value: Any) -> None:
        own = isinstance(value, TracerBase) and value._graph is self
        self._output = self.nodes[value._node] if own else value

    def __repr__(self) -> str:
        return f"<ardiff.Graph with {len(self.nodes)} nodes>"

    # -- building -------------------------------------------------------------
    def append(self, op, args, kwargs, parents, value, name=None) -> Node:
        """Record one node at the end of the tape (the next topological position).

        Called by `Op` when it runs on traced values and by the
        graph importers; `parents` lists `(argnum, parent index)` pairs.
        """
        node = Node(len(self.nodes), op, args, kwargs, parents, value, name)
        self.nodes.append(node)
        self.parent_columns.append(parents)
        if not parents:
            self.roots.append(node.index)
        return node

    def record_view(self, base: TracerBase, view: TracerBase) -> None:
        """Remember that `view`'s array is a NumPy view of `base`'s.

        Both are kept weakly, each until the program drops it.  Read by in-place
        updates (`x += v`), which follow NumPy only where no other live traced array
        shares the updated one's memory (`live_views`).
        """
        sharing = self._sharing
        for traced in (base, view):
            key = id(traced)
            if key not in sharing:
                sharing[key] = weakref.ref(traced, lambda _, key=key: sharing.pop(key, None))

    def live_views(self) -> list:
        """The live traced values noted by `record_view` (views and their bases)."""
        return [t for t in (ref() for ref in list(self._sharing.values())) if t is not None]

    def input(self, value: Any, name: str | None = None):
        """Add a differentiable leaf and return it as a traced value.

        Parameters
        ----------
        value : array_like
            A float array or scalar (ints are cast to float64).
        name : str, optional
            Label shown in exports and error messages.
        """
        value = as_differentiable(value, where=f"Graph.input({name or ''})")
        node = self.append("input", (), NO_KWARGS, (), value, name)
        self._inputs.append(node)
        return self.tracer_class(self, node.index, value)

    def constant(self, value: Any, name: str | None = None):
        """Add a non-differentiable leaf (recorded, but never given a gradient)."""
        value = np.asarray(value) if not np.isscalar(value) else value
        node = self.append("constant", (), NO_KWARGS, (), value, name)
        return self.tracer_class(self, node.index, value)

    def replace_values(self, values: list) -> None:
        """Overwrite every node's recorded value (and its parents' slots in its arguments).

        `values` is indexed by node, as a compiled replay produces it
        (`ardiff.compiled.CompiledGrad`); the structure is unchanged.  Traced
        values handed out before keep their old values.
        """
        if len(values) != len(self.nodes):
            raise ValueError(f"replace_values needs one value per node ({len(self.nodes)}), "
                             f"got {len(values)}.")
        for node, value in zip(self.nodes, values):
            node.value = value
            if node.parents:
                args = list(node.args)
                for argnum, parent in node.parents:
                    args[argnum] = values[parent]
                node.args = tuple(args)

    # -- queries --------------------------------------------------------------
    def node_of(self, ref: Any) -> Node:
        """Resolve a traced value, node, index or name to a node of this graph."""
        if isinstance(ref, TracerBase):
            if ref._graph is not self:
                raise ValueError(
                    "The traced value belongs to a different graph; pass values created "
                    "from this graph (g.input(...) or operations on them)."
                )
            return self.nodes[ref._node]
        if isinstance(ref, Node):
            if ref.index >= len(self.nodes) or self.nodes[ref.index] is not ref:
                raise ValueError(f"{ref!r} is not a node of this graph.")
            return ref
        if isinstance(ref, (int, np.integer)) and not isinstance(ref, bool):
            if not -len(self.nodes) <= ref < len(self.nodes):
                raise IndexError(f"Node index {ref} out of range for a graph of "
                                 f"{len(self.nodes)} nodes.")
            return self.nodes[ref]
        if isinstance(ref, str):
            matches = [n for n in self.nodes if n.name == ref]
            if len(matches) != 1:
                found = "no node" if not matches else f"{len(matches)} nodes"
                raise KeyError(f"Graph has {found} named {ref!r}.")
            return matches[0]
        raise TypeError(
            f"Cannot refer to a graph node with {type(ref).__name__}; use a traced value, "
            "a Node, an index or a name."
        )

    def children(self) -> list[list[tuple[int, int]]]:
        """For every node, the list of `(child index, argnum)` using it."""
        kids: list[list[tuple[int, int]]] = [[] for _ in self.nodes]
        for node in self.nodes:
            for argnum, parent in node.parents:
                kids[parent].append((node.index, argnum))
        return kids
