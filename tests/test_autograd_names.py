"""autograd's remaining names, so that its programs port by replacing the word (issue 21.3).

Each name is checked against an independent truth: closed-form derivatives, or the
gradient the same function gives through `ardiff.grad` by position.
"""

from __future__ import annotations

import numpy as np
import pytest

import ardiff
import ardiff.numpy as anp


def test_grad_named_picks_the_argument_by_name():
    def f(x, y, z=3.0):
        return anp.sum(x * y ** 2) * z

    x, y = np.array([1.0, 2.0]), np.array([0.5, -1.0])
    np.testing.assert_allclose(ardiff.grad_named(f, "y")(x, y), 2 * x * y * 3.0)
    np.testing.assert_allclose(ardiff.grad_named(f, "x")(x, y), y ** 2 * 3.0)
    assert float(ardiff.grad_named(f, "z")(x, y, 3.0)) == pytest.approx(np.sum(x * y ** 2))
    with pytest.raises(ValueError, match="no positional parameter 'w'.*'x', 'y', 'z'"):
        ardiff.grad_named(f, "w")


def test_grad_named_passes_solver_options():
    f = lambda x, y: anp.sum(anp.tanh(x * y))  # noqa: E731
    x, y = np.array([0.3, -0.2]), np.array([1.5, 0.5])
    exact = x * (1 - np.tanh(x * y) ** 2)
    got = ardiff.grad_named(f, "y", schedule="parallel", eta=0.5)(x, y)
    np.testing.assert_allclose(got, exact, rtol=1e-10)


def test_multigrad_dict_gives_every_argument_by_name():
    def f(a, b, *rest, scale=2.0, **extra):
        return scale * (anp.sum(a * b) + sum(rest) + sum(extra.values()))

    a, b = np.array([1.0, 2.0]), np.array([3.0, -1.0])
    grads = ardiff.multigrad_dict(f)(a, b, 4.0, 5.0, k=6.0)
    assert list(grads) == ["a", "b", "rest", "scale", "extra"]  # the signature's order
    np.testing.assert_allclose(grads["a"], 2.0 * b)
    np.testing.assert_allclose(grads["b"], 2.0 * a)
    assert [float(g) for g in grads["rest"]] == [2.0, 2.0]
    assert float(grads["scale"]) == pytest.approx(np.sum(a * b) + 4.0 + 5.0 + 6.0)
    assert {k: float(v) for k, v in grads["extra"].items()} == {"k": 2.0}


def test_multigrad_dict_differentiates_defaults_as_autograd():
    grads = ardiff.multigrad_dict(lambda x, y=2.0: x * y ** 2)(3.0)
    assert {k: float(v) for k, v in grads.items()} == {"x": 4.0, "y": 12.0}


def test_test_util_is_the_testing_module():
    from ardiff import test_util, testing

    assert test_util.check_grads is testing.check_grads
    assert test_util.combo_check is testing.combo_check
    test_util.check_grads(lambda x: anp.sum(anp.sin(x) ** 2), modes=["rev"])(np.ones(3))
    with pytest.raises(AssertionError):  # a wrong gradient is caught
        bad = ardiff.extend.primitive(lambda x: np.sum(np.sin(x)))
        ardiff.extend.defvjp(bad, lambda ans, x: lambda g: g * 2.0 * np.cos(x))
        test_util.check_grads(bad, modes=["rev"], order=1)(np.ones(3))


def test_builtins_look_through_traced_values():
    from ardiff import builtins

    assert builtins.tuple is tuple and builtins.list is list and builtins.dict is dict
    seen = {}

    def f(x):
        seen["isinstance"] = builtins.isinstance(x, np.ndarray)
        seen["type"] = builtins.type(x)
        seen["traced"] = builtins.isinstance(x, ardiff.Tracer)
        return anp.sum(x ** 2)

    np.testing.assert_allclose(ardiff.grad(f)(np.array([1.0, 2.0])), [2.0, 4.0])
    assert seen == {"isinstance": True, "type": np.ndarray, "traced": True}
    assert builtins.isinstance(3.0, float) and builtins.type(3.0) is float
