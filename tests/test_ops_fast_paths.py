"""The operator fast path of add/subtract/multiply/divide is the ufunc, bit for bit.

Independent truth: the NumPy ufunc itself, on every pair of operand kinds the
fast path accepts (and a few it must refuse), including signed zeros, infinities,
NaN and division by zero.
"""

import itertools
import warnings

import numpy as np
import pytest

from ardiff.op import OPS

UFUNCS = {"add": np.add, "subtract": np.subtract, "multiply": np.multiply,
          "divide": np.divide}

OPERANDS = [np.float64(1.5), np.float64(-0.0), np.float64(np.inf), np.float64(np.nan), 2.0,
            0.0, 3, np.float32(1.25), np.int64(2), True, np.array(2.0), np.array([1.0, -2.0]),
            np.array([1, 2], dtype=np.float32), np.array([[0.0], [3.0]]), [1.0, 2.0]]


def _outcome(fun, x, y):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            value = fun(x, y)
        except Exception as exc:  # both sides must fail alike
            return ("error", type(exc)), []
    return value, sorted({w.category.__name__ for w in caught})


@pytest.mark.parametrize("name", sorted(UFUNCS))
def test_fast_path_is_the_ufunc(name):
    fwd, ufunc = OPS[name].fwd, UFUNCS[name]
    for x, y in itertools.product(OPERANDS, repeat=2):
        got, got_warn = _outcome(fwd, x, y)
        want, want_warn = _outcome(ufunc, x, y)
        where = f"{name}({x!r}, {y!r})"
        assert type(got) is type(want), where
        assert got_warn == want_warn, where
        if isinstance(want, tuple):
            assert got == want, where
            continue
        assert np.result_type(got) == np.result_type(want), where
        assert np.shape(got) == np.shape(want), where
        np.testing.assert_array_equal(got, want, err_msg=where)
        # signed zeros too: compare the bits
        assert np.array_equal(np.signbit(got), np.signbit(want)), where


def test_keyword_arguments_reach_the_ufunc():
    out = OPS["add"].fwd(np.float64(1.0), np.float64(2.0), dtype=np.float32)
    assert np.result_type(out) == np.float32
