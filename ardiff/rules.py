"""Local-rule variants of the relaxation (Section 4 of the paper), on any graph.

A rule changes the local VJP of some edges during relaxation; the fixed point is
then no longer the exact gradient but the variant's "gradient".  Rules follow
the protocol of `ardiff.solvers.compile_plan`: `rule.local_vjp(graph, node,
argnum)` returns a replacement VJP for the edge from `node`'s argument
`argnum`, or `None` to leave the edge alone.  A rule that replaces no edge
between the wanted inputs and the output makes `compile_plan` raise.

Rules here describe their change as an *edit* of the edge (a different weight
matrix, no nonlinear derivative) and the VJP is rebuilt by the op itself with
the edited arguments.  That is what lets edits of one edge combine:
`FeedbackAlignment() + NoDerivative()` (or `compose`) applies both to a
dense layer's input edge.  In a plain list of rules the *first* rule that
matches an edge wins, as in `compile_plan`.

* `FeedbackAlignment` -- a matmul/dot/dense node's VJP w.r.t. its input uses
  a fixed random matrix `B` in place of the weight `W` (Lillicrap et al. 2016).
* `LearnedFeedback` -- `B` starts random and moves by the same step as
  `W` (the Hebbian rule of eq. 6).
* `NoDerivative` -- nonlinear elementwise ops pass the activity through
  without `f'` (eq. 7); on a dense node only the input edge is changed, the
  weight update keeps `f'` as in the paper's code.
* `combined` -- learned feedback without derivatives (eq. 8).
"""

from __future__ import annotations

import weakref
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from .graph import Graph, Node, unwrap
from .op import OPS, unbroadcast

__all__ = ["LINEAR_OPS", "nonlinear_ops", "Rule", "Compose", "compose", "weight_argnum",
           "node_key", "weight_key", "build_vjp", "FeedbackAlignment", "LearnedFeedback",
           "NoDerivative", "combined", "learning_rules"]

#: Ops with a weight operand that feedback alignment replaces.
LINEAR_OPS = ("matmul", "dot", "dense")


def nonlinear_ops() -> list[str]:
    """Names of the ops registered with `nonlinear=True`: what `NoDerivative`
    changes by default.

    At the time of writing: the dense layer, `absolute`, `square`, `sqrt`,
    `reciprocal`, `exp`/`exp2`/`expm1`, `log`/`log2`/`log10`/`log1p`,
    the trigonometric and hyperbolic functions and their inverses, `maximum`/`minimum`
    /`fmax`/`fmin` (relu written as `maximum(x, 0)`), `clip`, `arctan2`,
    `hypot`, `logaddexp`/`logaddexp2`, `expit` and `erf`.  Reductions such as
    `logsumexp` are flagged too but are skipped: "passing through" is only defined for
    elementwise ops.
    """
    return sorted(name for name, op in OPS.items() if getattr(op, "nonlinear", False))


class Rule:
    """Base class of the local rules.

    Subclasses implement `edit`; `local_vjp` (the protocol used by
    `compile_plan`) rebuilds the edge's VJP from the edit.  `a + b` composes.
    """

    def edit(self, graph: Graph, node: Node, argnum: int) -> dict | None:
        """How this rule changes the edge `(node, argnum)`, or None.

        Returns a dict with any of the keys `"weight"` (a matrix replacing the
        node's argument number `"weight_argnum"`) and `"derivative"` (False: drop
        `f'`).
        """
        raise NotImplementedError  # pragma: no cover

    def local_vjp(self, graph: Graph, node: Node, argnum: int) -> Callable | None:
        """The replacement VJP for one edge (`compile_plan` protocol), or None."""
        change = self.edit(graph, node, argnum)
        return None if change is None else build_vjp(node, argnum, change)

    def __add__(self, other: Rule) -> Compose:
        return compose(self, other)


class Compose(Rule):
    """Several rules acting together; their edits of the same edge are merged.

    When two rules set the same key of an edit, the earlier rule wins.  Every
    member must match some edge of the graph; a member that matches nothing
    raises `ValueError` when the first edge of a new graph is compiled.
    """

    def __init__(self, *rules: Rule):
        flat: list[Rule] = []
        for rule in rules:
            if isinstance(rule, Compose):
                flat.extend(rule.rules)
            elif isinstance(rule, Rule):
                flat.append(rule)
            else:
                raise TypeError(f"compose() takes ardiff.rules.Rule objects, got {rule!r}; "
                                "other rule objects can be listed side by side in rules=[...].")
        if not flat:
            raise ValueError("compose() needs at least one rule.")
        self.rules = flat
        self._checked: weakref.ref | None = None

    def _check_members(self, graph: Graph) -> None:
        # compile_plan only reports whether the composed rule matched; make sure every
        # member does (over the whole graph: the plan's pruning is not visible here).
        for rule in self.rules:
            if not any(rule.edit(graph, node, argnum) is not None
                       for node in graph.nodes for argnum, _ in node.parents):
                raise ValueError(f"{rule!r} (inside {self!r}) matches no node of this graph, "
                                 "so it would do nothing; remove it or check the graph.")

    def edit(self, graph, node, argnum):
        if self._checked is None or self._checked() is not graph:
            self._check_members(graph)
            self._checked = weakref.ref(graph)
        merged: dict = {}
        for rule in self.rules:
            change = rule.edit(graph, node, argnum)
            if change:
                for key, value in change.items():
                    merged.setdefault(key, value)
        return merged or None

    def __iter__(self):
        return iter(self.rules)

    def __repr__(self) -> str:
        return "compose(" + ", ".join(repr(r) for r in self.rules) + ")"


def compose(*rules: Rule) -> Compose:
    """Combine rules so that all of them act on every edge they match."""
    return Compose(*rules)


# -- rebuilding an edited VJP ----------------------------------------------------------
def weight_argnum(graph: Graph, node: Node, wanted: set | None = None) -> int | None:
    """Which argument of a matmul/dot/dense node is the weight, or None.

    `dense(x, W, b)`: always `W`.  `matmul`/`dot`: a 2-D operand that is not
    computed in the graph (a parameter input, a constant or an untraced array); the
    right operand when both qualify (`x @ W` convention), the left for `W @ x`.
    With `wanted` (a set of weight keys) only those weights count.
    """
    if node.op_name == "dense":
        candidates = (1,)
    elif node.op_name in ("matmul", "dot") and len(node.args) == 2:
        candidates = tuple(k for k in (1, 0) if np.ndim(unwrap(node.args[k])) == 2
                           and _weight_is_leaf(graph, node, k))
    else:
        return None
    for k in candidates:
        if wanted is None or weight_key(graph, node, k) in wanted:
            return k
    return None


def _weight_is_leaf(graph: Graph, node: Node, k: int) -> bool:
    for argnum, parent in node.parents:
        if argnum == k:
            return graph.nodes[parent].is_leaf
    return True  # an untraced array


_NAME_COUNTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def node_key(graph: Graph, node: Node) -> Any:
    """Stable key of a leaf: its name when no other node of the graph has that name,
    else `("node", index)` (indices are stable when the same program is re-traced)."""
    if node.name:
        cached = _NAME_COUNTS.get(graph)
        if cached is None or cached[0] != len(graph.nodes):
            counts: dict = {}
            for n in graph.nodes:
                if n.name:
                    counts[n.name] = counts.get(n.name, 0) + 1
            cached = _NAME_COUNTS[graph] = (len(graph.nodes), counts)
        if cached[1].get(node.name) == 1:
            return node.name
    return ("node", node.index)


def weight_key(graph: Graph, node: Node, k: int) -> Any:
    """Key of the weight in argument `k` of `node` (see `node_key`); an
    untraced weight is keyed by the consuming node and argument."""
    for argnum, parent in node.parents:
        if argnum == k:
            return node_key(graph, graph.nodes[parent])
    return ("untraced", node.index, k)


def build_vjp(node: Node, argnum: int, change: Mapping) -> Callable:
    """The VJP of edge `(node, argnum)` with `change` applied (see `Rule.edit`).

    The paper's variants are defined on real networks: an edge with a complex value at
    either end is refused (TypeError naming the node) rather than given a guessed meaning.
    """
    if np.iscomplexobj(unwrap(node.value)) or np.iscomplexobj(unwrap(node.args[argnum])):
        raise TypeError(
            f"Local rule edit {sorted(change)} on {node.label()}: the relaxation's rule "
            "variants (feedback alignment, learned feedback, no derivative) are defined for "
            "real-valued graphs and this edge carries complex values. Relax complex graphs "
            "with the exact rule (no rules=), or apply the rule to a real part of the graph.")
    args = list(node.args)
    kwargs = dict(node.kwargs)
    if "weight" in change:
        args[change["weight_argnum"]] = change["weight"]
    if change.get("derivative") is False:
        if node.op_name == "dense":
            kwargs["activation"] = "linear"
        else:
            shape = np.shape(unwrap(node.args[argnum]))

            def identity(g):
                return g if np.shape(unwrap(g)) == shape else unbroadcast(g, shape)
            return identity
    return node.op.local_vjp(argnum, node.value, tuple(args), kwargs)


# -- the rules ---------------------------------------------------------------------------
def _refs_to_keys(graph: Graph, refs: Iterable | None) -> set | None:
    if refs is None:
        return None
    keys = set()
    for ref in refs:
        if isinstance(ref, str):
            keys.add(ref)
        else:
            keys.add(node_key(graph, graph.node_of(ref)))
    return keys


class FeedbackAlignment(Rule):
    """Random fixed feedback: a linear node's VJP w.r.t. its input uses `B` for `W`.

    Parameters
    ----------
    seed : int
        Seed of the random matrices.  Each weight's `B` is drawn from its own stream
        (derived from `seed` and the weight's key), so it does not depend on the order
        in which weights are met.
    scale : float, optional
        Standard deviation of `B`; by default the standard deviation of the weight
        when `B` is first drawn (with the paper's N(0, 0.05²) initialisation this is
        the original code's choice for the backward weights).
    weights : iterable, optional
        Restrict the rule to these weights (names, or traced values / nodes of the
        graph).  By default every weight of a `matmul`, `dot` or `dense` node
        (see `weight_argnum`).

    Notes
    -----
    `B` is kept per weight *key* (`node_key`): the weight node's name, or its
    index when it is unnamed or its name is not unique.
    A graph re-traced every batch with the same parameter names (as
    [`ardiff.nn.MLP.trace`][ardiff.nn.MLP.trace] does) therefore keeps the same `B`.  The matrices
    are in `self.B` (key -> array shaped like the weight).
    """

    def __init__(self, seed: int = 0, scale: float | None = None,
                 weights: Iterable | None = None):
        self.seed = int(seed)
        self.scale = scale
        self.weights = None if weights is None else list(weights)
        self.B: dict[Any, np.ndarray] = {}

    def _draw(self, key: Any, like: np.ndarray) -> np.ndarray:
        std = self.scale
        if std is None:
            std = float(np.std(like))
            if not std > 0:
                std = 1.0 / np.sqrt(max(like.shape[0], 1))
        stream = np.random.default_rng([self.seed, zlib.crc32(repr(key).encode())])
        return (std * stream.standard_normal(like.shape)).astype(np.result_type(like))

    def feedback_matrix(self, graph: Graph, node: Node) -> tuple[int, np.ndarray] | None:
        """`(weight argnum, B)` for `node`'s weight (`B` drawn on first use), or None
        if the node has no weight this rule applies to."""
        k = weight_argnum(graph, node, _refs_to_keys(graph, self.weights))
        if k is None:
            return None
        key = weight_key(graph, node, k)
        W = np.asarray(unwrap(node.args[k]))
        B = self.B.get(key)
        if B is None or B.shape != W.shape:
            B = self.B[key] = self._draw(key, W)
        return k, B

    def edit(self, graph, node, argnum):
        if node.op_name not in LINEAR_OPS:
            return None
        k = weight_argnum(graph, node, _refs_to_keys(graph, self.weights))
        if k is None or argnum == k or (node.op_name == "dense" and argnum != 0):
            return None  # only the edge to the layer's input changes
        _, B = self.feedback_matrix(graph, node)
        return {"weight": B, "weight_argnum": k}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(seed={self.seed})"


class LearnedFeedback(FeedbackAlignment):
    """Feedback alignment whose matrices learn: `B` moves by the same step as `W`.

    The paper's eq. 6 updates the backward weights with the same Hebbian product as
    the forward weights (`B -= lr * dW` in its code, with `B` stored transposed);
    here `B` is stored like `W`, so `B += step` where `step` is the change just
    applied to `W`.  `B - W` therefore stays equal to its initial value.

    Parameters are as for `FeedbackAlignment`.
    """

    def learn(self, steps: Mapping[Any, np.ndarray]) -> None:
        """Move each `B` by the step its weight took: `steps` maps weight key -> step.

        Keys without a `B` yet (weights not met so far) are ignored.
        """
        for key, step in steps.items():
            B = self.B.get(key)
            if B is not None:
                B += np.asarray(step, dtype=B.dtype)

    def hebbian_update(self, result: Any, lr: float) -> None:
        """`B -= lr * dL/dW` for every weight in a solve's `wrt` that has a `B`.

        `result` is the `Result` of [`ardiff.relax`][ardiff.relax] run with this
        rule; this is eq. 6 with plain SGD.
        """
        graph = result.plan.graph
        steps = {}
        for i, g in zip(result.plan.wrt, result.grads):
            steps[node_key(graph, graph.nodes[i])] = -lr * np.asarray(unwrap(g))
        self.learn(steps)


class NoDerivative(Rule):
    """Drop the nonlinear derivative: nonlinear elementwise ops pass the activity through.

    During relaxation the VJP of a matching node w.r.t. each traced argument becomes
    `g -> g` (broadcasting undone); on a `dense` node only the input edge changes
    (`g -> g @ W.T`) while its weight and bias edges keep `f'`, as in the paper's
    code.

    Parameters
    ----------
    ops : sequence of str, optional
        The op names treated as nonlinearities; default `nonlinear_ops` (every op
        registered with `nonlinear=True`).  Restrict it (e.g. `ops=["tanh"]`) when a
        graph also contains nonlinear ops that are not activations (a loss's `log`).
    """

    def __init__(self, ops: Sequence[str] | None = None):
        if ops is not None:
            unknown = sorted(set(ops) - set(OPS))
            if unknown:
                raise ValueError(f"NoDerivative: unknown op name(s) {unknown}; known "
                                 f"nonlinear ops: {nonlinear_ops()}.")
        self.ops = None if ops is None else tuple(ops)

    def _applies(self, node: Node) -> bool:
        if node.is_leaf:
            return False
        if self.ops is None:
            return bool(getattr(node.op, "nonlinear", False))
        return node.op_name in self.ops

    def edit(self, graph, node, argnum):
        if not self._applies(node):
            return None
        if node.op_name == "dense":
            return {"derivative": False} if argnum == 0 else None
        out_shape = np.shape(unwrap(node.value))
        arg_shape = np.shape(unwrap(node.args[argnum]))
        try:
            elementwise = np.broadcast_shapes(arg_shape, out_shape) == out_shape
        except ValueError:
            elementwise = False
        return {"derivative": False} if elementwise else None

    def __repr__(self) -> str:
        return "NoDerivative()" if self.ops is None else f"NoDerivative(ops={list(self.ops)})"


def combined(seed: int = 0, scale: float | None = None, ops: Sequence[str] | None = None
             ) -> Compose:
    """Learned feedback weights and no nonlinear derivative together (eq. 8)."""
    return compose(LearnedFeedback(seed=seed, scale=scale), NoDerivative(ops=ops))


def learning_rules(rules: Any) -> list[LearnedFeedback]:
    """The `LearnedFeedback` rules inside a rule, a composition or a list."""
    if rules is None:
        return []
    items = rules if isinstance(rules, (list, tuple, Compose)) else [rules]
    out = []
    for rule in items:
        if isinstance(rule, Compose):
            out.extend(learning_rules(list(rule.rules)))
        elif isinstance(rule, LearnedFeedback):
            out.append(rule)
    return out
