"""Closed-form relaxation trajectories (issue 12, points 2 and 3).

Truth: explicit stepping (the relaxation solver run for exactly T steps), the
exact gradient (backprop) at convergence, and `scipy.integrate.solve_ivp` on the
continuous-time flow written out independently from the graph's local VJPs.
"""

import warnings

import numpy as np
import pytest
from graphs import tanh_mlp
from hypothesis import HealthCheck, given, settings
from reach_helpers import expect_reach
from scipy.integrate import solve_ivp

import ardiff
import ardiff.numpy as anp
from ardiff.rules import FeedbackAlignment, NoDerivative
from ardiff.solvers import compile_plan
from ardiff.solvers.closed_form import trajectory_weights
from ardiff.strategies import random_graphs


def relative_gap(actual, expected, reference=()):
    """max |a - e| over all arrays, relative to the largest |e| or |reference|.

    The closed form computes x* + e_T, so where e_T nearly cancels x* (early steps
    from zeros) its rounding error is that of x*, the gradient: comparisons pass the
    gradient as `reference`.
    """
    scale = max([float(np.max(np.abs(e))) for e in (*expected, *reference) if np.size(e)]
                + [1e-300])
    return max(float(np.max(np.abs(np.asarray(a) - np.asarray(e)), initial=0.0))
               for a, e in zip(actual, expected)) / scale


def mlp_graph(depth=3, seed=0):
    rng = np.random.default_rng(seed)
    sizes = [5] + [6] * depth + [3]
    weights = [rng.normal(size=(m, n)) * 0.6 for m, n in zip(sizes[:-1], sizes[1:])]
    x = rng.normal(size=(4, 5))

    def f(x, *ws):
        h = x
        for w in ws[:-1]:
            h = anp.tanh(h @ w)
        return anp.sum((h @ ws[-1]) ** 2)

    return ardiff.trace(f, x, *weights)


SETTINGS = [(schedule, eta, init) for schedule in ("parallel", "sequential")
            for eta in (0.1, 0.5, 1.0) for init in ("zeros", "forward")]


@pytest.mark.parametrize("schedule,eta,init", SETTINGS)
def test_state_after_T_steps_equals_stepping(schedule, eta, init):
    g = mlp_graph()
    exact = ardiff.backprop(g)
    keys = sorted(exact.activities)
    depth = compile_plan(g).max_depth
    for steps in (1, 3, 37):  # few steps on purpose: the ReachWarning says so
        with expect_reach(depth, steps, eta, schedule):
            stepped = ardiff.relax(g, schedule=schedule, eta=eta, init=init, tol=0.0,
                                   max_iter=steps)
        with expect_reach(depth, steps, eta, schedule):
            closed = ardiff.relax(g, schedule=schedule, eta=eta, init=init, tol=0.0,
                                  max_iter=steps, closed_form=True)
        assert relative_gap(closed.grads, stepped.grads, exact.grads) < 1e-12
        assert sorted(closed.activities) == sorted(stepped.activities) == keys
        assert relative_gap([closed.activities[i] for i in keys],
                            [stepped.activities[i] for i in keys],
                            [exact.activities[i] for i in keys]) < 1e-12
        assert closed.iterations == steps
        assert closed.residuals[-1] == pytest.approx(stepped.residuals[-1], rel=1e-9, abs=1e-15)


@pytest.mark.parametrize("schedule", ["parallel", "sequential"])
def test_recorded_trajectory_equals_stepping_at_every_step(schedule):
    g = mlp_graph(depth=4)
    stepped = ardiff.relax(g, schedule=schedule, eta=0.3, init="forward", tol=0.0,
                           max_iter=50, record=True)
    closed = ardiff.relax(g, schedule=schedule, eta=0.3, init="forward", tol=0.0,
                          max_iter=50, record=True, closed_form=True)
    exact = ardiff.backprop(g).activities
    for i, rows in stepped.trajectory.items():
        assert closed.trajectory[i].shape == rows.shape == (51,) + rows.shape[1:]
        assert relative_gap([closed.trajectory[i]], [rows], [exact[i]]) < 1e-12
    np.testing.assert_allclose(closed.residuals, stepped.residuals, rtol=1e-8, atol=1e-15)
    np.testing.assert_array_equal(closed.times, np.arange(51))


def test_sweeps_are_at_most_the_depth_whatever_the_number_of_steps():
    g = mlp_graph(depth=3)
    depth = compile_plan(g).max_depth
    counts = set()
    for steps in (10, 100, 10_000):
        with expect_reach(depth, steps, 0.1):
            res = ardiff.relax(g, schedule="parallel", eta=0.1, init="forward", tol=0.0,
                               max_iter=steps, closed_form=True)
        assert res.sweeps <= depth
        counts.add((res.sweeps, res.vjp_evals))
    assert len(counts) == 1  # the work does not grow with T
    with expect_reach(depth, 100, 0.1):
        stepped = ardiff.relax(g, schedule="parallel", eta=0.1, init="forward", tol=0.0,
                               max_iter=100)
    assert stepped.sweeps == 100


def test_large_eta_loses_only_the_digits_stepping_loses():
    """For 1 < eta < 2 the weights alternate and grow (up to `growth`); the closed form
    and stepping then agree to about eps times that growth, not better."""
    g = mlp_graph(depth=4)
    eta, steps = 1.6, 60
    depth = compile_plan(g).max_depth
    with expect_reach(depth, steps, eta):
        stepped = ardiff.relax(g, schedule="parallel", eta=eta, tol=0.0, max_iter=steps)
    with expect_reach(depth, steps, eta):
        closed = ardiff.relax(g, schedule="parallel", eta=eta, tol=0.0, max_iter=steps,
                              closed_form=True)
    growth = np.max(np.abs(trajectory_weights(np.arange(steps + 1), 6, eta, "parallel")))
    exact = ardiff.backprop(g).grads
    assert relative_gap(closed.grads, stepped.grads, exact) < 1e-13 * max(growth, 1.0)


@pytest.mark.parametrize("rule", [FeedbackAlignment(seed=3), NoDerivative()])
def test_rules_are_linear_so_the_closed_form_holds_for_them(rule):
    g, out, wrt = tanh_mlp()
    kwargs = dict(schedule="parallel", eta=0.2, init="forward", tol=0.0, max_iter=40)
    depth = compile_plan(g, out, wrt, [rule]).max_depth
    with expect_reach(depth, 40, 0.2):
        stepped = ardiff.relax(g, out, wrt, rules=[rule], **kwargs)
    with expect_reach(depth, 40, 0.2):
        closed = ardiff.relax(g, out, wrt, rules=[rule], closed_form=True, **kwargs)
    converged = ardiff.relax(g, out, wrt, rules=[rule], schedule="sequential", eta=1.0)
    assert relative_gap(closed.grads, stepped.grads, converged.grads) < 1e-12


@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
@given(drawn=random_graphs(min_nodes=20, max_nodes=40, kinks=False))
def test_random_graphs(drawn):
    g, out, wrt = drawn
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # overflowing random programs warn alike on both
        for schedule in ("parallel", "sequential"):
            kwargs = dict(schedule=schedule, eta=0.4, init="forward", tol=0.0, max_iter=25)
            stepped = ardiff.relax(g, out, wrt, **kwargs)
            closed = ardiff.relax(g, out, wrt, closed_form=True, **kwargs)
            exact = ardiff.backprop(g, out, wrt).grads
            if all(np.all(np.isfinite(s)) for s in (*stepped.grads, *exact)):
                assert relative_gap(closed.grads, stepped.grads, exact) < 1e-11


def test_huge_horizons_neither_overflow_nor_underflow():
    for schedule in ("parallel", "sequential"):
        w = trajectory_weights([0, 1, 10**3, 10**6], 1000, 0.1, schedule)
        assert np.all(np.isfinite(w)) and np.all(w >= 0)
        np.testing.assert_allclose(w[0], np.eye(1000)[0])  # the start: e_0 itself
    w = trajectory_weights([10**6], 1000, 1.5, "parallel")
    assert np.all(np.isfinite(w))
    g = mlp_graph()
    res = ardiff.relax(g, schedule="parallel", eta=0.1, tol=0.0, max_iter=10**6,
                       closed_form=True)
    assert relative_gap(res.grads, ardiff.backprop(g).grads) < 1e-13
    assert res.iterations == 10**6 and res.residuals[-1] < 1e-12


def test_paper_preset_in_closed_form_matches_stepping_and_grad():
    g = mlp_graph()
    stepped = ardiff.relax(g, preset="paper")
    closed = ardiff.relax(g, preset="paper", closed_form=True)
    assert closed.iterations == stepped.iterations == 100
    assert relative_gap(closed.grads, stepped.grads, ardiff.backprop(g).grads) < 1e-12

    def f(w, x):
        return anp.sum(anp.tanh(x @ w) ** 2)

    rng = np.random.default_rng(1)
    w, x = rng.normal(size=(3, 2)), rng.normal(size=(4, 3))
    np.testing.assert_allclose(ardiff.grad(f, preset="paper", closed_form=True)(w, x),
                               ardiff.grad(f, preset="paper")(w, x), rtol=1e-12)


def _flat_flow(g):
    """dx/dt = target(x) - x on the relaxing nodes, flattened, written with the plan's
    VJPs node by node (independent of the closed form)."""
    plan = compile_plan(g)
    nodes = plan.relaxing
    shapes = [np.shape(g.nodes[i].value) for i in nodes]
    sizes = [int(np.prod(s)) for s in shapes]
    seed = np.ones(())

    def unflatten(v):
        out, pos = {plan.output: seed}, 0
        for i, s, n in zip(nodes, shapes, sizes):
            out[i] = v[pos:pos + n].reshape(s)
            pos += n
        return out

    def rhs(t, v):
        x = unflatten(v)
        return np.concatenate([np.ravel(plan.activity_target(i, x) - x[i]) for i in nodes])

    return plan, nodes, sizes, rhs


def test_continuous_time_equals_solve_ivp():
    g = mlp_graph(depth=3)
    plan, nodes, sizes, rhs = _flat_flow(g)
    times = (0.5, 1.0, 2.5, 6.0)
    with pytest.warns(ardiff.ConvergenceWarning, match="after 6 time units"):  # not there yet
        res = ardiff.relax(g, schedule="continuous", time=times, init="forward", record=True)
    start = np.concatenate([np.ravel(g.nodes[i].value) for i in nodes])
    ref = solve_ivp(rhs, (0.0, times[-1]), start, method="RK45", t_eval=times, rtol=1e-12,
                    atol=1e-14)
    for row, t in enumerate(times):
        closed = np.concatenate([np.ravel(res.trajectory[i][row]) for i in nodes])
        np.testing.assert_allclose(closed, ref.y[:, row], rtol=1e-8, atol=1e-10,
                                   err_msg=f"t = {t}")
    np.testing.assert_array_equal(res.times, times)
    assert res.sweeps <= plan.max_depth
    # long times reach the fixed point (the gradient)
    late = ardiff.relax(g, schedule="continuous", time=200.0)
    assert relative_gap(late.grads, ardiff.backprop(g).grads) < 1e-12
    assert late.converged


def test_closed_form_options_are_checked():
    g = mlp_graph()
    with pytest.raises(ValueError, match="needs time="):
        ardiff.relax(g, schedule="continuous")
    with pytest.raises(ValueError, match="schedule='continuous'"):
        ardiff.relax(g, time=1.0)
    with pytest.raises(ValueError, match="increasing"):
        ardiff.relax(g, schedule="continuous", time=(2.0, 1.0))


def test_second_order_through_the_closed_form():
    def f(x):
        return anp.sum(anp.sin(x) ** 2 * x)

    x = np.array([0.3, -0.7, 1.2])
    exact = ardiff.hessian(f, method="backprop")(x)
    closed = ardiff.jacobian(ardiff.grad(f, eta=1.0, schedule="parallel", tol=0.0,
                                         max_iter=10, closed_form=True))(x)
    np.testing.assert_allclose(closed, exact, rtol=1e-12, atol=1e-14)


# -- 1 < eta < 2 against exact rational arithmetic (issue 12, point 2) ------------------
# The reference steps the same dynamics in `fractions.Fraction` arithmetic, with no
# rounding at all: every matrix entry and input is a multiple of 1/4 (exact in float64,
# so the frozen Jacobians of the float graph and of the reference are the same rational
# numbers), and eta is 5/4, 3/2 or 7/4.  The graph is linear with skip connections
# (paths of two lengths, D = 11), written here op by op as it is traced.


def _rational_program(n=3, layers=6, seed=0):
    rng = np.random.default_rng(seed)
    quarters = lambda shape: rng.integers(-6, 7, size=shape) / 4  # noqa: E731
    A = [quarters((n, n)) for _ in range(layers)]
    S = [quarters((n, n)) for _ in range(layers)]
    w, x = quarters((n,)), quarters((n,))

    def f(x):
        hs = [x]
        for k in range(layers):
            h = A[k] @ hs[-1]
            if k >= 1:
                h = h + S[k] @ hs[-2]  # skip connection from two levels below
            hs.append(h)
        return w @ hs[-1]

    return f, x, A, S, w


def _exact_stepping(A, S, w, x, eta, checkpoints, schedule):
    """dL/dx read out from the exact relaxation state at each checkpoint (forward start),
    and the largest error on the way, max_t |x_t - x*|, relative to |x_T|."""
    from fractions import Fraction

    A = [[[Fraction(v) for v in row] for row in M] for M in A]
    S = [[[Fraction(v) for v in row] for row in M] for M in S]
    w, x, eta = [Fraction(v) for v in w], [Fraction(v) for v in x], Fraction(eta)
    n, L = len(x), len(A)

    def mv(M, v):
        return [sum(M[i][j] * v[j] for j in range(n)) for i in range(n)]

    def tv(M, v):  # M^T v: the VJP of M @ h
        return [sum(M[j][i] * v[j] for j in range(n)) for i in range(n)]

    def add(a, b):
        return [p + q for p, q in zip(a, b)]

    # traced nodes in creation order: p_k = A_k h_{k-1}, s_k = S_k h_{k-2}, h_k = p_k + s_k
    # (h_0 is p_0 itself); the output w @ h_{L-1} is clamped to the seed 1
    hs, forward = [x], {}
    for k in range(L):
        h = forward[("p", k)] = mv(A[k], hs[-1])
        if k >= 1:
            forward[("s", k)] = mv(S[k], hs[-2])
            h = forward[("h", k)] = add(h, forward[("s", k)])
        hs.append(h)
    nodes = list(forward)

    def target(X, key):
        kind, k = key
        if kind in ("p", "s") and k >= 1:  # child: the add h_k
            return X[("h", k)]
        out = tv(A[k + 1], X[("p", k + 1)]) if k + 1 < L else list(w)
        return add(out, tv(S[k + 2], X[("s", k + 2)])) if k + 2 < L else out

    def flat(X):
        return np.array([float(v) for key in nodes for v in X[key]])

    def readout(X):
        return np.array([float(v) for v in add(tv(A[0], X[("p", 0)]),
                                               tv(S[1], X[("s", 1)]))])

    star = {}
    for key in reversed(nodes):
        star[key] = target(star, key)
    X = {key: list(forward[key]) for key in nodes}
    biggest, out = np.linalg.norm(flat(X) - flat(star)), {}
    for t in range(1, max(checkpoints) + 1):
        if schedule == "parallel":
            goal = {key: target(X, key) for key in nodes}
            X = {key: [a + eta * (b - a) for a, b in zip(X[key], goal[key])] for key in nodes}
        else:  # top-down: each node from its children's new activities
            for key in reversed(nodes):
                X[key] = [a + eta * (b - a) for a, b in zip(X[key], target(X, key))]
        biggest = max(biggest, np.linalg.norm(flat(X) - flat(star)))
        if t in checkpoints:
            out[t] = readout(X), biggest / np.linalg.norm(flat(X))
    return out


@pytest.mark.parametrize("schedule", ["parallel", "sequential"])
@pytest.mark.parametrize("eta", [1.25, 1.5, 1.75])
def test_large_eta_against_exact_rational_arithmetic(schedule, eta):
    eps = np.finfo(np.float64).eps
    f, x, A, S, w = _rational_program()
    g = ardiff.trace(f, x)
    checkpoints = (20, 60, 150)
    exact = _exact_stepping(A, S, w, x, eta, checkpoints, schedule)
    for steps in checkpoints:
        truth, growth = exact[steps]
        kwargs = dict(schedule=schedule, eta=eta, init="forward", tol=0.0, max_iter=steps)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            closed = ardiff.relax(g, closed_form=True, **kwargs)
            stepped = ardiff.relax(g, **kwargs)
        assert closed.plan.max_depth == 11 and closed.sweeps <= 11
        scale = np.linalg.norm(truth)
        closed_error = np.linalg.norm(closed.grads[0] - truth) / scale
        stepped_error = np.linalg.norm(stepped.grads[0] - truth) / scale
        # measured: closed form at most 7e-14 (2.5 digits lost) in every case; stepping
        # loses about log10(growth) digits (up to 7e-10 when the transient peaked 5e7 times
        # above the final state), which the closed form does not (docs/theory.md)
        assert closed_error < 1e-12
        assert stepped_error <= 200 * eps * max(growth, 1.0)


def test_the_closed_form_warns_of_the_reach_as_stepping_does():
    """A fixed budget that leaves the deepest unit short gives one ReachWarning, the same
    text from the closed form as from stepping (nothing appended when tol is met or 0)."""
    import warnings

    import ardiff.numpy as anp

    def deep(x):
        h = x
        for _ in range(12):
            h = anp.tanh(1.1 * h)
        return anp.sum(h * h)

    x0 = np.array([0.3, -0.4])
    texts = []
    for closed_form in (False, True):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            ardiff.grad(deep, schedule="parallel", eta=0.1, max_iter=5, tol=0.0,
                        closed_form=closed_form)(x0)
        assert [type(w.message) for w in caught] == [ardiff.ReachWarning]
        texts.append(str(caught[0].message))
    assert texts[0] == texts[1]
    assert texts[1].endswith("(at closed-form cost with closed_form=True).")
