"""Linear algebra: dot, matmul, tensordot, einsum, inv, solve, det, log|det|, norm.

Decompositions and matrix functions are in `ardiff.ops.decompositions`.
"""

from __future__ import annotations

import sys

import numpy as np

from ..graph import unwrap
from ..op import defop, scale_by
from .axes import kept_shape
from .complex_parts import conj_if_complex
from .elementwise import absolute, where
from .jacobians import Contraction, Contractions, Reduction, fresh_letters, pick
from .reduce import reduction_jvp, spread, sum_
from .shape import broadcast_to, reshape, transpose


def _array(x):
    return np.asarray(unwrap(x))


def _ndim(x):
    x = unwrap(x)
    return x.ndim if isinstance(x, (np.ndarray, np.generic)) else np.ndim(x)


def matrix_transpose(x):
    """Swap the last two axes (batched matrix transpose), traced when `x` is."""
    if type(x) is np.ndarray:  # plain (not traced): no op to record, take the view
        return np.swapaxes(x, -1, -2)
    n = _ndim(x)
    perm = tuple(range(n - 2)) + (n - 1, n - 2)
    return transpose(x, perm)


# -- tensordot and dot ----------------------------------------------------------
def normalize_axes(axes, a_ndim):
    """Turn tensordot's `axes` argument into two lists of non-negative axes."""
    if isinstance(axes, (int, np.integer)):
        return list(range(a_ndim - axes, a_ndim)), list(range(axes))
    a_axes, b_axes = axes
    a_axes = [a_axes] if isinstance(a_axes, (int, np.integer)) else list(a_axes)
    b_axes = [b_axes] if isinstance(b_axes, (int, np.integer)) else list(b_axes)
    return a_axes, b_axes


def _tensordot_vjp(k, ans, a, b, axes=2):
    na, nb = _ndim(a), _ndim(b)
    a_axes, b_axes = normalize_axes(axes, na)
    a_axes = [i % na for i in a_axes]
    b_axes = [i % nb for i in b_axes]
    a_free = [i for i in range(na) if i not in a_axes]
    b_free = [i for i in range(nb) if i not in b_axes]
    g_a_part = list(range(len(a_free)))
    g_b_part = list(range(len(a_free), len(a_free) + len(b_free)))
    if k == 0:
        # result axes: a_free, then b's contracted axes in increasing order
        labels = a_free + [a_axes[j] for j in np.argsort(b_axes)]
        perm = tuple(int(i) for i in np.argsort(labels))
        return lambda g: transpose(tensordot(g, b, axes=(g_b_part, b_free)), perm)
    labels = [b_axes[j] for j in np.argsort(a_axes)] + b_free
    perm = tuple(int(i) for i in np.argsort(labels))
    return lambda g: transpose(tensordot(a, g, axes=(a_free, g_a_part)), perm)


def _tensordot_contraction(argnum, ans, a, b, axes):
    na, nb = np.ndim(unwrap(a)), np.ndim(unwrap(b))
    a_axes, b_axes = normalize_axes(axes, na)
    a_axes = [i % na for i in a_axes]
    b_axes = [i % nb for i in b_axes]
    a_subs = fresh_letters(na)
    b_list = list(fresh_letters(nb, a_subs))
    for i, j in zip(a_axes, b_axes):
        b_list[j] = a_subs[i]
    b_subs = "".join(b_list)
    out = "".join(a_subs[i] for i in range(na) if i not in a_axes)
    out += "".join(b_subs[j] for j in range(nb) if j not in b_axes)
    return pick(argnum, [(a_subs, a), (b_subs, b)], out, ans)


tensordot = defop("tensordot", lambda a, b, axes=2: np.tensordot(a, b, axes=axes),
                  vjp=_tensordot_vjp, jac=Contractions(
                      lambda k, ans, a, b, axes=2: _tensordot_contraction(k, ans, a, b, axes)),
                  reads=((1,), (0,)), multilinear=True)


def _dot_vjp(k, ans, a, b):
    if _ndim(a) == 0 or _ndim(b) == 0:
        return scale_by(b if k == 0 else a)
    axes = ([_ndim(a) - 1], [0 if _ndim(b) == 1 else _ndim(b) - 2])
    return _tensordot_vjp(k, ans, a, b, axes=axes)


def _dot_contraction(argnum, ans, a, b):
    na, nb = np.ndim(unwrap(a)), np.ndim(unwrap(b))
    if na == 0 or nb == 0:
        return _tensordot_contraction(argnum, ans, a, b, 0)
    return _tensordot_contraction(argnum, ans, a, b, ([na - 1], [0 if nb == 1 else nb - 2]))


dot = defop("dot", np.dot, vjp=_dot_vjp, jac=Contractions(_dot_contraction),
            reads=((1,), (0,)), multilinear=True)


#: Matrix products of a VJP of at least this many bytes are written into buffers kept
#: between calls (`pooled_matmul`).
POOL_MIN_BYTES = 128 * 1024
#: At most this many bytes are kept in the pool, all shapes together.
POOL_MAX_BYTES = 64 * 2**20
_pool: dict = {}  # (shape, dtype) -> [arrays]
getrefcount = getattr(sys, "getrefcount", None)  # None: no reference counts, no pool
_pool_bytes = [0]


def _probe_pooled_count() -> int:
    # What getrefcount reads for a pooled array that nothing outside the pool holds,
    # measured with the loop `free_buffer` runs (the list's reference, the loop
    # variable's, the call's argument), whatever the interpreter adds.
    for buf in [np.empty(1)]:
        return getrefcount(buf)
    return 0  # pragma: no cover


_POOLED_ONLY = _probe_pooled_count() if getrefcount is not None else 0


def free_buffer(shape: tuple, dtype) -> np.ndarray:
    """An array of `shape` and `dtype` for a VJP to write: a pooled one that nothing
    outside the pool refers to any more, else a new one (pooled while room is left).

    Its reference count proves a pooled array free: a gradient the user still holds,
    a view of it, or an activity of the running sweep all count, so such an array is
    never handed out again; one the user dropped is written again by a later call
    instead of the allocator mapping (and page-faulting) fresh memory for it.

    Parameters
    ----------
    shape : tuple
    dtype : numpy dtype

    Returns
    -------
    numpy.ndarray
        Uninitialised.
    """
    buffers = _pool.get((shape, dtype))
    if buffers is None:
        buffers = _pool[(shape, dtype)] = []
    if _POOLED_ONLY:
        for buf in buffers:
            if getrefcount(buf) == _POOLED_ONLY:
                return buf
    buf = np.empty(shape, dtype)
    if _POOLED_ONLY and _pool_bytes[0] + buf.nbytes <= POOL_MAX_BYTES:
        buffers.append(buf)
        _pool_bytes[0] += buf.nbytes
    return buf


def pooled_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """`numpy.matmul(a, b)` of plain arrays; a large product of two float matrices is
    written into a `free_buffer` (the same BLAS call, so the same bits).

    glibc maps blocks of a few hundred kB afresh, or trims the heap they were freed
    to, depending on what the process freed before: a backward pass that allocates
    its weight gradients anew on every call then page-faults them on every call (an
    mlp's gradient ran about a third slower so, in some processes and not others).
    Kept buffers are reused instead, once their last user has let go of them.

    Parameters
    ----------
    a, b : numpy.ndarray
        Plain arrays, as `numpy.matmul` takes them.

    Returns
    -------
    numpy.ndarray
        The product, in a pooled buffer when it is a float matrix of at least
        `POOL_MIN_BYTES`.
    """
    if a.ndim == 2 and b.ndim == 2:
        dtype = np.result_type(a, b)
        shape = (a.shape[0], b.shape[1])
        if dtype.kind in "fc" and shape[0] * shape[1] * dtype.itemsize >= POOL_MIN_BYTES:
            return np.matmul(a, b, out=free_buffer(shape, dtype))
    return np.matmul(a, b)


def _matmul_vjp(k, ans, a, b):
    # A 1-D operand is a row (a) or a column (b) whose extra axis NumPy drops from
    # the answer; the VJP puts the axis back on g, multiplies, and drops it again.
    if k == 0 and type(b) is np.ndarray and b.ndim > 1 and _ndim(a) > 1:  # the common case
        bt = b.swapaxes(-1, -2)  # (plain matrices or stacks of them; a traced g records)
        return lambda g: pooled_matmul(g, bt) if type(g) is np.ndarray else matmul(g, bt)
    if k == 1 and type(a) is np.ndarray and a.ndim > 1 and _ndim(b) > 1:
        at = a.swapaxes(-1, -2)
        return lambda g: pooled_matmul(at, g) if type(g) is np.ndarray else matmul(at, g)
    a_vec, b_vec = _ndim(a) == 1, _ndim(b) == 1
    if not (a_vec or b_vec):  # matrices (or stacks of them): g @ b^T and a^T @ g
        if k == 0:
            bt = matrix_transpose(b)
            return lambda g: matmul(g, bt)
        at = matrix_transpose(a)
        return lambda g: matmul(at, g)

    def as_matrix(g):
        s = np.shape(unwrap(g))
        if a_vec and b_vec:
            return reshape(g, (1, 1))
        if a_vec:
            return reshape(g, s[:-1] + (1,) + s[-1:])
        if b_vec:
            return reshape(g, s + (1,))
        return g

    if k == 0:
        bt = matrix_transpose(reshape(b, np.shape(unwrap(b)) + (1,)) if b_vec else b)

        def vjp(g):
            ga = matmul(as_matrix(g), bt)
            shape = np.shape(unwrap(ga))
            return reshape(ga, shape[:-2] + shape[-1:]) if a_vec else ga
        return vjp
    at = matrix_transpose(reshape(a, (1,) + np.shape(unwrap(a))) if a_vec else a)

    def vjp(g):
        gb = matmul(at, as_matrix(g))
        return reshape(gb, np.shape(unwrap(gb))[:-1]) if b_vec else gb
    return vjp


def _matmul_contraction(argnum, ans, a, b):
    na, nb = np.ndim(unwrap(a)), np.ndim(unwrap(b))
    batch = fresh_letters(max(na, nb, 2) - 2, "mkn")
    a_subs = "k" if na == 1 else batch[len(batch) - (na - 2):] + "mk"
    b_subs = "k" if nb == 1 else batch[len(batch) - (nb - 2):] + "kn"
    out = batch[len(batch) - max(na - 2, nb - 2, 0):]
    out += ("m" if na > 1 else "") + ("n" if nb > 1 else "")
    return pick(argnum, [(a_subs, a), (b_subs, b)], out, ans)


matmul = defop("matmul", np.matmul, vjp=_matmul_vjp, jac=Contractions(_matmul_contraction),
               reads=((1,), (0,)), multilinear=True)


# -- einsum -------------------------------------------------------------------
_SPARE_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def parse_einsum(subscripts, shapes):
    """Explicit input and output subscripts, with ellipses replaced by letters."""
    subscripts = subscripts.replace(" ", "")
    if "->" in subscripts:
        lhs, out = subscripts.split("->")
    else:
        lhs, out = subscripts, None
    inputs = lhs.split(",")
    spare = [c for c in _SPARE_LETTERS if c not in subscripts]
    n_ell = max((len(shape) - len(s.replace("...", ""))
                 for s, shape in zip(inputs, shapes) if "..." in s), default=0)
    ell = "".join(spare[:n_ell])
    expanded = []
    for s, shape in zip(inputs, shapes):
        if "..." in s:
            width = len(shape) - len(s.replace("...", ""))
            s = s.replace("...", ell[n_ell - width:])
        expanded.append(s)
    if out is None:
        letters = "".join(expanded)
        out = ell + "".join(sorted(c for c in set(letters.replace(ell, "") if ell else letters)
                                   if letters.count(c) == 1 and c not in ell))
    else:
        out = out.replace("...", ell)
    return expanded, out


def _einsum_vjp(k, ans, subscripts, *operands):
    if k == 0:
        raise TypeError("ardiff op 'einsum': the subscripts string carries no gradient.")
    shapes = [np.shape(unwrap(o)) for o in operands]
    inputs, out = parse_einsum(subscripts, shapes)
    i = k - 1
    target, shape = inputs[i], shapes[i]
    sizes = dict(zip(target, shape))
    others = [o for j, o in enumerate(operands) if j != i]
    other_subs = [s for j, s in enumerate(inputs) if j != i]
    unique = "".join(dict.fromkeys(target))
    present = "".join(c for c in unique if c in out or any(c in s for s in other_subs))
    spec = ",".join(other_subs + [out]) + "->" + present
    # letters summed only inside this operand get a broadcast copy of the gradient
    full_shape = tuple(sizes[c] for c in unique)
    kept = tuple(sizes[c] if c in present else 1 for c in unique)
    order = [present.index(c) for c in unique if c in present]
    repeated = len(unique) < len(target)
    if repeated:
        # place the gradient on the generalised diagonal of repeated letters
        grids = np.indices(shape, sparse=True)
        mask = np.ones(shape, dtype=bool)
        for c in unique:
            positions = [p for p, d in enumerate(target) if d == c]
            for p in positions[1:]:
                mask = mask & (grids[positions[0]] == grids[p])
        expand = tuple(unique.index(c) if target.index(c) == p else None
                       for p, c in enumerate(target))

    def vjp(g):
        r = einsum(spec, *others, g)
        # letters (ellipsis dims) of size 1 here but broadcast against larger ones
        # elsewhere: the adjoint of that broadcast is a sum
        rs = np.shape(unwrap(r))
        summed = tuple(p for p, c in enumerate(present) if sizes[c] == 1 and rs[p] != 1)
        if summed:
            r = sum_(r, axis=summed, keepdims=True)
        r = transpose(r, tuple(order)) if order != sorted(order) else r
        r = broadcast_to(reshape(r, kept), full_shape)
        if not repeated:
            return r
        view = tuple(full_shape[e] if e is not None else 1 for e in expand)
        src = [e for e in expand if e is not None]
        r = transpose(r, tuple(int(j) for j in np.argsort(np.argsort(src)))) \
            if src != sorted(src) else r
        return broadcast_to(reshape(r, view), shape) * mask
    return vjp


def _einsum_contraction(argnum, ans, subscripts, *operands):
    if argnum == 0:
        raise TypeError("ardiff op 'einsum': the subscripts string carries no gradient.")
    inputs, out = parse_einsum(subscripts, [np.shape(unwrap(o)) for o in operands])
    return pick(argnum - 1, list(zip(inputs, operands)), out, ans)


einsum = defop("einsum", lambda subscripts, *operands: np.einsum(subscripts, *operands),
               vjp=_einsum_vjp, jac=Contractions(_einsum_contraction),
               reads=lambda k, n: tuple(j for j in range(n) if j != k),  # the others
               multilinear=True)


# -- inverses and determinants -------------------------------------------------
def _batch(n: int) -> str:
    return fresh_letters(n, "ilpq")


def _inv_contraction(argnum, ans, a):
    b = _batch(np.ndim(unwrap(a)) - 2)
    return Contraction(b + "pq", np.shape(unwrap(a)), [(b + "ip", ans), (b + "ql", ans)],
                        b + "il", np.shape(unwrap(ans)), scale=-1.0)


inv = defop("inv", np.linalg.inv,
            lambda ans, a: (lambda at: lambda g: -matmul(matmul(at, g), at))(
                matrix_transpose(ans)),
            jac=Contractions(_inv_contraction), reads=(("ans",),),
            jvp=(lambda t, ans, a: -matmul(matmul(ans, t), ans),))


def solve_is_vector(a, b) -> bool:
    """Whether `solve(a, b)` reads `b` as a (batch of) vector(s), as this NumPy does."""
    if int(np.__version__.split(".")[0]) >= 2:
        return _ndim(b) == 1
    return _ndim(b) == _ndim(a) - 1


def _solve_vjp(k, ans, a, b):
    vector = solve_is_vector(a, b)
    at = matrix_transpose(a)

    def solve_t(g):
        """A^-T g; a (batched) vector right-hand side is solved as a column, because
        with a batch NumPy would read g (shaped like the answer) as a matrix."""
        if not vector:
            return solve(at, g)
        column = solve(at, reshape(g, np.shape(unwrap(g)) + (1,)))
        return reshape(column, np.shape(unwrap(column))[:-1])

    if k == 1:
        return solve_t

    def vjp(g):
        gb = solve_t(g)
        if vector:
            gbm = reshape(gb, np.shape(unwrap(gb)) + (1,))
            xm = reshape(ans, np.shape(unwrap(ans))[:-1] + (1,) + np.shape(unwrap(ans))[-1:])
            return -(gbm * xm)
        return -matmul(gb, matrix_transpose(ans))
    return vjp


def _solve_contraction(argnum, ans, a, b):
    ar, br, xr = _array(a), _array(b), _array(ans)
    vector = solve_is_vector(a, b)
    batch = _batch(max(ar.ndim - 2, xr.ndim - (1 if vector else 2), 0))
    a_batch = batch[len(batch) - (ar.ndim - 2):] if ar.ndim > 2 else ""
    b_batch_n = br.ndim - (1 if vector else 2)
    b_batch = batch[len(batch) - b_batch_n:] if b_batch_n > 0 else ""
    x_batch = batch[len(batch) - (xr.ndim - (1 if vector else 2)):] if batch else ""
    tail = "" if vector else "l"
    a_inv = np.linalg.inv(ar)
    if argnum == 1:
        return Contraction(b_batch + "p" + tail, br.shape, [(a_batch + "ip", a_inv)],
                            x_batch + "i" + tail, xr.shape)
    return Contraction(a_batch + "pq", ar.shape,
                        [(a_batch + "ip", a_inv), (x_batch + "q" + tail, xr)],
                        x_batch + "i" + tail, xr.shape, scale=-1.0)


def _solve_jvp(k, t, ans, a, b):
    """A x = b: dx = A^-1 db - A^-1 dA x."""
    if k == 1:
        return solve(a, t)
    if not solve_is_vector(a, b):
        return -solve(a, matmul(t, ans))
    column = matmul(t, reshape(ans, np.shape(unwrap(ans)) + (1,)))
    return -solve(a, reshape(column, np.shape(unwrap(column))[:-1]))


solve = defop("solve", np.linalg.solve, vjp=_solve_vjp, jac=Contractions(_solve_contraction),
              reads=(("ans", 0), (0,)), jvp=_solve_jvp)  # of b, only its number of dimensions


# determinants reduce the two matrix axes of each matrix in a batch
_LAST_TWO_AXES = Reduction(kept=lambda shape: shape[:-2] + (1, 1))


def _trace_of_inverse_times(a, t):
    """tr(A^-1 dA) per matrix: d det = det tr(A^-1 dA), d log|det| = Re tr(A^-1 dA)."""
    return sum_(matrix_transpose(inv(a)) * t, axis=(-2, -1))


def _batched_scalar(x):
    return reshape(x, np.shape(unwrap(x)) + (1, 1))


det = defop("det", np.linalg.det,
            lambda ans, a: (lambda cof: lambda g: _batched_scalar(g) * cof)(
                _batched_scalar(ans) * matrix_transpose(inv(a))),
            jac=_LAST_TWO_AXES, nonlinear=True, reads=(("ans", 0),),
            jvp=(lambda t, ans, a: ans * _trace_of_inverse_times(a, t),))
logabsdet = defop("logabsdet", lambda a: np.linalg.slogdet(a)[1],
                  lambda ans, a: (lambda it: lambda g: _batched_scalar(g) * it)(
                      matrix_transpose(inv(a))),
                  jac=_LAST_TWO_AXES, nonlinear=True, reads=((0,),),
                  jvp=(lambda t, ans, a: _trace_of_inverse_times(a, t),))


# -- norms ---------------------------------------------------------------------
def _norm_fwd(x, ord=None, axis=None, keepdims=False):
    return np.linalg.norm(x, ord=ord, axis=axis, keepdims=keepdims)


def _norm_vjp(ans, x, ord=None, axis=None, keepdims=False):
    xr = unwrap(x)
    shape = np.shape(xr)
    matrix = (axis is None and xr.ndim == 2 and ord is not None) or (
        isinstance(axis, tuple) and len(axis) == 2)
    if matrix and ord not in (None, "fro"):
        raise NotImplementedError(
            f"ardiff op 'norm': the matrix norm ord={ord!r} is not this op's; call "
            "ardiff.numpy.linalg.norm, which composes it from svdvals, sums and extrema.")
    if ord in (None, 2, "fro") or (axis is None and ord is None):
        reduce_axis = axis
        p = 2.0
    elif ord in (np.inf, -np.inf) and np.iscomplexobj(xr):
        reduce_axis = axis
        a = np.abs(xr)
        ext = np.max(a, axis=axis, keepdims=True) if ord == np.inf else \
            np.min(a, axis=axis, keepdims=True)
        hits = (a == ext).astype(a.dtype)
        # d|z| = Re(conj(z) dz) / |z| at the tied extreme moduli (traced: second order)
        share = conj_if_complex(x) / where(hits > 0, absolute(x), 1.0) * (
            hits / np.sum(hits, axis=axis, keepdims=True))
        return lambda g: spread(g, shape, reduce_axis) * share
    elif ord in (np.inf, -np.inf):
        reduce_axis = axis
        a = np.abs(xr)
        ext = np.max(a, axis=axis, keepdims=True) if ord == np.inf else \
            np.min(a, axis=axis, keepdims=True)
        hits = (a == ext).astype(xr.dtype)
        share = np.sign(xr) * hits / np.sum(hits, axis=axis, keepdims=True)
        return lambda g: spread(g, shape, reduce_axis) * share
    elif ord == 0:
        zeros = np.zeros(shape, dtype=xr.dtype)
        return lambda g: zeros
    else:
        reduce_axis = axis
        p = float(ord)
    kept = reshape(ans, kept_shape(shape, reduce_axis))
    positive = np.asarray(unwrap(kept)) > 0
    # d|x|_p / dx = sign(x) |x|^(p-1) / |x|_p^(p-1); 0 at the zero vector (a subgradient)
    denom = where(positive, kept, 1.0) ** (p - 1.0)
    if p == 2.0:
        slope = conj_if_complex(x)
    elif np.iscomplexobj(xr):  # d|z|^p = p |z|^(p-2) Re(conj(z) dz); 0 where z = 0
        nonzero = xr != 0
        slope = where(nonzero, conj_if_complex(x) * absolute(where(nonzero, x, 1.0)) ** (p - 2.0),
                      0.0)
    else:
        slope = np.sign(xr) * absolute(x) ** (p - 1.0)
    factor = where(positive, slope / denom, 0.0)
    return lambda g: spread(g, shape, reduce_axis) * factor


norm = defop("norm", _norm_fwd, _norm_vjp, jac=Reduction(), nonlinear=True,
             reads=(("ans", 0),), jvp=(reduction_jvp(_norm_vjp),))
