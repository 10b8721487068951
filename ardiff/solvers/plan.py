"""Compile a recorded graph into the flat plan every solver runs.

The plan keeps only the nodes on a path between the wanted inputs (`wrt`) and
the output, lists each node's children with the staged local VJP of every edge,
and computes the depth of every relaxing node (its longest path to the output).
All passes are plain loops over the topological order: no recursion, so graphs
of millions of nodes are fine.
"""

from __future__ import annotations

import itertools
import math
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

try:  # reference counts exist in CPython; elsewhere sums never write into a term
    from sys import getrefcount
except ImportError:  # pragma: no cover - PyPy and other interpreters
    getrefcount = None

from ..graph import Graph, Released, TracerBase
from ..op import OPS


@dataclass(eq=False, repr=False)
class Plan:
    """The pruned, compiled form of `graph` for one output and a list of inputs.

    Attributes
    ----------
    graph : Graph
        The recorded graph.
    output : int
        Index of the output node (its activity is clamped to the seed).
    wrt : list of int
        Indices of the nodes whose gradients are wanted.
    children : list
        Indexed by node: `children[i]` lists `(child, argnum)` for the edges out of
        relevant node `i`, in the order their contributions are summed (None for
        nodes without relevant children): in topological order for a relaxing node,
        from the last child down for a source (a node without relevant parents,
        such as a parameter), which is the order a reverse sweep finishes them in,
        so that a sweep can add each contribution as soon as it is known instead of
        keeping every child's activity to the end (`sweep_releasing`).
    relaxing : list of int
        Nodes that relax, in topological order (relevant nodes with relevant parents,
        except the output).
    relevant : list of int
        Every node on a path from `wrt` to the output, in topological order.
    rules : list
        Local-rule variants replacing some edges' VJPs (`ardiff.rules`).
    edges : dict
        `edges[i]` lists `(child, vjp)` pairs: `vjp(x_child)` is the child's
        contribution to node `i`'s equilibrium (staged from the recorded values on
        first use; a one-sweep solve stages each VJP just before using it instead).
    depth : dict
        Longest path (in edges) from each relevant node to the output (computed on
        first use: the one-sweep solvers do not need it).
    """

    graph: Graph
    output: int
    wrt: list[int]
    children: list
    relaxing: list[int]
    relevant: list[int]
    rules: list
    _edges: dict | None = field(default=None, init=False)
    _depth: dict | None = field(default=None, init=False)

    @property
    def edges(self) -> dict:
        """`edges[i]`: `(child, vjp)` pairs of node `i`, staged on first use."""
        if self._edges is None:
            self.stage()
        return self._edges

    @property
    def sources(self) -> list[int]:
        """The `wrt` nodes whose gradient is read out from their children: those that do
        not relax and are not the output, each once, in `wrt` order."""
        relaxing = self.relaxing
        found = []
        for i in dict.fromkeys(self.wrt):
            k = bisect_left(relaxing, i)  # relaxing is sorted: no set of it per call
            if i != self.output and self.children[i] and not (
                    k < len(relaxing) and relaxing[k] == i):
                found.append(i)
        return found

    @property
    def staged(self) -> bool:
        """Whether every edge's VJP has been staged (see `stage`)."""
        return self._edges is not None

    @property
    def depth(self) -> dict:
        """Longest path (in edges) from each relevant node to the output."""
        if self._depth is None:
            depth = {}
            for i in reversed(self.relevant):  # children come after their parents
                kids = self.children[i]
                depth[i] = 1 + max(depth[c] for c, _ in kids) if kids else 0
            self._depth = depth
        return self._depth

    def stage(self) -> Plan:
        """(Re)build every edge's local VJP from the nodes' current recorded values.

        Called once by `compile_plan`; `ardiff.compile` calls it again
        after replaying the forward pass on new inputs, reusing the pruning.
        """
        nodes = self.graph.nodes
        edges: dict = dict.fromkeys(self.relevant, ())
        matched = {id(rule): False for rule in self.rules}
        for parent in self.relevant:
            staged = []
            for child, argnum in self.children[parent] or ():
                node = nodes[child]
                vjp = self._rule_vjp(node, argnum, matched) if self.rules else None
                if vjp is None:
                    vjp = node.op.local_vjp(argnum, node.value, node.args, node.kwargs)
                staged.append((child, vjp))
            edges[parent] = staged
        for rule in self.rules:
            if not matched[id(rule)]:
                raise ValueError(
                    f"Rule {rule!r} matches no node between the inputs and the output of "
                    "this graph, so it would do nothing; remove it or check the graph.")
        self._edges = edges
        return self

    def _rule_vjp(self, node, argnum: int, matched: dict):
        """The VJP the first matching rule gives this edge, or None."""
        for rule in self.rules:
            vjp = rule.local_vjp(self.graph, node, argnum)
            if vjp is not None:
                matched[id(rule)] = True
                return vjp
        return None

    @property
    def fixed_nodes(self) -> list[int]:
        """Nodes whose activities never relax: the output (a `UnitPlan` adds its
        clamped nodes)."""
        return [self.output]

    def fixed_activities(self, seed: Any) -> dict:
        """The activities that never relax, from the seed: `{output: seed}` here (a
        `UnitPlan` also computes its clamped nodes exactly)."""
        return {self.output: seed}

    @property
    def max_depth(self) -> int:
        """D: the longest path among relaxing nodes (the nilpotency index of N)."""
        depth = self.depth
        return max((depth[i] for i in self.relaxing), default=0)

    def activity_target(self, i: int, x: dict) -> Any:
        """Σ_j vjp_ji(x_j): the equilibrium value of node `i` given its children.

        On an unstaged plan each VJP is staged just before it is applied and not
        kept: a one-sweep solve uses every VJP once, and touching each node once
        while it is in cache is what keeps large graphs fast.

        Parameters
        ----------
        i : int
            A relevant node with children.
        x : dict
            Node index -> activity, holding every child of `i`.

        Returns
        -------
        array_like
        """
        if self._edges is None:
            return sum_of_vjps(self.children[i], x, self.graph.nodes)
        return sum_of_vjps(self._edges[i], x)


def reference_count(value: Any) -> int:
    """`sys.getrefcount(value)` (0 where the interpreter has no reference counts)."""
    return getrefcount(value) if getrefcount is not None else 0


def _probe_sole_count() -> int:
    # What `reference_count(term)` reads for an array held by one local variable and
    # nothing else, measured with the same calling pattern `sum_of_vjps` uses, so the
    # test stays right whatever the interpreter's own references (arguments, borrowed
    # stack slots) add.
    term = np.empty(1)
    return reference_count(term)


#: `reference_count` of an array that only the caller's local variable holds; -1 (never
#: matched) where reference counts are unavailable.
SOLE_REFERENCE = _probe_sole_count() if getrefcount is not None else -1

#: Whether `sum_of_vjps` may add into a VJP's fresh result (False gives the general path,
#: which the tests compare with bit for bit).
ACCUMULATE_IN_PLACE = True


#: Whether `sum_of_vjps` may scatter disjoint slices' cotangents into one array (False
#: gives the general path, which the tests compare with bit for bit).
SCATTER_SLICES = True


def _box(index: Any, shape: tuple) -> list | None:
    """Per-axis `(start, stop)` of a basic index made of unit-step slices, else None."""
    if type(index) is slice:
        index = (index,)
    if type(index) is not tuple or len(index) > len(shape):
        return None
    box = []
    for item, dim in zip(index, shape):
        if type(item) is not slice:
            return None
        start, stop, step = item.indices(dim)
        if step != 1:
            return None
        box.append((start, max(start, stop)))
    return box + [(0, dim) for dim in shape[len(box):]]  # unindexed axes: whole


def scatter_slices(edges: list, x: dict, nodes: list) -> Any:
    """The sum of unit-step slice VJPs written into one array, or None if it does not apply.

    When every child is `getitem` of this node by unit-step slices (an LSTM's gates cut
    from one product) and no element lies in all the slices, the general path's terms
    are a zero array per child with the child's cotangent in its slice, added left to
    right.  Here one zero array receives the cotangents, each added into its slice in
    the same order: an element's general sum is its slices' entries and at least one
    +0 (a term whose slice misses it), in some order; adding +0 changes nothing but
    the sign of a zero result, which it makes +0, as starting from a zero array does,
    so the bits are the same (proved in tests against the general path).  When the
    slices tile the array (the LSTM's gates), each element is one entry plus zeros,
    `g + 0.0`, written into an uninitialised array without the zero fill.

    Parameters
    ----------
    edges : list
        `(child, argnum)` pairs (an unstaged plan).
    x : dict
        Node index -> activity.
    nodes : list
        The graph's nodes.

    Returns
    -------
    numpy.ndarray or None
    """
    if len(edges) < 2:
        return None
    getitem = OPS["getitem"]
    first = nodes[edges[0][0]]
    parent = first.args[0]  # the sliced value, or its stand-in in a lean recording
    if type(parent) is not np.ndarray and type(parent) is not Released:
        return None
    shape, dtype = parent.shape, parent.dtype
    boxes, grads = [], []
    for child, argnum in edges:
        node = nodes[child]
        g = x[child]
        if node.op is not getitem or argnum != 0 or node.args[0] is not parent \
                or type(g) is not np.ndarray or g.dtype != dtype:
            return None
        box = _box(node.args[1], shape)
        if box is None:
            return None
        boxes.append(box)
        grads.append((node.args[1], g))
    # the intersection of every box must be empty (some axis with no common range)
    if not any(max(b[k][0] for b in boxes) >= min(b[k][1] for b in boxes)
               for k in range(len(shape))):
        return None
    if _tiles(boxes, shape):  # each element is one slice's entry plus zeros: g + 0.0
        total = np.empty(shape, dtype=dtype)
        for index, g in grads:
            np.add(g, 0.0, out=total[index])
        return total
    total = np.zeros(shape, dtype=dtype)
    for index, g in grads:
        view = total[index]
        np.add(view, g, out=view)
    return total


def _tiles(boxes: list, shape: tuple) -> bool:
    """Whether the boxes are pairwise disjoint and cover the whole array."""
    for a, b in itertools.combinations(boxes, 2):
        if all(max(ra[0], rb[0]) < min(ra[1], rb[1]) for ra, rb in zip(a, b)):
            return False  # they share an element
    return sum(math.prod(stop - start for start, stop in box) for box in boxes) == \
        math.prod(shape)


def sum_of_vjps(edges: list, x: dict, nodes: list | None = None) -> Any:
    """Σ vjp(x[child]) over `(child, vjp)` pairs, summed left to right.

    Terms are added in place into an array the sum owns: the array one of its own
    additions created, or a VJP's result that nothing else refers to (a fresh
    ndarray, not a view, held by no other name, container or closure: its reference
    count proves it, as NumPy's own temporary elision does).  An array a VJP returns
    aliased to a forward value, to another activity or to its own cotangent has other
    references and is never written.  The additions are the same, in the same order,
    so the bits are the general path's; a weight shared by the 50 steps of an RNN
    would otherwise allocate 50 fresh arrays per gradient.

    Parameters
    ----------
    edges : list
        `(child, vjp)` pairs; with `nodes`, `(child, argnum)` pairs whose VJPs are
        staged from `nodes[child]` on the way.
    x : dict
        Node index -> activity.
    nodes : list, optional
        The graph's nodes.

    Returns
    -------
    array_like
        The sum (None for no edges).
    """
    if len(edges) == 1:  # one child: its contribution is the activity (the usual case)
        child, vjp = edges[0]
        if nodes is not None:
            node = nodes[child]
            return node.op.apply_vjp(vjp, node.value, node.args, node.kwargs, x[child])
        return vjp(x[child])
    if nodes is not None and SCATTER_SLICES:
        total = scatter_slices(edges, x, nodes)
        if total is not None:
            return total
    total = None
    owned = False  # whether `total` may be written (see above)
    for child, vjp in edges:
        if nodes is not None:  # `vjp` is the argnum: stage and apply it now
            node = nodes[child]
            term = node.op.apply_vjp(vjp, node.value, node.args, node.kwargs, x[child])
        else:
            term = vjp(x[child])
        if total is None:
            total = term
            owned = False
            continue
        if type(term) is np.ndarray and type(total) is np.ndarray \
                and term.shape == total.shape and term.dtype == total.dtype:
            if owned:
                np.add(total, term, out=total)
                continue
            if ACCUMULATE_IN_PLACE:
                if total.base is None and total.flags.writeable \
                        and reference_count(total) == SOLE_REFERENCE:
                    np.add(total, term, out=total)  # the first term was fresh
                    owned = True
                    continue
                if term.base is None and term.flags.writeable \
                        and reference_count(term) == SOLE_REFERENCE:
                    # total + term, written over the fresh term (same elementwise sums)
                    total = np.add(total, term, out=term)
                    owned = True
                    continue
        total = total + term
        owned = type(total) is np.ndarray and total.ndim > 0
    return total


def add_into(total: np.ndarray, term: Any) -> Any:
    """`total + term`, written into `total` (an array the running sum owns) when the
    term is an array of its shape and dtype: the same elementwise sums either way."""
    if type(term) is np.ndarray and term.shape == total.shape and term.dtype == total.dtype:
        return np.add(total, term, out=total)
    return total + term


def resolve(graph: Graph, output: Any, wrt: Any) -> tuple[int, list[int]]:
    """Turn the user's `output` and `wrt` arguments into node indices.

    Parameters
    ----------
    graph : Graph
        The recorded graph.
    output : traced value, node, index, name or None
        None for `graph.output`.
    wrt : list or tuple, or None
        Traced values, nodes, indices or names; None for `graph.inputs`.

    Returns
    -------
    tuple of (int, list of int)
    """
    if isinstance(output, TracerBase) and output._graph is graph and \
            isinstance(wrt, list) and all(
                isinstance(w, TracerBase) and w._graph is graph for w in wrt):
        # traced values of this graph (what every transform passes): read the indices
        nodes = graph.nodes
        wrt_idx = [w._node for w in wrt]
        if all(nodes[i].op != "constant" for i in wrt_idx):
            return output._node, wrt_idx
    if output is None:
        output = graph.output
    if output is None:
        raise ValueError("No output given: pass output=... (a traced value of the graph).")
    out_node = graph.node_of(output)
    if wrt is None:
        wrt = graph.inputs
    if not isinstance(wrt, (list, tuple)):
        raise TypeError("wrt must be a list or tuple of traced values (or node indices/names).")
    nodes = [graph.node_of(w) for w in wrt]
    for n in nodes:
        if n.op == "constant":
            raise ValueError(f"Cannot differentiate with respect to {n.label()}: it was added "
                             "with Graph.constant; use Graph.input for differentiable leaves.")
    return out_node.index, [n.index for n in nodes]


def compile_plan(graph: Graph, output: Any = None, wrt: Any = None,
                 rules: Sequence | None = None, *, stage: bool = True) -> Plan:
    """Prune `graph` to the nodes between `wrt` and `output` and stage local VJPs.

    Parameters
    ----------
    graph : Graph
        The recorded graph.
    output, wrt
        As for `ardiff.relax` (defaults: the graph's output and inputs).
    rules : sequence, optional
        Local-rule variants (`ardiff.rules`); each must match an edge.
    stage : bool
        Stage every VJP now.  With `stage=False` the VJPs are staged on first use of
        `plan.edges`, or one at a time by a one-sweep solve (which then never keeps
        them).

    Returns
    -------
    Plan
    """
    out, wrt_idx = resolve(graph, output, wrt)
    start = min(wrt_idx, default=out + 1)
    parents = graph.parent_columns
    roots = graph.roots
    wrt_set = set(wrt_idx)
    if wrt_set.issuperset(roots):
        # Every parentless node is differentiated, so every node from `start` on
        # descends from wrt (the usual case for traced functions): skip that pass.
        from_wrt = None
    else:  # forward reachability from wrt (plain lists index faster than arrays)
        from_wrt = [False] * (out + 1)
        for i in wrt_idx:
            if i <= out:
                from_wrt[i] = True
        for k in range(start, out + 1):
            if not from_wrt[k]:
                for _, p in parents[k]:
                    if from_wrt[p]:
                        from_wrt[k] = True
                        break
    # one backward pass from the output: relevant nodes, their links, relaxing nodes
    relevant = [False] * (out + 1)
    relevant[out] = out >= start and (from_wrt is None or from_wrt[out])
    relaxing, kept = [], []
    children: list = [None] * max(out + 1, max(wrt_idx, default=0) + 1)  # wrt may follow out
    for k in range(out, start - 1, -1):
        if not relevant[k]:
            continue
        kept.append(k)
        has_relevant_parent = False
        for argnum, p in reversed(parents[k]):  # reversed twice: argnum order is kept
            if p >= start and (from_wrt is None or from_wrt[p]):
                relevant[p] = True
                has_relevant_parent = True
                if children[p] is None:
                    children[p] = [(k, argnum)]
                else:
                    children[p].append((k, argnum))
        kids = children[k]
        if has_relevant_parent and kids is not None and len(kids) > 1:
            kids.reverse()  # built from the last child down: a relaxing node sums upwards
        if has_relevant_parent and k != out:
            relaxing.append(k)
    relaxing.reverse()
    kept.reverse()
    plan = Plan(graph, out, wrt_idx, children, relaxing, kept, list(rules or ()))
    return plan.stage() if stage or plan.rules else plan

