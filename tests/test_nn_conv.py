"""Tests of the fused convolution and pooling ops and the CNN of ``ardiff.nn``.

Every check is against an independent truth: direct loops over output positions
(forward), central finite differences (VJPs to second order, sparse Jacobians, the
CNN's parameter gradients), backprop (relaxation, triangular solve) and explicit
relaxation steps (the closed form on the CNN).  The property-based cases of the same
ops run in ``test_ops_conv``.
"""

from __future__ import annotations

import numpy as np
import pytest
from test_ops_conv import loop_conv

import ardiff
from ardiff import nn
from ardiff.nn.conv import conv2d
from ardiff.nn.pool import avg_pool2d, max_pool2d
from ardiff.op import OPS
from ardiff.testing import check_grads

RNG = np.random.default_rng(12)


def randn(*shape):
    return RNG.standard_normal(shape)


ACT = {"relu": lambda z: np.maximum(z, 0), "tanh": np.tanh, "linear": lambda z: z,
       "sigmoid": lambda z: 1 / (1 + np.exp(-z))}


def loop_layer(x, W, b, stride, padding, activation, pool, flatten):
    """The fused layer by loops: correlation, bias, activation, max pool, flatten."""
    h = ACT[activation](loop_conv(x, W, stride, padding) + b[None, :, None, None])
    if pool:
        n, c, height, width = h.shape
        pooled = np.zeros((n, c, height // pool, width // pool))
        for i in range(height // pool):
            for j in range(width // pool):
                pooled[:, :, i, j] = h[:, :, i * pool:(i + 1) * pool,
                                       j * pool:(j + 1) * pool].max(axis=(2, 3))
        h = pooled
    return h.reshape(h.shape[0], -1) if flatten else h


LAYERS = [  # (stride, padding, activation, pool, flatten)
    (1, 0, "relu", None, False), (2, 1, "tanh", None, False), (1, 1, "relu", 2, False),
    (1, 0, "sigmoid", 2, True), (2, 0, "linear", None, True), (1, 2, "tanh", 3, False),
]


@pytest.mark.parametrize("stride, padding, activation, pool, flatten", LAYERS)
def test_forward_equals_direct_loops(stride, padding, activation, pool, flatten):
    x, W, b = randn(2, 3, 9, 8), randn(4, 3, 3, 2), randn(4)
    got = conv2d(x, W, b, stride=stride, padding=padding, activation=activation, pool=pool,
                 flatten=flatten)
    want = loop_layer(x, W, b, stride, padding, activation, pool, flatten)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    # traced, the value is the same and the layer is one node
    graph = ardiff.trace(lambda W: conv2d(x, W, b, stride=stride, padding=padding,
                                          activation=activation, pool=pool,
                                          flatten=flatten), W)
    np.testing.assert_allclose(graph.output.value, want, rtol=1e-12, atol=1e-12)
    assert [n.op_name for n in graph.nodes if not n.is_leaf] == ["conv2d"]


def test_rectangular_stride_and_padding_pairs():
    x, W, b = randn(1, 2, 7, 9), randn(3, 2, 2, 3), randn(3)
    got = conv2d(x, W, b, stride=(2, 1), padding=(0, 1), activation="linear")
    xp = np.pad(x, ((0, 0), (0, 0), (0, 0), (1, 1)))
    want = np.zeros(got.shape)
    for i in range(got.shape[2]):
        for j in range(got.shape[3]):
            want[:, :, i, j] = np.einsum("nchw,fchw->nf", xp[:, :, 2 * i:2 * i + 2, j:j + 3],
                                         W) + b
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_pools_equal_direct_loops():
    x = randn(2, 3, 7, 6)
    for size in (2, 3):
        ph, pw = 7 // size, 6 // size
        mx, av = np.zeros((2, 3, ph, pw)), np.zeros((2, 3, ph, pw))
        for i in range(ph):
            for j in range(pw):
                window = x[:, :, i * size:(i + 1) * size, j * size:(j + 1) * size]
                mx[:, :, i, j], av[:, :, i, j] = window.max(axis=(2, 3)), window.mean(axis=(2, 3))
        np.testing.assert_allclose(max_pool2d(x, size), mx, rtol=1e-14)
        np.testing.assert_allclose(avg_pool2d(x, size), av, rtol=1e-12, atol=1e-15)


# -- derivatives against finite differences ---------------------------------------------
@pytest.mark.parametrize("stride, padding, activation, pool, flatten",
                         [c for c in LAYERS if c[2] != "linear"])
@pytest.mark.parametrize("argnum", [0, 1, 2])
def test_vjps_match_finite_differences_to_second_order(stride, padding, activation, pool,
                                                       flatten, argnum):
    # random normal data: no ReLU kink or pooling tie within the finite-difference step
    x, W, b = randn(2, 2, 7, 6), randn(3, 2, 3, 2), randn(3)

    def layer(x, W, b):
        h = conv2d(x, W, b, stride=stride, padding=padding, activation=activation, pool=pool,
                   flatten=flatten)
        return h * h  # a nonlinear readout, so second order sees the layer's Hessian

    check_grads(layer, argnum=argnum, order=2, modes=("rev", "fwd"))(x, W, b)


@pytest.mark.parametrize("pool_fn", [max_pool2d, avg_pool2d])
def test_pool_vjps_match_finite_differences(pool_fn):
    x = randn(2, 2, 5, 7)
    check_grads(lambda x: pool_fn(x, 2) ** 3, order=2, modes=("rev", "fwd"))(x)


def test_max_pool_derivative_goes_to_the_first_largest_entry():
    x = np.array([[[[1.0, 3.0], [3.0, 0.0]]]])
    g = ardiff.grad(lambda x: max_pool2d(x, 2).sum())(x)
    np.testing.assert_array_equal(g, [[[[0.0, 1.0], [0.0, 0.0]]]])


def test_third_order_through_the_vjp_ops():
    # the VJPs of the VJP ops are convolutions again: third derivatives along a line
    x, W, d = randn(1, 2, 5, 5), randn(2, 2, 3, 3), randn(2, 2, 3, 3)

    def f(t):
        return (conv2d(x, W + t * d, None, activation="tanh") ** 2).sum()

    d3 = ardiff.grad(ardiff.grad(ardiff.grad(f)))
    eps = 1e-4  # truncation error ~ eps**2 * f^(5): 1e-7 relative here
    d2 = ardiff.grad(ardiff.grad(f))
    fd = (d2(eps) - d2(-eps)) / (2 * eps)
    np.testing.assert_allclose(d3(0.0), fd, rtol=1e-6)


# -- sparse Jacobians against dense finite differences ---------------------------------
def fd_jacobian(fun, args, k, eps=1e-6):
    base = [np.array(a, dtype=float) for a in args]
    cols = []
    for i in range(base[k].size):
        plus, minus = [a.copy() for a in base], [a.copy() for a in base]
        plus[k].flat[i] += eps
        minus[k].flat[i] -= eps
        cols.append((np.ravel(fun(*plus)) - np.ravel(fun(*minus))) / (2 * eps))
    return np.stack(cols, axis=1)


@pytest.mark.parametrize("stride, padding, activation, pool, flatten", LAYERS)
def test_conv_sparse_jacobian_equals_finite_differences(stride, padding, activation, pool,
                                                        flatten):
    x, W, b = randn(2, 2, 6, 5), randn(3, 2, 2, 3), randn(3)
    kwargs = dict(stride=stride, padding=padding, activation=activation, pool=pool,
                  flatten=flatten)
    ans = conv2d(x, W, b, **kwargs)
    for k in range(3):
        J = OPS["conv2d"].jacobian(k, ans, (x, W, b), kwargs)
        assert J is not None and J.shape == (ans.size, (x, W, b)[k].size)
        want = fd_jacobian(lambda *a: conv2d(*a, **kwargs), (x, W, b), k)
        np.testing.assert_allclose(J.toarray(), want, rtol=1e-6, atol=1e-7,
                                   err_msg=f"argument {k}")


@pytest.mark.parametrize("name, fn", [("max_pool2d", max_pool2d), ("avg_pool2d", avg_pool2d)])
def test_pool_sparse_jacobians_equal_finite_differences(name, fn):
    x = randn(2, 2, 5, 7)
    ans = fn(x, 2)
    J = OPS[name].jacobian(0, ans, (x,), {"size": 2})
    np.testing.assert_allclose(J.toarray(), fd_jacobian(lambda x: fn(x, 2), (x,), 0),
                               rtol=1e-6, atol=1e-8)


# -- the CNN: solvers against backprop, backprop against finite differences -------------
def tiny_cnn(seed=0):
    return nn.CNN((1, 10, 10), channels=(2, 3), kernel=3, pool=2, hidden=(5,), n_classes=4,
                  seed=seed)


def tiny_batch(model, n=3, seed=1):
    rng = np.random.default_rng(seed)
    return rng.random((n, model.sizes[0])), nn.one_hot(rng.integers(0, 4, n), 4)


def test_cnn_is_one_node_per_layer_and_matches_its_forward():
    model = tiny_cnn()
    x, _ = tiny_batch(model)
    graph, out, params, layers = model.trace(x)
    assert [n.op_name for n in graph.nodes if not n.is_leaf] == ["conv2d", "conv2d", "dense",
                                                                 "dense"]
    np.testing.assert_allclose(out.value, model.forward(x), rtol=1e-14)
    assert [p.value.shape for p in params] == [p.shape for p in model.parameters()]
    assert len(model.parameter_names()) == len(model.parameters())


def test_cnn_backprop_gradients_match_finite_differences():
    model = tiny_cnn()
    x, t = tiny_batch(model)
    batch = nn.batch_gradients(model, x, t, "sse", nn.backprop_method())
    loss = nn.get_loss("sse")
    eps = 1e-6
    rng = np.random.default_rng(3)
    for p, g in zip(model.parameters(), batch.grads):
        for i in rng.choice(p.size, size=min(4, p.size), replace=False):
            old = p.flat[i]
            p.flat[i] = old + eps
            up = float(loss(model.forward(x), t))
            p.flat[i] = old - eps
            down = float(loss(model.forward(x), t))
            p.flat[i] = old
            assert np.isclose(np.ravel(g)[i], (up - down) / (2 * eps), rtol=1e-5, atol=1e-8)


def _cnn_graph():
    model = tiny_cnn()
    x, t = tiny_batch(model)
    graph, out, params, _ = model.trace(x)
    seed = nn.get_loss("sse").grad(out.value, t)
    return graph, out, params, seed


@pytest.mark.parametrize("schedule, eta", [("sequential", 1.0), ("parallel", 1.0),
                                           ("parallel", 0.5), ("sequential", 0.3)])
@pytest.mark.parametrize("init", ["zeros", "forward"])
def test_cnn_relaxation_converges_to_backprop(schedule, eta, init):
    graph, out, params, seed = _cnn_graph()
    exact = ardiff.backprop(graph, out, params, seed=seed).grads
    res = ardiff.relax(graph, out, params, seed=seed, schedule=schedule, eta=eta, init=init,
                       tol=1e-13, max_iter=2000)
    assert res.converged
    for g, e in zip(res.grads, exact):
        np.testing.assert_allclose(g, e, rtol=1e-10, atol=1e-12 * np.abs(e).max())


def test_cnn_triangular_solver_equals_backprop():
    graph, out, params, seed = _cnn_graph()
    exact = ardiff.backprop(graph, out, params, seed=seed).grads
    tri = ardiff.solve_triangular(graph, out, params, seed=seed).grads
    for g, e in zip(tri, exact):
        np.testing.assert_allclose(g, e, rtol=1e-10, atol=1e-12 * np.abs(e).max())


@pytest.mark.parametrize("schedule", ["parallel", "sequential"])
def test_cnn_paper_protocol_closed_form_equals_explicit_steps(schedule):
    model = tiny_cnn()
    x, t = tiny_batch(model, n=4)
    closed = nn.batch_gradients(model, x, t, "sse", nn.relaxation(schedule=schedule))
    stepped = nn.batch_gradients(model, x, t, "sse",
                                 nn.relaxation(schedule=schedule, closed_form=False))
    assert closed.result.sweeps <= 3 < stepped.result.sweeps  # 3 relaxing layers
    for c, s in zip(closed.grads, stepped.grads):
        np.testing.assert_allclose(c, s, rtol=1e-10, atol=1e-13 * np.abs(s).max())


def test_cnn_trains_with_nn_train():
    # a learnable toy task: the class is which quadrant of the image is bright
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, 96)
    images = 0.1 * rng.random((96, 1, 10, 10))
    for k, lab in enumerate(labels):
        r, c = divmod(int(lab), 2)
        images[k, 0, 5 * r:5 * r + 5, 5 * c:5 * c + 5] += 1.0
    data = (images.reshape(96, -1), labels)
    # tanh: a ReLU net this small (2 and 3 filters) often dies to a constant output
    model = nn.CNN((1, 10, 10), channels=(2, 3), kernel=3, pool=2, hidden=(5,), n_classes=4,
                   seed=0, activation="tanh")
    hist = nn.train(model, data, data, method=nn.relaxation(), epochs=4, batch_size=16,
                    optimizer=nn.SGD(lr=0.01))
    assert hist.train_loss[-1] < 0.2 * hist.train_loss[0]
    assert hist.test_acc[-1] > 0.9  # chance: 0.25


# -- errors ----------------------------------------------------------------------------
@pytest.mark.parametrize("call, match", [
    (lambda: conv2d(randn(2, 3, 5, 5), randn(4, 2, 3, 3)), "conv2d: the input has 3 channels"),
    (lambda: conv2d(randn(3, 5, 5), randn(4, 3, 3, 3)), "conv2d: the input must be 4-D"),
    (lambda: conv2d(randn(1, 3, 5, 5), randn(4, 3, 3)), "conv2d: the filters must be 4-D"),
    (lambda: conv2d(randn(1, 1, 2, 5), randn(1, 1, 3, 3)), "conv2d: a 3x3 kernel does not fit"),
    (lambda: conv2d(randn(1, 1, 5, 5), randn(2, 1, 3, 3), randn(3)), "conv2d: bias of shape"),
    (lambda: conv2d(randn(1, 1, 5, 5), randn(2, 1, 3, 3), pool=4), "conv2d: pool=4 is larger"),
    (lambda: conv2d(randn(1, 1, 5, 5), randn(2, 1, 3, 3), pool=0), "conv2d: the pool size"),
    (lambda: conv2d(randn(1, 1, 5, 5), randn(2, 1, 3, 3), activation="elu"),
     "conv2d: unknown activation 'elu'"),
    (lambda: conv2d(randn(1, 1, 5, 5), randn(2, 1, 3, 3), stride=0), "conv2d: stride"),
    (lambda: conv2d(randn(1, 1, 5, 5), randn(2, 1, 3, 3), padding=-1), "conv2d: padding"),
    (lambda: max_pool2d(randn(1, 2, 5), 2), "max_pool2d: the input must be 4-D"),
    (lambda: avg_pool2d(randn(1, 1, 2, 5), 3), "avg_pool2d: a 3x3 window does not fit"),
    (lambda: nn.CNN((1, 6, 6), channels=(2, 2), kernel=3), "CNN: the image"),
    (lambda: tiny_cnn().forward(np.zeros((2, 99))),
     r"CNN: expected inputs of shape \(batch, 100\)"),
])
def test_bad_shapes_raise_clear_errors_naming_the_op(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()


def test_stride_must_be_an_int_or_pair():
    with pytest.raises(TypeError, match=r"conv2d: stride must be an int or a pair"):
        conv2d(randn(1, 1, 5, 5), randn(2, 1, 3, 3), stride=1.5)


def test_reproduce_cnn_runs_offline(tmp_path, capsys):
    from ardiff.paper.cli import main

    code = main(["reproduce", "cnn", "--dataset", "fashion-mnist-small", "--no-download",
                 "--no-progress", "--out", str(tmp_path), "--seeds", "1", "--epochs", "1",
                 "--train-size", "128", "--test-size", "64", "--angle-every", "0"])
    assert code == 0
    text = capsys.readouterr().out
    assert "Backprop" in text and "AR (default)" in text and "AR - backprop" in text
    assert (tmp_path / "runs" / "ar_seed0.json").exists()
    assert (tmp_path / "cnn_summary.json").exists()


def test_reproduce_cnn_help_and_condition_check(capsys):
    from ardiff.paper import cli

    with pytest.raises(SystemExit) as exc:
        cli.main(["reproduce", "cnn", "--help"])
    assert exc.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    spec = cli.FIGURES["cnn"]
    assert "usage: ardiff reproduce cnn" in text
    assert spec.time in text and spec.quick_time in text and "--train-size" in text
    with pytest.raises(SystemExit) as exc:
        cli.main(["reproduce", "cnn", "--dataset", "fashion-mnist-small", "--no-download",
                  "--no-progress", "--conditions", "backprop,feedback-alignment"])
    assert exc.value.code == 2
    assert "--conditions must be among backprop, ar; got feedback-alignment" in \
        capsys.readouterr().err
