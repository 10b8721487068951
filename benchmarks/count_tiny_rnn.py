"""A fixed number of gradient calls of a tiny RNN, for counting instructions per call.

Run (instructions per call = the difference of two counts over N):

    valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file=/dev/null \
        python benchmarks/count_tiny_rnn.py 0 [--hand]
    valgrind ... python benchmarks/count_tiny_rnn.py 50 [--hand]

With 50 steps of 1 x 2 arrays NumPy's arithmetic is nothing and each call's cost is
Python and NumPy's per-call dispatch: the count measures ardiff's per-node overhead
(`--hand`: the hand-written forward and backward pass, NumPy's calls alone).  Counts
do not move with the machine's load, as timings on a shared VM do.  Pass the
interpreter binary itself to valgrind, not a shim script that execs it.
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402

import numpy as np  # noqa: E402
from workloads_arrays import rnn_by_hand  # noqa: E402

import ardiff  # noqa: E402
import ardiff.numpy as anp  # noqa: E402


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("calls", type=int, help="gradient calls after one warm-up call")
    parser.add_argument("--hand", action="store_true", help="the hand-written code instead")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((50, 1, 2))
    Wx, Wh = rng.standard_normal((2, 2)) * 0.1, rng.standard_normal((2, 2)) * 0.1

    def f(Wx, Wh):
        h = anp.zeros((1, 2))
        for t in range(X.shape[0]):
            h = anp.tanh(X[t] @ Wx + h @ Wh)
        return anp.sum(h ** 2)

    grad = ardiff.grad(f, argnum=(0, 1))
    call = (lambda: rnn_by_hand(X, Wx, Wh)) if args.hand else (lambda: grad(Wx, Wh))
    for _ in range(args.calls + 1):
        call()


if __name__ == "__main__":
    main()
