"""Datasets: IDX files, MNIST and Fashion-MNIST.

:func:`read_idx` and :func:`write_idx` handle the IDX format of the MNIST
family (plain or gzipped).  :func:`load` returns ``(images, labels)`` for

``"mnist"``
    LeCun, Cortes and Burges' handwritten digits (60,000 train / 10,000 test).
``"fashion-mnist"``
    Zalando Research's Fashion-MNIST (60,000 train / 10,000 test).  On Debian
    and Ubuntu, ``apt-get install dataset-fashion-mnist`` puts the files where
    :func:`load` finds them.
``"fashion-mnist-small"``
    The first 9,000 training and 2,000 test images of Fashion-MNIST, shipped
    inside this package, so it works offline and without any install step.

Files are looked for in ``data_dir``, in each directory of ``$ARDIFF_DATA``,
in the user cache (``$XDG_CACHE_HOME/ardiff/<name>``, by default
``~/.cache/ardiff/<name>``) and in ``/usr/share/datasets/<name>``; if they
are nowhere, they are downloaded into the user cache and checked against the
SHA-256 sums recorded in this module.
"""

from __future__ import annotations

import gzip as _gzip
import hashlib
import http.client
import math
import os
import secrets
import struct
import urllib.request
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["DataError", "DATASETS", "read_idx", "write_idx", "load", "one_hot"]


class DataError(ValueError):
    """A data file is missing, corrupt or not what it claims to be."""


#: Names accepted by :func:`load`.
DATASETS = ("mnist", "fashion-mnist", "fashion-mnist-small")

# ----------------------------------------------------------------------------
# IDX format
# ----------------------------------------------------------------------------
# magic: two zero bytes, a type code, the number of dimensions; then one
# big-endian 32-bit size per dimension; then the data, big-endian, C order.

_IDX_CODE_TO_DTYPE = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_IDX_DTYPE_TO_CODE = {dt.newbyteorder("="): code for code, dt in _IDX_CODE_TO_DTYPE.items()}
_GZIP_MAGIC = b"\x1f\x8b"


def _read_bytes(path: Path) -> bytes:
    """Return the (decompressed) content of ``path``; gzip is detected by magic bytes."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise DataError(f"{path}: cannot read IDX file: {e}") from e
    if raw[:2] != _GZIP_MAGIC:
        return raw
    try:
        return _gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as e:
        # BadGzipFile (an OSError) for bad headers, CRC or length mismatches and
        # trailing junk; EOFError for a truncated stream; zlib.error for bad data.
        raise DataError(f"{path}: corrupt gzip data: {e}") from e


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an IDX file (the MNIST format), gzipped or not.

    Parameters
    ----------
    path : str or path-like
        The file.  Gzip compression is recognised by the file's first two bytes
        (``1f 8b``), whatever its name.

    Returns
    -------
    numpy.ndarray
        A new, writable, native-byte-order array with the file's shape and
        element type (``uint8``, ``int8``, ``int16``, ``int32``, ``float32`` or
        ``float64``).

    Raises
    ------
    DataError
        If the file cannot be read, is not valid gzip, has a bad magic number or
        unknown type code, or holds fewer or more bytes than its dimensions say.
        The message names the file.
    """
    path = Path(path)
    buf = _read_bytes(path)
    if len(buf) < 4:
        raise DataError(f"{path}: not an IDX file: only {len(buf)} bytes, need a 4-byte header")
    if buf[0] != 0 or buf[1] != 0:
        raise DataError(
            f"{path}: not an IDX file: bad magic number {buf[:4].hex()} "
            "(must start with two zero bytes)"
        )
    code, ndim = buf[2], buf[3]
    if code not in _IDX_CODE_TO_DTYPE:
        known = ", ".join(f"0x{c:02x}" for c in _IDX_CODE_TO_DTYPE)
        raise DataError(f"{path}: unknown IDX data type code 0x{code:02x} (known: {known})")
    header = 4 + 4 * ndim
    if len(buf) < header:
        raise DataError(
            f"{path}: truncated IDX header: {ndim} dimensions need {header} bytes, "
            f"file has {len(buf)}"
        )
    shape = struct.unpack(f">{ndim}I", buf[4:header])
    dtype = _IDX_CODE_TO_DTYPE[code]
    expected = math.prod(shape) * dtype.itemsize
    found = len(buf) - header
    if found < expected:
        raise DataError(
            f"{path}: truncated IDX data: shape {shape} of {dtype.newbyteorder('=')} needs "
            f"{expected} bytes, file has {found}"
        )
    if found > expected:
        raise DataError(
            f"{path}: {found - expected} trailing bytes after the IDX data "
            f"(shape {shape} of {dtype.newbyteorder('=')} needs {expected} bytes)"
        )
    data = np.frombuffer(buf, dtype=dtype, count=expected // dtype.itemsize, offset=header)
    return data.astype(dtype.newbyteorder("="), copy=True).reshape(shape)


def write_idx(path: str | os.PathLike[str], array: Any, gzip: bool = False) -> Path:
    """Write ``array`` as an IDX file.

    The file is written to a temporary name in the same directory and then
    renamed, so a reader never sees a half-written file.

    Parameters
    ----------
    path : str or path-like
        Destination.  Its name does not decide the compression; ``gzip`` does.
    array : array_like
        Data of type ``uint8``, ``int8``, ``int16``, ``int32``, ``float32`` or
        ``float64``, with at most 255 dimensions each below 2**32.
    gzip : bool, optional
        Compress with gzip (level 9, no timestamp or file name in the header,
        so equal arrays give equal files).

    Returns
    -------
    pathlib.Path
        The path written.

    Raises
    ------
    TypeError
        If the element type has no IDX code.
    ValueError
        If there are too many dimensions or a dimension is too large.
    """
    path = Path(path)
    arr = np.asarray(array)
    native = arr.dtype.newbyteorder("=")
    if native not in _IDX_DTYPE_TO_CODE:
        names = ", ".join(str(d) for d in _IDX_DTYPE_TO_CODE)
        raise TypeError(f"IDX cannot store dtype {arr.dtype}; use one of {names}")
    if arr.ndim > 255:
        raise ValueError(f"IDX allows at most 255 dimensions, array has {arr.ndim}")
    if any(n >= 2**32 for n in arr.shape):
        raise ValueError(f"IDX dimensions must be below 2**32, shape is {arr.shape}")
    code = _IDX_DTYPE_TO_CODE[native]
    payload = (
        bytes((0, 0, code, arr.ndim))
        + struct.pack(f">{arr.ndim}I", *arr.shape)
        + np.ascontiguousarray(arr, dtype=_IDX_CODE_TO_DTYPE[code]).tobytes()
    )
    if gzip:
        payload = _gzip.compress(payload, compresslevel=9, mtime=0)
    _atomic_write(path, [payload])
    return path


def _atomic_write(path: Path, chunks: Any) -> None:
    """Write the byte chunks to a temporary file beside ``path``, then rename it."""
    fd, tmp = _create_temp(path)
    try:
        with os.fdopen(fd, "wb") as f:
            for chunk in chunks:
                f.write(chunk)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _create_temp(path: Path) -> tuple[int, Path]:
    """Create a fresh temporary file beside ``path``; return its descriptor and path.

    Unlike :func:`tempfile.mkstemp` (always mode 0600) the file gets the usual
    permissions under the process umask, which it keeps once renamed to ``path``.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}.part"
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"cannot create a temporary file beside {path}")


# ----------------------------------------------------------------------------
# Where the data lives
# ----------------------------------------------------------------------------

_SPLIT_STEMS = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}

#: Directories below which ``<name>/`` is searched last; Debian's
#: ``dataset-fashion-mnist`` installs ``/usr/share/datasets/fashion-mnist/*.gz``.
_SYSTEM_DIRS: tuple[Path, ...] = (Path("/usr/share/datasets"),)

#: The bundled subset, relative to the ``ardiff`` package.
_BUNDLED = {"fashion-mnist-small": ("datasets", "fashion-mnist-small")}

#: Download mirrors, tried in order.
_MIRRORS = {
    "mnist": (
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
    ),
    "fashion-mnist": (
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
    ),
}

# Size in bytes and SHA-256 of each downloadable .gz file as the mirrors serve it.
# The sizes and sums below are the published ones, the same in many independent
# projects that verify these downloads; the Fashion-MNIST rows belong to the files
# whose MD5 sums the upstream README publishes (8d4fb7e6..., 25c81989...,
# bef4ecab..., bb300cfd...).  They could not be recomputed here (no network), and
# Debian's dataset-fashion-mnist files are *not* byte-identical to them: Debian
# re-gzipped the same IDX data (other MD5 sums, a 2020 gzip timestamp), so files
# found on disk are checked for IDX structure and shape only, never against these.
# Every download is also checked for size and parsed as IDX before it is kept.
_CHECKSUMS: dict[str, dict[str, tuple[int, str]]] = {
    "mnist": {
        "train-images-idx3-ubyte.gz": (
            9912422,
            "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
        ),
        "train-labels-idx1-ubyte.gz": (
            28881,
            "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
        ),
        "t10k-images-idx3-ubyte.gz": (
            1648877,
            "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
        ),
        "t10k-labels-idx1-ubyte.gz": (
            4542,
            "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
        ),
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte.gz": (
            26421880,
            "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
        ),
        "train-labels-idx1-ubyte.gz": (
            29515,
            "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
        ),
        "t10k-images-idx3-ubyte.gz": (
            4422102,
            "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
        ),
        "t10k-labels-idx1-ubyte.gz": (
            5148,
            "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
        ),
    },
}

#: The opener used for downloads (tests replace it; it gets a Request and a timeout).
_urlopen: Callable[..., Any] = urllib.request.urlopen
_TIMEOUT = 60.0
_CHUNK = 1 << 16


def _cache_dir(name: str) -> Path:
    """Return the user cache directory for dataset ``name`` (it may not exist)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "ardiff" / name


def _candidates(stem: str) -> tuple[str, ...]:
    """File names accepted for a standard stem, e.g. ``train-images-idx3-ubyte``."""
    dotted = stem.replace("-idx", ".idx", 1)  # as some unzipped copies are named
    return (stem, stem + ".gz", dotted, dotted + ".gz")


def _find_in(directory: Path, split: str) -> tuple[Path, Path] | None:
    """Return the (images, labels) files of ``split`` in ``directory``, or None."""
    found = []
    for stem in _SPLIT_STEMS[split]:
        hit = next((directory / c for c in _candidates(stem) if (directory / c).is_file()), None)
        if hit is None:
            return None
        found.append(hit)
    return found[0], found[1]


def _search_places(name: str, data_dir: str | os.PathLike[str] | None) -> list[tuple[Path, str]]:
    """The directories searched, in order, each with a note on where it came from."""
    places: list[tuple[Path, str]] = []
    if data_dir is not None:
        root = Path(data_dir).expanduser()
        places += [(root, "data_dir"), (root / name, "data_dir")]
    for entry in os.environ.get("ARDIFF_DATA", "").split(os.pathsep):
        if entry:
            root = Path(entry).expanduser()
            places += [(root, "$ARDIFF_DATA"), (root / name, "$ARDIFF_DATA")]
    places.append((_cache_dir(name), "user cache"))
    places += [(d / name, "system datasets") for d in _SYSTEM_DIRS]
    return places


# ----------------------------------------------------------------------------
# Downloading
# ----------------------------------------------------------------------------


def _progress_bar(total: int | None, desc: str, enabled: bool) -> Any:
    """A tqdm bar if tqdm is importable and ``enabled``, else None."""
    if not enabled:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=total, desc=desc, unit="B", unit_scale=True, unit_divisor=1024)


def _download(name: str, filename: str, dest: Path, progress: bool) -> None:
    """Fetch ``filename`` of dataset ``name`` into ``dest``, verified, trying each mirror.

    A download goes to a temporary file beside ``dest`` and is renamed only once
    its size, SHA-256 and IDX structure check out; otherwise it is deleted.
    """
    size, sha256 = _CHECKSUMS[name][filename]
    errors = []
    for mirror in _MIRRORS[name]:
        url = mirror + filename
        try:
            _download_one(url, dest, size, sha256, progress)
            return
        except (OSError, ValueError, http.client.HTTPException) as e:
            # URLError is an OSError, DataError a ValueError
            errors.append(f"{url}: {e}")
    raise DataError(f"could not download {filename}:\n    " + "\n    ".join(errors))


def _download_one(url: str, dest: Path, size: int, sha256: str, progress: bool) -> None:
    request = urllib.request.Request(url, headers={"User-Agent": "ardiff"})
    fd, tmp = _create_temp(dest)
    digest = hashlib.sha256()
    got = 0
    try:
        with os.fdopen(fd, "wb") as out, _urlopen(request, timeout=_TIMEOUT) as response:
            length = response.headers.get("Content-Length") if response.headers else None
            bar = _progress_bar(int(length) if length else size, dest.name, progress)
            try:
                while chunk := response.read(_CHUNK):
                    out.write(chunk)
                    digest.update(chunk)
                    got += len(chunk)
                    if bar is not None:
                        bar.update(len(chunk))
            finally:
                if bar is not None:
                    bar.close()
        if got != size:
            raise DataError(f"{url}: got {got} bytes, expected {size} (partial or wrong file)")
        if digest.hexdigest() != sha256:
            raise DataError(f"{url}: SHA-256 mismatch: got {digest.hexdigest()}, expected {sha256}")
        read_idx(tmp)  # the header and length must agree too
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


# ----------------------------------------------------------------------------
# Loading
# ----------------------------------------------------------------------------


def _normalise_name(name: str) -> str:
    key = str(name).lower().replace("_", "-")
    if key not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    return key


@contextmanager
def _bundled_files(name: str, split: str) -> Iterator[tuple[Path, Path]]:
    """Paths of a bundled dataset's files, valid inside the ``with`` block."""
    folder = resources.files("ardiff").joinpath(*_BUNDLED[name])
    images, labels = (folder.joinpath(stem + ".gz") for stem in _SPLIT_STEMS[split])
    for res in (images, labels):
        if not res.is_file():
            raise DataError(
                f"bundled dataset {name!r} is incomplete: {res} is missing; reinstall ardiff "
                "or use load('fashion-mnist', ...)"
            )
    with resources.as_file(images) as ip, resources.as_file(labels) as lp:
        yield Path(ip), Path(lp)


def _not_found_message(
    name: str, split: str, places: list[tuple[Path, str]], download: bool, errors: list[str]
) -> str:
    images, labels = _SPLIT_STEMS[split]
    lines = [
        f"cannot find the {split} split of {name!r} ({images}[.gz] and {labels}[.gz] "
        "in one directory). Searched:"
    ]
    lines += [f"  - {p} ({why})" for p, why in places]
    if not os.environ.get("ARDIFF_DATA"):
        lines.append("  ($ARDIFF_DATA is not set)")
    if not download:
        lines.append("Downloading was not attempted (download=False).")
    elif errors:
        lines.append("Downloading failed:")
        lines += [f"  - {e}" for e in errors]
    lines.append("To obtain the data:")
    if name == "fashion-mnist":
        lines.append(
            "  - on Debian/Ubuntu: apt-get install dataset-fashion-mnist "
            "(installs /usr/share/datasets/fashion-mnist/, found automatically)"
        )
    lines.append(
        "  - put the four IDX files (gzipped or not) in a directory, or in its "
        f"'{name}/' subdirectory, and pass data_dir=... or set ARDIFF_DATA to it"
    )
    mirrors = " or ".join(_MIRRORS[name])
    lines.append(
        f"  - call load(..., download=True) with network access; the files come from "
        f"{mirrors} into {_cache_dir(name)}"
    )
    if name == "fashion-mnist":
        lines.append(
            "  - or use the small subset shipped with ardiff: load('fashion-mnist-small', ...)"
        )
    return "\n".join(lines)


def _to_arrays(images_path: Path, labels_path: Path) -> tuple[np.ndarray, np.ndarray]:
    images = read_idx(images_path)
    labels = read_idx(labels_path)
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (28, 28):
        raise DataError(
            f"{images_path}: expected uint8 images of shape (n, 28, 28), "
            f"got {images.dtype} {images.shape}"
        )
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise DataError(
            f"{labels_path}: expected uint8 labels of shape (n,), got {labels.dtype} {labels.shape}"
        )
    if labels.shape[0] != images.shape[0]:
        raise DataError(
            f"{images_path} holds {images.shape[0]} images but {labels_path} holds "
            f"{labels.shape[0]} labels"
        )
    if labels.size and labels.max() > 9:
        raise DataError(f"{labels_path}: label {int(labels.max())} outside 0..9")
    x = images.reshape(images.shape[0], 28 * 28).astype(np.float64)
    x /= 255.0
    return x, labels.astype(np.int64)


def load(
    name: str,
    split: str,
    data_dir: str | os.PathLike[str] | None = None,
    *,
    download: bool = True,
    progress: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Load a split of MNIST, Fashion-MNIST or the bundled Fashion-MNIST subset.

    Parameters
    ----------
    name : {"mnist", "fashion-mnist", "fashion-mnist-small"}
        The dataset.  ``"fashion-mnist-small"`` ships with ardiff (first 9,000
        training and 2,000 test images) and ignores the other arguments.
    split : {"train", "test"}
        Which split.
    data_dir : str or path-like, optional
        Directory searched first, both itself and its ``<name>/`` subdirectory.
        Then come the directories in ``$ARDIFF_DATA`` (``os.pathsep``-separated,
        likewise each itself and ``<name>/``), the user cache
        ``$XDG_CACHE_HOME/ardiff/<name>`` (default ``~/.cache/ardiff/<name>``) and
        ``/usr/share/datasets/<name>``.  A directory is used if it holds both the
        images and the labels file of the split, under the standard names
        (``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
        ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``), each plain or
        with ``.gz``.
    download : bool, optional
        If the files are nowhere, download the missing ones into the user cache,
        checking their size, SHA-256 and IDX structure.
    progress : bool, optional
        Show a tqdm progress bar while downloading, if tqdm is installed.

    Returns
    -------
    images : numpy.ndarray
        ``float64``, shape ``(n, 784)``, pixel values scaled to ``[0, 1]``.
    labels : numpy.ndarray
        ``int64``, shape ``(n,)``, class indices 0 to 9.

    Raises
    ------
    ValueError
        For an unknown ``name`` or ``split``.
    DataError
        If the data cannot be found or downloaded (the message lists every place
        searched and how to get the data), or a file is corrupt.
    """
    key = _normalise_name(name)
    if split not in _SPLIT_STEMS:
        raise ValueError(f"unknown split {split!r}; choose 'train' or 'test'")
    if key in _BUNDLED:
        with _bundled_files(key, split) as (images, labels):
            return _to_arrays(images, labels)

    places = _search_places(key, data_dir)
    for directory, _why in places:
        hit = _find_in(directory, split)
        if hit is not None:
            return _to_arrays(*hit)

    errors: list[str] = []
    if download:
        cache = _cache_dir(key)
        paths = []
        for stem in _SPLIT_STEMS[split]:
            existing = next((cache / c for c in _candidates(stem) if (cache / c).is_file()), None)
            if existing is None:
                existing = cache / (stem + ".gz")
                try:
                    _download(key, existing.name, existing, progress)
                except DataError as e:
                    errors.append(str(e))
                    break
            paths.append(existing)
        else:
            return _to_arrays(*paths)
    raise DataError(_not_found_message(key, split, places, download, errors))


def one_hot(labels: Any, n_classes: int = 10) -> np.ndarray:
    """Encode integer class labels as one-hot rows.

    Parameters
    ----------
    labels : array_like of int
        Class indices in ``0 .. n_classes - 1``, any shape.
    n_classes : int, optional
        Number of classes.

    Returns
    -------
    numpy.ndarray
        ``float64`` array of shape ``labels.shape + (n_classes,)`` with a single
        1 in each row.

    Raises
    ------
    ValueError
        If a label is not an integer or lies outside ``0 .. n_classes - 1``.
    """
    labels = np.asarray(labels)
    if not np.issubdtype(labels.dtype, np.integer):
        whole = np.issubdtype(labels.dtype, np.floating) and np.all(np.mod(labels, 1) == 0)
        if labels.size and not whole:
            raise ValueError(f"one_hot needs integer labels, got dtype {labels.dtype}")
    labels = labels.astype(np.int64, copy=False)
    if n_classes < 1:
        raise ValueError(f"n_classes must be positive, got {n_classes}")
    if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
        raise ValueError(
            f"labels must lie in 0..{n_classes - 1}, got range "
            f"{int(labels.min())}..{int(labels.max())}"
        )
    return np.eye(n_classes, dtype=np.float64)[labels]
