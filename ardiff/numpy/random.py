"""`ardiff.numpy.random`: NumPy's random module under autograd's name.

Random draws need no tracing (their parameters are plain numbers, and a traced
parameter is refused with the reparameterisation advice), so this module *is* NumPy's:
every name resolves to `numpy.random`'s own object, and seeding it seeds NumPy's global
state.  It exists so that `import autograd.numpy.random as npr` ports by replacing the
word `autograd`.
"""

from __future__ import annotations

from typing import Any

import numpy.random as _random
from numpy.random import *  # noqa: F403  (NumPy's public names: the same objects)

__all__ = list(_random.__all__)


def __getattr__(name: str) -> Any:
    # names outside numpy.random.__all__ (legacy helpers, private modules) as NumPy has them
    return getattr(_random, name)


def __dir__() -> list[str]:
    return sorted(set(__all__) | set(dir(_random)))
