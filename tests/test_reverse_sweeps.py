"""The releasing reverse sweep (ardiff/solvers/reverse.py) against the reference sweep.

`sweep_gradients` drops each activity after its last reader and sums the sources'
gradients on the way; on plans of `RELEASE_FROM` relaxing nodes and more it must give
`run_backprop`'s bits (the reference sweep, which keeps everything), and both must agree
with central finite differences.  Graphs with reused nodes, skip connections and
parameters read many times (a source with many children).
"""

from __future__ import annotations

import numpy as np
import pytest

import ardiff
import ardiff.numpy as anp
from ardiff.solvers import compile_plan, reverse
from ardiff.solvers.reverse import RELEASE_FROM, run_backprop, sweep_gradients, sweep_releasing


def deep(W, b, x, layers=12):
    h = x
    for k in range(layers):
        h = anp.tanh(W @ h + b * (0.1 * k)) * 0.9 + h * 0.1  # W, b read every layer; a skip
    return anp.sum(h * h) + anp.sum(W * b[:, None]) + anp.sum(x * h)


def point(seed=0):
    rng = np.random.default_rng(seed)
    return (0.5 * rng.standard_normal((4, 4)), rng.standard_normal(4), rng.standard_normal(4))


def plan_of(fun, args, stage=False):
    graph = ardiff.trace(fun, *args)
    return compile_plan(graph, graph.output, graph.inputs, stage=stage)


def central_differences(fun, args, k, h=1e-6):
    args = [np.array(a, dtype=float) for a in args]
    grad = np.zeros_like(args[k])
    for i in range(grad.size):
        up, down = [a.copy() for a in args], [a.copy() for a in args]
        up[k].flat[i] += h
        down[k].flat[i] -= h
        grad.flat[i] = (fun(*up) - fun(*down)) / (2 * h)
    return grad


@pytest.mark.parametrize("seed", [0, 1])
def test_releasing_sweep_gives_the_reference_bits(seed):
    args = point(seed)
    plan = plan_of(deep, args)
    assert len(plan.relaxing) >= RELEASE_FROM  # the releasing path
    got = sweep_gradients(plan)
    want = run_backprop(plan_of(deep, args)).grads
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)
    for k, g in enumerate(got):
        np.testing.assert_allclose(g, central_differences(lambda *a: float(deep(*a)), args, k),
                                   rtol=1e-6, atol=1e-8)


def test_a_seed_scales_every_gradient():
    args = point(2)
    plain = sweep_gradients(plan_of(deep, args))
    scaled = sweep_gradients(plan_of(deep, args), seed=np.float64(-2.5))
    for a, b in zip(plain, scaled):
        np.testing.assert_allclose(b, -2.5 * a, rtol=1e-13)


def test_activities_are_dropped_after_their_last_reader():
    plan = plan_of(deep, point())
    x = {plan.output: np.float64(1.0)}
    sweep_releasing(plan, x)
    kept = set(plan.wrt) | {plan.output} | set(plan.sources)
    assert set(x) <= kept, sorted(set(x) - kept)
    # the sources' sums are left under their indices: the read-out's gradients
    want = run_backprop(plan_of(deep, point())).grads
    for node, g in zip(plan.wrt, want):
        np.testing.assert_array_equal(x[node], g)


def test_wrt_nodes_that_relax_keep_their_activity():
    # x is read by the loss directly and by the first layer: a wrt node that is also a
    # source; an intermediate listed in wrt must keep its activity too
    def fun(W, b, x):
        return deep(W, b, x, layers=11)

    graph = ardiff.trace(fun, *point())
    middle = graph.nodes[len(graph.nodes) // 2].index
    plan = compile_plan(graph, graph.output, [*graph.inputs, middle], stage=False)
    got = sweep_gradients(plan)
    want = run_backprop(compile_plan(graph, graph.output, [*graph.inputs, middle])).grads
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)


def test_the_path_depends_on_the_plan_size(monkeypatch):
    calls = []
    real = reverse.sweep_releasing
    monkeypatch.setattr(reverse, "sweep_releasing", lambda plan, x: (calls.append(1),
                                                                      real(plan, x)))
    big = plan_of(deep, point())
    small = plan_of(lambda W, b, x: deep(W, b, x, layers=1), point())
    assert len(small.relaxing) < RELEASE_FROM <= len(big.relaxing)
    sweep_gradients(small)
    assert calls == []
    sweep_gradients(big)
    assert calls == [1]
    sweep_gradients(plan_of(deep, point(), stage=True))  # staged plans sweep normally
    assert calls == [1]


def test_backprop_on_a_graph_is_the_reference():
    W, b, x = point(3)
    g = ardiff.Graph()
    tW, tb, tx = g.input(W), g.input(b), g.input(x)
    out = deep(tW, tb, tx, layers=3)
    res = ardiff.backprop(g, out, [tW, tx], seed=np.float64(2.0))
    assert res.method == "backprop" and res.iterations == 1 and res.converged
    np.testing.assert_allclose(
        res.grads[0], 2.0 * central_differences(lambda *a: float(deep(*a, layers=3)),
                                                (W, b, x), 0), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(
        res.grads[1], 2.0 * central_differences(lambda *a: float(deep(*a, layers=3)),
                                                (W, b, x), 2), rtol=1e-6, atol=1e-8)
    assert res.vjp_evals > 0 and list(res.residuals) == [0.0]


def mixed(W, c, s, a, x):
    # c enters through add (its first gradient term is an activity itself, shared), s is a
    # scalar read by every layer (sums of NumPy scalars), a * x near the output is read by
    # two sources at once
    h = x
    for _ in range(10):
        h = anp.tanh((W @ h + c) * s) * 0.9 + h * 0.1
    return anp.sum(anp.tanh(a * x) * h) + anp.sum(h ** 2)


def mixed_point():
    rng = np.random.default_rng(5)
    return (0.4 * rng.standard_normal((3, 3)), rng.standard_normal(3), np.float64(0.7),
            rng.standard_normal(3), rng.standard_normal(3))


def test_shared_first_terms_scalar_sources_and_two_sources_of_one_child():
    args = mixed_point()
    graph = ardiff.trace(mixed, *args)
    c_node = graph.inputs[1].node.index
    # every add that reads c: its activity is c's first gradient term, and it is kept
    # (listed in wrt), so an in-place sum into it would show in its returned gradient
    adds = [n.index for n in graph.nodes
            if getattr(n.op, "name", "") == "add" and any(p == c_node for _, p in n.parents)]
    wrt = [*graph.inputs, *adds]
    plan = compile_plan(graph, graph.output, wrt, stage=False)
    assert len(plan.relaxing) >= RELEASE_FROM
    got = sweep_gradients(plan)
    want = run_backprop(compile_plan(graph, graph.output, wrt)).grads
    assert len(got) == len(want) == 5 + len(adds)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)
    for k in range(5):
        if k == 2:  # the scalar s
            h = 1e-6
            up, down = list(args), list(args)
            up[2], down[2] = args[2] + h, args[2] - h
            fd = (float(mixed(*up)) - float(mixed(*down))) / (2 * h)
            assert float(got[2]) == pytest.approx(fd, rel=1e-6)
            continue
        np.testing.assert_allclose(got[k], central_differences(
            lambda *a: float(mixed(*a)), args, k), rtol=1e-6, atol=1e-8)


def scaled_output(W, c, s, a, x):
    # the output node itself reads the parameter s (a source child of the output)
    return anp.sum(deep(W, c, x, layers=11) * a) * s


def test_a_parameter_read_by_the_output_and_the_seed():
    args = mixed_point()
    graph = ardiff.trace(scaled_output, *args)
    seed = np.float64(-1.5)
    plan = compile_plan(graph, graph.output, graph.inputs, stage=False)
    got = sweep_gradients(plan, seed=seed)
    want = run_backprop(compile_plan(graph, graph.output, graph.inputs), seed=seed).grads
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)
    h = 1e-6
    up, down = list(args), list(args)
    up[2], down[2] = args[2] + h, args[2] - h
    fd = (float(scaled_output(*up)) - float(scaled_output(*down))) / (2 * h)
    assert float(got[2]) == pytest.approx(-1.5 * fd, rel=1e-6)


def test_the_output_in_wrt_gets_the_seed():
    graph = ardiff.trace(deep, *point())
    wrt = [*graph.inputs, graph.output]
    seed = np.float64(3.0)
    got = sweep_gradients(compile_plan(graph, graph.output, wrt, stage=False), seed=seed)
    assert float(got[-1]) == 3.0
    assert float(run_backprop(compile_plan(graph, graph.output, wrt), seed=seed).grads[-1]) == 3.0


def test_non_finite_gradients_of_the_releasing_sweep_name_the_node():
    def fun(W, b, x):
        return deep(W, b, x) + anp.sum(anp.sqrt(x * 0.0))  # sqrt at 0: infinite slope

    plan = plan_of(fun, point())
    assert len(plan.relaxing) >= RELEASE_FROM
    with pytest.warns(ardiff.NonFiniteWarning, match="sqrt"), \
            np.errstate(divide="ignore", invalid="ignore"):
        sweep_gradients(plan)


def test_release_from_is_inclusive(monkeypatch):
    plan = plan_of(deep, point())
    calls = []
    real = reverse.sweep_releasing
    monkeypatch.setattr(reverse, "sweep_releasing", lambda p, x: (calls.append(1), real(p, x)))
    monkeypatch.setattr(reverse, "RELEASE_FROM", len(plan.relaxing))
    sweep_gradients(plan)
    assert calls == [1]
    monkeypatch.setattr(reverse, "RELEASE_FROM", len(plan.relaxing) + 1)
    sweep_gradients(plan_of(deep, point()))
    assert calls == [1]


def test_a_view_of_a_kept_activity_is_never_summed_into():
    # w's first gradient term is the reshape VJP: a view of the reshape node's activity,
    # which is kept (in wrt); adding w's later terms into it in place would change it
    def viewed(w, x):
        extra = anp.sum(w ** 2)  # recorded first: its term for w comes last
        W = anp.reshape(w, (3, 3))
        h = x
        for _ in range(10):
            h = anp.tanh(W @ h) * 0.9 + h * 0.1
        return anp.sum(h ** 2) + extra

    rng = np.random.default_rng(7)
    graph = ardiff.trace(viewed, 0.3 * rng.standard_normal(9), rng.standard_normal(3))
    reshaped = [n.index for n in graph.nodes if getattr(n.op, "name", "") == "reshape"]
    wrt = [*graph.inputs, *reshaped]
    plan = compile_plan(graph, graph.output, wrt, stage=False)
    assert len(plan.relaxing) >= RELEASE_FROM
    got = sweep_gradients(plan)
    want = run_backprop(compile_plan(graph, graph.output, wrt)).grads
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)
