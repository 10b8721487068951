"""ardiff.compile: replays agree with fresh traces, and guards force re-tracing."""

import re
import warnings
from unittest import mock

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ardiff
import ardiff.numpy as anp
from ardiff import codegen
from ardiff.strategies import random_programs


def branchy(x):
    if anp.sum(x) > 0:
        return anp.sum(anp.tanh(x) ** 2)
    return anp.sum(anp.sin(x) * x)


def test_replay_gives_the_fresh_gradient():
    f = ardiff.compile(branchy)
    rng = np.random.default_rng(0)
    first = np.abs(rng.standard_normal(4))
    f(first)
    for _ in range(5):
        x = np.abs(rng.standard_normal(4))
        np.testing.assert_array_equal(f(x), ardiff.grad(branchy)(x))
    assert f.traces == 1 and f.replays == 5


def test_branch_flip_retraces_instead_of_replaying():
    f = ardiff.compile(branchy)
    pos, neg = np.array([1.0, 2.0]), np.array([-1.0, -2.0])
    np.testing.assert_allclose(f(pos), 2 * np.tanh(pos) * (1 - np.tanh(pos) ** 2))
    # same signature, other branch: a replay of the first trace would be wrong
    np.testing.assert_allclose(f(neg), np.cos(neg) * neg + np.sin(neg))
    assert f.traces == 2
    # both branch patterns are now cached
    f(pos)
    f(neg)
    assert f.traces == 2 and f.replays == 2


def test_traced_integer_index_is_a_guard():
    def pick(x):
        i = anp.argmax(x)  # an integer read off a traced value
        return x[i] ** 2

    f = ardiff.compile(pick)
    np.testing.assert_allclose(f(np.array([3.0, 1.0, 2.0])), [6.0, 0.0, 0.0])
    np.testing.assert_allclose(f(np.array([1.0, 5.0, 2.0])), [0.0, 10.0, 0.0])
    assert f.traces == 2


def test_new_shape_or_other_static_argument_retraces():
    def scaled(x, k):
        return anp.sum(x ** 2) * k

    f = ardiff.compile(scaled)
    np.testing.assert_allclose(f(np.ones(2), 3.0), [6.0, 6.0])
    np.testing.assert_allclose(f(np.ones(3), 3.0), [6.0, 6.0, 6.0])
    np.testing.assert_allclose(f(np.ones(3), 5.0), [10.0, 10.0, 10.0])
    np.testing.assert_allclose(f(2 * np.ones(3), 5.0), [20.0, 20.0, 20.0])
    assert f.traces == 3 and f.replays == 1


def test_static_array_argument_is_compared_by_value():
    def weighted(x, w):
        return anp.sum(x * w)

    f = ardiff.compile(weighted)
    w = np.array([1.0, 2.0])
    np.testing.assert_array_equal(f(np.ones(2), w), w)
    w2 = np.array([5.0, 7.0])
    np.testing.assert_array_equal(f(np.ones(2), w2), w2)
    assert f.traces == 2


@pytest.mark.parametrize("seed", range(4))
def test_compiled_equals_uncompiled_on_random_mlps(seed):
    rng = np.random.default_rng(seed)

    def loss(params, x):
        h = x
        for W in params:
            h = anp.maximum(h @ W, 0.0) if W is not params[-1] else h @ W
        return anp.sum(h ** 2) + anp.max(h)

    params = [rng.standard_normal((5, 4)), rng.standard_normal((4, 3))]
    f = ardiff.compile(loss, method="relax", schedule="parallel", eta=1.0)
    for _ in range(3):
        x = rng.standard_normal((2, 5))
        got = f(params, x)
        want = ardiff.grad(loss, schedule="parallel", eta=1.0)(params, x)
        for a, b in zip(got, want):
            np.testing.assert_array_equal(a, b)


def test_value_and_grad_and_higher_order():
    f = ardiff.compile(lambda x: anp.sum(anp.sin(x) ** 2))
    value, grad = f.value_and_grad(np.array([0.3, 0.4]))
    assert value == pytest.approx(np.sum(np.sin([0.3, 0.4]) ** 2))
    np.testing.assert_allclose(grad, np.sin(2 * np.array([0.3, 0.4])))
    # inside an outer trace the compiled function traces normally (higher order)
    hess = ardiff.jacobian(f)(np.array([0.3, 0.4]))
    np.testing.assert_allclose(hess, np.diag(2 * np.cos(2 * np.array([0.3, 0.4]))))


def _perturbed(args, rng):
    """The same argument types and shapes with new values (a replay, or a re-trace)."""
    out = []
    for a in args:
        noise = 1.0 + 0.05 * rng.standard_normal(np.shape(a))
        out.append(float(a * noise) if isinstance(a, float) else a * noise)
    return tuple(out)


@pytest.mark.parametrize("options", [{}, {"method": "backprop"},
                                     {"schedule": "parallel", "eta": 0.5}],
                         ids=["default", "backprop", "parallel-0.5"])
@settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck))
@given(drawn=random_programs(min_nodes=30, max_nodes=60), seed=st.integers(0, 2**32 - 1))
def test_compiled_equals_uncompiled_on_random_programs(options, drawn, seed):
    program, args = drawn
    argnum = tuple(range(len(args)))
    compiled = ardiff.compile(program, argnum=argnum, **options)
    rng = np.random.default_rng(seed)
    for call_args in (args, args, _perturbed(args, rng), _perturbed(args, rng)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. ConvergenceWarning, same on both sides
            want = ardiff.grad(program, argnum=argnum, **options)(*call_args)
            got = compiled(*call_args)
        for a, b in zip(got, want):
            assert type(a) is type(b)
            np.testing.assert_array_equal(a, b)
    assert compiled.replays >= 1  # the second call reused the first recording


def test_replay_of_a_graph_longer_than_one_generated_function():
    # 3,000 nodes: the generated forward and sweep are split into several functions
    def chain(x):
        for _ in range(750):
            x = anp.sin(x) * 1.01 + 0.1 * x
        return anp.sum(x)

    f = ardiff.compile(chain)
    rng = np.random.default_rng(3)
    for _ in range(3):
        x = rng.uniform(-1.0, 1.0, 3)
        np.testing.assert_array_equal(f(x), ardiff.grad(chain)(x))
    assert f.traces == 1 and f.replays == 2
    from ardiff.codegen import LINES_PER_FUNCTION
    assert len(f._cache) == 1 and 3000 > 1.2 * LINES_PER_FUNCTION


@pytest.mark.filterwarnings("ignore:divide by zero:RuntimeWarning")  # NumPy's own, at sqrt'(0)
def test_replay_warns_about_non_finite_gradients_like_grad():
    f = ardiff.compile(lambda x: anp.sum(anp.sqrt(x)))
    f(np.array([1.0, 4.0]))  # first call traces
    with pytest.warns(ardiff.NonFiniteWarning, match="sqrt") as caught:
        got = f(np.array([0.0, 4.0]))  # replay
    assert f.replays == 1
    with pytest.warns(ardiff.NonFiniteWarning) as fresh:
        want = ardiff.grad(lambda x: anp.sum(anp.sqrt(x)))(np.array([0.0, 4.0]))
    np.testing.assert_array_equal(got, want)
    assert str(caught[0].message) == str(fresh[0].message)


@pytest.mark.parametrize("options", [{}, {"schedule": "parallel", "eta": 0.5},
                                     {"method": "triangular"}, {"preset": "paper"}])
def test_replay_returns_the_value_and_gradient_at_the_new_point(options):
    """Replays of other solvers rewrite the recording (TracedCall.replace_values)."""
    def loss(x):
        return anp.sum(anp.tanh(x) ** 2)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ardiff.ConvergenceWarning)
        f = ardiff.compile(loss, **options)
        f.value_and_grad(np.array([0.1, 0.2]))
        for x in (np.array([0.5, -1.0]), np.array([2.0, 0.3])):
            value, g = f.value_and_grad(x)
            want_value, want = ardiff.value_and_grad(loss, **options)(x)
            np.testing.assert_array_equal(value, want_value)
            np.testing.assert_array_equal(g, want)
    assert f.traces == 1 and f.replays == 2


@pytest.mark.parametrize("options", [{}, {"schedule": "parallel", "eta": 0.5}])
def test_non_finite_warning_of_a_replay_points_at_the_callers_line(options):
    f = ardiff.compile(lambda x: anp.sum(anp.sqrt(x)), **options)
    for x in (np.array([1.0, 0.0]), np.array([0.0, 2.0])):  # a trace, then a replay
        with warnings.catch_warnings(record=True) as caught, np.errstate(divide="ignore"):
            warnings.simplefilter("always")
            f(x)
        found = [w for w in caught if issubclass(w.category, ardiff.NonFiniteWarning)]
        assert found and all(w.filename == __file__ for w in found), \
            [(w.filename, str(w.message)) for w in caught]
    assert f.replays == 1


# -- scalar programs on Python floats (each op's scalar form, Op.scalar) ---------------------
def _unary_steps():
    """Scalar ops with bounded values and derivatives, each written with ardiff.numpy."""
    return [
        lambda u: anp.sin(u), lambda u: anp.cos(u), lambda u: anp.tanh(u),
        lambda u: anp.exp(anp.tanh(u)), lambda u: anp.log(1.0 + u * u),
        lambda u: anp.log1p(anp.square(u)), lambda u: anp.sqrt(1.0 + u * u),
        lambda u: anp.sinh(anp.tanh(u)), lambda u: anp.cosh(anp.tanh(u)),
        lambda u: anp.arctan(u), lambda u: anp.expm1(anp.tanh(u)), lambda u: -u,
        lambda u: anp.tan(0.5 * anp.tanh(u)), lambda u: anp.abs(u) + 0.5 * u,
        lambda u: 2 - u, lambda u: u / 3.0, lambda u: u * -1.25,
    ]


def _binary_steps():
    return [lambda u, v: u + v, lambda u, v: u - v, lambda u, v: u * v,
            lambda u, v: u / (1.0 + v * v), lambda u, v: anp.multiply(u, 0.5) + v]


@st.composite
def scalar_programs(draw):
    """A random DAG of scalar ops (every node 0-d) and its 1 to 3 scalar arguments."""
    n_inputs = draw(st.integers(1, 3))
    steps = draw(st.lists(st.tuples(st.booleans(), st.integers(0, 16), st.integers(0, 10**6),
                                    st.integers(0, 10**6)), min_size=5, max_size=40))
    values = draw(st.lists(st.floats(-2.0, 2.0), min_size=n_inputs, max_size=n_inputs))
    unary, binary = _unary_steps(), _binary_steps()

    def program(*xs):
        nodes = list(xs)
        for is_binary, op, a, b in steps:
            u, v = nodes[a % len(nodes)], nodes[b % len(nodes)]
            nodes.append(binary[op % len(binary)](u, v) if is_binary else unary[op](u))
        total = nodes[-1]
        for extra in nodes[n_inputs:-1]:
            total = total + 0.01 * extra
        return total
    return program, tuple(values)


def _scalar_program_of(compiled):
    (recordings,) = compiled._cache.values()
    return recordings[0].program


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "lists"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32, float])
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(drawn=scalar_programs(), seed=st.integers(0, 2**32 - 1))
def test_scalar_replays_are_bitwise_the_numpy_replay_and_grad(dtype, fused, drawn, seed):
    """Python-float replays give grad's bits; float32 programs keep NumPy's code.

    Both forms of the scalar code: one function on locals, and value/activity lists
    (used with guards or beyond FUSED_LINES, forced here by FUSED_LINES = 0).
    """
    program, values = drawn
    argnum = tuple(range(len(values)))
    rng = np.random.default_rng(seed)
    compiled = ardiff.compile(program, argnum=argnum)
    with mock.patch.object(codegen, "FUSED_LINES", codegen.FUSED_LINES if fused else 0):
        _check_scalar_replays(compiled, program, argnum, values, rng, dtype)
    if dtype is not np.float32:
        assert _scalar_program_of(compiled).scalar[0] == ("fused" if fused else "lists")


def _check_scalar_replays(compiled, program, argnum, values, rng, dtype):
    points = [values, values] + [tuple(v + 0.1 * rng.standard_normal() for v in values)
                                 for _ in range(3)]
    for point in points:
        args = tuple(dtype(v) for v in point)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            want_value, want = ardiff.value_and_grad(program, argnum=argnum)(*args)
            got_value, got = compiled.value_and_grad(*args)
        assert type(got_value) is type(want_value) and got_value.tobytes() == \
            want_value.tobytes()
        for a, b in zip(got, want):
            assert type(a) is type(b) and np.asarray(a).tobytes() == np.asarray(b).tobytes()
    replay = _scalar_program_of(compiled)
    assert (replay.scalar is not None) == (dtype is not np.float32)
    if replay.scalar is not None:  # the NumPy replay of the same recording agrees too
        leaves = [np.float64(v) for v in points[-1]]
        values_np = replay.forward(leaves)
        slow = replay.gradients(values_np)
        fast = replay.replay(leaves, [])[1]
        assert [np.float64(g).tobytes() for g in slow] == [g.tobytes() for g in fast]


def test_scalar_replays_fall_back_to_numpy_where_python_raises():
    """1/0, log(0), exp overflow: Python raises, NumPy returns inf/NaN and warns."""
    cases = [(lambda x: 1.0 / x, 1.0, 0.0), (lambda x: anp.log(x * x), 1.0, 0.0),
             (lambda x: anp.exp(x), 1.0, 1000.0), (lambda x: anp.sqrt(x), 4.0, 0.0)]
    for fun, first, bad in cases:
        compiled = ardiff.compile(fun)
        compiled(first)
        compiled(first)
        assert _scalar_program_of(compiled).scalar is not None
        with warnings.catch_warnings(record=True) as got_warnings:
            warnings.simplefilter("always")
            got = compiled(bad)
        with warnings.catch_warnings(record=True) as want_warnings:
            warnings.simplefilter("always")
            want = ardiff.grad(fun)(bad)
        assert type(got) is type(want) and got.tobytes() == want.tobytes()
        assert sorted(str(w.message) for w in got_warnings) == \
            sorted(str(w.message) for w in want_warnings)


def test_scalar_replays_check_guards():
    def branch(x):
        y = anp.sin(x)
        return y * y if y > 0 else -y

    compiled = ardiff.compile(branch)
    for x in (0.5, 1.0, -0.5, 2.0, -1.0):
        assert compiled(x).tobytes() == ardiff.grad(branch)(x).tobytes()
    assert compiled.traces == 2 and compiled.replays == 3
    assert _scalar_program_of(compiled).scalar is not None


def test_math_functions_are_used_only_where_they_give_numpys_bits():
    """Independent of the calibration points: fresh random points, both NumPy paths."""
    from ardiff.codegen import scalar_function
    from ardiff.op import OPS
    rng = np.random.default_rng(7)
    points = np.concatenate([rng.uniform(-3.0, 3.0, 300), rng.uniform(-50.0, 50.0, 300)])
    names = {n for fwd, factors in (op.scalar for op in OPS.values() if op.scalar)
             for text in (fwd, *(factors or ())) for n in re.findall(r"([a-z][a-z0-9]*)\(", text)}
    assert names >= {"sin", "cos", "exp", "log", "tanh"}
    for name in sorted(names - {"abs", "sign"}):
        fun = scalar_function(name)
        ufunc = getattr(np, name)
        with np.errstate(all="ignore"):
            wanted = ufunc(points)
        for p, want in zip(points.tolist(), wanted.tolist()):
            try:
                with np.errstate(all="ignore"):  # NumPy's fall-back warns where it gives NaN
                    got = fun(p)
            except (ArithmeticError, ValueError):
                continue  # the replay falls back to NumPy there
            assert np.float64(got).tobytes() == np.float64(want).tobytes(), (name, p)


def test_static_array_arguments_match_by_bytes_and_shape():
    """Cache keys of non-differentiated arrays: equal bytes, shape and dtype only."""
    def scaled(x, data):
        return anp.sum(x * anp.sum(data))

    f = ardiff.compile(scaled)
    x = np.array([1.0, 2.0])
    data = np.array([1.0, np.nan, -0.0])
    with pytest.warns(ardiff.NonFiniteWarning):  # the NaN in the data reaches the gradient
        f(x, data)
    with pytest.warns(ardiff.NonFiniteWarning):
        f(x, data.copy())  # same bytes (NaN included): a replay
    assert f.traces == 1 and f.replays == 1
    data[2] = 0.0  # changed in place (-0.0 -> 0.0): a new signature
    with pytest.warns(ardiff.NonFiniteWarning):
        f(x, data)
    assert f.traces == 2
    g = ardiff.compile(scaled)
    for const in (np.array(3.0), np.array([3.0]), np.array([[3.0]]), np.array([3.0], np.float32)):
        np.testing.assert_array_equal(g(x, const), ardiff.grad(scaled)(x, const))
    assert g.traces == 4  # same bytes, other shape or dtype: traced again
    big = np.arange(10_000.0)
    f(x, big)
    twin = big.copy()
    twin[5_001] += 1.0  # outside the hashed sample: found by the comparison
    np.testing.assert_array_equal(f(x, twin), ardiff.grad(scaled)(x, twin))
    assert f.traces == 4


def test_disjoint_slices_of_one_array_are_summed_into_one_buffer():
    """The LSTM pattern: gates sliced out of one product.  The replay adds each slice's
    gradient into one zero array (`codegen.slice_sum`) and must give grad's bits,
    signed zeros included; overlapping slices keep the general sum."""
    c1, c2 = np.array([-0.0, 1.0]), np.array([0.0, -0.0, 2.0])

    def gates(x):
        return (anp.sum(x[:2] * c1) + anp.sum(anp.sin(x[2:5]) * c2)
                + anp.sum(anp.tanh(x[5:]) ** 2))

    def overlapping(x):
        return anp.sum(x[:4] * c1[0]) + anp.sum(anp.sin(x[2:]))

    rng = np.random.default_rng(5)
    for fun, fast in ((gates, True), (overlapping, False)):
        compiled = ardiff.compile(fun)
        for dtype in (np.float64, np.float32):
            for _ in range(3):
                x = rng.standard_normal(8).astype(dtype)
                got, want = compiled(x), ardiff.grad(fun)(x)
                assert got.dtype == want.dtype and got.tobytes() == want.tobytes()
        programs = [r.program for rs in compiled._cache.values() for r in rs]
        assert all((p.slice_sums > 0) == fast for p in programs)


def test_lstm_replay_uses_one_buffer_per_gate_block_and_keeps_grads_bits():
    H = 4
    rng = np.random.default_rng(6)
    X = rng.standard_normal((3, 2, 3))

    def lstm(Wx, Wh, b):
        h = c = anp.zeros((2, H))
        for t in range(X.shape[0]):
            z = X[t] @ Wx + h @ Wh + b
            i, f = 1.0 / (1.0 + anp.exp(-z[:, :H])), 1.0 / (1.0 + anp.exp(-z[:, H:2 * H]))
            o, g = 1.0 / (1.0 + anp.exp(-z[:, 2 * H:3 * H])), anp.tanh(z[:, 3 * H:])
            c = f * c + i * g
            h = o * anp.tanh(c)
        return anp.sum(h ** 2)

    args = (rng.standard_normal((3, 4 * H)), rng.standard_normal((H, 4 * H)),
            rng.standard_normal(4 * H))
    compiled = ardiff.compile(lstm, argnum=(0, 1, 2))
    for scale in (1.0, 1.0, 0.5):
        call = tuple(a * scale for a in args)
        for got, want in zip(compiled(*call), ardiff.grad(lstm, argnum=(0, 1, 2))(*call)):
            assert got.tobytes() == want.tobytes()
    assert _scalar_program_of(compiled).slice_sums == 3  # one per step


def test_each_scalar_form_restates_its_op_bit_for_bit():
    """Every op's scalar form (`Op.scalar`, declared next to its VJP) computes, on
    Python floats, the bits NumPy gives for the op's forward and for its `Scale`
    factors on float64 (where Python does not raise: the replay then runs NumPy)."""
    import math

    from ardiff.codegen import scalar_function
    from ardiff.op import OPS, Fixed, Scale

    rng = np.random.default_rng(11)
    points = [float(p) for p in np.concatenate([rng.uniform(-3.0, 3.0, 60),
                                                rng.uniform(0.05, 40.0, 60)])]
    forms = {name: op for name, op in OPS.items() if op.scalar is not None}
    assert {"add", "multiply", "divide", "tanh", "exp", "log"} <= set(forms)

    def run(text, args, ans):
        names = {n: scalar_function(n) for n in re.findall(r"([a-z][a-z0-9]*)\(", text)}
        with np.errstate(all="ignore"):  # a NumPy function bound where math differs
            return eval(text.format(*map(repr, args), ans=repr(ans)),
                        {"inf": math.inf, "nan": math.nan}, names)

    for name, op in forms.items():
        fwd, factors = op.scalar
        arity = 2 if "{1}" in fwd else 1
        for k in range(0, len(points) - arity, 3):
            args = points[k:k + arity]
            with np.errstate(all="ignore"):
                want = op.fwd(*map(np.float64, args))
            try:
                got = run(fwd, args, None)
            except (ArithmeticError, ValueError):
                continue
            assert np.float64(got).tobytes() == np.float64(want).tobytes(), (name, args)
            for argnum, maker in enumerate(op.vjps):
                if factors is None:
                    assert isinstance(maker, Fixed), name
                    continue
                assert isinstance(maker, Scale), name
                with np.errstate(all="ignore"):
                    want_factor = maker.factor(want, *map(np.float64, args))
                try:
                    got_factor = run(factors[argnum], args, float(want))
                except (ArithmeticError, ValueError):
                    continue
                assert np.float64(got_factor).tobytes() == \
                    np.float64(want_factor).tobytes(), (name, argnum, args)
