"""Every solver against an independent dense reference, on drawn graphs.

Truth: `reference_graphs` evaluates each drawn graph in plain NumPy with hand-written
derivatives, assembles the dense system (I - N) x = b, solves it with
`numpy.linalg.solve`, steps it with explicit Euler (parallel and top-down sequential)
and flows it with `scipy.linalg.expm`; the trajectory weights are checked against exact
rational arithmetic (`fractions`), and the reference itself against central finite
differences.  The graphs have reused nodes (`s * s`), skip connections (`h * exp(h)`)
and fan-out, and the step counts are odd as well as even at every range of eta
(eta < 1, eta = 1, 1 < eta < 2): the cases where a one-line slip in a solver shows.
"""

import math
import warnings
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from reach_helpers import depth_of, expect_reach, tail
from reference_graphs import build, finite_differences, reference_graphs

import ardiff
import ardiff.numpy as anp
from ardiff.solvers import ConvergenceWarning, compile_plan
from ardiff.solvers.closed_form import trajectory_weights
from ardiff.solvers.triangular import SystemTooLargeError, assemble, estimate_nnz

#: cheap examples: more of them than the profile's default, and more still under "dev"/"fuzz"
EXAMPLES = max(20, settings.default.max_examples)
ETAS = [0.4, 1.0, 1.5]


def gap(actual, expected):
    """max |a - e| relative to max(1, max |e|)."""
    actual, expected = np.asarray(actual, dtype=float), np.asarray(expected, dtype=float)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    if not expected.size:
        return 0.0
    return float(np.max(np.abs(actual - expected)) / max(1.0, np.max(np.abs(expected))))


def assert_state(result, ref, expected_flat, tol=1e-9, seed=1.0):
    """A solver's activities and input gradients equal the reference state's."""
    expected = ref.split(expected_flat)
    assert sorted(result.activities) == ref.relaxing
    for i in ref.relaxing:
        assert gap(result.activities[i], expected[i]) < tol, (i, ref)
    for got, want in zip(result.grads, ref.read_out(expected_flat, seed)):
        assert gap(got, want) < tol, ref


@pytest.fixture
def fresh_op():
    """An op without a sparse-Jacobian family: w = (t0 + t1, 2 t1 + 3 t2)."""
    from ardiff.op import OPS, defop

    def fwd(t):
        return np.array([t[0] + t[1], 2 * t[1] + 3 * t[2]])

    def vjp(ans, t):
        return lambda g: anp.stack([g[0], g[0] + 2 * g[1], 3 * g[1]])

    op = defop("t_pairs", fwd, vjp)
    yield op
    OPS.pop("t_pairs")


# -- the reference itself ------------------------------------------------------------------
@settings(max_examples=EXAMPLES)
@given(reference_graphs())
def test_reference_matches_finite_differences(ref):
    """The dense reference's gradients are those of the function (so it can judge)."""
    fd = finite_differences(ref)
    for got, want in zip(ref.read_out(ref.exact()), fd):
        assert gap(got, want) < 1e-6, ref


# -- the three mutants of issue 20 -----------------------------------------------------------
def square_of_sum():
    """s = sum(tanh(x)); s * s: the output reads the node s twice."""
    g = ardiff.Graph()
    x = g.input(np.array([0.3, -0.7, 1.1]), name="x")
    s = anp.sum(anp.tanh(x))
    return g, s * s, x


@pytest.mark.parametrize("method", ["triangular", "backprop", "relax"])
def test_node_read_twice_by_the_output(method):
    g, out, x = square_of_sum()
    solve = {"triangular": ardiff.solve_triangular, "backprop": ardiff.backprop,
             "relax": ardiff.relax}[method]
    result = solve(g, out)
    xv = np.array([0.3, -0.7, 1.1])
    s = np.sum(np.tanh(xv))
    np.testing.assert_allclose(result.grads[0], 2 * s * (1 - np.tanh(xv) ** 2), rtol=1e-13)
    # the activity of s is dL/ds = 2 s: both edges into the output count
    assert float(result.activities[2]) == pytest.approx(2 * s, rel=1e-13)


def test_triangular_right_hand_side_sums_every_edge_into_the_output():
    g, out, x = square_of_sum()
    system = assemble(compile_plan(g, out), np.float64(1.0))
    s = np.sum(np.tanh([0.3, -0.7, 1.1]))
    np.testing.assert_allclose(system.b, [0.0, 0.0, 0.0, 2 * s], rtol=1e-14)


def skip_connection():
    """h = sin(x); e = exp(h); p = h * e; out = p * p: h reaches p directly and through
    e (a skip connection), and the output reads p twice."""
    return build([("sin", (0,)), ("exp", (1,)), ("mul", (1, 2)), ("mul", (3, 3))],
                 [np.float64(0.5)])


@pytest.mark.parametrize("steps", [20, 21])
@pytest.mark.parametrize("closed_form", [False, True])
def test_sequential_large_eta_odd_and_even_steps(steps, closed_form):
    ref = skip_connection()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        result = ardiff.relax(ref.graph, ref.traced[-1], schedule="sequential", eta=1.5,
                              tol=0.0, max_iter=steps, closed_form=closed_form)
    assert_state(result, ref, ref.stepped("sequential", 1.5, steps), tol=1e-11)


def test_min_symmetric_eigenvalue_with_a_skip_connection():
    ref = skip_connection()
    report = ardiff.check_convexity(ref.graph, ref.traced[-1])
    N, _ = ref.system()
    H = np.eye(len(N)) - N
    expected = np.linalg.eigvalsh((H + H.T) / 2)[0]
    assert expected < 0  # the interesting case: the quadratic form is indefinite
    assert report.min_symmetric_eigenvalue == pytest.approx(expected, rel=1e-12)


# -- trajectory weights in exact arithmetic --------------------------------------------------
def exact_weights(steps, depth, eta, schedule):
    eta = Fraction(eta)
    out = []
    for k in range(depth):
        if schedule == "parallel":
            w = math.comb(steps, k) * eta ** k * (1 - eta) ** (steps - k) if k <= steps else 0
        elif steps == 0:
            w = Fraction(int(k == 0))
        else:
            w = (1 - eta) ** steps * math.comb(steps + k - 1, k) * eta ** k
        out.append(float(w))
    return np.array(out)


@pytest.mark.parametrize("schedule", ["parallel", "sequential"])
@pytest.mark.parametrize("eta", ["1/4", "1", "3/2", "7/4"])
def test_trajectory_weights_equal_exact_rational_arithmetic(schedule, eta):
    eta = Fraction(eta)
    steps = [0, 1, 2, 3, 4, 7, 20, 21]
    got = trajectory_weights(steps, 6, float(eta), schedule)
    assert got.shape == (len(steps), 6)
    for row, t in zip(got, steps):
        want = exact_weights(t, 6, eta, schedule)
        np.testing.assert_allclose(row, want, rtol=1e-12, atol=1e-300)


def test_continuous_weights_are_poisson():
    got = trajectory_weights([0.0, 0.5, 3.0], 4, 1.0, "continuous")
    for row, t in zip(got, [0.0, 0.5, 3.0]):
        want = [math.exp(-t) * t ** k / math.factorial(k) for k in range(4)]
        np.testing.assert_allclose(row, want, rtol=1e-13)


# -- the exact solvers ---------------------------------------------------------------------
@settings(max_examples=EXAMPLES)
@given(reference_graphs())
def test_exact_solvers_equal_the_dense_solve(ref):
    out = ref.traced[-1]
    exact = ref.exact()
    for solve in (ardiff.solve_triangular, ardiff.backprop, ardiff.relax):
        assert_state(solve(ref.graph, out), ref, exact)
    system = assemble(compile_plan(ref.graph, out), np.float64(1.0))
    N, b = ref.system()
    np.testing.assert_allclose(system.N.toarray(), N, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(system.b, b, rtol=1e-12, atol=1e-14)


@settings(max_examples=EXAMPLES)
@given(reference_graphs(), st.floats(0.25, 4.0))
def test_seed_scales_the_exact_solution(ref, seed):
    out = ref.traced[-1]
    result = ardiff.solve_triangular(ref.graph, out, seed=seed)
    assert_state(result, ref, ref.exact() * seed, seed=seed)
    assert np.asarray(result.value) == pytest.approx(ref.values[-1], rel=1e-13)


# -- relaxation: stepping and closed form against explicit Euler ---------------------------
@settings(max_examples=EXAMPLES)
@given(reference_graphs(), st.sampled_from(["parallel", "sequential"]), st.sampled_from(ETAS),
       st.integers(1, 13), st.sampled_from(["zeros", "forward"]), st.booleans())
def test_relaxation_equals_explicit_euler(ref, schedule, eta, steps, init, closed_form):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        result = ardiff.relax(ref.graph, ref.traced[-1], schedule=schedule, eta=eta, init=init,
                              tol=0.0, max_iter=steps, closed_form=closed_form)
    # tol=0 runs every step, except that a parallel relaxation stops once its residual
    # is exactly zero (the fixed point: the remaining steps would not move it)
    assert result.iterations == steps or (result.iterations < steps
                                          and result.residuals[-1] == 0.0)
    assert_state(result, ref, ref.stepped(schedule, eta, steps, init), tol=1e-9)


@settings(max_examples=EXAMPLES)
@given(reference_graphs(), st.sampled_from(["parallel", "sequential"]), st.sampled_from(ETAS),
       st.sampled_from(["zeros", "forward"]))
def test_recorded_trajectory_equals_explicit_euler(ref, schedule, eta, init):
    steps = 7
    for closed_form in (False, True):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            result = ardiff.relax(ref.graph, ref.traced[-1], schedule=schedule, eta=eta,
                                  init=init, tol=0.0, max_iter=steps, record=True,
                                  closed_form=closed_form)
        recorded = result.iterations
        assert recorded == steps or (recorded < steps and result.residuals[-1] == 0.0)
        for t in range(recorded + 1):
            expected = ref.split(ref.stepped(schedule, eta, t, init))
            for i in ref.relaxing:
                assert len(result.trajectory[i]) == recorded + 1
                assert gap(result.trajectory[i][t], expected[i]) < 1e-9, (t, i, ref)
        assert len(result.residuals) == recorded


@settings(max_examples=EXAMPLES)
@given(reference_graphs(), st.sampled_from([0.0, 0.3, 1.0, 2.5]),
       st.sampled_from(["zeros", "forward"]))
def test_continuous_time_equals_the_matrix_exponential(ref, time, init):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        result = ardiff.relax(ref.graph, ref.traced[-1], schedule="continuous", time=time,
                              init=init, tol=0.0)
    assert_state(result, ref, ref.flowed(time, init), tol=1e-9)


@settings(max_examples=EXAMPLES)
@given(reference_graphs(), st.sampled_from(["parallel", "sequential"]), st.sampled_from(ETAS),
       st.booleans())
def test_converged_relaxation_reaches_the_dense_solve(ref, schedule, eta, closed_form):
    """With a tolerance (and no step budget) every schedule stops at the fixed point,
    without a warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = ardiff.relax(ref.graph, ref.traced[-1], schedule=schedule, eta=eta,
                              tol=1e-12, closed_form=closed_form)
    assert result.converged
    assert_state(result, ref, ref.exact(), tol=1e-8)
    assert result.residuals[-1] <= 1e-12


def relative_residual(ref, x, drawn=False):
    """max over nodes of |t - x| / (|t| + |t - x|), t = N x + b (the documented measure)."""
    N, b = ref.system()
    target = ref.split(N @ x + b)
    state = ref.split(x)
    worst = 0.0
    for i in ref.relaxing:
        num = float(np.max(np.abs(target[i] - state[i])))
        tmax = float(np.max(np.abs(target[i])))
        if num:
            # a zero target is measured against the largest target seen so far, which
            # the closed form and stepping track over different states: not compared
            if drawn:
                assume(tmax > 0)
            assert tmax > 0
            worst = max(worst, num / (tmax + num))
    return worst


@settings(max_examples=EXAMPLES)
@given(reference_graphs(), st.sampled_from(["parallel", "sequential"]),
       st.sampled_from([0.4, 1.5]), st.integers(1, 9))
def test_final_residual_is_that_of_the_returned_state(ref, schedule, eta, steps):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        results = [ardiff.relax(ref.graph, ref.traced[-1], schedule=schedule, eta=eta,
                                tol=0.0, max_iter=steps, closed_form=cf, init="forward")
                   for cf in (False, True)]
    expected = relative_residual(ref, ref.stepped(schedule, eta, steps, "forward"), drawn=True)
    for result in results:
        assert result.residuals[-1] == pytest.approx(expected, rel=1e-6, abs=1e-15)


# -- the triangular solver's bookkeeping -----------------------------------------------------
def test_vjp_evaluations_fallback_ops_and_size_bound(fresh_op):
    """vjp_evals counts one VJP per edge into the output plus one per output element of
    every edge built from VJPs of unit vectors; estimate_nnz is the unit diagonal plus
    each inner edge's declared bound (the dense size for an op without a family)."""
    g = ardiff.Graph()
    x = g.input(np.array([0.3, -0.7, 1.1]), name="x")
    t = anp.tanh(x)  # elementwise family: 3 entries
    w = fresh_op(t)  # no family: a 2 x 3 Jacobian from 2 VJPs
    out = anp.sum(w) * anp.sum(t)  # edges into the output: from the two sums
    plan = compile_plan(g, out)
    system = assemble(plan, np.float64(1.0))
    assert system.fallback_ops == ["t_pairs"]
    assert system.vjp_evals == 2 + 2
    sizes = 3 + 2 + 1 + 1  # t, w and the two sums
    edges = 2 * 3 + 2 + 3  # t->w (dense: no family), w->sum(w), t->sum(t)
    assert estimate_nnz(plan) == sizes + edges
    assert system.H.nnz <= estimate_nnz(plan)
    # the Jacobian built from VJPs is the right one: compare with the dense truth
    tv = np.tanh([0.3, -0.7, 1.1])
    dw = np.array([[1.0, 1.0, 0.0], [0.0, 2.0, 3.0]])
    s_w, s_t = float(np.sum(dw @ tv)), float(np.sum(tv))
    result = ardiff.solve_triangular(g, out)
    want = (s_t * dw.sum(axis=0) + s_w) * (1 - tv ** 2)
    np.testing.assert_allclose(result.grads[0], want, rtol=1e-13)
    assert result.vjp_evals == system.vjp_evals + 1  # + the read-out of x


def test_ops_with_a_family_need_no_vjps():
    g, out, x = square_of_sum()
    system = assemble(compile_plan(g, out), np.float64(1.0))
    assert system.fallback_ops == [] and system.vjp_evals == 2  # the two edges s -> s * s


def test_size_guard_at_the_limit_and_its_message():
    g, out, x = square_of_sum()
    plan = compile_plan(g, out)
    bound = estimate_nnz(plan)
    assert bound == 3 + 1 + 3  # the unit diagonal of t and s, and the edge t -> s
    ardiff.solve_triangular(g, out, max_nnz=bound)  # exactly at the limit: accepted
    with pytest.raises(SystemTooLargeError) as info:
        ardiff.solve_triangular(g, out, max_nnz=bound - 1)
    assert str(info.value) == (
        f"The triangular system for this graph has 4 unknowns and up to {bound} stored "
        f"non-zeros (about {bound * 16 / 2**20:.2g} MiB), over the limit max_nnz="
        f"{bound - 1}. Use method='backprop' (the same exact answer by one reverse sweep, "
        "no matrix) or relax(); or raise the limit with solve_triangular(..., max_nnz=...) "
        "or ardiff.solvers.triangular.MAX_NNZ.")


def test_graph_without_relaxing_nodes():
    g = ardiff.Graph()
    x = g.input(np.array([0.5, 2.0]), name="x")
    out = anp.sum(x)
    result = ardiff.solve_triangular(g, out)
    np.testing.assert_array_equal(result.grads[0], [1.0, 1.0])
    assert list(result.residuals) == [0.0] and result.converged and result.activities == {}


def test_certificate_and_convergence_flag():
    ref = skip_connection()
    result = ardiff.solve_triangular(ref.graph, ref.traced[-1])
    assert result.method == "triangular" and result.iterations == 1 and result.converged
    assert len(result.residuals) == 1 and 0.0 <= result.residuals[0] < 1e-15
    g = ardiff.Graph()
    x = g.input(np.array([0.0, 1.0]), name="x")
    out = anp.sum(anp.sqrt(x))  # infinite derivative at 0: the solve is not finite
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bad = ardiff.solve_triangular(g, out)
    assert not np.all(np.isfinite(bad.grads[0]))


def test_triangular_with_a_traced_seed():
    """Differentiating a triangular VJP with respect to its cotangent (the seed is traced:
    block back substitution records the solve), with an input feeding the output directly."""
    x = np.array([0.3, -0.5])

    def f(x):
        return anp.tanh(x) * 2.0 + x

    def h(v):
        back, _ = ardiff.make_vjp(f, method="triangular")(x)
        return anp.sum(back(v) ** 2)

    v = np.array([1.0, 2.0])
    d = 2 * (1 - np.tanh(x) ** 2) + 1
    np.testing.assert_allclose(ardiff.grad(h)(v), 2 * d * d * v, rtol=1e-13)


def test_networkx_graph_with_a_named_output():
    nx = pytest.importorskip("networkx")
    g = ardiff.Graph()
    x = g.input(np.array([0.3, -0.7]), name="x")
    t = anp.tanh(x)
    first = anp.sum(t * t)
    anp.sum(t)  # recorded last: the default output
    G = ardiff.to_networkx(g)
    assert isinstance(G, nx.DiGraph)
    result = ardiff.solve_triangular(G, output=first._node)
    tv = np.tanh([0.3, -0.7])
    np.testing.assert_allclose(result.grads[0], 2 * tv * (1 - tv ** 2), rtol=1e-13)


def test_complex_graph_through_the_real_form():
    """Complex intermediate values: the triangular system in real and imaginary parts
    equals backprop and central finite differences of the real loss."""
    c = np.array([1.0 + 2.0j, -0.5 + 0.3j])

    def loss(x):
        z = x * c
        w = anp.exp(z * 0.5j) * z
        return anp.real(anp.sum(w * anp.conj(w)))

    x = np.array([0.4, -0.9])
    g = ardiff.trace(loss, x)
    tri = ardiff.solve_triangular(g)
    exact = ardiff.backprop(g)
    np.testing.assert_allclose(tri.grads[0], exact.grads[0], rtol=1e-12)
    h = 1e-6
    fd = [(loss(x + h * e) - loss(x - h * e)) / (2 * h) for e in np.eye(2)]
    np.testing.assert_allclose(tri.grads[0], fd, rtol=1e-7)
    # a complex seed on a complex output
    g2 = ardiff.Graph()
    xv = g2.input(x, name="x")
    out = xv * c
    seed = np.array([0.5 - 1.0j, 2.0 + 0.25j])
    got = ardiff.solve_triangular(g2, out, seed=seed).grads[0]
    want = ardiff.backprop(g2, out, seed=seed).grads[0]
    np.testing.assert_allclose(got, want, rtol=1e-13)
    # the pairing Re(sum(a * b)) of docs/complex.md: d/dx Re(sum(seed * x * c))
    np.testing.assert_allclose(got, np.real(seed * c), rtol=1e-13)


# -- the closed form's bookkeeping and corner cases -------------------------------------------
def closed_form_counts(ref):
    """(sweeps, VJP evaluations) of a closed-form solve, from the structure: one exact
    sweep (every edge out of a relaxing node), then N^k e_0 for k = 1 .. D-1 (the edges
    into the nodes of the previous vector), then the read-out (the inputs' edges)."""
    relaxing = set(ref.relaxing)
    edges = [(p, c) for (c, p, _) in ref.jac]
    evals = sum(1 for p, _ in edges if p in relaxing)
    previous, sweeps = relaxing, 0
    for _ in range(1, ref.depth()):
        terms = [(p, c) for p, c in edges if p in relaxing and c in previous]
        evals += len(terms)
        sweeps += 1
        previous = {p for p, _ in terms}
        if not previous:
            break
    evals += sum(1 for p, _ in edges if p < len(ref.inputs))
    return 1 + sweeps, evals


@settings(max_examples=EXAMPLES)
@given(reference_graphs(), st.sampled_from(["parallel", "sequential"]), st.sampled_from(ETAS),
       st.integers(1, 9), st.floats(0.25, 4.0))
def test_closed_form_sweeps_evaluations_and_seed(ref, schedule, eta, steps, seed):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        result = ardiff.relax(ref.graph, ref.traced[-1], schedule=schedule, eta=eta, tol=0.0,
                              max_iter=steps, closed_form=True, seed=seed)
    sweeps, evals = closed_form_counts(ref)
    assert result.sweeps == sweeps <= ref.depth()
    assert result.vjp_evals == evals
    np.testing.assert_array_equal(result.times, [float(steps)])
    assert_state(result, ref, ref.stepped(schedule, eta, steps, seed=seed), seed=seed)


@pytest.mark.parametrize("schedule", ["parallel", "sequential", "continuous"])
def test_closed_form_with_two_recorded_times(schedule):
    """Two times (one step recorded, or two continuous times): the weights of both."""
    ref = skip_connection()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        if schedule == "continuous":
            result = ardiff.relax(ref.graph, ref.traced[-1], schedule=schedule,
                                  time=[0.5, 2.0], tol=0.0, record=True)
            states = [ref.flowed(0.5), ref.flowed(2.0)]
        else:
            result = ardiff.relax(ref.graph, ref.traced[-1], schedule=schedule, eta=1.5,
                                  tol=0.0, max_iter=1, record=True, closed_form=True)
            states = [ref.stepped(schedule, 1.5, 0), ref.stepped(schedule, 1.5, 1)]
    for t, state in enumerate(states):
        expected = ref.split(state)
        for i in ref.relaxing:
            assert gap(result.trajectory[i][t], expected[i]) < 1e-12
    assert_state(result, ref, states[-1])


@pytest.mark.parametrize("schedule", ["parallel", "sequential"])
@pytest.mark.parametrize("eta", [0.5, 1.0, 1.5, 1.9])
def test_trajectory_weights_raise_no_floating_point_warnings(schedule, eta):
    """Edge cases of the weights (T = 0, T past every depth, huge T) stay silent."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(all="raise"):
            w = trajectory_weights([0, 1, 2, 50, 10 ** 6], 8, eta, schedule)
    assert np.all(np.isfinite(w))
    np.testing.assert_array_equal(w[0], [1.0] + [0.0] * 7)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(all="raise"):
            assert np.all(np.isfinite(trajectory_weights([0.0, 1e6], 5, 1.0, "continuous")))


# -- the stepping solver's contract ------------------------------------------------------------
def test_reachable_tol():
    from ardiff.solvers.relaxation import reachable_tol

    f64, f32, f16 = np.zeros(2), np.zeros(2, np.float32), np.zeros(2, np.float16)
    assert reachable_tol(1e-12, [f64, np.float64(1.0)]) == 1e-12
    assert reachable_tol(1e-12, [f64, f32]) == 16 * float(np.finfo(np.float32).eps)
    assert reachable_tol(1e-12, [f16, f32]) == 16 * float(np.finfo(np.float16).eps)
    assert reachable_tol(1e-2, [f32]) == 1e-2
    assert reachable_tol(0.0, [f32]) == 0.0 and reachable_tol(-1.0, [f32]) == -1.0
    assert reachable_tol(1e-12, [np.zeros(2, np.complex64), np.arange(3, dtype=np.int32)]) \
        == 1e-12
    assert reachable_tol(1e-16, [f64]) == 1e-16  # float64 is not raised


@pytest.mark.parametrize("schedule,eta", [("parallel", 0.5), ("sequential", 1.5),
                                          ("parallel", 1.0)])
@pytest.mark.parametrize("closed_form", [False, True])
def test_convergence_warning_names_the_settings_and_the_residual(schedule, eta, closed_form):
    ref = skip_connection()
    steps = 2 if eta == 1.0 else 3  # (3: residuals[1] is not residuals[-1])
    with pytest.warns(ConvergenceWarning) as caught:
        result = ardiff.relax(ref.graph, ref.traced[-1], schedule=schedule, eta=eta,
                              tol=1e-14, max_iter=steps, closed_form=closed_form)
    residual = relative_residual(ref, ref.stepped(schedule, eta, steps))
    assert result.residuals[-1] == pytest.approx(residual, rel=1e-9)
    assert not result.converged and result.iterations == steps
    assert len(caught) == 1  # one warning per solve
    message = str(caught[0].message)
    if closed_form:
        expected = (
            f"The closed-form relaxation state after {steps} steps ({schedule}, eta={eta:g}) "
            f"has relative residual {result.residuals[-1]:.3g} > tol=1e-14. Ask for more "
            "steps (max_iter) or a longer time.")
    else:
        expected = (
            f"Relaxation did not reach tol=1e-14 within max_iter={steps} ({schedule} "
            f"schedule, eta={eta:g}); final relative residual {result.residuals[-1]:.3g}. "
            "Increase max_iter, or use eta=1.")
    # a few steps that do not reach the deepest node: the ReachWarning comes first (issue
    # 25), the residual's text after it, in the same warning
    D = depth_of(ref.graph, ref.traced[-1])
    short = tail(steps, D, eta, schedule) > 0.05
    assert issubclass(caught[0].category, ardiff.ReachWarning) is short
    assert message.endswith(expected) and (message == expected) is not short
    with warnings.catch_warnings(record=True) as quiet:
        warnings.simplefilter("always")  # tol=0 runs the steps asked for, no residual
        ardiff.relax(ref.graph, ref.traced[-1], schedule=schedule, eta=eta, tol=0.0,
                     max_iter=steps, closed_form=closed_form)
    assert [w.category for w in quiet] == ([ardiff.ReachWarning] if short else [])


def test_continuous_warning_names_the_time():
    ref = skip_connection()
    with pytest.warns(ConvergenceWarning, match=r"after 0.25 time units \(continuous, "
                                                 r"eta=1\) has relative residual"):
        ardiff.relax(ref.graph, ref.traced[-1], schedule="continuous", time=0.25)


@pytest.mark.parametrize("schedule,eta", [("parallel", 0.9), ("sequential", 0.8),
                                          ("parallel", 1.0), ("sequential", 1.0)])
def test_second_order_through_relaxation(schedule, eta):
    """hessian with the relaxation as the inner and outer solver: the traced iterates must
    run the steps their derivatives need, not stop when the values have settled."""
    def f(x):
        return anp.sum(anp.tanh(anp.sin(x) * x)) + anp.sum(x) ** 2

    x = np.array([0.3, -0.8])
    got = ardiff.hessian(f, method="relax", schedule=schedule, eta=eta)(x)
    u = np.sin(x) * x
    du = np.cos(x) * x + np.sin(x)
    d2u = -np.sin(x) * x + 2 * np.cos(x)
    t = np.tanh(u)
    want = np.diag(-2 * t * (1 - t * t) * du ** 2 + (1 - t * t) * d2u) + 2.0
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-10)


def test_closed_form_corner_cases():
    from ardiff.solvers.theory import predict_iterations

    # no relaxing nodes: nothing to sweep, the read-out only, one step by default
    g = ardiff.Graph()
    x = g.input(np.array([0.5, 2.0]), name="x")
    out = anp.sum(x)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = ardiff.relax(g, out, closed_form=True, eta=0.5)
    assert result.sweeps == 0 and result.vjp_evals == 1 and result.converged
    assert result.iterations == 1 and result.trajectory is None and result.method == "relax"
    np.testing.assert_array_equal(result.grads[0], [1.0, 1.0])
    # every node clamped by layer units: one exact sweep fills the clamped nodes
    ref = skip_connection()
    clamped = ardiff.relax(ref.graph, ref.traced[-1], closed_form=True, units="layers")
    assert clamped.sweeps == 1 and clamped.converged
    np.testing.assert_allclose(clamped.grads[0], ref.read_out(ref.exact())[0], rtol=1e-13)
    # without max_iter: the theory's step count for tol
    for schedule, eta in [("sequential", 1.0), ("parallel", 0.5), ("sequential", 1.5)]:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            r = ardiff.relax(ref.graph, ref.traced[-1], schedule=schedule, eta=eta,
                             closed_form=True, tol=1e-10)
        assert r.iterations == predict_iterations(ref.depth(), eta, schedule, 1e-10)
        assert r.converged and r.trajectory is None
        assert_state(r, ref, ref.exact(), tol=1e-8)
    # continuous time: no steps, one residual per call unless recorded
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        cont = ardiff.relax(ref.graph, ref.traced[-1], schedule="continuous",
                            time=[0.5, 2.0], record=True)
    assert cont.iterations == 0 and len(cont.residuals) == 1 and cont.method == "relax"
    np.testing.assert_array_equal(cont.times, [0.5, 2.0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        three = ardiff.relax(ref.graph, ref.traced[-1], schedule="continuous",
                             time=[0.5, 1.0, 2.0], record=True)
    assert len(three.residuals) == 1  # recorded times: one residual, of the last state
    assert cont.residuals[0] == pytest.approx(relative_residual(ref, ref.flowed(2.0)),
                                              rel=1e-9)


@pytest.mark.parametrize("init", ["zeros", "forward"])
@pytest.mark.parametrize("closed_form", [False, True])
def test_float32_activities_stay_float32(init, closed_form):
    g = ardiff.Graph()
    x = g.input(np.array([0.3, -0.7, 1.1], dtype=np.float32), name="x")
    t = anp.tanh(x)
    out = anp.sum(t * t)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        result = ardiff.relax(g, out, schedule="parallel", eta=0.5, init=init, max_iter=30,
                              tol=0.0, closed_form=closed_form)
    for i, a in result.activities.items():
        assert np.asarray(a).dtype == np.float32, i
    tv = np.tanh(np.array([0.3, -0.7, 1.1]))
    np.testing.assert_allclose(result.grads[0], 2 * tv * (1 - tv * tv), rtol=1e-5)


@settings(max_examples=EXAMPLES)
@given(reference_graphs())
def test_step_counts_and_vjp_evaluations_of_stepping(ref):
    """Parallel at eta = 1 from zeros is exact after D steps and evaluates every edge
    once, as backprop does; a sequential sweep evaluates every edge of every relaxing
    node; the read-out adds one VJP per edge out of an input."""
    out = ref.traced[-1]
    relaxing = set(ref.relaxing)
    inner = sum(1 for (_, p, _) in ref.jac if p in relaxing)
    read = sum(1 for (_, p, _) in ref.jac if p < len(ref.inputs))
    exact = ardiff.backprop(ref.graph, out)
    assert exact.vjp_evals == inner + read
    jacobi = ardiff.relax(ref.graph, out, schedule="parallel", eta=1.0)
    # exact after D steps (earlier where zeros are already exact); a node is evaluated
    # again only when a child changed (once on a layered graph: see below)
    assert jacobi.iterations <= ref.depth()
    assert jacobi.vjp_evals <= max(jacobi.iterations, 1) * inner + read
    if np.all(ref.exact() != 0):
        assert jacobi.iterations == ref.depth() and jacobi.vjp_evals >= inner + read
    assert_state(jacobi, ref, ref.exact())
    fast = ardiff.relax(ref.graph, out)  # sequential, eta = 1: one sweep
    assert fast.iterations == fast.sweeps == 1 and fast.vjp_evals == inner + read
    assert list(fast.residuals) == [0.0]
    for eta in (0.4, 1.5):
        seq = ardiff.relax(ref.graph, out, schedule="sequential", eta=eta, tol=1e-12)
        assert seq.sweeps == seq.iterations == len(seq.residuals)
        assert seq.vjp_evals == seq.iterations * inner + read
    # record: not the fast path, but one sweep at eta = 1 is still exact (and stops)
    recorded = ardiff.relax(ref.graph, out, schedule="sequential", eta=1.0, tol=0.0,
                            max_iter=3, record=True)
    assert recorded.iterations == 1 and recorded.vjp_evals == inner + read
    assert list(recorded.residuals) == [0.0]


def test_parallel_at_eta_one_evaluates_each_edge_once_on_layers():
    from graphs import tanh_mlp

    g, loss, wrt = tanh_mlp(sizes=(5, 4, 4, 4, 3))
    exact = ardiff.backprop(g, loss, wrt)
    for init, evals in (("zeros", exact.vjp_evals), ("forward", None)):
        result = ardiff.relax(g, loss, wrt, schedule="parallel", eta=1.0, init=init)
        assert result.iterations == compile_plan(g, loss, wrt).max_depth
        if evals is not None:
            assert result.vjp_evals == evals
        for a, b in zip(result.grads, exact.grads):
            np.testing.assert_allclose(a, b, rtol=1e-13)


def test_triangular_corner_cases(fresh_op):
    from ardiff.solvers.triangular import run_triangular

    # the size guard's MiB figure on a system large enough for two digits to differ
    g = ardiff.Graph()
    x = g.input(np.linspace(-1.0, 1.0, 300), name="x")
    out = anp.sum(anp.tanh(x))
    bound = estimate_nnz(compile_plan(g, out))
    assert bound == 300  # the unit diagonal of tanh(x); its sum is the output
    with pytest.raises(SystemTooLargeError, match=r"\(about 0\.0046 MiB\)"):
        ardiff.solve_triangular(g, out, max_nnz=100)
    # two edges built from VJPs: both counted
    g = ardiff.Graph()
    x = g.input(np.array([0.3, -0.7, 1.1]), name="x")
    w1, w2 = fresh_op(anp.tanh(x)), fresh_op(anp.sin(x))
    out = anp.sum(w1 * w2)
    system = assemble(compile_plan(g, out), np.float64(1.0))
    assert system.fallback_ops == ["t_pairs"] and system.vjp_evals == 2 + 2 + 1
    # a non-finite solve is not converged
    g = ardiff.Graph()
    x = g.input(np.array([0.0, 1.0]), name="x")
    out = anp.sum(anp.tanh(anp.sqrt(x * 1.0)))  # an infinite derivative inside the system
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bad = ardiff.solve_triangular(g, out)
    assert not bad.converged and not np.isfinite(bad.residuals[0])
    # a traced seed (a graph recorded inside another): block back substitution
    g = ardiff.Graph()
    x = g.input(np.array([0.3, -0.7]), name="x")
    out = anp.tanh(x) * 3.0
    outer = ardiff.Graph()
    v = outer.input(np.array([1.0, 2.0]), name="v")
    traced = run_triangular(compile_plan(g, out), v)
    assert traced.method == "triangular" and traced.iterations == 1
    grad = traced.grads[0]
    assert grad._graph is outer
    np.testing.assert_allclose(grad._value, 3.0 * np.array([1.0, 2.0])
                               * (1 - np.tanh([0.3, -0.7]) ** 2), rtol=1e-13)


# -- units: the unit-level system with the other nodes eliminated ------------------------------
@settings(max_examples=EXAMPLES)
@given(reference_graphs(min_ops=3), st.data(), st.sampled_from(["parallel", "sequential"]),
       st.sampled_from(ETAS), st.integers(1, 9), st.sampled_from(["zeros", "forward"]),
       st.booleans())
def test_listed_units_follow_the_eliminated_system(ref, data, schedule, eta, steps, init,
                                                   closed_form):
    units = sorted(data.draw(st.sets(st.sampled_from(ref.relaxing), min_size=1)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        result = ardiff.relax(ref.graph, ref.traced[-1], schedule=schedule, eta=eta,
                              init=init, tol=0.0, max_iter=steps, units=units,
                              closed_form=closed_form)
    expected = ref.stepped_units(units, schedule, eta, steps, init)
    split = ref.split(expected)
    for i in units:
        assert gap(result.activities[i], split[i]) < 1e-9, (i, units, ref)
    for got, want in zip(result.grads, ref.read_out(expected)):
        assert gap(got, want) < 1e-9, (units, ref)
    # the fixed point does not depend on the units
    exact = ardiff.relax(ref.graph, ref.traced[-1], schedule=schedule, eta=eta, tol=1e-12,
                         units=units)
    for got, want in zip(exact.grads, ref.read_out(ref.exact())):
        assert gap(got, want) < 1e-8


def test_output_in_wrt_reads_the_seed():
    """The gradient of the output with respect to itself is the seed, in every path."""
    from ardiff.solvers.triangular import run_triangular

    g = ardiff.Graph()
    x = g.input(np.array([0.3, -0.7]), name="x")
    out = anp.tanh(x) * 2.0
    seed = np.array([1.5, -0.5])
    for result in (ardiff.solve_triangular(g, out, [x, out], seed=seed),
                   ardiff.relax(g, out, [x, out], seed=seed, closed_form=True, max_iter=3,
                                schedule="parallel", eta=1.0),
                   ardiff.relax(g, out, [x, out], seed=seed, schedule="sequential", eta=0.5)):
        assert result.method in ("triangular", "relax")
        np.testing.assert_array_equal(result.grads[1], seed)
        np.testing.assert_allclose(result.grads[0], 2 * seed * (1 - np.tanh([0.3, -0.7]) ** 2),
                                   rtol=1e-11)
    outer = ardiff.Graph()
    v = outer.input(seed, name="v")
    traced = run_triangular(compile_plan(g, out, [x, out]), v)
    assert traced.grads[1] is v


def test_complex_graph_with_real_inner_edges():
    """A complex graph whose first edges are real: the real form assembles those with the
    real Jacobians, the complex ones from VJPs; equal to finite differences."""
    c = np.array([1.0 + 2.0j, -0.5 + 0.3j])

    def loss(x):
        h = anp.sin(anp.tanh(x))  # real edges x -> tanh -> sin
        z = h * c
        return anp.real(anp.sum(z * anp.conj(z) * z))

    x = np.array([0.4, -0.9])
    g = ardiff.trace(loss, x)
    tri = ardiff.solve_triangular(g)
    h = 1e-6
    fd = [(loss(x + h * e) - loss(x - h * e)) / (2 * h) for e in np.eye(2)]
    np.testing.assert_allclose(tri.grads[0], fd, rtol=1e-7)
    np.testing.assert_allclose(tri.grads[0], ardiff.backprop(g).grads[0], rtol=1e-12)


def test_run_relaxation_takes_one_options_object():
    from ardiff.solvers import SolverOptions
    from ardiff.solvers.relaxation import run_relaxation

    ref = skip_connection()
    plan = compile_plan(ref.graph, ref.traced[-1])
    with pytest.raises(TypeError, match="unexpected keyword argument 'eta'"):
        run_relaxation(plan, eta=0.5)  # settings travel in one object
    D = plan.max_depth
    with expect_reach(D, 4, 0.5):  # 4 steps, compared with stepping by hand
        by_options = run_relaxation(plan, None, SolverOptions(schedule="parallel", eta=0.5,
                                                              tol=0.0, max_iter=4))
    assert by_options.iterations == 4
    assert_state(by_options, ref, ref.stepped("parallel", 0.5, 4))
    default = run_relaxation(plan)  # SolverOptions(): one exact sweep
    assert default.iterations == 1
    assert_state(default, ref, ref.stepped("sequential", 1.0, 1))


def test_stepping_without_relaxing_nodes():
    g = ardiff.Graph()
    x = g.input(np.array([0.5, 2.0]), name="x")
    out = anp.dot(x, x)  # the output reads the input directly
    for schedule in ("parallel", "sequential"):
        result = ardiff.relax(g, out, schedule=schedule, eta=0.5, record=True)
        assert result.iterations == 0 and result.converged and list(result.residuals) == []
        assert result.vjp_evals == 2 and result.activities == {} and result.trajectory == {}
        np.testing.assert_array_equal(result.grads[0], [1.0, 4.0])


@pytest.mark.parametrize("schedule,eta", [("parallel", 0.5), ("sequential", 0.5),
                                          ("sequential", 1.0)])
def test_float32_relaxation_meets_a_reachable_tolerance(schedule, eta):
    """The default tol (1e-12) is raised to what float32 resolves: converged, silent."""
    g = ardiff.Graph()
    x = g.input(np.linspace(-1, 1, 5).astype(np.float32), name="x")
    h = anp.tanh(anp.sin(x) * np.float32(1.5))
    out = anp.sum(h * h)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = ardiff.relax(g, out, schedule=schedule, eta=eta, record=True)
    assert result.converged and result.residuals[-1] <= 16 * np.finfo(np.float32).eps
    assert result.residuals[-1] > 1e-12 or eta == 1.0
    exact = ardiff.backprop(g, out).grads[0]
    np.testing.assert_allclose(result.grads[0], exact, rtol=1e-5)
    assert len(result.trajectory[1]) == result.iterations + 1


def test_non_finite_relaxation_warns_about_the_node_not_convergence():
    from ardiff import NonFiniteWarning

    g = ardiff.Graph()
    x = g.input(np.array([0.0, 1.0]), name="x")
    out = anp.sum(anp.tanh(anp.sqrt(x * 1.0)))
    for schedule in ("parallel", "sequential"):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = ardiff.relax(g, out, schedule=schedule, eta=0.5)
        # the finite entries converge; the non-finite one is named, not waited for
        kinds = {type(w.message) for w in caught}
        assert NonFiniteWarning in kinds and ConvergenceWarning not in kinds
        assert not np.all(np.isfinite(result.grads[0]))


@pytest.mark.parametrize("schedule,eta", [("parallel", 0.9), ("parallel", 1.0),
                                          ("sequential", 0.8)])
def test_second_order_where_the_gradient_vanishes(schedule, eta):
    """At x = 0 every activity of the inner relaxation is 0 = its target in value, but not
    in its derivative: the traced solve must still take the steps the derivatives need
    (Hessians at 0: 2 I for sum(tanh(sin x)^2), 2 for every entry of sum(tanh x)^2)."""
    def f(x):
        return anp.sum(anp.tanh(anp.sin(x)) ** 2)

    def g(x):
        return anp.sum(anp.tanh(x)) ** 2

    got = ardiff.hessian(f, method="relax", schedule=schedule, eta=eta)(np.zeros(2))
    np.testing.assert_allclose(got, 2 * np.eye(2), rtol=1e-12, atol=1e-14)
    got = ardiff.hessian(g, method="relax", schedule=schedule, eta=eta)(np.zeros(2))
    np.testing.assert_allclose(got, np.full((2, 2), 2.0), rtol=1e-12, atol=1e-14)


def test_zero_gradient_is_reached_without_a_step():
    """Every target is already 0 = the start: no step is taken (parallel from zeros)."""
    g = ardiff.Graph()
    x = g.input(np.array([0.3, -0.7]), name="x")
    out = anp.sum(anp.tanh(x)) * 0.0
    result = ardiff.relax(g, out, schedule="parallel", eta=0.5)
    assert result.iterations == 0 and result.converged and list(result.residuals) == []
    np.testing.assert_array_equal(result.grads[0], [0.0, 0.0])


def test_stalled_relaxation_uses_the_whole_budget_and_rules_reach_the_plan():
    from graphs import scalar_chain

    from ardiff.rules import NoDerivative
    from ardiff.solvers.theory import default_max_iter

    g, h, x = scalar_chain(20)
    with pytest.warns(ConvergenceWarning):
        stalled = ardiff.relax(g, h, schedule="parallel", eta=1.9, tol=1e-15)
    assert stalled.method == "relax" and not stalled.converged
    assert stalled.iterations == default_max_iter(19, 1.9, "parallel", 1e-15)
    # a rule: sin's derivative dropped on the input edge (x -> sin is read out)
    ref = skip_connection()
    ruled = ardiff.relax(ref.graph, ref.traced[-1], rules=[NoDerivative(ops=["sin"])])
    exact = ref.split(ref.exact())
    np.testing.assert_allclose(ruled.grads[0], exact[1], rtol=1e-13)
    assert not np.allclose(ruled.grads[0], ref.read_out(ref.exact())[0])


def unit_depths(ref, units):
    """D of a unit plan from the structure: 1 + the deepest unit reachable through
    non-units (clamped nodes and the output count 0)."""
    units = set(units)
    children = {}
    for (c, p, _) in ref.jac:
        children.setdefault(p, set()).add(c)

    def reach(i, seen=None):
        found = set()
        for c in children.get(i, ()):
            if c in units:
                found.add(c)
            elif c != ref.output:
                found |= reach(c)
        return found

    depth = {}
    for u in sorted(units, reverse=True):
        depth[u] = 1 + max((depth[v] for v in reach(u)), default=0)
    return max(depth.values(), default=0)


@settings(max_examples=EXAMPLES)
@given(reference_graphs(min_ops=3), st.data())
def test_unit_plan_structure(ref, data):
    from ardiff.solvers.units import unit_plan

    units = sorted(data.draw(st.sets(st.sampled_from(ref.relaxing), min_size=1)))
    plan = compile_plan(ref.graph, ref.traced[-1])
    relaxed = unit_plan(plan, units)
    others = [i for i in ref.relaxing if i not in units]
    assert relaxed.relaxing == units
    assert sorted(relaxed.folded + relaxed.clamped) == others
    assert relaxed.max_depth == unit_depths(ref, units)
    assert relaxed.describe() == (f"{len(units)} units ({len(relaxed.folded)} folded, "
                                  f"{len(relaxed.clamped)} clamped nodes), "
                                  f"D = {relaxed.max_depth}")
    # a clamped node reaches no unit; a folded one does
    children = {}
    for (c, p, _) in ref.jac:
        children.setdefault(p, set()).add(c)

    def reaches_unit(i):
        return any(c in units or (c != ref.output and reaches_unit(c))
                   for c in children.get(i, ()))

    assert all(reaches_unit(i) for i in relaxed.folded)
    assert not any(reaches_unit(i) for i in relaxed.clamped)


def test_unit_selection_refusals_and_marks():
    from ardiff.solvers.units import marked_units, select_units, unit_plan
    from ardiff.tracer import unit

    ref = skip_connection()
    plan = compile_plan(ref.graph, ref.traced[-1])
    with pytest.raises(ValueError, match=r"^units: node 4 \(op multiply, shape \(\)\) cannot be "
                                         r"a unit: it is the output, which is clamped to the "
                                         r"seed\. Pass only nodes that relax at op level "
                                         r"\(units='ops' lists them in "
                                         r"result\.plan\.relaxing\)\.$"):
        select_units(plan, [4])
    with pytest.raises(ValueError, match=r"node 0 'x0' \(op input, shape \(\)\) cannot be a "
                                         r"unit: it is a leaf \(its gradient is read out, it "
                                         r"never relaxes\)\."):
        select_units(plan, [0])
    g = ardiff.Graph()
    x = g.input(np.array([0.3, 0.5]), name="x")
    c = g.constant(np.array([1.0, 2.0]), name="c")
    off = anp.sin(c)
    out = anp.sum(anp.tanh(x) * off)
    with pytest.raises(ValueError, match="it is not on a path between the differentiated "
                                         "inputs and the output, or all its parents are "
                                         "leaves outside wrt"):
        select_units(compile_plan(g, out), [off])
    with pytest.raises(ValueError, match=r"units must be one of .* or a list of nodes, got "
                                         r"'bogus'"):
        select_units(plan, "bogus")
    assert select_units(plan, "ops") == plan.relaxing
    assert unit_plan(plan, "ops") is plan
    with pytest.raises(ValueError, match="already has units"):
        unit_plan(unit_plan(plan, [1]), [1])
    # marks: identity in value, recorded on the node, plain arrays untouched
    v = np.ones(2)
    assert unit(v) is v
    g = ardiff.Graph()
    x = g.input(np.array([0.3, 0.5]), name="x")
    h = anp.tanh(x)
    assert unit(h) is h and marked_units(g) == {h._node}
    out = anp.sum(h * h)
    marked = unit_plan(compile_plan(g, out), "layers")
    assert h._node in marked.relaxing


@pytest.mark.parametrize("schedule,eta", [("sequential", 1.5), ("sequential", 0.5),
                                          ("parallel", 0.7)])
def test_relaxation_stops_at_the_first_step_within_tol(schedule, eta):
    """The step count is the first t whose state's relative residual is within tol
    (stepping the dense reference), not a prediction."""
    ref = skip_connection()
    tol = 1e-10
    result = ardiff.relax(ref.graph, ref.traced[-1], schedule=schedule, eta=eta, tol=tol)
    t = 1
    while relative_residual(ref, ref.stepped(schedule, eta, t)) > tol:
        t += 1
    assert result.iterations == t and result.converged


def test_unit_plans_restage_and_anchor_at_the_output():
    from ardiff.solvers import SolverOptions
    from ardiff.solvers.closed_form import run_closed_form
    from ardiff.solvers.units import unit_plan

    # a parameter read by the output itself anchors the layer below it
    g = ardiff.Graph()
    x = g.input(np.array([0.3, -0.6]), name="x")
    w = g.input(np.array([1.5, 0.5]), name="w")
    h = anp.tanh(x)
    out = anp.dot(h, w)
    assert unit_plan(compile_plan(g, out), "layers").relaxing == [h._node]
    # new recorded values, restaged: the unit plan follows them (stage restages the ops)
    ref = skip_connection()
    new = build(ref.steps, [np.float64(-0.9)])
    plan = compile_plan(ref.graph, ref.traced[-1])
    relaxed = unit_plan(plan, [1, 3])
    ref.graph.replace_values([np.asarray(v) if np.ndim(v) else np.float64(v)
                              for v in new.values])
    relaxed.stage()
    options = SolverOptions(schedule="parallel", eta=0.5, tol=0.0, max_iter=5, closed_form=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        result = run_closed_form(relaxed, None, options)
    expected = new.stepped_units([1, 3], "parallel", 0.5, 5)
    for got, want in zip(result.grads, new.read_out(expected)):
        assert gap(got, want) < 1e-12
    with pytest.raises(ValueError, match=r"^unit_plan: the plan already has units; pass its "
                                         r"op_plan\.$"):
        unit_plan(relaxed, [1])
