"""Helpers autograd users know from `autograd.misc`: `flatten` / `flatten_func`
(`ardiff.misc.flatten`), the optimizers `sgd`, `rmsprop`, `adam`
(`ardiff.misc.optimizers`) and `fixed_point` with implicit differentiation
(`ardiff.misc.fixed_points`).
"""

from .fixed_points import fixed_point
from .flatten import flatten, flatten_func
from .optimizers import adam, rmsprop, sgd

__all__ = ["flatten", "flatten_func", "sgd", "rmsprop", "adam", "fixed_point"]
