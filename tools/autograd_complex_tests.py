"""Run HIPS autograd's test files with complex cases included, imports pointed at ardiff.

Usage::

    python tools/autograd_complex_tests.py AUTOGRAD_SDIST_DIR [FILE ...]

`tools/autograd_tests.py` measures the real-valued cases of autograd's test files
(issue 11) and leaves complex ones out; this script runs whole files, complex cases and
all (issue 14): `test_complex.py` and `test_fft.py`, and the complex cases inside
`test_numpy.py`, `test_systematic.py` and `test_linalg.py` (their `combo_check` and
`*_ufunc_check` helpers try complex candidates, which `ardiff.testing.combo_check`
keeps).  Each file is copied with `tools/autograd_examples.point_at_ardiff` applied
(`from autograd import tuple` becomes the builtin) and run by pytest in its own process;
the script prints pytest's summary per file, every failing test with its first error
line, and the total.  Nothing here is part of the test suite.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from autograd_examples import point_at_ardiff

ROOT = Path(__file__).resolve().parent.parent
FILES = ["test_complex.py", "test_fft.py", "test_numpy.py", "test_systematic.py",
         "test_linalg.py"]
HELPERS = ["numpy_utils.py", "conftest.py"]


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__)
        return 2
    tests = Path(argv[0]) / "tests"
    files = argv[1:] or FILES
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT),
                                                       os.environ.get("PYTHONPATH", "")]))
    passed = failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for name in files + HELPERS:
            source = (tests / name).read_text().replace("from autograd import tuple",
                                                        "from builtins import tuple")
            (work / name).write_text(point_at_ardiff(source))
        for name in files:
            proc = subprocess.run(
                [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir",
                 str(work), "-o", "addopts=", "--tb=line", "-rf", "-W",
                 "ignore::DeprecationWarning", str(work / name)],
                cwd=work, env=env, capture_output=True, text=True, timeout=1800)
            lines = proc.stdout.strip().splitlines()
            summary = lines[-1] if lines else proc.stderr.strip()[-300:]
            print(f"{name}: {summary}")
            for line in lines:
                if line.startswith("FAILED"):
                    print(f"    {line}")
            passed += sum(int(n) for n in re.findall(r"(\d+) passed", summary))
            failed += sum(int(n) for n in re.findall(r"(\d+) (?:failed|error)", summary))
    total = passed + failed
    print(f"total: {passed} of {total} passed ({100.0 * passed / max(total, 1):.1f}%)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
