"""Very large graphs: tracing, pruning and relaxation are loops, never recursion.

Python's recursion limit is about a thousand frames, so a graph one hundred
thousand nodes deep would raise RecursionError at once if the topological order,
the pruning, the depth computation or the sweep recursed.  The gradients are
checked against closed forms and central finite differences.
"""

from __future__ import annotations

import numpy as np
import pytest

import ardiff
import ardiff.numpy as anp


def _dag_recipe(steps: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 5, steps).tolist(), rng.integers(0, 1 << 62, steps).tolist(),
            rng.integers(0, 1 << 62, steps).tolist())


def random_dag(x, recipe, ns):
    """A random DAG of elementwise ops, written once for traced (``anp``) and plain
    (``np``) values.  Every step reads one of the 20 newest values (so the graph is
    deep) and one value from anywhere before it (so it is not just a chain); every
    op has local derivatives of size at most one, so the gradient stays finite."""
    kinds, near, far = recipe
    values = [x, ns.tanh(x), ns.sin(x)]
    for kind, i, j in zip(kinds, near, far):
        m = len(values)
        u = values[m - 1 - i % min(m, 20)]
        v = values[j % m]
        if kind == 0:
            w = 0.5 * (u + v)
        elif kind == 1:
            w = ns.tanh(u)
        elif kind == 2:
            w = u * ns.tanh(v)
        elif kind == 3:
            w = 0.9 * ns.sin(u)
        else:
            w = 0.5 * (u - v)
        values.append(w)
    return ns.sum(values[-1]) + ns.mean(values[len(values) // 2])


def test_random_dag_of_100k_nodes_is_traced_and_differentiated():
    recipe = _dag_recipe(60_000)
    x0 = np.array([0.3, -0.7, 1.1])
    sizes = []

    def loss(x):
        out = random_dag(x, recipe, anp)
        sizes.append(len(x.graph))
        return out

    grad = ardiff.grad(loss)(x0)
    assert sizes[0] >= 100_000
    direction = np.random.default_rng(5).standard_normal(3)
    eps = 1e-6
    numeric = (random_dag(x0 + eps * direction, recipe, np)
               - random_dag(x0 - eps * direction, recipe, np)) / (2 * eps)
    assert np.all(np.isfinite(grad))
    np.testing.assert_allclose(grad @ direction, numeric, rtol=1e-5, atol=1e-9)


def _chain_graph(n: int, factor: float):
    """``n`` multiplications in a row, built programmatically: n + 1 nodes."""
    g = ardiff.Graph()
    x = g.input(np.array([0.5, -2.0]), name="x")
    h = x
    for _ in range(n):
        h = h * factor
    return g, x, h


def test_deep_chain_relaxes_and_prunes():
    n, factor = 30_000, 1.0 - 1e-6
    g, x, h = _chain_graph(n, factor)
    out = anp.sum(h)
    assert len(g) == n + 2
    result = ardiff.relax(g, out, [x])
    np.testing.assert_allclose(result.grads[0], [factor ** n] * 2, rtol=1e-9)
    # wrt deep inside the chain: pruning keeps only the tail
    middle = g.nodes[n // 2 + 1]
    result = ardiff.relax(g, out, [middle.index])
    np.testing.assert_allclose(result.grads[0], factor ** (n - n // 2 - 1), rtol=1e-9)
    assert result.plan.max_depth == n - n // 2 - 1


@pytest.mark.slow
def test_chain_of_a_million_nodes():
    n, factor = 1_000_000, 1.0 - 1e-7
    g, x, h = _chain_graph(n - 2, factor)
    out = anp.sum(h)
    assert len(g) == n
    result = ardiff.relax(g, out, [x])
    np.testing.assert_allclose(result.grads[0], [factor ** (n - 2)] * 2, rtol=1e-8)
    assert result.converged and result.plan.max_depth == n - 2
