"""Deprecated alias of `ardiff.paper.data` (the reproduction tooling moved to `ardiff.paper`)."""

import warnings

from .nn import one_hot  # noqa: F401  (the one one_hot; this module used to have its own)
from .paper.data import (  # noqa: F401
    DATASETS,
    DataError,
    DataNotFoundError,
    cache_dir,
    load,
    read_idx,
    write_idx,
)

__all__ = ["DataError", "DataNotFoundError", "DATASETS", "read_idx", "write_idx", "load",
           "one_hot", "cache_dir"]

warnings.warn("ardiff.data moved to ardiff.paper.data (one_hot to ardiff.nn); import from "
              "there instead.", DeprecationWarning, stacklevel=2)
