"""Benchmark suite: ardiff against hand-written code, HIPS autograd and PyTorch eager.

Run:  python benchmarks/bench_suite.py [--repeats 15] [--only mlp,chain] [--fixed-heap]
      python benchmarks/bench_suite.py --smoke      # every workload once, untimed
      python benchmarks/bench_suite.py --processes 5 --clock cpu   # 5 fresh processes each

Each workload times one full gradient call (forward included) per engine, repeats
the engines interleaved (so machine noise hits all of them alike) and prints the
median time of each and the ratios ardiff/engine and compiled/engine measured in
the same run.  The baselines are hand-written: a NumPy forward and backward pass
with the same BLAS calls on array programs (``numpy``), Python floats and `math`
on scalar graphs (``python``).  Engines that are not installed are skipped with a
note (``pip install -e '.[bench]'``).  Peak memory is the tracemalloc peak of one
call (NumPy buffers included; PyTorch allocations are invisible to tracemalloc).

The output, with the machine description, is saved to ``benchmarks/results/suite.txt``
and the ratios are drawn to ``suite.png`` beside it (``--out DIR`` elsewhere).
``--smoke`` runs every workload and engine once on small sizes, checks the
gradients, and saves only with ``--out``; the test suite runs it so that the
benchmark never rots.

``--processes N`` runs each workload in N fresh Python processes instead (in rounds:
every workload once per round), each timing its engines interleaved as above, and
prints per process ardiff's median time, each engine's, and the ratio ardiff/engine,
with the median of each over the N processes (and, for the array workloads, each
engine's minor page faults per call); saved to ``suite_processes.txt``.  A
fresh process matters for the array workloads: whether glibc maps a large temporary
afresh (and page-faults it on every call) or reuses heap memory depends on the
process's allocation history, so one process's ratio can differ from the next's.
The two example programs of autograd (``convnet``, ``define_gradient``) are written
in ``workloads_examples.py``.
"""

from __future__ import annotations

import os

# One BLAS thread for every engine (torch is set to one thread below): on a shared 2-core
# machine multi-threaded BLAS makes medians meaningless, and the comparison stays fair.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import datetime  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402
from pathlib import Path  # noqa: E402

# the checkout's ardiff, also when the script runs as benchmarks/bench_suite.py
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
from workloads_arrays import (  # noqa: E402
    SIZES,
    lstm_by_hand,
    lstm_fun,
    lstm_problem,
    mlp_by_hand,
    mlp_loss,
    mlp_params,
    mlp_problem,
    rnn_by_hand,
    rnn_fun,
    rnn_problem,
)
from workloads_examples import (  # noqa: E402
    convnet_loss,
    convnet_problem,
    define_gradient_by_hand,
    define_gradient_fun,
)
from workloads_small import (  # noqa: E402
    chain_by_hand,
    chain_fun,
    gan_fun,
    gan_params,
    sinusoid_fun,
    tiny_logsumexp_fun,
    tiny_sigmoid_fun,
    tiny_vector_fun,
    wide_by_hand,
    wide_dag_spec,
    wide_fun,
)

import ardiff  # noqa: E402
import ardiff.numpy as anp  # noqa: E402
import ardiff.scipy.signal as asignal  # noqa: E402
import ardiff.scipy.special as asp  # noqa: E402
from ardiff.extend import defvjp, primitive  # noqa: E402

try:
    import autograd
    import autograd.extend as agext
    import autograd.numpy as agnp
    import autograd.scipy.signal as agsignal
    import autograd.scipy.special as agsp
except ImportError:  # pragma: no cover - optional
    autograd = None
try:
    import torch
    torch.set_num_threads(1)
except ImportError:  # pragma: no cover - optional
    torch = None

# names used by benchmarks/overhead_mlp.py
__all__ = ["SIZES", "mlp_params", "mlp_loss", "mlp_by_hand", "fix_heap", "main"]

RESULTS = Path(__file__).resolve().parent / "results"


def close(a, b, rtol=1e-9, what="") -> None:
    """Raise unless every pair of arrays agrees to `rtol` of the largest entry."""
    for x, y in zip(a, b):
        x, y = np.asarray(x), np.asarray(y)
        scale = max(float(np.max(np.abs(y))), 1e-30)
        if not np.max(np.abs(x - y)) <= rtol * scale:
            raise AssertionError(f"{what}: gradients differ by {np.max(np.abs(x - y)):.3g}")


# -- workloads: each returns {engine: zero-argument callable computing the gradient} --------
def workload_mlp(smoke: bool, dtype=np.float64) -> dict:
    sizes = (30, 20, 20, 10, 5) if smoke else SIZES
    params, X, Y = mlp_problem(dtype, 8 if smoke else 64, sizes)
    grad, compiled = ardiff.grad(mlp_loss(anp)), ardiff.compile(mlp_loss(anp))
    engines = {"ardiff": lambda: grad(params, X, Y),
               "compiled": lambda: compiled(params, X, Y),
               "numpy": lambda: mlp_by_hand(params, X, Y)}
    rtol = 1e-4 if dtype == np.float32 else 1e-10
    close(engines["ardiff"](), engines["numpy"](), rtol, "mlp ardiff vs by hand")
    close(engines["compiled"](), engines["numpy"](), rtol, "mlp compiled vs by hand")
    if autograd:
        engines["autograd"] = lambda: autograd.grad(mlp_loss(agnp))(params, X, Y)
    if torch:
        tp = [torch.tensor(p, requires_grad=True) for p in params]
        tX, tY = torch.tensor(X), torch.tensor(Y)

        def torch_grad():
            return torch.autograd.grad(mlp_loss(torch, torch)(tp, tX, tY), tp)
        engines["torch"] = torch_grad
    return engines


def workload_rnn(smoke: bool) -> dict:
    X, Wx, Wh = rnn_problem(5 if smoke else 50)
    grad = ardiff.grad(rnn_fun(anp, X), argnum=(0, 1))
    compiled = ardiff.compile(rnn_fun(anp, X), argnum=(0, 1))
    engines = {"ardiff": lambda: grad(Wx, Wh), "compiled": lambda: compiled(Wx, Wh),
               "numpy": lambda: rnn_by_hand(X, Wx, Wh)}
    close(engines["ardiff"](), engines["numpy"](), 1e-10, "rnn ardiff vs by hand")
    close(engines["compiled"](), engines["numpy"](), 1e-10, "rnn compiled vs by hand")
    if autograd:
        engines["autograd"] = lambda: autograd.grad(rnn_fun(agnp, X), argnum=(0, 1))(Wx, Wh)
    if torch:
        tX = torch.tensor(X)
        tW = [torch.tensor(Wx, requires_grad=True), torch.tensor(Wh, requires_grad=True)]
        engines["torch"] = lambda: torch.autograd.grad(rnn_fun(torch, tX, torch)(*tW), tW)
    return engines


def workload_lstm(smoke: bool) -> dict:
    hidden = 16 if smoke else 128
    X, Wx, Wh, b = lstm_problem(4 if smoke else 30, hidden=hidden)
    argnum = (0, 1, 2)
    grad = ardiff.grad(lstm_fun(anp, X, hidden), argnum=argnum)
    compiled = ardiff.compile(lstm_fun(anp, X, hidden), argnum=argnum)
    engines = {"ardiff": lambda: grad(Wx, Wh, b), "compiled": lambda: compiled(Wx, Wh, b),
               "numpy": lambda: lstm_by_hand(X, Wx, Wh, b)}
    close(engines["ardiff"](), engines["numpy"](), 1e-10, "lstm ardiff vs by hand")
    close(engines["compiled"](), engines["numpy"](), 1e-10, "lstm compiled vs by hand")
    if autograd:
        engines["autograd"] = lambda: autograd.grad(lstm_fun(agnp, X, hidden),
                                                    argnum=argnum)(Wx, Wh, b)
    if torch:
        tX = torch.tensor(X)
        tW = [torch.tensor(v, requires_grad=True) for v in (Wx, Wh, b)]
        engines["torch"] = lambda: torch.autograd.grad(
            lstm_fun(torch, tX, hidden, torch)(*tW), tW)
    return engines


def workload_chain(smoke: bool) -> dict:
    links = 50 if smoke else 1000
    grad, compiled = ardiff.grad(chain_fun(anp, links)), ardiff.compile(chain_fun(anp, links))
    engines = {"ardiff": lambda: grad(0.5), "compiled": lambda: compiled(0.5),
               "python": lambda: chain_by_hand(0.5, links)}
    close([engines["ardiff"](), engines["compiled"]()], [engines["python"]()] * 2, 1e-12,
          "chain vs by hand")
    if autograd:
        engines["autograd"] = lambda: autograd.grad(chain_fun(agnp, links))(0.5)
    if torch:
        def torch_grad():
            x = torch.tensor(0.5, dtype=torch.float64, requires_grad=True)
            return torch.autograd.grad(chain_fun(torch, links)(x), x)
        engines["torch"] = torch_grad
    return engines


def workload_wide_scalar(smoke: bool) -> dict:
    spec = wide_dag_spec(n_nodes=200 if smoke else 2000)
    xs = [float(v) for v in np.random.default_rng(1).uniform(-0.5, 0.5, 20)]
    grad, compiled = ardiff.grad(wide_fun(anp, spec)), ardiff.compile(wide_fun(anp, spec))
    engines = {"ardiff": lambda: grad(xs), "compiled": lambda: compiled(xs),
               "python": lambda: wide_by_hand(spec, xs)}
    close(engines["ardiff"](), engines["python"](), 1e-12, "wide_scalar ardiff vs by hand")
    close(engines["compiled"](), engines["python"](), 1e-12, "wide_scalar compiled")
    if autograd:
        engines["autograd"] = lambda: autograd.grad(wide_fun(agnp, spec))(xs)
    if torch:
        def torch_grad():
            txs = [torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in xs]
            return torch.autograd.grad(wide_fun(torch, spec)(txs), txs, allow_unused=True)
        engines["torch"] = torch_grad
    return engines


def tiny_workload(make_fun, lse=False):
    """Workload of one tiny program on a 10-element vector: ardiff against autograd."""
    def workload(smoke: bool) -> dict:
        x = np.random.default_rng(2).uniform(-1.0, 1.0, 10)
        grad = ardiff.grad(make_fun(asp.logsumexp if lse else anp))
        engines = {"ardiff": lambda: grad(x)}
        if autograd:
            reference = autograd.grad(make_fun(agsp.logsumexp if lse else agnp))
            engines["autograd"] = lambda: reference(x)
            close([engines["ardiff"]()], [reference(x)], 1e-12, "tiny vs autograd")
        return engines
    return workload


def workload_sinusoid(smoke: bool) -> dict:
    """Second derivative of sin by nested grad at ten points (one timed call: all ten)."""
    points = np.linspace(-10.0, 10.0, 10)
    dd = sinusoid_fun(anp, ardiff.grad)
    engines = {"ardiff": lambda: [dd(p) for p in points]}
    close([engines["ardiff"]()], [-np.sin(points)], 1e-12, "sinusoid vs -sin")
    if autograd:
        reference = sinusoid_fun(agnp, autograd.grad)
        engines["autograd"] = lambda: [reference(p) for p in points]
    return engines


def workload_tiny_gan(smoke: bool) -> dict:
    rng = np.random.default_rng(3)
    gen, dsc = gan_params(rng)
    real, noise = rng.random((10, 10)), rng.random((10, 10))
    grad = ardiff.grad(gan_fun(anp), argnum=(0, 1))
    engines = {"ardiff": lambda: grad(gen, dsc, real, noise)}
    if autograd:
        reference = autograd.grad(gan_fun(agnp), argnum=(0, 1))
        engines["autograd"] = lambda: reference(gen, dsc, real, noise)
        flat = ardiff.tree.flatten
        close(flat(engines["ardiff"]())[0], flat(engines["autograd"]())[0], 1e-10,
              "tiny_gan vs autograd")
    return engines


def workload_convnet(smoke: bool) -> dict:
    """autograd's convnet example (benchmarks/workloads_examples.py), batch 8."""
    W, X, T = convnet_problem(2 if smoke else 8)
    grad = ardiff.grad(convnet_loss(anp, asignal.convolve))
    engines = {"ardiff": lambda: grad(W, X, T)}
    if autograd:
        reference = autograd.grad(convnet_loss(agnp, agsignal.convolve))
        engines["autograd"] = lambda: reference(W, X, T)
        close([engines["ardiff"]()], [reference(W, X, T)], 1e-10, "convnet vs autograd")
    return engines


def workload_define_gradient(smoke: bool) -> dict:
    """autograd's define_gradient example: a user primitive in a tiny function."""
    y = np.random.default_rng(4).standard_normal(10)
    grad = ardiff.grad(define_gradient_fun(anp, primitive, defvjp))
    engines = {"ardiff": lambda: grad(y)}
    close([engines["ardiff"]()], [define_gradient_by_hand(y)], 1e-12,
          "define_gradient vs by hand")
    if autograd:
        reference = autograd.grad(define_gradient_fun(agnp, agext.primitive, agext.defvjp))
        engines["autograd"] = lambda: reference(y)
    return engines


def workload_paper(smoke: bool):
    """Time per relaxation iteration of the paper preset / one hand-written VJP sweep."""
    params, X, Y = mlp_problem()
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
    pre, h = [], X
    for k in range(0, len(params), 2):
        a = h @ params[k] + params[k + 1]
        pre.append(a)
        h = np.maximum(a, 0.0) if k < len(params) - 2 else a
    g_out = 2.0 * (h - Y)
    masks = [p > 0 for p in pre]

    def vjp_sweep():
        g = g_out
        for layer in range(len(params) // 2 - 1, 0, -1):
            g = g @ params[2 * layer].T
            g = g * masks[layer - 1]
        return g

    steps = 5 if smoke else 100

    def relax_paper():
        return ardiff.solvers.run_relaxation(plan, seed, ardiff.solvers.SolverOptions(
            schedule="parallel", eta=0.1, init="forward", max_iter=steps, tol=0.0))

    return {"ardiff": relax_paper, "numpy": vjp_sweep}, steps


WORKLOADS = {
    "mlp": workload_mlp, "mlp_f32": lambda smoke: workload_mlp(smoke, np.float32),
    "rnn": workload_rnn, "lstm": workload_lstm,
    "chain": workload_chain, "wide_scalar": workload_wide_scalar,
    "tiny_vector": tiny_workload(tiny_vector_fun),
    "tiny_logsumexp": tiny_workload(tiny_logsumexp_fun, lse=True),
    "tiny_sigmoid": tiny_workload(tiny_sigmoid_fun),
    "sinusoid": workload_sinusoid, "tiny_gan": workload_tiny_gan,
    "convnet": workload_convnet, "define_gradient": workload_define_gradient,
    "paper": workload_paper, "scaling": None,
}
#: Workloads whose tracemalloc peaks are compared with the hand-written code (point 5).
MEMORY = ("mlp", "rnn", "lstm")
#: Calls per timed sample: the tiny programs take microseconds.
INNER = {"tiny_vector": 20, "tiny_logsumexp": 20, "tiny_sigmoid": 20, "sinusoid": 5,
         "tiny_gan": 5, "define_gradient": 20}


# -- measuring -------------------------------------------------------------------------------
#: The clock `measure` reads: wall time, or (``--clock cpu``) this process's CPU time,
#: which leaves out the time other processes held the core (every engine runs on one
#: thread here, so CPU time is the work done).
CLOCK = {"clock": time.perf_counter}


#: Minor page faults per call of each engine in the last `measure` (fresh pages the
#: allocator handed out: the cost of large temporaries mapped or trimmed between calls).
FAULTS: dict = {}


def minor_faults() -> int:
    """This process's minor page faults so far (0 where `resource` is missing)."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not on Windows
        return 0
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def measure(engines: dict, repeats: int, inner: int = 1) -> dict:
    """Median seconds per call of each engine, engines interleaved in every repeat."""
    clock = CLOCK["clock"]
    for fun in engines.values():  # warm-up
        fun()
    times = {name: [] for name in engines}
    faults = dict.fromkeys(engines, 0)
    for _ in range(repeats):
        for name, fun in engines.items():
            before = minor_faults()
            start = clock()
            for _ in range(inner):
                fun()
            times[name].append((clock() - start) / inner)
            faults[name] += minor_faults() - before
    FAULTS.clear()
    FAULTS.update({name: n / (repeats * inner) for name, n in faults.items()})
    return {name: statistics.median(ts) for name, ts in times.items()}


def peak_memory(fun) -> float:
    """tracemalloc peak of one call, in MiB."""
    tracemalloc.start()
    fun()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / 2**20


def scaling(out, repeats: int, sizes=(1_000, 10_000, 100_000), ops: int = 100_000) -> None:
    """Chains of n scalar ops: time per op (interleaved over n) and memory per op.

    Each sample repeats the gradient of a chain until about `ops` ops were done.
    """
    grads = {n: ardiff.grad(chain_fun(anp, n // 4)) for n in sizes}
    per_op = {n: [] for n in sizes}
    for n in sizes:
        grads[n](0.5)  # warm-up
    for _ in range(repeats):
        for n in sizes:
            calls = max(1, ops // n)
            clock = CLOCK["clock"]
            start = clock()
            for _ in range(calls):
                grads[n](0.5)
            per_op[n].append((clock() - start) / calls / n)
    base = statistics.median(per_op[sizes[0]])
    for n in sizes:
        t = statistics.median(per_op[n])
        mem = peak_memory(lambda: grads[n](0.5)) * 2**20 / n
        out(f"{'scaling':<16}{f'n={n:.0e}':<10}{t * 1e9:>11.0f}{t / base:>15.2f}"
            f"  ns/op, x time/op at n={sizes[0]:.0e}; peak {mem:.0f} B/op")


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


def plot_ratios(ratios: dict, path: Path) -> None:
    """One bar per (workload, engine): ardiff's (or compiled's) time over the engine's."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pairs = sorted({pair for per in ratios.values() for pair in per})
    names = list(ratios)
    width = 0.8 / max(len(pairs), 1)
    fig, ax = plt.subplots(figsize=(max(8.0, 0.9 * len(names)), 4.5))
    for j, pair in enumerate(pairs):
        xs = [k + (j - (len(pairs) - 1) / 2) * width for k, n in enumerate(names)
              if pair in ratios[n]]
        ys = [ratios[n][pair] for n in names if pair in ratios[n]]
        ax.bar(xs, ys, width, label=f"{pair[0]} / {pair[1]}")
    ax.axhline(1.0, color="black", lw=0.8)
    ax.set_yscale("log")
    ax.set_xticks(range(len(names)), names, rotation=30, ha="right")
    ax.set_ylabel("time ratio (below 1: ardiff faster)")
    ax.set_title("ardiff / engine, medians of one run")
    ax.legend(fontsize=7, ncol=3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def machine_description() -> str:
    from bench_mlp import machine_description as describe
    return describe()


def run_workload(name: str, args, out, ratios: dict, memory: bool = True) -> dict:
    """Time one workload, print its lines; the medians (s) by engine (for ``paper``:
    ardiff's time per iteration and one hand-written sweep's)."""
    made = WORKLOADS[name](args.smoke)
    if name == "paper":
        engines, steps = made
        t = measure(engines, 1 if args.smoke else max(3, args.repeats // 3))
        per_iter = t["ardiff"] / (steps + 1)  # +1: the final residual evaluation
        out(f"{name:<16}{'ardiff':<10}{per_iter * 1e3:>11.3f}"
            f"{per_iter / t['numpy']:>15.2f}  (per iteration / one hand-written sweep)")
        out(f"{'':<16}{'numpy':<10}{t['numpy'] * 1e3:>11.3f}")
        return {"ardiff": per_iter, "numpy": t["numpy"]}
    # smoke: one untimed warm-up and one timed call per engine, so that the printing
    # and the plot run too (the workload itself already checked the gradients)
    t = measure(made, 1) if args.smoke else measure(made, args.repeats, INNER.get(name, 1))
    baseline = "numpy" if "numpy" in made else "python" if "python" in made else None
    ratios[name] = {}
    out(f"{name:<16}{'ardiff':<10}{t['ardiff'] * 1e3:>11.3f}")
    for engine, value in t.items():
        if engine == "ardiff":
            continue
        line = f"{'':<16}{engine:<10}{value * 1e3:>11.3f}{t['ardiff'] / value:>15.2f}"
        ratios[name][("ardiff", engine)] = t["ardiff"] / value
        if "compiled" in t and engine not in ("ardiff", "compiled"):
            line += f"{t['compiled'] / value:>17.2f}"
            if engine == baseline:
                ratios[name][("compiled", engine)] = t["compiled"] / value
        out(line)
    if memory and name in MEMORY:
        mine, theirs = peak_memory(made["ardiff"]), peak_memory(made["numpy"])
        out(f"{'':<16}peak memory (tracemalloc): ardiff {mine:.2f} MiB, "
            f"numpy by hand {theirs:.2f} MiB, ratio {mine / theirs:.2f}")
    return t


#: The line a child process of ``--processes`` prints its medians on.
CHILD_RESULT = "CHILD-RESULT "


def child_command(name: str, args) -> list[str]:
    """The command line of one fresh process timing the workload `name`."""
    command = [sys.executable, str(Path(__file__).resolve()), "--child", "--only", name,
               "--repeats", str(args.repeats), "--clock", args.clock]
    return command + (["--fixed-heap"] if args.fixed_heap else []) + (
        ["--smoke"] if args.smoke else [])


def git_commit() -> str:
    """The checkout's commit (short), with "+ uncommitted changes" when the tree differs."""
    import subprocess

    root = Path(__file__).resolve().parent.parent
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, text=True,
                             capture_output=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=root, text=True, capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return sha + (" + uncommitted changes" if dirty.strip() else "")


def run_processes(names: list[str], args, out) -> None:
    """Each workload in `args.processes` fresh processes (rounds: every workload once
    per round, so that load drifts hit all alike): per-process ratios ardiff/engine
    and ardiff's median ms, each with their median over the processes."""
    import json
    import subprocess

    results: dict[str, list[dict]] = {name: [] for name in names}
    for k in range(args.processes):
        for name in names:
            done = subprocess.run(child_command(name, args), capture_output=True, text=True,
                                  check=False)
            lines = [line for line in done.stdout.splitlines()
                     if line.startswith(CHILD_RESULT)]
            if done.returncode or not lines:
                raise RuntimeError(f"{name}, process {k + 1} failed:\n{done.stderr[-3000:]}")
            results[name].append(json.loads(lines[-1][len(CHILD_RESULT):]))
            print(f"  [{name}: process {k + 1} of {args.processes} done]", flush=True)
    header = (f"{'workload':<16}{'engine':<10}{'':<7}"
              f"{'per process':<{8 * args.processes}}{'median':>7}")
    out(header)
    out("-" * len(header))
    for name in names:
        runs = results[name]
        label = name

        def row(engine: str, kind: str, values: list[float], label_: str) -> str:
            digits = {"ms": 3, "ratios": 2, "faults": 0}[kind]
            cells = "".join(f"{v:>8.{digits}f}" for v in values)
            mid = f"{statistics.median(values):.{digits}f}"
            return f"{label_:<16}{engine:<10}{kind:<7}{cells}  median {mid}"

        times = [r["t"] for r in runs]
        out(row("ardiff", "ms", [t["ardiff"] * 1e3 for t in times], label))
        label = ""
        for engine in times[0]:
            if engine == "ardiff":
                continue
            out(row(engine, "ms", [t[engine] * 1e3 for t in times], label))
            out(row(engine, "ratios", [t["ardiff"] / t[engine] for t in times], label))
        if name in MEMORY:  # fresh pages per call: whether the heap kept the temporaries
            for engine in times[0]:
                out(row(engine, "faults", [r["faults"].get(engine, 0.0) for r in runs], ""))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--only", default="",
                        help="comma-separated workloads (default: all, scaling included)")
    parser.add_argument("--fixed-heap", action="store_true",
                        help="fix glibc's malloc thresholds for every engine (see fix_heap)")
    parser.add_argument("--big", action="store_true",
                        help="scaling: add a chain of 1e6 ops (about a minute more)")
    parser.add_argument("--machine", action="store_true",
                        help="kept for old command lines: the machine is always described")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="wall time (default) or this process's CPU time, for machines "
                             "loaded by other work (calls longer than a scheduler slice are "
                             "preempted, which inflates their wall time more than short ones')")
    parser.add_argument("--smoke", action="store_true",
                        help="every workload and engine once, small sizes, untimed")
    parser.add_argument("--processes", type=int, default=0, metavar="N",
                        help="run each workload in N fresh processes and report the "
                             "per-process ratios and their median (saved to "
                             "suite_processes.txt; the scaling workload is left out)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", default=None,
                        help="folder for suite.txt and suite.png (default benchmarks/results; "
                             "with --smoke nothing is saved unless given)")
    args = parser.parse_args(argv)
    only = [w for w in args.only.split(",") if w] or list(WORKLOADS)
    unknown = sorted(set(only) - set(WORKLOADS))
    if unknown:
        parser.error(f"unknown workload(s) {unknown}; choose from {sorted(WORKLOADS)}")
    if args.fixed_heap:
        fix_heap()
    CLOCK["clock"] = time.process_time if args.clock == "cpu" else time.perf_counter
    if args.child:  # one workload, quietly; its medians on one line for the parent
        import json
        t = run_workload(only[0], args, lambda line="": None, {}, memory=False)
        print(CHILD_RESULT + json.dumps({"t": t, "faults": dict(FAULTS)}), flush=True)
        return 0
    out_dir = Path(args.out) if args.out else (None if args.smoke else RESULTS)
    lines: list[str] = []

    def out(line: str = "") -> None:
        print(line, flush=True)
        lines.append(line)

    began = time.perf_counter()
    given = argv if argv is not None else sys.argv[1:]
    out(f"$ python benchmarks/bench_suite.py {' '.join(given)}")
    out(f"run at {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC")
    out(machine_description())
    out(f"python {platform.python_version()}, numpy {np.__version__}, "
        f"autograd {'yes' if autograd else 'not installed'}, "
        f"torch {torch.__version__ if torch else 'not installed'}")
    out(f"medians of {args.repeats} interleaved repeats of {args.clock} time; heap: "
        f"{'fixed thresholds' if args.fixed_heap else 'glibc defaults'}"
        + (f"; each workload in {args.processes} fresh processes" if args.processes else "")
        + ("; SMOKE: small sizes, untimed" if args.smoke else "") + "\n")
    if args.processes:
        out(f"ardiff commit: {git_commit()}\n")
        run_processes([name for name in only if name != "scaling"], args, out)
        out(f"\nwhole run: {time.perf_counter() - began:.0f} s")
        if out_dir is not None:
            out_dir.mkdir(parents=True, exist_ok=True)
            (out_dir / "suite_processes.txt").write_text("\n".join(lines) + "\n")
            print(f"saved {out_dir / 'suite_processes.txt'}")
        return 0
    header = (f"{'workload':<16}{'engine':<10}{'median ms':>11}{'ardiff/engine':>15}"
              f"{'compiled/engine':>17}")
    out(header)
    out("-" * len(header))
    ratios: dict = {}
    for name in only:
        if name == "scaling":
            sizes = (100, 1_000) if args.smoke else (1_000, 10_000, 100_000) + (
                (1_000_000,) if args.big else ())
            scaling(out, 1 if args.smoke else max(3, args.repeats // 3), sizes,
                    1_000 if args.smoke else 100_000)
            continue
        run_workload(name, args, out, ratios)
    if not autograd or not torch:
        out("\n(some engines are not installed: pip install -e '.[bench]')")
    out(f"\nwhole run: {time.perf_counter() - began:.0f} s")
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "suite.txt").write_text("\n".join(lines) + "\n")
        if ratios:
            plot_ratios(ratios, out_dir / "suite.png")
        print(f"saved {out_dir / 'suite.txt'}" + (" and suite.png" if ratios else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
