"""Watch a relaxation converge, step by step.

With ``record=True`` the result keeps every relaxing node's activity at every
iteration (``result.trajectory``) next to the per-iteration residual
(``result.residuals``: the largest relative residual over nodes).  This script
relaxes a small tanh MLP twice and prints both side by side:

* the parallel (Jacobi) schedule with eta = 0.5, starting from zeros, run until
  the residual is below 1e-10;
* the paper's protocol, ``preset="paper"``: parallel, eta = 0.1, exactly 100
  steps, starting from the forward values, on the network's layers (the output
  layer and the loss clamped; the matmuls fold into the edges).

It also prints how far the first layer's error signal (the activity of the
first hidden layer's output, dL/dh1, a unit of both runs) is from the exact
backprop value at each step: the activity *is* the gradient estimate.
"""

import numpy as np

import ardiff
import ardiff.numpy as anp

rng = np.random.default_rng(0)
sizes = (12, 16, 16, 4)
g = ardiff.Graph()
X = g.constant(rng.random((8, sizes[0])), name="X")
Y = g.constant(np.eye(sizes[-1])[rng.integers(0, sizes[-1], 8)], name="Y")
params, pre, h = [], [], X
for k, (n, m) in enumerate(zip(sizes[:-1], sizes[1:])):
    W = g.input(rng.normal(0.0, 0.5, (n, m)), name=f"W{k + 1}")
    params.append(W)
    a = h @ W
    pre.append(a)
    h = anp.tanh(a) if k < len(sizes) - 2 else a
    if k == 0:
        h1 = h
loss = anp.sum((h - Y) ** 2)

exact = ardiff.backprop(g, loss, wrt=params)
a1 = h1.node.index                         # the node whose activity becomes dL/dh1
target = exact.activities[a1]

runs = {
    "parallel eta=0.5": ardiff.relax(g, loss, wrt=params, schedule="parallel", eta=0.5,
                                     tol=1e-10, record=True),
    "paper preset": ardiff.relax(g, loss, wrt=params, preset="paper", record=True),
}
print(f"graph: {len(g)} nodes, relaxing depth D = {exact.plan.max_depth}")
for name, res in runs.items():
    print(f"{name:>17}: {res.iterations} iterations, converged={res.converged}, "
          f"final residual {res.residuals[-1]:.2e}")

# A node at zero has relative residual |t - 0| / (|t| + |t - 0|) = 0.5: that is where a start
# from zeros begins; the paper preset starts from forward values, which are not gradients.
header = "".join(f" | {name + ' residual':>26} | {'err dL/dh1':>10}" for name in runs)
print(f"\n{'iter':>4}{header}")
longest = max(res.iterations for res in runs.values()) + 1
for t in range(longest):
    row = f"{t:>4}"
    for res in runs.values():
        if t <= res.iterations:
            err = np.linalg.norm(res.trajectory[a1][t] - target) / np.linalg.norm(target)
            # residuals[t - 1] describes the state after step t; the start is not measured
            residual = f"{res.residuals[t - 1]:>26.3e}" if t else f"{'(start)':>26}"
            row += f" | {residual} | {err:>10.2e}"
        else:
            row += f" | {'(done)':>26} | {'':>10}"
    print(row)

for name, res in runs.items():
    errors = [np.linalg.norm(a - b) / np.linalg.norm(b) for a, b in zip(res.grads, exact.grads)]
    print(f"{name}: relative error of dW1..dW{len(errors)} = "
          + ", ".join(f"{e:.1e}" for e in errors))
