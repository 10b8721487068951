"""The ``ardiff`` command on the bundled data with tiny settings (offline, seconds)."""

import csv
import importlib
import json
import warnings

import pytest

from ardiff import cli

TINY = ["--dataset", "fashion-mnist-small", "--train-size", "96", "--test-size", "64",
        "--no-progress", "--no-download"]


def test_fig2_writes_results_and_reuses_finished_runs(tmp_path, capsys):
    out = tmp_path / "r"
    args = ["reproduce", "fig2", *TINY, "--epochs", "2", "--seeds", "2", "--steps", "5",
            "--angle-every", "2", "--out", str(out)]
    assert cli.main(args) == 0
    summary = json.loads((out / "fig2_summary.json").read_text())
    assert summary["command"].startswith("ardiff reproduce fig2")
    conds = summary["conditions"]
    assert set(conds) == {"backprop", "ar"}
    assert conds["ar"]["seeds"] == [0, 1] and conds["ar"]["epochs"] == 2
    assert 0 <= conds["backprop"]["final_test_acc"] <= 1
    assert conds["backprop"]["final_test_acc_std"] is not None
    rows = list(csv.DictReader(open(out / "fig2_results.csv")))
    assert len(rows) == 2 * 2 * 3  # conditions x seeds x (epoch 0 + 2 epochs)
    run = json.loads((out / "runs" / "ar_seed1.json").read_text())
    assert run["status"] == "complete" and run["method"]["steps"] == 5
    assert run["history"]["angles"]
    for png in ("fig2_accuracy.png", "fig2_angles.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"
    assert "| Backprop |" in (out / "fig2_table.md").read_text()
    capsys.readouterr()
    # a second call with the same settings trains nothing
    assert cli.main(args) == 0
    assert capsys.readouterr().out.count("reusing") == 4


def test_fig3_condition_subset_and_fig1(tmp_path):
    out = tmp_path / "v"
    assert cli.main(["reproduce", "fig3", *TINY, "--epochs", "1", "--steps", "3",
                     "--conditions", "combined,no-derivative", "--out", str(out)]) == 0
    conds = json.loads((out / "fig3_summary.json").read_text())["conditions"]
    assert list(conds) == ["combined", "no-derivative"]
    assert json.loads((out / "runs" / "combined_seed0.json").read_text())["method"]["rules"]

    assert cli.main(["reproduce", "fig1", *TINY, "--steps", "30", "--etas", "0.5,0.05",
                     "--out", str(out)]) == 0
    fig1 = json.loads((out / "fig1.json").read_text())
    curves = fig1["parallel"]["etas"]["0.1"]["mse"]
    assert len(curves) == 3 and all(len(c) == 31 for c in curves)
    assert curves[2][30] < curves[2][0]  # the top hidden layer converges first
    assert sorted(fig1["parallel"]["etas"]) == ["0.05", "0.1", "0.5"]
    assert (out / "fig1_eta_sweep.png").exists() and (out / "fig1_layers.png").exists()
    assert "layer 1" in (out / "fig1_table.md").read_text()


def test_demo_runs_offline(tmp_path, capsys):
    out = tmp_path / "demo"
    assert cli.main(["demo", "--out", str(out), "--epochs", "1", "--train-size", "128",
                     "--test-size", "64", "--no-progress"]) == 0
    summary = json.loads((out / "demo_summary.json").read_text())
    assert set(summary["training"]) == {"backprop", "ar"}
    assert summary["ar_minus_backprop_test_acc"] is not None
    assert (out / "fig1_layers.png").exists() and (out / "demo_accuracy.png").exists()
    printed = capsys.readouterr().out
    assert "layer 1" in printed and "AR (default)" in printed


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
                     "2", "--batch-size", "32", "--conditions", "ar", "--out", str(out)])
    assert code == 130
    assert "Interrupted" in capsys.readouterr().err
    run = json.loads((out / "runs" / "ar_seed0.json").read_text())
    assert run["status"] == "interrupted" and run["history"]["epoch"] == [0, 1]
    summary = json.loads((out / "fig2_summary.json").read_text())
    assert summary["conditions"]["ar"]["complete"] is False


def test_bad_arguments_and_missing_data(tmp_path, capsys):
    for bad in (["reproduce", "fig2", "--seeds", "0"],
                ["reproduce", "fig3", "--conditions", "nonsense"],
                ["reproduce", "fig4"], []):
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
    assert "diverged: 3 of 3" in (out / "fig2_table.md").read_text()


def test_summary_tolerates_runs_without_finite_values():
    """A run saved after diverging has None (JSON for NaN) in its curves and angles."""
    from ardiff.experiments import format_table, summarize

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
