"""Benchmark: the fused `ardiff.nn.conv2d` op against a hand-written NumPy im2col layer.

Run from the repository root::

    python benchmarks/bench_conv.py [--repeats 30] [--warmup 3] [--batch 64]

Workloads: the two convolution layers of the CNN of `ardiff reproduce cnn` at batch 64,
float64: conv1 (1 -> 8 channels, 5x5, on 28x28) and conv2 (8 -> 16 channels, 5x5, on
12x12), each with ReLU, and each once plain and once with the fused 2x2 max pool.  One
timed call is a full forward + backward of the layer under the loss
`sum(h * G)` (a fixed random cotangent `G`), giving the gradients w.r.t. the input,
the filters and the bias:

* ardiff: `ardiff.grad` of that loss (tracing, one `conv2d` node, one backprop sweep);
* NumPy: a forward and a backward written here with NumPy only (receptive fields by
  `as_strided`, one matrix product each way, col2im by strided adds, max pooling by an
  argmax scatter), independent of ardiff's code.

The script checks first that both give the same gradients (relative error < 1e-10;
exit status 1 otherwise), then times them interleaved (one call of each per repeat,
so machine load hits both alike) and prints the medians and their ratio
ardiff / NumPy.  One BLAS thread unless the environment says otherwise.
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
from numpy.lib.stride_tricks import as_strided  # noqa: E402

import ardiff  # noqa: E402
from ardiff.nn import conv2d  # noqa: E402

LAYERS = {  # name: (input shape (n omitted), filter shape)
    "conv1 1->8 5x5 on 28x28": ((1, 28, 28), (8, 1, 5, 5)),
    "conv2 8->16 5x5 on 12x12": ((8, 12, 12), (16, 8, 5, 5)),
}


# -- the hand-written NumPy layer --------------------------------------------------------
def numpy_layer_grads(x, W, b, G, pool):
    """Forward and backward of relu(conv(x, W) + b) (then 2x2 max pool if `pool`),
    stride 1, no padding, under the loss sum(h * G).  Returns (dx, dW, db)."""
    n, c, height, width = x.shape
    f, _, kh, kw = W.shape
    oh, ow = height - kh + 1, width - kw + 1
    s = x.strides
    fields = as_strided(x, (n, oh, ow, c, kh, kw), (s[0], s[2], s[3], s[1], s[2], s[3]))
    cols = fields.reshape(n * oh * ow, c * kh * kw)  # a copy: the im2col matrix
    Wm = W.reshape(f, -1)
    z = cols @ Wm.T + b  # (n * oh * ow, f)
    h = np.maximum(z, 0.0)
    if pool:
        ph, pw = oh // 2, ow // 2
        hw = h.reshape(n, oh, ow, f)[:, :2 * ph, :2 * pw]
        win = hw.reshape(n, ph, 2, pw, 2, f).transpose(0, 1, 3, 5, 2, 4).reshape(
            n, ph, pw, f, 4)
        arg = win.argmax(axis=-1)
        # the loss's cotangent G is NCHW; scatter it to each window's argmax
        g_win = np.zeros((n, ph, pw, f, 4))
        np.put_along_axis(g_win, arg[..., None], G.transpose(0, 2, 3, 1)[..., None], axis=-1)
        dh = np.zeros((n, oh, ow, f))
        dh[:, :2 * ph, :2 * pw] = g_win.reshape(n, ph, pw, f, 2, 2).transpose(
            0, 1, 4, 2, 5, 3).reshape(n, 2 * ph, 2 * pw, f)
        dh = dh.reshape(-1, f)
    else:
        dh = G.transpose(0, 2, 3, 1).reshape(-1, f)
    dz = dh * (z > 0)
    dW = (dz.T @ cols).reshape(W.shape)
    db = dz.sum(axis=0)
    dcols = (dz @ Wm).reshape(n, oh, ow, c, kh, kw)
    dx = np.zeros_like(x)
    for i in range(kh):
        for j in range(kw):
            dx[:, :, i:i + oh, j:j + ow] += dcols[:, :, :, :, i, j].transpose(0, 3, 1, 2)
    return dx, dW, db


def ardiff_layer_grads(x, W, b, G, pool):
    """The same gradients from `ardiff.grad` of the fused op."""
    def loss(x, W, b):
        return (conv2d(x, W, b, activation="relu", pool=2 if pool else None) * G).sum()

    return ardiff.grad(loss, argnum=(0, 1, 2))(x, W, b)


def problem(name, batch, pool, seed=0):
    rng = np.random.default_rng(seed)
    xs, ws = LAYERS[name]
    x = rng.random((batch,) + xs)
    W = rng.standard_normal(ws) * np.sqrt(2.0 / np.prod(ws[1:]))
    b = 0.1 * rng.standard_normal(ws[0])
    oh, ow = xs[1] - ws[2] + 1, xs[2] - ws[3] + 1
    if pool:
        oh, ow = oh // 2, ow // 2
    G = rng.standard_normal((batch, ws[0], oh, ow))
    return x, W, b, G


def rel_err(a, b):
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--batch", type=int, default=64)
    args = parser.parse_args(argv)
    print(f"# {platform.platform()}, Python {platform.python_version()}, NumPy "
          f"{np.__version__}, OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS')}, "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"# batch {args.batch}, float64, {args.repeats} interleaved repeats after "
          f"{args.warmup} warm-up rounds; one call = forward + backward (dx, dW, db)")
    print("| layer | pool | ardiff median (ms) | NumPy median (ms) | ratio ardiff / NumPy |")
    print("|---|---|---|---|---|")
    status = 0
    for name in LAYERS:
        for pool in (False, True):
            x, W, b, G = problem(name, args.batch, pool)
            got = ardiff_layer_grads(x, W, b, G, pool)
            want = numpy_layer_grads(x, W, b, G, pool)
            errs = [rel_err(np.asarray(g), w) for g, w in zip(got, want)]
            if max(errs) >= 1e-10:
                print(f"{name} pool={pool}: gradients differ (relative errors {errs})",
                      file=sys.stderr)
                status = 1
                continue
            times = {"ardiff": [], "numpy": []}
            for k in range(args.warmup + args.repeats):
                for key, fun in (("ardiff", ardiff_layer_grads), ("numpy", numpy_layer_grads)):
                    t0 = time.perf_counter()
                    fun(x, W, b, G, pool)
                    if k >= args.warmup:
                        times[key].append(time.perf_counter() - t0)
            ta, tn = statistics.median(times["ardiff"]), statistics.median(times["numpy"])
            print(f"| {name} | {'2x2 max' if pool else 'none'} | {1e3 * ta:.2f} | "
                  f"{1e3 * tn:.2f} | {ta / tn:.2f} |")
    return status


if __name__ == "__main__":
    sys.exit(main())
