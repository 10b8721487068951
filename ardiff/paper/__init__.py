"""Reproduction of the paper's experiments (Millidge et al., *Activation Relaxation*).

Fig. 1 (relaxation converging to backprop), Fig. 2 (AR against backprop training)
and Fig. 3 (the local-rule variants), the short demo, the datasets they use and the
`ardiff` command.  This subpackage sits on top of the engine (`ardiff`,
`ardiff.nn`, `ardiff.rules`); the engine never imports it.

Modules
-------
`ardiff.paper.cli`
    The `ardiff` command (`ardiff demo`, `ardiff reproduce fig1|fig2|fig3`).
`ardiff.paper.runners`
    `load_data`, `run_fig1`, `run_training`, `run_demo`: what the command runs.
`ardiff.paper.fig1`
    Per-layer error of the relaxing activities against the exact gradients.
`ardiff.paper.training`
    `TrainingConfig`, `Experiment` (conditions x seeds, resumable), summaries.
`ardiff.paper.conditions`
    The seven training conditions of Figs. 2 and 3.
`ardiff.paper.plots`
    The figures (matplotlib, optional).
`ardiff.paper.data`
    IDX files; MNIST, Fashion-MNIST and the bundled subset (downloads with pooch).
`ardiff.paper.files`
    Atomic file writes and standard JSON.

Examples
--------
>>> from pathlib import Path
>>> from ardiff import paper
>>> data = paper.load_data("fashion-mnist-small", train_size=64)
>>> result = paper.run_fig1(data, Path("out"), etas=(0.1,), steps=50)  # doctest: +SKIP
"""

from .conditions import CONDITIONS, FIG2, FIG3, Condition, get_condition
from .fig1 import PAPER_ETAS, REPORT_AT, format_report, layer_errors, report_rows
from .runners import load_data, run_demo, run_fig1, run_training
from .training import Experiment, TrainingConfig, format_table, summarize

__all__ = [
    "CONDITIONS", "FIG2", "FIG3", "Condition", "get_condition", "PAPER_ETAS", "REPORT_AT",
    "layer_errors", "format_report", "report_rows", "Experiment", "TrainingConfig",
    "summarize", "format_table", "load_data", "run_fig1", "run_training", "run_demo",
]
