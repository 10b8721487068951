"""Straight-line Python for a recorded graph: the replay engine of `ardiff.compile`.

Replaying a recording through the general machinery (graph nodes, staged VJP
closures, solver loops) costs several microseconds of Python per node, which is
all the time there is on scalar graphs.  A `Replay` instead writes one
Python function per recording: every node becomes one line calling its op's
NumPy forward, and every edge of the reverse sweep one call of its op's VJP
maker, with the parents' slots, constants and keyword arguments bound once.
The lines are exactly the calls the uncompiled path makes, in the same order, so
the results are bitwise identical to `ardiff.grad`.

Only the exact one-sweep solve (`method="backprop"`, or the default relaxation:
sequential schedule, eta = 1, no rules, no recording) is generated; other solver
settings replay the forward here and run their solver on the updated graph.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .graph import unwrap
from .op import OPERATOR_TYPES, Fixed, Scale, argument_fit, fit_to_argument
from .solvers.common import make_seed, warn_non_finite
from .solvers.plan import Plan

__all__ = ["LINES_PER_FUNCTION", "sweep_is_exact", "Replay"]

# Functions longer than this are split: compiling one huge function costs time and
# memory superlinearly in CPython, and a chain of calls costs nothing per line.
LINES_PER_FUNCTION = 2000


def sweep_is_exact(method: str, rules, options: dict) -> bool:
    """Whether the solve is one exact reverse sweep (and can be generated)."""
    if method == "backprop":
        return True
    return (method == "relax" and not rules and not options.get("record", False)
            and options.get("schedule", "sequential") == "sequential"
            and float(options.get("eta", 1.0)) == 1.0)


class Replay:
    """Generated forward replay (and, when exact, the reverse sweep) of one recording.

    Parameters
    ----------
    graph : Graph
        The recording; its node values and constant arguments are bound as they are.
    inputs : list of int
        Node indices of the differentiated leaves, in the order replays pass them.
    plan : Plan or None
        With a plan, `gradients` runs its exact reverse sweep.
    """

    def __init__(self, graph, inputs: list[int], plan: Plan | None = None):
        self.graph = graph
        self.plan = plan
        self.inputs = inputs
        self._names: dict[str, Any] = {"fit": fit_to_argument}
        self._bound: dict[int, str] = {}  # id(value) -> its name (values stay alive in graph)
        base = [None] * len(graph.nodes)
        lines = []
        for node in graph.nodes:
            if node.op == "constant":
                base[node.index] = node.value
            elif node.op != "input":
                lines.append(f"V[{node.index}] = {self._forward_expression(node)}")
        for k, i in enumerate(inputs):
            lines.insert(0, f"V[{i}] = L[{k}]")
        self._base = base
        self._forward = self._define("V, L", lines)
        self._backward = self._define("V, X", self._sweep_lines()) if plan else None
        self._relevant = set(plan.relevant) if plan else set()

    # -- code generation --------------------------------------------------------
    def _bind(self, name: str, value: Any) -> str:
        """A global name for `value` in the generated code (one name per object).

        Sharing names keeps the namespace small: a replay is short enough for cache
        misses on a large namespace to show.  Python floats and ints are written
        as literals (`repr` round-trips them exactly).
        """
        if type(value) in (float, int) and math.isfinite(value):
            return repr(value)
        known = self._bound.get(id(value))
        if known is None:
            known = self._bound[id(value)] = name
            self._names[name] = value
        return known

    def _arguments(self, node) -> list[str]:
        """The node's positional and keyword arguments as source text, one per item.

        Parents are read from `V`; only the other (constant) arguments are bound.
        """
        parent_of = dict(node.parents)
        args = [f"V[{parent_of[k]}]" if k in parent_of else self._bind(f"c{node.index}_{k}", a)
                for k, a in enumerate(node.args)]
        if node.kwargs:
            args.append("**" + self._bind(f"k{node.index}", node.kwargs))
        return args

    def _call(self, node, role: str, fun, *leading: str) -> str:
        """`fun(*leading, <the node's arguments>)` as source text."""
        name = self._bind(f"{role}{node.index}", fun)
        return f"{name}({', '.join([*leading, *self._arguments(node)])})"

    def _forward_expression(self, node) -> str:
        """The node's forward call, or `a * b` where that is the same computation.

        Ops declared with `infix` use the Python operator themselves for these
        operand types (see `ardiff.op.defop`); replays keep every node's dtype, so the
        choice made on the recorded values still holds.
        """
        fwd = node.op.fwd
        symbol = node.op.infix
        if symbol is None or node.kwargs or len(node.args) != 2:
            return self._call(node, "fwd", fwd)
        parents = {argnum for argnum, _ in node.parents}
        for k, value in enumerate(node.args):
            traced_float = type(value) in (np.float64, np.float32, np.ndarray) and \
                np.result_type(value).kind == "f"
            if not (traced_float if k in parents else type(value) in OPERATOR_TYPES):
                return self._call(node, "fwd", fwd)
        left, right = self._arguments(node)
        return f"{left} {symbol} {right}"

    def _edge(self, child: int, argnum: int) -> str:
        """Source of one edge's contribution: the staged VJP applied to X[child]."""
        node = self.graph.nodes[child]
        op = node.op
        maker = op.vjp_maker(argnum)
        if isinstance(maker, Fixed):  # g or -g: no call at all
            term = maker.template.format(f"X[{child}]")
        elif isinstance(maker, Scale):  # g * f'(...): the factor inline, no closure
            term = f"X[{child}] * {self._call(node, f'f{argnum}_', maker.factor, f'V[{child}]')}"
        elif op.vjp is not None:
            term = f"{self._call(node, 'vjp', op.vjp, str(argnum), f'V[{child}]')}(X[{child}])"
        else:
            term = f"{self._call(node, f'm{argnum}_', maker, f'V[{child}]')}(X[{child}])"
        fit = argument_fit(node.args[argnum], node.value)  # the check Op.local_vjp makes
        if fit is not None:
            term = (f"fit({term}, {self._bind(f's{child}_{argnum}', fit[0])}, "
                    f"{self._bind(f'd{child}_{argnum}', fit[1])})")
        return term

    def _target(self, parent: int, edges: list) -> str:
        return f"X[{parent}] = " + " + ".join(self._edge(c, k) for c, k in edges)

    def _sweep_lines(self) -> list[str]:
        plan = self.plan
        edges = plan.children  # summed in the same order as by the solvers
        relaxing = set(plan.relaxing)
        lines = [self._target(i, edges[i]) for i in reversed(plan.relaxing)]
        # source nodes (inputs) read their gradient from their children, as read_out does
        lines += [self._target(i, edges[i]) for i in plan.wrt
                  if i not in relaxing and i != plan.output and edges[i]]
        return lines

    def _define(self, params: str, lines: list[str]):
        """Compile `lines` into one callable `f(params)` (split into chunks)."""
        chunks = []
        for start in range(0, max(len(lines), 1), LINES_PER_FUNCTION):
            body = lines[start:start + LINES_PER_FUNCTION] or ["pass"]
            name = f"_part{start // LINES_PER_FUNCTION}"
            source = f"def {name}({params}):\n    " + "\n    ".join(body) + "\n"
            namespace = dict(self._names)
            exec(compile(source, f"<ardiff.compile {name}>", "exec"), namespace)
            chunks.append(namespace[name])
        if len(chunks) == 1:
            return chunks[0]

        def run(*args):
            for chunk in chunks:
                chunk(*args)
        return run

    # -- running -----------------------------------------------------------------
    def forward(self, leaves: list) -> list:
        """Every node's value for new input leaves (a list indexed by node)."""
        values = self._base.copy()
        self._forward(values, leaves)
        return values

    def gradients(self, values: list) -> list:
        """The gradients of the plan's `wrt` nodes by one exact reverse sweep."""
        plan = self.plan
        seed = make_seed(plan, None)
        activities = [None] * len(values)
        activities[plan.output] = seed
        self._backward(values, activities)
        grads = []
        for i in plan.wrt:
            if i in self._relevant:
                grads.append(activities[i])
            else:  # not connected to the output: the gradient is exactly zero
                value = unwrap(values[i])
                grads.append(np.zeros(np.shape(value), dtype=np.result_type(value)))
        warn_non_finite(plan, _Activities(activities), grads, values)
        return grads


class _Activities:
    """The activity list seen as the `{node: activity}` mapping warn_non_finite reads."""

    def __init__(self, activities: list):
        self._activities = activities

    def __contains__(self, i: int) -> bool:
        return self._activities[i] is not None

    def __getitem__(self, i: int):
        return self._activities[i]
