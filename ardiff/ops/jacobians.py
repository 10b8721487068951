"""Sparse local Jacobians of the elementary ops, for the exact triangular solver.

``JACOBIANS[name](argnum, ans, *args, **kwargs)`` returns ``∂ans/∂args[argnum]`` at
a recorded point as a :mod:`scipy.sparse` matrix of shape ``(ans.size, arg.size)``
(both flattened in C order); ``NNZ_BOUNDS[name]`` with the same arguments gives an
upper bound on its stored entries *without* building it, so a solver can refuse a
system that would not fit in memory before assembling it.

No derivative formula is repeated here.  The ops fall into a few structural
families, and each family reads the numbers it needs from the op's own staged
VJP (the one place the derivative is written):

* elementwise (with broadcasting): diagonal times a broadcast-selection matrix;
  the diagonal is the VJP of a vector of ones, since ``g -> g * f'``;
* selections (indexing, reshape, transpose, broadcast_to, concatenate): a 0/1
  matrix found by running the op's forward on an array of element numbers;
* reductions (sum, mean, max, var, norm, det, ...): every input element feeds
  exactly one output element, so the Jacobian has one entry per column, whose
  value is again the VJP of ones;
* scans (cumsum, cumprod): lower-triangular blocks along the axis;
* contractions (dot, matmul, tensordot, einsum, inv, solve): Kronecker-structured
  entries written as one einsum over the letters of output and argument.

An op missing from the table still works with the triangular solver through
:func:`jacobian_from_vjp`, which applies the VJP to every unit vector of the
output; that costs one VJP per output element and is only meant for small ops.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.sparse as sp

from ..graph import unwrap
from . import OPS
from .linalg import normalize_axes, parse_einsum
from .reduce import kept_shape

JACOBIANS: dict[str, Callable] = {}
NNZ_BOUNDS: dict[str, Callable] = {}

_LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


def register(names, jac: Callable, nnz: Callable) -> None:
    """Enter a Jacobian builder and its non-zero bound for each op name in ``names``."""
    for name in names:
        JACOBIANS[name] = jac(name)
        NNZ_BOUNDS[name] = nnz(name)


# -- helpers ------------------------------------------------------------------------
def _arr(x: Any) -> np.ndarray:
    return np.asarray(unwrap(x))


def _size(x: Any) -> int:
    return int(np.size(unwrap(x)))


def _inner_vjp(name: str, argnum: int, ans, args, kwargs) -> Callable:
    """The op's staged VJP *before* broadcasting is undone (shaped like the answer)."""
    op = OPS[name]
    if op.vjp is not None:
        return op.vjp(argnum, ans, *args, **kwargs)
    maker = op.vjps[argnum] if argnum < len(op.vjps) else None
    if maker is None:
        raise TypeError(f"ardiff op '{name}' has no derivative with respect to argument "
                        f"{argnum}; pass that argument as a plain (untraced) value.")
    return maker(ans, *args, **kwargs)


def _vjp_of_ones(name, argnum, ans, args, kwargs) -> np.ndarray:
    a = _arr(ans)
    ones = np.ones(a.shape, dtype=a.dtype if a.dtype.kind == "f" else np.float64)
    return _arr(_inner_vjp(name, argnum, ans, args, kwargs)(ones))


def _bound_arguments(name: str, args, kwargs) -> dict:
    """All arguments of the op's forward by parameter name, defaults filled in."""
    bound = inspect.signature(OPS[name].fwd).bind(*args, **kwargs)
    bound.apply_defaults()
    return dict(bound.arguments)


def _coo(data, rows, cols, shape) -> sp.csr_matrix:
    """A CSR matrix from (flattened) triplets; duplicate positions are summed."""
    data = np.ravel(data)
    rows = np.ravel(rows)
    cols = np.ravel(cols)
    return sp.csr_matrix((data, (rows, cols)), shape=shape)


def _broadcast_columns(arg_shape: tuple, out_shape: tuple) -> np.ndarray:
    """For each element of a broadcast result, the flat index of its source element."""
    numbers = np.arange(int(np.prod(arg_shape, dtype=np.int64))).reshape(arg_shape)
    return np.broadcast_to(numbers, out_shape).ravel()


# -- elementwise ---------------------------------------------------------------------
def _elementwise_jac(name):
    def jac(argnum, ans, *args, **kwargs):
        a, x = _arr(ans), _arr(args[argnum])
        diag = np.broadcast_to(_vjp_of_ones(name, argnum, ans, args, kwargs), a.shape)
        cols = _broadcast_columns(x.shape, a.shape)
        return _coo(diag, np.arange(a.size), cols, (a.size, x.size))
    return jac


def _answer_size_bound(name):
    return lambda argnum, ans, *args, **kwargs: _size(ans)


ELEMENTWISE = (
    "negative", "positive", "absolute", "square", "sqrt", "reciprocal", "exp", "exp2",
    "expm1", "log", "log2", "log10", "log1p", "sin", "cos", "tan", "arcsin", "arccos",
    "arctan", "sinh", "cosh", "tanh", "arcsinh", "arccosh", "arctanh", "deg2rad", "rad2deg",
    "sign", "floor", "ceil", "rint", "trunc", "round", "add", "subtract", "multiply",
    "divide", "power", "maximum", "minimum", "fmax", "fmin", "arctan2", "hypot", "logaddexp",
    "logaddexp2", "remainder", "where", "clip", "expit", "erf", "astype",
)
register(ELEMENTWISE, _elementwise_jac, _answer_size_bound)


# -- selections ----------------------------------------------------------------------
# positions of the arguments that carry data (the rest are indices, shapes, axes)
_DATA_ARGS = {"getitem": (0,), "reshape": (0,), "transpose": (0,), "broadcast_to": (0,),
              "concatenate": None}


def _selection_jac(name):
    def jac(argnum, ans, *args, **kwargs):
        data_args = _DATA_ARGS[name]
        numbered = list(args)
        for k, arg in enumerate(args):
            if data_args is None or k in data_args:
                shape = np.shape(unwrap(arg))
                numbered[k] = (np.arange(int(np.prod(shape, dtype=np.int64))).reshape(shape)
                               if k == argnum else np.full(shape, -1, dtype=np.int64))
        source = np.asarray(OPS[name].fwd(*numbered, **kwargs)).ravel()
        rows = np.flatnonzero(source >= 0)
        return _coo(np.ones(rows.size), rows, source[rows], (source.size, _size(args[argnum])))
    return jac


register(tuple(_DATA_ARGS), _selection_jac, _answer_size_bound)


def _untake_region(g, index, shape):
    numbers = np.arange(int(np.prod(shape, dtype=np.int64))).reshape(shape)[index]
    cols = np.broadcast_to(np.arange(_size(g)).reshape(np.shape(unwrap(g))), numbers.shape)
    return numbers, cols


def _untake_jac(name):
    def jac(argnum, ans, g, index, shape):
        rows, cols = _untake_region(g, index, shape)
        return _coo(np.ones(rows.size), rows, cols, (_size(ans), _size(g)))
    return jac


def _untake_nnz(name):
    return lambda argnum, ans, g, index, shape: int(
        np.zeros(shape, dtype=bool)[index].size)


register(("untake",), _untake_jac, _untake_nnz)


# -- reductions ----------------------------------------------------------------------
def _reduction_rows(name, x_shape, n_answer, args, kwargs) -> np.ndarray:
    """For every input element, the flat index of the output element it feeds."""
    if name in ("det", "logabsdet"):
        kept = x_shape[:-2] + (1, 1)
    else:
        kept = kept_shape(x_shape, _bound_arguments(name, args, kwargs).get("axis"))
    n_out = int(np.prod(kept, dtype=np.int64))
    if n_out != n_answer:
        raise NotImplementedError(f"unexpected output layout for '{name}'")
    return np.broadcast_to(np.arange(n_out).reshape(kept), x_shape).ravel()


def _reduction_jac(name):
    def jac(argnum, ans, *args, **kwargs):
        x = _arr(args[argnum])
        rows = _reduction_rows(name, x.shape, _size(ans), args, kwargs)
        values = np.broadcast_to(_vjp_of_ones(name, argnum, ans, args, kwargs), x.shape)
        return _coo(values, rows, np.arange(x.size), (_size(ans), x.size))
    return jac


def _argument_size_bound(name):
    return lambda argnum, ans, *args, **kwargs: _size(args[argnum])


REDUCTIONS = ("sum", "mean", "max", "min", "var", "std", "prod", "logsumexp", "norm", "det",
              "logabsdet")
register(REDUCTIONS, _reduction_jac, _argument_size_bound)


# -- scans ---------------------------------------------------------------------------
def _lines(x_shape, axis) -> np.ndarray:
    """Flat element numbers arranged as (lines, n) with the scanned axis last."""
    numbers = np.arange(int(np.prod(x_shape, dtype=np.int64))).reshape(x_shape)
    if axis is None:
        return numbers.reshape(1, -1)
    moved = np.moveaxis(numbers, axis % len(x_shape), -1)
    return moved.reshape(-1, moved.shape[-1])


def _scan_jac(name):
    def jac(argnum, ans, x, axis=None):
        xa = _arr(x)
        lines = _lines(xa.shape, axis)
        n = lines.shape[1]
        later, earlier = np.tril_indices(n)  # d ans[later] / d x[earlier]
        if name == "cumsum":
            values = np.ones((lines.shape[0], later.size))
        else:
            # d cumprod_r / d x_j = product of x_k for k <= r, k != j (exact with zeros)
            xl = xa.ravel()[lines]
            full = np.empty((lines.shape[0], n, n), dtype=np.result_type(xl, np.float64))
            for j in range(n):
                masked = xl.copy()
                masked[:, j] = 1.0
                full[:, :, j] = np.cumprod(masked, axis=1)
            values = full[:, later, earlier]
        return _coo(values, lines[:, later], lines[:, earlier], (xa.size, xa.size))
    return jac


def _scan_nnz(name):
    def nnz(argnum, ans, x, axis=None):
        lines = _lines(np.shape(unwrap(x)), axis)
        n = lines.shape[1]
        return int(lines.shape[0] * n * (n + 1) // 2)
    return nnz


register(("cumsum", "cumprod"), _scan_jac, _scan_nnz)


# -- contractions --------------------------------------------------------------------
class _Contraction:
    """``ans[out] = scale * Σ target[t] · Π others``, linear in the target operand.

    The Jacobian entry for every assignment of the letters of ``out`` and ``target``
    is an einsum of the other operands; letters shared by output and target (batch
    dimensions) make the matrix block diagonal.
    """

    def __init__(self, target, target_shape, others, out, out_shape, scale=1.0):
        self.target, self.target_shape = target, tuple(target_shape)
        self.others = [(s, _arr(a)) for s, a in others]
        self.out, self.out_shape = out, tuple(out_shape)
        self.scale = scale
        sizes: dict[str, int] = {}
        pairs = [(target, self.target_shape), (out, self.out_shape)]
        pairs += [(s, a.shape) for s, a in self.others]
        for subs, shape in pairs:
            if len(subs) != len(shape):
                raise NotImplementedError("subscripts do not match the operand")
            for c, n in zip(subs, shape):
                # broadcasting stretches only length-1 axes: a zero-length axis stays 0
                sizes[c] = n if sizes.get(c, 1) == 1 else sizes[c]
        self.sizes = sizes
        self.letters = "".join(dict.fromkeys(out + target))

    def nnz(self) -> int:
        return int(np.prod([self.sizes[c] for c in self.letters], dtype=np.int64))

    def matrix(self) -> sp.csr_matrix:
        letters, sizes = self.letters, self.sizes
        grid_shape = tuple(sizes[c] for c in letters)
        in_others = [c for c in letters if any(c in s for s, _ in self.others)]
        if self.others:
            operands = [np.broadcast_to(a, tuple(sizes[c] for c in s)) for s, a in self.others]
            spec = ",".join(s for s, _ in self.others) + "->" + "".join(in_others)
            values = np.einsum(spec, *operands)
        else:
            values = np.ones(())
        values = values.reshape(tuple(sizes[c] if c in in_others else 1 for c in letters))
        values = np.broadcast_to(values * self.scale, grid_shape)
        grids = [np.arange(n).reshape((1,) * i + (n,) + (1,) * (len(grid_shape) - i - 1))
                 for i, n in enumerate(grid_shape)]
        rows = self._flat_index(self.out, self.out_shape, grids)
        cols = self._flat_index(self.target, self.target_shape, grids)
        rows = np.broadcast_to(rows, grid_shape)
        cols = np.broadcast_to(cols, grid_shape)
        n_out = int(np.prod(self.out_shape, dtype=np.int64))
        n_in = int(np.prod(self.target_shape, dtype=np.int64))
        return _coo(values, rows, cols, (n_out, n_in))

    def _flat_index(self, subs, shape, grids):
        index = np.zeros((), dtype=np.int64)
        stride = 1
        for pos in range(len(subs) - 1, -1, -1):
            if shape[pos] > 1:  # a broadcast (length-1) axis always has index 0
                index = index + grids[self.letters.index(subs[pos])] * stride
            stride *= shape[pos]
        return index


def _fresh(n: int, skip: str = "") -> str:
    return "".join([c for c in _LETTERS if c not in skip][:n])


def _tensordot_contraction(argnum, ans, a, b, axes):
    na, nb = np.ndim(unwrap(a)), np.ndim(unwrap(b))
    a_axes, b_axes = normalize_axes(axes, na)
    a_axes = [i % na for i in a_axes]
    b_axes = [i % nb for i in b_axes]
    a_subs = _fresh(na)
    b_list = list(_fresh(nb, a_subs))
    for i, j in zip(a_axes, b_axes):
        b_list[j] = a_subs[i]
    b_subs = "".join(b_list)
    out = "".join(a_subs[i] for i in range(na) if i not in a_axes)
    out += "".join(b_subs[j] for j in range(nb) if j not in b_axes)
    return _pick(argnum, [(a_subs, a), (b_subs, b)], out, ans)


def _pick(argnum, operands, out, ans, scale=1.0):
    target, value = operands[argnum]
    others = [op for k, op in enumerate(operands) if k != argnum]
    return _Contraction(target, np.shape(unwrap(value)), others, out, np.shape(unwrap(ans)), scale)


def _dot_contraction(argnum, ans, a, b):
    na, nb = np.ndim(unwrap(a)), np.ndim(unwrap(b))
    if na == 0 or nb == 0:
        return _tensordot_contraction(argnum, ans, a, b, 0)
    return _tensordot_contraction(argnum, ans, a, b, ([na - 1], [0 if nb == 1 else nb - 2]))


def _matmul_contraction(argnum, ans, a, b):
    na, nb = np.ndim(unwrap(a)), np.ndim(unwrap(b))
    batch = _fresh(max(na, nb, 2) - 2, "mkn")
    a_subs = "k" if na == 1 else batch[len(batch) - (na - 2):] + "mk"
    b_subs = "k" if nb == 1 else batch[len(batch) - (nb - 2):] + "kn"
    out = batch[len(batch) - max(na - 2, nb - 2, 0):]
    out += ("m" if na > 1 else "") + ("n" if nb > 1 else "")
    return _pick(argnum, [(a_subs, a), (b_subs, b)], out, ans)


def _einsum_contraction(argnum, ans, subscripts, *operands):
    if argnum == 0:
        raise TypeError("ardiff op 'einsum': the subscripts string carries no gradient.")
    inputs, out = parse_einsum(subscripts, [np.shape(unwrap(o)) for o in operands])
    return _pick(argnum - 1, list(zip(inputs, operands)), out, ans)


def _batch(n: int) -> str:
    return _fresh(n, "ilpq")


def _inv_contraction(argnum, ans, a):
    b = _batch(np.ndim(unwrap(a)) - 2)
    return _Contraction(b + "pq", np.shape(unwrap(a)), [(b + "ip", ans), (b + "ql", ans)],
                        b + "il", np.shape(unwrap(ans)), scale=-1.0)


def _solve_contraction(argnum, ans, a, b):
    from .linalg import _solve_is_vector

    ar, br, xr = _arr(a), _arr(b), _arr(ans)
    vector = _solve_is_vector(a, b)
    batch = _batch(max(ar.ndim - 2, xr.ndim - (1 if vector else 2), 0))
    a_batch = batch[len(batch) - (ar.ndim - 2):] if ar.ndim > 2 else ""
    b_batch_n = br.ndim - (1 if vector else 2)
    b_batch = batch[len(batch) - b_batch_n:] if b_batch_n > 0 else ""
    x_batch = batch[len(batch) - (xr.ndim - (1 if vector else 2)):] if batch else ""
    tail = "" if vector else "l"
    a_inv = np.linalg.inv(ar)
    if argnum == 1:
        return _Contraction(b_batch + "p" + tail, br.shape, [(a_batch + "ip", a_inv)],
                            x_batch + "i" + tail, xr.shape)
    return _Contraction(a_batch + "pq", ar.shape,
                        [(a_batch + "ip", a_inv), (x_batch + "q" + tail, xr)],
                        x_batch + "i" + tail, xr.shape, scale=-1.0)


_CONTRACTIONS = {
    "tensordot": lambda k, ans, a, b, axes=2: _tensordot_contraction(k, ans, a, b, axes),
    "dot": _dot_contraction,
    "matmul": _matmul_contraction,
    "einsum": _einsum_contraction,
    "inv": _inv_contraction,
    "solve": _solve_contraction,
}


def _contraction_jac(name):
    return lambda argnum, ans, *args, **kwargs: _CONTRACTIONS[name](
        argnum, ans, *args, **kwargs).matrix()


def _contraction_nnz(name):
    return lambda argnum, ans, *args, **kwargs: _CONTRACTIONS[name](
        argnum, ans, *args, **kwargs).nnz()


register(tuple(_CONTRACTIONS), _contraction_jac, _contraction_nnz)


# -- the slow general fallback --------------------------------------------------------
def jacobian_from_vjp(vjp: Callable, out_shape: tuple, arg_shape: tuple) -> sp.csr_matrix:
    """Build a Jacobian row by row from a VJP applied to every unit vector (slow).

    Costs one VJP evaluation per output element and a dense intermediate of
    ``prod(out_shape) * prod(arg_shape)`` numbers; used only for ops without an entry
    in :data:`JACOBIANS`.

    Parameters
    ----------
    vjp : callable
        ``g -> g · ∂out/∂arg`` returning an array shaped like the argument.
    out_shape, arg_shape : tuple
        Shapes of the op's answer and of the argument.

    Returns
    -------
    scipy.sparse.csr_matrix
        The Jacobian, shape ``(prod(out_shape), prod(arg_shape))``.
    """
    n_out = int(np.prod(out_shape, dtype=np.int64))
    n_in = int(np.prod(arg_shape, dtype=np.int64))
    dense = np.zeros((n_out, n_in))
    unit = np.zeros(n_out)
    for r in range(n_out):
        unit[r] = 1.0
        dense[r] = np.ravel(unwrap(vjp(unit.reshape(out_shape))))
        unit[r] = 0.0
    return sp.csr_matrix(dense)


def dense_bound(argnum: int, ans, *args, **kwargs) -> int:
    """The trivial bound ``ans.size * arg.size`` for ops without a better one."""
    return _size(ans) * _size(args[argnum])
