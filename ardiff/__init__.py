"""ardiff: differentiation of NumPy programs by Activation Relaxation.

Gradients are the equilibrium of a local leaky-integrator dynamics on the
recorded computation graph (Millidge et al., *Activation Relaxation*).  Start
with `grad`, or build a `Graph` and call `relax`.

The package in layers, each importing only from those below it (checked by
tests/test_architecture.py): `graph` (the tape) <- `guards`, `op` (Op, defop,
the op table) <- `ops` (the op families) <- `numpy`, `scipy` (traced
namespaces) <- `tracer` (the array interface of traced values) <- `interchange`,
`rules`, `recorder` <- `solvers` <- `convexity` <- `transforms`,
`testing` <- `codegen`, `compiled` <- `nn`, `plot` <- `paper`.
"""

from . import numpy, scipy  # noqa: F401  (the traced namespaces: ardiff.numpy, ardiff.scipy)
from .compiled import CompiledGrad, NotReplayableWarning, compile  # noqa: A004
from .convexity import check_convexity
from .extend import checkpoint
from .forward import jacfwd, jvp, make_jvp
from .graph import Graph, Node, TracingError
from .interchange import from_json, from_networkx, to_json, to_networkx
from .named_args import grad_named, multigrad_dict
from .op import Op
from .solvers import (
    ConvergenceWarning,
    NonFiniteWarning,
    ReachWarning,
    Result,
    backprop,
    relax,
    solve_triangular,
)
from .tracer import Tracer, unit
from .transforms import (
    deriv,
    elementwise_grad,
    grad,
    grad_and_aux,
    hessian,
    hessian_tensor_product,
    hessian_vector_product,
    holomorphic_grad,
    jacobian,
    make_ggnvp,
    make_hvp,
    make_vjp,
    tensor_jacobian_product,
    trace,
    value_and_grad,
    vector_jacobian_product,
    vjp,
)

__version__ = "0.1.0"

__all__ = [
    "Graph", "Node", "Op", "Tracer", "TracingError", "Result", "ConvergenceWarning",
    "ReachWarning", "NonFiniteWarning", "relax", "backprop", "grad", "value_and_grad",
    "elementwise_grad", "jacobian", "hessian", "make_vjp", "vjp",
    # forward mode (docs/forward-mode.md)
    "jvp", "make_jvp", "jacfwd",
    # the further transforms of HIPS autograd, under its names (docs/api.md)
    "hessian_vector_product", "hessian_tensor_product", "make_hvp", "make_ggnvp",
    "tensor_jacobian_product", "vector_jacobian_product", "grad_and_aux", "deriv",
    "checkpoint", "holomorphic_grad", "grad_named", "multigrad_dict",
    "trace", "compile", "CompiledGrad", "NotReplayableWarning",
    "solve_triangular", "check_convexity", "to_networkx", "from_networkx", "to_json", "from_json",
    "unit",
]
