"""Deep networks trained by AR (issue 25, point 4): ardiff.nn.ResidualMLP and
`ardiff reproduce depth`.

Truth: the network written out in NumPy, central finite differences, backprop, and the
exact binomial sums of tests/reach_helpers.py.
"""

import json
import warnings

import numpy as np
import pytest
from reach_helpers import tail

import ardiff
from ardiff import nn
from ardiff.paper import cli
from ardiff.solvers import compile_plan, relative_error, unit_plan


def test_residual_mlp_forward_is_h_plus_tanh_of_h_w():
    model = nn.ResidualMLP(6, 5, 3, 2, seed=4, init_std=0.3)
    x = np.random.default_rng(0).random((4, 6))
    W, b = model.weights, model.biases
    h = np.tanh(x @ W[0] + b[0])
    for k in (1, 2, 3):
        h = h + np.tanh(h @ W[k] + b[k])
    np.testing.assert_allclose(model.forward(x), h @ W[4] + b[4], rtol=1e-14)
    graph, out, params, layers = model.trace(x)
    assert len(layers) == 5 and len(params) == 10
    np.testing.assert_allclose(ardiff.graph.unwrap(out), model.forward(x), rtol=1e-14)
    assert model.parameter_names()[:3] == ["W1", "b1", "W2"]
    # the paper's layer units: per block the tanh branch and the merge, after the stem
    assert unit_plan(compile_plan(graph, out, params), "layers").max_depth == 2 * 3 + 1


def test_residual_mlp_gradients_match_finite_differences():
    model = nn.ResidualMLP(4, 3, 2, 2, seed=1, init_std=0.5)
    x = np.random.default_rng(2).random((3, 4))
    t = np.eye(2)[[0, 1, 1]]
    grads = nn.batch_gradients(model, x, t, method=nn.backprop_method()).grads
    eps = 1e-6
    for p, g in zip(model.parameters(), grads):
        flat = p.reshape(-1)
        for j in range(0, flat.size, 3):
            keep = flat[j]
            flat[j] = keep + eps
            up = nn.get_loss("sse")(model.forward(x), t)
            flat[j] = keep - eps
            down = nn.get_loss("sse")(model.forward(x), t)
            flat[j] = keep
            assert abs((up - down) / (2 * eps) - np.ravel(g)[j]) < 1e-7


def test_paper_protocol_does_not_reach_a_deep_residual_mlp_and_reach_does():
    model = nn.ResidualMLP(8, 6, 8, 3, seed=0, init_std=0.3)
    x = np.random.default_rng(1).random((5, 8))
    t = np.eye(3)[[0, 1, 2, 0, 1]]
    exact = nn.batch_gradients(model, x, t, method=nn.backprop_method()).grads
    D = 17
    with pytest.warns(ardiff.ReachWarning, match=f"depth {D} .* {tail(100, D, 0.1):.3g} "):
        paper = nn.batch_gradients(model, x, t).grads
    assert relative_error(paper[0], exact[0]) > 0.1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        reach = nn.batch_gradients(model, x, t, method=nn.relaxation(
            steps="reach", reach_tol=1e-3)).grads
    assert max(relative_error(a, b) for a, b in zip(reach, exact)) < 0.05


def test_reproduce_depth_quick_runs_and_saves_every_condition(tmp_path, capsys):
    out = tmp_path / "d"
    code = cli.main(["reproduce", "depth", "--quick", "--dataset", "fashion-mnist-small",
                     "--no-download", "--no-progress", "--train-size", "64", "--test-size",
                     "32", "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "depth 4: AR, T by reach - backprop" in printed
    summary = json.loads((out / "depth_summary.json").read_text())
    rows = {(r["depth"], r["condition"]): r for r in summary["rows"]}
    assert set(rows) == {(d, c) for d in (2, 4) for c in ("backprop", "ar", "ar-reach")}
    for depth in (2, 4):
        D = 2 * depth + 1
        assert rows[depth, "ar"]["units_depth"] == D and rows[depth, "ar"]["steps"] == 100
        T = rows[depth, "ar-reach"]["steps"]
        assert tail(T, D, 0.1) <= 1e-3 < tail(T - 1, D, 0.1)  # the smallest such T
        assert rows[depth, "ar"]["remaining_fraction"] == pytest.approx(tail(100, D, 0.1))
    run = json.loads((out / "runs" / "ar_depth4_seed0.json").read_text())
    assert run["reach_warning"].startswith("max_iter=100 parallel steps") and \
        run["reach_warnings"] >= 1  # T = 100 does not reach D = 9: kept in the run
    assert json.loads((out / "runs" / "ar-reach_depth4_seed0.json").read_text())[
        "reach_warning"] is None
    assert (out / "depth_accuracy.png").read_bytes()[:4] == b"\x89PNG"
    # finished runs are reused
    assert cli.main(["reproduce", "depth", "--quick", "--dataset", "fashion-mnist-small",
                     "--no-download", "--no-progress", "--train-size", "64", "--test-size",
                     "32", "--out", str(out), "--conditions", "backprop"]) == 0


def test_reproduce_depth_help_names_the_times_and_refuses_other_conditions(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["reproduce", "depth", "--help"])
    assert exc.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    spec = cli.FIGURES["depth"]
    assert spec.time in text and spec.quick_time in text and "--depths" in text
    with pytest.raises(SystemExit) as exc:
        cli.main(["reproduce", "depth", "--conditions", "feedback-alignment"])
    assert exc.value.code == 2
