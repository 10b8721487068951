"""Property-based cases for shape ops: reshaping, transposing, broadcasting, joining and
splitting, reordering (flip, roll, sort, repeat, tile, pad), diagonals and triangles,
indexing, and casts.

Every one of them is linear (a copy, a sum of copies or a selection), so any values
do; ``sort`` sees distinct values so that its permutation is stable under finite
differences.  Functions returning several arrays (``split``) are checked through
a weighted concatenation of the pieces, which also catches swapped pieces.
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from test_ops import Case, broadcast_shapes, grid, make_op_test, reals, shapes

import ardiff
import ardiff.numpy as anp
from ardiff.testing import check_grads


def one(shape_strategy=None, **kw_strategies):
    """One array of a drawn shape plus keyword arguments drawn from ``shape -> strategy``."""
    @st.composite
    def draw(draw_):
        shape = draw_(shapes() if shape_strategy is None else shape_strategy)
        kwargs = {k: draw_(make(shape)) for k, make in kw_strategies.items()}
        return (draw_(reals(shape)),), kwargs
    return draw()


def axis_of(shape, extra=0):
    """A valid (possibly negative) axis of an array with len(shape) + extra dims."""
    n = len(shape) + extra
    return st.integers(-n, n - 1) if n else st.nothing()


def axes_or_none(shape):
    tuples = hnp.valid_tuple_axes(len(shape), min_size=1) if shape else st.nothing()
    return st.none() | axis_of(shape) | tuples


def same_size_shape(shape):
    """Another shape with the same number of elements (1-3 dims), maybe with a -1."""
    size = int(np.prod(shape))

    @st.composite
    def draw(draw_):
        rest, new = size, []
        for _ in range(draw_(st.integers(0, 2))):
            d = draw_(st.sampled_from([d for d in range(1, rest + 1) if rest % d == 0]))
            new.append(d)
            rest //= d
        new.append(rest)
        if draw_(st.booleans()):
            new[draw_(st.integers(0, len(new) - 1))] = -1
        return tuple(new)
    return draw()


def permutation(shape):
    n = len(shape)
    return st.permutations(range(n)).flatmap(
        lambda p: st.tuples(*[st.sampled_from([a, a - n]) for a in p]) if n else st.just(()))


@st.composite
def joinable(draw, min_dims=1, vary=True, axis=None, max_dims=3):
    """1-3 arrays equal in shape except (if ``vary``) along ``axis`` (drawn if None)."""
    shape = list(draw(shapes(min_dims=min_dims, max_dims=max_dims)))
    if axis is None:
        axis = draw(st.integers(-len(shape), len(shape) - 1)) if shape else 0
    arrays = []
    for _ in range(draw(st.integers(1, 3))):
        if vary and shape:
            shape[axis] = draw(st.integers(1, 3))
        arrays.append(draw(reals(tuple(shape))))
    return tuple(arrays), {"axis": axis}


def _weighted(xp, pieces, axis):
    return xp.concatenate([p * (i + 1.0) for i, p in enumerate(pieces)], axis=axis)


@st.composite
def split_args(draw, array_split=False, min_dims=1, axis=None):
    shape = draw(shapes(min_dims=min_dims))
    ax = draw(st.integers(-len(shape), len(shape) - 1)) if axis is None else axis
    n = shape[ax]
    if draw(st.booleans()):
        sections = draw(st.integers(1, 4) if array_split else
                        st.sampled_from([d for d in range(1, n + 1) if n % d == 0]))
    else:
        sections = sorted(draw(st.lists(st.integers(0, n + 1), max_size=3)))
    return (draw(reals(shape)),), {"sections": sections, "axis": ax}


@st.composite
def pad_args(draw):
    shape = draw(shapes())
    mode = draw(st.sampled_from(["constant", "edge", "reflect", "symmetric", "wrap"]))
    if not shape or draw(st.booleans()):
        width = draw(st.integers(0, 2))
    else:
        width = [(draw(st.integers(0, 2)), draw(st.integers(0, 2))) for _ in shape]
    kwargs = {"pad_width": width, "mode": mode}
    if mode == "constant" and draw(st.booleans()):
        kwargs["constant_values"] = draw(st.floats(-2, 2))
    return (draw(reals(shape)),), kwargs


@st.composite
def index_args(draw):
    shape = draw(shapes(min_dims=1))
    kind = draw(st.sampled_from(["basic", "integer", "mask"]))
    if kind == "basic":
        index = draw(hnp.basic_indices(shape, allow_newaxis=True))
    elif kind == "integer":  # repeated integers: the adjoint must add, not overwrite
        index = draw(hnp.integer_array_indices(shape))
    else:
        index = draw(hnp.arrays(np.bool_, shape[:draw(st.integers(1, len(shape)))]))
    return (draw(reals(shape)),), {"index": index}


@st.composite
def take_along_args(draw):
    shape = draw(shapes(min_dims=1))
    axis = draw(st.integers(-len(shape), len(shape) - 1))
    ishape = list(shape)
    ishape[axis] = draw(st.integers(1, 4))
    indices = draw(hnp.arrays(np.int64, tuple(ishape),
                              elements=st.integers(0, shape[axis] - 1)))
    return (draw(reals(shape)),), {"indices": indices, "axis": axis}


#: (index, shape of the value written) into a (3, 4) array: basic, advanced, boolean
WRITES = [((slice(1, 3),), (4,)), ((slice(1, 3),), (2, 4)), ((slice(1, 3),), ()),
          ((1, slice(None, None, 2)), (2,)), ((np.array([2, 0]),), (1, 4)),
          ((np.array([True, False, True]),), (4,))]


@st.composite
def write_args(draw):
    index, value_shape = draw(st.sampled_from(WRITES))
    return (draw(reals((3, 4))), draw(reals(value_shape))), {"index": index}


def _write_item(xp, x, v, index):
    y = x * 1.0  # a new array: written in place, as NumPy code does
    y[index] = v
    return y


CASES = [
    Case("reshape", lambda xp, x, shape: xp.reshape(x, shape),
         one(shape=same_size_shape)),
    Case("reshape_method", lambda xp, x, shape: x.reshape(*shape), one(shape=same_size_shape),
         ops=("reshape",), dispatch=False),
    Case("ravel", lambda xp, x: xp.ravel(x), one(), ops=("reshape",)),
    Case("flatten_method", lambda xp, x: x.flatten(), one(), ops=("reshape",), dispatch=False),
    Case("transpose", lambda xp, x, axes: xp.transpose(x, axes),
         one(axes=lambda s: st.none() | permutation(s))),
    Case("transpose_method", lambda xp, x, axes: x.transpose(*axes), one(axes=permutation),
         ops=("transpose",), dispatch=False),
    Case("T", lambda xp, x: x.T, one(), ops=("transpose",), dispatch=False),
    Case("swapaxes", lambda xp, x, a, b: xp.swapaxes(x, a, b),
         one(shapes(min_dims=1), a=axis_of, b=axis_of), ops=("transpose",)),
    Case("moveaxis", lambda xp, x, perm, k: xp.moveaxis(x, perm[:k], perm[-k:]),
         one(shapes(min_dims=1), perm=permutation, k=lambda s: st.integers(1, len(s))),
         ops=("transpose",)),
    Case("expand_dims", lambda xp, x, axis: xp.expand_dims(x, axis),
         one(axis=lambda s: axis_of(s, 1) | hnp.valid_tuple_axes(len(s) + 2, min_size=2,
                                                               max_size=2)),
         ops=("reshape",)),
    Case("squeeze", lambda xp, x, axis: xp.squeeze(x, axis),
         one(shapes(min_side=1, max_side=2),
             axis=lambda s: st.none() | st.sampled_from(
                 [i for i, n in enumerate(s) if n == 1] or [None])), ops=("reshape",)),
    Case("broadcast_to", lambda xp, x, shape: xp.broadcast_to(x, shape),
         broadcast_shapes(2).flatmap(lambda s: reals(s[0]).map(
             lambda x: ((x,), {"shape": np.broadcast_shapes(*s)})))),
    Case("concatenate", lambda xp, *a, axis: xp.concatenate(a, axis=axis), joinable()),
    Case("concatenate_flat", lambda xp, *a, axis: xp.concatenate(a, axis=None),
         joinable(min_dims=0, vary=False), ops=("concatenate",)),
    Case("stack", lambda xp, *a, axis: xp.stack(a, axis=axis),
         joinable(min_dims=0, vary=False).map(
             lambda p: (p[0], {"axis": -1 - p[1]["axis"]})), ops=("concatenate",)),
    Case("hstack", lambda xp, *a, axis: xp.hstack(a),
         joinable(0, vary=False) | joinable(1, axis=0, max_dims=1) | joinable(2, axis=1),
         ops=("concatenate",)),
    Case("vstack", lambda xp, *a, axis: xp.vstack(a),
         joinable(1, vary=False, max_dims=1) | joinable(2, axis=0), ops=("concatenate",)),
    Case("split", lambda xp, x, sections, axis: _weighted(xp, xp.split(x, sections, axis), axis),
         split_args(), ops=("getitem",)),
    Case("array_split", lambda xp, x, sections, axis: _weighted(
        xp, xp.array_split(x, sections, axis), axis), split_args(True), ops=("getitem",)),
    Case("hsplit", lambda xp, x, sections, axis: _weighted(xp, xp.hsplit(x, sections), axis),
         st.integers(1, 3).flatmap(lambda nd: split_args(
             min_dims=nd, axis=0 if nd == 1 else 1)).filter(
             lambda p: p[0][0].ndim == 1 or p[1]["axis"] == 1), ops=("getitem",)),
    Case("vsplit", lambda xp, x, sections, axis: _weighted(xp, xp.vsplit(x, sections), 0),
         split_args(min_dims=2, axis=0), ops=("getitem",)),
    Case("repeat", lambda xp, x, repeats, axis: xp.repeat(x, repeats, axis),
         one(axis=lambda s: st.none() | axis_of(s), repeats=lambda s: st.integers(0, 3)),
         ops=("getitem",)),
    Case("repeat_per_element", lambda xp, x, repeats, axis: xp.repeat(x, repeats, axis),
         shapes(min_dims=1).flatmap(lambda s: st.tuples(
             reals(s), st.integers(0, len(s) - 1)).flatmap(lambda p: hnp.arrays(
                 np.int64, (s[p[1]],), elements=st.integers(0, 3)).map(
                 lambda r: ((p[0],), {"repeats": r, "axis": p[1]})))), ops=("getitem",)),
    Case("tile", lambda xp, x, reps: xp.tile(x, reps),
         one(reps=lambda s: st.integers(1, 3) | st.lists(st.integers(1, 2), min_size=1,
                                                           max_size=3).map(tuple)),
         ops=("reshape",)),
    Case("flip", lambda xp, x, axis: xp.flip(x, axis), one(axis=axes_or_none),
         ops=("getitem",)),
    Case("fliplr", lambda xp, x: xp.fliplr(x), one(shapes(min_dims=2)), ops=("getitem",)),
    Case("flipud", lambda xp, x: xp.flipud(x), one(shapes(min_dims=1)), ops=("getitem",)),
    Case("roll", lambda xp, x, shift, axis: xp.roll(x, shift, axis),
         one(shapes(min_dims=1), shift=lambda s: st.integers(-4, 4),
             axis=lambda s: st.none() | axis_of(s))),
    Case("roll_several_axes", lambda xp, x, axis, shift: xp.roll(x, shift, axis),
         one(shapes(min_dims=2), axis=lambda s: hnp.valid_tuple_axes(len(s), min_size=1),
             shift=lambda s: st.lists(st.integers(-4, 4), min_size=1, max_size=1)),
         ops=("roll",)),
    # one shift per axis, repeated axes (their shifts add up) and a tuple shift with
    # axis=None (NumPy adds the shifts, then rolls the flattened array)
    Case("roll_shift_per_axis", lambda xp, x, shift, axis: xp.roll(x, shift, axis),
         one(shapes(min_dims=2), axis=lambda s: st.lists(axis_of(s), min_size=1, max_size=3),
             shift=lambda s: st.integers(-5, 5)).flatmap(
             lambda d: st.lists(st.integers(-5, 5), min_size=len(d[1]["axis"]),
                                max_size=len(d[1]["axis"])).map(
                 lambda sh: (d[0], {**d[1], "shift": tuple(sh), "axis": tuple(d[1]["axis"])}))),
         ops=("roll",)),
    Case("roll_flat_tuple_shift", lambda xp, x, shift, axis: xp.roll(x, shift, axis),
         one(shapes(min_dims=1), shift=lambda s: st.lists(st.integers(-4, 4), min_size=1,
                                                          max_size=3).map(tuple),
             axis=lambda s: st.none()), ops=("roll",)),
    Case("diag", lambda xp, x, k: xp.diag(x, k), one(shapes(min_dims=2, max_dims=2),
                                                      k=lambda s: st.integers(-3, 3)),
         ops=("getitem",)),
    Case("diag_build", lambda xp, x, k: xp.diag(x, k), one(shapes(min_dims=1, max_dims=1),
                                                            k=lambda s: st.integers(-2, 2)),
         ops=("untake",)),
    Case("diagonal", lambda xp, x, offset, axes: xp.diagonal(x, offset, *axes[:2]),
         one(shapes(min_dims=2), offset=lambda s: st.integers(-2, 2), axes=permutation),
         ops=("getitem",)),
    Case("triu", lambda xp, x, k: xp.triu(x, k), one(shapes(min_dims=2),
                                                      k=lambda s: st.integers(-2, 2)),
         ops=("where",)),
    Case("tril", lambda xp, x, k: xp.tril(x, k), one(shapes(min_dims=2),
                                                      k=lambda s: st.integers(-2, 2)),
         ops=("where",)),
    Case("pad", lambda xp, x, pad_width, **kw: xp.pad(x, pad_width, **kw), pad_args()),
    Case("pad_constant", lambda xp, x: xp.pad(x, 1), one(), ops=("untake",)),
    Case("sort", lambda xp, x, axis: xp.sort(x, axis),
         shapes().flatmap(lambda s: st.tuples(grid(s, unique=True), st.none() | (
             axis_of(s) if s else st.none()))).map(lambda p: ((p[0],), {"axis": p[1]})),
         ops=("getitem",)),
    Case("getitem", lambda xp, x, index: x[index], index_args(), dispatch=False),
    Case("setitem", _write_item, write_args(), dispatch=False),
    Case("take", lambda xp, x, indices, axis: xp.take(x, indices, axis),
         take_along_args().map(lambda p: (p[0], {**p[1], "indices": p[1]["indices"].ravel()})),
         ops=("getitem",)),
    Case("take_along_axis", lambda xp, x, indices, axis: xp.take_along_axis(x, indices, axis),
         take_along_args(), ops=("getitem",)),
    Case("atleast_1d", lambda xp, x: xp.atleast_1d(x) * 1.0, one(), ops=("multiply",)),
    Case("atleast_2d", lambda xp, x: xp.atleast_2d(x) * 1.0, one(), ops=("multiply",)),
    Case("atleast_3d", lambda xp, x: xp.atleast_3d(x), one(), ops=("reshape",)),
    Case("other_methods", lambda xp, x: x.squeeze().swapaxes(0, -1).repeat(2, 0).copy()
         .take([0, -1, 0], axis=1).diagonal() * 1.0,
         one(shapes(min_dims=2, max_dims=2, min_side=2)), ops=("getitem", "transpose"),
         dispatch=False),
    Case("astype", lambda xp, x: x.astype(np.float64) * 2.0, one(), dispatch=False),
    Case("array_of_traced", lambda xp, x, y: xp.array([x, y, x]),
         shapes().flatmap(lambda s: st.tuples(reals(s), reals(s))).map(lambda a: (a, {})),
         ops=("concatenate",), dispatch=False),
    # autograd's test_numpy: np.r_ / np.c_ with traced, constant and slice items
    Case("r_", lambda xp, x, y: xp.r_[x, 2.5, y, 1:4],
         shapes(max_dims=1).flatmap(lambda s: st.tuples(reals(s), reals(s))).map(
             lambda a: (a, {})), ops=("concatenate",), dispatch=False),
    Case("c_", lambda xp, x, y: xp.c_[x, np.arange(len(x) if x.ndim else 1.0), y],
         shapes(max_dims=2).flatmap(lambda s: st.tuples(reals(s), reals(s))).map(
             lambda a: (a, {})),
         ops=("concatenate",), dispatch=False),
    # a list holding traced values, appended to (autograd's test_simple_append_list)
    Case("append_list", lambda xp, x, y: xp.append([x, 2.0 * x, x], y),
         shapes(max_dims=0).flatmap(lambda s: st.tuples(reals(s), reals((2,)))).map(
             lambda a: (a, {})), ops=("concatenate",)),
]

test_shape = make_op_test(CASES)


# -- autograd's make_diagonal, np.int64 of a traced value ---------------------------------
def reference_make_diagonal(d, offset, axis1, axis2):
    """Loops: the array whose `numpy.diagonal(., offset, axis1, axis2)` is `d`."""
    n = d.shape[-1]
    size = n + abs(offset)
    square = np.zeros(d.shape[:-1] + (size, size))
    for i in range(n):
        row = i + max(0, -offset)
        square[..., row, row + offset] = d[..., i]
    return np.moveaxis(square, (-2, -1), (axis1, axis2))


def test_make_diagonal_against_loops_and_finite_differences():
    rng = np.random.default_rng(3)
    d = rng.normal(size=(2, 4))
    for offset, axis1, axis2 in [(0, -1, -2), (1, 0, 2), (-2, 2, 0), (0, 1, 0)]:
        built = anp.make_diagonal(d, offset, axis1, axis2)
        np.testing.assert_array_equal(built, reference_make_diagonal(d, offset, axis1, axis2))
        np.testing.assert_array_equal(np.diagonal(built, offset, axis1, axis2), d)
        check_grads(lambda v: anp.make_diagonal(v, offset, axis1, axis2), order=2)(d)
    weights = rng.normal(size=(2, 4, 4))
    # the gradient of sum(W * make_diagonal(d)) is the diagonal of W
    g = ardiff.grad(lambda v: anp.sum(weights * anp.make_diagonal(v, 0, -1, -2)))(d)
    np.testing.assert_array_equal(g, np.diagonal(weights, 0, -1, -2))


def test_integer_cast_of_a_traced_float_is_a_plain_guarded_array():
    """`np.int64(x)` / `np.asarray(x, dtype=int)` (autograd's test_cast_to_int): plain
    integers, no error; a compiled replay re-traces when they change."""
    table = np.arange(5.0) ** 2

    def fun(w):
        index = np.int64(w[:, -1])
        assert isinstance(index, (np.ndarray, np.integer)) and index.dtype == np.int64
        more = np.asarray(w[:, 0] * 0.0 + 1.0, dtype=np.int32)
        assert isinstance(more, np.ndarray) and more.dtype == np.int32
        return anp.sum(w[index, :-1]) + anp.sum(table[index] * w[:, 0]) + float(more[0])

    w = np.array([[0.5, 1.0, 1.2], [0.25, 3.0, 1.7], [1.5, -1.0, 0.4]])
    expected = np.zeros_like(w)
    expected[:, :-1] += np.array([1.0, 2.0, 0.0])[:, None]  # rows int(1.2), int(1.7), int(0.4)
    expected[:, 0] += table[[1, 1, 0]]
    np.testing.assert_allclose(ardiff.grad(fun)(w), expected)
    compiled = ardiff.compile(fun)
    np.testing.assert_allclose(compiled(w), expected)
    w2 = w.copy()
    w2[:, -1] = [2.1, 2.9, 2.2]  # other rows: the guard must send the replay back to tracing
    expected2 = np.zeros_like(w)
    expected2[2, :-1] = 3.0
    expected2[:, 0] += table[[2, 2, 2]]
    np.testing.assert_allclose(compiled(w2), expected2)
    assert compiled.traces == 2
