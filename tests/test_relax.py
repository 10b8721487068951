"""The relaxation solver against closed forms and the exact backprop reference."""

import math
import warnings

import numpy as np
import pytest
from graphs import scalar_chain, tanh_mlp
from scipy.stats import binom

import ardiff
import ardiff.numpy as anp
from ardiff.solvers import compile_plan


@pytest.mark.parametrize("depth", [1, 3, 8])
def test_parallel_eta_one_is_exact_after_depth_steps(depth):
    g, out, x = scalar_chain(depth)
    plan = compile_plan(g, out, [x])
    # relaxing nodes are the depth-1 intermediate products (x is read out)
    assert plan.max_depth == depth - 1
    res = ardiff.relax(g, out, [x], schedule="parallel", eta=1.0)
    assert res.iterations == depth - 1
    assert res.converged
    assert res.grads[0] == pytest.approx(1.1 ** depth, rel=1e-14)


def test_sequential_eta_one_is_one_sweep_and_equals_backprop():
    g, out, wrt = tanh_mlp()
    res = ardiff.relax(g, out, wrt)
    ref = ardiff.backprop(g, out, wrt)
    assert res.iterations == 1 and res.converged
    assert res.vjp_evals == ref.vjp_evals
    for a, b in zip(res.grads, ref.grads):
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=0)


@pytest.mark.parametrize("schedule,eta", [("parallel", 0.3), ("parallel", 1.7),
                                          ("sequential", 0.4), ("sequential", 1.6)])
@pytest.mark.parametrize("init", ["zeros", "forward"])
def test_converges_to_backprop(schedule, eta, init):
    g, out, wrt = tanh_mlp(seed=1)
    # For eta > 1 the iteration amplifies rounding noise through its non-normal
    # transient (about (eta / (1 - |1 - eta|))**depth), so its attainable floor is higher.
    tol = 1e-13 if eta < 1 else 1e-11
    res = ardiff.relax(g, out, wrt, schedule=schedule, eta=eta, init=init, tol=tol)
    ref = ardiff.backprop(g, out, wrt)
    assert res.converged
    assert res.residuals[-1] <= tol
    for a, b in zip(res.grads, ref.grads):
        np.testing.assert_allclose(a, b, rtol=100 * tol, atol=1e-14)


@pytest.mark.parametrize("eta", [0.1, 0.5])
def test_parallel_error_follows_binomial_tail(eta):
    # On a linear chain started from zeros, the activity at distance k after t steps
    # is exactly (true gradient) * P(Binomial(t, eta) >= k).
    depth = 6
    g, out, x = scalar_chain(depth, factor=1.0)
    res = ardiff.relax(g, out, [x], schedule="parallel", eta=eta, max_iter=25, tol=0.0,
                       record=True)
    plan = res.plan
    for i in plan.relaxing:
        k = plan.depth[i]
        traj = res.trajectory[i]
        for t in range(len(traj)):
            assert traj[t] == pytest.approx(binom.sf(k - 1, t, eta), rel=1e-12, abs=1e-15)


@pytest.mark.parametrize("eta", [0.0, -0.1, 2.0, 2.5, math.nan, math.inf])
def test_eta_outside_stability_interval_is_refused(eta):
    g, out, x = scalar_chain(3)
    with pytest.raises(ValueError, match=r"\(0, 2\)"):
        ardiff.relax(g, out, [x], eta=eta)


@pytest.mark.parametrize("kwargs,error", [
    (dict(max_iter=0), ValueError), (dict(max_iter=-3), ValueError),
    (dict(max_iter=2.5), TypeError), (dict(tol=-1.0), ValueError),
    (dict(tol=math.nan), ValueError), (dict(schedule="random"), ValueError),
    (dict(init="ones"), ValueError), (dict(preset="fast"), ValueError),
])
def test_bad_options(kwargs, error):
    g, out, x = scalar_chain(3)
    with pytest.raises(error):
        ardiff.relax(g, out, [x], **kwargs)


def test_non_convergence_is_reported():
    g, out, wrt = tanh_mlp()
    with pytest.warns(ardiff.ConvergenceWarning, match="max_iter=3"):
        res = ardiff.relax(g, out, wrt, schedule="parallel", eta=0.1, max_iter=3)
    assert not res.converged
    assert len(res.residuals) == 4 and res.residuals[-1] > 1e-3


def test_paper_preset_runs_exactly_100_steps_without_warning():
    g, out, wrt = tanh_mlp()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = ardiff.relax(g, out, wrt, preset="paper")
    assert res.iterations == 100
    ref = ardiff.backprop(g, out, wrt)

    def error(result):
        return max(np.max(np.abs(a - b)) / np.max(np.abs(b))
                   for a, b in zip(result.grads, ref.grads))

    # the paper's setting is truncated: close to the gradient, not exact, and longer runs of
    # the same dynamics get closer
    longer = ardiff.relax(g, out, wrt, schedule="parallel", eta=0.1, init="forward",
                          max_iter=300, tol=0.0)
    assert 0 < error(longer) < error(res) / 10 < 0.1


def test_tiny_gradients_converge_relative():
    # gradient ~1e-100: an absolute tolerance would stop immediately at zero
    g = ardiff.Graph()
    x = g.input(1.0)
    h = x
    for _ in range(10):
        h = h * 1e-10 + 0.0 * h
    res = ardiff.relax(g, h, [x], schedule="parallel", eta=0.5, tol=1e-12)
    assert res.converged
    assert res.grads[0] == pytest.approx(1e-100, rel=1e-10)


def test_record_trajectory_shapes():
    g, out, wrt = tanh_mlp()
    res = ardiff.relax(g, out, wrt, schedule="parallel", eta=0.5, record=True)
    for i, traj in res.trajectory.items():
        assert traj.shape == (res.iterations + 1,) + np.shape(g.nodes[i].value)
        np.testing.assert_array_equal(traj[-1], res.activities[i])


def test_forward_init_starts_at_forward_values():
    g, out, wrt = tanh_mlp()
    res = ardiff.relax(g, out, wrt, schedule="parallel", eta=0.5, init="forward", record=True)
    for i, traj in res.trajectory.items():
        np.testing.assert_array_equal(traj[0], g.nodes[i].value)


def test_output_independent_of_wrt_gives_zero_gradient():
    g = ardiff.Graph()
    x = g.input(np.ones(3))
    y = g.input(np.ones(2))
    out = anp.sum(anp.sin(y))
    res = ardiff.relax(g, out, [x, y])
    np.testing.assert_array_equal(res.grads[0], np.zeros(3))
    np.testing.assert_allclose(res.grads[1], np.cos(np.ones(2)))


def test_non_scalar_output_needs_seed():
    g = ardiff.Graph()
    x = g.input(np.arange(3.0))
    y = anp.sin(x)
    with pytest.raises(ValueError, match="seed"):
        ardiff.relax(g, y, [x])
    seed = np.array([1.0, 2.0, 3.0])
    np.testing.assert_allclose(ardiff.relax(g, y, [x], seed=seed).grads[0],
                               seed * np.cos(np.arange(3.0)))


def test_constant_cannot_be_wrt():
    g = ardiff.Graph()
    c = g.constant(np.ones(2))
    x = g.input(np.ones(2))
    out = anp.sum(c * x)
    with pytest.raises(ValueError, match="constant"):
        ardiff.relax(g, out, [c])
    np.testing.assert_array_equal(ardiff.relax(g, out, [x]).grads[0], np.ones(2))


def test_non_finite_activity_names_the_node():
    g = ardiff.Graph()
    x = g.input(np.array([0.0, 1.0]))
    out = anp.sum(anp.sqrt(x))
    with pytest.warns(ardiff.NonFiniteWarning, match="sqrt"):
        res = ardiff.relax(g, out, [x], schedule="parallel", eta=0.5)
    assert np.isinf(res.grads[0][0])


def dense_jacobi(plan, seed, eta, steps, init_zero=True):
    """Reference: every node recomputes its target from the previous state each step."""
    nodes = plan.graph.nodes
    x = {i: np.zeros_like(nodes[i].value) if init_zero else nodes[i].value
         for i in plan.relaxing}
    x[plan.output] = seed
    for _ in range(steps):
        targets = {i: plan.activity_target(i, x) for i in plan.relaxing}
        for i in plan.relaxing:
            x[i] = x[i] + eta * (targets[i] - x[i])
    return x


@pytest.mark.parametrize("builder", [lambda: scalar_chain(12), tanh_mlp])
def test_parallel_eta_one_evaluates_each_vjp_once(builder):
    g, out, wrt = builder()
    wrt = wrt if isinstance(wrt, list) else [wrt]
    res = ardiff.relax(g, out, wrt, schedule="parallel", eta=1.0)
    ref = ardiff.backprop(g, out, wrt)
    assert res.vjp_evals == ref.vjp_evals  # one sweep's worth of local VJPs
    dense = dense_jacobi(res.plan, np.float64(1.0), 1.0, res.iterations)
    for i in res.plan.relaxing:
        np.testing.assert_array_equal(res.activities[i], dense[i])


@pytest.mark.parametrize("eta", [0.3, 1.0, 1.5])
def test_change_tracking_matches_dense_iteration(eta):
    g, out, wrt = tanh_mlp(seed=3)
    res = ardiff.relax(g, out, wrt, schedule="parallel", eta=eta, max_iter=7, tol=0.0)
    dense = dense_jacobi(res.plan, np.float64(1.0), eta, res.iterations)
    for i in res.plan.relaxing:
        np.testing.assert_array_equal(res.activities[i], dense[i])


def test_dead_units_from_forward_values_converge():
    # every unit of the first hidden layer is dead (relu of negative): its gradient is
    # exactly zero, yet its forward value is not; a purely relative test could never pass
    g = ardiff.Graph()
    x = g.input(np.ones(3))
    W = g.input(-np.ones((4, 3)))
    h = anp.maximum(W @ x, 0.0)
    out = anp.sum(anp.tanh(h + 1.0) ** 2)
    res = ardiff.relax(g, out, [x, W], schedule="parallel", eta=0.5, init="forward")
    assert res.converged
    ref = ardiff.backprop(g, out, [x, W])
    for a, b in zip(res.grads, ref.grads):
        np.testing.assert_allclose(a, b, atol=1e-11)
