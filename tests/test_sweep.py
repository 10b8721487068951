"""Sweeps (issue 15): configuration checks, the serial path, Dask execution bitwise equal
to it, worker faults, failed runs and --resume.  Tiny runs on synthetic data: seconds.

The Dask tests run on loopback only: an embedded `LocalCluster` (the `ardiff sweep`
default) and one module-wide `LocalCluster(n_workers=2, processes=True)` reached by
its address (`--scheduler`), whose `allowed-failures` is 1.
"""

import json
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from ardiff import nn
from ardiff.paper import cli
from ardiff.paper.sweep import run_sweep
from ardiff.paper.sweep_config import SweepConfigError, load_sweep_config, parse_sweep
from ardiff.paper.sweep_runs import synthetic_data

TINY = """\
name = "tiny"
conditions = ["backprop", "ar", "feedback-alignment"]
seeds = 2
[config]
dataset = "synthetic"
sizes = [12, 10, 4]
epochs = 2
train_size = 128
test_size = 32
batch_size = 32
lr = 0.01
# 30 steps: eta 0.1 reaches the one hidden unit (0.9^30 = 0.04 of its initial error
# left, below the ReachWarning's 0.05); the closed form costs D = 1 sweep whatever T
steps = 30
angle_every = 2
[grid]
eta = [0.1, 0.5]
"""


QUIET = ["--no-progress", "--no-figures"]


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _raw(**changes):
    raw = {"name": "t", "conditions": ["ar"], "seeds": [0, 1],
           "config": {"dataset": "synthetic", "sizes": [12, 10, 4], "epochs": 1,
                      "train_size": 64, "test_size": 16, "lr": 0.01}}
    for key, value in changes.items():
        if key.startswith("config_"):
            raw["config"][key[7:]] = value
        else:
            raw[key] = value
    return raw


def _histories(out: Path) -> dict:
    """Run file name -> history without the timings (the only non-deterministic field)."""
    result = {}
    for path in sorted((out / "runs").glob("*.json")):
        run = json.loads(path.read_text())
        assert run["status"] == "complete", (path.name, run.get("error"))
        result[path.name] = {k: v for k, v in run["history"].items() if k != "epoch_time"}
    return result


# ----------------------------------------------------------------------------
# Configurations
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("changes, words", [
    ({"bogus": 1}, ["'bogus'", "Allowed: name"]),
    ({"conditions": ["ar", "nope"]}, ["nope", "conditions", "feedback-alignment"]),
    ({"seeds": 0}, ["seeds", "at least 1"]),
    ({"seeds": [0, 0]}, ["seed twice"]),
    ({"seeds": "3"}, ["seeds must be a count"]),
    ({"config_etaa": 0.1}, ["'etaa'", "[config]", "eta"]),
    ({"config_eta": "big"}, ["config.eta", "finite number", "'big'"]),
    ({"config_eta": 2.5}, ["eta=2.5", "outside (0, 2)"]),
    ({"config_epochs": 1.5}, ["config.epochs", "integer"]),
    ({"config_epochs": 0}, ["epochs must be at least 1"]),
    ({"config_loss": "hinge"}, ["unknown loss 'hinge'", "sse"]),
    ({"config_optimizer": "rmsprop"}, ["unknown optimizer", "adam"]),
    ({"config_schedule": "random"}, ["schedule", "parallel"]),
    ({"config_dataset": "cifar"}, ["unknown dataset 'cifar'", "synthetic"]),
    ({"config_sizes": [12, 0, 4]}, ["config.sizes", "positive integers"]),
    ({"grid": {"eta": []}}, ["grid.eta", "non-empty list"]),
    ({"grid": {"eta": 0.1}}, ["grid.eta", "non-empty list"]),
    ({"grid": {"batch_size": [8, 8]}}, ["grid.batch_size repeats a value"]),
    ({"grid": {"batch_size": [8, 0]}}, ["grid point batch_size=0",
                                        "batch_size must be at least 1"]),
    ({"grid": {"eta": [0.1, 3.0]}}, ["grid point eta=3", "outside (0, 2)"]),
    ({"grid": {"epochs": [1]}}, ["epochs both fixed in [config] and swept in [grid]"]),
    ({"model": "no_such_module_xyz:build"}, ["model", "cannot import module",
                                             "no_such_module_xyz"]),
    ({"model": "ardiff.nn:no_such_function"}, ["has no attribute 'no_such_function'"]),
    ({"model": "cnn-ish"}, ["model must be 'mlp', 'cnn' or 'package.module:function'"]),
    ({"model": "cnn"}, ["sizes must start with 784", "'cnn'"]),
    ({"name": "a b/c"}, ["name must be a file-name-safe string"]),
])
def test_bad_configs_name_the_key(changes, words):
    with pytest.raises(SweepConfigError) as exc:
        parse_sweep(_raw(**changes), source="cfg.toml")
    message = str(exc.value)
    assert message.startswith("cfg.toml: ")
    for word in words:
        assert word in message, (word, message)


def test_bad_files_and_the_command_line(tmp_path, capsys):
    bad = _write(tmp_path / "bad.toml", 'conditions = ["ar"\n')
    with pytest.raises(SweepConfigError, match="bad.toml is not valid TOML"):
        load_sweep_config(bad)
    with pytest.raises(SweepConfigError, match="cannot read"):
        load_sweep_config(tmp_path / "missing.toml")
    with pytest.raises(SweepConfigError, match="YAML configurations are not supported"):
        load_sweep_config(_write(tmp_path / "s.yaml", "seeds: 2\n"))
    wrong = _write(tmp_path / "wrong.toml", TINY.replace("lr = 0.01", "lr = -1.0"))
    assert cli.main(["sweep", str(wrong), "--workers", "1", *QUIET,
                     "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "wrong.toml" in err and "lr must be positive, got -1.0" in err
    assert "Traceback" not in err and not (tmp_path / "o").exists()
    assert cli.main(["sweep", str(wrong), "--set", "nonsense=1"]) == 2
    assert "unknown TrainingConfig field(s) 'nonsense' in [config]" in capsys.readouterr().err


def test_grid_runs_and_their_ids(tmp_path):
    sweep = load_sweep_config(_write(tmp_path / "tiny.toml", TINY))
    runs = sweep.runs()
    assert len(runs) == 2 * 3 * 2  # eta values x conditions x seeds
    assert len({r.run_id for r in runs}) == len({r.name for r in runs}) == len(runs)
    assert runs[0].name == "backprop_seed0_eta=0.1" and runs[0].point == {"eta": 0.1}
    assert runs[0].config["lr"] == 0.01 and runs[0].config["sizes"] == [12, 10, 4]
    # the id follows the full configuration: the same run in another file has the same id,
    # and changing any setting (even one not swept) changes it
    again = load_sweep_config(_write(tmp_path / "again.toml", TINY.replace('"tiny"', '"b"')))
    assert [r.run_id for r in again.runs()] == [r.run_id for r in runs]
    changed = load_sweep_config(_write(tmp_path / "c.toml", TINY.replace("0.01", "0.02")))
    assert not {r.run_id for r in changed.runs()} & {r.run_id for r in runs}
    # --seeds and --set override the file; a --set field leaves the grid
    over = load_sweep_config(tmp_path / "tiny.toml", {"seeds": [4], "config.eta": 0.2})
    assert [r.seed for r in over.runs()] == [4, 4, 4] and over.grid == {}
    assert over.runs()[0].name == "backprop_seed4"  # no grid: the layout of reproduce


def test_named_figure_sweeps_are_what_reproduce_runs():
    from ardiff.paper.sweep_config import figure_sweep

    fig3 = figure_sweep("fig3", seeds=range(5))
    assert len(fig3.runs()) == 7 * 5 and fig3.config["epochs"] == 10
    assert fig3.config["dataset"] == "fashion-mnist" and "train_size" not in fig3.config
    assert [r.seed for r in figure_sweep("fig2").runs()] == [0, 1, 2, 3, 4] * 2
    quick = figure_sweep("fig2", quick=True).runs()[0].config
    assert quick["train_size"] == 6400 and quick["epochs"] == 2


def test_example_configs_are_valid(capsys):
    from ardiff.paper.sweep_config import figure_sweep

    examples = sorted((Path(__file__).parent.parent / "examples" / "sweeps").glob("*.toml"))
    assert examples
    sweeps = {p.stem: load_sweep_config(p) for p in examples}
    # the 5-seed Fig. 3 file is the named sweep with 5 seeds: the same runs, the same ids
    assert [r.run_id for r in sweeps["fig3_5seeds"].runs()] == \
        [r.run_id for r in figure_sweep("fig3", seeds=range(5)).runs()]
    assert cli.main(["sweep", str(examples[0]), "--dry-run"]) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith(
        f"{len(sweeps[examples[0].stem].runs())} runs (")


# ----------------------------------------------------------------------------
# The serial path, and without Dask
# ----------------------------------------------------------------------------


def test_serial_runs_train_what_they_say(tmp_path):
    """A run's history equals ardiff.nn.train called by hand with the same settings."""
    sweep = parse_sweep(_raw(conditions=["ar"], seeds=[1], grid={"steps": [30, 40]}))
    result = run_sweep(sweep, tmp_path, workers=1, log=lambda _: None)
    assert len(result.ran) == 2 and not result.failed
    data = synthetic_data(12, 4, 64, 16)
    for steps in (30, 40):  # both reach the one hidden unit: no ReachWarning
        model = nn.MLP((12, 10, 4), activation="relu", init_std=0.05, seed=1)
        expected = nn.train(model, data["train"], data["test"],
                            method=nn.relaxation(eta=0.1, steps=steps), loss="sse",
                            optimizer=nn.SGD(lr=0.01), epochs=1, batch_size=64, seed=1,
                            angle_every=100)
        run = json.loads((tmp_path / "runs" / f"ar_seed1_steps={steps}.json").read_text())
        assert run["history"]["train_loss"] == expected.train_loss
        assert run["history"]["test_acc"] == expected.test_acc
        assert run["history"]["angles"] == expected.angles
        assert run["method"]["steps"] == steps and run["run_id"] in result.ran
    record = json.loads((tmp_path / "t_sweep.json").read_text())
    assert record["runs_total"] == 2 and record["failed"] == [] and record["missing"] == []
    assert (tmp_path / "t_runs.csv").read_text().splitlines()[0].startswith(
        "run_id,condition,seed,steps,status")
    for png in ("t_accuracy.png", "t_angles.png"):
        assert (tmp_path / png).read_bytes()[:4] == b"\x89PNG"


def test_serial_path_without_dask(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "distributed", None)  # `import distributed` fails
    monkeypatch.setitem(sys.modules, "dask", None)
    config = _write(tmp_path / "tiny.toml", TINY)
    out = tmp_path / "o"
    assert cli.main(["sweep", str(config), "--out", str(out), *QUIET,
                     "--set", "epochs=1"]) == 0
    captured = capsys.readouterr()
    assert "Dask is not installed: running the 12 runs one after another" in captured.err
    assert "pip install 'ardiff[sweep]'" in captured.err
    assert len(_histories(out)) == 12
    assert "12 ran now (this process" in captured.out
    for option in (["--workers", "2"], ["--scheduler", "tcp://127.0.0.1:1"]):
        assert cli.main(["sweep", str(config), "--out", str(out), *QUIET,
                         *option]) == 2
        err = capsys.readouterr().err
        assert "pip install 'ardiff[sweep]'" in err and "--workers 1" in err
        assert "Traceback" not in err
    # --resume: nothing left to run, so no Dask needed even with --workers 2
    assert cli.main(["sweep", str(config), "--out", str(out), *QUIET, "--resume",
                     "--set", "epochs=1", "--workers", "2"]) == 0
    assert "0 ran now" in capsys.readouterr().out


def test_a_raising_run_is_recorded_and_the_sweep_goes_on(tmp_path, capsys):
    config = _write(tmp_path / "s.toml", TINY.replace(
        'name = "tiny"', 'name = "tiny"\nmodel = "sweep_models:raises_for_seed_1"'))
    out = tmp_path / "o"
    assert cli.main(["sweep", str(config), "--workers", "1", "--out", str(out),
                     *QUIET, "--set", "epochs=1"]) == 1
    printed = capsys.readouterr().out
    assert "Failed runs (6; run again with --resume):" in printed
    assert printed.count("ValueError: broken on purpose for seed 1") >= 6
    failed = json.loads((out / "runs" / "ar_seed1_eta=0.5.json").read_text())
    assert failed["status"] == "failed" and "Traceback" in failed["error"]
    assert "raises_for_seed_1" in failed["error"]
    assert len(json.loads((out / "tiny_sweep.json").read_text())["failed"]) == 6
    ok = json.loads((out / "runs" / "ar_seed0_eta=0.5.json").read_text())
    assert ok["status"] == "complete"
    # the summary is over the runs that worked: one seed each
    summary = json.loads((out / "tiny_summary.json").read_text())["conditions"]
    assert summary["ar [eta=0.5]"]["seeds"] == [0]


# ----------------------------------------------------------------------------
# Dask
# ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A LocalCluster(n_workers=2, processes=True) on loopback."""
    pytest.importorskip("distributed")
    from distributed import Client, LocalCluster

    marks = tmp_path_factory.mktemp("marks")
    # read by tests/sweep_models.py in the worker processes, which inherit the environment
    os.environ["ARDIFF_SWEEP_TEST_DIR"] = str(marks)
    os.environ["ARDIFF_SWEEP_TEST_PARENT"] = str(os.getpid())
    local = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                         dashboard_address=":0", silence_logs=logging.CRITICAL)
    client = Client(local)
    client.run(lambda: __import__("ardiff.paper.sweep"))  # import once, not in a test's time
    yield {"address": local.scheduler_address, "client": client, "marks": marks}
    client.close()
    local.close()
    for name in ("ARDIFF_SWEEP_TEST_DIR", "ARDIFF_SWEEP_TEST_PARENT"):
        os.environ.pop(name, None)


@pytest.fixture(scope="module")
def serial_reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("serial")
    config = _write(out / "tiny.toml", TINY)
    assert cli.main(["sweep", str(config), "--workers", "1", "--out", str(out / "o"),
                     *QUIET]) == 0
    return _histories(out / "o")


def test_two_workers_equal_the_serial_path_bitwise(tmp_path, serial_reference, capsys):
    pytest.importorskip("distributed")
    config = _write(tmp_path / "tiny.toml", TINY)
    out = tmp_path / "o"
    # no --scheduler: the embedded LocalCluster, here with 2 worker processes
    assert cli.main(["sweep", str(config), "--workers", "2", "--out", str(out),
                     *QUIET]) == 0
    assert "12 ran now (LocalCluster, 2 worker processes" in capsys.readouterr().out
    assert _histories(out) == serial_reference  # every float equal: same bits
    runs = [json.loads(p.read_text()) for p in (out / "runs").glob("*.json")]
    pids = {int(run["worker"].rsplit(":", 1)[1]) for run in runs}
    assert len(pids) == 2 and os.getpid() not in pids  # both worker processes trained
    threadpoolctl = pytest.importorskip("threadpoolctl")
    if any(p["user_api"] == "blas" for p in threadpoolctl.threadpool_info()):
        assert {run["blas_threads"] for run in runs} == {1}  # pinned in every worker


def test_killed_worker_run_is_retried_and_nothing_is_lost(tmp_path, cluster, serial_reference):
    config = _write(tmp_path / "s.toml", TINY.replace(
        'name = "tiny"', 'name = "tiny"\nmodel = "sweep_models:waits_to_be_killed_once"'))
    pid_file = cluster["marks"] / "pid"
    killed = []

    def killer():  # kills the worker running seed 1's first run, by its pid; bounded wait
        deadline = time.monotonic() + 60
        while not pid_file.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        if pid_file.exists():
            pid = int(pid_file.read_text())
            if pid in cluster["client"].run(os.getpid).values():  # a worker, nothing else
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    out = tmp_path / "o"
    assert cli.main(["sweep", str(config), "--scheduler", cluster["address"],
                     "--out", str(out), *QUIET]) == 0
    thread.join(timeout=70)
    assert len(killed) == 1
    results = _histories(out)  # every run complete: none lost
    assert results == serial_reference
    retried = json.loads((out / "runs" / "ar_seed1_eta=0.1.json").read_text())
    assert not retried["worker"].endswith(f":{killed[0]}")  # rerun by another process


def test_worker_dying_every_time_is_bounded_then_recorded_as_failed(tmp_path, cluster):
    sweep = parse_sweep(_raw(model="sweep_models:kills_its_worker", seeds=[0, 1, 2]))
    result = run_sweep(sweep, tmp_path, scheduler=cluster["address"], retries=1,
                       log=lambda _: None, figures=False)
    assert [r["seed"] for r in result.failed] == [1]
    assert result.failed[0]["error"].startswith("KilledWorker: the worker running it died "
                                                "2 times")  # 1 retry
    assert sorted(r["seed"] for r in result.runs if r["status"] == "complete") == [0, 2]
    assert json.loads((tmp_path / "t_sweep.json").read_text())["failed"][0]["run"] == \
        "ar seed 1"


def test_resume_after_an_interrupted_sweep_runs_only_the_missing_runs(tmp_path, cluster):
    sweep = load_sweep_config(_write(tmp_path / "tiny.toml", TINY))

    class StopAfterTwo:  # a progress bar that is Ctrl-C'd after the second finished run
        def __init__(self, **kwargs):
            self.n = 0

        def update(self, n):
            self.n += n
            if self.n == 2:
                raise KeyboardInterrupt

        def write(self, text):
            pass

        def close(self):
            pass

    out = tmp_path / "o"
    first = run_sweep(sweep, out, scheduler=cluster["address"], progress=StopAfterTwo,
                      log=lambda _: None, figures=False)
    assert first.interrupted and len(first.ran) == 2
    done = {p.name: p.read_bytes() for p in (out / "runs").glob("*.json")}
    assert len(done) == 2
    second = run_sweep(sweep, out, scheduler=cluster["address"], resume=True,
                       log=lambda _: None, figures=False)
    assert sorted(second.skipped) == sorted(first.ran)
    assert len(second.ran) == 10 and not set(second.ran) & set(first.ran)
    for name, content in done.items():  # not run again, not rewritten
        assert (out / "runs" / name).read_bytes() == content
    assert len(_histories(out)) == 12
    # a third call has nothing to do
    third = run_sweep(sweep, out, scheduler=cluster["address"], resume=True,
                      log=lambda _: None, figures=False)
    assert third.ran == [] and len(third.skipped) == 12


def test_reproduce_on_a_cluster_writes_what_it_writes_serially(tmp_path, cluster, capsys):
    tiny = ["--dataset", "fashion-mnist-small", "--no-progress", "--no-download",
            "--train-size", "96", "--test-size", "64", "--epochs", "1", "--steps", "100",
            "--seeds", "2", "--angle-every", "2"]
    assert cli.main(["reproduce", "fig2", *tiny, "--out", str(tmp_path / "a")]) == 0
    assert cli.main(["reproduce", "fig2", *tiny, "--out", str(tmp_path / "b"),
                     "--scheduler", cluster["address"]]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("Wrote")]
    assert lines[0].replace("/a/", "/b/") == lines[1]
    assert _histories(tmp_path / "a") == _histories(tmp_path / "b")
    ar = np.array(json.loads((tmp_path / "b" / "runs" / "ar_seed1.json").read_text())
                  ["history"]["angles"], dtype=float)
    assert ar.shape[0] >= 1 and np.all(np.isfinite(ar))


def test_embedded_workers_keep_glibcs_adaptive_malloc(monkeypatch):
    # Dask's MALLOC_TRIM_THRESHOLD_ turns every 150 KiB activity into an mmap (1.8x the
    # time per training batch): the workers ardiff spawns run without it, keeping the
    # rest of Dask's worker environment (BLAS/OpenMP thread limits).
    dask = pytest.importorskip("dask")
    pytest.importorskip("distributed")
    from ardiff.paper import sweep_dask

    configured = dict(dask.config.get(sweep_dask.NANNY_ENVIRON, {}))
    original = dict(configured)
    seen = {}
    monkeypatch.setattr(sweep_dask, "_run_on_dask", lambda *a, **k: seen.update(
        dask.config.get(sweep_dask.NANNY_ENVIRON)))
    sweep_dask.run_on_dask([], None, None, workers=1, scheduler=None, retries=0, threads=1,
                           command=None, say=print, cluster_options={}, started=None)
    assert "MALLOC_TRIM_THRESHOLD_" not in seen
    configured.pop("MALLOC_TRIM_THRESHOLD_", None)
    assert seen == configured
    assert dict(dask.config.get(sweep_dask.NANNY_ENVIRON, {})) == original  # only inside
