"""Forward mode: tangents carried with the values, no tape kept.

`jvp(fun, primals, tangents)` (JAX's signature), `make_jvp(fun, argnum)` (autograd's)
and `jacfwd(fun, argnum)` run `fun` once per tangent on *dual* values: a `Dual` holds
a primal value and its tangent, and every op it meets computes the answer's tangent
right away from its arguments' tangents, with the op's tangent rule (declared in its
`defop`, next to its VJPs: `ardiff.op.Op.jvp_maker`).  Nothing is recorded: a `Dual`
dropped by the program is freed with its tangent, so memory does not grow with the
program's length (benchmarks/bench_forward_memory.py).

A `Dual` is a `ardiff.tracer.Tracer` whose "graph" is a `ForwardTrace`: NumPy's
dispatch (`np.sin(x)`, `x @ W`, `x[i] = v`, `np.zeros_like(x)`), ardiff's namespaces
and the error messages for lost gradients are the reverse tracer's own.  Its node is
a `ForwardNode` holding the tangent (and, for views, what the view was made from, so
that in-place writes follow NumPy as in reverse mode).  A trace has a nesting level
like a graph, so forward mode nests with itself and with reverse mode: `grad` of a
function that calls `jvp` records the tangent computation and differentiates it.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

import numpy as np

from . import numpy as anp
from .graph import Graph, TracerBase, as_differentiable, next_level, unwrap
from .op import OPS, TRANSPOSED_VJP, Op, shape_of
from .tracer import Tracer
from .transforms import make_vjp
from .tree import flatten

__all__ = ["Dual", "ForwardNode", "WeakParent", "ForwardTrace", "jvp", "make_jvp", "jacfwd",
           "push_tangent", "transposed_vjp", "fit_tangent"]


class ForwardNode:
    """What a forward trace knows of one value: its tangent, and how a view was made.

    `op`, `args` and `parents` are kept only for arguments (`op == "input"`, with the
    caller's array as `value`, which in-place writes must leave alone) and for the
    results of view-making ops (basic indexing, reshape, transpose, ...): the
    in-place writes of `ardiff.tracer.Tracer` read them to write through a view to its
    base, as NumPy does.  A view's parent is held weakly (`WeakParent`), so a chain of
    views (`x = x.reshape(...).T` in a loop) keeps nothing of its past either.
    """

    __slots__ = ("tangent", "op", "args", "parents", "value", "__weakref__")

    def __init__(self, tangent: Any, op: Any = None, args: tuple = (), parents: tuple = (),
                 value: Any = None):
        self.tangent, self.op, self.args, self.parents = tangent, op, args, parents
        self.value = value

    @property
    def index(self) -> ForwardNode:
        """The node itself: what `Op` stores in the traced value it returns."""
        return self

    def __repr__(self) -> str:
        return f"<forward node: tangent of shape {shape_of(self.tangent)}>"


class WeakParent:
    """A view's parent node, held weakly; equal to that node while it lives.

    In-place writes compare a view's parent with the base they write through
    (`node.parents[0][1] == base._node`); a dead parent has no live base to match.
    """

    __slots__ = ("ref",)

    def __init__(self, node: ForwardNode):
        self.ref = weakref.ref(node)

    def __eq__(self, other: object) -> bool:
        return self.ref() is other

    __hash__ = None  # compared, never hashed


class _NoGuards:
    """A forward trace does not replay: the facts read off its values are not kept."""

    __slots__ = ()

    def append(self, guard: Any) -> None:
        """Forget `guard`."""

    def __len__(self) -> int:
        return 0

    def __iter__(self):
        return iter(())


class ForwardTrace(Graph):
    """One forward-mode evaluation: the "graph" of its `Dual` values, which keeps nothing.

    `append` (called by every `Op` on dual values) computes the answer's tangent from
    the arguments' tangents (`push_tangent`) and returns a `ForwardNode`; no node is
    stored.  Views are noted weakly, as a `Graph` notes them, for in-place writes.
    """

    def __init__(self) -> None:  # no tape: only what Tracer and Op read of a graph
        self.level = next_level()
        self.nodes: tuple = ()
        self.guards = _NoGuards()
        self._sharing: dict = {}
        self._inputs: list = []
        self._output = None

    def __len__(self) -> int:
        return 0

    def __repr__(self) -> str:
        return f"<ardiff forward trace, level {self.level}>"

    def append(self, op: Any, args: tuple, kwargs: dict, parents: tuple, value: Any,
               name: str | None = None) -> ForwardNode:
        """The node of `op`'s answer `value`: its tangent, pushed from the parents'."""
        tangent = push_tangent(op, value, args, kwargs,
                               [(k, node.tangent) for k, node in parents])
        if op.view and parents:
            return ForwardNode(tangent, op, args, tuple((k, WeakParent(node))
                                                        for k, node in parents))
        return ForwardNode(tangent)

    def input(self, value: Any, tangent: Any = None, name: str | None = None) -> Dual:
        """A dual value: `value` with `tangent` (zeros when None)."""
        value = as_differentiable(value, where="ardiff.jvp")
        tangent = _zeros(value) if tangent is None else tangent
        return Dual(self, ForwardNode(tangent, "input", value=value), value)

    def constant(self, value: Any, name: str | None = None) -> Dual:
        """A dual value with a zero tangent (`np.zeros_like(x)` of a dual `x`)."""
        value = np.asarray(value) if not np.isscalar(value) else value
        return Dual(self, ForwardNode(_zeros(value), "constant"), value)

    def node_of(self, ref: Any) -> ForwardNode:
        """The `ForwardNode` of a dual value of this trace."""
        if not isinstance(ref, TracerBase) or ref._graph is not self:
            raise ValueError("not a dual value of this forward trace")
        return ref._node


class Dual(Tracer):
    """A value with its tangent, in forward mode; behaves like a NumPy array.

    Made by `jvp`, `make_jvp` and `jacfwd` for the function's arguments; every op on it
    returns another `Dual`.  `primal` and `tangent` read the two parts.
    """

    __slots__ = ()

    @property
    def primal(self) -> Any:
        """The value (a plain array, or a traced value of an enclosing transform)."""
        return self._value

    @property
    def tangent(self) -> Any:
        """The tangent: the derivative of this value along the input tangents."""
        return self._node.tangent

    def __repr__(self) -> str:
        return f"Dual({unwrap(self._value)!r}, tangent={unwrap(self._node.tangent)!r})"

    def copy(self) -> Dual:
        """A copy: a new array with the same tangent, writable even when this value is an
        argument of the function (`x = x.copy(); x[0] = v`, as NumPy allows)."""
        inner = self._value
        inner = inner.copy() if isinstance(inner, (np.ndarray, TracerBase)) else inner
        return Dual(self._graph, ForwardNode(self._node.tangent), inner)

    __pos__ = copy


ForwardTrace.tracer_class = Dual  # what Op boxes the answers of a forward trace in


def _zeros(value: Any) -> np.ndarray:
    inner = unwrap(value)
    dtype = np.result_type(inner)
    return np.zeros(np.shape(inner), dtype=dtype if dtype.kind in "fc" else np.float64)


def fit_tangent(tangent: Any, ans: Any) -> Any:
    """A tangent brought to its answer's shape (broadcast) and dtype.

    A complex tangent of a real answer keeps its real part (the real-linear
    differential of a real function: docs/complex.md); a float tangent is cast to the
    answer's precision.  An answer that is not a float or complex carries no tangent:
    zeros.  Traced tangents are fitted with the table's ops (differentiable again).

    Parameters
    ----------
    tangent : array_like
        The tangent a rule returned (plain or traced).
    ans : array_like
        The op's answer (plain or traced).

    Returns
    -------
    array_like
        The tangent shaped and typed like `ans`.
    """
    inner = unwrap(ans)
    shape, dtype = np.shape(inner), np.result_type(inner)
    if dtype.kind not in "fc":
        return np.zeros(shape, dtype=np.float64)
    traced = isinstance(tangent, TracerBase)
    if shape_of(tangent) != shape:
        tangent = OPS["broadcast_to"](tangent, shape) if traced else \
            np.broadcast_to(tangent, shape)
    inner = unwrap(tangent)
    if dtype.kind != "c" and np.iscomplexobj(inner):
        tangent = OPS["real"](tangent) if traced else np.real(tangent)
        inner = unwrap(tangent)
    if np.result_type(inner) != dtype:
        tangent = OPS["astype"](tangent, dtype) if traced else np.asarray(tangent, dtype=dtype)
    return tangent


def transposed_vjp(op: Op, argnum: int, t: Any, ans: Any, args: tuple, kwargs: dict) -> Any:
    """`J t` for argument `argnum` of `op` as the adjoint of its VJP (`TRANSPOSED_VJP`).

    The VJP `g -> g · J` is linear in `g`; one reverse pass through it (recorded on a
    small graph of the VJP's own ops, dropped afterwards) gives its adjoint at `t`.
    """
    local = op.local_vjp(argnum, ans, args, kwargs)
    inner = unwrap(ans)
    seed = np.zeros(np.shape(inner), dtype=np.result_type(inner, np.float32))
    adjoint, _ = make_vjp(local)(seed)
    return adjoint(t)


def push_tangent(op: Op, ans: Any, args: tuple, kwargs: dict, tangents: list) -> Any:
    """The tangent of `op`'s answer `ans` from `(argnum, tangent)` of its traced arguments.

    Parameters
    ----------
    op : Op
        The op that produced `ans`.
    ans : array_like
        Its answer.
    args : tuple
        Its positional arguments (primal values).
    kwargs : dict
        Its keyword arguments.
    tangents : list of (int, array_like)
        The tangent of every argument that has one.

    Returns
    -------
    array_like
        The answer's tangent, shaped and typed like `ans`.

    Raises
    ------
    ardiff.op.NoTangentRuleError
        When the op declares no tangent rule for one of the arguments.
    """
    if op.linear:  # the op applied to the tangents (zeros for the arguments without)
        new = list(args)
        for k in op.differentiable_positions(len(args)):
            new[k] = _zeros(args[k])
        for k, t in tangents:
            new[k] = t
        return fit_tangent(op(*new, **kwargs), ans)
    total = None
    for k, t in tangents:
        maker = op.jvp_maker(k)
        part = TRANSPOSED_VJP if maker is TRANSPOSED_VJP else maker(t, ans, *args, **kwargs)
        if part is TRANSPOSED_VJP:  # declared, or a rule deferring a case (complex input)
            part = transposed_vjp(op, k, t, ans, args, kwargs)
        total = part if total is None else total + part
    if total is None:
        return _zeros(ans)
    return fit_tangent(total, ans)


# -- the user API -------------------------------------------------------------------------
def _tangent_like(primal: Any, tangent: Any, where: str) -> Any:
    """`tangent` checked against its primal: the same shape, a compatible dtype."""
    if isinstance(tangent, TracerBase):
        t_inner = unwrap(tangent)
    else:
        tangent = t_inner = np.asarray(tangent)
    p_shape, t_shape = np.shape(unwrap(primal)), np.shape(t_inner)
    if p_shape != t_shape:
        raise ValueError(f"{where}: the tangent has shape {t_shape} but its primal has shape "
                         f"{p_shape}; give one tangent shaped like each primal.")
    p_dtype = np.result_type(unwrap(primal))
    if np.iscomplexobj(t_inner) and p_dtype.kind != "c":
        raise TypeError(f"{where}: a complex tangent for a real primal ({p_dtype}); a real "
                        "value only has real perturbations.")
    if isinstance(tangent, TracerBase):
        return tangent
    return np.asarray(tangent, dtype=p_dtype)


def _output(trace: ForwardTrace, out: Any) -> tuple[Any, Any]:
    """`(values, tangents)` of a function's output, both in its structure."""
    leaves, rebuild = flatten(out)
    values, tangents = [], []
    for leaf in leaves:
        if isinstance(leaf, Dual) and leaf._graph is trace:
            value, tangent = leaf._value, leaf._node.tangent
            if type(tangent) is np.ndarray and not tangent.flags.writeable:
                tangent = tangent.copy()  # a broadcast view: the caller gets an array
        else:  # the output does not depend on the primals
            value, tangent = leaf, _zeros(leaf)
        values.append(value)
        tangents.append(tangent)
    return rebuild(values), rebuild(tangents)


def jvp(fun: Callable, primals: tuple | list, tangents: tuple | list) -> tuple[Any, Any]:
    """Evaluate `fun(*primals)` and its Jacobian-vector product, in forward mode.

    JAX's `jax.jvp`: one evaluation of `fun` on dual values, each op pushing the tangent
    along as it runs; no graph is recorded, so memory does not grow with the number of
    ops (docs/forward-mode.md).

    Parameters
    ----------
    fun : callable
        A function of arrays, scalars or containers (tuples, lists, dicts) of them,
        written with NumPy (or `ardiff.numpy`), returning any such structure.
    primals : tuple or list
        The arguments of `fun`.
    tangents : tuple or list
        One tangent per argument, with the argument's structure, shapes and dtypes
        (a real argument takes a real tangent).

    Returns
    -------
    tuple
        `(fun(*primals), J · tangents)`, the second with the output's structure.

    Raises
    ------
    ardiff.op.NoTangentRuleError
        When `fun` reaches an op without a tangent rule (the message names it).

    Examples
    --------
    >>> import numpy as np, ardiff
    >>> value, tangent = ardiff.jvp(np.sin, (0.0,), (2.0,))
    >>> float(value), float(tangent)
    (0.0, 2.0)
    """
    if not isinstance(primals, (tuple, list)) or not isinstance(tangents, (tuple, list)):
        raise TypeError("ardiff.jvp: primals and tangents must be tuples (or lists) of the "
                        "function's arguments, e.g. jvp(f, (x,), (v,)).")
    if len(primals) != len(tangents):
        raise ValueError(f"ardiff.jvp: {len(primals)} primal(s) but {len(tangents)} "
                         "tangent(s); give one tangent per argument.")
    trace = ForwardTrace()
    args = []
    for a, (primal, tangent) in enumerate(zip(primals, tangents)):
        p_leaves, rebuild = flatten(primal)
        t_leaves, _ = flatten(tangent)
        if len(p_leaves) != len(t_leaves):
            raise ValueError(f"ardiff.jvp: argument {a} and its tangent have different "
                             "structures.")
        duals = []
        for p, t in zip(p_leaves, t_leaves):
            p = as_differentiable(p, where=f"ardiff.jvp (argument {a})")
            duals.append(trace.input(p, _tangent_like(p, t, f"ardiff.jvp (argument {a})")))
        args.append(rebuild(duals))
    return _output(trace, fun(*args))


def make_jvp(fun: Callable, argnum: Any = 0) -> Callable:
    """autograd's `make_jvp`: `make_jvp(fun)(*args)(v)` is `(fun(*args), J · v)`.

    Parameters
    ----------
    fun : callable
        As for `jvp`.
    argnum : int or tuple of int
        The argument the tangent belongs to; with a tuple, `v` is a tuple with one
        tangent per named argument.

    Returns
    -------
    callable
        `at(*args, **kwargs)`, returning `push(v) -> (value, tangent)`; each call of
        `push` evaluates `fun` once in forward mode.

    Examples
    --------
    >>> import numpy as np, ardiff
    >>> push = ardiff.make_jvp(lambda x: x ** 3)(2.0)
    >>> float(push(1.0)[1])
    12.0
    """
    several = isinstance(argnum, (tuple, list))
    nums = tuple(int(n) for n in argnum) if several else (int(argnum),)

    def at(*args: Any, **kwargs: Any) -> Callable:
        def push(v: Any) -> tuple[Any, Any]:
            vs = tuple(v) if several else (v,)
            if len(vs) != len(nums):
                raise ValueError(f"make_jvp: {len(nums)} argument(s) differentiated but "
                                 f"{len(vs)} tangent(s) given.")

            def partial(*chosen):
                full = list(args)
                for n, c in zip(nums, chosen):
                    full[n] = c
                return fun(*full, **kwargs)

            return jvp(partial, tuple(args[n] for n in nums), vs)
        return push

    return at


def jacfwd(fun: Callable, argnum: Any = 0) -> Callable:
    """The Jacobian of `fun` with respect to `args[argnum]`, one forward pass per input
    element (JAX's `jacfwd`; cheaper than `ardiff.jacobian` when the output is larger
    than the input).

    Parameters
    ----------
    fun : callable
        Returns an array or scalar.
    argnum : int or tuple of int
        The differentiated argument (an array, a scalar, or a container of them), or a
        tuple of them, as for `ardiff.jacobian`.

    Returns
    -------
    callable
        `jac(*args, **kwargs)` returning, for each array of the argument, an array of
        shape `out.shape + x.shape`, in the argument's structure (a tuple of them for a
        tuple `argnum`).  For a complex argument the columns are the derivatives along
        real perturbations (the complex derivative when `fun` is holomorphic).

    Examples
    --------
    >>> import numpy as np, ardiff
    >>> ardiff.jacfwd(lambda x: x ** 2)(np.array([1.0, 3.0]))
    array([[2., 0.],
           [0., 6.]])
    """
    several = isinstance(argnum, (tuple, list))
    nums = tuple(int(n) for n in argnum) if several else (int(argnum),)

    def jac(*args: Any, **kwargs: Any) -> Any:
        leaves, rebuild = flatten(tuple(args[n] for n in nums))
        leaves = [as_differentiable(leaf, where="ardiff.jacfwd") for leaf in leaves]

        def along(*values):
            full = list(args)
            for n, part in zip(nums, rebuild(list(values))):
                full[n] = part
            return fun(*full, **kwargs)

        zeros = [_zeros(leaf) for leaf in leaves]
        out_shape = None
        columns = []
        for j, leaf in enumerate(leaves):
            shape = np.shape(unwrap(leaf))
            mine = []
            for i in range(int(np.prod(shape, dtype=np.int64))):
                basis = np.zeros(zeros[j].size, dtype=zeros[j].dtype)
                basis[i] = 1.0
                tangents = list(zeros)
                tangents[j] = basis.reshape(shape)
                value, tangent = jvp(along, tuple(leaves), tuple(tangents))
                out_shape = np.shape(unwrap(value))
                mine.append(tangent)
            columns.append((mine, shape))
        if out_shape is None:  # every argument is empty: one call for the output's shape
            out_shape = np.shape(unwrap(along(*leaves)))
        blocks = []
        for mine, shape in columns:
            if not mine:
                blocks.append(np.zeros(out_shape + shape))
            elif any(isinstance(c, TracerBase) for c in mine):  # inside another transform
                blocks.append(anp.reshape(anp.stack(mine, axis=-1), out_shape + shape))
            else:
                blocks.append(np.stack([np.asarray(c) for c in mine], axis=-1)
                              .reshape(out_shape + shape))
        packed = rebuild(blocks)
        return packed if several else packed[0]

    return jac
