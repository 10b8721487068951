"""Random programs and graphs of 50+ nodes: relaxation against backprop and finite differences.

The programs and graphs come from :mod:`ardiff.strategies`; a failing example is
printed as source code that rebuilds it.  Relaxation is run on every schedule,
both initialisations and several step sizes, and must land on the exact
reverse-mode gradient (1e-9 relative); ardiff's derivatives (first and second
order) must match central finite differences of the plain NumPy program.
"""

import subprocess
import sys
import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import ardiff
from ardiff.strategies import Program, random_graphs, random_programs
from ardiff.testing import check_grads

MIN_NODES = 50

# (schedule, eta, init): the exact one-sweep setting, damped and over-relaxed steps.
SOLVER_SETTINGS = [
    dict(schedule="sequential", eta=1.0, init="zeros"),
    dict(schedule="sequential", eta=0.6, init="forward"),
    dict(schedule="sequential", eta=1.3, init="zeros"),
    dict(schedule="parallel", eta=1.0, init="forward"),
    dict(schedule="parallel", eta=0.5, init="zeros"),
    dict(schedule="parallel", eta=1.4, init="forward"),
]


def assert_relatively_close(actual, expected, rtol=1e-9, context=""):
    """Each gradient within ``rtol`` of the reference, relative to its own size.

    A gradient that is exactly zero in the reference is compared against 1e-6 of the
    largest gradient instead: relaxation from forward values leaves a tiny,
    geometrically vanishing activity there, not an exact zero.
    """
    actual = [np.asarray(a, dtype=np.float64) for a in actual]
    expected = [np.asarray(e, dtype=np.float64) for e in expected]
    overall = max((float(np.max(np.abs(e))) for e in expected if e.size), default=0.0)
    for k, (a, e) in enumerate(zip(actual, expected)):
        assert a.shape == e.shape, f"{context}: gradient {k} has shape {a.shape}, not {e.shape}"
        if not e.size:
            continue
        scale = max(float(np.max(np.abs(e))), 1e-6 * overall)
        err = float(np.max(np.abs(a - e)))
        assert err <= rtol * scale, (
            f"{context}: gradient {k} differs from backprop by {err:.3g} "
            f"(relative {err / scale if scale else np.inf:.3g} > {rtol:g})")


def relax_quietly(*args, **kwargs):
    """ardiff.relax, turning warnings into errors so non-convergence is not missed."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return ardiff.relax(*args, **kwargs)


# -- the strategies themselves ------------------------------------------------------
@given(random_graphs(min_nodes=MIN_NODES))
def test_random_graphs_are_big_connected_scalar_dags(drawn):
    g, out, wrt = drawn
    assert isinstance(g, ardiff.Graph) and len(g) >= MIN_NODES
    assert out.graph is g and np.shape(out.value) == ()
    assert wrt and all(w.node.op == "input" for w in wrt)
    assert np.isfinite(out.value)
    # every node has a parent before it: creation order is a topological order
    for node in g.nodes:
        assert all(p < node.index for _, p in node.parents)
    # the printed source rebuilds the same graph
    namespace = {}
    exec(drawn.source, namespace)
    assert len(namespace["g"]) == len(g)
    assert namespace["out"].value == out.value


@given(random_programs(min_nodes=MIN_NODES))
def test_random_programs_trace_to_big_graphs_with_the_plain_numpy_value(drawn):
    program, args = drawn
    assert isinstance(program, Program) and "def program(" in repr(program)
    graph = ardiff.trace(program, *args)
    assert len(graph) >= MIN_NODES
    # tracing does not change what the program computes
    plain = program(*args)
    assert not isinstance(plain, ardiff.Tracer) and np.isfinite(plain)
    assert graph.output.value == pytest.approx(plain, rel=1e-12, abs=1e-12)


def test_strategies_import_hypothesis_only_when_used():
    # ardiff.strategies ships with the package; hypothesis is the optional `test` extra
    code = (
        "import sys; sys.modules['hypothesis'] = None\n"
        "import ardiff.strategies as s\n"
        "try:\n    s.random_programs()\nexcept ImportError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert "pip install 'ardiff[test]'" in out


# -- relaxation against exact backprop ------------------------------------------------
@given(random_graphs(min_nodes=MIN_NODES))
def test_relaxation_of_random_graphs_equals_backprop(drawn):
    g, out, wrt = drawn
    reference = ardiff.backprop(g, out, wrt)
    for options in SOLVER_SETTINGS:
        res = relax_quietly(g, out, wrt, **options)
        assert res.converged, options
        assert_relatively_close(res.grads, reference.grads, context=str(options))


@given(random_programs(min_nodes=MIN_NODES), st.sampled_from(SOLVER_SETTINGS))
def test_relaxation_of_random_programs_equals_backprop(drawn, options):
    program, args = drawn
    argnum = tuple(range(len(args)))
    value, reference = ardiff.value_and_grad(program, argnum, method="backprop")(*args)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got_value, got = ardiff.value_and_grad(program, argnum, **options)(*args)
    assert got_value == value
    assert_relatively_close(got, reference, context=str(options))


# -- against central finite differences ----------------------------------------------
@given(random_programs(min_nodes=MIN_NODES, kinks=False), st.sampled_from([1, 2]))
def test_smooth_programs_match_finite_differences(drawn, order):
    program, args = drawn
    for argnum in range(len(args)):
        check_grads(program, argnum=argnum, order=order)(*args)


@given(random_programs(min_nodes=MIN_NODES), st.sampled_from(SOLVER_SETTINGS))
def test_programs_with_kinks_match_finite_differences_at_random_points(drawn, options):
    # The values are random, so kinks (abs, max, sort, where) are almost surely far
    # from the point, and relaxation with any schedule gives the first derivative.
    program, args = drawn
    for argnum in range(len(args)):
        check_grads(program, argnum=argnum, order=1, **options)(*args)
