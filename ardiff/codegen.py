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

Scalar programs (every node a 0-d float64 of an op with a `scalar` form) get a second
pair of functions working on Python floats: `a + b` on two floats is the same IEEE
operation as on two `np.float64`, and a `math` function is used only where it
gives NumPy's bits (`math_matches_numpy`; otherwise the ufunc is called).  Where
Python raises instead of returning inf or NaN (division by zero, `math.log(0)`,
overflow in `math.exp`), or where a result is not finite, the replay runs the
NumPy code instead, so warnings and values stay those of `ardiff.grad`.
"""

from __future__ import annotations

import functools
import math
import re
from typing import Any

import numpy as np

from .graph import Released, unwrap
from .op import OPERATOR_TYPES, Fixed, Scale, argument_fit, fit_to_argument
from .ops.shape import is_basic_index
from .solvers.common import make_seed, warn_non_finite
from .solvers.plan import Plan, add_into

__all__ = ["LINES_PER_FUNCTION", "FUSED_LINES", "math_matches_numpy",
           "slice_sum", "Replay"]

# Functions longer than this are split: compiling one huge function costs time and
# memory superlinearly in CPython, and a chain of calls costs nothing per line.
LINES_PER_FUNCTION = 2000
#: Scalar programs up to this many lines run as one function on local variables.
FUSED_LINES = 50_000


_MATH_NAMES = {"arctan": "atan"}
#: Errors Python float arithmetic and `math` raise where NumPy returns inf or NaN.
_FLOAT_ERRORS = (ArithmeticError, ValueError)
_FALLBACK = object()


@functools.cache
def math_matches_numpy(name: str) -> bool:
    """Whether `math`'s function gives the bits of NumPy's float64 ufunc `name` here.

    Both are often the C library's function, but NumPy has its own SIMD
    implementations of some (float64 `tanh` on AVX2, `exp`/`log`/`sin`/... on
    AVX-512 builds), which differ in the last bit on a fraction of inputs.  The
    check runs once per process on 5,000 fixed points over several scales, through
    both NumPy's array loop and its 0-d path (which replays call); a function that
    differs anywhere stays a NumPy call.  Points where `math` raises are skipped:
    the replay falls back to NumPy there.
    """
    ufunc = getattr(np, name)
    fun = getattr(math, _MATH_NAMES.get(name, name))
    rng = np.random.default_rng(20261130)
    points = np.concatenate(
        [rng.uniform(-s, s, 800) for s in (1e-6, 1.0, 4.0, 30.0, 700.0, 1e6)]
        + [np.array([0.0, -0.0, 0.5, 1.0, -1.0, np.pi, 2.0**-1022, 1e-300])])
    with np.errstate(all="ignore"):
        wanted = ufunc(points).tolist()
        single = [ufunc(np.float64(p)) for p in points[::5]]
    for k, (p, want) in enumerate(zip(points.tolist(), wanted)):
        try:
            got = fun(p)
        except _FLOAT_ERRORS:
            continue
        if k % 5 == 0:
            want = [want, float(single[k // 5])]
        else:
            want = [want]
        if any(np.float64(got).tobytes() != np.float64(w).tobytes() for w in want):
            return False
    return True


def scalar_function(name: str):
    """The function generated scalar code calls for NumPy's `name`."""
    if name == "abs":  # |x| is exact: Python's abs is np.absolute on floats
        return abs
    if name == "sign":  # NumPy's own (sign(0) = 0, sign(NaN) = NaN)
        return np.sign
    if math_matches_numpy(name):
        return getattr(math, _MATH_NAMES.get(name, name))
    return getattr(np, name)


def slice_sum(shape: tuple, dtype, indices: tuple, parts: tuple, general):
    """Zeros with `parts[k]` added at `indices[k]` (disjoint basic indices, in order).

    Falls back to `general()` (the sum of the slices' VJPs) when a part is not an
    array of `dtype`, as a replay at another dtype would give.
    """
    out = np.zeros(shape, dtype=dtype)
    for index, part in zip(indices, parts):
        if type(part) is not np.ndarray or part.dtype != dtype:
            return general()
        out[index] += part
    return out


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
        self._names: dict[str, Any] = {"fit": fit_to_argument, "slice_sum": slice_sum,
                                       "add_into": add_into}
        #: Targets written as `slice_sum` (disjoint slices of one array, see `_target`).
        self.slice_sums = 0
        self._bound: dict[int, str] = {}  # id(value) -> its name (values stay alive in graph)
        base = [None] * len(graph.nodes)
        lines = []
        released = self._released_after(plan) if plan is not None else {}
        for node in graph.nodes:
            if node.op == "constant":
                base[node.index] = node.value
            elif node.op != "input":
                lines.append(f"V[{node.index}] = {self._forward_expression(node)}")
                lines += released.get(node.index, ())
        for k, i in enumerate(inputs):
            lines.insert(0, f"V[{i}] = L[{k}]")
        self._base = base
        self._forward = self._define("V, L", lines)
        self._backward = self._define("V, X", self._sweep_lines()) if plan else None
        self._relevant = set(plan.relevant) if plan else set()
        #: The program on Python floats (see `_scalar_program`), or None
        self.scalar = self._scalar_program() if plan else None

    # -- code generation --------------------------------------------------------
    def _released_after(self, plan: Plan) -> dict:
        """Lines releasing forward values that the sweep does not read, by the line after
        which each value is last read in the forward pass.

        The replay's counterpart of a lean recording (`ardiff.graph.Released`): a value
        no staged VJP reads (per the ops' `reads=` declarations) is replaced by a
        stand-in with its shape and dtype once the forward pass is done with it, so a
        replay holds about what a hand-written backward pass keeps (keeping every
        intermediate of an RNN alive made its hand-written code 1.5 times slower here).
        Values guards read, the output and the leaves are kept.
        """
        graph = self.graph
        if graph.guards:
            return {}
        nodes = graph.nodes
        needed = {plan.output}
        for parent in [*plan.relaxing, *plan.wrt]:
            for child, argnum in plan.children[parent] or ():
                node = nodes[child]
                read = node.op.reads_of(argnum, len(node.args))
                slots = dict(node.parents)
                if read is None:
                    needed.add(child)
                    needed.update(slots.values())
                    continue
                for r in read:
                    if r == "ans":
                        needed.add(child)
                    elif r in slots:
                        needed.add(slots[r])
        last_use = {}
        for node in nodes:
            for _, p in node.parents:
                last_use[p] = node.index
        released: dict = {}
        for node in nodes:
            i = node.index
            value = node.value
            if node.is_leaf or i in needed or type(value) is not np.ndarray:
                continue
            stand_in = self._bind(f"r{i}", Released(value, i, node.op_name))
            released.setdefault(last_use.get(i, i), []).append(f"V[{i}] = {stand_in}")
        return released

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
        general = " + ".join(self._edge(c, k) for c, k in edges)
        slices = self._disjoint_slices(parent, edges)
        if slices is None:
            return f"X[{parent}] = {general}"
        self.slice_sums += 1
        value = unwrap(self.graph.nodes[parent].value)
        where = self._bind(f"i{parent}", tuple(slices))
        shape = self._bind(f"s{parent}", value.shape)
        dtype = self._bind(f"t{parent}", value.dtype)
        parts = ", ".join(f"X[{c}]" for c, _ in edges)
        return (f"X[{parent}] = slice_sum({shape}, {dtype}, {where}, ({parts},), "
                f"lambda: {general})")

    def _disjoint_slices(self, parent: int, edges: list) -> list | None:
        """The basic indices when every edge of `parent` reads a disjoint slice of it.

        The sum of the slices' VJPs (each a zero array with one slice filled) is then
        one zero array with each slice added in, `slice_sum`: the same bits, since each
        element is one gradient entry plus zeros (-0.0 + 0.0 is 0.0 both ways).
        """
        if len(edges) < 2:
            return None
        value = unwrap(self.graph.nodes[parent].value)
        if type(value) is not np.ndarray:
            return None
        indices = []
        for child, argnum in edges:
            node = self.graph.nodes[child]
            index = node.args[1] if len(node.args) == 2 else None
            if (getattr(node.op, "name", None) != "getitem" or argnum != 0 or node.kwargs
                    or len(node.parents) != 1 or not is_basic_index(index)
                    or np.result_type(unwrap(node.value)) != value.dtype):
                return None
            indices.append(index)
        count = np.zeros(value.shape, dtype=np.int8)
        for index in indices:
            count[index] += 1
        return indices if count.max() <= 1 else None

    def _sweep_lines(self) -> list[str]:
        """The reverse sweep as lines, releasing each activity after its last reader.

        A source's gradient (a parameter's read-out) is summed on the way, as
        `ardiff.solvers.reverse.sweep_releasing` does: each child's term added as
        soon as the child's activity is written, in the read-out's order (from the
        last child down), so the activities need not all live to the end.
        """
        plan = self.plan
        edges = plan.children  # summed in the same order as by the solvers
        sources = plan.sources
        at_the_end = [i for i in sources if self._disjoint_slices(i, edges[i]) is not None]
        summed_on_the_way: dict = {}  # child -> [(source, argnum)], in summing order
        for i in sources:
            if i not in at_the_end:
                for child, argnum in edges[i]:
                    summed_on_the_way.setdefault(child, []).append((i, argnum))
        keep = {plan.output, *plan.wrt}
        for i in at_the_end:
            keep.update(child for child, _ in edges[i])
        last_reader = {}
        for i in plan.relaxing:  # ascending: the smallest relaxing parent writes last
            for child, _ in edges[i]:
                last_reader.setdefault(child, i)
        added = dict.fromkeys(sources, 0)  # terms summed so far
        nodes = self.graph.nodes
        in_place = {i for i in sources if type(nodes[i].value) is np.ndarray and
                    nodes[i].value.ndim > 0}

        def add_terms(child: int) -> list[str]:
            out = []
            for source, argnum in summed_on_the_way.get(child, ()):
                term = self._edge(child, argnum)
                count = added[source]
                if count == 0:
                    out.append(f"X[{source}] = {term}")
                elif count == 1 or source not in in_place:
                    out.append(f"X[{source}] = X[{source}] + {term}")
                else:  # the sum is an array the second term created: add in place
                    out.append(f"X[{source}] = add_into(X[{source}], {term})")
                added[source] = count + 1
            if child not in keep and child not in last_reader and child in summed_on_the_way:
                out.append(f"X[{child}] = None")  # read by sources only: done with it
            return out

        lines = add_terms(plan.output)
        for i in reversed(plan.relaxing):
            lines.append(self._target(i, edges[i]))
            lines += [f"X[{child}] = None" for child in dict.fromkeys(c for c, _ in edges[i])
                      if last_reader.get(child) == i and child not in keep]
            lines += add_terms(i)
        lines += [self._target(i, edges[i]) for i in at_the_end]
        return lines

    # -- scalar programs on Python floats ---------------------------------------
    @staticmethod
    def _literal(value: Any) -> str | None:
        """`value` as a float literal when it is a finite real scalar, else None."""
        if type(value) in (float, np.float64) and math.isfinite(value):
            text = repr(float(value))
        elif type(value) is int and abs(value) <= 2**53:  # converted exactly, as by NumPy
            text = repr(value)
        else:
            return None
        return f"({text})" if text.startswith("-") else text

    def _scalar_operands(self, node, value_of) -> list[str] | None:
        parent_of = dict(node.parents)
        operands = []
        for k, arg in enumerate(node.args):
            if k in parent_of:
                operands.append(value_of(parent_of[k]))
            else:
                literal = self._literal(arg)
                if literal is None:
                    return None
                operands.append(literal)
        return operands

    def _scalar_program(self):
        """The code of a scalar program on Python floats (see `_scalar_replay`), or None.

        Only when every node is a 0-d float64 of an op with a scalar form (`Op.scalar`,
        declared in its `defop`) with literal
        constants, and no edge needs broadcasting undone.  Without guards, and up to
        `FUSED_LINES` lines, forward and sweep are one function on local variables
        (`("fused", f)`, `f(leaves) -> (value, gradients)`): a local is cheaper to
        read and write than a list item, and nothing but the output and gradients is
        needed afterwards.  Otherwise two functions fill value and activity lists
        (`("lists", forward, backward, base)`), which guards read.
        """
        graph, plan = self.graph, self.plan
        fused = not graph.guards and 2 * len(graph.nodes) <= FUSED_LINES
        value_of = "v{}".format if fused else "V[{}]".format
        activity_of = "x{}".format if fused else "X[{}]".format
        base = [None] * len(graph.nodes)
        forward, names, namespace = [], set(), {}
        for node in graph.nodes:
            if node.op == "constant":
                value = node.value
                base[node.index] = float(value) if type(value) is np.float64 else value
                if fused:
                    literal = self._literal(value)
                    if literal is None:
                        literal = f"c{node.index}"
                        namespace[literal] = base[node.index]
                    forward.append(f"v{node.index} = {literal}")
                continue
            if type(node.value) is not np.float64:
                return None
            if node.op == "input":
                continue
            entry = node.op.scalar
            operands = self._scalar_operands(node, value_of)
            if entry is None or node.kwargs or operands is None or \
                    len(operands) != (2 if "{1}" in entry[0] else 1):
                return None
            forward.append(f"{value_of(node.index)} = {entry[0].format(*operands)}")
            names.update(re.findall(r"([a-z][a-z0-9]*)\(", entry[0]))
        for k, i in enumerate(self.inputs):
            forward.insert(0, f"{value_of(i)} = L[{k}]")
        terms = {}
        for parent in [*reversed(plan.relaxing), *plan.wrt]:
            for child, argnum in plan.children[parent] or ():
                node = graph.nodes[child]
                maker = node.op.vjp_maker(argnum)
                if argument_fit(node.args[argnum], node.value) is not None:
                    return None
                if isinstance(maker, Fixed):
                    term = maker.template.format(activity_of(child))
                else:
                    factors = node.op.scalar[1]
                    if factors is None or not isinstance(maker, Scale):
                        return None
                    factor = factors[argnum].format(*self._scalar_operands(node, value_of),
                                                    ans=value_of(child))
                    names.update(re.findall(r"([a-z][a-z0-9]*)\(", factor))
                    term = f"{activity_of(child)} * ({factor})"
                terms[(child, argnum)] = term
        targets = [*reversed(plan.relaxing), *plan.sources]
        backward = [f"{activity_of(i)} = " + " + ".join(terms[edge] for edge in plan.children[i])
                    for i in targets]
        namespace.update({name: scalar_function(name) for name in names})
        if not fused:
            return ("lists", self._define("V, L", forward, namespace),
                    self._define("V, X", backward, namespace), base)
        grads = ", ".join(f"x{i}" if i in self._relevant else "0.0" for i in plan.wrt)
        body = [*forward, f"x{plan.output} = 1.0", *backward,
                f"return v{plan.output}, [{grads}]"]
        # functions and constants as parameter defaults: a local is read without the
        # global lookup's inline cache, which also keeps the (long) bytecode shorter
        defaults = "".join(f", {name}={name}" for name in sorted(namespace))
        source = f"def _scalar(L{defaults}):\n    " + "\n    ".join(body) + "\n"
        namespace = dict(self._names, **namespace)
        exec(compile(source, "<ardiff.compile scalar>", "exec"), namespace)
        return ("fused", namespace["_scalar"])

    def replay(self, leaves: list, guards: list):
        """`(output value, gradients)` at new leaves; None if a guard answers otherwise.

        Needs a plan.  Scalar programs run on Python floats (each op's `Op.scalar`) and
        fall back to the NumPy code where Python raises or a result is not finite.
        """
        if self.scalar is not None and all(type(v) in (float, np.float64) for v in leaves):
            done = self._scalar_replay(leaves, guards)
            if done is not _FALLBACK:
                return done
        values = self.forward(leaves)
        if not all(guard.holds(values) for guard in guards):
            return None
        return values[self.plan.output], self.gradients(values)

    def _scalar_replay(self, leaves: list, guards: list):
        """The scalar program's value and gradients, None (a guard), or `_FALLBACK`."""
        plan = self.plan
        try:
            with np.errstate(all="ignore"):  # ufuncs on floats; NumPy's replay warns instead
                if self.scalar[0] == "fused":
                    value, grads = self.scalar[1]([float(v) for v in leaves])
                else:
                    _, forward, backward, base = self.scalar
                    values = base.copy()
                    activities = [None] * len(values)
                    activities[plan.output] = 1.0
                    forward(values, [float(v) for v in leaves])
                    if guards:  # guards read NumPy scalars, as when they were recorded
                        seen = [np.float64(v) if type(v) is float else v for v in values]
                        if not all(guard.holds(seen) for guard in guards):
                            return None
                    backward(values, activities)
                    value = values[plan.output]
                    relevant = self._relevant
                    grads = [activities[i] if i in relevant else 0.0 for i in plan.wrt]
        except _FLOAT_ERRORS:
            return _FALLBACK
        if not (math.isfinite(value) and all(math.isfinite(g) for g in grads)):
            return _FALLBACK
        return np.float64(value), [np.float64(g) for g in grads]

    def _define(self, params: str, lines: list[str], extra: dict | None = None):
        """Compile `lines` into one callable `f(params)` (split into chunks).

        `extra` adds names to the generated code's namespace.
        """
        chunks = []
        for start in range(0, max(len(lines), 1), LINES_PER_FUNCTION):
            body = lines[start:start + LINES_PER_FUNCTION] or ["pass"]
            name = f"_part{start // LINES_PER_FUNCTION}"
            source = f"def {name}({params}):\n    " + "\n    ".join(body) + "\n"
            namespace = dict(self._names, **(extra or {}))
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
