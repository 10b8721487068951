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

A replay also reuses everything else the trace read, so that state is checked
too (the contract is spelled out in `compile`'s notes):

* `_Watch` walks, after each trace, the globals, closure cells, defaults and
  attributes the function's code names; before each replay every one of them must
  hold the same object with the same content, else the recordings are dropped and
  the function is traced again;
* random draws made while tracing (np.random's global state, Python's `random`,
  generators reached from the arguments or that state) make the function not
  replayable: `NotReplayableWarning`, and a trace on every call;
* the first replay of each recording traces the function once more and compares
  the two graphs (`_difference`): other constants mean state nothing above sees,
  and the same fall-back;
* the non-differentiated argument arrays the trace read must keep their bytes
  (`_Recording.holds`): the recording reads those very objects.
"""

from __future__ import annotations

import dis
import functools
import hashlib
import math
import random
import sys
import threading
import types
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from .codegen import Replay
from .graph import as_differentiable
from .recorder import TracedCall, function_name, gc_paused, normalize_argnums
from .solvers import SolverOptions, compile_plan, solve_plan
from .solvers.common import warn_at_caller
from .tracer import Tracer
from .tree import flatten


class _Unhashable(Exception):
    pass


class _Recording:
    """One cached trace: the traced call, its pruned plan and (once replayed) its `Replay`.

    `verified` turns true once a second trace with the same signature recorded the
    same graph (`CompiledGrad._verify`).  `arrays` pairs the non-differentiated
    argument arrays of the traced call with their keys in the signature: the recording
    reads those very objects, so each must keep its content (`holds`).
    """

    __slots__ = ("call", "plan", "program", "verified", "arrays")

    def __init__(self, call: TracedCall):
        self.call = call
        self.plan = None
        self.program = None
        self.verified = False
        self.arrays: list = []

    def holds(self, arrays: list) -> bool:
        """Whether the argument arrays the trace read still have the bytes of the
        signature (`arrays`: this call's, equal to the signature's by lookup)."""
        for now, (then, key) in zip(arrays, self.arrays):
            if now is not then and not key == _ArrayKey(then):
                return False
        return True


class _Variants(list):
    """The recordings of one signature, newest first, with the signature's array keys."""

    __slots__ = ("keys",)

    def __init__(self, keys: list):
        super().__init__()
        self.keys = keys


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


def _array_keys(key: Any, found: list) -> list:
    """The `_ArrayKey`s of a signature, in the order `_static_key` met their arrays."""
    if isinstance(key, _ArrayKey):
        found.append(key)
    elif type(key) is tuple:
        for k in key:
            _array_keys(k, found)
    return found


def _static_key(value: Any, arrays: list) -> Any:
    """A hashable stand-in for an argument that is not differentiated (its arrays, keyed
    by bytes, are appended to `arrays`)."""
    if isinstance(value, np.ndarray):
        if value.dtype.hasobject:  # object arrays: compared by digest of their repr
            digest = hashlib.blake2b(repr(value.tolist()).encode(), digest_size=16)
            return ("array", value.shape, value.dtype.str, digest.hexdigest())
        arrays.append(value)
        return ("array", _ArrayKey(value))
    if isinstance(value, (list, tuple)):
        return (type(value).__name__,) + tuple(_static_key(v, arrays) for v in value)
    if isinstance(value, dict):
        return ("dict",) + tuple((k, _static_key(v, arrays))
                                 for k, v in sorted(value.items()))
    try:
        hash(value)
    except TypeError:
        raise _Unhashable from None
    return (type(value).__name__, value)


# -- state a replay reuses: what the function reads besides its arguments -------------------
class NotReplayableWarning(UserWarning):
    """`ardiff.compile` found that replaying a function could give a stale gradient.

    The function draws random numbers while it is traced, or two of its traces
    with the same argument signature recorded different constants.  From then on
    the compiled function traces on every call (correct, no speed-up); pass the
    random values or the changing state as arguments to get replays back.
    """


#: Values whose content cannot change: a watched place holding one is compared by value.
_ATOMS = frozenset((int, float, complex, bool, str, bytes, type(None), type(Ellipsis),
                    slice, range, np.float64, np.float32, np.float16, np.int64, np.int32,
                    np.int16, np.int8, np.uint64, np.uint32, np.uint16, np.uint8,
                    np.bool_, np.complex128, np.complex64, np.dtype))
_RANDOM_TYPES = (np.random.Generator, np.random.RandomState, np.random.BitGenerator,
                 random.Random)
#: Modules whose functions, objects and classes are not walked: NumPy, SciPy, ardiff,
#: the standard library (their state is the "other modules' attributes" compile cannot see).
_LIBRARIES = frozenset(("numpy", "scipy", "ardiff", "builtins", *sys.stdlib_module_names))
#: How deep containers (lists, tuples, dicts) are followed from a watched name.
_DEPTH = 4
_MISSING = object()


def _is_library(obj: Any) -> bool:
    module = getattr(obj, "__module__", None)
    return not isinstance(module, str) or module.partition(".")[0] in _LIBRARIES


def _has_attributes(value: Any) -> bool:
    """An object whose attributes the code may read: an instance with a `__dict__`, or a
    module outside the libraries (functions, classes and library modules are not)."""
    if isinstance(value, types.ModuleType):
        return value.__name__.partition(".")[0] not in _LIBRARIES
    if isinstance(value, (type, types.FunctionType, types.MethodType,
                          types.BuiltinFunctionType, functools.partial)):
        return False
    try:
        return isinstance(vars(value), dict)
    except Exception:  # noqa: BLE001 - no __dict__, or a proxy that refuses
        return False


_GLOBAL_OPS = frozenset(("LOAD_GLOBAL", "LOAD_NAME", "STORE_GLOBAL", "DELETE_GLOBAL"))


@functools.lru_cache(maxsize=4096)
def _code_names(code: types.CodeType) -> tuple[frozenset, frozenset]:
    """The global names and the attribute names `code` uses (nested functions and
    comprehensions included), told apart by the instructions that use them."""
    globals_, attributes = set(), set()
    try:
        for ins in dis.get_instructions(code):
            if ins.opname in _GLOBAL_OPS:
                globals_.add(ins.argval)
            elif "ATTR" in ins.opname or ins.opname == "LOAD_METHOD":
                attributes.add(ins.argval)
    except Exception:  # noqa: BLE001 - bytecode this Python cannot read: every name
        globals_ = attributes = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            more = _code_names(const)
            globals_ |= more[0]
            attributes |= more[1]
    return frozenset(globals_), frozenset(attributes)


def _random_state(rng: Any) -> Any:
    """The state of a random number generator (compared before and after a trace)."""
    if isinstance(rng, np.random.Generator):
        return rng.bit_generator.state
    if isinstance(rng, np.random.RandomState):
        return rng.get_state(legacy=False)
    if isinstance(rng, np.random.BitGenerator):
        return rng.state
    return rng.getstate()


def _deep_immutable(value: Any, depth: int = 0) -> bool:
    """Whether `value`'s content cannot change (atoms, and tuples of them)."""
    kind = type(value)
    if kind in _ATOMS:
        return True
    if kind is tuple and depth < _DEPTH:
        return all(_deep_immutable(v, depth + 1) for v in value)
    return kind is frozenset or isinstance(value, (types.ModuleType, type,
                                                    types.BuiltinFunctionType))


def _same_atom(value: Any) -> Callable[[Any], bool]:
    kind = type(value)

    def check(now):
        return now is value or (type(now) is kind and _same_value(now, value))
    return check


def _same_object(value: Any) -> Callable[[Any], bool]:
    return lambda now: now is value


class _Watch:
    """The state a compiled function's replays reuse besides its arguments.

    Walked from the function: the global names its code uses (`_code_names`, nested
    code included), its closure cells and argument defaults, the arguments of a
    `functools.partial`, and the attributes any walked code names (`obj.name`) of
    `self` for a bound method, of a callable object, and of every object with a
    `__dict__` or user module reached (class attributes of user classes too); every
    function and method outside the libraries reached that way is walked the same
    way.  Containers are followed `_DEPTH` levels deep.  Random number generators
    reached there or through the arguments are collected for `draws`.

    After a trace, `snapshot` keeps one check per place: arrays, lists and dicts must
    be the same object with the same content (the replay binds the very objects the
    trace read), atoms and tuples of them equal, everything else the same object.
    """

    def __init__(self, fun: Callable, args: tuple, kwargs: dict):
        self.places: list = []  # (container, key, is_mapping)
        self.randoms: list = []  # (label, generator)
        self._seen: set = set()
        self._names: set = set()
        self._objects: list = []  # user objects whose attributes the code may read
        self._codes: set = set()
        self._walk_callable(fun, "the function")
        for k, arg in enumerate(args):
            self._visit(arg, f"argument {k}", 0)
        for name, arg in kwargs.items():
            self._visit(arg, f"argument {name}", 0)
        self._watch_attributes()
        self.states = [_random_state(rng) for _, rng in self.randoms]
        self.global_random = (np.random.get_state(legacy=False), random.getstate())
        self.checks: list = []

    # -- walking --------------------------------------------------------------------
    def _place(self, container: Any, key: Any, label: str, mapping: bool) -> None:
        self.places.append((container, key, mapping))
        self._visit(_read(container, key, mapping), label, 0)

    def _watch_attributes(self) -> None:
        """Places for the attributes of the objects reached that any walked code names
        (instance attributes, then those of the user classes in its MRO: values are
        watched, methods walked), until walking adds no names."""
        done: dict = {}  # id(object) -> the names looked up on it
        grown = True
        while grown:
            grown = False
            for obj, label in list(self._objects):
                looked = done.setdefault(id(obj), set())
                names = self._names - looked
                if not names:
                    continue
                looked |= names
                grown = True
                try:
                    attributes = vars(obj)
                except TypeError:
                    continue
                for name in sorted(names.intersection(attributes)):
                    self._place(attributes, name, f"{label}.{name}", True)
                if isinstance(obj, types.ModuleType):
                    continue
                names = names.difference(attributes)
                for klass in type(obj).__mro__:
                    if _is_library(klass):
                        continue
                    members = vars(klass)
                    for name in sorted(names.intersection(members)):
                        member = members[name]
                        if isinstance(member, (staticmethod, classmethod)):
                            member = member.__func__
                        if isinstance(member, property):
                            member = member.fget
                        if isinstance(member, types.FunctionType):
                            self._walk_callable(member, f"{label}.{name}")
                        else:
                            self._place(members, name, f"{label}.{name}", True)
                    names = names.difference(members)

    def _walk_callable(self, fun: Any, label: str) -> None:
        if isinstance(fun, types.MethodType):
            self._visit(fun.__self__, f"{label}.__self__", 0)
            fun = fun.__func__
        if isinstance(fun, functools.partial):
            self.places.append((fun, "args", False))
            self.places.append((fun, "keywords", False))
            for k, arg in enumerate(fun.args):
                self._visit(arg, f"{label} (partial argument {k})", 0)
            self._walk_callable(fun.func, label)
            return
        if not isinstance(fun, types.FunctionType):
            if _has_attributes(fun):  # a callable object: its __call__ and attributes
                self._visit(fun, label, 0)
            return
        code = fun.__code__
        if code in self._codes:
            return
        self._codes.add(code)
        names, attributes = _code_names(code)
        self._names |= attributes
        space = fun.__globals__
        for name in sorted(names.intersection(space)):
            self._place(space, name, name, True)
        for name, cell in zip(code.co_freevars, fun.__closure__ or ()):
            self._place(cell, "cell_contents", name, False)
        self._place(fun, "__defaults__", f"{label}'s defaults", False)
        self._place(fun, "__kwdefaults__", f"{label}'s defaults", False)

    def _visit(self, value: Any, label: str, depth: int) -> None:
        """Collect the generators, user functions and objects reachable from `value`."""
        kind = type(value)
        if kind in _ATOMS or id(value) in self._seen or depth > _DEPTH:
            return
        self._seen.add(id(value))
        if isinstance(value, _RANDOM_TYPES):
            self.randoms.append((label, value))
        elif isinstance(value, (list, tuple)):
            for item in value:
                self._visit(item, label, depth + 1)
        elif isinstance(value, dict):
            for item in value.values():
                self._visit(item, label, depth + 1)
        elif isinstance(value, (types.FunctionType, types.MethodType, functools.partial)):
            if not _is_library(value):
                self._walk_callable(value, label)
        elif _has_attributes(value):
            self._objects.append((value, label))
            if callable(value) and not isinstance(value, types.ModuleType) and \
                    not _is_library(kind):
                self._walk_callable(kind.__call__, label)

    # -- checking ------------------------------------------------------------------
    def draws(self) -> str | None:
        """What drew random numbers since the walk (None: nothing did)."""
        if not _same_value(self.global_random[0], np.random.get_state(legacy=False)):
            return "np.random (its global state)"
        if not _same_value(self.global_random[1], random.getstate()):
            return "Python's random module"
        for (label, rng), state in zip(self.randoms, self.states):
            if not _same_value(state, _random_state(rng)):
                return f"the {type(rng).__name__} reached through {label}"
        return None

    def snapshot(self) -> None:
        """Keep what every place holds now (the state after the trace)."""
        self.checks = [_check_of(_read(c, k, m)) for c, k, m in self.places]

    def unchanged(self) -> bool:
        """Whether every place still holds what `snapshot` saw."""
        for (container, key, mapping), check in zip(self.places, self.checks):
            now = container.get(key, _MISSING) if mapping else _read(container, key, False)
            if not check(now):
                return False
        return True


def _read(container: Any, key: str, mapping: bool) -> Any:
    if mapping:
        return container.get(key, _MISSING)
    try:
        return getattr(container, key, _MISSING)
    except ValueError:  # an empty closure cell
        return _MISSING


def _check_of(value: Any, depth: int = 0) -> Callable[[Any], bool]:
    """A test that a place still holds `value`, unchanged (see `_Watch`)."""
    kind = type(value)
    if kind in _ATOMS:
        return _same_atom(value)
    if kind is np.ndarray:
        if value.dtype.hasobject:
            return _same_object(value)
        key = _ArrayKey(value).frozen()
        return lambda now: now is value and key == _ArrayKey(now)
    if depth >= _DEPTH or not isinstance(value, (list, tuple, dict)):
        return _same_object(value)  # functions, modules, objects: their identity
    mapping = isinstance(value, dict)
    mutable = not isinstance(value, tuple)  # a list or dict: the same object, too
    items = list(value.values()) if mapping else value
    if all(_deep_immutable(v) for v in items):  # compared in C, item by item
        copy = dict(value) if mapping else list(value) if mutable else tuple(value)

        def flat(now):
            if now is value and not mutable:
                return True
            try:
                return (now is value or not mutable) and type(now) is kind and \
                    bool(now == copy)
            except Exception:  # noqa: BLE001 - an array put in its place, say
                return False
        return flat
    keys = list(value) if mapping else None
    checks = [_check_of(v, depth + 1) for v in items]

    def nested(now):
        if (now is not value and mutable) or type(now) is not kind or \
                len(now) != len(checks):
            return False
        if keys is not None:
            if list(now) != keys:
                return False
            now = now.values()
        return all(check(v) for check, v in zip(checks, now))
    return nested


# -- comparing two traces ----------------------------------------------------------------
def _same_value(a: Any, b: Any, depth: int = 0) -> bool:
    """Whether two recorded constants are the same value (arrays by bytes, -0.0 != 0.0)."""
    if a is b:
        return True
    kind = type(a)
    if kind is not type(b) or depth > _DEPTH:
        return False
    if isinstance(a, Tracer):  # a traced value a guard's function closes over
        return a.node.index == b.node.index
    if kind is float:
        return (a == b and math.copysign(1.0, a) == math.copysign(1.0, b)) or \
            (a != a and b != b)
    if kind is np.ndarray or isinstance(a, np.generic):
        if a.shape != b.shape or a.dtype != b.dtype:
            return False
        if a.dtype.hasobject:
            return _same_value(a.tolist(), b.tolist(), depth + 1)
        return _ArrayKey(np.asarray(a)) == _ArrayKey(np.asarray(b))
    if kind in (list, tuple) or isinstance(a, tuple):
        return len(a) == len(b) and all(_same_value(x, y, depth + 1) for x, y in zip(a, b))
    if kind is dict or isinstance(a, dict):
        return list(a) == list(b) and all(_same_value(a[k], b[k], depth + 1) for k in a)
    if kind is types.FunctionType:  # a lambda made again by the second trace
        return a.__code__ is b.__code__ and _same_value(
            [c.cell_contents for c in a.__closure__ or ()],
            [c.cell_contents for c in b.__closure__ or ()], depth + 1) and \
            _same_value(a.__defaults__, b.__defaults__, depth + 1)
    if isinstance(a, functools.partial):
        return _same_value((a.func, a.args, a.keywords), (b.func, b.args, b.keywords),
                           depth + 1)
    try:
        if bool(a == b):
            return True
    except Exception:  # noqa: BLE001 - a comparison that is not a truth value
        return False
    if isinstance(a, (type, types.ModuleType)) or not hasattr(a, "__dict__"):
        return False
    if _is_library(kind) and kind.__repr__ is not object.__repr__:
        # bookkeeping made per call (ardiff.extend's argument layout, with a cache of
        # VJPs filled by the solve): the same when its own description is
        return repr(a) == repr(b)
    return _same_value(vars(a), vars(b), depth + 1)  # an object made again


def _same_op(a: Any, b: Any) -> bool:
    """The same op, or an op made again with the same name and forward."""
    if a is b or (isinstance(a, str) and a == b):
        return True
    return not isinstance(a, str) and not isinstance(b, str) and a.name == b.name and \
        _same_value(a.fwd, b.fwd)


def _difference(first, second) -> str | None:
    """Where two recordings of one signature differ (None: they are the same).

    Structure (ops, parents), every constant argument, keyword and constant node, and
    the guards are compared; values computed from the inputs are not.
    """
    a, b = first.graph, second.graph
    if len(a.nodes) != len(b.nodes):
        return f"{len(a.nodes)} nodes, then {len(b.nodes)}"
    for x, y in zip(a.nodes, b.nodes):
        where = f"node {x.index} ({x.op_name})"
        if not _same_op(x.op, y.op):
            return f"{where}: op {x.op_name}, then {y.op_name}"
        if x.parents != y.parents or len(x.args) != len(y.args):
            return f"{where}: other arguments"
        traced = {k for k, _ in x.parents}
        for k, (u, v) in enumerate(zip(x.args, y.args)):
            if k not in traced and not _same_value(u, v):
                return f"{where}: constant argument {k}"
        if not _same_value(x.kwargs, y.kwargs):
            return f"{where}: keyword arguments"
        if x.op == "constant" and not _same_value(x.value, y.value):
            return f"{where}: its value"
    if len(a.guards) != len(b.guards) or not all(
            g.same_as(h, _same_value) for g, h in zip(a.guards, b.guards)):
        return "the comparisons and truth tests of traced values"
    out_a, out_b = first.output, second.output
    traced = isinstance(out_a, Tracer) and out_a.graph is a
    if traced != (isinstance(out_b, Tracer) and out_b.graph is b):
        return "the output"
    if traced and out_a.node.index != out_b.node.index:
        return "the output node"
    if not traced and not isinstance(out_a, Tracer) and not _same_value(out_a, out_b):
        return "the (constant) output"
    return None


class CompiledGrad:
    """The gradient of `fun` with traces cached per input signature.

    Call it like [`ardiff.grad`][ardiff.grad]; `value_and_grad` also returns the value.

    Attributes
    ----------
    traces : int
        How many times `fun` was traced (first calls, new signatures, failed guards).
    replays : int
        How many calls reused a recorded graph.
    verifications : int
        How many traces checked a recording on its first replay (not in `traces`).
    max_variants : int
        Recordings kept per signature (one per pattern of guard answers seen).
    not_replayable : str or None
        Why every call is traced (random draws, or two traces that differed), or None
        while replays are allowed.
    """

    def __init__(self, fun: Callable, argnum: Any = 0, **options: Any):
        self.fun = fun
        self.argnum = argnum
        self.options = SolverOptions.from_keywords(**options)
        self.traces = 0
        self.replays = 0
        self.verifications = 0
        self.not_replayable: str | None = None
        self._cache: dict = {}
        self.max_variants = 8
        self._lock = threading.Lock()  # a replay rewrites the cached graph's values
        self._watch: _Watch | None = None  # the state the cached recordings were made in

    def __repr__(self) -> str:
        name = getattr(self.fun, "__name__", repr(self.fun))
        state = "" if self.not_replayable is None else ", not replayable: traced every call"
        return (f"<ardiff.compile of {name}: {self.traces} traces, {self.replays} replays, "
                f"{len(self._cache)} signatures{state}>")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.value_and_grad(*args, **kwargs)[1]

    def _signature(self, args, kwargs):
        nums = normalize_argnums(self.argnum, len(args), self.fun)
        key = [len(args)]
        leaves: list = []
        arrays: list = []
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
                key.append(_static_key(arg, arrays))
        key.append(_static_key(kwargs, arrays))
        return tuple(key), leaves, arrays

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
        if self.not_replayable is not None or \
                any(isinstance(leaf, Tracer) for leaf in flatten((args, kwargs))[0]):
            # replays could be stale, or called while an outer function is traced (higher
            # order): trace normally
            return self._trace(args, kwargs)[1:]
        try:
            key, leaves, arrays = self._signature(args, kwargs)
        except _Unhashable:
            return self._trace(args, kwargs)[1:]
        with self._lock:
            # one recording per branch pattern seen with this signature, newest first
            variants = self._cache.get(key)
            if variants and not self._watch.unchanged():
                # a global, closure cell, default or attribute the function reads changed
                # since the recordings were made: none of them can be replayed
                self._cache.clear()
                variants = None
            if variants is None:
                key = _frozen(key)
                variants = self._cache[key] = _Variants(_array_keys(key, []))
            for recording in list(variants):
                if not recording.holds(arrays):  # an argument array it read was changed
                    variants.remove(recording)
                    continue
                replayed = self._replay(recording, leaves)
                if replayed is not None:
                    if not recording.verified:
                        fresh = self._verify(recording, args, kwargs)
                        if fresh is not None:
                            return fresh
                    self.replays += 1
                    return replayed
            recording, value, grads = self._trace(args, kwargs, watch=True)
            if self.not_replayable is None:
                recording.arrays = list(zip(arrays, variants.keys))
                variants.insert(0, recording)
                del variants[self.max_variants:]
            return value, grads

    def _trace(self, args, kwargs, watch: bool = False):
        """Trace and solve one call: `(recording, value, gradient)`."""
        self.traces += 1
        recording = self._record(args, kwargs, watch)
        return recording, recording.call.value(), self._solve(recording)

    def _record(self, args, kwargs, watch: bool, quiet: bool = False) -> _Recording:
        """Trace one call.  With `watch`, random draws made while tracing stop replays
        (`_give_up`); otherwise the state the function reads is kept (`_Watch`), to check
        later replays against.  `quiet` silences the warnings of the function itself."""
        watched = _Watch(self.fun, args, kwargs) if watch else None
        if quiet:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                call = TracedCall(self.fun, self.argnum, args, kwargs)
        else:
            call = TracedCall(self.fun, self.argnum, args, kwargs)
        recording = _Recording(call)
        if watched is not None:
            drew = watched.draws()
            if drew is not None:
                self._give_up(
                    f"it draws random numbers from {drew} while it is traced, and a replay "
                    "would reuse the same draws on every call. Draw them outside and pass them "
                    "(a dropout mask, noise) as a differentiated argument (in argnum, as a "
                    "float array) to get replays")
            else:
                watched.snapshot()
                self._watch = watched
        return recording

    def _give_up(self, why: str) -> None:
        """Trace every call from now on, and say so once (`NotReplayableWarning`)."""
        self.not_replayable = why
        self._cache.clear()
        self._watch = None
        warn_at_caller(f"ardiff.compile: {function_name(self.fun)} is traced on every call "
                       f"(no replays): {why}.", NotReplayableWarning)

    def _verify(self, recording: _Recording, args, kwargs):
        """Check a recording on its first replay by tracing the call once more.

        Two traces with the same signature and the same guard answers must record the
        same graph; a difference means the function reads state that neither the
        signature nor `_Watch` sees (a generator it creates, the time, a file, another
        module's attribute), so replays stop.  Returns None when the recordings agree
        (the replay stands), else the fresh trace's `(value, gradient)`.
        """
        self.verifications += 1
        fresh = self._record(args, kwargs, watch=True, quiet=True)  # the replay warned
        if self.not_replayable is None:  # else it drew random numbers this time
            where = _difference(recording.call, fresh.call)
            if where is None:
                recording.verified = True
                return None
            self._give_up(
                f"two traces with the same argument signature recorded different graphs "
                f"({where}), so its result depends on state that compile does not see "
                "(see the notes of ardiff.compile). Pass that state as an argument to get "
                "replays")
        return fresh.call.value(), self._solve(fresh)

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
            # generated code has no local rules: those solves run the interpreter
            exact = recording.plan is not None and options.one_sweep and not options.rules
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

    Warns
    -----
    NotReplayableWarning
        Once, when `fun` draws random numbers while it is traced or two of its traces
        with the same signature record different constants; every call is traced from
        then on (`CompiledGrad.not_replayable` says why).

    Notes
    -----
    **What a replay reuses, and what is checked.**  A replay runs none of `fun`'s
    Python code: it reuses the recording of an earlier call, so it is right only if
    everything that call read is the same now.  compile checks, on every call:

    * *the arguments* (the signature): the argument structure, the shapes and dtypes
      of the differentiated leaves, and the values of all other arguments (arrays by
      their bytes, which the recording's own argument arrays must also still have;
      other objects by equality, so an object of your class by identity);
    * *the guards*: comparisons, truth tests and integer indices of traced values;
      when a replay would answer one differently, `fun` is traced again, so a replay
      never returns the gradient of a branch `fun` would not take;
    * *the state `fun` names*: the global names its code reads, its closure cells
      and argument defaults, the arguments of a `functools.partial`, and the
      attributes its code names of `self` (a bound method), of a callable object,
      and of every object or user module reached from those places or from the
      arguments; the functions and methods of your own code reached that way are
      walked the same way, and lists, tuples and dicts followed four levels deep.
      Arrays, lists and dicts must be the same object with the same content, numbers,
      strings and tuples of them equal, anything else the same object; after any
      change `fun` is traced again;
    * *random draws*: if NumPy's global random state, Python's `random`, or a
      `np.random.Generator`, `RandomState`, bit generator or `random.Random` reached
      from the arguments or the state above changed while `fun` was traced, a replay
      would repeat the same draws, so `fun` is traced on every call instead, with a
      `NotReplayableWarning`;
    * *a second trace*: the first replay of each recording runs `fun` once more
      (silently, without solving) and compares the two recordings; different
      constants (noise from a generator `fun` creates, a counter it increments and
      reads) make `fun` traced on every call, with a `NotReplayableWarning`.

    **What compile cannot see.**  State that changes after the second call and is
    reached any other way: attributes of NumPy, SciPy, ardiff or standard-library
    modules and of objects without a `__dict__`, attributes read by computed names
    (`getattr(obj, name)`), containers nested deeper than four levels, the content
    of other containers and objects (sets, deques, your objects' own state beyond
    the attributes the code names), class attributes of library classes, files,
    the clock, the environment.  And `fun`'s side effects (appending to a list,
    printing, counting) happen on traces only.  Pass anything that changes between
    calls as an argument: the current weights, the data batch, and a dropout mask or
    noise drawn outside `fun` (as a differentiated argument, whose gradient you
    ignore: a non-differentiated one is part of the signature, so each new value
    would trace again).

    **Cost.**  The checks run before every replay: one comparison per watched name,
    and watched arrays compared byte for byte (like array arguments), within 3 % of
    the replay time on the benchmark suite's compiled workloads; the second call of
    each signature also traces.  `CompiledGrad.verifications` counts those traces.
    """
    return CompiledGrad(fun, argnum, **options)
