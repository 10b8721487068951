"""Benchmark: one paper-protocol AR training batch against one backprop batch.

Run from the repository root::

    python benchmarks/bench_paper_batch.py [--repeats 200] [--warmup 10] [--batch 64]

The workload is one batch of the paper's training (Fig. 2): the MLP 784-300-300-100-10
(ReLU hidden layers, linear output, summed squared error, float64, weights
N(0, 0.05^2)), a batch of 64 inputs uniform in [0, 1] with one-hot targets, and the
gradients of all weights and biases from `ardiff.nn.batch_gradients`, exactly as
`ardiff.nn.train` computes them every batch (tracing the fused dense network, clamping
the output to dL/dout, solving, reading out the weight gradients).  Three methods:

* ``backprop``: `ardiff.nn.backprop_method()`, the exact reverse sweep (the baseline);
* ``AR closed form``: `ardiff.nn.relaxation()`, the paper's protocol (eta 0.1, T = 100,
  forward start, parallel schedule) computed in closed form from D = 3 sweeps;
* ``AR stepping``: the same dynamics stepped explicitly T = 100 times (the cost before
  the closed form, for reference).

Before timing, the script checks that the closed form's gradients equal stepping's to
1e-10 relative (and stops with status 1 if not).  Then the three are timed interleaved,
one call of each per repeat (load from other processes hits all alike), and the medians
and the ratios to backprop's median are printed.  BLAS is pinned to one thread with
`threadpoolctl` (the matrices are small; on a shared machine more threads only add
noise).  The target of issue 12 is AR closed form / backprop <= 1.5.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

from ardiff import nn

SIZES = (784, 300, 300, 100, 10)


def make_batch(batch: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Inputs uniform in [0, 1] and one-hot targets."""
    rng = np.random.default_rng(seed)
    x = rng.random((batch, SIZES[0]))
    return x, nn.one_hot(rng.integers(0, SIZES[-1], batch), SIZES[-1])


def relative(a: np.ndarray, b: np.ndarray) -> float:
    """Relative error of `a` against `b` (Frobenius norms)."""
    a, b = np.asarray(a), np.asarray(b)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def main(argv: list[str] | None = None) -> int:
    """Check, time and print; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--batch", type=int, default=64)
    args = parser.parse_args(argv)

    model = nn.MLP(SIZES, activation="relu", init_std=0.05, seed=0)
    x, t = make_batch(args.batch)
    methods = {
        "backprop": nn.backprop_method(),
        "AR closed form": nn.relaxation(),
        "AR stepping": nn.relaxation(closed_form=False),
    }

    def run(name: str) -> nn.BatchGradients:
        return nn.batch_gradients(model, x, t, "sse", methods[name])

    with threadpool_limits(limits=1):
        closed, stepped = run("AR closed form"), run("AR stepping")
        worst = max(relative(a, b) for a, b in zip(closed.grads, stepped.grads))
        print(f"closed form vs stepping, worst relative error over parameters: {worst:.2e} "
              f"(closed form: {closed.result.sweeps} sweeps; stepping: "
              f"{stepped.result.iterations} steps)")
        if not worst < 1e-10:
            print("FAILED: the closed form does not match stepping", file=sys.stderr)
            return 1
        times: dict[str, list[float]] = {name: [] for name in methods}
        for r in range(args.warmup + args.repeats):
            for name in methods:
                start = time.perf_counter()
                run(name)
                elapsed = time.perf_counter() - start
                if r >= args.warmup:
                    times[name].append(elapsed)

    blas = ", ".join(f"{i.get('internal_api')} {i.get('version')} "
                     f"({i.get('num_threads')} threads outside the limit)"
                     for i in threadpool_info() if i.get("user_api") == "blas")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"load average {', '.join(f'{v:.1f}' for v in os.getloadavg())}; "
          f"Python {platform.python_version()}, NumPy {np.__version__}, BLAS {blas}; "
          f"timed with 1 BLAS thread")
    print(f"paper's MLP {'-'.join(map(str, SIZES))}, batch {args.batch}, eta 0.1, T = 100, "
          f"forward start, parallel; {args.repeats} interleaved repeats after "
          f"{args.warmup} warm-up rounds (medians)")
    base = statistics.median(times["backprop"])
    print(f"{'method':<16} {'median (ms)':>12} {'ratio to backprop':>18}")
    for name, ts in times.items():
        m = statistics.median(ts)
        print(f"{name:<16} {1e3 * m:>12.2f} {m / base:>18.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
