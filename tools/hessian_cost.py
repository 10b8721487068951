"""Time the Hessian of docs/sharp-edges.md's Rosenbrock example with the default options
and with an iterative inner relaxation (``schedule="parallel", eta=0.5``).

Run from the repository root (under a minute):

    python tools/hessian_cost.py > docs/results/sharp-edges/hessian_cost.txt

Prints the CPU time of one call of each (``time.process_time``) and the largest
difference between the two Hessians.
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import subprocess  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from datetime import datetime, timezone  # noqa: E402

import numpy as np  # noqa: E402

import ardiff  # noqa: E402
import ardiff.numpy as anp  # noqa: E402


def rosenbrock(x):
    return anp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def main() -> None:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    load = " ".join(open("/proc/loadavg").read().split()[:3])
    print("$ python tools/hessian_cost.py")
    print(f"run at {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, ardiff {commit}, "
          f"{os.cpu_count()} cores, load average before: {load}")
    x = np.array([1.2, 0.8, -0.5, 1.0])
    results = {}
    for name, options in [("defaults", {}),
                          ("schedule parallel eta 0.5", dict(schedule="parallel", eta=0.5))]:
        hessian = ardiff.hessian(rosenbrock, **options)
        start = time.process_time()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            results[name] = hessian(x)
        print(f"{name:<30}{(time.process_time() - start) * 1e3:10.1f} ms")
    a, b = results.values()
    print(f"largest difference between the two Hessians, relative: "
          f"{np.max(np.abs(a - b)) / np.max(np.abs(a)):.1e}")
    print("load average after: " + " ".join(open("/proc/loadavg").read().split()[:3]))


if __name__ == "__main__":
    main()
