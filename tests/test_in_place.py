"""Augmented assignment on traced arrays: NumPy's semantics, or a clear refusal.

Each program is plain NumPy code.  Run on plain arrays it gives NumPy's own answer; run
under `ardiff.grad` the traced answer must equal it, and the gradient must equal central
finite differences of the plain program.  Where ardiff cannot follow NumPy (an update
written through a view, an update of the function's own argument) it must raise.
"""

from __future__ import annotations

import numpy as np
import pytest

import ardiff
import ardiff.numpy as anp
from ardiff.graph import TracingError

X = np.array([0.7, -1.3, 2.1])


def central_differences(fun, x, h=1e-6):
    grad = np.zeros_like(x)
    for i in range(x.size):
        step = np.zeros_like(x)
        step.flat[i] = h
        grad.flat[i] = (fun(x + step) - fun(x - step)) / (2 * h)
    return grad


def assert_follows_numpy(fun, x=X):
    value, grad = ardiff.value_and_grad(fun)(x)
    assert value == pytest.approx(fun(x.copy()), rel=1e-12)
    np.testing.assert_allclose(grad, central_differences(fun, x), rtol=1e-6, atol=1e-8)


def aliased_add(x):
    y = x * 1.0
    z = y  # another name for the same array
    y += 1.0
    return np.sum(z * y)


def aliased_every_operator(x):
    y = x * 1.0
    names = [y]  # a container holding the array sees the updates too
    y += x
    y -= 0.5
    y *= x
    y /= 3.0
    y **= 2
    y %= 5.0
    return np.sum(names[0] * x) + np.sum(y)


def aliased_matmul(x):
    m = np.outer(x, x) + np.eye(3)
    a = m * 1.0
    keep = a
    a @= m
    return np.sum(keep * m)


def updated_in_a_loop(x):
    total = x * 0.0  # (a plain np.zeros on the left of += is issue 21's in-place write)
    alias = total
    for k in range(3):
        total += np.sin(x * (k + 1))
    return np.sum(alias ** 2)


def copies_keep_their_value(x):
    y = x * 2.0
    copies = [y.copy(), +y, np.nan_to_num(y)]
    y += 10.0
    return sum(np.sum(c * x) for c in copies) + np.sum(y)


def scalar_rebinds(x):
    s = np.sum(x ** 2)  # a NumPy scalar is immutable: `s += 1` rebinds s
    t = s
    s += 1.0
    s *= x[0]
    return s * t


def float32_stays_float32(x):
    y = (x * 1.0).astype(np.float32)
    y += x  # float64 right-hand side: NumPy casts the result back to float32
    assert y.dtype == np.float32
    return np.sum(y.astype(np.float64) ** 2)


@pytest.mark.parametrize("fun", [aliased_add, aliased_every_operator, aliased_matmul,
                                 updated_in_a_loop, copies_keep_their_value, scalar_rebinds],
                         ids=lambda f: f.__name__)
def test_updates_follow_numpy(fun):
    assert_follows_numpy(fun)


def test_issue_example_gives_numpy_value():
    # the issue's program: rebinding gave 2.0 at x = 1, NumPy gives 4.0
    value, grad = ardiff.value_and_grad(aliased_add)(np.array([1.0]))
    assert value == 4.0
    np.testing.assert_allclose(grad, [4.0])  # d/dx (x + 1) ** 2


def test_result_dtype_cast_back_as_numpy():
    value, grad = ardiff.value_and_grad(float32_stays_float32)(X)
    assert value == pytest.approx(float32_stays_float32(X.copy()), rel=1e-6)
    np.testing.assert_allclose(grad, 8 * X, rtol=1e-5)


def test_update_that_would_broadcast_the_target_is_refused_as_numpy():
    def grow(x):
        y = x * 1.0
        y += np.ones((2, 3))
        return np.sum(y)

    with pytest.raises(ValueError, match="non-broadcastable output operand"):
        grow(X.copy())
    with pytest.raises(ValueError, match="non-broadcastable output operand"):
        ardiff.grad(grow)(X)


def test_unsafe_cast_is_refused_as_numpy():
    def to_complex(x):
        y = x * 1.0
        y += 1j * x
        return np.sum(np.real(y))

    with pytest.raises(TypeError):
        to_complex(X.copy())
    with pytest.raises(TypeError, match="same_kind"):
        ardiff.grad(to_complex)(X)


def test_second_order_through_updates():
    def fun(x):
        y = x * 1.0
        z = y
        y *= x
        return np.sum(z * y)  # sum(x ** 4)

    np.testing.assert_allclose(ardiff.hessian(fun)(X), np.diag(12 * X ** 2), rtol=1e-12)


def test_compiled_replay_of_an_aliased_update():
    compiled = ardiff.compile(aliased_add)
    for x in (X, X + 1.0, 2.0 * X):
        np.testing.assert_allclose(compiled(x), 2 * (x + 1.0), rtol=1e-12)


@pytest.mark.parametrize("program, reason", [
    (lambda x: _update_argument(x), "that is an argument of the traced function"),
    (lambda x: _update_view_of_argument(x), "shares memory with an argument"),
    (lambda x: _update_viewed_array(x), "shares memory with another traced array"),
    (lambda x: _update_view_of_two(x), "shares memory with another traced array"),
])
def test_updates_ardiff_cannot_follow_are_refused(program, reason):
    with pytest.raises(TracingError, match=reason) as info:
        ardiff.grad(program)(X)
    assert "x = x + v" in str(info.value)
    assert "test_in_place.py" in str(info.value)  # names the user's line


def _update_argument(x):
    x += 1.0
    return np.sum(x)


def _update_view_of_argument(x):
    grid = x.reshape(3, 1)
    grid += 1.0  # NumPy changes the caller's x
    return np.sum(grid)


def _update_view_of_two(x):
    y = x * 1.0
    head, first = y[:2], y[:1]  # two live views overlap the written part
    head += 1.0
    return np.sum(y * first[0]) + np.sum(head)


def _update_viewed_array(x):
    y = x * 1.0
    flipped = y.T
    y += 1.0  # NumPy changes flipped too
    return np.sum(flipped * y)


def test_floor_division_update_is_refused_on_arrays():
    def fun(x):
        y = x * 1.0
        y //= 2.0
        return np.sum(y)

    with pytest.raises(TracingError, match="x = x // v"):
        ardiff.grad(fun)(X)


def test_ardiff_copies_are_new_arrays():
    import ardiff.numpy as anp

    def fun(x):
        y = x * 2.0
        kept = [anp.array(y), y.copy(), +y]
        same = anp.asarray(y)  # no copy in NumPy: sees the update
        y += 10.0
        return sum(anp.sum(k * x) for k in kept) + anp.sum(same * x)

    # three copies of 2x and the updated array 2x + 10
    np.testing.assert_allclose(ardiff.grad(fun)(X), 3 * 4 * X + 4 * X + 10.0, rtol=1e-12)


def view_of_a_temporary(x):
    # fluidsim's pattern (autograd's examples): the base of the view is gone, so NumPy's
    # write into it is seen by nobody and the update follows NumPy
    grid = np.reshape(np.sin(x) * 2.0, (3, 1))
    grid -= 0.5 * np.roll(grid, 1, axis=0)
    return np.sum(grid ** 2)


def view_whose_base_was_dropped(x):
    y = x * 3.0
    head = y[:2]
    del y  # the only other name of the base
    head *= 2.0
    return np.sum(head * x[:2])


@pytest.mark.parametrize("fun", [view_of_a_temporary, view_whose_base_was_dropped],
                         ids=lambda f: f.__name__)
def test_update_of_a_view_follows_numpy_when_nothing_else_sees_it(fun):
    assert_follows_numpy(fun)


def test_updates_near_views_are_checked_at_every_nesting_level():
    def refused(x):
        y = x * 1.0
        head = y[:2]
        y *= x  # head is alive: NumPy would change it
        return np.sum(head * y[:2])

    def follows(x):
        y = x * 1.0
        head = y[:2] * 1.0  # a copy: nothing shares y's memory
        y *= x
        return np.sum(head * y[:2])

    with pytest.raises(TracingError, match="shares memory with another traced array"):
        ardiff.hessian(refused)(X)
    # follows = sum(x[:2] ** 3): Hessian diag(6 x) on the first two entries
    expected = np.diag(np.r_[6 * X[:2], 0.0])
    np.testing.assert_allclose(ardiff.hessian(follows)(X), expected, rtol=1e-12)


def test_graph_notes_views_weakly():
    g = ardiff.Graph()
    y = g.input(np.arange(6.0)) * 1.0
    assert g.live_views() == []
    head = y[:3]                      # a view: noted
    assert any(t is head for t in g.live_views()) and any(t is y for t in g.live_views())
    copy = y[[0, 2]]                  # advanced indexing copies: not a view
    assert not any(t is copy for t in g.live_views())
    del head
    assert [id(t) for t in g.live_views()] == [id(y)]  # a dropped view is forgotten
    for _ in range(500):
        y.reshape(2, 3)
    assert [id(t) for t in g.live_views()] == [id(y)]


# -- item assignment and writes through views (issue 21, point 2) ----------------------------
def fill_loop(x):
    out = np.zeros_like(x)
    same = out
    for i in range(x.size):
        out[i] = np.sin(x[i]) * (i + 1)
    return np.sum(same * x)


def heat_stencil(x):
    # explicit finite differences on a grid updated slice by slice, in place
    u = np.zeros((4, x.size), like=x)
    u[0] = x
    for t in range(3):
        u[t + 1, 1:-1] = u[t, 1:-1] + 0.2 * (u[t, 2:] - 2 * u[t, 1:-1] + u[t, :-2])
        u[t + 1, 0] = u[t, 0]
        u[t + 1, -1] = u[t, -1]
    return np.sum(u[-1] ** 2)


def rnn_states(x):
    W = np.array([[0.5, -0.3, 0.1], [0.2, 0.4, -0.6], [-0.1, 0.3, 0.2]])
    states = np.zeros((4, 3), like=x)
    h = x * 1.0
    for t in range(4):
        h = np.tanh(W @ h + 0.1 * t)
        states[t] = h
    return np.sum(states ** 2)


def accumulate_into_items(x):
    y = x * 2.0
    for i in range(x.size):
        y[i] += x[i] ** 2        # y[i] = y[i] + ... through NumPy's protocol
    y[1:] *= 3.0
    y[[0, 2]] -= x[:2]           # advanced index: a copy, then assigned back
    return np.sum(y ** 2)


def write_through_a_row_view(x):
    grid = np.ones((2, 3), like=x) * x
    mask = grid > 1.0
    grid[mask] = grid[mask] ** 2  # boolean index
    row = grid[1]                # a view: writing it writes grid
    row[0] = 7.0 * x[0]
    row += x
    return np.sum(grid * row[2])


@pytest.mark.parametrize("fun", [fill_loop, heat_stencil, rnn_states, accumulate_into_items,
                                 write_through_a_row_view], ids=lambda f: f.__name__)
def test_item_writes_follow_numpy(fun):
    assert_follows_numpy(fun)


def test_heat_stencil_equals_its_functional_form():
    def functional(x):
        u = x
        for _ in range(3):
            inner = u[1:-1] + 0.2 * (u[2:] - 2 * u[1:-1] + u[:-2])
            u = np.concatenate([u[:1], inner, u[-1:]])
        return np.sum(u ** 2)

    np.testing.assert_allclose(ardiff.grad(heat_stencil)(X), ardiff.grad(functional)(X),
                               rtol=1e-13)


def test_item_writes_in_a_relaxation_and_compiled():
    exact = central_differences(fill_loop, X)
    for options in ({"schedule": "parallel", "eta": 0.5}, {"method": "triangular"}):
        np.testing.assert_allclose(ardiff.grad(fill_loop, **options)(X), exact, rtol=1e-6)
    compiled = ardiff.compile(fill_loop)
    for x in (X, X + 0.5):
        np.testing.assert_allclose(compiled(x), central_differences(fill_loop, x), rtol=1e-6)


def test_repeated_index_write_is_refused():
    def fun(x):
        y = x * 1.0
        y[[0, 0]] = x[1:]
        return np.sum(y)

    with pytest.raises(TracingError, match="repeated index"):
        ardiff.grad(fun)(X)


def test_item_write_into_a_numpy_scalar_is_refused_as_numpy():
    def fun(x):
        s = np.sum(x)
        s[()] = 1.0
        return s

    with pytest.raises(TypeError, match="does not support item assignment"):
        fun(X.copy())
    with pytest.raises(TypeError, match="does not support item assignment"):
        ardiff.grad(fun)(X)


def ufunc_out_arguments(x):
    y = x * 1.0
    alias = y
    np.multiply(y, x, out=y)           # out= a traced array: written as y[...] = y * x
    np.sin(y, out=y)
    returned = np.add(y, 1.0, out=y)   # returns out itself, as NumPy does
    return np.sum(alias * x) + np.sum(returned)


def test_ufunc_out_follows_numpy():
    assert_follows_numpy(ufunc_out_arguments)


def test_ufunc_out_into_a_plain_array_names_the_fix():
    def fun(x):
        a = np.zeros(3)
        np.add(a, x, out=a)
        return np.sum(a)

    with pytest.raises(TracingError, match=r"np\.add\(\.\.\., out=\.\.\.\).*plain.*like=x"):
        ardiff.grad(fun)(X)


def copyto_with_and_without_where(x):
    y = x * 1.0
    alias = y
    np.copyto(y, x ** 2)
    np.copyto(y, 3.0 * x, where=x > 0)
    return np.sum(alias * x)


def test_copyto_follows_numpy():
    assert_follows_numpy(copyto_with_and_without_where)


def test_copyto_refuses_what_numpy_refuses():
    def unsafe(x):
        y = (x * 1.0).astype(np.float32)
        np.copyto(y, x, casting="safe")  # float64 into float32 is not safe
        return np.sum(y)

    with pytest.raises(TypeError, match="Cannot cast"):
        unsafe(X.copy())
    with pytest.raises(TypeError, match="Cannot cast"):
        ardiff.grad(unsafe)(X)


@pytest.mark.parametrize("copy", [lambda u: u.copy(), lambda u: np.copy(u),
                                  lambda u: anp.array(u), lambda u: +u],
                         ids=["method", "np.copy", "anp.array", "positive"])
def test_a_copy_of_an_argument_is_writable_and_the_argument_is_not(copy):
    """`u = u.copy(); u[1:-1] += v` is what the refusal of a write into an argument
    advises: the copy holds its own memory, so NumPy's semantics allow the write; the
    caller's array stays as it was.  Both modes against central differences."""
    from ardiff.testing import check_grads

    def stencil(u, v):
        w = copy(u)
        w[1:-1] += v * w[:-2]
        np.multiply(w, 2.0, out=w)
        w[0] = v[0]
        return np.sum(w ** 2) + np.sum(u)

    u0, v0 = np.array([0.3, 1.0, -2.0, 0.5]), np.array([0.5, -1.5])
    before = u0.copy()
    check_grads(stencil, modes=["rev", "fwd"])(u0, v0)
    np.testing.assert_array_equal(u0, before)

    def writes_its_argument(u):
        u[1:-1] += 1.0
        return np.sum(u)

    with pytest.raises(TracingError, match="an argument of the traced function"):
        ardiff.grad(writes_its_argument)(u0)
    with pytest.raises(TracingError, match="an argument of the traced function"):
        ardiff.jvp(writes_its_argument, (u0,), (np.ones(4),))
    np.testing.assert_array_equal(u0, before)
