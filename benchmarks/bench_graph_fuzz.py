"""A fuzzer of graph files: mutated valid documents fed to `ardiff.from_json`, timed.

Each case takes a valid document written by `ardiff.to_json` (one of a few small
graphs: elementwise ops, reshapes, slices, matmul, reductions with keywords,
concatenation) and mutates it 1 to 3 times: a value anywhere replaced by junk (the
hostile values of issue 23 among them: a dtype of `V2000000000`, an argument position
of 10**8, a shape of 10**9 x 10**9, a `__slice__`/`__float__`/`__ndarray__` of the
wrong form), a key or list entry deleted, a node's op replaced by another real op,
a node duplicated under its id, a value nested very deeply, the text truncated, or a
number replaced by a bare `NaN`/`Infinity` token.  Every case must end in a loaded
graph or a `GraphValidationError`; anything else (another exception, a MemoryError)
is counted and listed.  The process runs under a 2 GiB address-space limit
(`RLIMIT_AS`), so an allocation sized by the file fails loudly instead of swapping.

Per case it measures the wall time of `from_json` and its peak memory under
tracemalloc (NumPy's array buffers included), and writes the counts, the slowest and
the largest cases to `benchmarks/results/graph_fuzz.json`.  The first call of some ops
imports SciPy, which is slow under tracemalloc and has nothing to do with the file, so
the `TOP` slowest and largest cases are run a second time: `slowest` and `largest` are
over all cases, with the second run's figures for those (`first_run_slowest` and
`first_run_largest` keep the first runs').

Run from the repository root: `python benchmarks/bench_graph_fuzz.py [--cases 10000]
[--seed 0] [--out benchmarks/results/graph_fuzz.json]`.
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # one BLAS thread: less address space reserved

import argparse  # noqa: E402
import copy  # noqa: E402
import datetime  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import random  # noqa: E402
import resource  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

import ardiff  # noqa: E402
import ardiff.numpy as anp  # noqa: E402
from ardiff.interchange import GraphValidationError  # noqa: E402
from ardiff.op import OPS  # noqa: E402

ADDRESS_SPACE = 2 * 2 ** 30
#: How many of the slowest (and of the largest) cases are run a second time.
TOP = 10
ROOT = Path(__file__).resolve().parent.parent


def base_documents() -> list[dict]:
    """Valid documents of a few small graphs, as `to_json` writes them."""
    def small(x):
        return anp.sum(anp.reshape(anp.tanh(x), (2, 2)))

    def layer(W, x):
        h = anp.tanh(W @ x)
        return (anp.sum(anp.concatenate([h[1:3], h[::2] ** 2]) * 0.5, axis=0)
                + anp.mean(h, keepdims=True)[0])

    def shapes(x):
        y = anp.transpose(anp.broadcast_to(x, (3, 4)))
        return anp.sum(anp.exp(-y) * anp.sin(y[:, 1:]).sum(axis=1, keepdims=True))

    graphs = [ardiff.trace(small, np.array([0.5, -1.0, 2.0, 3.0])),
              ardiff.trace(layer, np.ones((4, 3)), np.arange(3.0)),
              ardiff.trace(shapes, np.linspace(-1.0, 1.0, 4))]
    return [json.loads(ardiff.to_json(g)) for g in graphs]


def junk(rng: random.Random):
    """A value a careless or hostile file might hold where something else belongs."""
    kind = rng.randrange(14)
    if kind == 0:
        return None
    if kind == 1:
        return rng.choice([True, False])
    if kind == 2:
        return rng.randint(-10 ** 12, 10 ** 12)
    if kind == 3:
        return rng.uniform(-1e6, 1e6)
    if kind == 4:
        return "".join(rng.choice("abz<>8f:_-01") for _ in range(rng.randrange(7)))
    if kind == 5:
        return rng.choice(["V2000000000", "<f8", "float64", "complex256", "object", "U100",
                           "int64", "bool", "nan", "inf"])
    if kind == 6:
        return rng.choice([100000000, 10 ** 9, 1023, 1024, -1, 2 ** 63])
    if kind == 7:
        return [rng.choice([10 ** 9, 10 ** 5, 2 ** 31, 3, 0, -1]) for _ in range(rng.randrange(4))]
    if kind == 8:
        return [rng.randint(-3, 5) for _ in range(rng.randrange(5))]
    if kind == 9:
        return {"__slice__": [rng.choice([None, 0, 1, "a", 2.5, 10 ** 12])
                              for _ in range(rng.randrange(5))]}
    if kind == 10:
        return {"__float__": rng.choice(["nan", "inf", "-inf", "NaN", "abc", 1.0])}
    if kind == 11:
        n = rng.choice([0, 1, 4, 10 ** 9])
        return {"__ndarray__": [rng.choice([1, 2.5, "nan", "x", None])
                                for _ in range(rng.randrange(5))],
                "dtype": rng.choice(["<f8", "<i8", "V2000000000", "|b1", "<c16", "?"]),
                "shape": rng.choice([[n], [2, 2], [], "4", [-1]])}
    if kind == 12:
        return {rng.choice(["__tuple__", "__dtype__", "__slice__", "dtype", "shape", "0"]):
                rng.choice([1, "x", [1, 2], None])}
    return rng.choice(list(OPS))


def _paths(value, prefix=()):
    yield prefix
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(value, list):
        for k, v in enumerate(value):
            yield from _paths(v, prefix + (k,))


def _at(doc, path):
    parent = doc
    for k in path[:-1]:
        parent = parent[k]
    return parent


def mutate(doc: dict, rng: random.Random) -> tuple[str, str]:
    """Apply 1 to 3 mutations to a copy of `doc`; returns (JSON text, description)."""
    doc = copy.deepcopy(doc)
    done = []
    text_change = None
    deep: list[int] = []  # JSON's writer recurses: deep values are put into the text
    for _ in range(rng.randint(1, 3)):
        paths = [p for p in _paths(doc) if p]
        what = rng.randrange(9)
        try:
            if what <= 2:  # a value replaced by junk
                path = rng.choice(paths)
                _at(doc, path)[path[-1]] = junk(rng)
                done.append(f"set {'/'.join(map(str, path))}")
            elif what == 3:  # a key or list entry deleted
                path = rng.choice(paths)
                del _at(doc, path)[path[-1]]
                done.append(f"delete {'/'.join(map(str, path))}")
            elif what == 4:  # another real op
                node = rng.choice(doc["nodes"])
                node["op"] = rng.choice(list(OPS))
                done.append(f"op of node {node.get('id')} -> {node['op']}")
            elif what == 5:  # a node duplicated under its id, perhaps with another op
                node = copy.deepcopy(rng.choice(doc["nodes"]))
                if rng.random() < 0.5:
                    node["op"] = rng.choice(list(OPS))
                doc["nodes"].insert(rng.randrange(len(doc["nodes"]) + 1), node)
                done.append(f"duplicate node {node.get('id')}")
            elif what == 6:  # deep nesting
                depth = rng.choice([10, 63, 65, 1000, 100000])
                path = rng.choice(paths)
                _at(doc, path)[path[-1]] = f"__deep_{len(deep)}__"  # written as text below
                deep.append(depth)
                done.append(f"nest {depth} at {'/'.join(map(str, path))}")
            elif what == 7:
                text_change = "truncate"
            else:
                text_change = "token"
        except (KeyError, IndexError, TypeError, AttributeError, ValueError):
            done.append("skipped (an earlier mutation replaced the container)")
    text = json.dumps(doc)
    for k, depth in enumerate(deep):
        text = text.replace(f'"__deep_{k}__"', "[" * depth + "1" + "]" * depth)
    if text_change == "truncate":
        cut = rng.randrange(len(text))
        text = text[:cut]
        done.append(f"truncate at {cut}")
    elif text_change == "token":
        numbers = [i for i, c in enumerate(text) if c.isdigit() and text[i - 1] in " [:"]
        if numbers:
            i = rng.choice(numbers)
            j = i
            while j < len(text) and (text[j].isdigit() or text[j] in ".e-"):
                j += 1
            token = rng.choice(["NaN", "Infinity", "-Infinity"])
            text = text[:i] + token + text[j:]
            done.append(f"bare {token} at {i}")
    return text, "; ".join(done)


def run_case(text: str) -> tuple[str, float, int]:
    """(outcome, seconds, peak bytes) of one `from_json` call."""
    tracemalloc.reset_peak()
    start_mem = tracemalloc.get_traced_memory()[0]
    start = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # NonFiniteWarning and NumPy's own are fine here
            ardiff.from_json(text)
        outcome = "loaded"
    except GraphValidationError:
        outcome = "refused"
    except BaseException as e:  # noqa: BLE001 - counted and listed, the point of the fuzzer
        if isinstance(e, KeyboardInterrupt):
            raise
        outcome = f"other: {type(e).__name__}: {str(e)[:200]}"
    seconds = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1] - start_mem
    return outcome, seconds, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=10000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "graph_fuzz.json"))
    args = parser.parse_args()
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))
    rng = random.Random(args.seed)
    bases = base_documents()
    counts = {"loaded": 0, "refused": 0, "other": 0}
    others, cases = [], []
    texts: dict[int, str] = {}
    for doc in bases:  # warm up: the first call pays for lazy imports, not the file
        run_case(json.dumps(doc))
        run_case(json.dumps(doc)[:-5])
    tracemalloc.start()
    wall = time.perf_counter()
    for k in range(args.cases):
        text, description = mutate(rng.choice(bases), rng)
        outcome, seconds, peak = run_case(text)
        key = outcome if outcome in counts else "other"
        counts[key] += 1
        if key == "other":
            others.append({"case": k, "mutations": description, "outcome": outcome})
        cases.append((seconds, peak, k, description, key, len(text)))
        texts[k] = text
        if len(texts) > 4 * TOP:  # keep only the texts of the slowest and largest cases
            keep = {c[2] for c in sorted(cases, reverse=True)[:TOP]}
            keep |= {c[2] for c in sorted(cases, key=lambda c: c[1], reverse=True)[:TOP]}
            texts = {i: t for i, t in texts.items() if i in keep}
    wall = time.perf_counter() - wall
    first_slowest = max(cases)
    first_largest = max(cases, key=lambda c: c[1])
    # The first run of a case may pay for a one-time lazy import (SciPy for some ops), which
    # says nothing about the file: the slowest and largest cases are run again, and the
    # figures reported are of that second run.
    again = {}
    for c in sorted(cases, reverse=True)[:TOP] + sorted(cases, key=lambda c: c[1],
                                                         reverse=True)[:TOP]:
        if c[2] not in again:
            outcome, seconds, peak = run_case(texts[c[2]])
            again[c[2]] = (seconds, peak, c[2], c[3], c[4], c[5])
    tracemalloc.stop()
    steady = [again.get(c[2], c) for c in cases]  # second runs where there were some
    slowest = max(steady)
    largest = max(steady, key=lambda c: c[1])
    times = np.array([c[0] for c in cases])
    peaks = np.array([c[1] for c in cases])
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                                capture_output=True, text=True).stdout.strip()
    except OSError:
        commit = "unknown"
    result = {
        "command": f"python benchmarks/bench_graph_fuzz.py --cases {args.cases} --seed {args.seed}",
        "run_at": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "ardiff_commit": commit,
        "load_average_1min": round(os.getloadavg()[0], 2),
        "numpy": np.__version__,
        "python": platform.python_version(),
        "address_space_limit_bytes": ADDRESS_SPACE,
        "tried": args.cases,
        "loaded": counts["loaded"],
        "refused": counts["refused"],
        "other": counts["other"],
        "others": others[:20],
        "seconds_total": round(wall, 2),
        "ms_median": round(float(np.median(times)) * 1e3, 3),
        "ms_p99": round(float(np.quantile(times, 0.99)) * 1e3, 3),
        "slowest": {"case": slowest[2], "ms": round(slowest[0] * 1e3, 2),
                    "peak_kib": round(slowest[1] / 1024, 1), "mutations": slowest[3],
                    "outcome": slowest[4], "text_bytes": slowest[5]},
        "largest": {"case": largest[2], "peak_kib": round(largest[1] / 1024, 1),
                    "ms": round(largest[0] * 1e3, 2), "mutations": largest[3],
                    "outcome": largest[4], "text_bytes": largest[5]},
        "first_run_slowest": {"case": first_slowest[2], "ms": round(first_slowest[0] * 1e3, 2),
                              "mutations": first_slowest[3]},
        "first_run_largest": {"case": first_largest[2],
                              "peak_kib": round(first_largest[1] / 1024, 1),
                              "mutations": first_largest[3]},
        "peak_kib_median": round(float(np.median(peaks)) / 1024, 1),
        "max_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
