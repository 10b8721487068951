"""Units on the paper's MLP: what the paper preset computes, and what the closed form saves.

The paper's network (784-300-300-100-10, ReLU hidden, linear output, weights
N(0, 0.05^2), zero biases, summed squared error) on Fashion-MNIST batches of 16
(`/usr/share/datasets/fashion-mnist`, or the subset bundled with ardiff).

1. **Accuracy.** Relative error of the first layer's weight gradient after T = 100
   parallel steps at eta = 0.1 from the forward values, against the exact gradient,
   for: an independent layer-level NumPy implementation of Algorithm 1 (written
   here), the network traced op by op with `preset="paper"` (layer units, head
   clamped), the fused `ardiff.nn` network with the output clamped (the graph ends
   at the network output, the seed is dL/dout, as `ardiff.nn.train` does), and for
   contrast the op-by-op network with the loss in the graph at `units="ops"` (every
   op relaxes; the pre-units meaning of the preset).
2. **Cost.** The sweep counter and the wall time (median of interleaved repeats) of
   the state after T = 100 steps computed in closed form vs by stepping, with layer
   units and at op level, beside one exact sweep (`ardiff.backprop`) on the same
   traced graph.

Run from the repository root: `python benchmarks/bench_units.py [--repeats 7]`.
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # one BLAS thread: comparable, quiet timings

import argparse  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

import ardiff  # noqa: E402
import ardiff.numpy as anp  # noqa: E402
from ardiff.nn import MLP  # noqa: E402
from ardiff.solvers import relative_error  # noqa: E402

SIZES = (784, 300, 300, 100, 10)


def load_batches(count: int, batch: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """The first `count` batches of the Fashion-MNIST training set (one-hot targets)."""
    from ardiff.paper.data import load

    try:
        images, labels = load("fashion-mnist", "train", download=False)
        source = "fashion-mnist (full)"
    except Exception:  # noqa: BLE001  (no full copy here: the bundled subset)
        images, labels = load("fashion-mnist-small", "train")
        source = "fashion-mnist-small (bundled)"
    print(f"data: {source}, {count} batches of {batch}")
    targets = np.eye(10)[labels]
    return [(images[k * batch:(k + 1) * batch], targets[k * batch:(k + 1) * batch])
            for k in range(count)]


def algorithm1(Ws, bs, x, y, T=100, eta=0.1):
    """Layer-level Algorithm 1 (parallel), independent of ardiff: returns dW1."""
    L = len(Ws)
    hs, zs = [x], []
    for k in range(L):
        zs.append(hs[-1] @ Ws[k] + bs[k])
        hs.append(np.maximum(zs[-1], 0.0) if k < L - 1 else zs[-1])
    slopes = [(z > 0).astype(float) for z in zs[:-1]] + [np.ones_like(zs[-1])]
    act = [h.copy() for h in hs[1:L]]
    top = 2.0 * (hs[L] - y)
    for _ in range(T):
        aboves = act[1:] + [top]
        act = [a + eta * ((aboves[l] * slopes[l + 1]) @ Ws[l + 1].T - a)
               for l, a in enumerate(act)]
    return hs[0].T @ (act[0] * slopes[0])


def traced(model: MLP, x, y):
    """The network op by op, `anp.maximum(h @ W + b, 0)`, loss in the graph."""
    def loss(*params):
        h = x
        for k in range(model.n_layers):
            z = h @ params[2 * k] + params[2 * k + 1]
            h = anp.maximum(z, 0.0) if k < model.n_layers - 1 else z
        return anp.sum((h - y) ** 2)

    g = ardiff.trace(loss, *model.parameters())
    return g, g.output, g.inputs


def median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def accuracy(batches, model: MLP) -> None:
    print("\n1. relative error of dW1 after T = 100 parallel steps, eta 0.1, forward start")
    rows = {"layer-level Algorithm 1 (NumPy, independent)": [],
            "op by op, loss in graph, preset='paper' (layer units)": [],
            "ardiff.nn dense, output clamped (seed dL/dout), preset='paper'": [],
            "ardiff.nn dense, loss in graph, preset='paper'": [],
            "op by op, loss in graph, preset='paper', units='ops'": []}
    names = list(rows)
    for x, y in batches:
        g, out, params = traced(model, x, y)
        exact = ardiff.backprop(g, out, params).grads[0]
        ref = algorithm1(model.weights, model.biases, x, y)
        rows[names[0]].append(relative_error(ref, exact))
        paper = ardiff.relax(g, out, params, preset="paper").grads[0]
        rows[names[1]].append(relative_error(paper, exact))
        gn, net_out, nparams, _ = model.trace(x)
        seed = 2.0 * (net_out.value - y)
        clamped = ardiff.relax(gn, net_out, nparams, seed=seed, preset="paper").grads[0]
        rows[names[2]].append(relative_error(clamped, exact))
        loss = anp.sum((net_out - y) ** 2)
        in_graph = ardiff.relax(gn, loss, nparams, preset="paper").grads[0]
        rows[names[3]].append(relative_error(in_graph, exact))
        ops = ardiff.relax(g, out, params, preset="paper", units="ops").grads[0]
        rows[names[4]].append(relative_error(ops, exact))
        # the three layer-level runs are one dynamics: say how close they are
        print(f"   batch: |preset - Algorithm 1| / |dW1| = {relative_error(paper, ref):.1e}, "
              f"|nn - Algorithm 1| = {relative_error(in_graph, ref):.1e}, "
              f"|clamped nn - Algorithm 1| = {relative_error(clamped, ref):.1e}")
    print(f"   {'':<66} {'batch 0':>9} {'median':>9}")
    for name, errors in rows.items():
        print(f"   {name:<66} {errors[0]:9.2e} {statistics.median(errors):9.2e}")


def cost(x, y, model: MLP, repeats: int) -> None:
    print(f"\n2. cost of the state after T = 100 steps (median of {repeats} repeats, one "
          "traced graph, plan compiled in every call)")
    g, out, params = traced(model, x, y)
    base = median_time(lambda: ardiff.backprop(g, out, params), repeats)
    print(f"   one exact sweep (ardiff.backprop): {base * 1e3:8.2f} ms")
    print(f"   {'units':<8} {'method':<12} {'D':>3} {'sweeps':>7} {'ms':>9} "
          f"{'/ backprop':>10} {'speed-up':>9}")
    for units in ("layers", "ops"):
        runs = {}
        for closed in (True, False):
            def call(closed=closed):
                return ardiff.relax(g, out, params, preset="paper", units=units,
                                    closed_form=closed)
            res = call()
            runs[closed] = (res, median_time(call, repeats))
        for closed in (True, False):
            res, t = runs[closed]
            speed = runs[False][1] / t
            print(f"   {units:<8} {'closed form' if closed else 'stepping':<12} "
                  f"{res.plan.max_depth:>3} {res.sweeps:>7} {t * 1e3:9.2f} "
                  f"{t / base:10.2f} {speed:8.1f}x")
        gap = max(relative_error(a, b) for a, b in zip(runs[True][0].grads,
                                                        runs[False][0].grads))
        print(f"   {units}: closed form vs stepping, largest relative gap {gap:.1e}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--batches", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()
    print(f"{platform.platform()}, Python {platform.python_version()}, "
          f"NumPy {np.__version__}, load average {os.getloadavg()[0]:.2f}")
    model = MLP(SIZES, seed=0)  # weights N(0, 0.05^2), zero biases
    batches = load_batches(args.batches, args.batch_size)
    accuracy(batches, model)
    cost(*batches[0], model, args.repeats)


if __name__ == "__main__":
    main()
