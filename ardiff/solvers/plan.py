"""Compile a recorded graph into the flat plan every solver runs.

The plan keeps only the nodes on a path between the wanted inputs (``wrt``) and
the output, lists each node's children with the staged local VJP of every edge,
and computes the depth of every relaxing node (its longest path to the output).
All passes are plain loops over the topological order: no recursion, so graphs
of millions of nodes are fine.
"""

from __future__ import annotations

import bisect
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..graph import Graph, _raw


class NonFiniteWarning(RuntimeWarning):
    """A NaN or infinity appeared in a forward value or in a relaxing activity."""


class Plan:
    """The pruned, compiled form of ``graph`` for one output and a list of inputs.

    Attributes
    ----------
    output : int
        Index of the output node (its activity is clamped to the seed).
    wrt : list of int
        Indices of the nodes whose gradients are wanted.
    relevant : list of int
        Every node on a path from ``wrt`` to the output, in topological order.
    relaxing : list of int
        Nodes that relax, in topological order (relevant nodes with relevant parents,
        except the output).
    links : list of (int, int, int)
        ``(parent, child, argnum)`` for every edge between relevant nodes.
    edges : dict
        ``edges[i]`` lists ``(child, vjp)`` pairs: ``vjp(x_child)`` is the child's
        contribution to node ``i``'s equilibrium (staged from the recorded values).
    depth : dict
        Longest path (in edges) from each relevant node to the output (computed on
        first use: the one-sweep solvers do not need it).
    """

    def __init__(self, graph: Graph, output: int, wrt: list[int], links: list,
                 relaxing: list[int], relevant: list[int], rules: list):
        self.graph = graph
        self.output = output
        self.wrt = wrt
        self.links = links
        self.relaxing = relaxing
        self.relevant = relevant
        self.rules = rules
        self.edges: dict = {}
        self._depth: dict | None = None

    @property
    def depth(self) -> dict:
        if self._depth is None:
            depth = dict.fromkeys(self.relevant, 0)
            for parent, child, _ in reversed(self.links):  # children before parents
                if depth[child] >= depth[parent]:
                    depth[parent] = depth[child] + 1
            self._depth = depth
        return self._depth

    def stage(self) -> Plan:
        """(Re)build every edge's local VJP from the nodes' current recorded values.

        Called once by :func:`compile_plan`; :func:`ardiff.compile` calls it again
        after replaying the forward pass on new inputs, reusing the pruning.
        """
        nodes = self.graph.nodes
        edges: dict = {i: [] for i in self.relevant}
        if self.rules:
            self._stage_with_rules(edges)
        else:
            for parent, child, argnum in self.links:
                node = nodes[child]
                edges[parent].append(
                    (child, node.op.local_vjp(argnum, node.value, node.args, node.kwargs)))
        self.edges = edges
        return self

    def _stage_with_rules(self, edges: dict) -> None:
        nodes = self.graph.nodes
        matched = {id(rule): False for rule in self.rules}
        for parent, child, argnum in self.links:
            node = nodes[child]
            vjp = None
            for rule in self.rules:
                vjp = rule.local_vjp(self.graph, node, argnum)
                if vjp is not None:
                    matched[id(rule)] = True
                    break
            if vjp is None:
                vjp = node.op.local_vjp(argnum, node.value, node.args, node.kwargs)
            edges[parent].append((child, vjp))
        for rule in self.rules:
            if not matched[id(rule)]:
                raise ValueError(
                    f"Rule {rule!r} matches no node between the inputs and the output of "
                    "this graph, so it would do nothing; remove it or check the graph.")

    @property
    def max_depth(self) -> int:
        """D: the longest path among relaxing nodes (the nilpotency index of N)."""
        depth = self.depth
        return max((depth[i] for i in self.relaxing), default=0)

    def activity_target(self, i: int, x: dict) -> Any:
        """Σ_j vjp_ji(x_j): the equilibrium value of node ``i`` given its children."""
        return sum_of_vjps(self.edges[i], x)


def sum_of_vjps(edges: list, x: dict) -> Any:
    """Σ vjp(x[child]) over ``(child, vjp)`` pairs, summed left to right.

    From the third term on the sum is accumulated in place into the array the
    second addition created (the same additions, so the same bits): a weight shared
    by the 50 steps of an RNN would otherwise allocate 50 fresh arrays per gradient.
    """
    total = None
    owned = False  # whether `total` is an array this function created
    for child, vjp in edges:
        term = vjp(x[child])
        if total is None:
            total = term
        elif owned and type(term) is np.ndarray and term.shape == total.shape \
                and term.dtype == total.dtype:
            np.add(total, term, out=total)
        else:
            total = total + term
            owned = type(total) is np.ndarray and total.ndim > 0
    return total


def resolve(graph: Graph, output: Any, wrt: Any) -> tuple[int, list[int]]:
    """Turn the user's ``output`` and ``wrt`` arguments into node indices."""
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
                 rules: Sequence | None = None) -> Plan:
    """Prune ``graph`` to the nodes between ``wrt`` and ``output`` and stage local VJPs."""
    out, wrt_idx = resolve(graph, output, wrt)
    start = min(wrt_idx, default=out + 1)
    parents = graph._parents
    roots = graph._roots
    wrt_set = set(wrt_idx)
    if all(r in wrt_set for r in roots[bisect.bisect_left(roots, start):]):
        # Every parentless node from `start` on is differentiated, so every node from
        # there descends from wrt (the usual case for traced functions): skip that pass.
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
    links, relaxing, kept = [], [], []
    for k in range(out, start - 1, -1):
        if not relevant[k]:
            continue
        kept.append(k)
        has_relevant_parent = False
        for argnum, p in reversed(parents[k]):  # reversed twice: links stay in argnum order
            if p >= start and (from_wrt is None or from_wrt[p]):
                relevant[p] = True
                has_relevant_parent = True
                links.append((p, k, argnum))
        if has_relevant_parent and k != out:
            relaxing.append(k)
    links.reverse()
    relaxing.reverse()
    kept.reverse()
    return Plan(graph, out, wrt_idx, links, relaxing, kept, list(rules or ())).stage()


def warn_non_finite(plan: Plan, activities: dict, grads: list, values=None) -> None:
    """If a gradient is not finite, name the first node where a NaN/inf appears.

    Checked once after solving (not per node per step, which would cost as much as
    the solve): first the forward values in topological order, then the activities
    in the order the relaxation computes them (from the output down).  ``values``
    (indexed by node) replaces the recorded forward values, for a compiled replay.
    """
    # a sum is finite when every term is (one cheap pass); confirm exactly otherwise
    if all(np.isfinite(np.sum(_raw(g))) or np.all(np.isfinite(_raw(g))) for g in grads):
        return
    nodes = plan.graph.nodes
    if values is None:
        values = [node.value for node in nodes]
    for i in plan.relevant:
        if not np.all(np.isfinite(_raw(values[i]))):
            warnings.warn(
                f"Non-finite forward value at {nodes[i].label()}: the gradients through it "
                "are not finite. Check the inputs and the ops feeding this node.",
                NonFiniteWarning, stacklevel=4)
            return
    for i in reversed(plan.relaxing):
        if i in activities and not np.all(np.isfinite(_raw(activities[i]))):
            warnings.warn(
                f"Non-finite activity first appears at {nodes[i].label()}: the local "
                "derivative of one of its children is not finite there (e.g. sqrt or log "
                "at 0, or an overflow).", NonFiniteWarning, stacklevel=4)
            return
    for i, g in zip(plan.wrt, grads):
        if not np.all(np.isfinite(_raw(g))):
            children = ", ".join(nodes[c].label() for c, _ in plan.edges.get(i, ()))
            warnings.warn(
                f"Non-finite gradient read out at {nodes[i].label()} from its children "
                f"{children}; check their local derivatives (e.g. sqrt or log at 0).",
                NonFiniteWarning, stacklevel=4)
            return
