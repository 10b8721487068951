"""SolverOptions (ardiff/solvers/options.py): defaults, precedence, normalisation, refusals.

The expected values are the documented ones (docs/api.md's option table, the paper's
protocol of ../shared/design.md), written here; every refusal is checked by its whole
message, since the message is what a user reads.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from ardiff.solvers.options import (
    INITS,
    METHODS,
    PRESETS,
    RELAX_OPTIONS,
    SCHEDULES,
    UNIT_CHOICES,
    SolverOptions,
)


def exactly(message: str) -> str:
    return "^" + re.escape(message) + "$"


def test_library_defaults():
    o = SolverOptions()
    assert (o.method, o.eta, o.schedule, o.init, o.tol, o.max_iter, o.record, o.closed_form,
            o.time, o.units, o.rules) == ("relax", 1.0, "sequential", "zeros", 1e-12, None,
                                          False, False, None, "ops", ())
    assert SolverOptions.from_keywords() == o


def test_the_paper_preset_is_the_papers_protocol():
    assert PRESETS == {"paper": dict(schedule="parallel", eta=0.1, max_iter=100,
                                     init="forward", tol=0.0, closed_form=True,
                                     units="layers")}
    o = SolverOptions.from_keywords(preset="paper")
    assert (o.schedule, o.eta, o.max_iter, o.init, o.tol, o.closed_form, o.units) == (
        "parallel", 0.1, 100, "forward", 0.0, True, "layers")


def test_explicit_keywords_win_over_the_preset_and_none_counts_as_not_given():
    o = SolverOptions.from_keywords(preset="paper", eta=0.5, max_iter=None, units=None)
    assert (o.eta, o.max_iter, o.units, o.schedule) == (0.5, 100, "layers", "parallel")
    o = SolverOptions.from_keywords(eta=None, schedule="parallel")
    assert (o.eta, o.schedule) == (1.0, "parallel")


def test_names():
    assert METHODS == ("backprop", "relax", "triangular")
    assert SCHEDULES == ("sequential", "parallel", "continuous")
    assert INITS == ("zeros", "forward")
    assert UNIT_CHOICES == ("ops", "layers")
    assert RELAX_OPTIONS == ("eta", "schedule", "init", "tol", "max_iter", "record",
                             "closed_form", "time", "units")


def test_normalised_types():
    o = SolverOptions(eta=np.float32(0.5), tol=0, max_iter=np.int64(7), rules=[1, 2])
    assert type(o.eta) is float and o.eta == 0.5
    assert type(o.tol) is float and o.tol == 0.0
    assert type(o.max_iter) is int and o.max_iter == 7
    assert o.rules == (1, 2)
    assert SolverOptions(units=["a", "b"]).units == ("a", "b")
    assert SolverOptions(units={3}).units == (3,)
    assert SolverOptions(closed_form=1).closed_form is True
    assert SolverOptions(rules=None).rules == ()


def test_continuous_time_implies_the_closed_form():
    o = SolverOptions(schedule="continuous", time=2)
    assert o.closed_form is True and o.time == 2.0 and type(o.time) is float
    assert SolverOptions(schedule="continuous", time=[0, 1.5]).time == (0.0, 1.5)
    assert SolverOptions(schedule="continuous", time=0.0).time == 0.0
    # Python ints of any size are times too (read as float64)
    assert SolverOptions(schedule="continuous", time=[0, 2 ** 70]).time == (0.0, 2.0 ** 70)
    assert SolverOptions(schedule="parallel").closed_form is False


@pytest.mark.parametrize("eta", [0.0, 2.0, -1.0, float("nan"), float("inf"), 2.5])
def test_eta_outside_the_stable_range(eta):
    message = (f"eta={eta!r} is outside (0, 2). The Euler step of the relaxation dynamics has "
               "iteration matrix (1-eta)I + eta*N whose eigenvalues are all 1-eta, so it "
               "only converges for 0 < eta < 2 (eta = 1 is exact fastest).")
    with pytest.raises(ValueError, match=exactly(message)):
        SolverOptions(eta=eta)


def test_eta_just_inside_the_range():
    assert SolverOptions(eta=1e-9).eta == 1e-9 and SolverOptions(eta=1.999).eta == 1.999


def test_eta_of_the_wrong_type():
    with pytest.raises(TypeError, match=exactly("eta must be a real number, got 'fast'")):
        SolverOptions(eta="fast")
    with pytest.raises(TypeError, match=exactly("eta must be a real number, got None")):
        SolverOptions(eta=None)


def test_unknown_names():
    with pytest.raises(ValueError, match=exactly(
            "schedule must be one of ('sequential', 'parallel', 'continuous'), got 'jacobi'")):
        SolverOptions(schedule="jacobi")
    with pytest.raises(ValueError, match=exactly(
            "init must be one of ('zeros', 'forward'), got 'ones'")):
        SolverOptions(init="ones")
    with pytest.raises(ValueError, match=exactly(
            "Unknown method 'adjoint'; available: ['backprop', 'relax', 'triangular']")):
        SolverOptions(method="adjoint")
    with pytest.raises(ValueError, match=exactly(
            "Unknown preset 'fast'; available: ['paper']")):
        SolverOptions.from_keywords(preset="fast")


@pytest.mark.parametrize("tol", [-1e-9, float("nan"), float("inf"), "1e-6", None])
def test_bad_tol(tol):
    with pytest.raises(ValueError, match=exactly(f"tol must be a finite number >= 0, got {tol!r}")):
        SolverOptions(tol=tol)


def test_tol_accepts_numpy_floats_and_zero():
    assert SolverOptions(tol=np.float32(1e-6)).tol == pytest.approx(1e-6)
    assert SolverOptions(tol=0).tol == 0.0


@pytest.mark.parametrize("max_iter", [True, 2.0, "3"])
def test_max_iter_of_the_wrong_type(max_iter):
    with pytest.raises(TypeError, match=exactly(
            f"max_iter must be a positive integer or None, got {max_iter!r}")):
        SolverOptions(max_iter=max_iter)


@pytest.mark.parametrize("max_iter", [0, -3])
def test_max_iter_below_one(max_iter):
    with pytest.raises(ValueError, match=exactly(f"max_iter must be at least 1, got {max_iter}")):
        SolverOptions(max_iter=max_iter)
    assert SolverOptions(max_iter=1).max_iter == 1


def test_units_refusals():
    with pytest.raises(ValueError, match=exactly(
            "units must be one of ('ops', 'layers') or a list of nodes (traced values, nodes, "
            "indices or names), got 'layer'")):
        SolverOptions(units="layer")
    with pytest.raises(TypeError, match=exactly(
            "units must be one of ('ops', 'layers') or a list of nodes, got int")):
        SolverOptions(units=3)


def test_rules_need_the_relaxation():
    message = "rules= change the relaxation dynamics and need method='relax'."
    with pytest.raises(ValueError, match=exactly(message)):
        SolverOptions(method="backprop", rules=("r",))
    with pytest.raises(ValueError, match=exactly(message)):
        SolverOptions.from_keywords(method="triangular", rules=["r"])
    assert SolverOptions(method="backprop", rules=()).rules == ()


def test_keywords_of_the_exact_solvers():
    with pytest.raises(TypeError, match=exactly(
            "Unknown option(s) ['eta'] for method='backprop'; allowed: none.")):
        SolverOptions.from_keywords(method="backprop", eta=0.5)
    with pytest.raises(TypeError, match=exactly(
            "Unknown option(s) ['speed'] for method='relax'; allowed: ['closed_form', "
            "'eta', 'init', 'max_iter', 'record', 'schedule', 'time', 'tol', 'units'].")):
        SolverOptions.from_keywords(speed=2)
    with pytest.raises(ValueError, match=exactly(
            "preset='paper' sets relaxation options and needs method='relax'.")):
        SolverOptions.from_keywords(method="backprop", preset="paper")
    # the method is checked before the keywords, which depend on it
    with pytest.raises(ValueError, match="Unknown method"):
        SolverOptions.from_keywords(method="nope", speed=2)
    assert SolverOptions.from_keywords(method="triangular").method == "triangular"


def test_time_refusals():
    with pytest.raises(ValueError, match=exactly(
            "time= is the time of the continuous flow; it needs schedule='continuous' (the "
            "discrete schedules count steps with max_iter).")):
        SolverOptions(time=1.0)
    with pytest.raises(ValueError, match=exactly(
            "schedule='continuous' needs time= (a time t >= 0, or increasing times to "
            "record).")):
        SolverOptions(schedule="continuous")
    for bad in (-1.0, [1.0, 1.0], [2.0, 1.0], [], [[1.0]], float("nan"), [0.5, float("inf")]):
        with pytest.raises(ValueError, match=exactly(
                f"time must be a finite t >= 0 or increasing such times, got {bad!r}")):
            SolverOptions(schedule="continuous", time=bad)


def test_options_are_frozen():
    with pytest.raises(AttributeError):
        SolverOptions().eta = 0.5


def test_max_iter_reach_is_validated_word_for_word():
    """max_iter='reach' needs a tolerance and discrete steps; each refusal in full."""
    assert SolverOptions(max_iter="reach", tol=1e-3).max_iter == "reach"
    assert SolverOptions(max_iter="reach", tol=2.0).tol == 2.0  # any tol > 0
    with pytest.raises(ValueError) as refused:
        SolverOptions(max_iter="reach", tol=1e-3, schedule="continuous", time=1.0)
    assert str(refused.value) == ("max_iter='reach' chooses a number of steps; "
                                  "schedule='continuous' takes time= instead.")
    for tol in (0, 0.0):
        with pytest.raises(ValueError) as refused:
            SolverOptions(max_iter="reach", tol=tol)
        assert str(refused.value) == (
            "max_iter='reach' picks the smallest T whose remaining fraction at the deepest "
            f"unit is at most tol, so it needs tol > 0 (e.g. tol=1e-3); got tol={tol!r}.")
