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
    sizes = (30, 40, 20, 5)
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
