"""The user API, shaped like HIPS autograd: grad, value_and_grad, elementwise_grad,
jacobian, hessian, make_vjp, and trace.

Every function takes ``argnum`` (an int or a tuple of ints) and solver options:
``method="relax"`` (default; sequential schedule, eta 1, which is exact in one
sweep), ``"backprop"`` or ``"triangular"``, plus the keywords of
:func:`ardiff.relax` (``eta``, ``schedule``, ``init``, ``tol``, ``max_iter``,
``rules``, ``preset``).
"""

from __future__ import annotations

import contextlib
import functools
import gc
from collections.abc import Callable

import numpy as np

from . import numpy as anp
from .graph import Graph, unwrap
from .solvers import PRESETS, RUNNERS, compile_plan
from .tracer import Tracer, TracingError
from .tree import flatten

RELAX_OPTIONS = {"eta", "schedule", "init", "tol", "max_iter", "record"}


@contextlib.contextmanager
def gc_paused():
    """Pause Python's cyclic garbage collector while a graph is built and solved.

    Tracing allocates many small objects, which triggers full collections whose
    cost grows with everything else alive in the process (about 40% of a scalar
    chain's gradient time, measured).  ardiff's own structures hold no reference
    cycles, so reference counting frees them; collection resumes afterwards.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _fun_name(fun: Callable) -> str:
    return getattr(fun, "__qualname__", getattr(fun, "__name__", repr(fun)))


def _argnums(argnum, n_args: int, fun: Callable) -> tuple[int, ...]:
    if isinstance(argnum, (int, np.integer)) and not isinstance(argnum, bool):
        nums = (argnum,)
    elif isinstance(argnum, (tuple, list)):
        nums = tuple(argnum)
    else:
        nums = (None,)
    for k in nums:
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
            raise TypeError(f"{_fun_name(fun)}: argnum must be an int or a tuple of ints, got "
                            f"{argnum!r}.")
        if not -n_args <= k < n_args:
            raise ValueError(
                f"argnum={k} is out of range: {_fun_name(fun)} was called with {n_args} "
                "positional argument(s).")
    normalised = tuple(int(k) % n_args for k in nums)
    if len(set(normalised)) != len(normalised):
        raise ValueError(f"{_fun_name(fun)}: argnum={argnum!r} names the same argument twice; "
                         "list each argument once.")
    return normalised


def _split_options(options: dict) -> tuple[str, list | None, dict]:
    options = dict(options)
    method = options.pop("method", "relax")
    rules = options.pop("rules", None)
    preset = options.pop("preset", None)
    if method not in RUNNERS:
        raise ValueError(f"Unknown method {method!r}; available: {sorted(RUNNERS)}")
    if preset is not None:
        if preset not in PRESETS:
            raise ValueError(f"Unknown preset {preset!r}; available: {sorted(PRESETS)}")
        options = {**PRESETS[preset], **options}
    allowed = RELAX_OPTIONS if method == "relax" else set()
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise TypeError(f"Unknown option(s) {unknown} for method={method!r}; "
                        f"allowed: {sorted(allowed) or 'none'}.")
    if rules is not None and method != "relax":
        raise ValueError("rules= change the relaxation dynamics and need method='relax'.")
    return method, rules, options


class _Traced:
    """One traced call of ``fun`` with some positional arguments as graph inputs."""

    def __init__(self, fun: Callable, argnum, args: tuple, kwargs: dict):
        self.fun = fun
        self.argnums = _argnums(argnum, len(args), fun)
        self.graph = Graph()
        boxed = list(args)
        self.rebuilds = []
        self.inputs = []
        name = _fun_name(fun)
        self.scalar_leaf = []  # gradients of scalar inputs are scalars, of arrays arrays
        for k in self.argnums:
            leaves, rebuild = flatten(args[k])
            self.scalar_leaf.extend(not isinstance(leaf, (np.ndarray, Tracer)) for leaf in leaves)
            tracers = [self.graph.input(leaf, name=f"{name}:arg{k}") for leaf in leaves]
            boxed[k] = rebuild(tracers)
            self.rebuilds.append((rebuild, len(tracers)))
            self.inputs.extend(tracers)
        try:
            self.output = fun(*boxed, **kwargs)
        except ValueError as exc:
            # NumPy turns the TracingError of `a[i] = x` into "setting an array element
            # with a sequence" (a traced value has __getitem__); give back the real reason.
            if isinstance(exc.__cause__, TracingError):
                raise TracingError(f"{name}: {exc.__cause__}") from exc
            raise
        self.graph.output = self.output

    def output_node(self, what: str):
        """The output as a tracer of this graph, or None if it does not depend on the inputs."""
        out = self.output
        name = _fun_name(self.fun)
        if isinstance(out, Tracer) and out._graph is self.graph:
            return out
        if isinstance(out, Tracer):
            return None
        if isinstance(out, (np.ndarray, np.generic)) and out.dtype.kind in "fiu" or \
                isinstance(out, (int, float)) and not isinstance(out, bool):
            return None  # a constant: every gradient is zero
        if isinstance(out, (np.ndarray, np.generic)):
            raise TypeError(
                f"{what}: {name} returned an array of dtype {out.dtype}; it must return a real "
                "float array or scalar computed from its inputs.")
        kind = type(out).__name__
        raise TypeError(
            f"{what}: {name} returned a {kind}; it must return a float array or scalar "
            "computed from its inputs" + (
                " (for several outputs, differentiate each one separately)"
                if isinstance(out, (tuple, list, dict)) else "") + ".")

    def value(self):
        out = self.output
        return out._value if isinstance(out, Tracer) and out._graph is self.graph else out

    def regroup(self, flat: list):
        """Split a flat gradient list back into the structure of each argnum."""
        out, pos = [], 0
        for rebuild, n in self.rebuilds:
            out.append(rebuild(flat[pos:pos + n]))
            pos += n
        return out

    def zeros(self):
        return [np.zeros(np.shape(unwrap(t._value)), dtype=np.result_type(unwrap(t._value)))
                for t in self.inputs]


def _solve(traced: _Traced, out: Tracer | None, seeds, method, rules, options):
    """Gradients for each seed; compiles the plan once."""
    if out is None:
        return [traced.zeros() for _ in seeds]
    # one seed: stage each VJP during the solve (cheaper); several: stage once for all
    plan = compile_plan(traced.graph, out, traced.inputs, rules, stage=len(seeds) > 1)
    runner = RUNNERS[method]
    return [runner(plan, seed, **options).grads for seed in seeds]


def _like_leaf(grad, scalar: bool):
    """A scalar input gets a NumPy scalar gradient, an array input an array."""
    if isinstance(grad, np.ndarray) and scalar and grad.ndim == 0:
        return grad[()]
    if isinstance(grad, np.generic) and not scalar:
        return np.asarray(grad)
    return grad


def _pack(traced: _Traced, flat: list, argnum):
    flat = [_like_leaf(g, scalar) for g, scalar in zip(flat, traced.scalar_leaf)]
    grouped = traced.regroup(flat)
    return grouped[0] if isinstance(argnum, (int, np.integer)) else tuple(grouped)


def value_and_grad(fun: Callable, argnum=0, **options) -> Callable:
    """Return a function computing ``(fun(*args), gradient of fun w.r.t. args[argnum])``.

    ``fun`` must return a scalar.  With a tuple ``argnum`` the gradient is a tuple.
    A function whose output does not depend on an argument has gradient zero.
    """
    method, rules, opts = _split_options(options)

    @functools.wraps(fun)
    @gc_paused()
    def wrapped(*args, **kwargs):
        traced = _Traced(fun, argnum, args, kwargs)
        out = traced.output_node("grad")
        if out is not None and np.size(unwrap(out._value)) != 1:
            raise TypeError(
                f"grad: {_fun_name(fun)} returned an array of shape {out.shape}; grad needs a "
                "scalar output. Use elementwise_grad, jacobian, or sum the output.")
        if out is None and np.size(unwrap(traced.output)) != 1:
            raise TypeError(f"grad: {_fun_name(fun)} returned a non-scalar value.")
        (flat,) = _solve(traced, out, [None], method, rules, opts)
        return traced.value(), _pack(traced, flat, argnum)

    return wrapped


def grad(fun: Callable, argnum=0, **options) -> Callable:
    """Return a function computing the gradient of scalar ``fun`` w.r.t. ``args[argnum]``.

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


def elementwise_grad(fun: Callable, argnum=0, **options) -> Callable:
    """Gradient of ``sum(fun(x))``: the derivative of each output w.r.t. its own input
    when ``fun`` acts elementwise."""
    method, rules, opts = _split_options(options)

    @functools.wraps(fun)
    @gc_paused()
    def wrapped(*args, **kwargs):
        traced = _Traced(fun, argnum, args, kwargs)
        out = traced.output_node("elementwise_grad")
        seed = None if out is None else np.ones(out.shape, dtype=out.dtype)
        (flat,) = _solve(traced, out, [seed], method, rules, opts)
        return _pack(traced, flat, argnum)

    return wrapped


def jacobian(fun: Callable, argnum=0, **options) -> Callable:
    """Return a function computing the Jacobian, shaped ``out.shape + arg.shape``.

    One relaxation per output element, all on the same recorded graph.
    """
    method, rules, opts = _split_options(options)

    @functools.wraps(fun)
    @gc_paused()
    def wrapped(*args, **kwargs):
        traced = _Traced(fun, argnum, args, kwargs)
        out = traced.output_node("jacobian")
        out_shape = np.shape(unwrap(traced.output))
        out_dtype = np.result_type(unwrap(traced.output))
        n_out = int(np.prod(out_shape, dtype=np.int64))
        seeds = []
        for k in range(n_out):
            seed = np.zeros(n_out, dtype=out_dtype)
            seed[k] = 1.0
            seeds.append(seed.reshape(out_shape))
        rows = _solve(traced, out, seeds, method, rules, opts)
        flat = []
        for j, t in enumerate(traced.inputs):
            in_shape = np.shape(unwrap(t._value))
            if n_out == 0:
                flat.append(np.zeros(out_shape + in_shape))
                continue
            stacked = anp.stack([row[j] for row in rows]) if any(
                isinstance(row[j], Tracer) for row in rows) else np.stack([row[j] for row in rows])
            flat.append(anp.reshape(stacked, out_shape + in_shape))
        return _pack(traced, flat, argnum)

    return wrapped


def hessian(fun: Callable, argnum=0, **options) -> Callable:
    """The Hessian of scalar ``fun``: ``jacobian(jacobian(fun))``, shaped ``x.shape * 2``.

    With a tuple ``argnum`` the result is a tuple of tuples of blocks:
    ``H[i][j]`` is the derivative of the gradient w.r.t. ``args[argnum[i]]`` with
    respect to ``args[argnum[j]]``, shaped ``x_i.shape + x_j.shape``.
    """
    if isinstance(argnum, (int, np.integer)) and not isinstance(argnum, bool):
        return jacobian(jacobian(fun, argnum, **options), argnum, **options)
    _split_options(options)  # validate now, not at the first call

    @functools.wraps(fun)
    def wrapped(*args, **kwargs):
        nums = _argnums(argnum, len(args), fun)
        return tuple(
            tuple(jacobian(jacobian(fun, i, **options), j, **options)(*args, **kwargs)
                  for j in nums)
            for i in nums)

    return wrapped


def make_vjp(fun: Callable, argnum=0, **options) -> Callable:
    """Return a function that traces ``fun`` once and gives ``(vjp, value)``.

    ``vjp(g)`` relaxes the recorded graph with the output clamped to ``g`` and
    returns ``g · ∂fun/∂args[argnum]``; it can be called many times.
    """
    method, rules, opts = _split_options(options)

    @functools.wraps(fun)
    @gc_paused()
    def wrapped(*args, **kwargs):
        traced = _Traced(fun, argnum, args, kwargs)
        out = traced.output_node("make_vjp")
        plan = None if out is None else compile_plan(traced.graph, out, traced.inputs, rules)

        def vjp(g):
            if plan is None:
                return _pack(traced, traced.zeros(), argnum)
            return _pack(traced, RUNNERS[method](plan, g, **opts).grads, argnum)

        return vjp, traced.value()

    return wrapped


vjp = make_vjp


def trace(fun: Callable, *args, argnum=None, **kwargs) -> Graph:
    """Record ``fun(*args, **kwargs)`` into a new :class:`Graph`.

    All positional arguments (or those in ``argnum``) become graph inputs, in
    order, flattened if they are nested containers: ``graph.inputs``.  The traced
    return value is ``graph.output``.

    Examples
    --------
    >>> import numpy as np, ardiff, ardiff.numpy as anp
    >>> g = ardiff.trace(lambda x: anp.sum(anp.tanh(x)), np.ones(3))
    >>> ardiff.relax(g).grads[0].shape
    (3,)
    """
    argnums = tuple(range(len(args))) if argnum is None else argnum
    return _Traced(fun, argnums, args, kwargs).graph
