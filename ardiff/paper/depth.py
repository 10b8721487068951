"""`ardiff reproduce depth`: residual MLPs of growing depth trained by backprop and by AR.

The paper's relaxation protocol (T = 100 parallel steps of eta = 0.1 from the forward
values) was designed for a 4-layer MLP: in T steps information travels about
T * eta units down from the clamped output (docs/theory.md, the reach).  This
experiment trains `ardiff.nn.ResidualMLP` networks (width 128, `depth` residual
blocks h + tanh(h W + b), D = 2 depth + 1 relaxing units under the paper's layer
units) on Fashion-MNIST under three conditions:

* `backprop`: the exact reverse sweep;
* `ar`: the paper's protocol, T = 100 (a `ReachWarning` says that it does not reach
  the deepest units; the run records the warning instead of repeating it per batch);
* `ar-reach`: the same protocol with `max_iter="reach"`: T chosen from the depth so
  that the deepest unit keeps at most `reach_tol` of its initial error, computed in
  closed form (D sweeps per batch, whatever T).

The training is the paper's (summed squared error, SGD, learning rate 5e-4, batch 64).
Each run is written to `<out>/runs/<condition>_depth<L>_seed<k>.json` after every epoch
and reused when complete with the same settings; `depth_summary.json`, `depth_table.md`
and `depth_accuracy.png` are written from the run files at the end.
"""

from __future__ import annotations

import dataclasses
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..nn import SGD, Method, ResidualMLP, backprop_method, relaxation
from ..solvers import ReachWarning, compile_plan, unit_plan
from ..solvers.theory import error_bound, predict_iterations
from .figures import DEPTH_CONDITIONS as CONDITION_NAMES
from .files import atomic_write, write_json
from .training import FINISHED, ExperimentConfig, load_run, train_saving

__all__ = ["DEPTH_CONDITIONS", "DepthConfig", "depth_method", "unit_depth", "train_depth",
           "run_depth", "summarize_depth", "versus_backprop", "format_depth_table",
           "describe_depth"]

#: The conditions of the depth experiment (`ardiff.paper.figures.DEPTH_CONDITIONS`),
#: with their labels.
DEPTH_CONDITIONS = dict(zip(CONDITION_NAMES, ("Backprop", "AR, T = 100 (the paper's)",
                                              "AR, T by reach")))


@dataclass
class DepthConfig(ExperimentConfig):
    """Settings of one depth: `ExperimentConfig`'s (the paper's training and relaxation
    protocol) with tanh, 5 epochs, no gradient angles, and the network's shape."""

    epochs: int = 5
    activation: str = "tanh"
    angle_every: int = 0
    depth: int = 8
    width: int = 128
    # the paper's N(0, 0.05^2) diverges in the first epoch at depths 8 and 32 (SGD on the
    # summed squared error): the output layer's step grows with |h|^2, which the
    # residual stream inflates; N(0, 0.01^2) trains at both depths
    init_std: float = 0.01
    reach_tol: float = 1e-3

    def model(self, seed: int) -> ResidualMLP:
        """The network of one run (weights drawn from `seed`)."""
        return ResidualMLP(784, self.width, self.depth, 10, activation=self.activation,
                           init_std=self.init_std, seed=seed)


def depth_method(condition: str, config: DepthConfig) -> Method:
    """The gradient method of a condition of `DEPTH_CONDITIONS`.

    Parameters
    ----------
    condition : str
        `"backprop"`, `"ar"` (T = `config.steps`) or `"ar-reach"` (T by reach).
    config : DepthConfig

    Returns
    -------
    ardiff.nn.Method
    """
    if condition not in DEPTH_CONDITIONS:
        raise ValueError(f"Unknown condition {condition!r}; choose from "
                         f"{', '.join(DEPTH_CONDITIONS)}.")
    if condition == "backprop":
        return backprop_method()
    return relaxation(eta=config.eta, steps="reach" if condition == "ar-reach" else
                      config.steps, init=config.init, schedule=config.schedule,
                      closed_form=config.closed_form, reach_tol=config.reach_tol)


def unit_depth(model: Any) -> int:
    """D: the depth of the relaxing units of `model` under the paper's layer units.

    Parameters
    ----------
    model : ResidualMLP
        Traced on one zero input.

    Returns
    -------
    int
    """
    graph, out, params, _ = model.trace(np.zeros((1, model.sizes[0])))
    return unit_plan(compile_plan(graph, out, params), "layers").max_depth


def run_file(out: Path, condition: str, depth: int, seed: int) -> Path:
    """Where one run's results live."""
    return out / "runs" / f"{condition}_depth{depth}_seed{seed}.json"


def train_depth(config: DepthConfig, condition: str, seed: int, data: dict, out: Path,
                progress: Callable[..., Any] | None = None,
                command: str | None = None) -> dict:
    """Train one condition at `config.depth` with one seed, saving after every epoch.

    Parameters
    ----------
    config : DepthConfig
    condition : str
        A key of `DEPTH_CONDITIONS`.
    seed : int
        Seed of the weights and of the batch order.
    data : dict
        `{"train": (x, y), "test": (x, y)}` (`ardiff.paper.runners.load_data`).
    out : pathlib.Path
        Output directory.
    progress : callable, optional
        A tqdm-like factory for a per-run progress bar.
    command : str, optional
        The command line, recorded in the run.

    Returns
    -------
    dict
        The saved run: settings, D, the steps T and the remaining fraction
        `error_bound(T, D)` of the AR conditions, the `ReachWarning` (if any), history.
    """
    method = depth_method(condition, config)
    model = config.model(seed)
    D = unit_depth(model)
    run = {"condition": condition, "label": DEPTH_CONDITIONS[condition], "seed": seed,
           "depth": config.depth, "units_depth": D, "config": config.to_dict(),
           "model": repr(model), "method": method.describe(), "command": command,
           "status": "running", "started": time.strftime("%Y-%m-%dT%H:%M:%S")}
    if method.solver == "relax":
        steps = (predict_iterations(D, method.eta, method.schedule, method.reach_tol)
                 if method.steps == "reach" else int(method.steps))
        run["steps"] = steps
        run["remaining_fraction"] = float(error_bound(steps, D, method.eta, method.schedule))
    reach = []
    # The paper's T = 100 warns on every batch of a deep network: the first warning is
    # kept in the run (below), the others would only repeat it.  Any other warning is
    # passed on.
    caught: list = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            history, save = train_saving(
                run, run_file(out, condition, config.depth, seed), model, method,
                SGD(lr=config.lr), config, data, seed, progress,
                f"{condition} depth {config.depth} seed {seed}")
    finally:  # outside the capture, so that the others reach the caller
        for w in caught:
            if issubclass(w.category, ReachWarning):
                reach.append(str(w.message))
            else:
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    run["reach_warning"] = reach[0] if reach else None
    run["reach_warnings"] = len(reach)
    save("diverged" if history.diverged is not None else "complete")
    return run


def summarize_depth(runs: Sequence[dict]) -> list[dict]:
    """One row per (depth, condition): final test accuracy (mean and sample std over
    seeds), seconds per epoch, D, T and the remaining fraction at the deepest unit."""
    rows = []
    for depth in sorted({r["depth"] for r in runs}):
        for condition in DEPTH_CONDITIONS:
            mine = [r for r in runs if r["depth"] == depth and r["condition"] == condition
                    and r.get("history")]
            if not mine:
                continue
            acc = np.array([r["history"]["test_acc"][-1] for r in mine], dtype=float)
            times = [t for r in mine for t in r["history"]["epoch_time"][1:]]
            rows.append({
                "depth": depth, "condition": condition, "label": DEPTH_CONDITIONS[condition],
                "units_depth": mine[0]["units_depth"], "steps": mine[0].get("steps"),
                "remaining_fraction": mine[0].get("remaining_fraction"),
                "seeds": [r["seed"] for r in mine],
                "epochs": min(len(r["history"]["epoch"]) for r in mine) - 1,
                "complete": all(r["status"] == "complete" for r in mine),
                "diverged": sum(r["status"] == "diverged" for r in mine),
                "final_test_acc": float(acc.mean()),
                "final_test_acc_std": float(acc.std(ddof=1)) if len(acc) > 1 else None,
                "seconds_per_epoch": float(np.mean(times)) if times else None})
    return rows


def format_depth_table(rows: Sequence[dict]) -> str:
    """A Markdown table of `summarize_depth` (accuracies in percent)."""
    lines = ["| blocks L | units D | condition | T | remaining fraction | seeds | epochs | "
             "final test acc (%) | s / epoch |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        acc = f"{100 * r['final_test_acc']:.2f}" + (
            f" ± {100 * r['final_test_acc_std']:.2f}"
            if r["final_test_acc_std"] is not None else "")
        frac = "-" if r["remaining_fraction"] is None else f"{r['remaining_fraction']:.2g}"
        sec = "n/a" if r["seconds_per_epoch"] is None else f"{r['seconds_per_epoch']:.1f}"
        flag = f" (diverged: {r['diverged']} of {len(r['seeds'])})" if r["diverged"] else ""
        lines.append(f"| {r['depth']} | {r['units_depth']} | {r['label']}{flag} | "
                     f"{r['steps'] if r['steps'] is not None else '-'} | {frac} | "
                     f"{len(r['seeds'])} | {r['epochs']} | {acc} | {sec} |")
    return "\n".join(lines)


def versus_backprop(rows: Sequence[dict]) -> list[dict]:
    """Per depth and AR condition: mean final test accuracy minus backprop's (percentage
    points) and seconds per epoch over backprop's."""
    by = {(r["depth"], r["condition"]): r for r in rows}
    out = []
    for depth in sorted({r["depth"] for r in rows}):
        bp = by.get((depth, "backprop"))
        for condition in ("ar", "ar-reach"):
            other = by.get((depth, condition))
            if bp and other:
                ratio = (other["seconds_per_epoch"] / bp["seconds_per_epoch"]
                         if other["seconds_per_epoch"] and bp["seconds_per_epoch"] else None)
                out.append({"depth": depth, "condition": condition,
                            "test_acc_diff_pp": 100 * (other["final_test_acc"]
                                                       - bp["final_test_acc"]),
                            "time_ratio": ratio})
    return out


def describe_depth(rows: Sequence[dict]) -> str:
    """The table and, per depth, each AR condition against backprop (`versus_backprop`)."""
    text = format_depth_table(rows)
    for v in versus_backprop(rows):
        ratio = "" if v["time_ratio"] is None else f", {v['time_ratio']:.1f} x its s / epoch"
        text += (f"\ndepth {v['depth']}: {DEPTH_CONDITIONS[v['condition']]} - backprop, mean "
                 f"final test accuracy: {v['test_acc_diff_pp']:+.2f} pp{ratio}")
    return text


def _plot(rows: Sequence[dict], path: Path) -> Path:
    import matplotlib.pyplot as plt  # lazy: optional dependency

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    for condition, label in DEPTH_CONDITIONS.items():
        mine = [r for r in rows if r["condition"] == condition]
        if not mine:
            continue
        depths = [r["depth"] for r in mine]
        axes[0].errorbar(depths, [100 * r["final_test_acc"] for r in mine],
                         yerr=[100 * (r["final_test_acc_std"] or 0) for r in mine],
                         marker="o", capsize=3, label=label)
        axes[1].plot(depths, [r["seconds_per_epoch"] or np.nan for r in mine], marker="o",
                     label=label)
    axes[0].set(xlabel="residual blocks L", ylabel="final test accuracy (%)")
    axes[1].set(xlabel="residual blocks L", ylabel="seconds per epoch", yscale="log")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def run_depth(data: dict, config: DepthConfig, out: Path, *, depths: Sequence[int] = (8, 32),
              seeds: Sequence[int] = (0, 1, 2),
              conditions: Sequence[str] = tuple(DEPTH_CONDITIONS), progress: Any = None,
              command: str | None = None,
              log: Callable[[str], None] = print) -> tuple[list[dict], list[Path]]:
    """Train every depth x condition x seed not already complete in `out`, then summarise.

    Parameters
    ----------
    data : dict
        `{"train": (x, y), "test": (x, y)}`.
    config : DepthConfig
        Shared settings; its `depth` is replaced by each of `depths`.
    out : pathlib.Path
        Output directory.
    depths, seeds, conditions : sequence
        What to run.
    progress : callable, optional
        A tqdm-like factory.
    command : str, optional
        The command line, recorded in the runs and the summary.
    log : callable
        Receives one line per finished run.

    Returns
    -------
    rows : list of dict
        `summarize_depth` of every finished run (complete or diverged) with these
        settings found in `out`.
    paths : list of pathlib.Path
        The files written or reused.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for condition in conditions:
        depth_method(condition, config)  # unknown names fail before any training
    paths = []
    for depth in depths:
        cfg = dataclasses.replace(config, depth=int(depth))
        for seed in seeds:
            for condition in conditions:
                path = run_file(out, condition, depth, seed)
                saved = load_run(path)
                if not (saved and saved.get("status") in FINISHED
                        and saved.get("config") == cfg.to_dict()):
                    saved = train_depth(cfg, condition, seed, data, out, progress, command)
                    h = saved["history"]
                    log(f"{condition} depth {depth} seed {seed}: test "
                        f"{100 * h['test_acc'][-1]:.2f}%  "
                        f"{np.mean(h['epoch_time'][1:]):.1f} s/epoch")
                paths.append(path)
    wanted = {k: v for k, v in config.to_dict().items() if k != "depth"}
    runs = [r for r in (load_run(p) for p in sorted((out / "runs").glob("*.json")))
            if r and r.get("status") in FINISHED and r.get("history")
            and {k: v for k, v in r.get("config", {}).items() if k != "depth"} == wanted]
    rows = summarize_depth(runs)
    paths.append(write_json(out / "depth_summary.json", {
        "command": command, "rows": rows, "versus_backprop": versus_backprop(rows)}))
    paths.append(atomic_write(out / "depth_table.md", (f"Command: `{command}`\n\n" if command
                                                       else "") + format_depth_table(rows)
                              + "\n"))
    if rows:
        paths.append(_plot(rows, out / "depth_accuracy.png"))
    return rows, paths
