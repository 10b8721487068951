"""An op added with one ``defop`` call works everywhere (issue 10, acceptance).

The op is declared here, outside the package, exactly as a family module declares
its ops: forward, VJP maker and sparse-Jacobian family in one call.  Truth is the
closed-form derivative of the function it computes.
"""

import numpy as np
import pytest

import ardiff
import ardiff.numpy as anp
from ardiff.op import OPS, Scale, defop
from ardiff.ops.jacobians import ELEMENTWISE


@pytest.fixture(scope="module", autouse=True)
def softplus():
    """softplus(x) = log(1 + e^x), derivative expit(x) = 1 / (1 + e^-x), written with
    traced ops so that it can be differentiated again.  Declared for this module only:
    the op table's own tests (every op has a property case) must not see it."""
    global softplus_op
    softplus_op = defop("test_softplus", lambda x: np.logaddexp(0.0, x),
                        Scale(lambda ans, x: 1.0 / (1.0 + anp.exp(-x))),
                        jac=ELEMENTWISE, nonlinear=True)
    yield softplus_op
    del OPS["test_softplus"]


def loss(w, x):
    return anp.sum(softplus_op(anp.tanh(x @ w)) ** 2)


def closed_form_grad(w, x):
    z = np.tanh(x @ w)
    s = np.logaddexp(0.0, z)
    dz = 2.0 * s / (1.0 + np.exp(-z)) * (1.0 - z ** 2)
    return x.T @ dz


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    return rng.normal(size=(3, 2)), rng.normal(size=(4, 3))


def test_the_op_is_in_the_table(softplus):
    assert OPS["test_softplus"] is softplus
    assert softplus(0.0) == pytest.approx(np.log(2.0))  # untraced calls are plain NumPy


@pytest.mark.parametrize("options", [
    {},
    {"method": "backprop"},
    {"method": "triangular"},
    {"schedule": "parallel", "eta": 0.7, "tol": 1e-13},
    {"schedule": "sequential", "eta": 0.5, "tol": 1e-13},
    {"schedule": "parallel", "init": "forward", "eta": 1.0},
])
def test_gradient_of_every_solver(data, options):
    w, x = data
    got = ardiff.grad(loss, **options)(w, x)
    np.testing.assert_allclose(got, closed_form_grad(w, x), rtol=1e-10, atol=1e-12)


def test_triangular_solver_uses_the_declared_jacobian(data, softplus):
    w, x = data
    g = ardiff.trace(loss, w, x, argnum=0)
    node = next(n for n in g.nodes if n.op is softplus)
    J = softplus.jacobian(0, node.value, node.args, node.kwargs)
    assert J is not None and J.nnz == np.size(node.value)
    res = ardiff.solve_triangular(g)
    np.testing.assert_allclose(res.grads[0], closed_form_grad(w, x), rtol=1e-10)


def test_compiled_replay(data):
    w, x = data
    compiled = ardiff.compile(loss)
    first = compiled(w, x)
    w2 = w + 0.3
    again = compiled(w2, x)
    assert compiled.traces == 1 and compiled.replays == 1
    np.testing.assert_allclose(first, closed_form_grad(w, x), rtol=1e-10)
    np.testing.assert_allclose(again, closed_form_grad(w2, x), rtol=1e-10)


def test_second_order_against_finite_differences(softplus):
    x = np.array([0.3, -1.2, 2.0])
    hess = ardiff.hessian(lambda v: anp.sum(softplus(v) * v))(x)
    # d/dx [softplus(x) x] = expit(x) x + softplus(x); d2 = expit' x + 2 expit
    expit = 1.0 / (1.0 + np.exp(-x))
    np.testing.assert_allclose(hess, np.diag(expit * (1 - expit) * x + 2 * expit), rtol=1e-10)
    eps = 1e-6
    g = ardiff.grad(lambda v: anp.sum(softplus(v) * v))
    fd = np.stack([(g(x + eps * e) - g(x - eps * e)) / (2 * eps) for e in np.eye(3)])
    np.testing.assert_allclose(hess, fd, rtol=1e-6, atol=1e-8)
