"""The gradient through `spsolve` on a large sparse system, against SciPy's forward solve.

`sum(spsolve(A, b) ** 2)` for a tridiagonal, diagonally dominant `A` (csc) of `n`
unknowns: the gradient with respect to the stored values of `A` and to `b`
(`ardiff.scipy.sparse.linalg.spsolve`, one factorisation reused by the adjoint solve),
timed against SciPy's own `spsolve` of the same system, interleaved, medians of CPU time;
and the gradient's peak memory under tracemalloc (issue 26: at most 10 forward solves and
200 MB at n = 200,000).

Run from the repository root: `python benchmarks/bench_sparse.py [--n 200000] [--repeats 7]`.
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # one BLAS thread: comparable, quiet timings

import argparse  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402

import numpy as np  # noqa: E402
import scipy  # noqa: E402
import scipy.sparse as sp  # noqa: E402
import scipy.sparse.linalg as spla  # noqa: E402

import ardiff  # noqa: E402
import ardiff.numpy as anp  # noqa: E402
import ardiff.scipy.sparse as asp  # noqa: E402
from ardiff.scipy.sparse.linalg import spsolve  # noqa: E402


def tridiagonal(n: int, rng: np.random.Generator) -> sp.csc_array:
    """A random tridiagonal matrix with a dominant diagonal (well conditioned)."""
    off = rng.uniform(-1.0, 1.0, (2, n - 1))
    diag = 4.0 + rng.uniform(0.0, 1.0, n)
    return sp.csc_array(sp.diags([off[0], diag, off[1]], [-1, 0, 1], format="csc"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    A = tridiagonal(args.n, np.random.default_rng(0))
    b = np.random.default_rng(1).standard_normal(args.n)

    def loss(data, b):
        matrix = asp.csc_array((data, A.indices, A.indptr), shape=A.shape)
        return anp.sum(spsolve(matrix, b) ** 2)

    gradient = ardiff.grad(loss, argnum=(0, 1))
    forward, backward = [], []
    for _ in range(args.repeats):
        start = time.process_time()
        spla.spsolve(A, b)
        forward.append(time.process_time() - start)
        start = time.process_time()
        gradient(A.data, b)
        backward.append(time.process_time() - start)
    tracemalloc.start()
    gradient(A.data, b)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    f, g = statistics.median(forward), statistics.median(backward)
    print(f"n = {args.n}, nnz = {A.nnz}; numpy {np.__version__}, scipy {scipy.__version__}; "
          f"medians of {args.repeats} interleaved repeats, CPU time")
    print(f"scipy spsolve (forward)        {f * 1e3:9.1f} ms")
    print(f"ardiff gradient (data and b)   {g * 1e3:9.1f} ms   {g / f:5.2f} forward solves")
    print(f"gradient peak memory (tracemalloc) {peak / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
