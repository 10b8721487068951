"""Running sweeps: every run of a `SweepConfig`, in this process or on a Dask cluster.

`run_sweep` trains each `RunSpec` of a sweep and writes its result, one JSON file
per run, from the client process as soon as the run's history comes back (written
atomically: a file is always whole).  Three ways to run:

* `workers=1`: one after another in this process, no Dask needed (each run's file
  is also saved after every epoch, as `ardiff reproduce` always did);
* `workers=N` (N > 1): an embedded `distributed.LocalCluster` with N single-threaded
  worker processes, BLAS pinned to `threads` threads in each;
* `scheduler="tcp://HOST:PORT"`: an existing Dask cluster (`dask scheduler`,
  `dask worker`).  Workers need ardiff only: the client loads the data once and
  sends it to them as the input of a task (computed again by the scheduler if all
  the workers holding it die), and every result comes back to the client, so no
  shared filesystem is needed.

Faults: a run that raises is recorded as failed (status `"failed"`, its error and
traceback in its file) and the sweep goes on.  The client places every run on a
worker with a free thread (and only there), so a worker that dies was computing
exactly the runs placed on it: each is resubmitted to another worker, at most
`retries` times, then recorded as failed.  No more runs are in flight than there are
worker threads, so an interrupted client (Ctrl-C, `kill`) loses only those:
`resume=True` skips every run whose file holds a finished result with the same
`run_id`.

Dask (`distributed`) is an optional dependency, the `sweep` extra; it is imported
only when a parallel run is asked for.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import importlib.util
import inspect
import logging
import os
import secrets
import socket
import time
import traceback
import warnings
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import CancelledError
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..nn import OPTIMIZERS, History, train
from .conditions import get_condition
from .files import write_json
from .runners import load_data
from .sweep_config import SYNTHETIC, RunSpec, SweepConfig, build_model
from .sweep_results import write_sweep_results
from .training import FINISHED, load_run

__all__ = ["run_sweep", "run_one", "run_task", "SweepResult", "SweepError",
           "DaskMissingError", "SWEEP_INSTALL_HINT", "dask_installed",
           "limit_blas_threads", "blas_threads", "synthetic_data", "load_sweep_data",
           "default_workers", "pass_data"]

#: What to install for parallel sweeps.
SWEEP_INSTALL_HINT = "pip install 'ardiff[sweep]'"


class SweepError(RuntimeError):
    """A sweep cannot run: no scheduler reachable, no workers, bad execution options."""


class DaskMissingError(SweepError):
    """A parallel sweep was asked for but Dask's `distributed` is not installed."""


def dask_installed() -> bool:
    """Whether `distributed` (Dask's scheduler, the `sweep` extra) can be imported."""
    try:
        importlib.import_module("distributed")
    except ImportError:
        return False
    return True


def default_workers() -> int:
    """One worker per core this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


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


# ----------------------------------------------------------------------------
# The sweep
# ----------------------------------------------------------------------------


@dataclass
class SweepResult:
    """What `run_sweep` did.

    Attributes
    ----------
    runs : list of dict
        The record of every run of the sweep that has one (reused, trained, failed or
        interrupted), in the sweep's order.
    ran, skipped : list of str
        Run ids trained now, and those reused from earlier results.
    failed : list of dict
        The failed records.
    summary : dict
        Per condition (and grid point): see `ardiff.paper.summarize`.
    files : list of pathlib.Path
        Every file written or reused.
    interrupted : bool
        True if stopped by Ctrl-C; the results so far are written.
    executor : str
        How the runs ran (`"this process"`, `"LocalCluster, 2 workers"`, an address).
    dashboard : str or None
        The Dask dashboard's address, when there was one.
    seconds : float
        Wall time of the runs (data loading and result files included).
    """

    runs: list = field(default_factory=list)
    ran: list = field(default_factory=list)
    skipped: list = field(default_factory=list)
    failed: list = field(default_factory=list)
    summary: dict = field(default_factory=dict)
    files: list = field(default_factory=list)
    interrupted: bool = False
    executor: str = "this process"
    dashboard: str | None = None
    seconds: float = 0.0


def run_sweep(sweep: SweepConfig, out: str | Path, *, workers: int | None = None,
              scheduler: str | None = None, resume: bool = False, retries: int = 3,
              threads: int = 1, progress: Callable[..., Any] | None = None,
              data_dir: str | None = None, download: bool = True, command: str | None = None,
              log: Callable[[str], None] = print, figure: bool = False,
              figures: bool = True, data: dict | None = None,
              cluster_options: dict | None = None) -> SweepResult:
    """Run every run of `sweep` and write its results to `out`.

    Parameters
    ----------
    sweep : SweepConfig
        The grid (see `ardiff.paper.sweep_config`).
    out : str or path-like
        Output directory: `runs/<name>.json` per run, then the tables and figures.
    workers : int, optional
        1: in this process, no Dask.  N > 1: a `LocalCluster` of N single-threaded
        worker processes.  Default: one worker per core (or the scheduler's workers).
    scheduler : str, optional
        Address of an existing Dask scheduler (`tcp://HOST:PORT`); `workers` is then
        ignored.
    resume : bool, optional
        Skip runs whose file holds a finished result (`"complete"` or `"diverged"`)
        with the same `run_id`.  Failed and interrupted runs are run again.
    retries : int, optional
        How many times a run whose worker died is resubmitted (to another worker)
        before it is recorded as failed.
    threads : int, optional
        BLAS threads per worker (and in this process for `workers=1`).
    progress : callable, optional
        A tqdm-like factory: one bar over the runs (and one per run's batches when
        running in this process).  None: no bars.
    data_dir, download : optional
        Where to look for the datasets and whether to download them (the client
        loads them; workers receive them from the client).
    command : str, optional
        The command line, recorded in every file.
    log : callable, optional
        Receives one line per finished run and the final messages.
    figure : bool, optional
        Write exactly the files of `ardiff reproduce` (`<name>_summary.json`,
        `_results.csv`, `_table.md`, figures), without the sweep record.
    figures : bool, optional
        Draw the accuracy and angle figures of a sweep (always drawn with `figure`).
    data : dict, optional
        The data of every run, already loaded (`{"train": (x, y), "test": (x, y)}`);
        default: each dataset the runs name, loaded once.
    cluster_options : dict, optional
        Extra keyword arguments of `LocalCluster` (for tests).

    Returns
    -------
    SweepResult

    Raises
    ------
    DaskMissingError
        If a parallel run is asked for and `distributed` is not installed.
    SweepError
        If the scheduler cannot be reached or has no workers.
    """
    start = time.perf_counter()
    out = Path(out)  # created when the first file is written (not if the data is missing)
    specs = sweep.runs()
    result = SweepResult()
    records: dict[str, dict] = {}
    todo = []
    for spec in specs:
        saved = load_run(out / "runs" / f"{spec.name}.json") if resume else None
        if saved and saved.get("run_id") == spec.run_id and saved.get("status") in FINISHED:
            records[spec.run_id] = saved
            result.skipped.append(spec.run_id)
            if len(specs) <= 50:
                log(f"{spec.describe()}: reusing {out / 'runs' / (spec.name + '.json')}")
        else:
            todo.append(spec)
    if result.skipped and len(specs) > 50:
        log(f"Resuming: {len(result.skipped)} of {len(specs)} runs already done in {out}/runs")

    parallel = scheduler is not None or (workers or default_workers()) > 1
    if todo and parallel and not dask_installed():
        raise DaskMissingError(f"parallel sweeps need Dask's distributed scheduler, which is "
                               f"not installed: {SWEEP_INSTALL_HINT} (or run in this process "
                               "with --workers 1)")
    bar = progress(total=len(todo), unit="run", desc=sweep.name) \
        if progress is not None and todo else None
    say = bar.write if bar is not None else log

    def load(spec: RunSpec) -> dict:
        if data is not None:
            return data
        return load_sweep_data(spec, data_dir, download, progress is not None)

    def record(spec: RunSpec, run: dict) -> None:
        records[spec.run_id] = run
        if run["status"] != "interrupted":
            write_run(out, spec, run)
        result.ran.append(spec.run_id)
        say(_run_line(spec, run))
        if bar is not None:
            bar.update(1)

    try:
        if not todo:
            pass
        elif parallel:
            _run_dask(todo, record, result, load, workers=workers or default_workers(),
                      scheduler=scheduler, retries=retries, threads=threads,
                      command=command, say=say, cluster_options=cluster_options or {})
        else:
            _run_serial(todo, record, out, load, command=command, progress=progress)
    except KeyboardInterrupt:
        result.interrupted = True
        for spec in todo:  # the partial record of the run in progress (serial runs)
            saved = load_run(out / "runs" / f"{spec.name}.json")
            if spec.run_id not in records and saved and saved.get("run_id") == spec.run_id \
                    and saved.get("status") == "interrupted":
                records[spec.run_id] = saved
        log("Interrupted: writing the results so far.")
    finally:
        if bar is not None:
            bar.close()
    result.runs = [records[s.run_id] for s in specs if s.run_id in records]
    result.failed = [r for r in result.runs if r["status"] == "failed"]
    result.seconds = time.perf_counter() - start
    result.summary, result.files = write_sweep_results(
        out, sweep, specs, records, command=command, figure=figure, figures=figures,
        extra={"executor": result.executor, "seconds": result.seconds,
               "ran": result.ran, "skipped": result.skipped,
               "interrupted": result.interrupted})
    return result


def write_run(out: Path, spec: RunSpec, run: dict) -> Path:
    """Write one run's record to `out/runs/<name>.json`, atomically."""
    return write_json(out / "runs" / f"{spec.name}.json", run)


def _run_line(spec: RunSpec, run: dict) -> str:
    if run["status"] == "failed":
        first = (run.get("error") or "").strip().splitlines()
        return f"{spec.describe()}: FAILED: {first[-1] if first else 'unknown error'}"
    h = run.get("history") or {}
    if not h.get("train_acc"):
        return f"{spec.describe()}: {run['status']}"
    line = (f"{spec.describe()}: train {100 * h['train_acc'][-1]:.2f}%  "
            f"test {100 * h['test_acc'][-1]:.2f}%  "
            f"{np.mean(h['epoch_time'][1:] or [0.0]):.1f} s/epoch")
    if h.get("diverged") is not None:
        line = f"{spec.describe()}: diverged at batch {h['diverged']}\n" + line
    return line


def _run_serial(todo: Sequence[RunSpec], record: Callable[[RunSpec, dict], None], out: Path,
                load: Callable[[RunSpec], dict], *, command: str | None,
                progress: Callable[..., Any] | None) -> None:
    cache: dict[tuple, dict] = {}
    for spec in todo:
        key = data_key(spec)
        if key not in cache:
            cache.clear()  # one dataset in memory at a time
            cache[key] = load(spec)

        def save(run: dict, spec: RunSpec = spec) -> None:
            write_run(out, spec, run)

        record(spec, run_one(spec, cache[key], command=command, progress=progress,
                             save=save))


def _run_dask(todo: Sequence[RunSpec], record: Callable[[RunSpec, dict], None],
              result: SweepResult, load: Callable[[RunSpec], dict], *, workers: int,
              scheduler: str | None, retries: int, threads: int, command: str | None,
              say: Callable[[str], None], cluster_options: dict) -> None:
    # lazy: Dask is the optional `sweep` extra
    from distributed import Client, LocalCluster

    cluster = None
    if scheduler is None:
        bokeh = importlib.util.find_spec("bokeh") is not None
        options = {"n_workers": workers, "threads_per_worker": 1, "processes": True,
                   # without bokeh there is no dashboard: a random port, not 8787
                   "dashboard_address": ":8787" if bokeh else ":0",
                   "silence_logs": logging.ERROR, **cluster_options}
        cluster = LocalCluster(**options)
        client = Client(cluster)
        result.executor = f"LocalCluster, {workers} worker processes x 1 thread"
        dashboard = client.dashboard_link if bokeh else None
    else:
        try:
            client = Client(scheduler, timeout=30)
        except (OSError, TimeoutError) as exc:
            raise SweepError(f"cannot connect to the Dask scheduler at {scheduler}: {exc}. "
                             "Start one with 'dask scheduler' and workers with "
                             f"'dask worker {scheduler}'.") from None
        result.executor = f"Dask scheduler {scheduler}"
        try:  # the dashboard needs bokeh where the scheduler runs
            bokeh = client.run_on_scheduler(
                lambda: importlib.util.find_spec("bokeh") is not None)
        except Exception:  # an old or locked-down scheduler: say nothing
            bokeh = False
        dashboard = client.dashboard_link if bokeh else None
    result.dashboard = dashboard
    try:
        if dashboard:
            say(f"Dask dashboard: {dashboard}")
        try:
            client.wait_for_workers(1, timeout=60)
        except (OSError, TimeoutError):
            raise SweepError(f"no Dask worker joined {scheduler or 'the cluster'} within "
                             "60 s; start some with 'dask worker ADDRESS'") from None
        _DaskRuns(client, todo, record, load, retries=retries, threads=threads,
                  command=command).run()
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


class _DaskRuns:
    """The runs of a sweep on a Dask cluster, placed by the client.

    Each run is submitted to one worker with a free thread, and to that worker only
    (the scheduler would also queue runs on busy workers, and a worker's death counts
    against every run assigned to it, waiting or not).  A run whose worker leaves the
    cluster before the run returns was computing there: it is resubmitted to another
    worker, at most `retries` times, then recorded as failed.  No more runs are in
    flight than there are worker threads, so an interrupted client loses only those.
    """

    POLL_S = 1.0  # how often the worker list is checked while no run finishes

    def __init__(self, client: Any, todo: Sequence[RunSpec],
                 record: Callable[[RunSpec, dict], None], load: Callable[[RunSpec], dict],
                 *, retries: int, threads: int, command: str | None):
        self.client, self.record, self.retries = client, record, retries
        self.threads, self.command = threads, command
        self.pending = deque(todo)
        self.running: dict[Any, tuple[RunSpec, str]] = {}
        self.deaths: dict[str, int] = {}
        # The data goes to the workers from here (no shared filesystem needed), as the
        # input of a task rather than scattered: if every worker holding it dies, the
        # scheduler computes it again from the task (scattered data would be lost).
        self.data: dict[tuple, Any] = {}
        for spec in todo:
            key = data_key(spec)
            if key not in self.data:
                with warnings.catch_warnings():  # "large object in the task graph": meant
                    warnings.simplefilter("ignore", UserWarning)
                    self.data[key] = client.submit(
                        pass_data, load(spec), key=f"ardiff-data-{secrets.token_hex(8)}",
                        pure=False)

    def workers(self) -> dict[str, int]:
        """Address -> threads of every worker now in the cluster."""
        info = self.client.scheduler_info()["workers"]
        return {addr: int(w.get("nthreads", 1)) for addr, w in info.items()}

    def fill(self, workers: dict[str, int]) -> None:
        """Submit pending runs to the workers' free threads."""
        busy: dict[str, int] = {}
        for _, addr in self.running.values():
            busy[addr] = busy.get(addr, 0) + 1
        for addr, nthreads in workers.items():
            while self.pending and busy.get(addr, 0) < nthreads:
                spec = self.pending.popleft()
                future = self.client.submit(
                    run_task, spec, self.data[data_key(spec)], self.threads, self.command,
                    key=f"ardiff-run-{secrets.token_hex(8)}", pure=False, workers=[addr],
                    allow_other_workers=False)
                self.running[future] = (spec, addr)
                busy[addr] = busy.get(addr, 0) + 1

    def run(self) -> None:
        """Run everything; Ctrl-C cancels the runs in flight and re-raises."""
        from distributed import wait  # lazy: Dask is optional
        from distributed.scheduler import KilledWorker

        try:
            self.fill(self.workers())
            while self.running or self.pending:
                try:
                    done = wait(list(self.running), timeout=self.POLL_S,
                                return_when="FIRST_COMPLETED").done
                except (TimeoutError, asyncio.TimeoutError):
                    done = set()
                for future in done:
                    spec, addr = self.running[future]
                    if future.status == "error" and isinstance(future.exception(),
                                                               KilledWorker):
                        # a scheduler with allowed-failures 0 gives up at once: ours decide
                        self._worker_died(future, spec, addr)
                        continue
                    del self.running[future]
                    self.record(spec, self._result(spec, future))
                    future.release()
                workers = self.workers()
                for future, (spec, addr) in list(self.running.items()):
                    if addr not in workers and not future.done():
                        self._worker_died(future, spec, addr)
                if not workers and self.pending and not self.running:
                    self.client.wait_for_workers(1, timeout=600)  # all restarting
                    workers = self.workers()
                self.fill(workers)
        except BaseException:
            for future in self.running:  # Ctrl-C: the runs in flight are given up
                future.cancel()
            raise

    def _result(self, spec: RunSpec, future: Any) -> dict:
        try:
            return future.result()
        except (CancelledError, Exception) as exc:  # lost data, communication errors
            return failed_run(spec, f"{type(exc).__name__}: {exc}", self.command)

    def _worker_died(self, future: Any, spec: RunSpec, addr: str) -> None:
        del self.running[future]
        future.cancel()
        deaths = self.deaths[spec.run_id] = self.deaths.get(spec.run_id, 0) + 1
        if deaths > self.retries:
            self.record(spec, failed_run(
                spec, f"KilledWorker: the worker running it died {deaths} times "
                f"(last {addr}); not resubmitted (--retries {self.retries})", self.command))
        else:
            self.pending.appendleft(spec)  # to another worker
