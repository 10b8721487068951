"""The `ardiff` command: the demo and the reproduction of the paper's figures.

    ardiff demo [--out DIR] [--epochs N]
    ardiff reproduce fig1 [--quick] [--dataset NAME] [--out DIR] [--eta ...] ...
    ardiff reproduce fig2 [--quick] [--dataset NAME] [--seeds N] [--epochs N] ...
    ardiff reproduce fig3 [--quick] [--dataset NAME] [--seeds N] [--epochs N] ...
    ardiff sweep CONFIG [--resume] [--workers N | --scheduler tcp://HOST:PORT] ...
    ardiff reproduce cnn [--quick] [--dataset NAME] [--seeds N] [--epochs N] ...
    ardiff reproduce depth [--quick] [--depths 8,32] [--seeds N] [--epochs N] ...

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

from .cnn import CNNConfig, describe, run_cnn
from .conditions import CONDITIONS
from .data import DATASETS, DataError, DataNotFoundError, cache_dir, found_locally
from .depth import DepthConfig, describe_depth, run_depth
from .figures import CNN_CONDITIONS, DEPTH_CONDITIONS, FIGURES, Figure
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
from .training import ExperimentConfig

__all__ = ["main", "build_parser", "limit_blas_threads", "missing_dependencies",
           "default_demo_dir", "INSTALL_HINT", "FIGURES", "DEMO_TIME"]

#: What to run when an optional dependency of the command is missing.
INSTALL_HINT = "pip install 'ardiff[cli]'"

# The demo's time on a 2-core x86-64 machine (float64, BLAS threads 1): CPU time, timed
# with `python tools/time_commands.py` and saved in docs/results/commands/times.txt (the
# figures' times are in their registry entries, ardiff/paper/figures.py).
# tests/test_docs_figures.py checks these strings against those files.
DEMO_TIME = "about 10 s"


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


def _numbers(option: str, convert: Callable, valid: Callable, wanted: str) -> Callable:
    """An argparse type for comma-separated numbers: `--etas 0.5,0.1` -> [0.5, 0.1]."""
    def parse(text: str) -> list:
        try:
            values = [convert(s) for s in text.split(",") if s.strip()]
        except ValueError:
            values = []
        if not values or not all(valid(v) for v in values):
            raise argparse.ArgumentTypeError(f"{option} takes comma-separated {wanted}, "
                                             f"got {text!r}")
        return values
    return parse


def _names(choices: Sequence[str]) -> Callable:
    """An argparse type for a comma-separated subset of `choices`."""
    def parse(text: str) -> list[str]:
        names = [s.strip() for s in text.split(",") if s.strip()]
        unknown = [n for n in names if n not in choices]
        if unknown or not names:
            raise argparse.ArgumentTypeError(
                f"unknown condition(s) {unknown}; choose from {', '.join(choices)}")
        return names
    return parse


_etas = _numbers("--etas", float, lambda e: 0 < e < 2, "numbers in (0, 2)")
_conditions = _names(CONDITIONS)


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


def _relaxation_options(parser: argparse.ArgumentParser, figure: Figure) -> None:
    """Options of a relaxation figure (Fig. 1): no training."""
    full, quick = figure.full, figure.quick
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


def _run_options(parser: argparse.ArgumentParser, figure: Figure) -> None:
    """Seeds, epochs and data sizes of a training figure, with its registry defaults."""
    full, quick = figure.full, figure.quick
    parser.add_argument("--seeds", type=_seeds, default=None,
                        help=f"number of seeds, or a comma-separated list (default: "
                        f"{','.join(map(str, full['seeds']))}; --quick: "
                        f"{','.join(map(str, quick['seeds']))})")
    parser.add_argument("--epochs", type=positive_int, default=None,
                        help=f"default: {full['epochs']}; --quick: {quick['epochs']}")
    parser.add_argument("--train-size", type=positive_int, default=None, metavar="N",
                        help="use only the first N training images (default: "
                        f"{full['train_size'] or 'all'}; --quick: {quick['train_size']})")
    parser.add_argument("--test-size", type=positive_int, default=None, metavar="N",
                        help="use only the first N test images (default: "
                        f"{full['test_size'] or 'all'}; --quick: {quick['test_size']})")


def _training_options(parser: argparse.ArgumentParser, figure: Figure) -> None:
    """Options of a training figure; the defaults are `ExperimentConfig`'s (the paper's
    training and relaxation protocol) and the figure's registry entry."""
    full = figure.full
    paper = ExperimentConfig()
    conditions = ("all " + str(len(CONDITIONS)) if len(full["conditions"]) == len(CONDITIONS)
                  else ",".join(full["conditions"]))
    parser.add_argument("--conditions", type=_conditions, default=None,
                        help=f"comma-separated subset of {', '.join(CONDITIONS)} "
                        f"(default: {conditions})")
    _run_options(parser, figure)
    parser.add_argument("--batch-size", type=positive_int, default=paper.batch_size,
                        help="default: %(default)s")
    parser.add_argument("--lr", type=float, default=paper.lr,
                        help="learning rate (default: %(default)s)")
    parser.add_argument("--optimizer", choices=("sgd", "adam"), default=paper.optimizer,
                        help="default: %(default)s")
    parser.add_argument("--loss", choices=("sse", "mse", "xent"), default=paper.loss,
                        help="default: %(default)s (summed squared error)")
    parser.add_argument("--eta", type=float, default=paper.eta,
                        help="relaxation step (default: %(default)s)")
    parser.add_argument("--steps", type=positive_int, default=paper.steps,
                        help="relaxation steps T (default: %(default)s)")
    parser.add_argument("--init", choices=("forward", "zeros"), default=paper.init,
                        help="starting activities (default: %(default)s)")
    parser.add_argument("--schedule", choices=("parallel", "sequential"),
                        default=paper.schedule,
                        help="parallel = Algorithm 1 of the paper; sequential = the "
                        "top-down order of the paper's training code "
                        "(default: %(default)s)")
    parser.add_argument("--angle-every", type=natural_int, default=paper.angle_every,
                        metavar="N", help="record the angle to backprop's gradient every N "
                        "batches (0: never; default: %(default)s)")
    if figure.kind == "mlp":
        add_execution_options(parser, positive_int, "N > 1: run on N worker processes "
                              "(Dask; default: in this process)")


_depths = _numbers("--depths", int, lambda d: d >= 0,
                   "numbers of residual blocks >= 0")
_depth_conditions = _names(DEPTH_CONDITIONS)


def _depth_options(parser: argparse.ArgumentParser, figure: Figure) -> None:
    """Options of the depth experiment; the training and relaxation protocol are the
    paper's (`DepthConfig`, `ExperimentConfig`)."""
    full, quick = figure.full, figure.quick
    config = DepthConfig()
    parser.add_argument("--depths", type=_depths, default=None,
                        help="comma-separated numbers of residual blocks (default: "
                        f"{','.join(map(str, full['depths']))}; --quick: "
                        f"{','.join(map(str, quick['depths']))})")
    parser.add_argument("--width", type=positive_int, default=None,
                        help=f"hidden width (default: {full['width']}; --quick: "
                        f"{quick['width']})")
    parser.add_argument("--conditions", type=_depth_conditions, default=None,
                        help=f"comma-separated subset of {', '.join(DEPTH_CONDITIONS)} "
                        "(default: all)")
    _run_options(parser, figure)
    parser.add_argument("--reach-tol", type=float, default=config.reach_tol,
                        help="remaining fraction at the deepest unit that the ar-reach "
                        "condition's T aims at (default: %(default)s)")
    parser.add_argument("--batch-size", type=positive_int, default=config.batch_size,
                        help="default: %(default)s")
    parser.add_argument("--lr", type=float, default=config.lr,
                        help="learning rate (default: %(default)s)")


#: The command-line options of each kind of figure (`ardiff.paper.figures.KINDS`).
KIND_OPTIONS = {"relaxation": _relaxation_options, "mlp": _training_options,
                "cnn": _training_options, "depth": _depth_options}


def _figure_parser(sub: Any, figure: Figure) -> argparse.ArgumentParser:
    parser = sub.add_parser(
        figure.name, help=f"{figure.help}; {figure.time}, --quick {figure.quick_time}",
        description=f"{figure.help}. Time: {figure.time}; with --quick "
        f"({figure.quick_summary}): {figure.quick_time}.")
    _data_options(parser, f"a short run: {figure.quick_summary} ({figure.quick_time})")
    KIND_OPTIONS[figure.kind](parser, figure)
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

    lines = [f"  {name}: {f.help}; {f.time} (--quick: {f.quick_time})"
             for name, f in FIGURES.items()]
    rep = sub.add_parser(
        "reproduce", help="run one of the paper's experiments (fig1, fig2, fig3) or the CNN",
        description="Run one of the paper's experiments; see 'ardiff reproduce FIG --help' "
        "for the options of each.\n\n" + "\n".join(lines),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    figures = rep.add_subparsers(dest="figure", required=True,
                                 metavar="{" + ",".join(FIGURES) + "}")
    for figure in FIGURES.values():
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
    return FIGURES[args.figure].settings(args.quick)[name]


def _wrote(out: Path, paths: Sequence[Path]) -> str:
    names = sorted({Path(p).relative_to(out).as_posix() for p in paths})
    return f"Wrote {len(names)} files to {out}/: " + ", ".join(names)


def _out_dir(args: argparse.Namespace) -> Path:
    if args.out:
        return Path(args.out)
    if args.command == "demo":
        return default_demo_dir()
    # runs of another model must not mix with the MLP's
    kind = FIGURES[args.figure].kind
    model = f"-{kind}" if kind in ("cnn", "depth") else ""
    return Path(f"ardiff-results/{args.dataset}{model}" + ("-quick" if args.quick else ""))


def _reproduce_relaxation(args: argparse.Namespace, out: Path, command: str,
                          progress: Any) -> int:
    # Fig. 1 uses only the first 64 training images
    data = load_data(args.dataset, args.data_dir, 64, 0, progress=progress is not None,
                     download=not args.no_download)
    result = run_fig1(data, out, etas=_option(args, "etas"), steps=_option(args, "steps"),
                      main_eta=args.eta, seed=args.seed, command=command)
    print(_wrote(out, result["files"]))
    return 0


def _training_data(args: argparse.Namespace, progress: Any) -> dict:
    return load_data(args.dataset, args.data_dir, _option(args, "train_size"),
                     _option(args, "test_size"), progress=progress is not None,
                     download=not args.no_download)


def _experiment_settings(args: argparse.Namespace) -> dict:
    """The `ExperimentConfig` fields of a training figure's command line."""
    return {"dataset": args.dataset, "epochs": _option(args, "epochs"),
            "batch_size": args.batch_size, "lr": args.lr, "optimizer": args.optimizer,
            "loss": args.loss, "eta": args.eta, "steps": args.steps, "init": args.init,
            "schedule": args.schedule, "train_size": _option(args, "train_size"),
            "test_size": _option(args, "test_size"), "angle_every": args.angle_every}


def _reproduce_mlp(args: argparse.Namespace, out: Path, command: str, progress: Any) -> int:
    return reproduce_sweep(args, _training_data(args, progress), out, command, progress,
                           _experiment_settings(args), _option, _wrote)


def _reproduce_cnn(args: argparse.Namespace, out: Path, command: str, progress: Any) -> int:
    conditions = _option(args, "conditions")
    other = sorted(set(conditions) - set(CNN_CONDITIONS))
    if other:
        print(f"ardiff reproduce cnn: --conditions must be among {', '.join(CNN_CONDITIONS)};"
              f" got {', '.join(other)}.", file=sys.stderr)
        raise SystemExit(2)
    data = _training_data(args, progress)
    config = CNNConfig(**_experiment_settings(args))
    summary, paths = run_cnn(data, config, out, seeds=_option(args, "seeds"),
                             conditions=conditions, progress=progress, command=command)
    print(describe(summary))
    print(_wrote(out, paths))
    return 0


def _reproduce_depth(args: argparse.Namespace, out: Path, command: str, progress: Any) -> int:
    data = _training_data(args, progress)
    if data["train"][0].shape[1] != 784:
        print("ardiff reproduce depth: the networks take 28 x 28 images (784 inputs).",
              file=sys.stderr)
        raise SystemExit(2)
    config = DepthConfig(dataset=args.dataset, epochs=_option(args, "epochs"),
                         batch_size=args.batch_size, lr=args.lr,
                         train_size=_option(args, "train_size"),
                         test_size=_option(args, "test_size"), width=_option(args, "width"),
                         reach_tol=args.reach_tol)
    rows, paths = run_depth(data, config, out, depths=_option(args, "depths"),
                            seeds=_option(args, "seeds"),
                            conditions=_option(args, "conditions"), progress=progress,
                            command=command)
    print(describe_depth(rows))
    print(_wrote(out, paths))
    return 0


#: What `ardiff reproduce FIG` runs for each kind of figure.
RUNNERS = {"relaxation": _reproduce_relaxation, "mlp": _reproduce_mlp, "cnn": _reproduce_cnn,
           "depth": _reproduce_depth}


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
            return RUNNERS[FIGURES[args.figure].kind](args, out, command, progress)
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
