"""Deprecated alias of `ardiff.paper.cli` (the reproduction tooling moved to `ardiff.paper`)."""

import sys
import warnings

from .paper.cli import build_parser, limit_blas_threads, main  # noqa: F401

__all__ = ["main", "build_parser", "limit_blas_threads"]

warnings.warn("ardiff.cli moved to ardiff.paper.cli; import from there instead (the "
              "`ardiff` command is unchanged).", DeprecationWarning, stacklevel=2)

if __name__ == "__main__":  # pragma: no cover  (python -m ardiff.cli)
    sys.exit(main())
