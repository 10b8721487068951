"""Trace once, replay many times: `compile`.

A compiled gradient keeps the graph recorded on the first call for each input
signature (the structure of the arguments, the shapes and dtypes of the
differentiated leaves, and the values of everything else).  A later call with
the same signature re-runs only the recorded NumPy forwards on the new values
and solves; no Python code of the user's function runs again.  For the exact
one-sweep solve (the default) forward and reverse sweep are generated Python
(`ardiff.codegen`); other solver settings restage the VJPs and run their solver.

Replays are sound: every concrete fact the traced function read off a traced
value (a comparison, a truth test in an `if`, an integer index, `.value`)
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

from .codegen import Replay, sweep_is_exact
from .graph import as_differentiable
from .recorder import TracedCall, gc_paused, normalize_argnums
from .solvers import SolverOptions, compile_plan, solve_plan
from .tracer import Tracer
from .tree import flatten


class _Unhashable(Exception):
    pass


class _Recording:
    """One cached trace: the traced call, its pruned plan and (once replayed) its `Replay`."""

    __slots__ = ("call", "plan", "program")

    def __init__(self, call: TracedCall):
        self.call = call
        self.plan = None
        self.program = None


class _ArrayKey:
    """A non-differentiated array in a signature: equal when the bytes are equal.

    Hashing every byte of a large constant argument (a data batch) on every call
    cost more than comparing it: the hash reads a strided sample of at most 64
    items, and equality compares all bytes (as a digest would, so NaNs match
    themselves and -0.0 differs from 0.0).  A key kept in the cache holds a copy
    (`frozen`), so changing the caller's array in place is seen as a new value.
    """

    __slots__ = ("data", "shape", "_hash")

    def __init__(self, value: np.ndarray):
        # ascontiguousarray makes a 0-d array 1-d: the shape is kept beside it
        data = np.ascontiguousarray(value).reshape(-1)
        self.data, self.shape = data, value.shape
        sample = data[::max(1, data.size // 64)][:64]
        self._hash = hash((value.shape, data.dtype.str, sample.tobytes()))

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, _ArrayKey):
            return NotImplemented
        a, b = self.data, other.data
        if a is b:
            return True
        if self._hash != other._hash or self.shape != other.shape or a.dtype != b.dtype:
            return False
        return bool(np.array_equal(_words(a), _words(b)))

    def frozen(self) -> _ArrayKey:
        copy = _ArrayKey.__new__(_ArrayKey)
        copy.data, copy.shape, copy._hash = self.data.copy(), self.shape, self._hash
        return copy


def _words(data: np.ndarray) -> np.ndarray:
    """The bytes of a contiguous 1-d array as 8-byte words where they divide evenly (an
    exact comparison with 8 times fewer elements than bytes), else as bytes."""
    raw = data.view(np.uint8)
    return raw.view(np.uint64) if raw.size % 8 == 0 else raw


def _frozen(key: Any) -> Any:
    """`key` with every array part copied (what the cache keeps)."""
    if isinstance(key, _ArrayKey):
        return key.frozen()
    if type(key) is tuple:
        return tuple(_frozen(k) for k in key)
    return key


def _static_key(value: Any) -> Any:
    """A hashable stand-in for an argument that is not differentiated."""
    if isinstance(value, np.ndarray):
        if value.dtype.hasobject:  # object arrays: compared by digest of their repr
            digest = hashlib.blake2b(repr(value.tolist()).encode(), digest_size=16)
            return ("array", value.shape, value.dtype.str, digest.hexdigest())
        return ("array", _ArrayKey(value))
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
    """The gradient of `fun` with traces cached per input signature.

    Call it like [`ardiff.grad`][ardiff.grad]; `value_and_grad` also returns the value.

    Attributes
    ----------
    traces : int
        How many times `fun` was traced (first calls, new signatures, failed guards).
    replays : int
        How many calls reused a recorded graph.
    max_variants : int
        Recordings kept per signature (one per pattern of guard answers seen).
    """

    def __init__(self, fun: Callable, argnum: Any = 0, **options: Any):
        self.fun = fun
        self.argnum = argnum
        self.options = SolverOptions.from_keywords(**options)
        self.traces = 0
        self.replays = 0
        self._cache: dict = {}
        self.max_variants = 8
        self._lock = threading.Lock()  # a replay rewrites the cached graph's values

    def __repr__(self) -> str:
        name = getattr(self.fun, "__name__", repr(self.fun))
        return (f"<ardiff.compile of {name}: {self.traces} traces, {self.replays} replays, "
                f"{len(self._cache)} signatures>")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.value_and_grad(*args, **kwargs)[1]

    def _signature(self, args, kwargs):
        nums = normalize_argnums(self.argnum, len(args), self.fun)
        key = [len(args)]
        leaves = []
        for k, arg in enumerate(args):
            if k in nums:
                flat, rebuild = flatten(arg)
                values = [as_differentiable(v, where=f"compile argument {k}") for v in flat]
                structure = repr(rebuild(list(range(len(flat)))))
                key.append(("diff", structure, tuple(
                    (v.shape, v.dtype.str) if type(v) is np.ndarray
                    else (np.shape(v), np.result_type(v).str) for v in values)))
                leaves.extend(values)
            else:
                key.append(_static_key(arg))
        key.append(_static_key(kwargs))
        return tuple(key), leaves

    def value_and_grad(self, *args: Any, **kwargs: Any) -> tuple:
        """Return `(fun(*args), gradient)`, replaying a recorded graph when possible.

        Parameters
        ----------
        *args, **kwargs
            The arguments of `fun`.

        Returns
        -------
        tuple
            The value and the gradient (structured like the differentiated arguments).
        """
        # a with block, not the decorator: a decorator's frame would lie in contextlib,
        # where warnings would be attributed instead of the caller's line
        with gc_paused():
            return self._value_and_grad(args, kwargs)

    def _value_and_grad(self, args: tuple, kwargs: dict) -> tuple:
        if any(isinstance(leaf, Tracer) for leaf in flatten((args, kwargs))[0]):
            # called while an outer function is traced: trace normally (higher order)
            return self._trace(args, kwargs)[1:]
        try:
            key, leaves = self._signature(args, kwargs)
        except _Unhashable:
            return self._trace(args, kwargs)[1:]
        with self._lock:
            # one recording per branch pattern seen with this signature, newest first
            variants = self._cache.get(key)
            if variants is None:
                variants = self._cache[_frozen(key)] = []
            for recording in variants:
                replayed = self._replay(recording, leaves)
                if replayed is not None:
                    self.replays += 1
                    return replayed
            recording, value, grads = self._trace(args, kwargs)
            variants.insert(0, recording)
            del variants[self.max_variants:]
            return value, grads

    def _trace(self, args, kwargs):
        self.traces += 1
        recording = _Recording(TracedCall(self.fun, self.argnum, args, kwargs))
        return recording, recording.call.value(), self._solve(recording)

    def _solve(self, recording: _Recording):
        call = recording.call
        out = call.output_tracer("compile", scalar=True)
        if out is None:
            return call.pack(call.zeros())
        if recording.plan is None:  # the pruning is reused by later replays
            recording.plan = compile_plan(call.graph, out, call.inputs, self.options.rules)
        else:
            recording.plan.stage()
        return call.pack(solve_plan(recording.plan, None, self.options).grads)

    def _replay(self, recording: _Recording, leaves: list):
        """`(value, gradient)` from a recording and new leaves; None if a guard fails."""
        call = recording.call
        program = recording.program
        if program is None:
            options = self.options
            exact = recording.plan is not None and sweep_is_exact(
                options.method, options.rules, options.relax_keywords())
            program = recording.program = Replay(
                call.graph, [t.node.index for t in call.inputs],
                recording.plan if exact else None)
        if program.plan is not None:
            done = program.replay(leaves, call.graph.guards)
            return None if done is None else (done[0], call.pack(done[1]))
        values = program.forward(leaves)
        if not all(guard.holds(values) for guard in call.graph.guards):
            return None
        call.replace_values(values)  # other solvers run on the graph itself
        return call.value(), self._solve(recording)


def compile(fun: Callable, argnum: Any = 0, **options: Any) -> CompiledGrad:  # noqa: A001
    """Gradient of `fun` that traces once per input signature and replays after.

    Parameters
    ----------
    fun : callable
        Scalar-valued function, as for [`ardiff.grad`][ardiff.grad].
    argnum : int or tuple of int
        Differentiated positional arguments.
    **options
        Solver options (`method`, `eta`, `schedule`, ...), as for `grad`.

    Returns
    -------
    CompiledGrad
        Callable returning the gradient; `.value_and_grad(*args)` returns both.

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
