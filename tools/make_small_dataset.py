"""Build ardiff's bundled ``fashion-mnist-small`` dataset from a full Fashion-MNIST copy.

Takes the first 9,000 training and the first 2,000 test examples (no shuffling,
no other change to the data) and writes them as gzipped IDX files into
``ardiff/paper/datasets/fashion-mnist-small/``.  The source is by default the copy that
Debian's ``dataset-fashion-mnist`` package installs::

    apt-get install dataset-fashion-mnist
    python tools/make_small_dataset.py

The output is deterministic (gzip level 9, no timestamp in the header), so
running it again on the same source reproduces the committed files exactly.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ardiff.paper.data import read_idx, write_idx  # noqa: E402

SOURCE = Path("/usr/share/datasets/fashion-mnist")
DEST = ROOT / "ardiff" / "paper" / "datasets" / "fashion-mnist-small"
COUNTS = {"train": 9_000, "t10k": 2_000}
MAX_TOTAL_BYTES = 5_000_000  # "at most 5 MB", in decimal megabytes


def main(argv: list[str] | None = None) -> int:
    """Write the subset and print its class counts, sizes and SHA-256 sums."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=SOURCE, help="full Fashion-MNIST IDX files")
    parser.add_argument("--dest", type=Path, default=DEST, help="output directory")
    args = parser.parse_args(argv)

    total = 0
    for prefix, n in COUNTS.items():
        images = read_idx(args.source / f"{prefix}-images-idx3-ubyte.gz")[:n]
        labels = read_idx(args.source / f"{prefix}-labels-idx1-ubyte.gz")[:n]
        if images.shape != (n, 28, 28) or labels.shape != (n,):
            raise SystemExit(f"{prefix}: source too small: {images.shape}, {labels.shape}")
        counts = np.bincount(labels, minlength=10)
        print(f"{prefix}: {n} examples, per class {counts.tolist()}")
        if counts.min() < 0.8 * n / 10:
            raise SystemExit(f"{prefix}: classes unbalanced: {counts.tolist()}")
        for kind, arr in (("images-idx3", images), ("labels-idx1", labels)):
            path = write_idx(args.dest / f"{prefix}-{kind}-ubyte.gz", arr, gzip=True)
            data = path.read_bytes()
            total += len(data)
            print(f"  {path.name}: {len(data)} bytes, sha256 {hashlib.sha256(data).hexdigest()}")
    print(f"total: {total} bytes")
    if total > MAX_TOTAL_BYTES:
        raise SystemExit(f"total {total} bytes exceeds {MAX_TOTAL_BYTES}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
