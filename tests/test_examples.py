"""Every script in examples/ runs to completion (exit status 0) in a fresh interpreter.

The scripts are discovered by glob, so a new example is covered without editing
this file.  Each example checks its own numbers against an independent truth
(finite differences, closed forms or backprop) with assertions, so a wrong
gradient fails here too, not only a crash.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SCRIPTS = sorted(EXAMPLES.glob("*.py"))


def test_examples_found():
    """The glob sees the examples (guards against a moved folder passing vacuously)."""
    names = {p.name for p in SCRIPTS}
    assert {"quickstart.py", "graph_by_hand.py", "numpy_control_flow.py", "hessian.py",
            "watch_relaxation.py"} <= names


@pytest.mark.parametrize("script", SCRIPTS, ids=[p.name for p in SCRIPTS])
def test_example_runs(script: Path, tmp_path: Path):
    # Run from a scratch directory so an example cannot depend on the working directory,
    # and with a non-interactive matplotlib backend in case an example plots.
    env = dict(os.environ, MPLBACKEND="Agg")
    proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, (
        f"{script.name} exited with {proc.returncode}\n--- stdout ---\n{proc.stdout[-3000:]}"
        f"\n--- stderr ---\n{proc.stderr[-3000:]}")
    assert proc.stdout.strip(), f"{script.name} printed nothing"
