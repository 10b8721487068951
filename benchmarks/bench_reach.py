"""The reach of the paper's protocol on deep MLPs: predicted vs measured error (issue 25).

    python benchmarks/bench_reach.py --out docs/results/theory/depth_reach.md

tanh MLPs as in issue 25: input 32, L hidden tanh layers of width 64 each marked with
`ardiff.unit`, a linear output of 10, weights N(0, 1)/sqrt(fan-in), a batch of 16
N(0, 1) inputs with one-hot targets, loss 0.5 * sum((out - y)**2) / 16,
`np.random.RandomState(0)`.  For each depth the first layer's weight gradient by
`ardiff.grad(loss, preset="paper")` (T = 100 parallel steps of eta = 0.1, layer units)
is compared with backprop:

* predicted: `error_bound(100, D, 0.1)` for the deepest unit (D = L);
* measured from zeros (`init="zeros"`): the relative error, max|g - g*| / max|g*|;
  every folded op below the first unit is linear in its activity, so it equals the
  unit's remaining fraction exactly;
* measured from the forward values (the paper's start): relative error and cosine;
* T by reach (`max_iter="reach"`, tol = 1e-3) and the forward start's error there.

The ReachWarning that T = 100 gives on the deeper networks is what the table measures;
it is not repeated here.
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import numpy as np

import ardiff
import ardiff.numpy as anp
from ardiff.solvers.theory import error_bound, predict_iterations

DEPTHS = (3, 4, 8, 16, 32, 64)


def problem(L: int):
    rng = np.random.RandomState(0)
    sizes = [32] + [64] * L + [10]
    Ws = [rng.randn(m, n) / np.sqrt(m) for m, n in zip(sizes[:-1], sizes[1:])]
    x = rng.randn(16, 32)
    y = np.eye(10)[rng.randint(0, 10, 16)]

    def loss(Ws):
        h = x
        for W in Ws[:-1]:
            h = ardiff.unit(anp.tanh(h @ W))
        return 0.5 * anp.sum((h @ Ws[-1] - y) ** 2) / 16

    return loss, Ws


def relative_error(g, exact) -> float:
    """max|g - g*| / max|g*|: relative to the exact gradient (not symmetric)."""
    return float(np.max(np.abs(g - exact)) / np.max(np.abs(exact)))


def cosine(a, b) -> float:
    a, b = np.ravel(a), np.ravel(b)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def measure(L: int, tol: float = 1e-3) -> dict:
    loss, Ws = problem(L)
    exact = ardiff.grad(loss, method="backprop")(Ws)[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ardiff.ReachWarning)
        zeros = ardiff.grad(loss, preset="paper", init="zeros")(Ws)[0]
        forward = ardiff.grad(loss, preset="paper")(Ws)[0]
    reach = ardiff.grad(loss, preset="paper", max_iter="reach", tol=tol)(Ws)[0]
    return {"L": L, "D": L, "predicted": float(error_bound(100, L, 0.1)),
            "zeros": relative_error(zeros, exact), "forward": relative_error(forward, exact),
            "cosine": cosine(forward, exact), "T": predict_iterations(L, 0.1, "parallel", tol),
            "reach": relative_error(reach, exact), "reach_cosine": cosine(reach, exact)}


def table(rows: list[dict]) -> str:
    lines = ["| hidden layers L | D | predicted fraction, T = 100 | measured, from zeros | "
             "measured, from forward values | cosine, from forward values | T by reach "
             "(tol 1e-3) | measured at T by reach, from forward values | cosine at T by "
             "reach |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['L']} | {r['D']} | {r['predicted']:.3g} | {r['zeros']:.3g} | "
                     f"{r['forward']:.3g} | {r['cosine']:.3f} | {r['T']} | {r['reach']:.2g} | "
                     f"{r['reach_cosine']:.4f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None, help="markdown file to write")
    args = parser.parse_args(argv)
    rows = [measure(L) for L in DEPTHS]
    text = (f"{table(rows)}\n\nFirst-layer weight gradient against backprop; "
            "`python benchmarks/bench_reach.py`; relative error = max|g - g*| / max|g*|.\n")
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
