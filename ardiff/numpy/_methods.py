"""Operators and array methods of :class:`~ardiff.tracer.Tracer`, and the tables
that route NumPy's ``__array_ufunc__`` / ``__array_function__`` calls to traced
implementations.  Kept here so that ``trace.py`` does not depend on the op table.
"""

from __future__ import annotations

import numpy as np

from ..graph import unwrap
from ..tracer import Tracer, TracingError, concrete


def _index(key):
    """Plain NumPy index from one that may contain traced integers or lists."""
    items = key if isinstance(key, tuple) else (key,)
    out = []
    for item in items:
        if isinstance(item, Tracer):
            item = concrete(np.asarray, item)
            if not np.issubdtype(np.result_type(item), np.integer) and \
                    np.result_type(item) != np.bool_:
                raise TracingError("A traced float value cannot be used as an index.")
        if isinstance(item, list):
            item = np.asarray(item)
        out.append(item)
    return tuple(out) if isinstance(key, tuple) else out[0]


def install(ns, ufunc_impls, function_impls, getitem, untake):
    """Attach operators/methods to Tracer and fill the NumPy dispatch tables."""
    def binary(name, fun):
        setattr(Tracer, f"__{name}__", lambda self, other: fun(self, other))
        setattr(Tracer, f"__r{name}__", lambda self, other: fun(other, self))

    binary("add", ns["add"])
    binary("sub", ns["subtract"])
    binary("mul", ns["multiply"])
    binary("truediv", ns["divide"])
    binary("pow", ns["power"])
    binary("matmul", ns["matmul"])
    binary("mod", ns["remainder"])
    binary("floordiv", lambda a, b: np.floor_divide(unwrap(a), unwrap(b)))
    Tracer.__neg__ = lambda self: ns["negative"](self)
    Tracer.__pos__ = lambda self: self
    Tracer.__abs__ = lambda self: ns["absolute"](self)
    Tracer.__divmod__ = lambda self, other: (self // other, self % other)
    Tracer.__rdivmod__ = lambda self, other: (other // self, other % self)
    Tracer.__round__ = lambda self, ndigits=None: ns["round"](self, ndigits or 0)
    for name, fun in [("lt", np.less), ("le", np.less_equal), ("gt", np.greater),
                      ("ge", np.greater_equal), ("eq", np.equal), ("ne", np.not_equal)]:
        setattr(Tracer, f"__{name}__",
                lambda self, other, fun=fun: concrete(fun, self, other))
    Tracer.__getitem__ = lambda self, key: getitem(self, _index(key))

    Tracer.T = property(lambda self: ns["transpose"](self), doc="Transposed view (traced).")

    def reshape(self, *shape, order="C"):
        if len(shape) == 1 and not isinstance(shape[0], (int, np.integer)):
            shape = tuple(shape[0])
        return ns["reshape"](self, shape, order)

    methods = {
        "reshape": reshape,
        "transpose": lambda self, *axes: ns["transpose"](
            self, (axes[0] if len(axes) == 1 and not isinstance(axes[0], int) else axes) or None),
        "astype": lambda self, dtype, **kw: ns["array"](self, dtype=dtype),
        "dot": lambda self, other: ns["dot"](self, other),
        "ravel": lambda self, order="C": ns["ravel"](self),
        "flatten": lambda self, order="C": ns["ravel"](self),
        "squeeze": lambda self, axis=None: ns["squeeze"](self, axis),
        "swapaxes": lambda self, a, b: ns["swapaxes"](self, a, b),
        "repeat": lambda self, repeats, axis=None: ns["repeat"](self, repeats, axis),
        "clip": lambda self, a_min=None, a_max=None, **kw: ns["clip"](self, a_min, a_max, **kw),
        "copy": lambda self: self,
        "take": lambda self, indices, axis=None: ns["take"](self, indices, axis),
        "diagonal": lambda self, offset=0, axis1=0, axis2=1: ns["diagonal"](
            self, offset, axis1, axis2),
        "trace": lambda self, offset=0, axis1=0, axis2=1: ns["trace"](self, offset, axis1, axis2),
        "item": lambda self: self._detach_error("item()"),
        "tolist": lambda self: self._detach_error("tolist()"),
    }
    for name in ("sum", "mean", "prod", "max", "min", "var", "std", "cumsum", "cumprod"):
        methods[name] = (lambda fun: lambda self, *args, **kwargs: fun(self, *args, **kwargs))(
            ns[name])
    for name, method in methods.items():
        setattr(Tracer, name, method)

    # NumPy dispatch: every ardiff.numpy function with a NumPy namesake.
    for name, impl in list(ns.items()):
        if name.startswith("_") or not callable(impl) or isinstance(impl, type):
            continue
        target = getattr(np, name, None)
        if isinstance(target, np.ufunc):
            ufunc_impls[target] = impl
        elif callable(target) and not isinstance(target, type):
            function_impls[target] = impl
    for name in ("inv", "solve", "det", "slogdet", "norm"):
        function_impls[getattr(np.linalg, name)] = getattr(ns["linalg"], name)
    import scipy.special

    from ..ops import OPS

    for name in ("expit", "erf"):
        ufunc_impls[getattr(scipy.special, name)] = OPS[name]
