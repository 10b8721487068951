"""High-level runners shared by the command line and scripts: data, Fig. 1, training,
and the demo.

Each runner logs what it measured and returns a dict; `run_fig1` and `run_demo`
also list the files they wrote under the key `"files"`.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .conditions import FIG2
from .data import load
from .fig1 import PAPER_ETAS, format_report, layer_errors, report_rows
from .files import atomic_write, write_json
from .plots import plot_eta_sweep, plot_fig1
from .training import Experiment, TrainingConfig, format_table


def load_data(dataset: str, data_dir: str | None = None, train_size: int | None = None,
              test_size: int | None = None, progress: bool = True,
              download: bool = True) -> dict:
    """Load both splits of a dataset, optionally cut to their first examples.

    Parameters
    ----------
    dataset : str
        A name of `ardiff.paper.data.DATASETS`.
    data_dir : str, optional
        Directory searched first (see `ardiff.paper.data.load`).
    train_size, test_size : int, optional
        Keep only the first `train_size` training / `test_size` test examples.
    progress : bool, optional
        Progress bars while downloading.
    download : bool, optional
        Download missing files (else a missing dataset raises).

    Returns
    -------
    dict
        `{"train": (x, y), "test": (x, y)}`, images `float64 (n, 784)` in [0, 1],
        labels `int64 (n,)`.
    """
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
    x, y = load(dataset, split, data_dir=data_dir, download=download, progress=progress)
    x.flags.writeable = False
    return x, y


def run_fig1(data: dict, out: Path, *, etas: Sequence[float] = PAPER_ETAS, steps: int = 200,
             main_eta: float = 0.1, main_steps: int = 100, seed: int = 0, batch: int = 64,
             command: str | None = None, log: Callable[[str], None] = print) -> dict:
    """Fig. 1 on the first training batch: the eta sweep and the two schedules.

    Parameters
    ----------
    data : dict
        As returned by `load_data`; only the first `batch` training images are used.
    out : pathlib.Path
        Output directory (created if missing).
    etas : sequence of float
        Step sizes of the sweep (parallel schedule, `steps` steps each); `main_eta`
        is always added.
    steps : int
        Relaxation steps of the sweep.
    main_eta : float
        The step size of Fig. 1a and of the sequential-schedule comparison.
    main_steps : int
        Steps shown in Fig. 1a and run with the sequential schedule.
    seed : int
        Weight initialisation seed.
    batch : int
        Number of training images.
    command : str, optional
        The command line, recorded in the JSON file and the table.
    log : callable, optional
        Receives the printed tables.

    Returns
    -------
    dict
        `{"command", "parallel", "sequential", "table", "files"}`: the per-layer
        errors of both schedules (see `layer_errors`), the rows of the eta-0.1
        table, and the paths written: `fig1.json`, `fig1_table.md`,
        `fig1_layers.png` (Fig. 1a) and `fig1_eta_sweep.png` (Fig. 1b).
    """
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
    files = [write_json(out / "fig1.json", result)]
    files.append(atomic_write(
        out / "fig1_table.md",
        (f"Command: `{command}`\n\n" if command else "")
        + f"Parallel schedule (Algorithm 1), eta = {main_eta:g}; MSE (relative error):\n\n"
        + table + f"\n\nSequential (top-down) schedule, eta = {main_eta:g}:\n\n" + seq_table
        + "\n"))
    files.append(plot_fig1(_truncate(parallel, main_steps), out / "fig1_layers.png",
                           eta=main_eta))
    files.append(plot_eta_sweep(parallel, out / "fig1_eta_sweep.png"))
    log(f"Fig. 1, parallel schedule, eta = {main_eta:g} (MSE, relative error):\n{table}")
    log(f"Sequential schedule, eta = {main_eta:g}:\n{seq_table}")
    result["files"] = files
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
    """Figs. 2 and 3: train every condition with every seed (see `Experiment`).

    Parameters
    ----------
    data : dict
        As returned by `load_data`.
    config : TrainingConfig
        Settings shared by all runs.
    conditions : sequence of str
        Names of `CONDITIONS`.
    seeds : sequence of int
        One run per condition and seed.
    out : pathlib.Path
        Output directory.
    figure : str, optional
        Prefix of the result files.
    command : str, optional
        The command line, recorded in the files.
    progress : callable, optional
        A tqdm-like factory for progress bars, or None.
    log : callable, optional
        Receives progress lines and the final table.
    reuse : bool, optional
        Reuse finished runs saved with the same settings.

    Returns
    -------
    dict
        The summary, per condition (see `summarize`).  To know which files were
        written, run an `Experiment` and read its `files`.
    """
    exp = Experiment(config, list(conditions), list(seeds), out, figure=figure,
                     command=command, log=log, progress=progress, reuse=reuse)
    summary = exp.run(data)
    log(format_table(summary))
    return summary


def run_demo(out: Path, *, epochs: int = 3, progress: Any = None,
             log: Callable[[str], None] = print, command: str | None = None,
             train_size: int | None = None, test_size: int | None = None) -> dict:
    """The README's demo, offline on the bundled Fashion-MNIST subset.

    1. Fig. 1: the relaxation converging to the backprop gradients, per layer, and
       the paper's eta sweep (100 steps each).
    2. A short training of the paper's MLP with backprop and with AR (eta 0.1,
       T = 100, forward init, parallel schedule), seed 0, with the angle between
       their weight gradients every 20 batches.

    Parameters
    ----------
    out : pathlib.Path
        Output directory (created if missing).
    epochs : int, optional
        Training epochs per method.
    progress : callable, optional
        A tqdm-like factory for progress bars, or None.
    log : callable, optional
        Receives every printed line; the last one lists all the files written.
    command : str, optional
        The command line, recorded in the files.
    train_size, test_size : int, optional
        Use only the first images of the bundled subset (for quick tests).

    Returns
    -------
    dict
        `{"command", "seconds", "fig1_parallel_eta0.1", "training",
        "ar_minus_backprop_test_acc", "files"}`; everything but `"files"` (the
        sorted paths written) is also saved as `demo_summary.json`.
    """
    start = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    data = load_data("fashion-mnist-small", None, train_size, test_size,
                     progress=progress is not None)
    log(f"Data: bundled Fashion-MNIST subset, {len(data['train'][0])} train / "
        f"{len(data['test'][0])} test images. Output: {out}/\n")
    log("1. Relaxation converging to the exact (backprop) gradients, per layer, "
        "on one batch of 64 images:")
    fig1 = run_fig1(data, out, etas=PAPER_ETAS, steps=100, command=command, log=log)
    log(f"\n2. Training the paper's MLP 784-300-300-100-10 for {epochs} epoch(s): "
        "backprop vs AR (eta 0.1, T = 100)")
    config = TrainingConfig(dataset="fashion-mnist-small", epochs=epochs,
                            train_size=train_size, test_size=test_size, angle_every=20)
    exp = Experiment(config, list(FIG2), [0], out, figure="demo", command=command, log=log,
                     progress=progress, reuse=False)
    summary = exp.run(data)
    log(format_table(summary))
    gap = None
    if "ar" in summary and "backprop" in summary:
        gap = summary["ar"]["final_test_acc"] - summary["backprop"]["final_test_acc"]
        angle = summary["ar"].get("angle_last_epoch_deg")
        per_layer = ", ".join(f"W{k} {a:.2g}" for k, a in enumerate(angle or [], 1))
        log(f"\nAR - backprop final test accuracy: {100 * gap:+.2f} percentage points"
            + (f"; angle between AR and backprop weight gradients in the last epoch, "
               f"per layer (degrees): {per_layer}" if angle else ""))
    result = {"command": command, "seconds": time.perf_counter() - start,
              "fig1_parallel_eta0.1": fig1["table"], "training": summary,
              "ar_minus_backprop_test_acc": gap}
    # replaces the training phase's demo_summary.json with this superset of it
    written = [*fig1["files"], *exp.files, write_json(out / "demo_summary.json", result)]
    names = sorted({p.relative_to(out).as_posix() for p in map(Path, written)})
    result["files"] = [out / n for n in names]
    log("\nBeyond the paper's MLPs: `ardiff reproduce cnn` trains a small CNN "
        "(conv-pool-conv-pool-fc-fc, one fused op per layer) with backprop and with AR "
        "(--quick: about 10 s on a free core).")
    log(f"\nWrote {len(names)} files to {out}/ in {result['seconds']:.0f} s: "
        + ", ".join(names))
    return result
