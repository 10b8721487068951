"""Benchmark: one sweep on 2 Dask worker processes against the same sweep in one process.

Run from the repository root (needs the `sweep` extra)::

    python benchmarks/bench_sweep.py [--repeats 3] [--seeds 4] [--train-size 6400]

The sweep: the paper's MLP 784-300-300-100-10 on the bundled Fashion-MNIST subset (the
first `--train-size` training and 500 test images), 1 epoch, batch 64, conditions
backprop, AR and AR with feedback alignment (the paper's protocol: eta 0.1, T = 100,
parallel, closed form), `--seeds` seeds: 3 x seeds runs.  Three ways to run it:

* ``1 process``: `run_sweep(workers=1)`, the runs one after another in this process (the
  baseline, what `ardiff reproduce` did before sweeps);
* ``2 workers``: `run_sweep(scheduler=...)` on a `LocalCluster` of 2 single-threaded
  worker processes started (and its workers' imports paid) before the timing: the
  throughput of a running cluster, what a long sweep sees;
* ``2 workers, cold``: `run_sweep(workers=2)`, the embedded cluster of `ardiff sweep`,
  started inside the timing (timed once, after the others): the wall time a user waits,
  fixed start-up cost included.

BLAS is pinned to one thread everywhere.  The first two are timed interleaved,
`--repeats` times each, and the medians and their ratio are printed, with the load
average of the machine before and after (other processes take cores from both alike,
but a busy machine cannot give 2 workers 2 free cores).  The per-run results of every
run are compared (histories without the timings): they must be equal bitwise.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

from distributed import Client, LocalCluster
from threadpoolctl import threadpool_limits

from ardiff.paper.sweep import run_sweep
from ardiff.paper.sweep_config import parse_sweep


def histories(out: Path) -> dict:
    """Run file -> history without its timings."""
    result = {}
    for path in sorted((out / "runs").glob("*.json")):
        run = json.loads(path.read_text())
        result[path.name] = {k: v for k, v in run["history"].items() if k != "epoch_time"}
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--train-size", type=int, default=6400)
    args = parser.parse_args()
    threadpool_limits(1, user_api="blas")
    sweep = parse_sweep({
        "name": "bench", "conditions": ["backprop", "ar", "feedback-alignment"],
        "seeds": args.seeds,
        "config": {"dataset": "fashion-mnist-small", "epochs": 1,
                   "train_size": args.train_size, "test_size": 500}}, source="bench")
    n_runs = len(sweep.runs())
    print(f"{platform.platform()}, Python {platform.python_version()}, "
          f"{os.cpu_count()} cores; load average before: "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print(f"sweep: {n_runs} runs (3 conditions x {args.seeds} seeds), MLP 784-300-300-100-10, "
          f"{args.train_size} training images, 1 epoch; {args.repeats} repeats, interleaved")
    times: dict[str, list[float]] = {"1 process": [], "2 workers": []}
    reference: dict = {}

    def timed(label: str, out: Path, **where) -> float:
        start = time.perf_counter()
        result = run_sweep(sweep, out, figures=False, log=lambda _: None, **where)
        seconds = time.perf_counter() - start
        if result.interrupted or result.failed or len(result.ran) != n_runs:
            raise SystemExit(f"{label}: interrupted, or {len(result.failed)} runs failed")
        got = histories(out)
        reference.setdefault("runs", got)
        if got != reference["runs"]:
            raise SystemExit(f"{label}: results differ from the first sweep's")
        print(f"  {label:16s} {seconds:7.1f} s", flush=True)
        return seconds

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                               dashboard_address=":0", silence_logs=logging.ERROR)
        client = Client(cluster)
        client.run(lambda: __import__("ardiff.paper.sweep"))
        startup = time.perf_counter() - start
        print(f"  LocalCluster of 2 workers started, ardiff imported in them: {startup:.1f} s")
        try:
            for repeat in range(args.repeats):
                times["1 process"].append(timed("1 process", Path(tmp) / f"s{repeat}",
                                                workers=1))
                times["2 workers"].append(timed("2 workers", Path(tmp) / f"p{repeat}",
                                                scheduler=cluster.scheduler_address))
        finally:
            client.close()
            cluster.close()
        cold = timed("2 workers, cold", Path(tmp) / "cold", workers=2)
    base = statistics.median(times["1 process"])
    par = statistics.median(times["2 workers"])
    print(f"load average after: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print(f"median wall time: 1 process {base:.1f} s, 2 workers {par:.1f} s: speed-up "
          f"{base / par:.2f}x; cold embedded cluster (start-up included, once) {cold:.1f} s: "
          f"{base / cold:.2f}x")
    print("per-run results of every sweep, all three ways: bitwise equal")
    return 0


if __name__ == "__main__":
    sys.exit(main())
