"""Second derivatives: the Hessian of a scalar function, checked against closed forms.

ardiff's local VJPs are written with its own traced ops, so differentiating a
gradient is just another relaxation on a bigger recorded graph.  ``ardiff.hessian``
is ``jacobian(jacobian(f))``; ``grad(grad(...))`` works the same way.
"""

import numpy as np

import ardiff
import ardiff.numpy as anp


def rosenbrock(x):
    """The Rosenbrock function in n dimensions."""
    return anp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def rosenbrock_hessian(x):
    """Its Hessian, written out by hand (the independent truth)."""
    n = len(x)
    H = np.zeros((n, n))
    for i in range(n - 1):
        H[i, i] += 1200.0 * x[i] ** 2 - 400.0 * x[i + 1] + 2.0
        H[i, i + 1] = H[i + 1, i] = -400.0 * x[i]
        H[i + 1, i + 1] += 200.0
    return H


x = np.array([1.2, 0.8, -0.5, 1.0])
H = ardiff.hessian(rosenbrock)(x)
H_true = rosenbrock_hessian(x)
print("Hessian of Rosenbrock at", x)
print(np.array2string(H, precision=3, suppress_small=True))
print(f"max |ardiff - closed form| = {np.max(np.abs(H - H_true)):.1e}")
assert np.allclose(H, H_true, rtol=1e-10, atol=1e-9)

# The Hessian of log-sum-exp is diag(p) - p p^T with p = softmax(z).
z = np.array([0.3, -1.2, 2.0])
H_lse = ardiff.hessian(lambda z: anp.log(anp.sum(anp.exp(z))))(z)
p = np.exp(z) / np.sum(np.exp(z))
print(f"log-sum-exp Hessian: max |ardiff - (diag(p) - p p^T)| = "
      f"{np.max(np.abs(H_lse - (np.diag(p) - np.outer(p, p)))):.1e}")

# Higher derivatives of a scalar function by nesting grad: d^3/dx^3 sin(x) = -cos(x).
d3 = ardiff.grad(ardiff.grad(ardiff.grad(anp.sin)))(0.7)
print(f"third derivative of sin at 0.7: {d3:.12f}  (-cos(0.7) = {-np.cos(0.7):.12f})")

# A Hessian-vector product without forming the Hessian: the gradient of <grad f(x), v>.
v = np.array([1.0, -2.0, 0.5, 0.0])
hvp = ardiff.grad(lambda x: anp.dot(ardiff.grad(rosenbrock)(x), v))(x)
print(f"Hessian-vector product: {hvp}  (H_true @ v = {H_true @ v})")
assert np.allclose(hvp, H_true @ v, rtol=1e-10)
