"""Lean recordings: a one-sweep gradient keeps only the forward values its VJPs read.

Truths: the gradients of a full recording (every value kept, the general solver
path) bit for bit, hand-written NumPy backward passes, and tracemalloc's count of
the bytes a hand-written RNN gradient holds.
"""

import tracemalloc

import numpy as np
import pytest

import ardiff
import ardiff.numpy as anp
from ardiff.graph import Released, ReleasedValueError
from ardiff.op import Scale, defop
from ardiff.recorder import TracedCall


def rnn(X):
    def f(Wx, Wh):
        h = anp.zeros((X.shape[1], Wh.shape[0]))
        for t in range(X.shape[0]):
            h = anp.tanh(X[t] @ Wx + h @ Wh)
        return anp.sum(h ** 2)
    return f


def rnn_by_hand(X, Wx, Wh):
    hs = [np.zeros((X.shape[1], Wh.shape[0]))]
    for t in range(X.shape[0]):
        hs.append(np.tanh(X[t] @ Wx + hs[-1] @ Wh))
    g = 2.0 * hs[-1]
    gWx, gWh = np.zeros_like(Wx), np.zeros_like(Wh)
    for t in range(X.shape[0] - 1, -1, -1):
        g = g * (1.0 - hs[t + 1] * hs[t + 1])
        gWx += X[t].T @ g
        gWh += hs[t].T @ g
        g = g @ Wh.T
    return gWx, gWh


def rnn_problem(steps=12, batch=16, inputs=8, hidden=64):
    rng = np.random.default_rng(1)
    X = rng.standard_normal((steps, batch, inputs))
    Wx = rng.standard_normal((inputs, hidden)) * 0.3
    return X, Wx, rng.standard_normal((hidden, hidden)) * 0.1


def test_a_lean_recording_keeps_exactly_what_the_vjps_read(monkeypatch):
    """The products and sums of an RNN step are released (matmul and add read
    neither their answers nor, here, each other), the tanh states are kept (tanh's
    VJP reads its answer; the next product reads the state), as is the output."""
    monkeypatch.setattr("ardiff.op.RELEASE_MIN_BYTES", 4096)  # the production threshold
    X, Wx, Wh = rnn_problem()  # 16 x 64 float64 states: 8 kB each
    call = TracedCall(rnn(X), (0, 1), (Wx, Wh), {}, lean=True)
    kinds = {}
    for node in call.graph.nodes:
        if not node.is_leaf:
            kinds.setdefault(node.op_name, set()).add(type(node.value).__name__)
    assert kinds["matmul"] == {"Released"}
    assert kinds["add"] == {"Released"}
    assert kinds["tanh"] == {"ndarray"}
    assert type(call.graph.nodes[-1].value) is not Released  # the output
    released = [n for n in call.graph.nodes if type(n.value) is Released]
    assert released[0].value.shape == (16, 64) and released[0].value.dtype == np.float64
    # a step's sum reads neither product: its argument slots hold their stand-ins
    add = next(n for n in call.graph.nodes if n.op_name == "add")
    assert all(type(a) is Released for a in add.args)


def test_lean_gradients_are_the_full_recordings_bits_and_the_hand_written_ones():
    X, Wx, Wh = rnn_problem()
    lean = ardiff.grad(rnn(X), argnum=(0, 1))(Wx, Wh)
    full = ardiff.grad(rnn(X), argnum=(0, 1), method="relax", schedule="parallel",
                       max_iter=100)(Wx, Wh)  # not one sweep: a full recording
    by_hand = rnn_by_hand(X, Wx, Wh)
    for a, b, c in zip(lean, full, by_hand):
        np.testing.assert_allclose(a, c, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(b, c, rtol=1e-12, atol=1e-14)
    plain = ardiff.grad(rnn(X), argnum=(0, 1), method="backprop")(Wx, Wh)
    # the same sweep on a full recording (trace, then backprop): same bits
    graph = ardiff.trace(rnn(X), Wx, Wh, argnum=(0, 1))
    traced = ardiff.backprop(graph).grads
    for a, b, c in zip(lean, plain, traced):
        assert a.tobytes() == b.tobytes() == c.tobytes()


def test_a_vjp_reading_a_released_value_names_the_node():
    """An op that declares its VJP reads only its answer, but reads its argument: the
    sweep stops with ReleasedValueError naming the released node, not a wrong number."""
    wrong = defop("test_lean_wrongly_declared_square", np.square,
                  Scale(lambda ans, x: 2.0 * x), reads=("ans",))

    def f(x):
        return anp.sum(wrong(x * 3.0))

    x = np.linspace(-1.0, 1.0, 4)
    with pytest.raises(ReleasedValueError, match=r"node 1 \(op multiply"):
        ardiff.grad(f)(x)
    # recorded in full (the triangular solver reads every value), the op is right
    np.testing.assert_allclose(ardiff.grad(f, method="triangular")(x), 18.0 * x)


def test_defop_checks_reads():
    with pytest.raises(ValueError, match="reads="):
        defop("test_lean_bad_reads", np.negative, Scale(lambda ans, x: -1.0),
              reads=(("answer",),))


def test_values_returned_to_the_user_are_kept():
    """The output of a lean recording is kept even when no VJP reads it."""
    def f(x):
        return anp.tanh(x) * 2.0  # multiply does not read its answer

    x = np.linspace(-1.0, 1.0, 600)
    vjp, value = ardiff.make_vjp(f)(x)
    np.testing.assert_array_equal(value, np.tanh(x) * 2.0)
    np.testing.assert_allclose(vjp(np.ones_like(x)), 2.0 * (1.0 - np.tanh(x) ** 2))
    np.testing.assert_allclose(vjp(2.0 * np.ones_like(x)), 4.0 * (1.0 - np.tanh(x) ** 2))
    val, g = ardiff.value_and_grad(lambda x: anp.sum(f(x)))(x)
    assert val == pytest.approx(np.sum(np.tanh(x) * 2.0))


def test_rnn_gradient_peak_memory_is_near_the_hand_written_code():
    """Issue 13's memory target: the peak of one RNN gradient within 1.3x of the
    hand-written forward and backward pass (tracemalloc counts NumPy's buffers)."""
    X, Wx, Wh = rnn_problem(steps=40, batch=16, inputs=32, hidden=128)
    grad = ardiff.grad(rnn(X), argnum=(0, 1))
    peaks = {}
    for name, fun in (("ardiff", lambda: grad(Wx, Wh)),
                      ("hand", lambda: rnn_by_hand(X, Wx, Wh))):
        fun()
        tracemalloc.start()
        fun()
        peaks[name] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peaks["ardiff"] <= 1.3 * peaks["hand"], peaks
