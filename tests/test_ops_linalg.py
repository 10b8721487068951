"""Property-based cases for linear algebra: products and contractions (dot, matmul,
inner, outer, vdot, tensordot, einsum, trace, kron) and ``ardiff.numpy.linalg``
(inv, solve, det, slogdet, norm).

Square matrices are diagonally dominant with a random sign per column, so they
are well conditioned and their determinants take both signs; vectors given to
norms have no zero entry and, for the max/min norms, no two equal magnitudes.
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from test_ops import Case, broadcast_shapes, make_op_test, reals, shapes


@st.composite
def dot_args(draw, min_dims=0):
    """Operands of np.dot: any ndims, contracting a's last axis with b's second-to-last."""
    sa = draw(shapes(min_dims=min_dims))
    sb = list(draw(shapes()))
    if sa and sb:
        sb[-2 if len(sb) > 1 else -1] = sa[-1]
    return (draw(reals(sa)), draw(reals(tuple(sb)))), {}


@st.composite
def matmul_args(draw):
    s = draw(hnp.mutually_broadcastable_shapes(signature=np.matmul.signature, max_dims=3,
                                               max_side=3))
    return tuple(draw(reals(shape)) for shape in s.input_shapes), {}


@st.composite
def inner_args(draw):
    sa, sb = list(draw(shapes())), list(draw(shapes()))
    if sa and sb:
        sb[-1] = sa[-1]
    return (draw(reals(tuple(sa))), draw(reals(tuple(sb)))), {}


@st.composite
def tensordot_args(draw):
    """An int ``axes`` or a pair of axis lists in any order (negative axes included)."""
    sa = draw(shapes())
    k = draw(st.integers(0, len(sa)))
    free = draw(shapes(max_dims=2))
    if draw(st.booleans()):
        return (draw(reals(sa)), draw(reals(sa[len(sa) - k:] + free))), {"axes": k}
    a_axes = draw(st.permutations(range(len(sa))))[:k]
    nb = k + len(free)
    b_axes = draw(st.permutations(range(nb)))[:k]
    sb = [0] * nb
    rest = iter(free)
    for p in range(nb):
        sb[p] = sa[a_axes[b_axes.index(p)]] if p in b_axes else next(rest)
    a_axes = [a - len(sa) if draw(st.booleans()) else a for a in a_axes]
    axes = (a_axes, b_axes)
    return (draw(reals(sa)), draw(reals(tuple(sb)))), {"axes": axes}


EINSUM_SPECS = [
    "ij,jk->ik", "ij,jk", "i,i->", "i,j->ij", "ij->ji", "ij->", "ii->i", "ii", "iij->j",
    "ij,ij->ij", "bij,bjk->bik", "...ij,...jk->...ik", "i...->...", "ijk,kj->i", "ij,j",
    "ij,jk,kl->il", "ijk->kij", "ij,ji->", "i->", "ji,jk->ki",
]


@st.composite
def einsum_args(draw):
    spec = draw(st.sampled_from(EINSUM_SPECS))
    lhs = spec.split("->")[0].split(",")
    sizes = {c: draw(st.integers(1, 3)) for c in sorted(set(spec) - set(",->."))}
    ellipses = iter(draw(broadcast_shapes(len(lhs), max_dims=2)))
    operands = []
    for term in lhs:
        if "..." in term:
            before, after = term.split("...")
            shape = tuple(sizes[c] for c in before) + next(ellipses) + \
                tuple(sizes[c] for c in after)
        else:
            shape = tuple(sizes[c] for c in term)
        operands.append(draw(reals(shape)))
    return tuple(operands), {"spec": spec}


@st.composite
def trace_args(draw):
    shape = draw(shapes(min_dims=2))
    axis1, axis2 = draw(st.permutations(range(len(shape))))[:2]
    kwargs = {"offset": draw(st.integers(-2, 2)), "axis1": axis1, "axis2": axis2}
    return (draw(reals(shape)),), kwargs


def square_matrices(batch, n):
    """Diagonally dominant (well-conditioned) n x n matrices, det of either sign."""
    return st.tuples(reals(batch + (n, n), -1.0, 1.0),
                     hnp.arrays(np.bool_, (n,))).map(
        lambda p: (p[0] + 2.0 * n * np.eye(n)) * np.where(p[1], -1.0, 1.0))


def one_square(max_batch=2):
    return st.tuples(shapes(max_dims=max_batch), st.integers(1, 3)).flatmap(
        lambda p: square_matrices(p[0], p[1])).map(lambda a: ((a,), {}))


@st.composite
def solve_args(draw):
    n = draw(st.integers(1, 3))
    batch_a, batch_b = draw(broadcast_shapes(2, max_dims=2))
    a = draw(square_matrices(batch_a, n))
    # a 1-D right-hand side only with an unbatched matrix: NumPy 1.26 and 2.x read a 1-D b
    # with a batched a differently
    vector = draw(st.booleans()) and not batch_a
    b_shape = (n,) if vector else batch_b + (n, draw(st.integers(1, 3)))
    return (a, draw(reals(b_shape))), {}


def distinct_magnitudes(shape):
    """No zeros and no two equal |x|: the max/min norms stay smooth."""
    return st.tuples(hnp.arrays(np.int64, shape, elements=st.integers(0, 40), unique=True),
                     hnp.arrays(np.bool_, shape)).map(
        lambda p: (0.2 * p[0] + 0.1) * np.where(p[1], -1.0, 1.0))


@st.composite
def vector_norm_args(draw):
    shape = draw(shapes(min_dims=1))
    ord_ = draw(st.sampled_from([None, 1, 2, np.inf, -np.inf, 3, 0.5, -1, 0]))
    if len(shape) == 1:
        axis = draw(st.sampled_from([None, 0, -1]))
    else:
        axis = draw(st.integers(-len(shape), len(shape) - 1))
    if ord_ is None and draw(st.booleans()):
        axis = None  # the 2-norm of the flattened array
    kwargs = {"ord": ord_, "axis": axis, "keepdims": draw(st.booleans())}
    return (draw(distinct_magnitudes(shape)),), kwargs


@st.composite
def matrix_norm_args(draw):
    shape = draw(shapes(min_dims=2))
    if len(shape) == 2 and draw(st.booleans()):
        axis = None
    else:
        axis = tuple(draw(st.permutations(range(len(shape))))[:2])
    kwargs = {"ord": draw(st.sampled_from([None, "fro"])), "axis": axis,
              "keepdims": draw(st.booleans())}
    return (draw(distinct_magnitudes(shape)),), kwargs


@st.composite
def dense_args(draw):
    """x as (n,) or (batch, n), a weight (n, m) and a bias (m,)."""
    n, m = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    x_shape = (n,) if draw(st.booleans()) else (draw(st.integers(1, 3)), n)
    return (draw(reals(x_shape)), draw(reals((n, m))), draw(reals((m,)))), {}


def _dense(xp, x, W, b):
    """The fused layer tanh(x W + b): ardiff.nn.dense traced, NumPy as reference."""
    if xp is np:
        return np.tanh(x @ W + b)
    from ardiff.nn import dense

    return dense(x, W, b, "tanh")


def _two(xp_name):
    return lambda xp, a, b, **kw: getattr(xp, xp_name)(a, b, **kw)


CASES = [
    Case("dot", _two("dot"), dot_args()),
    Case("dot_method", lambda xp, a, b: a.dot(b), dot_args(min_dims=1), ops=("dot",),
         dispatch=False),
    Case("matmul", _two("matmul"), matmul_args()),
    Case("dense", _dense, dense_args(), dispatch=False),
    Case("inner", _two("inner"), inner_args(), ops=()),
    Case("outer", _two("outer"), st.tuples(shapes(), shapes()).flatmap(
        lambda s: st.tuples(reals(s[0]), reals(s[1]))).map(lambda a: (a, {})),
        ops=("multiply",)),
    Case("vdot", _two("vdot"), shapes().flatmap(
        lambda s: st.tuples(reals(s), reals(s))).map(lambda a: (a, {})), ops=("dot",)),
    Case("tensordot", _two("tensordot"), tensordot_args()),
    Case("einsum", lambda xp, *ops, spec: xp.einsum(spec, *ops), einsum_args()),
    Case("trace", lambda xp, a, **kw: xp.trace(a, **kw), trace_args(), ops=("getitem", "sum")),
    Case("trace_method", lambda xp, a, **kw: a.trace(**kw), trace_args(), ops=("getitem",),
         dispatch=False),
    Case("kron", _two("kron"), st.tuples(shapes(max_dims=2), shapes(max_dims=2)).flatmap(
        lambda s: st.tuples(reals(s[0]), reals(s[1]))).map(lambda a: (a, {})),
        ops=("multiply", "reshape")),
    Case("linalg.inv", lambda xp, a: xp.linalg.inv(a), one_square(), ops=("inv",)),
    Case("linalg.solve", lambda xp, a, b: xp.linalg.solve(a, b), solve_args(), ops=("solve",)),
    Case("linalg.det", lambda xp, a: xp.linalg.det(a), one_square(), ops=("det",)),
    Case("linalg.slogdet", lambda xp, a: xp.linalg.slogdet(a)[1], one_square(),
         ops=("logabsdet",)),
    Case("linalg.slogdet_sign", lambda xp, a: xp.linalg.slogdet(a)[0] *
         xp.exp(xp.linalg.slogdet(a)[1]), one_square(), ops=("logabsdet", "exp")),
    Case("linalg.norm", lambda xp, x, **kw: xp.linalg.norm(x, **kw), vector_norm_args(),
         ops=("norm",)),
    Case("linalg.norm_matrix", lambda xp, x, **kw: xp.linalg.norm(x, **kw),
         matrix_norm_args(), ops=("norm",)),
]

test_linalg = make_op_test(CASES)
