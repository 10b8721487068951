"""Every script in examples/ runs to completion (exit status 0) in a fresh interpreter.

The scripts are discovered by glob, so a new example is covered without editing
this file.  Each example checks its own numbers against an independent truth
(finite differences, closed forms or backprop) with assertions, so a wrong
gradient fails here too, not only a crash.

Most of an example's time is interpreter start-up and ``import ardiff``, so the
scripts are started together and each test waits for its own.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SCRIPTS = sorted(EXAMPLES.glob("*.py"))
TIMEOUT_S = 120


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    """Start every example at once; map script name -> running process."""
    # A scratch working directory, so an example cannot depend on where it is run from,
    # and a non-interactive matplotlib backend in case an example plots.
    cwd = tmp_path_factory.mktemp("examples")
    env = dict(os.environ, MPLBACKEND="Agg")
    procs = {p.name: subprocess.Popen([sys.executable, str(p)], cwd=cwd, env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True)
             for p in SCRIPTS}
    yield procs
    for proc in procs.values():  # only if a test failed before waiting on its process
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def test_examples_found():
    """The glob sees the examples (guards against a moved folder passing vacuously)."""
    names = {p.name for p in SCRIPTS}
    assert {"quickstart.py", "graph_by_hand.py", "numpy_control_flow.py", "hessian.py",
            "watch_relaxation.py"} <= names


@pytest.mark.parametrize("name", [p.name for p in SCRIPTS])
def test_example_runs(name: str, runs: dict):
    proc = runs[name]
    try:
        stdout, stderr = proc.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        pytest.fail(f"{name} did not finish within {TIMEOUT_S} s")
    assert proc.returncode == 0, (
        f"{name} exited with {proc.returncode}\n--- stdout ---\n{stdout[-3000:]}"
        f"\n--- stderr ---\n{stderr[-3000:]}")
    assert stdout.strip(), f"{name} printed nothing"
