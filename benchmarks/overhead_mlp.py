"""Where an mlp gradient spends its time beyond the hand-written NumPy code.

Run:  python benchmarks/overhead_mlp.py [--repeats 300]

Times each stage of one ``ardiff.grad`` call on the suite's mlp workload (the
stages are called the way ``grad`` calls them) next to the hand-written NumPy
forward and forward + backward pass, all interleaved; prints medians in ms.
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
from bench_suite import fix_heap, mlp_by_hand, mlp_loss, mlp_params  # noqa: E402

import ardiff  # noqa: E402
import ardiff.numpy as anp  # noqa: E402
from ardiff.recorder import TracedCall  # noqa: E402
from ardiff.solvers import compile_plan  # noqa: E402
from ardiff.solvers.common import make_seed, read_out, sweep, warn_non_finite  # noqa: E402


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=300)
    parser.add_argument("--fixed-heap", action="store_true")
    args = parser.parse_args(argv)
    if args.fixed_heap:
        fix_heap()
    rng = np.random.default_rng(0)
    params = mlp_params(rng)
    X = rng.random((64, 784))
    Y = np.eye(10)[rng.integers(0, 10, 64)]
    loss, plain_loss = mlp_loss(anp), mlp_loss(np)
    grad = ardiff.grad(loss)
    times: dict = {}

    def timed(name, fun, *a, **kw):
        start = time.perf_counter()
        out = fun(*a, **kw)
        times.setdefault(name, []).append(time.perf_counter() - start)
        return out

    for _ in range(args.repeats):
        timed("ardiff.grad, whole call", grad, params, X, Y)
        timed("NumPy by hand: forward + backward", mlp_by_hand, params, X, Y)
        timed("NumPy by hand: forward only", plain_loss, params, X, Y)
        traced = timed("ardiff: record the forward pass", TracedCall, loss, 0, (params, X, Y),
                       {})
        out = traced.output_tracer("grad", scalar=True)
        plan = timed("ardiff: prune", compile_plan, traced.graph, out, traced.inputs, None,
                     stage=False)
        x = {plan.output: make_seed(plan, None)}
        timed("ardiff: stage + apply VJPs (sweep)", sweep, plan, x)
        grads, _ = timed("ardiff: read weight gradients", read_out, plan, x, x[plan.output])
        timed("ardiff: NaN/inf check", warn_non_finite, plan, x, grads)
    for name, values in times.items():
        print(f"{name:<38}{statistics.median(values) * 1e3:8.3f} ms")


if __name__ == "__main__":
    main()
