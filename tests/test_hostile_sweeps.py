"""Careless and hostile input (issue 23): sweep configurations and result folders.

A sweep run again into the same folder with another setting must not overwrite the
earlier results; two sweeps must not write into one folder; seeds and grid sizes are
bounded before anything is listed.
"""

import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from ardiff.paper import cli
from ardiff.paper.sweep import (
    LOCK_NAME,
    OutputInUseError,
    ResultConflictError,
    run_sweep,
    sweep_lock,
)
from ardiff.paper.sweep_config import (
    MAX_RUNS,
    MAX_SEEDS,
    SweepConfigError,
    load_sweep_config,
    parse_sweep,
)
from ardiff.paper.training import FINISHED

SMALL = """\
name = "small"
conditions = ["backprop"]
seeds = 1
[config]
dataset = "synthetic"
sizes = [6, 5, 3]
epochs = 1
train_size = 32
test_size = 8
batch_size = 16
lr = 0.01
[grid]
steps = [5]
"""
QUIET = ["--no-progress", "--no-figures", "--workers", "1"]


def _config(tmp_path: Path, text: str = SMALL) -> Path:
    path = tmp_path / "small.toml"
    path.write_text(text)
    return path


def _run(tmp_path, out, **overrides):
    sweep = load_sweep_config(_config(tmp_path), overrides)
    return run_sweep(sweep, out, workers=1, log=lambda _: None, figures=False)


def _result_files(out: Path) -> dict:
    return {p.name: p.read_bytes() for p in sorted((out / "runs").glob("*.json"))}


# -- a different non-grid setting into the same folder -------------------------------------
def test_a_different_setting_into_the_same_folder_is_refused_and_keeps_the_results(tmp_path):
    out = tmp_path / "out"
    _run(tmp_path, out)
    before = _result_files(out)
    assert list(before) == ["backprop_seed0_steps=5.json"]
    with pytest.raises(ResultConflictError,
                       match=r"backprop_seed0_steps=5\.json holds the result of a run with a "
                             r"different configuration .*epochs 1 there, 2 now.*would "
                             r"overwrite it\. Use another --out"):
        _run(tmp_path, out, **{"config.epochs": 2})
    assert _result_files(out) == before
    # the same configuration again is the same run: allowed (and reused with resume)
    sweep = load_sweep_config(_config(tmp_path))
    again = run_sweep(sweep, out, workers=1, resume=True, log=lambda _: None, figures=False)
    assert again.skipped and not again.ran
    # a separate folder for the other setting works
    _run(tmp_path, tmp_path / "other", **{"config.epochs": 2})


def test_the_command_line_refuses_the_overwrite_with_exit_status_2(tmp_path, capsys):
    config, out = _config(tmp_path), tmp_path / "out"
    assert cli.main(["sweep", str(config), "--out", str(out), *QUIET]) == 0
    before = _result_files(out)
    capsys.readouterr()
    assert cli.main(["sweep", str(config), "--out", str(out), *QUIET,
                     "--set", "epochs=2"]) == 2
    err = capsys.readouterr().err
    assert "holds the result of a run with a different configuration" in err
    assert "Traceback" not in err
    assert _result_files(out) == before


def test_an_unreadable_result_file_is_not_overwritten(tmp_path):
    out = tmp_path / "out"
    (out / "runs").mkdir(parents=True)
    (out / "runs" / "backprop_seed0_steps=5.json").write_text("{not json")
    with pytest.raises(ResultConflictError, match=r"exists but is not a readable run record"):
        _run(tmp_path, out)
    assert (out / "runs" / "backprop_seed0_steps=5.json").read_text() == "{not json"


# -- two sweeps into one folder ------------------------------------------------------------
def test_a_folder_held_by_a_running_sweep_is_refused(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    owner = {"pid": os.getpid(), "host": socket.gethostname(), "started": "earlier"}
    (out / LOCK_NAME).write_text(json.dumps(owner))
    with pytest.raises(OutputInUseError, match=rf"in use by another sweep: process "
                                               rf"{os.getpid()} on .*use another --out"):
        _run(tmp_path, out)
    assert not (out / "runs").exists()
    assert json.loads((out / LOCK_NAME).read_text()) == owner  # the owner's lock is kept


def test_two_concurrent_sweeps_cannot_share_a_folder(tmp_path):
    out = tmp_path / "out"
    held, release = threading.Event(), threading.Event()

    def first():
        with sweep_lock(out, log=lambda _: None):
            held.set()
            release.wait(30)

    thread = threading.Thread(target=first)
    thread.start()
    try:
        assert held.wait(30)
        with pytest.raises(OutputInUseError, match=r"in use by another sweep"):
            _run(tmp_path, out)
    finally:
        release.set()
        thread.join()
    assert not (out / LOCK_NAME).exists()  # released on exit
    _run(tmp_path, out)  # and free again
    assert not (out / LOCK_NAME).exists()


def test_a_lock_left_by_a_dead_process_is_taken_over_with_a_message(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    pid = int(dead.stdout)
    out = tmp_path / "out"
    out.mkdir()
    (out / LOCK_NAME).write_text(json.dumps({"pid": pid, "host": socket.gethostname(),
                                             "started": "yesterday"}))
    lines = []
    sweep = load_sweep_config(_config(tmp_path))
    run_sweep(sweep, out, workers=1, log=lines.append, figures=False)
    assert any(f"Taking over {out / LOCK_NAME}: left by process {pid}" in line
               and "no longer runs" in line for line in lines)
    assert (out / "runs" / "backprop_seed0_steps=5.json").exists()
    assert not (out / LOCK_NAME).exists()


def test_a_lock_from_another_host_is_not_taken_over(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / LOCK_NAME).write_text(json.dumps({"pid": 1, "host": "elsewhere.example",
                                             "started": "now"}))
    with pytest.raises(OutputInUseError, match=r"process 1 on elsewhere\.example.*If that "
                                               r"process no longer runs, delete"):
        _run(tmp_path, out)


# -- bounded seeds and grids ----------------------------------------------------------------
def _raw(**changes):
    raw = {"name": "t", "conditions": ["backprop"], "seeds": 1,
           "config": {"dataset": "synthetic", "sizes": [6, 5, 3], "epochs": 1}}
    raw.update(changes)
    return raw


def test_a_huge_seed_count_is_refused_at_once():
    start = time.perf_counter()
    with pytest.raises(SweepConfigError, match=rf"seeds = 100,000,000 is more than the limit "
                                               rf"of {MAX_SEEDS:,} seeds.*--allow-large"):
        parse_sweep(_raw(seeds=100_000_000))
    with pytest.raises(SweepConfigError, match=r"seeds = 10,001 is more than the limit"):
        parse_sweep(_raw(seeds=list(range(MAX_SEEDS + 1))))
    assert time.perf_counter() - start < 2
    assert len(parse_sweep(_raw(seeds=MAX_SEEDS)).seeds) == MAX_SEEDS
    assert len(parse_sweep(_raw(seeds=MAX_SEEDS + 1), allow_large=True).seeds) == MAX_SEEDS + 1


def test_a_huge_grid_is_refused_unless_allowed():
    grid = {"lr": [0.001 * (k + 1) for k in range(999)], "batch_size": list(range(1, 1001))}
    start = time.perf_counter()
    with pytest.raises(SweepConfigError, match=r"the sweep has 999,000 runs \(999 lr x 1000 "
                                               r"batch_size x 1 conditions x 1 seeds\), more "
                                               rf"than the limit of {MAX_RUNS:,}"):
        parse_sweep(_raw(grid=grid))
    assert time.perf_counter() - start < 5
    big = _raw(seeds=MAX_SEEDS, grid={"lr": [0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.07,
                                             0.08, 0.09, 0.1, 0.11]})
    with pytest.raises(SweepConfigError, match=r"110,000 runs"):
        parse_sweep(big)
    assert parse_sweep(big, allow_large=True).seeds[-1] == MAX_SEEDS - 1


def test_dry_run_with_huge_seeds_stops_at_once(tmp_path, capsys):
    config = _config(tmp_path, SMALL.replace("seeds = 1", "seeds = 100000000"))
    start = time.perf_counter()
    assert cli.main(["sweep", str(config), "--dry-run", "--out", str(tmp_path / "o")]) == 2
    assert "seeds = 100,000,000 is more than the limit" in capsys.readouterr().err
    assert cli.main(["sweep", str(_config(tmp_path)), "--dry-run", "--seeds", "100000000",
                     "--out", str(tmp_path / "o")]) == 2
    assert "more than the limit" in capsys.readouterr().err
    assert cli.main(["sweep", "fig2", "--dry-run", "--seeds", "100000000",
                     "--out", str(tmp_path / "o")]) == 2
    assert "--seeds 100,000,000 is more than the limit" in capsys.readouterr().err
    assert time.perf_counter() - start < 10
    assert not (tmp_path / "o").exists()


# -- a sweep file is code: --dry-run runs none of it --------------------------------------
def test_dry_run_imports_no_user_model(tmp_path, monkeypatch, capsys):
    marker = tmp_path / "imported.txt"
    module = tmp_path / "mods" / "ardiff_issue23_model.py"
    module.parent.mkdir()
    module.write_text(f"from pathlib import Path\nPath({str(marker)!r}).write_text('ran')\n"
                      "def build(config, seed):\n    raise RuntimeError('not for training')\n")
    monkeypatch.syspath_prepend(str(module.parent))
    monkeypatch.delitem(sys.modules, "ardiff_issue23_model", raising=False)
    config = _config(tmp_path, SMALL.replace('name = "small"',
                                             'name = "small"\nmodel = '
                                             '"ardiff_issue23_model:build"'))
    assert cli.main(["sweep", str(config), "--dry-run", "--out", str(tmp_path / "o")]) == 0
    assert "1 runs" in capsys.readouterr().out
    assert not marker.exists() and "ardiff_issue23_model" not in sys.modules
    load_sweep_config(config)  # a real run checks (imports) the model
    assert marker.read_text() == "ran"
    monkeypatch.delitem(sys.modules, "ardiff_issue23_model", raising=False)
    bad = _config(tmp_path, SMALL.replace('name = "small"', 'name = "small"\nmodel = "x:y:z"'))
    assert cli.main(["sweep", str(bad), "--dry-run", "--out", str(tmp_path / "o")]) == 2
    assert "model must be" in capsys.readouterr().err


# -- the client killed mid-sweep: its lock is taken over, no finished run is lost ----------
KILLED = SMALL.replace('name = "small"', 'name = "killed"').replace(
    "sizes = [6, 5, 3]", "sizes = [20, 30, 3]").replace("epochs = 1", "epochs = 6").replace(
    "train_size = 32", "train_size = 3000").replace("steps = [5]", "steps = [5, 6, 7, 8, 9, 10]")


def _finished(out: Path) -> dict:
    """The run files of finished runs (a serial sweep also keeps the partial record of
    the run in progress, status "interrupted"); files are written by rename, whole."""
    return {name: content for name, content in _result_files(out).items()
            if json.loads(content)["status"] in FINISHED}


def test_a_killed_sweep_leaves_its_lock_and_resume_takes_it_over_losing_nothing(tmp_path,
                                                                                 capsys):
    config, out = _config(tmp_path, KILLED), tmp_path / "out"
    root = Path(__file__).resolve().parent.parent
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(root)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    code = ("import sys; from ardiff.paper.cli import main; "
            "raise SystemExit(main(sys.argv[1:]))")
    proc = subprocess.Popen([sys.executable, "-c", code, "sweep", str(config), "--out",
                             str(out), *QUIET], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while len(_finished(out)) < 2:
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.01)
    finally:
        proc.kill()  # SIGKILL: no finally block, no clean-up in the sweep
        proc.wait()
    finished = _finished(out)
    assert 2 <= len(finished) < 6  # killed mid-sweep
    lock = json.loads((out / LOCK_NAME).read_text())
    assert lock["pid"] == proc.pid  # left behind by the dead process
    capsys.readouterr()
    assert cli.main(["sweep", str(config), "--out", str(out), *QUIET, "--resume"]) == 0
    printed = "".join(capsys.readouterr())
    assert f"Taking over {out / LOCK_NAME}: left by process {proc.pid}" in printed
    after = _finished(out)
    assert len(after) == 6
    assert {name: after[name] for name in finished} == finished  # bitwise, not rerun
    assert not (out / LOCK_NAME).exists()
