"""Sparse-Jacobian families of the elementary ops, for the exact triangular solver.

An op names its family in its `ardiff.op.defop` call (`jac=...`); the solver asks
the op (`Op.jacobian`, `Op.jacobian_nnz`) for `∂ans/∂args[k]` at a recorded point
as a `scipy.sparse` matrix of shape `(ans.size, arg.size)` (both flattened in C
order), or for an upper bound on its stored entries *without* building it, so that a
system too large for memory is refused before it is assembled.

No derivative formula is written here.  Each family reads the numbers it needs from
the op's own VJP rule (`Op.vjp_maker`, the one place the derivative is written)
or from its forward:

* `ELEMENTWISE` (with broadcasting): diagonal times a broadcast-selection
  matrix; the diagonal is the VJP of a vector of ones, since `g -> g * f'`;
* `Selection` (indexing, reshape, transpose, broadcast_to, concatenate): a 0/1
  matrix found by running the op's forward on an array of element numbers;
* `Reduction` (sum, mean, max, var, norm, det, ...): every input element feeds
  exactly one output element, so there is one entry per column, again the VJP of ones;
* `Scan` (cumsum, cumprod): lower-triangular blocks along the axis;
* `Contractions` (dot, matmul, tensordot, einsum, inv, solve): Kronecker-structured
  entries written as one einsum over the letters of output and argument
  (`Contraction`; the op module says which letters).

An op without a family still works with the triangular solver through
`jacobian_from_vjp`, which applies the VJP to every unit vector of the output;
that costs one VJP per output element and is only meant for small ops.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.sparse as sp

from ..graph import unwrap
from .axes import kept_shape

__all__ = ["LETTERS", "Family", "ELEMENTWISE", "Selection", "Scatter", "Reduction", "Scan",
           "Contraction", "Contractions", "fresh_letters", "pick", "jacobian_from_vjp"]

LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


# -- helpers ------------------------------------------------------------------------
def _arr(x: Any) -> np.ndarray:
    return np.asarray(unwrap(x))


def _size(x: Any) -> int:
    return int(np.size(unwrap(x)))


def _vjp_of_ones(op, argnum, ans, args, kwargs) -> np.ndarray:
    a = _arr(ans)
    ones = np.ones(a.shape, dtype=a.dtype if a.dtype.kind == "f" else np.float64)
    return _arr(op.vjp_maker(argnum)(ans, *args, **kwargs)(ones))


def _coo(data, rows, cols, shape) -> sp.csr_matrix:
    """A CSR matrix from (flattened) triplets; duplicate positions are summed."""
    return sp.csr_matrix((np.ravel(data), (np.ravel(rows), np.ravel(cols))), shape=shape)


def _numbers(shape: tuple) -> np.ndarray:
    """Flat element numbers arranged in `shape`."""
    return np.arange(int(np.prod(shape, dtype=np.int64))).reshape(shape)


class Family:
    """Base of the families: `matrix` builds the Jacobian, `nnz` bounds its entries.

    The default bound is the size of the answer (one entry per output element).
    """

    def matrix(self, op, argnum: int, ans, args, kwargs) -> sp.csr_matrix:
        raise NotImplementedError

    def nnz(self, op, argnum: int, ans, args, kwargs) -> int:
        return _size(ans)


# -- elementwise ---------------------------------------------------------------------
class _Elementwise(Family):
    def matrix(self, op, argnum, ans, args, kwargs):
        a, x = _arr(ans), _arr(args[argnum])
        diag = np.broadcast_to(_vjp_of_ones(op, argnum, ans, args, kwargs), a.shape)
        # for each element of the (broadcast) answer, the element of x it came from
        cols = np.broadcast_to(_numbers(x.shape), a.shape).ravel()
        return _coo(diag, np.arange(a.size), cols, (a.size, x.size))


#: Elementwise ops (broadcasting allowed): a diagonal read off the VJP of ones.
ELEMENTWISE = _Elementwise()


# -- selections ----------------------------------------------------------------------
class Selection(Family):
    """Ops that only move elements: the forward run on element numbers says where.

    Parameters
    ----------
    data_args : tuple of int or None
        Positions of the arguments that carry data (the rest are indices, shapes,
        axes); None when every positional argument does (`concatenate`).
    """

    def __init__(self, data_args: tuple | None = (0,)):
        self.data_args = data_args

    def matrix(self, op, argnum, ans, args, kwargs):
        numbered = list(args)
        for k, arg in enumerate(args):
            if self.data_args is None or k in self.data_args:
                shape = np.shape(unwrap(arg))
                numbered[k] = _numbers(shape) if k == argnum else np.full(shape, -1, np.int64)
        source = np.asarray(op.fwd(*numbered, **kwargs)).ravel()
        rows = np.flatnonzero(source >= 0)
        return _coo(np.ones(rows.size), rows, source[rows], (source.size, _size(args[argnum])))


class Scatter(Family):
    """`untake(g, index, shape)`: the adjoint of indexing, one entry per taken element."""

    def matrix(self, op, argnum, ans, args, kwargs):
        g, index, shape = args
        rows = _numbers(shape)[index]
        cols = np.broadcast_to(_numbers(np.shape(unwrap(g))), rows.shape)
        return _coo(np.ones(rows.size), rows, cols, (_size(ans), _size(g)))

    def nnz(self, op, argnum, ans, args, kwargs):
        _, index, shape = args
        return int(np.zeros(shape, dtype=bool)[index].size)


# -- reductions ----------------------------------------------------------------------
class Reduction(Family):
    """Every input element feeds exactly one output element.

    Parameters
    ----------
    kept : callable, optional
        `kept(x_shape) -> shape` of the answer with the reduced axes kept as length
        one; default: read `axis` off the op's arguments.
    """

    def __init__(self, kept: Callable | None = None):
        self.kept = kept

    def matrix(self, op, argnum, ans, args, kwargs):
        x = _arr(args[argnum])
        if self.kept is not None:
            kept = self.kept(x.shape)
        else:
            bound = inspect.signature(op.fwd).bind(*args, **kwargs)
            bound.apply_defaults()
            kept = kept_shape(x.shape, bound.arguments.get("axis"))
        n_out = int(np.prod(kept, dtype=np.int64))
        if n_out != _size(ans):
            raise NotImplementedError(f"unexpected output layout for '{op.name}'")
        rows = np.broadcast_to(_numbers(kept), x.shape).ravel()
        values = np.broadcast_to(_vjp_of_ones(op, argnum, ans, args, kwargs), x.shape)
        return _coo(values, rows, np.arange(x.size), (n_out, x.size))

    def nnz(self, op, argnum, ans, args, kwargs):
        return _size(args[argnum])


# -- scans ---------------------------------------------------------------------------
def _lines(x_shape, axis) -> np.ndarray:
    """Flat element numbers arranged as (lines, n) with the scanned axis last."""
    numbers = _numbers(x_shape)
    if axis is None:
        return numbers.reshape(1, -1)
    moved = np.moveaxis(numbers, axis % len(x_shape), -1)
    return moved.reshape(-1, moved.shape[-1])


class Scan(Family):
    """Cumulative ops along `axis`: lower-triangular blocks, one per line.

    Parameters
    ----------
    partials : callable, optional
        `partials(lines, later, earlier)` -> `d ans[later] / d x[earlier]` for every
        line of values (shape `(lines, n)`); default 1 (a cumulative sum).
    """

    def __init__(self, partials: Callable | None = None):
        self.partials = partials

    def matrix(self, op, argnum, ans, args, kwargs):
        x = _arr(args[0])
        lines = _lines(x.shape, kwargs.get("axis", args[1] if len(args) > 1 else None))
        later, earlier = np.tril_indices(lines.shape[1])
        if self.partials is None:
            values = np.ones((lines.shape[0], later.size))
        else:
            values = self.partials(x.ravel()[lines], later, earlier)
        return _coo(values, lines[:, later], lines[:, earlier], (x.size, x.size))

    def nnz(self, op, argnum, ans, args, kwargs):
        axis = kwargs.get("axis", args[1] if len(args) > 1 else None)
        lines = _lines(np.shape(unwrap(args[0])), axis)
        n = lines.shape[1]
        return int(lines.shape[0] * n * (n + 1) // 2)


# -- contractions --------------------------------------------------------------------
class Contraction:
    """`ans[out] = scale * Σ target[t] · Π others`, linear in the target operand.

    The Jacobian entry for every assignment of the letters of `out` and `target`
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


def fresh_letters(n: int, skip: str = "") -> str:
    """`n` einsum letters not in `skip`."""
    return "".join([c for c in LETTERS if c not in skip][:n])


def pick(argnum: int, operands: list, out: str, ans, scale: float = 1.0) -> Contraction:
    """The `Contraction` of `operands[argnum]` among `(subscripts, value)` pairs."""
    target, value = operands[argnum]
    others = [op for k, op in enumerate(operands) if k != argnum]
    return Contraction(target, np.shape(unwrap(value)), others, out, np.shape(unwrap(ans)), scale)


class Contractions(Family):
    """Ops linear in each operand: `describe(k, ans, *args, **kwargs)` gives the
    `Contraction` of operand `k` (its letters and the other operands)."""

    def __init__(self, describe: Callable):
        self.describe = describe

    def matrix(self, op, argnum, ans, args, kwargs):
        return self.describe(argnum, ans, *args, **kwargs).matrix()

    def nnz(self, op, argnum, ans, args, kwargs):
        return self.describe(argnum, ans, *args, **kwargs).nnz()


# -- the slow general fallback --------------------------------------------------------
def jacobian_from_vjp(vjp: Callable, out_shape: tuple, arg_shape: tuple) -> sp.csr_matrix:
    """Build a Jacobian row by row from a VJP applied to every unit vector (slow).

    Costs one VJP evaluation per output element and a dense intermediate of
    `prod(out_shape) * prod(arg_shape)` numbers; used for ops without a Jacobian
    family (`Op.jacobian` returns None).

    Parameters
    ----------
    vjp : callable
        `g -> g · ∂out/∂arg` returning an array shaped like the argument.
    out_shape, arg_shape : tuple
        Shapes of the op's answer and of the argument.

    Returns
    -------
    scipy.sparse.csr_matrix
        The Jacobian, shape `(prod(out_shape), prod(arg_shape))`.
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
