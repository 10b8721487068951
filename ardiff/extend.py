"""Functions with their own gradients, with HIPS autograd's extension API.

`primitive(fun)` turns a Python function into an op of ardiff's op table (a `defop`
under a unique name, `"extend.<qualified name>"`); `defvjp` (or `defvjp_argnum`,
`defvjp_argnums`) gives its VJP makers, with autograd's signatures:

```python
import numpy as np
import ardiff
import ardiff.numpy as anp
from ardiff.extend import defvjp, primitive

@primitive
def logsumexp(x):
    m = np.max(x)
    return m + np.log(np.sum(np.exp(x - m)))

def logsumexp_vjp(ans, x):
    return lambda g: g * anp.exp(x - ans)    # traced ops: second order works too

defvjp(logsumexp, logsumexp_vjp)
ardiff.grad(logsumexp)(np.array([1.0, 2.0]))
```

A VJP maker is `maker(ans, *args, **kwargs) -> (g -> g · ∂ans/∂args[k])` and the function
it returns gives a value shaped like `args[k]` (not broadcast: the maker undoes any
broadcasting itself, as in autograd).  The maker is called once per recorded call, with
the recorded answer and arguments, and the function it returns is what every solver
applies (once by the default exact sweep, many times by a relaxation).  Written with
ardiff's traced ops (`ardiff.numpy`), it is differentiated again by `grad(grad(...))`,
`hessian` and `check_grads(order=2)`; written with plain NumPy it gives first-order
derivatives only.

Arguments may be containers (tuples, lists, dicts) of arrays: each leaf is an input of
the op and the maker's VJP returns a gradient with the argument's structure.  Non-array
arguments (functions, strings, ...) and keyword arguments are constants of the call.

`defjvp` gives a primitive's tangent rules for forward mode (`ardiff.jvp`), with
autograd's signature `jvpmaker(t, ans, *args, **kwargs)` returning the answer's tangent for
a tangent `t` of one argument; `"same"` declares the function linear in that argument
(its tangent is the function applied to `t`).  Without one, forward mode through the
primitive raises `ardiff.op.NoTangentRuleError` naming it.

`checkpoint(fun)` is built on the same mechanism: a segment whose intermediate values
are recomputed when its VJP is staged instead of being kept in the recorded graph.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable
from typing import Any

import numpy as np

from .forward import jvp, transposed_vjp
from .graph import TracerBase, unwrap
from .op import OPS, TRANSPOSED_VJP, NoTangentRuleError, defop
from .recorder import function_name
from .transforms import make_vjp
from .tree import flatten

__all__ = ["primitive", "Primitive", "defvjp", "defvjp_argnum", "defvjp_argnums",
           "defjvp", "defjvp_argnum", "checkpoint"]


class _Layout:
    """How one call's flat leaves map back to the primitive's arguments.

    One per recorded call with a container argument (it travels as a keyword argument
    of the node), so it also caches the maker's VJP of that node: a container argument
    has several leaves, and its VJP is made and applied once for all of them.  Calls
    whose arguments are all one leaf share one layout per arity (`_flat_layout`).
    """

    def __init__(self, args: tuple):
        self.n_args = len(args)
        self.cache: dict[int, list] = {}
        # the usual call: every argument one leaf (an array, a scalar, a traced value)
        self.flat = _all_leaves(args)
        if self.flat:
            n = len(args)
            self.rebuilds = [_only_leaf] * n
            self.owner = list(zip(range(n), [0] * n))
            self.leaf_counts = [1] * n
            self.traced_counts = None  # not read for one-leaf arguments
            return
        self.rebuilds = []
        self.owner = []  # leaf index -> (argument index, position among its leaves)
        for a, arg in enumerate(args):
            leaves, rebuild = flatten(arg)
            self.rebuilds.append(rebuild)
            self.owner.extend((a, p) for p in range(len(leaves)))
        self.leaf_counts = [sum(1 for owner, _ in self.owner if owner == a)
                            for a in range(len(args))]
        traced = [isinstance(leaf, TracerBase) for leaf in flatten(list(args))[0]]
        # how many leaves of each argument will ask for its VJP (the traced ones)
        self.traced_counts = [sum(1 for (owner, _), t in zip(self.owner, traced)
                                  if owner == a and t) for a in range(len(args))]

    def arguments(self, leaves: tuple) -> list:
        """The positional arguments rebuilt from the flat leaves."""
        if self.flat:
            return list(leaves)
        args, start = [], 0
        for rebuild, count in zip(self.rebuilds, self.leaf_counts):
            args.append(rebuild(list(leaves[start:start + count])))
            start += count
        return args

    def __repr__(self) -> str:  # shown by graph exports and error messages
        return f"<arguments of {self.n_args} positional argument(s)>"


class Primitive:
    """A user function entered in the op table; made by [`primitive`][ardiff.extend.primitive].

    Called on plain values it just calls the function; called with traced values
    (anywhere in its positional arguments, containers included) it records one node
    of its op, whose VJPs are the makers given by `defvjp`.

    Attributes
    ----------
    fun : callable
        The wrapped function.
    op : Op
        Its op in `ardiff.op.OPS`.
    """

    def __init__(self, fun: Callable):
        self.fun = fun
        self._name = function_name(fun)  # for messages, computed once
        functools.update_wrapper(self, fun)
        self._makers: dict[int, Callable | None] = {}
        self._argnums_maker: Callable | None = None
        self._jvp_makers: dict[int, Any] = {}
        self._jvp_argnum: Callable | None = None
        base = f"extend.{function_name(fun)}"
        name = base
        for k in itertools.count(2):
            if name not in OPS:
                break
            name = f"{base}#{k}"
        self.op = defop(name, self._forward, vjp=self._vjp, jvp=self._jvp)

    def __repr__(self) -> str:
        return f"<ardiff primitive {function_name(self.fun)}>"

    def __get__(self, instance, owner=None):  # decorating a method works as with a function
        return self if instance is None else functools.partial(self, instance)

    def __call__(self, *args, **kwargs):
        # every argument one leaf (the usual call): no flattening
        leaves = args if _all_leaves(args) else flatten(list(args))[0]
        for leaf in leaves:
            if isinstance(leaf, TracerBase):
                layout = _flat_layout(len(args)) if leaves is args else _Layout(args)
                return self.op(*leaves, ardiff_layout=layout, **kwargs)
        return self.fun(*args, **kwargs)

    # -- what the op calls -------------------------------------------------------------
    def _forward(self, *leaves, ardiff_layout: _Layout, **kwargs):
        if ardiff_layout.flat:  # the leaves are the arguments
            return self.fun(*leaves, **kwargs)
        return self.fun(*ardiff_layout.arguments(leaves), **kwargs)

    def set_makers(self, makers: dict, argnums_maker: Callable | None = None) -> None:
        """Replace the VJP makers (what `defvjp` and `defvjp_argnums` call).

        Parameters
        ----------
        makers : dict
            Argument index -> `maker(ans, *args, **kwargs)`, or None for an argument
            whose VJP is zero.
        argnums_maker : callable, optional
            `maker(argnums, ans, args, kwargs) -> (g -> VJPs for argnums)`, autograd's
            `defvjp_argnums` form; used for every argument when given.
        """
        self._makers = dict(makers)
        self._argnums_maker = argnums_maker

    def set_jvp_makers(self, makers: dict, argnum_maker: Callable | None = None) -> None:
        """Replace the tangent rules (what `defjvp` calls).

        Parameters
        ----------
        makers : dict
            Argument index -> `maker(t, ans, *args, **kwargs)`, `"same"` (linear in that
            argument) or None (a zero tangent).
        argnum_maker : callable, optional
            `maker(argnum, t, ans, args, kwargs)` for every argument.
        """
        self._jvp_makers = dict(makers)
        self._jvp_argnum = argnum_maker

    def _jvp(self, k: int, t, ans, *leaves, ardiff_layout: _Layout, **kwargs):
        """The answer's tangent for the tangent `t` of leaf `k` (the op's jvp rule)."""
        a, position = ardiff_layout.owner[k]
        if self._jvp_makers.get(a) is TRANSPOSED_VJP:  # the adjoint of the leaf's VJP
            return transposed_vjp(self.op, k, t, ans, leaves,
                                  dict(kwargs, ardiff_layout=ardiff_layout))
        args = ardiff_layout.arguments(leaves)
        if ardiff_layout.leaf_counts[a] == 1:
            tangent = t
        else:  # a container argument: the tangent of this leaf, zeros for the others
            start = sum(ardiff_layout.leaf_counts[:a])
            parts = [t if i == position else _zeros_like(leaves[start + i])
                     for i in range(ardiff_layout.leaf_counts[a])]
            tangent = ardiff_layout.rebuilds[a](parts)
        name = self._name
        if self._jvp_argnum is not None:
            return self._jvp_argnum(a, tangent, ans, tuple(args), kwargs)
        if a not in self._jvp_makers:
            raise NoTangentRuleError(
                f"ardiff.extend: the primitive {name} has no tangent rule (forward mode) for "
                f"argument {a}; give it with ardiff.extend.defjvp({name}, ...), or pass that "
                "argument as a plain value.")
        maker = self._jvp_makers[a]
        if maker is None:
            return _zeros_like(ans)
        if isinstance(maker, str):  # "same": linear in this argument
            return self.fun(*args[:a], tangent, *args[a + 1:], **kwargs)
        return maker(tangent, ans, *args, **kwargs)

    def _argument_vjp(self, a: int, ans, args: list, kwargs: dict) -> Callable:
        """`g -> g · ∂ans/∂args[a]` from the declared makers (zero for `None`)."""
        name = self._name
        if self._argnums_maker is not None:
            together = self._argnums_maker((a,), ans, tuple(args), kwargs)
            return lambda g: next(iter(together(g)))
        if a not in self._makers:
            raise NotImplementedError(
                f"ardiff.extend: the VJP of {name} with respect to argument {a} is not "
                f"defined; give it with defvjp({name}, ...), or pass that argument as a "
                "plain value.")
        maker = self._makers[a]
        if maker is None:
            return lambda g: _zeros_like(args[a])
        return maker(ans, *args, **kwargs)

    def _vjp(self, k: int, ans, *leaves, ardiff_layout: _Layout, **kwargs) -> Callable:
        if ardiff_layout.flat:  # one leaf per argument: the maker's VJP is the leaf's
            return self._leaf_vjp(k, self._argument_vjp(k, ans, list(leaves), kwargs),
                                  leaves[k])
        a, position = ardiff_layout.owner[k]
        n_leaves = ardiff_layout.traced_counts[a]
        cached = ardiff_layout.cache.get(a)
        if cached is not None and cached[0] is ans and len(cached[1]) == len(leaves) \
                and all(x is y for x, y in zip(cached[1], leaves)):
            argument_vjp = cached[2]
            cached[3] -= 1
            if cached[3] <= 0:  # every leaf has its VJP: do not keep it (checkpoint frees)
                del ardiff_layout.cache[a]
        else:
            args = ardiff_layout.arguments(leaves)
            argument_vjp = _remember_last(self._argument_vjp(a, ans, args, kwargs))
            if n_leaves > 1:  # the argument's other leaves ask for the same VJP
                ardiff_layout.cache[a] = [ans, leaves, argument_vjp, n_leaves - 1]
        leaf = leaves[k]
        name = self._name

        def vjp(g):
            out = argument_vjp(g)
            if type(out) is np.ndarray and position == 0:  # the usual answer: one array
                if out.shape != np.shape(unwrap(leaf)):
                    _wrong_shape(name, a, out, leaf)
                return out
            out_leaves = flatten(out)[0]
            expected = np.shape(unwrap(leaf))
            if position >= len(out_leaves):
                raise ValueError(
                    f"ardiff.extend: the VJP of {name} with respect to argument {a} "
                    f"returned {len(out_leaves)} value(s), but the argument has more "
                    "leaves; return a value with the argument's structure.")
            got = out_leaves[position]
            if got is None:
                return _zeros_like(leaf)
            if np.shape(unwrap(got)) != expected:
                _wrong_shape(name, a, got, leaf)
            return got

        return vjp

    def _leaf_vjp(self, a: int, argument_vjp: Callable, leaf: Any) -> Callable:
        """The VJP of argument `a`, itself one leaf: the maker's, with its answer checked
        (the shape of `leaf`; a container answer gives its first leaf, None zeros)."""
        name = self._name

        def vjp(g):
            out = argument_vjp(g)
            if type(out) is np.ndarray and type(leaf) is np.ndarray:  # the usual answer
                if out.shape != leaf.shape:
                    _wrong_shape(name, a, out, leaf)
                return out
            shape = np.shape(unwrap(leaf))
            if isinstance(out, _CONTAINERS):
                out_leaves = flatten(out)[0]
                if not out_leaves:
                    raise ValueError(
                        f"ardiff.extend: the VJP of {name} with respect to argument "
                        f"{a} returned 0 value(s), but the argument has more leaves; "
                        "return a value with the argument's structure.")
                out = out_leaves[0]
            if out is None:
                return _zeros_like(leaf)
            if np.shape(unwrap(out)) != shape:
                _wrong_shape(name, a, out, leaf)
            return out

        return vjp


_FLAT_LAYOUTS: dict[int, _Layout] = {}


def _flat_layout(n: int) -> _Layout:
    """The layout of `n` one-leaf arguments, shared by every such call (it holds no
    per-call state: its VJP cache serves containers only)."""
    layout = _FLAT_LAYOUTS.get(n)
    if layout is None:
        layout = _FLAT_LAYOUTS[n] = _Layout((None,) * n)
    return layout


#: The containers whose leaves are separate inputs of a primitive (`ardiff.tree`).
_CONTAINERS = (tuple, list, dict)


def _all_leaves(args: tuple) -> bool:
    """Whether no argument is a container (a loop: cheaper than `any` over a generator)."""
    for arg in args:
        if isinstance(arg, _CONTAINERS):
            return False
    return True


def _only_leaf(leaves: list) -> Any:
    return leaves[0]


def _wrong_shape(name: str, a: int, got: Any, leaf: Any) -> None:
    """Raise the ValueError of a VJP answer not shaped like its argument."""
    raise ValueError(
        f"ardiff.extend: the VJP of {name} with respect to argument {a} returned shape "
        f"{np.shape(unwrap(got))}, but the argument has shape {np.shape(unwrap(leaf))}; a "
        "VJP returns a value shaped like its argument (undo any broadcasting in the VJP).")


def _zeros_like(x: Any) -> np.ndarray:
    value = unwrap(x)
    dtype = np.result_type(value)
    return np.zeros(np.shape(value), dtype=dtype if dtype.kind in "fc" else np.float64)


def _remember_last(fun: Callable) -> Callable:
    """`fun`, answering a repeated call on the same `g` object from memory."""
    last: list = []

    def call(g):
        if last and last[0] is g:
            return last[1]
        out = fun(g)
        last[:] = [g, out]
        return out

    return call


def primitive(fun: Callable) -> Primitive:
    """Make `fun` an op of ardiff, whose VJPs are then given with `defvjp`.

    Parameters
    ----------
    fun : callable
        A function of NumPy values (it is called on plain values only, never traced)
        returning an array or a scalar (a tuple of outputs is not supported: make one
        primitive per output).

    Returns
    -------
    Primitive
        A callable with `fun`'s name and docstring; its op is registered in
        `ardiff.op.OPS` under `"extend.<qualified name>"` (with `#2`, `#3`, ... when
        that name is taken).

    Examples
    --------
    >>> import numpy as np, ardiff
    >>> from ardiff.extend import primitive, defvjp
    >>> @primitive
    ... def cube(x):
    ...     return x ** 3
    >>> defvjp(cube, lambda ans, x: lambda g: 3 * g * x ** 2)
    >>> float(ardiff.grad(cube)(2.0))
    12.0
    """
    return Primitive(fun)


def _as_primitive(fun: Any, caller: str) -> Primitive:
    if not isinstance(fun, Primitive):
        raise TypeError(f"ardiff.extend.{caller}: {function_name(fun)} is not a primitive; "
                        "decorate it with ardiff.extend.primitive first.")
    return fun


def defvjp(fun: Primitive, *vjpmakers: Callable | None, argnums: Any = None) -> None:
    """Give the VJP makers of a primitive, one per positional argument (autograd's `defvjp`).

    Parameters
    ----------
    fun : Primitive
        Made by `primitive`.
    *vjpmakers : callable or None
        `maker(ans, *args, **kwargs)` returning `g -> g · ∂ans/∂args[k]`, shaped like
        `args[k]`.  `None` declares a zero VJP (the argument does not influence the
        answer), so `defvjp(f, None, maker)` differentiates only the second argument.
        An argument given no maker at all cannot be differentiated: tracing through it
        raises NotImplementedError naming the function and the argument.
    argnums : sequence of int, optional
        The arguments the makers belong to (default `0, 1, ...`).

    Raises
    ------
    TypeError
        If `fun` is not a primitive or a maker is neither callable nor None.
    """
    fun = _as_primitive(fun, "defvjp")
    nums = itertools.count() if argnums is None else argnums
    makers = {}
    for a, maker in zip(nums, vjpmakers):
        if maker is not None and not callable(maker):
            raise TypeError(f"ardiff.extend.defvjp: bad VJP maker {maker!r} for argument {a} "
                            f"of {function_name(fun.fun)}.")
        makers[int(a)] = maker
    fun.set_makers(makers)


def defjvp(fun: Primitive, *jvpmakers: Any, argnums: Any = None) -> None:
    """Give the tangent rules of a primitive for forward mode (autograd's `defjvp`).

    Parameters
    ----------
    fun : Primitive
        Made by `primitive`.
    *jvpmakers : callable, "same", TRANSPOSED_VJP or None
        One per positional argument: `maker(t, ans, *args, **kwargs)` returning the
        tangent of the answer for a tangent `t` of that argument (shaped like the answer,
        or broadcastable to it), written with ardiff's ops (`ardiff.numpy`) so that it
        can be differentiated again; `"same"` when the function is linear in that
        argument (the tangent is `fun` applied with `t` in its place);
        `ardiff.op.TRANSPOSED_VJP` to compute it as the adjoint of the argument's VJP
        (one reverse pass through the VJP per call: exact, for a VJP written with
        ardiff's ops); `None` for a zero tangent.  An argument given nothing raises
        `ardiff.op.NoTangentRuleError` when forward mode reaches it.
    argnums : sequence of int, optional
        The arguments the makers belong to (default `0, 1, ...`).

    Raises
    ------
    TypeError
        If `fun` is not a primitive or a maker is not callable, "same" or None.

    Examples
    --------
    >>> import numpy as np, ardiff
    >>> from ardiff.extend import defjvp, primitive
    >>> @primitive
    ... def cube(x):
    ...     return x ** 3
    >>> defjvp(cube, lambda t, ans, x: 3 * t * x ** 2)
    >>> float(ardiff.jvp(cube, (2.0,), (1.0,))[1])
    12.0
    """
    fun = _as_primitive(fun, "defjvp")
    nums = itertools.count() if argnums is None else argnums
    makers = {}
    for a, maker in zip(nums, jvpmakers):
        if maker is not None and maker is not TRANSPOSED_VJP and maker != "same" \
                and not callable(maker):
            raise TypeError(f"ardiff.extend.defjvp: bad tangent rule {maker!r} for argument "
                            f"{a} of {function_name(fun.fun)}.")
        makers[int(a)] = maker
    fun.set_jvp_makers(makers)


def defjvp_argnum(fun: Primitive, jvpmaker: Callable) -> None:
    """One tangent rule taking the argument index (autograd's `defjvp_argnum`).

    Parameters
    ----------
    fun : Primitive
        Made by `primitive`.
    jvpmaker : callable
        `jvpmaker(argnum, t, ans, args, kwargs)` returning the answer's tangent for a
        tangent `t` of `args[argnum]`.
    """
    fun = _as_primitive(fun, "defjvp_argnum")
    fun.set_jvp_makers({}, jvpmaker)


def defvjp_argnums(fun: Primitive, vjpmaker: Callable) -> None:
    """One maker for all arguments at once (autograd's `defvjp_argnums`).

    Parameters
    ----------
    fun : Primitive
        Made by `primitive`.
    vjpmaker : callable
        `vjpmaker(argnums, ans, args, kwargs)` returning `g -> ` a sequence of VJPs,
        one for each argument index in `argnums`.
    """
    fun = _as_primitive(fun, "defvjp_argnums")
    fun.set_makers({}, vjpmaker)


def defvjp_argnum(fun: Primitive, vjpmaker: Callable) -> None:
    """One maker taking the argument index (autograd's `defvjp_argnum`).

    Parameters
    ----------
    fun : Primitive
        Made by `primitive`.
    vjpmaker : callable
        `vjpmaker(argnum, ans, args, kwargs)` returning `g -> g · ∂ans/∂args[argnum]`.
    """
    def together(argnums, ans, args, kwargs):
        vjps = [vjpmaker(a, ans, args, kwargs) for a in argnums]
        return lambda g: [vjp(g) for vjp in vjps]

    defvjp_argnums(fun, together)


def checkpoint(fun: Callable) -> Primitive:
    """`fun` as one op whose intermediate values are recomputed, not stored.

    Tracing a call of the result records a single node (its inputs and its answer);
    the values inside `fun` are discarded.  When the solver stages that node's VJP it
    traces `fun` again on the recorded inputs (`ardiff.make_vjp`), uses the segment's
    graph and drops it.  Memory for a chain of checkpointed segments is that of the
    inputs and answers plus one segment's graph at a time (with the default exact
    sweep, which stages each VJP just before using it), for one extra forward pass of
    each segment.  A relaxation that iterates (`schedule="parallel"`, `eta < 1`) keeps
    the staged VJPs for all its sweeps, and so every segment's graph.

    Parameters
    ----------
    fun : callable
        A function of arrays (or containers of them) returning an array.

    Returns
    -------
    Primitive
        Callable like `fun`.
    """
    wrapped = primitive(fun)

    def segment_vjp(argnum, ans, args, kwargs):
        return make_vjp(fun, argnum)(*args, **kwargs)[0]

    def segment_jvp(argnum, t, ans, args, kwargs):
        def along(arg):
            return fun(*args[:argnum], arg, *args[argnum + 1:], **kwargs)
        return jvp(along, (args[argnum],), (t,))[1]

    defvjp_argnum(wrapped, segment_vjp)
    wrapped.set_jvp_makers({}, segment_jvp)
    return wrapped
