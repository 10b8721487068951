"""The command-line side of sweeps: `ardiff sweep CONFIG` and the execution options of
`ardiff reproduce fig2|fig3`.

    ardiff sweep CONFIG.toml [--resume] [--workers N | --scheduler tcp://HOST:PORT]
    ardiff sweep fig3 [--quick] [--seeds 5] [--set KEY=VALUE ...]

`ardiff.paper.cli` builds the parser and calls in here; the helpers it shares (the
argument types, the common options) are passed in, so that this module does not
import the command's module.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .sweep import (
    SWEEP_INSTALL_HINT,
    SweepResult,
    dask_installed,
    default_workers,
    run_sweep,
)
from .sweep_config import (
    MAX_RUNS,
    MAX_SEEDS,
    NAMED_SWEEPS,
    SweepConfig,
    SweepConfigError,
    figure_sweep,
    load_sweep_config,
    tomllib,
)
from .sweep_results import error_line
from .training import FINISHED, format_table, load_run

__all__ = ["add_sweep_parser", "add_execution_options", "sweep_command", "reproduce_sweep",
           "parse_set", "positive_int", "natural_int"]

SWEEP_DESCRIPTION = f"""\
Train every combination of a grid of TrainingConfig values, conditions and seeds,
on the cores of this machine or on a Dask cluster, one JSON file per run.

CONFIG is a TOML file, for example

    name = "eta-steps"
    model = "mlp"                      # or "cnn", or "package.module:function"
    conditions = ["backprop", "ar"]
    seeds = 3                          # or [0, 4, 7]
    [config]                           # shared by every run
    dataset = "fashion-mnist-small"
    epochs = 2
    [grid]                             # every combination
    eta = [0.1, 0.5]
    steps = [20, 100]

or the name of a paper figure ({', '.join(NAMED_SWEEPS)}): the sweep 'ardiff reproduce'
runs.  Without --scheduler, an embedded Dask LocalCluster runs one single-threaded
worker process per core ({default_workers()} here); '--workers 1' runs in this
process without Dask.  Parallel runs need {SWEEP_INSTALL_HINT}.

Exit status: 0 all runs finished; 1 some runs failed (listed, results written);
2 bad configuration, arguments, data or a missing dependency; 130 interrupted
(finished runs are kept: continue with --resume)."""


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1 (the options of `ardiff reproduce` and `sweep`)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def natural_int(text: str) -> int:
    """argparse type: an integer >= 0."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return value


def add_execution_options(parser: argparse.ArgumentParser, positive: Callable[[str], int],
                          default_workers_help: str) -> None:
    """The options saying where runs execute: `--workers`, `--scheduler`, `--retries`."""
    group = parser.add_argument_group("execution")
    group.add_argument("--workers", type=positive, default=None, metavar="N",
                       help=default_workers_help)
    group.add_argument("--scheduler", default=None, metavar="tcp://HOST:PORT",
                       help="an existing Dask scheduler (started with 'dask scheduler'; "
                       "workers with 'dask worker tcp://HOST:PORT')")
    group.add_argument("--retries", type=natural_int, default=3, metavar="N",
                       help="resubmit a run whose worker died to another worker at most N "
                       "times, then record it as failed (default: %(default)s)")


def add_sweep_parser(sub: Any, *, positive: Callable[[str], int],
                     seeds: Callable[[str], list[int]],
                     common: Callable[[argparse.ArgumentParser], None]) -> None:
    """Add the `sweep` subcommand to the `ardiff` parser's subparsers `sub`."""
    parser = sub.add_parser(
        "sweep", help="a grid of settings x conditions x seeds, in parallel (Dask) and "
        "resumable", description=SWEEP_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", metavar="CONFIG",
                        help=f"a TOML file, or {' or '.join(NAMED_SWEEPS)}")
    parser.add_argument("--out", default=None, metavar="DIR",
                        help="output directory (default: ardiff-results/sweeps/<name>; for "
                        "fig2/fig3 the directory of 'ardiff reproduce')")
    parser.add_argument("--resume", action="store_true",
                        help="skip runs whose result file exists with the same configuration "
                        "hash (failed and interrupted runs run again)")
    parser.add_argument("--seeds", type=_bounded_seeds(seeds), default=None,
                        help="replace the seeds: a count (5 means 0-4) or a list")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        dest="overrides", help="fix a TrainingConfig field for every run "
                        "(TOML value: --set epochs=3 --set dataset=fashion-mnist-small); "
                        "replaces its grid entry; repeatable")
    parser.add_argument("--quick", action="store_true",
                        help="fig2/fig3 only: the --quick settings of 'ardiff reproduce'")
    parser.add_argument("--data-dir", default=None, metavar="DIR",
                        help="directory holding the IDX files (searched first)")
    parser.add_argument("--no-download", action="store_true",
                        help="never download: fail if the data is not found locally")
    parser.add_argument("--no-figures", action="store_true",
                        help="no PNG figures (the tables, CSV and JSON files only)")
    parser.add_argument("--allow-large", action="store_true",
                        help=f"accept more than {MAX_SEEDS:,} seeds or {MAX_RUNS:,} runs "
                        "(refused by default: more likely a typo than a plan)")
    parser.add_argument("--dry-run", action="store_true",
                        help="list the runs (and which are done, with --resume) and stop")
    add_execution_options(parser, positive, f"worker processes (default: one per core, "
                          f"{default_workers()} here); 1 runs in this process without Dask")
    common(parser)


def _bounded_seeds(seeds: Callable[[str], list[int]]) -> Callable[[str], Any]:
    """`seeds`, except that a count above `MAX_SEEDS` is passed on as a number, unlisted,
    so that the configuration check refuses it (or `--allow-large` accepts it)."""
    def parse(text: str) -> Any:
        stripped = text.strip()
        if stripped.isdigit() and int(stripped) > MAX_SEEDS:
            return int(stripped)
        return seeds(text)
    parse.__name__ = getattr(seeds, "__name__", "seeds")
    return parse


def parse_set(items: list[str]) -> dict[str, Any]:
    """`["epochs=3", "dataset=mnist"]` -> `{"config.epochs": 3, "config.dataset": "mnist"}`.

    Values are read as TOML values (`3`, `0.5`, `true`, `[784, 100, 10]`, `"text"`);
    anything else is taken as a string.
    """
    out = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise SweepConfigError(f"--set takes KEY=VALUE, got {item!r}")
        try:
            value = tomllib.loads(f"v = {text}")["v"] if tomllib is not None else text
        except (tomllib.TOMLDecodeError, KeyError):
            value = text
        out[f"config.{key.strip()}"] = value
    return out


def _load(args: argparse.Namespace) -> SweepConfig:
    overrides = parse_set(args.overrides)
    if args.config in NAMED_SWEEPS and not Path(args.config).exists():
        config = {k.split(".", 1)[1]: v for k, v in overrides.items()}
        seeds = args.seeds
        if isinstance(seeds, int):  # a count above MAX_SEEDS (see _bounded_seeds)
            if not getattr(args, "allow_large", False):
                raise SweepConfigError(
                    f"--seeds {seeds:,} is more than the limit of {MAX_SEEDS:,} seeds; give "
                    "fewer, or pass --allow-large if you mean it")
            seeds = list(range(seeds))
        return figure_sweep(args.config, args.quick, seeds=seeds, config=config,
                            allow_large=getattr(args, "allow_large", False))
    if args.quick:
        raise SweepConfigError(f"--quick is for the named sweeps {', '.join(NAMED_SWEEPS)}; "
                               f"put the settings in {args.config}")
    if args.seeds is not None:
        overrides["seeds"] = args.seeds
    # --dry-run lists the runs without importing a "module:function" model: a sweep
    # file's model is code, run only when the sweep is
    return load_sweep_config(args.config, overrides,
                             allow_large=getattr(args, "allow_large", False),
                             import_model=not getattr(args, "dry_run", False))


def _out(args: argparse.Namespace, sweep: SweepConfig) -> Path:
    if args.out:
        return Path(args.out)
    if sweep.name in NAMED_SWEEPS and args.config in NAMED_SWEEPS:
        dataset = sweep.config.get("dataset", "fashion-mnist")
        return Path(f"ardiff-results/{dataset}" + ("-quick" if args.quick else ""))
    return Path("ardiff-results/sweeps") / sweep.name


def _workers(args: argparse.Namespace, n_runs: int) -> int | None:
    """The worker count, falling back to this process (with a note) without Dask."""
    if args.scheduler is None and args.workers is None and not dask_installed():
        print(f"Dask is not installed: running the {n_runs} runs one after another in this "
              f"process. For parallel runs: {SWEEP_INSTALL_HINT}", file=sys.stderr)
        return 1
    return args.workers


def _report(result: SweepResult, out: Path, log: Callable[[str], None] = print) -> None:
    log(f"{len(result.runs)} runs with results: {len(result.ran)} ran now "
        f"({result.executor}, {result.seconds:.1f} s), {len(result.skipped)} reused, "
        f"{len(result.failed)} failed.")
    if result.failed:
        log(f"Failed runs ({len(result.failed)}; run again with --resume):")
        for run in result.failed:
            log(f"  {run['condition']} seed {run['seed']}"
                + (f" {run['point']}" if run.get("point") else "")
                + f": {error_line(run)}")


def sweep_command(args: argparse.Namespace, command: str, progress: Any) -> int:
    """Run `ardiff sweep` (see the module docstring); returns the exit status.

    Raises
    ------
    SweepConfigError, SweepError, DataError
        Reported by `ardiff.paper.cli.main` with exit status 2.
    """
    sweep = _load(args)
    out = _out(args, sweep)
    specs = sweep.runs()
    if args.dry_run:
        for spec in specs:
            saved = load_run(out / "runs" / f"{spec.name}.json") if args.resume else None
            done = saved is not None and saved.get("run_id") == spec.run_id and \
                saved.get("status") in FINISHED
            print(f"{spec.run_id}  {spec.describe()}" + ("  (done)" if done else ""))
        points, conds, seeds = len(sweep.points()), len(sweep.conditions), len(sweep.seeds)
        print(f"{len(specs)} runs ({points} grid point{'s' * (points != 1)} x {conds} "
              f"condition{'s' * (conds != 1)} x {seeds} seed{'s' * (seeds != 1)}) -> {out}/runs/")
        return 0
    print(f"Sweep {sweep.name}: {len(specs)} runs -> {out}/")
    result = run_sweep(sweep, out, workers=_workers(args, len(specs)),
                       scheduler=args.scheduler, resume=args.resume, retries=args.retries,
                       threads=args.threads, progress=progress, data_dir=args.data_dir,
                       download=not args.no_download, command=command,
                       figures=not args.no_figures)
    if result.summary:
        print(format_table(result.summary))
    _report(result, out)
    run_files = sum(1 for p in result.files if Path(p).parent.name == "runs")
    names = sorted({Path(p).name for p in result.files if Path(p).parent.name != "runs"})
    print(f"Wrote {len(names)} files to {out}/: {', '.join(names)}; and {run_files} run "
          "files in runs/")
    if result.interrupted:
        print(f"\nInterrupted; results so far are in {out}/ (continue with --resume)",
              file=sys.stderr)
        return 130
    return 1 if result.failed else 0


def reproduce_sweep(args: argparse.Namespace, data: dict, out: Path, command: str,
                    progress: Any, config: dict,
                    option: Callable[[argparse.Namespace, str], Any],
                    wrote: Callable[[Path, list], str]) -> int:
    """`ardiff reproduce fig2|fig3`: the figure's named sweep with the command's options
    (`config`: the `TrainingConfig` fields the command line gives).

    Runs in this process unless `--workers N` (N > 1) or `--scheduler` is given;
    finished runs with the same settings are always reused.  Returns the exit status
    (1 if a run failed); raises `KeyboardInterrupt` after writing the results so far.
    """
    sweep = figure_sweep(args.figure, args.quick, seeds=option(args, "seeds"),
                         conditions=option(args, "conditions"), config=config)
    result = run_sweep(sweep, out, workers=args.workers or (None if args.scheduler else 1),
                       scheduler=args.scheduler, resume=True, retries=args.retries,
                       threads=args.threads, progress=progress, command=command,
                       figure=True, data=data)
    print(format_table(result.summary))
    if result.failed:
        _report(result, out)
    print(wrote(out, result.files))
    if result.interrupted:
        raise KeyboardInterrupt
    return 1 if result.failed else 0
