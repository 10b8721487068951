"""A gradient handed to the user is never a buffer a later call writes (issue 27).

Each case keeps the first call's gradient, calls again with other data, and checks that
the first gradient still holds the value of a hand-written backward pass at the first
point (and the second call's, at the second point).  Independent truth: NumPy forward
and backward passes written out here.
"""

from __future__ import annotations

import numpy as np
import pytest

import ardiff
import ardiff.numpy as anp
from ardiff.extend import defvjp, primitive
from ardiff.ops.linalg import POOL_MIN_BYTES, free_buffer, pooled_matmul


def mlp_loss(params, X, Y):
    h = X
    for k in range(0, len(params), 2):
        h = h @ params[k] + params[k + 1]
        if k < len(params) - 2:
            h = anp.maximum(h, 0.0)
    return anp.sum((h - Y) ** 2)


def mlp_by_hand(params, X, Y):
    hs, pre, h = [X], [], X
    for k in range(0, len(params), 2):
        a = h @ params[k] + params[k + 1]
        pre.append(a)
        h = np.maximum(a, 0.0) if k < len(params) - 2 else a
        hs.append(h)
    g = 2.0 * (hs[-1] - Y)
    grads = [None] * len(params)
    for k in range(len(params) - 2, -1, -2):
        if k < len(params) - 2:
            g = g * (pre[k // 2] > 0)
        grads[k] = hs[k // 2].T @ g
        grads[k + 1] = g.sum(0)
        g = g @ params[k].T
    return grads


def problem(seed):
    rng = np.random.default_rng(seed)
    sizes = (300, 200, 20, 5)  # the first weight's gradient (480 kB) is a pooled product
    params = []
    for n, m in zip(sizes[:-1], sizes[1:]):
        params += [rng.normal(0.0, 0.3, (n, m)), rng.normal(0.0, 0.1, m)]
    return params, rng.random((16, sizes[0])), rng.random((16, sizes[-1]))


@pytest.mark.parametrize("make", [lambda f: ardiff.grad(f),
                                  lambda f: ardiff.compile(f),
                                  lambda f: (lambda *a: ardiff.value_and_grad(f)(*a)[1])],
                         ids=["grad", "compile", "value_and_grad"])
def test_the_first_calls_gradient_survives_the_next_call(make):
    gradient = make(mlp_loss)
    first_point, second_point = problem(1), problem(2)
    first = gradient(*first_point)
    kept = [np.array(g, copy=True) for g in first]
    second = gradient(*second_point)
    for mine, copy, truth in zip(first, kept, mlp_by_hand(*first_point)):
        np.testing.assert_array_equal(mine, copy)
        np.testing.assert_allclose(mine, truth, rtol=1e-12, atol=1e-12)
    for mine, truth in zip(second, mlp_by_hand(*second_point)):
        np.testing.assert_allclose(mine, truth, rtol=1e-12, atol=1e-12)
    assert not any(np.shares_memory(a, b) for a in first for b in second)


def test_a_primitives_gradient_survives_the_next_call():
    @primitive
    def logsumexp(x):
        top = np.max(x)
        return top + np.log(np.sum(np.exp(x - top)))

    defvjp(logsumexp, lambda ans, x: lambda g: anp.full(x.shape, g) * anp.exp(x - ans))
    gradient = ardiff.grad(lambda y: anp.sum(logsumexp(y ** 2)))

    def by_hand(y):
        e = np.exp(y ** 2 - np.max(y ** 2))
        return e / e.sum() * 2.0 * y

    a, b = np.linspace(-1.0, 1.0, 10), np.linspace(0.5, -2.0, 10)
    first = gradient(a)
    kept = first.copy()
    second = gradient(b)
    np.testing.assert_array_equal(first, kept)
    np.testing.assert_allclose(first, by_hand(a), rtol=1e-12)
    np.testing.assert_allclose(second, by_hand(b), rtol=1e-12)
    # the sum's adjoint is a new array for small inputs: the gradient may be written
    first[0] = 99.0
    np.testing.assert_allclose(gradient(a), by_hand(a), rtol=1e-12)


def test_a_shared_weights_gradient_sums_pooled_products():
    # h_{t+1} = tanh(h_t @ W), loss = sum(h_T ** 2): W's gradient sums one product per
    # step (512 kB each, pooled), against the hand-written recurrence
    rng = np.random.default_rng(4)
    W, h0 = rng.normal(0.0, 0.05, (256, 256)), rng.standard_normal((8, 256))

    def loss(W):
        h = h0
        for _ in range(3):
            h = anp.tanh(h @ W)
        return anp.sum(h ** 2)

    def by_hand(W):
        hs = [h0]
        for _ in range(3):
            hs.append(np.tanh(hs[-1] @ W))
        g, total = 2.0 * hs[-1], np.zeros_like(W)
        for t in range(3, 0, -1):
            g = g * (1.0 - hs[t] ** 2)
            total += hs[t - 1].T @ g
            g = g @ W.T
        return total

    first = ardiff.grad(loss)(W)
    kept = first.copy()
    second = ardiff.grad(loss)(W * 0.5)
    np.testing.assert_array_equal(first, kept)
    np.testing.assert_allclose(first, by_hand(W), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(second, by_hand(W * 0.5), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.complex128])
def test_pooled_products_are_numpys_bits_and_never_shared_while_held(dtype):
    rng = np.random.default_rng(5)
    a = rng.standard_normal((64, 784)).astype(dtype).T  # a transposed view, as VJPs pass
    b = rng.standard_normal((64, 300)).astype(dtype)
    assert a.shape[0] * b.shape[1] * np.dtype(dtype).itemsize >= POOL_MIN_BYTES
    held = pooled_matmul(a, b)
    np.testing.assert_array_equal(held.view(np.uint8), np.matmul(a, b).view(np.uint8))
    kept = held.copy()
    view = held[:10]
    first_id = id(held)
    del held
    other = pooled_matmul(a, 2 * b)  # the first product is still referenced (by a view)
    assert not np.shares_memory(view, other)
    np.testing.assert_array_equal(view, kept[:10])
    base = view.base
    del view, base
    again = free_buffer(other.shape, other.dtype)  # the first buffer, free again
    assert id(again) == first_id and not np.shares_memory(again, other)
    small_a, small_b = b[:, :4].T, b[:, :4]  # 4 x 4: below the threshold, NumPy's own
    np.testing.assert_array_equal(pooled_matmul(small_a, small_b), np.matmul(small_a, small_b))
