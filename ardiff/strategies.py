"""Hypothesis strategies for random computation graphs and random NumPy programs.

Use them to property-test a model, a new op or a new solver against finite
differences or the exact backprop reference:

    from hypothesis import given
    from ardiff.strategies import random_programs
    from ardiff.testing import check_grads

    @given(random_programs(min_nodes=50))
    def test_gradients(drawn):
        program, args = drawn
        check_grads(program, order=1)(*args)

This module needs [hypothesis](https://hypothesis.readthedocs.io) (the
`test` extra: `pip install 'ardiff[test]'`); it is imported only when a
strategy is built.

Both strategies write real Python source from a table of templates, so a
failing example is printed as code you can paste and run.  The *structure*
(which ops, which operands, loop counts, branches) is drawn by hypothesis and
shrinks; the *numbers* (inputs, constants, index arrays) come from a NumPy
generator seeded by one drawn integer, so shrinking never produces the exact
ties (all-zero inputs) at which kinks and branch conditions make finite
differences meaningless.  Every template keeps values of order one and has
local derivatives of order one (tanh, sin, `log(1 + x**2)`,
`x / (1 + y**2)`, means instead of sums, ...), so gradients stay finite and
central differences stay accurate on graphs hundreds of nodes deep.

Shapes live in a family closed under broadcasting -- `()`, `(n,)`,
`(m, 1)`, `(1, n)` and `(m, n)` -- with reductions, matrix products and
indexing moving between them.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # hypothesis is optional at run time
    from hypothesis.strategies import SearchStrategy

__all__ = ["random_programs", "random_graphs", "Program", "DrawnGraph"]

KINDS = ("s", "n", "m1", "1n", "mn")


def _shape(kind: str, m: int, n: int) -> tuple:
    return {"s": (), "n": (n,), "m1": (m, 1), "1n": (1, n), "mn": (m, n)}[kind]


def _kind(shape: tuple, m: int, n: int) -> str:
    for kind in KINDS:
        if _shape(kind, m, n) == tuple(shape):
            return kind
    raise AssertionError(f"ardiff.strategies: template produced shape {shape} outside the "
                         f"family for m={m}, n={n} (a bug in the template table).")


# -- the template table ------------------------------------------------------------
# One template per line, grouped by the kinds of its operands {a}, {b} ("*" accepts
# any kind, "=" the first operand's kind).  A leading "!" marks a template that is not
# differentiable everywhere (kinks, selection by value).  Placeholders: {np} is "np"
# or "anp"; {c} a constant of a random kind; {cmn}, {cn}, {cm1}, {cmask} constants of
# fixed kinds; {rows_m}, {idx_n}, {bools_n} literal index lists; {cols}, {rows_n},
# {cols_n}, {mask_mn}, {mask_m}, {mask_n} index-array constants; {m}, {n}, {inv_m},
# {inv_n}, {inv_mn} sizes.  Every template maps values of order one to values of
# order one with local derivatives of order one.
_TABLE = {
    "*": """
        {np}.tanh({a})
        {np}.sin({a})
        {np}.cos({a}) - 0.5
        {np}.arctan({a})
        {a} / (1.0 + {a} ** 2)
        {np}.log(1.0 + {a} * {a})
        {np}.exp(-{a} ** 2)
        (1.0 + {a} ** 2) ** -0.5
        {np}.sqrt(1.0 + {a} ** 2) - 1.0
        -{a}
        0.5 * {a}
        {np}.square({a}) - 0.5
        {np}.log1p({a} ** 2)
        {np}.expm1(0.5 * {np}.tanh({a}))
        {np}.arcsinh({a})
        {np}.sin({a}) ** 3
        2.0 ** {np}.sin({a}) - 1.0
        {np}.exp({np}.sin({a})) - 1.0
        {a} * (1.0 / {a}.size)
        {a}[...]
        0.5 / (1.5 + {np}.cos({a}))
        {np}.sinh(0.5 * {np}.sin({a}))
        !abs({a}) - 0.5
        !{np}.maximum({a}, 0.0)
        !{np}.clip({a}, -0.5, 0.5)
        !{np}.where({a} > 0.0, {a}, 0.1 * {a})
        !{a} * ({a} > 0.2)
    """,
    "* *": """
        ({a} + {b}) * 0.5
        ({a} - {b}) * 0.5
        {a} * {b}
        {a} * {np}.tanh({b})
        {a} / (1.0 + {b} ** 2)
        {np}.arctan2({a}, 1.5 + {np}.sin({b}))
        {np}.logaddexp({a}, {b}) - 1.0
        {np}.hypot({a}, 1.0 + {b} ** 2) - 1.0
        {a} ** 2 * {b}
        {np}.multiply({a}, {np}.cos({b}))
        {np}.divide({a}, 2.0 + {b} ** 2)
        {np}.where({cmask}, {a}, {b})
        !{np}.maximum({a}, {b})
        !{np}.minimum({a}, {b})
        !{np}.where({a} > {b}, {a}, 0.5 * {b})
    """,
    "* =": """
        {np}.stack([{a}, {b}]).sum(axis=0) * 0.5
    """,
    "* const": """
        {c} * {a}
        {c} - {a}
        {c} + 0.5 * {a}
        {c} / (2.0 + {np}.sin({a}))
        {a} * {cmn}
        {np}.broadcast_to({a}, ({m}, {n}))
    """,
    "mn": """
        {np}.sum({a}, axis=0) * {inv_m}
        {a}.mean(axis=1, keepdims=True)
        {np}.mean({a}, axis=-1, keepdims=True)
        {a}.sum(axis=(0, 1)) * {inv_mn}
        {np}.prod({np}.cos({a}), axis=0)
        {np}.var({a}, axis=0)
        {np}.cumsum({a}, axis=1) * {inv_n}
        {a}[{rows_m}]
        {a}[:, {cols}]
        {a}[::-1]
        {a}[:, ::-1]
        {a}[-1]
        {a}[0]
        {a}[None, 0]
        {a}[{rows_n}, {cols_n}]
        {a}[:, -1:]
        {a}[..., :1]
        {np}.sum({np}.tanh({a}[{mask_mn}]))
        {a}[{mask_m}].mean(axis=0)
        {a}.reshape({n}, {m}).T
        {np}.reshape({a}, (-1,))[:{n}]
        {np}.transpose({a}.reshape({a}.shape[::-1]))
        sum(row for row in {a}) * {inv_m}
        {a}[len({a}) - 1]
        {np}.flip({a}, axis=0)
        {np}.roll({a}, 1, axis=1)
        {np}.concatenate([{a}[1:], {a}[:1]], axis=0)
        {cm1}.T @ {a} * {inv_m}
        !{a}.max(axis=0)
        !{np}.min({a}, axis=1, keepdims=True)
    """,
    "mn n": """
        {np}.tanh({a} @ {b})[:, None]
        ({a} @ {b})[:, None] * {inv_n}
        {np}.einsum('ij,j->i', {a}, {b})[:, None] * {inv_n}
    """,
    "mn m1": """
        {np}.dot({a}.T, {b}[:, 0]) * {inv_m}
        {b}.T @ {a} * {inv_m}
    """,
    "m1 n": """
        {np}.outer({a}[:, 0], {b})
    """,
    "n": """
        ({cmn} @ {a})[:, None] * {inv_n}
        {np}.mean({a})
        {a}.sum() * {inv_n}
        {a}.prod()
        {a}.dot({a}) * {inv_n}
        {np}.cumsum({a}) * {inv_n}
        sum({np}.sin(t) for t in {a}) * {inv_n}
        {a}[::-1]
        {a}[{idx_n}]
        {a}[{cols}]
        {a}[-1]
        {a}[1:].sum() * {inv_n}
        {a}[None, :]
        {a}.reshape(1, -1)
        {np}.expand_dims({a}, 0)
        {a}[{mask_n}].sum() * {inv_n}
        {a}[{bools_n}].mean()
        {a} * (1.0 / len({a}))
        {anp}.array([t * t for t in {a}])
        !{a}.max()
        !{np}.sum({a}[{a} > 0.0])
        !{np}.sort({a})
        !{np}.linalg.norm({a})
    """,
    "n n": """
        {np}.dot({a}, {b}) * {inv_n}
        {np}.concatenate([{a}, {b}])[::2]
        {anp}.stack([{a}, {b}], axis=1).mean(axis=1)
    """,
    "m1": """
        {a}.mean()
        {a}[:, 0].sum() * {inv_m}
        {a} * {a}[::-1]
    """,
    "1n": """
        {a}[0]
        {a}.sum(axis=0)
        {np}.squeeze({a}, axis=0)
        {a}.reshape(-1)
    """,
    "s": """
        {a} * {cn}
        {np}.sin({a}) * {np}.ones({n})
        {anp}.stack([{a}] * {n})
    """,
    "s s": """
        {anp}.array([{a}] + [{b} * (k / {n}) for k in range(1, {n})])
    """,
}


def _parse(table: dict) -> list[tuple[str, tuple, bool]]:
    out = []
    for key, block in table.items():
        operands = ("*",) if key == "* const" else tuple(key.split())
        for line in block.strip().splitlines():
            line = line.strip()
            out.append((line.lstrip("!"), operands, line.startswith("!")))
    return out


TEMPLATES = _parse(_TABLE)
UNARY = _parse({"*": _TABLE["*"]})  # shape-preserving: the bodies of if/else branches
# Statements with Python control flow; {v} is the new variable, {u1}/{u2} unary bodies.
STATEMENTS = [
    ("if {np}.sum({b}) > {thr}:\n    {v} = {u1}\nelse:\n    {v} = {u2}", ("*", "*")),
    ("if {b}.mean() < {thr}:\n    {v} = {u1}\nelse:\n    {v} = {u2}", ("*", "*")),
    ("{v} = {a}\nfor _ in range({k}):\n    {v} = {np}.tanh({v} * {w} + {b})", ("*", "*", "*")),
    ("{v} = {a}\nfor _ in range({k}):\n    if {np}.mean({v} * {v}) < 0.01:\n        break\n"
     "    {v} = 0.8 * {np}.sin({v}) + 0.1", ("*",)),
    ("{v} = {a}\n_i = 0\nwhile _i < {k} and {np}.max(abs({v})) > 0.05:\n"
     "    {v} = {np}.tanh({v}) * 0.9\n    _i += 1", ("*",)),
    ("_acc = []\nfor _t in {a}:\n    _acc.append({np}.tanh(_t) * 0.5)\n{v} = {anp}.stack(_acc)",
     ("n",)),
]
_HEADER = "import numpy as np\nimport ardiff\nimport ardiff.numpy as anp\n"


def _require_hypothesis():
    try:
        import hypothesis  # noqa: F401
        from hypothesis import strategies as st
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("ardiff.strategies needs hypothesis: pip install 'ardiff[test]'") \
            from exc
    return st


def _needs_array(code: str) -> bool:
    """Whether a template calls methods on, indexes or iterates over an operand
    (so that operand must not be a plain Python float)."""
    return bool(re.search(r"\{[ab]\}[.\[]|len\(|in \{a\}", code))


def _literal(array: np.ndarray) -> str:
    return f"np.array({np.asarray(array).tolist()!r})"


class _Writer:
    """Draws statements one by one, tracking variable kinds, uses and constants."""

    def __init__(self, draw, st, m, n, rng, kinks, namespace_prefix):
        self.draw, self.st, self.m, self.n, self.rng = draw, st, m, n, rng
        self.kinks = kinks
        self.np = namespace_prefix
        self.vars: list[tuple[str, str, bool]] = []   # (name, kind, is a Python float)
        self.used: set[str] = set()
        self.constants: list[str] = []                 # source lines defining constants

    # -- constants ------------------------------------------------------------------
    def const(self, value) -> str:
        name = f"c{len(self.constants)}"
        self.constants.append(f"{name} = {_literal(value)}")
        return name

    def values(self, kind) -> np.ndarray:
        return np.round(self.rng.uniform(-1.0, 1.0, _shape(kind, self.m, self.n)), 3)

    def mask(self, shape) -> np.ndarray:
        mask = self.rng.random(shape) < 0.6
        mask.flat[self.rng.integers(mask.size)] = True  # never empty: a mean stays finite
        return mask

    def fill(self, name: str) -> str:
        m, n, rng = self.m, self.n, self.rng
        if name == "c":
            kind = self.draw(self.st.sampled_from(KINDS[1:]))
            return self.const(self.values(kind))
        makers = {
            "cmn": lambda: self.const(self.values("mn")),
            "cn": lambda: self.const(self.values("n")),
            "cm1": lambda: self.const(self.values("m1")),
            "cmask": lambda: self.const(self.mask((m, n))),
            "rows_m": lambda: repr(rng.integers(-m, m, m).tolist()),
            "idx_n": lambda: repr(rng.integers(-n, n, n).tolist()),
            "bools_n": lambda: repr(self.mask(n).tolist()),
            "cols": lambda: self.const(rng.integers(0, n, n)),
            "rows_n": lambda: self.const(rng.integers(0, m, n)),
            "cols_n": lambda: self.const(rng.integers(0, n, n)),
            "mask_mn": lambda: self.const(self.mask((m, n))),
            "mask_m": lambda: self.const(self.mask(m)),
            "mask_n": lambda: self.const(self.mask(n)),
            "m": lambda: str(m), "n": lambda: str(n), "inv_m": lambda: repr(1.0 / m),
            "inv_n": lambda: repr(1.0 / n), "inv_mn": lambda: repr(1.0 / (m * n)),
            "thr": lambda: repr(round(float(rng.uniform(-0.5, 0.5)), 2)),
            "k": lambda: str(self.draw(self.st.integers(2, 4))),
            "np": lambda: self.np if self.np == "anp" else
            self.draw(self.st.sampled_from(["np", "anp"])),
            "anp": lambda: "anp",
        }
        return makers[name]()

    # -- operands --------------------------------------------------------------------
    def operand(self, want: str, first_kind: str | None, needs_array: bool) -> tuple[str, str]:
        def ok(var):
            name, kind, pyfloat = var
            if needs_array and pyfloat:
                return False
            return want == "*" or kind == (first_kind if want == "=" else want)
        candidates = [v for v in reversed(self.vars) if ok(v)]  # recent first: deep graphs
        if not candidates:
            return None
        name, kind, _ = self.draw(self.st.sampled_from(candidates))
        return name, kind

    def applicable(self, operands, needs_array) -> bool:
        kinds = {kind for _, kind, pyfloat in self.vars if not (needs_array and pyfloat)}
        return all(w in ("*", "=") or w in kinds for w in operands) and bool(kinds)

    def render(self, code: str, operands: tuple, flags: str = "") -> str | None:
        needs_array = "a" in flags or _needs_array(code)
        names, first = {}, None
        for slot, want in zip("abw", operands):
            picked = self.operand(want, first, needs_array)
            if picked is None:
                return None
            names[slot], kind = picked
            first = first or kind
            self.used.add(names[slot])
        cache = dict(names)

        def sub(match):
            key = match.group(1)
            if key not in cache:
                cache[key] = self.fill(key)
            return cache[key]

        return re.sub(r"\{(\w+)\}", sub, code)

    # -- statements --------------------------------------------------------------------
    def expression(self, unary_only: bool = False) -> str | None:
        pool = [t for t in (UNARY if unary_only else TEMPLATES) if self.kinks or not t[2]]
        pool = [t for t in pool if self.applicable(t[1], _needs_array(t[0]))]
        code, operands, _ = self.draw(self.st.sampled_from(pool))
        return self.render(code, operands)

    def statement(self, control_flow: bool) -> list[str] | None:
        new = f"v{len(self.vars)}"
        if control_flow and self.draw(self.st.integers(0, 5)) == 0:
            code, operands = self.draw(self.st.sampled_from(STATEMENTS))
            if "{u1}" in code:
                # both branches transform the same operand {a}: the new variable's kind is fixed
                pool = [code for code, _, kink in UNARY if self.kinks or not kink]
                code = code.replace("{u1}", self.draw(self.st.sampled_from(pool)))
                code = code.replace("{u2}", self.draw(self.st.sampled_from(pool)))
            code = code.replace("{v}", new)
            text = self.render(code, operands, "a")
            return None if text is None else text.splitlines()
        text = self.expression()
        return None if text is None else [f"{new} = {text}"]


def _draw(draw, st, min_nodes, max_nodes, max_inputs, max_dim, kinks, control_flow, prefix):
    """Draw inputs and statements, executing them on traced inputs as they come.

    Executing each statement gives the exact shape of the new variable and the
    exact node count, so the loop stops as soon as the graph is big enough.
    Returns the writer, the input values, the input lines, the body and the
    namespace (holding `g`, the inputs and every variable).
    """
    m = draw(st.integers(2, max_dim))
    n = draw(st.integers(2, max_dim))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    writer = _Writer(draw, st, m, n, rng, kinks, prefix)
    namespace: dict[str, Any] = {}
    exec(_HEADER + "g = ardiff.Graph()", namespace)
    inputs, input_lines = [], []
    for i in range(draw(st.integers(1, max_inputs))):
        kind = draw(st.sampled_from(("mn", "n", "s", "m1", "1n")))
        value = np.round(rng.uniform(-1.2, 1.2, _shape(kind, m, n)), 4)
        pyfloat = kind == "s" and draw(st.booleans())
        inputs.append(float(value) if pyfloat else value)
        literal = repr(inputs[-1]) if pyfloat else _literal(value)
        input_lines.append(f"x{i} = g.input({literal}, name='x{i}')")
        exec(input_lines[-1], namespace)
        writer.vars.append((f"x{i}", kind, pyfloat))
    target = draw(st.integers(min_nodes, max(min_nodes, max_nodes)))
    body: list[str] = []
    defined = 0
    for _ in range(100 * max(target, 1)):
        if len(namespace["g"]) >= target:
            break
        lines = writer.statement(control_flow)
        if lines is None:
            continue
        for line in writer.constants[defined:]:
            exec(line, namespace)
        defined = len(writer.constants)
        exec("\n".join(lines), namespace)
        new = f"v{len(writer.vars)}"
        writer.vars.append((new, _kind(np.shape(namespace[new].value), m, n), False))
        body.extend(lines)
    else:
        raise AssertionError("ardiff.strategies: could not grow the graph (template bug)")
    sinks = [name for name, _, _ in writer.vars if name not in writer.used]
    terms = [f"{0.5 + (i % 3) * 0.25!r} * {prefix}.mean({name})" for i, name in enumerate(sinks)]
    body.append("out = " + " + ".join(terms))
    exec(body[-1], namespace)
    return writer, inputs, input_lines, body, namespace


class Program:
    """A drawn NumPy program: callable, with its source as `source` and `repr`."""

    def __init__(self, source: str, n_args: int):
        self.source = source
        self.n_args = n_args
        namespace: dict[str, Any] = {}
        exec(compile(source, "<ardiff random program>", "exec"), namespace)
        self._fun = namespace["program"]
        self.__name__ = "program"
        self.__qualname__ = "program"

    def __call__(self, *args):
        return self._fun(*args)

    def __repr__(self) -> str:
        return f"Program(\'\'\'\n{self.source}\'\'\')"


class DrawnGraph(tuple):
    """`(graph, output, wrt)`, with the building code in `source` and `repr`."""

    def __new__(cls, graph, output, wrt, source: str):
        obj = super().__new__(cls, (graph, output, wrt))
        obj.source = source
        return obj

    def __repr__(self) -> str:
        return f"DrawnGraph(<{len(self[0])} nodes>, source=\'\'\'\n{self.source}\'\'\')"


def random_programs(min_nodes: int = 50, max_nodes: int = 90, *, max_inputs: int = 3,
                    max_dim: int = 4, kinks: bool = True, control_flow: bool = True
                    ) -> SearchStrategy[tuple[Program, tuple]]:
    """Strategy for `(program, args)`: a plain Python/NumPy function and its arguments.

    The function mixes `np.*` and `anp.*` calls, operators (reflected ones with
    NumPy arrays on the left), reductions with `axis`, broadcasting, basic and
    advanced indexing, iteration, `anp.array`/`anp.stack` of traced values, and
    (with `control_flow`) `if` on data, `for` loops with `break` and `while`
    loops.  Tracing it at the drawn arguments records between `min_nodes` and
    about `max_nodes` nodes (plus the final sum of the means of all values that
    are otherwise unused, so that every value reaches the scalar output).

    Parameters
    ----------
    min_nodes, max_nodes : int
        Range of the number of recorded nodes.
    max_inputs : int
        Arguments are 1 to `max_inputs` float arrays of shapes `()`, `(n,)`,
        `(m, 1)`, `(1, n)`, `(m, n)` with `2 <= m, n <= max_dim`; a scalar may
        be a Python float.
    max_dim : int
        Largest `m` and `n`.
    kinks : bool
        Also use ops that are not differentiable everywhere (`abs`, `maximum`,
        `max`, `sort`, `norm`, `where` on a comparison, selection by value).
        The random values almost surely stay away from their kinks.
    control_flow : bool
        Use Python `if`/`for`/`while` statements.

    Returns
    -------
    hypothesis.strategies.SearchStrategy
        Of `(Program, tuple_of_args)`; a `Program` is callable and prints its source.
    """
    st = _require_hypothesis()

    @st.composite
    def programs(draw):
        writer, inputs, _, body, _ = _draw(draw, st, min_nodes, max_nodes, max_inputs,
                                           max_dim, kinks, control_flow, "np")
        args = ", ".join(f"x{i}" for i in range(len(inputs)))
        source = (_HEADER + "".join(line + "\n" for line in writer.constants)
                  + f"\n\ndef program({args}):\n"
                  + "".join(f"    {line}\n" for text in body + ["return out"]
                            for line in text.splitlines()))
        return Program(source, len(inputs)), tuple(inputs)

    return programs()


def random_graphs(min_nodes: int = 50, max_nodes: int = 90, *, max_inputs: int = 3,
                  max_dim: int = 4, kinks: bool = True) -> SearchStrategy[DrawnGraph]:
    """Strategy for `(graph, output, wrt)`: a programmatically built `ardiff.Graph`.

    Inputs are added with `g.input` (shapes as in `random_programs`), then a
    random DAG of elementary ops from `ardiff.numpy` -- broadcasting,
    reductions with `axis`, matrix products, basic and advanced indexing, joins,
    unrolled loops -- is recorded until the graph has at least `min_nodes` nodes;
    the scalar `output` sums the means of all otherwise unused values, and
    `wrt` is a non-empty subset of the inputs.

    Returns
    -------
    hypothesis.strategies.SearchStrategy
        Of `DrawnGraph`: a 3-tuple that also carries its building `source`.
    """
    st = _require_hypothesis()

    @st.composite
    def graphs(draw):
        writer, inputs, input_lines, body, namespace = _draw(
            draw, st, min_nodes, max_nodes, max_inputs, max_dim, kinks, True, "anp")
        chosen = sorted(draw(st.lists(st.integers(0, len(inputs) - 1), min_size=1,
                                      max_size=len(inputs), unique=True)))
        wrt = [namespace[f"x{i}"] for i in chosen]
        source = (_HEADER + "g = ardiff.Graph()\n"
                  + "".join(line + "\n" for line in writer.constants + input_lines + body)
                  + f"wrt = [{', '.join(f'x{i}' for i in chosen)}]\n")
        return DrawnGraph(namespace["g"], namespace["out"], wrt, source)

    return graphs()
