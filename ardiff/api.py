"""Deprecated alias of `ardiff.transforms` (the module was renamed)."""

import warnings

from .transforms import (  # noqa: F401
    elementwise_grad,
    grad,
    hessian,
    jacobian,
    make_vjp,
    trace,
    value_and_grad,
    vjp,
)

warnings.warn("ardiff.api was renamed ardiff.transforms; import from ardiff (or "
              "ardiff.transforms) instead.", DeprecationWarning, stacklevel=2)
