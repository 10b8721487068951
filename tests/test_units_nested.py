"""`ardiff.unit` under nested tracing (issue 20, point 3: mutation of solvers/units.py).

The docstring of `unit` promises that under nested tracing the value is marked at every
level.  Truth: the tracers the marked function receives (read at each level of their
nesting, not from the marks), central finite differences of a closed-form first
derivative written here, and the second derivative written in closed form.
"""

import numpy as np

import ardiff
import ardiff.numpy as anp
from ardiff.solvers import compile_plan, unit_plan
from ardiff.solvers.units import marked_units

C = np.array([0.5, -1.0, 2.0])
X = np.linspace(-1.0, 1.0, 3)


def inner_of(seen):
    def f(x):
        h = ardiff.unit(anp.tanh(0.8 * x + 0.1))
        seen.append(h)
        return anp.sum(anp.sin(h) ** 2)
    return f


def first_derivative(x):
    """d/dx sum(sin(tanh(0.8 x + 0.1))^2), written by hand."""
    h = np.tanh(0.8 * x + 0.1)
    return np.sin(2 * h) * (1 - h ** 2) * 0.8


def test_a_mark_inside_a_gradient_that_is_traced_again_marks_both_levels():
    seen = []
    f = inner_of(seen)

    def outer(x):  # c . grad f(x), traced: the inner gradient runs on traced values
        return anp.sum(ardiff.grad(f, preset="paper", max_iter=600)(x) * C)

    g = ardiff.trace(outer, X)
    (h,) = seen
    levels = []
    value = h
    while isinstance(value, ardiff.Tracer):
        levels.append(value)
        value = value.node.value
    assert len(levels) == 2 and levels[1].graph is g  # the inner level's value is g's
    for level in levels:
        assert level.node.index in marked_units(level.graph)
    mark = levels[1].node.index
    # only x is differentiated in g: without the mark nothing upstream of the inner
    # gradient would anchor a layer; with it the marked tanh relaxes as a unit
    plan = unit_plan(compile_plan(g), "layers")
    assert mark in plan.relaxing
    res = ardiff.relax(g, units="layers", record=True, tol=1e-14, max_iter=2000)
    assert mark in res.trajectory
    step = 1e-5
    fd = np.array([(C @ first_derivative(X + step * e) - C @ first_derivative(X - step * e))
                   / (2 * step) for e in np.eye(3)])
    np.testing.assert_allclose(res.grads[0], fd, rtol=1e-7, atol=1e-9)


def test_the_hessian_of_a_marked_function_matches_its_closed_form():
    f = inner_of([])
    h = np.tanh(0.8 * X + 0.1)
    dh = 0.8 * (1 - h ** 2)
    # d/dx [sin(2h) h'] with h'' = -2 h h' 0.8
    diagonal = 2 * np.cos(2 * h) * dh ** 2 + np.sin(2 * h) * (-2 * h * dh * 0.8)
    np.testing.assert_allclose(ardiff.hessian(f, preset="paper", max_iter=600)(X),
                               np.diag(diagonal), rtol=1e-9, atol=1e-12)
