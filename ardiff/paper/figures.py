"""The paper's experiments as one registry: each figure is one `Figure` entry.

`ardiff reproduce FIG` builds its parser from the entry's `kind` and reads its full and
`--quick` settings here; `ardiff sweep fig2|fig3` (`sweep_config.figure_sweep`) reads
the same settings, so the two commands cannot run different seeds.  The relaxation
protocol itself (eta, T, schedule, start) is not repeated here: it is
`ardiff.solvers.options.PRESETS["paper"]`, the defaults of `TrainingConfig`.

Adding a figure of an existing kind is one entry below; a new kind also needs its
options and runner in `ardiff.paper.cli` (`KIND_OPTIONS`, `RUNNERS`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from .conditions import FIG2, FIG3
from .fig1 import PAPER_ETAS

__all__ = ["Figure", "FIGURES", "KINDS", "SWEEP_FIGURES", "CNN_CONDITIONS",
           "DEPTH_CONDITIONS"]

#: The conditions of the CNN experiment.
CNN_CONDITIONS = ("backprop", "ar")

#: The conditions of the depth experiment (`ardiff.paper.depth`).
DEPTH_CONDITIONS = ("backprop", "ar", "ar-reach")

#: What each kind of figure runs: its options and runner live in `ardiff.paper.cli`.
KINDS = {
    "relaxation": "relaxation error per layer on one batch (no training)",
    "mlp": "the paper's MLP trained under conditions x seeds: a named sweep",
    "cnn": "the small CNN trained under conditions x seeds",
    "depth": "residual MLPs of several depths: backprop, AR with T = 100, AR with T by reach",
}


@dataclass(frozen=True)
class Figure:
    """One experiment of `ardiff reproduce`.

    Attributes
    ----------
    name : str
        The subcommand (`ardiff reproduce NAME`).
    kind : str
        A key of `KINDS`: which options the command takes and what it runs.
    help : str
        One line for `--help`.
    time : str
        How long the full run takes (a measurement: tests/test_docs_figures.py checks
        it against its saved source).
    quick_time : str
        How long `--quick` takes (likewise checked).
    quick_summary : str
        What `--quick` changes, in words.
    full, quick : mapping
        The defaults of the overridable options for a full and a `--quick` run
        (an option given on the command line wins).
    """

    name: str
    kind: str
    help: str
    time: str
    quick_time: str
    quick_summary: str
    full: Mapping[str, Any] = field(default_factory=dict)
    quick: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"Figure {self.name!r}: kind must be one of {sorted(KINDS)}, "
                             f"got {self.kind!r}")
        if set(self.full) != set(self.quick):
            raise ValueError(f"Figure {self.name!r}: full and quick settings must name the "
                             f"same options, got {sorted(self.full)} and {sorted(self.quick)}")
        object.__setattr__(self, "full", MappingProxyType(dict(self.full)))
        object.__setattr__(self, "quick", MappingProxyType(dict(self.quick)))

    def settings(self, quick: bool) -> Mapping[str, Any]:
        """The `--quick` or the full defaults."""
        return self.quick if quick else self.full


# The times are those of the saved runs (docs/results/commands/times.txt for the
# demo and the quick runs, CPU time on one free core; the full runs' epoch times in
# docs/results/, made on a 2-core machine loaded by other jobs).
_TRAINING_QUICK = {"seeds": [0], "epochs": 2, "train_size": 6400, "test_size": 2000}
_FIGURES = (
    Figure("fig1", "relaxation",
           help="relaxation error per layer against step, and the eta sweep (Fig. 1)",
           time="about 3 s", quick_time="about 3 s",
           quick_summary="eta 0.5, 0.1, 0.02 for 100 steps",
           full={"etas": list(PAPER_ETAS), "steps": 200},
           quick={"etas": [0.5, 0.1, 0.02], "steps": 100}),
    Figure("fig2", "mlp",
           help="train the MLP with backprop and with AR (Fig. 2)",
           time="5 seeds x 10 epochs: 3.5 h at load average 8 to 17 (2 cores)",
           quick_time="about 6 s",
           quick_summary="1 seed, 2 epochs on the first 6,400 / 2,000 images",
           full={"seeds": [0, 1, 2, 3, 4], "epochs": 10, "train_size": None,
                 "test_size": None, "conditions": list(FIG2)},
           quick={**_TRAINING_QUICK, "conditions": list(FIG2)}),
    Figure("fig3", "mlp",
           help="train the seven conditions: AR, its local-rule variants, backprop (Fig. 3)",
           time="1 seed x 10 epochs, 7 conditions: 1.9 h at load average 8 to 17 (2 cores)",
           quick_time="about 16 s",
           quick_summary="1 seed, 2 epochs on the first 6,400 / 2,000 images",
           full={"seeds": [0], "epochs": 10, "train_size": None, "test_size": None,
                 "conditions": list(FIG3)},
           quick={**_TRAINING_QUICK, "conditions": list(FIG3)}),
    Figure("cnn", "cnn",
           help="train a small CNN (conv-pool-conv-pool-fc-fc) with backprop and with AR",
           time="29 min (3 seeds x 2 epochs on 20,000 images, on a loaded machine)",
           quick_time="about 10 s",
           quick_summary="1 seed, 1 epoch on the first 3,200 / 1,000 images",
           full={"seeds": [0, 1, 2], "epochs": 2, "train_size": 20000, "test_size": None,
                 "conditions": list(CNN_CONDITIONS)},
           quick={"seeds": [0], "epochs": 1, "train_size": 3200, "test_size": 1000,
                  "conditions": list(CNN_CONDITIONS)}),
    Figure("depth", "depth",
           help="train residual MLPs of depth 8 and 32 with backprop, AR (T = 100) and AR "
           "with T by reach",
           time="0.9 h of training for 1 epoch on all 60,000 images (3 seeds; the full "
           "5 epochs were not run)", quick_time="about 4 s",
           quick_summary="depths 2 and 4, width 16, 1 seed, 1 epoch on the first 256 / 256 "
           "images",
           full={"seeds": [0, 1, 2], "epochs": 5, "train_size": None, "test_size": None,
                 "depths": [8, 32], "width": 128, "conditions": list(DEPTH_CONDITIONS)},
           quick={"seeds": [0], "epochs": 1, "train_size": 256, "test_size": 256,
                  "depths": [2, 4], "width": 16, "conditions": list(DEPTH_CONDITIONS)}),
)

#: Every experiment of `ardiff reproduce`, by name.
FIGURES: Mapping[str, Figure] = MappingProxyType({f.name: f for f in _FIGURES})
#: The figures that are named sweeps (`ardiff sweep NAME`).
SWEEP_FIGURES = tuple(name for name, f in FIGURES.items() if f.kind == "mlp")
