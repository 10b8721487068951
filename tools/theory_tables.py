"""Print the docs/theory.md tables that docs/make_figures.py does not print.

Run from the repository root (about a minute of CPU time, most of it in the exact
rational reference):

    python tools/theory_tables.py digits > docs/results/theory/digits_lost.md
    python tools/theory_tables.py mlp > docs/results/theory/paper_mlp.md

``digits``: "Digits lost for eta > 1": the closed form and stepping against the
relaxation stepped in exact rational arithmetic, by the reference of
``test_large_eta_against_exact_rational_arithmetic`` (tests/test_closed_form.py), for
eta in 1.25, 1.5, 1.75, 1.9 and T in 20, 60, 150.

``mlp``: the table of "The paper's MLP and the paper preset": the first two rows as
docs/make_figures.py prints them, and the third, the fused MLP of docs/make_figures.py
with its output layer clamped to dL/dout, relaxed by the paper's protocol (parallel,
eta = 0.1, forward start, 100 steps) as the snippet beside the table does.
"""

from __future__ import annotations

import importlib.util
import sys
import warnings
from pathlib import Path

import numpy as np

import ardiff

ROOT = Path(__file__).resolve().parent.parent


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def digits() -> None:
    sys.path.insert(0, str(ROOT / "tests"))      # the test module's own helpers
    ref = _load("test_closed_form", ROOT / "tests/test_closed_form.py")
    eps = np.finfo(np.float64).eps
    f, x, A, S, w = ref._rational_program()
    g = ardiff.trace(f, x)
    checkpoints = (20, 60, 150)

    def cell(err: float) -> str:
        lost = max(0.0, float(np.log10(err / eps))) if err > 0 else 0.0
        return f"{err:.1e} ({lost:.1f})"

    print("| schedule | eta | T | transient peak / final state | closed form: rel. error "
          "(digits lost) | stepping: rel. error (digits lost) |")
    print("|---|---|---|---|---|---|")
    for schedule in ("parallel", "sequential"):
        for eta in (1.25, 1.5, 1.75, 1.9):
            exact = ref._exact_stepping(A, S, w, x, eta, checkpoints, schedule)
            for steps in checkpoints:
                truth, growth = exact[steps]
                kwargs = dict(schedule=schedule, eta=eta, init="forward", tol=0.0,
                              max_iter=steps)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    closed = ardiff.relax(g, closed_form=True, **kwargs)
                    stepped = ardiff.relax(g, **kwargs)
                scale = np.linalg.norm(truth)
                errs = [np.linalg.norm(r.grads[0] - truth) / scale for r in (closed, stepped)]
                print(f"| {schedule} | {eta} | {steps} | {growth:.1e} | {cell(errs[0])} | "
                      f"{cell(errs[1])} |", flush=True)


def clamped() -> None:
    sys.path.insert(0, str(ROOT / "docs"))
    from make_figures import mlp, rel_err

    def row(label, res, ref):
        errs = [rel_err(a, b) for a, b in zip(res.grads, ref.grads)][::2]   # the weights
        cells = " | ".join("0" if e == 0 else f"{e:.1e}" for e in errs)
        return (f"| {label} | {res.plan.max_depth} | {res.iterations} | "
                f"{res.residuals[-1]:.2e} | {cells} |")

    print("| graph | D | steps | final residual | dW1 rel. err | dW2 rel. err | "
          "dW3 rel. err | dW4 rel. err |")
    print("|---|---|---|---|---|---|---|---|")
    # the first two rows as docs/make_figures.py's paper_preset_table prints them
    for fused in (False, True):
        g, loss, params, _ = mlp(fused=fused)
        ref = ardiff.backprop(g, loss, params)
        res = ardiff.relax(g, loss, params, preset="paper", units="ops")
        print(row("fused dense nodes" if fused else "traced op by op", res, ref))
    # the third: the snippet of docs/theory.md
    g, loss, params, layers = mlp(fused=True)
    out = layers[-1]
    seed = ardiff.backprop(g, loss, [out]).grads[0]
    ref = ardiff.backprop(g, out, params, seed=seed)
    res = ardiff.relax(g, out, params, seed=seed, eta=0.1, schedule="parallel",
                       init="forward", max_iter=100, tol=0.0, closed_form=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        stepped = ardiff.relax(g, out, params, seed=seed, eta=0.1, schedule="parallel",
                               init="forward", max_iter=100, tol=0.0)
    print(row("fused dense nodes, output clamped (the paper's units)", res, ref))
    diff = max(rel_err(a, b) for a, b in zip(stepped.grads, res.grads) if np.any(b))
    print(f"\nclamped: sweeps of the closed form: {res.sweeps}; stepped (closed_form=False) "
          f"against the closed form: largest relative difference (Frobenius) {diff:.0e}")


if __name__ == "__main__":
    {"digits": digits, "mlp": clamped}[sys.argv[1]]()
