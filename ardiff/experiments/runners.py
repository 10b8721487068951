"""High-level runners shared by the command line and scripts: data, Fig. 1, training,
and the demo."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .conditions import FIG2
from .fig1 import PAPER_ETAS, format_report, layer_errors, report_rows
from .training import Experiment, TrainingConfig, format_table, write_json


def load_data(dataset: str, data_dir: str | None = None, train_size: int | None = None,
              test_size: int | None = None, progress: bool = True,
              download: bool = True) -> dict:
    """``{"train": (x, y), "test": (x, y)}`` from :func:`ardiff.data.load`, optionally cut
    to the first ``train_size`` / ``test_size`` examples."""
    out = {}
    for split, size in (("train", train_size), ("test", test_size)):
        x, y = _load_split(dataset, split, data_dir, download, progress)
        if size is not None:
            x, y = x[:size], y[:size]
        out[split] = (np.ascontiguousarray(x, dtype=np.float64), np.asarray(y, dtype=np.int64))
    return out


@functools.lru_cache(maxsize=2)
def _load_split(dataset: str, split: str, data_dir: str | None, download: bool,
                progress: bool) -> tuple[np.ndarray, np.ndarray]:
    # Cached: the demo and repeated runs in one process read the files once.  Callers
    # never write into these arrays (batches are copies made by fancy indexing).
    from .. import data

    x, y = data.load(dataset, split, data_dir=data_dir, download=download, progress=progress)
    x.flags.writeable = False
    return x, y


def run_fig1(data: dict, out: Path, *, etas: Sequence[float] = PAPER_ETAS, steps: int = 200,
             main_eta: float = 0.1, main_steps: int = 100, seed: int = 0, batch: int = 64,
             command: str | None = None, log: Callable[[str], None] = print) -> dict:
    """Fig. 1 on the first training batch: the eta sweep (``steps`` steps each, parallel)
    and the sequential schedule at ``main_eta`` for comparison.  Writes ``fig1.json``,
    ``fig1_table.md``, ``fig1_layers.png`` and ``fig1_eta_sweep.png``."""
    from .plots import plot_eta_sweep, plot_fig1

    out.mkdir(parents=True, exist_ok=True)
    x, y = data["train"][0][:batch], data["train"][1][:batch]
    etas = sorted(set(map(float, etas)) | {float(main_eta)}, reverse=True)
    parallel = layer_errors(x, y, etas=etas, steps=steps, seed=seed)
    sequential = layer_errors(x, y, etas=(main_eta,), steps=main_steps, seed=seed,
                              schedule="sequential")
    table = format_report(parallel, main_eta, at=[t for t in (0, 10, 50, 100, 200)
                                                  if t <= steps])
    seq_table = format_report(sequential, main_eta)
    result = {"command": command, "parallel": parallel, "sequential": sequential,
              "table": report_rows(parallel, main_eta)}
    write_json(out / "fig1.json", result)
    (out / "fig1_table.md").write_text(
        (f"Command: `{command}`\n\n" if command else "")
        + f"Parallel schedule (Algorithm 1), eta = {main_eta:g}; MSE (relative error):\n\n"
        + table + f"\n\nSequential (top-down) schedule, eta = {main_eta:g}:\n\n" + seq_table
        + "\n")
    plot_fig1(_truncate(parallel, main_steps), out / "fig1_layers.png", eta=main_eta)
    plot_eta_sweep(parallel, out / "fig1_eta_sweep.png")
    log(f"Fig. 1, parallel schedule, eta = {main_eta:g} (MSE, relative error):\n{table}")
    log(f"Sequential schedule, eta = {main_eta:g}:\n{seq_table}")
    return result


def _truncate(result: dict, steps: int) -> dict:
    cut = dict(result)
    cut["etas"] = {k: {m: [row[:steps + 1] for row in v[m]] for m in v}
                   for k, v in result["etas"].items()}
    cut["steps"] = min(steps, result["steps"])
    return cut


def run_training(data: dict, config: TrainingConfig, conditions: Sequence[str],
                 seeds: Sequence[int], out: Path, *, figure: str = "fig2",
                 command: str | None = None, progress: Any = None,
                 log: Callable[[str], None] = print, reuse: bool = True) -> dict:
    """Figs. 2/3: train every condition with every seed; see :class:`Experiment`."""
    exp = Experiment(config, list(conditions), list(seeds), out, figure=figure,
                     command=command, log=log, progress=progress, reuse=reuse)
    summary = exp.run(data)
    log(format_table(summary))
    return summary


def run_demo(out: Path, *, epochs: int = 3, data_dir: str | None = None,
             progress: Any = None, log: Callable[[str], None] = print,
             command: str | None = None, train_size: int | None = None,
             test_size: int | None = None) -> dict:
    """The README's demo, offline on the bundled Fashion-MNIST subset.

    1. Fig. 1: the relaxation converging to the backprop gradients, per layer.
    2. A short training of the paper's MLP with backprop and with AR (eta 0.1, T = 100,
       forward init, parallel schedule), seed 0.

    Writes ``demo_summary.json`` and PNG figures into ``out``; returns the summary.
    """
    start = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    data = load_data("fashion-mnist-small", data_dir, train_size, test_size,
                     progress=progress is not None)
    log(f"Data: bundled Fashion-MNIST subset, {len(data['train'][0])} train / "
        f"{len(data['test'][0])} test images.\n")
    log("1. Relaxation converging to the exact (backprop) gradients, per layer, "
        "on one batch of 64 images:")
    fig1 = run_fig1(data, out, etas=(0.1,), steps=100, command=command, log=log)
    log(f"\n2. Training the paper's MLP 784-300-300-100-10 for {epochs} epoch(s): "
        "backprop vs AR (eta 0.1, T = 100)")
    config = TrainingConfig(dataset="fashion-mnist-small", epochs=epochs,
                            train_size=train_size, test_size=test_size, angle_every=20)
    summary = run_training(data, config, FIG2, [0], out, figure="demo", command=command,
                           progress=progress, log=log, reuse=False)
    gap = None
    if "ar" in summary and "backprop" in summary:
        gap = summary["ar"]["final_test_acc"] - summary["backprop"]["final_test_acc"]
        angle = summary["ar"].get("angle_last_epoch_deg")
        log(f"\nAR - backprop final test accuracy: {100 * gap:+.2f} percentage points"
            + (f"; angle between AR and backprop weight gradients in the last epoch "
               f"(per layer): {', '.join(f'{a:.2g} deg' for a in angle)}" if angle else ""))
    result = {"command": command, "seconds": time.perf_counter() - start,
              "fig1_parallel_eta0.1": fig1["table"], "training": summary,
              "ar_minus_backprop_test_acc": gap}
    write_json(out / "demo_summary.json", result)
    log(f"\nWrote {out}/demo_summary.json and the figures fig1_layers.png, "
        f"demo_accuracy.png, demo_angles.png ({result['seconds']:.0f} s).")
    return result
