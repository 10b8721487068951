"""ardiff.Result (ardiff/solvers/result.py): its defaults and its one-line summary."""

from __future__ import annotations

import numpy as np

import ardiff
from ardiff.solvers.result import Result


def test_defaults():
    r = Result(grads=[], value=1.0, method="backprop")
    assert (r.iterations, r.converged, r.trajectory, r.activities, r.vjp_evals, r.sweeps,
            r.times, r.plan) == (1, True, None, {}, 0, None, None, None)
    assert isinstance(r.residuals, np.ndarray) and r.residuals.shape == (0,)
    # fresh containers per result, not one shared default
    other = Result(grads=[], value=1.0, method="backprop")
    r.activities[0] = 1.0
    assert other.activities == {} and r.residuals is not other.residuals


def test_summary_names_method_steps_convergence_residual_and_shapes():
    g = ardiff.Graph()
    traced = g.input(np.ones((2, 3)))
    r = Result(grads=[np.zeros(4), traced, 2.0], value=0.0, method="relax", iterations=7,
               converged=False, residuals=np.array([0.5, 0.25, 0.0123456]))
    assert repr(r) == ("Result(method='relax', iterations=7, converged=False, "
                       "final residual=0.0123, grads=[(4,), (2, 3), ()])")
    empty = Result(grads=[], value=0.0, method="triangular")
    assert repr(empty) == ("Result(method='triangular', iterations=1, converged=True, "
                           "final residual=n/a, grads=[])")
