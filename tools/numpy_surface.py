"""Print the counts table of the NumPy surface survey (issue 20, point 1).

    python tools/numpy_surface.py

Every public function of `numpy`, `numpy.linalg` and `numpy.fft` is called on traced
float input and classified as matched / refused / plain (by reason) / skipped; the
classification is tests/numpy_surface.py, the same code tests/test_numpy_surface.py runs.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from numpy_surface import main  # noqa: E402

if __name__ == "__main__":
    main()
