"""One run of a sweep: its data, its training, its record; what a Dask worker executes.

`run_one` trains one `RunSpec` and returns its record (a failed run is recorded, not
raised); `run_task` is the function a Dask worker runs (BLAS pinned first).  The data
of a run is its dataset cut to `train_size` / `test_size`, or `synthetic_data`.
"""

from __future__ import annotations

import contextlib
import inspect
import os
import socket
import time
import traceback
from collections.abc import Callable
from typing import Any

import numpy as np

from ..nn import OPTIMIZERS, History, train
from .conditions import get_condition
from .runners import load_data
from .sweep_config import SYNTHETIC, RunSpec, build_model

__all__ = ["limit_blas_threads", "blas_threads", "synthetic_data", "data_key",
           "load_sweep_data", "failed_run", "run_one", "pass_data", "run_task"]


def limit_blas_threads(n: int) -> bool:
    """Limit the BLAS libraries loaded in this process (NumPy's) to `n` threads.

    Parameters
    ----------
    n : int
        Number of threads.

    Returns
    -------
    bool
        True if a BLAS library was found and limited.

    Raises
    ------
    ImportError
        If threadpoolctl (in the `cli` and `sweep` extras) is not installed.
    """
    # lazy: threadpoolctl is an optional dependency (the cli extra), checked up front
    from threadpoolctl import threadpool_info, threadpool_limits

    threadpool_limits(limits=int(n), user_api="blas")
    return any(pool.get("user_api") == "blas" for pool in threadpool_info())


# ----------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------


def synthetic_data(n_features: int, n_classes: int, train_size: int | None = None,
                   test_size: int | None = None) -> dict:
    """Gaussian clusters, one per class: a stand-in dataset for quick sweeps and tests.

    Parameters
    ----------
    n_features, n_classes : int
        Width of the inputs and number of classes (the model's first and last sizes).
    train_size, test_size : int, optional
        Number of examples (default 512 and 128).

    Returns
    -------
    dict
        `{"train": (x, y), "test": (x, y)}` like `ardiff.paper.load_data`: float64
        inputs in [0, 1], int64 labels.  Always the same numbers (fixed seed).
    """
    rng = np.random.default_rng(12345)
    centres = rng.random((n_classes, n_features))
    out = {}
    for split, n in (("train", train_size or 512), ("test", test_size or 128)):
        y = rng.integers(0, n_classes, n)
        x = np.clip(centres[y] + 0.15 * rng.standard_normal((n, n_features)), 0.0, 1.0)
        out[split] = (np.ascontiguousarray(x, dtype=np.float64), y.astype(np.int64))
    return out


def data_key(spec: RunSpec) -> tuple:
    """Runs with equal keys train on the same data."""
    c = spec.config
    key = (c["dataset"], c["train_size"], c["test_size"])
    return key + ((c["sizes"][0], c["sizes"][-1]) if c["dataset"] == SYNTHETIC else ())


def load_sweep_data(spec: RunSpec, data_dir: str | None = None, download: bool = True,
                    progress: bool = False) -> dict:
    """The data of one run: its dataset cut to `train_size` / `test_size`."""
    c = spec.config
    if c["dataset"] == SYNTHETIC:
        return synthetic_data(c["sizes"][0], c["sizes"][-1], c["train_size"], c["test_size"])
    return load_data(c["dataset"], data_dir, c["train_size"], c["test_size"],
                     progress=progress, download=download)


# ----------------------------------------------------------------------------
# One run
# ----------------------------------------------------------------------------


def blas_threads() -> int | None:
    """The most threads a BLAS library loaded here may use (None: unknown)."""
    try:
        from threadpoolctl import threadpool_info  # lazy: optional (cli/sweep extras)
    except ImportError:
        return None
    counts = [p["num_threads"] for p in threadpool_info() if p.get("user_api") == "blas"]
    return max(counts) if counts else None


def _base_run(spec: RunSpec, command: str | None) -> dict:
    return {"run_id": spec.run_id, "condition": spec.condition,
            "label": get_condition(spec.condition).label, "seed": spec.seed,
            "model": spec.model, "point": dict(spec.point), "config": dict(spec.config),
            "command": command, "status": "running",
            "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "worker": f"{socket.gethostname()}:{os.getpid()}", "blas_threads": blas_threads()}


def failed_run(spec: RunSpec, error: str, command: str | None = None) -> dict:
    """The record of a run that produced no result: status `"failed"` and the error."""
    run = _base_run(spec, command)
    run.update(status="failed", error=error, worker=None, blas_threads=None)
    return run


def run_one(spec: RunSpec, data: dict, *, command: str | None = None,
            progress: Callable[..., Any] | None = None,
            save: Callable[[dict], None] | None = None) -> dict:
    """Train one run of a sweep and return its record (never raises for a bad run).

    Parameters
    ----------
    spec : RunSpec
        What to train.
    data : dict
        `{"train": (x, y), "test": (x, y)}`.
    command : str, optional
        Recorded in the result.
    progress : callable, optional
        A tqdm-like factory for a per-batch progress bar.
    save : callable, optional
        Called with the record after every epoch (status `"running"`) and when
        interrupted (status `"interrupted"`), to keep partial results.

    Returns
    -------
    dict
        The record: the spec's fields, `"method"`, `"status"` (`"complete"`,
        `"diverged"`, or `"failed"` with `"error"` holding the traceback),
        `"history"` (`ardiff.nn.History.to_dict`), `"batches_per_epoch"`, `"seconds"`,
        `"worker"` (`host:pid`) and `"blas_threads"` (the BLAS thread limit it ran with).

    Raises
    ------
    KeyboardInterrupt
        Re-raised after `save` got the partial record.
    """
    run = _base_run(spec, command)
    start = time.perf_counter()
    history = History()
    bar = None
    try:
        config = spec.training_config()
        cond = get_condition(spec.condition)
        accepted = inspect.signature(cond.method).parameters
        method = cond.method(seed=spec.seed, **{k: getattr(config, k) for k in accepted
                                                if k != "seed" and hasattr(config, k)})
        run["method"] = method.describe()
        model = build_model(spec.model, config, spec.seed)
        optimizer = OPTIMIZERS[config.optimizer](lr=config.lr)
        run["batches_per_epoch"] = -(-len(data["train"][0]) // config.batch_size)

        def on_epoch(h: History) -> None:
            if save is not None:
                save({**run, "history": h.to_dict()})

        if progress is not None:
            bar = progress(total=run["batches_per_epoch"] * config.epochs, unit="batch",
                           desc=spec.describe(), leave=False)
        train(model, data["train"], data["test"], method=method, loss=config.loss,
              optimizer=optimizer, epochs=config.epochs, batch_size=config.batch_size,
              seed=spec.seed, angle_every=config.angle_every, history=history,
              progress=bar, on_epoch=on_epoch)
    except KeyboardInterrupt:
        run.update(status="interrupted", history=history.to_dict())
        if save is not None:
            save(run)
        raise
    except Exception as exc:  # a bad run must not stop the sweep: record it and go on
        run.update(status="failed", error="".join(traceback.format_exception(exc)))
        if history.epoch:
            run["history"] = history.to_dict()
        run["seconds"] = time.perf_counter() - start
        return run
    finally:
        if bar is not None:
            bar.close()
    run.update(status="diverged" if history.diverged is not None else "complete",
               history=history.to_dict(), seconds=time.perf_counter() - start)
    return run


def pass_data(data: dict) -> dict:
    """The task that puts a dataset on the workers (its input travels with the task)."""
    return data


def run_task(spec: RunSpec, data: dict, threads: int = 1, command: str | None = None) -> dict:
    """What a Dask worker runs: pin BLAS to `threads` threads, then `run_one`."""
    with contextlib.suppress(ImportError):  # without threadpoolctl: the worker's env decides
        limit_blas_threads(threads)
    return run_one(spec, data, command=command)
