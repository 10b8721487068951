"""Matplotlib figures of the experiments (PNG files; the Agg backend, no display).

matplotlib is an optional dependency (the ``cli`` extra); it is imported only
when a figure is drawn.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np


def _pyplot():
    try:
        import matplotlib
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("Figures need matplotlib: pip install 'ardiff[cli]' (or "
                          "pip install matplotlib).") from exc
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _color(name: str) -> str:
    """One fixed colour per condition, the same in every figure."""
    from .conditions import CONDITIONS

    names = list(CONDITIONS)
    k = names.index(name) if name in names else len(names) + hash(name) % 3
    return f"C{k % 10}"


def plot_fig1(result: dict, path: Path, eta: float = 0.1) -> Path:
    """Fig. 1a: per-layer MSE to the exact gradient against relaxation step (log scale)."""
    plt = _pyplot()
    data = result["etas"][repr(float(eta))]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for k, name in enumerate(result["layers"]):
        axes[0].semilogy(data["mse"][k], label=name)
        axes[1].semilogy(data["relative"][k], label=name)
    axes[0].set_ylabel("mean squared error to exact gradient")
    axes[1].set_ylabel("relative error ||x - g|| / ||g||")
    for ax in axes:
        ax.set_xlabel("relaxation step")
        ax.legend()
        ax.grid(alpha=0.3)
    fig.suptitle(f"Relaxation to the backprop gradients (eta = {eta:g}, {result['schedule']}, "
                 f"{'-'.join(map(str, result['sizes']))} {result['activation']})")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_eta_sweep(result: dict, path: Path) -> Path:
    """Fig. 1b: per layer, MSE against step for every eta."""
    plt = _pyplot()
    layers = result["layers"]
    fig, axes = plt.subplots(1, len(layers), figsize=(4.2 * len(layers), 3.8), sharey=True)
    axes = np.atleast_1d(axes)
    for eta_key, data in result["etas"].items():
        for k, ax in enumerate(axes):
            ax.semilogy(data["mse"][k], label=f"eta = {float(eta_key):g}")
    for k, ax in enumerate(axes):
        ax.set_title(layers[k])
        ax.set_xlabel("relaxation step")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("mean squared error to exact gradient")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=8, loc="center right")
    fig.tight_layout(rect=(0, 0, 0.88, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_training(summary: dict, path: Path, title: str = "") -> Path:
    """Train and test accuracy per epoch, mean over seeds with a ±1 std band."""
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=False)
    for name, s in summary.items():
        for ax, key in zip(axes, ("train_acc", "test_acc")):
            mean = 100 * np.asarray(s["curves"][key]["mean"], dtype=float)
            std = 100 * np.asarray(s["curves"][key]["std"], dtype=float)
            epochs = np.arange(len(mean))
            ax.plot(epochs, mean, marker="o", ms=3, color=_color(name),
                    label=f"{s['label']} (n={len(s['seeds'])})")
            if len(s["seeds"]) > 1:
                ax.fill_between(epochs, mean - std, mean + std, color=_color(name), alpha=0.2)
    for ax, what in zip(axes, ("train", "test")):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.set_ylabel(f"{what} accuracy (%)")
        ax.grid(alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    rows = (len(labels) + 2) // 3
    fig.legend(handles, labels, fontsize=8, loc="lower center", ncol=min(3, len(labels)))
    if title:
        fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.05 + 0.045 * rows, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_angles(runs: Sequence[dict], conditions: Sequence[str], path: Path) -> Path:
    """Angle between each method's and backprop's weight gradient during training, one
    panel per layer (mean over seeds; layers whose angle is always 0 are left out)."""
    plt = _pyplot()
    curves = {}
    for name in conditions:
        rows = [np.asarray(r["history"]["angles"], dtype=float) for r in runs
                if r["condition"] == name and r.get("history", {}).get("angles")]
        if rows:
            n = min(len(a) for a in rows)
            stacked = np.stack([a[:n] for a in rows])
            label = next(r.get("label", name) for r in runs if r["condition"] == name)
            curves[label] = (stacked[0, :, 0], stacked[:, :, 1:].mean(axis=0), _color(name))
    n_layers = max(c[1].shape[1] for c in curves.values())
    shown = [k for k in range(n_layers)
             # below 1e-4 degrees is rounding (e.g. the clamped output layer's exact gradient)
             if any(np.any(c[1][:, k] > 1e-4) for c in curves.values() if c[1].shape[1] > k)]
    shown = shown or [0]
    fig, axes = plt.subplots(1, len(shown), figsize=(4.3 * len(shown), 3.8), squeeze=False)
    for ax, k in zip(axes[0], shown):
        for label, (batches, angles, color) in curves.items():
            values = np.where(angles[:, k] > 0, angles[:, k], np.nan)
            ax.plot(batches, values, label=label, color=color)
        ax.set_yscale("log")
        ax.set_title(f"W{k + 1}")
        ax.set_xlabel("training batch")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("angle to backprop gradient (degrees)")
    axes[0][-1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
