"""Scalar and tiny workloads of the benchmark suite, with hand-written baselines.

* ``chain`` and ``wide_scalar``: graphs of scalar ops, where all the time is Python
  per node.  Their floor is a forward and backward pass written by hand on Python
  floats with the `math` module (`chain_by_hand`, `wide_by_hand`).
* The tiny programs (10-element vectors, the sinusoid pattern of nested `grad`, a
  GAN-like pair of small MLPs with leaky ReLU, logsumexp and sigmoid), where the
  fixed cost of one gradient call is what is measured; they are compared with HIPS
  autograd, which has little fixed cost.

Programs take a NumPy-like module so every engine runs the same operations.
"""

from __future__ import annotations

import math

import numpy as np

CHAIN_LINKS = 1000  # four ops each: sin, *, *, +


def chain_fun(np_mod, links=CHAIN_LINKS):
    """x -> sin(x) * 1.01 + 0.1 * x, `links` times."""
    def f(x):
        for _ in range(links):
            x = np_mod.sin(x) * 1.01 + 0.1 * x
        return x
    return f


def chain_by_hand(x: float, links=CHAIN_LINKS) -> float:
    """d chain / dx on Python floats: forward keeping each link's input, then backward."""
    xs = []
    for _ in range(links):
        xs.append(x)
        x = math.sin(x) * 1.01 + 0.1 * x
    g = 1.0
    for x in reversed(xs):
        g = g * (math.cos(x) * 1.01 + 0.1)
    return g


def wide_dag_spec(seed=0, n_nodes=2000, n_inputs=20):
    """A random DAG of scalar ops: (op code, first parent, second parent) per node."""
    rng = np.random.default_rng(seed)
    spec = []
    for k in range(n_inputs, n_nodes):
        op = rng.integers(0, 5)
        first = int(rng.integers(max(0, k - 10), k))
        second = int(rng.integers(0, k))
        spec.append((int(op), first, second))
    return spec


def wide_fun(np_mod, spec):
    """The DAG of `spec` on a list of scalars; the sum of its last ten nodes."""
    def f(xs):
        nodes = list(xs)
        for op, a, b in spec:
            u, v = nodes[a], nodes[b]
            if op == 0:
                nodes.append(u + v)
            elif op == 1:
                nodes.append(u * v)
            elif op == 2:
                nodes.append(np_mod.sin(u))
            elif op == 3:
                nodes.append(np_mod.tanh(u))
            else:
                nodes.append(np_mod.exp(0.1 * u))
        total = nodes[-10]
        for n in nodes[-9:]:
            total = total + n
        return total
    return f


def wide_by_hand(spec, xs: list) -> list:
    """Gradient of `wide_fun` on Python floats: forward, then adjoints in reverse order."""
    nodes = list(xs)
    for op, a, b in spec:
        u = nodes[a]
        if op == 0:
            nodes.append(u + nodes[b])
        elif op == 1:
            nodes.append(u * nodes[b])
        elif op == 2:
            nodes.append(math.sin(u))
        elif op == 3:
            nodes.append(math.tanh(u))
        else:
            nodes.append(math.exp(0.1 * u))
    adj = [0.0] * len(nodes)
    for k in range(len(nodes) - 10, len(nodes)):
        adj[k] = 1.0
    first = len(xs)
    for k in range(len(nodes) - 1, first - 1, -1):
        g = adj[k]
        if g == 0.0:
            continue
        op, a, b = spec[k - first]
        if op == 0:
            adj[a] += g
            adj[b] += g
        elif op == 1:
            adj[a] += g * nodes[b]
            adj[b] += g * nodes[a]
        elif op == 2:
            adj[a] += g * math.cos(nodes[a])
        elif op == 3:
            adj[a] += g * (1.0 - nodes[k] * nodes[k])
        else:
            adj[a] += g * 0.1 * nodes[k]
    return adj[:first]


# -- tiny programs: fixed cost per call ----------------------------------------------------
def tiny_vector_fun(np_mod):
    """A 10-element vector through a few elementwise ops and a sum."""
    def f(x):
        return np_mod.sum(np_mod.tanh(x) * x + np_mod.exp(-x * x))
    return f


def tiny_logsumexp_fun(logsumexp):
    """logsumexp of a 10-element vector (the module's own logsumexp)."""
    def f(x):
        return logsumexp(x)
    return f


def tiny_sigmoid_fun(np_mod):
    """Sum of the logistic sigmoid of a 10-element vector, as 0.5 (tanh(x/2) + 1)."""
    def f(x):
        return np_mod.sum(0.5 * (np_mod.tanh(0.5 * x) + 1.0))
    return f


def sinusoid_fun(np_mod, grad):
    """The second derivative of sin by nested `grad` (autograd's sinusoid example)."""
    return grad(grad(np_mod.sin))


def gan_params(rng, gen=(10, 16, 10), dsc=(10, 16, 1)):
    """Small generator and discriminator MLPs: lists of (W, b) pairs."""
    def init(sizes):
        return [(0.1 * rng.standard_normal((m, n)), 0.1 * rng.standard_normal(n))
                for m, n in zip(sizes[:-1], sizes[1:])]
    return init(gen), init(dsc)


def gan_fun(np_mod):
    """A GAN-like objective (after autograd's generative_adversarial_net example).

    Leaky-ReLU MLPs, the generator's output squashed by a sigmoid, and the
    discriminator's log-probabilities by ``x - logaddexp(0, x)``.
    """
    def net(params, h):
        for W, b in params[:-1]:
            a = np_mod.dot(h, W) + b
            h = np_mod.maximum(a, 0.01 * a)
        W, b = params[-1]
        return np_mod.dot(h, W) + b

    def logsigmoid(x):
        return x - np_mod.logaddexp(0.0, x)

    def objective(gen, dsc, real, noise):
        fake = 0.5 * (np_mod.tanh(net(gen, noise)) + 1.0)
        return (np_mod.mean(logsigmoid(net(dsc, real)))
                - np_mod.mean(logsigmoid(net(dsc, fake))))
    return objective
