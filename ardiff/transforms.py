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
from .tracer import Tracer

__all__ = ["grad", "value_and_grad", "elementwise_grad", "jacobian", "hessian", "make_vjp",
           "vjp", "trace", "gc_paused"]


def _transform(fun: Callable, argnum: Any, options: dict,
               body: Callable[[TracedCall, SolverOptions], Any]) -> Callable:
    """The scaffold of every transform: options checked now, one traced call per call.

    `body(call, options)` turns the traced call into the transform's result.
    """
    solver_options = SolverOptions.from_keywords(**options)

    @functools.wraps(fun)
    def wrapped(*args, **kwargs):
        with gc_paused():
            return body(TracedCall(fun, argnum, args, kwargs), solver_options)

    return wrapped


def _gradients(call: TracedCall, out: Tracer | None, seeds: list,
               options: SolverOptions) -> list[list]:
    """The flat input gradients for each seed; the graph is pruned (and staged) once."""
    if out is None:
        return [call.zeros() for _ in seeds]
    # one seed: stage each VJP during the solve (cheaper); several: stage once for all
    plan = compile_plan(call.graph, out, call.inputs, options.rules, stage=len(seeds) > 1)
    return [solve_plan(plan, seed, options).grads for seed in seeds]


def value_and_grad(fun: Callable, argnum: Any = 0, **options: Any) -> Callable:
    """Return a function computing `(fun(*args), gradient of fun w.r.t. args[argnum])`.

    A function whose output does not depend on an argument has gradient zero.

    Parameters
    ----------
    fun : callable
        Returns a scalar.
    argnum, **options
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
    vg = value_and_grad(fun, argnum, **options)

    @functools.wraps(fun)
    def wrapped(*args, **kwargs):
        return vg(*args, **kwargs)[1]

    return wrapped


def elementwise_grad(fun: Callable, argnum: Any = 0, **options: Any) -> Callable:
    """Gradient of `sum(fun(x))`: each output's derivative w.r.t. its own input when
    `fun` acts elementwise.

    Parameters
    ----------
    fun : callable
        Returns an array (or a scalar); it is seeded with ones.
    argnum, **options
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
    argnum, **options
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
    argnum, **options
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
    argnum, **options
        As for `grad`.

    Returns
    -------
    callable
        `(*args, **kwargs) -> (vjp, value)`; `vjp` keeps the recorded graph alive.
    """
    def body(call: TracedCall, opts: SolverOptions):
        out = call.output_tracer("make_vjp")
        plan = None if out is None else compile_plan(call.graph, out, call.inputs, opts.rules)

        def vjp(g):
            if plan is None:
                return call.pack(call.zeros())
            return call.pack(solve_plan(plan, g, opts).grads)

        return vjp, call.value()

    return _transform(fun, argnum, options, body)


vjp = make_vjp
"""Another name for `make_vjp` (the same function object), as in JAX and autograd."""
