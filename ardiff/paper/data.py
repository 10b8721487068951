"""Datasets of the paper's experiments: IDX files, MNIST and Fashion-MNIST.

`read_idx` and `write_idx` handle the IDX format of the MNIST family (plain or
gzipped).  `load` returns `(images, labels)` for

`"mnist"`
    LeCun, Cortes and Burges' handwritten digits (60,000 train / 10,000 test).
`"fashion-mnist"`
    Zalando Research's Fashion-MNIST (60,000 train / 10,000 test).  On Debian
    and Ubuntu, `apt-get install dataset-fashion-mnist` puts the files where
    `load` finds them.
`"fashion-mnist-small"`
    The first 9,000 training and 2,000 test images of Fashion-MNIST, shipped
    inside this package, so it works offline and without any install step.

Files are looked for in `data_dir`, in each directory of `$ARDIFF_DATA`, in the
user cache (`$XDG_CACHE_HOME/ardiff/<name>`, by default `~/.cache/ardiff/<name>`)
and in `/usr/share/datasets/<name>`; if they are nowhere, they are downloaded
into the user cache with `pooch` (an optional dependency, in the `cli` extra),
which checks them against the SHA-256 sums recorded in this module.

Files found on disk are verified too, wherever they come from, once per file (cached by
path, size and modification time, in the process and, for later processes, in
`verified-files.json` in the user cache): a file is good if its bytes are
the published `.gz` (the download's SHA-256), or if its decompressed IDX content has
the SHA-256 recorded here (`_IDX_CHECKSUMS`: the bundled subset, and Fashion-MNIST as
Debian's re-gzipped `dataset-fashion-mnist` holds it).  A file whose header gives the
published data's shape (60,000 or 10,000 examples) but whose content differs -- a
flipped byte -- raises `DataError` naming it and how to get a good copy.  Files of
another shape are someone's own data (a subset, a test fixture), not a copy of the
published files: they get the structural checks only.  No digest of MNIST's IDX
content is recorded yet, so an MNIST copy other than the published `.gz` files is
checked for structure only.
"""

from __future__ import annotations

import gzip as _gzip
import hashlib
import json
import math
import os
import struct
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from .files import atomic_write

__all__ = ["DataError", "DataNotFoundError", "DATASETS", "read_idx", "write_idx", "load",
           "found_locally", "cache_dir"]


class DataError(ValueError):
    """A data file is missing, corrupt or not what it claims to be."""


#: Names accepted by `load`.
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
    """Return the (decompressed) content of `path`; gzip is detected by magic bytes."""
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
        (`1f 8b`), whatever its name.

    Returns
    -------
    numpy.ndarray
        A new, writable, native-byte-order array with the file's shape and
        element type (`uint8`, `int8`, `int16`, `int32`, `float32` or
        `float64`).

    Raises
    ------
    DataError
        If the file cannot be read, is not valid gzip, has a bad magic number or
        unknown type code, or holds fewer or more bytes than its dimensions say.
        The message names the file.
    """
    path = Path(path)
    return _parse_idx(_read_bytes(path), path)


def _parse_idx(buf: bytes, path: Path) -> np.ndarray:
    """The array of the IDX content `buf` (decompressed) read from `path`."""
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
    """Write `array` as an IDX file.

    The file is written to a temporary name in the same directory and then
    renamed, so a reader never sees a half-written file.

    Parameters
    ----------
    path : str or path-like
        Destination.  Its name does not decide the compression; `gzip` does.
    array : array_like
        Data of type `uint8`, `int8`, `int16`, `int32`, `float32` or
        `float64`, with at most 255 dimensions each below 2**32.
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
    atomic_write(path, payload)
    return path


# ----------------------------------------------------------------------------
# Where the data lives
# ----------------------------------------------------------------------------

_SPLIT_STEMS = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}

#: Directories below which `<name>/` is searched last; Debian's
#: `dataset-fashion-mnist` installs `/usr/share/datasets/fashion-mnist/*.gz`.
_SYSTEM_DIRS: tuple[Path, ...] = (Path("/usr/share/datasets"),)

#: The bundled subset, relative to the `ardiff.paper` package.
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

# SHA-256 of each downloadable .gz file as the mirrors serve it, in pooch's
# "algorithm:digest" form.  These are the published sums, the same in many
# independent projects that verify these downloads; the Fashion-MNIST rows belong
# to the files whose MD5 sums the upstream README publishes (8d4fb7e6...,
# 25c81989..., bef4ecab..., bb300cfd...).  Debian's dataset-fashion-mnist files are
# not byte-identical to them: their gzip headers lack the name field and carry a 2020
# timestamp (the compressed data is upstream's), so they are verified by their IDX content
# (`_IDX_CHECKSUMS`) instead.  Every download is also parsed as IDX before use.
_CHECKSUMS: dict[str, dict[str, str]] = {
    "mnist": {
        "train-images-idx3-ubyte.gz":
            "sha256:440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
        "train-labels-idx1-ubyte.gz":
            "sha256:3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
        "t10k-images-idx3-ubyte.gz":
            "sha256:8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
        "t10k-labels-idx1-ubyte.gz":
            "sha256:f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte.gz":
            "sha256:3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
        "train-labels-idx1-ubyte.gz":
            "sha256:a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
        "t10k-images-idx3-ubyte.gz":
            "sha256:346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
        "t10k-labels-idx1-ubyte.gz":
            "sha256:67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
    },
}

#: SHA-256 of the *decompressed* IDX content of each file, with the number of examples
#: the published file holds, for verifying copies found on disk (whose `.gz` bytes may
#: differ from the download's).
#:
#: Fashion-MNIST: computed once from Debian's dataset-fashion-mnist
#: 0.0~git20200523.55506a9-1 (its files checked against the package's md5sums), and
#: shown to be the published data without a download: Debian's `.gz` files hold
#: upstream's deflate streams unchanged, and only their gzip header differs.  Putting
#: upstream's header back -- the name field (the file name without `.gz`) and the
#: modification time in `_UPSTREAM_GZIP_MTIMES`, found by trying the timestamps of 2017
#: against the published SHA-256 -- rebuilds, for all four files, exactly the published
#: `.gz` bytes (the SHA-256 in `_CHECKSUMS`, and the MD5 sums of the upstream README).
#: A deflate stream determines its decompressed bytes, so the IDX content of Debian's
#: files is the published content, and these digests are its SHA-256.
#: `tests/test_hostile_data.py` repeats that reconstruction wherever the Debian package
#: is installed.  MNIST: no verified copy was at hand, so no IDX digest is recorded (its
#: downloads are checked by their `.gz` SHA-256).
#:
#: The subset: computed from the files shipped in ardiff/paper/datasets (their .gz
#: SHA-256 are the ones its README lists; its README records its provenance).
_IDX_CHECKSUMS: dict[str, dict[str, tuple[str, int]]] = {
    "fashion-mnist": {
        "train-images-idx3-ubyte":
            ("c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888", 60000),
        "train-labels-idx1-ubyte":
            ("bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9", 60000),
        "t10k-images-idx3-ubyte":
            ("5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b", 10000),
        "t10k-labels-idx1-ubyte":
            ("0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34", 10000),
    },
    "fashion-mnist-small": {
        "train-images-idx3-ubyte":
            ("eeed8cce8569535ce63c893541ca1c333eac4e3c2c3fe895d726b73e2cf35f47", 9000),
        "train-labels-idx1-ubyte":
            ("a5fd5ce07e14cadfdaac91dae6ac4d93986a183d5c07e96ce15bcdf8dd255e9f", 9000),
        "t10k-images-idx3-ubyte":
            ("862035b0a96959b614c9574f4c2b0ae9584ca234813e8d6d7adb7838b12ca46b", 2000),
        "t10k-labels-idx1-ubyte":
            ("aa3f574d30afaf0d4d9da084a6f8541771e20693d6a97fae6e9a4953fca8f078", 2000),
    },
}

#: The gzip modification time (seconds since 1970, UTC: 2017-08-31 10:50:06 and 10:50:27)
#: in the header of each published Fashion-MNIST `.gz` file; see `_IDX_CHECKSUMS`.
_UPSTREAM_GZIP_MTIMES = {
    "train-images-idx3-ubyte": 1504176606,
    "train-labels-idx1-ubyte": 1504176606,
    "t10k-images-idx3-ubyte": 1504176627,
    "t10k-labels-idx1-ubyte": 1504176627,
}

#: The number of examples of each published file (its first IDX dimension).
_PUBLISHED_SIZES = {"train": 60000, "t10k": 10000}

#: Files verified in this process: (path, size, mtime) -> True.
_VERIFIED: dict[tuple[str, int, int], bool] = {}

#: The file in the user cache that remembers, across processes, which files were hashed
#: and found good: one JSON object, `"<path>|<size>|<mtime_ns>"` -> the SHA-256 the file
#: was checked against (an entry counts only while that is still the digest recorded
#: here).  At most `_VERIFIED_MAX` entries are kept, the newest.  The record is trusted
#: as far as the user's own cache is: whoever can write it can write the cached data too.
_VERIFIED_FILE = "verified-files.json"
_VERIFIED_MAX = 256

_INSTALL_HINT = "pip install 'ardiff[cli]' (or: pip install pooch)"


def cache_dir(name: str = "") -> Path:
    """Return ardiff's user cache directory, or the folder `name` inside it.

    Parameters
    ----------
    name : str, optional
        A dataset name (or any sub-folder, such as the demo's `"demo"`).

    Returns
    -------
    pathlib.Path
        `$XDG_CACHE_HOME/ardiff/<name>`, by default `~/.cache/ardiff/<name>`, on
        every platform.  It may not exist yet.
    """
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    root = Path(base) / "ardiff"
    return root / name if name else root


def _candidates(stem: str) -> tuple[str, ...]:
    """File names accepted for a standard stem, e.g. `train-images-idx3-ubyte`."""
    dotted = stem.replace("-idx", ".idx", 1)  # as some unzipped copies are named
    return (stem, stem + ".gz", dotted, dotted + ".gz")


def _find_in(directory: Path, split: str) -> tuple[Path, Path] | None:
    """Return the (images, labels) files of `split` in `directory`, or None."""
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
    places.append((cache_dir(name), "user cache"))
    places += [(d / name, "system datasets") for d in _SYSTEM_DIRS]
    return places


# ----------------------------------------------------------------------------
# Downloading (pooch)
# ----------------------------------------------------------------------------


def _has_tqdm() -> bool:
    try:
        import tqdm  # noqa: F401  (pooch draws its progress bar with tqdm)
    except ImportError:
        return False
    return True


def _download(name: str, filename: str, directory: Path, progress: bool) -> Path:
    """Fetch `filename` of dataset `name` into `directory`, trying each mirror.

    pooch writes to a temporary file, checks the SHA-256 and only then renames it
    into place; a file that passes the checksum but does not parse as IDX is
    deleted again.  Raises `DataError` naming every URL tried and why it failed.
    """
    try:
        # lazy: pooch is an optional dependency, needed only when a download is
        import pooch
    except ImportError:
        raise DataError(f"downloading {filename} needs pooch, which is not installed: "
                        f"{_INSTALL_HINT}") from None
    errors = []
    for mirror in _MIRRORS[name]:
        url = mirror + filename
        try:
            path = Path(pooch.retrieve(url, known_hash=_CHECKSUMS[name][filename],
                                       fname=filename, path=directory,
                                       progressbar=progress and _has_tqdm()))
        except (OSError, ValueError) as e:
            # requests' errors are OSErrors; a checksum mismatch is a ValueError
            errors.append(f"{url}: {e}")
            continue
        try:
            read_idx(path)  # the header and length must agree too
        except DataError as e:
            path.unlink(missing_ok=True)
            errors.append(f"{url}: {e}")
            continue
        return path
    raise DataError(f"could not download {filename}:\n    " + "\n    ".join(errors))


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
    """Paths of a bundled dataset's files, valid inside the `with` block."""
    folder = resources.files(__package__).joinpath(*_BUNDLED[name])
    images, labels = (folder.joinpath(stem + ".gz") for stem in _SPLIT_STEMS[split])
    for res in (images, labels):
        if not res.is_file():
            raise DataError(
                f"bundled dataset {name!r} is incomplete: {res} is missing; reinstall ardiff "
                "or use load('fashion-mnist', ...)"
            )
    with resources.as_file(images) as ip, resources.as_file(labels) as lp:
        yield Path(ip), Path(lp)


class DataNotFoundError(DataError):
    """A dataset is in none of the places searched and could not be downloaded.

    `str(error)` explains how to get the data from Python (`data_dir=...`,
    `download=True`); `error.explain(cli=True)` says the same in terms of the
    `ardiff` command's options (`--data-dir`, `--no-download`, `--dataset`).

    Attributes
    ----------
    name, split : str
        The dataset and split asked for.
    places : list of (pathlib.Path, str)
        Every directory searched, in order, with where it came from.
    download : bool
        Whether downloading was allowed.
    errors : list of str
        Why each download failed (empty if none was tried).
    """

    def __init__(self, name: str, split: str, places: list[tuple[Path, str]], download: bool,
                 errors: list[str]):
        self.name, self.split, self.places = name, split, places
        self.download, self.errors = download, errors
        super().__init__(self.explain(cli=False))

    def explain(self, cli: bool = False) -> str:
        """The message, with its advice worded for Python (`cli=False`) or the command line.

        Parameters
        ----------
        cli : bool, optional
            Name the `ardiff` command's options instead of `load`'s arguments.

        Returns
        -------
        str
            Several lines: what is missing, every place searched, why nothing was
            downloaded, and each way to obtain the data.
        """
        name, split = self.name, self.split
        images, labels = _SPLIT_STEMS[split]
        lines = [f"cannot find the {split} split of {name!r} ({images}[.gz] and "
                 f"{labels}[.gz] in one directory). Searched:"]
        lines += [f"  - {p} ({'--data-dir' if cli and why == 'data_dir' else why})"
                  for p, why in self.places]
        if not os.environ.get("ARDIFF_DATA"):
            lines.append("  ($ARDIFF_DATA is not set)")
        if not self.download:
            flag = "--no-download" if cli else "download=False"
            lines.append(f"Downloading was not attempted ({flag}).")
        elif self.errors:
            lines.append("Downloading failed:")
            lines += [f"  - {e}" for e in self.errors]
        lines.append("To obtain the data:")
        if name == "fashion-mnist":
            lines.append("  - on Debian/Ubuntu: apt-get install dataset-fashion-mnist "
                         "(installs /usr/share/datasets/fashion-mnist/, found automatically)")
        where = "pass --data-dir DIR" if cli else "pass data_dir=..."
        lines.append("  - put the four IDX files (gzipped or not) in a directory, or in its "
                     f"'{name}/' subdirectory, and {where} or set ARDIFF_DATA to it")
        mirrors = " or ".join(_MIRRORS[name])
        if not self.download:
            how = "run without --no-download" if cli else "call load(..., download=True)"
        else:
            how = "try again"
        lines.append(f"  - {how} with network access; the files come from {mirrors} "
                     f"into {cache_dir(name)}")
        if name == "fashion-mnist":
            small = "--dataset fashion-mnist-small" if cli else "load('fashion-mnist-small', ...)"
            lines.append(f"  - or use the small subset shipped with ardiff: {small}")
        return "\n".join(lines)


def _good_copy_hint(name: str, path: Path) -> str:
    if name in _BUNDLED:
        return ("the bundled subset is damaged: reinstall ardiff (pip install --force-reinstall "
                "ardiff, or git checkout the file in a source tree)")
    hints = [f"delete {path} so that ardiff downloads a verified copy into "
             f"{cache_dir(name)}, or replace it with a good copy"]
    if name == "fashion-mnist":
        hints.append("on Debian/Ubuntu, apt-get install --reinstall dataset-fashion-mnist "
                     "restores /usr/share/datasets/fashion-mnist/")
    return "; ".join(hints)


def _cache_key(key: tuple[str, int, int]) -> str:
    return "|".join(map(str, key))


def _verified_before(key: tuple[str, int, int], *digests: str | None) -> bool:
    """Whether another process recorded the file `key` as verified against one of `digests`.

    A missing, unreadable or malformed record file counts as no record.
    """
    try:
        record = json.loads((cache_dir() / _VERIFIED_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return (isinstance(record, dict) and record.get(_cache_key(key)) is not None
            and record.get(_cache_key(key)) in digests)


def _remember_verified(key: tuple[str, int, int], digest: str) -> None:
    """Record in the user cache that the file `key` matched `digest` (best effort).

    The record is rewritten atomically; when the cache is not writable the file is
    simply hashed again by the next process.
    """
    path = cache_dir() / _VERIFIED_FILE
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        record = {}
    if not isinstance(record, dict):
        record = {}
    record.pop(_cache_key(key), None)
    record[_cache_key(key)] = digest  # newest last
    kept = dict(list(record.items())[-_VERIFIED_MAX:])
    try:
        atomic_write(path, json.dumps(kept, indent=0))
    except OSError:
        pass


def _read_verified(path: Path, name: str, stem: str) -> np.ndarray:
    """Read an IDX file of dataset `name` (file `stem`), verifying its content.

    The SHA-256 is computed once per file: a file already verified by this process, or
    by another one (recorded in the user cache), with the same path, size and
    modification time is not hashed again.

    Raises `DataError` if the file holds the published data's shape but not its
    content (see the module docstring).
    """
    try:
        st = path.stat()
        key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    except OSError:
        key = None
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise DataError(f"{path}: cannot read IDX file: {e}") from e
    buf = raw
    if raw[:2] == _GZIP_MAGIC:
        try:
            buf = _gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as e:
            raise DataError(f"{path}: corrupt gzip data: {e}") from e
    array = _parse_idx(buf, path)
    if key is not None and _VERIFIED.get(key):
        return array
    published = _CHECKSUMS.get(name, {}).get(stem + ".gz")
    known = _IDX_CHECKSUMS.get(name, {}).get(stem)
    checked = None  # the digest the file was hashed and verified against, now
    if key is not None and _verified_before(key, published, known and known[0]):
        pass  # hashed and found good by an earlier process
    elif published is not None and "sha256:" + hashlib.sha256(raw).hexdigest() == published:
        checked = published  # byte for byte the published download
    elif known is not None:
        digest, n_published = known
        if name in _BUNDLED or (array.ndim and array.shape[0] == n_published):
            found = hashlib.sha256(buf).hexdigest()
            if found != digest:
                raise DataError(
                    f"{path}: corrupt or modified copy of {name} ({stem}): the SHA-256 of its "
                    f"IDX content is {found}, the published data's is {digest}. To get a "
                    f"good copy: {_good_copy_hint(name, path)}.")
            checked = digest
    if key is not None:
        _VERIFIED[key] = True
        if checked is not None:
            _remember_verified(key, checked)
    return array


def _to_arrays(images_path: Path, labels_path: Path,
               name: str | None = None, split: str | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
    if name is not None and split is not None:
        image_stem, label_stem = _SPLIT_STEMS[split]
        images = _read_verified(images_path, name, image_stem)
        labels = _read_verified(labels_path, name, label_stem)
    else:
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


def found_locally(name: str, data_dir: str | os.PathLike[str] | None = None) -> bool:
    """Whether both splits of a dataset are on this machine (bundled or in a place `load`
    searches), so that loading it needs no download.

    Parameters
    ----------
    name : str
        A name of `DATASETS`.
    data_dir : str or path-like, optional
        Searched first, as in `load`.

    Returns
    -------
    bool
    """
    key = _normalise_name(name)
    if key in _BUNDLED:
        return True
    places = [directory for directory, _why in _search_places(key, data_dir)]
    return all(any(_find_in(directory, split) for directory in places)
               for split in _SPLIT_STEMS)


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
    name : str
        The dataset: `"mnist"`, `"fashion-mnist"` or `"fashion-mnist-small"`.
        `"fashion-mnist-small"` ships with ardiff (first 9,000
        training and 2,000 test images) and ignores the other arguments.
    split : str
        Which split: `"train"` or `"test"`.
    data_dir : str or path-like, optional
        Directory searched first, both itself and its `<name>/` subdirectory.
        Then come the directories in `$ARDIFF_DATA` (`os.pathsep`-separated,
        likewise each itself and `<name>/`), the user cache
        `$XDG_CACHE_HOME/ardiff/<name>` (default `~/.cache/ardiff/<name>`) and
        `/usr/share/datasets/<name>`.  A directory is used if it holds both the
        images and the labels file of the split, under the standard names
        (`train-images-idx3-ubyte`, `train-labels-idx1-ubyte`,
        `t10k-images-idx3-ubyte`, `t10k-labels-idx1-ubyte`), each plain or
        with `.gz`.
    download : bool, optional
        If the files are nowhere, download the missing ones into the user cache
        with `pooch`, checking their SHA-256 and IDX structure.
    progress : bool, optional
        Show a progress bar while downloading, if tqdm is installed.

    Returns
    -------
    images : numpy.ndarray
        `float64`, shape `(n, 784)`, pixel values scaled to `[0, 1]`.
    labels : numpy.ndarray
        `int64`, shape `(n,)`, class indices 0 to 9.

    Raises
    ------
    ValueError
        For an unknown `name` or `split`.
    DataNotFoundError
        If the data cannot be found or downloaded (the message lists every place
        searched and how to get the data).
    DataError
        If a file is corrupt.
    """
    key = _normalise_name(name)
    if split not in _SPLIT_STEMS:
        raise ValueError(f"unknown split {split!r}; choose 'train' or 'test'")
    if key in _BUNDLED:
        with _bundled_files(key, split) as (images, labels):
            return _to_arrays(images, labels, key, split)

    places = _search_places(key, data_dir)
    for directory, _why in places:
        hit = _find_in(directory, split)
        if hit is not None:
            return _to_arrays(*hit, key, split)

    errors: list[str] = []
    if download:
        cache = cache_dir(key)
        paths = []
        for stem in _SPLIT_STEMS[split]:
            existing = next((cache / c for c in _candidates(stem) if (cache / c).is_file()), None)
            if existing is None:
                try:
                    existing = _download(key, stem + ".gz", cache, progress)
                except DataError as e:
                    errors.append(str(e))
                    break
            paths.append(existing)
        else:
            return _to_arrays(*paths, key, split)
    raise DataNotFoundError(key, split, places, download, errors)
