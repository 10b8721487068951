"""ardiff.nn: the fused dense op, the MLP, losses, optimisers and the training loop.

Truth comes from finite differences, closed forms and a hand-written NumPy backprop.
"""

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ardiff
import ardiff.scipy.special
from ardiff import nn, rules
from ardiff.solvers import compile_plan
from ardiff.testing import check_grads

RNG = np.random.default_rng(11)


@pytest.mark.parametrize("activation", ["tanh", "sigmoid", "linear", "relu"])
def test_dense_forward_and_gradients(activation):
    x = RNG.standard_normal((3, 4))
    W = RNG.standard_normal((4, 2))
    b = RNG.standard_normal(2)
    z = x @ W + b
    want = {"tanh": np.tanh(z), "sigmoid": 1 / (1 + np.exp(-z)), "linear": z,
            "relu": np.maximum(z, 0)}[activation]
    np.testing.assert_allclose(nn.dense(x, W, b, activation), want)
    c = RNG.standard_normal((3, 2))

    def f(x, W, b):
        return ardiff.numpy.sum(c * nn.dense(x, W, b, activation))

    order = 1 if activation == "relu" else 2  # relu'' is zero/undefined
    for argnum in range(3):
        check_grads(f, argnum=argnum, order=order)(x, W, b)
    # a single example (1-D input) and no bias
    check_grads(lambda W: ardiff.numpy.sum(nn.dense(x[0], W, None, activation) ** 2),
                order=1)(W)


def test_dense_jacobian_matches_vjps():
    x, W, b = RNG.standard_normal((2, 3)), RNG.standard_normal((3, 4)), RNG.standard_normal(4)
    h = nn.dense(x, W, b, "tanh")
    for k, arg in enumerate((x, W, b)):
        J = nn.dense_op.jac(k, h, x, W, b, activation="tanh").toarray()
        args = [x, W, b]

        def f(a, k=k):
            args_k = list(args)
            args_k[k] = a
            return nn.dense(*args_k, activation="tanh")

        want = ardiff.jacobian(f, method="backprop")(arg).reshape(h.size, arg.size)
        np.testing.assert_allclose(J, want, rtol=1e-12, atol=1e-14)


def test_dense_rejects_bad_input():
    with pytest.raises(ValueError, match="Unknown activation"):
        nn.dense(np.ones(2), np.ones((2, 2)), activation="swish")
    with pytest.raises(ValueError, match="does not fit"):
        nn.dense(np.ones((1, 3)), np.ones((2, 2)))
    with pytest.raises(ValueError, match="bias"):
        nn.dense(np.ones((1, 2)), np.ones((2, 2)), np.ones(3))


def numpy_backprop(model, x, t):
    """Independent reference: backprop written out for a relu/linear MLP, SSE loss."""
    hs = [x]
    for W, b, act in zip(model.weights, model.biases, model.activations()):
        z = hs[-1] @ W + b
        hs.append(np.maximum(z, 0) if act == "relu" else z)
    delta = 2 * (hs[-1] - t)
    grads = []
    for k in range(model.n_layers - 1, -1, -1):
        if model.activations()[k] == "relu":
            delta = delta * (hs[k + 1] > 0)
        grads = [hs[k].T @ delta, delta.sum(0)] + grads
        delta = delta @ model.weights[k].T
    return grads


def small_problem(n=32, d=6, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((n, d))
    y = (x[:, 0] + x[:, 1] > x[:, 2] + 0.5).astype(np.int64) + (x[:, 3] > 0.7)
    return x, y


def test_mlp_structure_and_backprop_gradients():
    model = nn.MLP((6, 8, 5, 3), seed=1, init_std=0.5)
    x, y = small_problem()
    t = nn.one_hot(y, 3)
    graph, out, params, layers = model.trace(x)
    assert [n.op_name for n in graph.nodes if not n.is_leaf] == ["dense"] * 3
    assert [p.node.name for p in params] == ["W1", "b1", "W2", "b2", "W3", "b3"]
    np.testing.assert_allclose(out.value, model.forward(x))
    plan = compile_plan(graph, out, params)
    assert len(plan.relaxing) == 2 and plan.max_depth == 2  # one relaxing node per hidden layer
    want = numpy_backprop(model, x, t)
    for method in (nn.backprop_method(), nn.relaxation(eta=1.0, steps=1, schedule="sequential")):
        got = nn.batch_gradients(model, x, t, "sse", method)
        for a, b in zip(got.grads, want):
            np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
        assert got.loss == pytest.approx(np.sum((model.forward(x) - t) ** 2))


def test_paper_relaxation_is_close_to_backprop_and_angles_measure_it():
    model = nn.MLP((6, 8, 5, 3), seed=1, init_std=0.5)
    x, y = small_problem()
    t = nn.one_hot(y, 3)
    exact = nn.batch_gradients(model, x, t, "sse", nn.backprop_method()).grads
    paper = nn.batch_gradients(model, x, t, "sse", nn.relaxation())  # eta .1, T 100, forward
    for a, b in zip(paper.grads, exact):
        assert np.linalg.norm(a - b) <= 0.05 * np.linalg.norm(b) + 1e-12
    angles = nn.gradient_angles(model, paper)
    assert len(angles) == 3 and angles[-1] < 1e-6 and 0 < max(angles) < 3
    fa = nn.batch_gradients(model, x, t, "sse", nn.relaxation(
        eta=1.0, steps=1, schedule="sequential", rules=rules.FeedbackAlignment()))
    assert max(nn.gradient_angles(model, fa)) > 10


@pytest.mark.parametrize("name", ["sse", "mse", "xent"])
def test_loss_derivatives_match_finite_differences(name):
    loss = nn.get_loss(name)
    out = RNG.standard_normal((4, 3))
    target = nn.one_hot(np.array([0, 2, 1, 2]), 3)
    check_grads(lambda o: loss(o, target), order=1)(out)
    g = ardiff.grad(lambda o: loss(o, target), method="backprop")(out)
    np.testing.assert_allclose(loss.grad(out, target), g, rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match="Unknown loss"):
        nn.get_loss("hinge")


def test_accuracy_and_one_hot():
    assert nn.accuracy(np.array([[0.1, 0.9], [0.8, 0.2]]), np.array([1, 1])) == 0.5
    assert nn.accuracy(np.array([[0.1, 0.9]]), np.array([[0.0, 1.0]])) == 1.0
    with pytest.raises(ValueError, match="labels must lie"):
        nn.one_hot(np.array([3]), 3)


def test_sgd_and_adam_steps():
    p, g = np.array([1.0, -2.0]), np.array([0.5, 0.25])
    q = p.copy()
    steps = nn.SGD(lr=0.1).step([q], [g])
    np.testing.assert_allclose(q, p - 0.1 * g)
    np.testing.assert_allclose(steps[0], -0.1 * g)
    opt, q = nn.SGD(lr=0.1, momentum=0.9), p.copy()
    opt.step([q], [g])
    opt.step([q], [g])
    np.testing.assert_allclose(q, p - 0.1 * g - (0.9 * 0.1 * g + 0.1 * g))
    # Adam against the textbook recursion (eps negligible here)
    opt, q = nn.Adam(lr=0.01, eps=1e-12), p.copy()
    m = v = np.zeros(2)
    want = p.copy()
    for t in range(1, 4):
        gt = g * t
        opt.step([q], [gt])
        m = 0.9 * m + 0.1 * gt
        v = 0.999 * v + 0.001 * gt ** 2
        want = want - 0.01 * (m / (1 - 0.9 ** t)) / np.sqrt(v / (1 - 0.999 ** t))
    np.testing.assert_allclose(q, want, rtol=1e-9)
    with pytest.raises(ValueError, match="learning rate"):
        nn.SGD(lr=0)


def test_training_learns_and_reports_per_epoch():
    x, y = small_problem(96)
    for method in (nn.backprop_method(), nn.relaxation(steps=30)):
        model = nn.MLP((6, 16, 3), seed=0, init_std=0.3)
        hist = nn.train(model, (x, y), (x[:20], y[:20]), method=method, epochs=3,
                        batch_size=16, optimizer=nn.Adam(lr=0.02), angle_every=2)
        assert hist.epoch == [0, 1, 2, 3] and len(hist.test_acc) == 4
        assert hist.train_loss[-1] < 0.7 * hist.train_loss[0]
        assert hist.train_acc[-1] > hist.train_acc[0]
        assert (len(hist.angles) > 0) == (method.solver == "relax")


def test_learned_feedback_moves_with_the_weights_during_training():
    x, y = small_problem(48)
    model = nn.MLP((6, 8, 5, 3), seed=0)
    W_before = [W.copy() for W in model.weights]
    lf = rules.LearnedFeedback(seed=1)
    nn.train(model, (x, y), method=nn.relaxation(eta=1.0, steps=1, schedule="sequential",
                                                 rules=lf), epochs=1, batch_size=16,
             optimizer=nn.SGD(lr=0.05))
    for k in (2, 3):  # B - W is constant under the Hebbian rule (same step as W)
        B0 = lf._draw(f"W{k}", W_before[k - 1])
        np.testing.assert_allclose(lf.B[f"W{k}"] - model.weights[k - 1], B0 - W_before[k - 1],
                                   atol=1e-12)
        assert not np.allclose(model.weights[k - 1], W_before[k - 1])


def test_interrupted_training_keeps_finished_epochs():
    x, y = small_problem(32)
    model = nn.MLP((6, 4, 3), seed=0)
    hist = nn.History()

    def stop(h):
        if len(h.epoch) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        nn.train(model, (x, y), method=nn.backprop_method(), epochs=5, batch_size=8, history=hist,
                 on_epoch=stop)
    assert hist.interrupted and hist.epoch == [0, 1]


def test_model_and_method_validation():
    with pytest.raises(ValueError, match="sizes"):
        nn.MLP((5,))
    with pytest.raises(ValueError, match="Unknown activation"):
        nn.MLP((2, 2), activation="gelu")
    with pytest.raises(ValueError, match="rules"):
        nn.Method(solver="backprop", rules=rules.NoDerivative())
    with pytest.raises(ValueError, match="steps"):
        nn.relaxation(steps=0)
    with pytest.raises(ValueError, match="features"):
        nn.train(nn.MLP((3, 2)), (np.ones((4, 2)), np.zeros(4, int)), epochs=1)


@settings(deadline=None)  # example count from the suite's hypothesis profile
@given(widths=st.lists(st.integers(1, 5), min_size=2, max_size=4),
       batch=st.integers(1, 4), activation=st.sampled_from(["tanh", "sigmoid", "linear"]),
       seed=st.integers(0, 2**16))
def test_fused_and_unfused_networks_agree(widths, batch, activation, seed):
    """The fused dense graph and the same network traced op by op give the same exact
    gradients, and the same input gradient under NoDerivative (which drops f' from the
    input edges of both)."""
    import ardiff.numpy as anp

    model = nn.MLP(widths, activation=activation, output_activation=activation, seed=seed,
                   init_std=0.7)
    rng = np.random.default_rng(seed)
    x, c = rng.standard_normal((batch, widths[0])), rng.standard_normal((batch, widths[-1]))
    acts = {"tanh": anp.tanh, "sigmoid": ardiff.scipy.special.expit, "linear": lambda z: z}

    def fused(x, params):
        h = x
        for W, b in zip(params[::2], params[1::2]):
            h = nn.dense(h, W, b, activation)
        return anp.sum(c * h)

    def unfused(x, params):
        h = x
        for W, b in zip(params[::2], params[1::2]):
            h = acts[activation](h @ W + b)
        return anp.sum(c * h)

    params = model.parameters()
    for options in ({"method": "backprop"}, {"rules": [rules.NoDerivative()]}):
        if activation == "linear" and "rules" in options:
            continue  # nothing nonlinear in the unfused graph: the rule would match nothing
        a = ardiff.grad(fused, argnum=(0, 1), **options)(x, params)
        b = ardiff.grad(unfused, argnum=(0, 1), **options)(x, params)
        np.testing.assert_allclose(a[0], b[0], rtol=1e-9, atol=1e-12)
        if "rules" not in options:  # weight updates differ under the rule (f' kept when fused)
            for ga, gb in zip(a[1], b[1]):
                np.testing.assert_allclose(ga, gb, rtol=1e-9, atol=1e-12)


def test_divergence_stops_training_and_is_reported():
    x, y = small_problem(64)
    model = nn.MLP((6, 8, 3), seed=0, init_std=1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # overflow on the way, expected
        hist = nn.train(model, (x, y), method=nn.backprop_method(), epochs=50, batch_size=8,
                        optimizer=nn.SGD(lr=1e4))
    assert hist.diverged is not None and hist.epoch[-1] < 50
    assert hist.diverged == 8 * (hist.epoch[-1] - 1) + hist.diverged % 8
    assert len(hist.epoch) == len(hist.train_acc) == len(hist.epoch_time)
