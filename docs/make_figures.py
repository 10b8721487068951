"""Measure the relaxation dynamics with ardiff itself and draw the figures of docs/theory.md.

Run from the repository root (about a minute on one core):

    python docs/make_figures.py [SECTION ...]   # e.g. fig1_continuous; default: all

It writes PNGs into `docs/figures/` and prints the Markdown tables that
`docs/theory.md` quotes.  Everything is seeded, so the numbers are reproducible
up to floating-point rounding of the BLAS in use.

Workloads
---------
* `chain(L)`: `L` layers `h <- tanh(W_k @ h)` on a 16-vector, loss
  `sum(h**2)`; each layer is two graph nodes (matmul, tanh), so the relaxing
  depth D (longest path of relaxing nodes to the output) is read off the plan.
* the paper's MLP: 784-300-300-100-10, ReLU hidden, linear output, squared error
  summed over a batch of 64, weights N(0, 0.05^2), inputs in [0, 1], one-hot
  targets; traced op by op (matmul, add, maximum) and, for comparison, with the
  fused dense layer of `ardiff.nn` (one node per layer, as in the paper).
"""

from __future__ import annotations

import os
import sys
import time
import warnings

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from scipy.stats import binom  # noqa: E402

import ardiff  # noqa: E402
import ardiff.numpy as anp  # noqa: E402
from ardiff.nn import dense  # noqa: E402

FIGURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "figures")
ETAS = (0.1, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75)
DEPTHS = (5, 10, 20, 40)
TOL = 1e-10
MAX_ITER = 3000
FLOOR_STEPS = 1000
SIZES = (784, 300, 300, 100, 10)


# -- workloads --------------------------------------------------------------------------
def chain(n_layers: int, width: int = 16, seed: int = 0):
    """A chain of `tanh(W @ h)` layers: (graph, loss, wrt)."""
    rng = np.random.default_rng(seed)
    g = ardiff.Graph()
    h = g.input(rng.standard_normal(width), name="x")
    wrt = [h]
    for k in range(n_layers):
        # Gain 1.5/sqrt(width) keeps the signal and the gradient O(1) through 40 layers.
        W = g.input(rng.standard_normal((width, width)) * 1.5 / np.sqrt(width), name=f"W{k}")
        wrt.append(W)
        h = anp.tanh(W @ h)
    return g, anp.sum(h ** 2), wrt


def mlp(fused: bool = False, batch: int = 64, seed: int = 0):
    """The paper's MLP on random data: (graph, loss, params, pre-activations per layer)."""
    rng = np.random.default_rng(seed)
    g = ardiff.Graph()
    X = g.constant(rng.random((batch, SIZES[0])), name="X")
    Y = g.constant(np.eye(SIZES[-1])[rng.integers(0, SIZES[-1], batch)], name="Y")
    params, layers, h = [], [], X
    for k, (n, m) in enumerate(zip(SIZES[:-1], SIZES[1:])):
        W = g.input(rng.normal(0.0, 0.05, (n, m)), name=f"W{k + 1}")
        b = g.input(np.zeros(m), name=f"b{k + 1}")
        params += [W, b]
        last = k == len(SIZES) - 2
        if fused:
            h = dense(h, W, b, activation="linear" if last else "relu")
            layers.append(h)
        else:
            a = h @ W + b
            layers.append(a)  # dL/da_k: the error signal of layer k
            h = a if last else anp.maximum(a, 0.0)
    return g, anp.sum((h - Y) ** 2), params, layers


# -- measurements -----------------------------------------------------------------------
def iterations(g, loss, wrt, **options) -> tuple[int | None, float]:
    """Steps (parallel) or sweeps (sequential) until the relative residual is <= TOL.

    Returns `(iterations, smallest residual reached)`; iterations is None when TOL
    is not reached within MAX_ITER, which happens for eta > 1 on deep graphs: the
    last bit of the top nodes never settles and the graph amplifies it (see
    `floor_table`).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ardiff.ConvergenceWarning)
        res = ardiff.relax(g, loss, wrt, tol=TOL, max_iter=MAX_ITER, **options)
    return (res.iterations if res.converged else None), float(np.min(res.residuals))


def cell(count: tuple[int | None, float]) -> str:
    """A table cell: the count, or the residual floor when TOL was not reached."""
    n, floor = count
    return str(n) if n is not None else f"not reached (floor {floor:.0e})"


def predicted(depth: int, eta: float, schedule: str) -> int | None:
    """Iterations to TOL predicted for a layered graph started from zeros (eta <= 1).

    On a graph where every path from a node at distance k to the output has length k,
    each entry of that node starts at 0 and its relative error after t steps is
    exactly P(Binomial(t, eta) < k) on the parallel schedule and
    P(Binomial(t + k - 1, eta) < k) on the sequential one (each sweep can carry the
    signal down many levels).  The deepest node, k = D, is the last to converge.
    """
    if eta > 1.0:
        return None
    t = 1
    while True:
        trials = t if schedule == "parallel" else t + depth - 1
        if binom.cdf(depth - 1, trials, eta) <= TOL:
            return t
        t += 1


def rel_err(a, b) -> float:
    """Relative error ||a - b|| / ||b|| (Frobenius norm)."""
    return float(np.linalg.norm(np.asarray(a) - b) / np.linalg.norm(b))


def error_curve(res, exact: dict) -> np.ndarray:
    """Worst relative error over relaxing nodes at every recorded iteration."""
    nodes = list(exact)
    steps = len(res.trajectory[nodes[0]])
    return np.array([max(rel_err(res.trajectory[i][t], exact[i]) for i in nodes)
                     for t in range(steps)])


def table(header: list[str], rows: list[list]) -> str:
    """A Markdown table."""
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


def save(fig, name: str) -> None:
    path = os.path.join(FIGURES, name)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    print(f"wrote {os.path.relpath(path)}")


# -- figures ----------------------------------------------------------------------------
def eta_sweep() -> None:
    """Iterations to TOL vs eta on a 10-layer chain, both schedules, both inits."""
    g, loss, wrt = chain(10)
    depth = ardiff.backprop(g, loss, wrt).plan.max_depth
    curves = {
        "parallel, init zeros": dict(schedule="parallel", init="zeros"),
        "parallel, init forward": dict(schedule="parallel", init="forward"),
        "sequential, init zeros": dict(schedule="sequential", init="zeros"),
        "sequential, init forward": dict(schedule="sequential", init="forward"),
    }
    counts = {label: [iterations(g, loss, wrt, eta=eta, **opts) for eta in ETAS]
              for label, opts in curves.items()}
    print(f"\n### Iterations to {TOL:g} relative residual vs eta (10-layer chain, D = {depth})\n")
    rows = [[eta, *(cell(counts[c][k]) for c in curves),
             *(predicted(depth, eta, sch) or "-" for sch in ("parallel", "sequential"))]
            for k, eta in enumerate(ETAS)]
    print(table(["eta", *curves, "predicted parallel", "predicted sequential"], rows))
    fig, ax = plt.subplots(figsize=(6, 4))
    for (label, ys), marker in zip(counts.items(), "os^v"):
        # a missing point: the tolerance is never reached (rounding floor, eta > 1)
        ax.plot(ETAS, [np.nan if n is None else n for n, _ in ys], marker=marker, label=label)
    missed = [eta for k, eta in enumerate(ETAS) if any(counts[c][k][0] is None for c in curves)]
    ax.plot(missed, [MAX_ITER] * len(missed), "kx", ms=9,
            label=f"not reached in {MAX_ITER} (rounding floor)")
    ax.axhline(depth, color="grey", ls=":", lw=1)
    ax.annotate(f"D = {depth}", (ETAS[0], depth), textcoords="offset points", xytext=(0, 4),
                color="grey")
    ax.set(xlabel="eta", ylabel=f"iterations to {TOL:g} residual", yscale="log",
           title="10-layer tanh chain: steps (parallel) or sweeps (sequential)")
    ax.legend()
    save(fig, "iterations_vs_eta.png")


def depth_sweep() -> None:
    """Iterations to TOL vs chain depth, parallel vs sequential, eta 0.5 and 1."""
    settings = [("parallel", 0.5), ("parallel", 1.0), ("sequential", 0.5), ("sequential", 1.0)]
    rows, depths, counts = [], [], {s: [] for s in settings}
    for n in DEPTHS:
        g, loss, wrt = chain(n)
        depth = ardiff.backprop(g, loss, wrt).plan.max_depth
        depths.append(depth)
        for schedule, eta in settings:
            counts[(schedule, eta)].append(iterations(g, loss, wrt, schedule=schedule, eta=eta))
        rows.append([n, depth, *(f"{cell(counts[s][-1])} ({predicted(depth, s[1], s[0])})"
                                 for s in settings)])
    print(f"\n### Iterations to {TOL:g} relative residual vs depth (tanh chains, init zeros; "
          "binomial prediction in parentheses)\n")
    print(table(["layers", "D", *(f"{s} eta={e:g}" for s, e in settings)], rows))
    fig, ax = plt.subplots(figsize=(6, 4))
    for (label, ys), marker in zip(counts.items(), "os^v"):
        ax.plot(depths, [n for n, _ in ys], marker=marker, label=f"{label[0]}, eta={label[1]:g}")
    ax.plot(depths, depths, color="grey", ls=":", lw=1, label="D")
    ax.set(xlabel="relaxing depth D", ylabel=f"iterations to {TOL:g} residual",
           xscale="log", yscale="log", title="tanh chains of 5, 10, 20, 40 layers")
    ax.set_xticks(depths, [str(d) for d in depths])
    ax.minorticks_off()
    ax.legend()
    save(fig, "iterations_vs_depth.png")


def transient() -> None:
    """Worst relative error vs iteration on a 10-layer chain for several eta (parallel)."""
    g, loss, wrt = chain(10)
    exact = ardiff.backprop(g, loss, wrt).activities
    fig, ax = plt.subplots(figsize=(6, 4))
    peaks = []
    for eta in (0.25, 0.5, 1.0, 1.5, 1.75):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ardiff.ConvergenceWarning)
            res = ardiff.relax(g, loss, wrt, schedule="parallel", eta=eta, tol=TOL, record=True)
        err = error_curve(res, exact)
        steps = str(res.iterations) if res.converged else (
            f"not reached; stopped at the default max_iter={res.iterations}")
        peaks.append([eta, f"{err.max():.3g}", f"{err[-1]:.1e}", steps])
        ax.plot(np.maximum(err, 1e-17), label=f"eta={eta:g}")
    print("\n### Parallel schedule on the 10-layer chain from zeros: "
          "worst relative error over nodes\n")
    print(table(["eta", "largest error on the way", "final error", f"steps to {TOL:g} residual"],
                peaks))
    ax.set(xlabel="iteration", ylabel="max over nodes of relative error", yscale="log",
           title="Parallel (Jacobi) relaxation, 10-layer chain, init zeros")
    ax.legend()
    save(fig, "error_vs_iteration_chain.png")


def mlp_curves() -> None:
    """Per-layer error of the paper's MLP vs iteration: paper preset and alternatives."""
    runs = {
        # units="ops": every node relaxes (the paper preset alone relaxes the layers and
        # clamps the output layer and the loss, so those nodes have no trajectory)
        "paper preset, units='ops', fused dense layers": (True, dict(preset="paper",
                                                                     units="ops")),
        "paper preset, units='ops', traced op by op": (False, dict(preset="paper",
                                                                   units="ops")),
        "parallel, eta 0.5, init zeros": (False, dict(schedule="parallel", eta=0.5,
                                                      max_iter=100, tol=0.0)),
        "parallel, eta 1, init zeros": (False, dict(schedule="parallel", eta=1.0,
                                                    max_iter=100, tol=0.0)),
    }
    fig, axes = plt.subplots(1, len(runs), figsize=(16, 3.8), sharey=True)
    for ax, (label, (fused, opts)) in zip(axes, runs.items()):
        g, loss, params, layers = mlp(fused=fused)
        ref = ardiff.backprop(g, loss, params)
        res = ardiff.relax(g, loss, params, record=True, **opts)
        for k, a in enumerate(layers):
            i = a.node.index
            curve = [rel_err(x, ref.activities[i]) for x in res.trajectory[i]]
            what = "h" if fused else "a"
            ax.plot(np.maximum(curve, 1e-17),
                    label=f"dL/d{what}{k + 1} (distance {res.plan.depth[i]})")
        ax.set(title=f"{label} (D = {res.plan.max_depth})", xlabel="iteration", yscale="log")
        ax.title.set_fontsize(10)
        ax.legend(fontsize=7)
    axes[0].set_ylabel("relative error vs backprop")
    fig.suptitle("Paper MLP 784-300-300-100-10, batch 64: error of each layer's activity")
    save(fig, "mlp_error_vs_iteration.png")


def paper_preset_table() -> None:
    """Residual and weight-gradient errors after the paper preset's 100 steps."""
    rows = []
    for fused in (False, True):
        g, loss, params, _ = mlp(fused=fused)
        ref = ardiff.backprop(g, loss, params)
        res = ardiff.relax(g, loss, params, preset="paper", units="ops")
        errs = [rel_err(a, b) for a, b in zip(res.grads, ref.grads)]
        rows.append(["fused dense nodes" if fused else "traced op by op",
                     res.plan.max_depth, res.iterations, f"{res.residuals[-1]:.2e}",
                     *(f"{errs[k]:.1e}" for k in range(0, len(errs), 2))])
    print("\n### Paper preset at units='ops' on the paper's MLP (batch 64): after 100 "
          "steps\n")
    print(table(["graph", "D", "steps", "final residual", "dW1 rel. err", "dW2 rel. err",
                 "dW3 rel. err", "dW4 rel. err"], rows))


def init_table() -> None:
    """Iterations to TOL on the paper's MLP: schedules, eta and init."""
    g, loss, params, _ = mlp()
    rows = []
    for schedule in ("parallel", "sequential"):
        for eta in (0.1, 0.5, 1.0):
            rows.append([schedule, eta] + [cell(iterations(g, loss, params, schedule=schedule,
                                                           eta=eta, init=init))
                                           for init in ("zeros", "forward")])
    print(f"\n### Iterations to {TOL:g} relative residual on the paper's MLP (traced, D = "
          f"{ardiff.backprop(g, loss, params).plan.max_depth})\n")
    print(table(["schedule", "eta", "init zeros", "init forward"], rows))


def floor_table() -> None:
    """The smallest residual the Euler iteration reaches for eta > 1, vs depth.

    With eta > 1 the last bit of a node near the output never settles: when
    target - x is one ulp, x + eta * (target - x) rounds past the target and the
    node flips between two neighbours forever.  That period-2 forcing passes down
    the graph amplified by about eta / (2 - eta) per level (the resolvent of the
    iteration matrix (1 - eta) I + eta N at -1), so the attainable residual is
    roughly machine epsilon times (eta / (2 - eta)) ** D, times the local gains.
    """
    rows = []
    for n in DEPTHS:
        g, loss, wrt = chain(n)
        depth = ardiff.backprop(g, loss, wrt).plan.max_depth
        row = [n, depth]
        for eta in (1.25, 1.5, 1.75):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ardiff.ConvergenceWarning)
                res = ardiff.relax(g, loss, wrt, schedule="parallel", eta=eta, tol=0.0,
                                   max_iter=FLOOR_STEPS)
            # A run that lands exactly on the fixed point stops early with residual 0.
            tail = res.residuals[-FLOOR_STEPS // 4:] if res.iterations == FLOOR_STEPS else [0.0]
            row.append(f"{max(tail):.0e}" if max(tail) else "0 (exact)")
        rows.append(row)
    print(f"\n### Residual floor of the parallel schedule for eta > 1 (largest relative residual "
          f"over the last {FLOOR_STEPS // 4} of {FLOOR_STEPS} steps, tanh chains)\n")
    print(table(["layers", "D", "eta=1.25", "eta=1.5", "eta=1.75"], rows))


def fig1_continuous() -> None:
    """Fig. 1 of the paper in continuous time beside its two discrete schedules.

    The paper's numerical test (`ardiff.paper.fig1`: 784-300-100-100-10 tanh, no
    biases, weights N(0, 0.05^2), output clamped to 2 (out - y), hidden layers from
    their forward values) on the first 64 images of the bundled Fashion-MNIST subset.
    Euler steps of size eta approximate the flow dx/dt = target - x at t = eta * T, so
    the three are drawn against that time; the flow is the exact closed form (Poisson
    weights), the discrete schedules are stepped.
    """
    from ardiff.nn import MLP, one_hot
    from ardiff.paper.runners import load_data

    x, y = load_data("fashion-mnist-small", train_size=64, test_size=1,
                     progress=False)["train"]
    sizes, eta, steps = (784, 300, 100, 100, 10), 0.1, 300
    model = MLP(sizes, activation="tanh", bias=False, init_std=0.05, seed=0)
    graph, out, params, layers = model.trace(x)
    seed = 2.0 * (out.value - one_hot(y, sizes[-1], x.dtype))
    exact = ardiff.backprop(graph, out, params, seed=seed).activities
    hidden = [a.node.index for a in layers[:-1]]
    times = eta * np.arange(steps + 1)
    runs = {f"{schedule}, eta {eta}": ardiff.relax(
        graph, out, params, seed=seed, schedule=schedule, eta=eta, init="forward", tol=0.0,
        max_iter=steps, record=True) for schedule in ("parallel", "sequential")}
    runs["continuous (exact flow)"] = ardiff.relax(
        graph, out, params, seed=seed, schedule="continuous", init="forward", tol=0.0,
        time=list(times[1:]), record=True)
    fig, axes = plt.subplots(1, len(hidden), figsize=(13, 3.6), sharey=True)
    rows = []
    at = (1.0, 5.0, 10.0, 20.0, 30.0)
    for label, res in runs.items():
        for k, (ax, i) in enumerate(zip(axes, hidden)):
            curve = np.array([rel_err(v, exact[i]) for v in res.trajectory[i]])
            t = times if len(curve) == len(times) else times[1:]
            ax.plot(t, np.maximum(curve, 1e-17), label=label)
            rows.append([label, f"layer {k + 1}"] + [f"{curve[np.argmin(abs(t - a))]:.1e}"
                                                      for a in at])
    for k, ax in enumerate(axes):
        ax.set(title=f"layer {k + 1} ({len(hidden) - k} below the clamp)",
               xlabel="time t (= eta x steps)", yscale="log")
        ax.legend(fontsize=7)
    axes[0].set_ylabel("relative error vs backprop")
    fig.suptitle("Fig. 1 in continuous time: 784-300-100-100-10 tanh, batch 64, forward start")
    save(fig, "fig1_continuous.png")
    print("\n### Fig. 1 in continuous time: relative error of each hidden layer at time t "
          f"(discrete schedules at T = t / {eta} steps)\n")
    rows.sort(key=lambda r: (r[1], r[0]))
    print(table(["dynamics", "layer"] + [f"t = {a:g}" for a in at], rows))


def main() -> int:
    os.makedirs(FIGURES, exist_ok=True)
    start = time.perf_counter()
    print(f"ardiff {ardiff.__version__}, numpy {np.__version__}, python {sys.version.split()[0]}")
    sections = (eta_sweep, depth_sweep, transient, floor_table, init_table,
                paper_preset_table, mlp_curves, fig1_continuous)
    only = sys.argv[1:]  # section names to run (default: all)
    for section in sections:
        if only and section.__name__ not in only:
            continue
        tic = time.perf_counter()
        section()
        print(f"({section.__name__}: {time.perf_counter() - tic:.1f} s)", file=sys.stderr)
    print(f"\n(done in {time.perf_counter() - start:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
