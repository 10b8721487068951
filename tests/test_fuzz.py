"""Fuzzing: random NumPy programs and random graphs, every relaxation schedule against
exact backprop and against central finite differences.

The CI profile draws a few examples; the ``fuzz`` profile (tests/conftest.py) draws
10 000 per test.  The one command (documented in docs/sharp-edges.md)::

    HYPOTHESIS_PROFILE=fuzz python -m pytest tests/test_fuzz.py -p no:cacheprovider \\
        --hypothesis-show-statistics

Hypothesis reports the number of passing examples per test; any mismatch fails
the run and is printed as a program (or graph-building code) that reproduces it.

Finite differences are only meaningful where the program is smooth around the
point.  Random programs contain kinks (``abs``, ``maximum``, ``sort``), jumps
(``x * (x > 0.2)``) and data-dependent branches; a point within ``eps`` of one of
them is recognised because two step sizes then disagree, and is skipped (counted
by hypothesis as invalid, never as a pass).  At a smooth point the two estimates
agree to about 1e-9, and ardiff must agree with them.
"""

from __future__ import annotations

import re
import warnings

import numpy as np
from hypothesis import assume, event, given

import ardiff
from ardiff import ConvergenceWarning
from ardiff.strategies import random_graphs, random_programs

# The relaxation settings the fuzzer checks: both schedules, exact and damped steps,
# activities started from zeros and from the forward values (the paper's choice).
RELAX_SETTINGS = [
    {"schedule": "sequential", "eta": 1.0, "init": "zeros"},
    {"schedule": "sequential", "eta": 0.8, "init": "zeros"},
    {"schedule": "parallel", "eta": 1.0, "init": "forward"},
    {"schedule": "parallel", "eta": 0.8, "init": "zeros"},
]
EPS = (1e-6, 1e-5)


def assert_matches(actual, expected, context, rtol=1e-9):
    """Every gradient within ``rtol`` of the reference, relative to the largest one."""
    actual = [np.asarray(a, dtype=np.float64) for a in actual]
    expected = [np.asarray(e, dtype=np.float64) for e in expected]
    scale = max((float(np.max(np.abs(e))) for e in expected if e.size), default=0.0)
    for k, (a, e) in enumerate(zip(actual, expected)):
        assert a.shape == e.shape, f"{context}: gradient {k} shape {a.shape} != {e.shape}"
        err = float(np.max(np.abs(a - e))) if e.size else 0.0
        assert err <= rtol * max(scale, 1e-300), (
            f"{context}: gradient {k} differs from backprop by {err:.3g} (scale {scale:.3g})")


def relaxed(make, options):
    """Run ``make(**options)`` with warnings as errors, except that a ConvergenceWarning is
    tallied as a hypothesis event (shown by --hypothesis-show-statistics): the
    gradients are still compared with backprop, so a real mismatch always fails."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = make(**options)
    for w in caught:
        if issubclass(w.category, ConvergenceWarning):
            event(f"ConvergenceWarning with {options}")
        else:
            raise AssertionError(f"{options}: unexpected {w.category.__name__}: {w.message}")
    return result


def smooth_directional_derivative(evaluate, directions):
    """Central difference of ``evaluate(t)`` at 0, or None near a kink or jump."""
    estimates = []
    for eps in EPS:
        with np.errstate(all="ignore"):
            estimates.append((evaluate(eps) - evaluate(-eps)) / (2.0 * eps))
    coarse, fine = estimates
    size = max(abs(fine), 1.0)
    if not np.isfinite(fine) or abs(coarse - fine) > 1e-7 * size:
        return None
    return fine


def check_against_finite_differences(analytic_grads, directions, evaluate, context):
    numeric = smooth_directional_derivative(evaluate, directions)
    if numeric is None:
        event("finite differences skipped: a kink or jump within eps of the point")
    assume(numeric is not None)  # no smooth truth to compare with
    analytic = sum(float(np.sum(np.asarray(g) * d)) for g, d in zip(analytic_grads, directions))
    assert np.isclose(analytic, numeric, rtol=1e-5, atol=1e-6), (
        f"{context}: ardiff's directional derivative {analytic!r} != finite differences "
        f"{numeric!r}")


@given(random_programs(min_nodes=30, max_nodes=60))
def test_fuzz_random_programs(drawn):
    program, args = drawn
    argnum = tuple(range(len(args)))
    value, reference = ardiff.value_and_grad(program, argnum, method="backprop")(*args)
    assert np.isfinite(value)
    for options in RELAX_SETTINGS:
        got = relaxed(lambda **o: ardiff.grad(program, argnum, **o)(*args), options)
        assert_matches(got, reference, f"relax {options}")

    rng = np.random.default_rng(len(program.source))
    directions = [rng.standard_normal(np.shape(a)) for a in args]

    def evaluate(t):
        shifted = [np.asarray(a, dtype=np.float64) + t * d for a, d in zip(args, directions)]
        return float(program(*shifted))

    check_against_finite_differences(reference, directions, evaluate, "backprop")


def _rebuild(source: str, shifts: dict):
    """Re-run a drawn graph's building code with its inputs moved by ``shifts[name]``."""
    def shifted_input(graph, value, name):
        return graph.input(np.asarray(value, dtype=np.float64) + shifts.get(name, 0.0), name=name)

    namespace = {"_shifted_input": shifted_input}
    code = re.sub(r"\bg\.input\(", "_shifted_input(g, ", source)
    with np.errstate(all="ignore"):
        exec(code, namespace)
    return float(namespace["out"].value)


@given(random_graphs(min_nodes=30, max_nodes=60))
def test_fuzz_random_graphs(drawn):
    g, out, wrt = drawn
    reference = ardiff.backprop(g, out, wrt).grads
    for options in RELAX_SETTINGS:
        result = relaxed(lambda **o: ardiff.relax(g, out, wrt, **o), options)
        assert_matches(result.grads, reference, f"relax {options}")

    rng = np.random.default_rng(len(g))
    directions = [rng.standard_normal(w.shape) for w in wrt]
    names = [w.node.name for w in wrt]
    assert _rebuild(drawn.source, {}) == out.value  # the source rebuilds this very graph
    check_against_finite_differences(
        reference, directions,
        lambda t: _rebuild(drawn.source, {n: t * d for n, d in zip(names, directions)}),
        "backprop")
