"""Time shell commands and save the run, so that time figures in the docs have a source.

    python tools/time_commands.py --out docs/results/command-times.txt \\
        "ardiff demo --out /tmp/demo --no-progress" "ardiff reproduce fig1 --quick ..."

Each command runs once, in order, on this machine as it is (no idling, no pinning).
The file gets one block per command: the command, the load average just before it,
its wall and CPU time (user + system of the command and its children), its exit
status and the last lines of its output.  A block is appended, so the file can keep
several runs; `tests/test_docs_figures.py` reads the blocks (``wall s`` and ``cpu s``
per command) and checks the times quoted in README.md and docs/ against them.
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import resource
import subprocess
import sys
import time


def time_one(command: str, tail: int) -> str:
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(command, shell=True, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    lines = (proc.stdout + proc.stderr).rstrip().splitlines()[-tail:]
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    out = [f"$ {command}",
           f"run at {stamp}; load average (1, 5, 15 min) before: {load}",
           f"wall s: {wall:.1f}",
           f"cpu s: {cpu:.1f}",
           f"exit status: {proc.returncode}",
           "output (last lines):"]
    out += ["    " + line for line in lines]
    return "\n".join(out) + "\n\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("commands", nargs="+", help="shell commands, one per argument")
    parser.add_argument("--out", required=True, help="file to append the blocks to")
    parser.add_argument("--tail", type=int, default=6, help="output lines kept per command")
    args = parser.parse_args(argv)
    header = (f"# tools/time_commands.py on {platform.machine()}, {os.cpu_count()} CPUs, "
              f"Python {platform.python_version()}; "
              f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', '(unset)')}\n\n")
    status = 0
    with open(args.out, "a") as f:
        f.write(header)
        for command in args.commands:
            block = time_one(command, args.tail)
            f.write(block)
            f.flush()
            sys.stdout.write(block)
            status = status or int("exit status: 0" not in block)
    return status


if __name__ == "__main__":
    sys.exit(main())
