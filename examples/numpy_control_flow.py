"""A plain NumPy program with Python control flow, differentiated as it is.

The function below is ordinary NumPy code: ``np.*`` calls, a ``while`` loop whose
trip count depends on the data, an ``if`` on a computed value and a Python ``for``
over array rows.  Tracing is concrete (values are real arrays while the function
runs), so ardiff records whatever path the program took and differentiates that.
"""

import numpy as np

import ardiff


def newton_sqrt(a):
    """sqrt(a) by Newton's method, iterating until the update is tiny."""
    x = np.ones_like(a)
    while np.max(np.abs(x * x - a)) > 1e-12:   # data-dependent trip count
        x = 0.5 * (x + a / x)
    return x


def program(params, data):
    """A small model with a loop, a branch and NumPy calls on traced values."""
    w, b = params["w"], params["b"]
    total = 0.0
    for row in data:                      # iterate over rows of a plain array
        z = np.dot(row, w) + b
        if z > 0:                         # a branch on a traced value
            total = total + np.log1p(np.exp(-z))
        else:
            total = total + np.log1p(np.exp(z)) - z
    scale = newton_sqrt(np.sum(w ** 2) + 1.0)
    return total / len(data) + 0.1 * scale


def finite_difference(f, params, data, key, eps=1e-6):
    """Central differences of f with respect to params[key] (the independent check)."""
    grad = np.zeros_like(params[key])
    for idx in np.ndindex(grad.shape):
        for sign in (+1, -1):
            shifted = {k: np.array(v, dtype=float) for k, v in params.items()}
            shifted[key][idx] += sign * eps
            grad[idx] += sign * f(shifted, data) / (2 * eps)
    return grad


rng = np.random.default_rng(0)
data = rng.standard_normal((20, 3))
params = {"w": rng.standard_normal(3), "b": np.array(0.3)}

value, grads = ardiff.value_and_grad(program)(params, data)
print(f"program value            : {value:.10f}")
for key in ("w", "b"):
    fd = finite_difference(program, params, data, key)
    err = np.max(np.abs(grads[key] - fd))
    print(f"d/d{key} by relaxation     : {np.round(grads[key], 8)}")
    print(f"d/d{key} finite difference : {np.round(fd, 8)}   (max difference {err:.1e})")
    assert err < 1e-6, key

# The graph is an ordinary recording: see what the program turned into.
graph = ardiff.trace(program, params, data, argnum=0)
ops = {}
for node in graph.nodes:
    ops[node.op_name] = ops.get(node.op_name, 0) + 1
print(f"recorded graph: {len(graph.nodes)} nodes; most frequent ops:",
      sorted(ops.items(), key=lambda kv: -kv[1])[:5])
