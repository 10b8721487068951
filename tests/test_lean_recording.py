"""Lean recordings: a one-sweep gradient keeps only the forward values its VJPs read.

Truths: the gradients of a full recording (every value kept, the general solver
path) bit for bit, hand-written NumPy backward passes, central finite differences (one
case per declared op: `test_each_ops_declared_reads_are_all_its_vjps_need`), and
tracemalloc's count of the bytes a hand-written RNN gradient holds.
"""

import tracemalloc

import numpy as np
import pytest

import ardiff
import ardiff.numpy as anp
from ardiff.graph import Released, ReleasedValueError
from ardiff.op import OPS, Scale, defop
from ardiff.recorder import TracedCall


def rnn(X):
    def f(Wx, Wh):
        h = anp.zeros((X.shape[1], Wh.shape[0]))
        for t in range(X.shape[0]):
            h = anp.tanh(X[t] @ Wx + h @ Wh)
        return anp.sum(h ** 2)
    return f


def rnn_by_hand(X, Wx, Wh):
    hs = [np.zeros((X.shape[1], Wh.shape[0]))]
    for t in range(X.shape[0]):
        hs.append(np.tanh(X[t] @ Wx + hs[-1] @ Wh))
    g = 2.0 * hs[-1]
    gWx, gWh = np.zeros_like(Wx), np.zeros_like(Wh)
    for t in range(X.shape[0] - 1, -1, -1):
        g = g * (1.0 - hs[t + 1] * hs[t + 1])
        gWx += X[t].T @ g
        gWh += hs[t].T @ g
        g = g @ Wh.T
    return gWx, gWh


def rnn_problem(steps=12, batch=16, inputs=8, hidden=64):
    rng = np.random.default_rng(1)
    X = rng.standard_normal((steps, batch, inputs))
    Wx = rng.standard_normal((inputs, hidden)) * 0.3
    return X, Wx, rng.standard_normal((hidden, hidden)) * 0.1


def test_a_lean_recording_keeps_exactly_what_the_vjps_read(monkeypatch):
    """The products and sums of an RNN step are released (matmul and add read
    neither their answers nor, here, each other), the tanh states are kept (tanh's
    VJP reads its answer; the next product reads the state), as is the output."""
    monkeypatch.setattr("ardiff.op.RELEASE_MIN_BYTES", 4096)  # the production threshold
    X, Wx, Wh = rnn_problem()  # 16 x 64 float64 states: 8 kB each
    call = TracedCall(rnn(X), (0, 1), (Wx, Wh), {}, lean=True)
    kinds = {}
    for node in call.graph.nodes:
        if not node.is_leaf:
            kinds.setdefault(node.op_name, set()).add(type(node.value).__name__)
    assert kinds["matmul"] == {"Released"}
    assert kinds["add"] == {"Released"}
    assert kinds["tanh"] == {"ndarray"}
    assert type(call.graph.nodes[-1].value) is not Released  # the output
    released = [n for n in call.graph.nodes if type(n.value) is Released]
    assert released[0].value.shape == (16, 64) and released[0].value.dtype == np.float64
    # a step's sum reads neither product: its argument slots hold their stand-ins
    add = next(n for n in call.graph.nodes if n.op_name == "add")
    assert all(type(a) is Released for a in add.args)


def test_lean_gradients_are_the_full_recordings_bits_and_the_hand_written_ones():
    X, Wx, Wh = rnn_problem()
    lean = ardiff.grad(rnn(X), argnum=(0, 1))(Wx, Wh)
    full = ardiff.grad(rnn(X), argnum=(0, 1), method="relax", schedule="parallel",
                       max_iter=100)(Wx, Wh)  # not one sweep: a full recording
    by_hand = rnn_by_hand(X, Wx, Wh)
    for a, b, c in zip(lean, full, by_hand):
        np.testing.assert_allclose(a, c, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(b, c, rtol=1e-12, atol=1e-14)
    plain = ardiff.grad(rnn(X), argnum=(0, 1), method="backprop")(Wx, Wh)
    # the same sweep on a full recording (trace, then backprop): same bits
    graph = ardiff.trace(rnn(X), Wx, Wh, argnum=(0, 1))
    traced = ardiff.backprop(graph).grads
    for a, b, c in zip(lean, plain, traced):
        assert a.tobytes() == b.tobytes() == c.tobytes()


def test_a_vjp_reading_a_released_value_names_the_node():
    """An op that declares its VJP reads only its answer, but reads its argument: the
    sweep stops with ReleasedValueError naming the released node, not a wrong number."""
    wrong = defop("test_lean_wrongly_declared_square", np.square,
                  Scale(lambda ans, x: 2.0 * x), reads=("ans",))

    def f(x):
        return anp.sum(wrong(x * 3.0))

    x = np.linspace(-1.0, 1.0, 4)
    try:
        with pytest.raises(ReleasedValueError, match=r"node 1 \(op multiply"):
            ardiff.grad(f)(x)
        # recorded in full (the triangular solver reads every value), the op is right
        np.testing.assert_allclose(ardiff.grad(f, method="triangular")(x), 18.0 * x)
    finally:  # out of the table again (the table's own tests check every entry)
        del OPS[wrong.name]


def test_defop_checks_reads():
    with pytest.raises(ValueError, match="reads="):
        defop("test_lean_bad_reads", np.negative, Scale(lambda ans, x: -1.0),
              reads=(("answer",),))


def test_values_returned_to_the_user_are_kept():
    """The output of a lean recording is kept even when no VJP reads it."""
    def f(x):
        return anp.tanh(x) * 2.0  # multiply does not read its answer

    x = np.linspace(-1.0, 1.0, 600)
    call = TracedCall(f, 0, (x,), {}, lean=True)
    out = call.graph.nodes[call.output.node.index]
    assert out.op_name == "multiply" and type(out.value) is np.ndarray  # not released
    vjp, value = ardiff.make_vjp(f)(x)
    np.testing.assert_array_equal(value, np.tanh(x) * 2.0)
    np.testing.assert_allclose(vjp(np.ones_like(x)), 2.0 * (1.0 - np.tanh(x) ** 2))
    np.testing.assert_allclose(vjp(2.0 * np.ones_like(x)), 4.0 * (1.0 - np.tanh(x) ** 2))
    val, g = ardiff.value_and_grad(lambda x: anp.sum(f(x)))(x)
    assert val == pytest.approx(np.sum(np.tanh(x) * 2.0))


def test_rnn_gradient_peak_memory_is_near_the_hand_written_code():
    """Issue 13's memory target: the peak of one RNN gradient within 1.3x of the
    hand-written forward and backward pass (tracemalloc counts NumPy's buffers)."""
    X, Wx, Wh = rnn_problem(steps=40, batch=16, inputs=32, hidden=128)
    grad = ardiff.grad(rnn(X), argnum=(0, 1))
    peaks = {}
    for name, fun in (("ardiff", lambda: grad(Wx, Wh)),
                      ("hand", lambda: rnn_by_hand(X, Wx, Wh))):
        fun()
        tracemalloc.start()
        fun()
        peaks[name] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peaks["ardiff"] <= 1.3 * peaks["hand"], peaks


# -- every op's reads= declaration, put to the test --------------------------------------
# Each case calls one op on arguments that are themselves released (each passes through
# `+ 0.0`, whose answer no VJP reads) and feeds its answer to a product with constant
# weights (which does not read it), so a lean recording keeps of the op's point exactly
# what `reads=` declares: a VJP reading anything else raises ReleasedValueError.  Truths:
# the full recording's backprop (bit for bit; a compiled replay, which releases by the same
# declarations, to rounding), and central finite differences.
_RNG = np.random.default_rng(20261130)


def _u(lo, hi, shape=(2, 3)):
    return _RNG.uniform(lo, hi, shape)


def _spd(n=3):
    m = _RNG.standard_normal((n, n))
    return m @ m.T + n * np.eye(n)


def _op(name):
    return OPS[name]


def _complex(fun):
    """A case whose op takes complex arguments, built from pairs of real ones."""
    def run(*parts):
        return fun(*(re + im * 1j for re, im in zip(parts[::2], parts[1::2])))
    return run


def _unary(name, lo, hi, **kwargs):
    return (name, name, lambda x: _op(name)(x, **kwargs), (_u(lo, hi),))


_NONSYMMETRIC = np.diag([1.0, 2.0, 4.0]) + 0.3 * _u(-1, 1, (3, 3))
_DISTINCT = np.array([[0.3, -1.1, 0.7], [1.9, -0.4, 1.3]])  # no ties, off integers
_UNARY = [("absolute", -2, 2), ("square", -2, 2), ("sqrt", 0.5, 2), ("reciprocal", 0.5, 2),
          ("exp", -1, 1), ("exp2", -1, 1), ("expm1", -1, 1), ("log", 0.5, 2),
          ("log2", 0.5, 2), ("log10", 0.5, 2), ("log1p", 0.5, 2), ("sin", -2, 2),
          ("cos", -2, 2), ("tan", -1, 1), ("arcsin", -0.8, 0.8), ("arccos", -0.8, 0.8),
          ("arctan", -2, 2), ("sinh", -2, 2), ("cosh", -2, 2), ("tanh", -2, 2),
          ("arcsinh", -2, 2), ("arccosh", 1.5, 3), ("arctanh", -0.8, 0.8),
          ("deg2rad", -2, 2), ("rad2deg", -2, 2), ("sinc", 0.2, 1.5), ("expit", -2, 2),
          ("logit", 0.2, 0.8), ("erf", -1, 1), ("erfc", -1, 1), ("erfinv", -0.5, 0.5),
          ("erfcinv", 0.5, 1.5), ("ndtr", -1, 1), ("log_ndtr", -2, 2), ("ndtri", 0.2, 0.8),
          ("digamma", 0.5, 3), ("gammaln", 0.5, 3), ("gamma", 0.5, 3), ("rgamma", 0.5, 3),
          ("entr", 0.2, 2), ("i0", 0.5, 3), ("i1", 0.5, 3), ("i0e", -3, 3), ("i1e", -3, 3),
          ("j0", 0.5, 3), ("j1", 0.5, 3), ("y0", 0.5, 3), ("y1", 0.5, 3)]
_ZERO_GRADIENT = ["sign", "floor", "ceil", "rint", "trunc", "gammasgn"]

LEAN_CASES = [_unary(name, lo, hi) for name, lo, hi in _UNARY]
LEAN_CASES += [(name, name, lambda x, name=name: _op(name)(x), (_DISTINCT,))
               for name in _ZERO_GRADIENT]
LEAN_CASES += [
    ("absolute complex", "absolute", _complex(lambda z: _op("absolute")(z)),
     (_u(-2, 2), _u(-2, 2))),
    ("round", "round", lambda x: _op("round")(x, decimals=1), (_DISTINCT + 0.02,)),
    # PASS_THROUGH and NEGATED: inferred as reading nothing
    ("add", "add", lambda x, y: _op("add")(x, y), (_u(-2, 2), _u(-2, 2, (3,)))),
    ("subtract", "subtract", lambda x, y: _op("subtract")(x, y), (_u(-2, 2), _u(-2, 2))),
    ("negative", "negative", lambda x: _op("negative")(x), (_u(-2, 2),)),
    ("positive", "positive", lambda x: _op("positive")(x), (_u(-2, 2),)),
    ("broadcast_to", "broadcast_to", lambda x: _op("broadcast_to")(x, (2, 2, 3)), (_u(-2, 2),)),
    # binary elementwise
    ("multiply", "multiply", lambda x, y: _op("multiply")(x, y), (_u(-2, 2), _u(-2, 2))),
    ("divide", "divide", lambda x, y: _op("divide")(x, y), (_u(-2, 2), _u(0.5, 2))),
    ("power", "power", lambda x, y: _op("power")(x, y), (_u(0.5, 2), _u(-2, 2))),
    ("maximum", "maximum", lambda x, y: _op("maximum")(x, y), (_DISTINCT, _DISTINCT.T[::-1].T)),
    ("minimum", "minimum", lambda x, y: _op("minimum")(x, y), (_DISTINCT, _DISTINCT[::-1])),
    ("fmax", "fmax", lambda x, y: _op("fmax")(x, y), (_DISTINCT, _DISTINCT[::-1])),
    ("fmin", "fmin", lambda x, y: _op("fmin")(x, y), (_DISTINCT, _DISTINCT[::-1])),
    ("arctan2", "arctan2", lambda y, x: _op("arctan2")(y, x), (_u(-2, 2), _u(0.5, 2))),
    ("hypot", "hypot", lambda x, y: _op("hypot")(x, y), (_u(-2, 2), _u(0.5, 2))),
    ("logaddexp", "logaddexp", lambda x, y: _op("logaddexp")(x, y), (_u(-2, 2), _u(-2, 2))),
    ("logaddexp2", "logaddexp2", lambda x, y: _op("logaddexp2")(x, y),
     (_u(-2, 2), _u(-2, 2))),
    ("remainder", "remainder", lambda x, y: _op("remainder")(x, y),
     (np.array([[2.3, 5.1, 7.7], [1.2, 3.3, 9.4]]), np.array([[1.1, 1.5, 2.1]]))),
    ("clip", "clip", lambda x, lo, hi: _op("clip")(x, lo, hi),
     (_DISTINCT, np.full((2, 3), -0.5), np.full((2, 3), 1.0))),
    ("where", "where", lambda x, y: _op("where")(_DISTINCT > 0, x, y), (_u(-2, 2), _u(-2, 2))),
    # special functions of two or three arguments (orders and shape parameters plain)
    ("polygamma", "polygamma", lambda x: _op("polygamma")(1, x), (_u(0.5, 3),)),
    ("beta", "beta", lambda a, b: _op("beta")(a, b), (_u(0.5, 3), _u(0.5, 3))),
    ("betaln", "betaln", lambda a, b: _op("betaln")(a, b), (_u(0.5, 3), _u(0.5, 3))),
    ("gammainc", "gammainc", lambda x: _op("gammainc")(1.5, x), (_u(0.5, 3),)),
    ("gammaincc", "gammaincc", lambda x: _op("gammaincc")(1.5, x), (_u(0.5, 3),)),
    ("betainc", "betainc", lambda x: _op("betainc")(1.5, 2.5, x), (_u(0.2, 0.8),)),
    ("betaincc", "betaincc", lambda x: _op("betaincc")(1.5, 2.5, x), (_u(0.2, 0.8),)),
    ("stdtr", "stdtr", lambda t: _op("stdtr")(3.0, t), (_u(-2, 2),)),
    ("xlogy", "xlogy", lambda x, y: _op("xlogy")(x, y), (_u(-2, 2), _u(0.5, 2))),
    ("xlog1py", "xlog1py", lambda x, y: _op("xlog1py")(x, y), (_u(-2, 2), _u(0.5, 2))),
    ("iv", "iv", lambda x: _op("iv")(1.5, x), (_u(0.5, 3),)),
    ("ive", "ive", lambda x: _op("ive")(1.5, x), (_u(0.5, 3),)),
    ("jv", "jv", lambda x: _op("jv")(1.5, x), (_u(0.5, 3),)),
    ("yn", "yn", lambda x: _op("yn")(2, x), (_u(0.5, 3),)),
    # reductions and scans
    ("sum", "sum", lambda x: _op("sum")(x, axis=0), (_u(-2, 2),)),
    ("mean", "mean", lambda x: _op("mean")(x, axis=1), (_u(-2, 2),)),
    ("max", "max", lambda x: _op("max")(x, axis=1), (_DISTINCT,)),
    ("min", "min", lambda x: _op("min")(x, axis=0), (_DISTINCT,)),
    ("var", "var", lambda x: _op("var")(x, axis=0, ddof=1), (_u(-2, 2),)),
    ("var where", "var", lambda x: _op("var")(x, axis=1, where=_DISTINCT > 0), (_u(-2, 2),)),
    ("std", "std", lambda x: _op("std")(x, axis=1), (_u(-2, 2),)),
    ("prod", "prod", lambda x: _op("prod")(x, axis=1), (_u(-2, 2),)),
    ("cumsum", "cumsum", lambda x: _op("cumsum")(x, axis=1), (_u(-2, 2),)),
    ("cumprod", "cumprod", lambda x: _op("cumprod")(x, axis=1), (_u(0.5, 2),)),
    ("cumprod zero", "cumprod", lambda x: _op("cumprod")(x), (_u(0.5, 2) * [[1, 0, 1]] * 1.0,)),
    ("centre", "centre", lambda x: _op("centre")(x, axis=1, weights=[1.0, 2.0, 3.0]),
     (_u(-2, 2),)),
    ("logsumexp", "logsumexp", lambda x: _op("logsumexp")(x, axis=1), (_u(-2, 2),)),
    # shape ops and complex parts
    ("getitem", "getitem", lambda x: _op("getitem")(x, (slice(None), [2, 0, 2])), (_u(-2, 2),)),
    ("untake", "untake", lambda g: _op("untake")(g, (slice(None), [2, 0, 2]), (2, 3)),
     (_u(-2, 2),)),
    ("reshape", "reshape", lambda x: _op("reshape")(x, (3, 2)), (_u(-2, 2),)),
    ("transpose", "transpose", lambda x: _op("transpose")(x, (1, 0)), (_u(-2, 2),)),
    ("roll", "roll", lambda x: _op("roll")(x, 1, 1), (_u(-2, 2),)),
    ("astype", "astype", lambda x: _op("astype")(x, np.complex128), (_u(-2, 2),)),
    ("real", "real", _complex(lambda z: _op("real")(z)), (_u(-2, 2), _u(-2, 2))),
    ("imag", "imag", _complex(lambda z: _op("imag")(z)), (_u(-2, 2), _u(-2, 2))),
    ("conj", "conj", _complex(lambda z: _op("conj")(z)), (_u(-2, 2), _u(-2, 2))),
    ("angle", "angle", _complex(lambda z: _op("angle")(z, deg=True)), (_u(0.5, 2), _u(-2, 2))),
    # products, inverses, determinants, norms
    ("matmul", "matmul", lambda a, b: _op("matmul")(a, b), (_u(-2, 2), _u(-2, 2, (3, 2)))),
    # variadic: reads(k, n) (concatenate: shapes only; einsum: the other operands)
    ("concatenate", "concatenate", lambda a, b, c: _op("concatenate")(a, b, c, axis=1),
     (_u(-2, 2), _u(-2, 2, (2, 1)), _u(-2, 2, (2, 4)))),
    ("einsum", "einsum", lambda a, b, c: _op("einsum")("ij,jk,k->i", a, b, c),
     (_u(-2, 2), _u(-2, 2, (3, 4)), _u(-2, 2, (4,)))),
    ("dot", "dot", lambda a, b: _op("dot")(a, b), (_u(-2, 2), _u(-2, 2, (3,)))),
    ("tensordot", "tensordot", lambda a, b: _op("tensordot")(a, b, axes=1),
     (_u(-2, 2), _u(-2, 2, (3, 2)))),
    ("inv", "inv", lambda a: _op("inv")(a), (_spd(),)),
    ("solve vector", "solve", lambda a, b: _op("solve")(a, b), (_spd(), _u(-2, 2, (3,)))),
    ("solve matrix", "solve", lambda a, b: _op("solve")(a, b), (_spd(), _u(-2, 2, (3, 2)))),
    ("det", "det", lambda a: _op("det")(a), (np.stack([_spd(), _spd()]),)),
    ("logabsdet", "logabsdet", lambda a: _op("logabsdet")(a), (np.stack([_spd(), _spd()]),)),
    ("norm", "norm", lambda x: _op("norm")(x, axis=1), (_u(-2, 2),)),
    ("norm inf", "norm", lambda x: _op("norm")(x, ord=np.inf, axis=1), (_DISTINCT,)),
    ("norm 3", "norm", lambda x: _op("norm")(x, ord=3, axis=0), (_u(-2, 2),)),
    ("norm complex", "norm", _complex(lambda z: _op("norm")(z, ord=1, axis=1)),
     (_u(0.5, 2), _u(0.5, 2))),
    # decompositions and matrix functions
    ("solve_triangular", "solve_triangular",
     lambda a, b: _op("solve_triangular")(a, b, lower=True), (_spd(), _u(-2, 2, (3, 2)))),
    ("solve_triangular vector", "solve_triangular",
     lambda a, b: _op("solve_triangular")(a, b, trans=1), (_spd(), _u(-2, 2, (3,)))),
    ("cholesky", "cholesky", lambda a: _op("cholesky")(a), (_spd(),)),
    ("cholesky upper", "cholesky", lambda a: _op("cholesky")(a, upper=True), (_spd(),)),
    ("eigvalsh", "eigvalsh", lambda a: _op("eigvalsh")(a), (_spd(),)),
    ("eigh_vectors", "eigh_vectors", lambda a: _op("eigh_vectors")(a), (_spd(),)),
    # real distinct eigenvalues: real eigenvectors, so sum(v * w) has a gradient
    ("eigvals", "eigvals", lambda a: _op("eigvals")(a), (_NONSYMMETRIC,)),
    ("eig_vectors", "eig_vectors", lambda a: _op("eig_vectors")(a), (_NONSYMMETRIC,)),
    ("svdvals", "svdvals", lambda a: _op("svdvals")(a), (_u(-2, 2, (4, 3)),)),
    ("svd_u", "svd_u", lambda a: _op("svd_u")(a, full_matrices=False), (_u(-2, 2, (4, 3)),)),
    ("svd_vt", "svd_vt", lambda a: _op("svd_vt")(a, full_matrices=False),
     (_u(-2, 2, (3, 4)),)),
    ("qr_q", "qr_q", lambda a: _op("qr_q")(a), (_u(-2, 2, (4, 3)),)),
    ("qr_r", "qr_r", lambda a: _op("qr_r")(a), (_u(-2, 2, (3, 4)),)),
    ("pinv", "pinv", lambda a: _op("pinv")(a), (_u(-2, 2, (4, 3)),)),
    ("lu_factor", "lu_factor", lambda a: _op("lu_factor")(a), (_u(-2, 2, (3, 3)),)),
    ("expm", "expm", lambda a: _op("expm")(a), (_u(-0.5, 0.5, (3, 3)),)),
    ("sqrtm", "sqrtm", lambda a: _op("sqrtm")(a), (_spd(),)),
    ("solve_sylvester", "solve_sylvester", lambda a, b, q: _op("solve_sylvester")(a, b, q),
     (_spd(), _spd(), _u(-2, 2, (3, 3)))),
    # transforms and convolution
    ("fftn", "fftn", _complex(lambda z: _op("fftn")(z, axes=(0, 1))), (_u(-2, 2), _u(-2, 2))),
    ("ifftn", "ifftn", _complex(lambda z: _op("ifftn")(z, s=(4,), axes=(1,), norm="ortho")),
     (_u(-2, 2), _u(-2, 2))),
    ("rfftn", "rfftn", lambda x: _op("rfftn")(x, axes=(0, 1)), (_u(-2, 2, (2, 4)),)),
    ("irfftn", "irfftn", _complex(lambda z: _op("irfftn")(z, s=(4,), axes=(1,))),
     (_u(-2, 2), _u(-2, 2))),
    ("convolve full", "convolve_nd", lambda a, b: _op("convolve_nd")(a, b),
     (_u(-2, 2), _u(-2, 2, (2, 2)))),
    ("convolve valid", "convolve_nd", lambda a, b: _op("convolve_nd")(a, b, mode="valid"),
     (_u(-2, 2), _u(-2, 2, (2, 2)))),
]


def _weighted_total(out):
    """sum(out * w) for fixed w (the real part for a complex out): reads nothing of out."""
    size = int(np.prod(np.shape(out)))
    w = np.linspace(0.5, 1.5, size).reshape(np.shape(out))
    total = anp.sum(out * w)
    return anp.real(total) if np.dtype(out.dtype).kind == "c" else total


def _lean_program(fun, args, argnum):
    """The case as a function of the arguments `argnum` (the others plain constants)."""
    def program(*traced):
        full = list(args)
        for k, a in zip(argnum, traced):
            full[k] = a + 0.0  # an answer no VJP reads: released
        return _weighted_total(fun(*full))
    return program


def _central_differences(f, args, eps=1e-6):
    grads = []
    for k, a in enumerate(args):
        g = np.zeros_like(a)
        for i in np.ndindex(a.shape):
            step = np.zeros_like(a)
            step[i] = eps
            up = list(args)
            up[k] = a + step
            down = list(args)
            down[k] = a - step
            g[i] = (float(f(*up)) - float(f(*down))) / (2 * eps)
        grads.append(g)
    return grads


# astype's VJP casts the complex gradient of a real-to-complex cast back with a
# ComplexWarning (the value, its real part, is right under docs/complex.md)
_QUIET = {"astype": pytest.mark.filterwarnings("ignore::numpy.exceptions.ComplexWarning")}


def _lean_params():
    """Each case with all its arguments differentiated, and (several arguments) with each
    one alone: an argument's own VJP must then find everything it reads."""
    for case in LEAN_CASES:
        n = len(case[3])
        for argnum in [tuple(range(n))] + ([(k,) for k in range(n)] if n > 1 else []):
            tag = "" if len(argnum) == n else f" arg{argnum[0]}"
            yield pytest.param(case, argnum, id=case[0] + tag, marks=_QUIET.get(case[0], ()))


@pytest.mark.parametrize("case, argnum", list(_lean_params()))
def test_each_ops_declared_reads_are_all_its_vjps_need(case, argnum):
    _, name, fun, args = case
    program = _lean_program(fun, args, argnum)
    inputs = tuple(args[k] for k in argnum)
    positions = tuple(range(len(inputs)))
    # the setup: the op's arguments and answer are released unless declared read
    graph = TracedCall(program, positions, inputs, {}, lean=True).graph
    weighting = [n for n in graph.nodes if n.op_name == "multiply"][-1]  # out * w
    node = graph.nodes[dict(weighting.parents)[0]]
    assert node.op_name == name
    read = set().union(*(OPS[name].reads_of(k, len(node.args)) for k, _ in node.parents))
    assert node.parents
    for k, _ in node.parents:
        assert (type(node.args[k]) is Released) == (k not in read), (name, k)
    assert isinstance(node.value, (np.ndarray, Released))
    assert (type(node.value) is Released) == ("ans" not in read), name
    # the gradients: the full recording's bits, and finite differences
    lean = ardiff.grad(program, argnum=positions)(*inputs)
    full = ardiff.backprop(ardiff.trace(program, *inputs, argnum=positions)).grads
    numeric = _central_differences(program, inputs)
    # a compiled replay releases what no staged VJP reads, per argument (ardiff.codegen)
    compiled = ardiff.compile(program, argnum=positions)
    compiled(*inputs)
    replayed = compiled(*inputs)
    assert compiled.replays == 1
    for a, b, c, n in zip(lean, full, replayed, numeric):
        assert np.asarray(a).tobytes() == np.asarray(b).tobytes(), name
        np.testing.assert_allclose(c, b, rtol=1e-12, atol=1e-14, err_msg=name)
        np.testing.assert_allclose(a, n, rtol=1e-5, atol=1e-6, err_msg=name)
