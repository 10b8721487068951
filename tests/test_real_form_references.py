"""The real form of a complex graph's triangular system (ardiff.solvers.real_form)
against an independent dense reference.

Truth: each graph is written twice, with ardiff's ops and in plain NumPy.  The
reference takes the real Jacobian of every edge (the child's real and imaginary parts
against the parent's, one argument at a time) by central finite differences of the
NumPy functions, builds the dense matrix N and right-hand side b of the fixed point
x = N x + b under the convention of docs/complex.md (an activity v of a complex node
is stored as (Re v, Im v), and a block of N is S_p J^T S_k with S = diag(1, -1) on
every complex element: the VJP is the adjoint for the pairing Re(sum(a * b))), and
solves it with `numpy.linalg.solve`.  The gradients are also checked against central
finite differences of the loss Re(sum(seed * f(x))) itself; the VJP counts against
counts by hand of the edges and of each complex block's columns.

The graphs have 2-D complex nodes, a node read twice (`z * z`, and the output
`dot(w, w)`), a skip connection, real edges inside a complex graph (one from an op
with a sparse Jacobian, one from an op without, whose Jacobian is not square), the
non-holomorphic ops conj/real/abs, complex64 and complex128.
"""

import numpy as np
import pytest

import ardiff
import ardiff.numpy as anp
from ardiff.op import OPS, defop
from ardiff.solvers import compile_plan
from ardiff.solvers.triangular import assemble

A = np.array([[0.5, -1.0, 2.0], [1.5, 0.25, -0.75]])
C = np.array([[1.0 + 0.5j, -0.3 + 1.2j, 0.7 - 0.4j], [0.2 + 0.9j, -1.1 - 0.2j, 0.4 + 0.6j]])
K = 0.5 + 1.0j


@pytest.fixture
def colmix():
    """A real op without a sparse-Jacobian family, (2, 3) -> (3,): w_j = sum_i A_ij t_ij."""
    op = defop("t_colmix", lambda t: np.sum(A * t, axis=0),
               lambda ans, t: (lambda g: A * g))
    yield op
    OPS.pop("t_colmix")


# -- the reference --------------------------------------------------------------------------
def realify(v):
    v = np.asarray(v)
    if np.iscomplexobj(v):
        return np.ascontiguousarray(v.astype(np.complex128)).ravel().view(np.float64)
    return v.ravel().astype(np.float64)


def unrealify(r, like):
    like = np.asarray(like)
    if np.iscomplexobj(like):
        return r.view(np.complex128).reshape(like.shape)
    return r.reshape(like.shape)


def signs(v):
    """S: +1 on real parts (and real elements), -1 on imaginary parts."""
    v = np.asarray(v)
    return np.tile([1.0, -1.0], v.size) if np.iscomplexobj(v) else np.ones(v.size)


def fd_jacobian(f, args, argnum, h=1e-6):
    """d realify(f(args)) / d realify(args[argnum]) by central differences (float64)."""
    args = [np.asarray(a, dtype=np.complex128 if np.iscomplexobj(a) else np.float64)
            for a in args]
    base = realify(args[argnum])
    columns = []
    for j in range(base.size):
        step = np.zeros_like(base)
        step[j] = h
        plus, minus = list(args), list(args)
        plus[argnum] = unrealify(base + step, args[argnum])
        minus[argnum] = unrealify(base - step, args[argnum])
        columns.append((realify(f(*plus)) - realify(f(*minus))) / (2 * h))
    return np.stack(columns, axis=1)


class Reference:
    """A graph given as [(numpy_fn, anp_fn, parents)] after its inputs; the last node is
    the output.  Values by NumPy, the system by finite differences, solved densely."""

    def __init__(self, inputs, ops, seed):
        self.inputs, self.ops, self.seed = inputs, ops, seed
        values = list(inputs)
        for fn, _, parents in ops:
            values.append(fn(*(values[p] for p in parents)))
        self.values = values
        self.out = len(values) - 1
        self.relaxing = list(range(len(inputs), self.out))
        sizes = [realify(values[i]).size for i in self.relaxing]
        self.offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(int)
        self.position = {i: k for k, i in enumerate(self.relaxing)}

    def edges(self):
        """(parent, child, argnum, S_p J^T S_k) of every edge."""
        for child in range(len(self.inputs), len(self.values)):
            fn, _, parents = self.ops[child - len(self.inputs)]
            args = [self.values[p] for p in parents]
            for argnum, p in enumerate(parents):
                J = fd_jacobian(fn, args, argnum)
                block = signs(self.values[p])[:, None] * J.T * signs(self.values[child])[None, :]
                yield p, child, argnum, block

    def system(self):
        n = int(self.offsets[-1])
        N, b = np.zeros((n, n)), np.zeros(n)
        seed = realify(np.asarray(self.seed) * np.ones_like(self.values[self.out]))
        for p, child, _, block in self.edges():
            if p not in self.position:
                continue
            rows = slice(self.offsets[self.position[p]], self.offsets[self.position[p] + 1])
            if child == self.out:
                b[rows] += block @ seed
            else:
                k = self.position[child]
                N[rows, self.offsets[k]:self.offsets[k + 1]] += block
        return N, b

    def activities(self):
        N, b = self.system()
        x = np.linalg.solve(np.eye(len(b)) - N, b)
        return {i: unrealify(x[self.offsets[k]:self.offsets[k + 1]], self.values[i])
                for k, i in enumerate(self.relaxing)}

    def loss(self, *inputs):
        values = list(inputs)
        for fn, _, parents in self.ops:
            values.append(fn(*(values[p] for p in parents)))
        return float(np.real(np.sum(np.asarray(self.seed) * values[-1])))

    def fd_gradients(self, h=1e-6):
        grads = []
        for j, x in enumerate(self.inputs):
            g = np.zeros(np.size(x))
            for e in range(np.size(x)):
                step = np.zeros(np.size(x))
                step[e] = h
                plus, minus = list(self.inputs), list(self.inputs)
                plus[j] = (np.ravel(x).astype(np.float64) + step).reshape(np.shape(x))
                minus[j] = (np.ravel(x).astype(np.float64) - step).reshape(np.shape(x))
                g[e] = (self.loss(*plus) - self.loss(*minus)) / (2 * h)
            grads.append(g.reshape(np.shape(x)))
        return grads

    def build(self):
        g = ardiff.Graph()
        traced = [g.input(x, name=f"x{j}") for j, x in enumerate(self.inputs)]
        for _, fn, parents in self.ops:
            traced.append(fn(*(traced[p] for p in parents)))
        return g, traced


def wide_graph(colmix):
    """x (2 x 3, real) -> tanh -> sin (real edges, elementwise family) -> * C (complex,
    2 x 3) -> z * z (read twice) -> conj -> + z (skip connection) -> real -> colmix
    (real, no family, 3 x 6 Jacobian) -> * K (complex) -> exp -> dot(w, w) (the output
    reads w twice)."""
    x = np.array([[0.3, -0.7, 1.1], [0.5, -0.2, 0.9]])
    ops = [
        (np.tanh, anp.tanh, (0,)),                                   # 1
        (np.sin, anp.sin, (1,)),                                     # 2
        (lambda t: t * C, lambda t: t * C, (2,)),                    # 3
        (lambda a, b: a * b, lambda a, b: a * b, (3, 3)),            # 4
        (np.conj, anp.conj, (4,)),                                   # 5
        (lambda a, b: a + b, lambda a, b: a + b, (5, 3)),            # 6
        (np.real, anp.real, (6,)),                                   # 7
        (lambda t: np.sum(A * t, axis=0), colmix, (7,)),             # 8
        (lambda t: t * K, lambda t: t * K, (8,)),                    # 9
        (np.exp, anp.exp, (9,)),                                     # 10
        (lambda a, b: np.dot(a, b), lambda a, b: anp.dot(a, b), (10, 10)),  # 11
    ]
    return Reference([x], ops, seed=0.5 - 2.0j)


# -- the assembled system --------------------------------------------------------------------
def test_real_form_system_equals_the_dense_reference(colmix):
    ref = wide_graph(colmix)
    g, traced = ref.build()
    plan = compile_plan(g, traced[-1])
    assert plan.relaxing == ref.relaxing
    seed = np.complex128(ref.seed)
    system = assemble(plan, seed)
    N, b = ref.system()
    # unknowns: 6 per real 2 x 3 node, 12 per complex one, 3 and 6 for the (3,) nodes
    assert system.size == len(b) == 6 + 6 + 4 * 12 + 6 + 3 + 6 + 6
    np.testing.assert_array_equal(system.offsets, ref.offsets)
    np.testing.assert_allclose(system.N.toarray(), N, rtol=1e-7, atol=1e-8)
    np.testing.assert_allclose(system.b, b, rtol=1e-7, atol=1e-8)
    # VJPs: one per column of every block built from VJPs (twice a complex child's size,
    # a real child's size), one per row of the real edge without a family (its output
    # size, 3, not its input size, 6), one per edge into the output (two)
    complex_blocks = (12 + 2 * 12 + 12 + 12 + 12   # * C, z * z (twice), conj, + (twice)
                      + 6 + 6 + 6)                  # real, * K, exp
    assert system.vjp_evals == complex_blocks + 3 + 2
    assert system.fallback_ops == sorted(
        ["multiply", "conj", "add", "real", "t_colmix", "exp"]), system.fallback_ops


def test_real_form_solution_activities_and_gradients(colmix):
    ref = wide_graph(colmix)
    g, traced = ref.build()
    result = ardiff.solve_triangular(g, traced[-1], seed=ref.seed)
    want = ref.activities()
    assert sorted(result.activities) == ref.relaxing
    for i in ref.relaxing:
        got = result.activities[i]
        assert got.shape == np.shape(ref.values[i]) and np.iscomplexobj(got) == np.iscomplexobj(
            ref.values[i]), i
        np.testing.assert_allclose(got, want[i], rtol=1e-6, atol=1e-8, err_msg=str(i))
    fd = ref.fd_gradients()
    np.testing.assert_allclose(result.grads[0], fd[0], rtol=1e-6, atol=1e-8)
    assert result.grads[0].dtype == np.float64 and result.converged
    exact = ardiff.backprop(g, traced[-1], seed=ref.seed)
    np.testing.assert_allclose(result.grads[0], exact.grads[0], rtol=1e-11)


@pytest.mark.parametrize("seed", [1.0, 2.0 - 0.5j])
def test_complex64_graph_with_abs_and_a_skip_connection(seed):
    """x (float32) -> * C (complex64) -> abs (real) -> * z (the complex node again:
    a skip connection into a product) -> sum: complex64 activities, float32 gradient."""
    x = np.array([0.3, -0.7, 1.1], dtype=np.float32)
    c = np.array([1.0 + 0.5j, -0.3 + 1.2j, 0.7 - 0.4j], dtype=np.complex64)
    ops = [
        (lambda t: t * c, lambda t: t * c, (0,)),
        (np.abs, anp.abs, (1,)),
        (lambda a, b: a * b, lambda a, b: a * b, (2, 1)),
        (np.sum, anp.sum, (3,)),
    ]
    ref = Reference([x], ops, seed=seed)
    g, traced = ref.build()
    plan = compile_plan(g, traced[-1])
    system = assemble(plan, np.complex64(seed))
    N, b = ref.system()
    np.testing.assert_allclose(system.N.toarray(), N, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(system.b, b, rtol=1e-5, atol=1e-5)
    # complex blocks: abs (3 real columns), the product from abs (6) and from z (6)
    assert system.vjp_evals == 3 + 6 + 6 + 1
    assert system.fallback_ops == ["absolute", "multiply"]
    result = ardiff.solve_triangular(g, traced[-1], seed=np.complex64(seed))
    want = ref.activities()
    for i in ref.relaxing:
        assert result.activities[i].dtype == np.result_type(ref.values[i])
        np.testing.assert_allclose(result.activities[i], want[i], rtol=1e-5, atol=1e-5)
    assert result.grads[0].dtype == np.float32
    np.testing.assert_allclose(result.grads[0], ref.fd_gradients()[0], rtol=1e-4, atol=1e-5)


def test_real_nodes_of_a_complex_output_only_read_the_real_part():
    """Every relaxing node real, the output complex: b is the real part of each VJP of
    the seed (a real node only has real perturbations), the matrix that of the real
    graph."""
    x = np.array([0.3, -0.7])
    ops = [
        (np.tanh, anp.tanh, (0,)),
        (np.sin, anp.sin, (1,)),
        (lambda t: t * K, lambda t: t * K, (2,)),
    ]
    for seed in (np.array([1.0 - 1.0j, 0.5 + 2.0j]), np.array([1.0 + 0j, 1.0 + 0j])):
        ref = Reference([x], ops, seed=seed)
        g, traced = ref.build()
        system = assemble(compile_plan(g, traced[-1]), seed)
        N, b = ref.system()
        np.testing.assert_allclose(system.N.toarray(), N, rtol=1e-7, atol=1e-8)
        np.testing.assert_allclose(system.b, b, rtol=1e-7, atol=1e-8)
        result = ardiff.solve_triangular(g, traced[-1], seed=seed)
        np.testing.assert_allclose(result.grads[0], ref.fd_gradients()[0], rtol=1e-6)
