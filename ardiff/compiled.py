"""Trace once, replay many times: :func:`compile`.

A compiled gradient keeps the graph recorded on the first call for each input
signature (the structure of the arguments, the shapes and dtypes of the
differentiated leaves, and the values of everything else).  A later call with
the same signature re-runs only the recorded NumPy forwards on the new values
and solves; no Python code of the user's function runs again.  For the exact
one-sweep solve (the default) forward and reverse sweep are generated Python
(:mod:`ardiff.codegen`); other solver settings restage the VJPs and run their solver.

Replays are sound: every concrete fact the traced function read off a traced
value (a comparison, a truth test in an ``if``, an integer index, ``.value``)
was recorded as a guard while tracing.  Before a replay is trusted every guard is
evaluated on the new values; if any answer changes, the function is traced
again, because its Python control flow could now differ.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from typing import Any

import numpy as np

from .codegen import Program, sweep_is_exact
from .graph import as_differentiable, unwrap
from .solvers import RUNNERS, compile_plan
from .tracer import Tracer
from .transforms import _argnums, _pack, _split_options, _Traced, gc_paused
from .tree import flatten


class _Unhashable(Exception):
    pass


def _static_key(value: Any) -> Any:
    """A hashable stand-in for an argument that is not differentiated."""
    if isinstance(value, np.ndarray):
        digest = hashlib.blake2b(np.ascontiguousarray(value).view(np.uint8), digest_size=16)
        return ("array", value.shape, value.dtype.str, digest.hexdigest())
    if isinstance(value, (list, tuple)):
        return (type(value).__name__,) + tuple(_static_key(v) for v in value)
    if isinstance(value, dict):
        return ("dict",) + tuple((k, _static_key(v)) for k, v in sorted(value.items()))
    try:
        hash(value)
    except TypeError:
        raise _Unhashable from None
    return (type(value).__name__, value)


class CompiledGrad:
    """The gradient of ``fun`` with traces cached per input signature.

    Call it like :func:`ardiff.grad`; :meth:`value_and_grad` also returns the value.

    Attributes
    ----------
    traces : int
        How many times ``fun`` was traced (first calls, new signatures, failed guards).
    replays : int
        How many calls reused a recorded graph.
    max_variants : int
        Recordings kept per signature (one per pattern of guard answers seen).
    """

    def __init__(self, fun: Callable, argnum=0, **options):
        self.fun = fun
        self.argnum = argnum
        self.method, self.rules, self.options = _split_options(options)
        self.traces = 0
        self.replays = 0
        self._cache: dict = {}
        self.max_variants = 8
        self._lock = threading.Lock()  # a replay rewrites the cached graph's values

    def __repr__(self) -> str:
        name = getattr(self.fun, "__name__", repr(self.fun))
        return (f"<ardiff.compile of {name}: {self.traces} traces, {self.replays} replays, "
                f"{len(self._cache)} signatures>")

    def __call__(self, *args, **kwargs):
        return self.value_and_grad(*args, **kwargs)[1]

    def _signature(self, args, kwargs):
        nums = _argnums(self.argnum, len(args), self.fun)
        key = [len(args)]
        leaves = []
        for k, arg in enumerate(args):
            if k in nums:
                flat, _ = flatten(arg)
                values = [as_differentiable(v, where=f"compile argument {k}") for v in flat]
                structure = repr(flatten(arg)[1](list(range(len(flat)))))
                key.append(("diff", structure,
                            tuple((np.shape(v), np.result_type(v).str) for v in values)))
                leaves.extend(values)
            else:
                key.append(_static_key(arg))
        key.append(_static_key(kwargs))
        return tuple(key), leaves

    @gc_paused()
    def value_and_grad(self, *args, **kwargs):
        """Return ``(fun(*args), gradient)``, replaying a recorded graph when possible."""
        if any(isinstance(leaf, Tracer) for leaf in flatten((args, kwargs))[0]):
            # called while an outer function is traced: trace normally (higher order)
            return self._trace(args, kwargs)[1:]
        try:
            key, leaves = self._signature(args, kwargs)
        except _Unhashable:
            return self._trace(args, kwargs)[1:]
        with self._lock:
            # one recording per branch pattern seen with this signature, newest first
            variants = self._cache.setdefault(key, [])
            for traced in variants:
                replayed = self._replay(traced, leaves)
                if replayed is not None:
                    self.replays += 1
                    return replayed
            traced, value, grads = self._trace(args, kwargs)
            variants.insert(0, traced)
            del variants[self.max_variants:]
            return value, grads

    def _trace(self, args, kwargs):
        self.traces += 1
        traced = _Traced(self.fun, self.argnum, args, kwargs)
        return traced, traced.value(), self._solve(traced)

    def _solve(self, traced: _Traced):
        out = traced.output_node("compile")
        if out is not None and np.size(unwrap(out._value)) != 1:
            raise TypeError("compile: the function must return a scalar (as for grad).")
        if out is None:
            return _pack(traced, traced.zeros(), self.argnum)
        plan = getattr(traced, "plan", None)
        plan = plan.stage() if plan is not None else compile_plan(
            traced.graph, out, traced.inputs, self.rules)
        traced.plan = plan  # the pruning is reused by later replays
        result = RUNNERS[self.method](plan, None, **self.options)
        return _pack(traced, result.grads, self.argnum)

    def _replay(self, traced: _Traced, leaves: list):
        """``(value, gradient)`` from a recording and new leaves; None if a guard fails."""
        program = getattr(traced, "program", None)
        if program is None:
            plan = getattr(traced, "plan", None)
            exact = plan is not None and sweep_is_exact(self.method, self.rules, self.options)
            program = traced.program = Program(
                traced.graph, [t._node for t in traced.inputs], plan if exact else None)
        values = program.forward(leaves)
        if not all(guard.holds(values) for guard in traced.graph.guards):
            return None
        if program.plan is not None:
            grads = program.gradients(values)
            return values[program.plan.output], _pack(traced, grads, self.argnum)
        _store(traced, values)  # other solvers run on the graph itself
        return traced.value(), self._solve(traced)


def _store(traced: _Traced, values: list) -> None:
    """Write replayed values into the recording (node values and arguments, tracers)."""
    graph = traced.graph
    for node, value in zip(graph.nodes, values):
        node.value = value
        if node.parents:
            args = list(node.args)
            for argnum, parent in node.parents:
                args[argnum] = values[parent]
            node.args = tuple(args)
    for tracer in traced.inputs:
        tracer._value = values[tracer._node]
    out = traced.output
    if isinstance(out, Tracer) and out._graph is graph:
        out._value = values[out._node]


def compile(fun: Callable, argnum=0, **options) -> CompiledGrad:  # noqa: A001
    """Gradient of ``fun`` that traces once per input signature and replays after.

    Parameters
    ----------
    fun : callable
        Scalar-valued function, as for :func:`ardiff.grad`.
    argnum : int or tuple of int
        Differentiated positional arguments.
    **options
        Solver options (``method``, ``eta``, ``schedule``, ...), as for ``grad``.

    Returns
    -------
    CompiledGrad
        Callable returning the gradient; ``.value_and_grad(*args)`` returns both.

    Notes
    -----
    The signature is the argument structure, the shapes and dtypes of the
    differentiated leaves, and the *values* of all other arguments (arrays are
    hashed), so changing a non-differentiated argument re-traces.  Comparisons,
    truth tests and integer indices of traced values are guards: when a replay
    would answer one of them differently, the function is traced again, so a
    replay never returns the gradient of a branch the function would not take.
    """
    return CompiledGrad(fun, argnum, **options)
