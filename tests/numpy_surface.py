"""The NumPy surface, classified (issue 20, point 1).

Every public callable of `numpy`, `numpy.linalg` and `numpy.fft` is called on traced
float input, with the signatures of `SIGNATURES` (`f(x)`, `f(x, c)`, `f(c, x)`,
`f(x, 2)`, `f(x, x)`, `f(M)`, `f(M, 2)`, `f(M, 1)`, `f(M, M)`, `f(M, c3)`,
`f(M, axis=0)`), and again through its
`ardiff.numpy` namesake where there is one, plus the keyword patterns of `SPECIAL_CASES`
(`weights=`, `density=`, coordinates, ...).  `classify` sorts each call into one of

* ``matched``: the forward values equal NumPy's and the gradient of a fixed random
  projection of every float output (tuples included) equals central finite differences;
* ``refused``: `ardiff.TracingError` naming the function and saying what to use;
* ``plain``: the call returns plain values only, for one of the reasons of
  `PLAIN_REASONS`: integer or boolean outputs, outputs that are not arrays, float outputs
  that do not depend on the traced argument at all, or a function of `PIECEWISE_CONSTANT`
  (whose finite-difference derivative is then checked to be zero);
* ``skipped``: plain NumPy raises for that signature too (or gives non-finite values
  there), or the callable is in `NOT_CALLED` (I/O, global state, uninitialised memory);
* ``defect``: anything else, a silent wrong gradient above all.

`tests/test_numpy_surface.py` asserts that there are no defects;
`python tools/numpy_surface.py` prints the counts table.
"""

from __future__ import annotations

import math
import time
import warnings
from collections import Counter
from dataclasses import dataclass

import numpy as np

import ardiff
import ardiff.numpy as anp
from ardiff.tracer import DETACH_HELP

#: The traced argument's value: distinct entries, away from integers and half-integers
#: (floor, round), from 0 and 1 (log, arccos), and from each other.
X0 = np.array([0.31, 0.72, 0.45, 0.58, 0.26])
#: A plain float argument of the same shape, of both signs (copysign, arctan2, ...).
C = np.array([0.4, -0.7, 1.3, 0.9, -0.2])
#: The traced matrix: well conditioned, non-symmetric, real distinct eigenvalues.
M0 = np.array([[2.1, 0.3, -0.4], [0.1, 1.6, 0.2], [-0.3, 0.37, 1.2]])
#: Integer data for the patterns that need it (bincount's bins, ...).
IDX = np.array([0, 2, 1, 2, 4])
for _a in (X0, C, M0, IDX):  # read-only: a call that would write into one (out=) raises
    _a.flags.writeable = False

#: Where NumPy's values at X0 or M0 are not finite, the survey tries X0 + SHIFT (M0 + SHIFT).
SHIFT = 1.5

#: Central finite differences: step and tolerance.
STEP = 1e-6
RTOL, ATOL = 1e-4, 1e-6

#: name -> (call with the traced value, point).  `f` is the function under test.
SIGNATURES = {
    "f(x)": (lambda f, t: f(t), X0),
    "f(x, c)": (lambda f, t: f(t, C), X0),
    "f(c, x)": (lambda f, t: f(C, t), X0),
    "f(x, 2)": (lambda f, t: f(t, 2), X0),
    "f(M)": (lambda f, t: f(t), M0),
    "f(M, 2)": (lambda f, t: f(t, 2), M0),
    "f(x, x)": (lambda f, t: f(t, t), X0),
    "f(M, M)": (lambda f, t: f(t, t), M0),
    "f(M, c3)": (lambda f, t: f(t, C[:3]), M0),
    "f(M, 1)": (lambda f, t: f(t, 1), M0),
    "f(M, axis=0)": (lambda f, t: f(t, axis=0), M0),
}

#: Callables the survey does not call, with the reason.
NOT_CALLED = {
    **dict.fromkeys(
        "save savez savez_compressed savetxt load loadtxt genfromtxt fromfile fromregex "
        "tofile".split(), "file I/O"),
    **dict.fromkeys(
        "info show_config show_runtime test lookfor source who disp".split(),
        "prints or runs tests"),
    **dict.fromkeys(
        "seterr seterrcall setbufsize set_printoptions set_string_function printoptions "
        "seterrobj".split(), "changes global state"),
    **dict.fromkeys("empty empty_like".split(), "uninitialised memory"),
}

#: Functions NumPy runs without dispatching to traced values (no `__array_function__`),
#: which read what a traced value does not have (memory layout, a buffer) or treat anything
#: but an ndarray as something else: they raise NumPy's own error (or, `bmat`, return
#: None), and ardiff never sees the call.  Anything else raising an error other than
#: `TracingError` where NumPy succeeds is a defect.
NOT_DISPATCHED = {
    "isfortran": "reads ndarray.flags (memory layout)",
    "frombuffer": "reads the buffer protocol",
    "fromstring": "reads the buffer protocol (NumPy < 2: on an array)",
    "byte_bounds": "reads __array_interface__ (memory; NumPy < 2)",
    "from_dlpack": "reads the DLPack protocol",
    "mintypecode": "takes type characters, not arrays (iterates and compares with strings)",
    "bmat": "returns None for anything but a string, list, tuple or ndarray",
}

#: Functions whose float outputs are piecewise constant in their argument: they may
#: return plain arrays (no gradient), and the survey checks that their finite-difference
#: derivative is zero at the test point.  One entry per function, with the reason.
PIECEWISE_CONSTANT = {
    "floor_divide": "x // y rounds the quotient down to an integer",
    "divmod": "its quotient x // y is an integer (the remainder is traced)",
    "angle": "the angle of a real value is 0 or pi (of a complex one it is traced)",
    "heaviside": "a step function of its first argument",
    "roll": "a traced shift is read as an integer number of places (roll(c, x))",
    **dict.fromkeys(
        ("histogram", "histogram2d", "histogramdd"),
        "counts without weights, and densities over fixed bins, change only when a sample "
        "crosses an edge (weights, data-dependent edges and densities over them are traced)"),
}

#: Why a call may return plain values only (the keys of the ``plain`` counts).
PLAIN_REASONS = {
    "integer or boolean": "every output is an integer or boolean array (indices, counts, "
                          "masks, shapes): no gradient by definition",
    "not an array": "the output holds no array (a string, a type, an object, None)",
    "independent of x": "float outputs that do not change when the traced argument changes "
                        "(zeros_like, the bin edges of explicitly given bins, ...)",
    "piecewise constant": "a function of PIECEWISE_CONSTANT",
}


@dataclass(frozen=True)
class Case:
    """One call: `call(f, t)` on the traced value `t` at `point`."""

    module: str  # "np", "np.linalg", "np.fft", "anp", "anp.linalg", "anp.fft"
    name: str
    signature: str
    call: object
    point: np.ndarray

    @property
    def label(self) -> str:
        return f"{self.module}.{self.name} {self.signature}"


@dataclass(frozen=True)
class Outcome:
    kind: str  # matched / refused / plain / skipped / defect
    reason: str
    case: Case


def _h(a, b, **kw):
    return np.histogram(a, bins=b, **kw)


#: The patterns of issue 20 and their neighbours: keyword arguments and positions the
#: generic signatures do not reach.  name -> [(signature, call, point)].
SPECIAL_CASES = {
    "copysign": [("copysign(x, c)", lambda f, t: f(t, C), X0),
                 ("copysign(c, x)", lambda f, t: f(C, t), X0),
                 ("copysign(-x, c)", lambda f, t: f(-t, C), X0)],
    "bincount": [("bincount(idx, weights=x)", lambda f, t: f(IDX, weights=t), X0),
                 ("bincount(idx, weights=x, minlength=7)",
                  lambda f, t: f(IDX, weights=t, minlength=7), X0)],
    "histogram": [("histogram(c, weights=x)", lambda f, t: f(C, weights=t), X0),
                  ("histogram(x)", lambda f, t: f(t), X0),
                  ("histogram(x, bins=3)", lambda f, t: f(t, bins=3), X0),
                  ("histogram(x, density=True)", lambda f, t: f(t, bins=3, density=True), X0),
                  ("histogram(x, range=(0, 1), density=True)",
                   lambda f, t: f(t, bins=4, range=(0, 1), density=True), X0),
                  ("histogram(c, bins=3, weights=x, density=True)",
                   lambda f, t: f(C, bins=3, weights=t, density=True), X0),
                  ("histogram(x, bins=[0, .5, 1])", lambda f, t: f(t, bins=[0, .5, 1]), X0),
                  ("histogram(c, bins=x-sorted)", lambda f, t: f(C, bins=np.sort(t)), X0),
                  ("histogram(c, range=(-0.5, 1), weights=x)",
                   lambda f, t: f(C, bins=3, range=(-0.5, 1.0), weights=t), X0),
                  ("histogram(x, bins='auto')", lambda f, t: f(t, bins="auto"), X0),
                  ("histogram(M, bins=4, weights=M)", lambda f, t: f(t, bins=4, weights=t), M0)],
    "histogram_bin_edges": [("histogram_bin_edges(x)", lambda f, t: f(t), X0),
                            ("histogram_bin_edges(x, bins=3)", lambda f, t: f(t, bins=3), X0),
                            ("histogram_bin_edges(x, range=(0, 1))",
                             lambda f, t: f(t, bins=4, range=(0, 1)), X0)],
    "histogram2d": [("histogram2d(x, c)", lambda f, t: f(t, C, bins=3), X0),
                    ("histogram2d(c, x)", lambda f, t: f(C, t, bins=3), X0),
                    ("histogram2d(c, c, weights=x)",
                     lambda f, t: f(C, C[::-1], bins=3, weights=t), X0),
                    ("histogram2d(x, c, density=True)",
                     lambda f, t: f(t, C, bins=3, density=True), X0)],
    "histogramdd": [("histogramdd(M)", lambda f, t: f(t, bins=2), M0),
                    ("histogramdd(c-sample, weights=x)",
                     lambda f, t: f(np.stack([C, C[::-1]], axis=1), bins=2, weights=t), X0),
                    ("histogramdd(M, density=True)",
                     lambda f, t: f(t, bins=2, density=True), M0)],
    "unique": [("unique(x)", lambda f, t: f(t), X0),
               ("unique(x, return_inverse=True)", lambda f, t: f(t, return_inverse=True), X0),
               ("unique(x, return_index, return_counts)",
                lambda f, t: f(t, return_index=True, return_counts=True), X0),
               ("unique(repeated x)", lambda f, t: f(t[IDX]), X0),
               ("unique(M, axis=0)", lambda f, t: f(t, axis=0), M0)],
    "gradient": [("gradient(c, x)", lambda f, t: f(C, t), X0),
                 ("gradient(x, x)", lambda f, t: f(t, t), X0),
                 ("gradient(c, x, edge_order=2)", lambda f, t: f(C, t, edge_order=2), X0),
                 ("gradient(x, 0.5)", lambda f, t: f(t, 0.5), X0),
                 ("gradient(c, dx=x[0])", lambda f, t: f(C, t[0]), X0),
                 ("gradient(M, x[:3], x[2:])", lambda f, t: f(t[:3, None] * t[None, 2:],
                                                            t[:3], t[2:]), X0)],
    "cond": [("cond(M)", lambda f, t: f(t), M0),
             ("cond(M, 'fro')", lambda f, t: f(t, "fro"), M0),
             ("cond(M, 1)", lambda f, t: f(t, 1), M0),
             ("cond(M, -1)", lambda f, t: f(t, -1), M0),
             ("cond(M, inf)", lambda f, t: f(t, np.inf), M0),
             ("cond(M, -2)", lambda f, t: f(t, -2), M0),
             ("cond(M, 'nuc')", lambda f, t: f(t, "nuc"), M0)],
    "digitize": [("digitize(x, c-sorted)", lambda f, t: f(t, np.sort(C)), X0)],
    "searchsorted": [("searchsorted(sorted x, c)", lambda f, t: f(t[[4, 0, 2, 3, 1]], C), X0)],
}


def public_callables(module) -> list[str]:
    """The public callables of `module`, modules and private names excluded."""
    names = []
    for name in sorted(dir(module)):
        if name.startswith("_"):
            continue
        try:
            value = getattr(module, name)
        except AttributeError:  # deprecated aliases that raise on access
            continue
        if callable(value) and not isinstance(value, (type(np), type)):
            names.append(name)
    return names


_MODULES = {"np": np, "np.linalg": np.linalg, "np.fft": np.fft,
            "anp": anp, "anp.linalg": anp.linalg, "anp.fft": anp.fft}


def cases() -> list[Case]:
    """Every call of the survey."""
    out = []
    for module in ("np", "np.linalg", "np.fft"):
        numpy_module = _MODULES[module]
        traced_module = _MODULES["a" + module]
        traced_names = set(getattr(traced_module, "__all__", ()))
        traced_names |= set(getattr(traced_module, "WITHOUT_GRADIENT", ()))
        for name in public_callables(numpy_module):
            for signature, (call, point) in SIGNATURES.items():
                out.append(Case(module, name, signature, call, point))
                if name in traced_names:
                    out.append(Case("a" + module, name, signature, call, point))
            for signature, call, point in SPECIAL_CASES.get(name, ()):
                out.append(Case(module, name, signature, call, point))
                if name in traced_names:
                    out.append(Case("a" + module, name, signature, call, point))
    return out


# -- outputs ------------------------------------------------------------------------
def _leaves(out, found=None):
    """The array-like leaves of an output (tuples, lists and named tuples walked)."""
    found = [] if found is None else found
    if isinstance(out, ardiff.Tracer):
        found.append(out)
    elif isinstance(out, (tuple, list)):
        for item in out:
            _leaves(item, found)
    elif isinstance(out, (np.ndarray, np.generic, float, int, complex, bool)):
        found.append(out)
    return found


def _kind(leaf) -> str:
    value = leaf.value if isinstance(leaf, ardiff.Tracer) else leaf
    return np.result_type(np.asarray(value)).kind


def _float(leaf) -> bool:
    return _kind(leaf) in "fc"


def _weights(i: int, shape: tuple) -> tuple:
    rng = np.random.default_rng(1000 + i)
    return rng.standard_normal(shape), rng.standard_normal(shape)


def _project(out):
    """A fixed random linear functional of every float output, traced where they are."""
    total = 0.0
    for i, leaf in enumerate(_leaves(out)):
        if not _float(leaf):
            continue
        wr, wi = _weights(i, np.shape(leaf.value if isinstance(leaf, ardiff.Tracer) else leaf))
        if _kind(leaf) == "c":
            total = total + anp.sum(wr * anp.real(leaf)) + anp.sum(wi * anp.imag(leaf))
        else:
            total = total + anp.sum(wr * leaf)
    return total


def _read_only(a):
    a = np.array(a)
    a.flags.writeable = False
    return a


def _finite_differences(fun, point) -> np.ndarray:
    grad = np.zeros_like(point)
    for i in np.ndindex(point.shape):
        e = np.zeros_like(point)
        e[i] = STEP
        grad[i] = (fun(_read_only(point + e)) - fun(_read_only(point - e))) / (2 * STEP)
    return grad


def _same_values(a, b) -> bool:
    try:
        a, b = np.asarray(a), np.asarray(b)
    except Exception:
        return False
    if a.shape != b.shape:
        return False
    if a.dtype.kind in "fc" or b.dtype.kind in "fc":
        return bool(np.allclose(a, b, rtol=1e-9, atol=1e-12, equal_nan=True))
    return bool(np.array_equal(a, b))


def _refusal(message: str, case: Case, func) -> str | None:
    """Why a `TracingError` is a proper refusal (None if it is not one): it names the
    function called, or the NumPy function that function handed the traced value to, or
    it is the conversion error of a call NumPy does not dispatch (`np.asarray(x)` and
    the like, which ardiff only sees as a conversion); and it says what to do."""
    if not any(word in message.lower() for word in ("use", "instead", "express")):
        return None
    names = {case.name, getattr(func, "__name__", case.name)}
    if any(name in message for name in names):
        return "names the function"
    if "NumPy function numpy." in message or "NumPy ufunc np." in message:
        return "names the NumPy function it calls"
    if DETACH_HELP in message:
        return "conversion (NumPy does not dispatch)"
    return None


def classify(case: Case) -> Outcome:
    """Sort one call into matched / refused / plain / skipped / defect."""
    if case.name in NOT_CALLED:
        return Outcome("skipped", NOT_CALLED[case.name], case)
    func = getattr(_MODULES[case.module], case.name)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        return _classify(case, func)


def _classify(case: Case, func) -> Outcome:
    numpy_func = getattr(_MODULES[case.module.removeprefix("a")], case.name)
    for point in (case.point, case.point + SHIFT):  # the second for arccosh, ...
        try:
            expected = case.call(numpy_func, _read_only(point))
        except Exception as e:  # the signature does not apply
            return Outcome("skipped", f"NumPy raises {type(e).__name__}", case)
        expected_leaves = _leaves(expected)
        if all(np.all(np.isfinite(leaf)) for leaf in expected_leaves if _float(leaf)):
            break
    else:
        return Outcome("skipped", "NumPy gives non-finite values", case)

    seen = {}

    def traced(t):
        out = case.call(func, t)
        seen["out"] = out
        total = _project(out)
        if not isinstance(total, ardiff.Tracer):  # nothing traced: a zero gradient
            total = anp.sum(t) * 0.0 + total
        return total

    try:
        gradient = ardiff.grad(traced)(point.copy())
    except ardiff.TracingError as e:
        reason = _refusal(str(e), case, numpy_func)
        if reason is None:
            return Outcome("defect", f"TracingError that does not name the function or say "
                                     f"what to use: {e}", case)
        return Outcome("refused", reason, case)
    except Exception as e:
        if case.name in NOT_DISPATCHED:
            return Outcome("not dispatched", NOT_DISPATCHED[case.name], case)
        return Outcome("defect", f"NumPy succeeds, ardiff raises {type(e).__name__}: {e}", case)

    got_leaves = _leaves(seen["out"])
    if len(got_leaves) != len(expected_leaves) and case.name in NOT_DISPATCHED:
        return Outcome("not dispatched", NOT_DISPATCHED[case.name], case)
    if len(got_leaves) != len(expected_leaves):
        return Outcome("defect", f"{len(got_leaves)} outputs, NumPy gives "
                                 f"{len(expected_leaves)}", case)
    for got, want in zip(got_leaves, expected_leaves):
        value = got.value if isinstance(got, ardiff.Tracer) else got
        if not _same_values(value, want):
            return Outcome("defect", "forward values differ from NumPy's", case)

    plain_float = [i for i, leaf in enumerate(got_leaves)
                   if _float(leaf) and not isinstance(leaf, ardiff.Tracer)]
    traced_float = [i for i, leaf in enumerate(got_leaves)
                    if _float(leaf) and isinstance(leaf, ardiff.Tracer)]

    def projected(leaves):
        def fun(p):
            return _plain_projection(case.call(numpy_func, p), leaves)
        return fun

    # plain float outputs: constant in x, or a listed piecewise constant function
    varying = []
    for i in plain_float:
        fd = _finite_differences(projected({i}), point)
        if not np.allclose(fd, 0.0, atol=ATOL):
            return Outcome("defect", f"output {i} is plain but its finite-difference "
                                     f"derivative is {fd.ravel()[:4]}...", case)
        far = case.call(numpy_func, _read_only(_far(point)))
        far_leaves = _leaves(far)
        if len(far_leaves) != len(got_leaves) or not _same_values(far_leaves[i], got_leaves[i]):
            varying.append(i)
    if varying and case.name not in PIECEWISE_CONSTANT:
        return Outcome("defect", f"plain float outputs {varying} change with x: piecewise "
                                 "constant, but not listed in PIECEWISE_CONSTANT", case)

    if traced_float:
        fd = _finite_differences(projected(set(traced_float)), point)
        if not np.allclose(gradient, fd, rtol=RTOL, atol=ATOL * (1 + np.max(np.abs(fd)))):
            worst = np.unravel_index(np.argmax(np.abs(gradient - fd)), fd.shape)
            return Outcome("defect", f"gradient {np.ravel(gradient)[:4]} ... finite "
                                     f"differences {fd.ravel()[:4]} ... (worst at {worst}: "
                                     f"{gradient[worst]} vs {fd[worst]})", case)
        return Outcome("matched", "", case)
    if varying:
        return Outcome("plain", "piecewise constant", case)
    if plain_float:
        return Outcome("plain", "independent of x", case)
    if got_leaves:
        if not np.allclose(gradient, 0.0):
            return Outcome("defect", "nonzero gradient of a call without float outputs", case)
        return Outcome("plain", "integer or boolean", case)
    return Outcome("plain", "not an array", case)


def _far(point):
    """Another point, far from `point` (for telling constants from piecewise constants)."""
    far = np.ravel(point)[::-1] ** 3 + 0.5  # not affine: histograms of it differ
    return far.reshape(np.shape(point))


def _plain_projection(out, leaves) -> float:
    total = 0.0
    for i, leaf in enumerate(_leaves(out)):
        if i not in leaves or not _float(leaf):
            continue
        wr, wi = _weights(i, np.shape(leaf))
        total += float(np.sum(wr * np.real(leaf)) + np.sum(wi * np.imag(leaf)))
    return total


def survey(selected=None) -> list[Outcome]:
    """Classify every case (or those whose name is in `selected`)."""
    return [classify(c) for c in cases() if selected is None or c.name in selected]


def counts(outcomes) -> Counter:
    """(kind, reason) counts; refusals and skips are counted by kind only."""
    table: Counter = Counter()
    for o in outcomes:
        table[(o.kind, o.reason if o.kind != "defect" else "")] += 1
    return table


def format_table(outcomes) -> str:
    table = counts(outcomes)
    width = max(len(reason) for _, reason in table) + 2
    lines = [f"{'outcome':<15} {'reason':<{width}} {'calls':>6}"]
    for (kind, reason), n in sorted(table.items()):
        lines.append(f"{kind:<15} {reason:<{width}} {n:>6}")
    lines.append(f"{'total':<{width + 16}} {sum(table.values()):>6}")
    return "\n".join(lines)


def main() -> None:
    start = time.perf_counter()
    outcomes = survey()
    print(format_table(outcomes))
    print(f"({time.perf_counter() - start:.1f} s, NumPy {np.__version__})")
    defects = [o for o in outcomes if o.kind == "defect"]
    for o in defects:
        print(f"DEFECT {o.case.label}: {o.reason[:300]}")
    plain = sorted({o.case.name for o in outcomes if o.reason == "piecewise constant"})
    print("kept plain (piecewise constant):", ", ".join(plain))
    _ = math


if __name__ == "__main__":
    main()
