"""The solvers' relative residual (ardiff/solvers/residuals.py) against its definition.

Each case computes what the docstrings define by hand, in plain Python on the entries
(max |t - x|, max |t|, the entries finite on both sides, the relative measure with its
floors), and compares it with the module's answer.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import ardiff
from ardiff.solvers.residuals import (
    NEGLIGIBLE,
    max_abs,
    residual_parts,
    worst_residual,
)


def by_hand(target, x):
    """(max|t - x|, max|t|) over the entries, moduli for complex values."""
    t, v = np.ravel(target), np.ravel(np.broadcast_to(x, np.shape(target)))
    return max(abs(a - b) for a, b in zip(t, v)), max(abs(a) for a in t)


@pytest.mark.parametrize("target, x", [
    (np.array([1.0, -3.0, 2.0]), np.array([0.5, -1.0, 2.5])),
    (np.array([-4.0, 0.25]), np.array([1.0, 0.0])),          # largest entries negative
    (np.array([[1.0 + 2.0j, -3.0j]]), np.array([[0.0, 1.0 + 1.0j]])),  # complex: moduli
    (np.array(2.5), np.array(-0.5)),                           # 0-d
    (np.float64(-7.0), np.float64(1.0)),                       # NumPy scalars
])
def test_parts_are_the_largest_gap_and_target(target, x):
    num, tmax, diff = residual_parts(target, x)
    want_num, want_t = by_hand(target, x)
    assert num == pytest.approx(want_num, rel=1e-15) and tmax == pytest.approx(want_t, rel=1e-15)
    np.testing.assert_array_equal(diff, target - x)  # handed to the Euler step as it is


def test_empty_activity_has_no_residual():
    num, tmax, diff = residual_parts(np.zeros((0, 3)), np.zeros((0, 3)))
    assert (num, tmax) == (0.0, 0.0) and diff.shape == (0, 3)
    assert max_abs(np.zeros(0)) == 0.0
    assert max_abs(np.array([-2.0, 1.0])) == 2.0


def test_non_finite_entries_are_judged_on_the_finite_ones():
    target = np.array([1.0, np.nan, 3.0, np.inf])
    x = np.array([0.5, np.nan, 1.0, np.inf])
    with np.errstate(invalid="ignore"):  # inf - inf
        num, tmax, _ = residual_parts(target, x)
    # both sides finite only at entries 0 and 2
    assert (num, tmax) == (2.0, 3.0)


def test_an_entry_finite_on_one_side_only_is_still_moving():
    num, tmax, _ = residual_parts(np.array([1.0, np.inf]), np.array([1.0, 5.0]))
    assert num == math.inf and tmax == 1.0
    num, _, _ = residual_parts(np.array([1.0, 2.0]), np.array([1.0, np.nan]))
    assert num == math.inf


def test_non_finite_everywhere_on_both_sides_is_settled():
    with np.errstate(invalid="ignore"):  # inf - inf
        num, tmax, _ = residual_parts(np.array([np.nan, np.inf]), np.array([np.nan, np.inf]))
    assert (num, tmax) == (0.0, 0.0)


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16])
def test_subnormal_targets_are_measured_against_the_smallest_normal(dtype):
    tiny = np.finfo(dtype).smallest_subnormal
    normal = float(np.finfo(dtype).smallest_normal)
    target, x = np.array([tiny], dtype), np.array([-tiny], dtype)
    num, tmax, _ = residual_parts(target, x)
    assert num == pytest.approx(2 * float(tiny)) and tmax == normal
    # a normal target keeps its own size, however small
    target = np.array([normal], dtype)
    assert residual_parts(target, target * 0)[1] == normal
    assert residual_parts(np.array([2 * normal], dtype), np.zeros(1, dtype))[1] == 2 * normal


def test_complex_subnormal_target_uses_the_complex_dtype():
    tiny = np.finfo(np.float64).smallest_subnormal
    _, tmax, _ = residual_parts(np.array([tiny * 1j]), np.array([0j]))
    assert tmax == float(np.finfo(np.float64).smallest_normal)


def test_zero_target_keeps_zero_size():
    num, tmax, _ = residual_parts(np.zeros(2), np.array([0.0, 0.5]))
    assert (num, tmax) == (0.5, 0.0)


def test_worst_residual_is_the_largest_relative_gap():
    parts = [(1.0, 3.0, None), (0.5, 0.5, None), (0.0, 7.0, None)]
    # 1 / (3 + 1) and 0.5 / (0.5 + 0.5); a node at its target does not count
    assert worst_residual(parts, scale=10.0) == 0.5
    assert worst_residual([], scale=1.0) == 0.0
    assert worst_residual([(0.0, 0.0, None)], scale=0.0) == 0.0


def test_zero_targets_are_measured_against_the_scale():
    assert worst_residual([(2.0, 0.0, None)], scale=8.0) == 0.25
    assert worst_residual([(2.0, 0.0, None)], scale=0.0) == math.inf


def test_negligible_targets_are_measured_against_the_floor():
    scale = 4.0
    floor = NEGLIGIBLE * scale
    # a target far below the floor: its gap is measured against the floor
    assert worst_residual([(floor / 8, floor / 1e6, None)], scale) == pytest.approx(1 / 8)
    # above the floor, its own size: 1 / (3 + 1)
    assert worst_residual([(floor, 3 * floor, None)], scale) == pytest.approx(0.25)


def test_an_infinite_or_nan_gap_is_never_outweighed():
    # an entry finite on one side only (residual_parts' inf) or NaN: never converged,
    # whatever the nodes after it say (inf / inf once gave NaN, which the next node's
    # finite residual replaced)
    for bad in (math.inf, math.nan):
        for parts in ([(bad, 1.0, None), (0.1, 1.0, None)], [(0.1, 1.0, None), (bad, 1.0, None)],
                      [(bad, 0.0, None), (0.1, 1.0, None)]):
            assert worst_residual(parts, 1.0) == math.inf, parts


def test_traced_targets_are_measured_by_their_values():
    g = ardiff.Graph()
    t = g.input(np.array([2.0, -6.0]))
    num, tmax, diff = residual_parts(t, np.array([1.0, -2.0]))
    assert (num, tmax) == (4.0, 6.0)
    assert isinstance(diff, ardiff.Tracer)  # stays traced for higher order


def test_python_floats_are_measured_as_float64():
    # scalar graphs hand the solver Python floats, which have no dtype
    assert residual_parts(2.0, -1.5)[:2] == (3.5, 2.0)
    tiny = 5e-324  # float64's smallest subnormal
    num, tmax, _ = residual_parts(tiny, 0.0)
    assert num == tiny and tmax == float(np.finfo(np.float64).smallest_normal)
