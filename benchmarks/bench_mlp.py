"""Benchmark: ardiff.grad on the paper's MLP against a hand-written NumPy forward+backward.

Run from the repository root::

    python benchmarks/bench_mlp.py [--repeats 30] [--warmup 5] [--batch 64]

The network is the paper's: 784-300-300-100-10, ReLU hidden layers, linear output,
squared error summed over a batch of 64, float64, weights N(0, 0.05^2), zero biases,
inputs uniform in [0, 1], one-hot targets.  The script

1. checks that ``ardiff.grad`` (default options: sequential schedule, eta 1) agrees
   with the hand-written backward pass to a relative error below 1e-10 for every
   weight and bias, and stops if not;
2. times one full gradient call (forward included) of ardiff and of the hand-written
   NumPy code, interleaved (one of each per repeat, so machine noise hits both alike),
   and prints the medians and their ratio ardiff / NumPy;
3. times the paper preset (``preset="paper"``: parallel, eta 0.1, 100 steps, forward
   init) and reports its cost per relaxation iteration divided by one hand-written
   VJP sweep (the backward half of the hand-written code).

It prints the machine description first (CPU, Python, NumPy and its BLAS, thread
settings), so its output can be saved as a self-contained record, e.g.
``python benchmarks/bench_mlp.py | tee benchmarks/results/mlp.txt``.
"""

from __future__ import annotations

import os

# One BLAS thread unless the caller says otherwise: the reference machine has 2 cores
# shared with other work, where multi-threaded BLAS makes medians unstable.  Both sides
# use the same BLAS, so the ratio stays fair.  Set before NumPy loads.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import platform  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

import numpy as np  # noqa: E402

import ardiff  # noqa: E402
import ardiff.numpy as anp  # noqa: E402

SIZES = (784, 300, 300, 100, 10)


# -- the workload ---------------------------------------------------------------------------
def make_problem(batch: int, seed: int = 0) -> tuple[list, np.ndarray, np.ndarray]:
    """Parameters [W1, b1, ..., W4, b4], inputs X and one-hot targets Y."""
    rng = np.random.default_rng(seed)
    params = []
    for n, m in zip(SIZES[:-1], SIZES[1:]):
        params += [rng.normal(0.0, 0.05, (n, m)), np.zeros(m)]
    X = rng.random((batch, SIZES[0]))
    Y = np.eye(SIZES[-1])[rng.integers(0, SIZES[-1], batch)]
    return params, X, Y


def loss(params, X, Y):
    """The MLP's loss, written once with ardiff.numpy (traced by ardiff.grad)."""
    h = X
    n_layers = len(params) // 2
    for k in range(n_layers):
        h = h @ params[2 * k] + params[2 * k + 1]
        if k < n_layers - 1:
            h = anp.maximum(h, 0.0)
    return anp.sum((h - Y) ** 2)


def forward(params, X):
    """Hand-written forward pass; keeps what the backward pass needs."""
    hs, masks, h = [X], [], X
    n_layers = len(params) // 2
    for k in range(n_layers):
        a = h @ params[2 * k] + params[2 * k + 1]
        if k < n_layers - 1:
            mask = a > 0
            masks.append(mask)
            h = a * mask
        else:
            h = a
        hs.append(h)
    return hs, masks


def backward(params, hs, masks, Y):
    """Hand-written backward pass (one VJP sweep): gradients of every weight and bias."""
    n_layers = len(params) // 2
    g = 2.0 * (hs[-1] - Y)                      # dL/d(output) of the summed squared error
    grads = [None] * len(params)
    for k in range(n_layers - 1, -1, -1):
        if k < n_layers - 1:
            g = g * masks[k]                    # through the ReLU
        grads[2 * k] = hs[k].T @ g
        grads[2 * k + 1] = g.sum(axis=0)
        if k > 0:
            g = g @ params[2 * k].T
    return grads


def error_sweep(params, hs, masks, Y):
    """The error signals only (dL/d(pre-activation) of every layer), no parameter gradients:
    the work one relaxation step repeats."""
    n_layers = len(params) // 2
    g = 2.0 * (hs[-1] - Y)
    deltas = [g]
    for k in range(n_layers - 1, 0, -1):
        g = (g @ params[2 * k].T) * masks[k - 1]
        deltas.append(g)
    return deltas


def by_hand(params, X, Y):
    """Hand-written forward + backward."""
    hs, masks = forward(params, X)
    return backward(params, hs, masks, Y)


# -- measurement ---------------------------------------------------------------------------
def interleaved(fns: dict, repeats: int, warmup: int) -> dict:
    """Median seconds of each zero-argument callable, timed round-robin."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            tic = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - tic)
    return {name: statistics.median(ts) for name, ts in times.items()}


def max_rel_err(a, b) -> float:
    """Largest entry error relative to the largest entry of the reference."""
    scale = float(np.max(np.abs(b)))
    return float(np.max(np.abs(np.asarray(a) - b))) / (scale if scale > 0 else 1.0)


def machine_description() -> str:
    """CPU (lscpu head), Python, NumPy and BLAS, thread settings."""
    lines = []
    if shutil.which("lscpu"):
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        lines += ["$ lscpu | head", *out.splitlines()[:10], ""]
    lines.append(f"platform: {platform.platform()}; python {platform.python_version()}")
    lines.append(f"numpy {np.__version__}; ardiff {ardiff.__version__}")
    try:
        deps = np.show_config(mode="dicts")["Build Dependencies"]
        for kind in ("blas", "lapack"):
            info = deps.get(kind, {})
            lines.append(f"{kind}: {info.get('name')} {info.get('version')} "
                         f"({info.get('openblas configuration', '').strip()})")
    except Exception as exc:  # pragma: no cover - depends on the numpy build
        lines.append(f"blas: unknown ({exc})")
    env = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_CORETYPE",
           "OPENBLAS_L2_SIZE")
    lines.append("environment: " + ", ".join(f"{v}={os.environ.get(v, '(unset)')}" for v in env))
    if hasattr(os, "getloadavg"):  # other work on the machine inflates absolute times
        lines.append("load average (1, 5, 15 min) at start: "
                     + ", ".join(f"{x:.2f}" for x in os.getloadavg()))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=30, help="timed repeats (default 30)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed warm-up rounds")
    parser.add_argument("--batch", type=int, default=64, help="batch size (default 64)")
    args = parser.parse_args(argv)

    print(machine_description())
    params, X, Y = make_problem(args.batch)
    print(f"\nMLP {'-'.join(map(str, SIZES))}, ReLU, summed squared error, batch {args.batch}, "
          f"float64; {args.repeats} interleaved repeats after {args.warmup} warm-up rounds, "
          "medians")

    # 1. correctness first: a fast wrong gradient is worth nothing
    grad_fn = ardiff.grad(loss)
    ours, ref = grad_fn(params, X, Y), by_hand(params, X, Y)
    names = [f"{kind}{k // 2 + 1}" for k, kind in zip(range(len(params)), "Wb" * len(params))]
    errors = {name: max_rel_err(a, b) for name, a, b in zip(names, ours, ref)}
    worst = max(errors.values())
    print("\ngradient check (max relative error vs hand-written backward): "
          + ", ".join(f"{n} {e:.1e}" for n, e in errors.items()))
    if not worst < 1e-10:
        print(f"FAILED: worst relative error {worst:.3e} >= 1e-10")
        return 1

    # 2. ardiff.grad vs hand-written forward + backward
    t = interleaved({"ardiff": lambda: grad_fn(params, X, Y),
                     "numpy": lambda: by_hand(params, X, Y)}, args.repeats, args.warmup)
    print(f"\nardiff.grad (default: sequential, eta 1) : {t['ardiff'] * 1e3:8.3f} ms")
    print(f"hand-written NumPy forward + backward    : {t['numpy'] * 1e3:8.3f} ms")
    print(f"ratio ardiff / numpy                     : {t['ardiff'] / t['numpy']:8.2f}")

    # 3. the paper preset, per relaxation iteration, against one hand-written VJP sweep.
    # The 100 steps run back to back inside one call (warm caches), so the sweep is timed
    # the same way: 100 back-to-back sweeps per timed call.
    steps = 100
    hs, masks = forward(params, X)

    def sweeps():
        for _ in range(steps):
            backward(params, hs, masks, Y)

    def error_sweeps():
        for _ in range(steps):
            error_sweep(params, hs, masks, Y)

    paper = ardiff.grad(loss, preset="paper")
    one_step = ardiff.grad(loss, schedule="parallel", eta=0.1, init="forward", tol=0.0,
                           max_iter=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tol=0 never "converges"; that is the protocol
        tp = interleaved({"paper": lambda: paper(params, X, Y),
                          "one step": lambda: one_step(params, X, Y),
                          "sweeps": sweeps,
                          "error sweeps": error_sweeps},
                         max(args.repeats // 3, 5), 2)
    sweep, err_sweep = tp["sweeps"] / steps, tp["error sweeps"] / steps
    marginal = (tp["paper"] - tp["one step"]) / (steps - 1)
    print(f"\npaper preset (parallel, eta 0.1, {steps} steps, forward init), whole call: "
          f"{tp['paper'] * 1e3:.2f} ms")
    print(f"hand-written VJP sweep (backward only)   : {sweep * 1e3:8.3f} ms"
          f"  ({steps} back-to-back sweeps per timed call)")
    print(f"hand-written error-signal sweep          : {err_sweep * 1e3:8.3f} ms"
          "  (no parameter gradients)")
    for label, t_iter in ((f"call / {steps}", tp["paper"] / steps), ("marginal", marginal)):
        print(f"paper preset per iteration ({label + ')':<13}: {t_iter * 1e3:8.3f} ms"
              f"  = {t_iter / sweep:.2f} VJP sweeps = {t_iter / err_sweep:.2f} error sweeps")
    print(f"(marginal = (time of {steps} steps - time of 1 step) / {steps - 1}: excludes tracing, "
          "plan compilation and the weight read-out.  A relaxation step updates the error "
          "signals\nonly, so the error-signal sweep is its like-for-like counterpart; the VJP "
          "sweep also forms every weight and bias gradient.)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
