"""Local-rule variants on graphs that are not MLPs: a residual block and a small RNN.

The truth is the variant's fixed point written out by hand with NumPy (the rule's
own random matrices substituted), so every test can fail if a rule changes the
wrong edge, forgets broadcasting, or leaks into the weight update.
"""

import numpy as np
import pytest

import ardiff
import ardiff.numpy as anp
from ardiff import rules
from ardiff.nn import dense
from ardiff.solvers import compile_plan

RNG = np.random.default_rng(7)
X = RNG.standard_normal((3, 4))
W1 = 0.5 * RNG.standard_normal((4, 5))
W2 = 0.5 * RNG.standard_normal((5, 4))
C = RNG.standard_normal((3, 4))


def residual_block():
    """y = x + tanh(x @ W1) @ W2; loss = sum(c * y)."""
    g = ardiff.Graph()
    x = g.input(X, name="x")
    w1 = g.input(W1, name="W1")
    w2 = g.input(W2, name="W2")
    t = anp.tanh(x @ w1)
    y = x + t @ w2
    loss = anp.sum(C * y)
    return g, loss, [x, w1, w2], np.tanh(X @ W1)


def residual_truth(B1=W1, B2=W2, derivative=True):
    """Hand-written gradient of the residual block with feedback matrices B1, B2."""
    t = np.tanh(X @ W1)
    dt = C @ B2.T
    da = dt * (1 - t * t) if derivative else dt
    return [C + da @ B1.T, X.T @ da, t.T @ C]


def close(got, want):
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("solver", [dict(), dict(schedule="parallel", eta=0.7)])
def test_feedback_alignment_on_residual_block(solver):
    g, loss, wrt, _ = residual_block()
    fa = rules.FeedbackAlignment(seed=3)
    res = ardiff.relax(g, loss, wrt, rules=[fa], **solver)
    assert set(fa.B) == {"W1", "W2"}
    close(res.grads, residual_truth(fa.B["W1"], fa.B["W2"]))
    # and it really is different from the exact gradient
    assert not np.allclose(res.grads[0], residual_truth()[0])


def test_no_derivative_on_residual_block():
    g, loss, wrt, _ = residual_block()
    res = ardiff.relax(g, loss, wrt, rules=[rules.NoDerivative()])
    close(res.grads, residual_truth(derivative=False))


def test_compose_and_list_of_rules_agree_when_edges_differ():
    fa_a, fa_b = rules.FeedbackAlignment(seed=1), rules.FeedbackAlignment(seed=1)
    g, loss, wrt, _ = residual_block()
    composed = ardiff.relax(g, loss, wrt, rules=[fa_a + rules.NoDerivative()]).grads
    listed = ardiff.relax(g, loss, wrt, rules=[fa_b, rules.NoDerivative()]).grads
    want = residual_truth(fa_a.B["W1"], fa_a.B["W2"], derivative=False)
    close(composed, want)
    close(listed, want)


def test_weights_option_restricts_feedback_alignment():
    g, loss, wrt, _ = residual_block()
    fa = rules.FeedbackAlignment(seed=0, weights=["W2"])
    res = ardiff.relax(g, loss, wrt, rules=[fa])
    assert set(fa.B) == {"W2"}
    close(res.grads, residual_truth(W1, fa.B["W2"]))


def rnn(h0, W, U, xs, c):
    h = h0
    for x in xs:
        h = anp.tanh(h @ W + x @ U)
    return anp.sum(c * h)


RNN_ARGS = (RNG.standard_normal((2, 3)), 0.6 * RNG.standard_normal((3, 3)),
            0.6 * RNG.standard_normal((2, 3)), RNG.standard_normal((4, 2, 2)),
            RNG.standard_normal((2, 3)))


def rnn_truth(B=None, derivative=True):
    """Gradients w.r.t. (h0, W) of the RNN with feedback matrix B for W."""
    h0, W, U, xs, c = RNN_ARGS
    B = W if B is None else B
    hs = [h0]
    for x in xs:
        hs.append(np.tanh(hs[-1] @ W + x @ U))
    dh, dW = c, np.zeros_like(W)
    for t in range(len(xs), 0, -1):
        da = dh * (1 - hs[t] ** 2) if derivative else dh
        dW += hs[t - 1].T @ da
        dh = da @ B.T
    return dh, dW


def test_rules_on_small_rnn_through_the_api():
    # shared weight W used by four matmul nodes: one B for all of them (same key)
    fa = rules.FeedbackAlignment(seed=5, weights=None)
    g = ardiff.trace(rnn, *RNN_ARGS, argnum=(0, 1))
    W_node = g.inputs[1].node
    W_node.name = "W"
    res = ardiff.relax(g, g.output, g.inputs, rules=[fa])
    assert list(fa.B) == ["W"]
    close(res.grads, rnn_truth(fa.B["W"]))
    nd = ardiff.grad(rnn, argnum=(0, 1), rules=[rules.NoDerivative()])(*RNN_ARGS)
    close(nd, rnn_truth(derivative=False))


def test_learned_feedback_hebbian_update_on_rnn():
    g = ardiff.trace(rnn, *RNN_ARGS, argnum=(0, 1))
    g.inputs[1].node.name = "W"
    lf = rules.LearnedFeedback(seed=2)
    res = ardiff.relax(g, g.output, g.inputs, rules=[lf])
    B0 = lf.B["W"].copy()
    close(res.grads, rnn_truth(B0))
    lf.hebbian_update(res, lr=0.1)
    np.testing.assert_allclose(lf.B["W"], B0 - 0.1 * res.grads[1])
    # the next relaxation uses the learned matrix
    res2 = ardiff.relax(g, g.output, g.inputs, rules=[lf])
    close(res2.grads, rnn_truth(lf.B["W"]))
    lf.learn({"W": np.ones((3, 3)), "unknown": np.ones(2)})
    np.testing.assert_allclose(lf.B["W"], B0 - 0.1 * res.grads[1] + 1)


def test_combined_on_dense_residual_block():
    """Both edits act on the same edge of a fused dense node."""
    b = RNG.standard_normal(5)

    def block(x, Wa, Wb):
        return anp.sum(C * (x + dense(dense(x, Wa, b, "tanh"), Wb, None, "linear")))

    g = ardiff.trace(block, X, W1, W2)
    for t, name in zip(g.inputs, ["x", "W1", "W2"]):
        t.node.name = name
    rule = rules.combined(seed=4)
    res = ardiff.relax(g, g.output, g.inputs, rules=[rule])
    lf = rule.rules[0]
    t = np.tanh(X @ W1 + b)
    dt = C @ lf.B["W2"].T
    # input edge: no derivative and B; weight edge keeps f' (paper's code)
    close(res.grads, [C + dt @ lf.B["W1"].T, X.T @ (dt * (1 - t * t)), t.T @ C])


def test_rule_matching_nothing_raises():
    g = ardiff.Graph()
    x = g.input(np.ones(3))
    out = anp.sum(anp.sin(x) * 2.0)
    with pytest.raises(ValueError, match="FeedbackAlignment.*matches no node"):
        compile_plan(g, out, [x], [rules.FeedbackAlignment()])
    g2, loss2, wrt2, _ = residual_block()
    # the residual block has no reduction-only nonlinearity: restricting NoDerivative to
    # an op that is absent leaves it nothing to do
    with pytest.raises(ValueError, match="matches no node"):
        compile_plan(g2, loss2, wrt2, [rules.NoDerivative(ops=["sin"])])
    g3 = ardiff.Graph()
    a = g3.input(X)
    w = g3.input(W1)
    lin = anp.sum(a @ w)
    with pytest.raises(ValueError, match="NoDerivative.*inside compose"):
        compile_plan(g3, lin, [a, w], [rules.FeedbackAlignment() + rules.NoDerivative()])


def test_no_derivative_skips_reductions_and_checks_names():
    g = ardiff.Graph()
    x = g.input(np.array([0.1, 0.4]))
    from ardiff.scipy.special import logsumexp

    out = logsumexp(x)
    with pytest.raises(ValueError, match="matches no node"):
        compile_plan(g, out, [x], [rules.NoDerivative()])
    with pytest.raises(ValueError, match="unknown op name"):
        rules.NoDerivative(ops=["not-an-op"])
    assert "dense" in rules.nonlinear_ops() and "tanh" in rules.nonlinear_ops()


def test_feedback_matrices_are_seeded_and_scaled():
    W = 0.05 * RNG.standard_normal((40, 30))
    a, b, c = (rules.FeedbackAlignment(seed=s) for s in (0, 0, 1))
    Ba = a._draw("W1", W)
    np.testing.assert_array_equal(Ba, b._draw("W1", W))
    assert not np.allclose(Ba, c._draw("W1", W))
    assert not np.allclose(Ba, a._draw("W2", W))
    assert 0.8 < np.std(Ba) / np.std(W) < 1.2
    assert np.std(rules.FeedbackAlignment(scale=2.0)._draw("k", W)) > 1.5
    with pytest.raises(TypeError, match="Rule objects"):
        rules.compose(rules.NoDerivative(), object())


def test_weights_in_one_container_argument_get_separate_matrices():
    """ardiff.grad names every leaf of a list argument alike: each weight must still get
    its own B, stable when the function is traced again."""
    Wa, Wb = 0.5 * RNG.standard_normal((4, 4)), 0.5 * RNG.standard_normal((4, 4))

    def net(x, ws):
        return anp.sum(C * anp.tanh(anp.tanh(x @ ws[0]) @ ws[1]))

    fa = rules.FeedbackAlignment(seed=9)
    dx = ardiff.grad(net, rules=[fa])(X, [Wa, Wb])
    assert len(fa.B) == 2
    Ba, Bb = (fa.B[k] for k in sorted(fa.B))
    assert not np.allclose(Ba, Bb)
    h1 = np.tanh(X @ Wa)
    h2 = np.tanh(h1 @ Wb)
    want = (((C * (1 - h2 ** 2)) @ Bb.T) * (1 - h1 ** 2)) @ Ba.T
    np.testing.assert_allclose(dx, want, rtol=1e-10)
    np.testing.assert_allclose(ardiff.grad(net, rules=[fa])(X, [Wa, Wb]), dx)
    assert len(fa.B) == 2
