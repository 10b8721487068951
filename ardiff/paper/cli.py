"""The `ardiff` command: the demo and the reproduction of the paper's figures.

    ardiff demo [--out DIR] [--epochs N]
    ardiff reproduce fig1 [--quick] [--dataset NAME] [--out DIR] [--eta ...] ...
    ardiff reproduce fig2 [--quick] [--dataset NAME] [--seeds N] [--epochs N] ...
    ardiff reproduce fig3 [--quick] [--dataset NAME] [--seeds N] [--epochs N] ...
    ardiff sweep CONFIG [--resume] [--workers N | --scheduler tcp://HOST:PORT] ...
    ardiff reproduce cnn [--quick] [--dataset NAME] [--seeds N] [--epochs N] ...

Each figure has its own options (`ardiff reproduce fig1 --help`), a `--quick`
mode and a time estimate.  Optional dependencies (the `cli` extra) are checked
before anything runs.  Ctrl-C during training stops cleanly: finished epochs and
runs stay on disk and the summary, table and figures are written from them (exit
status 130).  Exit status 2 means bad arguments, missing data or a missing
dependency.  `ardiff sweep` (a grid of settings x conditions x seeds, on Dask) is
in `ardiff.paper.sweep_cli`; `reproduce fig2|fig3` run the figure's named sweep.
"""

from __future__ import annotations

import argparse
import importlib
import shlex
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .cnn import CNN_CONDITIONS, CNNConfig, describe, run_cnn
from .conditions import CONDITIONS, FIG2, FIG3
from .data import DATASETS, DataError, DataNotFoundError, cache_dir, found_locally
from .fig1 import PAPER_ETAS
from .runners import load_data, run_demo, run_fig1
from .sweep_cli import (
    add_execution_options,
    add_sweep_parser,
    natural_int,
    positive_int,
    reproduce_sweep,
    sweep_command,
)
from .sweep_config import SweepConfigError
from .sweep_dask import SweepError
from .sweep_runs import limit_blas_threads

__all__ = ["main", "build_parser", "limit_blas_threads", "missing_dependencies",
           "default_demo_dir", "INSTALL_HINT"]

#: What to run when an optional dependency of the command is missing.
INSTALL_HINT = "pip install 'ardiff[cli]'"

# Times of the commands on a 2-core x86-64 machine (float64, BLAS threads 1): the CPU
# time of the demo and the quick runs (what they take on a free core), timed with
# `python tools/time_commands.py` and saved in docs/results/commands/times.txt; the full
# fig2, fig3 and cnn runs are the saved runs of docs/results/ (their epoch times added
# up), made while other jobs loaded the machine (load average 8 to 17).
# tests/test_docs_figures.py checks these strings against those files.
DEMO_TIME = "about 10 s"
FIGURES = {
    "fig1": {
        "help": "relaxation error per layer against step, and the eta sweep (Fig. 1)",
        "time": "about 3 s", "quick_time": "about 3 s",
        "quick": "eta 0.5, 0.1, 0.02 for 100 steps",
    },
    "fig2": {
        "help": "train the MLP with backprop and with AR (Fig. 2)",
        "time": "5 seeds x 10 epochs: 3.5 h at load average 8 to 17 (2 cores)",
        "quick_time": "about 6 s",
        "quick": "1 seed, 2 epochs on the first 6,400 / 2,000 images",
    },
    "fig3": {
        "help": "train the seven conditions: AR, its local-rule variants, backprop (Fig. 3)",
        "time": "1 seed x 10 epochs, 7 conditions: 1.9 h at load average 8 to 17 (2 cores)",
        "quick_time": "about 16 s",
        "quick": "1 seed, 2 epochs on the first 6,400 / 2,000 images",
    },
    "cnn": {
        "help": "train a small CNN (conv-pool-conv-pool-fc-fc) with backprop and with AR",
        "time": "29 min (3 seeds x 2 epochs on 20,000 images, on a loaded machine)",
        "quick_time": "about 10 s",
        "quick": "1 seed, 1 epoch on the first 3,200 / 1,000 images",
    },
}

# Defaults of the overridable options: full runs and --quick.  An option given on
# the command line always wins.
FULL = {
    "fig1": {"etas": list(PAPER_ETAS), "steps": 200},
    "fig2": {"seeds": [0, 1, 2, 3, 4], "epochs": 10, "train_size": None, "test_size": None,
             "conditions": list(FIG2)},
    "fig3": {"seeds": [0], "epochs": 10, "train_size": None, "test_size": None,
             "conditions": list(FIG3)},
    "cnn": {"seeds": [0, 1, 2], "epochs": 2, "train_size": 20000, "test_size": None,
            "conditions": list(CNN_CONDITIONS)},
}
QUICK = {
    "fig1": {"etas": [0.5, 0.1, 0.02], "steps": 100},
    "fig2": {"seeds": [0], "epochs": 2, "train_size": 6400, "test_size": 2000,
             "conditions": list(FIG2)},
    "fig3": {"seeds": [0], "epochs": 2, "train_size": 6400, "test_size": 2000,
             "conditions": list(FIG3)},
    "cnn": {"seeds": [0], "epochs": 1, "train_size": 3200, "test_size": 1000,
            "conditions": list(CNN_CONDITIONS)},
}


def _seeds(text: str) -> list[int]:
    """`"3"` -> seeds 0, 1, 2; `"0,4,7"` -> those seeds."""
    try:
        if "," in text:
            seeds = [int(s) for s in text.split(",") if s.strip()]
        else:
            n = int(text)
            if n < 1:
                raise ValueError
            seeds = list(range(n))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--seeds takes a count (3 means seeds 0,1,2) or a comma-separated list, "
            f"got {text!r}") from None
    return seeds


def _etas(text: str) -> list[float]:
    try:
        etas = [float(s) for s in text.split(",") if s.strip()]
    except ValueError:
        etas = []
    if not etas or not all(0 < e < 2 for e in etas):
        raise argparse.ArgumentTypeError(f"--etas takes comma-separated numbers in (0, 2), "
                                         f"got {text!r}")
    return etas


def _conditions(text: str) -> list[str]:
    names = [s.strip() for s in text.split(",") if s.strip()]
    unknown = [n for n in names if n not in CONDITIONS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown condition(s) {unknown}; choose from {', '.join(CONDITIONS)}")
    return names


THREADS_HELP = ("BLAS threads (default: %(default)s; the matrices are small, and more "
                "threads than free cores slow everything down)")


def default_demo_dir() -> Path:
    """Where `ardiff demo` writes without `--out`: `ardiff/demo` in the user cache.

    Returns
    -------
    pathlib.Path
        `$XDG_CACHE_HOME/ardiff/demo`, by default `~/.cache/ardiff/demo`: outside
        the current directory, so that the demo does not litter a clone.
    """
    return cache_dir("demo")


def missing_dependencies(args: argparse.Namespace) -> list[str]:
    """The optional packages this command line needs that cannot be imported.

    Parameters
    ----------
    args : argparse.Namespace
        Parsed arguments of `build_parser`.

    Returns
    -------
    list of str
        One entry per missing package, `"name (what it is for)"`.  pooch is not
        checked here: it is needed only when a dataset has to be downloaded, and
        `ardiff.paper.data.load` then says how to install it.
    """
    needed = {"matplotlib": "figures", "threadpoolctl": "BLAS threads (--threads)"}
    if not args.no_progress:
        needed["tqdm"] = "progress bars; or pass --no-progress"
    missing = []
    for name, why in needed.items():
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(f"{name} ({why})")
    return missing


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--threads", type=positive_int, default=1, help=THREADS_HELP)


DEFAULT_DATASET, QUICK_FALLBACK = "fashion-mnist", "fashion-mnist-small"


def _resolve_dataset(args: argparse.Namespace) -> None:
    """Fill in `--dataset` when it was not given.

    A full run uses Fashion-MNIST (downloaded if needed).  A `--quick` run must work on
    a first try without network, so it uses the full data only when it is already on
    this machine and otherwise the bundled subset, saying so in one line; the full
    data stays one flag away (`--dataset fashion-mnist`).
    """
    if getattr(args, "dataset", "given") is not None:
        return
    args.dataset = DEFAULT_DATASET
    if args.quick and not found_locally(DEFAULT_DATASET, args.data_dir):
        args.dataset = QUICK_FALLBACK
        print(f"ardiff: {DEFAULT_DATASET} is not on this machine, so --quick uses the bundled "
              f"subset {QUICK_FALLBACK} (--dataset {DEFAULT_DATASET} downloads the full data)")


def _data_options(parser: argparse.ArgumentParser, quick_help: str) -> None:
    parser.add_argument("--dataset", default=None, choices=DATASETS,
                        help=f"default: {DEFAULT_DATASET}; with --quick, {QUICK_FALLBACK} "
                        f"(ships with ardiff) when {DEFAULT_DATASET} is not on this machine")
    parser.add_argument("--data-dir", default=None, metavar="DIR",
                        help="directory holding the IDX files (searched first)")
    parser.add_argument("--no-download", action="store_true",
                        help="never download: fail if the data is not found locally")
    parser.add_argument("--out", default=None, metavar="DIR",
                        help="output directory (default: ardiff-results/<dataset>, "
                        "ardiff-results/<dataset>-quick with --quick)")
    parser.add_argument("--quick", action="store_true", help=quick_help)


def _figure_parser(sub: Any, figure: str) -> argparse.ArgumentParser:
    spec = FIGURES[figure]
    full, quick = FULL[figure], QUICK[figure]
    parser = sub.add_parser(
        figure, help=f"{spec['help']}; {spec['time']}, --quick {spec['quick_time']}",
        description=f"{spec['help']}. Time: {spec['time']}; with --quick "
        f"({spec['quick']}): {spec['quick_time']}.")
    _data_options(parser, f"a short run: {spec['quick']} ({spec['quick_time']})")
    if figure == "fig1":
        parser.add_argument("--seed", type=natural_int, default=0,
                            help="weight initialisation seed (default: %(default)s)")
        parser.add_argument("--eta", type=float, default=0.1,
                            help="eta of Fig. 1a and of the sequential schedule "
                            "(default: %(default)s)")
        parser.add_argument("--steps", type=positive_int, default=None,
                            help=f"relaxation steps of the eta sweep (default: "
                            f"{full['steps']}; --quick: {quick['steps']})")
        parser.add_argument("--etas", type=_etas, default=None,
                            help="comma-separated eta values of the sweep (default: the "
                            "paper's " + ",".join(f"{e:g}" for e in full["etas"])
                            + "; --quick: " + ",".join(f"{e:g}" for e in quick["etas"]) + ")")
    else:
        seeds = ",".join(map(str, full["seeds"]))
        conditions = "all seven" if figure == "fig3" else "backprop,ar"
        parser.add_argument("--seeds", type=_seeds, default=None,
                            help=f"number of seeds, or a comma-separated list (default: "
                            f"{seeds}; --quick: {quick['seeds'][0]})")
        parser.add_argument("--epochs", type=positive_int, default=None,
                            help=f"default: {full['epochs']}; --quick: {quick['epochs']}")
        parser.add_argument("--conditions", type=_conditions, default=None,
                            help=f"comma-separated subset of {', '.join(CONDITIONS)} "
                            f"(default: {conditions})")
        parser.add_argument("--train-size", type=positive_int, default=None, metavar="N",
                            help="use only the first N training images (default: all; "
                            f"--quick: {quick['train_size']})")
        parser.add_argument("--test-size", type=positive_int, default=None, metavar="N",
                            help="use only the first N test images (default: all; "
                            f"--quick: {quick['test_size']})")
        parser.add_argument("--batch-size", type=positive_int, default=64,
                            help="default: %(default)s")
        parser.add_argument("--lr", type=float, default=5e-4,
                            help="learning rate (default: %(default)s)")
        parser.add_argument("--optimizer", choices=("sgd", "adam"), default="sgd",
                            help="default: %(default)s")
        parser.add_argument("--loss", choices=("sse", "mse", "xent"), default="sse",
                            help="default: %(default)s (summed squared error)")
        parser.add_argument("--eta", type=float, default=0.1,
                            help="relaxation step (default: %(default)s)")
        parser.add_argument("--steps", type=positive_int, default=100,
                            help="relaxation steps T (default: %(default)s)")
        parser.add_argument("--init", choices=("forward", "zeros"), default="forward",
                            help="starting activities (default: %(default)s)")
        parser.add_argument("--schedule", choices=("parallel", "sequential"),
                            default="parallel",
                            help="parallel = Algorithm 1 of the paper; sequential = the "
                            "top-down order of the paper's training code "
                            "(default: %(default)s)")
        parser.add_argument("--angle-every", type=natural_int, default=100, metavar="N",
                            help="record the angle to backprop's gradient every N batches "
                            "(0: never; default: %(default)s)")
        if figure in ("fig2", "fig3"):
            add_execution_options(parser, positive_int, "N > 1: run on N worker processes "
                                  "(Dask; default: in this process)")
    _common(parser)
    return parser


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the `ardiff` command.

    Returns
    -------
    argparse.ArgumentParser
        With the subcommands `demo`, `reproduce fig1|fig2|fig3` and `sweep`, each
        with only the options it uses.
    """
    parser = argparse.ArgumentParser(
        prog="ardiff", description="Activation Relaxation: demo and reproduction of the "
        "paper's experiments (Millidge et al.).")
    sub = parser.add_subparsers(dest="command", required=True,
                                metavar="{demo,reproduce,sweep}")

    demo = sub.add_parser(
        "demo", help=f"offline demo on the bundled Fashion-MNIST subset ({DEMO_TIME})",
        description="Fig. 1 in small (relaxation error per layer, eta sweep) and a short "
        f"training of the paper's MLP with backprop and with AR, on the Fashion-MNIST subset "
        f"shipped with ardiff. Offline; {DEMO_TIME} on one free core with the default "
        "3 epochs.")
    demo.add_argument("--out", default=None, metavar="DIR",
                      help=f"output directory (default: {default_demo_dir()}, "
                      "i.e. $XDG_CACHE_HOME/ardiff/demo)")
    demo.add_argument("--epochs", type=positive_int, default=3,
                      help="training epochs per method (default: %(default)s)")
    # for quick tests of the command itself
    demo.add_argument("--train-size", type=positive_int, default=None, help=argparse.SUPPRESS)
    demo.add_argument("--test-size", type=positive_int, default=None, help=argparse.SUPPRESS)
    _common(demo)

    lines = [f"  {name}: {spec['help']}; {spec['time']} (--quick: {spec['quick_time']})"
             for name, spec in FIGURES.items()]
    rep = sub.add_parser(
        "reproduce", help="run one of the paper's experiments (fig1, fig2, fig3) or the CNN",
        description="Run one of the paper's experiments; see 'ardiff reproduce FIG --help' "
        "for the options of each.\n\n" + "\n".join(lines),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    figures = rep.add_subparsers(dest="figure", required=True, metavar="{fig1,fig2,fig3,cnn}")
    for figure in FIGURES:
        _figure_parser(figures, figure)
    add_sweep_parser(sub, positive=positive_int, seeds=_seeds, common=_common)
    return parser


def _progress(disabled: bool) -> Callable[..., Any] | None:
    if disabled:
        return None
    from tqdm import tqdm  # lazy: optional, checked by missing_dependencies

    return tqdm


def _stop_on_sigterm() -> None:
    """Make `kill` (SIGTERM) stop like Ctrl-C, so that results so far get written."""
    def handler(signum, frame):
        raise KeyboardInterrupt

    try:
        signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread (e.g. called from a test runner thread)
        pass


def _option(args: argparse.Namespace, name: str) -> Any:
    """An overridable option: the command line's value, else the full or quick default."""
    value = getattr(args, name)
    if value is not None:
        return value
    return (QUICK if args.quick else FULL)[args.figure][name]


def _wrote(out: Path, paths: Sequence[Path]) -> str:
    names = sorted({Path(p).relative_to(out).as_posix() for p in paths})
    return f"Wrote {len(names)} files to {out}/: " + ", ".join(names)


def _out_dir(args: argparse.Namespace) -> Path:
    if args.out:
        return Path(args.out)
    if args.command == "demo":
        return default_demo_dir()
    cnn = "-cnn" if args.figure == "cnn" else ""  # its runs must not mix with fig2's
    return Path(f"ardiff-results/{args.dataset}{cnn}" + ("-quick" if args.quick else ""))


def _reproduce(args: argparse.Namespace, out: Path, command: str, progress: Any) -> int:
    if args.figure == "fig1":
        # Fig. 1 uses only the first 64 training images
        data = load_data(args.dataset, args.data_dir, 64, 0, progress=progress is not None,
                         download=not args.no_download)
        result = run_fig1(data, out, etas=_option(args, "etas"), steps=_option(args, "steps"),
                          main_eta=args.eta, seed=args.seed, command=command)
        print(_wrote(out, result["files"]))
        return 0
    train_size, test_size = _option(args, "train_size"), _option(args, "test_size")
    data = load_data(args.dataset, args.data_dir, train_size, test_size,
                     progress=progress is not None, download=not args.no_download)
    if args.figure == "cnn":
        _reproduce_cnn(args, data, out, command, progress)
        return
    return reproduce_sweep(args, data, out, command, progress, _option, _wrote)


def _reproduce_cnn(args: argparse.Namespace, data: dict, out: Path, command: str,
                   progress: Any) -> None:
    conditions = _option(args, "conditions")
    other = sorted(set(conditions) - set(CNN_CONDITIONS))
    if other:
        print(f"ardiff reproduce cnn: --conditions must be among {', '.join(CNN_CONDITIONS)};"
              f" got {', '.join(other)}.", file=sys.stderr)
        raise SystemExit(2)
    config = CNNConfig(
        dataset=args.dataset, epochs=_option(args, "epochs"), batch_size=args.batch_size,
        lr=args.lr, optimizer=args.optimizer, loss=args.loss, eta=args.eta, steps=args.steps,
        init=args.init, schedule=args.schedule, train_size=_option(args, "train_size"),
        test_size=_option(args, "test_size"), angle_every=args.angle_every)
    summary, paths = run_cnn(data, config, out, seeds=_option(args, "seeds"),
                             conditions=conditions, progress=progress, command=command)
    print(describe(summary))
    print(_wrote(out, paths))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the `ardiff` command.

    Parameters
    ----------
    argv : sequence of str, optional
        The arguments (default: `sys.argv[1:]`).

    Returns
    -------
    int
        The exit status: 0 on success, 2 for bad arguments, missing data or a
        missing optional dependency, 130 when interrupted.
    """
    if argv is None:  # the console command: a plain `kill` also stops cleanly
        _stop_on_sigterm()
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    _resolve_dataset(args)
    name = "ardiff demo" if args.command == "demo" else "ardiff sweep" \
        if args.command == "sweep" else f"ardiff reproduce {args.figure}"
    missing = missing_dependencies(args)
    if missing:
        print(f"{name} needs packages that are not installed: {', '.join(missing)}.\n"
              f"Install them with: {INSTALL_HINT}", file=sys.stderr)
        return 2
    import matplotlib  # lazy: optional; present, as just checked

    matplotlib.use("Agg")  # figures are only saved: no display needed
    command = "ardiff " + " ".join(shlex.quote(a) for a in argv)
    limit_blas_threads(args.threads)
    progress = _progress(args.no_progress)

    out = _out_dir(args) if args.command != "sweep" else None
    try:
        if args.command == "demo":
            run_demo(out, epochs=args.epochs, progress=progress, command=command,
                     train_size=args.train_size, test_size=args.test_size)
        elif args.command == "sweep":
            return sweep_command(args, command, progress)
        else:
            return _reproduce(args, out, command, progress) or 0
        return 0
    except KeyboardInterrupt:
        print(f"\nInterrupted; results so far are in {out}/" if out else "\nInterrupted",
              file=sys.stderr)
        return 130
    except (SweepConfigError, SweepError) as exc:
        print(f"ardiff: {exc}", file=sys.stderr)
        return 2
    except DataNotFoundError as exc:
        print(f"ardiff: {exc.explain(cli=True)}", file=sys.stderr)
        return 2
    except (DataError, FileNotFoundError) as exc:
        print(f"ardiff: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
