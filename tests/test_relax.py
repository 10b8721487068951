"""The relaxation solver against closed forms and the exact backprop reference."""

import math
import warnings

import numpy as np
import pytest
from graphs import scalar_chain, tanh_mlp
from reach_helpers import depth_of, expect_reach, tail
from scipy.stats import binom

import ardiff
import ardiff.numpy as anp
from ardiff.solvers import compile_plan
from ardiff.solvers.residuals import NEGLIGIBLE


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
    with expect_reach(depth_of(g, out, [x]), 25, eta):  # the early steps, on purpose
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
    assert len(res.residuals) == 3 and res.residuals[-1] > 1e-3


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
    with pytest.warns(ardiff.NonFiniteWarning, match="sqrt"), np.errstate(divide="ignore"):
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
    with expect_reach(depth_of(g, out, wrt), 7, eta):  # 7 steps compared, on purpose
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


# -- residuals: one per step, for every schedule ---------------------------------------
@pytest.mark.parametrize("schedule", ["parallel", "sequential"])
@pytest.mark.parametrize("eta", [0.5, 1.0])
def test_residuals_describe_the_state_after_each_step(schedule, eta):
    """residuals[k] is the residual of trajectory row k + 1, on both schedules."""
    g, out, wrt = tanh_mlp()
    res = ardiff.relax(g, out, wrt, schedule=schedule, eta=eta, record=True)
    assert res.converged
    assert len(res.residuals) == res.iterations >= 1
    plan, seed = res.plan, np.float64(1.0)
    assert all(len(traj) == res.iterations + 1 for traj in res.trajectory.values())
    for k in range(res.iterations):
        state = {i: traj[k + 1] for i, traj in res.trajectory.items()}
        state[plan.output] = seed
        worst = max(ardiff.solvers.relative_error(plan.activity_target(i, state), state[i])
                    for i in plan.relaxing)
        # the solver's relative residual uses max|t| + max|t - x| as the scale, which is
        # within a factor 1 + r of max(max|t|, max|x|)
        assert res.residuals[k] == pytest.approx(worst, rel=2 * worst + 1e-6, abs=1e-15)
    assert res.residuals[-1] <= 1e-12


@pytest.mark.parametrize("options", [
    dict(), dict(record=True), dict(schedule="parallel", eta=1.0), dict(eta=0.7),
    dict(method="backprop"), dict(method="triangular"),
])
def test_every_solver_reports_one_residual_per_iteration(options):
    g, out, wrt = tanh_mlp()
    method = options.pop("method", "relax")
    solve = {"relax": ardiff.relax, "backprop": ardiff.backprop,
             "triangular": ardiff.solve_triangular}[method]
    res = solve(g, out, wrt, **options)
    assert len(res.residuals) == res.iterations >= 1
    assert res.residuals[-1] < 1e-12


def test_no_relaxing_nodes_means_no_iterations_and_no_residuals():
    g = ardiff.Graph()
    x = g.input(np.array([1.0, 2.0]))
    out = anp.sum(x)
    res = ardiff.relax(g, out, [x], schedule="parallel", eta=0.5)
    assert res.iterations == 0 and len(res.residuals) == 0 and res.converged


# -- presets: explicit keywords win everywhere -------------------------------------------
def test_explicit_keywords_override_the_preset_in_relax():
    g, out, wrt = tanh_mlp()
    D = depth_of(g, out, wrt, units="layers")
    assert tail(7, D, 0.1) > 0.05  # 7 steps do not reach: one ReachWarning that says so
    with pytest.warns(ardiff.ConvergenceWarning, match="relative residual"):
        res = ardiff.relax(g, out, wrt, preset="paper", max_iter=7, tol=1e-12)
    assert res.iterations == 7  # the preset alone runs 100 steps
    with pytest.warns(ardiff.ReachWarning, match=f"depth {D} "):
        res = ardiff.relax(g, out, wrt, preset="paper", max_iter=7)
    assert res.iterations == 7  # tol = 0 from the preset: exactly 7 steps
    paper = ardiff.relax(g, out, wrt, preset="paper", record=True)
    explicit = ardiff.relax(g, out, wrt, schedule="parallel", eta=0.1, init="forward",
                            max_iter=100, tol=0.0, record=True, units="layers")
    assert paper.iterations == 100
    # the preset's closed form equals the 100 explicit steps up to rounding
    for a, b in zip(paper.grads, explicit.grads):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)
    # a keyword left at None takes the preset's value; a given one wins
    fast = ardiff.relax(g, out, wrt, preset="paper", eta=1.0)
    ref = ardiff.backprop(g, out, wrt)
    # exact after D steps; the closed form describes all 100 (no early stop)
    assert fast.converged and fast.residuals[-1] == 0.0 and fast.sweeps <= res.plan.max_depth
    for a, b in zip(fast.grads, ref.grads):
        np.testing.assert_allclose(a, b, rtol=1e-12)


def test_explicit_keywords_override_the_preset_in_grad():
    x = np.linspace(-1.0, 1.0, 5)

    def f(x):
        h = x
        for _ in range(6):
            # marked: with only x differentiated, the preset's layer units would clamp
            # the whole chain (no parameter after the first op) and be exact
            h = ardiff.unit(anp.tanh(0.9 * h + 0.1))
        return anp.sum(h ** 2)

    graph = ardiff.trace(f, x)
    D = depth_of(graph, units="layers")  # 6 units: 100 steps leave 0.058 > 0.05

    def paper(steps):
        return expect_reach(D, steps, 0.1)

    with paper(7):
        seven = ardiff.relax(graph, preset="paper", max_iter=7).grads[0]
    with paper(100):
        hundred = ardiff.relax(graph, preset="paper").grads[0]
    assert not np.allclose(seven, hundred)
    with paper(7):
        np.testing.assert_array_equal(ardiff.grad(f, preset="paper", max_iter=7)(x), seven)
    with paper(100):
        np.testing.assert_array_equal(ardiff.grad(f, preset="paper")(x), hundred)
    compiled = ardiff.compile(f, preset="paper", max_iter=7)
    with paper(7):
        np.testing.assert_array_equal(compiled(x), seven)
    with paper(7):
        np.testing.assert_array_equal(compiled(x), seven)  # the replay too


def test_relax_signature_defaults_are_none_or_the_library_defaults():
    """Rendered defaults match the signature: None means "the preset's, or the default"."""
    import dataclasses
    import inspect

    params = inspect.signature(ardiff.relax).parameters
    for name in ("eta", "schedule", "init", "tol", "max_iter", "preset", "rules"):
        assert params[name].default is None, name
    defaults = {f.name: f.default for f in dataclasses.fields(ardiff.solvers.SolverOptions)}
    assert defaults["eta"] == 1.0 and defaults["schedule"] == "sequential"
    assert defaults["init"] == "zeros" and defaults["tol"] == 1e-12
    doc = ardiff.relax.__doc__
    assert "default 1.0" in doc and "default 1e-12" in doc and '{"paper"}' not in doc


def test_solver_options_validate_and_merge():
    SolverOptions = ardiff.solvers.SolverOptions
    assert SolverOptions.from_keywords() == SolverOptions()
    paper = SolverOptions.from_keywords(preset="paper", max_iter=7)
    assert (paper.schedule, paper.eta, paper.max_iter, paper.tol) == ("parallel", 0.1, 7, 0.0)
    with pytest.raises(ValueError, match="needs method='relax'"):
        SolverOptions.from_keywords(method="backprop", preset="paper")
    with pytest.raises(ValueError, match=r"\(0, 2\)"):
        SolverOptions(eta=2.0)
    assert set(ardiff.solvers.RUNNERS) == set(ardiff.solvers.options.METHODS)


# -- warnings point at the caller's line -------------------------------------------------
def _record_warnings(fun, category):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fun()
    found = [w for w in caught if issubclass(w.category, category)]
    assert found, f"no {category.__name__}"
    return found


def test_convergence_warning_points_at_the_callers_line():
    g, out, wrt = tanh_mlp()
    for w in _record_warnings(lambda: ardiff.relax(g, out, wrt, schedule="parallel",
                                                   eta=0.1, max_iter=3),
                              ardiff.ConvergenceWarning):
        assert w.filename == __file__
    f = lambda x: anp.sum(anp.tanh(anp.tanh(x)))  # noqa: E731
    for w in _record_warnings(
            lambda: ardiff.grad(f, schedule="parallel", eta=0.1, max_iter=2)(np.ones(3)),
            ardiff.ConvergenceWarning):
        assert w.filename == __file__


@pytest.mark.parametrize("call", [
    lambda g, out, x: ardiff.relax(g, out, [x]),
    lambda g, out, x: ardiff.relax(g, out, [x], schedule="parallel", eta=0.5),
    lambda g, out, x: ardiff.backprop(g, out, [x]),
    lambda g, out, x: ardiff.solve_triangular(g, out, [x]),
], ids=["relax", "relax-parallel", "backprop", "triangular"])
def test_non_finite_warning_points_at_the_callers_line(call):
    g = ardiff.Graph()
    x = g.input(np.array([0.0, 1.0]))
    out = anp.sum(anp.sqrt(x))
    with np.errstate(divide="ignore"):
        found = _record_warnings(lambda: call(g, out, x), ardiff.NonFiniteWarning)
    assert all(w.filename == __file__ for w in found), [w.filename for w in found]


@pytest.mark.parametrize("method", ["relax", "backprop", "triangular"])
def test_non_finite_warning_of_grad_points_at_the_callers_line(method):
    f = lambda x: anp.sum(anp.sqrt(x))  # noqa: E731
    with np.errstate(divide="ignore"):
        found = _record_warnings(lambda: ardiff.grad(f, method=method)(np.array([0.0, 1.0])),
                                 ardiff.NonFiniteWarning)
    assert all(w.filename == __file__ for w in found), [w.filename for w in found]


def test_traced_triangular_solve_warns_about_non_finite_gradients():
    """The higher-order branch of the triangular solver ends like every solve."""
    f = lambda x: anp.sum(anp.sqrt(x) * x)  # noqa: E731  (gradient NaN at 0: 0 * inf)
    inner = ardiff.grad(f, method="triangular")  # solved on values traced by the outer grad
    outer = ardiff.grad(lambda x: anp.sum(inner(x)), method="backprop")
    with np.errstate(divide="ignore", invalid="ignore"):
        found = _record_warnings(lambda: outer(np.array([0.0, 1.0])), ardiff.NonFiniteWarning)
    # the inner solve names the input it read the NaN out at; the outer one (backprop)
    # reports the inner gradient as a non-finite forward value of its own graph
    assert any("read out at" in str(w.message) for w in found), [str(w.message) for w in found]
    assert all(w.filename == __file__ for w in found), [w.filename for w in found]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("schedule", ["sequential", "parallel"])
def test_eta_above_one_converges_at_a_subnormal_target(dtype, schedule):
    # d/dx sin(exp(x + y) y) is exactly 0 at y = 0: from forward values, eta = 1.5
    # halves the error each step with alternating sign until it cycles between +-1
    # subnormal ulp, which must count as converged (it used to stall at a relative
    # residual of 2/3 and hit max_iter).
    def f(x, y):
        return anp.sin(anp.exp(x + y) * y)

    zero = np.zeros((), dtype)
    graph = ardiff.trace(f, zero, zero)
    seed = np.asarray(0.00123, dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ardiff.ConvergenceWarning)
        result = ardiff.relax(graph, eta=1.5, init="forward", schedule=schedule, seed=seed,
                              max_iter=5000)
    assert result.converged
    dx, dy = (float(g) for g in result.grads)
    # closed form: d/dx = cos(e^(x+y) y) e^(x+y) y = 0, d/dy = cos(.)(e^(x+y) y + e^(x+y)) = 1
    # 0 to within a subnormal ulp, or (float64) to the floor below which a target counts
    # as negligible: 1e-100 of the largest gradient
    assert abs(dx) <= max(float(np.finfo(dtype).smallest_normal), NEGLIGIBLE * 0.00123)
    assert dy == pytest.approx(0.00123, rel=10 * float(np.finfo(dtype).eps))


# -- the residual upstream of a dead unit (issue 24, point 9) ------------------------------
DEAD_BRANCH_SETTINGS = [dict(schedule="sequential", eta=0.6), dict(schedule="parallel", eta=1.4),
                        dict(schedule="parallel", eta=0.5)]


@pytest.mark.parametrize("options", DEAD_BRANCH_SETTINGS, ids=str)
def test_nodes_upstream_of_a_dead_unit_converge(options):
    """Below a branch that `maximum` did not choose the exact gradient is 0, but started
    from forward values the targets there are a decaying remnant, never exactly 0: they
    must count as converged (they made a false ConvergenceWarning with residual ~1)."""
    def fun(x):
        dead = anp.tanh(anp.tanh(anp.tanh(x)))  # below 5.0: maximum passes nothing back
        return anp.sum(anp.maximum(dead, 5.0)) + anp.sum(anp.sin(x))

    x = np.array([0.3, -0.7])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = ardiff.grad(fun, init="forward", **options)(x)
    np.testing.assert_allclose(got, np.cos(x), rtol=1e-11)


@pytest.mark.parametrize("options", DEAD_BRANCH_SETTINGS, ids=str)
def test_tiny_gradients_keep_the_relative_standard(options):
    """A gradient 1e-90 of the largest one is still relaxed to full relative accuracy."""
    def fun(x, y):
        return 1e-90 * anp.sum(anp.tanh(anp.tanh(x))) + anp.sum(anp.sin(y))

    x, y = np.array([0.3, -0.7]), np.array([1.0, 2.0])
    gx, gy = ardiff.grad(fun, argnum=(0, 1), init="forward", **options)(x, y)
    exact = 1e-90 * (1 - np.tanh(np.tanh(x)) ** 2) * (1 - np.tanh(x) ** 2)
    np.testing.assert_allclose(gx, exact, rtol=1e-10)
    np.testing.assert_allclose(gy, np.cos(y), rtol=1e-11)
