"""Running the runs of a sweep on a Dask cluster (the optional `sweep` extra).

`run_on_dask` starts an embedded `LocalCluster` (one single-threaded worker process
per core) or connects to an existing scheduler, sends each dataset once, and places
the runs itself: each on a worker with a free thread, and only there, so that a worker
that dies was computing exactly the runs placed on it; those are resubmitted to other
workers, a bounded number of times.  Dask is imported only here, inside functions.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import secrets
import warnings
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import CancelledError
from typing import Any

from .sweep_config import RunSpec
from .sweep_runs import data_key, failed_run, pass_data, run_task

__all__ = ["SweepError", "run_on_dask", "worker_environ", "NANNY_ENVIRON"]


class SweepError(RuntimeError):
    """A sweep cannot run: no scheduler reachable, no workers, bad execution options."""


def run_on_dask(todo: Sequence[RunSpec], record: Callable[[RunSpec, dict], None],
                load: Callable[[RunSpec], dict], *, workers: int, scheduler: str | None,
                retries: int, threads: int, command: str | None, say: Callable[[str], None],
                cluster_options: dict, started: Callable[[str, str | None], None]) -> None:
    """Run `todo` on Dask; `record(spec, run)` receives every result as it comes.

    `started(executor, dashboard)` is told how the runs execute (and the dashboard's
    address, or None) before the first run.  Ctrl-C cancels the runs in flight and
    re-raises.  Raises `SweepError` if the scheduler cannot be reached or no worker
    joins it.
    """
    # lazy: Dask is the optional `sweep` extra
    import dask
    import distributed  # noqa: F401  (registers the distributed.* settings read below)

    with dask.config.set({NANNY_ENVIRON: worker_environ(dask.config.get(NANNY_ENVIRON, {}))}):
        _run_on_dask(todo, record, load, workers=workers, scheduler=scheduler,
                     retries=retries, threads=threads, command=command, say=say,
                     cluster_options=cluster_options, started=started)


#: The Dask setting that holds the environment of the worker processes a nanny spawns.
NANNY_ENVIRON = "distributed.nanny.pre-spawn-environ"


def worker_environ(environ: dict) -> dict:
    """Dask's worker environment without `MALLOC_TRIM_THRESHOLD_`.

    Dask sets it (to 64 KiB) so that workers return freed memory to the OS.  Setting
    it at all turns off glibc's adaptive mmap threshold, so every array above 128 KiB
    (a 64 x 300 float64 activity is 150 KiB) is a fresh mmap with its page faults:
    measured on the paper's MLP, one AR training batch took 1.8x as long with it as
    without it (100 batches: 2.29 s vs 1.28 s in a plain process with the variable
    set, 1.38 s without).  The BLAS/OpenMP thread limits stay.

    Parameters
    ----------
    environ : dict
        The configured environment (`distributed.nanny.pre-spawn-environ`).

    Returns
    -------
    dict
    """
    return {k: v for k, v in dict(environ).items() if k != "MALLOC_TRIM_THRESHOLD_"}


def _run_on_dask(todo: Sequence[RunSpec], record: Callable[[RunSpec, dict], None],
                 load: Callable[[RunSpec], dict], *, workers: int, scheduler: str | None,
                 retries: int, threads: int, command: str | None, say: Callable[[str], None],
                 cluster_options: dict, started: Callable[[str, str | None], None]) -> None:
    from distributed import Client, LocalCluster  # lazy: Dask is the optional extra

    cluster = None
    if scheduler is None:
        bokeh = importlib.util.find_spec("bokeh") is not None
        options = {"n_workers": workers, "threads_per_worker": 1, "processes": True,
                   # without bokeh there is no dashboard: a random port, not 8787;
                   # on localhost only, like the scheduler (LocalCluster's default host)
                   "dashboard_address": "127.0.0.1:8787" if bokeh else "127.0.0.1:0",
                   "silence_logs": logging.ERROR, **cluster_options}
        cluster = LocalCluster(**options)
        client = Client(cluster)
        executor = f"LocalCluster, {workers} worker processes x 1 thread"
        dashboard = client.dashboard_link if bokeh else None
    else:
        try:
            client = Client(scheduler, timeout=30)
        except (OSError, TimeoutError) as exc:
            raise SweepError(f"cannot connect to the Dask scheduler at {scheduler}: {exc}. "
                             "Start one with 'dask scheduler' and workers with "
                             f"'dask worker {scheduler}'.") from None
        executor = f"Dask scheduler {scheduler}"
        try:  # the dashboard needs bokeh where the scheduler runs
            bokeh = client.run_on_scheduler(
                lambda: importlib.util.find_spec("bokeh") is not None)
        except Exception:  # an old or locked-down scheduler: say nothing
            bokeh = False
        dashboard = client.dashboard_link if bokeh else None
    started(executor, dashboard)
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
