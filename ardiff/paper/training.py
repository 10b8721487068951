"""Figures 2 and 3: train the paper's MLP under several conditions and seeds.

Every run (one condition, one seed) is written to `<out>/runs/<condition>_seed<k>.json`
after each epoch, so an interrupted experiment keeps what it finished.  A run whose
file is complete and was made with the same settings is reused instead of being
trained again: `fig3` after `fig2` in the same directory only trains the five
variants.  After the runs, `summary.json`, `results.csv`, `table.md` and the
figures are (re)written from the run files.
"""

from __future__ import annotations

import csv
import io
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..nn import MLP, OPTIMIZERS, History, train
from ..solvers.options import PRESETS
from .conditions import CONDITIONS, get_condition
from .files import atomic_write, write_json
from .plots import plot_angles, plot_training

#: The paper's relaxation protocol (eta, T, schedule, start, closed form): the defaults of
#: every experiment's settings, read from the one place that defines it.
PAPER_PROTOCOL = PRESETS["paper"]


@dataclass
class ExperimentConfig:
    """Settings shared by all runs of an experiment, whatever the model: the training
    (defaults: the paper's) and the relaxation (defaults: `PAPER_PROTOCOL`,
    `ardiff.solvers.options.PRESETS["paper"]`).  `TrainingConfig` (the paper's MLP) and
    `ardiff.paper.cnn.CNNConfig` add their model's fields."""

    dataset: str = "fashion-mnist"
    epochs: int = 10
    batch_size: int = 64
    lr: float = 5e-4
    optimizer: str = "sgd"
    loss: str = "sse"
    activation: str = "relu"
    eta: float = PAPER_PROTOCOL["eta"]
    steps: int = PAPER_PROTOCOL["max_iter"]
    init: str = PAPER_PROTOCOL["init"]
    schedule: str = PAPER_PROTOCOL["schedule"]
    # the state after `steps` steps in closed form (same numbers as stepping up to
    # rounding, D = 3 sweeps instead of T); part of the settings so that a run stepped
    # explicitly is not reused as if it were this one
    closed_form: bool = PAPER_PROTOCOL["closed_form"]
    train_size: int | None = None
    test_size: int | None = None
    angle_every: int = 100

    def to_dict(self) -> dict:
        """JSON-friendly settings (a saved run is reused only with equal settings)."""
        return {key: list(value) if isinstance(value, tuple) else value
                for key, value in asdict(self).items()}


@dataclass
class TrainingConfig(ExperimentConfig):
    """Settings of the paper's MLP experiments (the defaults are the paper's)."""

    sizes: tuple = (784, 300, 300, 100, 10)
    init_std: float = 0.05

    def model(self, seed: int) -> MLP:
        """The network of one run (weights drawn from `seed`)."""
        return MLP(self.sizes, activation=self.activation, init_std=self.init_std, seed=seed)


#: Run states that are final: a finished run is reused rather than trained again.
FINISHED = ("complete", "diverged")


def run_path(out: Path, condition: str, seed: int) -> Path:
    """Where one run's results live."""
    return out / "runs" / f"{condition}_seed{seed}.json"


def load_run(path: Path) -> dict | None:
    """A saved run, or None if missing or unreadable."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def train_one(config: Any, condition: str, seed: int, data: dict, out: Path,
              progress: Callable[..., Any] | None = None, command: str | None = None, *,
              name: str = "", record_model: bool = False) -> dict:
    """Train one condition with one seed, saving after every epoch; returns the run dict.

    `config` is a `TrainingConfig` or any settings object with the same training fields,
    `to_dict` and `model(seed)` (`ardiff.paper.cnn.CNNConfig`); `name` prefixes the
    progress bar and `record_model` stores the model's repr in the run.
    """
    cond = get_condition(condition)
    method = cond.method(seed=seed, eta=config.eta, steps=config.steps, init=config.init,
                         schedule=config.schedule, closed_form=config.closed_form)
    if config.optimizer not in OPTIMIZERS:
        raise ValueError(f"Unknown optimizer {config.optimizer!r}; choose from "
                         f"{sorted(OPTIMIZERS)}.")
    model = config.model(seed)
    optimizer = OPTIMIZERS[config.optimizer](lr=config.lr)
    run = {"condition": condition, "label": cond.label, "seed": seed,
           "config": config.to_dict()}
    if record_model:
        run["model"] = repr(model)
    run.update({"method": method.describe(), "command": command, "status": "running",
                "started": time.strftime("%Y-%m-%dT%H:%M:%S")})
    history, save = train_saving(run, run_path(out, condition, seed), model, method,
                                 optimizer, config, data, seed, progress,
                                 f"{name}{condition} seed {seed}")
    save("diverged" if history.diverged is not None else "complete")
    return run


def train_saving(run: dict, path: Path, model: Any, method: Any, optimizer: Any, config: Any,
                 data: dict, seed: int, progress: Callable[..., Any] | None,
                 desc: str) -> tuple[History, Callable[[str], None]]:
    """Train `model` by `method`, writing `run` (with its history) to `path` after every
    epoch, and with status "interrupted" on Ctrl-C (then re-raised).

    The loop of every experiment (`train_one`, the CNN, `ardiff.paper.depth`); the
    caller records what it adds to `run` and writes the final status with the returned
    `save(status)`.

    Returns
    -------
    tuple of (History, callable)
        The training history and `save(status)`.
    """
    history = History()

    def save(status: str) -> None:
        run["status"] = status
        run["history"] = history.to_dict()
        write_json(path, run)

    per_epoch = math.ceil(len(data["train"][0]) / config.batch_size)
    run["batches_per_epoch"] = per_epoch
    bar = progress(total=per_epoch * config.epochs, desc=desc, unit="batch",
                   leave=False) if progress else None
    try:
        train(model, data["train"], data["test"], method=method, loss=config.loss,
              optimizer=optimizer, epochs=config.epochs, batch_size=config.batch_size,
              seed=seed, angle_every=config.angle_every, history=history, progress=bar,
              on_epoch=lambda h: save("running"))
    except KeyboardInterrupt:
        save("interrupted")
        raise
    finally:
        if bar is not None:
            bar.close()
    return history, save


def summarize(runs: Sequence[dict], conditions: Sequence[str]) -> dict:
    """Per condition: final accuracies (mean, sample std over seeds), time per epoch,
    mean gradient angle over the last epoch's records, and per-epoch mean curves."""
    out = {}
    for name in conditions:
        mine = [r for r in runs if r["condition"] == name and r.get("history")]
        complete = [r for r in mine if r["status"] in FINISHED]
        if not mine:
            continue
        use = complete or mine

        def final(key, rs=use):
            vals = np.array([r["history"][key][-1] for r in rs], dtype=float)
            return (float(np.mean(vals)),
                    float(np.std(vals, ddof=1)) if len(vals) > 1 else None)

        n_epochs = min(len(r["history"]["epoch"]) for r in use)
        curves = {}
        for key in ("train_acc", "test_acc", "train_loss", "test_loss"):
            arr = np.array([r["history"][key][:n_epochs] for r in use], dtype=float)
            curves[key] = {"mean": arr.mean(0).tolist(),
                           "std": (arr.std(0, ddof=1) if len(arr) > 1 else 0 * arr[0]).tolist()}
        times = [t for r in use for t in r["history"]["epoch_time"][1:]]
        last_rows = []
        for r in use:  # angle records of each run's last epoch
            per_epoch = r.get("batches_per_epoch") or 1
            cut = (len(r["history"]["epoch"]) - 2) * per_epoch
            last_rows += [a[1:] for a in r["history"].get("angles", []) if a[0] >= cut]
        last = {}
        if last_rows:  # None marks a non-finite angle (a diverged run): left out of the mean
            rows = np.array(last_rows, dtype=float)
            finite = np.isfinite(rows)
            counts = finite.sum(axis=0)
            sums = np.where(finite, rows, 0.0).sum(axis=0)
            last = {"angle_last_epoch_deg": [float(v) if n else None
                                             for v, n in zip(sums / np.maximum(counts, 1),
                                                             counts)]}
        train_mean, train_std = final("train_acc")
        test_mean, test_std = final("test_acc")
        out[name] = {
            "label": CONDITIONS[name].label if name in CONDITIONS else name,
            "seeds": [r["seed"] for r in use], "complete": len(complete) == len(mine),
            "diverged": sum(r["history"].get("diverged") is not None
                            or not _finite(r["history"]["train_loss"][-1]) for r in use),
            "epochs": n_epochs - 1,
            "final_train_acc": train_mean, "final_train_acc_std": train_std,
            "final_test_acc": test_mean, "final_test_acc_std": test_std,
            "seconds_per_epoch": float(np.mean(times)) if times else None,
            "curves": curves, **last,
        }
    return out


def _finite(value: Any) -> bool:
    return value is not None and math.isfinite(value)


def _pm(mean: float | None, std: float | None) -> str:
    if mean is None:
        return "n/a"
    return f"{100 * mean:.2f}" + (f" ± {100 * std:.2f}" if std is not None else "")


def format_table(summary: dict) -> str:
    """A Markdown table of the summary (accuracies in percent)."""
    lines = ["| condition | seeds | epochs | final train acc (%) | final test acc (%) | "
             "s / epoch |", "|---|---|---|---|---|---|"]
    for s in summary.values():
        sec = f"{s['seconds_per_epoch']:.1f}" if s["seconds_per_epoch"] is not None else "n/a"
        flag = "" if s["complete"] else " (partial)"
        if s.get("diverged"):
            flag += f" (diverged: {s['diverged']} of {len(s['seeds'])})"
        lines.append(f"| {s['label']}{flag} | {len(s['seeds'])} | {s['epochs']} | "
                     f"{_pm(s['final_train_acc'], s['final_train_acc_std'])} | "
                     f"{_pm(s['final_test_acc'], s['final_test_acc_std'])} | {sec} |")
    return "\n".join(lines)


def write_results(out: Path, runs: Sequence[dict], conditions: Sequence[str], figure: str,
                  command: str | None = None) -> tuple[dict, list[Path]]:
    """Write the summary, the per-epoch CSV, the table and the figures of an experiment.

    Parameters
    ----------
    out : pathlib.Path
        Output directory.
    runs : sequence of dict
        The runs (as saved in `runs/*.json`).
    conditions : sequence of str
        Conditions to summarise, in this order.
    figure : str
        File name prefix (`"fig2"`, `"fig3"`, `"demo"`).
    command : str, optional
        The command line, recorded in the summary and the table.

    Returns
    -------
    summary : dict
        See `summarize`.
    paths : list of pathlib.Path
        Every file written: `<figure>_summary.json`, `<figure>_results.csv`,
        `<figure>_table.md`, and `<figure>_accuracy.png` and `<figure>_angles.png`
        when there is something to draw.
    """
    summary = summarize(runs, conditions)
    paths = [write_json(out / f"{figure}_summary.json",
                        {"command": command, "conditions": summary})]
    rows = io.StringIO(newline="")
    writer = csv.writer(rows)
    keys = ["train_acc", "test_acc", "train_loss", "test_loss", "running_acc", "epoch_time"]
    writer.writerow(["condition", "seed", "status", "epoch", *keys])
    for r in runs:
        h = r.get("history") or {}
        for i, epoch in enumerate(h.get("epoch", [])):
            writer.writerow([r["condition"], r["seed"], r["status"], epoch,
                             *[_csv(h[k][i]) for k in keys]])
    paths.append(atomic_write(out / f"{figure}_results.csv", rows.getvalue()))
    table = format_table(summary)
    paths.append(atomic_write(out / f"{figure}_table.md",
                              (f"Command: `{command}`\n\n" if command else "") + table + "\n"))
    if summary:
        paths.append(plot_training(summary, out / f"{figure}_accuracy.png",
                                   title="AR variants" if figure == "fig3" else "AR vs backprop"))
        if any("angle_last_epoch_deg" in s for s in summary.values()):
            paths.append(plot_angles(runs, conditions, out / f"{figure}_angles.png"))
    return summary, paths


def _csv(v):
    return "" if v is None or (isinstance(v, float) and not math.isfinite(v)) else v


@dataclass
class Experiment:
    """Run `conditions` x `seeds` with shared settings, reusing finished runs."""

    config: TrainingConfig
    conditions: Sequence[str]
    seeds: Sequence[int]
    out: Path
    figure: str = "fig2"
    command: str | None = None
    log: Callable[[str], None] = print
    progress: Callable[..., Any] | None = None
    reuse: bool = True
    runs: list = field(default_factory=list)
    files: list = field(default_factory=list)

    def run(self, data: dict) -> dict:
        """Train what is missing, then write the results and return the summary.

        Ctrl-C writes the partial results and re-raises `KeyboardInterrupt`.  Every
        file written (run files included) is listed in `files` afterwards.
        """
        self.out.mkdir(parents=True, exist_ok=True)
        wanted = self.config.to_dict()
        try:
            for name in self.conditions:
                for seed in self.seeds:
                    saved = load_run(run_path(self.out, name, seed))
                    if self.reuse and saved and saved.get("status") in FINISHED and \
                            saved.get("config") == wanted:
                        self.log(f"{name} seed {seed}: reusing {run_path(self.out, name, seed)}")
                        self.runs.append(saved)
                        continue
                    run = train_one(self.config, name, seed, data, self.out, self.progress,
                                    self.command)
                    h = run["history"]
                    if h.get("diverged") is not None:
                        self.log(f"{name} seed {seed}: diverged at batch {h['diverged']}")
                    self.log(f"{name} seed {seed}: train {100 * h['train_acc'][-1]:.2f}%  "
                             f"test {100 * h['test_acc'][-1]:.2f}%  "
                             f"{np.mean(h['epoch_time'][1:]):.1f} s/epoch")
                    self.runs.append(run)
        except KeyboardInterrupt:
            for name in self.conditions:
                for seed in self.seeds:
                    saved = load_run(run_path(self.out, name, seed))
                    if saved and saved.get("status") == "interrupted" and \
                            saved.get("config") == wanted and saved not in self.runs:
                        self.runs.append(saved)
            self.log("Interrupted: writing the results so far.")
            self._write()
            raise
        return self._write()

    def _write(self) -> dict:
        summary, paths = write_results(self.out, self.runs, self.conditions, self.figure,
                                       self.command)
        self.files = paths + [run_path(self.out, r["condition"], r["seed"]) for r in self.runs]
        return summary
