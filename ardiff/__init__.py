"""ardiff: differentiation of NumPy programs by Activation Relaxation.

Gradients are the equilibrium of a local leaky-integrator dynamics on the
recorded computation graph (Millidge et al., *Activation Relaxation*).  Start
with :func:`grad`, or build a :class:`Graph` and call :func:`relax`.
"""

from . import numpy  # noqa: F401  (installs Tracer operators; must come first)
from .compiled import CompiledGrad, compile  # noqa: A004
from .convexity import check_convexity
from .graph import Graph, Node
from .solvers import (
    ConvergenceWarning,
    NonFiniteWarning,
    Result,
    backprop,
    relax,
    solve_triangular,
)
from .tracer import Op, Tracer, TracingError
from .transforms import (
    elementwise_grad,
    grad,
    hessian,
    jacobian,
    make_vjp,
    trace,
    value_and_grad,
    vjp,
)

__version__ = "0.1.0"

#: Renamed modules kept as deprecated aliases (old name -> new name); importing one warns.
DEPRECATED_MODULES = {"ardiff.api": "ardiff.transforms"}

__all__ = [
    "Graph", "Node", "Op", "Tracer", "TracingError", "Result", "ConvergenceWarning",
    "NonFiniteWarning", "relax", "backprop", "grad", "value_and_grad", "elementwise_grad",
    "jacobian", "hessian", "make_vjp", "vjp", "trace", "compile", "CompiledGrad",
    "solve_triangular", "check_convexity",
]
