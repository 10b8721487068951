"""The NumPy surface, classified (issue 20, point 1): every public function of `numpy`,
`numpy.linalg` and `numpy.fft`, called on traced float input, either matches central
finite differences, is refused with a `TracingError` that names it, returns plain values
for a listed reason, or is skipped because NumPy itself rejects the call.  The survey and
its classification live in tests/numpy_surface.py (`python tools/numpy_surface.py` prints
the counts table).
"""

from __future__ import annotations

import types
import warnings

import numpy as np
import numpy_surface
import pytest
from numpy_surface import (
    IDX,
    NOT_CALLED,
    NOT_DISPATCHED,
    PIECEWISE_CONSTANT,
    SPECIAL_CASES,
    X0,
    Case,
    classify,
    format_table,
    survey,
)

import ardiff
import ardiff.numpy as anp


@pytest.fixture(scope="module")
def outcomes():
    return survey()


def test_no_silent_defects(outcomes):
    """Every call is matched, refused, plain for a listed reason, or skipped: a gradient
    that disagrees with finite differences, a plain float result that depends smoothly on
    the traced argument, or an error other than TracingError where NumPy succeeds fails."""
    print("\n" + format_table(outcomes))
    defects = [f"{o.case.label}: {o.reason}" for o in outcomes if o.kind == "defect"]
    assert not defects, "\n".join(defects)


def test_the_survey_reaches_the_surface(outcomes):
    """The survey is not vacuous: hundreds of calls match finite differences, in all three
    modules and through the ardiff.numpy namespace."""
    matched = [o for o in outcomes if o.kind == "matched"]
    assert len(matched) > 800
    modules = {o.case.module for o in matched}
    assert {"np", "np.linalg", "np.fft", "anp", "anp.linalg", "anp.fft"} <= modules
    assert sum(o.kind == "refused" for o in outcomes) > 50


#: The patterns of issue 20 that returned silent zero gradients: each must now match.
ISSUE_PATTERNS = [
    ("copysign", "copysign(x, c)"), ("copysign", "copysign(-x, c)"),
    ("bincount", "bincount(idx, weights=x)"),
    ("histogram", "histogram(c, weights=x)"), ("histogram", "histogram(x, density=True)"),
    ("histogram", "histogram(x)"), ("histogram", "histogram(c, bins=3, weights=x, density=True)"),
    ("histogram", "histogram(c, range=(-0.5, 1), weights=x)"),
    ("histogram", "histogram(x, bins='auto')"),
    ("histogram_bin_edges", "histogram_bin_edges(x)"),
    ("histogram2d", "histogram2d(x, c)"), ("histogram2d", "histogram2d(c, x)"),
    ("histogram2d", "histogram2d(c, c, weights=x)"),
    ("histogram2d", "histogram2d(x, c, density=True)"),
    ("histogramdd", "histogramdd(M)"), ("histogramdd", "histogramdd(c-sample, weights=x)"),
    ("histogramdd", "histogramdd(M, density=True)"),
    ("unique", "unique(x)"), ("unique", "unique(repeated x)"), ("unique", "unique(M, axis=0)"),
    ("gradient", "gradient(c, x)"), ("gradient", "gradient(x, x)"),
    ("gradient", "gradient(c, x, edge_order=2)"), ("gradient", "gradient(c, dx=x[0])"),
    ("cond", "cond(M)"), ("cond", "cond(M, 1)"), ("cond", "cond(M, 'fro')"),
    ("cond", "cond(M, -2)"),
]


@pytest.mark.parametrize("name, signature", ISSUE_PATTERNS)
def test_issue_patterns_have_gradients(outcomes, name, signature):
    found = [o for o in outcomes if o.case.name == name and o.case.signature == signature]
    assert {o.case.module.lstrip("a") for o in found} in ({"np"}, {"np.linalg"}), found
    assert len(found) == 2  # through NumPy's dispatch and through ardiff.numpy
    assert all(o.kind == "matched" for o in found), [(o.kind, o.reason) for o in found]


def test_every_special_pattern_is_called():
    for name, patterns in SPECIAL_CASES.items():
        for signature, _, _ in patterns:
            assert any(c.signature == signature for c in numpy_surface.cases()
                       if c.name == name), (name, signature)


def test_lists_hold_only_what_the_survey_meets(outcomes):
    """Every function of PIECEWISE_CONSTANT has a plain float output that changes with x
    (and zero finite-difference derivative, or the survey reports a defect): the list
    cannot keep stale entries."""
    plain_varying = {o.case.name for o in outcomes
                     if o.kind in ("plain", "matched") and o.case.name in PIECEWISE_CONSTANT}
    assert plain_varying == set(PIECEWISE_CONSTANT)
    met = {o.case.name for o in outcomes if o.kind == "not dispatched"}
    assert met <= set(NOT_DISPATCHED) and len(met) >= 4  # some entries: one NumPy version
    assert {o.case.name for o in outcomes if o.reason in NOT_CALLED.values()} == \
        {n for n in NOT_CALLED if callable(getattr(np, n, None))}


# -- the classifier catches what it must ----------------------------------------------------
def _fake(monkeypatch, fun, numpy_fun=None):
    """A module `fake` holding `fun` as `f`, and `np`'s stand-in `fake` too (NumPy's
    behaviour, `numpy_fun`, defaults to `fun` on plain values)."""
    module = types.SimpleNamespace(f=fun)
    plain_module = types.SimpleNamespace(f=numpy_fun or fun)
    monkeypatch.setitem(numpy_surface._MODULES, "afake", module)
    monkeypatch.setitem(numpy_surface._MODULES, "fake", plain_module)
    return Case("afake", "f", "f(x)", lambda f, t: f(t), X0)


def _detached_sin(x):
    return np.sin(x.value if isinstance(x, ardiff.Tracer) else x)


def test_a_silent_zero_gradient_is_a_defect(monkeypatch):
    outcome = classify(_fake(monkeypatch, _detached_sin))
    assert outcome.kind == "defect" and "plain" in outcome.reason


def test_listing_a_smooth_function_as_piecewise_constant_does_not_hide_it(monkeypatch):
    monkeypatch.setitem(PIECEWISE_CONSTANT, "f", "claimed")
    outcome = classify(_fake(monkeypatch, _detached_sin))
    assert outcome.kind == "defect" and "finite-difference" in outcome.reason


def test_a_wrong_gradient_is_a_defect(monkeypatch):
    def half_wrong(x):  # x * x with the gradient of one factor only
        return x * (x.value if isinstance(x, ardiff.Tracer) else x)
    outcome = classify(_fake(monkeypatch, half_wrong))
    assert outcome.kind == "defect" and "gradient" in outcome.reason


def test_wrong_forward_values_are_a_defect(monkeypatch):
    outcome = classify(_fake(monkeypatch, lambda x: anp.sin(x) + 1e-6, np.sin))
    assert outcome.kind == "defect" and "forward" in outcome.reason


def test_an_error_numpy_does_not_raise_is_a_defect(monkeypatch):
    def raises(x):
        if isinstance(x, ardiff.Tracer):
            raise ValueError("unsupported")
        return np.sin(x)
    outcome = classify(_fake(monkeypatch, raises))
    assert outcome.kind == "defect" and "ValueError" in outcome.reason


def test_a_refusal_must_name_the_function(monkeypatch):
    def refuses(x, message):
        if isinstance(x, ardiff.Tracer):
            raise ardiff.TracingError(message)
        return np.sin(x)
    case = _fake(monkeypatch, lambda x: refuses(x, "no. Use something else."))
    assert classify(case).kind == "defect"
    case = _fake(monkeypatch, lambda x: refuses(x, "f is not supported. Use g instead."))
    assert classify(case).kind == "refused"


def test_an_integer_result_stays_plain_and_a_plain_numpy_error_skips(monkeypatch):
    assert classify(_fake(monkeypatch, lambda x: np.argsort(x))).reason == "integer or boolean"
    assert classify(_fake(monkeypatch, lambda x: np.reshape(x, (7,)))).kind == "skipped"


# -- the new gradients at higher order and under compile -------------------------------------
def _finite_differences(f, x, h=1e-5):
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[i] = h
        g[i] = (f(x + e) - f(x - e)) / (2 * h)
    return g


@pytest.mark.parametrize("fun", [
    lambda x: np.sum(np.copysign(x, [1.0, -1.0, 2.0, -3.0, 0.5]) ** 3),
    lambda x: np.sum(np.bincount(IDX, weights=x ** 3) ** 2),
    lambda x: np.sum(np.unique(x) ** 3 * np.arange(5.0)),
    lambda x: np.sum(np.gradient(np.sin(x), x) ** 2),
    lambda x: np.sum(np.histogram(x, bins=3, density=True)[0] ** 2),
    lambda x: np.linalg.cond(np.reshape(np.concatenate([x, x[:4] ** 2]), (3, 3)) + 3 * np.eye(3)),
], ids=["copysign", "bincount", "unique", "gradient", "histogram", "cond"])
def test_second_derivatives(fun):
    """Composed from traced ops, the new gradients differentiate again: the Hessian's
    product with a vector equals finite differences of the gradient."""
    v = np.array([0.3, -0.2, 0.5, 0.1, -0.4])
    gradient = ardiff.grad(fun)
    hvp = ardiff.grad(lambda x: np.sum(gradient(x) * v))(X0)
    expected = _finite_differences(lambda x: np.sum(gradient(x) * v), X0)
    np.testing.assert_allclose(hvp, expected, rtol=1e-4, atol=1e-6)


def test_compiled_histogram_retraces_when_the_bins_change():
    """Which bin each sample falls in is read as a guard: a compiled replay on data whose
    binning differs re-traces instead of replaying the first trace's bins."""
    weights = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    w = np.random.default_rng(3).standard_normal(4)

    def f(x):
        counts, edges = np.histogram(x, bins=4, weights=weights * x)
        return np.sum(counts * w) + np.sum(edges * edges)

    compiled = ardiff.compile(f)
    points = (X0, np.array([0.93, 0.12, 0.47, 0.21, 0.35]),
              np.array([0.11, 0.24, 0.36, 0.41, 1.53]))
    with warnings.catch_warnings():  # a guard re-traces: no fall-back warning either
        warnings.simplefilter("error")
        for x in points:
            np.testing.assert_allclose(compiled(x), _finite_differences(f, x, 1e-7),
                                       rtol=1e-5, atol=1e-6)
