"""Counting and binning in `ardiff.numpy`: `bincount`, `unique` and the histograms,
composed from the table's ops.

Every function here is NumPy's own when no argument is traced.  On traced values the
discrete structure (which bin or which unique entry each element belongs to, how many
bins there are) is computed by NumPy on the plain values and read as a guard, so a
compiled replay re-traces when it changes; what depends smoothly on the traced values
is traced:

* weights (`bincount(x, weights=w)`, `histogram(a, weights=w)`, ...) are summed into
  their bins with `untake` (scatter-add), whose adjoint gathers the bin's cotangent;
* bin edges computed from the data (an integer or string `bins` without `range`) are
  `linspace(min(a), max(a), n + 1)`, so they move with the smallest and largest sample;
  edges given as a traced `bins` array or a traced `range` stay traced too;
* `density=True` divides by the traced bin widths and the traced total;
* `unique` gathers its values from the input at NumPy's `return_index` (the first
  occurrence of each value takes the gradient, as for ties in `sort`).

Counts without weights are integers (histogram2d and histogramdd give them as floats, as
NumPy does): they are piecewise constant and stay plain.
"""

from __future__ import annotations

import numpy as np

from ..graph import TracerBase
from ..guards import concrete, plain
from ..op import shape_of
from ..ops.reduce import max_, min_, sum_
from ..ops.shape import astype
from ._numeric import diff, linspace
from ._shape import (
    contains_tracer,
    getitem,
    numpy_when_plain,
    ravel,
    reshape,
    stack,
    take,
    untake,
)


def _as_array(a):
    """A traced value, or a list holding traced values stacked into one."""
    if isinstance(a, (list, tuple)) and contains_tracer(a):
        return stack([_as_array(item) for item in a])
    return a


def _as_float(w, dtype=np.float64):
    """`w` cast to `dtype` (a traced cast where it is traced)."""
    if np.result_type(plain(w)) == dtype:
        return w
    return astype(w, dtype) if contains_tracer(w) else np.asarray(w, dtype=dtype)


def _scatter_add(weights, index, size: int):
    """`out[k] = sum of weights[i] with index[i] == k` for k < size (traced)."""
    return untake(_as_float(ravel(_as_array(weights))), np.asarray(index, dtype=np.intp),
                  (size,))


# -- bincount ------------------------------------------------------------------------------
@numpy_when_plain
def bincount(x, /, weights=None, minlength=0):
    """Traced `numpy.bincount`: with traced `weights`, the weighted counts are traced (each
    weight's gradient is its bin's cotangent); the counts alone are plain integers."""
    index = concrete(np.asarray, x) if contains_tracer(x) else np.asarray(x)
    counts = np.bincount(index, weights=plain(weights), minlength=minlength)  # validates
    if not contains_tracer(weights):
        return counts
    return _scatter_add(weights, index, len(counts))


# -- unique --------------------------------------------------------------------------------
def _unique_structure(ar, flags, axis, kwargs):
    """The integer outputs of `numpy.unique` (first index, then those asked for)."""
    out = np.unique(ar, return_index=True, return_inverse=flags[1], return_counts=flags[2],
                    axis=axis, **kwargs)
    return tuple(out[1:])


@numpy_when_plain
def unique(ar, return_index=False, return_inverse=False, return_counts=False, axis=None,
           **kwargs):
    """Traced `numpy.unique`: the unique values are gathered from `ar` at their first
    occurrence (traced); indices, inverse and counts are plain integers (a guard)."""
    ar = _as_array(ar)
    flags = (return_index, return_inverse, return_counts)
    structure = concrete(_unique_structure, ar, flags, axis, kwargs)
    values = take(ar, structure[0], axis=axis)
    extra = [structure[0]] if return_index else []
    extra += list(structure[1:])
    return (values, *extra) if extra else values


# -- histograms ----------------------------------------------------------------------------
def _columns(sample) -> list:
    """The D coordinate arrays of a `histogramdd` sample, as NumPy reads it: an (N, D)
    array, or a sequence of D one-dimensional arrays (a 1-d array is one coordinate)."""
    if isinstance(sample, (list, tuple)):
        return [_as_array(s) for s in sample]
    shape = shape_of(sample)
    if len(shape) == 2:
        return [getitem(sample, (slice(None), i)) for i in range(shape[1])]
    return [sample]


def _binning(columns, bins, ranges):
    """NumPy's discrete decisions of `histogramdd` on plain values: the flat bin index of
    each sample (outliers included, as in NumPy), the bins per axis with the outliers, and
    for each axis whether its computed range was empty (widened by 0.5 each way)."""
    _, edges = np.histogramdd(columns, bins=bins, range=ranges)
    nbin = tuple(len(e) + 1 for e in edges)
    counts = []
    for column, e in zip(columns, edges):
        column = np.asarray(column)
        index = np.searchsorted(e, column, side="right")
        index[column == e[-1]] -= 1
        counts.append(index)
    flat = np.ravel_multi_index(counts, nbin) if counts else np.zeros(0, np.intp)
    widened = tuple(_widened(c, r) for c, r in zip(columns, ranges))
    return flat, nbin, widened


def _widened(column, range_) -> bool:
    column = np.asarray(column)
    if range_ is not None:
        return bool(range_[0] == range_[1])
    return column.size > 0 and bool(column.min() == column.max())


def _traced_edges(column, bins, range_, widened: bool, plain_edges, dtype=None):
    """The edges of one axis: a traced `bins` array, or `linspace` between the traced
    smallest and largest value (or the traced `range`), or the plain edges."""
    if np.ndim(plain(bins)) == 1:
        return bins if contains_tracer(bins) else plain_edges
    if range_ is not None:
        if not contains_tracer(range_):
            return plain_edges
        first, last = range_
    elif not contains_tracer(column) or np.size(plain(column)) == 0:
        return plain_edges
    else:
        first, last = min_(column), max_(column)
    if widened:
        first, last = first - 0.5, last + 0.5
    edges = linspace(first, last, len(plain_edges))
    if dtype is not None and np.dtype(dtype) != np.result_type(plain(edges)):
        edges = astype(edges, dtype)
    return edges


def _per_axis(value, d: int, name: str) -> list:
    if value is None:
        return [None] * d
    try:
        if len(value) != d:
            raise ValueError(f"The dimension of {name} must be equal to the dimension of "
                             "the sample x.")
    except TypeError:  # an integer number of bins
        return [value] * d
    return list(value)


@numpy_when_plain
def histogramdd(sample, bins=10, range=None, density=None, weights=None):
    """Traced `numpy.histogramdd`: traced weights, data-dependent edges and densities are
    traced (see the module's docstring); unweighted counts are plain."""
    columns = _columns(sample)
    plain_hist, plain_edges = np.histogramdd(plain(columns), bins=plain(bins),
                                             range=plain(range), density=False,
                                             weights=plain(weights))
    d = len(columns)
    bins_, ranges = _per_axis(bins, d, "bins"), _per_axis(range, d, "range")
    flat, nbin, widened = concrete(_binning, columns, bins_, ranges)
    edges = [_traced_edges(c, b, r, w, e, dtype=e.dtype)
             for c, b, r, w, e in zip(columns, bins_, ranges, widened, plain_edges)]
    if contains_tracer(weights):
        hist = reshape(_scatter_add(weights, flat, int(np.prod(nbin))), nbin)
        hist = getitem(hist, (slice(1, -1),) * d)
    else:
        hist = plain_hist
    if density:
        total = sum_(hist) if isinstance(hist, TracerBase) else np.sum(hist)
        for i, e in enumerate(edges):
            shape = [1] * d
            shape[i] = nbin[i] - 2
            hist = hist / reshape(_as_float(diff(e)), tuple(shape))
        hist = hist / total
    return hist, edges


@numpy_when_plain
def histogram2d(x, y, bins=10, range=None, density=None, weights=None):
    """Traced `numpy.histogram2d` (see `histogramdd`)."""
    try:
        n = len(bins)
    except TypeError:
        n = 1
    if n != 1 and n != 2:
        bins = [bins, bins]
    hist, edges = histogramdd([x, y], bins, range, density, weights)
    return hist, edges[0], edges[1]


def _edges_structure(a, bins, range_):
    """How many edges a one-dimensional histogram has and whether its range was widened
    (NumPy's discrete decisions, read as a guard)."""
    edges = np.histogram_bin_edges(a, bins=bins, range=range_)
    return len(edges), _widened(np.ravel(a), range_)


def _bin_edges(a, bins, range, weights):
    """`(traced edges, plain edges, flat data)` of a one-dimensional histogram."""
    plain_edges = np.histogram_bin_edges(plain(a), bins=plain(bins), range=plain(range),
                                         weights=plain(weights))  # validates
    a = ravel(_as_array(a)) if contains_tracer(a) else np.ravel(np.asarray(a))
    if np.ndim(plain(bins)) == 1:
        return (bins if contains_tracer(bins) else plain_edges), plain_edges, a
    _, widened = concrete(_edges_structure, a, bins, range)
    edges = _traced_edges(a, bins, range, widened, plain_edges, dtype=plain_edges.dtype)
    return edges, plain_edges, a


@numpy_when_plain
def histogram_bin_edges(a, bins=10, range=None, weights=None):
    """Traced `numpy.histogram_bin_edges`: edges from the data move with its smallest and
    largest value."""
    return _bin_edges(a, bins, range, weights)[0]


def _histogram_index(a, bins, range_):
    """The bin of each sample of a one-dimensional histogram (-1 outside the edges), as
    `numpy.histogram` assigns them (read as a guard)."""
    a = np.ravel(a)
    edges = np.histogram_bin_edges(a, bins=bins, range=range_)
    index = np.searchsorted(edges, a, side="right") - 1
    index[a == edges[-1]] = len(edges) - 2
    index[~((a >= edges[0]) & (a <= edges[-1]))] = -1
    return index


@numpy_when_plain
def histogram(a, bins=10, range=None, density=None, weights=None):
    """Traced `numpy.histogram` (see the module's docstring)."""
    edges, plain_edges, a = _bin_edges(a, bins, range, weights)
    index = concrete(_histogram_index, a, bins, range)
    if contains_tracer(weights):
        keep = index >= 0
        w = getitem(ravel(_as_array(weights)), keep)
        counts = _scatter_add(w, index[keep], len(plain_edges) - 1)
    else:  # NumPy's own counts: the guard above holds the bins they were counted in
        w = None if weights is None else np.ravel(plain(weights))
        counts, _ = np.histogram(plain(a), bins=plain_edges, weights=w)
    if density:
        widths = _as_float(diff(edges))
        total = sum_(counts) if isinstance(counts, TracerBase) else np.sum(counts)
        return counts / widths / total, edges
    return counts, edges
