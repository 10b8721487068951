"""The user API, shaped like HIPS autograd: grad, value_and_grad, elementwise_grad,
jacobian, hessian, make_vjp, and trace.

Every function takes `argnum` (an int or a tuple of ints) and solver options:
`method="relax"` (default; sequential schedule, eta 1, which is exact in one
sweep), `"backprop"` or `"triangular"`, plus the keywords of `ardiff.relax`
(`eta`, `schedule`, `init`, `tol`, `max_iter`, `record`, `rules`, `preset`).
Options are validated when the transform is made (`SolverOptions.from_keywords`:
explicit keywords win over the preset).

All transforms share one scaffold (`_transform`): trace the call once with the
cyclic garbage collector paused (`ardiff.recorder.TracedCall`), solve the recorded
graph for one or more seeds, and pack the gradients into the arguments' structure.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np

from . import numpy as anp
from .graph import unwrap
from .recorder import TracedCall, gc_paused, normalize_argnums, trace
from .solvers import SolverOptions, compile_plan, solve_plan
from .solvers.reverse import sweep_gradients
from .tracer import Tracer
from .tree import flatten

__all__ = ["grad", "holomorphic_grad", "value_and_grad", "elementwise_grad", "jacobian",
           "hessian", "make_vjp", "vjp", "trace", "gc_paused", "hessian_tensor_product",
           "hessian_vector_product",
           "make_hvp", "tensor_jacobian_product", "vector_jacobian_product", "make_ggnvp",
           "grad_and_aux", "deriv"]


def _transform(fun: Callable, argnum: Any, options: dict,
               body: Callable[[TracedCall, SolverOptions], Any]) -> Callable:
    """The scaffold of every transform: options checked now, one traced call per call.

    `body(call, options)` turns the traced call into the transform's result.
    """
    solver_options = SolverOptions.from_keywords(**options)
    # a one-sweep solve only stages local VJPs: the recording may keep just what they read
    lean = solver_options.one_sweep and not solver_options.rules

    @functools.wraps(fun)
    def wrapped(*args, **kwargs):
        with gc_paused():
            return body(TracedCall(fun, argnum, args, kwargs, lean=lean), solver_options)

    return wrapped


def _gradients(call: TracedCall, out: Tracer | None, seeds: list,
               options: SolverOptions) -> list[list]:
    """The flat input gradients for each seed; the graph is pruned (and staged) once."""
    if out is None:
        return [call.zeros() for _ in seeds]
    # one seed: stage each VJP during the solve (cheaper); several: stage once for all
    plan = compile_plan(call.graph, out, call.inputs, options.rules, stage=len(seeds) > 1)
    if options.one_sweep:  # the gradients alone: no Result, same bits
        return [sweep_gradients(plan, seed) for seed in seeds]
    return [solve_plan(plan, seed, options).grads for seed in seeds]


def value_and_grad(fun: Callable, argnum: Any = 0, **options: Any) -> Callable:
    """Return a function computing `(fun(*args), gradient of fun w.r.t. args[argnum])`.

    A function whose output does not depend on an argument has gradient zero.

    Parameters
    ----------
    fun : callable
        Returns a scalar.
    argnum : int or tuple of int, optional
        As for `grad`.
    **options
        As for `grad`.

    Returns
    -------
    callable
        `(*args, **kwargs) -> (value, gradient)`.
    """
    def body(call: TracedCall, opts: SolverOptions):
        out = call.output_tracer("grad", scalar=True)
        (flat,) = _gradients(call, out, [None], opts)
        return call.value(), call.pack(flat)

    return _transform(fun, argnum, options, body)


def grad(fun: Callable, argnum: Any = 0, **options: Any) -> Callable:
    """Return a function computing the gradient of scalar `fun` w.r.t. `args[argnum]`.

    Parameters
    ----------
    fun : callable
        Returns a scalar.
    argnum : int or tuple of int
        The differentiated positional argument(s); with a tuple the result is a tuple.
        An argument may be a container (tuple, list, dict) of arrays or scalars: its
        gradient has the same structure.  A Python list is such a container of
        scalars; pass `np.asarray(...)` to differentiate it as an array.
    **options
        Solver options: `method`, `eta`, `schedule`, `init`, `tol`, `max_iter`,
        `record`, `rules`, `preset` (see [`ardiff.relax`][ardiff.relax]).  Explicit options win over
        the preset's.  `preset="paper"` reproduces the paper's truncated relaxation
        and is approximate by design.

    Returns
    -------
    callable
        `(*args, **kwargs) -> gradient`, shaped like the differentiated argument.

    Examples
    --------
    >>> import ardiff, ardiff.numpy as anp
    >>> ardiff.grad(lambda x: anp.sin(x) * x)(0.0)
    0.0
    """
    def body(call: TracedCall, opts: SolverOptions):  # value_and_grad without the value
        out = call.output_tracer("grad", scalar=True)
        (flat,) = _gradients(call, out, [None], opts)
        return call.pack(flat)

    return _transform(fun, argnum, options, body)


def holomorphic_grad(fun: Callable, argnum: int = 0, **options: Any) -> Callable:
    """Return a function computing the complex derivative f'(z) of a holomorphic `fun`.

    Under ardiff's complex convention (docs/complex.md) `grad` of a holomorphic
    function already is f'(z) (and `elementwise_grad` gives it elementwise); this is
    HIPS autograd's name for that case, which also checks that the differentiated
    argument is complex (a real argument would have its gradient projected on the reals).

    Parameters
    ----------
    fun : callable
        Holomorphic in `args[argnum]`, returning a scalar.
    argnum : int
        The differentiated positional argument (complex).
    **options
        Solver options, as for [`ardiff.grad`][ardiff.grad].

    Returns
    -------
    callable
        `(*args, **kwargs) -> f'(z)`, complex, shaped like `args[argnum]`.

    Examples
    --------
    >>> import numpy as np, ardiff, ardiff.numpy as anp
    >>> complex(ardiff.holomorphic_grad(lambda z: z ** 3)(1.0 + 1.0j))
    6j
    """
    g = grad(fun, argnum, **options)

    @functools.wraps(fun)
    def wrapped(*args, **kwargs):
        if not np.iscomplexobj(args[argnum]):
            raise TypeError(
                f"holomorphic_grad: argument {argnum} of {getattr(fun, '__name__', fun)} is "
                f"{np.result_type(args[argnum])}, not complex; pass a complex value (e.g. "
                "x + 0j), or use ardiff.grad for a real argument.")
        return g(*args, **kwargs)

    return wrapped


def elementwise_grad(fun: Callable, argnum: Any = 0, **options: Any) -> Callable:
    """Gradient of `sum(fun(x))`: each output's derivative w.r.t. its own input when
    `fun` acts elementwise.

    Parameters
    ----------
    fun : callable
        Returns an array (or a scalar); it is seeded with ones.
    argnum : int or tuple of int, optional
        As for `grad`.
    **options
        As for `grad`.

    Returns
    -------
    callable
        `(*args, **kwargs) -> gradient`, shaped like the differentiated argument.
    """
    def body(call: TracedCall, opts: SolverOptions):
        out = call.output_tracer("elementwise_grad")
        seed = None if out is None else np.ones(out.shape, dtype=out.dtype)
        (flat,) = _gradients(call, out, [seed], opts)
        return call.pack(flat)

    return _transform(fun, argnum, options, body)


def jacobian(fun: Callable, argnum: Any = 0, **options: Any) -> Callable:
    """Return a function computing the Jacobian, shaped `out.shape + arg.shape`.

    One solve per output element, all on the same recorded graph.

    Parameters
    ----------
    fun : callable
        Returns an array or a scalar.
    argnum : int or tuple of int, optional
        As for `grad`.
    **options
        As for `grad`; the graph is pruned and its VJPs staged once for all the solves.

    Returns
    -------
    callable
        `(*args, **kwargs) -> jacobian`.
    """
    def body(call: TracedCall, opts: SolverOptions):
        out = call.output_tracer("jacobian")
        out_shape = np.shape(unwrap(call.output))
        out_dtype = np.result_type(unwrap(call.output))
        n_out = int(np.prod(out_shape, dtype=np.int64))
        seeds = []
        for k in range(n_out):
            seed = np.zeros(n_out, dtype=out_dtype)
            seed[k] = 1.0
            seeds.append(seed.reshape(out_shape))
        rows = _gradients(call, out, seeds, opts)
        flat = []
        for j, t in enumerate(call.inputs):
            in_shape = np.shape(unwrap(t))
            if n_out == 0:
                flat.append(np.zeros(out_shape + in_shape))
                continue
            column = [row[j] for row in rows]
            # traced rows (higher order) are stacked with traced ops to keep the trace
            stacked = anp.stack(column) if any(isinstance(c, Tracer) for c in column) \
                else np.stack(column)
            flat.append(anp.reshape(stacked, out_shape + in_shape))
        return call.pack(flat)

    return _transform(fun, argnum, options, body)


def hessian(fun: Callable, argnum: Any = 0, **options: Any) -> Callable:
    """The Hessian of scalar `fun`: `jacobian(jacobian(fun))`, shaped `x.shape * 2`.

    With a tuple `argnum` the result is a tuple of tuples of blocks: `H[i][j]` is
    the derivative of the gradient w.r.t. `args[argnum[i]]` with respect to
    `args[argnum[j]]`, shaped `x_i.shape + x_j.shape`.

    Parameters
    ----------
    fun : callable
        Returns a scalar.
    argnum : int or tuple of int, optional
        As for `grad`.
    **options
        As for `grad`; both derivatives use the options.  A truncated relaxation
        (`preset="paper"`) is approximate at both levels.

    Returns
    -------
    callable
        `(*args, **kwargs) -> hessian`.
    """
    if isinstance(argnum, (int, np.integer)) and not isinstance(argnum, bool):
        return jacobian(jacobian(fun, argnum, **options), argnum, **options)
    SolverOptions.from_keywords(**options)  # validate now, not at the first call

    @functools.wraps(fun)
    def wrapped(*args, **kwargs):
        nums = normalize_argnums(argnum, len(args), fun)
        return tuple(
            tuple(jacobian(jacobian(fun, i, **options), j, **options)(*args, **kwargs)
                  for j in nums)
            for i in nums)

    return wrapped


def make_vjp(fun: Callable, argnum: Any = 0, **options: Any) -> Callable:
    """Return a function that traces `fun` once and gives `(vjp, value)`.

    `vjp(g)` solves the recorded graph with the output clamped to `g` and returns
    `g · ∂fun/∂args[argnum]`; it can be called many times.

    Parameters
    ----------
    fun : callable
        Returns an array or a scalar; `g` has its shape.
    argnum : int or tuple of int, optional
        As for `grad`.
    **options
        As for `grad`.

    Returns
    -------
    callable
        `(*args, **kwargs) -> (vjp, value)`; `vjp` keeps the recorded graph alive.
    """
    def body(call: TracedCall, opts: SolverOptions):
        out = call.output_tracer("make_vjp")
        # A one-sweep solve stages each VJP as it goes (and drops activities once read)
        # on the first call, the usual single one; later calls stage once and reuse.
        sweeps = opts.one_sweep
        plan = None if out is None else compile_plan(call.graph, out, call.inputs, opts.rules,
                                                     stage=not sweeps)
        calls = [0]

        def vjp(g):
            if plan is None:
                return call.pack(call.zeros())
            if not sweeps:
                return call.pack(solve_plan(plan, g, opts).grads)
            calls[0] += 1
            if calls[0] == 2:
                plan.stage()
            return call.pack(sweep_gradients(plan, g))

        return vjp, call.value()

    return _transform(fun, argnum, options, body)


vjp = make_vjp
"""Another name for `make_vjp` (the same function object), as in JAX and autograd."""


# -- the other transforms autograd users have ---------------------------------------------
def hessian_tensor_product(fun: Callable, argnum: int = 0, **options: Any) -> Callable:
    """The Hessian of scalar `fun` contracted with a tensor, without forming the Hessian.

    Parameters
    ----------
    fun : callable
        Returns a scalar.
    argnum : int
        The differentiated positional argument `x`.
    **options
        Solver options, as for `grad` (both derivatives use them).

    Returns
    -------
    callable
        `(*args, v, **kwargs) -> H · v`, shaped like `x`: the gradient of
        `tensordot(grad(fun)(*args), v, v.ndim)` (`v` shaped like `x`), two reverse
        solves on one nested trace.
    """
    fun_grad = grad(fun, argnum, **options)

    def gradient_dot(*args, **kwargs):
        *args, v = args
        return anp.tensordot(fun_grad(*args, **kwargs), v, np.ndim(v))

    return grad(gradient_dot, argnum, **options)


hessian_vector_product = hessian_tensor_product


def make_hvp(fun: Callable, argnum: int = 0, **options: Any) -> Callable:
    """Hessian-vector products at one point, reusing its trace for many vectors.

    Parameters
    ----------
    fun : callable
        Returns a scalar.
    argnum : int
        The differentiated positional argument.
    **options
        Solver options, as for `grad`.

    Returns
    -------
    callable
        `(*args, **kwargs) -> (hvp, gradient)`: `hvp(v)` is `H · v` (it is the VJP of
        the gradient, and the Hessian is symmetric), `gradient` is `grad(fun)(*args)`.
    """
    return make_vjp(grad(fun, argnum, **options), argnum, **options)


def tensor_jacobian_product(fun: Callable, argnum: int = 0, **options: Any) -> Callable:
    """A tensor contracted with the Jacobian of `fun` from the left (a VJP as a function).

    Parameters
    ----------
    fun : callable
        Returns an array.
    argnum : int
        The differentiated positional argument.
    **options
        Solver options, as for `grad`.

    Returns
    -------
    callable
        `(*args, v, **kwargs) -> v · J`, the Jacobian of
        `tensordot(v, fun(*args), v.ndim)`: with `v` shaped like the output it is
        the VJP, shaped like the argument.
    """
    def dot_fun(*args, **kwargs):
        *args, v = args
        return anp.tensordot(v, fun(*args, **kwargs), np.ndim(v))

    return jacobian(dot_fun, argnum, **options)


vector_jacobian_product = tensor_jacobian_product


def make_ggnvp(f: Callable, g: Callable | None = None, f_argnum: int = 0,
               **options: Any) -> Callable:
    """Generalized Gauss-Newton-vector products `Jᵀ H_g J v` of `g(f(x))`.

    Parameters
    ----------
    f : callable
        The inner function (its Jacobian `J` at `x`).
    g : callable, optional
        Scalar outer function (its Hessian `H_g` at `f(x)`); default
        `0.5 * sum(y ** 2, axis=-1)`, as in autograd.
    f_argnum : int
        The differentiated positional argument of `f`.
    **options
        Solver options, as for `grad`.

    Returns
    -------
    callable
        `(*args, **kwargs) -> ggnvp`, with `ggnvp(v)` shaped like `x`.  `J v` is
        computed as the VJP of the VJP (reverse mode twice: the VJP is linear in its
        seed).
    """
    if g is None:
        def g(y):
            return 0.5 * anp.sum(y ** 2, axis=-1)

    def at(*args, **kwargs):
        f_vjp, f_x = make_vjp(f, f_argnum, **options)(*args, **kwargs)
        g_hvp, grad_g_x = make_vjp(grad(g, **options), **options)(f_x)
        zeros = np.zeros(np.shape(unwrap(grad_g_x)))
        f_jvp, _ = make_vjp(f_vjp, **options)(zeros)

        def ggnvp(v):
            return f_vjp(g_hvp(f_jvp(v)))

        return ggnvp

    return at


def grad_and_aux(fun: Callable, argnum: Any = 0, **options: Any) -> Callable:
    """The gradient of the first of two outputs, and the second passed through.

    Parameters
    ----------
    fun : callable
        Returns `(scalar, aux)`; `aux` may be anything (arrays, containers).
    argnum : int or tuple of int, optional
        As for `grad`.
    **options
        As for `grad`.

    Returns
    -------
    callable
        `(*args, **kwargs) -> (gradient, aux)`, `aux` with this trace removed.
    """
    def body(call: TracedCall, opts: SolverOptions):
        output = call.output
        if not isinstance(output, (tuple, list)) or len(output) != 2:
            raise TypeError(f"grad_and_aux: {getattr(fun, '__name__', fun)} must return a "
                            f"pair (value, aux), got {type(output).__name__}.")
        call.output = output[0]
        out = call.output_tracer("grad_and_aux", scalar=True)
        (flat,) = _gradients(call, out, [None], opts)
        leaves, rebuild = flatten(output[1])
        own = [leaf._value if isinstance(leaf, Tracer) and leaf.graph is call.graph
               else leaf for leaf in leaves]  # this level's tracing removed, outer kept
        return call.pack(flat), rebuild(own)

    return _transform(fun, argnum, options, body)


def deriv(fun: Callable, argnum: int = 0, **options: Any) -> Callable:
    """The derivative of `fun` with respect to a scalar argument, shaped like the output.

    Parameters
    ----------
    fun : callable
        Returns an array or a scalar.
    argnum : int
        The scalar positional argument.
    **options
        Solver options, as for `grad`.

    Returns
    -------
    callable
        `(*args, **kwargs) -> d fun / d args[argnum]`, one reverse solve per output
        element, with the solver options.  autograd's `deriv` is a forward-mode JVP with
        tangent 1: the same numbers as `ardiff.make_jvp(fun, argnum)(*args)(1.0)[1]`, one
        forward pass (docs/forward-mode.md).
    """
    jac = jacobian(fun, argnum, **options)

    @functools.wraps(fun)
    def wrapped(*args, **kwargs):
        nums = normalize_argnums(argnum, len(args), fun)
        if np.ndim(unwrap(args[nums[0]])) != 0:
            raise ValueError(f"deriv: argument {nums[0]} must be a scalar, got shape "
                             f"{np.shape(unwrap(args[nums[0]]))}; use jacobian instead.")
        return jac(*args, **kwargs)

    return wrapped
