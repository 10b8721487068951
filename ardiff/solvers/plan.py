"""Compile a recorded graph into the flat plan every solver runs.

The plan keeps only the nodes on a path between the wanted inputs (``wrt``) and
the output, lists each node's children with the staged local VJP of every edge,
and computes the depth of every relaxing node (its longest path to the output).
All passes are plain loops over the topological order: no recursion, so graphs
of millions of nodes are fine.
"""

from __future__ import annotations

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
    relaxing : list of int
        Nodes that relax, in topological order (relevant nodes with relevant parents,
        except the output).
    edges : dict
        ``edges[i]`` lists ``(child, vjp)`` pairs: ``vjp(x_child)`` is the child's
        contribution to node ``i``'s equilibrium.
    depth : dict
        Longest path (in edges) from each relevant node to the output.
    """

    def __init__(self, graph: Graph, output: int, wrt: list[int], edges: dict,
                 relaxing: list[int], depth: dict, matched_rules: dict):
        self.graph = graph
        self.output = output
        self.wrt = wrt
        self.edges = edges
        self.relaxing = relaxing
        self.depth = depth
        self.matched_rules = matched_rules

    @property
    def max_depth(self) -> int:
        """D: the longest path among relaxing nodes (the nilpotency index of N)."""
        return max((self.depth[i] for i in self.relaxing), default=0)

    def activity_target(self, i: int, x: dict) -> Any:
        """Σ_j vjp_ji(x_j): the equilibrium value of node ``i`` given its children."""
        total = None
        for child, vjp in self.edges[i]:
            contribution = vjp(x[child])
            total = contribution if total is None else total + contribution
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
    nodes = graph.nodes
    start = min(wrt_idx, default=out + 1)
    # forward reachability from wrt
    from_wrt = np.zeros(len(nodes), dtype=bool)
    from_wrt[wrt_idx] = True
    for k in range(start, out + 1):
        if not from_wrt[k]:
            from_wrt[k] = any(from_wrt[p] for _, p in nodes[k].parents)
    # backward reachability from the output, restricted to the forward set
    relevant = np.zeros(len(nodes), dtype=bool)
    relevant[out] = from_wrt[out]
    for k in range(out, start - 1, -1):
        if relevant[k]:
            for _, p in nodes[k].parents:
                if from_wrt[p]:
                    relevant[p] = True
    rules = list(rules or ())
    matched = {id(rule): False for rule in rules}
    edges: dict[int, list] = {}
    relaxing = []
    for k in range(start, out + 1):
        if not relevant[k]:
            continue
        node = nodes[k]
        has_relevant_parent = False
        for argnum, p in node.parents:
            if not relevant[p]:
                continue
            has_relevant_parent = True
            vjp = None
            for rule in rules:
                vjp = rule.local_vjp(graph, node, argnum)
                if vjp is not None:
                    matched[id(rule)] = True
                    break
            if vjp is None:
                vjp = node.op.local_vjp(argnum, node.value, node.args, node.kwargs)
            edges.setdefault(p, []).append((k, vjp))
        edges.setdefault(k, [])
        if k != out and has_relevant_parent:
            relaxing.append(k)
    for rule in rules:
        if not matched[id(rule)]:
            raise ValueError(f"Rule {rule!r} matches no node between the inputs and the output "
                             "of this graph, so it would do nothing; remove it or check the "
                             "graph.")
    depth = {out: 0} if relevant[out] else {}
    for k in range(out - 1, start - 1, -1):
        if relevant[k]:
            depth[k] = 1 + max(depth[c] for c, _ in edges[k])
    _check_forward_values(graph, relevant, start, out)
    return Plan(graph, out, wrt_idx, edges, relaxing, depth, matched)


def _check_forward_values(graph: Graph, relevant: np.ndarray, start: int, out: int) -> None:
    for k in range(start, out + 1):
        if relevant[k]:
            value = _raw(graph.nodes[k].value)
            if not np.all(np.isfinite(value)):
                warnings.warn(
                    f"Non-finite forward value at {graph.nodes[k].label()}: the gradients "
                    "through it will not be finite.", NonFiniteWarning, stacklevel=4)
                return
