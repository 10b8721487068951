"""The op table, one module per family.

`elementwise` (unary math, binary arithmetic, `where`, `clip`), `shape`
(indexing, reshaping, joining, casting), `reduce` (sums, extrema, moments, scans),
`linalg` (products, einsum, inverses, determinants, norms), `sparse` (products and
solves with a sparse matrix of constant structure) and `special` (scipy.special).
Every op is one `ardiff.op.defop` call in its family module;
`jacobians` holds the sparse-Jacobian families they name and `axes` the axis
bookkeeping reductions share.  Importing this package fills the table
`ardiff.op.OPS`, re-exported here with `defop`.
"""

from ..op import NEGATED, OPS, PASS_THROUGH, Fixed, Op, Scale, defop, scale_by
from . import (
    complex_parts,
    decompositions,
    elementwise,
    fft,
    linalg,
    reduce,
    shape,
    signal,
    sparse,
    special,
)

# the op-declaration names of ardiff.op, re-exported: `from ardiff.ops import defop` works too
__all__ = ["OPS", "defop", "Op", "Scale", "Fixed", "PASS_THROUGH", "NEGATED", "scale_by",
           "complex_parts", "decompositions", "elementwise", "fft", "linalg", "reduce", "shape",
           "signal", "sparse", "special"]
