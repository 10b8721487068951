"""Small drawn graphs with an independent dense reference for the solvers.

A graph is a list of steps (op name, parent positions) over a few inputs, drawn by
hypothesis: parents are any earlier values, so the graphs have reused nodes (`x * x`,
`s * s`), skip connections (`h * exp(h)`) and fan-out, not only chains and layers.
Every dangling value is summed into a scalar output.

The same description is recorded with `ardiff.numpy` and evaluated here in plain
NumPy with derivatives written out by hand (not ardiff's VJPs or Jacobians).  From
those the reference assembles the dense fixed-point system of docs/theory.md,

    (I - N) x = b,   N[i, j] = J_ji^T (edge i -> j between relaxing nodes),
                     b_i = J_oi^T seed,

and gives the exact activities (a dense solve), the explicit Euler iterates of the
three schedules (parallel, sequential, continuous via `expm`) and the input gradients
read out from any state.  Values stay of order one (tanh, sin, exp of bounded values,
products of two of them).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.linalg
from hypothesis import strategies as st

import ardiff
import ardiff.numpy as anp

VEC = 3  # length of the vector-valued nodes


def _bcast(in_size: int, out_size: int) -> np.ndarray:
    """d(broadcast input)/d(input): identity, or a column of ones for a scalar."""
    return np.eye(out_size) if in_size == out_size else np.ones((out_size, 1))


# name: (arity, ardiff op, numpy forward, partial derivatives as elementwise arrays)
UNARY = {
    "tanh": (anp.tanh, np.tanh, lambda a, y: 1.0 - y * y),
    "sin": (anp.sin, np.sin, lambda a, y: np.cos(a)),
    "exp": (anp.exp, np.exp, lambda a, y: y),
    "arctan": (anp.arctan, np.arctan, lambda a, y: 1.0 / (1.0 + a * a)),
    "neg": (anp.negative, np.negative, lambda a, y: -np.ones_like(a)),
}
BINARY = {
    "add": (anp.add, np.add, lambda a, b: (np.ones_like(a * b), np.ones_like(a * b))),
    "mul": (anp.multiply, np.multiply, lambda a, b: (b + 0.0 * a, a + 0.0 * b)),
    "sub": (anp.subtract, np.subtract, lambda a, b: (np.ones_like(a * b), -np.ones_like(a * b))),
}
OPS = sorted(UNARY) + sorted(BINARY) + ["sum"]


@dataclass
class Reference:
    """A drawn graph, recorded with ardiff and evaluated independently."""

    steps: list  # (op, parent positions) per non-input value, in order
    inputs: list  # input values
    values: list = field(default_factory=list)  # every value, inputs first
    graph: object = None
    traced: list = field(default_factory=list)
    jac: dict = field(default_factory=dict)  # (child, parent, argnum) -> dense Jacobian

    @property
    def output(self) -> int:
        return len(self.values) - 1

    @property
    def relaxing(self) -> list[int]:
        return list(range(len(self.inputs), self.output))

    def depth(self) -> int:
        """D: relaxing nodes on the longest path to the output (1 next to it)."""
        depth = {self.output: 0}
        for i in reversed(self.relaxing):
            depth[i] = 1 + max(depth[c] for (c, p, _) in self.jac if p == i)
        return max((depth[i] for i in self.relaxing), default=0)

    def source(self) -> str:
        names = [f"x{i}" for i in range(len(self.inputs))]
        lines = [f"x{i} = {np.array2string(np.asarray(v), precision=3)}"
                 for i, v in enumerate(self.inputs)]
        for op, parents in self.steps:
            names.append(f"v{len(names)}")
            lines.append(f"{names[-1]} = {op}({', '.join(names[p] for p in parents)})")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"Reference(\n{self.source()}\n)"

    # -- the dense system ---------------------------------------------------------------
    def blocks(self) -> tuple[dict, int]:
        offsets, size = {}, 0
        for i in self.relaxing:
            offsets[i] = size
            size += int(np.size(self.values[i]))
        return offsets, size

    def system(self, seed: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
        """Dense N and b of the relaxing nodes (flattened, in recording order)."""
        offsets, size = self.blocks()
        N, b = np.zeros((size, size)), np.zeros(size)
        for (child, parent, _), J in self.jac.items():
            if parent not in offsets:
                continue
            rows = slice(offsets[parent], offsets[parent] + J.shape[1])
            if child == self.output:
                b[rows] += J.T @ np.ravel(seed)
            else:
                N[rows, offsets[child]:offsets[child] + J.shape[0]] += J.T
        return N, b

    def split(self, flat: np.ndarray) -> dict:
        offsets, _ = self.blocks()
        return {i: flat[offsets[i]:offsets[i] + np.size(self.values[i])].reshape(
            np.shape(self.values[i])) for i in self.relaxing}

    def flat(self, activities: dict) -> np.ndarray:
        return np.concatenate([np.ravel(activities[i]) for i in self.relaxing] + [np.zeros(0)])

    def exact(self, seed: float = 1.0) -> np.ndarray:
        N, b = self.system(seed)
        return np.linalg.solve(np.eye(len(b)) - N, b)

    def read_out(self, flat: np.ndarray, seed: float = 1.0) -> list[np.ndarray]:
        """Input gradients from the relaxing activities: sum of J^T x_child."""
        x = self.split(flat)
        x[self.output] = np.asarray(seed, dtype=float)
        grads = [np.zeros(np.size(v)) for v in self.inputs]
        for (child, parent, _), J in self.jac.items():
            if parent < len(self.inputs):
                grads[parent] += J.T @ np.ravel(x[child])
        return [g.reshape(np.shape(v)) for g, v in zip(grads, self.inputs)]

    def forward_start(self) -> np.ndarray:
        return self.flat({i: self.values[i] for i in self.relaxing})

    def stepped(self, schedule: str, eta: float, steps: int, init: str = "zeros",
                seed: float = 1.0) -> np.ndarray:
        """Explicit Euler on dx/dt = N x + b - x: the state after `steps` steps."""
        N, b = self.system(seed)
        x = self.forward_start() if init == "forward" else np.zeros(len(b))
        offsets, _ = self.blocks()
        order = [(offsets[i], offsets[i] + np.size(self.values[i]))
                 for i in reversed(self.relaxing)]
        for _ in range(steps):
            if schedule == "parallel":
                x = (1.0 - eta) * x + eta * (N @ x + b)
            else:  # top-down Gauss-Seidel: children (later in order) first
                for lo, hi in order:
                    x[lo:hi] = (1.0 - eta) * x[lo:hi] + eta * (N[lo:hi] @ x + b[lo:hi])
        return x

    def flowed(self, time: float, init: str = "zeros", seed: float = 1.0) -> np.ndarray:
        """The continuous-time state x(t) = x* + expm(-(I - N) t) (x(0) - x*)."""
        N, b = self.system(seed)
        start = self.forward_start() if init == "forward" else np.zeros(len(b))
        star = self.exact(seed)
        return star + scipy.linalg.expm(-(np.eye(len(b)) - N) * time) @ (start - star)

    # -- units: the same system with the non-units eliminated ------------------------
    def unit_system(self, units: list, seed: float = 1.0):
        """(M, c, lift) of the units: x_U <- M x_U + c, the non-units eliminated,
        x_V = (I - N_VV)^-1 (N_VU x_U + b_V); lift(x_U) gives the full state."""
        N, b = self.system(seed)
        offsets, _ = self.blocks()

        def rows(nodes):
            return [r for i in nodes for r in range(offsets[i],
                                                    offsets[i] + np.size(self.values[i]))]

        U = rows(sorted(units))
        V = rows([i for i in self.relaxing if i not in units])
        solve = np.linalg.solve(np.eye(len(V)) - N[np.ix_(V, V)], np.eye(len(V))) \
            if V else np.zeros((0, 0))
        M = N[np.ix_(U, U)] + N[np.ix_(U, V)] @ solve @ N[np.ix_(V, U)]
        c = b[U] + N[np.ix_(U, V)] @ solve @ b[V]

        def lift(xu):
            full = np.zeros(len(b))
            full[U] = xu
            if V:
                full[V] = solve @ (N[np.ix_(V, U)] @ xu + b[V])
            return full

        return M, c, lift, U

    def stepped_units(self, units: list, schedule: str, eta: float, steps: int,
                      init: str = "zeros") -> np.ndarray:
        """The full state after `steps` Euler steps of the unit-level system."""
        M, c, lift, U = self.unit_system(units)
        x = self.forward_start()[U] if init == "forward" else np.zeros(len(U))
        offsets, _ = self.blocks()
        blocks, at = [], 0
        for i in sorted(units):
            n = int(np.size(self.values[i]))
            blocks.append((at, at + n))
            at += n
        for _ in range(steps):
            if schedule == "parallel":
                x = (1.0 - eta) * x + eta * (M @ x + c)
            else:
                for lo, hi in reversed(blocks):
                    x[lo:hi] = (1.0 - eta) * x[lo:hi] + eta * (M[lo:hi] @ x + c[lo:hi])
        return lift(x)

    def loss(self, *inputs) -> float:
        return float(evaluate(self.steps, list(inputs))[-1])


def evaluate(steps: list, inputs: list, jac: dict | None = None) -> list:
    """Forward in plain NumPy; fills `jac` with every edge's dense Jacobian."""
    values = [np.asarray(v, dtype=float) for v in inputs]
    for op, parents in steps:
        k = len(values)
        args = [values[p] for p in parents]
        if op == "sum":
            y = np.sum(args[0])
            if jac is not None:
                jac[(k, parents[0], 0)] = np.ones((1, np.size(args[0])))
        elif op in UNARY:
            y = UNARY[op][1](args[0])
            if jac is not None:
                jac[(k, parents[0], 0)] = np.diag(np.ravel(UNARY[op][2](args[0], y)))
        else:
            y = BINARY[op][1](*args)
            partials = BINARY[op][2](*args)
            if jac is not None:
                for argnum, (p, d) in enumerate(zip(parents, partials)):
                    jac[(k, p, argnum)] = np.diag(np.ravel(d + 0.0 * y)) @ _bcast(
                        np.size(args[argnum]), np.size(y))
        values.append(np.asarray(y, dtype=float))
    return values


def record(steps: list, inputs: list) -> tuple:
    """The same description recorded by ardiff: (graph, traced values)."""
    g = ardiff.Graph()
    traced = [g.input(np.array(v, dtype=float), name=f"x{i}") for i, v in enumerate(inputs)]
    for op, parents in steps:
        args = [traced[p] for p in parents]
        if op == "sum":
            traced.append(anp.sum(args[0]))
        elif op in UNARY:
            traced.append(UNARY[op][0](args[0]))
        else:
            traced.append(BINARY[op][0](*args))
    return g, traced


def build(steps: list, inputs: list) -> Reference:
    ref = Reference(steps=list(steps), inputs=[np.asarray(v, dtype=float) for v in inputs])
    ref.values = evaluate(ref.steps, ref.inputs, ref.jac)
    ref.graph, ref.traced = record(ref.steps, ref.inputs)
    return ref


def close(steps: list, n_values: int, sizes: list) -> list:
    """Append the output: every value nobody reads (and the last one), summed up."""
    read = {p for _, parents in steps for p in parents}
    dangling = [i for i in range(n_values) if i not in read]
    if n_values - 1 not in dangling:
        dangling.append(n_values - 1)
    steps = list(steps)
    terms = []
    for i in dangling:
        if sizes[i] > 1:
            steps.append(("sum", (i,)))
            sizes.append(1)
            terms.append(len(sizes) - 1)
        else:
            terms.append(i)
    total = terms[0]
    if len(terms) == 1:  # the output must be an op node of its own
        steps.append(("mul", (total, total)) if sizes[total] == 1 else ("sum", (total,)))
        sizes.append(1)
        return steps
    for t in terms[1:]:
        steps.append(("add", (total, t)))
        sizes.append(1)
        total = len(sizes) - 1
    return steps


@st.composite
def reference_graphs(draw, min_ops: int = 2, max_ops: int = 7, vectors: bool = True):
    """Strategy for `Reference`: drawn structure, seeded values of order one."""
    n_inputs = draw(st.integers(1, 2))
    sizes = [VEC if vectors and draw(st.booleans()) else 1 for _ in range(n_inputs)]
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    inputs = [rng.uniform(-1.2, 1.2, size=(VEC,) if s > 1 else ()) for s in sizes]
    steps = []
    for _ in range(draw(st.integers(min_ops, max_ops))):
        op = draw(st.sampled_from(OPS))
        n = len(sizes)
        if op == "sum":
            vec = [i for i in range(n) if sizes[i] > 1]
            if not vec:
                op = "tanh"
            else:
                steps.append(("sum", (draw(st.sampled_from(vec)),)))
                sizes.append(1)
                continue
        # the newest value most often, so that graphs get deep as well as wide
        first = draw(st.one_of(st.just(n - 1), st.integers(0, n - 1)))
        if op == "exp" and first >= n_inputs and steps[first - n_inputs][0] in ("exp", "mul"):
            op = "arctan"  # keep values of order one: no exp(exp(.)) or exp(a * b)
        if op in UNARY:
            steps.append((op, (first,)))
            sizes.append(sizes[first])
        else:
            second = draw(st.integers(0, n - 1))  # may equal first: a node read twice
            steps.append((op, (first, second)))
            sizes.append(max(sizes[first], sizes[second]))
    steps = close(steps, len(sizes), sizes)
    return build(steps, inputs)


def finite_differences(ref: Reference, h: float = 1e-6) -> list[np.ndarray]:
    grads = []
    for k, v in enumerate(ref.inputs):
        g = np.zeros(np.size(v))
        for j in range(np.size(v)):
            up = [np.array(u, dtype=float) for u in ref.inputs]
            down = [np.array(u, dtype=float) for u in ref.inputs]
            up[k].flat[j] += h
            down[k].flat[j] -= h
            g[j] = (ref.loss(*up) - ref.loss(*down)) / (2 * h)
        grads.append(g.reshape(np.shape(v)))
    return grads
