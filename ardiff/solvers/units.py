"""Units: which nodes of a graph carry relaxing activities.

At op level every node between the inputs and the output relaxes.  The paper's
units are layers, `v_l = f(W v_{l-1} + b)`: the matmul and the add inside a layer
do not relax, and the output layer is clamped to `x_L = dL/dv_L`.  A unit plan
gives that granularity to any graph:

* **units** carry activities and relax (`relax(..., units=...)` chooses them);
* **folded** nodes (non-units with a unit downstream) are folded into the edges:
  a unit's target is its child units' activities pulled back through the folded
  ops at the frozen forward values (a local sweep over that segment);
* **clamped** nodes (non-units with no unit downstream: the output layer and the
  loss) are computed once, exactly, from the seed, as the paper sets
  `x_L = dL/dv_L`.

The fixed point does not depend on the choice: at equilibrium every unit holds
dL/d(unit), so the folded nodes and the read-out of the inputs are exact.  Only
the path to it (the iteration matrix N between units, its depth D) changes.

`units="layers"` picks, among the relaxing nodes,

1. every node marked with `unit` (always a unit), and
2. every *layer candidate* that has a *layer anchor* strictly downstream, where a
   candidate is the output of a nonlinear op (`Op.nonlinear`, the op table's flag
   that `ardiff.rules.NoDerivative` uses too) or a node where two paths from
   candidates merge (two distinct parents downstream of candidates, e.g. the add of
   a residual block), and an anchor is a node that takes as an argument a
   differentiated input (a parameter) or a value computed from parameters alone
   (no candidate upstream: `W.T`, `b[None, :]`), or a marked node.

The anchor condition is what clamps the output: the nodes after the last
parameterised op (the network output `v_L` and the loss, whether its ops are
linear or not) have no anchor downstream, so they form the clamped head.
"""

from __future__ import annotations

from collections import ChainMap
from collections.abc import Sequence
from typing import Any

from ..graph import Graph
from .options import UNIT_CHOICES
from .plan import Plan, sum_of_vjps

__all__ = ["marked_units", "is_nonlinear", "select_units", "UnitPlan", "unit_plan",
           "UNIT_CHOICES"]

def marked_units(graph: Graph) -> set:
    """Indices of the nodes of `graph` marked with `ardiff.unit` (`Node.unit`).

    Parameters
    ----------
    graph : Graph

    Returns
    -------
    set of int
    """
    return {node.index for node in graph.nodes if node.unit}


def is_nonlinear(node: Any) -> bool:
    """Whether a node is the output of a nonlinear op (`Op.nonlinear`).

    The flag is the op table's: the ops `ardiff.rules.nonlinear_ops` lists
    (activations such as `maximum`, `tanh`, `exp`, also `square`, `log`, ...),
    and the fused `ardiff.nn.dense` layer.  Bilinear ops (`multiply`, `matmul`,
    `divide`) and linear ones (`add`, `sum`, `reshape`, ...) are not.

    Parameters
    ----------
    node : Node

    Returns
    -------
    bool
    """
    return not node.is_leaf and bool(getattr(node.op, "nonlinear", False))


def _layer_units(plan: Plan) -> list[int]:
    """The units of `units="layers"` (see the module docstring)."""
    graph = plan.graph
    nodes, parents = graph.nodes, graph.parent_columns
    relaxing = set(plan.relaxing)
    marks = marked_units(graph) & relaxing
    relevant = set(plan.relevant)
    candidate, layered, anchor = set(), set(), set()
    for k in plan.relevant:  # topological order: parents first
        if k not in relaxing and k != plan.output:
            continue  # a source (differentiated input): parameter side
        ps = {p for _, p in parents[k] if p in relevant}
        from_layers = ps & layered
        # a parameter, or a value computed from parameters alone (W.T, b[None, :]),
        # enters here
        if ps - layered or k in marks:
            anchor.add(k)
        if k == plan.output:
            continue
        if k in marks or is_nonlinear(nodes[k]) or len(from_layers) >= 2:
            candidate.add(k)
        if k in candidate or from_layers:
            layered.add(k)
    anchored = set()  # nodes with an anchor strictly downstream
    for k in reversed(plan.relevant):
        if any(c in anchor or c in anchored for c, _ in plan.children[k] or ()):
            anchored.add(k)
    return [k for k in plan.relaxing if k in marks or (k in candidate and k in anchored)]


def select_units(plan: Plan, units: Any) -> list[int]:
    """The relaxing nodes that carry activities, in topological order.

    Parameters
    ----------
    plan : Plan
        The op-level plan (from `compile_plan`).
    units : {"ops", "layers"} or sequence
        `"ops"`: every relaxing node; `"layers"`: see the module docstring; a
        sequence: these nodes (traced values, nodes, indices or names), each of which
        must relax at op level (not a leaf, not the output, on a path between the
        inputs and the output).

    Returns
    -------
    list of int
    """
    if isinstance(units, str):
        if units == "ops":
            return list(plan.relaxing)
        if units == "layers":
            return _layer_units(plan)
        raise ValueError(f"units must be one of {UNIT_CHOICES} or a list of nodes, got {units!r}")
    relaxing = set(plan.relaxing)
    chosen = set()
    for ref in units:
        node = plan.graph.node_of(ref)
        if node.index not in relaxing:
            why = ("it is the output, which is clamped to the seed" if node.index == plan.output
                   else "it is a leaf (its gradient is read out, it never relaxes)"
                   if node.is_leaf else
                   "it is not on a path between the differentiated inputs and the output, "
                   "or all its parents are leaves outside wrt")
            raise ValueError(f"units: {node.label()} cannot be a unit: {why}. Pass only nodes "
                             "that relax at op level (units='ops' lists them in "
                             "result.plan.relaxing).")
        chosen.add(node.index)
    return sorted(chosen)


class UnitPlan(Plan):
    """A plan whose relaxing nodes are chosen units, the other nodes folded or clamped.

    It has the interface every solver reads from a `Plan` (`relaxing`, `edges`,
    `depth`, `activity_target`, `fixed_activities`, ...), so stepping, the closed form
    and the read-out run on it unchanged.  `edges[u]` lists `(f, map)` pairs: the
    op-level edges from `u` to units, clamped nodes and the output; and one pair per
    unit, clamped node or output `f` that `u` reaches through folded nodes, `map(x_f)`
    being `x_f` pulled back to `u` through the folded ops (the sum over every folded
    path) at the frozen forward values.  The plan holds no per-solve state: the
    clamped activities come with the state `x` (`fixed_activities(seed)`), so a plan
    can be solved any number of times, with any seeds, in any order.

    Attributes
    ----------
    op_plan : Plan
        The op-level plan it was built from (its staged VJPs are the building blocks).
    clamped : list of int
        Non-units without a unit downstream, computed exactly from the seed.
    folded : list of int
        Non-units with a unit downstream, recomputed from the units' activities.
    """

    def __init__(self, op_plan: Plan, units: Sequence[int]):
        super().__init__(op_plan.graph, op_plan.output, op_plan.wrt, op_plan.children,
                         list(units), op_plan.relevant, op_plan.rules)
        self.op_plan = op_plan
        unit_set = set(units)
        below = set()  # relevant nodes with a unit strictly downstream
        for k in reversed(op_plan.relevant):
            if any(c in unit_set or c in below for c, _ in op_plan.children[k] or ()):
                below.add(k)
        self.clamped = [k for k in op_plan.relaxing if k not in unit_set and k not in below]
        self.folded = [k for k in op_plan.relaxing if k not in unit_set and k in below]
        self._frontier = unit_set | set(self.clamped) | {op_plan.output}
        self._segments: dict = {}
        self.stage(restage=False)

    @property
    def fixed_nodes(self) -> list[int]:
        """The output and the clamped nodes: activities that never relax."""
        return [self.output, *self.clamped]

    def fixed_activities(self, seed: Any) -> dict:
        """`{output: seed}` and every clamped node's exact value from it (one sweep
        over the head of the graph)."""
        x = {self.output: seed}
        edges = self.op_plan.edges
        for k in reversed(self.clamped):  # children come after their parents
            x[k] = sum_of_vjps(edges[k], x)
        return x

    def stage(self, restage: bool = True) -> UnitPlan:
        """Build every unit's composite edges from the op-level plan's VJPs.

        Parameters
        ----------
        restage : bool
            Restage the op-level plan first (after `Graph.replace_values`).
        """
        if restage:
            self.op_plan.stage()
        self._segments = {}
        self._edges = {u: self._composite_edges(u) for u in self.relaxing}
        self._depth = None
        return self

    def _segment(self, start: int) -> list[int]:
        """Folded nodes reachable from `start` through folded nodes, topological order."""
        if start not in self._segments:
            edges = self.op_plan.edges
            seen, stack = set(), [c for c, _ in edges[start] if c not in self._frontier]
            while stack:
                m = stack.pop()
                if m not in seen:
                    seen.add(m)
                    stack.extend(c for c, _ in edges[m] if c not in self._frontier)
            self._segments[start] = sorted(seen)
        return self._segments[start]

    def _composite_edges(self, u: int) -> list:
        """`(node, map)` pairs of unit `u` (see the class docstring)."""
        edges = self.op_plan.edges
        frontier = self._frontier
        direct = [(c, vjp) for c, vjp in edges[u] if c in frontier]
        segment = self._segment(u)
        if not segment:
            return direct
        reach: dict = {}  # folded node -> frontier nodes it reaches through folded nodes
        for m in reversed(segment):
            reach[m] = set().union(*({c} if c in frontier else reach[c] for c, _ in edges[m]))
        composite = []
        for f in sorted(set().union(*(reach[c] for c, _ in edges[u] if c in reach))):
            path = [m for m in segment if f in reach[m]]
            on_path = set(path) | {f}
            steps = [(m, [(c, vjp) for c, vjp in edges[m] if c in on_path]) for m in path]
            first = [(c, vjp) for c, vjp in edges[u] if c in on_path and c != f]
            composite.append((f, _pull_back(f, steps, first)))
        return direct + composite

    @property
    def depth(self) -> dict:
        """Longest path (in unit edges) from each unit to a clamped node or the output."""
        if self._depth is None:
            depth = dict.fromkeys(self.fixed_nodes, 0)
            for u in reversed(self.relaxing):
                depth[u] = 1 + max((depth[c] for c, _ in self._edges[u]), default=0)
            self._depth = depth
        return self._depth

    def activity_target(self, i: int, x: dict) -> Any:
        """The equilibrium value of node `i` given the activities `x`.

        For a unit, its composite edges; for any other node with children (a source
        being read out, a folded node), a local sweep over the folded nodes below it,
        with the units, clamped nodes and output taken from `x`.
        """
        if i in self._edges:
            return sum_of_vjps(self._edges[i], x)
        edges = self.op_plan.edges
        local: dict = {}
        view = ChainMap(local, x)
        for m in reversed(self._segment(i)):
            local[m] = sum_of_vjps(edges[m], view)
        return sum_of_vjps(edges[i], view)

    def describe(self) -> str:
        """One line: how many units, folded and clamped nodes, and the depth D."""
        return (f"{len(self.relaxing)} units ({len(self.folded)} folded, "
                f"{len(self.clamped)} clamped nodes), D = {self.max_depth}")


def _pull_back(f: int, steps: list, first: list):
    """The map `v -> contribution to u` of frontier node `f` through folded `steps`."""
    def pull(v):
        z = {f: v}
        for m, terms in reversed(steps):
            z[m] = sum_of_vjps(terms, z)
        return sum_of_vjps(first, z)
    return pull


def unit_plan(plan: Plan, units: Any) -> Plan:
    """The plan the relaxation runs for a choice of units.

    Parameters
    ----------
    plan : Plan
        The op-level plan (from `compile_plan`).
    units : {"ops", "layers"} or sequence
        See `select_units`.

    Returns
    -------
    Plan
        `plan` itself for `"ops"`, else a `UnitPlan`.
    """
    if isinstance(plan, UnitPlan):
        raise ValueError("unit_plan: the plan already has units; pass its op_plan.")
    if isinstance(units, str) and units == "ops":
        return plan
    return UnitPlan(plan, select_units(plan, units))
