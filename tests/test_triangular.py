"""The exact sparse triangular solver and the op table's sparse local Jacobians.

Truth: the Jacobian built from the op's own VJP applied to every unit vector,
the exact backprop reference, closed forms, and relax at convergence.
"""

import importlib

import networkx as nx
import numpy as np
import pytest
from graphs import scalar_chain, tanh_mlp
from hypothesis import given, settings
from hypothesis import strategies as st
from test_ops import FAMILIES

import ardiff
import ardiff.nn  # noqa: F401  (registers the fused dense op)
import ardiff.numpy as anp
from ardiff.interchange import GraphValidationError
from ardiff.op import OPS, Op
from ardiff.ops.jacobians import jacobian_from_vjp
from ardiff.solvers import compile_plan
from ardiff.solvers.triangular import SystemTooLargeError, assemble, edge_jacobian

try:  # written by another helper; a small local generator stands in until it lands
    from ardiff.strategies import random_graphs, random_programs
except ImportError:  # pragma: no cover
    random_graphs = random_programs = None

RNG = np.random.default_rng(0)


def r(*shape):
    return RNG.standard_normal(shape) if shape else np.float64(RNG.standard_normal())


def pos(*shape):
    return np.abs(RNG.standard_normal(shape)) + 0.5


def spd(n, batch=()):
    m = RNG.standard_normal(batch + (n, n))
    return m @ np.swapaxes(m, -1, -2) + n * np.eye(n)


# (op name, args, kwargs, argnums to check): every op, with broadcasting and edge cases
CASES = [(name, (r(3, 2),), {}, [0]) for name in (
    "negative", "positive", "absolute", "square", "sin", "cos", "tan", "arctan", "sinh",
    "cosh", "tanh", "arcsinh", "exp", "exp2", "expm1", "deg2rad", "rad2deg", "sign", "floor",
    "ceil", "rint", "trunc", "expit", "erf")]
CASES += [(name, (pos(4),), {}, [0])
          for name in ("sqrt", "reciprocal", "log", "log2", "log10", "log1p", "cbrt")]
CASES += [(name, args, {}, [0, 1]) for name in (
    "add", "subtract", "multiply", "divide", "maximum", "minimum", "fmax", "fmin", "arctan2",
    "hypot", "logaddexp", "logaddexp2", "remainder", "fmod", "copysign")
    for args in ((r(3, 4), pos(4)), (r(2, 1, 3), r(4, 1)))]
CASES += [
    ("arcsin", (RNG.uniform(-.9, .9, 5),), {}, [0]),
    ("arccos", (RNG.uniform(-.9, .9, 5),), {}, [0]),
    ("arctanh", (RNG.uniform(-.9, .9, 5),), {}, [0]),
    ("arccosh", (pos(4) + 1,), {}, [0]),
    ("round", (r(4),), {"decimals": 1}, [0]),
    ("maximum", (np.array([1.0, 2.0, -1.0]), np.array([1.0, 0.0, 3.0])), {}, [0, 1]),  # tie
    ("power", (pos(3, 2), r(2)), {}, [0, 1]),
    ("where", (r(3, 4) > 0, r(3, 4), r(4)), {}, [1, 2]),
    ("clip", (r(5), -0.3, 0.4), {}, [0]),
    ("astype", (r(3), np.float32), {}, [0]),
    ("getitem", (r(4, 5), (slice(1, 3), [0, 2, 2])), {}, [0]),
    ("getitem", (r(4, 5), (Ellipsis, None, 1)), {}, [0]),
    ("getitem", (r(6), np.array([5, 0, 5])), {}, [0]),
    ("untake", (r(2, 3), (slice(1, 3), [0, 2, 2]), (4, 5)), {}, [0]),
    ("setitem", (r(4, 5), (slice(1, 3), [0, 2]), r(2, 1)), {}, [0, 2]),
    ("setitem", (r(4, 5), np.array([True, False, True, True]), r(5)), {}, [0, 2]),
    ("untake", (r(4), (slice(None), 1), (4, 3)), {}, [0]),
    ("reshape", (r(2, 6), (3, 4)), {}, [0]),
    ("transpose", (r(2, 3, 4), (2, 0, 1)), {}, [0]),
    ("transpose", (r(2, 3),), {}, [0]),
    ("broadcast_to", (r(3, 1), (2, 3, 4)), {}, [0]),
    ("roll", (r(3, 4), 5, None), {}, [0]),
    ("roll", (r(3, 4), (1, -2, 3), (0, 1, 0)), {}, [0]),
    ("roll", (r(2, 3, 4), -1, -1), {}, [0]),
    ("concatenate", (r(2, 3), r(4, 3), r(1, 3)), {"axis": 0}, [0, 1, 2]),
    ("concatenate", (r(2, 3), r(2, 2)), {"axis": -1}, [0, 1]),
    ("sum", (r(3, 4, 2),), {"axis": (0, 2)}, [0]),
    ("sum", (r(3, 4),), {"axis": 1, "keepdims": True}, [0]),
    ("sum", (r(3, 4),), {}, [0]),
    ("mean", (r(3, 4),), {"axis": 0}, [0]),
    ("max", (np.array([[1., 3., 3.], [2., 0., -1.]]),), {"axis": 1}, [0]),
    ("min", (r(3, 4),), {}, [0]),
    ("var", (r(3, 4),), {"axis": 1, "ddof": 1}, [0]),
    ("std", (r(3, 4),), {"axis": 0}, [0]),
    ("prod", (np.array([[1., 0., 3.], [2., 5., -1.]]),), {"axis": 1}, [0]),
    ("prod", (r(3, 2),), {}, [0]),
    ("logsumexp", (r(3, 4),), {"axis": -1}, [0]),
    ("norm", (r(3, 4),), {}, [0]),
    ("norm", (r(3, 4),), {"axis": 1, "ord": 3}, [0]),
    ("norm", (r(3, 4),), {"ord": "fro"}, [0]),
    ("norm", (r(5),), {"ord": np.inf}, [0]),
    ("cumsum", (r(3, 4),), {"axis": 1}, [0]),
    ("cumsum", (r(3, 4),), {}, [0]),
    ("cumprod", (np.array([[1., 0., 3.], [2., 5., -1.]]),), {"axis": 1}, [0]),
    ("cumprod", (r(2, 3),), {"axis": 0}, [0]),
    ("cumprod", (r(2, 3),), {}, [0]),
    ("dot", (r(3, 4), r(4, 2)), {}, [0, 1]),
    ("dot", (r(4), r(4)), {}, [0, 1]),
    ("dot", (r(2, 3, 4), r(5, 4, 2)), {}, [0, 1]),
    ("dot", (r(3), r()), {}, [0, 1]),
    ("matmul", (r(3, 4), r(4, 2)), {}, [0, 1]),
    ("matmul", (r(4), r(4, 2)), {}, [0, 1]),
    ("matmul", (r(3, 4), r(4)), {}, [0, 1]),
    ("matmul", (r(4), r(4)), {}, [0, 1]),
    ("matmul", (r(2, 1, 3, 4), r(5, 4, 2)), {}, [0, 1]),
    ("tensordot", (r(2, 3, 4), r(4, 3, 5)), {"axes": ([1, 2], [1, 0])}, [0, 1]),
    ("tensordot", (r(2, 3), r(4, 5)), {"axes": 0}, [0, 1]),
    ("einsum", ("ij,jk->ik", r(2, 3), r(3, 4)), {}, [1, 2]),
    ("einsum", ("ii->i", r(3, 3)), {}, [1]),
    ("einsum", ("ii", r(3, 3)), {}, [1]),
    ("einsum", ("...ij,...jk", r(2, 3, 4), r(4, 5)), {}, [1, 2]),
    ("einsum", ("i,i,j->j", r(3), r(3), r(2)), {}, [1, 2, 3]),
    ("einsum", ("ij->", r(2, 3)), {}, [1]),
    ("inv", (spd(3),), {}, [0]),
    ("inv", (spd(3, (2,)),), {}, [0]),
    ("solve", (spd(3), r(3)), {}, [0, 1]),
    ("solve", (spd(3), r(3, 2)), {}, [0, 1]),
    ("solve", (spd(3, (2,)), r(2, 3, 2)), {}, [0, 1]),
    ("det", (r(3, 3),), {}, [0]),
    ("det", (r(2, 3, 3),), {}, [0]),
    ("logabsdet", (r(2, 3, 3),), {}, [0]),
    ("dense", (r(2, 3), r(3, 4), r(4)), {"activation": "tanh"}, [0, 1, 2]),
]


def _case_id(case):
    name, args, kwargs, _ = case
    shapes = ",".join(str(np.shape(a)) for a in args if isinstance(a, np.ndarray))
    return f"{name}{shapes}{'+kw' if kwargs else ''}"


def _family_tables(name: str) -> list:
    """``name`` (a list) from every tests/test_ops_*.py module that defines it."""
    found = []
    for family in FAMILIES:
        found.extend(getattr(importlib.import_module(family), name, ()))
    return found


# Op families may add their own (op name, args, kwargs, argnums) cases next to their
# property cases, and list the ops that rely on the VJP fallback (with the reason).
CASES += _family_tables("JACOBIAN_CASES")
VJP_FALLBACK = dict(_family_tables("VJP_FALLBACK"))


@pytest.mark.parametrize("case", CASES, ids=[_case_id(c) for c in CASES])
def test_op_jacobian_matches_vjp_of_unit_vectors(case):
    name, args, kwargs, argnums = case
    op = OPS[name]
    ans = op.fwd(*args, **kwargs)
    for k in argnums:
        J = op.jacobian(k, ans, args, kwargs)
        if J is None:
            assert name in VJP_FALLBACK, f"op {name!r} has no Jacobian family"
            continue
        ref = jacobian_from_vjp(op.local_vjp(k, ans, args, kwargs), np.shape(ans),
                                np.shape(args[k])).toarray()
        assert J.shape == ref.shape == (np.size(ans), np.size(args[k]))
        np.testing.assert_allclose(J.toarray(), ref, rtol=1e-12, atol=1e-13)
        assert J.nnz <= op.jacobian_nnz(k, ans, args, kwargs)


def test_every_op_has_a_sparse_jacobian_and_a_test_case():
    missing = sorted(n for n, op in OPS.items() if op.jac is None and n not in VJP_FALLBACK
                     and not n.startswith("extend."))  # user primitives: VJP fallback
    assert not missing, (f"ops without a sparse Jacobian: {missing}; pass jac= (a family "
                         "from ardiff/ops/jacobians.py) to their defop, or list them with the "
                         "reason in VJP_FALLBACK of their tests/test_ops_*.py module")
    untested = sorted({n for n in OPS if not n.startswith("extend.")} - {c[0] for c in CASES})
    assert not untested, f"add a case to CASES in tests/test_triangular.py for {untested}"


def test_structured_jacobians_are_sparse():
    # matmul w.r.t. its left factor is kron(I_m, Bᵀ): m*n*k entries, not (m n)(m k)
    a, b = r(5, 4), r(4, 3)
    J = OPS["matmul"].jacobian(0, a @ b, (a, b), {})
    assert J.nnz == 5 * 3 * 4
    np.testing.assert_array_equal(J.toarray(), np.kron(np.eye(5), b.T))
    assert OPS["tanh"].jacobian(0, np.tanh(a), (a,), {}).nnz == a.size


# -- the solver ----------------------------------------------------------------------------



def assert_grads_close(a, b, rtol=1e-12):
    for ga, gb in zip(a, b):
        ga, gb = np.asarray(ga, dtype=np.float64), np.asarray(gb, dtype=np.float64)
        scale = max(float(np.max(np.abs(gb), initial=0.0)), 1e-300)
        assert float(np.max(np.abs(ga - gb), initial=0.0)) <= rtol * scale


def test_chain_closed_form():
    g, out, x = scalar_chain(12)
    res = ardiff.solve_triangular(g, out, [x])
    assert res.method == "triangular" and res.iterations == 1 and res.converged
    assert res.grads[0] == pytest.approx(1.1 ** 12, rel=1e-14)
    assert res.residuals[0] < 1e-15


def test_mlp_equals_backprop_and_activities_are_the_fixed_point():
    g, out, wrt = tanh_mlp()
    res = ardiff.solve_triangular(g, out, wrt)
    ref = ardiff.backprop(g, out, wrt)
    assert_grads_close(res.grads, ref.grads)
    assert set(res.activities) == set(ref.activities)
    assert_grads_close([res.activities[i] for i in ref.activities], list(ref.activities.values()))


def test_assembled_system_is_upper_triangular_with_unit_diagonal():
    g, out, wrt = tanh_mlp()
    plan = compile_plan(g, out, wrt)
    system = assemble(plan, np.ones(()))
    H = system.H.toarray()
    assert np.all(np.diag(H) == 1.0)
    assert np.all(np.tril(H, -1) == 0.0)
    x = np.concatenate([np.ravel(ardiff.backprop(g, out, wrt).activities[i])
                        for i in plan.relaxing])
    np.testing.assert_allclose(H @ x, system.b, rtol=1e-12, atol=1e-14)


def test_vector_output_with_seed_and_intermediate_wrt():
    g = ardiff.Graph()
    x = g.input(np.array([0.3, -0.7, 1.1]))
    h = anp.sin(x) * x
    y = anp.cumsum(h ** 2)
    seed = np.array([1.0, -2.0, 0.5])
    res = ardiff.solve_triangular(g, y, [x, h, y], seed=seed)
    ref = ardiff.backprop(g, y, [x, h, y], seed=seed)
    assert_grads_close(res.grads, ref.grads)


def test_float32_graph_keeps_dtype():
    g = ardiff.Graph()
    x = g.input(np.linspace(-1, 1, 4, dtype=np.float32))
    out = anp.sum(anp.tanh(x) ** 2)
    res = ardiff.solve_triangular(g, out, [x])
    assert res.grads[0].dtype == np.float32
    np.testing.assert_allclose(res.grads[0], ardiff.backprop(g, out, [x]).grads[0], rtol=1e-6)


def test_api_method_triangular_grad_jacobian_and_hessian():
    def f(x):
        return anp.sum(anp.sin(x) ** 3 + anp.exp(-x) * x[::-1])

    x = np.array([0.2, -0.4, 0.9])
    np.testing.assert_allclose(ardiff.grad(f, method="triangular")(x), ardiff.grad(f)(x),
                               rtol=1e-13)
    np.testing.assert_allclose(ardiff.jacobian(anp.tanh, method="triangular")(x),
                               np.diag(1 - np.tanh(x) ** 2), rtol=1e-13)
    # higher order: the inner solve runs on traced values (block back substitution)
    np.testing.assert_allclose(ardiff.hessian(f, method="triangular")(x),
                               ardiff.hessian(f, method="backprop")(x), rtol=1e-12)


def test_op_without_jacobian_falls_back_to_vjps():
    cube = Op("test_cube", lambda x: x ** 3, [lambda ans, x: lambda g: g * 3.0 * x ** 2])
    g = ardiff.Graph()
    x = g.input(np.array([0.5, -1.5]))
    out = anp.sum(anp.sin(cube(anp.tanh(x))))
    node = g.nodes[2]
    assert node.op is cube and cube.jacobian(0, node.value, node.args, {}) is None
    J, slow = edge_jacobian(node, 0)
    assert slow and np.allclose(J.toarray(), np.diag(3 * np.tanh([0.5, -1.5]) ** 2))
    res = ardiff.solve_triangular(g, out, [x])
    assert_grads_close(res.grads, ardiff.backprop(g, out, [x]).grads)


def test_size_guard_names_the_size_and_the_alternatives():
    g, out, wrt = tanh_mlp()
    with pytest.raises(SystemTooLargeError, match=r"25 unknowns.*method='backprop'"):
        ardiff.solve_triangular(g, out, wrt, max_nnz=30)
    assert ardiff.solve_triangular(g, out, wrt, max_nnz=10_000).converged


def test_cycle_from_networkx_is_refused_with_the_cycle_named():
    G = nx.DiGraph()
    G.add_node("x", op="input", value=np.ones(2))
    G.add_node("a", op="add")
    G.add_node("b", op="tanh")
    G.add_edge("x", "a", argnum=0)
    G.add_edge("b", "a", argnum=1)
    G.add_edge("a", "b", argnum=0)
    with pytest.raises(GraphValidationError, match=r"cycle: '(a|b)' -> '(a|b)' -> '(a|b)'"):
        ardiff.solve_triangular(G)
    with pytest.raises(GraphValidationError, match="cycle"):
        ardiff.relax(ardiff.from_networkx(G))


# -- property tests: random graphs and programs --------------------------------------------
def _local_graphs():
    """Random layered graphs of a few ops (stand-in if ardiff.strategies is missing)."""
    @st.composite
    def graphs(draw):
        rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
        g = ardiff.Graph()
        xs = [g.input(rng.standard_normal((3, 2))), g.input(rng.standard_normal(2))]
        values = list(xs)
        for _ in range(draw(st.integers(3, 25))):
            a, b = (values[i] for i in rng.integers(len(values), size=2))
            op = draw(st.sampled_from(["tanh", "mul", "add", "sum0", "T", "sin"]))
            if op == "tanh":
                values.append(anp.tanh(a))
            elif op == "sin":
                values.append(anp.sin(a))
            elif op == "mul" and (a.shape in (b.shape, (2,), ()) or b.shape in ((2,), ())):
                values.append(a * b)
            elif op == "add":
                values.append(a + anp.mean(b))
            elif op == "sum0" and a.ndim:
                values.append(anp.mean(a, axis=0))
            elif op == "T" and a.ndim == 2:
                values.append(a.T @ a)
        out = sum(anp.mean(v) for v in values[2:]) if len(values) > 2 else anp.sum(xs[0])
        return g, out, xs
    return graphs()


GRAPHS = random_graphs(min_nodes=20, max_nodes=60) if random_graphs else _local_graphs()


@settings(max_examples=6, deadline=None)
@given(GRAPHS)
def test_random_graphs_triangular_equals_backprop_and_relax(drawn):
    g, out, wrt = drawn
    ref = ardiff.backprop(g, out, wrt)
    res = ardiff.solve_triangular(g, out, wrt)
    assert_grads_close(res.grads, ref.grads, rtol=1e-12)
    relaxed = ardiff.relax(g, out, wrt, schedule="parallel", eta=1.0, tol=1e-14)
    assert relaxed.converged
    assert_grads_close(res.grads, relaxed.grads, rtol=1e-10)


@pytest.mark.skipif(random_programs is None, reason="ardiff.strategies not available")
@settings(max_examples=4, deadline=None)
@given(random_programs(min_nodes=20, max_nodes=50, control_flow=False)
       if random_programs else st.nothing())
def test_random_programs_triangular_equals_backprop(drawn):
    program, args = drawn
    argnum = tuple(range(len(args)))
    exact = ardiff.grad(program, argnum, method="backprop")(*args)
    solved = ardiff.grad(program, argnum, method="triangular")(*args)
    assert_grads_close(solved, exact, rtol=1e-12)
