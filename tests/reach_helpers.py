"""Whether a fixed step budget reaches a depth, from the exact binomial sums: tests that
run few steps on purpose expect the `ReachWarning` with `expect_reach` (issue 25).

Independent of `ardiff.solvers.theory`: the sums are written out in rational arithmetic.
"""

import contextlib
from fractions import Fraction
from math import comb

import pytest

import ardiff
from ardiff.solvers import compile_plan, unit_plan

#: The remaining fraction above which ardiff warns (issue 25).
REACH = 0.05


def tail(T, k, eta, schedule="parallel"):
    """Σ_{m<k} C(T, m) η^m |1-η|^(T-m) (parallel) or |1-η|^T Σ_{m<k} C(T+m-1, m) η^m
    (sequential): the weight of the initial errors left at distance k after T steps."""
    e = Fraction(eta).limit_denominator(10**6)
    rest = abs(1 - e)
    if T == 0:
        return 1.0
    if schedule == "parallel":
        return float(sum(comb(T, m) * e**m * rest ** (T - m) for m in range(min(k, T + 1))))
    return float(rest**T * sum(comb(T + m - 1, m) * e**m for m in range(k)))


def depth_of(graph, output=None, wrt=None, units="ops", rules=None):
    """D of the relaxing units (a structural fact of the plan, not a prediction)."""
    return unit_plan(compile_plan(graph, output, wrt, rules), units).max_depth


def expect_reach(depth, T, eta, schedule="parallel"):
    """`pytest.warns(ReachWarning)` naming `depth` when T fixed steps leave more than 0.05
    at that depth, else a context that expects nothing."""
    if depth == 0 or tail(T, depth, eta, schedule) <= REACH:
        return contextlib.nullcontext()
    return pytest.warns(ardiff.ReachWarning, match=f"depth {depth} ")
