"""Graph interchange: networkx and JSON import/export, with validation.

A graph is exchanged as a directed graph whose nodes carry

* `op`: a name in the op table (`ardiff.ops.OPS`), or `"input"` /
  `"constant"` for leaves, which also carry `value`;
* optionally `name`, `shape` and `dtype` (checked against what the op
  computes), `args` (a dict `position -> value` for positional arguments that
  are not graph nodes: indices, shapes, axes, masks) and `kwargs`;

and whose edges `parent -> child` carry `argnum`, the position of the parent
among the child's arguments (a list when the child uses the same parent twice,
as in `x * x`).

Import (`from_networkx`, `from_json`) re-runs every op's NumPy forward
in topological order, so the imported graph is an ordinary recorded
`Graph` with forward values.  A graph that cannot be a computation
graph raises `GraphValidationError` naming what is wrong: a cycle (listed),
an unknown op (with close names), wrong arity, missing or duplicate argnums, or
shapes that do not fit (naming the node and the shapes).

Because a `Graph` stores nodes in creation order, it cannot hold a
cycle at all: a cyclic networkx graph is refused at import, and
`ardiff.check_convexity` accepts the networkx graph itself to report the
cycle.  JSON is plain data (never pickle): arrays are stored as flat lists with
dtype and shape, non-finite floats as the strings `"nan"`, `"inf"`, `"-inf"`.

A graph file is data from outside, perhaps untrusted.  Everything in it that sizes an
allocation is bounded before anything is allocated: argument positions (`MAX_ARGUMENTS`),
array dtypes (bool, integer, float or complex of at most 16 bytes), nesting depth
(`MAX_DEPTH`), and the bytes of every array -- stored, declared (`shape` x `dtype`) or
computed -- against `max_bytes` (default `MAX_BYTES`, 2**30 bytes; pass a larger
`max_bytes=` to `from_json`/`from_networkx` for bigger graphs).  Duplicate node ids,
bare `NaN`/`Infinity` tokens and every malformed field raise `GraphValidationError`
naming the node and the field.
"""

from __future__ import annotations

import difflib
import inspect
import json
from typing import Any

import numpy as np

from .graph import Graph, TracerBase, unwrap
from .op import OPS

__all__ = ["FORMAT", "VERSION", "LEAF_OPS", "GraphValidationError", "to_networkx", "to_json",
           "encode", "decode", "find_cycle", "describe_cycle", "from_networkx",
           "json_to_networkx", "from_json"]

FORMAT = "ardiff.graph"
VERSION = 1
LEAF_OPS = ("input", "constant")
#: The largest argument position (argnum or `args` key) a graph file may use, plus one.
MAX_ARGUMENTS = 1024
#: How deeply encoded values (lists, tuples, dicts) may nest in a graph file.
MAX_DEPTH = 64
#: Default bound on the bytes of any one array a graph file stores, declares or computes;
#: `from_json(text, max_bytes=...)` / `from_networkx(G, max_bytes=...)` raises it.
MAX_BYTES = 2 ** 30
_NONFINITE = {"nan": np.nan, "inf": np.inf, "-inf": -np.inf, "infinity": np.inf,
              "-infinity": -np.inf}


class GraphValidationError(ValueError):
    """A networkx or JSON graph is not a valid computation graph.

    Attributes
    ----------
    node : hashable or None
        The offending node, when there is one.
    cycle : list or None
        The nodes of a cycle, first node repeated at the end, when that is the problem.
    """

    def __init__(self, message: str, node: Any = None, cycle: list | None = None):
        super().__init__(message)
        self.node = node
        self.cycle = cycle


# -- export -----------------------------------------------------------------------------
def to_networkx(graph: Graph):
    """Export `graph` to a `networkx.DiGraph` that `from_networkx` reads back.

    Nodes are the graph's indices.  Node attributes: `op`, `name`, `shape`,
    `dtype`; leaves add `value`; op nodes add `args` (non-node positional
    arguments by position) and `kwargs` when they have any.  Edge attribute
    `argnum` (a list when a parent fills several argument positions).  The graph
    attribute `output` holds the output node's index when the graph has one.
    """
    import networkx as nx

    G = nx.DiGraph()
    for node in graph.nodes:
        value = unwrap(node.value)
        attrs = dict(op=node.op_name, name=node.name, shape=tuple(np.shape(value)),
                     dtype=str(np.result_type(value)))
        if node.is_leaf:
            attrs["value"] = value
        else:
            traced = {argnum for argnum, _ in node.parents}
            args = {k: unwrap(a) for k, a in enumerate(node.args) if k not in traced}
            if args:
                attrs["args"] = args
            if node.kwargs:
                attrs["kwargs"] = dict(node.kwargs)
        G.add_node(node.index, **attrs)
    for node in graph.nodes:
        for argnum, parent in node.parents:
            if G.has_edge(parent, node.index):
                old = G.edges[parent, node.index]["argnum"]
                G.edges[parent, node.index]["argnum"] = (
                    (old if isinstance(old, list) else [old]) + [argnum])
            else:
                G.add_edge(parent, node.index, argnum=argnum)
    output = _output_index(graph)
    if output is not None:
        G.graph["output"] = output
    return G


def _output_index(graph: Graph) -> int | None:
    out = graph.output
    if isinstance(out, TracerBase) and getattr(out, "_graph", None) is graph:
        return out._node
    return None


def to_json(graph: Graph, indent: int | None = None) -> str:
    """Serialise `graph` (structure, leaf values, op arguments) to a JSON string."""
    nodes = []
    for node in graph.nodes:
        where = node.label()
        value = unwrap(node.value)
        entry: dict[str, Any] = {"id": node.index, "op": node.op_name, "name": node.name,
                                 "shape": list(np.shape(value)),
                                 "dtype": str(np.result_type(value))}
        if node.is_leaf:
            entry["value"] = encode(value, where)
        else:
            traced = {argnum for argnum, _ in node.parents}
            args = {str(k): encode(a, where) for k, a in enumerate(node.args)
                    if k not in traced}
            if args:
                entry["args"] = args
            if node.kwargs:
                entry["kwargs"] = {k: encode(v, where) for k, v in node.kwargs.items()}
        nodes.append(entry)
    edges = [{"source": parent, "target": node.index, "argnum": argnum}
             for node in graph.nodes for argnum, parent in node.parents]
    doc = {"format": FORMAT, "version": VERSION, "nodes": nodes, "edges": edges,
           "output": _output_index(graph)}
    return json.dumps(doc, indent=indent, allow_nan=False)


def encode(value: Any, where: str = "value") -> Any:
    """Turn an op argument or leaf value into plain JSON data (see `decode`)."""
    if isinstance(value, TracerBase):
        raise TypeError(f"{where}: holds a value traced by an outer graph (the graph was "
                        "recorded during higher-order differentiation); export the outer "
                        "computation instead.")
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if np.isfinite(value) else {"__float__": str(value)}
    if isinstance(value, (np.ndarray, np.generic)):
        array = np.asarray(value)
        if array.dtype.kind not in "biuf" or array.dtype.itemsize > 8:
            raise TypeError(f"{where}: arrays of dtype {array.dtype} cannot be stored in JSON "
                            "exactly; use bool, integer or float (up to 64-bit) arrays.")
        data = array.ravel().tolist()
        if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
            data = [v if np.isfinite(v) else str(v) for v in data]
        key = "__scalar__" if isinstance(value, np.generic) else "__ndarray__"
        return {key: data, "dtype": array.dtype.str, "shape": list(array.shape)}
    if isinstance(value, tuple):
        return {"__tuple__": [encode(v, where) for v in value]}
    if isinstance(value, list):
        return [encode(v, where) for v in value]
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise TypeError(f"{where}: only dicts with string keys can be stored in JSON.")
        return {"__dict__": {k: encode(v, where) for k, v in value.items()}}
    if isinstance(value, slice):
        return {"__slice__": [encode(value.start, where), encode(value.stop, where),
                              encode(value.step, where)]}
    if value is Ellipsis:
        return {"__ellipsis__": True}
    if isinstance(value, np.dtype) or (isinstance(value, type) and issubclass(value, np.generic)):
        return {"__dtype__": np.dtype(value).str}
    raise TypeError(f"{where}: cannot store a {type(value).__name__} in JSON; op arguments "
                    "must be numbers, strings, None, tuples, lists, slices, Ellipsis, dtypes "
                    "or NumPy arrays.")


def _bad(where: str, message: str) -> GraphValidationError:
    return GraphValidationError(f"{where}: {message}")


def _safe_dtype(spec: Any, where: str, kinds: str = "biufc") -> np.dtype:
    """`np.dtype(spec)` for a spec from a file: a plain numeric dtype of at most 16 bytes."""
    if not isinstance(spec, str):
        raise _bad(where, f"dtype must be a string such as '<f8', got {spec!r}.")
    try:
        dtype = np.dtype(spec)
    except (TypeError, ValueError, SyntaxError) as exc:
        raise _bad(where, f"{spec!r} is not a NumPy dtype ({exc}); use e.g. '<f8', '<i8', "
                          "'|b1'.") from None
    if dtype.kind not in kinds or dtype.itemsize > 16 or dtype.fields is not None:
        raise _bad(where, f"dtype {spec!r} is not allowed; graph files hold bool, integer, "
                          "float or complex dtypes of at most 16 bytes.")
    return dtype


def _shape_of(spec: Any, where: str) -> tuple[int, ...]:
    if (not isinstance(spec, (list, tuple)) or len(spec) > 64
            or not all(isinstance(n, (int, np.integer)) and not isinstance(n, bool) and n >= 0
                       for n in spec)):
        raise _bad(where, f"shape must be a list of at most 64 non-negative integers, got "
                          f"{spec!r}.")
    return tuple(int(n) for n in spec)


def _check_bytes(n_bytes: int, where: str, max_bytes: int, what: str) -> None:
    if n_bytes > max_bytes:
        raise _bad(where, f"{what} would take {n_bytes:,} bytes, more than the limit of "
                          f"{max_bytes:,}; if the graph is trusted and that much memory is "
                          "available, pass a larger max_bytes= to from_json/from_networkx.")


def _array(data: dict, where: str, max_bytes: int):
    key = "__scalar__" if "__scalar__" in data else "__ndarray__"
    dtype = _safe_dtype(data.get("dtype"), f"{where}: 'dtype'")
    flat = data[key]
    if not isinstance(flat, list):
        raise _bad(where, f"'{key}' must be a flat list of numbers, got "
                          f"{type(flat).__name__}.")
    shape = _shape_of(data.get("shape", [] if key == "__scalar__" else [len(flat)]),
                      f"{where}: 'shape'")
    if key == "__scalar__" and shape != ():
        raise _bad(where, f"a '__scalar__' has shape [], got {list(shape)}.")
    size = 1
    for n in shape:
        size *= n
    _check_bytes(size * dtype.itemsize, where, max_bytes, f"an array of shape {shape}")
    if size != len(flat):
        raise _bad(where, f"shape {list(shape)} needs {size} element(s) but the list holds "
                          f"{len(flat)}.")
    values = []
    for k, v in enumerate(flat):
        if isinstance(v, str):
            if v.lower() not in _NONFINITE or dtype.kind not in "fc":
                raise _bad(where, f"element {k} is the string {v!r}; array elements are "
                                  "numbers, and the only strings allowed (in float arrays) "
                                  "are 'nan', 'inf' and '-inf'.")
            v = _NONFINITE[v.lower()]
        elif not isinstance(v, (int, float)):
            raise _bad(where, f"element {k} is {v!r}; array elements must be numbers "
                              "(the list is flat: its shape is given by 'shape').")
        values.append(v)
    try:
        array = np.array(values, dtype=dtype).reshape(shape)
    except (OverflowError, ValueError, TypeError) as exc:
        raise _bad(where, f"the elements do not fit dtype {dtype.str}: {exc}") from None
    return array[()] if key == "__scalar__" else array


def _float(spec: Any, where: str) -> float:
    if isinstance(spec, (int, float)) and not isinstance(spec, bool):
        return float(spec)
    if isinstance(spec, str) and spec.lower() in _NONFINITE:
        return float(_NONFINITE[spec.lower()])
    raise _bad(where, f"'__float__' holds {spec!r}; it must be 'nan', 'inf' or '-inf' (or a "
                      "number).")


def decode(data: Any, where: str = "value", max_bytes: int | None = None,
           _depth: int = 0) -> Any:
    """Inverse of `encode`.

    `where` names the field in error messages; every malformed value raises
    `GraphValidationError`, and arrays larger than `max_bytes` (default `MAX_BYTES`) are
    refused before they are allocated.
    """
    max_bytes = MAX_BYTES if max_bytes is None else max_bytes
    if _depth > MAX_DEPTH:
        raise _bad(where, f"values nest more than {MAX_DEPTH} levels deep; graph files "
                          "hold shallow values (arrays are flat lists with a 'shape').")

    def sub(v: Any) -> Any:
        return decode(v, where, max_bytes, _depth + 1)

    if isinstance(data, list):
        return [sub(v) for v in data]
    if isinstance(data, float) and not np.isfinite(data):
        raise _bad(where, f"holds the bare number {data}; write non-finite floats as "
                          "{\"__float__\": \"nan\"} (or \"inf\", \"-inf\").")
    if not isinstance(data, dict):
        return data
    if "__ndarray__" in data or "__scalar__" in data:
        return _array(data, where, max_bytes)
    if "__float__" in data:
        return _float(data["__float__"], where)
    if "__tuple__" in data:
        items = data["__tuple__"]
        if not isinstance(items, list):
            raise _bad(where, f"'__tuple__' must hold a list, got {items!r}.")
        return tuple(sub(v) for v in items)
    if "__dict__" in data:
        items = data["__dict__"]
        if not isinstance(items, dict):
            raise _bad(where, f"'__dict__' must hold an object, got {items!r}.")
        return {k: sub(v) for k, v in items.items()}
    if "__slice__" in data:
        parts = data["__slice__"]
        if (not isinstance(parts, list) or not 1 <= len(parts) <= 3
                or not all(p is None or (isinstance(p, int) and not isinstance(p, bool))
                           for p in parts)):
            raise _bad(where, f"'__slice__' holds {parts!r}; it must be a list of 1 to 3 "
                              "integers or nulls: [start, stop, step].")
        return slice(*parts)
    if "__ellipsis__" in data:
        return Ellipsis
    if "__dtype__" in data:
        return _safe_dtype(data["__dtype__"], f"{where}: '__dtype__'", kinds="biufc")
    shown = repr(data)
    raise _bad(where, f"unrecognised encoded value {shown[:200]}; encoded values are "
                      "objects with one of the keys __ndarray__, __scalar__, __float__, "
                      "__tuple__, __dict__, __slice__, __ellipsis__, __dtype__.")


# -- import ------------------------------------------------------------------------------
def find_cycle(G) -> list | None:
    """One directed cycle of `G` as a node list (first node repeated), or None."""
    import networkx as nx

    try:
        edges = nx.find_cycle(G, orientation="original")
    except nx.NetworkXNoCycle:
        return None
    return [u for u, _, *_ in edges] + [edges[0][0]]


def describe_cycle(cycle: list) -> str:
    """`'a' -> 'b' -> 'a'` for error messages and reports."""
    return " -> ".join(repr(n) for n in cycle)


def _argnums_of(G, u, v, data: dict) -> list[int]:
    if "argnum" not in data:
        raise GraphValidationError(
            f"Edge {u!r} -> {v!r} has no 'argnum' attribute; set it to the position of "
            f"{u!r} among the arguments of {v!r}.", node=v)
    raw = data["argnum"]
    nums = list(raw) if isinstance(raw, (list, tuple)) else [raw]
    if len(nums) > MAX_ARGUMENTS:
        raise GraphValidationError(
            f"Edge {u!r} -> {v!r} lists {len(nums)} argnums; a node takes at most "
            f"{MAX_ARGUMENTS} arguments.", node=v)
    for k in nums:
        if (isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 0
                or k >= MAX_ARGUMENTS):
            raise GraphValidationError(
                f"Edge {u!r} -> {v!r} has argnum {raw!r}; it must be a non-negative integer "
                f"below {MAX_ARGUMENTS} (or a list of them).", node=v)
    return [int(k) for k in nums]


def _close_names(name: str) -> str:
    close = difflib.get_close_matches(str(name), list(OPS) + list(LEAF_OPS), n=5, cutoff=0.6)
    return (f" Did you mean {', '.join(repr(c) for c in close)}?" if close else
            " See ardiff.op.OPS (docs/ops.md) for the available ops.")


def _check_arity(op, nid, n_args: int, kwargs: dict) -> None:
    """Refuse a call the op's forward cannot accept, naming the node."""
    fwd = op.fwd
    nin = getattr(fwd, "nin", None)
    if isinstance(fwd, np.ufunc) and nin is not None:
        if n_args != nin:
            raise GraphValidationError(
                f"Node {nid!r}: op '{op.name}' takes {nin} argument(s) but the node has "
                f"{n_args}.", node=nid)
        return
    try:
        signature = inspect.signature(fwd)
    except (TypeError, ValueError):  # a builtin without a signature: running it will tell
        return
    try:
        signature.bind(*range(n_args), **kwargs)
    except TypeError as exc:
        raise GraphValidationError(
            f"Node {nid!r}: wrong arity for op '{op.name}' with {n_args} positional "
            f"argument(s) and keywords {sorted(kwargs)}: {exc}.", node=nid) from None


def _topological_order(G) -> list:
    import networkx as nx

    cycle = find_cycle(G)
    if cycle is not None:
        raise GraphValidationError(
            f"The graph has a cycle: {describe_cycle(cycle)}. A computation graph must be "
            "acyclic; unroll a recurrence over its time steps so that every step is a new "
            "node.", node=cycle[0], cycle=cycle)
    position = {n: k for k, n in enumerate(G.nodes)}
    # lexicographic by insertion position: a graph exported by to_networkx keeps its indices
    return list(nx.lexicographical_topological_sort(G, key=lambda n: position[n]))


def _leaf(graph: Graph, nid, attrs: dict, G):
    op = attrs["op"]
    if G.in_degree(nid):
        parents = [u for u, _ in G.in_edges(nid)]
        raise GraphValidationError(f"Node {nid!r} is an {op} but has incoming edges from "
                                   f"{parents}; leaves take no arguments.", node=nid)
    if "value" not in attrs:
        raise GraphValidationError(f"Node {nid!r} (op {op!r}) needs a 'value' attribute.",
                                   node=nid)
    name = _node_name(nid, attrs)
    value = attrs["value"]
    try:
        return graph.input(value, name=name) if op == "input" else graph.constant(value, name)
    except (TypeError, ValueError) as exc:
        raise GraphValidationError(f"Node {nid!r}: {exc}", node=nid) from None


def _node_name(nid, attrs: dict) -> str | None:
    name = attrs.get("name")
    if name is not None and not isinstance(name, str):
        raise GraphValidationError(f"Node {nid!r}: 'name' must be a string or null, got "
                                   f"{name!r:.200}.", node=nid)
    if name is None and isinstance(nid, str):
        return nid  # string ids double as names, so g.node_of("h1") works
    return name


def _operation(graph: Graph, nid, attrs: dict, G, made: dict, max_bytes: int) -> None:
    name = attrs["op"]
    op = OPS.get(name)
    if op is None:
        raise GraphValidationError(f"Node {nid!r} has unknown op {name!r}." + _close_names(name),
                                   node=nid)
    kwargs, args_in = attrs.get("kwargs") or {}, attrs.get("args") or {}
    if not isinstance(kwargs, dict) or not all(isinstance(k, str) for k in kwargs):
        raise GraphValidationError(f"Node {nid!r}: 'kwargs' must be a dict with string keys, "
                                   f"got {kwargs!r:.200}.", node=nid)
    if not isinstance(args_in, dict):
        raise GraphValidationError(f"Node {nid!r}: 'args' must be a dict from argument "
                                   f"position to value, got {args_in!r:.200}.", node=nid)
    kwargs = dict(kwargs)
    slots: dict[int, Any] = {}
    for pos, value in args_in.items():
        slots[_position(pos, f"Node {nid!r}: 'args'")] = ("const", value)
        _check_shape_like(value, nid, f"'args'[{pos!r}]", max_bytes)
    for key, value in kwargs.items():
        _check_shape_like(value, nid, f"'kwargs'[{key!r}]", max_bytes)
    for u, _, data in G.in_edges(nid, data=True):
        for k in _argnums_of(G, u, nid, data):
            if k in slots:
                other = (f"the edge from {slots[k][1]!r}" if slots[k][0] == "node"
                         else "a constant in 'args'")
                raise GraphValidationError(
                    f"Node {nid!r}: duplicate argnum {k}: filled by the edge from {u!r} and "
                    f"by {other}.", node=nid)
            slots[k] = ("node", u)
    n_args = max(slots, default=-1) + 1
    missing = [k for k in range(n_args) if k not in slots]
    if missing:
        raise GraphValidationError(
            f"Node {nid!r} (op '{name}'): missing argnum(s) {missing}; every position up to "
            f"{n_args - 1} needs an incoming edge or an entry in 'args'.", node=nid)
    if not any(kind == "node" for kind, _ in slots.values()):
        raise GraphValidationError(f"Node {nid!r} (op '{name}') has no incoming edges; use op "
                                   "'constant' with a value for a fixed array.", node=nid)
    _check_arity(op, nid, n_args, kwargs)
    args, parents = [], []
    for k in range(n_args):
        kind, value = slots[k]
        if kind == "node":
            parent = made[value]
            args.append(unwrap(parent._value))
            parents.append((k, parent._node))
        else:
            args.append(value)
    _check_declared_size(nid, attrs, max_bytes)
    try:
        with np.errstate(all="ignore"):
            value = op.fwd(*args, **kwargs)
    except MemoryError:
        raise GraphValidationError(
            f"Node {nid!r} (op '{name}'): out of memory computing it; the graph needs more "
            "memory than this machine has.", node=nid) from None
    except Exception as exc:
        shapes = ", ".join(f"arg {k}: {_shape_text(a)}" for k, a in enumerate(args))
        raise GraphValidationError(
            f"Node {nid!r} (op '{name}') cannot be computed from its arguments ({shapes}): "
            f"{exc}", node=nid) from None
    _check_bytes(int(getattr(value, "nbytes", 0)), f"Node {nid!r} (op '{name}')", max_bytes,
                 f"its value (shape {np.shape(value)})")
    node = graph.append(op, tuple(args), kwargs, tuple(parents), value, _node_name(nid, attrs))
    made[nid] = graph.tracer_class(graph, node.index, value)


def _shape_text(value: Any) -> str:
    try:
        return str(np.shape(value))
    except Exception:  # a ragged list, say: describe it instead of failing on it
        return f"a {type(value).__name__}"


def _check_shape_like(value: Any, nid, field: str, max_bytes: int) -> None:
    """Refuse a shape-like argument (a tuple of integers) whose size is beyond `max_bytes`."""
    if (isinstance(value, (tuple, list)) and value
            and all(isinstance(n, (int, np.integer)) and not isinstance(n, bool) for n in value)):
        size = 1
        for n in value:
            size *= max(int(n), 1)
        _check_bytes(size, f"Node {nid!r}: {field}", max_bytes,
                     f"an array of shape {tuple(value)} (at one byte per element)")


def _declared(nid, attrs: dict) -> tuple[tuple | None, np.dtype | None]:
    where = f"Node {nid!r}"
    shape = attrs.get("shape")
    dtype = attrs.get("dtype")
    shape = None if shape is None else _shape_of(shape, f"{where}: 'shape'")
    if dtype is not None:
        dtype = _safe_dtype(str(dtype) if isinstance(dtype, np.dtype) else dtype,
                            f"{where}: 'dtype'")
    return shape, dtype


def _check_declared_size(nid, attrs: dict, max_bytes: int) -> None:
    try:
        shape, dtype = _declared(nid, attrs)
    except GraphValidationError as exc:
        exc.node = nid
        raise
    if shape is not None:
        size = 1
        for n in shape:
            size *= n
        _check_bytes(size * (dtype.itemsize if dtype is not None else 1), f"Node {nid!r}",
                     max_bytes, f"its declared shape {shape}")


def _check_declared(nid, attrs: dict, value) -> None:
    try:
        shape, dtype = _declared(nid, attrs)
    except GraphValidationError as exc:
        exc.node = nid
        raise
    if shape is not None and shape != np.shape(value):
        raise GraphValidationError(
            f"Node {nid!r} (op {attrs['op']!r}) declares shape {shape} but "
            f"its arguments give shape {np.shape(value)}.", node=nid)
    if dtype is not None and dtype != np.result_type(value):
        raise GraphValidationError(
            f"Node {nid!r} (op {attrs['op']!r}) declares dtype {attrs['dtype']} but computes "
            f"{np.result_type(value)}.", node=nid)


def from_networkx(G, output: Any = None, max_bytes: int | None = None) -> Graph:
    """Build a `Graph` from a networkx directed graph (format: `ardiff.interchange`).

    Parameters
    ----------
    G : networkx.DiGraph or networkx.MultiDiGraph
        Nodes with `op` (and `value` for leaves), edges with `argnum`.
    output : hashable, optional
        The output node's id in `G`; default `G.graph["output"]`, else the only
        node without children.
    max_bytes : int, optional
        Bound on the bytes of any array a node declares or computes (default None:
        `ardiff.interchange.MAX_BYTES`, 2**30); checked before the node is computed
        where the size is known beforehand.

    Returns
    -------
    Graph
        With forward values recomputed, `inputs` the `"input"` nodes in
        topological order and `output` set.  Nodes with string ids and no
        `name` are named by their id.

    Raises
    ------
    GraphValidationError
        A cycle (listed in `.cycle`), an unknown op, wrong arity, missing or
        duplicate argnums, or shapes that do not fit.
    """
    import networkx as nx

    max_bytes = MAX_BYTES if max_bytes is None else max_bytes
    if not isinstance(G, nx.DiGraph):
        raise TypeError(f"from_networkx expects a networkx.DiGraph, got {type(G).__name__}.")
    order = _topological_order(G)
    graph = Graph()
    made: dict = {}
    for nid in order:
        attrs = G.nodes[nid]
        if "op" not in attrs:
            raise GraphValidationError(
                f"Node {nid!r} has no 'op' attribute; give it an op name from ardiff.ops.OPS, "
                "or 'input'/'constant' with a 'value'.", node=nid)
        if not isinstance(attrs["op"], str):
            raise GraphValidationError(
                f"Node {nid!r}: 'op' must be an op name (a string), got {attrs['op']!r:.200}.",
                node=nid)
        if attrs["op"] in LEAF_OPS:
            made[nid] = _leaf(graph, nid, attrs, G)
        else:
            _operation(graph, nid, attrs, G, made, max_bytes)
        _check_declared(nid, attrs, unwrap(made[nid]._value))
    graph.output = made[_choose_output(G, output)] if G.number_of_nodes() else None
    return graph


def _choose_output(G, output):
    if output is None:
        output = G.graph.get("output")
    if output is not None:
        try:
            known = output in G
        except TypeError:
            known = False
        if not known:
            raise GraphValidationError(f"The output {output!r} is not a node of the graph.")
        return output
    sinks = [n for n in G.nodes if G.out_degree(n) == 0]
    if len(sinks) != 1:
        raise GraphValidationError(
            f"Cannot tell the output: the graph has {len(sinks)} nodes without children "
            f"({sinks[:10]}); pass output=<node id>.")
    return sinks[0]


def _node_id(nid: Any, where: str) -> Any:
    if isinstance(nid, bool) or not isinstance(nid, (int, str)):
        raise _bad(where, f"node ids are integers or strings, got {nid!r}.")
    return nid


def _load_json(text: str) -> Any:
    def refuse_constant(token: str):
        raise GraphValidationError(
            f"The JSON holds a bare {token}, which is not JSON; write non-finite floats as "
            "{\"__float__\": \"nan\"} (or \"inf\", \"-inf\"), as ardiff.to_json does.")

    if not isinstance(text, (str, bytes, bytearray)):
        raise GraphValidationError(f"from_json expects the JSON text (a str), got "
                                   f"{type(text).__name__}; read the file first.")
    try:
        return json.loads(text, parse_constant=refuse_constant)
    except json.JSONDecodeError as exc:
        raise GraphValidationError(f"Not valid JSON: {exc}") from None
    except RecursionError:
        raise GraphValidationError(
            "The JSON nests too deeply to read; graph files hold shallow values (at most "
            f"{MAX_DEPTH} levels).") from None
    except UnicodeDecodeError as exc:
        raise GraphValidationError(f"Not valid JSON text: {exc}") from None


def json_to_networkx(text: str, max_bytes: int | None = None):
    """Parse the JSON of `to_json` into a networkx DiGraph (values decoded).

    Every malformed field raises `GraphValidationError` naming the node and the field;
    arrays larger than `max_bytes` (default `MAX_BYTES`) are refused before they are
    allocated.
    """
    import networkx as nx

    max_bytes = MAX_BYTES if max_bytes is None else max_bytes
    doc = _load_json(text)
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise GraphValidationError(f"Not an ardiff graph: expected a JSON object with "
                                   f"\"format\": \"{FORMAT}\".")
    if doc.get("version") != VERSION:
        raise GraphValidationError(f"Unsupported ardiff graph version {doc.get('version')!r}; "
                                   f"this ardiff reads version {VERSION}.")
    nodes, edges = doc.get("nodes", []), doc.get("edges", [])
    for key, value in (("nodes", nodes), ("edges", edges)):
        if not isinstance(value, list):
            raise GraphValidationError(f"'{key}' must be a list, got {type(value).__name__}.")
    G = nx.DiGraph()
    for k, entry in enumerate(nodes):
        if not isinstance(entry, dict):
            raise GraphValidationError(f"nodes[{k}] is a {type(entry).__name__}, not an "
                                       "object with 'id' and 'op'.")
        if "id" not in entry:
            raise GraphValidationError(f"nodes[{k}] has no 'id'; give every node a unique "
                                       "integer or string id.")
        nid = _node_id(entry["id"], f"nodes[{k}]: 'id'")
        where = f"Node {nid!r}"
        if nid in G:
            raise GraphValidationError(
                f"{where}: the id is used by two nodes (nodes[{k}] and an earlier one); node "
                "ids must be unique.", node=nid)
        attrs = {key: v for key, v in entry.items() if key != "id"}
        try:
            if "value" in attrs:
                attrs["value"] = decode(attrs["value"], f"{where}: 'value'", max_bytes)
            if "args" in attrs:
                args = attrs["args"]
                if not isinstance(args, dict):
                    raise _bad(f"{where}: 'args'", "must be an object mapping argument "
                                                   "positions (\"0\", \"1\", ...) to values.")
                attrs["args"] = {_position(pos, f"{where}: 'args'"):
                                 decode(v, f"{where}: 'args'[{pos!r}]", max_bytes)
                                 for pos, v in args.items()}
            if "kwargs" in attrs:
                kwargs = attrs["kwargs"]
                if not isinstance(kwargs, dict):
                    raise _bad(f"{where}: 'kwargs'", "must be an object mapping keyword "
                                                     "names to values.")
                attrs["kwargs"] = {key: decode(v, f"{where}: 'kwargs'[{key!r}]", max_bytes)
                                   for key, v in kwargs.items()}
        except GraphValidationError as exc:
            exc.node = nid
            raise
        G.add_node(nid, **attrs)
    for k, edge in enumerate(edges):
        if not isinstance(edge, dict):
            raise GraphValidationError(f"edges[{k}] is a {type(edge).__name__}, not an object "
                                       "with 'source', 'target' and 'argnum'.")
        u, v = edge.get("source"), edge.get("target")
        u = _node_id(u, f"edges[{k}]: 'source'")
        v = _node_id(v, f"edges[{k}]: 'target'")
        if u not in G or v not in G:
            raise GraphValidationError(f"Edge {u!r} -> {v!r} refers to a node that is not in "
                                       "the graph.")
        if G.has_edge(u, v):
            old = G.edges[u, v].get("argnum")
            G.edges[u, v]["argnum"] = (old if isinstance(old, list) else [old]) + [
                edge.get("argnum")]
        else:
            G.add_edge(u, v, **{k: w for k, w in edge.items() if k not in ("source", "target")})
    if doc.get("output") is not None:
        G.graph["output"] = _node_id(doc["output"], "'output'")
    return G


def _position(pos: Any, where: str) -> int:
    """An argument position from a file: an integer in [0, MAX_ARGUMENTS)."""
    k = None
    if isinstance(pos, str) and pos.isascii() and pos.isdigit() and len(pos) <= 10:
        k = int(pos)
    elif isinstance(pos, (int, np.integer)) and not isinstance(pos, bool):
        k = int(pos)
    if k is None or not 0 <= k < MAX_ARGUMENTS:
        raise _bad(where, f"argument position {pos!r} must be an integer from 0 to "
                          f"{MAX_ARGUMENTS - 1}.")
    return k


def from_json(text: str, output: Any = None, max_bytes: int | None = None) -> Graph:
    """Rebuild a `Graph` from the JSON text of `to_json`.

    The text may come from anywhere: it is data only (never pickle or code), every
    malformed field raises `GraphValidationError` naming the node and the field, and no
    array above `max_bytes` (default None: `ardiff.interchange.MAX_BYTES`, 2**30 bytes)
    is allocated.
    """
    return from_networkx(json_to_networkx(text, max_bytes), output=output, max_bytes=max_bytes)
