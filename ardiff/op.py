"""Elementary ops and the op table: everything ardiff knows about an operation.

An op is declared by ONE call of `defop`, which gives

* the NumPy forward (called on plain values);
* one VJP maker per argument, `maker(ans, *args, **kwargs) -> (g -> g · ∂ans/∂arg)`,
  written with ardiff's own ops so that VJPs can be differentiated again; the makers
  `Scale` (an elementwise derivative) and `PASS_THROUGH` / `NEGATED`
  also tell the code generator (`ardiff.codegen`) how to write the VJP inline;
* the sparse-Jacobian family the exact triangular solver assembles it with
  (`ardiff.ops.jacobians`; without one the solver falls back to one VJP per output
  element);
* `infix` for binary arithmetic that has a Python operator: the forward then uses
  the operator where it is bitwise the same computation, and generated code writes it;
* `nonlinear` for the ops the `ardiff.rules.NoDerivative` rule passes through;
* the tangent rule of forward mode (`ardiff.forward`), next to the VJPs: given with
  `jvp=`, or derived from what the declaration already says (`Scale(f)` gives
  `t -> t * f(ans, *args)`, `PASS_THROUGH` gives `t`, `NEGATED` gives `-t`; `linear=True`
  and `multilinear=True` say the op is its own tangent map).  An op without one raises
  `NoTangentRuleError` naming it when forward mode reaches it.

Broadcasting is undone in one place, `Op.local_vjp`: a VJP maker returns
values shaped like the answer, and the op sums them down to its argument's shape.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable
from typing import Any

import numpy as np

from .graph import NO_KWARGS, Graph, Released, TracerBase, unwrap

__all__ = ["OPS", "OPERATOR_TYPES", "scale_by", "Scale", "Fixed", "PASS_THROUGH", "NEGATED",
           "TRANSPOSED_VJP", "NoTangentRuleError",
           "Op", "defop", "RELEASE_MIN_BYTES", "shape_of", "unbroadcast", "argument_fit",
           "fit_to_argument", "real_gradient"]

#: The op table: name -> `Op`.  Filled by `defop`.
OPS: dict[str, Op] = {}

#: Operand types for which a Python operator is the same computation as the ufunc.
OPERATOR_TYPES = frozenset((np.float64, np.ndarray, float, int, np.float32))
_INFIX = {"+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv}


# -- VJP makers the code generator can read ---------------------------------------------
def scale_by(factor):
    """A VJP multiplying the incoming activity by a precomputed local derivative."""
    return lambda g: g * factor


class Scale:
    """The VJP maker of an elementwise derivative: `g -> g * factor(ans, *args)`.

    The same as `lambda ans, *args: scale_by(factor(ans, *args))`, but keeps
    `factor` visible so that generated code can write `g * factor(...)` inline
    instead of building and calling a closure per edge.
    """

    __slots__ = ("factor",)

    def __init__(self, factor: Callable):
        self.factor = factor

    def __call__(self, ans, *args, **kwargs):
        factor = self.factor(ans, *args, **kwargs)
        return lambda g: g * factor  # scale_by, inlined: this runs once per edge


class Fixed:
    """A VJP maker whose VJP does not depend on the recorded point.

    `template` is the VJP as source text around `{}` (the activity), for
    generated code.
    """

    __slots__ = ("vjp", "template")

    def __init__(self, vjp: Callable, template: str):
        self.vjp, self.template = vjp, template

    def __call__(self, ans, *args, **kwargs):
        return self.vjp


def _identity(g):
    return g


def _negate(g):
    return -g


#: The VJP of an argument passed on unchanged (`g -> g`).
PASS_THROUGH = Fixed(_identity, "{}")
#: The VJP of a negated argument (`g -> -g`).
NEGATED = Fixed(_negate, "-{}")


class NoTangentRuleError(NotImplementedError):
    """Forward mode reached an op that declares no tangent rule for an argument."""


class _TransposedVJP:
    """The tangent rule "the adjoint of this op's VJP" (see `TRANSPOSED_VJP`)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "TRANSPOSED_VJP"


#: A tangent rule declaring that `t -> J t` is the adjoint of the op's own VJP at the
#: point, computed by one reverse pass through that VJP (a graph of the VJP's few ops,
#: built and dropped per call: nothing of the program is kept).  For ops whose
#: closed-form tangent is long (the decompositions); exact, but costlier than a
#: written rule.  `ardiff.forward` resolves it.
TRANSPOSED_VJP = _TransposedVJP()


def _tangent_identity(t, ans, *args, **kwargs):
    return t


def _tangent_negated(t, ans, *args, **kwargs):
    return -t


#: A lean recording (`Graph.lean`) releases answers of at least this many bytes that no
#: VJP reads; smaller ones cost more to release than they free.  (The test suite sets
#: it to 0, so that every declaration is exercised.)
RELEASE_MIN_BYTES = 4096


def _normalize_reads(name: str, reads, vjps: tuple, vjp) -> tuple | None:
    """`Op.reads`: one tuple per argument of what its VJP reads ("ans", argument
    positions), or None for an argument whose reads are unknown."""
    if reads is None:
        if vjp is not None:
            return None
        return tuple(() if isinstance(maker, Fixed) else None for maker in vjps)
    if callable(reads):  # variadic ops: reads(k, n) for argument k of n
        return reads
    reads = tuple(reads)
    if reads and (isinstance(reads[0], (str, int))):
        reads = (reads,)  # one argument's reads, given flat
    normalized = []
    for read in reads:
        read = tuple(read) if read is not None else None
        if read is not None and not all(r == "ans" or (type(r) is int and r >= 0)
                                        for r in read):
            raise ValueError(f"defop({name!r}): reads={reads!r}: each entry lists 'ans' "
                             "and argument positions (non-negative ints).")
        normalized.append(read)
    return tuple(normalized)


# -- the op --------------------------------------------------------------------------------
class Op:
    """An elementary operation: a NumPy forward plus one local VJP per argument.

    Create ops with `defop`, which also enters them in `OPS`.

    Parameters
    ----------
    name : str
        Name in the op table.
    fwd : callable
        The NumPy implementation, called on plain values.
    vjps : sequence of callables or None
        `vjps[k](ans, *args, **kwargs)` returns a function `g -> g · ∂ans/∂args[k]`
        shaped like the answer.  The outer call happens once per node (a good place
        to precompute local derivatives); the returned function is what relaxation
        iterates.  `None` marks an argument that carries no gradient.
    vjp : callable, optional
        For variadic ops: `vjp(k, ans, *args, **kwargs)` instead of `vjps`.
    jac : object, optional
        The sparse-Jacobian family (see `ardiff.ops.jacobians`): an object with
        `matrix(op, k, ans, args, kwargs)` and `nnz(op, k, ans, args, kwargs)`,
        or a plain function `jac(k, ans, *args, **kwargs)` returning a scipy sparse
        matrix of shape `(ans.size, args[k].size)`.
    nonlinear : bool
        Whether the op is a nonlinearity (for
        [`ardiff.rules.NoDerivative`][ardiff.rules.NoDerivative]).
    infix : str or None
        The Python operator (`"+"`, `"-"`, `"*"` or `"/"`) of a binary arithmetic op
        (see `defop`).
    reads : sequence or None
        Per argument, what its VJP maker reads of the recorded point (see `defop`);
        None where unknown.  Inferred as nothing for `Fixed` makers.
    view : bool
        Whether NumPy's result may be a view of the first argument (see `defop`).
    jvp : sequence, callable or None
        The tangent rules of forward mode (see `defop`).
    linear, multilinear : bool
        Whether the op is linear in its differentiable arguments together, or in each
        one separately (see `defop`).
    scalar : tuple or None
        The op's scalar form for generated code on Python floats (see `defop`).
    """

    def __init__(self, name: str, fwd: Callable, vjps=(), *, vjp=None, jac=None,
                 nonlinear: bool = False, infix: str | None = None, reads=None,
                 view: bool = False, jvp=None, linear: bool = False,
                 multilinear: bool = False, scalar: tuple | None = None):
        self.name = name
        self.fwd = fwd if infix is None else _via_operator(fwd, _INFIX[infix])
        self.vjps = tuple(vjps)
        self.vjp = vjp
        self.jac = jac
        self.nonlinear = nonlinear
        self.infix = infix
        self.reads = _normalize_reads(name, reads, self.vjps, vjp)
        self.view = view
        self.jvps = jvp
        self.linear = linear
        self.multilinear = multilinear
        self.scalar = scalar
        self._needed: dict = {}  # traced argument positions -> what their VJPs read
        self.__name__ = name
        self.__doc__ = f"Traced `{name}` (see the op table, docs/ops.md)."

    def __repr__(self) -> str:
        return f"<ardiff op {self.name}>"

    def __call__(self, *args, **kwargs):
        # One pass for the common case (all traced arguments from the same graph);
        # anything else (several nesting levels) goes to the general path.
        graph = None
        parents = []
        for i, a in enumerate(args):
            if isinstance(a, TracerBase):
                if graph is None:
                    graph = a._graph
                elif a._graph is not graph:
                    return self._call_nested(args, kwargs)
                parents.append((i, a._node))
        if graph is None:
            return self.fwd(*args, **kwargs)
        raw = list(args)
        for i, _ in parents:
            value = raw[i] = raw[i]._value
            if isinstance(value, TracerBase):  # a lower-level graph inside: record there too
                return self._call_nested(args, kwargs)
        try:
            value = self.fwd(*raw, **kwargs)
        except (ValueError, IndexError) as exc:
            raise _recording_error(self, graph, raw, exc) from exc
        kept = value
        if graph.lean and self.reads is not None:
            kept = self.release_unread(graph, raw, parents, value)
        node = graph.append(self, tuple(raw), kwargs or NO_KWARGS, tuple(parents), kept)
        out = graph.tracer_class(graph, node.index, value)
        if self.view:
            _note_view(graph, args[parents[0][0]], out)
        return out

    def release_unread(self, graph: Graph, raw: list, parents: list, value: Any) -> Any:
        """The value a lean graph keeps for a new node; unread arguments released in `raw`.

        Only the VJPs of the traced arguments will ever be staged, so what they read
        (`self.reads`) is all the node must keep: an argument nobody reads is replaced
        by its parent's `Released` stand-in (when the parent did not keep its own
        value either; otherwise nothing would be freed), and the answer is released
        when no VJP reads it and it is an array of at least `RELEASE_MIN_BYTES`.
        """
        # the traced positions as the cache key: an int for one (the usual case)
        traced = parents[0][0] if len(parents) == 1 else tuple([k for k, _ in parents])
        if callable(self.reads):  # variadic: the arity is part of the pattern
            traced = (len(raw), traced)
        needed = self._needed.get(traced, False)
        if needed is False:  # first time with these traced arguments: union their reads
            read = [self.reads_of(k, len(raw)) for k, _ in parents]
            needed = None if None in read else frozenset(r for one in read for r in one)
            self._needed[traced] = needed  # None: unknown, keep everything
        if needed is None:
            return value
        nodes = graph.nodes
        for k, p in parents:
            if k not in needed:
                stand_in = nodes[p].value
                if type(stand_in) is Released:
                    raw[k] = stand_in
        if "ans" in needed or type(value) is not np.ndarray or \
                value.nbytes < RELEASE_MIN_BYTES:
            return value
        return Released(value, len(nodes), self.name)

    def reads_of(self, argnum: int, nargs: int) -> tuple | None:
        """What the VJP of argument `argnum` (of `nargs`) reads: `"ans"` and argument
        positions, or None when unknown (see `defop`'s `reads=`)."""
        reads = self.reads
        if reads is None:
            return None
        if callable(reads):
            return tuple(reads(argnum, nargs))
        return reads[argnum] if argnum < len(reads) else None

    def _call_nested(self, args, kwargs):
        """Record on the highest-level graph, then again on the lower ones inside."""
        graph = None
        for a in args:
            if isinstance(a, TracerBase) and (graph is None or a._graph.level > graph.level):
                graph = a._graph
        raw = list(args)
        parents = []
        for i, a in enumerate(args):
            if isinstance(a, TracerBase) and a._graph is graph:
                parents.append((i, a._node))
                raw[i] = a._value
        value = self(*raw, **kwargs)  # lower-level tracers inside: records there too
        node = graph.append(self, tuple(raw), kwargs or NO_KWARGS, tuple(parents), value)
        out = graph.tracer_class(graph, node.index, value)
        if self.view and parents:
            _note_view(graph, args[parents[0][0]], out)
        return out

    # -- derivatives ---------------------------------------------------------------------
    def vjp_maker(self, argnum: int) -> Callable:
        """The VJP rule of argument `argnum`, as declared: `maker(ans, *args, **kwargs)`
        returns `g -> g · ∂ans/∂args[argnum]` shaped like `ans`.

        A `Scale` or `Fixed` maker is returned as itself (generated code writes those
        inline); a variadic op's `vjp` comes bound to the position.  `local_vjp` stages
        it at a recorded point and `apply_vjp` applies it once, both shaped like the
        argument (broadcasting undone): every solver, the Jacobian families and
        generated code start from this one lookup.
        """
        if self.vjp is not None:
            return functools.partial(self.vjp, argnum)
        maker = self.vjps[argnum] if argnum < len(self.vjps) else None
        if maker is None:
            raise TypeError(
                f"ardiff op '{self.name}' has no derivative with respect to argument "
                f"{argnum}; pass that argument as a plain (untraced) value.")
        return maker

    def local_vjp(self, argnum: int, ans, args, kwargs) -> Callable:
        """The staged VJP of argument `argnum` at a recorded point, shaped like it."""
        inner = self.vjp_maker(argnum)(ans, *args, **kwargs)
        fit = argument_fit(args[argnum], ans)
        if fit is None:  # VJPs come out shaped like the answer: nothing to undo
            return inner
        shape, dtype = fit
        return lambda g: fit_to_argument(inner(g), shape, dtype)

    def apply_vjp(self, argnum: int, ans, args, kwargs, g) -> Any:
        """`local_vjp(argnum, ans, args, kwargs)(g)`, without building the closure.

        What a one-sweep solve does with each edge (stage it, apply it once): `Fixed`
        and `Scale` makers are applied directly, the same operations their closures
        run, so the result is the same.
        """
        maker = self.vjp_maker(argnum)
        kind = type(maker)
        if kind is Scale:
            out = g * maker.factor(ans, *args, **kwargs)
        elif kind is Fixed:
            out = maker.vjp(g)
        else:
            out = maker(ans, *args, **kwargs)(g)
        fit = argument_fit(args[argnum], ans)
        return out if fit is None else fit_to_argument(out, *fit)

    # -- forward mode ------------------------------------------------------------------
    def jvp_maker(self, argnum: int) -> Callable:
        """The tangent rule of argument `argnum`: `maker(t, ans, *args, **kwargs)`.

        It returns the tangent of the answer for a tangent `t` of `args[argnum]` (shaped
        like the answer or broadcastable to it; `ardiff.forward.fit_tangent`
        finishes it), or is
        `TRANSPOSED_VJP`.  Declared with `defop(..., jvp=...)`, or derived from the
        declaration: `multilinear` ops apply themselves with `t` in place of the
        argument, `Scale(f)` gives `t * f(ans, *args)`, `PASS_THROUGH` gives `t` and
        `NEGATED` gives `-t`.  (A `linear` op's tangent is the op applied to all the
        tangents at once: `ardiff.forward` handles it without makers.)

        Raises
        ------
        NoTangentRuleError
            When the op declares no rule for that argument.
        """
        rules = self.jvps
        if rules is TRANSPOSED_VJP:
            return TRANSPOSED_VJP
        if callable(rules):  # variadic form jvp(k, t, ans, *args, **kwargs)
            return lambda t, ans, *args, **kwargs: rules(argnum, t, ans, *args, **kwargs)
        if rules is not None and argnum < len(rules) and rules[argnum] is not None:
            return rules[argnum]
        if self.multilinear:
            return lambda t, ans, *args, **kwargs: self(*args[:argnum], t,
                                                        *args[argnum + 1:], **kwargs)
        maker = self.vjps[argnum] if self.vjp is None and argnum < len(self.vjps) else None
        if type(maker) is Scale:
            factor = maker.factor
            return lambda t, ans, *args, **kwargs: t * factor(ans, *args, **kwargs)
        if maker is PASS_THROUGH:
            return _tangent_identity
        if maker is NEGATED:
            return _tangent_negated
        raise NoTangentRuleError(
            f"ardiff op '{self.name}' has no tangent rule (forward mode) for argument "
            f"{argnum}. Give one where the op is declared (defop(..., jvp=...)), or for a "
            "user primitive with ardiff.extend.defjvp; reverse mode (ardiff.grad) works "
            "without it.")

    def differentiable_positions(self, nargs: int) -> tuple:
        """The positions of the arguments that carry derivatives (of `nargs` given)."""
        if self.vjp is not None:
            return tuple(range(nargs))
        return tuple(k for k in range(min(nargs, len(self.vjps))) if self.vjps[k] is not None)

    def jacobian(self, argnum: int, ans, args, kwargs):
        """`∂ans/∂args[argnum]` as a scipy sparse matrix, or None without a family.

        None also when the family declines this call (an unexpected layout); the
        triangular solver then builds the matrix from VJPs of unit vectors.
        """
        if self.jac is None:
            return None
        try:
            if hasattr(self.jac, "matrix"):
                return self.jac.matrix(self, argnum, ans, args, kwargs)
            return self.jac(argnum, ans, *args, **kwargs)
        except NotImplementedError:
            return None

    def jacobian_nnz(self, argnum: int, ans, args, kwargs) -> int:
        """An upper bound on the stored entries of `jacobian`, without building it."""
        dense = int(np.size(unwrap(ans))) * int(np.size(unwrap(args[argnum])))
        if self.jac is None or not hasattr(self.jac, "nnz"):
            return dense
        try:
            return int(self.jac.nnz(self, argnum, ans, args, kwargs))
        except NotImplementedError:
            return dense


def defop(name: str, fwd: Callable, *vjps, vjp: Callable | None = None, jac: Any = None,
          nonlinear: bool = False, infix: str | None = None, reads: Any = None,
          view: bool = False, jvp: Any = None, linear: bool = False,
          multilinear: bool = False, scalar: tuple | None = None) -> Op:
    """Declare an elementary op and enter it in the table `OPS`: the one way to add an op.

    Everything ardiff knows about the op is given here; the tracer, every solver,
    second-order differentiation, graph import/export and [`ardiff.compile`][ardiff.compile] read it
    from the returned `Op`.

    Parameters
    ----------
    name : str
        Unique name in the table (used by graph import/export and error messages).
    fwd : callable
        NumPy forward on plain values.
    *vjps : callable or None
        One VJP maker per positional argument, `maker(ans, *args, **kwargs)`
        returning `g -> g · ∂ans/∂arg` shaped like `ans` (see `Op`); `None` for an
        argument without a gradient.  Write the VJP with ardiff's own ops so that it
        can be differentiated again.  `Scale(factor)` declares an elementwise
        derivative `g -> g * factor(ans, *args)`, and `PASS_THROUGH` / `NEGATED` the
        VJPs `g -> g` / `g -> -g`: `ardiff.compile` writes these inline in its
        generated code instead of calling a closure.
    vjp : callable, optional
        Variadic form `vjp(k, ans, *args, **kwargs)`, instead of `*vjps`.
    jac : object, optional
        The op's sparse-Jacobian family from `ardiff.ops.jacobians` (e.g.
        `ELEMENTWISE`, `Reduction()`), with which the exact triangular solver
        assembles it.  Without one that solver builds the Jacobian from one VJP
        per output element (fine for small ops).
    nonlinear : bool
        Mark a nonlinearity (passed through by
        [`ardiff.rules.NoDerivative`][ardiff.rules.NoDerivative]).
    infix : str or None
        `"+"`, `"-"`, `"*"` or `"/"`, for binary arithmetic: where both operands are
        float64 scalars or arrays the forward calls the Python operator, NumPy's
        scalar fast path (about ten times cheaper than a ufunc call on scalars,
        bitwise the same result), and generated code writes the operator.
    reads : sequence, optional
        What each argument's VJP maker reads of the recorded point, one tuple per
        positional argument: `"ans"` for the answer, `k` for argument k (shapes and
        dtypes are always kept, so a VJP that only undoes broadcasting reads
        nothing).  For a unary op a flat tuple, e.g. `reads=("ans",)` for tanh; for a
        variadic op a function `reads(k, n)` of the position and the number of
        arguments (`lambda k, n: ()` for concatenate).  A
        lean recording (one-sweep gradients) keeps only these values and frees the
        rest as the program drops them, as a hand-written backward pass would.
        Default: `()` for `PASS_THROUGH`/`NEGATED`-style (`Fixed`) makers, unknown
        (everything kept) otherwise.  A VJP reading a value left out raises
        `ardiff.graph.ReleasedValueError` naming the node.
    view : bool
        Whether NumPy's result may be a view of the first argument (reshape,
        transpose, basic indexing): such results are noted in the graph
        (`Graph.record_view`), so that an in-place update (`x += v`) can tell whether
        another live array shares the memory it would write.
    jvp : sequence or callable, optional
        The tangent rules of forward mode (`ardiff.jvp`), one per positional argument:
        `maker(t, ans, *args, **kwargs)` returns the answer's tangent for a tangent `t`
        of that argument (shaped like the answer, or broadcastable to it; a complex
        tangent of a real answer is reduced to its real part), written with ardiff's
        ops; `None` where the rule is derived.  For a variadic op a function
        `jvp(k, t, ans, *args, **kwargs)`.  `TRANSPOSED_VJP` (for one argument, or
        for all of them) computes the tangent as the adjoint of the op's VJP; a rule
        may also return it, to leave a case it does not cover (complex input) to that.  Derived
        without `jvp=`: from `Scale(f)` (`t * f(ans, *args)`), `PASS_THROUGH` (`t`)
        and `NEGATED` (`-t`), and from `linear` / `multilinear`.
    linear : bool
        The op is linear in its differentiable arguments taken together (reshape, sum,
        getitem, concatenate, fft, ...): its tangent is the op applied to their
        tangents (zeros for the arguments that have none), the other arguments kept.
    multilinear : bool
        The op is linear in each differentiable argument separately (matmul, einsum,
        tensordot, convolutions): the tangent for argument k is the op with `t` in
        place of argument k, summed over the arguments that have tangents.
    scalar : tuple, optional
        The op on Python floats, for `ardiff.compile`'s scalar programs: `(forward,
        factors)`, source text with `{0}`, `{1}` for the arguments and `{ans}` for the
        answer; `factors` gives, per argument, the expression its `Scale` maker
        computes, operation for operation (so that generated code gives the same bits),
        or None where every VJP is `PASS_THROUGH` / `NEGATED`.  Function names are
        NumPy's (generated code binds them to `math` where that gives NumPy's bits).
        Write it next to the VJP it restates: tests/test_compile.py checks the two
        agree bit for bit.

    Returns
    -------
    Op
        The op, callable on plain or traced values.

    Examples
    --------
    >>> import numpy as np, ardiff
    >>> from ardiff.op import Scale, defop
    >>> cube = defop("cube_example", lambda x: x ** 3, Scale(lambda ans, x: 3.0 * x * x))
    >>> float(ardiff.grad(cube)(2.0))
    12.0
    """
    if name in OPS:
        raise ValueError(f"op {name!r} is defined twice")
    if infix is not None and infix not in _INFIX:
        raise ValueError(f"defop({name!r}): infix={infix!r} is not one of {sorted(_INFIX)}.")
    if jvp is not None and not callable(jvp) and jvp is not TRANSPOSED_VJP:
        jvp = tuple(jvp)
    op = Op(name, fwd, vjps, vjp=vjp, jac=jac, nonlinear=nonlinear, infix=infix, reads=reads,
            view=view, jvp=jvp, linear=linear, multilinear=multilinear, scalar=scalar)
    OPS[name] = op
    return op


def _note_view(graph: Graph, base: Any, out: TracerBase) -> None:
    """Note `out` in `graph` as a view of the traced `base` when NumPy made it one."""
    inner = unwrap(out)
    if type(inner) is np.ndarray and inner.base is not None:
        graph.record_view(base, out)


def _via_operator(ufunc: Callable, function: Callable) -> Callable:
    """`ufunc(x, y)`, through the Python operator when that is the same computation.

    Bitwise identical values and result types for these operand types (checked on
    NumPy 1.26 and 2.x by tests/test_ops_fast_paths.py); everything else calls the ufunc.
    """
    def fwd(x, y, **kwargs):
        tx, ty = type(x), type(y)
        if (not kwargs and tx in OPERATOR_TYPES and ty in OPERATOR_TYPES
                and (tx is np.float64 or ty is np.float64 or tx is np.ndarray
                     or ty is np.ndarray)):
            return function(x, y)
        return ufunc(x, y, **kwargs)

    fwd.__name__ = fwd.__qualname__ = getattr(ufunc, "__name__", "fwd")
    return fwd


# -- broadcasting, undone once -------------------------------------------------------------
def shape_of(x: Any) -> tuple:
    """Shape of a possibly traced value."""
    return np.shape(unwrap(x))


def unbroadcast(grad: Any, shape: tuple) -> Any:
    """Sum `grad` down to `shape`: the one place broadcasting is undone.

    Broadcasting copies an argument along new leading axes and along axes of
    length one; the adjoint of a copy is a sum over the copies.  Written with the
    table's `sum` and `broadcast_to` so that it is traced at higher order.
    """
    gshape = shape_of(grad)
    if gshape == shape:
        return grad
    extra = len(gshape) - len(shape)
    if extra > 0:
        grad = OPS["sum"](grad, axis=tuple(range(extra)))
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and shape_of(grad)[i] != 1)
    if axes:
        grad = OPS["sum"](grad, axis=axes, keepdims=True)
    if shape_of(grad) != shape:
        grad = OPS["broadcast_to"](grad, shape)
    return grad


def _shape_and_dtype(value: Any) -> tuple:
    try:  # arrays and NumPy scalars: attribute access is much cheaper than np.shape
        return value.shape, value.dtype
    except AttributeError:
        return np.shape(value), np.result_type(value)


def argument_fit(arg: Any, ans: Any) -> tuple | None:
    """`(shape, dtype)` of `arg` when a VJP from `ans` must be fitted to it, else None."""
    if type(arg) is np.ndarray and type(ans) is np.ndarray:  # the common case, first
        if arg.shape == ans.shape and arg.dtype == ans.dtype:
            return None
        return arg.shape, arg.dtype
    while isinstance(arg, TracerBase):
        arg = arg._value
    while isinstance(ans, TracerBase):
        ans = ans._value
    if type(arg) is np.float64 and type(ans) is np.float64:  # scalar graphs
        return None
    try:  # the common case, checked without building tuples (this runs once per edge)
        if arg.shape == ans.shape and arg.dtype == ans.dtype:
            return None
    except AttributeError:
        pass
    fit = _shape_and_dtype(arg)
    return None if _shape_and_dtype(ans) == fit else fit


def real_gradient(grad: Any, dtype) -> Any:
    """The gradient reaching a value of `dtype`: its real part when that value is real.

    Under ardiff's complex convention (docs/complex.md) a VJP is the adjoint for the
    pairing Re(sum(a * b)); a real value's perturbations are real, so only the real
    part of the gradient reaching it is meaningful (the imaginary part would pair with
    an imaginary perturbation it cannot have).  The one place this projection is made:
    `fit_to_argument` applies it to every local VJP, so every solver (relaxation,
    backprop, triangular, compiled replays) sees real activities at real nodes.  A
    traced gradient is projected with the table's `real` op (differentiable again).

    Parameters
    ----------
    grad : array_like
        A gradient (plain or traced).
    dtype : numpy dtype
        The dtype of the value the gradient is for.

    Returns
    -------
    array_like
        `grad` unchanged unless it is complex and `dtype` is not; then its real part.
    """
    if np.dtype(dtype).kind == "c" or not np.iscomplexobj(unwrap(grad)):
        return grad
    if isinstance(grad, TracerBase):
        return OPS["real"](grad)
    return np.real(grad)


def fit_to_argument(out: Any, shape: tuple, dtype) -> Any:
    """A VJP's output brought to its argument's shape (undoing broadcasting) and dtype
    (a complex gradient of a real argument becomes its real part: `real_gradient`)."""
    if type(out) is np.ndarray and out.dtype == dtype and out.shape == shape:
        return out  # already fitted (a VJP shaped like its argument, as matmul's)
    if shape_of(out) != shape:
        out = unbroadcast(out, shape)
    out = real_gradient(out, dtype)
    if isinstance(out, (np.ndarray, np.generic)) and out.dtype != dtype:
        out = out.astype(dtype)
    return out


def _recording_error(op: Op, graph: Graph, raw: list, exc: Exception) -> Exception:
    """`exc` (same type) naming the op, the node it would have been, and the arguments."""
    described = ", ".join(str(np.shape(v)) if isinstance(v, (np.ndarray, np.generic)) else
                          type(v).__name__ for v in map(unwrap, raw))
    detail = str(exc).strip()
    message = (f"ardiff op '{op.name}' failed while recording node {len(graph.nodes)} from "
               f"arguments ({described}): {detail}{'' if detail.endswith('.') else '.'} Check "
               "the arguments of this call (shapes, axes, indices or values); nothing was "
               "recorded.")
    try:
        return type(exc)(message)
    except Exception:  # an exception type with another constructor: keep it as it is
        return exc
