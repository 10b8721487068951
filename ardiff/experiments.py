"""Deprecated alias of `ardiff.paper` (the reproduction tooling moved there).

The former submodules (`ardiff.experiments.training`, ...) are `ardiff.paper.training`
and so on; this module re-exports the public names of the package.
"""

import warnings

from .paper import (  # noqa: F401
    CONDITIONS,
    FIG2,
    FIG3,
    PAPER_ETAS,
    REPORT_AT,
    Condition,
    Experiment,
    TrainingConfig,
    __all__,  # noqa: F401
    format_report,
    format_table,
    get_condition,
    layer_errors,
    load_data,
    report_rows,
    run_demo,
    run_fig1,
    run_training,
    summarize,
)

warnings.warn("ardiff.experiments moved to ardiff.paper; import from there instead.",
              DeprecationWarning, stacklevel=2)
