"""Run HIPS autograd's examples with their imports pointed at ardiff (issue 11).

Usage::

    pip download --no-deps --no-binary :all: autograd && tar xzf autograd-*.tar.gz
    python tools/autograd_examples.py autograd-1.9.1 [--timeout 120] [--iters 3]
                                                     [--only NAME ...] [--no-compare]
                                                     [--word-only]

The script copies the sdist's `examples/` folder twice into a temporary directory.  In
one copy every `autograd` import is rewritten to ardiff (`autograd.numpy` ->
`ardiff.numpy`, `autograd.scipy` -> `ardiff.scipy`, `autograd.extend` ->
`ardiff.extend`, `autograd.misc` -> `ardiff.misc`, `autograd.test_util` ->
`ardiff.testing`, `autograd.builtins` -> Python's `builtins`, `autograd.numpy.random`
-> `numpy.random`, `from autograd import f` -> `from ardiff import f`); the other keeps
autograd (when it is installed) as the reference.  In both, loop budgets are cut
(`num_iters`, `num_epochs`, `maxiter`, time steps, long `range` loops, `while` loops,
`max_lines` of text data, and the iterations of every `scipy.optimize.minimize` call) so
that each example finishes in seconds, and matplotlib draws to the Agg backend without
pausing.  A `sitecustomize` module records the first few results of `grad`,
`value_and_grad`, `elementwise_grad`, `jacobian` and `hessian` in each run, and seeds NumPy's global
random state and makes unseeded `RandomState()` / `default_rng()` start from seed 0
(most examples seed their own), so the two runs' first gradients are
taken at the same points and are compared (largest difference relative to the largest
autograd entry).

MNIST without the network: four examples (convnet, generative_adversarial_net,
neural_net, variational_autoencoder) load MNIST through the sdist's `data_mnist.py`,
which downloads it.  When a folder of idx files is available (`--mnist-dir`, by default
Debian's `dataset-fashion-mnist` folder `/usr/share/datasets/fashion-mnist` when it
exists), both copies get a stand-in `data_mnist.py` that reads those files instead and
returns the same thing the original does: train images, train labels, test images, test
labels as uint8 arrays of shapes (N, 28, 28) and (N,).  With Debian's files this is
**Fashion-MNIST standing in for MNIST** (same shapes, 10 classes, different pictures),
so those examples' accuracies are not MNIST's; the gradient comparison is unaffected
because both runs read the same arrays.  Only the first `--mnist-limit` training and
test images are returned (default 1000 and a fifth of that), which keeps the examples'
epoch loops (their iteration counts are computed from the data size) to a few batches.

One line per example: whether it runs under ardiff (or the last line of its error),
the gradient comparison, and both wall times (each includes starting Python and
importing the library).  Nothing here is part of the test suite (the suite never
touches the network; tests/test_autograd_programs.py carries small equivalents of the
examples' models).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent

#: Examples built on autograd's internals (tracing nodes, boxes, vector spaces) or that
#: are only helpers of the others; the issue excludes the first group from acceptance.
INTERNALS = {"dot_graph": "uses autograd.tracer (Node, trace)",
             "print_trace": "uses autograd.tracer (Node, trace)",
             "rkhs": "uses autograd.extend Box/VSpace (autograd internals)"}
HELPERS = {"__init__", "data", "data_mnist"}

#: Import rewrites, applied in order to the ardiff copy.
IMPORT_REWRITES = [
    # `ardiff.numpy.random` is an attribute (NumPy's random module), not a submodule, so
    # `import ardiff.numpy.random` fails: random draws need no tracing, use NumPy's
    (r"\bautograd\.numpy\.random\b", "numpy.random"),
    (r"\bautograd\.builtins\b", "builtins"),
    (r"\bautograd\.test_util\b", "ardiff.testing"),
    (r"\bautograd\.", "ardiff."),
    (r"\bfrom autograd import\b", "from ardiff import"),
    (r"\bimport autograd\b", "import ardiff as autograd"),
]

RECORDER = '''
import atexit, os, sys
import numpy as _np

_LIMIT = 3
_records = []


def _flat(value):
    if isinstance(value, dict):
        return [x for k in sorted(value, key=str) for x in _flat(value[k])]
    if isinstance(value, (list, tuple)):
        return [x for v in value for x in _flat(v)]
    try:
        return [_np.ravel(_np.asarray(value, dtype=float))]
    except Exception:
        return []


def _record(result):
    if len(_records) < _LIMIT:
        parts = _flat(result)
        _records.append(_np.concatenate(parts) if parts else _np.zeros(0))


def _wrap(transform, pick):
    def make(fun, *args, **kwargs):
        inner = transform(fun, *args, **kwargs)

        def call(*a, **k):
            out = inner(*a, **k)
            _record(pick(out))
            return out
        for attr in ("__name__", "__doc__"):
            try:
                setattr(call, attr, getattr(inner, attr))
            except Exception:
                pass
        return call
    return make


def _save():
    path = os.environ.get("AE_RECORD")
    if path and _records:
        _np.savez(path, *_records)


def _install(module):
    for name, pick in (("grad", lambda o: o), ("value_and_grad", lambda o: o[1]),
                       ("elementwise_grad", lambda o: o), ("jacobian", lambda o: o),
                       ("hessian", lambda o: o)):
        if hasattr(module, name):
            setattr(module, name, _wrap(getattr(module, name), pick))


try:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as _plt
    _plt.pause = lambda *a, **k: None
    _plt.show = lambda *a, **k: None
except Exception:
    pass

_np.random.seed(0)  # unseeded examples draw the same numbers in both runs


class _SeededRandomState(_np.random.RandomState):
    """RandomState() without a seed starts from seed 0 (convnet's `npr.RandomState()`
    would otherwise draw different weights in the two runs)."""

    def __init__(self, seed=None):
        super().__init__(0 if seed is None else seed)


_default_rng = _np.random.default_rng
# installed before autograd/ardiff import, so `autograd.numpy.random` copies these too
_np.random.RandomState = _SeededRandomState
_np.random.default_rng = lambda seed=None: _default_rng(0 if seed is None else seed)


def _cap_minimize():
    """scipy.optimize.minimize with its iterations capped (most examples run CG to
    convergence, which takes minutes with their plotting callbacks)."""
    try:
        import scipy.optimize as _opt
    except Exception:
        return
    cap = int(os.environ.get("AE_ITERS", "3"))
    original = _opt.minimize

    def minimize(*args, **kwargs):
        options = dict(kwargs.get("options") or {})
        options["maxiter"] = min(int(options.get("maxiter", cap)), cap)
        kwargs["options"] = options
        return original(*args, **kwargs)
    _opt.minimize = minimize


_cap_minimize()


def _ae_budget(_count=[0]):
    """True for the first AE_ITERS passes of the rewritten `while` loops."""
    _count[0] += 1
    return _count[0] <= int(os.environ.get("AE_ITERS", "3"))


import builtins as _builtins
_builtins._ae_budget = _ae_budget

_lib = os.environ.get("AE_LIBRARY")
if _lib:
    import importlib
    _install(importlib.import_module(_lib))
    atexit.register(_save)
'''


def cut_budgets(source: str, iters: int) -> str:
    """The example's source with its loop budgets reduced."""
    source = re.sub(r"\bnum_iters(\s*)=(\s*)\d+", rf"num_iters\1=\g<2>{iters}", source)
    source = re.sub(r"\bnum_epochs(\s*)=(\s*)\d+", r"num_epochs\1=\g<2>1", source)
    source = re.sub(r"([\"']maxiter[\"']\s*:\s*)\d+", rf"\g<1>{iters}", source)
    source = re.sub(r"\bmaxiter(\s*)=(\s*)\d+", rf"maxiter\1=\g<2>{iters}", source)
    source = re.sub(r"(\w*timesteps\w*\s*=\s*)\d+", r"\g<1>10", source)
    source = re.sub(r"\bfor (\w+) in range\((\d{3,})\)", rf"for \1 in range({iters})", source)
    source = re.sub(r"\bmax_lines(\s*)=(\s*)\d+", r"max_lines\1=\g<2>10", source)
    # loops run to convergence (hmm_em's EM): at most `iters` passes (sitecustomize
    # defines the counter)
    source = re.sub(r"^(\s*)while (.+):$", r"\1while _ae_budget() and (\2):", source,
                    flags=re.M)
    return source


#: `--word-only`: the word autograd replaced by ardiff, nothing else (issue 21)
WORD_ONLY = [(r"\bautograd\b", "ardiff")]


def point_at_ardiff(source: str, word_only: bool = False) -> str:
    """The example's source with every autograd import rewritten to ardiff."""
    for pattern, replacement in WORD_ONLY if word_only else IMPORT_REWRITES:
        source = re.sub(pattern, replacement, source)
    return source


#: An example reading a source file as its training text (rnn, lstm read rnn.py).
SOURCE_AS_DATA = re.compile(r"(dirname\(__file__\),\s*([\"']))(\w+\.py)(\2)")


#: Where `dataset-fashion-mnist` (Debian/Ubuntu) installs its idx files.
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")

#: The four idx files `data_mnist.mnist()` reads, in the order it returns them.
MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
               "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")

#: Stand-in for the sdist's `data_mnist.py` (which downloads MNIST): reads local idx
#: files, plain NumPy only so that both runs load byte-identical arrays.
MNIST_STANDIN = '''"""Stand-in written by tools/autograd_examples.py: local idx files, no download.

Source folder: {directory} ({label}).  Returns the first {limit} training and
{test_limit} test images.
"""
import gzip
import os

import numpy as np

_DIR = {directory!r}
_FILES = {files!r}


def _read(stem):
    for name in (stem + ".gz", stem):
        path = os.path.join(_DIR, name)
        if os.path.isfile(path):
            opener = gzip.open if name.endswith(".gz") else open
            with opener(path, "rb") as fh:
                raw = fh.read()
            ndim = raw[3]
            shape = tuple(int.from_bytes(raw[4 + 4 * k:8 + 4 * k], "big") for k in range(ndim))
            return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)
    raise FileNotFoundError(f"no {{stem}}(.gz) in {{_DIR}}")


def mnist():
    train_images, train_labels, test_images, test_labels = (_read(s) for s in _FILES)
    return (train_images[:{limit}].copy(), train_labels[:{limit}].copy(),
            test_images[:{test_limit}].copy(), test_labels[:{test_limit}].copy())
'''


def mnist_standin(directory: Path, limit: int) -> str:
    """Source of a `data_mnist.py` reading `directory`'s idx files (first `limit` images).

    Raises
    ------
    FileNotFoundError
        If one of the four idx files (gzipped or not) is missing from `directory`.
    """
    for stem in MNIST_FILES:
        if not any((directory / name).is_file() for name in (stem + ".gz", stem)):
            raise FileNotFoundError(f"--mnist-dir {directory}: no {stem}(.gz) there")
    label = ("Fashion-MNIST standing in for MNIST"
             if "fashion" in str(directory).lower() else "local idx files")
    return MNIST_STANDIN.format(directory=str(directory), label=label, files=MNIST_FILES,
                                limit=limit, test_limit=max(limit // 5, 1))


def prepare(examples: Path, target: Path, iters: int, to_ardiff: bool,
            mnist: str | None = None, word_only: bool = False) -> None:
    shutil.copytree(examples, target)
    for path in target.rglob("*.py"):
        source = cut_budgets(path.read_text(), iters)
        if to_ardiff:
            source = point_at_ardiff(source, word_only)
        # both runs read the original text (the rewrite changes the ardiff copy's)
        for match in SOURCE_AS_DATA.finditer(source):
            shutil.copy(examples / path.relative_to(target).parent / match.group(3),
                        path.parent / (match.group(3) + ".txt"))
        source = SOURCE_AS_DATA.sub(r"\1\3.txt\4", source)
        path.write_text(source)
    (target / "sitecustomize.py").write_text(RECORDER)
    if mnist is not None:
        (target / "data_mnist.py").write_text(mnist)


def run(script: Path, library: str, record: Path, timeout: float, iters: int = 3
        ) -> tuple[str, float, str]:
    """`(status, seconds, reason)` of one example run."""
    env = dict(os.environ, AE_LIBRARY=library, AE_RECORD=str(record), MPLBACKEND="Agg",
               AE_ITERS=str(iters),
               PYTHONPATH=os.pathsep.join([str(script.parent.parent), str(script.parent),
                                           str(ROOT), os.environ.get("PYTHONPATH", "")]))
    start = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, script.name], cwd=script.parent, env=env,
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return "timeout", time.perf_counter() - start, f"over {timeout:.0f} s"
    seconds = time.perf_counter() - start
    if proc.returncode == 0:
        return "runs", seconds, ""
    lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
    reason = lines[-1].strip() if lines else f"exit status {proc.returncode}"
    if "urlopen" in proc.stderr or "URLError" in proc.stderr or "socket" in proc.stderr:
        reason = "needs the network (downloads data): " + reason
    return "fails", seconds, reason[:160]


def compare(ours: Path, theirs: Path) -> str:
    if not ours.exists() or not theirs.exists():
        return "-"
    with np.load(ours) as a, np.load(theirs) as b:
        n = min(len(a.files), len(b.files))
        if n == 0:
            return "-"
        worst = 0.0
        for k in range(n):
            x, y = a[f"arr_{k}"], b[f"arr_{k}"]
            if x.shape != y.shape:
                return f"shapes differ {x.shape} vs {y.shape}"
            scale = max(float(np.max(np.abs(y))) if y.size else 0.0, 1e-300)
            worst = max(worst, float(np.max(np.abs(x - y))) / scale if y.size else 0.0)
        return f"{n} grad(s), rel diff {worst:.1e}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sdist", type=Path, help="the unpacked autograd sdist")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per run")
    parser.add_argument("--iters", type=int, default=3, help="iteration budget")
    parser.add_argument("--only", nargs="*", help="example names to run")
    parser.add_argument("--no-compare", action="store_true", help="skip autograd's runs")
    parser.add_argument("--word-only", action="store_true",
                        help="replace only the word autograd with ardiff (no import table)")
    parser.add_argument("--mnist-dir", type=Path, default=None,
                        help="folder of MNIST-format idx files replacing the MNIST download "
                             f"(default: {DEBIAN_FASHION_MNIST} if it exists, i.e. "
                             "Fashion-MNIST standing in for MNIST)")
    parser.add_argument("--mnist-limit", type=int, default=1000,
                        help="training images the stand-in returns (test: a fifth)")
    args = parser.parse_args(argv)
    examples = args.sdist / "examples"
    if not examples.is_dir():
        parser.error(f"{examples} is not a folder: pass the unpacked autograd sdist")
    compare_runs = not args.no_compare
    if compare_runs:
        try:
            import autograd  # noqa: F401  (the reference)
        except ImportError:
            print("autograd is not installed: running ardiff only")
            compare_runs = False
    mnist_dir = args.mnist_dir
    if mnist_dir is None and DEBIAN_FASHION_MNIST.is_dir():
        mnist_dir = DEBIAN_FASHION_MNIST
    mnist = None
    if mnist_dir is not None:
        try:
            mnist = mnist_standin(mnist_dir, args.mnist_limit)
        except FileNotFoundError as error:
            parser.error(str(error))
        kind = ("Fashion-MNIST stands in for MNIST (same shapes, 10 classes)"
                if "fashion" in str(mnist_dir).lower() else "local idx files replace MNIST")
        print(f"MNIST examples: {kind}; data_mnist.py reads {mnist_dir} in both runs, "
              f"first {args.mnist_limit} training images")
    else:
        print("MNIST examples: no --mnist-dir and no Fashion-MNIST files found; "
              "they will try to download MNIST")
    work = Path(tempfile.mkdtemp(prefix="autograd_examples_"))
    prepare(examples, work / "ex_ardiff", args.iters, to_ardiff=True, mnist=mnist,
            word_only=args.word_only)
    if compare_runs:
        prepare(examples, work / "ex_autograd", args.iters, to_ardiff=False, mnist=mnist)
    scripts = sorted(p for p in (work / "ex_ardiff").rglob("*.py")
                     if p.stem not in HELPERS and p.name != "sitecustomize.py")
    if args.only:
        scripts = [p for p in scripts if p.stem in args.only]
    counts = {"runs": 0, "fails": 0, "timeout": 0}
    print(f"{'example':34} {'ardiff':8} {'gradients vs autograd':30} {'ardiff s':>9} "
          f"{'autograd s':>10}  reason")
    for script in scripts:
        name = str(script.relative_to(work / "ex_ardiff").with_suffix(""))
        ours = work / f"{script.stem}.ardiff.npz"
        status, seconds, reason = run(script, "ardiff", ours, args.timeout, args.iters)
        counts[status] += 1
        theirs_time, verdict = "", "-"
        if compare_runs:
            theirs = work / f"{script.stem}.autograd.npz"
            their_script = work / "ex_autograd" / script.relative_to(work / "ex_ardiff")
            their_status, their_seconds, _ = run(their_script, "autograd", theirs,
                                                 args.timeout, args.iters)
            theirs_time = f"{their_seconds:.1f}" + ("" if their_status == "runs" else "*")
            verdict = compare(ours, theirs)
        if status != "runs" and script.stem in INTERNALS:
            reason = f"{INTERNALS[script.stem]}: {reason}"
        print(f"{name:34} {status:8} {verdict:30} {seconds:9.1f} {theirs_time:>10}  {reason}",
              flush=True)
    print(f"\n{counts['runs']} of {len(scripts)} examples run under ardiff "
          f"({counts['fails']} fail, {counts['timeout']} time out); "
          "autograd times marked * did not finish cleanly.  Files in " + str(work))
    return 0


if __name__ == "__main__":
    sys.exit(main())
