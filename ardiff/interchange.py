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


def decode(data: Any) -> Any:
    """Inverse of `encode`."""
    if isinstance(data, list):
        return [decode(v) for v in data]
    if not isinstance(data, dict):
        return data
    if "__ndarray__" in data or "__scalar__" in data:
        dtype = np.dtype(data["dtype"])
        flat = data.get("__ndarray__", data.get("__scalar__"))
        flat = [float(v) if isinstance(v, str) else v for v in flat]
        array = np.array(flat, dtype=dtype).reshape(data["shape"])
        return array[()] if "__scalar__" in data else array
    if "__float__" in data:
        return float(data["__float__"])
    if "__tuple__" in data:
        return tuple(decode(v) for v in data["__tuple__"])
    if "__dict__" in data:
        return {k: decode(v) for k, v in data["__dict__"].items()}
    if "__slice__" in data:
        return slice(*(decode(v) for v in data["__slice__"]))
    if "__ellipsis__" in data:
        return Ellipsis
    if "__dtype__" in data:
        return np.dtype(data["__dtype__"])
    raise GraphValidationError(f"Unrecognised encoded value {data!r} in the JSON graph.")


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
    for k in nums:
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 0:
            raise GraphValidationError(
                f"Edge {u!r} -> {v!r} has argnum {raw!r}; it must be a non-negative integer "
                "(or a list of them).", node=v)
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
    except TypeError as exc:
        raise GraphValidationError(f"Node {nid!r}: {exc}", node=nid) from None


def _node_name(nid, attrs: dict) -> str | None:
    name = attrs.get("name")
    if name is None and isinstance(nid, str):
        return nid  # string ids double as names, so g.node_of("h1") works
    return name


def _operation(graph: Graph, nid, attrs: dict, G, made: dict) -> None:
    name = attrs["op"]
    op = OPS.get(name)
    if op is None:
        raise GraphValidationError(f"Node {nid!r} has unknown op {name!r}." + _close_names(name),
                                   node=nid)
    kwargs = dict(attrs.get("kwargs") or {})
    slots: dict[int, Any] = {}
    for pos, value in dict(attrs.get("args") or {}).items():
        slots[int(pos)] = ("const", value)
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
    try:
        with np.errstate(all="ignore"):
            value = op.fwd(*args, **kwargs)
    except Exception as exc:
        shapes = ", ".join(f"arg {k}: {np.shape(a)}" for k, a in enumerate(args))
        raise GraphValidationError(
            f"Node {nid!r} (op '{name}') cannot be computed from its arguments ({shapes}): "
            f"{exc}", node=nid) from None
    node = graph.append(op, tuple(args), kwargs, tuple(parents), value, _node_name(nid, attrs))
    made[nid] = graph.tracer_class(graph, node.index, value)


def _check_declared(nid, attrs: dict, value) -> None:
    if attrs.get("shape") is not None and tuple(attrs["shape"]) != np.shape(value):
        raise GraphValidationError(
            f"Node {nid!r} (op {attrs['op']!r}) declares shape {tuple(attrs['shape'])} but "
            f"its arguments give shape {np.shape(value)}.", node=nid)
    if attrs.get("dtype") is not None and np.dtype(attrs["dtype"]) != np.result_type(value):
        raise GraphValidationError(
            f"Node {nid!r} (op {attrs['op']!r}) declares dtype {attrs['dtype']} but computes "
            f"{np.result_type(value)}.", node=nid)


def from_networkx(G, output: Any = None) -> Graph:
    """Build a `Graph` from a networkx directed graph (format: `ardiff.interchange`).

    Parameters
    ----------
    G : networkx.DiGraph or networkx.MultiDiGraph
        Nodes with `op` (and `value` for leaves), edges with `argnum`.
    output : hashable, optional
        The output node's id in `G`; default `G.graph["output"]`, else the only
        node without children.

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
        if attrs["op"] in LEAF_OPS:
            made[nid] = _leaf(graph, nid, attrs, G)
        else:
            _operation(graph, nid, attrs, G, made)
        _check_declared(nid, attrs, unwrap(made[nid]._value))
    graph.output = made[_choose_output(G, output)] if G.number_of_nodes() else None
    return graph


def _choose_output(G, output):
    if output is None:
        output = G.graph.get("output")
    if output is not None:
        if output not in G:
            raise GraphValidationError(f"The output {output!r} is not a node of the graph.")
        return output
    sinks = [n for n in G.nodes if G.out_degree(n) == 0]
    if len(sinks) != 1:
        raise GraphValidationError(
            f"Cannot tell the output: the graph has {len(sinks)} nodes without children "
            f"({sinks[:10]}); pass output=<node id>.")
    return sinks[0]


def json_to_networkx(text: str):
    """Parse the JSON of `to_json` into a networkx DiGraph (values decoded)."""
    import networkx as nx

    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise GraphValidationError(f"Not valid JSON: {exc}") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise GraphValidationError(f"Not an ardiff graph: expected a JSON object with "
                                   f"\"format\": \"{FORMAT}\".")
    if doc.get("version") != VERSION:
        raise GraphValidationError(f"Unsupported ardiff graph version {doc.get('version')!r}; "
                                   f"this ardiff reads version {VERSION}.")
    G = nx.DiGraph()
    for entry in doc.get("nodes", []):
        if "id" not in entry:
            raise GraphValidationError(f"A JSON node has no 'id': {entry!r}")
        attrs = {k: v for k, v in entry.items() if k != "id"}
        for key in ("value",):
            if key in attrs:
                attrs[key] = decode(attrs[key])
        if "args" in attrs:
            attrs["args"] = {int(k): decode(v) for k, v in attrs["args"].items()}
        if "kwargs" in attrs:
            attrs["kwargs"] = {k: decode(v) for k, v in attrs["kwargs"].items()}
        G.add_node(entry["id"], **attrs)
    for edge in doc.get("edges", []):
        u, v = edge.get("source"), edge.get("target")
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
        G.graph["output"] = doc["output"]
    return G


def from_json(text: str, output: Any = None) -> Graph:
    """Rebuild a `Graph` from the JSON text of `to_json`."""
    return from_networkx(json_to_networkx(text), output=output)
