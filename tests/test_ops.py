"""Property-based tests of ardiff's op table: the harness, and the tests of its coverage.

Every op is exercised by table-driven cases in the family modules
``test_ops_elementwise``, ``test_ops_reduce``, ``test_ops_linalg`` and
``test_ops_shape``.  A :class:`Case` is a small NumPy program written against a
namespace argument ``xp`` (``numpy`` or ``ardiff.numpy``) plus a hypothesis
strategy drawing its arguments: shapes (with broadcasting), values in a valid
domain away from kinks, and static parameters such as ``axis``/``keepdims``.
For every drawn example :func:`run_case` checks, against independent truth:

1. the traced forward value equals plain NumPy's;
2. ``make_vjp(method="backprop")`` agrees with central finite differences, to
   first and second order (:func:`ardiff.testing.check_grads`, ``order=2``), and so
   does ``method="relax"`` (sequential sweeps, eta = 1, drawn init);
3. relaxation under both schedules, eta in {1, 0.5, 1.5} and both initial
   activities converges to the backprop gradient;
4. calling plain NumPy (``np.sin(tracer)``) dispatches to the same traced op.

This module also holds the closed-form tests of ties and kinks (the documented
subgradients), float32 gradients, and the meta-tests that every op in
``ardiff.ops.OPS`` and every function named in the issue has a case.
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import scipy.special
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import ardiff
import ardiff.numpy as anp
import ardiff.scipy.special
from ardiff.op import OPS
from ardiff.testing import check_grads

# -- the harness -----------------------------------------------------------------------

RELAX_CONFIGS = [(schedule, eta, init)
                 for schedule in ("sequential", "parallel")
                 for eta in (1.0, 0.5, 1.5)
                 for init in ("zeros", "forward")]

# Second order through relaxation (the inner relaxation runs on traced activities).
# A traced inner run keeps stepping until the derivatives of its iterates have
# converged too (see ardiff.solvers.relaxation._traced_min_iter and
# test_second_order_through_parallel_relaxation, which covers damped runs).  Damped
# inner runs are not drawn here: every inner step adds a layer to the outer graph,
# which made this table twenty times slower.
SECOND_ORDER_CONFIGS = [("sequential", 1.0, "zeros"), ("sequential", 1.0, "forward"),
                        ("parallel", 1.0, "zeros"), ("parallel", 1.0, "forward")]


@dataclass(frozen=True)
class Case:
    """One table entry: a program using ``xp``, its argument strategy and its ops.

    ``fun(xp, *args, **kwargs)`` runs with ``xp = numpy`` (reference forward and
    dispatch check) or ``xp = ardiff.numpy``.  ``draw`` yields ``(args, kwargs)``:
    every positional argument is a float array to differentiate, keyword
    arguments are static.  ``ops`` are op-table names the traced graph must
    contain (checked on every example, so a claim cannot go stale).
    """

    name: str
    fun: Callable
    draw: st.SearchStrategy
    ops: tuple = ()
    dispatch: bool = True
    order: int = 2

    def __post_init__(self):
        if not self.ops and self.name in OPS:
            object.__setattr__(self, "ops", (self.name,))


def special(xp):
    """``scipy.special`` for NumPy, ``ardiff.scipy.special`` for ``ardiff.numpy``."""
    return scipy.special if xp is np else ardiff.scipy.special


def _traced_op_names(graph) -> set:
    return {node.op_name for node in graph.nodes}


def _compare(actual, expected, rtol, what):
    scale = max([float(np.max(np.abs(e))) for e in expected if np.size(e)] + [1.0])
    for k, (a, e) in enumerate(zip(actual, expected)):
        assert np.shape(a) == np.shape(e), f"{what}: argument {k} has gradient shape " \
                                           f"{np.shape(a)}, expected {np.shape(e)}"
        np.testing.assert_allclose(np.asarray(a), np.asarray(e), rtol=rtol, atol=rtol * scale,
                                   err_msg=f"{what}: argument {k}")


def run_case(case: Case, args: tuple, kwargs: dict, second_order_relax: tuple | None = None
             ) -> None:
    """All checks of one drawn example (see the module docstring).

    ``second_order_relax`` is a ``(schedule, eta, init)`` under which the finite-difference
    check is repeated with ``method="relax"``: the second derivative then flows through
    a relaxation run on traced activities.
    """
    args = tuple(args)

    def traced(*a):
        return case.fun(anp, *a, **kwargs)

    with warnings.catch_warnings():
        # A NaN/inf, a RuntimeWarning from a VJP or a relaxation that does not
        # converge is a failure here: the drawn domains keep every op smooth.
        warnings.simplefilter("error")
        expected = case.fun(np, *args, **kwargs)
        graph = ardiff.trace(traced, *args)
        out = graph.output
        assert isinstance(out, ardiff.Tracer), f"{case.name}: output is not traced"
        value = out.value
        assert np.shape(value) == np.shape(expected)
        np.testing.assert_allclose(value, expected, rtol=1e-10, atol=1e-12,
                                   err_msg=f"{case.name}: forward value differs from NumPy")
        missing = set(case.ops) - _traced_op_names(graph)
        assert not missing, f"{case.name}: the traced graph lacks the ops {sorted(missing)}"

        rng = np.random.default_rng(len(graph.nodes))
        seed = rng.standard_normal(np.shape(value)).astype(np.result_type(value))
        reference = ardiff.backprop(graph, seed=seed).grads

        # (1) backprop against central finite differences, first and second order
        check_grads(lambda a: traced(*a), order=case.order, method="backprop")(args)
        if second_order_relax is not None:
            schedule, eta, init = second_order_relax
            check_grads(lambda a: traced(*a), order=case.order, method="relax",
                        schedule=schedule, eta=eta, init=init)(args)

        # (2) relaxation, every schedule / eta / init, against backprop
        # (max_iter: the default budget ignores how far the forward values start from
        # the gradient; init="forward" with a gradient of 1e-145 needs ~500 halvings)
        for schedule, eta, init in RELAX_CONFIGS:
            if init == "forward" and not np.any(seed):
                # Known solver limitation (reported): when every target in the graph is
                # zero (an empty output), forward-started activities are measured against
                # a zero scale and the relative residual stays infinite.
                continue
            # At eta > 1 a one-ulp period-2 oscillation of a node (its update overshoots
            # by half a step) drives its parents with gain eta / (2 - eta) = 3 per level:
            # on deep composed graphs (polyval's Horner chain, corrcoef) the residual
            # floor is then ~1e-12 (measured 1.1e-12 to 2e-12), so those runs are held to
            # 1e-10; the gradients are compared with backprop at 1e-8 either way.
            res = ardiff.relax(graph, seed=seed, schedule=schedule, eta=eta, init=init,
                               max_iter=5000, tol=1e-10 if eta > 1 else None)
            assert res.converged, f"{case.name}: relax {schedule} eta={eta} did not converge"
            _compare(res.grads, reference, 1e-8,
                     f"{case.name}: relax {schedule} eta={eta} init={init} vs backprop")

        # (3) plain NumPy calls on tracers dispatch to the same traced ops
        if case.dispatch:
            graph_np = ardiff.trace(lambda *a: case.fun(np, *a, **kwargs), *args)
            assert isinstance(graph_np.output, ardiff.Tracer)
            np.testing.assert_allclose(graph_np.output.value, value, rtol=1e-14, atol=0)
            _compare(ardiff.backprop(graph_np, seed=seed).grads, reference, 1e-12,
                     f"{case.name}: NumPy dispatch vs ardiff.numpy")


def make_op_test(cases: list) -> Callable:
    """The parametrized hypothesis test running :func:`run_case` on every case."""
    @pytest.mark.parametrize("case", cases, ids=[c.name for c in cases])
    @given(data=st.data())
    def test_op(case, data):
        args, kwargs = data.draw(case.draw, label=f"{case.name}: (args, kwargs)")
        config = data.draw(st.sampled_from(SECOND_ORDER_CONFIGS), label="second-order relax")
        run_case(case, args, kwargs, config)

    return test_op


# -- strategies shared by the case tables -----------------------------------------------

def shapes(min_dims: int = 0, max_dims: int = 3, min_side: int = 1, max_side: int = 3):
    """Small array shapes (0-d included by default)."""
    return hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=min_side,
                            max_side=max_side)


def broadcast_shapes(n: int = 2, max_dims: int = 3):
    """``n`` mutually broadcastable shapes."""
    return hnp.mutually_broadcastable_shapes(num_shapes=n, min_dims=0, max_dims=max_dims,
                                             min_side=1, max_side=3).map(
        lambda b: b.input_shapes)


def reals(shape, lo: float = -3.0, hi: float = 3.0):
    """Float64 arrays with elements in [lo, hi] (no subnormals: a relative tolerance
    of 1e-12 on the relaxation cannot be met where gradients have 1-digit precision)."""
    return hnp.arrays(np.float64, shape, elements=st.floats(lo, hi, allow_subnormal=False))


def between(lo: float, hi: float):
    """A strategy factory: float64 arrays of a given shape with elements in [lo, hi]."""
    return lambda shape: reals(shape, lo, hi)


def nonzero(shape, lo: float = 0.2, hi: float = 3.0):
    """Float64 arrays with lo <= |element| <= hi, either sign."""
    return st.tuples(reals(shape, lo, hi), hnp.arrays(np.bool_, shape)).map(
        lambda p: np.where(p[1], -p[0], p[0]))


def grid(shape, offset: float = 0.0, step: float = 0.2, unique: bool = False, bound: int = 14):
    """Arrays on the grid ``offset + step * k``: two grids with offsets 0 and step/2
    never come closer than step/2, which keeps finite differences off kinks and ties."""
    return hnp.arrays(np.int64, shape, elements=st.integers(-bound, bound), unique=unique).map(
        lambda k: k * step + offset)


def axes(ndim: int):
    """An ``axis`` argument for a reduction: None, an int, or a tuple (maybe empty)."""
    options = [st.none(), hnp.valid_tuple_axes(ndim)]
    if ndim:
        options.append(st.integers(-ndim, ndim - 1))
    return st.one_of(options)


def one_arg(values, shape_strategy=None):
    """(args, kwargs) strategy of one array of a drawn shape."""
    return (shapes() if shape_strategy is None else shape_strategy).flatmap(values).map(
        lambda x: ((x,), {}))


def two_args(x_values, y_values, max_dims: int = 3):
    """(args, kwargs) strategy of two mutually broadcastable arrays."""
    return broadcast_shapes(2, max_dims).flatmap(
        lambda s: st.tuples(x_values(s[0]), y_values(s[1]))).map(lambda a: (a, {}))


# -- coverage meta-tests ---------------------------------------------------------------

# Every tests/test_ops_<family>.py module with a CASES table (new families just add a file).
FAMILIES = tuple(sorted(path.stem for path in Path(__file__).parent.glob("test_ops_*.py")
                        if "\nCASES" in path.read_text()))

# Every function the issue names; a case of that name must exist.
ISSUE_NAMES = (
    "operator +", "operator -", "operator *", "operator /", "operator **", "operator %",
    "operator @", "operator unary -", "operator abs", "comparisons",
    "negative", "abs", "sign", "sqrt", "square", "reciprocal", "exp", "exp2", "expm1", "log",
    "log2", "log10", "log1p", "sin", "cos", "tan", "arcsin", "arccos", "arctan", "sinh", "cosh",
    "tanh", "arcsinh", "arccosh", "arctanh", "deg2rad", "rad2deg", "floor", "ceil", "round",
    "rint",
    "add", "subtract", "multiply", "divide", "true_divide", "power", "maximum", "minimum",
    "fmax", "fmin", "arctan2", "hypot", "logaddexp", "logaddexp2", "mod", "remainder",
    "where", "clip",
    "sum", "mean", "prod", "max", "min", "amax", "amin", "var", "std", "cumsum", "cumprod",
    "dot", "matmul", "inner", "outer", "tensordot", "einsum", "trace", "kron", "linalg.inv",
    "linalg.solve", "linalg.det", "linalg.slogdet", "linalg.norm",
    "reshape", "ravel", "transpose", "swapaxes", "moveaxis", "expand_dims", "squeeze",
    "broadcast_to", "concatenate", "stack", "hstack", "vstack", "split", "array_split",
    "hsplit", "vsplit", "repeat", "tile", "flip", "roll", "diag", "diagonal", "triu", "tril",
    "pad", "sort",
    "special.expit", "special.logsumexp", "special.erf",
)


def all_cases() -> list:
    """Every case of every family module."""
    cases = []
    for module in FAMILIES:
        cases.extend(importlib.import_module(module).CASES)
    return cases


def test_every_op_in_the_table_has_a_case():
    covered = set().union(*(set(c.ops) for c in all_cases()))
    unknown = covered - set(OPS)
    assert not unknown, f"cases claim ops that are not in the table: {sorted(unknown)}"
    # ops that users register with ardiff.extend (also ardiff's own fixed_point and
    # odeint, and the ones tests define) are checked by their own tests
    missing = {name for name in OPS if not name.startswith("extend.")} - covered
    assert not missing, (f"ops without a property-based case: {sorted(missing)}; add a Case "
                         "to the matching tests/test_ops_*.py table")


def test_every_function_named_in_the_issue_has_a_case():
    names = [c.name for c in all_cases()]
    assert len(names) == len(set(names)), "case names must be unique"
    missing = [n for n in ISSUE_NAMES if n not in names]
    assert not missing, f"functions without a case: {missing}"


def test_case_op_claims_are_checked():
    """The coverage claim is verified on traced graphs, so a wrong claim fails."""
    case = Case("claim", lambda xp, x: xp.sin(x), one_arg(reals), ops=("sin", "cos"))
    with pytest.raises(AssertionError, match="lacks the ops"):
        run_case(case, (np.array([0.5]),), {})


def test_harness_catches_a_wrong_gradient():
    """A deliberately wrong VJP must be caught by the finite-difference check."""
    from ardiff.op import Op

    wrong = Op("wrong_sin", np.sin, [lambda ans, x: lambda g: g * 2.0 * np.cos(x)])
    case = Case("wrong", lambda xp, x: wrong(x) if xp is anp else np.sin(x), one_arg(reals),
                dispatch=False)
    with pytest.raises(AssertionError, match="derivative mismatch"):
        run_case(case, (np.array([0.5, 1.0]),), {})


# -- ties and kinks: the documented subgradients, in closed form --------------------------

SOLVERS = [dict(method="backprop"), dict(method="relax"),
           dict(method="relax", schedule="parallel", eta=0.5, init="forward"),
           dict(method="relax", schedule="sequential", eta=1.5)]


def _grads(fun, args, options):
    return ardiff.grad(fun, argnum=tuple(range(len(args))), **options)(*args)


@pytest.mark.parametrize("options", SOLVERS, ids=lambda o: "-".join(map(str, o.values())))
@pytest.mark.parametrize("name", ["max", "amax", "min", "amin"])
def test_reduction_ties_split_evenly(name, options):
    x = np.array([[1.0, 3.0, 3.0, 2.0], [2.0, 2.0, 2.0, 2.0]])
    if name in ("min", "amin"):
        x = -x
    reduce = getattr(anp, name)
    (g,) = _grads(lambda x: anp.sum(reduce(x, axis=1) * np.array([1.0, 6.0])), (x,), options)
    np.testing.assert_allclose(g, [[0, 0.5, 0.5, 0], [1.5, 1.5, 1.5, 1.5]], rtol=1e-12)
    # over all elements: the two extreme 3s (or -3s) share the gradient
    (g,) = _grads(lambda x: reduce(x), (x,), options)
    target = np.abs(x) == 3.0
    np.testing.assert_allclose(g, target / target.sum(), rtol=1e-12)


@pytest.mark.parametrize("options", SOLVERS, ids=lambda o: "-".join(map(str, o.values())))
@pytest.mark.parametrize("name", ["maximum", "minimum", "fmax", "fmin"])
def test_binary_ties_split_evenly(name, options):
    fun = getattr(anp, name)
    x = np.array([1.0, 2.0, 3.0])
    y = np.array([1.0, 0.0, 3.0])
    gx, gy = _grads(lambda x, y: anp.sum(fun(x, y) * np.array([1.0, 2.0, 4.0])), (x, y), options)
    x_wins = 1.0 if name in ("maximum", "fmax") else 0.0
    np.testing.assert_allclose(gx, [0.5, 2.0 * x_wins, 2.0], rtol=1e-12)
    np.testing.assert_allclose(gy, [0.5, 2.0 * (1 - x_wins), 2.0], rtol=1e-12)
    # a broadcast scalar tying with every element collects all the halves
    gx, gs = _grads(lambda x, s: anp.sum(fun(x, s)), (np.full(4, 2.0), 2.0), options)
    np.testing.assert_allclose(gx, np.full(4, 0.5), rtol=1e-12)
    assert gs == pytest.approx(2.0, rel=1e-12)


@pytest.mark.parametrize("options", SOLVERS, ids=lambda o: "-".join(map(str, o.values())))
def test_kinks_take_the_documented_subgradient(options):
    x = np.array([-1.0, 0.0, 2.0])
    # relu as maximum(x, 0): a tie at 0 gives one half
    (g,) = _grads(lambda x: anp.sum(anp.maximum(x, 0.0)), (x,), options)
    np.testing.assert_allclose(g, [0.0, 0.5, 1.0])
    # abs and sign: 0 at 0
    (g,) = _grads(lambda x: anp.sum(anp.abs(x)), (x,), options)
    np.testing.assert_allclose(g, [-1.0, 0.0, 1.0])
    (g,) = _grads(lambda x: anp.sum(anp.sign(x) * 3.0), (x,), options)
    np.testing.assert_allclose(g, [0.0, 0.0, 0.0])
    # clip passes the gradient on the (closed) interval, bounds included
    (g,) = _grads(lambda x: anp.sum(anp.clip(x, -1.0, 1.0)), (np.array([-1.0, 0.3, 1.0, 1.5]),),
                  options)
    np.testing.assert_allclose(g, [1.0, 1.0, 1.0, 0.0])
    # ... and to the bound that the value follows elsewhere (a_max when a_min > a_max)
    g = _grads(lambda x, lo, hi: anp.sum(anp.clip(x, lo, hi) * np.arange(1.0, 5.0)),
               (np.array([-2.0, 0.0, 2.0, 0.0]), np.array([-1.0, -1.0, -1.0, 1.0]),
                np.array([1.0, 1.0, 1.0, -1.0])), options)
    np.testing.assert_allclose(np.array(g), [[0, 2, 0, 0], [1, 0, 0, 0], [0, 0, 3, 4]])
    # norm and std at their non-differentiable points give 0
    (g,) = _grads(lambda x: anp.linalg.norm(x), (np.zeros(3),), options)
    np.testing.assert_allclose(g, np.zeros(3))
    (g,) = _grads(lambda x: anp.std(x), (np.full(3, 2.0),), options)
    np.testing.assert_allclose(g, np.zeros(3))
    # the inf-norm splits among tied largest magnitudes, with their signs
    (g,) = _grads(lambda x: anp.linalg.norm(x, ord=np.inf), (np.array([-2.0, 1.0, 2.0]),), options)
    np.testing.assert_allclose(g, [-0.5, 0.0, 0.5])


def test_fmax_fmin_ignore_nan():
    x = np.array([np.nan, 1.0])
    y = np.array([2.0, np.nan])
    for fun in (anp.fmax, anp.fmin):
        gx, gy = ardiff.grad(lambda x, y: anp.sum(fun(x, y)), argnum=(0, 1),
                             method="backprop")(x, y)
        np.testing.assert_array_equal(gx, [0.0, 1.0])
        np.testing.assert_array_equal(gy, [1.0, 0.0])


@pytest.mark.parametrize("options", [dict(schedule="parallel"),
                                     dict(schedule="parallel", init="forward"),
                                     dict(schedule="sequential", eta=0.5)],
                         ids=["parallel-zeros", "parallel-forward", "sequential-eta0.5"])
def test_second_order_through_parallel_relaxation(options):
    # d/dy of d/dx [tanh(x) * y] is 1 - tanh(x)^2, also at y = 0 where the inner
    # gradient is exactly zero in value
    def inner_grad(x, y):
        return ardiff.grad(lambda x, y: anp.tanh(x) * y, **options)(x, y)

    for x in (0.5, 0.0):
        # at x = 0 the forward value tanh(0) = 0 also equals the inner target in value
        dy = ardiff.grad(lambda y: inner_grad(x, y), method="backprop")(0.0)
        assert dy == pytest.approx(1.0 - np.tanh(x) ** 2, rel=1e-12)


# -- float32 in, float32 out ---------------------------------------------------------------

FLOAT32_PROGRAMS = {
    "sin": lambda x, y: anp.sum(anp.sin(x) * y),
    "maximum": lambda x, y: anp.sum(anp.maximum(x, y[:1]) ** 2),
    "matmul": lambda x, y: anp.sum(anp.tanh(x.reshape(2, 3) @ y.reshape(3, 2))),
    "reductions": lambda x, y: anp.max(x) + anp.mean(y) + anp.var(x * y),
    "logsumexp": lambda x, y: ardiff.scipy.special.logsumexp(x - y),
    "astype": lambda x, y: anp.sum(x.astype(np.float64) * anp.sort(y)),
}


@pytest.mark.parametrize("options", SOLVERS[:3], ids=lambda o: "-".join(map(str, o.values())))
@pytest.mark.parametrize("name", sorted(FLOAT32_PROGRAMS))
def test_float32_inputs_give_float32_gradients(name, options):
    rng = np.random.default_rng(1)
    x, y = (rng.standard_normal(6).astype(np.float32) for _ in range(2))
    fun = FLOAT32_PROGRAMS[name]
    # no tol= here: relax raises the default 1e-12 to what float32 can resolve
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gx, gy = ardiff.grad(fun, argnum=(0, 1), **options)(x, y)
    assert gx.dtype == np.float32 and gy.dtype == np.float32
    rx, ry = ardiff.grad(fun, argnum=(0, 1), method="backprop")(x.astype(np.float64),
                                                               y.astype(np.float64))
    np.testing.assert_allclose(gx, rx, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(gy, ry, rtol=1e-4, atol=1e-5)


# -- operators that only exist on tracers ----------------------------------------------

def test_comparisons_on_tracers_are_plain_and_match_numpy():
    x = np.array([1.0, 2.0, 3.0])
    y = np.array([3.0, 2.0, 1.0])
    seen = {}

    def fun(a, b):
        seen.update(less=a < b, less_equal=a <= b, greater=a > b, greater_equal=a >= b,
                    equal=a == b, not_equal=a != b)
        return anp.sum(anp.where(a > b, a, b * 2.0))

    gx, gy = ardiff.grad(fun, argnum=(0, 1))(x, y)
    assert len(seen) == 6
    for name, value in seen.items():
        assert isinstance(value, np.ndarray) and value.dtype == bool, name
        np.testing.assert_array_equal(value, getattr(np, name)(x, y), err_msg=name)
    np.testing.assert_array_equal(gx, [0.0, 0.0, 1.0])
    np.testing.assert_array_equal(gy, [2.0, 2.0, 0.0])


# -- options an op does not support fail loudly, naming the function -----------------------

UNSUPPORTED = [
    (lambda x: anp.sum(anp.linalg.svd(x, hermitian=True)[1]), NotImplementedError,
     "svd.*hermitian"),
    (lambda x: anp.sum(anp.linalg.qr(x, mode="raw")[0]), NotImplementedError, "qr.*raw"),
    (lambda x: anp.sum(anp.pad(x, 1, mode="mean")), ValueError, "pad.*mode 'mean'"),
    (lambda x: anp.sum(anp.reshape(x, (4,), order="F")), ValueError, "reshape.*order"),
    (lambda x: anp.sum(x, dtype=np.float32), TypeError, "sum.*dtype"),
    # (anp.clip(x) without bounds follows NumPy: a copy from NumPy 2.1 on, ValueError before)
    (lambda x: anp.sum(anp.clip(x, 0.0, 1.0, out=np.zeros((2, 2)))), TypeError, "clip.*out="),
    (lambda x: anp.sum(np.add.reduce(x)), ardiff.TracingError, "np.add.reduce"),
]


@pytest.mark.parametrize("fun, error, match", UNSUPPORTED,
                         ids=[m.split(".")[0] for _, _, m in UNSUPPORTED])
def test_unsupported_options_raise_clear_errors(fun, error, match):
    with pytest.raises(error, match=match):
        ardiff.grad(fun)(np.eye(2))
