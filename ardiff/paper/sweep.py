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

Results are never lost silently: a result file in `out/runs/` made by a run with a
different configuration (another `run_id`: say the same grid point run again with
`--set epochs=1`) is not overwritten -- the sweep is refused before anything runs,
naming the file and what differs.  And a lock file, `out/.sweep.lock`, holds the folder
for one sweep at a time: a second sweep into it is refused with the owner's process id
and host; a lock left by a process that no longer runs (on this host) is taken over with
a message.

Dask (`distributed`) is an optional dependency, the `sweep` extra; it is imported
only when a parallel run is asked for.  One run (what a worker executes) is in
`ardiff.paper.sweep_runs`, the Dask side in `ardiff.paper.sweep_dask`, the
configuration in `ardiff.paper.sweep_config`, the summary files in
`ardiff.paper.sweep_results` and the command line in `ardiff.paper.sweep_cli`.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .files import write_json
from .sweep_config import RunSpec, SweepConfig
from .sweep_dask import SweepError, run_on_dask
from .sweep_results import write_sweep_results
from .sweep_runs import data_key, load_sweep_data, run_one
from .training import FINISHED, load_run

__all__ = ["run_sweep", "SweepResult", "DaskMissingError", "SWEEP_INSTALL_HINT",
           "dask_installed", "default_workers", "write_run", "LOCK_NAME", "sweep_lock",
           "OutputInUseError", "ResultConflictError"]

#: The lock file that holds a result folder for one sweep (see `sweep_lock`).
LOCK_NAME = ".sweep.lock"


class OutputInUseError(SweepError):
    """Another sweep, still running, writes into the same result folder."""


class ResultConflictError(SweepError):
    """The result folder holds a result of a run with a different configuration."""

#: What to install for parallel sweeps.
SWEEP_INSTALL_HINT = "pip install 'ardiff[sweep]'"


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
    OutputInUseError
        If another sweep that still runs holds `out` (its lock file `out/.sweep.lock`).
    ResultConflictError
        If `out/runs/` holds a result of a run with a different configuration, which
        this sweep would overwrite.
    """
    out = Path(out)
    with sweep_lock(out, log):
        return _run_sweep(sweep, out, workers=workers, scheduler=scheduler, resume=resume,
                          retries=retries, threads=threads, progress=progress,
                          data_dir=data_dir, download=download, command=command, log=log,
                          figure=figure, figures=figures, data=data,
                          cluster_options=cluster_options)


def _run_sweep(sweep: SweepConfig, out: Path, *, workers: int | None,
               scheduler: str | None, resume: bool, retries: int, threads: int,
               progress: Callable[..., Any] | None, data_dir: str | None, download: bool,
               command: str | None, log: Callable[[str], None], figure: bool,
               figures: bool, data: dict | None, cluster_options: dict | None) -> SweepResult:
    start = time.perf_counter()
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
    check_no_conflicts(out, todo)  # before anything runs: never overwrite another config's
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
            def started(executor: str, dashboard: str | None) -> None:
                result.executor, result.dashboard = executor, dashboard

            run_on_dask(todo, record, load, workers=workers or default_workers(),
                        scheduler=scheduler, retries=retries, threads=threads,
                        command=command, say=say, cluster_options=cluster_options or {},
                        started=started)
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


# ----------------------------------------------------------------------------
# Keeping results: no overwriting, one sweep per folder
# ----------------------------------------------------------------------------


def _differences(saved: dict, spec: RunSpec, limit: int = 6) -> str:
    diffs = []
    for key, mine in (("condition", spec.condition), ("seed", spec.seed),
                      ("model", spec.model)):
        if saved.get(key) != mine:
            diffs.append(f"{key} {saved.get(key)!r} there, {mine!r} now")
    theirs = saved.get("config") if isinstance(saved.get("config"), dict) else {}
    for key in sorted(set(theirs) | set(spec.config)):
        a, b = theirs.get(key), spec.config.get(key)
        if json.dumps(a, default=str) != json.dumps(list(b) if isinstance(b, tuple) else b,
                                                    default=str):
            diffs.append(f"{key} {a!r} there, {b!r} now")
    if not diffs:
        return "its configuration differs"
    more = len(diffs) - limit
    return "; ".join(diffs[:limit]) + (f"; and {more} more" if more > 0 else "")


def check_no_conflicts(out: Path, specs: Sequence[RunSpec]) -> None:
    """Refuse a sweep that would overwrite the result of a run with another configuration.

    A result file `out/runs/<name>.json` whose `run_id` is not the run id of the spec
    writing to it was made with a different configuration (grid values equal, other
    settings not).  Raises `ResultConflictError` naming the file and the differences.
    """
    runs_dir = out / "runs"
    if not runs_dir.is_dir():
        return
    for spec in specs:
        path = runs_dir / f"{spec.name}.json"
        if not path.exists():
            continue
        saved = load_run(path)
        if saved is None or not isinstance(saved, dict):
            raise ResultConflictError(
                f"{path} exists but is not a readable run record; this sweep would replace "
                "it. Move it away (or use another --out) and run again.")
        if saved.get("run_id") != spec.run_id:
            raise ResultConflictError(
                f"{path} holds the result of a run with a different configuration (run id "
                f"{saved.get('run_id')}; {_differences(saved, spec)}); this sweep's run "
                f"{spec.describe()} (run id {spec.run_id}) would overwrite it. Use another "
                f"--out for this configuration, or move {out} (or that file) away if the "
                "earlier results are not wanted.")


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: it runs
        return True
    except (OverflowError, ValueError, OSError):
        return False
    return True


def _read_lock(path: Path) -> dict | None:
    try:
        owner = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return owner if isinstance(owner, dict) else None


@contextlib.contextmanager
def sweep_lock(out: str | Path, log: Callable[[str], None] = print):
    """Hold `out` for one sweep: the lock file `out/.sweep.lock` (process id, host, time).

    A second sweep into a held folder raises `OutputInUseError` naming the owner.  A lock
    left by a process of this host that no longer runs (a killed sweep) is taken over,
    with a message through `log`; one from another host is taken over only when deleted
    by hand (this host cannot tell whether that process still runs).  The lock is
    removed on exit, and `out` too when it was created here and stayed empty.
    """
    out = Path(out)
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    path = out / LOCK_NAME
    host = socket.gethostname()
    mine = {"pid": os.getpid(), "host": host,
            "started": time.strftime("%Y-%m-%dT%H:%M:%S")}
    for _ in range(3):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            owner = _read_lock(path)
            if owner is None:
                try:  # just being written by its owner, or left half-written long ago
                    age = time.time() - path.stat().st_mtime
                except OSError:
                    continue  # removed meanwhile: try again
                if age < 60:
                    raise OutputInUseError(
                        f"{out} is being taken by another sweep (its lock file {path} is "
                        "being written); wait for that sweep, or use another --out.") from None
                log(f"Taking over {path}: an unreadable lock file left {age:.0f} s ago.")
            elif owner.get("host") == host and isinstance(owner.get("pid"), int) and \
                    not _process_alive(owner["pid"]):
                log(f"Taking over {path}: left by process {owner['pid']} on {host} "
                    f"(started {owner.get('started')}), which no longer runs.")
            else:
                raise OutputInUseError(
                    f"{out} is in use by another sweep: process {owner.get('pid')} on "
                    f"{owner.get('host')}, started {owner.get('started')} (lock file "
                    f"{path}). Two sweeps writing into one folder would replace each "
                    "other's results: wait for it to finish, or use another --out. If that "
                    f"process no longer runs, delete {path}.") from None
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            continue
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(json.dumps(mine) + "\n")
        break
    else:
        raise OutputInUseError(f"could not take the lock file {path}: other sweeps keep "
                               "taking it; use another --out.")
    try:
        yield path
    finally:
        if _read_lock(path) == mine:
            with contextlib.suppress(OSError):
                path.unlink()
        if created:
            with contextlib.suppress(OSError):
                out.rmdir()  # only when empty: a sweep that wrote nothing leaves nothing


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


