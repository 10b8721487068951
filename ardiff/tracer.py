"""Traced values: the array interface of a recorded value, and NumPy's dispatch to ardiff.

A `Tracer` wraps a forward value together with the graph node that produced
it.  Its operators and methods call the traced functions of `ardiff.numpy`, and
NumPy's own functions and ufuncs on a tracer (`np.sin(x)`, `np.sum(x, axis=0)`)
reach the same functions through `__array_ufunc__` / `__array_function__`.
Tracing is *concrete*: values are real arrays, so Python control flow simply runs
(comparisons and truth tests are answered from the value and recorded as guards,
see `ardiff.guards`).

Higher order works by nesting: a graph created while another one is being traced
gets a higher level; an op unwraps only the highest level present and calls itself
again on what is inside, which records into the lower-level graph too.  There is no
global "current trace", so an exception inside a traced function leaves nothing
behind and threads never share tracing state.
"""

from __future__ import annotations

import linecache
import os
import re
import sys
from typing import Any

import numpy as np
import scipy.sparse
import scipy.special

from . import numpy as anp
from . import scipy as ascipy
from .graph import (
    Graph,
    TracerBase,
    TracingError,
    buffer_like,
    contains_tracer,
    copy_of,
    unwrap,
)
from .guards import concrete

# the arithmetic ops bound to module names: operators on scalars are the hot path of
# scalar graphs, and a global lookup is cheaper than an attribute of the namespace
from .ops.elementwise import (
    absolute,
    add,
    divide,
    multiply,
    negative,
    power,
    remainder,
    subtract,
)
from .ops.linalg import matmul
from .ops.shape import getitem, is_basic_index, setitem

__all__ = ["Tracer", "UFUNC_IMPLS", "FUNCTION_IMPLS", "unit"]

DETACH_HELP = (
    "Keep the computation traced: use ardiff.numpy (import ardiff.numpy as anp) instead of "
    "math or plain conversions, build arrays with anp.array / anp.stack instead of np.array, "
    "and assign into a traced array (a = np.zeros_like(x) or np.zeros(shape, like=x), then "
    "a[i] = value; docs/in-place.md). Use x.value for the plain number when you really "
    "want no gradient."
)


def _identity(x):
    return x


def _index(key):
    """Plain NumPy index from one that may contain traced integers or lists."""
    items = key if isinstance(key, tuple) else (key,)
    out = []
    for item in items:
        if isinstance(item, TracerBase):
            item = concrete(np.asarray, item)
            if not np.issubdtype(np.result_type(item), np.integer) and \
                    np.result_type(item) != np.bool_:
                raise TracingError("A traced float value cannot be used as an index.")
        if isinstance(item, list):
            item = np.asarray(item)
        out.append(item)
    return tuple(out) if isinstance(key, tuple) else out[0]


def _repeats(shape: tuple, index) -> bool:
    """Whether an advanced index selects some element of an array of `shape` twice."""
    taken = np.arange(int(np.prod(shape, dtype=np.int64))).reshape(shape)[index]
    return np.unique(taken).size < np.size(taken)


def _same_index(a, b) -> bool:
    """Whether two plain NumPy indices select the same elements in the same way."""
    a, b = (a if isinstance(a, tuple) else (a,)), (b if isinstance(b, tuple) else (b,))
    return len(a) == len(b) and all(
        np.array_equal(x, y) and np.result_type(x) == np.result_type(y)
        if isinstance(x, np.ndarray) or isinstance(y, np.ndarray) else
        type(x) is type(y) and x == y for x, y in zip(a, b))


def _axes_argument(axes: tuple):
    """`x.transpose(1, 0)` and `x.transpose((1, 0))` alike; None for no axes."""
    if len(axes) == 1 and not isinstance(axes[0], (int, np.integer)):
        return axes[0]
    return axes or None


# library code a traced value passes through on its way from the user's line
_LIBRARY_DIRS = tuple(os.path.dirname(path) + os.sep
                      for path in (np.__file__, scipy.__file__, __file__))


def user_line() -> str:
    """`` `source` (file:line)`` of the innermost frame outside ardiff, NumPy and SciPy.

    Named in the messages of refused operations, so that an error raised deep inside a
    NumPy call (`a[0] = w` calls `float(w)` from C) points at what the user wrote.
    Empty when no such frame is found (e.g. code typed at an interactive prompt).
    """
    frame = sys._getframe(1)
    while frame is not None and frame.f_code.co_filename.startswith(_LIBRARY_DIRS):
        frame = frame.f_back
    if frame is None:
        return ""
    filename, lineno = frame.f_code.co_filename, frame.f_lineno
    source = linecache.getline(filename, lineno).strip()
    where = f"{os.path.basename(filename)}:{lineno}"
    return f"`{source}` ({where})" if source else f"({where})"


#: distributions of np.random / Generator / RandomState: a line drawing from one with a
#: traced parameter gets the reparameterisation advice
_RANDOM_DRAW = re.compile(
    r"random|rng|\b(normal|uniform|laplace|logistic|gumbel|lognormal|exponential|gamma|"
    r"beta|standard_t|vonmises|wald|rayleigh|triangular|multivariate_normal)\s*\(")

RANDOM_HELP = (
    "A random draw cannot take a traced parameter (NumPy's generators convert it to a plain "
    "array). Draw standard noise with plain arguments and transform it with traced "
    "arithmetic (the reparameterisation trick): mu + sigma * rng.standard_normal(shape) "
    "instead of rng.normal(mu, sigma), low + (high - low) * rng.random(shape) instead of "
    "rng.uniform(low, high).")

#: `name[...] = ...` (not `==`): NumPy converts the right-hand side with float()/__array__
_ITEM_ASSIGNMENT = re.compile(r"\]\s*=(?!=)")

ASSIGN_HELP = (
    "A plain NumPy array cannot hold traced values: make the array traced from a traced "
    "value x, a = np.zeros_like(x) or a = np.zeros(shape, like=x) (also ones, empty, full), "
    "and then a[i] = value is traced; or collect the values in a Python list and build the "
    "array with anp.stack(values).")


def _live_aliases(tracer: TracerBase) -> list:
    """The other live traced values whose arrays share memory with `tracer`'s.

    Arrays share memory only through views, and the graph notes every view its ops make
    (`Graph.record_view`), so the candidates are the live ends of those notes.
    """
    mine = unwrap(tracer)
    found = []
    for other in tracer._graph.live_views():
        theirs = unwrap(other)
        if other is not tracer and type(theirs) is np.ndarray and \
                np.may_share_memory(mine, theirs) and np.shares_memory(mine, theirs):
            found.append(other)
    return found


class Tracer(TracerBase):
    """A value recorded in a [`ardiff.Graph`][ardiff.Graph]; behaves like a NumPy array.

    Arithmetic, indexing, NumPy ufuncs and functions on a tracer record new nodes.
    Conversions that would leave the graph (`float()`, `np.array`, assignment into
    a NumPy array) raise `TracingError` instead of silently losing the gradient.
    """

    __slots__ = ("__weakref__",)
    __array_priority__ = 1000.0

    # -- inspection -----------------------------------------------------------
    @property
    def graph(self) -> Graph:
        """The graph this value is recorded in."""
        return self._graph

    @property
    def node(self):
        """The graph node that produced this value."""
        return self._graph.node_of(self)

    @property
    def value(self) -> Any:
        """The plain NumPy value (no gradient flows through it)."""
        return concrete(_identity, self)

    @property
    def shape(self) -> tuple:
        """Shape of the value."""
        return np.shape(unwrap(self._value))

    @property
    def ndim(self) -> int:
        """Number of dimensions."""
        return np.ndim(unwrap(self._value))

    @property
    def size(self) -> int:
        """Number of elements."""
        return np.size(unwrap(self._value))

    @property
    def dtype(self) -> np.dtype:
        """Data type of the value."""
        return np.result_type(unwrap(self._value))

    @property
    def T(self) -> Tracer:
        """Transposed value (traced)."""
        return anp.transpose(self)

    def __repr__(self) -> str:
        return f"Tracer({unwrap(self._value)!r}, node={self._node})"

    def __format__(self, spec: str) -> str:
        # f"{loss:.3f}" only reads the number for display: nothing is detached
        return format(unwrap(self._value), spec) if spec else str(self)

    def __len__(self) -> int:
        shape = self.shape
        if not shape:
            raise TypeError("len() of a 0-d traced value")
        return shape[0]

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]

    def __bool__(self) -> bool:
        return concrete(bool, self)

    __hash__ = object.__hash__

    # -- arithmetic (traced) ----------------------------------------------------------
    def __add__(self, other):
        return add(self, other)

    def __radd__(self, other):
        return add(other, self)

    def __sub__(self, other):
        return subtract(self, other)

    def __rsub__(self, other):
        return subtract(other, self)

    def __mul__(self, other):
        if type(other) not in _NUMERIC_OPERANDS and _foreign_operand(other):
            return _foreign_product(self, other, "*")
        return multiply(self, other)

    def __rmul__(self, other):
        if type(other) not in _NUMERIC_OPERANDS and _foreign_operand(other):
            return _foreign_product(other, self, "*")
        return multiply(other, self)

    def __truediv__(self, other):
        return divide(self, other)

    def __rtruediv__(self, other):
        return divide(other, self)

    def __pow__(self, other):
        return power(self, other)

    def __rpow__(self, other):
        return power(other, self)

    def __matmul__(self, other):
        if _foreign_operand(other):
            return _foreign_product(self, other, "@")
        return matmul(self, other)

    def __rmatmul__(self, other):
        if _foreign_operand(other):
            return _foreign_product(other, self, "@")
        return matmul(other, self)

    def __mod__(self, other):
        return remainder(self, other)

    def __rmod__(self, other):
        return remainder(other, self)

    def __floordiv__(self, other):
        # piecewise constant: a plain value, recorded as a guard for compiled replays
        return concrete(np.floor_divide, self, other)

    def __rfloordiv__(self, other):
        return concrete(np.floor_divide, other, self)

    def __divmod__(self, other):
        return self // other, self % other

    def __rdivmod__(self, other):
        return other // self, other % self

    def __neg__(self):
        return negative(self)

    def __pos__(self):
        return copy_of(self)  # NumPy's +x is a copy

    def __abs__(self):
        return absolute(self)

    def __round__(self, ndigits=None):
        return anp.round(self, ndigits or 0)

    # -- comparisons: concrete answers, recorded as guards -------------------------------
    def __lt__(self, other):
        return concrete(np.less, self, other)

    def __le__(self, other):
        return concrete(np.less_equal, self, other)

    def __gt__(self, other):
        return concrete(np.greater, self, other)

    def __ge__(self, other):
        return concrete(np.greater_equal, self, other)

    def __eq__(self, other):
        return concrete(np.equal, self, other)

    def __ne__(self, other):
        return concrete(np.not_equal, self, other)

    def __getitem__(self, key):
        return getitem(self, _index(key))

    # -- array methods --------------------------------------------------------------
    def reshape(self, *shape, order="C"):
        """Traced `ndarray.reshape` (`x.reshape(2, 3)` or `x.reshape((2, 3))`)."""
        if len(shape) == 1 and not isinstance(shape[0], (int, np.integer)):
            shape = tuple(shape[0])
        return anp.reshape(self, shape, order)

    def transpose(self, *axes):
        """Traced `ndarray.transpose`."""
        return anp.transpose(self, _axes_argument(axes))

    def astype(self, dtype, **kwargs):
        """Traced cast to a float type; a cast to an integer or boolean type gives a plain
        array (it carries no gradient), recorded as a guard for compiled replays."""
        return anp.array(self, dtype=dtype)

    @property
    def real(self) -> Tracer:
        """Traced real part (the value itself when it is real)."""
        return anp.real(self)

    @property
    def imag(self):
        """Traced imaginary part (plain zeros when the value is real)."""
        return anp.imag(self)

    def conj(self):
        """Traced complex conjugate (the value itself when it is real)."""
        return anp.conj(self)

    conjugate = conj

    def argmax(self, axis=None, **kwargs):
        """Plain `ndarray.argmax` (an integer result: no gradient; a guard)."""
        return concrete(np.argmax, self, axis=axis, **kwargs)

    def argmin(self, axis=None, **kwargs):
        """Plain `ndarray.argmin` (an integer result: no gradient; a guard)."""
        return concrete(np.argmin, self, axis=axis, **kwargs)

    def argsort(self, axis=-1, **kwargs):
        """Plain `ndarray.argsort` (an integer result: no gradient; a guard)."""
        return concrete(np.argsort, self, axis=axis, **kwargs)

    def nonzero(self):
        """Plain `ndarray.nonzero` (integer indices: no gradient; a guard)."""
        return concrete(np.nonzero, self)

    def any(self, *args, **kwargs):
        """Plain `ndarray.any` (a boolean: a guard)."""
        return concrete(np.any, self, *args, **kwargs)

    def all(self, *args, **kwargs):
        """Plain `ndarray.all` (a boolean: a guard)."""
        return concrete(np.all, self, *args, **kwargs)

    def round(self, decimals=0, out=None):
        """Traced `ndarray.round` (zero gradient almost everywhere)."""
        return anp.round(self, decimals, out)

    def ptp(self, axis=None, out=None, keepdims=False):
        """Traced `max - min`."""
        return anp.ptp(self, axis, out, keepdims)

    def dot(self, other):
        """Traced `ndarray.dot`."""
        return anp.dot(self, other)

    def ravel(self, order="C"):
        """Traced `ndarray.ravel`."""
        return anp.ravel(self)

    flatten = ravel

    def squeeze(self, axis=None):
        """Traced `ndarray.squeeze`."""
        return anp.squeeze(self, axis)

    def swapaxes(self, axis1, axis2):
        """Traced `ndarray.swapaxes`."""
        return anp.swapaxes(self, axis1, axis2)

    def repeat(self, repeats, axis=None):
        """Traced `ndarray.repeat`."""
        return anp.repeat(self, repeats, axis)

    def clip(self, a_min=None, a_max=None, **kwargs):
        """Traced `ndarray.clip`."""
        return anp.clip(self, a_min, a_max, **kwargs)

    def copy(self):
        """A copy: a new traced object for the same value (see `ardiff.graph.copy_of`)."""
        return copy_of(self)

    def take(self, indices, axis=None):
        """Traced `ndarray.take`."""
        return anp.take(self, indices, axis)

    def diagonal(self, offset=0, axis1=0, axis2=1):
        """Traced `ndarray.diagonal`."""
        return anp.diagonal(self, offset, axis1, axis2)

    def trace(self, offset=0, axis1=0, axis2=1):
        """Traced `ndarray.trace`."""
        return anp.trace(self, offset, axis1, axis2)

    def sum(self, *args, **kwargs):
        """Traced `ndarray.sum`."""
        return anp.sum(self, *args, **kwargs)

    def mean(self, *args, **kwargs):
        """Traced `ndarray.mean`."""
        return anp.mean(self, *args, **kwargs)

    def prod(self, *args, **kwargs):
        """Traced `ndarray.prod`."""
        return anp.prod(self, *args, **kwargs)

    def max(self, *args, **kwargs):
        """Traced `ndarray.max` (ties share the gradient)."""
        return anp.max(self, *args, **kwargs)

    def min(self, *args, **kwargs):
        """Traced `ndarray.min` (ties share the gradient)."""
        return anp.min(self, *args, **kwargs)

    def var(self, *args, **kwargs):
        """Traced `ndarray.var`."""
        return anp.var(self, *args, **kwargs)

    def std(self, *args, **kwargs):
        """Traced `ndarray.std`."""
        return anp.std(self, *args, **kwargs)

    def cumsum(self, *args, **kwargs):
        """Traced `ndarray.cumsum`."""
        return anp.cumsum(self, *args, **kwargs)

    def cumprod(self, *args, **kwargs):
        """Traced `ndarray.cumprod`."""
        return anp.cumprod(self, *args, **kwargs)

    # -- augmented assignment: NumPy's semantics, or a refusal ---------------------------
    # An array updated in place keeps its identity in NumPy: every name bound to it sees
    # the new value.  A traced array does the same by moving this object to the node of
    # the result.  A NumPy scalar is immutable, so `s += 1` rebinds `s`, as in NumPy.
    def _update(self, op, other, symbol: str):
        result = op(self, other)
        if type(unwrap(self._value)) is not np.ndarray:
            return result
        what = f"x {symbol}= v"
        self._write(self._fitted(result, what), what,
                    f"write x = x {symbol} v instead (a new array)")
        return self

    def _fitted(self, result: Any, what: str) -> Any:
        """`result` as NumPy writes it into this array: the same shape (it may not grow)
        and this array's dtype (cast under the 'same_kind' rule)."""
        value = unwrap(self._value)
        shape, dtype = value.shape, value.dtype
        if type(value) is not np.ndarray:
            raise TypeError(f"{what}: a NumPy scalar cannot be written into (as in NumPy).")
        got = np.shape(unwrap(result))
        if got != shape:
            raise ValueError(f"non-broadcastable output operand with shape {shape} doesn't "
                             f"match the broadcast shape {got} ({what} on a traced array)")
        out = np.result_type(unwrap(result))
        if out != dtype:
            if not np.can_cast(out, dtype, "same_kind"):
                raise TypeError(f"Cannot cast the result of {what} from {out} to {dtype} with "
                                "casting rule 'same_kind' (as NumPy).")
            result = anp.array(result, dtype=dtype)
        return result

    def _write(self, result: TracerBase, what: str, fix: str,
               exclude: TracerBase | None = None) -> None:
        """Make this traced array hold `result` (of its shape and dtype) as NumPy's
        in-place write would: every name bound to it sees the new value, and a view made
        by basic indexing (`row = y[0]`) writes through to its array when that is the
        only other live array sharing its memory.  Other sharing is refused."""
        graph = self._graph
        node = graph.node_of(self)
        # the caller's array itself (a copy, `x = x.copy()`, stands for the same leaf
        # but holds its own memory, and may be written)
        if node.op == "input" and np.may_share_memory(unwrap(self), unwrap(node.value)):
            raise TracingError(
                f"{user_line()}: {what} on a traced array that is an argument of the traced "
                f"function: NumPy would change the caller's array, and ardiff never writes "
                f"into its arguments; {fix}")
        aliases = [a for a in _live_aliases(self) if a is not exclude]
        base = aliases[0] if len(aliases) == 1 else None
        through = base is not None and node.op is getitem and base._graph is graph and \
            node.parents[0][1] == base._node and is_basic_index(node.args[1])
        if aliases and not through:
            other = aliases[0]
            kind = ("an argument of the traced function: NumPy would change the caller's "
                    "array, and ardiff never writes into its arguments"
                    if other._graph.node_of(other).op == "input" else
                    f"another traced array still in use (node {other._node}; views are made "
                    "by basic indexing, reshape, transpose, .T, broadcast_to, .real, .imag): "
                    "NumPy would change that array too, which ardiff does not follow")
            raise TracingError(f"{user_line()}: {what} on a traced array that shares memory "
                               f"with {kind}; {fix}")
        if through:  # write through to the array this one is a view of, as NumPy does
            index = node.args[1]
            base._write(setitem(base, index, result), what, fix, exclude=self)
            result = getitem(base, index)  # and stay its view
        self._graph, self._node, self._value = result._graph, result._node, result._value

    def __iadd__(self, other):
        return self._update(add, other, "+")

    def __isub__(self, other):
        return self._update(subtract, other, "-")

    def __imul__(self, other):
        return self._update(multiply, other, "*")

    def __itruediv__(self, other):
        return self._update(divide, other, "/")

    def __ipow__(self, other):
        return self._update(power, other, "**")

    def __imatmul__(self, other):
        return self._update(matmul, other, "@")

    def __imod__(self, other):
        return self._update(remainder, other, "%")

    def __ifloordiv__(self, other):
        if type(unwrap(self._value)) is not np.ndarray:
            return self // other
        raise TracingError(
            f"{user_line()}: x //= v on a traced array would turn it into a plain array "
            "(floor division carries no gradient) in place; write x = x // v.")

    # -- in-place methods of ndarray: refused, with the traced alternative --------------
    def _in_place_method(self, call: str, instead: str):
        raise TracingError(f"{user_line()}: x.{call} changes the array in place, which "
                           f"ardiff does not trace; write {instead} instead.")

    def sort(self, axis=-1, kind=None, order=None):
        """Refused: sorts in place. Use `x = np.sort(x)` (traced)."""
        self._in_place_method("sort()", "x = np.sort(x, axis) (or anp.sort)")

    def partition(self, kth, axis=-1, kind="introselect", order=None):
        """Refused: partitions in place. Use `x = np.partition(x, kth)` (traced)."""
        self._in_place_method("partition()", "x = np.partition(x, kth, axis) (or anp.partition)")

    def fill(self, value):
        """Refused: fills in place. Use `x = np.full_like(x, value)`."""
        self._in_place_method("fill()", "x = anp.full_like(x, value)")

    def put(self, indices, values, mode="raise"):
        """Refused: writes in place. Build the new value with `anp.where`."""
        self._in_place_method("put()", "a new array built with anp.where or anp.concatenate")

    def resize(self, *new_shape, refcheck=True):
        """Refused: resizes in place. Use `x = np.resize(x, shape)` (traced)."""
        self._in_place_method("resize()", "x = np.resize(x, shape) (or anp.resize)")

    def __getattr__(self, name):
        # only reached for names the class lacks: say which ndarray feature it is
        if not name.startswith("_") and hasattr(np.ndarray, name):
            raise AttributeError(
                f"{type(self).__name__!r} object has no attribute {name!r}: ndarray.{name} is "
                f"not supported on traced values. Use x.value.{name} to read it from the plain "
                "value (no gradient flows through it), or an ardiff.numpy function.",
                name=name, obj=self)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}",
                             name=name, obj=self)

    # -- ways to lose the gradient: refuse them loudly --------------------------
    def _detach_error(self, what: str):
        line = user_line()
        if _ITEM_ASSIGNMENT.search(line):
            what, advice = "assigning a traced value into a plain NumPy array (a[i] = x)", \
                ASSIGN_HELP
        else:
            advice = RANDOM_HELP if _RANDOM_DRAW.search(line) else DETACH_HELP
        raise TracingError(f"{line + ': ' if line else ''}{what} would drop its gradient. "
                           f"{advice}")

    def item(self, *args):
        """Refused: the plain number would carry no gradient (use `x.value`)."""
        self._detach_error("item() on a traced value")

    def tolist(self):
        """Refused: the plain list would carry no gradient (use `x.value`)."""
        self._detach_error("tolist() on a traced value")

    def __float__(self):
        self._detach_error("float() on a traced value (also called by math.* functions and by "
                           "C extensions)")

    def _is_integer(self) -> bool:
        return self.dtype.kind in "biu"

    def __int__(self):
        if self._is_integer():  # integers carry no gradient: nothing is lost
            return concrete(int, self)
        self._detach_error("int() on a traced value")

    def __complex__(self):
        self._detach_error("complex() on a traced value")

    def __index__(self):
        if self._is_integer():
            return concrete(int, self)
        self._detach_error("Using a traced value as an integer index (__index__)")

    def __array__(self, dtype=None, copy=None):
        caller = sys._getframe(1)
        if caller.f_globals.get("__name__", "").startswith("scipy.sparse"):
            return _sparse_conversion(self, caller.f_code.co_name)
        # an integer result (np.int64(x), np.asarray(x, dtype=int)) carries no gradient:
        # it is a plain array, read as a guard so that a compiled replay re-checks it
        if dtype is not None and np.dtype(dtype).kind in "biu":
            return concrete(np.asarray, self, dtype=dtype)
        if self._is_integer() and dtype is None:
            return np.asarray(concrete(np.asarray, self))
        self._detach_error(
            "Converting a traced value to a NumPy array (np.array/np.asarray, or a method of a "
            "plain NumPy array such as a.dot(x))")

    def __setitem__(self, key, value):
        """`x[idx] = v` with NumPy's semantics: every name of the array sees the write.

        Recorded as a `setitem` op (a new array); this traced value moves to it, as for
        `x += v`, and the same cases are refused (an argument of the traced function,
        an array sharing memory with another live one).
        """
        inner = unwrap(self._value)
        if type(inner) is not np.ndarray:
            raise TypeError(f"'{type(inner).__name__}' object does not support item "
                            "assignment (a NumPy scalar is immutable, as in NumPy)")
        index = _index(key)
        if not is_basic_index(index) and _repeats(inner.shape, index):
            raise TracingError(
                f"{user_line()}: x[idx] = v with a repeated index: NumPy keeps one of the "
                "values written to the same element, which has no gradient rule here. "
                "Write each element once (or use anp.where).")
        if isinstance(value, TracerBase) and value._graph is self._graph:
            written = self._graph.node_of(value)
            if written.op is getitem and written.parents[0][1] == self._node and \
                    _same_index(written.args[1], index):
                return  # y[idx] = y[idx] (the end of `y[idx] += v`): nothing changes
        self._write(setitem(self, index, value), "x[idx] = v",
                    "copy it first (x = x.copy()) to write into a new array")

    # -- NumPy protocols ---------------------------------------------------------
    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        if method != "__call__":
            raise TracingError(
                f"np.{ufunc.__name__}.{method} is not supported on traced values; use the "
                "matching ardiff.numpy function (e.g. anp.sum instead of np.add.reduce).")
        out = kwargs.pop("out", None)
        targets = out if isinstance(out, tuple) else (out,)
        if out is not None and (len(targets) != 1 or not isinstance(targets[0], Tracer)):
            raise TracingError(
                f"{user_line()}: np.{ufunc.__name__}(..., out=...) writes in place into a plain "
                "NumPy array, which cannot hold traced values; use the returned value instead, "
                "or make the array traced from a traced value x (a = np.zeros_like(x) or "
                "np.zeros(shape, like=x)).")
        impl = UFUNC_IMPLS.get(ufunc)
        if impl is None:
            raise TracingError(
                f"NumPy ufunc np.{ufunc.__name__} is not in ardiff's op table, so its gradient "
                "is unknown. Express it with supported ops, or add it to the op table "
                "(see ardiff.op.defop).")
        if kwargs:
            raise TracingError(
                f"np.{ufunc.__name__}: keyword arguments {sorted(kwargs)} are not supported on "
                "traced values.")
        result = impl(*inputs)
        if out is None:
            return result
        target = targets[0]  # np.add(a, b, out=y): written into y as y[...] = result would
        what = f"np.{ufunc.__name__}(..., out=x)"
        result = target._fitted(result, what)
        target._write(result, what, "use the returned value instead (a new array)")
        return target

    def __array_function__(self, func, types, args, kwargs):
        if func in LIKE_CREATORS and not contains_tracer((args, tuple(kwargs.values()))):
            # np.zeros(n, like=x): NumPy's `like=` protocol asks x for the new array
            return buffer_like(self, func(*args, **kwargs))
        impl = FUNCTION_IMPLS.get(func)
        if impl is None:
            name = getattr(func, "__name__", str(func))
            module = getattr(func, "__module__", "numpy") or "numpy"
            raise TracingError(
                f"NumPy function {module}.{name} is not supported on traced values (it is "
                "not in ardiff's op table, so its gradient is unknown). Use the functions in "
                "ardiff.numpy, express it with supported ops, or add it to the op table.")
        return impl(*args, **kwargs)


# -- SciPy sparse matrices meet traced values --------------------------------------------
#: operand types that are never sparse (checked first: `*` is on the hot path)
_NUMERIC_OPERANDS = frozenset((float, int, np.float64, np.float32, np.ndarray, Tracer))

#: SciPy's sparse operator dispatch (`_matmul_dispatch`; `_mul_dispatch` before SciPy
#: 1.13): it converts an unknown operand with np.asanyarray and returns NotImplemented
#: for a 0-d object array, so that Python calls the operand's reflected operator
_SCIPY_SPARSE_DISPATCH = frozenset(("_matmul_dispatch", "_mul_dispatch",
                                    "_rmatmul_dispatch", "_rmul_dispatch"))


def _foreign_operand(other) -> bool:
    """A SciPy sparse matrix, or an object that opts out of NumPy's operators
    (`__array_ufunc__ = None`, as ardiff.scipy.sparse.SparseArray)."""
    return scipy.sparse.issparse(other) or getattr(type(other), "__array_ufunc__", 0) is None


def _foreign_product(a, b, operator: str):
    """`a @ b` or `a * b` with a sparse operand (one of `a`, `b` is the tracer)."""
    other = a if isinstance(b, Tracer) else b
    if not scipy.sparse.issparse(other):
        return NotImplemented  # __array_ufunc__ = None: the other operand's operator
    if operator == "@" or scipy.sparse.isspmatrix(other):  # spmatrix: * is a product
        return ascipy.sparse.matmul(a, b)
    return ascipy.sparse.multiply(a, b)  # sparse arrays: * is elementwise


def _sparse_conversion(tracer: Tracer, function: str) -> np.ndarray:
    """What SciPy's sparse code gets when it converts a tracer with np.asanyarray.

    Its operator dispatch gets a 0-d object array, its sign to return NotImplemented
    (Python then calls the tracer's reflected operator, which computes the traced
    product); anything else would compute with the plain value and is refused.
    """
    if function in _SCIPY_SPARSE_DISPATCH:
        out = np.empty((), dtype=object)
        out[()] = tracer
        return out
    line = user_line()
    raise TracingError(
        f"{line + ': ' if line else ''}a SciPy sparse matrix method ({function}) would convert "
        f"a traced value to a plain array and drop its gradient: {ascipy.sparse.HELP}.")


def _dispatch_tables() -> tuple[dict, dict]:
    """NumPy ufuncs and functions -> their traced namesakes in ardiff.numpy / ardiff.scipy."""
    ufuncs: dict = {}
    functions: dict = {}
    pairs = [(np, anp), (np.linalg, anp.linalg), (np.fft, anp.fft),
             (scipy.special, ascipy.special)]
    for numpy_module, traced_module in pairs:
        for name in traced_module.__all__:
            impl = getattr(traced_module, name)
            target = getattr(numpy_module, name, None)
            if not callable(impl) or isinstance(impl, type) or target is None:
                continue
            if isinstance(target, np.ufunc):
                ufuncs[target] = impl
            elif numpy_module is not scipy.special and callable(target) \
                    and not isinstance(target, type):
                # scipy.special's plain functions never dispatch (only its ufuncs do)
                functions[target] = impl
    return ufuncs, functions


#: NumPy ufunc / function -> traced implementation (used by the NumPy protocols above).
UFUNC_IMPLS, FUNCTION_IMPLS = _dispatch_tables()

def _copyto(dst, src, casting="same_kind", where=True):
    """`np.copyto` into a traced array: `dst[...] = src` where `where` holds, as NumPy."""
    if not isinstance(dst, Tracer):
        raise TracingError(
            f"{user_line()}: NumPy function numpy.copyto writes into a plain NumPy array, "
            "which cannot hold traced values; use a traced array instead, made from a "
            "traced value x (np.zeros_like(x) or np.zeros(shape, like=x)).")
    src_dtype = np.result_type(unwrap(src))
    if not np.can_cast(src_dtype, dst.dtype, casting):
        raise TypeError(f"Cannot cast array data from {src_dtype} to {dst.dtype} according "
                        f"to the rule {casting!r} (np.copyto, as NumPy)")
    value = src if where is True else anp.where(where, src, dst)
    dst._write(setitem(dst, Ellipsis, value), "np.copyto(x, ...)",
               "use np.copyto on a copy (x = x.copy()) instead")


FUNCTION_IMPLS[np.copyto] = _copyto

#: Array creators that NumPy's `like=` hands to a traced prototype: a traced buffer.
LIKE_CREATORS = frozenset({np.zeros, np.ones, np.empty, np.full})


def unit(x: Any) -> Any:
    """Mark a traced value as a relaxation unit; identity in value and gradient.

    Under `units="layers"` (the `"paper"` preset) a marked node always relaxes as a
    unit, and it anchors the layers upstream of it (see `ardiff.solvers.units`).
    The mark is recorded on the node: no op is added to the graph, so the
    op-level dynamics (`units="ops"`) and every gradient are unchanged.  Outside
    tracing (a plain array) it returns `x` and does nothing.  Under nested tracing
    the value is marked at every level.  A mark on a node that does not relax in a
    given solve (the output, a node off the path between `wrt` and the output) is
    ignored there; `units="ops"` and explicit lists ignore marks.

    Parameters
    ----------
    x : Tracer or array_like
        The value to mark (e.g. a layer's output `h`).

    Returns
    -------
    Tracer or array_like
        `x` itself.

    Examples
    --------
    >>> import numpy as np, ardiff, ardiff.numpy as anp
    >>> def f(x):
    ...     h = ardiff.unit(anp.sin(x) * 2.0)
    ...     return anp.sum(h ** 2)
    >>> bool(np.allclose(ardiff.grad(f, preset="paper", closed_form=False, max_iter=400)(
    ...     np.ones(3)), 4 * np.sin(1) * np.cos(1) * 2))
    True
    """
    value = x
    while isinstance(value, Tracer):
        node = value.node
        node.unit = True
        value = node.value
    return x
