"""The benchmark suite keeps running, and its hand-written baselines are right.

`benchmarks/bench_suite.py --smoke` runs every workload and engine once on small
sizes (engines that are not installed are skipped by the suite itself) and checks
each engine's gradient against the hand-written one before timing anything.  The
baselines those checks rely on are checked here against central finite differences,
which do not depend on any differentiation code.  Nothing here asserts a time.
"""

from __future__ import annotations

import importlib.util
import math
import subprocess
import sys
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"_bench_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


arrays = _load("workloads_arrays")
small = _load("workloads_small")


def _fd(fun, x: np.ndarray, h: float = 1e-6) -> np.ndarray:
    """Central differences of a scalar function of the array `x` (every entry)."""
    grad = np.zeros(x.shape)
    for k in np.ndindex(x.shape):  # x may be a view into the argument: write through it
        keep = x[k]
        x[k] = keep + h
        up = fun()
        x[k] = keep - h
        down = fun()
        x[k] = keep
        grad[k] = (up - down) / (2 * h)
    return grad


def test_lstm_by_hand_matches_finite_differences():
    X, Wx, Wh, b = arrays.lstm_problem(steps=3, batch=2, inputs=3, hidden=4)
    grads = arrays.lstm_by_hand(X, Wx, Wh, b)
    for mine, param in zip(grads, (Wx, Wh, b)):
        fd = _fd(lambda: arrays.lstm_loss_by_hand(X, Wx, Wh, b), param)
        np.testing.assert_allclose(mine, fd, rtol=1e-6, atol=1e-8)


def test_rnn_and_mlp_by_hand_match_finite_differences():
    X, Wx, Wh = arrays.rnn_problem(steps=3)
    X = X[:, :2, :]
    gWx, _ = arrays.rnn_by_hand(X, Wx, Wh)
    sub = Wx[:3, :5]  # a view: finite differences on a few entries keep the test short
    fd = _fd(lambda: float(arrays.rnn_fun(np, X)(Wx, Wh)), sub)
    np.testing.assert_allclose(gWx[:3, :5], fd, rtol=1e-6, atol=1e-8)

    params, X, Y = arrays.mlp_problem(batch=3, sizes=(5, 4, 3, 2))
    grads = arrays.mlp_by_hand(params, X, Y)
    loss = arrays.mlp_loss(np)
    for mine, param in zip(grads, params):
        fd = _fd(lambda: float(loss(params, X, Y)), param)
        np.testing.assert_allclose(mine, fd, rtol=1e-6, atol=1e-8)


def test_scalar_baselines_match_finite_differences():
    links = 30
    fd = (small.chain_fun(math, links)(0.5 + 1e-6)
          - small.chain_fun(math, links)(0.5 - 1e-6)) / 2e-6
    assert math.isclose(small.chain_by_hand(0.5, links), fd, rel_tol=1e-7)

    spec = small.wide_dag_spec(n_nodes=120)
    xs = np.random.default_rng(1).uniform(-0.5, 0.5, 20)
    f = small.wide_fun(math, spec)
    fd = _fd(lambda: f([float(v) for v in xs]), xs)
    np.testing.assert_allclose(small.wide_by_hand(spec, [float(v) for v in xs]), fd,
                               rtol=1e-6, atol=1e-8)


def test_suite_smoke_runs_every_workload(tmp_path):
    """`--smoke` runs every workload (gradients checked inside), prints, saves and plots."""
    done = subprocess.run(
        [sys.executable, str(BENCH / "bench_suite.py"), "--smoke", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    text = (tmp_path / "suite.txt").read_text()
    for name in ("mlp", "mlp_f32", "rnn", "lstm", "chain", "wide_scalar", "tiny_vector",
                 "tiny_logsumexp", "tiny_sigmoid", "sinusoid", "tiny_gan", "paper", "scaling",
                 "convnet", "define_gradient"):
        assert f"\n{name} " in text, name
    assert "peak memory (tracemalloc)" in text
    assert (tmp_path / "suite.png").stat().st_size > 1000


def test_suite_processes_mode_reports_every_process(tmp_path):
    """`--processes N` runs each workload in N fresh processes and saves their ratios."""
    done = subprocess.run(
        [sys.executable, str(BENCH / "bench_suite.py"), "--smoke", "--processes", "2",
         "--only", "mlp,define_gradient", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    rows = [line.split() for line in (tmp_path / "suite_processes.txt").read_text()
            .splitlines() if " median " in line]
    kinds = set()
    for row in rows:  # [workload] engine kind, two per-process values, median, their median
        at = next(i for i, token in enumerate(row) if token in ("ms", "ratios", "faults"))
        kinds.add((row[at - 1], row[at]))
        assert row[at + 3] == "median" and len(row) == at + 5
        values = [float(v) for v in row[at + 1:at + 3]]
        assert min(values) <= float(row[-1]) <= max(values)
    expected = {("ardiff", "faults"), ("ardiff", "ms")}
    if importlib.util.find_spec("autograd") is not None:  # not in CI's NumPy 1.26 venv
        expected.add(("autograd", "ratios"))
    assert expected <= kinds


def test_example_workloads_match_their_references():
    """The convnet's and define_gradient's hand-written parts against finite differences."""
    examples = _load("workloads_examples")
    y = np.random.default_rng(3).standard_normal(6)

    def f():
        z = y ** 2
        return float(np.max(z) + np.log(np.sum(np.exp(z - np.max(z)))))
    np.testing.assert_allclose(examples.define_gradient_by_hand(y), _fd(f, y), rtol=1e-6,
                               atol=1e-8)
    layout, n = examples.convnet_layout()
    W, X, T = examples.convnet_problem(batch=2)
    assert W.shape == (n,) and X.shape == (2, 1, 28, 28) and T.sum() == 2
    shapes = [piece[2] for _, _, pieces in layout for piece in pieces]
    assert shapes[:4] == [(1, 6, 5, 5), (1, 6, 1, 1), (6, 16, 5, 5), (1, 16, 1, 1)]
    assert shapes[4] == (16 * 4 * 4, 120) and shapes[-2:] == [(84, 10), (10,)]


def test_compile_checks_benchmark_runs():
    """benchmarks/bench_compile_checks.py times every compiled workload both ways."""
    done = subprocess.run(
        [sys.executable, str(BENCH / "bench_compile_checks.py"), "--repeats", "1"],
        capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    rows = [line.split() for line in done.stdout.splitlines()[2:]]
    assert [row[0] for row in rows] == ["mlp", "mlp_f32", "rnn", "lstm", "chain", "wide_scalar"]
    assert all(float(row[-1]) > 0 for row in rows)


def test_sparse_benchmark_runs():
    """benchmarks/bench_sparse.py on a small system: both timings, the ratio, the peak."""
    done = subprocess.run(
        [sys.executable, str(BENCH / "bench_sparse.py"), "--n", "2000", "--repeats", "1"],
        capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "forward solves" in done.stdout and "peak memory" in done.stdout
