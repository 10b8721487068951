"""ardiff.compile never returns a stale gradient (issue 20, point 2).

A replay reuses what the first trace read besides the arguments.  Each test below
changes one kind of such state between calls (random draws, a generator, a global
array rebound or changed in place, a closure cell, an attribute of `self`, ...) and
checks every call against `ardiff.grad` on the same inputs and the same state (or a
closed form).  On the code before the issue each of them returned the first call's
gradient on later calls.  A last group checks that a function without such state
still replays (the detection is not "always trace again").
"""

import collections
import functools
import random
import types
import warnings

import numpy as np
import pytest

import ardiff
import ardiff.numpy as anp
from ardiff.compiled import NotReplayableWarning

X = np.array([1.0, 2.0, 3.0, 4.0])


def _no_fallback_warning(record):
    return [w for w in record if issubclass(w.category, NotReplayableWarning)]


def _calls(compiled, fun, points, before=None, after=None, argnum=0):
    """Call `compiled` and `grad(fun)` at each point (`before(k)` sets the state for
    call k, `after` restores what the compiled call consumed); return the pairs."""
    pairs = []
    for k, args in enumerate(points):
        if before is not None:
            before(k)
        saved = after() if after is not None else None
        got = compiled(*args)
        if saved is not None:
            saved()
        want = ardiff.grad(fun, argnum=argnum)(*args)
        pairs.append((got, want))
    return pairs


def _assert_fresh(pairs):
    for k, (got, want) in enumerate(pairs):
        np.testing.assert_array_equal(got, want, err_msg=f"call {k + 1}")


# -- 1. draws from np.random's global state --------------------------------------------------
def _global_state():
    state = np.random.get_state()
    return lambda: np.random.set_state(state)


@pytest.mark.parametrize("draw", [lambda: np.random.rand(4) > 0.5,
                                  lambda: np.random.randn(4) > 0.0,
                                  lambda: np.random.binomial(1, 0.5, 4)],
                         ids=["rand", "randn", "binomial"])
def test_dropout_mask_from_np_random_is_drawn_on_every_call(draw):
    def dropout(x):
        mask = draw()
        return anp.sum((x * mask) ** 2)

    np.random.seed(3)
    compiled = ardiff.compile(dropout)
    with pytest.warns(NotReplayableWarning, match=r"dropout.*np\.random.*argument") as record:
        pairs = _calls(compiled, dropout, [(X,)] * 4, after=_global_state)
        _assert_fresh(pairs)  # checked first: a stale gradient fails whatever was warned
    assert len(_no_fallback_warning(record)) == 1  # warned once
    # the masks differed, so a replay of the first call would have been wrong
    assert any(not np.array_equal(pairs[0][1], want) for _, want in pairs[1:])
    assert compiled.replays == 0 and compiled.not_replayable


def test_pythons_random_module_is_detected_too():
    def noisy(x):
        return anp.sum(x ** 2) * random.random()

    random.seed(1)
    compiled = ardiff.compile(noisy)

    def keep():
        state = random.getstate()
        return lambda: random.setstate(state)
    with pytest.warns(NotReplayableWarning, match="random"):
        pairs = _calls(compiled, noisy, [(X,)] * 4, after=keep)
        _assert_fresh(pairs)
    assert not np.array_equal(pairs[0][1], pairs[1][1])


# -- 2. noise from a Generator (or RandomState) reached from globals, cells, arguments ----
_GLOBAL_RNG = np.random.default_rng(0)


def _with_global_rng(x):
    return anp.sum(x ** 2 * _GLOBAL_RNG.normal(size=4))


def _rng_case(where, kind):
    """The function, its arguments and the generator, for each place it is reached from."""
    rng = np.random.default_rng(5) if kind == "Generator" else np.random.RandomState(5)
    if where == "global":
        globals()["_GLOBAL_RNG"] = rng
        return _with_global_rng, (X,), rng
    if where == "closure":
        def in_cell(x):
            return anp.sum(x ** 2 * rng.normal(size=4))
        return in_cell, (X,), rng
    if where == "argument":
        def as_argument(x, gen):
            return anp.sum(x ** 2 * gen.normal(size=4))
        return as_argument, (X, rng), rng
    holder = types.SimpleNamespace(rng=rng)  # an attribute of an object in a cell

    def via_object(x):
        return anp.sum(x ** 2 * holder.rng.normal(size=4))
    return via_object, (X,), rng


@pytest.mark.parametrize("kind", ["Generator", "RandomState"])
@pytest.mark.parametrize("where", ["global", "closure", "argument", "object"])
def test_noise_from_a_generator_is_drawn_on_every_call(where, kind):
    fun, args, rng = _rng_case(where, kind)
    compiled = ardiff.compile(fun)

    def keep():
        if kind == "Generator":
            state = rng.bit_generator.state
            return lambda: setattr(rng.bit_generator, "state", state)
        state = rng.get_state()
        return lambda: rng.set_state(state)
    with pytest.warns(NotReplayableWarning, match=kind) as record:
        pairs = _calls(compiled, fun, [args] * 4, after=keep)
        _assert_fresh(pairs)
    assert len(_no_fallback_warning(record)) == 1
    assert not np.array_equal(pairs[0][1], pairs[3][1])
    assert compiled.replays == 0


def test_a_generator_made_inside_the_function_is_caught_by_the_second_trace():
    """No state compile can compare before and after: the verifying trace on the first
    replay records other constants and stops replays."""
    def noisy(x):
        return anp.sum(x ** 2 * np.random.default_rng().normal(size=4))

    compiled = ardiff.compile(noisy)
    first = compiled(X)
    with pytest.warns(NotReplayableWarning, match="two traces.*constant argument"):
        second = compiled(X)
        third = compiled(X)
        assert not np.array_equal(first, second)  # fresh noise, not a replay
        assert not np.array_equal(second, third)
    assert compiled.replays == 0 and compiled.verifications == 1


# -- 3, 4. global arrays, rebound or changed in place ----------------------------------------
_W = np.ones(4)
_SETTINGS = {"power": 2.0}


def _global_weights(x):
    return anp.sum(_W * x ** 2)


def _global_exp(x):
    return anp.sum(np.exp(_W) * x ** 2)  # exp(_W) is computed while tracing


_STATES = [1.0, 1.0, 1.0, 2.0, 2.0, 3.0]


def _rebind(k):
    global _W
    if k == 0 or _STATES[k] != _STATES[k - 1]:
        _W = np.full(4, _STATES[k])


def _write(k):
    if k == 0 or _STATES[k] != _STATES[k - 1]:
        _W[:] = _STATES[k]


@pytest.mark.parametrize("fun", [_global_weights, _global_exp])
@pytest.mark.parametrize("change", [_rebind, _write], ids=["rebound", "in-place"])
def test_a_changed_global_array_is_traced_again(fun, change):
    """State 1, 1, 1, 2, 2, 3: a verified replay, plain replays, then changes."""
    global _W
    _W = np.ones(4)
    compiled = ardiff.compile(fun)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        pairs = _calls(compiled, fun, [(X,)] * 6, before=change)
    assert not _no_fallback_warning(record)  # a re-trace, not a fall-back
    _assert_fresh(pairs)
    np.testing.assert_allclose(pairs[5][0], 2 * X * (3.0 if fun is _global_weights
                                                     else np.exp(3.0)))
    assert compiled.traces == 3 and compiled.replays >= 2


def _global_dict(x):
    return anp.sum(x ** _SETTINGS["power"])


def test_a_changed_global_dict_entry_is_traced_again():
    compiled = ardiff.compile(_global_dict)

    def change(k):
        _SETTINGS["power"] = [2.0, 2.0, 3.0, 4.0][k]
    try:
        _assert_fresh(_calls(compiled, _global_dict, [(X,)] * 4, before=change))
    finally:
        _SETTINGS["power"] = 2.0


_PARAMS = collections.namedtuple("Params", "w b")(np.ones(4), np.zeros(4))


def _namedtuple_loss(x):
    return anp.sum((_PARAMS.w * x + np.tanh(_PARAMS.b)) ** 2)  # tanh(b): a constant


def test_an_array_in_a_global_namedtuple_changed_in_place_is_traced_again():
    compiled = ardiff.compile(_namedtuple_loss)

    def change(k):
        if k == 3:
            _PARAMS.b[:] = 1.0
    try:
        _assert_fresh(_calls(compiled, _namedtuple_loss, [(X,)] * 4, before=change))
    finally:
        _PARAMS.b[:] = 0.0
    assert compiled.traces == 2


# -- 5. closure cells ---------------------------------------------------------------------
def test_a_rebound_closure_cell_is_traced_again():
    weights = np.ones(4)
    scale = 1.0

    def loss(x):
        return anp.sum(scale * weights * x ** 2)

    def change(k):
        nonlocal weights, scale
        if k == 2:
            scale = 5.0
        if k == 3:
            weights = np.full(4, 2.0)

    compiled = ardiff.compile(loss)
    pairs = _calls(compiled, loss, [(X,)] * 4, before=change)
    _assert_fresh(pairs)
    np.testing.assert_allclose(pairs[3][0], 2 * X * 2.0 * 5.0)


def test_a_helper_functions_closure_and_a_default_argument_are_watched():
    table = [np.ones(4)]

    def helper(x):
        return table[0] * x

    def loss(x, power=np.array(2.0)):
        return anp.sum(helper(x) ** power)

    compiled = ardiff.compile(loss)
    pairs = []
    for k in range(5):
        if k == 2:
            table[0] = np.full(4, 3.0)  # list item replaced, in a helper's cell
        if k == 4:
            loss.__defaults__[0][...] = 3.0  # a default array written in place
        pairs.append((compiled(X), ardiff.grad(loss)(X)))
    _assert_fresh(pairs)


# -- 6. attributes of self (a bound method) and of other objects -------------------------
class Model:
    def __init__(self):
        self.w = np.ones(4)
        self.scale = 1.0
        self.unused = np.zeros(1000)

    def loss(self, x):
        return anp.sum(self.scale * self._weighted(x) ** 2)

    def _weighted(self, x):
        return self.w * x

    def __call__(self, x):
        return self.loss(x)


@pytest.mark.parametrize("target", ["bound method", "callable object"])
def test_a_changed_attribute_of_self_is_traced_again(target):
    model = Model()
    fun = model.loss if target == "bound method" else model

    def change(k):
        if k == 3:
            model.scale = 2.0  # rebound
        if k == 4:
            model.w[0] = 5.0  # in place, read by a method loss calls
        if k == 5:
            model.w = np.full(4, 0.5)

    compiled = ardiff.compile(fun)
    pairs = _calls(compiled, fun, [(X,)] * 6, before=change)
    _assert_fresh(pairs)
    assert compiled.replays >= 2
    model.unused[0] = 1.0  # an attribute the code never names: still replays
    compiled(X)
    assert compiled.replays >= 3


def test_attributes_of_an_object_in_a_global_or_a_partial_are_watched():
    config = types.SimpleNamespace(scale=1.0)

    def loss(x, offset):
        return anp.sum(config.scale * (x - offset) ** 2)

    part = functools.partial(loss, offset=np.zeros(4))
    compiled = ardiff.compile(part)
    pairs = []
    for k in range(6):
        if k == 3:
            config.scale = 3.0
        if k == 5:
            part.keywords["offset"][:] = 1.0
        pairs.append((compiled(X), ardiff.grad(part)(X)))
    _assert_fresh(pairs)
    np.testing.assert_allclose(pairs[5][0], 2 * 3.0 * (X - 1.0))


def test_an_argument_objects_attributes_are_watched():
    """A non-differentiated object argument is keyed by identity: its attributes are
    state of the replay like self's."""
    model = Model()

    def loss(x, m):
        return anp.sum(m.w * x ** 2)

    compiled = ardiff.compile(loss)
    pairs = []
    for k in range(4):
        if k == 3:
            model.w = np.full(4, 4.0)
        pairs.append((compiled(X, model), ardiff.grad(loss)(X, model)))
    _assert_fresh(pairs)


def test_an_argument_array_changed_after_its_trace_is_not_replayed():
    """The signature keys a non-differentiated array by its bytes, but the recording reads
    the very object of the traced call: a caller that changes it afterwards and passes an
    equal copy of the old bytes must not get a replay on the changed object."""
    def weighted(x, data):
        return anp.sum(x * data)

    compiled = ardiff.compile(weighted)
    data = np.ones(4)
    for _ in range(3):
        compiled(X, data)
    assert compiled.replays == 2
    copy = data.copy()
    data[:] = 5.0
    np.testing.assert_array_equal(compiled(X, copy), ardiff.grad(weighted)(X, copy))
    np.testing.assert_array_equal(compiled(X, data), ardiff.grad(weighted)(X, data))
    assert compiled.not_replayable is None


# -- what the second trace catches ----------------------------------------------------------
def test_state_the_function_changes_itself_stops_replays():
    calls = []

    def counting(x):
        calls.append(1)
        return anp.sum(x ** 2) * len(calls)  # reads what it wrote: not replayable

    compiled = ardiff.compile(counting)
    compiled(X)
    with pytest.warns(NotReplayableWarning, match="two traces"):
        np.testing.assert_allclose(compiled(X), 2 * X * 2)
        np.testing.assert_allclose(compiled(X), 2 * X * 3)


# -- replays still happen ---------------------------------------------------------------------
_DATA = np.linspace(0.0, 1.0, 4)


def test_a_function_with_unchanged_state_replays_without_running_python():
    """Globals, closure cells, self attributes and a seeded generator made inside:
    the Python function runs twice (the trace and the check of the first replay),
    then never again."""
    ran = []
    offset = np.full(4, 0.5)

    class Net:
        def __init__(self):
            self.w = np.arange(4.0)

        def loss(self, x):
            ran.append(1)  # a side effect the recording does not read
            noise = np.random.default_rng(0).normal(size=4)  # seeded: the same draws
            return anp.sum(anp.tanh(self.w * x + offset + _DATA + noise) ** 2)

    net = Net()
    compiled = ardiff.compile(net.loss)
    points = np.random.default_rng(1).standard_normal((6, 4))
    with warnings.catch_warnings():
        warnings.simplefilter("error", NotReplayableWarning)
        got = [compiled(x) for x in points]
    assert len(ran) == 2
    assert compiled.traces == 1 and compiled.verifications == 1 and compiled.replays == 5
    assert compiled.not_replayable is None
    for x, g in zip(points, got):
        np.testing.assert_array_equal(g, ardiff.grad(net.loss)(x))


def test_the_benchmark_workloads_replay(monkeypatch):
    """Closures over a data array (the RNN) and a list of tuples (the wide DAG's spec)."""
    from pathlib import Path
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parent.parent / "benchmarks"))
    from workloads_arrays import rnn_fun, rnn_problem
    from workloads_small import wide_dag_spec, wide_fun

    X_rnn, Wx, Wh = rnn_problem(5)
    compiled = ardiff.compile(rnn_fun(anp, X_rnn), argnum=(0, 1))
    spec = wide_dag_spec(n_nodes=100)
    wide = ardiff.compile(wide_fun(anp, spec))
    xs = [0.1 * k for k in range(20)]
    for _ in range(3):
        compiled(Wx, Wh)
        wide(xs)
    assert compiled.traces == 1 and compiled.replays == 2
    assert wide.traces == 1 and wide.replays == 2
    spec[0] = (1 - spec[0][0] % 2, *spec[0][1:])  # the closure's list changed in place
    want = ardiff.grad(wide_fun(anp, spec))(xs)
    for got, expected in zip(wide(xs), want):
        np.testing.assert_array_equal(got, expected)
    assert wide.traces == 2
