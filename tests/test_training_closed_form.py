"""Training with the relaxation in closed form gives the numbers of explicit stepping.

`ardiff.nn.relaxation()` and every AR condition of `ardiff reproduce` compute the state
after T steps in closed form (D sweeps).  The independent truth here is the same
relaxation stepped explicitly T times (`closed_form=False`, a different code path: T
sweeps of the leaky-integrator update), on one training batch of the paper's MLP
784-300-300-100-10 at the paper's settings (eta 0.1, T = 100, forward start, batch 64),
for every rule of the paper and both schedules.  Backprop is a further check that the
state is a real 100-step state (still off the fixed point), not the fixed point itself.
"""

import dataclasses

import numpy as np
import pytest

from ardiff import nn
from ardiff.paper.conditions import CONDITIONS
from ardiff.paper.training import TrainingConfig

AR_CONDITIONS = [name for name in CONDITIONS if name != "backprop"]
SIZES = (784, 300, 300, 100, 10)


@pytest.fixture(scope="module")
def batch():
    rng = np.random.default_rng(12)
    x = rng.uniform(0.0, 1.0, (64, SIZES[0]))
    return x, nn.one_hot(rng.integers(0, SIZES[-1], 64), SIZES[-1])


def _relative(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return np.linalg.norm(a - b) / np.linalg.norm(b)


@pytest.mark.parametrize("schedule", ["parallel", "sequential"])
@pytest.mark.parametrize("name", AR_CONDITIONS)
def test_one_batch_closed_form_equals_stepping(batch, name, schedule):
    x, t = batch
    model = nn.MLP(SIZES, init_std=0.05, seed=4)
    closed = CONDITIONS[name].method(seed=7, schedule=schedule)
    stepped = CONDITIONS[name].method(seed=7, schedule=schedule, closed_form=False)
    assert closed.closed_form and not stepped.closed_form
    a = nn.batch_gradients(model, x, t, "sse", closed)
    b = nn.batch_gradients(model, x, t, "sse", stepped)
    # the closed form made at most D = 3 sweeps (hidden layers relax, output clamped)
    assert a.result.sweeps <= 3
    assert b.result.iterations == 100
    for g, h in zip(a.grads, b.grads):
        assert _relative(g, h) < 1e-10
    if name == "ar":
        # T = 100 at eta 0.1 has not converged on the first layer (Fig. 1): the state is
        # the 100-step one, measurably different from backprop's gradient
        exact = nn.batch_gradients(model, x, t, "sse", nn.backprop_method())
        assert _relative(a.grads[0], exact.grads[0]) > 1e-4


def test_default_methods_use_the_closed_form():
    assert nn.relaxation().closed_form
    assert TrainingConfig().closed_form
    for name in AR_CONDITIONS:
        assert CONDITIONS[name].method(seed=0).closed_form
    stepped = dataclasses.replace(nn.relaxation(), closed_form=False)
    assert stepped.describe()["closed_form"] is False


def test_training_closed_form_equals_stepping_over_batches():
    # a few SGD steps (the second batch's gradients depend on the first update), with
    # learned feedback, whose backward matrices also learn from each update
    rng = np.random.default_rng(3)
    sizes = (20, 16, 12, 5)
    x = rng.uniform(0.0, 1.0, (48, sizes[0]))
    y = rng.integers(0, sizes[-1], 48)
    weights = []
    for closed_form in (True, False):
        model = nn.MLP(sizes, init_std=0.2, seed=1)
        method = CONDITIONS["learned-feedback"].method(seed=2, closed_form=closed_form)
        nn.train(model, (x, y), method=method, epochs=2, batch_size=16, seed=5,
                 optimizer=nn.SGD(lr=0.05))
        weights.append([np.array(p) for p in model.parameters()])
    for a, b in zip(*weights):
        assert _relative(a, b) < 1e-10
