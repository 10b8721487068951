"""User models (`module:function`) for tests/test_sweep.py, some of which misbehave on
purpose: they must be importable by the Dask worker processes, hence a module of their
own (tests/ is on the path the workers inherit).

`ARDIFF_SWEEP_TEST_DIR` (set before the test cluster starts) is where they leave
marks; `ARDIFF_SWEEP_TEST_PARENT` is the pid of the test process, which the killing
models refuse to kill.
"""

import os
import signal
import time
from pathlib import Path

from ardiff.nn import MLP


def mlp(config, seed):
    """The paper's MLP, as `model = "mlp"` builds it."""
    return MLP(config.sizes, activation=config.activation, init_std=config.init_std,
               seed=seed)


def _in_test_process() -> bool:
    return os.getpid() == int(os.environ.get("ARDIFF_SWEEP_TEST_PARENT", "-1"))


def waits_to_be_killed_once(config, seed):
    """Seed 1's first run writes its pid to `<dir>/pid` and waits to be killed; the rerun
    (and every other run) is `mlp`."""
    directory = Path(os.environ["ARDIFF_SWEEP_TEST_DIR"])
    if seed == 1 and not _in_test_process():
        try:
            fd = os.open(directory / "claimed", os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:  # the rerun after the kill
            return mlp(config, seed)
        os.close(fd)
        tmp = directory / f"pid.{os.getpid()}"
        tmp.write_text(str(os.getpid()))
        os.replace(tmp, directory / "pid")  # whole, for the test that polls for it
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            time.sleep(0.02)
        raise RuntimeError("the test did not kill this worker within 60 s")
    return mlp(config, seed)


def kills_its_worker(config, seed):
    """Seed 1 kills the worker process running it, every time (by its own pid)."""
    if seed == 1:
        if _in_test_process():
            raise RuntimeError("kills_its_worker must run on a Dask worker")
        os.kill(os.getpid(), signal.SIGKILL)
    return mlp(config, seed)


def raises_for_seed_1(config, seed):
    """Seed 1 raises (a broken model or configuration); others are `mlp`."""
    if seed == 1:
        raise ValueError("broken on purpose for seed 1")
    return mlp(config, seed)
