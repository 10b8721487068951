"""The ``ardiff`` command: the demo and the reproduction of the paper's figures.

    ardiff demo [--out DIR]
    ardiff reproduce fig1|fig2|fig3 [--dataset NAME] [--seeds N] [--epochs N]
                                    [--out DIR] [--data-dir DIR] ...

Ctrl-C during training stops cleanly: finished epochs and runs stay on disk and the
summary, table and figures are written from them (exit status 130).
"""

from __future__ import annotations

import argparse
import shlex
import signal
import sys
from pathlib import Path


def _seeds(text: str) -> list[int]:
    """``"3"`` -> seeds 0, 1, 2; ``"0,4,7"`` -> those seeds."""
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


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


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
    from .experiments import CONDITIONS

    names = [s.strip() for s in text.split(",") if s.strip()]
    unknown = [n for n in names if n not in CONDITIONS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown condition(s) {unknown}; choose from {', '.join(CONDITIONS)}")
    return names


THREADS_HELP = ("BLAS threads (default: %(default)s; the matrices are small, and more "
                "threads than free cores slow everything down)")


def limit_blas_threads(n: int) -> bool:
    """Set the number of BLAS threads of NumPy's OpenBLAS; True if it worked.

    Uses threadpoolctl when installed, else OpenBLAS's own setter; a BLAS without
    either is left alone.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        pass
    else:
        threadpool_limits(n, user_api="blas")
        return True
    import ctypes

    try:
        with open("/proc/self/maps") as fh:
            paths = {line.split()[-1] for line in fh if "openblas" in line and "/" in line}
    except OSError:
        return False
    done = False
    for path in paths:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for name in ("scipy_openblas_set_num_threads64_", "scipy_openblas_set_num_threads",
                     "openblas_set_num_threads64_", "openblas_set_num_threads"):
            setter = getattr(lib, name, None)
            if setter is not None:
                setter(int(n))
                done = True
                break
    return done


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``ardiff`` command."""
    parser = argparse.ArgumentParser(
        prog="ardiff", description="Activation Relaxation: demo and reproduction of the "
        "paper's experiments (Millidge et al.).")
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="offline demo on the bundled Fashion-MNIST subset "
                          "(about a minute)")
    demo.add_argument("--out", default="ardiff-demo", help="output directory "
                      "(default: %(default)s)")
    demo.add_argument("--epochs", type=_positive, default=3,
                      help="training epochs per method (default: %(default)s)")
    demo.add_argument("--data-dir", default=None, help=argparse.SUPPRESS)
    demo.add_argument("--train-size", type=_positive, default=None, help=argparse.SUPPRESS)
    demo.add_argument("--test-size", type=_positive, default=None, help=argparse.SUPPRESS)
    demo.add_argument("--no-progress", action="store_true", help="no progress bars")
    demo.add_argument("--threads", type=_positive, default=1, help=THREADS_HELP)

    rep = sub.add_parser("reproduce", help="run one of the paper's experiments",
                         description="fig1: relaxation error per layer vs step and the eta "
                         "sweep; fig2: AR vs backprop training; fig3: all seven conditions.")
    rep.add_argument("figure", choices=("fig1", "fig2", "fig3"))
    rep.add_argument("--dataset", default="fashion-mnist",
                     help="mnist, fashion-mnist or fashion-mnist-small (default: %(default)s)")
    rep.add_argument("--data-dir", default=None, help="directory holding the IDX files")
    rep.add_argument("--no-download", action="store_true",
                     help="never download: fail if the data is not found locally")
    rep.add_argument("--out", default=None,
                     help="output directory (default: ardiff-results/<dataset>)")
    rep.add_argument("--seeds", type=_seeds, default=None,
                     help="number of seeds, or a comma-separated list (default: 3 for fig2, "
                     "1 for fig3, seed 0 for fig1)")
    rep.add_argument("--epochs", type=_positive, default=10, help="default: %(default)s")
    rep.add_argument("--conditions", type=_conditions, default=None,
                     help="comma-separated subset of the conditions (default: backprop,ar for "
                     "fig2; all seven for fig3)")
    rep.add_argument("--batch-size", type=_positive, default=64, help="default: %(default)s")
    rep.add_argument("--lr", type=float, default=5e-4, help="SGD learning rate "
                     "(default: %(default)s)")
    rep.add_argument("--optimizer", choices=("sgd", "adam"), default="sgd")
    rep.add_argument("--loss", choices=("sse", "mse", "xent"), default="sse")
    rep.add_argument("--eta", type=float, default=0.1, help="relaxation step (default: "
                     "%(default)s)")
    rep.add_argument("--steps", type=_positive, default=None,
                     help="relaxation steps T (default: 100; fig1: 200 for the eta sweep)")
    rep.add_argument("--etas", type=_etas, default=None,
                     help="fig1: comma-separated eta values of the sweep (default: the "
                     "paper's 0.5,0.2,0.1,0.05,0.02,0.01,0.005)")
    rep.add_argument("--init", choices=("forward", "zeros"), default="forward")
    rep.add_argument("--schedule", choices=("parallel", "sequential"), default="parallel",
                     help="parallel = Algorithm 1 of the paper; sequential = the top-down "
                     "order of the paper's training code (default: %(default)s)")
    rep.add_argument("--train-size", type=_positive, default=None,
                     help="use only the first N training images")
    rep.add_argument("--test-size", type=_positive, default=None,
                     help="use only the first N test images")
    rep.add_argument("--angle-every", type=int, default=100,
                     help="record the angle to backprop's gradient every N batches "
                     "(0: never; default: %(default)s)")
    rep.add_argument("--no-progress", action="store_true", help="no progress bars")
    rep.add_argument("--threads", type=_positive, default=1, help=THREADS_HELP)
    return parser


def _progress(disabled: bool):
    if disabled:
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        print("(install tqdm for progress bars: pip install 'ardiff[cli]')", file=sys.stderr)
        return None
    return tqdm


def _stop_on_sigterm() -> None:
    """Make ``kill`` (SIGTERM) stop like Ctrl-C, so that results so far get written."""
    def handler(signum, frame):
        raise KeyboardInterrupt

    try:
        signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread (e.g. called from a test runner thread)
        pass


def main(argv: list[str] | None = None) -> int:
    """Run the ``ardiff`` command; returns the exit status."""
    if argv is None:  # the console command: a plain `kill` also stops cleanly
        _stop_on_sigterm()
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    command = "ardiff " + " ".join(shlex.quote(a) for a in argv)
    limit_blas_threads(args.threads)
    progress = _progress(args.no_progress)
    from .data import DataError
    from .experiments import (
        FIG2,
        FIG3,
        PAPER_ETAS,
        TrainingConfig,
        load_data,
        run_demo,
        run_fig1,
        run_training,
    )

    out = None
    try:
        if args.command == "demo":
            out = Path(args.out)
            run_demo(out, epochs=args.epochs, data_dir=args.data_dir, progress=progress,
                     command=command, train_size=args.train_size, test_size=args.test_size)
            return 0
        out = Path(args.out or f"ardiff-results/{args.dataset}")
        data = load_data(args.dataset, args.data_dir, args.train_size, args.test_size,
                         progress=progress is not None, download=not args.no_download)
        if args.figure == "fig1":
            seed = (args.seeds or [0])[0]
            run_fig1(data, out, etas=args.etas or PAPER_ETAS, steps=args.steps or 200,
                     main_eta=args.eta, seed=seed, command=command)
            return 0
        config = TrainingConfig(
            dataset=args.dataset, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
            optimizer=args.optimizer, loss=args.loss, eta=args.eta, steps=args.steps or 100,
            init=args.init, schedule=args.schedule, train_size=args.train_size,
            test_size=args.test_size, angle_every=args.angle_every)
        conditions = args.conditions or (FIG2 if args.figure == "fig2" else FIG3)
        seeds = args.seeds or (list(range(3)) if args.figure == "fig2" else [0])
        run_training(data, config, conditions, seeds, out, figure=args.figure,
                     command=command, progress=progress)
        print(f"Results in {out}/")
        return 0
    except KeyboardInterrupt:
        where = f"; results so far are in {out}/" if out is not None else ""
        print(f"\nInterrupted{where}", file=sys.stderr)
        return 130
    except (DataError, FileNotFoundError) as exc:
        print(f"ardiff: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
