"""Matplotlib figures of the experiments (PNG files).

matplotlib is an optional dependency (the `cli` extra); it is imported through
`ardiff.plot.require_matplotlib` only when a figure is drawn.  Figures are saved
and closed, never shown; the `ardiff` command selects the Agg backend so that
no display is needed.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..plot import require_matplotlib
from .conditions import CONDITIONS


def _color(name: str) -> str:
    """One fixed colour per condition, the same in every figure."""
    names = list(CONDITIONS)
    k = names.index(name) if name in names else len(names) + hash(name) % 3
    return f"C{k % 10}"


def plot_fig1(result: dict, path: Path, eta: float = 0.1) -> Path:
    """Fig. 1a: per-layer MSE to the exact gradient against relaxation step (log scale)."""
    plt = require_matplotlib()
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
    plt = require_matplotlib()
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
    fig.suptitle(f"Relaxation error per layer for each eta ({result['schedule']} schedule, "
                 f"{'-'.join(map(str, result['sizes']))} {result['activation']})")
    fig.tight_layout(rect=(0, 0, 0.88, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_training(summary: dict, path: Path, title: str = "") -> Path:
    """Train and test accuracy per epoch, mean over seeds with a ±1 std band."""
    plt = require_matplotlib()
    from matplotlib.ticker import MaxNLocator  # lazy: matplotlib is optional

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
    """Angle between each method's and backprop's weight gradient during training.

    One panel per weight matrix (every layer whose angle was recorded, the clamped
    output layer included), each with its own y-axis: logarithmic when the angles
    are positive and span more than a factor of ten, else linear from zero.  Lines
    are means over the seeds of each condition.

    Parameters
    ----------
    runs : sequence of dict
        Saved runs; those without recorded angles (backprop) are skipped.
    conditions : sequence of str
        Conditions to draw, in legend order.
    path : pathlib.Path
        The PNG file to write.

    Returns
    -------
    pathlib.Path
        `path`.
    """
    plt = require_matplotlib()
    curves = {}
    for name in conditions:
        rows = [np.asarray(r["history"]["angles"], dtype=float) for r in runs
                if r["condition"] == name and r.get("history", {}).get("angles")]
        if rows:
            n = min(len(a) for a in rows)
            stacked = np.stack([a[:n] for a in rows])
            label = next(r.get("label", name) for r in runs if r["condition"] == name)
            with warnings.catch_warnings():  # all-NaN columns (a diverged run) stay NaN
                warnings.simplefilter("ignore", RuntimeWarning)
                mean = np.nanmean(stacked[:, :, 1:], axis=0)
            curves[label] = (stacked[0, :, 0], mean, _color(name), len(rows))
    n_layers = max((c[1].shape[1] for c in curves.values()), default=1)
    fig, axes = plt.subplots(1, n_layers, figsize=(3.6 * n_layers + 0.6, 3.9), squeeze=False)
    for k, ax in enumerate(axes[0]):
        values = [c[1][:, k] for c in curves.values() if c[1].shape[1] > k]
        finite = np.concatenate(values) if values else np.zeros(0)
        finite = finite[np.isfinite(finite)]
        positive = finite[finite > 0]
        # log only where it helps: all angles positive and over more than a decade
        log = positive.size == finite.size > 0 and positive.max() > 10 * positive.min()
        for label, (batches, angles, color, n_seeds) in curves.items():
            if angles.shape[1] > k:
                seeds = f", mean of {n_seeds} seeds" if n_seeds > 1 else ""
                ax.plot(batches, angles[:, k], label=f"{label}{seeds}", color=color)
        if log:
            ax.set_yscale("log")
        elif positive.size:
            ax.set_ylim(bottom=0, top=1.1 * finite.max())
        else:  # all zero: lift the line off the axis so that it shows
            ax.set_ylim(-0.1, 1)
        if finite.size and finite.max() < 1e-4:  # below 1e-4 degrees is rounding
            ax.text(0.5, 0.55, "exact up to rounding\n(the output layer is clamped)",
                    transform=ax.transAxes, ha="center", fontsize=8, color="0.3",
                    bbox={"facecolor": "white", "alpha": 0.85, "edgecolor": "none"})
        ax.set_title(f"W{k + 1}")
        ax.set_xlabel("training batch")
        ax.set_ylabel("angle (degrees)")
        ax.grid(alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, fontsize=8, loc="lower center", ncol=min(3, len(labels)))
    rows = (len(labels) + 2) // 3
    fig.suptitle("Angle between each method's weight gradients and backprop's, per layer")
    fig.tight_layout(rect=(0, 0.04 + 0.05 * rows, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
