"""Figure 1: the relaxing activities converge to the exact gradients, lower layers last.

The paper's numerical test: an MLP 784-300-100-100-10 with tanh hidden units,
no biases, N(0, 0.05²) weights, squared-error loss on the first batch of 64
images.  The output layer is clamped to the loss derivative `2 (out - y)` and
the three hidden layers relax from their forward values (Algorithm 1: all layers
in parallel).  The error of each layer after `t` steps is the mean squared
difference between its activity and the exact gradient (from backprop on the same
graph); the relative error `||x_t - g|| / ||g||` is reported too.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np

from ..nn import MLP, one_hot
from ..solvers import ReachWarning, SolverOptions, compile_plan, run_backprop, run_relaxation

#: The eta values of the paper's Fig. 1b.
PAPER_ETAS = (0.5, 0.2, 0.1, 0.05, 0.02, 0.01, 0.005)
#: Iterations at which the errors are tabulated.
REPORT_AT = (0, 10, 50, 100)


def layer_errors(x: np.ndarray, y: np.ndarray, *, etas: Sequence[float] = (0.1,),
                 steps: int = 100, seed: int = 0, schedule: str = "parallel",
                 sizes: Sequence[int] = (784, 300, 100, 100, 10),
                 activation: str = "tanh") -> dict:
    """Per-layer error of the relaxing activities against the exact gradients.

    Parameters
    ----------
    x, y : numpy.ndarray
        One batch of images `(n, 784)` and integer labels.
    etas : sequence of float
        Euler steps to run (each a separate relaxation).
    steps : int
        Relaxation steps T.
    seed : int
        Weight initialisation seed.
    schedule : {"parallel", "sequential"}
        Relaxation schedule.

    Returns
    -------
    dict
        `{"layers": [...], "etas": {eta: {"mse": [[per step] per layer],
        "relative": [...]}}, "grad_rms": [...]}`; layer 1 is the lowest hidden layer.
    """
    model = MLP(sizes, activation=activation, bias=False, init_std=0.05, seed=seed)
    graph, out, params, layers = model.trace(x)
    target = one_hot(y, sizes[-1], x.dtype)
    seed_error = 2.0 * (out.value - target)
    plan = compile_plan(graph, out, params)
    exact = run_backprop(plan, seed_error).activities
    hidden = [t.node.index for t in layers[:-1]]
    truth = [np.asarray(exact[i]) for i in hidden]
    result = {"layers": [f"layer {k}" for k in range(1, len(hidden) + 1)],
              "sizes": list(sizes), "activation": activation, "schedule": schedule,
              "steps": steps, "batch": len(x), "seed": seed,
              "grad_rms": [float(np.sqrt(np.mean(g * g))) for g in truth], "etas": {}}
    for eta in etas:
        with warnings.catch_warnings():
            # the figure is the remaining error per step: a small eta that does not reach
            # the first layer in `steps` steps is what it shows, not a mistake to warn of
            warnings.simplefilter("ignore", ReachWarning)
            res = run_relaxation(plan, seed_error, SolverOptions(
                eta=eta, schedule=schedule, init="forward", tol=0.0, max_iter=steps,
                record=True))
        mse, rel = [], []
        for i, g in zip(hidden, truth):
            traj = res.trajectory[i]
            diff = traj - g[None]
            mse.append(_four_digits(np.mean(diff.reshape(len(traj), -1) ** 2, axis=1)))
            rel.append(_four_digits(np.linalg.norm(diff.reshape(len(traj), -1), axis=1)
                                    / np.linalg.norm(g)))
        result["etas"][repr(float(eta))] = {"mse": mse, "relative": rel}
    return result


def _four_digits(values: np.ndarray) -> list[float]:
    # four significant digits keep the JSON small; the curves span 30 decades
    return [float(f"{v:.4g}") for v in values]


def report_rows(result: dict, eta: float = 0.1, at: Sequence[int] = REPORT_AT) -> list[dict]:
    """Rows `{layer, step, mse, relative}` at the given steps for one eta."""
    data = result["etas"][repr(float(eta))]
    rows = []
    for k, name in enumerate(result["layers"]):
        for t in at:
            if t < len(data["mse"][k]):
                rows.append({"layer": name, "step": t, "mse": data["mse"][k][t],
                             "relative": data["relative"][k][t]})
    return rows


def format_report(result: dict, eta: float = 0.1, at: Sequence[int] = REPORT_AT) -> str:
    """A Markdown table: per layer, MSE and (relative error) at the given steps."""
    at = [t for t in at if t <= result["steps"]]
    head = "| layer | " + " | ".join(f"t = {t}" for t in at) + " |"
    lines = [head, "|---" * (len(at) + 1) + "|"]
    data = result["etas"][repr(float(eta))]
    for k, name in enumerate(result["layers"]):
        cells = [f"{data['mse'][k][t]:.2e} (rel. {data['relative'][k][t]:.1e})" for t in at]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
