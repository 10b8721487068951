"""The paper's experiments: Fig. 1 (relaxation converging to backprop), Fig. 2 (AR vs
backprop training) and Fig. 3 (the local-rule variants), plus the short demo.

Entry points for scripts are :func:`run_fig1`, :func:`run_training` and
:func:`run_demo`; the ``ardiff`` command (:mod:`ardiff.cli`) wraps them.
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
