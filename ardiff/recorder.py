"""One traced call of a user's function: the scaffold every transform is built on.

`TracedCall` records `fun(*args, **kwargs)` into a fresh `Graph` with the
differentiated positional arguments (`argnum`) as graph inputs, flattened when
they are containers, and afterwards puts gradients back into the arguments'
structure (`TracedCall.pack`).  `trace` is the user-facing form that just returns
the graph.  `gc_paused` is the context every transform records and solves in.

Nothing here solves anything: the transforms (`ardiff.grad` and friends) and
`ardiff.compile` pass the traced call to a solver.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Callable
from typing import Any

import numpy as np

from .graph import Graph, TracingError, unwrap
from .tracer import Tracer
from .tree import flatten


class _GcPause:
    """The context manager `gc_paused` returns (a class: cheaper than a generator's)."""

    __slots__ = ("was_enabled",)

    def __enter__(self) -> None:
        self.was_enabled = gc.isenabled()
        gc.disable()

    def __exit__(self, *exc_info) -> None:
        if self.was_enabled:
            gc.enable()


def gc_paused() -> contextlib.AbstractContextManager:
    """Pause Python's cyclic garbage collector while a graph is built and solved.

    Tracing allocates many small objects, which triggers full collections whose
    cost grows with everything else alive in the process (about 40% of a scalar
    chain's gradient time, measured).  ardiff's own structures hold no reference
    cycles, so reference counting frees them; collection resumes afterwards.

    Returns
    -------
    contextlib.AbstractContextManager
        Use as `with gc_paused(): ...`; nested uses restore the outer state.
    """
    return _GcPause()


def function_name(fun: Callable) -> str:
    """The name error messages use for `fun` (its qualified name when it has one).

    Parameters
    ----------
    fun : callable
        Any callable.

    Returns
    -------
    str
    """
    # repr only when needed: it is the costliest of the three, and this runs per call
    name = getattr(fun, "__qualname__", None) or getattr(fun, "__name__", None)
    return name if isinstance(name, str) else repr(fun)


def normalize_argnums(argnum: Any, n_args: int, fun: Callable) -> tuple[int, ...]:
    """Check `argnum` against a call with `n_args` positional arguments.

    Parameters
    ----------
    argnum : int or tuple of int
        Which positional arguments are differentiated (negative counts from the end).
    n_args : int
        How many positional arguments the call has.
    fun : callable
        The function, named in error messages.

    Returns
    -------
    tuple of int
        The argument positions, non-negative, in the order given.

    Raises
    ------
    TypeError
        If `argnum` is not an int or a tuple (or list) of ints.
    ValueError
        If a position is out of range or named twice.
    """
    if type(argnum) is int and -n_args <= argnum < n_args:  # the common case, checked fast
        return (argnum % n_args,)
    name = function_name(fun)
    if isinstance(argnum, (int, np.integer)) and not isinstance(argnum, bool):
        nums = (argnum,)
    elif isinstance(argnum, (tuple, list)):
        nums = tuple(argnum)
    else:
        nums = (None,)
    for k in nums:
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
            raise TypeError(f"{name}: argnum must be an int or a tuple of ints, got "
                            f"{argnum!r}.")
        if not -n_args <= k < n_args:
            raise ValueError(f"argnum={k} is out of range: {name} was called with {n_args} "
                             "positional argument(s).")
    normalised = tuple(int(k) % n_args for k in nums)
    if len(set(normalised)) != len(normalised):
        raise ValueError(f"{name}: argnum={argnum!r} names the same argument twice; "
                         "list each argument once.")
    return normalised


#: Argument types that are one leaf each (no container to flatten): the common case.
_LEAF_TYPES = frozenset((np.ndarray, np.float64, np.float32, float, int, Tracer))


def _only_leaf(leaves: list) -> Any:
    return leaves[0]


def _flatten(arg: Any) -> tuple[list, Callable[[list], Any]]:
    """`tree.flatten`, without building closures for a plain array or scalar."""
    if type(arg) in _LEAF_TYPES:
        return [arg], _only_leaf
    return flatten(arg)


def _like_leaf(grad: Any, scalar: bool) -> Any:
    """A scalar input gets a NumPy scalar gradient, an array input an array."""
    if isinstance(grad, np.ndarray) and scalar and grad.ndim == 0:
        return grad[()]
    if isinstance(grad, np.generic) and not scalar:
        return np.asarray(grad)
    return grad


class TracedCall:
    """One traced call of `fun`, with some positional arguments as graph inputs.

    Parameters
    ----------
    fun : callable
        The user's function.
    argnum : int or tuple of int
        The differentiated positional arguments; an int makes `pack` return one
        gradient, a tuple a tuple of them.
    args : tuple
        Positional arguments of the call.
    kwargs : dict
        Keyword arguments of the call (never differentiated).
    lean : bool
        Record a lean graph (`Graph.lean`): only the forward values local VJPs read
        are kept, for callers that only run VJPs at the recorded point.

    Attributes
    ----------
    graph : Graph
        The recording.
    inputs : list of Tracer
        The graph inputs: the leaves of the differentiated arguments, in order.
    output : Any
        What `fun` returned (a tracer of `graph` when it depends on the inputs).

    Raises
    ------
    TypeError
        When `fun` raises a TypeError and a differentiated argument is a Python list
        (lists are containers of scalars: the message says to pass `np.asarray(...)`).
    TracingError
        When `fun` assigned a traced value into a NumPy array.
    """

    def __init__(self, fun: Callable, argnum: Any, args: tuple, kwargs: dict, *,
                 lean: bool = False):
        self.fun = fun
        self.argnum = argnum
        self.argnums = normalize_argnums(argnum, len(args), fun)
        self.graph = Graph()
        self.graph.lean = lean
        boxed = list(args)
        self._rebuilds = []
        self.inputs = []
        name = function_name(fun)
        self._scalar_leaf = []  # gradients of scalar inputs are scalars, of arrays arrays
        add_input = self.graph.input
        for k in self.argnums:
            arg = args[k]
            label = f"{name}:arg{k}"
            if type(arg) is np.ndarray:  # the usual argument: one array
                tracer = add_input(arg, name=label)
                boxed[k] = tracer
                self._scalar_leaf.append(False)
                self._rebuilds.append((_only_leaf, 1))
                self.inputs.append(tracer)
                continue
            leaves, rebuild = _flatten(arg)
            self._scalar_leaf += [not isinstance(leaf, (np.ndarray, Tracer)) for leaf in leaves]
            tracers = [add_input(leaf, name=label) for leaf in leaves]
            boxed[k] = rebuild(tracers)
            self._rebuilds.append((rebuild, len(tracers)))
            self.inputs.extend(tracers)
        try:
            self.output = fun(*boxed, **kwargs)
        except ValueError as exc:
            # NumPy turns the TracingError of `a[i] = x` into "setting an array element
            # with a sequence" (a traced value has __getitem__); give back the real reason.
            if isinstance(exc.__cause__, TracingError):
                # one message, not NumPy's ValueError between two copies of it
                raise TracingError(f"{name}: {exc.__cause__}") from None
            raise
        except TypeError as exc:
            lists = [k for k in self.argnums if isinstance(args[k], list)]
            if not lists or isinstance(exc, TracingError) or "'list'" not in str(exc):
                raise
            # a list argument is a container of scalars, so `x ** 2` on it is list ** int
            raise TypeError(
                f"{name}: {exc}. Argument {lists[0]} is a Python list, which ardiff treats "
                "as a container of scalars (one input per element, and a list of "
                "gradients); to differentiate it as an array, pass np.asarray(...) "
                "instead.") from exc
        self.graph.output = self.output
        out = self.output
        if lean and isinstance(out, Tracer) and out.graph is self.graph:
            out.node.value = out._value  # the output is always kept

    def output_tracer(self, what: str, scalar: bool = False) -> Tracer | None:
        """The output as a tracer of this graph, or None if it does not depend on the inputs.

        Parameters
        ----------
        what : str
            The transform's name, for error messages.
        scalar : bool
            Require a scalar output (as `grad` does).

        Returns
        -------
        Tracer or None
            None for a constant output (every gradient is zero).

        Raises
        ------
        TypeError
            If the output is not a float or complex array or scalar, or not a scalar when
            `scalar` is set.
        """
        out = self.output
        if type(out) is Tracer and out._graph is self.graph:  # the usual output, checked fast
            value = out._value
            if not scalar or (value.size if type(value) is np.ndarray
                              else np.size(unwrap(out))) == 1:
                return out
        name = function_name(self.fun)
        if isinstance(out, Tracer) and out.graph is self.graph:
            traced = out
        elif isinstance(out, Tracer) or (
                isinstance(out, (np.ndarray, np.generic)) and out.dtype.kind in "fiuc") or \
                isinstance(out, (int, float, complex)) and not isinstance(out, bool):
            traced = None  # a constant (or a value of an outer graph only): zero gradients
        elif isinstance(out, (np.ndarray, np.generic)):
            raise TypeError(
                f"{what}: {name} returned an array of dtype {out.dtype}; it must return a float "
                "array or scalar (real or complex) computed from its inputs.")
        else:
            kind = type(out).__name__
            raise TypeError(
                f"{what}: {name} returned a {kind}; it must return a float array or scalar "
                "computed from its inputs" + (
                    " (for several outputs, differentiate each one separately)"
                    if isinstance(out, (tuple, list, dict)) else "") + ".")
        if scalar and np.size(unwrap(out)) != 1:
            raise TypeError(
                f"{what}: {name} returned an array of shape {np.shape(unwrap(out))}; "
                f"{what} needs a scalar output. Use elementwise_grad, jacobian, or sum the "
                "output.")
        return traced

    def value(self) -> Any:
        """The call's return value with this graph's tracing removed (outer levels kept)."""
        out = self.output
        return out._value if isinstance(out, Tracer) and out.graph is self.graph else out

    def pack(self, flat: list) -> Any:
        """Put a flat list of input gradients back into the arguments' structure.

        Parameters
        ----------
        flat : list
            One gradient per entry of `inputs`.

        Returns
        -------
        Any
            The gradient of the one differentiated argument (int `argnum`), or a tuple
            with one per argument (tuple `argnum`), each structured like it.
        """
        flat = [_like_leaf(g, scalar) for g, scalar in zip(flat, self._scalar_leaf)]
        if len(flat) == 1 and self._rebuilds[0][0] is _only_leaf and \
                type(self.argnum) is int:  # one plain argument: nothing to rebuild
            return flat[0]
        grouped, pos = [], 0
        for rebuild, n in self._rebuilds:
            grouped.append(rebuild(flat[pos:pos + n]))
            pos += n
        return grouped[0] if isinstance(self.argnum, (int, np.integer)) else tuple(grouped)

    def zeros(self) -> list:
        """Zero gradients for every input (the gradient of a constant output)."""
        return [np.zeros(np.shape(unwrap(t)), dtype=np.result_type(unwrap(t)))
                for t in self.inputs]

    def replace_values(self, values: list) -> None:
        """Rewrite the recording with new forward values (a compiled replay).

        The graph's nodes take the new values (`Graph.replace_values`) and `inputs`
        and `output` become tracers carrying them, so solving the call again gives
        the gradients at the new point.

        Parameters
        ----------
        values : list
            One value per graph node, by index.
        """
        self.graph.replace_values(values)
        self.inputs = self.graph.inputs
        if isinstance(self.output, Tracer) and self.output.graph is self.graph:
            self.output = self.graph.output


def trace(fun: Callable, *args: Any, argnum: Any = None, **kwargs: Any) -> Graph:
    """Record `fun(*args, **kwargs)` into a new `Graph`.

    All positional arguments (or those in `argnum`) become graph inputs, in
    order, flattened if they are nested containers: `graph.inputs`.  The traced
    return value is `graph.output`.

    Parameters
    ----------
    fun : callable
        The function to record.
    *args
        Its positional arguments.
    argnum : int or tuple of int, optional
        The arguments that become graph inputs (default: all).
    **kwargs
        Its keyword arguments (recorded as constants).

    Returns
    -------
    Graph

    Examples
    --------
    >>> import numpy as np, ardiff, ardiff.numpy as anp
    >>> g = ardiff.trace(lambda x: anp.sum(anp.tanh(x)), np.ones(3))
    >>> ardiff.relax(g).grads[0].shape
    (3,)
    """
    argnums = tuple(range(len(args))) if argnum is None else argnum
    return TracedCall(fun, argnums, args, kwargs).graph
