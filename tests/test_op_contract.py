"""The op table's contract (ardiff/op.py), each rule checked against plain NumPy.

Truth: NumPy itself (the ufunc an infix op stands for, bitwise; `np.sum` over the
broadcast axes for `unbroadcast`; `np.real` and `astype` for the dtype fit), central
finite differences for the VJPs, and the documented behaviour of each declaration
(`reads=`, `Scale`, `Fixed`, the recording error's text).
"""

import numpy as np
import pytest

import ardiff
import ardiff.numpy as anp
import ardiff.op as op_module
from ardiff.graph import Graph, Released
from ardiff.op import (
    NEGATED,
    OPS,
    PASS_THROUGH,
    Fixed,
    Op,
    Scale,
    argument_fit,
    defop,
    fit_to_argument,
    real_gradient,
    scale_by,
    unbroadcast,
)

RNG = np.random.default_rng(7)


@pytest.fixture
def fresh_names():
    """Op names made by a test, removed from the table afterwards."""
    made = []
    yield made
    for name in made:
        OPS.pop(name, None)


# -- VJP makers ----------------------------------------------------------------------------
def test_scale_fixed_and_their_constants():
    assert scale_by(3.0)(2.0) == 6.0
    maker = Scale(lambda ans, x, y=1.0: ans * x * y)
    assert maker(2.0, 3.0, y=0.5)(10.0) == 30.0
    assert maker.factor(2.0, 3.0) == 6.0
    g = np.array([1.0, -2.0])
    assert PASS_THROUGH(None, 5.0)(g) is g
    np.testing.assert_array_equal(NEGATED(None)(g), -g)
    assert (PASS_THROUGH.template, NEGATED.template) == ("{}", "-{}")
    fixed = Fixed(lambda g: 2 * g, "2 * {}")
    assert fixed(1.0, 2.0, key=3)(4.0) == 8.0 and fixed.template == "2 * {}"


# -- reads= --------------------------------------------------------------------------------
def test_reads_normalisation(fresh_names):
    def make(name, *vjps, **kw):
        fresh_names.append(name)
        return defop(name, lambda *a: a[0], *vjps, **kw)

    assert make("t_reads_flat", Scale(lambda a, x: x), reads=("ans",)).reads == (("ans",),)
    assert make("t_reads_int", Scale(lambda a, x: x), reads=(0,)).reads == ((0,),)
    assert make("t_reads_two", Scale(lambda a, x, y: y), Scale(lambda a, x, y: x),
                reads=((1,), (0, "ans"))).reads == ((1,), (0, "ans"))
    assert make("t_reads_none_entry", Scale(lambda a, x, y: y), PASS_THROUGH,
                reads=(None, ())).reads == (None, ())
    # defaults: nothing read by Fixed makers, unknown otherwise; unknown for variadic ops
    assert make("t_reads_default", PASS_THROUGH, Scale(lambda a, x, y: y)).reads == \
        ((), None)
    assert make("t_reads_variadic", vjp=lambda k, ans, *a: lambda g: g).reads is None
    variadic = make("t_reads_callable", vjp=lambda k, ans, *a: lambda g: g,
                    reads=lambda k, n: (k, n - 1))
    assert variadic.reads_of(1, 4) == (1, 3)
    op = OPS["t_reads_two"]
    assert op.reads_of(1, 2) == (0, "ans") and op.reads_of(2, 3) is None
    assert OPS["t_reads_variadic"].reads_of(0, 1) is None
    for bad in (("x",), ((-1,),), ((1.0,),), ((True,),)):
        name = f"t_reads_bad_{len(fresh_names)}"
        with pytest.raises(ValueError) as info:
            make(name, Scale(lambda a, x: x), reads=bad)
        shown = (bad,) if isinstance(bad[0], str) else bad  # a flat tuple is one argument's
        assert str(info.value) == (f"defop({name!r}): reads={shown!r}: each entry lists 'ans' "
                                   "and argument positions (non-negative ints).")
    assert "t_reads_bad_9" not in OPS


# -- defop -----------------------------------------------------------------------------------
def test_defop_enters_the_table_and_refuses_duplicates(fresh_names):
    fresh_names.append("t_cube")
    cube = defop("t_cube", lambda x: x ** 3, Scale(lambda ans, x: 3.0 * x * x),
                 nonlinear=True)
    assert OPS["t_cube"] is cube and isinstance(cube, Op)
    assert cube.nonlinear is True and cube.infix is None and cube.jac is None
    assert cube.__name__ == "t_cube" and "t_cube" in cube.__doc__
    assert repr(cube) == "<ardiff op t_cube>"
    assert float(ardiff.grad(cube)(2.0)) == 12.0
    with pytest.raises(ValueError, match="'t_cube' is defined twice"):
        defop("t_cube", lambda x: x, PASS_THROUGH)
    with pytest.raises(ValueError, match=r"infix='%' is not one of \['\*', '\+', '-', '/'\]"):
        defop("t_mod", np.mod, PASS_THROUGH, PASS_THROUGH, infix="%")
    assert "t_mod" not in OPS
    assert OPS["add"].nonlinear is False and OPS["tanh"].nonlinear is True
    fresh_names.append("t_plain_defaults")
    plain = defop("t_plain_defaults", np.negative, NEGATED)
    assert plain.nonlinear is False and plain.infix is None and plain.view is False
    assert plain.vjp is None and plain.fwd is np.negative
    direct = Op("t_not_in_table", np.negative, (NEGATED,))
    assert direct.nonlinear is False and direct.view is False and "t_not_in_table" not in OPS
    fresh_names.append("t_view")
    assert defop("t_view", np.ravel, PASS_THROUGH, view=True).view is True


def test_defop_infix_wraps_the_forward(fresh_names):
    seen = []

    def times(x, y, **kwargs):
        seen.append((x, y))
        return np.multiply(x, y, **kwargs)

    fresh_names.append("t_times")
    op = defop("t_times", times, Scale(lambda ans, x, y: y), Scale(lambda ans, x, y: x),
               infix="*")
    assert op.infix == "*" and op.fwd is not times and op.fwd.__name__ == "times"
    assert op.fwd(np.float64(2.0), np.float64(3.0)) == 6.0 and seen == []  # the operator
    assert op.fwd(2, 3) == 6 and seen == [(2, 3)]  # ints: the ufunc
    g = Graph()
    x = g.input(np.array([1.0, 2.0]))
    np.testing.assert_array_equal(op(x, 3.0)._value, [3.0, 6.0])
    np.testing.assert_array_equal(ardiff.grad(lambda v: anp.sum(op(v, v)))(np.array([1.0, 2.0])),
                                  [2.0, 4.0])
    fresh_names.append("t_variadic_vjp")
    variadic = defop("t_variadic_vjp", lambda *a: a[0] * a[1],
                     vjp=lambda k, ans, *a: (lambda g: g * a[1 - k]))
    assert variadic.vjp is not None and variadic.vjps == ()
    np.testing.assert_array_equal(variadic.apply_vjp(0, 6.0, (2.0, 3.0), {}, 1.0), 3.0)


CASES = [(np.float64(1.5), np.float64(0.25)), (np.arange(3.0), np.float64(2.0)),
         (2.0, np.arange(1.0, 4.0)), (np.float32(1.5), np.arange(1.0, 4.0)), (3, np.float64(0.5)),
         (np.arange(3.0), np.arange(3.0) + 1)]


@pytest.mark.parametrize("name,ufunc", [("add", np.add), ("subtract", np.subtract),
                                        ("multiply", np.multiply), ("divide", np.divide)])
@pytest.mark.parametrize("x,y", CASES + [(1, 2), (np.float32(1.5), np.float32(2.5)),
                                         (np.int64(3), np.float32(2.0))])
def test_infix_forward_is_the_ufunc_bitwise(name, ufunc, x, y):
    got, want = OPS[name].fwd(x, y), ufunc(x, y)
    assert type(got) is type(want)
    assert np.asarray(got).dtype == np.asarray(want).dtype
    np.testing.assert_array_equal(got, want)


def test_infix_forward_takes_the_operator_only_for_listed_types(monkeypatch):
    calls = []
    fwd = op_module._via_operator(np.add, lambda x, y: calls.append((x, y)) or "operator")
    assert fwd.__name__ == fwd.__qualname__ == "add"
    assert fwd(np.float64(1.0), 2) == "operator"
    assert fwd(1.0, np.float64(5.0)) == "operator"
    assert fwd(np.float64(7.0), np.float32(1.0)) == "operator"
    assert calls == [(1.0, 2), (1.0, 5.0), (7.0, 1.0)]
    assert [type(c) for pair in calls for c in pair] == [np.float64, int, float, np.float64,
                                                          np.float64, np.float32]

    class Nameless:
        def __call__(self, x, y):
            return x

    assert op_module._via_operator(Nameless(), lambda x, y: x).__name__ == "fwd"
    for x, y in [(1.0, 2.0), (1, 2), (np.float32(1.0), 2.0), (np.int64(1), np.ones(2)),
                 ([1.0], np.ones(1))]:  # no float64 or array, or a type outside the list
        assert not isinstance(fwd(x, y), str)
    out = np.zeros(2)
    assert fwd(np.ones(2), np.ones(2), out=out) is out  # keywords: the ufunc
    assert len(calls) == 3


# -- recording -------------------------------------------------------------------------------
def test_plain_call_and_recorded_node():
    assert OPS["multiply"](2.0, 3.0) == 6.0  # plain values: the forward only
    g = Graph()
    x = g.input(np.array([1.0, 2.0]))
    y = g.input(np.float64(3.0))
    z = OPS["multiply"](2.0, x)  # traced in position 1
    node = g.nodes[-1]
    assert node.op is OPS["multiply"] and node.parents == ((1, 0),)
    assert node.args[0] == 2.0 and node.args[1] is x._value
    np.testing.assert_array_equal(z._value, [2.0, 4.0])
    w = OPS["multiply"](z, y, dtype=np.float64)
    assert g.nodes[-1].parents == ((0, z._node), (1, y._node))
    assert g.nodes[-1].kwargs == {"dtype": np.float64}
    assert g.nodes[-2].kwargs == {} and w._node == len(g.nodes) - 1


def test_recording_error_names_op_node_and_arguments():
    g = Graph()
    x = g.input(np.ones((2, 3)))
    with pytest.raises(ValueError) as info:
        anp.reshape(x, (4, 5))
    message = str(info.value)
    try:
        np.reshape(np.ones((2, 3)), (4, 5))
    except ValueError as exc:
        numpy_says = str(exc).strip()
    assert message == (f"ardiff op 'reshape' failed while recording node 1 from arguments "
                       f"((2, 3), tuple): {numpy_says}{'' if numpy_says.endswith('.') else '.'}"
                       " Check the arguments of this call (shapes, axes, indices or values); "
                       "nothing was recorded.")
    assert message.endswith(". Check the arguments of this call (shapes, axes, indices or "
                            "values); nothing was recorded.")
    assert ".. Check" not in message
    assert len(g.nodes) == 1
    with pytest.raises(IndexError, match=r"failed while recording node 1 from arguments "
                                         r"\(\(2, 3\), int\)"):
        OPS["getitem"](x, 7)

    class Odd(ValueError):
        def __init__(self, a, b):
            super().__init__(f"{a} {b}")

    dotted = op_module._recording_error(OPS["add"], g, [np.ones(2), 1.0],
                                        ValueError(" bad input. "))
    assert str(dotted) == ("ardiff op 'add' failed while recording node 1 from arguments "
                           "((2,), float): bad input. Check the arguments of this call "
                           "(shapes, axes, indices or values); nothing was recorded.")
    error = op_module._recording_error(OPS["add"], g, [1.0], Odd(1, 2))
    assert isinstance(error, Odd) and str(error) == "1 2"  # kept when it cannot be rebuilt


def test_nested_graphs_record_on_both_levels():
    """Second order: an op between tracers of two graphs records in both."""
    def f(x):
        return anp.sum(anp.sin(x) * x)

    x = np.array([0.3, -0.8])
    hess = ardiff.hessian(f)(x)
    expected = np.diag(2 * np.cos(x) - x * np.sin(x))
    np.testing.assert_allclose(hess, expected, rtol=1e-12, atol=1e-14)
    # mixed levels in one call (outer tracer times an inner one)
    def g(a):
        return ardiff.grad(lambda b: anp.sum(a * anp.tanh(b) * a))(a)

    a = np.array([0.4, -0.2])
    jac = ardiff.jacobian(g)(a)
    h = 1e-6
    fd = np.stack([(g(a + h * e) - g(a - h * e)) / (2 * h) for e in np.eye(2)], axis=1)
    np.testing.assert_allclose(jac, fd, rtol=1e-7, atol=1e-8)


def test_lean_recording_releases_exactly_the_unread(monkeypatch):
    monkeypatch.setattr(op_module, "RELEASE_MIN_BYTES", 64)
    g = Graph()
    g.lean = True
    big = g.input(np.arange(16.0))
    t = anp.tanh(big)  # tanh's VJP reads its answer: kept
    assert type(g.nodes[t._node].value) is np.ndarray
    s = anp.sin(t)  # sin reads its argument, not its answer: the answer is released
    assert type(g.nodes[s._node].value) is Released
    e = anp.exp(t[:4])  # exp reads its answer, but 4 * 8 bytes < 64: kept
    assert type(g.nodes[e._node].value) is np.ndarray
    n = anp.negative(s)  # reads nothing: its argument is the released stand-in
    node = g.nodes[n._node]
    assert type(node.args[0]) is Released and type(node.value) is Released
    m = anp.multiply(big, s)  # each VJP reads the other argument: both kept
    assert all(type(a) is np.ndarray for a in g.nodes[m._node].args)
    # a plain Python result is never released
    k = anp.sum(n)
    assert not isinstance(g.nodes[k._node].value, Released)


def test_lean_release_needs_the_union_of_traced_arguments_reads(monkeypatch):
    monkeypatch.setattr(op_module, "RELEASE_MIN_BYTES", 0)
    g = Graph()
    g.lean = True
    a = g.input(np.arange(4.0))
    s = anp.sin(a)  # answer released
    c = anp.cos(a)  # answer released
    d = anp.multiply(s, 2.0)  # only argument 0 traced: its VJP reads argument 1 only
    assert type(g.nodes[d._node].args[0]) is Released
    p = anp.multiply(s, c)  # both traced: each reads the other, both kept
    assert [type(v) for v in g.nodes[p._node].args] == [np.ndarray, np.ndarray]
    OPS["multiply"]._needed.clear()


# -- derivatives -----------------------------------------------------------------------------
def test_vjp_maker_errors_and_variadic(fresh_names):
    fresh_names.append("t_first_only")
    first = defop("t_first_only", lambda x, y: x * y, Scale(lambda ans, x, y: y), None)
    with pytest.raises(TypeError, match="ardiff op 't_first_only' has no derivative with "
                                        "respect to argument 1; pass that argument"):
        first.vjp_maker(1)
    with pytest.raises(TypeError, match="argument 2"):
        first.vjp_maker(2)
    # a variadic op's vjp, bound to the position: the VJP of concatenate's second part
    part = OPS["concatenate"].vjp_maker(1)(np.arange(5.0), np.ones(2), np.ones(3))
    np.testing.assert_array_equal(part(np.arange(5.0)), [2.0, 3.0, 4.0])
    assert first.vjp_maker(0)(6.0, 2.0, 3.0)(1.0) == 3.0


@pytest.mark.parametrize("shapes", [((3, 4), (4,)), ((3, 1), (3, 4)), ((2, 3, 4), (1, 4)),
                                    ((), (2, 3)), ((5,), ()), ((2, 1, 3), (4, 1))])
def test_local_and_applied_vjps_undo_broadcasting(shapes):
    a, b = (RNG.standard_normal(s) if s else np.float64(RNG.standard_normal())
            for s in shapes)
    op = OPS["multiply"]
    ans = a * b
    g = RNG.standard_normal(np.shape(ans))
    for argnum, (arg, other) in enumerate([(a, b), (b, a)]):
        want = g * other
        want = np.sum(want, axis=tuple(range(np.ndim(want) - np.ndim(arg))))
        want = np.sum(want, axis=tuple(i for i, n in enumerate(np.shape(arg)) if n == 1),
                      keepdims=True).reshape(np.shape(arg))
        local = op.local_vjp(argnum, ans, (a, b), {})(g)
        applied = op.apply_vjp(argnum, ans, (a, b), {}, g)
        assert np.shape(local) == np.shape(arg) == np.shape(applied)
        np.testing.assert_allclose(local, want, rtol=1e-13)
        np.testing.assert_array_equal(applied, local)


def test_applied_vjps_of_every_maker_kind(fresh_names):
    x, y = np.array([0.5, -1.0]), np.array([2.0, 3.0])
    g = np.array([1.0, 10.0])
    fresh_names.append("t_custom")
    custom = defop("t_custom", lambda x: x ** 2, lambda ans, x: (lambda g: 2 * x * g))
    cases = [(OPS["tanh"], (x,), 0), (OPS["negative"], (x,), 0), (OPS["subtract"], (x, y), 1),
             (custom, (x,), 0), (OPS["matmul"], (np.outer(x, y), y), 1)]
    for op, args, argnum in cases:
        ans = op.fwd(*args)
        gg = np.ones(np.shape(ans)) * (np.arange(np.size(ans)) + 1.0)
        np.testing.assert_array_equal(op.apply_vjp(argnum, ans, args, {}, gg),
                                      op.local_vjp(argnum, ans, args, {})(gg))
    np.testing.assert_array_equal(OPS["subtract"].apply_vjp(1, x - y, (x, y), {}, g), -g)
    np.testing.assert_allclose(OPS["tanh"].apply_vjp(0, np.tanh(x), (x,), {}, g),
                               g * (1 - np.tanh(x) ** 2), rtol=1e-15)
    np.testing.assert_array_equal(custom.apply_vjp(0, x ** 2, (x,), {}, g), 2 * x * g)


def test_dtype_and_complex_fit():
    g = np.array([1.0 + 2.0j, 3.0 - 1.0j])
    assert real_gradient(g, np.float64).dtype == np.float64
    np.testing.assert_array_equal(real_gradient(g, np.float64), [1.0, 3.0])
    assert real_gradient(g, np.complex128) is g
    r = np.array([1.0, 2.0])
    assert real_gradient(r, np.float32) is r
    out = fit_to_argument(np.array([[1.0, 2.0], [3.0, 4.0]]), (2,), np.dtype(np.float32))
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, [4.0, 6.0])
    same = np.array([1.0, 2.0])
    assert fit_to_argument(same, (2,), np.dtype(np.float64)) is same
    assert fit_to_argument(g, (2,), np.dtype(np.float64)).dtype == np.float64
    # gradient of a float32 argument of a float64 op is float32 (argument_fit)
    x32 = np.array([1.0, 2.0], dtype=np.float32)
    ans = np.multiply(x32.astype(np.float64), 2.0)  # float64 under any NumPy's promotion
    assert argument_fit(x32, ans) == ((2,), np.dtype(np.float32))
    assert argument_fit(np.ones(2), np.ones(2)) is None
    assert argument_fit(np.float64(1.0), np.float64(2.0)) is None
    assert argument_fit(np.ones((2, 1)), np.ones((2, 3))) == ((2, 1), np.dtype(np.float64))
    assert argument_fit(2.0, np.float64(1.0)) is None
    assert argument_fit(np.float32(2.0), np.float64(1.0)) == ((), np.dtype(np.float32))
    v = OPS["multiply"].local_vjp(0, ans, (x32, np.float64(2.0)), {})(np.ones(2))
    assert v.dtype == np.float32
    # traced gradients keep their trace through the projection
    g2 = Graph()
    t = g2.input(np.array([1.0 + 1.0j]))
    projected = real_gradient(t, np.float64)
    assert g2.nodes[-1].op is OPS["real"] and np.isrealobj(projected._value)


def test_unbroadcast_is_numpys_sum_over_the_copies():
    for gshape, shape in [((2, 3, 4), (3, 4)), ((2, 3, 4), (3, 1)), ((2, 3, 4), (1, 1, 4)),
                          ((3, 4), ()), ((3, 4), (3, 4)), ((4,), (1,))]:
        grad = RNG.standard_normal(gshape)
        out = unbroadcast(grad, shape)
        want = np.sum(grad, axis=tuple(range(len(gshape) - len(shape))))
        want = np.sum(want, axis=tuple(i for i, n in enumerate(shape) if n == 1),
                      keepdims=True).reshape(shape)
        assert np.shape(out) == shape
        np.testing.assert_allclose(out, want, rtol=1e-13)
    # a gradient smaller than the argument (a broadcast op's adjoint) is broadcast back up
    up = unbroadcast(np.float64(2.0), (2, 2))
    assert np.shape(up) == (2, 2)
    np.testing.assert_array_equal(up, np.full((2, 2), 2.0))
    up = unbroadcast(np.ones((3, 1)), (2, 3, 4))
    assert np.shape(up) == (2, 3, 4)


# -- sparse Jacobians --------------------------------------------------------------------------
def test_jacobian_families_and_fallbacks(fresh_names):
    x = np.array([0.5, -1.0, 2.0])
    J = OPS["tanh"].jacobian(0, np.tanh(x), (x,), {})
    np.testing.assert_allclose(J.toarray(), np.diag(1 - np.tanh(x) ** 2), rtol=1e-15)
    assert OPS["tanh"].jacobian_nnz(0, np.tanh(x), (x,), {}) == 3

    class Declines:
        def matrix(self, *a):
            raise NotImplementedError

        def nnz(self, *a):
            raise NotImplementedError

    def plain(k, ans, x):
        import scipy.sparse as sp
        return sp.identity(np.size(x), format="csr") * 2.0

    def failing(k, ans, x):
        raise NotImplementedError

    fresh_names += ["t_no_family", "t_declines", "t_plain", "t_failing"]
    none = defop("t_no_family", np.negative, NEGATED)
    declines = defop("t_declines", np.negative, NEGATED, jac=Declines())
    plain_op = defop("t_plain", lambda x: 2 * x, Fixed(lambda g: 2 * g, "2 * {}"), jac=plain)
    failing_op = defop("t_failing", np.negative, NEGATED, jac=failing)
    assert none.jacobian(0, -x, (x,), {}) is None
    assert declines.jacobian(0, -x, (x,), {}) is None
    assert failing_op.jacobian(0, -x, (x,), {}) is None
    np.testing.assert_array_equal(plain_op.jacobian(0, 2 * x, (x,), {}).toarray(), 2 * np.eye(3))
    for op in (none, declines, plain_op):  # no nnz bound: the dense size
        assert op.jacobian_nnz(0, np.ones((2, 3)), (x,), {}) == 18
    # the triangular solver falls back to VJPs of unit vectors and gets the same answer
    g = Graph()
    t = g.input(x)
    out = anp.sum(failing_op(anp.sin(t)) ** 2)
    result = ardiff.solve_triangular(g, out)
    np.testing.assert_allclose(result.grads[0], 2 * np.sin(x) * np.cos(x), rtol=1e-13)


# -- keyword arguments, custom makers and families, views, lean keys --------------------------
def test_keyword_arguments_reach_forward_vjps_and_jacobians():
    x = RNG.standard_normal((3, 4))
    g = Graph()
    t = g.input(x)
    s = anp.sum(t, axis=0)  # kwargs on a traced call
    assert np.shape(s._value) == (4,) and g.nodes[-1].kwargs["axis"] == 0
    op, ans, kw = OPS["sum"], np.sum(x, axis=1), {"axis": 1}
    gv = np.arange(3.0)
    want = np.repeat(gv[:, None], 4, axis=1)
    np.testing.assert_array_equal(op.apply_vjp(0, ans, (x,), kw, gv), want)
    np.testing.assert_array_equal(op.local_vjp(0, ans, (x,), kw)(gv), want)
    np.testing.assert_array_equal(op.vjp_maker(0)(ans, x, **kw)(gv), want)
    J = op.jacobian(0, ans, (x,), kw)
    np.testing.assert_array_equal(J.toarray(), np.kron(np.eye(3), np.ones((1, 4))))
    # nested (second order) calls keep their keywords and their plain arguments
    def f(v):
        return anp.sum(anp.sum(2.0 * anp.sin(v) * v, axis=0) ** 2)

    v = RNG.standard_normal((2, 3))
    h = 1e-6
    flat = v.ravel()
    grad = ardiff.grad(f)
    hess = ardiff.hessian(f)(v).reshape(6, 6)
    fd = np.stack([(grad((flat + h * e).reshape(2, 3)) - grad((flat - h * e).reshape(2, 3)))
                   .ravel() / (2 * h) for e in np.eye(6)], axis=1)
    np.testing.assert_allclose(hess, fd, rtol=1e-6, atol=1e-7)


def test_custom_makers_families_and_variadic_vjps_get_every_argument(fresh_names):
    import scipy.sparse as sp

    x = np.array([0.5, -1.0, 2.0])
    fresh_names += ["t_reads_answer", "t_variadic_ans", "t_family_kwargs", "t_family_obj"]
    cube = defop("t_reads_answer", lambda x: x ** 3,
                 lambda ans, x: (lambda g: 3.0 * g * ans / x))  # reads the answer
    np.testing.assert_allclose(cube.apply_vjp(0, x ** 3, (x,), {}, np.ones(3)), 3 * x * x)
    with pytest.raises(TypeError, match="no derivative with respect to argument 1"):
        cube.apply_vjp(1, x ** 3, (x,), {}, np.ones(3))
    variadic = defop("t_variadic_ans", lambda a, b: a * b,
                     vjp=lambda k, ans, *a: (lambda g: g * ans / a[k]))
    # d/db sum(a * b) = sum(a): summed down to the scalar argument
    assert variadic.apply_vjp(1, x * 2.0, (x, 2.0), {}, np.ones(3)) == pytest.approx(np.sum(x))
    np.testing.assert_allclose(variadic.local_vjp(0, x * 2.0, (x, 2.0), {})(np.ones(3)),
                               np.full(3, 2.0))

    def scaled(k, ans, x, scale=1.0):
        assert k == 0
        return sp.diags(ans / x * scale)

    fam = defop("t_family_kwargs", lambda x, scale=1.0: 2 * x,
                Fixed(lambda g: 2 * g, "2 * {}"), jac=scaled)
    np.testing.assert_allclose(fam.jacobian(0, 2 * x, (x,), {"scale": 3.0}).toarray(),
                               np.diag(np.full(3, 6.0)))

    class Family:
        def matrix(self, op, k, ans, args, kwargs):
            return sp.diags(np.full(np.size(ans), kwargs.get("c", 1.0) + k))

        def nnz(self, op, k, ans, args, kwargs):
            assert op is obj and kwargs == {"c": 2.0}
            return int(np.size(ans)) * (k + 1) + len(args)

    obj = defop("t_family_obj", lambda x, y, c=1.0: x + y, PASS_THROUGH, PASS_THROUGH,
                jac=Family())
    assert obj.jacobian_nnz(1, np.ones(4), (np.ones(4), np.ones(4)), {"c": 2.0}) == 10
    np.testing.assert_array_equal(obj.jacobian(1, np.ones(2), (1, 1), {"c": 2.0}).toarray(),
                                  3 * np.eye(2))


def test_argument_fit_for_plain_python_values():
    assert argument_fit(np.ones(2), 2.0) == ((2,), np.dtype(np.float64))
    assert argument_fit(2.0, np.ones(2)) == ((), np.dtype(np.float64))
    assert argument_fit(3, np.float64(1.0)) == ((), np.dtype(np.int64))
    g = Graph()
    t = g.input(np.ones(2))
    assert argument_fit(np.ones(2), t) is None and argument_fit(t, np.ones(3)) is not None
    # complex gradients of complex arguments stay complex, also when summed down
    zg = np.array([[1.0 + 1.0j, 2.0], [3.0, 4.0 - 1.0j]])
    out = fit_to_argument(zg, (2,), np.dtype(np.complex128))
    np.testing.assert_array_equal(out, [4.0 + 1.0j, 6.0 - 1.0j])
    assert fit_to_argument(2.0, (), np.dtype(np.float64)) == 2.0


def test_views_are_noted_on_every_level():
    g = Graph()
    x = g.input(np.arange(6.0))
    y = anp.reshape(x, (2, 3))  # NumPy returns a view: noted with its base
    live = g.live_views()
    assert any(t is y for t in live) and any(t is x for t in live)
    z = anp.exp(x)  # a new array: not noted
    assert not any(t is z for t in g.live_views())

    def f(v):
        w = anp.reshape(v * 1.0, (2, 3))
        assert any(t is w for t in w._graph.live_views())
        return anp.sum(w ** 3)

    v = np.arange(6.0) / 6
    np.testing.assert_allclose(ardiff.hessian(f)(v), np.diag(6 * v), rtol=1e-12, atol=1e-14)


def test_lean_release_at_the_size_limit_and_names_the_node(monkeypatch):
    from ardiff.graph import ReleasedValueError

    monkeypatch.setattr(op_module, "RELEASE_MIN_BYTES", 32)
    g = Graph()
    g.lean = True
    a = g.input(np.arange(4.0))  # 32 bytes
    s1 = anp.sin(a)
    s2 = anp.sin(a * 1.0)  # the same op and traced position again (cached pattern)
    small = anp.sin(a[:3])  # 24 bytes: kept
    for s in (s1, s2):
        released = g.nodes[s._node].value
        assert type(released) is Released
        assert released.node == s._node and released.op_name == "sin"
    assert type(g.nodes[small._node].value) is np.ndarray
    with pytest.raises(ReleasedValueError, match=f"node {s1._node}"):
        np.asarray(g.nodes[s1._node].value) + 1


def test_keywords_reach_variadic_vjps_and_scale_factors(fresh_names):
    a, b = np.ones((2, 2)), np.ones((2, 3))
    op = OPS["concatenate"]
    ans = np.concatenate([a, b], axis=1)
    g = np.arange(10.0).reshape(2, 5)
    args = (a, b) if op.vjp is not None and len(op.vjps) == 0 else ([a, b],)
    np.testing.assert_array_equal(op.apply_vjp(1, ans, args, {"axis": 1}, g), g[:, 2:])
    np.testing.assert_array_equal(op.vjp_maker(0)(ans, *args, axis=1)(g), g[:, :2])
    fresh_names.append("t_scaled_kw")
    scaled = defop("t_scaled_kw", lambda x, k=1.0: k * x, Scale(lambda ans, x, k=1.0: k))
    x = np.array([1.0, 2.0])
    np.testing.assert_array_equal(scaled.apply_vjp(0, 3 * x, (x,), {"k": 3.0}, np.ones(2)),
                                  [3.0, 3.0])
    fresh_names.append("t_variadic_kw")
    variadic = defop("t_variadic_kw", lambda x, y, k=1.0: k * x * y,
                     vjp=lambda i, ans, x, y, k=1.0: (lambda g: g * k * (y if i == 0 else x)))
    np.testing.assert_array_equal(variadic.apply_vjp(0, x, (x, x), {"k": 2.0}, np.ones(2)),
                                  2 * x)
    np.testing.assert_array_equal(variadic.vjp_maker(1)(x, x, x, k=2.0)(np.ones(2)),
                                  2 * x)


def test_lean_patterns_of_a_new_op(monkeypatch, fresh_names):
    """The read pattern is worked out once per traced positions (and arity, for variadic
    ops), then reused: a new op's second call releases like its first."""
    monkeypatch.setattr(op_module, "RELEASE_MIN_BYTES", 0)
    fresh_names += ["t_lean_neg", "t_lean_sum"]
    neg = defop("t_lean_neg", np.negative, NEGATED, reads=((),))
    total = defop("t_lean_sum", lambda *xs: sum(xs),
                  vjp=lambda k, ans, *xs: (lambda g: g * xs[-1] / xs[-1]),
                  reads=lambda k, n: (n - 1,))
    g = Graph()
    g.lean = True
    a = g.input(np.arange(1.0, 5.0))
    s = anp.sin(a)
    for _ in range(2):
        out = neg(s)
        assert type(g.nodes[out._node].value) is Released
    two = total(a, s)  # reads argument 1 of 2: keeps s, releases the answer
    assert type(g.nodes[two._node].args[1]) is np.ndarray
    three = total(s, a, a * 2.0)  # reads argument 2 of 3: s (argument 0) is released
    node = g.nodes[three._node]
    assert type(node.args[0]) is Released and type(node.args[2]) is np.ndarray
    # the same traced positions (0, 1) at another arity: reads argument 2, so s goes
    again = total(a, s, np.ones(4))
    assert type(g.nodes[again._node].args[1]) is Released


def test_a_declared_scalar_form_reaches_compiled_scalar_programs(fresh_names):
    """`defop(scalar=...)` is kept on the op and is what `ardiff.compile` writes for a
    program of Python-float scalars: a cube declared with its scalar form compiles to
    `grad`'s bits on a second call (the replay), and an op without one does too (it
    keeps NumPy's path)."""
    fresh_names.extend(["t_cube_scalar", "t_cube_plain"])
    factor = Scale(lambda ans, x: 3.0 * x * x)
    with_form = defop("t_cube_scalar", lambda x: x * x * x, factor,
                      scalar=("{0} * {0} * {0}", ("3.0 * {0} * {0}",)))
    plain = defop("t_cube_plain", lambda x: x * x * x, factor)
    assert with_form.scalar == ("{0} * {0} * {0}", ("3.0 * {0} * {0}",))
    assert plain.scalar is None
    for op in (with_form, plain):
        def f(x, op=op):
            return op(x) * 2.0
        compiled = ardiff.compile(f)
        for x in (np.float64(0.7), np.float64(-1.3), np.float64(2.1)):
            got = compiled(x)
            assert np.float64(got).tobytes() == np.float64(ardiff.grad(f)(x)).tobytes()
            assert got == pytest.approx(6.0 * x * x, rel=1e-15)
