"""What compile's staleness checks cost a replay (issue 20, point 2).

Before every replay `ardiff.compile` checks the state the function reads (globals,
closure cells, defaults, attributes: `_Watch.unchanged`) and that the argument arrays a
recording read are the same objects (`_Recording.holds`).  This script times the
compiled workloads of `bench_suite.py` (mlp, mlp_f32, rnn, lstm, chain, wide_scalar) with
the checks as they are and with both checks replaced by `True`, interleaved in one
process, and prints the medians and their ratio (the target: at most 1.10).

Run from the repository root: `python benchmarks/bench_compile_checks.py [--repeats 31]`.
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # one BLAS thread: comparable, quiet timings

import argparse  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from workloads_arrays import (  # noqa: E402
    lstm_fun,
    lstm_problem,
    mlp_loss,
    mlp_problem,
    rnn_fun,
    rnn_problem,
)
from workloads_small import chain_fun, wide_dag_spec, wide_fun  # noqa: E402

import ardiff  # noqa: E402
import ardiff.compiled  # noqa: E402
import ardiff.numpy as anp  # noqa: E402


def workloads() -> dict:
    """name -> (compiled call, calls per timing) at the suite's sizes."""
    out = {}
    for name, dtype in (("mlp", np.float64), ("mlp_f32", np.float32)):
        params, X, Y = mlp_problem(dtype, 64)
        f = ardiff.compile(mlp_loss(anp))
        out[name] = (lambda f=f, p=params, X=X, Y=Y: f(p, X, Y), 1)
    X, Wx, Wh = rnn_problem(50)
    rnn = ardiff.compile(rnn_fun(anp, X), argnum=(0, 1))
    out["rnn"] = (lambda: rnn(Wx, Wh), 1)
    X2, Wx2, Wh2, b2 = lstm_problem(30, hidden=128)
    lstm = ardiff.compile(lstm_fun(anp, X2, 128), argnum=(0, 1, 2))
    out["lstm"] = (lambda: lstm(Wx2, Wh2, b2), 1)
    chain = ardiff.compile(chain_fun(anp, 1000))
    out["chain"] = (lambda: chain(0.5), 20)
    spec = wide_dag_spec(n_nodes=2000)
    xs = [float(v) for v in np.random.default_rng(1).uniform(-0.5, 0.5, 20)]
    wide = ardiff.compile(wide_fun(anp, spec))
    out["wide_scalar"] = (lambda: wide(xs), 5)
    return out


class _ChecksOff:
    """Both checks answer True while inside (the baseline: a replay without them)."""

    def __enter__(self):
        self.saved = ardiff.compiled._Watch.unchanged, ardiff.compiled._Recording.holds
        ardiff.compiled._Watch.unchanged = lambda self: True
        ardiff.compiled._Recording.holds = lambda self, arrays: True

    def __exit__(self, *exc):
        ardiff.compiled._Watch.unchanged, ardiff.compiled._Recording.holds = self.saved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=31)
    args = parser.parse_args()
    print(f"medians of {args.repeats} interleaved repeats, CPU time (process_time); "
          f"numpy {np.__version__}, load {os.getloadavg()[0]:.2f}")
    print(f"{'workload':12} {'checks on':>12} {'checks off':>12} {'on/off':>8}")
    for name, (call, inner) in workloads().items():
        for _ in range(3):  # trace, verifying second trace, warm replay
            call()
        on, off = [], []
        for k in range(args.repeats):
            for checks in ((True, False) if k % 2 == 0 else (False, True)):
                start = time.process_time()
                if checks:
                    for _ in range(inner):
                        call()
                else:
                    with _ChecksOff():
                        for _ in range(inner):
                            call()
                (on if checks else off).append((time.process_time() - start) / inner)
        a, b = statistics.median(on), statistics.median(off)
        print(f"{name:12} {a * 1e3:9.3f} ms {b * 1e3:9.3f} ms {a / b:8.3f}")


if __name__ == "__main__":
    main()
