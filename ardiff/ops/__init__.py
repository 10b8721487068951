"""The op table, one module per family.

`elementwise` (unary math, binary arithmetic, `where`, `clip`), `shape`
(indexing, reshaping, joining, casting), `reduce` (sums, extrema, moments, scans),
`linalg` (products, einsum, inverses, determinants, norms) and `special`
(scipy.special).  Every op is one `ardiff.op.defop` call in its family module;
`jacobians` holds the sparse-Jacobian families they name and `axes` the axis
bookkeeping reductions share.  Importing this package fills the table
`ardiff.op.OPS`, re-exported here with `defop`.
"""

from ..op import OPS, defop
from . import elementwise, linalg, reduce, shape, special

__all__ = ["OPS", "defop", "elementwise", "linalg", "reduce", "shape", "special"]
