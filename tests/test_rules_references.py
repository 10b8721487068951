"""Local rules (ardiff/rules.py) on the cases test_rules.py leaves out.

Truth: each variant's fixed point written out by hand in NumPy with the rule's own
matrices substituted (W @ x and x @ W layouts, `dot`, untraced weights, shared
names, broadcasting through a nonlinearity), and the documented bookkeeping of the
rules (keys, seeds, scales, composition order).
"""

import numpy as np
import pytest

import ardiff
import ardiff.numpy as anp
from ardiff import rules
from ardiff.graph import Graph
from ardiff.op import OPS
from ardiff.solvers import compile_plan

RNG = np.random.default_rng(11)


def close(got, want):
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


def left_weight_net(op="matmul"):
    """out = sum(c * tanh(W @ x)) with a vector x: the weight is the left operand."""
    W = RNG.standard_normal((3, 4)) * 0.5
    x = RNG.standard_normal(4)
    c = RNG.standard_normal(3)
    g = Graph()
    xt = g.input(x, name="x")
    Wt = g.input(W, name="W")
    a = anp.matmul(Wt, xt) if op == "matmul" else anp.dot(Wt, xt)
    out = anp.sum(c * anp.tanh(a))
    return g, out, [xt, Wt], (W, x, c)


@pytest.mark.parametrize("op", ["matmul", "dot"])
def test_feedback_alignment_with_the_weight_on_the_left(op):
    g, out, wrt, (W, x, c) = left_weight_net(op)
    fa = rules.FeedbackAlignment(seed=2)
    res = ardiff.relax(g, out, wrt, rules=[fa])
    assert list(fa.B) == ["W"] and fa.B["W"].shape == W.shape
    B = fa.B["W"]
    t = np.tanh(W @ x)
    da = c * (1 - t * t)
    close(res.grads, [B.T @ da, np.outer(da, x)])
    assert not np.allclose(B, W)
    assert rules.weight_argnum(g, g.nodes[2]) == 0


def test_both_operands_weights_picks_the_right_one_and_weights_by_traced_value():
    A = RNG.standard_normal((3, 3)) * 0.5
    Wv = RNG.standard_normal((3, 3)) * 0.5
    g = Graph()
    a = g.input(A, name="A")
    w = g.input(Wv, name="W")
    out = anp.sum(anp.tanh(a @ w))
    node = g.nodes[2]
    assert rules.weight_argnum(g, node) == 1  # x @ W convention
    assert rules.weight_argnum(g, node, {"A"}) == 0
    assert rules.weight_argnum(g, node, {"nothing"}) is None
    fa = rules.FeedbackAlignment(seed=0, weights=[a])  # a traced value, not a name
    res = ardiff.relax(g, out, [a, w], rules=[fa])
    assert list(fa.B) == ["A"]
    t = np.tanh(A @ Wv)
    d = 1 - t * t
    # only W's gradient edge sees the edited A: A's own gradient stays exact
    close(res.grads, [d @ Wv.T, fa.B["A"].T @ d])


def test_computed_operand_is_not_a_weight_and_untraced_weights_are_keyed_by_node():
    W = RNG.standard_normal((4, 2)) * 0.5
    x = RNG.standard_normal((3, 4))
    g = Graph()
    xt = g.input(x, name="x")
    h = anp.tanh(xt)
    out = anp.sum(anp.sin(h @ W))  # W untraced: a constant operand
    node = g.nodes[2]
    assert rules.weight_argnum(g, node) == 1
    assert rules.weight_key(g, node, 1) == ("untraced", 2, 1)
    two = Graph()
    p = two.input(x, name="p")
    q = two.input(W, name="q")
    prod = anp.tanh(p) @ anp.tanh(q)  # neither operand is a leaf
    assert rules.weight_argnum(two, two.nodes[prod._node]) is None
    fa = rules.FeedbackAlignment(seed=1)
    res = ardiff.relax(g, out, [xt], rules=[fa])
    B = fa.B[("untraced", 2, 1)]
    a = np.tanh(x) @ W
    da = np.cos(a)
    close(res.grads, [(da @ B.T) * (1 - np.tanh(x) ** 2)])


def test_node_keys_names_duplicates_and_indices():
    g = Graph()
    a = g.input(np.ones(2), name="w")
    b = g.input(np.ones(2), name="w")
    c = g.input(np.ones(2), name="v")
    d = g.input(np.ones(2))
    assert rules.node_key(g, g.nodes[a._node]) == ("node", 0)
    assert rules.node_key(g, g.nodes[b._node]) == ("node", 1)
    assert rules.node_key(g, g.nodes[c._node]) == "v"
    assert rules.node_key(g, g.nodes[d._node]) == ("node", 3)
    g.input(np.ones(2), name="v")  # a second "v": the cached counts are refreshed
    assert rules.node_key(g, g.nodes[c._node]) == ("node", 2)


def test_feedback_matrix_draws():
    W = np.zeros((16, 3))
    fa = rules.FeedbackAlignment(seed=4)
    B = fa._draw("k", W)
    assert B.shape == W.shape
    assert 0.15 < np.std(B) < 0.35  # 1/sqrt(16) for an all-zero weight
    W32 = RNG.standard_normal((50, 40)).astype(np.float32) * 3.0
    B32 = fa._draw("k", W32)
    assert B32.dtype == np.float32 and 2.6 < np.std(B32) < 3.4
    assert 0.45 < np.std(rules.FeedbackAlignment(seed=4, scale=0.5)._draw("k", W32)) < 0.55
    # a weight that changes shape gets a new matrix of its shape
    g, out, wrt, (W0, x, c) = left_weight_net()
    fa = rules.FeedbackAlignment(seed=2)
    k, B0 = fa.feedback_matrix(g, g.nodes[2])
    assert k == 0 and B0.shape == (3, 4)
    assert fa.feedback_matrix(g, g.nodes[2])[1] is B0  # kept
    g2 = Graph()
    xt = g2.input(np.ones(5), name="x")
    Wt = g2.input(np.ones((2, 5)), name="W")
    anp.matmul(Wt, xt)
    assert fa.feedback_matrix(g2, g2.nodes[2])[1].shape == (2, 5)
    assert fa.feedback_matrix(g2, g2.nodes[0]) is None
    assert repr(fa) == "FeedbackAlignment(seed=2)"
    assert repr(rules.LearnedFeedback(seed=3)) == "LearnedFeedback(seed=3)"


def test_compose_merges_edits_earlier_rule_wins():
    g, out, wrt, (W, x, c) = left_weight_net()
    first, second = rules.FeedbackAlignment(seed=1), rules.FeedbackAlignment(seed=2)
    both = rules.compose(first, rules.compose(second, rules.NoDerivative(ops=["tanh"])))
    assert list(both) == [first, second, both.rules[2]]
    assert repr(both) == ("compose(FeedbackAlignment(seed=1), FeedbackAlignment(seed=2), "
                          "NoDerivative(ops=['tanh']))")
    res = ardiff.relax(g, out, wrt, rules=[both])
    B = first.B["W"]
    assert not np.allclose(B, second.B["W"])
    close(res.grads, [B.T @ c, np.outer(c, x)])  # B of the first rule, no tanh'
    with pytest.raises(ValueError, match="at least one rule"):
        rules.compose()
    assert isinstance(first + second, rules.Compose)
    # a list of rules: the first that matches an edge wins
    listed = ardiff.relax(g, out, wrt, rules=[rules.NoDerivative(ops=["tanh"]), first]).grads
    t = np.tanh(W @ x)
    close(listed, [B.T @ c, np.outer(c, x)])
    assert not np.allclose(np.outer(c, x), np.outer(c * (1 - t * t), x))


def test_no_derivative_undoes_broadcasting():
    """maximum(x[:, None], y[None, :]) passed through: each gradient sums the broadcast
    seed over the copied axis."""
    xv, yv = np.array([0.3, -1.0, 2.0]), np.array([0.5, -0.2])
    cv = RNG.standard_normal((3, 2))
    g = Graph()
    x = g.input(xv.reshape(3, 1), name="x")
    y = g.input(yv.reshape(1, 2), name="y")
    out = anp.sum(cv * anp.maximum(x, y))
    res = ardiff.relax(g, out, [x, y], rules=[rules.NoDerivative(ops=["maximum"])])
    close(res.grads, [cv.sum(axis=1, keepdims=True), cv.sum(axis=0, keepdims=True)])
    exact = ardiff.relax(g, out, [x, y]).grads
    assert not np.allclose(exact[0], res.grads[0])
    # an argument larger than the answer (a reduction) is not elementwise: untouched
    nd = rules.NoDerivative()
    h = Graph()
    v = h.input(np.array([0.1, 0.4]))
    from ardiff.scipy.special import logsumexp
    logsumexp(v)
    assert nd.edit(h, h.nodes[-1], 0) is None
    assert nd.edit(h, h.nodes[0], 0) is None  # a leaf
    assert repr(nd) == "NoDerivative()"
    assert rules.NoDerivative(ops=["tanh"]).edit(h, h.nodes[-1], 0) is None


def test_complex_edges_are_refused():
    g = Graph()
    x = g.input(np.array([0.5, -0.3]), name="x")
    out = anp.real(anp.sum(anp.tanh(x * (1 + 1j))))
    with pytest.raises(TypeError, match=r"Local rule edit \['derivative'\] on node 2 "
                                        r"\(op tanh, shape \(2,\)\).*real-valued graphs"):
        ardiff.relax(g, out, [x], rules=[rules.NoDerivative(ops=["tanh"])])


def test_learning_rules_and_learn():
    lf, lf2 = rules.LearnedFeedback(), rules.LearnedFeedback(seed=1)
    nd = rules.NoDerivative()
    assert rules.learning_rules(None) == []
    assert rules.learning_rules(lf) == [lf]
    assert rules.learning_rules(nd) == []
    assert rules.learning_rules([nd, lf]) == [lf]
    assert rules.learning_rules((lf, lf2)) == [lf, lf2]
    assert rules.learning_rules(rules.compose(nd, lf2)) == [lf2]
    assert rules.learning_rules([rules.compose(lf, nd), lf2]) == [lf, lf2]
    assert rules.learning_rules(rules.combined(seed=5))[0].seed == 5
    lf.B["k"] = np.zeros(2, dtype=np.float32)
    lf.learn({"k": np.array([0.5, 1.5]), "absent": np.ones(3)})
    assert lf.B["k"].dtype == np.float32 and list(lf.B) == ["k"]
    np.testing.assert_array_equal(lf.B["k"], [0.5, 1.5])


def test_nonlinear_ops_lists_the_flagged_ops():
    names = rules.nonlinear_ops()
    assert names == sorted(names)
    assert names == sorted(n for n, op in OPS.items() if op.nonlinear)
    assert "tanh" in names and "add" not in names and "matmul" not in names


def test_rules_change_only_the_relaxation_not_the_plan_without_rules():
    g, out, wrt, (W, x, c) = left_weight_net()
    plain = compile_plan(g, out, wrt)
    ruled = compile_plan(g, out, wrt, [rules.FeedbackAlignment(seed=0)])
    assert plain.graph is ruled.graph
    t = np.tanh(W @ x)
    close(ardiff.relax(g, out, wrt).grads, [W.T @ (c * (1 - t * t)),
                                             np.outer(c * (1 - t * t), x)])


def test_messages_defaults_and_caches():
    g = Graph()
    x = g.input(np.array([0.5, -0.3]), name="x")
    out = anp.real(anp.sum(anp.tanh(x * (1 + 1j))))
    with pytest.raises(TypeError) as info:
        ardiff.relax(g, out, [x], rules=[rules.NoDerivative(ops=["tanh"])])
    assert str(info.value) == (
        "Local rule edit ['derivative'] on node 2 (op tanh, shape (2,)): the relaxation's rule "
        "variants (feedback alignment, learned feedback, no derivative) are defined for "
        "real-valued graphs and this edge carries complex values. Relax complex graphs with "
        "the exact rule (no rules=), or apply the rule to a real part of the graph.")
    with pytest.raises(TypeError) as info:
        rules.compose(rules.NoDerivative(), 3)
    assert str(info.value) == ("compose() takes ardiff.rules.Rule objects, got 3; other rule "
                               "objects can be listed side by side in rules=[...].")
    with pytest.raises(ValueError, match=r"^compose\(\) needs at least one rule\.$"):
        rules.compose()
    # defaults and the arguments of combined()
    assert rules.FeedbackAlignment().seed == 0 and rules.FeedbackAlignment().scale is None
    both = rules.combined()
    assert both.rules[0].seed == 0 and both.rules[0].scale is None and both.rules[1].ops is None
    both = rules.combined(seed=3, scale=0.5, ops=["tanh"])
    assert (both.rules[0].seed, both.rules[0].scale, both.rules[1].ops) == (3, 0.5, ("tanh",))
    # a one-row zero weight: std 1/sqrt(1)
    assert 0.9 < np.std(rules.FeedbackAlignment(seed=1)._draw("k", np.zeros((1, 400)))) < 1.1
    # two weights, two matrices
    W1, W2 = RNG.standard_normal((3, 3)), RNG.standard_normal((3, 3))
    h = Graph()
    xs = h.input(RNG.standard_normal((2, 3)), name="xs")
    w1, w2 = h.input(W1, name="W1"), h.input(W2, name="W2")
    loss = anp.sum(anp.tanh(anp.tanh(xs @ w1) @ w2))
    fa = rules.FeedbackAlignment(seed=4)
    ardiff.relax(h, loss, [xs, w1, w2], rules=[fa])
    B1, B2 = fa.B["W1"], fa.B["W2"]
    assert not np.allclose(B1 / np.std(B1), B2 / np.std(B2))  # not one draw, rescaled
    # a member that matches nothing on a second graph is still found
    rule = rules.compose(rules.FeedbackAlignment(), rules.NoDerivative(ops=["tanh"]))
    ardiff.relax(h, loss, [xs, w1, w2], rules=[rule])
    k = Graph()
    y = k.input(RNG.standard_normal((2, 3)), name="y")
    v = k.input(W1, name="V")
    with pytest.raises(ValueError) as info:
        compile_plan(k, anp.sum(anp.sin(y @ v)), [y, v], [rule])
    assert str(info.value) == (f"{rule.rules[1]!r} (inside {rule!r}) matches no node of this "
                               "graph, so it would do nothing; remove it or check the graph.")
    # weight_argnum only for matmul/dot/dense
    add_node = k.nodes[anp.add(y, v[:2])._node]
    assert rules.weight_argnum(k, add_node) is None


def test_feedback_alignment_on_a_dense_layer_keeps_its_derivative():
    from ardiff.nn import dense

    W = RNG.standard_normal((3, 4)) * 0.5
    b = RNG.standard_normal(4)
    x = RNG.standard_normal((2, 3))
    c = RNG.standard_normal((2, 4))
    g = Graph()
    xt, Wt = g.input(x, name="x"), g.input(W, name="W")
    out = anp.sum(c * dense(xt, Wt, b, "tanh"))
    fa = rules.FeedbackAlignment(seed=6)
    res = ardiff.relax(g, out, [xt, Wt], rules=[fa])
    t = np.tanh(x @ W + b)
    da = c * (1 - t * t)
    close(res.grads, [da @ fa.B["W"].T, x.T @ da])


def test_no_derivative_leaves_reductions_along_an_axis():
    from ardiff.scipy.special import logsumexp

    g = Graph()
    v = g.input(RNG.standard_normal((3, 4)))
    logsumexp(v, axis=1)  # (3, 4) does not broadcast to (3,)
    assert rules.NoDerivative().edit(g, g.nodes[-1], 0) is None


def test_complex_on_either_end_of_an_edge_is_refused():
    # a complex value from a real input (x @ W with a complex constant W)
    g = Graph()
    x = g.input(RNG.standard_normal((2, 3)), name="x")
    W = RNG.standard_normal((3, 2)) + 1j * RNG.standard_normal((3, 2))
    out = anp.real(anp.sum(anp.matmul(x, W)))
    with pytest.raises(TypeError, match=r"^Local rule edit \['weight', 'weight_argnum'\] on "
                                        r"node 1 \(op matmul"):
        ardiff.relax(g, out, [x], rules=[rules.FeedbackAlignment()])
    # a real value from a complex argument (the modulus)
    h = Graph()
    y = h.input(np.array([0.5, -0.3]), name="y")
    out = anp.sum(anp.absolute(y * (1 + 1j)))
    with pytest.raises(TypeError, match=r"^Local rule edit \['derivative'\] on node 2 \(op "
                                        r"absolute"):
        ardiff.relax(h, out, [y], rules=[rules.NoDerivative(ops=["absolute"])])
