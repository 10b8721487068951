"""Memory and thread safety of the user API.

* Many consecutive ``grad`` calls keep memory flat (measured with tracemalloc).
* A call frees its graph as soon as it returns: no reference cycle keeps the
  recorded forward values alive until the cyclic garbage collector happens to run.
* Tracing state is per call, never global, so ``grad`` from several threads at
  once gives each thread its own correct gradient.
"""

from __future__ import annotations

import gc
import sys
import threading
import tracemalloc
import weakref

import numpy as np
import pytest

import ardiff
import ardiff.numpy as anp
from ardiff.graph import unwrap

RNG = np.random.default_rng(1234)
W1 = RNG.standard_normal((3, 5)) * 0.5
B1 = RNG.standard_normal(5) * 0.1
W2 = RNG.standard_normal((5, 2)) * 0.5
XB = RNG.standard_normal((4, 3))
YB = RNG.standard_normal((4, 2))


def mlp_loss(params, x, y):
    """A small two-layer tanh MLP with squared error."""
    w1, b1, w2 = params
    hidden = anp.tanh(x @ w1 + b1)
    return anp.mean((hidden @ w2 - y) ** 2)


def mlp_grads_by_hand(params, x, y):
    """The same gradient written out with the chain rule in plain NumPy."""
    w1, b1, w2 = params
    pre = x @ w1 + b1
    hidden = np.tanh(pre)
    out = hidden @ w2
    d_out = 2.0 * (out - y) / out.size
    d_hidden = d_out @ w2.T
    d_pre = d_hidden * (1.0 - hidden ** 2)
    return [x.T @ d_pre, d_pre.sum(axis=0), hidden.T @ d_out]


@pytest.fixture
def gc_paused():
    """Run a block with the cyclic garbage collector off (restored afterwards)."""
    was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


# -- memory ---------------------------------------------------------------------------
def tiny_mlp_loss(params, x, y):
    """The smallest MLP: one tanh hidden layer, no biases, squared error."""
    w1, w2 = params
    return anp.mean((anp.tanh(x @ w1) @ w2 - y) ** 2)


def test_ten_thousand_grad_calls_keep_memory_flat():
    params = (W1, W2)
    grad = ardiff.grad(tiny_mlp_loss)
    hidden = np.tanh(XB @ W1)
    d_out = 2.0 * (hidden @ W2 - YB) / YB.size
    expected = (XB.T @ ((d_out @ W2.T) * (1.0 - hidden ** 2)), hidden.T @ d_out)
    for _ in range(500):  # warm caches (op dispatch tables, NumPy internals)
        grad(params, XB, YB)
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        growth = []
        for i in range(10_000):
            got = grad(params, XB, YB)
            if i % 1000 == 999:
                growth.append(tracemalloc.get_traced_memory()[0] - base)
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g, e, rtol=1e-12, atol=1e-15)
    # CPython's free lists (up to 2000 tuples of each length, floats, dicts, ...) fill
    # up during the first 2000 traced calls and then stay full: tracemalloc counts their
    # blocks as live, a bounded one-off (about 0.2 MB measured).  From then on memory
    # must stay flat: a leak of even two bytes per call would add 16 kB over the last
    # 8000 calls (measured: a few hundred bytes).
    assert growth[-1] - growth[1] < 16_000, f"traced memory per 1000 calls: {growth}"
    assert max(growth) < 512_000, growth
    assert peak < 1_000_000, peak


def test_consecutive_calls_leave_no_garbage_cycles(gc_paused):
    """With the cyclic collector off, nothing survives a call: reference counting alone
    frees every graph, node, plan and closure."""
    grad = ardiff.grad(mlp_loss)
    for _ in range(20):
        grad([W1, B1, W2], XB, YB)
    before = len(gc.get_objects())
    for _ in range(500):
        grad([W1, B1, W2], XB, YB)
    assert len(gc.get_objects()) - before < 50


def _graph_spy():
    """A loss that remembers (weakly) the graph it was traced into."""
    seen = []

    def loss(x):
        seen.append(weakref.ref(x.graph))
        return anp.sum(anp.tanh(x) ** 2 * anp.sin(x))

    return loss, seen


@pytest.mark.parametrize("make", [
    lambda f: ardiff.grad(f),
    lambda f: ardiff.grad(f, schedule="parallel", eta=0.5),
    lambda f: ardiff.grad(f, init="forward", eta=0.7),
    lambda f: ardiff.grad(f, method="backprop"),
    lambda f: ardiff.grad(f, method="triangular"),
    lambda f: (lambda x: ardiff.value_and_grad(f)(x)[1]),
    lambda f: ardiff.elementwise_grad(f),
    lambda f: ardiff.jacobian(f),
    lambda f: ardiff.hessian(f),
    lambda f: ardiff.grad(lambda x: anp.sum(ardiff.grad(f)(x))),
], ids=["grad", "parallel", "forward-init", "backprop", "triangular", "value_and_grad",
        "elementwise_grad", "jacobian", "hessian", "grad-of-grad"])
def test_graph_is_freed_when_the_result_is_returned(make, gc_paused):
    loss, seen = _graph_spy()
    result = make(loss)(np.array([0.3, -0.8, 1.1]))
    assert np.all(np.isfinite(result))
    assert seen, "the loss was not traced"
    assert all(ref() is None for ref in seen), "a graph outlived the call"


def test_make_vjp_keeps_its_graph_exactly_as_long_as_the_vjp(gc_paused):
    loss, seen = _graph_spy()
    vjp, value = ardiff.make_vjp(loss)(np.array([0.3, -0.8]))
    assert seen[0]() is not None  # needed: vjp relaxes the recorded graph again
    first = vjp(1.0)
    np.testing.assert_allclose(vjp(2.0), 2.0 * first)
    del vjp
    assert seen[0]() is None


def test_forward_values_die_with_the_graph(gc_paused):
    """A large intermediate array is released when grad returns."""
    kept = []

    def loss(x):
        big = anp.outer(x, x) * 2.0
        kept.append(weakref.ref(unwrap(big)))  # the array (the node may hold a stand-in)
        return anp.mean(anp.tanh(big))

    ardiff.grad(loss)(np.linspace(-1.0, 1.0, 300))
    assert kept[0]() is None


def test_user_graph_is_freed_after_relax(gc_paused):
    g = ardiff.Graph()
    x = g.input(np.array([0.5, -0.25]), name="x")
    loss = anp.sum(anp.exp(x) * x)
    result = ardiff.relax(g, loss, [x])
    np.testing.assert_allclose(result.grads[0], np.exp([0.5, -0.25]) * (1 + np.array([0.5, -0.25])))
    ref = weakref.ref(g)
    del g, x, loss
    assert ref() is not None  # the Result keeps its plan, and the plan its graph
    del result
    assert ref() is None


# -- threads --------------------------------------------------------------------------
def _sin_sum(x):
    return anp.sum(anp.sin(x) * x)


def _poly(x):
    return anp.sum(x ** 3 - 2.0 * x)


def _softplus(x):
    return anp.sum(anp.logaddexp(0.0, x))


CASES = [
    (_sin_sum, lambda x: np.cos(x) * x + np.sin(x), {}),
    (_poly, lambda x: 3 * x ** 2 - 2.0, {"schedule": "parallel", "eta": 0.6}),
    (_softplus, lambda x: 1.0 / (1.0 + np.exp(-x)), {"method": "backprop"}),
    (lambda x: mlp_loss([x, B1, W2], XB, YB),
     lambda x: mlp_grads_by_hand([x, B1, W2], XB, YB)[0], {"init": "forward", "eta": 0.9}),
]


def test_grad_from_four_threads_at_once():
    old_interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible: maximal interleaving
    barrier = threading.Barrier(len(CASES))
    errors: list = []
    counts = [0] * len(CASES)

    def work(k):
        fun, truth, options = CASES[k]
        grad = ardiff.grad(fun, **options)
        rng = np.random.default_rng(k)
        try:
            barrier.wait()
            for _ in range(60):
                x = rng.standard_normal((3, 5)) if k == 3 else rng.standard_normal(4)
                np.testing.assert_allclose(grad(x), truth(x), rtol=1e-9, atol=1e-12)
                counts[k] += 1
        except BaseException as exc:  # noqa: BLE001  (reported in the main thread)
            errors.append((k, exc))

    threads = [threading.Thread(target=work, args=(k,)) for k in range(len(CASES))]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
    finally:
        sys.setswitchinterval(old_interval)
    assert not errors, errors
    assert counts == [60] * len(CASES)


def test_higher_order_in_threads_does_not_mix_levels():
    """Nested graphs get levels from a shared counter; concurrent hessians stay right."""
    results: dict = {}

    def work(k):
        a = float(k + 1)
        hess = ardiff.hessian(lambda x: anp.sum(a * x ** 3))
        results[k] = [hess(np.array([1.0, 2.0])) for _ in range(15)]

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    for k in range(4):
        expected = np.diag(6.0 * (k + 1) * np.array([1.0, 2.0]))
        for h in results[k]:
            np.testing.assert_allclose(h, expected, rtol=1e-12)
