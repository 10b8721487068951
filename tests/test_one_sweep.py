"""One predicate decides "this solve is exactly one top-down sweep" (issue 22).

`SolverOptions.one_sweep` is read by `grad` (its Result-free sweep), by
`run_relaxation` (its fast path) and by `ardiff.compile` (whether the generated code
holds the reverse sweep).  The tests flip the property and watch all three follow,
and check its answers against the relaxation's mathematics: where it says yes the
first sweep already equals backprop's gradient; where it says no, one step does not.
"""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest

import ardiff
import ardiff.numpy as anp
from ardiff import compiled as compiled_module
from ardiff import transforms
from ardiff.rules import NoDerivative
from ardiff.solvers import SolverOptions
from ardiff.solvers import relaxation as relaxation_module


def chain(w, x):
    """Depth 4: one step of a parallel or under-relaxed schedule cannot be exact."""
    h = anp.tanh(w * x)
    h = anp.tanh(w * h)
    h = anp.sin(h * h)
    return anp.sum(h * h)


W, X = np.array([0.7, -1.3, 0.4]), np.array([0.5, 0.25, -2.0])

OPTIONS = [dict(zip(("method", "schedule", "eta", "record", "units", "closed_form"), v))
           for v in itertools.product(("relax", "backprop"), ("sequential", "parallel"),
                                      (1.0, 0.5), (False, True), ("ops", "layers"),
                                      (False, True))]


def solver_options(keywords: dict) -> SolverOptions:
    if keywords["method"] == "backprop":
        return SolverOptions(method="backprop")
    return SolverOptions(**keywords)


def backprop_gradient():
    return ardiff.grad(chain, method="backprop")(W, X)


@pytest.mark.parametrize("keywords", OPTIONS, ids=str)
def test_the_predicate_is_the_mathematics(keywords):
    """Yes exactly for backprop and the sequential schedule at eta = 1 without a
    recording: one step of that schedule from zeros equals the exact gradient (a
    reference written here: the chain rule by hand), and a parallel or eta != 1 step
    does not."""
    options = solver_options(keywords)
    expected = keywords["method"] == "backprop" or (
        keywords["schedule"] == "sequential" and keywords["eta"] == 1.0
        and not keywords["record"])
    assert options.one_sweep is expected
    # op units: depth 4, so one step of any other schedule misses the deeper nodes
    if keywords["method"] == "relax" and not keywords["record"] \
            and not keywords["closed_form"] and keywords["units"] == "ops":
        one_step = ardiff.grad(chain, schedule=keywords["schedule"], eta=keywords["eta"],
                               max_iter=1, tol=0.0)
        with warnings.catch_warnings():
            # one step of the other schedules warns that it does not reach (ReachWarning):
            # compute it anyway, since its value is what this test compares
            warnings.simplefilter("ignore", ardiff.ConvergenceWarning)
            got = one_step(W, X)
        exact = np.allclose(got, chain_rule_by_hand(W, X), rtol=1e-12, atol=0)
        assert exact is expected


def chain_rule_by_hand(w, x):
    a = np.tanh(w * x)
    b = np.tanh(w * a)
    c = np.sin(b * b)
    dc = 2 * c
    db = dc * np.cos(b * b) * 2 * b
    da = db * (1 - b * b) * w
    return db * (1 - b * b) * a + da * (1 - a * a) * x


def test_the_reference_is_the_gradient():
    np.testing.assert_allclose(chain_rule_by_hand(W, X), backprop_gradient(), rtol=1e-13)


class Spy:
    """Counts the calls of `grad`'s Result-free sweep and the plans given to the
    compiled replay (None: no generated reverse sweep)."""

    def __init__(self, monkeypatch):
        self.sweeps = 0
        self.replay_plans = []
        sweep = transforms.sweep_gradients
        replay = compiled_module.Replay

        def counted(*args, **kwargs):
            self.sweeps += 1
            return sweep(*args, **kwargs)

        spy = self

        class Recorded(replay):
            def __init__(self, graph, inputs, plan):
                spy.replay_plans.append(plan)
                super().__init__(graph, inputs, plan)

        monkeypatch.setattr(transforms, "sweep_gradients", counted)
        monkeypatch.setattr(compiled_module, "Replay", Recorded)


@pytest.mark.parametrize("flip_to", [False, True])
def test_every_consumer_follows_the_one_predicate(monkeypatch, flip_to):
    """Flip `SolverOptions.one_sweep` and the three former deciders all follow it:
    grad's sweep runs or not, run_relaxation takes one sweep or steps, compile
    generates the reverse sweep or not.  Options chosen so that the real predicate
    says the opposite of `flip_to`."""
    keywords = (dict(schedule="sequential", eta=1.0) if not flip_to
                else dict(schedule="parallel", eta=0.5, max_iter=50, tol=0.0))
    assert SolverOptions(**keywords).one_sweep is not flip_to
    monkeypatch.setattr(SolverOptions, "one_sweep", property(lambda self: flip_to))
    spy = Spy(monkeypatch)
    ardiff.grad(chain, **keywords)(W, X)
    assert spy.sweeps == (1 if flip_to else 0)
    compiled = ardiff.compile(chain, **keywords)
    compiled(W, X)
    compiled(W * 1.5, X)
    assert spy.replay_plans and all((plan is not None) is flip_to
                                    for plan in spy.replay_plans)
    graph, out, wrt = traced_chain()
    fast_sweeps = []  # run_relaxation calls `sweep` itself only on its fast path
    sweep = relaxation_module.sweep
    monkeypatch.setattr(relaxation_module, "sweep",
                        lambda *args: fast_sweeps.append(1) or sweep(*args))
    result = ardiff.relax(graph, out, wrt, **keywords)
    assert len(fast_sweeps) == (1 if flip_to else 0)
    if flip_to:  # one sweep is exact
        assert result.iterations == 1
        np.testing.assert_allclose(result.grads[0], chain_rule_by_hand(W, X), rtol=1e-12)


def traced_chain():
    graph = ardiff.Graph()
    w = graph.input(W, name="w")
    return graph, chain(w, X), [w]


@pytest.mark.parametrize("keywords", [dict(units="layers"), dict(closed_form=True),
                                      dict(rules=[NoDerivative()])], ids=str)
def test_one_sweep_options_beyond_the_defaults_give_the_exact_gradient(keywords):
    """Where the three deciders used to disagree (layer units, the closed form, local
    rules at the sequential schedule and eta = 1): grad, compile and relax now agree;
    without rules the answer is the exact gradient."""
    grad = ardiff.grad(chain, **keywords)(W, X)
    compiled = ardiff.compile(chain, **keywords)
    first, replayed = compiled(W, X), compiled(W, X)
    np.testing.assert_array_equal(first, replayed)
    np.testing.assert_allclose(first, grad, rtol=1e-13, atol=0)
    if "rules" not in keywords:
        np.testing.assert_allclose(grad, chain_rule_by_hand(W, X), rtol=1e-13)
