"""The convexity checker's report against an independent dense computation.

Truth: the dense matrix H = I - N of `reference_graphs` (hand-written derivatives, not
ardiff's Jacobians) and its symmetric part's eigenvalues from `numpy.linalg.eigvalsh`;
the depth and nilpotency index from the drawn structure; the error bounds, predicted
step counts, transient growth and rounding floor from the formulas of docs/theory.md
written out here with `math.comb`; the measured iterations from `ardiff.relax` run
with the same settings.  Drawn graphs have reused nodes and skip connections, where
the symmetric part of H is indefinite and a sign slip in H shows.
"""

import json
import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from reference_graphs import build, reference_graphs

import ardiff
import ardiff.numpy as anp
from ardiff.convexity import NEGATIVE_SYMMETRIC_NOTE, check_convexity, unit_matrix
from ardiff.solvers import ConvergenceWarning, compile_plan
from ardiff.solvers.theory import (
    error_bound,
    predict_iterations,
    rounding_floor,
    stability,
    transient_growth,
)
from ardiff.solvers.triangular import assemble
from ardiff.solvers.units import unit_plan

EXAMPLES = max(20, settings.default.max_examples)


def nilpotency_index(N) -> int:
    """Least k with |N|^k = 0 (0 for an empty system)."""
    if not len(N):
        return 0
    pattern = (N != 0).astype(float)
    power, k = np.eye(len(N)), 0
    while power.any():
        power, k = power @ pattern, k + 1
    return k


def bound(t, depth, eta, schedule) -> float:
    """The error bound of docs/theory.md after t steps, by direct summation."""
    if depth <= 0:
        return 0.0
    if t == 0:
        return 1.0
    rest = abs(1.0 - eta)
    if schedule == "parallel":
        return sum(math.comb(t, m) * eta ** m * rest ** (t - m) for m in range(min(depth, t + 1)))
    return rest ** t * sum(math.comb(t + m - 1, m) * eta ** m for m in range(depth))


def predicted(depth, eta, schedule, tol):
    if not 0 < eta < 2 or not tol > 0:
        return None
    t = 0
    while bound(t, depth, eta, schedule) > tol:
        t += 1
    return t


@pytest.mark.parametrize("schedule", ["parallel", "sequential"])
@pytest.mark.parametrize("eta", [0.3, 0.7, 1.0, 1.3, 1.6])
@pytest.mark.parametrize("depth", [0, 1, 2, 5])
def test_theory_against_direct_summation(schedule, eta, depth):
    ts = list(range(0, 40, 3))
    got = error_bound(np.array(ts), depth, eta, schedule)
    want = [bound(t, depth, eta, schedule) for t in ts]
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-300)
    for tol in (1e-3, 1e-10):
        assert predict_iterations(depth, eta, schedule, tol) == predicted(depth, eta, schedule,
                                                                         tol)
    horizon = predicted(depth, eta, schedule, 1e-16)
    assert transient_growth(depth, eta, schedule) == pytest.approx(
        max(bound(t, depth, eta, schedule) for t in range(horizon + 1)), rel=1e-9)
    assert transient_growth(depth, eta, schedule, 3) == pytest.approx(
        max(bound(t, depth, eta, schedule) for t in range(4)), rel=1e-9)
    gain = max(1.0, eta / (2.0 - eta))
    assert rounding_floor(depth, eta) == pytest.approx(2.0 ** -53 * gain ** depth, rel=1e-12)
    assert rounding_floor(depth, eta, np.float32) == pytest.approx(2.0 ** -24 * gain ** depth,
                                                                   rel=1e-12)


@pytest.mark.parametrize("eta", [-0.5, 0.0, 2.0, 2.5, math.inf, math.nan])
def test_unstable_steps(eta):
    assert predict_iterations(3, eta) is None
    assert rounding_floor(3, eta) == math.inf
    stable, reason = stability(eta, 3)
    assert stable is False and reason
    assert str(eta)[:3].lower() in reason.lower() or "eta" in reason
    assert stability(1.0, 3)[0] is True and stability(1.999, 3)[0] is True
    assert predict_iterations(3, 1.0, "parallel", 0.0) is None


def test_stability_reasons_name_the_growth():
    assert "t^2" in stability(2.0, 3)[1] and "never decays" in stability(2.0, 1)[1]
    assert "0.5 > 1" in stability(2.5, 3)[1].replace("|1 - eta| = 1.5", "0.5") or \
        "1.5 > 1" in stability(2.5, 3)[1]
    assert "positive" in stability(0.0, 3)[1] and "finite" in stability(math.nan, 3)[1]
    assert "-0.5" in stability(1.5, 3)[1] and "0.5 < 1" in stability(1.5, 3)[1]


@settings(max_examples=EXAMPLES)
@given(reference_graphs(), st.sampled_from(["parallel", "sequential"]),
       st.sampled_from([0.5, 1.0, 1.5, 2.0, -1.0]), st.sampled_from([0.5, 1e-4, 1e-10]),
       st.sampled_from(["zeros", "forward"]))
def test_report_against_the_dense_reference(ref, schedule, eta, tol, init):
    out = ref.traced[-1]
    report = check_convexity(ref.graph, out, eta=eta, schedule=schedule, tol=tol, init=init)
    N, _ = ref.system()
    H = np.eye(len(N)) - N
    D = ref.depth()
    assert report.is_dag and report.cycle is None
    assert report.size == len(N) and report.relaxing_nodes == len(ref.relaxing)
    assert report.units == "ops" and report.folded_nodes == 0 and report.clamped_nodes == 0
    assert report.nnz >= np.count_nonzero(H)
    assert report.unit_diagonal and report.strictly_upper_triangular
    assert report.eigenvalues_all_one
    assert report.depth == D
    assert report.nilpotency_index <= D
    assert report.nilpotency_index >= nilpotency_index(N)
    assert report.eta == eta and report.schedule == schedule and report.tol == tol
    assert report.init == init
    assert report.min_symmetric_eigenvalue == pytest.approx(
        np.linalg.eigvalsh((H + H.T) / 2)[0], rel=1e-10, abs=1e-12)
    stable = 0 < eta < 2
    assert report.stable is stable and report.stability_reason == stability(eta, D)[1]
    assert report.spectral_radius == abs(1 - eta)
    assert report.predicted_iterations == predicted(D, eta, schedule, tol)
    if stable and eta > 1:
        assert report.transient_growth == pytest.approx(max(
            bound(t, D, eta, schedule) for t in range(predicted(D, eta, schedule, tol) + 1)),
            rel=1e-9)
    else:
        assert report.transient_growth is None
    if stable:
        assert report.rounding_floor == pytest.approx(
            2.0 ** -53 * max(1.0, eta / (2 - eta)) ** D, rel=1e-12)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            measured = ardiff.relax(ref.graph, out, eta=eta, schedule=schedule, init=init,
                                    tol=tol)
        assert report.measured_iterations == measured.iterations
        assert report.measured_converged is bool(measured.converged)
        exact = ref.read_out(ref.exact())
        def relative(a, b):  # max|a - b| / max(max|a|, max|b|), 0 when both vanish
            size = max(float(np.max(np.abs(a))), float(np.max(np.abs(b))))
            return float(np.max(np.abs(a - b))) / size if size else 0.0

        error = max(relative(a, b) for a, b in zip(measured.grads, exact))
        # the dense reference carries its own rounding: equal where the error is not
        # itself rounding noise
        assert report.measured_error == pytest.approx(error, rel=1e-3, abs=1e-10)
        reached = report.measured_converged
    else:
        assert report.rounding_floor is None and report.measured_iterations is None
        assert report.measured_converged is None and report.measured_error is None
        reached = True
    assert report.ok is bool(stable and reached)
    negative = report.min_symmetric_eigenvalue < 0
    assert (NEGATIVE_SYMMETRIC_NOTE in report.notes) is negative
    assert any("positive definite" in n for n in report.notes) is (not negative)
    assert any("nilpotency index" in n for n in report.notes) is (report.nilpotency_index < D)
    assert any(n.startswith("Prediction:") for n in report.notes) is stable
    assert any("Rounding may stall" in n for n in report.notes) is bool(
        stable and report.rounding_floor > tol)
    data = report.to_dict()
    assert json.loads(json.dumps(data)) == data
    assert data["ok"] is report.ok and data["depth"] == D and data["size"] == len(N)
    text = str(report)
    verdicts = [line for line in text.splitlines() if "verdict" in line]
    assert verdicts == [f"  verdict: {'OK' if report.ok else 'NOT OK'}"]
    assert f"{report.min_symmetric_eigenvalue:.4g}" in text


def test_measure_false_and_symmetric_limit():
    ref = build([("sin", (0,)), ("exp", (1,)), ("mul", (1, 2)), ("mul", (3, 3))],
                [np.float64(0.5)])
    report = check_convexity(ref.graph, ref.traced[-1], measure=False, symmetric_limit=2)
    assert report.measured_iterations is None and report.measured_converged is None
    assert report.min_symmetric_eigenvalue is None
    assert report.symmetric_note == "N = 3 > symmetric_limit = 2"
    assert "not computed (N = 3 > symmetric_limit = 2)" in " ".join(str(report).split())
    # not measured: the verdict trusts the prediction (rounding floor below tol)
    assert report.ok is True
    report = check_convexity(ref.graph, ref.traced[-1], symmetric_limit=3)
    assert report.min_symmetric_eigenvalue is not None and report.symmetric_note is None


def test_callable_and_positional_forms():
    def f(x):
        h = ardiff.numpy.sin(x)
        return ardiff.numpy.sum(h * ardiff.numpy.exp(h)) ** 2

    x = np.array([0.5, -0.2])
    direct = check_convexity(f, x)
    g = ardiff.trace(f, x)
    positional = check_convexity(g, g.output, g.inputs)
    assert direct.to_dict() == positional.to_dict()
    with pytest.raises(TypeError, match=r"^check_convexity\(graph, output, wrt\): too many "
                                        r"positional arguments\.$"):
        check_convexity(g, g.output, g.inputs, 3)
    with pytest.raises(ValueError, match=r"^schedule must be 'parallel' or 'sequential', got "
                                         r"'bogus'$"):
        check_convexity(g, schedule="bogus")
    with pytest.raises(TypeError, match="got int"):
        check_convexity(3)


@settings(max_examples=EXAMPLES)
@given(reference_graphs(min_ops=3), st.data())
def test_unit_matrix_is_the_schur_complement(ref, data):
    """N between units = N_UU + N_UF (I - N_FF)^-1 N_FU, dense, from the reference's N
    (units drawn among the relaxing nodes, so that nodes are folded between them)."""
    units = sorted(data.draw(st.sets(st.sampled_from(ref.relaxing), min_size=1)))
    plan = compile_plan(ref.graph, ref.traced[-1])
    relaxed = unit_plan(plan, units)
    system = assemble(plan, np.float64(1.0))
    offsets, _ = ref.blocks()

    def rows(nodes):
        return [r for i in nodes for r in range(offsets[i], offsets[i] + np.size(ref.values[i]))]

    N, _ = ref.system()
    U, F = rows(relaxed.relaxing), rows(relaxed.folded)
    assert relaxed.relaxing == units
    expected = N[np.ix_(U, U)]
    if F:
        expected = expected + N[np.ix_(U, F)] @ np.linalg.solve(
            np.eye(len(F)) - N[np.ix_(F, F)], N[np.ix_(F, U)])
    got = unit_matrix(system, relaxed).toarray()
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)
    report = check_convexity(ref.graph, ref.traced[-1], units=units)
    assert report.size == len(U) and report.units == f"{len(units)} listed nodes"
    assert report.folded_nodes == len(relaxed.folded)
    assert report.clamped_nodes == len(relaxed.clamped)
    H = np.eye(len(U)) - expected
    assert report.min_symmetric_eigenvalue == pytest.approx(
        np.linalg.eigvalsh((H + H.T) / 2)[0], rel=1e-10, abs=1e-12)
    assert report.depth == relaxed.max_depth and report.nilpotency_index <= report.depth


def test_layer_units_report():
    from graphs import tanh_mlp

    g, loss, wrt = tanh_mlp(sizes=(3, 4, 4, 2))
    report = check_convexity(g, loss, wrt, units="layers")
    relaxed = unit_plan(compile_plan(g, loss, wrt), "layers")
    assert report.units == "layers" and report.relaxing_nodes == len(relaxed.relaxing) > 0
    assert report.folded_nodes == len(relaxed.folded) > 0
    assert report.clamped_nodes == len(relaxed.clamped) > 0
    assert report.measured_converged and report.measured_error < 1e-10


def test_report_rows_that_depend_on_the_numbers():
    from graphs import scalar_chain

    ref = build([("sin", (0,)), ("exp", (1,)), ("mul", (1, 2)), ("mul", (3, 3))],
                [np.float64(0.5)])
    out = ref.traced[-1]

    def row(report, label):
        lines = str(report).splitlines()
        found = [line for line in lines if line.startswith(f"  {label}")]
        return found[0][47:] if found else None

    # transient growth shown only above 1 (depth 1: the bound only decays)
    g = ardiff.Graph()
    x = g.input(np.array([0.3, 0.4]), name="x")
    shallow = check_convexity(g, anp.sum(anp.tanh(x)), eta=1.5)
    assert shallow.depth == 1 and shallow.transient_growth == 1.0
    assert row(shallow, "transient growth") is None
    two = check_convexity(g, anp.sum(anp.tanh(anp.sin(x))), eta=1.2, schedule="parallel")
    assert two.depth == 2 and 1.0 < two.transient_growth < 2.0
    assert row(two, "transient growth") == f"up to {two.transient_growth:.3g}x"
    # not measured although stable: no reason given
    quiet = check_convexity(ref.graph, out, measure=False)
    assert row(quiet, "measured iterations") == "not run"
    # measured but not converged: rounding stalls eta = 1.9 on a deep chain
    chain, h, _ = scalar_chain(20)
    stalled = check_convexity(chain, h, eta=1.9, tol=1e-15)
    assert stalled.measured_converged is False and stalled.ok is False
    assert "(NOT converged, init=zeros," in " ".join(str(stalled).split())
    assert any("Rounding may stall" in n for n in stalled.notes)


def test_printed_reports_word_for_word():
    """The report's text is its interface for people: three reports, every line."""
    ref = build([("sin", (0,)), ("exp", (1,)), ("mul", (1, 2)), ("mul", (3, 3))],
                [np.float64(0.5)])
    r = check_convexity(ref.graph, ref.traced[-1], eta=1.5)
    m, e = r.measured_iterations, r.measured_error
    assert str(r) == f"""\
Convergence report for the relaxation of node 4 (op multiply, shape ())
  graph is a DAG (a tape: parents come first)  yes
  relaxing nodes                               3
  system size N (flattened activities)         3
  non-zeros of H = I - N (eqs. 17-19)          6
  diagonal of H all exactly 1                  yes
  N strictly upper triangular (topological)    yes
  => every eigenvalue of H is exactly 1        yes
  depth D (longest path, N^D = 0)              3
  nilpotency index of N's sparsity pattern     3
  Euler step eta, schedule                     1.5, sequential
  stable (0 < eta < 2)                         yes: every eigenvalue of the iteration
                                               matrix is 1 - eta = -0.5; |1 - eta| = 0.5
                                               < 1, so the error decays.
  transient growth of the error bound          up to 2.69x
  rounding floor (worst case, relative)        3e-15
  predicted iterations to tol=1e-10            45 (exact arithmetic)
  measured iterations (relax)                  {m} (converged, init=zeros, max relative
                                               error vs exact solve {e:.2g})
  smallest eigenvalue of (H + H^T)/2           -0.2682
  verdict: OK
  - A negative smallest eigenvalue of (H + H^T)/2 means the energy's quadratic form x^T
    H x is indefinite: H is not symmetric, so it is not the Hessian of any scalar
    energy, and the energy is not convex in the usual sense. The relaxation still
    converges, because what governs the linear dynamics dx/dt = b - Hx is the spectrum
    of H (all eigenvalues exactly 1), not its symmetric part; the distance to the fixed
    point may grow for a while before it shrinks.
  - Prediction: smallest t with error bound <= tol for the deepest node (parallel:
    P(Binomial(t, eta) < D) for eta <= 1; sequential: P(Binomial(t + D - 1, eta) < D));
    exact on a chain, starting from zero activities; relax stops on the relative
    residual, which can differ by a step or two."""
    r = check_convexity(ref.graph, ref.traced[-1], eta=2.5, units="layers")
    assert str(r) == """\
Convergence report for the relaxation of node 4 (op multiply, shape ())
  graph is a DAG (a tape: parents come first)  yes
  units                                        layers
  relaxing nodes                               0
  folded into edges / clamped from the seed    0 / 3
  system size N (flattened activities)         0
  non-zeros of H = I - N (eqs. 17-19)          0
  diagonal of H all exactly 1                  yes
  N strictly upper triangular (topological)    yes
  => every eigenvalue of H is exactly 1        yes
  depth D (longest path, N^D = 0)              0
  nilpotency index of N's sparsity pattern     0
  Euler step eta, schedule                     2.5, sequential
  stable (0 < eta < 2)                         NO: |1 - eta| = 1.5 > 1: the error grows
                                               geometrically (diverges).
  predicted iterations to tol=1e-10            n/a (unstable)
  measured iterations (relax)                  not run (relax refuses eta outside (0,
                                               2))
  smallest eigenvalue of (H + H^T)/2           not computed (no relaxing nodes)
  verdict: NOT OK"""
    assert r.ok is False and r.symmetric_note == "no relaxing nodes"
    nx = pytest.importorskip("networkx")
    G = nx.DiGraph()
    G.add_edge("a", "b")
    G.add_edge("b", "a")
    r = check_convexity(G)
    assert str(r) == """\
Convergence report
  graph is a DAG                               no: cycle 'a' -> 'b' -> 'a'
  verdict: NOT OK
  - A cyclic graph has no topological order, so there is no triangular system and no
    relaxation to run; unroll the recurrence over its time steps so that every step is a
    new node."""
    data = r.to_dict()
    assert data["is_dag"] is False and data["cycle"] == ["a", "b", "a"] and data["ok"] is False
    assert data["eta"] == 1.0 and data["schedule"] == "sequential" and data["size"] is None
    from dataclasses import fields

    from ardiff.convexity import ConvexityReport
    assert set(data) == {f.name for f in fields(ConvexityReport)} | {"ok"}


def test_plain_values_for_json():
    from ardiff.convexity import _plain

    assert _plain(np.int64(3)) == 3 and type(_plain(np.int64(3))) is int
    assert type(_plain(np.float32(0.5))) is float and _plain(np.float32(0.5)) == 0.5
    assert _plain(np.bool_(True)) is True
    assert _plain((np.int64(1), [np.float64(2.0), "x"])) == [1, [2.0, "x"]]
    assert _plain(math.inf) == "inf" and _plain(-math.inf) == "-inf"
    assert _plain(None) is None and _plain("s") == "s" and _plain(2) == 2
    assert _plain(np.ones(2)) == "[1. 1.]"
    assert _plain(True) is True and _plain(1.5) == 1.5


def test_networkx_dag_and_units_listed():
    nx = pytest.importorskip("networkx")
    ref = build([("sin", (0,)), ("exp", (1,)), ("mul", (1, 2)), ("mul", (3, 3))],
                [np.float64(0.5)])
    G = ardiff.to_networkx(ref.graph)
    assert isinstance(G, nx.DiGraph)
    direct = check_convexity(ref.graph, ref.traced[-1])
    assert check_convexity(G, 4).to_dict() == direct.to_dict()
    assert check_convexity(G, output=4).to_dict() == direct.to_dict()
    with pytest.raises(TypeError, match=r"^check_convexity\(G, output\): too many positional "
                                        r"arguments\.$"):
        check_convexity(G, 4, 5)
    listed = check_convexity(ref.graph, ref.traced[-1], units=[ref.traced[2], ref.traced[3]])
    assert listed.units == "2 listed nodes" and listed.size == 2


def test_output_wrt_seed_and_size_guard_are_passed_on():
    from ardiff.solvers.triangular import SystemTooLargeError

    g = ardiff.Graph()
    x = g.input(np.array([0.3, -0.6]), name="x")
    y = g.input(np.array([0.8, 0.1]), name="y")
    t = anp.tanh(x)
    first = anp.sin(t) * anp.exp(y)  # a vector output, not the last node
    anp.sum(first * first)
    base = check_convexity(g, first, seed=np.array([1.0, -2.0]))
    assert base.output == g.nodes[first._node].label()
    assert base.size == 2 + 2 + 2  # t, sin(t), exp(y)
    assert base.measured_converged and base.measured_error < 1e-12
    assert check_convexity(g, output=first).to_dict()["size"] == 6
    only_x = check_convexity(g, first, [x])  # exp(y) no longer relaxes
    assert only_x.size == 4 and only_x.relaxing_nodes == 2
    assert check_convexity(g, first, wrt=[x]).to_dict() == only_x.to_dict()
    with pytest.raises(SystemTooLargeError, match="max_nnz=3"):
        check_convexity(g, first, max_nnz=3)
    # a float32 graph: the rounding floor of float32
    g32 = ardiff.Graph()
    x32 = g32.input(np.array([0.3, -0.6], dtype=np.float32), name="x")
    r32 = check_convexity(g32, anp.sum(anp.tanh(anp.sin(x32))), eta=1.5)
    assert r32.rounding_floor == pytest.approx(2.0 ** -24 * 3.0 ** 2, rel=1e-12)
    # the measurement relaxes with the units asked for
    from graphs import tanh_mlp

    g, loss, wrt = tanh_mlp(sizes=(3, 4, 4, 2))
    layered = check_convexity(g, loss, wrt, units="layers", eta=0.5, schedule="parallel")
    direct = ardiff.relax(g, loss, wrt, units="layers", eta=0.5, schedule="parallel",
                          tol=1e-10)
    assert layered.measured_iterations == direct.iterations
    # a cyclic graph's report keeps the settings asked for
    nx = pytest.importorskip("networkx")
    G = nx.DiGraph([(0, 1), (1, 0)])
    cyclic = check_convexity(G, eta=0.5, schedule="parallel", tol=1e-3)
    assert (cyclic.eta, cyclic.schedule, cyclic.tol) == (0.5, "parallel", 1e-3)


def test_notes_word_for_word():
    from graphs import scalar_chain

    g = ardiff.Graph()
    x = g.input(np.array([0.3, -0.6]), name="x")
    gentle = check_convexity(g, anp.sum(anp.tanh(anp.sin(x) * 0.1)), eta=0.5)
    assert gentle.min_symmetric_eigenvalue > 0
    assert gentle.notes[0] == (
        "The symmetric part of H is positive definite here, so ||x - x*|| also shrinks "
        "monotonically in continuous time; this is a property of this graph, not a general "
        "guarantee.")
    chain, h, _ = scalar_chain(20)
    stalled = check_convexity(chain, h, eta=1.9, tol=1e-15)
    assert stalled.notes[1] == (
        "Rounding may stall the relaxation above tol: a node can flip between two "
        "neighbouring floats (its factor 1 - eta = -0.9 is negative), and each level "
        f"amplifies that by eta/(2 - eta) = 19, up to about {stalled.rounding_floor:.2g} "
        "relative error after D levels. Use eta <= 1 on deep graphs.")
    # a derivative that is exactly zero: the pattern's nilpotency index is below D
    g = ardiff.Graph()
    x = g.input(np.array([-0.5, -0.2]), name="x")
    dead = anp.maximum(anp.tanh(x), 0.0)  # both entries off: zero local derivative
    report = check_convexity(g, anp.sum(anp.sin(dead) + anp.tanh(x)))
    assert report.nilpotency_index < report.depth
    assert report.notes[0] == (
        f"N's sparsity pattern has nilpotency index {report.nilpotency_index} < D = "
        f"{report.depth}: some local derivatives are exactly zero here (e.g. ReLU units that "
        "are off), so fewer steps can suffice than D predicts.")


def test_corner_cases_of_the_checker():
    from graphs import scalar_chain

    from ardiff import NonFiniteWarning

    # a networkx graph with its output given by position (not its default output)
    nx = pytest.importorskip("networkx")
    g = ardiff.Graph()
    x = g.input(np.array([0.3, -0.6]), name="x")
    first = anp.sum(anp.tanh(x) * anp.sin(x))
    anp.sum(anp.exp(x))  # the last node: the default output
    G = ardiff.to_networkx(g)
    assert isinstance(G, nx.DiGraph)
    assert check_convexity(G, first._node).size == check_convexity(g, first).size == 6
    # mixed precision: the least precise relaxing dtype sets the rounding floor
    g = ardiff.Graph()
    x = g.input(np.array([0.3, -0.6], dtype=np.float32), name="x")
    t = anp.tanh(x)
    mixed = check_convexity(g, anp.sum(anp.sin(t.astype(np.float64))), eta=1.5)
    assert mixed.rounding_floor == pytest.approx(2.0 ** -24 * 3.0 ** mixed.depth, rel=1e-12)
    # an infinite local derivative: the measurement's warning reaches the caller, and the
    # symmetric part (not finite) is not diagonalised (LinAlgError before)
    g = ardiff.Graph()
    x = g.input(np.array([0.0, 1.0]), name="x")
    with pytest.warns(NonFiniteWarning), np.errstate(divide="ignore", invalid="ignore"):
        infinite = check_convexity(g, anp.sum(anp.tanh(anp.sqrt(x * 1.0))))
    assert infinite.min_symmetric_eigenvalue is None
    assert infinite.symmetric_note == "H has non-finite entries"
    assert "not computed (H has non-finite entries)" in str(infinite)
    # units two folded nodes apart on a chain: N between them is the product along it
    chain, h, _ = scalar_chain(5)
    plan = compile_plan(chain, h)
    relaxed = unit_plan(plan, [1, 4])
    assert relaxed.folded == [2, 3]
    M = unit_matrix(assemble(plan, np.float64(1.0)), relaxed).toarray()
    np.testing.assert_allclose(M, [[0.0, 1.1 ** 3], [0.0, 0.0]], rtol=1e-14)


def test_rounding_floor_dtype_in_any_order_and_without_units():
    # the float64 node comes first here: the float32 one must still set the floor
    g = ardiff.Graph()
    x = g.input(np.array([0.3, -0.6]), name="x")
    s = anp.sin(x)
    low = anp.tanh(s.astype(np.float32))
    report = check_convexity(g, anp.sum(low * low), eta=1.5)
    assert report.rounding_floor == pytest.approx(2.0 ** -24 * 3.0 ** report.depth, rel=1e-12)
    # every node clamped by layer units: no relaxing dtype, float64's floor
    ref = build([("sin", (0,)), ("exp", (1,)), ("mul", (1, 2)), ("mul", (3, 3))],
                [np.float64(0.5)])
    clamped = check_convexity(ref.graph, ref.traced[-1], units="layers")
    assert clamped.size == 0 and clamped.rounding_floor == 2.0 ** -53


def test_theory_edge_cases():
    from ardiff.solvers.theory import default_max_iter

    # the rounding floor of a deep graph at a large step is infinite, not an OverflowError
    assert rounding_floor(5000, 1.9) == math.inf
    assert rounding_floor(5000, 0.9) == 2.0 ** -53
    # the step budget, as documented
    for depth, eta, schedule, tol in [(3, 0.5, "parallel", 1e-12), (7, 1.5, "sequential", 1e-6),
                                      (1, 1.0, "parallel", 1e-9), (4, 0.2, "sequential", 0.0)]:
        log_tol = abs(math.log(max(tol, 1e-300)))
        want = math.ceil(2.0 * (depth + 10.0 * math.sqrt(depth) + 2.0 * log_tol + 50.0)
                         / min(eta, 2.0 - eta))
        assert default_max_iter(depth, eta, schedule, tol) == want
    assert default_max_iter(5, 0.5, "parallel") == default_max_iter(5, 0.5, "parallel", 1e-12)
    assert default_max_iter(9, 1.0, "sequential") == 1
    # predictions: defaults, and a tolerance of 1 or more needs no step
    assert predict_iterations(3, 0.5) == predict_iterations(3, 0.5, "parallel", 1e-10)
    assert predict_iterations(3, 0.5, "sequential", 1.0) == 0
    # a scalar step count
    assert float(error_bound(5, 3, 1.5, "sequential")) == pytest.approx(
        bound(5, 3, 1.5, "sequential"), rel=1e-12)
    with pytest.raises(ValueError, match=r"^schedule must be 'parallel' or 'sequential', got "
                                         r"'bogus'$"):
        error_bound(3, 2, 1.5, "bogus")
    # the reasons, word for word
    assert stability(0.0, 3)[1] == ("eta must be positive: at eta = 0 nothing moves, and for "
                                    "eta < 0 the activities run away from the fixed point.")
    assert stability(2.0, 3)[1] == ("every eigenvalue of the iteration matrix is 1 - eta = -1: "
                                    "the error does not decay, and on this graph (depth D = 3) "
                                    "it grows polynomially, like t^2.")
    assert stability(2.0, 2)[1].endswith("like t^1.")
    assert stability(2.0, 1)[1].endswith("the error does not decay, and it never decays.")
