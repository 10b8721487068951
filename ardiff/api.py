"""Deprecated alias of `ardiff.transforms` (the module was renamed)."""

import warnings

from .transforms import *  # noqa: F403  (an alias exports what the module exports)
from .transforms import __all__  # noqa: F401

warnings.warn("ardiff.api was renamed ardiff.transforms; import from ardiff (or "
              "ardiff.transforms) instead.", DeprecationWarning, stacklevel=2)
