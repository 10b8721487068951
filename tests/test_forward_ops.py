"""Forward mode over the op table: every op's tangent rule against finite differences.

Every case of the property-based op tables (tests/test_ops_<family>.py, gathered by
``test_ops.all_cases``; together they exercise every op of ``ardiff.op.OPS``) is run
once more in forward mode: ``ardiff.jvp`` of the traced program along a random tangent
(complex where an argument is complex) must give NumPy's value and the central finite
difference of plain NumPy along the same tangent.  Truth is NumPy alone.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_ops import all_cases

import ardiff
import ardiff.numpy as anp
from ardiff.op import OPS, NoTangentRuleError
from ardiff.tree import flatten

CASES = all_cases()

#: Ops allowed to lack a tangent rule, each with the reason.  Empty: every op has one.
NO_TANGENT_RULE: dict[str, str] = {}


def _random_tangent(rng, arg):
    arg = np.asarray(arg)
    t = rng.standard_normal(arg.shape)
    if np.iscomplexobj(arg):
        t = t + 1j * rng.standard_normal(arg.shape)
    return t.astype(np.result_type(arg, np.float64)) if arg.dtype.kind in "fc" else t


def _leaves(out):
    return [np.asarray(leaf) for leaf in flatten(out)[0]]


def check_jvp(case, args, kwargs, eps=1e-6, rtol=1e-5):
    """`ardiff.jvp` of the case's program against NumPy and central differences."""
    args = tuple(np.asarray(a, dtype=np.result_type(a, np.float64)) for a in args)
    rng = np.random.default_rng(len(case.name))
    tangents = tuple(_random_tangent(rng, a) for a in args)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        value, tangent = ardiff.jvp(lambda *a: case.fun(anp, *a, **kwargs), args, tangents)
        expected = case.fun(np, *args, **kwargs)
        plus = case.fun(np, *(a + eps * t for a, t in zip(args, tangents)), **kwargs)
        minus = case.fun(np, *(a - eps * t for a, t in zip(args, tangents)), **kwargs)
    for got, want in zip(_leaves(value), _leaves(expected)):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12,
                                   err_msg=f"{case.name}: forward value differs from NumPy")
    for got, p, m in zip(_leaves(tangent), _leaves(plus), _leaves(minus)):
        numeric = (p - m) / (2 * eps)
        assert np.shape(got) == np.shape(numeric), f"{case.name}: tangent shape"
        scale = max(float(np.max(np.abs(numeric), initial=0.0)), 1.0)
        np.testing.assert_allclose(got, numeric, rtol=rtol, atol=rtol * scale,
                                   err_msg=f"{case.name}: JVP vs finite differences")


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
@given(data=st.data())
def test_jvp_of_every_case_matches_finite_differences(case, data):
    args, kwargs = data.draw(case.draw, label=f"{case.name}: (args, kwargs)")
    check_jvp(case, args, kwargs)


def test_every_op_has_a_tangent_rule():
    missing = []
    for name, op in OPS.items():
        if name.startswith("extend.") or name in NO_TANGENT_RULE or op.linear:
            continue
        nargs = len(op.vjps) if op.vjp is None else 3
        for k in op.differentiable_positions(nargs):
            try:
                op.jvp_maker(k)
            except NoTangentRuleError:
                missing.append(f"{name} (argument {k})")
    assert not missing, f"ops without a tangent rule: {missing}; declare one in their defop"


def test_the_harness_catches_a_wrong_tangent_rule():
    from test_ops import Case, one_arg, reals

    from ardiff.op import defop
    wrong = defop("t_forward_wrong_sin", np.sin, lambda ans, x: lambda g: g * np.cos(x),
                  jvp=(lambda t, ans, x: t * np.sin(x),))
    try:
        case = Case("wrong", lambda xp, x: wrong(x) if xp is anp else np.sin(x), one_arg(reals))
        with pytest.raises(AssertionError, match="JVP vs finite differences"):
            check_jvp(case, (np.array([0.3, 1.2]),), {})
    finally:
        OPS.pop("t_forward_wrong_sin", None)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
@given(data=st.data())
def test_float32_tangents_are_float32_like_their_values(case, data):
    """float32 arguments: each output's tangent has the output's dtype (float32 where
    NumPy keeps float32) and agrees with the float64 tangent to float32's precision."""
    args, kwargs = data.draw(case.draw, label=f"{case.name}: (args, kwargs)")
    args = tuple(np.asarray(a) for a in args)
    if any(a.dtype.kind not in "f" for a in args):
        return  # complex and integer arguments: covered in float64 above
    rng = np.random.default_rng(len(case.name))
    tangents = tuple(_random_tangent(rng, a) for a in args)
    narrow = tuple(a.astype(np.float32) for a in args)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # float32 may overflow where float64 does not
        try:
            value, tangent = ardiff.jvp(lambda *a: case.fun(anp, *a, **kwargs), narrow,
                                        tuple(t.astype(np.float32) for t in tangents))
        except (np.linalg.LinAlgError, ValueError, TypeError) as error:
            # float32 rounding can make a drawn matrix singular or a decomposition's
            # derivative undefined; NumPy's own float32 call then fails the same way
            with pytest.raises(type(error)):
                case.fun(np, *narrow, **kwargs)
            return
        _, wide = ardiff.jvp(lambda *a: case.fun(anp, *a, **kwargs),
                             tuple(a.astype(np.float64) for a in args), tangents)
    for v, t, w in zip(_leaves(value), _leaves(tangent), _leaves(wide)):
        assert t.dtype == v.dtype, f"{case.name}: tangent {t.dtype} for a {v.dtype} value"
        if v.dtype == np.float32 and np.all(np.isfinite(t)):
            scale = max(float(np.max(np.abs(w), initial=0.0)), 1.0)
            np.testing.assert_allclose(t, w, rtol=2e-2, atol=2e-2 * scale,
                                       err_msg=f"{case.name}: float32 tangent")
