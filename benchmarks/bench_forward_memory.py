"""Forward mode's memory does not grow with the program's length (issue 21's acceptance).

A chain of `steps` elementwise steps on a vector of 256 float64s,
`x <- tanh(x) * 0.9 + 0.1 * sin(x)` (four ops per step), is differentiated along one
tangent by `ardiff.jvp`; the peak of Python's traced allocations (`tracemalloc`, which
sees NumPy's array buffers) during the call is compared for 2,000 and 20,000 steps.  The
acceptance bound is a ratio of at most 2.  For contrast, reverse mode (`ardiff.grad` of
the sum) keeps the recorded graph, so its peak grows with the chain.

The JVP itself is checked against central finite differences of the plain NumPy chain
before anything is measured.

Run from the repository root: `python benchmarks/bench_forward_memory.py`; it prints the
table and writes benchmarks/results/forward_memory.txt and forward_memory.json.
"""

from __future__ import annotations

import gc
import json
import platform
import sys
import tracemalloc
from pathlib import Path

import numpy as np

import ardiff

SIZE = 256
STEPS = (2_000, 20_000)
RESULTS = Path(__file__).resolve().parent / "results"


def chain(x, steps: int):
    """The program: `steps` steps of x <- tanh(x) * 0.9 + 0.1 * sin(x)."""
    for _ in range(steps):
        x = np.tanh(x) * 0.9 + 0.1 * np.sin(x)
    return x


def peak_bytes(fun) -> tuple[int, object]:
    """Peak traced allocation (bytes) while `fun()` runs, above what was live before."""
    gc.collect()
    tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    out = fun()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak - base, out


def check(x: np.ndarray, v: np.ndarray, steps: int = 50, eps: float = 1e-6) -> float:
    """Relative error of the JVP against central finite differences."""
    _, tangent = ardiff.jvp(lambda y: chain(y, steps), (x,), (v,))
    numeric = (chain(x + eps * v, steps) - chain(x - eps * v, steps)) / (2 * eps)
    return float(np.max(np.abs(tangent - numeric)) / np.max(np.abs(numeric)))


def main() -> None:
    rng = np.random.default_rng(0)
    x, v = rng.standard_normal(SIZE), rng.standard_normal(SIZE)
    error = check(x, v)
    assert error < 1e-7, f"JVP vs finite differences: relative error {error:.1e}"
    forward, reverse = {}, {}
    for steps in STEPS:
        forward[steps], _ = peak_bytes(lambda s=steps: ardiff.jvp(lambda y: chain(y, s),
                                                                 (x,), (v,)))
        reverse[steps], _ = peak_bytes(lambda s=steps: ardiff.grad(
            lambda y: np.sum(chain(y, s)))(x))
    short, long = STEPS
    result = {
        "size": SIZE,
        "check_relative_error": float(f"{error:.1e}"),
        "forward": {"short_kib": round(forward[short] / 1024, 1),
                    "long_kib": round(forward[long] / 1024, 1),
                    "ratio": round(forward[long] / forward[short], 2)},
        "reverse": {"short_kib": round(reverse[short] / 1024, 1),
                    "long_kib": round(reverse[long] / 1024, 1),
                    "ratio": round(reverse[long] / reverse[short], 2)},
    }
    lines = [
        f"{platform.platform()}, Python {sys.version.split()[0]}, NumPy {np.__version__}",
        f"chain x <- tanh(x) * 0.9 + 0.1 * sin(x) on {SIZE} float64s; peak of tracemalloc "
        "during the call",
        f"JVP vs central finite differences (50 steps): relative error {error:.1e}",
        "",
        f"{'mode':<28}{short:>10,} steps{long:>12,} steps{'ratio':>9}",
    ]
    for name, key in (("forward (ardiff.jvp)", "forward"),
                      ("reverse (ardiff.grad)", "reverse")):
        r = result[key]
        lines.append(f"{name:<28}{r['short_kib']:>12.1f} KiB{r['long_kib']:>13.1f} KiB"
                     f"{r['ratio']:>8.2f}x")
    lines.append("")
    lines.append(f"acceptance (forward ratio <= 2): "
                 f"{'met' if result['forward']['ratio'] <= 2 else 'NOT met'}")
    text = "\n".join(lines)
    print(text)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "forward_memory.txt").write_text(text + "\n")
    (RESULTS / "forward_memory.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
