"""Fast paths give the general path's bits.

* The operator fast path of add/subtract/multiply/divide is the ufunc, bit for bit.
  Independent truth: the NumPy ufunc itself, on every pair of operand kinds the
  fast path accepts (and a few it must refuse), including signed zeros, infinities,
  NaN and division by zero.
* Python float arithmetic is NumPy's float64 arithmetic (what compiled scalar
  replays rely on), against NumPy itself.
* The recorder's plain-argument path and compiled replays against the general
  path (`tree.flatten` of a wrapped argument, and `ardiff.grad`) on random programs
  from `ardiff.strategies`, float32 and float64.
"""

import itertools
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

import ardiff
from ardiff.op import OPS
from ardiff.solvers import SolverOptions
from ardiff.strategies import random_programs

UFUNCS = {"add": np.add, "subtract": np.subtract, "multiply": np.multiply,
          "divide": np.divide}

OPERANDS = [np.float64(1.5), np.float64(-0.0), np.float64(np.inf), np.float64(np.nan), 2.0,
            0.0, 3, np.float32(1.25), np.int64(2), True, np.array(2.0), np.array([1.0, -2.0]),
            np.array([1, 2], dtype=np.float32), np.array([[0.0], [3.0]]), [1.0, 2.0]]


def _outcome(fun, x, y):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            value = fun(x, y)
        except Exception as exc:  # both sides must fail alike
            return ("error", type(exc)), []
    return value, sorted({w.category.__name__ for w in caught})


@pytest.mark.parametrize("name", sorted(UFUNCS))
def test_fast_path_is_the_ufunc(name):
    fwd, ufunc = OPS[name].fwd, UFUNCS[name]
    for x, y in itertools.product(OPERANDS, repeat=2):
        got, got_warn = _outcome(fwd, x, y)
        want, want_warn = _outcome(ufunc, x, y)
        where = f"{name}({x!r}, {y!r})"
        assert type(got) is type(want), where
        assert got_warn == want_warn, where
        if isinstance(want, tuple):
            assert got == want, where
            continue
        assert np.result_type(got) == np.result_type(want), where
        assert np.shape(got) == np.shape(want), where
        np.testing.assert_array_equal(got, want, err_msg=where)
        # signed zeros too: compare the bits
        assert np.array_equal(np.signbit(got), np.signbit(want)), where


def test_keyword_arguments_reach_the_ufunc():
    out = OPS["add"].fwd(np.float64(1.0), np.float64(2.0), dtype=np.float32)
    assert np.result_type(out) == np.float32


# -- the premise of compiled scalar replays (the ops' scalar forms, Op.scalar) ---------------
SPECIAL = [0.0, -0.0, 1.0, -1.5, 0.1, 1e308, -1e308, 5e-324, 2.2250738585072014e-308,
           float("inf"), float("-inf"), float("nan"), 3.0, 1.0 / 3.0, 123456789.123]


@pytest.mark.parametrize("symbol", ["+", "-", "*", "/"])
def test_python_float_arithmetic_is_numpys_bit_for_bit(symbol):
    """`a op b` on two Python floats gives the bits of the same op on two np.float64
    (where Python does not raise: it raises on division by zero, and the replay then
    runs the NumPy code)."""
    rng = np.random.default_rng(0)
    values = SPECIAL + [float(v) for v in rng.standard_normal(40) * 10.0 ** rng.integers(
        -300, 300, 40)]
    with np.errstate(all="ignore"):
        for x, y in itertools.product(values, repeat=2):
            try:
                got = eval(f"x {symbol} y", {}, {"x": x, "y": y})
            except ZeroDivisionError:
                assert symbol == "/" and y == 0.0
                continue
            want = eval(f"x {symbol} y", {}, {"x": np.float64(x), "y": np.float64(y)})
            assert np.float64(got).tobytes() == want.tobytes() or (got != got and want != want)


# -- recorder and compile fast paths on random programs --------------------------------------
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck))
@given(drawn=random_programs(min_nodes=20, max_nodes=40))
def test_plain_arguments_and_compiled_replays_match_the_general_path(dtype, drawn):
    """A plain array or scalar argument skips `tree.flatten` and packing (recorder fast
    path); wrapping it in a 1-tuple takes the general path.  Compiled replays (scalar
    programs on Python floats, arrays keyed by bytes) must give `grad`'s bits too."""
    program, args = drawn
    args = tuple(dtype(a) if isinstance(a, float) else a.astype(dtype) for a in args)
    argnum = tuple(range(len(args)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fast = ardiff.grad(program, argnum=argnum)(*args)
        general = ardiff.grad(lambda *boxed: program(*(b[0] for b in boxed)),
                              argnum=argnum)(*((a,) for a in args))
        compiled = ardiff.compile(program, argnum=argnum)
        replays = [compiled(*args), compiled(*args)]
    for k, g in enumerate(fast):
        assert type(g) is type(general[k][0])
        assert np.asarray(g).tobytes() == np.asarray(general[k][0]).tobytes()
        for replayed in replays:
            assert type(replayed[k]) is type(g)
            assert np.asarray(replayed[k]).tobytes() == np.asarray(g).tobytes()


# -- solver fast paths: in-place accumulation and the Result-free sweep ----------------------
def _grads_bits(program, args, argnum, **options):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        grads = ardiff.grad(program, argnum=argnum, **options)(*args)
    return [(type(g), np.asarray(g).dtype, np.asarray(g).tobytes()) for g in grads]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck))
@given(drawn=random_programs(min_nodes=20, max_nodes=40))
def test_in_place_accumulation_and_lean_sweep_match_the_general_path(dtype, drawn, monkeypatch):
    """Summing contributions in place (into a fresh VJP result nothing else holds) and
    `grad`'s Result-free sweep give the bits of the general path: sums that allocate
    every time, through the relaxation runner's full `Result`."""
    from ardiff.solvers import plan as plan_module
    program, args = drawn
    args = tuple(dtype(a) if isinstance(a, float) else a.astype(dtype) for a in args)
    argnum = tuple(range(len(args)))
    fast = _grads_bits(program, args, argnum)
    fast_backprop = _grads_bits(program, args, argnum, method="backprop")
    with monkeypatch.context() as patch:  # drop activities after their last reader
        patch.setattr("ardiff.solvers.reverse.RELEASE_FROM", 0)
        released = _grads_bits(program, args, argnum)
    with monkeypatch.context() as patch:
        patch.setattr(plan_module, "ACCUMULATE_IN_PLACE", False)
        patch.setattr(plan_module, "SCATTER_SLICES", False)
        patch.setattr(SolverOptions, "one_sweep", property(lambda self: False))
        general = _grads_bits(program, args, argnum)
    assert fast == general
    assert fast_backprop == general
    assert released == general


def test_the_releasing_sweep_keeps_only_what_the_read_out_needs():
    """On a chain with a side input, the releasing sweep leaves in `x` the seed and
    the sources' gradients, summed on the way (no child activity is kept for a
    read-out), and the gradients are the closed form: d/dx sum(tanh(...tanh(x * w)...)),
    d/dw likewise, by hand."""
    from ardiff.recorder import TracedCall
    from ardiff.solvers import compile_plan
    from ardiff.solvers.reverse import sweep_releasing

    def f(x, w):
        h = x * w
        for _ in range(40):
            h = ardiff.numpy.tanh(h)
        return ardiff.numpy.sum(h)

    x, w = np.array([0.3, -0.2]), np.array([1.5, 0.5])
    call = TracedCall(f, (0, 1), (x, w), {})
    plan = compile_plan(call.graph, call.output, call.inputs, stage=False)
    acts = {plan.output: np.array(1.0)}
    sweep_releasing(plan, acts)
    assert set(acts) == {plan.output, *plan.wrt}
    # by hand: forward, then the chain rule through 40 tanh's
    h = [x * w]
    for _ in range(40):
        h.append(np.tanh(h[-1]))
    g = np.ones(2)
    for k in range(40, 0, -1):
        g = g * (1.0 - h[k] ** 2)
    got = ardiff.grad(f, argnum=(0, 1))(x, w)
    np.testing.assert_allclose(got[0], g * w, rtol=1e-13)
    np.testing.assert_allclose(got[1], g * x, rtol=1e-13)
    np.testing.assert_array_equal(acts[plan.wrt[0]], got[0])
    np.testing.assert_array_equal(acts[plan.wrt[1]], got[1])


def test_sums_never_write_into_aliased_vjp_results():
    """Add's VJP hands back its cotangent itself, so x's contributions are the
    activities of `a` and `b` (aliased); the sum must not write into them.  Truth: the
    activities and gradient written out by hand."""
    g = ardiff.Graph()
    x = g.input(np.array([1.0, 2.0, 3.0]), name="x")
    a = x + 0.0
    b = x * 1.0
    y = a * np.array([2.0, 3.0, 4.0]) + b * np.array([5.0, 6.0, 7.0])
    out = ardiff.numpy.sum(y)
    res = ardiff.backprop(g, out, [x])
    np.testing.assert_array_equal(res.grads[0], [7.0, 9.0, 11.0])
    np.testing.assert_array_equal(res.activities[a._node], [2.0, 3.0, 4.0])
    np.testing.assert_array_equal(res.activities[b._node], [5.0, 6.0, 7.0])


def test_sum_of_vjps_writes_only_into_fresh_unshared_arrays():
    """Direct check of the ownership rule on hand-made VJPs: a term held elsewhere (a
    list, a view's base) is never modified; fresh terms may be, and the sum is right."""
    from ardiff.solvers.plan import sum_of_vjps
    kept = np.array([1.0, 1.0])
    base = np.array([10.0, 10.0, 10.0, 10.0])
    x = {1: None, 2: None, 3: None}
    edges = [(1, lambda _: kept), (2, lambda _: base[:2]), (3, lambda _: np.array([0.5, 0.5]))]
    total = sum_of_vjps(edges, x)
    np.testing.assert_array_equal(total, [11.5, 11.5])
    np.testing.assert_array_equal(kept, [1.0, 1.0])
    np.testing.assert_array_equal(base, [10.0] * 4)
    fresh = [(k, lambda _: np.array([1.0, 2.0])) for k in (1, 2, 3)]
    np.testing.assert_array_equal(sum_of_vjps(fresh, x), [3.0, 6.0])


SLICINGS = [  # (slices of a (4, 6) array; whether every element lies in all of them)
    ((np.s_[:, :3], np.s_[:, 3:]), False),
    ((np.s_[:, :2], np.s_[:, 2:4], np.s_[:, 4:]), False),
    ((np.s_[:2], np.s_[2:], np.s_[:, 1:5]), False),  # overlapping pairs, empty triple
    ((np.s_[:2], np.s_[1:], np.s_[:, 1:5]), True),  # row 1, columns 1-4 in all three
    ((np.s_[:, 1:4], np.s_[:, 2:5]), True),  # a common column block: general path
    ((np.s_[:, ::2], np.s_[:, 1::2]), True),  # strided: general path
    ((np.s_[:3, :3], np.s_[3:, 3:], np.s_[:, 2:4]), False),
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.complex128])
@pytest.mark.parametrize("slices, _", SLICINGS)
def test_scattered_slice_cotangents_match_the_general_path(dtype, slices, _, monkeypatch):
    """Cotangents of slices of one array summed by scattering them into one buffer give
    the general path's bits (zero arrays added left to right), signed zeros included:
    each slice's cotangent holds -0.0, +0.0, NaN and random values."""
    from ardiff.solvers import plan as plan_module
    rng = np.random.default_rng(7)
    z0 = rng.standard_normal((4, 6)).astype(dtype)
    weights = []
    for s in slices:
        w = rng.standard_normal(z0[s].shape).astype(dtype)
        w.flat[0], w.flat[-1] = -0.0, 0.0
        weights.append(w)

    def f(z):
        total = 0.0
        for s, w in zip(slices, weights):
            total = total + ardiff.numpy.sum(z[s] * w)  # cotangent of z[s] is w
        return ardiff.numpy.real(total) if np.iscomplexobj(z0) else total

    fast = ardiff.grad(f)(z0)
    with monkeypatch.context() as patch:
        patch.setattr(plan_module, "SCATTER_SLICES", False)
        general = ardiff.grad(f)(z0)
    assert fast.dtype == general.dtype and fast.tobytes() == general.tobytes()
    by_hand = np.zeros_like(z0)  # independent truth, up to the signs of zeros
    for s, w in zip(slices, weights):
        by_hand[s] += np.conj(w) if np.iscomplexobj(z0) else w
    np.testing.assert_allclose(fast, by_hand, rtol=1e-6)


def test_scatter_applies_to_disjoint_unit_slices_only():
    """The scatter path runs (returns an array) for disjoint unit-step slices and
    declines (None) when an element lies in every slice or a step is not 1."""
    from ardiff.recorder import TracedCall
    from ardiff.solvers.plan import scatter_slices
    for slices, common in SLICINGS:
        call = TracedCall(lambda z, s=slices: sum(ardiff.numpy.sum(z[k] ** 2) for k in s),
                          0, (np.ones((4, 6)),), {})
        nodes = call.graph.nodes
        kids = [(n.index, 0) for n in nodes if n.op is ardiff.op.OPS["getitem"]]
        x = {i: np.ones(np.shape(nodes[i].value)) for i, _ in kids}
        got = scatter_slices(kids, x, nodes)
        assert (got is None) == common, slices


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.complex128, np.float16])
def test_is_finite_agrees_with_numpy(dtype):
    """The finiteness check behind NonFiniteWarning (a BLAS sum of squares for contiguous
    real arrays, with an exact fallback) against np.isfinite: NaN, +-inf anywhere,
    huge finite entries whose squares overflow, non-contiguous views."""
    from ardiff.solvers.common import is_finite
    rng = np.random.default_rng(3)
    big = np.finfo(dtype).max / 4
    for size in (33, 1000):
        base = rng.standard_normal((size, 3)).astype(dtype)
        with np.errstate(all="ignore"):
            cases = [base, base * big, base.T, base[::2]]
            for bad in (np.nan, np.inf, -np.inf):
                for where in (0, size // 2, -1):
                    broken = base.copy()
                    broken.flat[where] = bad
                    cases += [broken, broken[::-1], broken * 0.5]
            for case in cases:
                assert is_finite(case) == bool(np.all(np.isfinite(case)))


# -- issue 27: the per-call shortcuts of a tiny function's gradient ----------------------
SQUARED_AT = np.array([0.0, -0.0, 1e-310, np.inf, -np.inf, np.nan, 3.5, -2.25, 1e300])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_the_squares_derivative_is_the_general_powers_bits(dtype):
    # Independent truth: NumPy's own g * (y * x ** (y - 1)) on special values.
    power = OPS["power"]
    x = SQUARED_AT.astype(dtype) if dtype == np.float64 else SQUARED_AT[:-1].astype(dtype)
    g = np.linspace(-1.0, 1.0, x.size).astype(dtype)
    with np.errstate(all="ignore"):
        expected = g * (2 * x ** 1.0)
        got = power.apply_vjp(0, x ** 2, (x, 2), {}, g)
    assert got.dtype == expected.dtype
    np.testing.assert_array_equal(got.view(np.uint8), expected.view(np.uint8))


@pytest.mark.parametrize("axis, keepdims", [(None, False), (None, True), (0, False),
                                            ((0, 2), True), (1, False)])
@pytest.mark.parametrize("shape", [(2, 3, 4), (20, 30, 40)])  # a new array; a view
def test_the_plain_sum_adjoint_is_the_traced_ops_bits(axis, keepdims, shape):
    # Independent truth: NumPy's broadcast of g, reshaped to keep the reduced axes.
    from ardiff.ops.reduce import spread

    x = np.random.default_rng(5).standard_normal(shape)
    g = np.sum(x, axis=axis, keepdims=keepdims) * 1.5
    kept = np.sum(x, axis=axis, keepdims=True).shape
    expected = np.broadcast_to(np.reshape(g, kept), x.shape)
    got = spread(g, x.shape, axis)
    np.testing.assert_array_equal(got, expected)
    assert got.shape == x.shape


def test_output_check_shortcut_keeps_the_errors():
    x = np.array([1.0, 2.0])
    with pytest.raises(TypeError, match="needs a scalar output"):
        ardiff.grad(lambda x: x * 2.0)(x)
    assert ardiff.grad(lambda x: (x * x).sum())(x).tolist() == [2.0, 4.0]
    np.testing.assert_array_equal(ardiff.elementwise_grad(lambda x: x * x)(x), 2 * x)
