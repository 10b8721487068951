"""Benchmark suite: ardiff against HIPS autograd, PyTorch eager and hand-written NumPy.

Run:  python benchmarks/bench_suite.py [--repeats 15] [--only mlp,chain] [--fixed-heap]

Each workload times one full gradient call (forward included) per engine, repeats
the engines interleaved (so machine noise hits all of them alike) and prints the
median time of each and the ratio ardiff/other measured in the same run.  Engines
that are not installed are skipped with a note (``pip install -e '.[bench]'``).
Peak memory is the tracemalloc peak of one ardiff gradient call (NumPy buffers
included; PyTorch allocations are invisible to tracemalloc and not reported).
"""

from __future__ import annotations

import os

# One BLAS thread for every engine (torch is set to one thread below): on a shared 2-core
# machine multi-threaded BLAS makes medians meaningless, and the comparison stays fair.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402

import numpy as np  # noqa: E402

import ardiff  # noqa: E402
import ardiff.numpy as anp  # noqa: E402

try:
    import autograd
    import autograd.numpy as agnp
except ImportError:  # pragma: no cover - optional
    autograd = None
try:
    import torch
    torch.set_num_threads(1)
except ImportError:  # pragma: no cover - optional
    torch = None

SIZES = (784, 300, 300, 100, 10)


# -- workloads: each returns {engine: zero-argument callable computing the gradient} ----------
def mlp_params(rng, dtype=np.float64):
    params = []
    for n, m in zip(SIZES[:-1], SIZES[1:]):
        params += [rng.normal(0.0, 0.05, (n, m)).astype(dtype), np.zeros(m, dtype=dtype)]
    return params


def mlp_loss(np_mod):
    def loss(params, X, Y):
        h = X
        for k in range(0, len(params), 2):
            h = h @ params[k] + params[k + 1]
            if k < len(params) - 2:
                h = torch.relu(h) if np_mod is torch else np_mod.maximum(h, 0.0)
        return np_mod.sum((h - Y) ** 2)
    return loss


def mlp_by_hand(params, X, Y):
    """Hand-written forward and backward pass of the MLP (the NumPy baseline)."""
    hs, pre, h = [X], [], X
    for k in range(0, len(params), 2):
        a = h @ params[k] + params[k + 1]
        pre.append(a)
        h = np.maximum(a, 0.0) if k < len(params) - 2 else a
        hs.append(h)
    g = 2.0 * (h - Y)
    grads = [None] * len(params)
    for k in range(len(params) - 2, -1, -2):
        layer = k // 2
        if k < len(params) - 2:
            g = g * (pre[layer] > 0)
        grads[k] = hs[layer].T @ g
        grads[k + 1] = g.sum(0)
        if k > 0:
            g = g @ params[k].T
    return grads


def workload_mlp(dtype=np.float64):
    rng = np.random.default_rng(0)
    params = mlp_params(rng, dtype)
    X = rng.random((64, 784)).astype(dtype)
    Y = np.eye(10, dtype=dtype)[rng.integers(0, 10, 64)]
    engines = {"ardiff": lambda: ardiff.grad(mlp_loss(anp))(params, X, Y),
               "numpy": lambda: mlp_by_hand(params, X, Y)}
    if autograd:
        engines["autograd"] = lambda: autograd.grad(mlp_loss(agnp))(params, X, Y)
    if torch:
        tp = [torch.tensor(p, requires_grad=True) for p in params]
        tX, tY = torch.tensor(X), torch.tensor(Y)

        def torch_grad():
            loss = mlp_loss(torch)(tp, tX, tY)
            return torch.autograd.grad(loss, tp)
        engines["torch"] = torch_grad
    check = ardiff.grad(mlp_loss(anp))(params, X, Y)
    for a, b in zip(check, mlp_by_hand(params, X, Y)):
        assert np.max(np.abs(a - b)) <= 1e-4 * max(np.max(np.abs(b)), 1e-30) if \
            dtype == np.float32 else np.allclose(a, b, rtol=1e-10, atol=1e-12)
    return engines


def chain_fun(np_mod):
    def f(x):
        for _ in range(1000):
            x = np_mod.sin(x) * 1.01 + 0.1 * x
        return x
    return f


def workload_chain():
    compiled = ardiff.compile(chain_fun(anp))
    engines = {"ardiff": lambda: ardiff.grad(chain_fun(anp))(0.5),
               "compiled": lambda: compiled(0.5)}
    if autograd:
        engines["autograd"] = lambda: autograd.grad(chain_fun(agnp))(0.5)
    if torch:
        def torch_grad():
            x = torch.tensor(0.5, dtype=torch.float64, requires_grad=True)
            return torch.autograd.grad(chain_fun(torch)(x), x)
        engines["torch"] = torch_grad
    return engines


def wide_dag_spec(seed=0, n_nodes=2000, n_inputs=20):
    rng = np.random.default_rng(seed)
    spec = []
    for k in range(n_inputs, n_nodes):
        op = rng.integers(0, 5)
        first = int(rng.integers(max(0, k - 10), k))
        second = int(rng.integers(0, k))
        spec.append((op, first, second))
    return spec


def wide_fun(np_mod, spec, n_inputs=20):
    def f(xs):
        nodes = list(xs)
        for op, a, b in spec:
            u, v = nodes[a], nodes[b]
            if op == 0:
                nodes.append(u + v)
            elif op == 1:
                nodes.append(u * v)
            elif op == 2:
                nodes.append(np_mod.sin(u))
            elif op == 3:
                nodes.append(np_mod.tanh(u))
            else:
                nodes.append(np_mod.exp(0.1 * u))
        total = nodes[-10]
        for n in nodes[-9:]:
            total = total + n
        return total
    return f


def workload_wide_scalar():
    spec = wide_dag_spec()
    xs = [float(v) for v in np.random.default_rng(1).uniform(-0.5, 0.5, 20)]
    compiled = ardiff.compile(wide_fun(anp, spec))
    engines = {"ardiff": lambda: ardiff.grad(wide_fun(anp, spec))(xs),
               "compiled": lambda: compiled(xs)}
    if autograd:
        engines["autograd"] = lambda: autograd.grad(wide_fun(agnp, spec))(xs)
    if torch:
        def torch_grad():
            txs = [torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in xs]
            return torch.autograd.grad(wide_fun(torch, spec)(txs), txs, allow_unused=True)
        engines["torch"] = torch_grad
    return engines


def rnn_fun(np_mod, X):
    def f(Wx, Wh):
        h = np_mod.zeros((16, 128)) if np_mod is not torch else torch.zeros(
            16, 128, dtype=torch.float64)
        for t in range(X.shape[0]):
            h = np_mod.tanh(X[t] @ Wx + h @ Wh)
        return np_mod.sum(h ** 2)
    return f


def rnn_by_hand(X, Wx, Wh):
    """Hand-written forward and backward pass of the RNN (the NumPy baseline)."""
    hs = [np.zeros((16, 128))]
    for t in range(X.shape[0]):
        hs.append(np.tanh(X[t] @ Wx + hs[-1] @ Wh))
    g = 2.0 * hs[-1]
    gWx, gWh = np.zeros_like(Wx), np.zeros_like(Wh)
    for t in range(X.shape[0] - 1, -1, -1):
        g = g * (1.0 - hs[t + 1] * hs[t + 1])
        gWx += X[t].T @ g
        gWh += hs[t].T @ g
        g = g @ Wh.T
    return gWx, gWh


def workload_rnn():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((50, 16, 32))
    Wx, Wh = rng.standard_normal((32, 128)) * 0.1, rng.standard_normal((128, 128)) * 0.05
    engines = {"ardiff": lambda: ardiff.grad(rnn_fun(anp, X), argnum=(0, 1))(Wx, Wh),
               "numpy": lambda: rnn_by_hand(X, Wx, Wh)}
    for a, b in zip(engines["ardiff"](), engines["numpy"]()):
        assert np.allclose(a, b, rtol=1e-10, atol=1e-12)
    if autograd:
        engines["autograd"] = lambda: autograd.grad(rnn_fun(agnp, X), argnum=(0, 1))(Wx, Wh)
    if torch:
        tX = torch.tensor(X)
        tW = [torch.tensor(Wx, requires_grad=True), torch.tensor(Wh, requires_grad=True)]

        def torch_grad():
            return torch.autograd.grad(rnn_fun(torch, tX)(*tW), tW)
        engines["torch"] = torch_grad
    return engines


def workload_paper():
    """Time per relaxation iteration of the paper preset / one hand-written VJP sweep."""
    rng = np.random.default_rng(0)
    params = mlp_params(rng)
    X = rng.random((64, 784))
    Y = np.eye(10)[rng.integers(0, 10, 64)]
    from ardiff.nn import dense

    def network(p):
        # the paper's network: one elementary op, hence one relaxing node, per layer
        h = X
        for k in range(0, len(p), 2):
            h = dense(h, p[k], p[k + 1], "relu" if k < len(p) - 2 else "linear")
        return h

    # As in the paper, the output layer is clamped to the loss derivative 2 (out - Y)
    # and the hidden layers relax.
    graph = ardiff.trace(network, params)
    plan = ardiff.solvers.compile_plan(graph)
    seed = 2.0 * (graph.output.value - Y)
    # forward values for the hand-written sweep
    pre, hs, h = [], [X], X
    for k in range(0, len(params), 2):
        a = h @ params[k] + params[k + 1]
        pre.append(a)
        h = np.maximum(a, 0.0) if k < len(params) - 2 else a
        hs.append(h)
    g_out = 2.0 * (h - Y)
    masks = [p > 0 for p in pre]

    def vjp_sweep():
        g = g_out
        for layer in range(len(params) // 2 - 1, 0, -1):
            g = g @ params[2 * layer].T
            g = g * masks[layer - 1]
        return g

    steps = 100

    def relax_paper():
        return ardiff.solvers.run_relaxation(plan, seed, schedule="parallel", eta=0.1,
                                             init="forward", max_iter=steps, tol=0.0)

    return {"ardiff": relax_paper, "numpy": vjp_sweep}, steps


def scaling(repeats: int, sizes=(1_000, 10_000, 100_000)) -> None:
    """Chains of n scalar ops: time per op (interleaved over n) and memory per op."""
    def chain(n):
        def f(x):
            for _ in range(n // 4):
                x = anp.sin(x) * 1.01 + 0.1 * x
            return x
        return ardiff.grad(f)

    grads = {n: chain(n) for n in sizes}
    per_op = {n: [] for n in sizes}
    for n in sizes:
        grads[n](0.5)  # warm-up
    for _ in range(repeats):
        for n in sizes:
            calls = max(1, 100_000 // n)
            start = time.perf_counter()
            for _ in range(calls):
                grads[n](0.5)
            per_op[n].append((time.perf_counter() - start) / calls / n)
    base = statistics.median(per_op[sizes[0]])
    for n in sizes:
        t = statistics.median(per_op[n])
        mem = peak_memory(lambda: grads[n](0.5)) * 2**20 / n
        print(f"{'scaling':<12}{f'n={n:.0e}':<10}{t * 1e9:>11.0f}{t / base:>15.2f}"
              f"  ns/op, x time/op at n={sizes[0]:.0e}; peak {mem:.0f} B/op")


def measure(engines: dict, repeats: int) -> dict:
    for fun in engines.values():  # warm-up
        fun()
    times = {name: [] for name in engines}
    for _ in range(repeats):
        for name, fun in engines.items():
            start = time.perf_counter()
            fun()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(ts) for name, ts in times.items()}


def peak_memory(fun) -> float:
    tracemalloc.start()
    fun()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / 2**20


def fix_heap() -> None:
    """Stop glibc from returning freed blocks of over 128 kB to the OS between calls.

    With glibc's dynamic thresholds every engine's large temporaries are mapped and
    page-faulted afresh or reused depending on what ran just before, so medians moved
    with the order of the engines (hand-written NumPy mlp: 4.9 ms alone, 3.4 ms when
    interleaved with torch).  Fixed thresholds apply to all engines alike.
    """
    import ctypes
    libc = ctypes.CDLL("libc.so.6")
    m_trim_threshold, m_mmap_threshold = -1, -3
    libc.mallopt(m_mmap_threshold, 64 * 2**20)
    libc.mallopt(m_trim_threshold, 1 << 30)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--only", default="",
                        help="comma-separated workloads (default: all, scaling included)")
    parser.add_argument("--fixed-heap", action="store_true",
                        help="fix glibc's malloc thresholds for every engine (see below)")
    parser.add_argument("--big", action="store_true",
                        help="scaling: add a chain of 1e6 ops (about a minute more)")
    parser.add_argument("--machine", action="store_true",
                        help="print the machine description first (CPU, BLAS, threads)")
    args = parser.parse_args(argv)
    workloads = {"mlp": workload_mlp, "chain": workload_chain,
                 "wide_scalar": workload_wide_scalar, "rnn": workload_rnn,
                 "mlp_f32": lambda: workload_mlp(np.float32), "paper": workload_paper,
                 "scaling": None}
    only = [w for w in args.only.split(",") if w] or list(workloads)
    unknown = sorted(set(only) - set(workloads))
    if unknown:
        parser.error(f"unknown workload(s) {unknown}; choose from {sorted(workloads)}")
    if args.fixed_heap:
        fix_heap()
    if args.machine:
        from bench_mlp import machine_description
        print(machine_description())
    print(f"python {platform.python_version()}, numpy {np.__version__}, "
          f"autograd {'yes' if autograd else 'not installed'}, "
          f"torch {torch.__version__ if torch else 'not installed'}; "
          f"{platform.machine()}, {platform.processor() or platform.system()}")
    print(f"medians of {args.repeats} interleaved repeats; heap: "
          f"{'fixed thresholds' if args.fixed_heap else 'glibc defaults'}\n")
    header = f"{'workload':<12}{'engine':<10}{'median ms':>11}{'ardiff/engine':>15}"
    print(header)
    print("-" * len(header))
    for name in only:
        if name == "scaling":
            sizes = (1_000, 10_000, 100_000) + ((1_000_000,) if args.big else ())
            scaling(max(3, args.repeats // 3), sizes)
            continue
        made = workloads[name]()
        if name == "paper":
            engines, steps = made
            t = measure(engines, max(3, args.repeats // 3))
            per_iter = t["ardiff"] / (steps + 1)  # +1: the final residual evaluation
            print(f"{name:<12}{'ardiff':<10}{per_iter * 1e3:>11.3f}"
                  f"{per_iter / t['numpy']:>15.2f}  (per iteration / one hand-written sweep)")
            print(f"{'':<12}{'numpy':<10}{t['numpy'] * 1e3:>11.3f}")
            continue
        t = measure(made, args.repeats)
        mem = peak_memory(made["ardiff"])
        print(f"{name:<12}{'ardiff':<10}{t['ardiff'] * 1e3:>11.3f}{'':>15}  peak {mem:.1f} MiB")
        for engine, value in t.items():
            if engine != "ardiff":
                print(f"{'':<12}{engine:<10}{value * 1e3:>11.3f}{t['ardiff'] / value:>15.2f}")
    if not autograd or not torch:
        print("\n(some engines are not installed: pip install -e '.[bench]')")


if __name__ == "__main__":
    main()
