"""`ardiff.scipy`: traced versions of a few scipy functions (`ardiff.scipy.special`,
`ardiff.scipy.linalg`, `ardiff.scipy.signal`, `ardiff.scipy.stats`, `ardiff.scipy.sparse`).

`ardiff.scipy.integrate` (`odeint` with adjoint gradients) is not imported here: it is
built on the transforms, a layer above this namespace, so import it explicitly with
`import ardiff.scipy.integrate` (or `from ardiff.scipy.integrate import odeint`).
"""

from . import linalg, signal, sparse, special, stats  # noqa: F401

__all__ = ["linalg", "signal", "sparse", "special", "stats"]
