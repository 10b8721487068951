"""The reach of a fixed step budget (issue 25): error_bound measured, the ReachWarning,
max_iter="reach", and check_convexity's report of the remaining fractions.

Truth: exact binomial sums written out here in rational arithmetic (`tail`), backprop,
and the relaxation stepped explicitly (`closed_form=False`).  No expected value comes
from ardiff.solvers.theory.
"""

import contextlib
import warnings
from fractions import Fraction
from math import comb

import numpy as np
import pytest

import ardiff
import ardiff.numpy as anp
from ardiff import nn
from ardiff.solvers import compile_plan, relative_error, unit_plan
from ardiff.solvers.theory import error_bound, reach_depth, remaining_fractions


def tail(T, k, eta, schedule="parallel"):
    """Fraction of the initial error left at distance k after T steps, exactly.

    parallel: sum_{m<k} C(T, m) eta^m (1-eta)^(T-m);
    sequential: (1-eta)^T sum_{m<k} C(T+m-1, m) eta^m (the negative-binomial form).
    """
    e = Fraction(eta).limit_denominator(10**6)
    if schedule == "parallel":
        total = sum(comb(T, m) * e**m * (1 - e) ** (T - m) for m in range(min(k, T + 1)))
    else:
        total = (1 - e) ** T * sum(comb(T + m - 1, m) * e**m for m in range(k)) if T \
            else Fraction(1)
    return float(total)


def needed(k, eta, fraction=0.05, schedule="parallel"):
    """Smallest T with tail(T, k) <= fraction, by counting up."""
    T = 1
    while tail(T, k, eta, schedule) > fraction:
        T += 1
    return T


def expect_reach(D, T, eta, schedule="parallel"):
    """pytest.warns(ReachWarning) when T steps leave depth D above 0.05, else nothing."""
    if tail(T, D, eta, schedule) > 0.05:
        return pytest.warns(ardiff.ReachWarning, match=f"depth {D} ")
    return contextlib.nullcontext()


def chain_graph(length):
    """x -> c_1 x -> c_2 c_1 x -> ... -> sum: every node on one path."""
    factors = np.linspace(0.7, 1.3, length)

    def f(x):
        h = x
        for c in factors:
            h = h * c
        return anp.sum(h)

    return ardiff.trace(f, np.array([0.3, -1.2, 2.0]))


def tanh_layers(L, width=12, batch=5, seed=0, residual=False):
    """A function of the weights: L hidden tanh layers (each marked as a unit), a linear
    output and a squared-error loss; input 8, output 4."""
    rng = np.random.RandomState(seed)
    sizes = [8] + [width] * L
    Ws = [rng.randn(a, b) / np.sqrt(a) for a, b in zip(sizes[:-1], sizes[1:])]
    Wo = rng.randn(width, 4) / np.sqrt(width)
    x = rng.randn(batch, 8)
    y = np.eye(4)[rng.randint(0, 4, batch)]

    def loss(Ws):
        h = x
        for W in Ws:
            h = ardiff.unit(h + anp.tanh(h @ W) if residual and h.shape[1] == width
                            else anp.tanh(h @ W))
        return 0.5 * anp.sum((h @ Wo - y) ** 2) / batch

    return loss, Ws


# -- 1. the measured error is error_bound -------------------------------------------------
@pytest.mark.parametrize("schedule,eta,T", [("parallel", 0.1, 60), ("parallel", 0.5, 17),
                                            ("sequential", 0.1, 40), ("sequential", 0.3, 9)])
def test_chain_from_zeros_error_is_the_binomial_tail(schedule, eta, T):
    g = chain_graph(12)
    exact = ardiff.backprop(g).activities
    plan = compile_plan(g)
    with expect_reach(plan.max_depth, T, eta, schedule):
        res = ardiff.relax(g, eta=eta, schedule=schedule, max_iter=T, tol=0.0, init="zeros")
    for i in plan.relaxing:
        k = plan.depth[i]
        measured = relative_error(res.activities[i], exact[i])
        assert abs(measured - tail(T, k, eta, schedule)) <= 1e-10, (i, k)
        assert abs(float(error_bound(T, k, eta, schedule)) - tail(T, k, eta, schedule)) \
            <= 1e-12


@pytest.mark.parametrize("closed_form", [False, True])
@pytest.mark.parametrize("schedule,eta,T", [("parallel", 0.1, 100), ("sequential", 0.1, 30)])
def test_deep_layered_mlp_from_zeros_error_is_the_binomial_tail(schedule, eta, T, closed_form):
    loss, Ws = tanh_layers(16)
    g = ardiff.trace(loss, Ws)
    exact = ardiff.backprop(g).activities
    plan = unit_plan(compile_plan(g), "layers")
    assert plan.max_depth == 16
    with expect_reach(16, T, eta, schedule):
        res = ardiff.relax(g, eta=eta, schedule=schedule, max_iter=T, tol=0.0, init="zeros",
                           units="layers", closed_form=closed_form)
    for i in plan.relaxing:
        k = plan.depth[i]
        assert abs(relative_error(res.activities[i], exact[i]) - tail(T, k, eta, schedule)) \
            <= 1e-10, k


def test_remaining_fractions_and_reach_depth_against_exact_sums():
    for schedule, eta, T in [("parallel", 0.1, 100), ("sequential", 0.2, 12),
                             ("parallel", 0.7, 9)]:
        fractions = remaining_fractions(T, 12, eta, schedule)
        assert np.allclose(fractions, [tail(T, k, eta, schedule) for k in range(1, 13)],
                           rtol=1e-10, atol=1e-14)
        within = [k for k in range(1, 200) if tail(T, k, eta, schedule) <= 0.05]
        assert reach_depth(T, eta, schedule) == max(within, default=0)
    assert reach_depth(3, 1.0, "sequential") is None  # exact in one sweep: no limit
    assert reach_depth(7, 1.0, "parallel") == 7  # exact after D steps


# -- 2. the warning -------------------------------------------------------------------------
def test_paper_mlp_with_the_paper_preset_is_silent():
    """784-300-300-100-10: 3 hidden units, remaining fraction 0.002 < 0.05."""
    model = nn.MLP((784, 300, 300, 100, 10), seed=0)
    x = np.random.default_rng(0).random((8, 784))
    targets = np.eye(10)[np.arange(8)]
    assert tail(100, 3, 0.1) == pytest.approx(0.0019, abs=5e-5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        batch = nn.batch_gradients(model, x, targets)  # the paper's method
        exact = nn.batch_gradients(model, x, targets, method=nn.backprop_method())

        def loss(params):  # the same network traced by grad, hidden layers marked
            h = x
            for k, W in enumerate(params):
                h = ardiff.unit(anp.maximum(h @ W, 0.0)) if k < 3 else h @ W
            return anp.sum((h - targets) ** 2)

        ardiff.grad(loss, preset="paper")(list(model.weights))
    assert len(batch.grads) == len(exact.grads)


@pytest.mark.parametrize("entry", ["grad", "relax", "compile"])
def test_warning_fires_at_eight_hidden_layers_once_at_the_callers_line(entry):
    loss, Ws = tanh_layers(8)
    fraction = tail(100, 8, 0.1)
    T = needed(8, 0.1)
    assert tail(T, 8, 0.1) <= 0.05 < tail(T - 1, 8, 0.1)
    with pytest.warns(ardiff.ReachWarning) as record:
        if entry == "grad":
            ardiff.grad(loss, preset="paper")(Ws)
        elif entry == "relax":
            ardiff.relax(ardiff.trace(loss, Ws), preset="paper")
        else:
            ardiff.compile(loss, preset="paper")(Ws)
    reach = [w for w in record if issubclass(w.category, ardiff.ReachWarning)]
    assert len(record) == len(reach) == 1  # once, and no ConvergenceWarning beside it
    message = str(reach[0].message)
    assert "depth 8 " in message and f"{fraction:.3g}" in message
    assert f"max_iter={T} " in message
    assert reach[0].filename == __file__  # the user's line, not ardiff's
    assert isinstance(reach[0].message, ardiff.ConvergenceWarning)


def test_warning_depends_on_depth_not_on_the_call():
    """Silent where the deepest unit is reached (4 layers at T = 200; eta = 1
    sequential is exact); a tol > 0 that is not reached gives one warning, not two."""
    loss, Ws = tanh_layers(4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ardiff.grad(loss, preset="paper", max_iter=200)(Ws)
        ardiff.grad(loss, units="layers", max_iter=5)(Ws)  # sequential, eta = 1
    loss, Ws = tanh_layers(8)
    with pytest.warns(ardiff.ReachWarning) as record:
        ardiff.grad(loss, preset="paper", tol=1e-12)(Ws)
    assert len(record) == 1 and "relative residual" in str(record[0].message)


# -- 3. max_iter="reach" --------------------------------------------------------------------
@pytest.mark.parametrize("schedule", ["parallel", "sequential"])
def test_reach_meets_backprop_to_its_tolerance_at_depth_64(schedule):
    loss, Ws = tanh_layers(64, width=10, batch=4)
    exact = ardiff.grad(loss, method="backprop")(Ws)
    g = ardiff.trace(loss, Ws)
    tol = 1e-3
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = ardiff.relax(g, preset="paper", max_iter="reach", tol=tol, init="zeros",
                           schedule=schedule)
        grads = ardiff.grad(loss, preset="paper", max_iter="reach", tol=tol, init="zeros",
                            schedule=schedule)(Ws)
    T = needed(64, 0.1, tol, schedule)
    assert res.iterations == T  # the smallest T whose tail is at most tol
    worst = max(relative_error(a, b) for a, b in zip(grads, exact))
    assert worst <= tol
    # the first layer is the deepest: its error is about the whole tolerance
    assert relative_error(res.grads[0], exact[0]) > tol / 10


def test_reach_options_are_validated():
    with pytest.raises(ValueError, match="tol > 0"):
        ardiff.grad(lambda x: anp.sum(x ** 2), preset="paper", max_iter="reach")(np.ones(2))
    with pytest.raises(TypeError, match="positive integer"):
        ardiff.solvers.SolverOptions(max_iter="far", tol=1e-3)
    with pytest.raises(ValueError, match="continuous"):
        ardiff.solvers.SolverOptions(max_iter="reach", tol=1e-3, schedule="continuous",
                                     time=1.0)
    assert ardiff.solvers.SolverOptions(max_iter="reach", tol=1e-3).max_iter == "reach"


def test_training_method_by_reach():
    model = nn.ResidualMLP(6, 5, 6, 3, seed=0)
    x = np.random.default_rng(1).random((4, 6))
    t = np.eye(3)[[0, 1, 2, 0]]
    exact = nn.batch_gradients(model, x, t, method=nn.backprop_method())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        batch = nn.batch_gradients(model, x, t, method=nn.relaxation(
            steps="reach", init="zeros", reach_tol=1e-4))
    assert max(relative_error(a, b) for a, b in zip(batch.grads, exact.grads)) <= 1e-4
    with pytest.warns(ardiff.ReachWarning, match="depth 13 "):  # 2 * 6 + 1 units
        nn.batch_gradients(model, x, t)


# -- 1. check_convexity reports the reach ---------------------------------------------------
def test_check_convexity_reports_remaining_fractions_and_reach():
    loss, Ws = tanh_layers(8)
    report = ardiff.check_convexity(loss, Ws, preset="paper", measure=False)
    assert report.depth == 8 and report.steps == 100 and report.units == "layers"
    assert np.allclose(report.remaining_fraction, [tail(100, k, 0.1) for k in range(1, 9)],
                       rtol=1e-10)
    assert report.reach_depth == max(k for k in range(1, 50) if tail(100, k, 0.1) <= 0.05)
    assert "remaining fraction after T=100 steps" in str(report)
    report = ardiff.check_convexity(loss, Ws, preset="paper", max_iter=400, measure=False)
    assert report.steps == 400 and report.remaining_fraction[-1] == pytest.approx(
        tail(400, 8, 0.1), rel=1e-10)
    report = ardiff.check_convexity(loss, Ws, eta=0.5, schedule="parallel", units="layers",
                                    measure=False)
    assert report.steps == report.predicted_iterations
    assert report.remaining_fraction[-1] <= report.tol
    assert report.to_dict()["reach_depth"] == report.reach_depth


def chain_of(depth):
    def deep(x):
        h = x
        for _ in range(depth):
            h = anp.tanh(1.1 * h)
        return anp.sum(h * h)
    return deep


def test_reach_messages_in_full():
    """The refusal of a tolerance no step count reaches, and the warning's advice when
    none does, word for word (the one place that writes them: steps_by_reach)."""
    deep, x0 = chain_of(6), np.array([0.3, -0.4])
    depth = compile_plan(ardiff.trace(deep, x0)).max_depth
    with pytest.raises(ValueError) as refused:
        ardiff.grad(deep, schedule="parallel", eta=1e-9, max_iter="reach", tol=1e-12)(x0)
    assert str(refused.value) == (
        f"max_iter='reach': no T up to 1e7 steps brings a unit at depth {depth} to "
        "tol=1e-12 (parallel, eta=1e-09); use a larger eta or tol.")
    with pytest.warns(ardiff.ReachWarning) as record:
        ardiff.grad(deep, schedule="parallel", eta=1e-9, max_iter=5, tol=0.0)(x0)
    assert str(record[0].message) == (
        f"max_iter=5 parallel steps of eta=1e-09 do not reach the deepest relaxing unit: "
        f"at depth {depth} from the output it still holds {tail(5, depth, 1e-9):.3g} of "
        "its initial error (more than 0.05; ardiff.solvers.theory.error_bound), so its "
        "gradient is mostly its initial activity. no step count up to 1e7 brings it "
        "there; max_iter='reach' with tol= picks T from the depth (at closed-form cost "
        "with closed_form=True).")


def test_continuous_time_takes_no_step_count_and_gives_no_reach_warning():
    """max_iter counts discrete steps: with schedule='continuous' (time= decides) a
    max_iter given anyway leaves the solve silent and exact to the flow's time."""
    deep, x0 = chain_of(12), np.array([0.3, -0.4])
    exact = ardiff.grad(deep, method="backprop")(x0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        flowed = ardiff.grad(deep, schedule="continuous", time=80.0, max_iter=3)(x0)
    assert relative_error(flowed, exact) < 1e-9


def test_reach_runs_exactly_its_steps_when_stepping_and_advises_the_needed_steps():
    """Stepped (not the closed form): max_iter='reach' runs exactly the T it picks, even
    where the residual meets tol earlier; a fixed budget that falls short names the T
    that reaches 0.05, word for word."""
    deep, x0 = chain_of(6), np.array([0.3, -0.4])
    g = ardiff.trace(deep, x0)
    depth = compile_plan(g).max_depth
    T = needed(depth, 0.1, 0.2, "parallel")
    res = ardiff.relax(g, schedule="parallel", eta=0.1, max_iter="reach", tol=0.2,
                       init="zeros")
    assert res.iterations == T and T > 1
    with pytest.warns(ardiff.ReachWarning) as record:
        ardiff.grad(deep, schedule="parallel", eta=0.1, max_iter=5, tol=0.0)(x0)
    text = str(record[0].message)
    assert f". max_iter={needed(depth, 0.1)} would bring it to 0.05; max_iter='reach'" in text


@pytest.mark.parametrize("schedule", ["parallel", "sequential"])
def test_reach_depth_and_fractions_against_a_brute_force_scan(schedule):
    """reach_depth (doubling and bisection) is the largest k whose exact tail is at most
    0.05, found here by scanning k = 1, 2, ...; remaining_fractions is the exact tail at
    every distance."""
    for eta in (0.1, 0.5, 0.9):
        for T in (1, 2, 3, 5, 20, 100):
            k = 0
            while tail(T, k + 1, eta, schedule) <= 0.05:
                k += 1
            assert reach_depth(T, eta, schedule) == k, (eta, T)
            np.testing.assert_allclose(
                remaining_fractions(T, 7, eta, schedule),
                [tail(T, d, eta, schedule) for d in range(1, 8)], rtol=1e-9, atol=1e-15)


def test_check_convexity_reach_rows_per_schedule_and_where_there_are_none():
    """The report's reach rows follow the schedule (sequential tails differ from
    parallel ones), its measured run takes the given budget, and there are no rows where
    no step count applies: continuous time, or an eta outside (0, 2)."""
    deep, x0 = chain_of(5), np.array([0.3, -0.4])
    D = ardiff.check_convexity(deep, x0, measure=False).depth
    report = ardiff.check_convexity(deep, x0, schedule="sequential", eta=0.3, max_iter=6,
                                    measure=False)
    assert report.steps == 6
    np.testing.assert_allclose(report.remaining_fraction,
                               [tail(6, k, 0.3, "sequential") for k in range(1, D + 1)],
                               rtol=1e-10)
    k = 0
    while tail(6, k + 1, 0.3, "sequential") <= 0.05:
        k += 1
    assert report.reach_depth == k
    measured = ardiff.check_convexity(deep, x0, schedule="parallel", eta=0.5, max_iter=7,
                                      tol=0.0)
    assert measured.steps == measured.measured_iterations == 7
    for kwargs in (dict(schedule="continuous", max_iter=5), dict(eta=2.5, max_iter=5)):
        quiet = ardiff.check_convexity(deep, x0, measure=False, **kwargs)
        assert quiet.steps is None and quiet.remaining_fraction is None, kwargs
    with pytest.raises(ValueError) as refused:
        ardiff.check_convexity(deep, x0, preset="nope")
    assert str(refused.value) == "Unknown preset 'nope'; available: ['paper']"


def _expected_fractions(T, D, eta, schedule):
    """The report's list, written here: the first four distances and the last."""
    ks = list(range(1, D + 1))
    ks = ks if len(ks) <= 5 else ks[:4] + [D]
    return ", ".join(f"k={k}: {tail(T, k, eta, schedule):.2g}" for k in ks)


@pytest.mark.parametrize("layers,scaled,depth", [(1, True, 4), (2, False, 5), (2, True, 6),
                                                 (8, False, 17)])
def test_check_convexity_reach_rows_word_for_word(layers, scaled, depth):
    """The two reach rows of the printed report, against the exact tails (whitespace of
    the report's line wrapping ignored); depths around the list's cut after five."""
    chain, x0 = chain_of(layers), np.array([0.3, -0.4])

    def deep(x):
        return chain(x) * 2.0 if scaled else chain(x)  # one more relaxing node
    for schedule, eta, T in (("parallel", 0.1, 100), ("sequential", 1.0, 3),
                             ("parallel", 0.6, 60)):
        report = ardiff.check_convexity(deep, x0, schedule=schedule, eta=eta, max_iter=T,
                                        measure=False)
        D = report.depth
        assert D == depth
        text = " ".join(str(report).split())
        first = (f"remaining fraction after T={T} steps {tail(T, D, eta, schedule):.3g} at the "
                 f"deepest unit (D = {D}); {_expected_fractions(T, D, eta, schedule)}")
        assert first in text, (first, text)
        k = 0
        while k < 1000 and tail(T, k + 1, eta, schedule) <= 0.05:
            k += 1
        reach = "unlimited" if k == 1000 else str(k)
        beyond = " (D is beyond it)" if reach != "unlimited" and D > k else ""
        assert f"reach (deepest unit <= 0.05) {reach}{beyond} " in text + " "
