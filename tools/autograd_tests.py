"""Run HIPS autograd's own test files with their imports pointed at ardiff (issue 11).

Usage::

    pip download --no-deps --no-binary :all: autograd==1.9.1 && tar xzf autograd-*.tar.gz
    python tools/autograd_tests.py autograd-1.9.1 [--timeout 900] [--test-timeout 120]
                                                  [--only test_linalg.py ...] [-k EXPR]

The script copies the sdist's test files for NumPy, scalar ops, binary ops, the
systematic checks, linalg and SciPy (with their helpers `numpy_utils.py` and
`conftest.py`) into a temporary directory, rewrites every `autograd` import with the
mapping that `tools/autograd_examples.py` uses for the examples, runs pytest on each
file in its own process (`-p no:cacheprovider`, a wall-clock limit per file; a file
over its limit is rerun test by test, each with its own limit), and prints per file
the tests collected, passed, failed and skipped, then every failing test with the first
line of its error.

Complex numbers are issue 14, so only real-valued cases count here.  A test is
complex-valued, and left out (deselected, counted in the `complex` column), when its
own code builds complex numbers (a complex literal such as `1j` inside the test
function), when its name says so (`*_complex`), or when it is listed in
`COMPLEX_BY_NATURE` with the reason (a real input whose result is complex).  Tests that
mix real and complex inputs in one `combo_check` or `*_ufunc_check` call keep their
real-valued part: the helpers' `test_complex=True` becomes `False`, and `combo_check`
drops the complex entries from its lists of candidate arguments (the names of the tests
so reduced are printed).  A test that still fails with ardiff's refusal of complex
values is reported as a failure, not excluded.

Nothing here is part of the test suite.
"""

from __future__ import annotations

import argparse
import ast
import os
import re
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

from autograd_examples import point_at_ardiff

ROOT = Path(__file__).resolve().parent.parent

#: The test files the issue names, in the order they are reported.
TEST_FILES = ["test_numpy.py", "test_scalar_ops.py", "test_binary_ops.py",
              "test_systematic.py", "test_linalg.py", "test_scipy.py"]
HELPERS = ["numpy_utils.py", "conftest.py"]

#: Tests with real inputs whose results are complex (so they are complex-valued).
COMPLEX_BY_NATURE = {
    "test_linalg.py::test_eig_real":
        "eig of a nonsymmetric real matrix: complex eigenvalues and eigenvectors",
    "test_scipy.py::test_sqrtm":
        "sqrtm of a symmetric random matrix with negative eigenvalues (the draw of the "
        "sdist's seed 42 has two): its square root is complex",
}

#: Replaces `combo_check` in the copies: complex candidates are dropped (issue 14).
REAL_ONLY = '''"""check_grads and combo_check of ardiff.testing, real-valued candidates only."""
import numpy as _np

from ardiff.testing import check_grads
from ardiff.testing import combo_check as _combo_check

__all__ = ["check_grads", "combo_check"]


def _real(value):
    try:
        return not _np.iscomplexobj(value)
    except Exception:
        return True


def combo_check(fun, *args, **kwargs):
    inner = _combo_check(fun, *args, **kwargs)

    def check(*arg_lists, **kwarg_lists):
        arg_lists = [[v for v in vs if _real(v)] for vs in arg_lists]
        kwarg_lists = {k: [v for v in vs if _real(v)] for k, vs in kwarg_lists.items()}
        if not all(arg_lists) or not all(kwarg_lists.values()):
            import pytest  # nothing real left to check: a skip, not a vacuous pass
            pytest.skip("every candidate of an argument is complex")
        return inner(*arg_lists, **kwarg_lists)

    return check
'''

#: Rewrites applied before the shared mapping of `autograd_examples`.
EXTRA_REWRITES = [
    (r"\bfrom autograd import tuple\b", "from builtins import tuple"),
    (r"\bfrom autograd\.test_util import\b", "from _real_only import"),
    (r"\btest_complex=True\b", "test_complex=False"),
]


#: Calls of autograd's check helpers that also try complex inputs unless told not to.
HELPER_CALL = re.compile(r"\b(stat_check|unary_ufunc_check|binary_ufunc_check\w*)\(")


def complex_tests(source: str) -> dict[str, str]:
    """Names of the test functions in `source` that are complex-valued, with why."""
    found = {}
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.FunctionDef) or not node.name.startswith("test"):
            continue
        literal = any(isinstance(n, ast.Constant) and isinstance(n.value, complex)
                      for n in ast.walk(node))
        if literal:
            found[node.name] = "builds complex inputs (complex literal in the test)"
        elif "complex" in node.name:
            found[node.name] = "named complex"
    return found


def prepare(tests: Path, target: Path, files: list[str]) -> tuple[dict[str, str], list[str]]:
    """Copy and rewrite the test files; `(complex-valued test ids, reduced test ids)`."""
    target.mkdir(parents=True)
    excluded = dict(COMPLEX_BY_NATURE)
    reduced = []
    for name in files + HELPERS:
        source = (tests / name).read_text()
        if name in files:
            excluded.update({f"{name}::{t}": why for t, why in complex_tests(source).items()})
            for node in ast.walk(ast.parse(source)):
                test_id = f"{name}::{getattr(node, 'name', '')}"
                if (not isinstance(node, ast.FunctionDef) or not node.name.startswith("test")
                        or test_id in excluded):
                    continue
                body = ast.get_source_segment(source, node) or ""
                if (HELPER_CALL.search(body) and "test_complex=False" not in body) or \
                        re.search(r"\bC\(", body):
                    if test_id not in reduced:  # a name defined twice is listed once
                        reduced.append(test_id)
        for pattern, replacement in EXTRA_REWRITES:
            source = re.sub(pattern, replacement, source)
        (target / name).write_text(point_at_ardiff(source))
    (target / "_real_only.py").write_text(REAL_ONLY)
    return excluded, reduced


@dataclass
class FileResult:
    collected: int = 0
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    complex: int = 0
    seconds: float = 0.0
    failures: list[tuple[str, str]] = field(default_factory=list)


def first_error_line(text: str) -> str:
    """The first informative line of a pytest failure text."""
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    for line in lines:
        if line.startswith("E "):
            return line[1:].strip()[:200]
    return (lines[-1] if lines else "")[:200]


def parse_junit(path: Path, result: FileResult) -> None:
    for case in ET.parse(path).getroot().iter("testcase"):
        name = case.get("name", "?")
        problem = case.find("failure")
        if problem is None:
            problem = case.find("error")
        if problem is not None:
            result.failed += 1
            message = first_error_line(problem.text or "") or problem.get("message", "")
            result.failures.append((name, message))
        elif case.find("skipped") is not None:
            result.skipped += 1
        else:
            result.passed += 1
        result.collected += 1


def pytest_command(work: Path, junit: Path, targets: list[str]) -> list[str]:
    return [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
            "--rootdir", str(work), "-o", "addopts=", f"--junitxml={junit}", *targets]


def environment() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(ROOT), os.environ.get("PYTHONPATH", "")]), MPLBACKEND="Agg")


def deselect_args(name: str, excluded: dict[str, str]) -> list[str]:
    return [arg for test_id in excluded if test_id.startswith(name + "::")
            for arg in ("--deselect", test_id)]


def collect(work: Path, name: str, excluded: dict[str, str], keyword: str | None) -> list[str]:
    extra = ["-k", keyword] if keyword else []
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "--collect-only",
                           "-p", "no:cacheprovider", "--rootdir", str(work), "-o", "addopts=",
                           name, *deselect_args(name, excluded), *extra],
                          cwd=work, env=environment(), capture_output=True, text=True)
    return [line.strip() for line in proc.stdout.splitlines() if "::" in line]


def run_file(work: Path, name: str, excluded: dict[str, str], timeout: float,
             test_timeout: float, keyword: str | None) -> FileResult:
    result = FileResult()
    junit = work / f"{name}.xml"
    extra = ["-k", keyword] if keyword else []
    start = time.perf_counter()
    # deselected cases are counted from a collection without the `-k` filter
    result.complex = (len(collect(work, name, {}, None))
                      - len(collect(work, name, excluded, None)))
    try:
        subprocess.run(pytest_command(work, junit, [name, *deselect_args(name, excluded),
                                                    *extra]),
                       cwd=work, env=environment(), capture_output=True, text=True,
                       timeout=timeout)
        if junit.exists():
            parse_junit(junit, result)
    except subprocess.TimeoutExpired:
        # rerun test by test so one slow test costs only its own limit
        for test_id in collect(work, name, excluded, keyword):
            junit_one = work / "one.xml"
            junit_one.unlink(missing_ok=True)
            try:
                subprocess.run(pytest_command(work, junit_one, [test_id]), cwd=work,
                               env=environment(), capture_output=True, text=True,
                               timeout=test_timeout)
                parse_junit(junit_one, result)
            except subprocess.TimeoutExpired:
                result.collected += 1
                result.failed += 1
                result.failures.append((test_id.split("::", 1)[1],
                                        f"over the {test_timeout:.0f} s limit"))
    result.seconds = time.perf_counter() - start
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sdist", type=Path, help="the unpacked autograd sdist")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per file")
    parser.add_argument("--test-timeout", type=float, default=120.0,
                        help="seconds per test when a file is rerun test by test")
    parser.add_argument("--only", nargs="*", help="test file names to run")
    parser.add_argument("--files", nargs="*", default=TEST_FILES,
                        help="other test files of the sdist to run instead of the issue's six "
                             "(outside the acceptance figure)")
    parser.add_argument("-k", dest="keyword", help="pytest -k expression")
    args = parser.parse_args(argv)
    tests = args.sdist / "tests"
    if not tests.is_dir():
        parser.error(f"{tests} is not a folder: pass the unpacked autograd sdist")
    work = Path(tempfile.mkdtemp(prefix="autograd_tests_")) / "tests"
    excluded, reduced = prepare(tests, work, args.files)
    names = [n for n in args.files if not args.only or n in args.only]
    results = {}
    print(f"{'file':22} {'collected':>9} {'passed':>7} {'failed':>7} {'skipped':>8} "
          f"{'complex':>8} {'seconds':>8}")
    for name in names:
        r = results[name] = run_file(work, name, excluded, args.timeout, args.test_timeout,
                                     args.keyword)
        print(f"{name:22} {r.collected:9} {r.passed:7} {r.failed:7} {r.skipped:8} "
              f"{r.complex:8} {r.seconds:8.1f}", flush=True)
    passed = sum(r.passed for r in results.values())
    failed = sum(r.failed for r in results.values())
    counted = passed + failed
    rate = 100.0 * passed / counted if counted else 0.0
    print(f"\nreal-valued: {passed} of {counted} pass ({rate:.1f}%), "
          f"{sum(r.skipped for r in results.values())} skipped by the tests themselves, "
          f"{sum(r.complex for r in results.values())} complex-valued tests left out")
    for name in names:
        for test, message in results[name].failures:
            print(f"FAILED {name}::{test}: {message}")
    print("\ncomplex-valued tests left out:")
    for test_id, why in sorted(excluded.items()):
        if test_id.split("::")[0] in names:
            print(f"  {test_id}: {why}")
    print("tests whose complex candidates were dropped (real part kept):")
    for test_id in reduced:
        if test_id.split("::")[0] in names:
            print(f"  {test_id}")
    print(f"\nfiles in {work}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
