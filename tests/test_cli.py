"""The `ardiff` command on the bundled data with tiny settings (offline, seconds)."""

import csv
import importlib
import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from ardiff.paper import cli

OFFLINE = ["--dataset", "fashion-mnist-small", "--no-progress", "--no-download"]
# Training runs use the paper's 100 relaxation steps: 50 or fewer leave the paper MLP's
# first layer more than 0.05 of its initial error and give a ReachWarning (issue 25); the
# closed form costs D = 3 sweeps whatever the number of steps
TINY = [*OFFLINE, "--train-size", "96", "--test-size", "64"]
TINY_DEMO = ["--epochs", "1", "--train-size", "128", "--test-size", "64", "--no-progress"]


@pytest.fixture
def home(tmp_path, monkeypatch):
    """An empty current directory and user cache, no $ARDIFF_DATA, no system datasets."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("ARDIFF_DATA", raising=False)
    monkeypatch.setattr(importlib.import_module("ardiff.paper.data"), "_SYSTEM_DIRS",
                        (tmp_path / "system",))
    return tmp_path


def _files_under(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def _wrote_line(text: str) -> str:
    return [line for line in text.splitlines() if line.startswith("Wrote ")][-1]


def test_fig2_writes_results_and_reuses_finished_runs(tmp_path, capsys):
    out = tmp_path / "r"
    args = ["reproduce", "fig2", *TINY, "--epochs", "2", "--seeds", "2", "--steps", "100",
            "--angle-every", "2", "--out", str(out)]
    assert cli.main(args) == 0
    summary = json.loads((out / "fig2_summary.json").read_text())
    assert summary["command"].startswith("ardiff reproduce fig2")
    conds = summary["conditions"]
    assert set(conds) == {"backprop", "ar"}
    assert conds["ar"]["seeds"] == [0, 1] and conds["ar"]["epochs"] == 2
    assert 0 <= conds["backprop"]["final_test_acc"] <= 1
    assert conds["backprop"]["final_test_acc_std"] is not None
    with open(out / "fig2_results.csv") as file:
        rows = list(csv.DictReader(file))
    assert len(rows) == 2 * 2 * 3  # conditions x seeds x (epoch 0 + 2 epochs)
    run = json.loads((out / "runs" / "ar_seed1.json").read_text())
    assert run["status"] == "complete" and run["method"]["steps"] == 100
    assert run["history"]["angles"]
    for png in ("fig2_accuracy.png", "fig2_angles.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"
    assert "| Backprop |" in (out / "fig2_table.md").read_text()
    capsys.readouterr()
    # a second call with the same settings trains nothing
    assert cli.main(args) == 0
    assert capsys.readouterr().out.count("reusing") == 4


def test_fig3_condition_subset_and_fig1(tmp_path, capsys):
    out = tmp_path / "v"
    assert cli.main(["reproduce", "fig3", *TINY, "--epochs", "1", "--steps", "100",
                     "--conditions", "combined,no-derivative", "--out", str(out)]) == 0
    conds = json.loads((out / "fig3_summary.json").read_text())["conditions"]
    assert list(conds) == ["combined", "no-derivative"]
    assert json.loads((out / "runs" / "combined_seed0.json").read_text())["method"]["rules"]

    assert cli.main(["reproduce", "fig1", *OFFLINE, "--steps", "30", "--etas", "0.5,0.05",
                     "--out", str(out)]) == 0
    fig1 = json.loads((out / "fig1.json").read_text())
    curves = fig1["parallel"]["etas"]["0.1"]["mse"]
    assert len(curves) == 3 and all(len(c) == 31 for c in curves)
    assert curves[2][30] < curves[2][0]  # the top hidden layer converges first
    assert sorted(fig1["parallel"]["etas"]) == ["0.05", "0.1", "0.5"]
    assert (out / "fig1_eta_sweep.png").exists() and (out / "fig1_layers.png").exists()
    assert "layer 1" in (out / "fig1_table.md").read_text()
    # it says where it wrote its files, and names each of them
    line = _wrote_line(capsys.readouterr().out)
    assert line.startswith(f"Wrote 4 files to {out}/: ")
    for name in ("fig1.json", "fig1_table.md", "fig1_layers.png", "fig1_eta_sweep.png"):
        assert name in line


def test_demo_runs_offline_and_lists_every_file(tmp_path, capsys):
    out = tmp_path / "demo"
    assert cli.main(["demo", "--out", str(out), *TINY_DEMO]) == 0
    summary = json.loads((out / "demo_summary.json").read_text())
    assert set(summary["training"]) == {"backprop", "ar"}
    assert summary["ar_minus_backprop_test_acc"] is not None
    assert (out / "fig1_layers.png").exists() and (out / "demo_accuracy.png").exists()
    printed = capsys.readouterr().out
    assert "layer 1" in printed and "AR (default)" in printed
    # the eta sweep runs every eta of the paper, so its figure has one line each
    fig1 = json.loads((out / "fig1.json").read_text())
    assert len(fig1["parallel"]["etas"]) == 7
    # the last line names every file the demo wrote, and there are 11
    last = printed.rstrip().splitlines()[-1]
    assert last.startswith(f"Wrote 11 files to {out}/ in ")
    written = _files_under(out)
    assert len(written) == 11
    assert set(last.split(": ", 1)[1].split(", ")) == written


def test_demo_default_out_dir_is_not_the_current_directory(home, capsys):
    assert cli.main(["demo", *TINY_DEMO]) == 0
    assert list(Path.cwd().iterdir()) == []  # nothing written where it was run
    out = home / "cache" / "ardiff" / "demo"
    assert cli.default_demo_dir() == out
    assert len(_files_under(out)) == 11
    assert f"Output: {out}/" in capsys.readouterr().out


def test_missing_matplotlib_is_reported_before_anything_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` now fails
    out = tmp_path / "demo"
    assert cli.main(["demo", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "ardiff demo needs packages that are not installed: matplotlib" in err
    assert "pip install 'ardiff[cli]'" in err
    assert "Traceback" not in err
    assert not out.exists()
    assert cli.main(["reproduce", "fig1", *OFFLINE, "--out", str(out)]) == 2
    assert "ardiff reproduce fig1 needs" in capsys.readouterr().err


def test_tqdm_is_needed_only_with_progress_bars(monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm", None)
    parser = cli.build_parser()
    missing = cli.missing_dependencies(parser.parse_args(["demo"]))
    assert len(missing) == 1 and missing[0].startswith("tqdm") and "--no-progress" in missing[0]
    assert cli.missing_dependencies(parser.parse_args(["demo", "--no-progress"])) == []


def test_each_figure_has_its_own_help(capsys):
    helps = {}
    for figure in ("fig1", "fig2", "fig3"):
        with pytest.raises(SystemExit) as exc:
            cli.main(["reproduce", figure, "--help"])
        assert exc.value.code == 0
        helps[figure] = " ".join(capsys.readouterr().out.split())  # undo the line wrapping
    for figure, text in helps.items():
        spec = cli.FIGURES[figure]
        assert f"usage: ardiff reproduce {figure}" in text
        assert "--quick" in text and spec.time in text and spec.quick_time in text
        assert "--dataset" in text and "--data-dir" in text and "--no-download" in text
    for option in ("--etas", "--seed "):
        assert option in helps["fig1"]
        assert option not in helps["fig2"] and option not in helps["fig3"]
    for option in ("--seeds", "--epochs", "--conditions", "--lr", "--batch-size",
                   "--train-size", "--angle-every", "--schedule"):
        assert option not in helps["fig1"]
        assert option in helps["fig2"] and option in helps["fig3"]
    with pytest.raises(SystemExit):
        cli.main(["reproduce", "--help"])
    overview = " ".join(capsys.readouterr().out.split())
    for spec in cli.FIGURES.values():
        assert spec.time in overview and spec.quick_time in overview
    with pytest.raises(SystemExit):
        cli.main(["demo", "--help"])
    demo = " ".join(capsys.readouterr().out.split())
    assert cli.DEMO_TIME in demo and "--out" in demo and "--dataset" not in demo
    with pytest.raises(SystemExit) as exc:  # fig1 does not take the training options
        cli.main(["reproduce", "fig1", "--epochs", "3"])
    assert exc.value.code == 2


def test_quick_mode_defaults_and_explicit_options_win(home, capsys):
    assert cli.main(["reproduce", "fig2", "--quick", *OFFLINE, "--epochs", "1", "--steps", "100",
                     "--train-size", "64", "--test-size", "32", "--angle-every", "0"]) == 0
    out = Path.cwd() / "ardiff-results" / "fashion-mnist-small-quick"
    run = json.loads((out / "runs" / "ar_seed0.json").read_text())
    assert run["config"]["epochs"] == 1 and run["config"]["train_size"] == 64
    assert sorted(p.name for p in (out / "runs").iterdir()) == ["ar_seed0.json",
                                                                "backprop_seed0.json"]
    assert _wrote_line(capsys.readouterr().out).startswith(
        "Wrote 6 files to ardiff-results/fashion-mnist-small-quick/: ")
    args = cli.build_parser().parse_args(["reproduce", "fig1", "--quick"])
    assert cli._option(args, "etas") == cli.FIGURES["fig1"].quick["etas"]
    args = cli.build_parser().parse_args(["reproduce", "fig3"])
    assert cli._option(args, "conditions") == list(cli.CONDITIONS)


def test_missing_data_message_names_the_command_options(home, capsys):
    code = cli.main(["reproduce", "fig1", "--dataset", "fashion-mnist", "--no-download",
                     "--no-progress", "--data-dir", str(home / "nowhere")])
    assert code == 2
    err = capsys.readouterr().err
    assert "--data-dir DIR" in err and "--dataset fashion-mnist-small" in err
    assert "(--no-download)" in err and f"{home / 'nowhere'} (--data-dir)" in err
    assert "data_dir" not in err and "download=False" not in err and "load(" not in err
    assert "Traceback" not in err


def test_missing_pooch_is_reported_when_a_download_is_needed(home, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "pooch", None)  # no pooch, hence no download either
    assert cli.main(["reproduce", "fig1", "--dataset", "mnist", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "needs pooch, which is not installed: pip install 'ardiff[cli]'" in err
    assert "Traceback" not in err


def test_blas_threads_through_threadpoolctl():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    assert cli.limit_blas_threads(1) is True
    blas = [p for p in threadpoolctl.threadpool_info() if p["user_api"] == "blas"]
    assert blas and all(p["num_threads"] == 1 for p in blas)


def test_engine_never_imports_the_paper_package():
    # every module of ardiff outside ardiff.paper, found
    # on disk: pkgutil.walk_packages would import ardiff.paper itself to walk into it
    code = ("import sys, importlib, pathlib, ardiff\n"
            "root = pathlib.Path(ardiff.__file__).parent\n"
            "for f in sorted(root.rglob('*.py')):\n"
            "    parts = f.relative_to(root.parent).with_suffix('').parts\n"
            "    name = '.'.join(parts[:-1] if parts[-1] == '__init__' else parts)\n"
            "    if not name.startswith('ardiff.paper'):\n"
            "        importlib.import_module(name)\n"
            "print(sorted(n for n in sys.modules if n.startswith('ardiff.paper')))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_ctrl_c_keeps_results_so_far(tmp_path, monkeypatch, capsys):
    train_module = importlib.import_module("ardiff.nn.train")
    real = train_module.batch_gradients
    calls = {"n": 0}

    def interrupt_in_second_epoch(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3 + 2:  # 96 images / batch 32 = 3 batches per epoch
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(train_module, "batch_gradients", interrupt_in_second_epoch)
    out = tmp_path / "int"
    code = cli.main(["reproduce", "fig2", *TINY, "--epochs", "3", "--seeds", "1", "--steps",
                     "100", "--batch-size", "32", "--conditions", "ar", "--out", str(out)])
    assert code == 130
    assert "Interrupted" in capsys.readouterr().err
    run = json.loads((out / "runs" / "ar_seed0.json").read_text())
    assert run["status"] == "interrupted" and run["history"]["epoch"] == [0, 1]
    summary = json.loads((out / "fig2_summary.json").read_text())
    assert summary["conditions"]["ar"]["complete"] is False


def test_bad_arguments_and_missing_data(tmp_path, capsys):
    for bad in (["reproduce", "fig2", "--seeds", "0"],
                ["reproduce", "fig3", "--conditions", "nonsense"],
                ["reproduce", "fig1", "--etas", "3"],
                ["reproduce", "fig4"], ["reproduce"], []):
        with pytest.raises(SystemExit) as exc:
            cli.main(bad)
        assert exc.value.code == 2
    monkeypatch_env = {"ARDIFF_DATA": str(tmp_path), "XDG_CACHE_HOME": str(tmp_path)}
    with pytest.MonkeyPatch.context() as mp:
        for k, v in monkeypatch_env.items():
            mp.setenv(k, v)
        code = cli.main(["reproduce", "fig2", "--dataset", "mnist", "--data-dir",
                         str(tmp_path), "--no-download", "--no-progress"])
    assert code == 2
    assert "mnist" in capsys.readouterr().err


def test_diverging_run_is_marked_and_stops(tmp_path):
    out = tmp_path / "div"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        assert cli.main(["reproduce", "fig2", *TINY, "--epochs", "40", "--lr", "1e4",
                         "--conditions", "backprop", "--out", str(out)]) == 0
    run = json.loads((out / "runs" / "backprop_seed0.json").read_text())
    assert run["status"] == "diverged" and len(run["history"]["epoch"]) < 41
    # fig2's default is the paper's 5 seeds
    assert "diverged: 5 of 5" in (out / "fig2_table.md").read_text()


def test_summary_tolerates_runs_without_finite_values():
    """A run saved after diverging has None (JSON for NaN) in its curves and angles."""
    from ardiff.paper import format_table, summarize

    def run(seed, acc, angle, loss):
        h = {"epoch": [0, 1], "train_acc": [0.1, acc], "test_acc": [0.1, acc],
             "train_loss": [1.0, loss], "test_loss": [1.0, loss], "epoch_time": [0, 2.0],
             "angles": [[0, angle, 1.0], [1, angle, 2.0]]}
        return {"condition": "ar", "seed": seed, "status": "complete", "label": "AR",
                "batches_per_epoch": 2, "history": h}

    summary = summarize([run(0, 0.8, 3.0, 0.5), run(1, 0.1, None, None)], ["ar"])["ar"]
    assert summary["diverged"] == 1
    assert summary["angle_last_epoch_deg"] == [3.0, 1.5]  # both batches are in epoch 1
    assert summary["final_test_acc"] == pytest.approx(0.45)
    assert "(diverged: 1 of 2)" in format_table({"ar": summary})


# -- the first run works offline (issue 24, point 3) -----------------------------------------
def _no_download(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a --quick run without --dataset must not try to download")

    monkeypatch.setattr(importlib.import_module("ardiff.paper.data"), "_download", refuse)


def test_quick_run_falls_back_to_the_bundled_subset_offline(home, monkeypatch, capsys):
    _no_download(monkeypatch)
    assert cli.main(["reproduce", "fig1", "--quick", "--no-progress", "--steps", "3"]) == 0
    out = capsys.readouterr().out
    notes = [line for line in out.splitlines() if "bundled subset" in line]
    assert notes == ["ardiff: fashion-mnist is not on this machine, so --quick uses the bundled "
                     "subset fashion-mnist-small (--dataset fashion-mnist downloads the full "
                     "data)"]
    assert (Path.cwd() / "ardiff-results" / "fashion-mnist-small-quick" / "fig1.json").is_file()


def test_quick_run_uses_the_full_data_when_it_is_here(home, monkeypatch, capsys):
    from ardiff.paper.data import write_idx

    _no_download(monkeypatch)
    data_dir = home / "idx"
    rng = np.random.default_rng(0)
    for stem, n in (("train", 80), ("t10k", 40)):
        write_idx(data_dir / f"{stem}-images-idx3-ubyte",
                  rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        write_idx(data_dir / f"{stem}-labels-idx1-ubyte",
                  rng.integers(0, 10, n, dtype=np.uint8))
    assert cli.main(["reproduce", "fig1", "--quick", "--no-progress", "--steps", "3",
                     "--data-dir", str(data_dir)]) == 0
    assert "bundled subset" not in capsys.readouterr().out
    assert (Path.cwd() / "ardiff-results" / "fashion-mnist-quick" / "fig1.json").is_file()


def test_full_run_without_dataset_still_means_fashion_mnist(home, capsys):
    assert cli.main(["reproduce", "fig1", "--no-download", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "fashion-mnist" in err and "--dataset fashion-mnist-small" in err


class _Captured(Exception):
    """Raised by the stand-in of run_sweep: the sweep a command would run."""


@pytest.mark.parametrize("quick", [False, True], ids=["full", "quick"])
@pytest.mark.parametrize("figure", ["fig2", "fig3"])
def test_sweep_and_reproduce_run_the_same_runs(figure, quick, home, monkeypatch, capsys):
    """`ardiff sweep FIG` and `ardiff reproduce FIG` (full and --quick) run the same runs:
    the same run ids, which hash condition, seed and every training setting.  Fig. 2's
    seeds are the five that README and docs/reproduce.md state (they had drifted: the
    sweep ran three)."""
    from ardiff.paper import sweep_cli

    def capture(sweep, out, **kwargs):
        raise _Captured(sorted(spec.run_id for spec in sweep.runs()))

    monkeypatch.setattr(sweep_cli, "run_sweep", capture)
    monkeypatch.setattr(cli, "load_data", lambda *args, **kwargs: None)
    flags = ["--quick"] * quick + ["--no-progress"]
    runs = {}
    for command in (["sweep", figure], ["reproduce", figure, "--dataset", "fashion-mnist"]):
        with pytest.raises(_Captured) as caught:
            cli.main(command + flags)
        runs[command[0]] = caught.value.args[0]
    assert runs["sweep"] == runs["reproduce"]
    capsys.readouterr()
    seeds = {"fig2": (5, 1), "fig3": (1, 1)}[figure][quick]
    conditions = 2 if figure == "fig2" else 7
    assert len(runs["sweep"]) == seeds * conditions
    readme = (Path(__file__).parent.parent / "docs" / "reproduce.md").read_text()
    if figure == "fig2" and not quick:
        assert "5 seeds" in readme
