"""Shape ops: indexing, reshaping, transposing, broadcasting, joining, casting.

Indexing is the workhorse: flips, repeats, tiles, diagonals, sorts and
padding are all expressed in `ardiff.numpy` as `getitem` with an index
array, whose adjoint is `untake` (scatter-add), whose adjoint is `getitem`.
`roll` is its own op: it is called in tight loops (fluid simulations), where
building and gathering through an index array costs several times NumPy's roll.
"""

from __future__ import annotations

import numpy as np

from ..graph import unwrap
from ..op import PASS_THROUGH, defop, unbroadcast
from .axes import dtype_of
from .jacobians import ELEMENTWISE, Scatter, Selection

MOVES_ARGUMENT_0 = Selection((0,))  # the other arguments are indices, shapes or axes


def is_basic_index(index) -> bool:
    """True when `index` selects each element at most once (no integer arrays)."""
    items = index if isinstance(index, tuple) else (index,)
    return all(isinstance(i, (int, np.integer, slice)) or i is None or i is Ellipsis
               for i in items)


def _untake_fwd(g, index, shape):
    out = np.zeros(shape, dtype=np.result_type(g))
    if is_basic_index(index):
        out[index] = g
    else:
        np.add.at(out, index, g)
    return out


getitem = defop("getitem", lambda x, index: x[index],
                lambda ans, x, index: lambda g: untake(g, index, np.shape(unwrap(x))),
                jac=MOVES_ARGUMENT_0, reads=((1,),), view=True, linear=True)
untake = defop("untake", _untake_fwd,
               lambda ans, g, index, shape: lambda h: getitem(h, index), jac=Scatter(),
               reads=((1,),), linear=True)

def _setitem_fwd(x, index, v):
    out = np.array(x, copy=True)
    out[index] = v  # NumPy's assignment: v broadcast and cast to x's dtype
    return out


# `x[index] = v` as a new array (Tracer.__setitem__ moves x to it): the overwritten
# entries pass nothing back to x, and each entry of v gets the gradient of the entries
# it was written to (summed over its broadcasting)
setitem = defop("setitem", _setitem_fwd,
                lambda ans, x, index, v: lambda g: setitem(g, index, 0.0),
                None,
                lambda ans, x, index, v: lambda g: unbroadcast(getitem(g, index),
                                                               np.shape(unwrap(v))),
                jac=Selection((0, 2)), reads=((1,), (), (1,)), linear=True)

reshape = defop("reshape", np.reshape,
                lambda ans, x, shape: lambda g: reshape(g, np.shape(unwrap(x))),
                jac=MOVES_ARGUMENT_0, reads=((),), view=True, linear=True)


def _transpose_vjp(ans, x, axes=None):
    # NumPy accepts negative axes; the inverse permutation needs them normalised
    ndim = np.ndim(unwrap(x))
    inverse = None if axes is None else tuple(int(i) for i in np.argsort(
        [a % ndim for a in axes]))
    return lambda g: transpose(g, inverse)


transpose = defop("transpose", lambda x, axes=None: np.transpose(x, axes), _transpose_vjp,
                  jac=MOVES_ARGUMENT_0, reads=((),), view=True, linear=True)

# The generic unbroadcast in Op.local_vjp does the summation.
broadcast_to = defop("broadcast_to", np.broadcast_to, PASS_THROUGH, jac=MOVES_ARGUMENT_0,
                     view=True)


def _concatenate_vjp(k, ans, *arrays, axis=0):
    sizes = [np.shape(unwrap(a))[axis] for a in arrays]
    start = sum(sizes[:k])
    ndim = np.ndim(unwrap(ans))
    axis = axis % ndim
    index = (slice(None),) * axis + (slice(start, start + sizes[k]),)
    return lambda g: getitem(g, index)


concatenate = defop("concatenate", lambda *arrays, axis=0: np.concatenate(arrays, axis=axis),
                    vjp=_concatenate_vjp, jac=Selection(data_args=None),
                    reads=lambda k, n: (), linear=True)  # the arrays' shapes only


def _roll_vjp(ans, x, shift, axis=None):
    # a roll is a permutation; its inverse (and adjoint) rolls back by the opposite shift
    back = -int(shift) if np.ndim(shift) == 0 else tuple(-int(s) for s in shift)
    return lambda g: roll(g, back, axis)


roll = defop("roll", lambda x, shift, axis=None: np.roll(x, shift, axis), _roll_vjp,
             jac=MOVES_ARGUMENT_0, reads=((1,),), linear=True)


def _astype_vjp(ans, x, dtype):
    source = dtype_of(unwrap(x))
    if np.dtype(dtype).kind in "biu":
        # a cast to int or bool truncates: piecewise constant, so the derivative is 0
        zeros = np.zeros(np.shape(unwrap(x)), dtype=source)
        return lambda g: zeros
    return lambda g: astype(g, source)


astype = defop("astype", lambda x, dtype: np.asarray(x).astype(dtype), _astype_vjp,
               jac=ELEMENTWISE, reads=((1,),), linear=True)  # of x, only its shape and dtype
