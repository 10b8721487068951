"""`ardiff reproduce cnn`: a small CNN trained with backprop and with AR.

Beyond the paper's MLPs: conv(5x5, ReLU, 2x2 max pool) - conv(5x5, ReLU, 2x2 max pool)
- dense(ReLU) - dense(linear), every layer one fused op (`ardiff.nn.conv2d`,
`ardiff.nn.dense`), so AR relaxes one unit per layer as in the paper, with the
output clamped to the loss derivative.  The AR condition is the paper's protocol
(eta 0.1, T = 100 parallel steps from the forward values, computed in closed form);
the training is the paper's (summed squared error, SGD, batch 64).

Runs are written to `<out>/runs/<condition>_seed<k>.json` after every epoch and
reused when complete with the same settings, so the two conditions can run in two
processes on the same directory (`--conditions backprop`, `--conditions ar`) and a
last call writes the summary (`cnn_summary.json`, `cnn_table.md`, figures).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..nn import CNN
from .figures import CNN_CONDITIONS
from .training import (
    FINISHED,
    ExperimentConfig,
    format_table,
    load_run,
    run_path,
    train_one,
    write_results,
)

__all__ = ["CNNConfig", "train_cnn", "run_cnn", "describe", "CNN_CONDITIONS"]

@dataclass
class CNNConfig(ExperimentConfig):
    """Settings shared by all runs of the CNN experiment: `ExperimentConfig`'s (the
    paper's training and relaxation protocol), 2 epochs, and the network's shape."""

    epochs: int = 2
    channels: tuple = (8, 16)
    kernel: int = 5
    pool: int = 2
    hidden: tuple = (64,)

    def model(self, seed: int) -> CNN:
        """The network of one run (weights drawn from `seed`)."""
        return CNN((1, 28, 28), channels=self.channels, kernel=self.kernel, pool=self.pool,
                   hidden=self.hidden, activation=self.activation, seed=seed)


def train_cnn(config: CNNConfig, condition: str, seed: int, data: dict, out: Path,
              progress: Callable[..., Any] | None = None, command: str | None = None) -> dict:
    """Train one condition with one seed, saving after every epoch; returns the run dict.

    Parameters
    ----------
    config : CNNConfig
    condition : {"backprop", "ar"}
    seed : int
        Seed of the weights and of the batch order.
    data : dict
        `{"train": (x, y), "test": (x, y)}` as `ardiff.paper.runners.load_data` gives.
    out : pathlib.Path
        Output directory (the run goes to `runs/<condition>_seed<seed>.json`).
    progress : callable, optional
        A tqdm-like factory for a per-run progress bar.
    command : str, optional
        The command line, recorded in the run.

    Returns
    -------
    dict
        The saved run (settings, method, status and the `History`).
    """
    return train_one(config, condition, seed, data, out, progress, command, name="cnn ",
                     record_model=True)


def run_cnn(data: dict, config: CNNConfig, out: Path, *, seeds: Sequence[int] = (0, 1, 2),
            conditions: Sequence[str] = CNN_CONDITIONS, progress: Any = None,
            command: str | None = None) -> tuple[dict, list[Path]]:
    """Train every condition and seed not already complete in `out`, then summarise.

    The summary covers every complete run of both conditions found in `out`, so runs
    made by another process on the same directory are included.

    Returns
    -------
    summary : dict
        As `ardiff.paper.training.summarize` (final accuracies mean and std over seeds,
        seconds per epoch, gradient angles of the last epoch).
    paths : list of pathlib.Path
        The files written.
    """
    out = Path(out)
    runs = []
    for seed in seeds:
        for condition in conditions:
            saved = load_run(run_path(out, condition, seed))
            if saved and saved.get("status") in FINISHED \
                    and saved.get("config") == config.to_dict():
                runs.append(saved)
                continue
            runs.append(train_cnn(config, condition, seed, data, out, progress, command))
    paths = [p for p in (run_path(out, c, s) for s in seeds for c in conditions) if p.exists()]
    everything = [r for r in (load_run(run_path(out, c, s)) for s in seeds
                              for c in CNN_CONDITIONS) if r and r.get("config")
                  == config.to_dict()]
    summary, written = write_results(out, everything, CNN_CONDITIONS, "cnn", command)
    return summary, paths + written


def describe(summary: dict) -> str:
    """The summary table and the AR - backprop difference of mean test accuracy."""
    text = format_table(summary)
    if "ar" in summary and "backprop" in summary:
        diff = summary["ar"]["final_test_acc"] - summary["backprop"]["final_test_acc"]
        text += f"\n\nAR - backprop, mean final test accuracy: {100 * diff:+.2f} pp"
    return text

