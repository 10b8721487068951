"""Time backprop, relax and the triangular solver on a paper-sized MLP (docs/solvers.md).

Run from the repository root (seconds):

    python tools/solver_costs.py [--repeats 30] > docs/results/solvers/costs.txt

The graph (784-300-100-10, tanh, one input vector, every weight and the input as
unknowns) is recorded once; each solver is then called ``--repeats`` times,
interleaved, one BLAS thread; prints the median wall time per gradient in ms.
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from datetime import datetime, timezone  # noqa: E402

import numpy as np  # noqa: E402

import ardiff  # noqa: E402
import ardiff.numpy as anp  # noqa: E402
from ardiff.solvers.triangular import SystemTooLargeError  # noqa: E402


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args(argv)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    load = " ".join(open("/proc/loadavg").read().split()[:3])
    print(f"$ python tools/solver_costs.py --repeats {args.repeats}")
    print(f"run at {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, ardiff {commit}, "
          f"{os.cpu_count()} cores, load average before: {load}")

    rng = np.random.default_rng(0)
    sizes = (784, 300, 100, 10)
    g = ardiff.Graph()
    x = g.input(rng.random(sizes[0]), name="x")
    Ws = [g.input(rng.standard_normal((m, n)) / np.sqrt(n), name=f"W{i}")
          for i, (n, m) in enumerate(zip(sizes[:-1], sizes[1:]))]
    h = x
    for W in Ws:
        h = anp.tanh(W @ h)
    loss = anp.sum(h)
    wrt = [x] + Ws
    solvers = {"backprop": lambda: ardiff.backprop(g, loss, wrt),
               "relax (sequential, eta = 1: one sweep)": lambda: ardiff.relax(g, loss, wrt),
               "triangular": lambda: ardiff.solve_triangular(g, loss, wrt)}
    try:            # the size guard reports the system's size
        ardiff.solve_triangular(g, loss, wrt, max_nnz=1)
    except SystemTooLargeError as exc:
        print(str(exc).split(", over the limit")[0])
    ref = solvers["backprop"]().grads
    for name, solve in solvers.items():
        got = solve().grads
        err = max(float(np.max(np.abs(a - b)) / np.max(np.abs(b))) for a, b in zip(got, ref))
        print(f"{name}: largest relative difference to backprop {err:.1e}")
    times: dict[str, list[float]] = {name: [] for name in solvers}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for _ in range(args.repeats):
            for name, solve in solvers.items():
                start = time.perf_counter()
                solve()
                times[name].append(time.perf_counter() - start)
    for name, values in times.items():
        print(f"{name:<40}{statistics.median(values) * 1e3:8.2f} ms")
    print("load average after: " + " ".join(open("/proc/loadavg").read().split()[:3]))


if __name__ == "__main__":
    main()
