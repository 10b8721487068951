"""What the mlp's gap to the hand-written code is made of, one piece of ardiff's work at a time.

Run:  python benchmarks/attribution_mlp.py [--repeats 40] [--f32]

The hand-written forward and backward pass of the suite's mlp (`mlp_by_hand`) is
timed next to variants that each add one thing ardiff does and the hand-written
code does not: computing the loss value and differentiating it through `power`
(``loss``), the tie check of `maximum`'s derivative (``tie``), the weight products
after the sweep instead of during it (``late``), the NaN/infinity check of the
gradients (``finite``), all four (``all``); then `ardiff.compile`'s replay alone,
the compiled call (signature, cache lookup, packing around the replay) and
`ardiff.grad`.  Everything is interleaved; the printout is each median of process
CPU time over the hand-written code's.
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
from workloads_arrays import mlp_by_hand, mlp_forward, mlp_loss, mlp_problem  # noqa: E402

import ardiff  # noqa: E402
import ardiff.numpy as anp  # noqa: E402
from ardiff.solvers.common import is_finite  # noqa: E402


def variant(params, X, Y, *, loss=False, tie=False, late=False, finite=False):
    """`mlp_by_hand` with some of ardiff's extra work added (see the module docstring)."""
    def run():
        hs, pre = mlp_forward(params, X)
        h = hs[-1]
        if loss:  # the value, then sum's and power's VJPs as the op table writes them
            d = h - Y
            np.sum(d ** 2)
            g = np.broadcast_to(np.ones((), d.dtype), d.shape) * (2 * d ** 1.0)
        else:
            g = 2.0 * (h - Y)
        grads, cotangents = [None] * len(params), {}
        for k in range(len(params) - 2, -1, -2):
            layer = k // 2
            if k < len(params) - 2:
                if tie:
                    np.any(pre[layer] == 0.0)
                g = g * (pre[layer] > 0.0)
            cotangents[layer] = g
            if not late:
                grads[k], grads[k + 1] = hs[layer].T @ g, g.sum(0)
            if k > 0:
                g = g @ params[k].T
        if late:
            for layer, g in sorted(cotangents.items()):
                grads[2 * layer], grads[2 * layer + 1] = hs[layer].T @ g, g.sum(0)
        if finite:
            all(map(is_finite, grads))
        return grads
    return run


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=40)
    parser.add_argument("--f32", action="store_true", help="the mlp_f32 workload")
    args = parser.parse_args(argv)
    params, X, Y = mlp_problem(np.float32 if args.f32 else np.float64)
    compiled, grad = ardiff.compile(mlp_loss(anp)), ardiff.grad(mlp_loss(anp))
    compiled(params, X, Y)
    compiled(params, X, Y)  # recorded, then replayed once
    recording = next(iter(compiled._cache.values()))[0]
    leaves = list(params)
    engines = {
        "hand": lambda: mlp_by_hand(params, X, Y),
        "+loss": variant(params, X, Y, loss=True),
        "+tie": variant(params, X, Y, tie=True),
        "+late": variant(params, X, Y, late=True),
        "+finite": variant(params, X, Y, finite=True),
        "+all four": variant(params, X, Y, loss=True, tie=True, late=True, finite=True),
        "replay": lambda: recording.program.replay(leaves, recording.call.graph.guards),
        "compiled": lambda: compiled(params, X, Y),
        "grad": lambda: grad(params, X, Y),
    }
    times = {name: [] for name in engines}
    for run in engines.values():
        run()
    for _ in range(args.repeats):
        for name, run in engines.items():
            start = time.process_time()
            run()
            times[name].append(time.process_time() - start)
    hand = statistics.median(times["hand"])
    print(f"mlp{'_f32' if args.f32 else ''}: median CPU time over the hand-written code's "
          f"({hand * 1e3:.3f} ms), {args.repeats} interleaved repeats")
    for name, values in times.items():
        print(f"  {name:10s} {statistics.median(values) / hand:6.3f}")


if __name__ == "__main__":
    main()
