"""The convexity / convergence checker against closed forms and measured relaxations.

Truth: chains of known depth (the error after t steps is an exact binomial tail
there), a hand-assembled H for a tanh MLP, and what relax actually does.
"""

import json

import networkx as nx
import numpy as np
import pytest
from graphs import scalar_chain
from reach_helpers import depth_of, expect_reach
from scipy.stats import binom

import ardiff
import ardiff.numpy as anp
from ardiff.convexity import (
    NEGATIVE_SYMMETRIC_NOTE,
    error_bound,
    predict_iterations,
    stability,
    transient_growth,
)
from ardiff.solvers import compile_plan
from ardiff.solvers.triangular import assemble

KEYS = {"is_dag", "cycle", "size", "nnz", "unit_diagonal", "strictly_upper_triangular",
        "eigenvalues_all_one", "depth", "eta", "schedule", "stable", "predicted_iterations",
        "measured_iterations", "min_symmetric_eigenvalue", "ok"}


def tanh_mlp(seed=3, sizes=(4, 3, 3, 2)):
    rng = np.random.default_rng(seed)
    g = ardiff.Graph()
    x = g.input(rng.standard_normal(sizes[0]), name="x")
    weights = [g.input(rng.standard_normal((m, n)), name=f"W{i}")
               for i, (n, m) in enumerate(zip(sizes[:-1], sizes[1:]))]
    h, hidden = x, []
    for W in weights:
        h = anp.tanh(W @ h)
        hidden.append(h)
    return g, anp.sum(h), [x] + weights, weights, hidden


@pytest.mark.parametrize("length", [2, 5, 12])
@pytest.mark.parametrize("schedule,eta", [("parallel", 0.1), ("parallel", 0.5),
                                          ("parallel", 1.0), ("sequential", 1.0)])
def test_predicted_iterations_match_relax_on_chains(length, schedule, eta):
    g, out, x = scalar_chain(length)
    report = ardiff.check_convexity(g, out, [x], eta=eta, schedule=schedule, tol=1e-10)
    assert report.depth == length - 1
    assert report.nilpotency_index == length - 1
    assert report.ok and report.measured_converged
    pred, meas = report.predicted_iterations, report.measured_iterations
    if eta == 1.0:
        # exact: D parallel steps, one sequential sweep
        assert pred == meas == (length - 1 if schedule == "parallel" else 1)
    else:
        # the bound is on the error, relax stops on the residual: a step or two apart
        assert abs(pred - meas) <= max(2, 0.02 * meas), (pred, meas)
    assert report.measured_error < 1e-8


@pytest.mark.parametrize("schedule,eta,steps", [("parallel", 0.3, 9), ("parallel", 0.8, 4),
                                                ("sequential", 0.4, 6)])
def test_error_bound_is_the_exact_error_on_a_chain(schedule, eta, steps):
    length = 5
    g, out, x = scalar_chain(length)
    depth = length - 1
    with expect_reach(depth_of(g, out, [x]), steps, eta, schedule):  # few steps on purpose
        res = ardiff.relax(g, out, [x], schedule=schedule, eta=eta, tol=0.0, max_iter=steps,
                           record=True)
    exact = 1.1 ** length  # gradient at the deepest relaxing node is 1.1**(length-1)
    deepest = min(res.activities)
    rel_error = abs(res.activities[deepest] - exact / 1.1) / (exact / 1.1)
    assert rel_error == pytest.approx(float(error_bound(steps, depth, eta, schedule)), rel=1e-9)
    trials = steps if schedule == "parallel" else steps + depth - 1
    assert float(error_bound(steps, depth, eta, schedule)) == pytest.approx(
        binom.cdf(depth - 1, trials, eta), rel=1e-12)


def test_error_bound_above_one_bounds_the_chain_error_and_shows_transient_growth():
    length, eta = 8, 1.7
    g, out, x = scalar_chain(length, factor=1.0)
    for steps in (3, 10, 30):
        with expect_reach(depth_of(g, out, [x]), steps, eta):  # the transient, on purpose
            res = ardiff.relax(g, out, [x], schedule="parallel", eta=eta, tol=0.0,
                               max_iter=steps)
        err = abs(res.activities[min(res.activities)] - 1.0)
        assert err <= float(error_bound(steps, length - 1, eta)) * (1 + 1e-9)
    assert transient_growth(length - 1, eta) > 10.0
    assert transient_growth(length - 1, 0.5) == 1.0


def test_predictions_at_eta_one_and_for_unstable_steps():
    assert predict_iterations(7, 1.0, "parallel") == 7
    assert predict_iterations(7, 1.0, "sequential") == 1
    assert predict_iterations(0, 0.5) == 0
    for eta in (0.0, -0.5, 2.0, 2.5):
        assert predict_iterations(7, eta) is None


@pytest.mark.parametrize("eta,stable", [(1.9, True), (2.0, False), (2.5, False)])
@pytest.mark.parametrize("schedule", ["parallel", "sequential"])
def test_stability_verdict(eta, stable, schedule):
    g, out, x = scalar_chain(4)
    if not stable:  # relax itself refuses these steps ...
        with pytest.raises(ValueError, match="outside"):
            ardiff.relax(g, out, [x], eta=eta, schedule=schedule)
    report = ardiff.check_convexity(g, out, [x], eta=eta, schedule=schedule)  # ... we do not
    assert report.stable is stable and report.ok is stable
    assert report.unit_diagonal and report.eigenvalues_all_one  # structure is unaffected
    if stable:
        assert report.measured_converged and report.predicted_iterations is not None
        assert report.spectral_radius == pytest.approx(0.9)
    else:
        assert report.measured_iterations is None and report.predicted_iterations is None
        assert "NOT OK" in str(report)
    ok, reason = stability(eta, 3)
    assert ok is stable
    assert ("polynomially" in reason) if eta == 2.0 else True
    assert ("geometrically" in reason) if eta == 2.5 else True


def _mlp_H_by_hand(weights, hidden, x_value):
    """H = I - N for the traced MLP, relaxing nodes [a1, h1, a2, h2, a3] (h3 feeds the sum).

    N[a_l, h_l] = diag(1 - h_l^2) (d h_l / d a_l, transposed) and
    N[h_l, a_{l+1}] = W_{l+1} (transpose of d a_{l+1} / d h_l = W_{l+1}^T).
    """
    blocks = []
    for l, h in enumerate(hidden):
        blocks.append(("a", l, h.shape[0]))
        blocks.append(("h", l, h.shape[0]))
    blocks = blocks[:-1] + [blocks[-1]]  # a3, h3 both relax: the output is sum(h3)
    offsets = np.cumsum([0] + [n for *_, n in blocks])
    H = np.eye(offsets[-1])
    index = {(kind, l): k for k, (kind, l, _) in enumerate(blocks)}
    for l, h in enumerate(hidden):
        i, j = index[("a", l)], index[("h", l)]
        H[offsets[i]:offsets[i + 1], offsets[j]:offsets[j + 1]] = -np.diag(1 - h.value ** 2)
        if l + 1 < len(hidden):
            k = index[("a", l + 1)]
            H[offsets[j]:offsets[j + 1], offsets[k]:offsets[k + 1]] = -weights[l + 1].value.T
    return H


def test_tanh_mlp_symmetric_part_is_indefinite_but_relaxation_converges():
    g, out, wrt, weights, hidden = tanh_mlp()
    plan = compile_plan(g, out, wrt)
    H = assemble(plan, np.ones(())).H.toarray()
    np.testing.assert_allclose(H, _mlp_H_by_hand(weights, hidden, wrt[0].value), atol=1e-15)
    report = ardiff.check_convexity(g, out, wrt, eta=0.5, schedule="parallel")
    expected = np.linalg.eigvalsh((H + H.T) / 2)[0]
    assert report.min_symmetric_eigenvalue == pytest.approx(expected, rel=1e-12)
    assert report.min_symmetric_eigenvalue < 0  # not convex as a quadratic form ...
    assert report.eigenvalues_all_one and report.strictly_upper_triangular
    assert report.ok and report.measured_converged  # ... and the dynamics converge anyway
    assert NEGATIVE_SYMMETRIC_NOTE.split(":")[0] in str(report).replace("\n    ", " ")
    assert report.size == H.shape[0] and report.nnz == np.count_nonzero(H)


def test_report_dict_is_json_with_all_keys():
    g, out, wrt, *_ = tanh_mlp()
    data = ardiff.check_convexity(g, out, wrt, eta=1.5).to_dict()
    assert KEYS <= set(data)
    assert json.loads(json.dumps(data, allow_nan=False)) == data
    assert data["transient_growth"] > 1.0 and data["ok"] is True


def test_function_form_and_zero_derivatives_lower_the_nilpotency_index():
    def f(x):
        h = anp.maximum(anp.sin(x), 0.0)  # sin(x) < 0: the ReLU's derivative is 0 everywhere
        return anp.sum(anp.tanh(h) * 2.0)

    report = ardiff.check_convexity(f, -np.ones(3), eta=1.0)
    assert report.depth == 4 and report.nilpotency_index == 3
    assert "exactly zero" in str(report) and report.ok


def test_cycle_is_reported_not_raised():
    G = nx.DiGraph()
    G.add_node("x", op="input", value=np.ones(2))
    G.add_node("a", op="add")
    G.add_node("b", op="tanh")
    G.add_edges_from([("x", "a", {"argnum": 0}), ("b", "a", {"argnum": 1}),
                      ("a", "b", {"argnum": 0})])
    report = ardiff.check_convexity(G)
    assert report.is_dag is False and not report.ok
    assert report.cycle[0] == report.cycle[-1] and set(report.cycle) == {"a", "b"}
    assert "cycle" in str(report) and "'a'" in str(report)
    assert report.to_dict()["cycle"] == report.cycle
    # the same graph without the back edge is accepted as a DAG
    G.remove_edge("b", "a")
    G.add_node("c", op="constant", value=np.ones(2))
    G.add_edge("c", "a", argnum=1)
    G.add_node("L", op="sum")
    G.add_edge("b", "L", argnum=0)
    assert ardiff.check_convexity(G, eta=0.5).ok


def test_rounding_floor_for_eta_above_one_on_a_deep_chain():
    # measured: rounding leaves the top node flipping between two neighbouring floats,
    # and each of the 29 levels amplifies that period-2 oscillation by eta/(2-eta) = 3
    g, out, x = scalar_chain(30)
    report = ardiff.check_convexity(g, out, [x], eta=1.5, tol=1e-10)
    assert report.predicted_iterations < 200  # in exact arithmetic
    assert report.rounding_floor > 1e-3 and not report.measured_converged and not report.ok
    assert "Rounding may stall" in str(report)
    with pytest.warns(ardiff.ConvergenceWarning):
        res = ardiff.relax(g, out, [x], schedule="parallel", eta=1.5, tol=1e-10)
    assert report.rounding_floor / 10 < res.residuals[-1] < report.rounding_floor * 10
    # at eta = 1.1 the gain per level is 1.22 and the same chain converges as predicted
    small = ardiff.check_convexity(g, out, [x], eta=1.1, tol=1e-10)
    assert small.ok and small.rounding_floor < 1e-10
    assert abs(small.predicted_iterations - small.measured_iterations) <= 2


def test_default_report_describes_the_default_gradient():
    """check_convexity's defaults are grad's: sequential, eta 1, exact after one sweep."""
    g, out, wrt, *_ = tanh_mlp()
    report = ardiff.check_convexity(g, out, wrt)
    assert (report.schedule, report.eta) == ("sequential", 1.0)
    assert report.predicted_iterations == 1 and report.measured_iterations == 1
    assert report.ok and report.measured_error < 1e-14
    assert "1, sequential" in str(report)


def test_iteration_theory_lives_in_the_solvers_and_is_reexported():
    from ardiff.solvers import theory

    for name in ("error_bound", "predict_iterations", "transient_growth", "rounding_floor",
                 "stability"):
        assert getattr(ardiff.convexity, name) is getattr(theory, name)


def test_relative_error_is_symmetric_scale_free_and_zero_safe():
    relative_error = ardiff.solvers.relative_error
    a, b = np.array([1.0, -2.0]), np.array([1.0, -1.0])
    assert relative_error(a, b) == relative_error(b, a) == 0.5
    assert relative_error(1e-100 * a, 1e-100 * b) == pytest.approx(0.5)
    assert relative_error(np.zeros(3), np.zeros(3)) == 0.0
    assert relative_error(np.zeros(0), np.zeros(0)) == 0.0
    assert np.isnan(relative_error(np.array([np.nan]), np.array([1.0])))


@pytest.mark.parametrize("schedule,eta", [("parallel", 0.5), ("sequential", 1.0)])
def test_report_for_layer_units_describes_the_unit_level_system(schedule, eta):
    """Layer units of the tanh MLP: h1 and h2 relax (h3 and the sum are the clamped
    head), N between them is W2ᵀ diag(1 - h2²), assembled here by hand."""
    g, out, wrt, weights, hidden = tanh_mlp()
    report = ardiff.check_convexity(g, out, wrt, units="layers", eta=eta, schedule=schedule,
                                    tol=1e-10)
    W2 = weights[1].value
    h2 = hidden[1].value
    N = np.zeros((6, 6))
    N[:3, 3:] = (W2 * (1.0 - h2 ** 2)[:, None]).T  # rows: h1, columns: h2
    H = np.eye(6) - N
    assert report.units == "layers"
    assert report.relaxing_nodes == 2 and report.size == 6
    assert report.folded_nodes == 2 and report.clamped_nodes == 2  # W1 @ x, W2 @ h1 | W3 @ h2, h3
    assert report.nnz == np.count_nonzero(H)
    assert report.depth == 2 and report.nilpotency_index == 2
    assert report.predicted_iterations == predict_iterations(2, eta, schedule, 1e-10)
    assert report.measured_converged and report.measured_error < 1e-9
    np.testing.assert_allclose(report.min_symmetric_eigenvalue,
                               np.linalg.eigvalsh((H + H.T) / 2)[0], rtol=1e-12)
    ops = ardiff.check_convexity(g, out, wrt, eta=eta, schedule=schedule, tol=1e-10)
    assert ops.depth == 6 and ops.units == "ops" and ops.relaxing_nodes == 6
