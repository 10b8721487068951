"""Tests for ardiff.paper.data: IDX files, dataset search, downloads, the bundled subset.

Downloads go through pooch to a local HTTP server on 127.0.0.1 (never the network).
"""

from __future__ import annotations

import gzip
import hashlib
import http.server
import os
import struct
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from ardiff.nn import one_hot
from ardiff.paper import data
from ardiff.paper.data import DataError, DataNotFoundError, load, read_idx, write_idx

# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------


def idx_bytes(arr: np.ndarray) -> bytes:
    """Independent IDX encoder used to cross-check write_idx."""
    codes = {"uint8": 8, "int8": 9, "int16": 11, "int32": 12, "float32": 13, "float64": 14}
    code = codes[arr.dtype.name]
    header = bytes((0, 0, code, arr.ndim)) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return header + arr.astype(arr.dtype.newbyteorder(">")).tobytes()


def make_split(directory: Path, split: str, n: int, *, gz: bool, seed: int = 0):
    """Write a fake MNIST-like split into ``directory``; return (images, labels)."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n, dtype=np.uint8)
    prefix = "train" if split == "train" else "t10k"
    suffix = ".gz" if gz else ""
    write_idx(directory / f"{prefix}-images-idx3-ubyte{suffix}", images, gzip=gz)
    write_idx(directory / f"{prefix}-labels-idx1-ubyte{suffix}", labels, gzip=gz)
    return images, labels


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """No ARDIFF_DATA, an empty cache and an empty system directory."""
    monkeypatch.delenv("ARDIFF_DATA", raising=False)
    cache = tmp_path / "cache"
    system = tmp_path / "system"
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    monkeypatch.setattr(data, "_SYSTEM_DIRS", (system,))
    # never the network: a download that a test did not arrange meets a closed port
    for name in data._MIRRORS:
        monkeypatch.setitem(data._MIRRORS, name, ("http://127.0.0.1:9/no-network/",))
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    return tmp_path


# ---------------------------------------------------------------------------
# IDX format
# ---------------------------------------------------------------------------

ROUND_TRIP = [
    np.arange(7, dtype=np.uint8),
    np.arange(24, dtype=np.uint8).reshape(2, 3, 4),
    np.array([-(2**31), -1, 0, 1, 2**31 - 1], dtype=np.int32),
    np.arange(30, dtype=np.int32).reshape(5, 6) * -1000,
    np.linspace(-1.5, 2.5, 12, dtype=np.float32).reshape(3, 2, 2),
    np.array([[np.inf, -0.0, 1e-30]], dtype=np.float32),
    np.zeros((0, 28, 28), dtype=np.uint8),
    np.arange(16, dtype=np.uint8).reshape(1, 2, 2, 2, 2),
    np.array([-3, 5], dtype=np.int8),
    np.array([[-300, 300]], dtype=np.int16),
    np.array([np.pi, -np.e], dtype=np.float64),
]


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzip"])
@pytest.mark.parametrize("arr", ROUND_TRIP, ids=lambda a: f"{a.dtype}{list(a.shape)}")
def test_round_trip(tmp_path, arr, gz):
    path = write_idx(tmp_path / "x.idx", arr, gzip=gz)
    raw = path.read_bytes()
    assert (raw[:2] == b"\x1f\x8b") == gz
    assert (gzip.decompress(raw) if gz else raw) == idx_bytes(arr)
    back = read_idx(path)
    assert back.dtype == arr.dtype and back.dtype.isnative
    assert back.shape == arr.shape
    np.testing.assert_array_equal(back, arr)
    assert back.flags.writeable
    assert not list(tmp_path.glob(".*.part"))


def test_round_trip_big_endian_input_and_scalar(tmp_path):
    arr = np.arange(6, dtype=">i4").reshape(2, 3)
    np.testing.assert_array_equal(read_idx(write_idx(tmp_path / "b", arr)), arr)
    scalar = np.float32(2.5)
    back = read_idx(write_idx(tmp_path / "s", scalar))
    assert back.shape == () and back == scalar


def test_gzip_detected_by_magic_not_name(tmp_path):
    arr = np.arange(10, dtype=np.uint8)
    gz_named_plain = tmp_path / "plain.gz"
    gz_named_plain.write_bytes(idx_bytes(arr))
    plain_named_gz = tmp_path / "compressed-idx1-ubyte"
    plain_named_gz.write_bytes(gzip.compress(idx_bytes(arr)))
    np.testing.assert_array_equal(read_idx(gz_named_plain), arr)
    np.testing.assert_array_equal(read_idx(plain_named_gz), arr)


def test_gzip_output_is_deterministic(tmp_path):
    arr = np.arange(100, dtype=np.uint8)
    a = write_idx(tmp_path / "a.gz", arr, gzip=True).read_bytes()
    b = write_idx(tmp_path / "b.gz", arr, gzip=True).read_bytes()
    assert a == b


def test_write_idx_rejects_unsupported_dtype(tmp_path):
    with pytest.raises(TypeError, match="int64"):
        write_idx(tmp_path / "x", np.arange(3, dtype=np.int64))
    with pytest.raises(TypeError):
        write_idx(tmp_path / "x", np.array([True]))
    assert not (tmp_path / "x").exists()


def _expect_data_error(path: Path, *fragments: str) -> str:
    with pytest.raises(DataError) as info:
        read_idx(path)
    msg = str(info.value)
    assert str(path) in msg
    for fragment in fragments:
        assert fragment in msg
    assert isinstance(info.value, ValueError)
    return msg


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzip"])
def test_truncated_data(tmp_path, gz):
    raw = idx_bytes(np.zeros((3, 4, 4), dtype=np.uint8))[:-5]
    path = tmp_path / "short-idx3-ubyte"
    path.write_bytes(gzip.compress(raw) if gz else raw)
    _expect_data_error(path, "truncated", "48 bytes", "43")


def test_truncated_header(tmp_path):
    path = tmp_path / "hdr"
    path.write_bytes(bytes((0, 0, 8, 3)) + struct.pack(">I", 3))
    _expect_data_error(path, "truncated IDX header")
    tiny = tmp_path / "tiny"
    tiny.write_bytes(b"\x00\x00")
    _expect_data_error(tiny, "4-byte header")


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzip"])
def test_trailing_bytes(tmp_path, gz):
    raw = idx_bytes(np.zeros(5, dtype=np.int32)) + b"junk!!"
    path = tmp_path / "long-idx1-ubyte"
    path.write_bytes(gzip.compress(raw) if gz else raw)
    _expect_data_error(path, "6 trailing bytes")


def test_bad_magic(tmp_path):
    path = tmp_path / "magic"
    path.write_bytes(b"\x01\x00\x08\x01" + struct.pack(">I", 1) + b"\x00")
    _expect_data_error(path, "bad magic")
    text = tmp_path / "readme.txt"
    text.write_bytes(b"hello, this is not IDX")
    _expect_data_error(text, "bad magic")


def test_unknown_dtype_code(tmp_path):
    path = tmp_path / "code"
    path.write_bytes(b"\x00\x00\x0a\x01" + struct.pack(">I", 1) + b"\x00")
    _expect_data_error(path, "unknown IDX data type code 0x0a")


def test_corrupt_gzip(tmp_path):
    good = gzip.compress(idx_bytes(np.arange(1000, dtype=np.int32)))
    # damaged deflate stream
    flipped = bytearray(good)
    for i in range(20, 40):
        flipped[i] ^= 0xFF
    path = tmp_path / "flipped.gz"
    path.write_bytes(bytes(flipped))
    _expect_data_error(path, "corrupt gzip")
    # cut short: the end-of-stream marker never comes
    cut = tmp_path / "cut.gz"
    cut.write_bytes(good[: len(good) // 2])
    _expect_data_error(cut, "corrupt gzip")
    # CRC mismatch
    crc = bytearray(good)
    crc[-8] ^= 0x01
    bad_crc = tmp_path / "crc.gz"
    bad_crc.write_bytes(bytes(crc))
    _expect_data_error(bad_crc, "corrupt gzip")


def test_missing_file(tmp_path):
    _expect_data_error(tmp_path / "nope", "cannot read")


# ---------------------------------------------------------------------------
# load(): search order and layouts
# ---------------------------------------------------------------------------


def _check_loaded(result, images, labels):
    x, y = result
    assert x.dtype == np.float64 and x.shape == (len(images), 784)
    assert y.dtype == np.int64 and y.shape == (len(labels),)
    np.testing.assert_allclose(x, images.reshape(len(images), -1) / 255.0)
    np.testing.assert_array_equal(y, labels)
    assert x.min() >= 0.0 and x.max() <= 1.0


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzip"])
def test_load_from_data_dir_itself(isolated, gz):
    root = isolated / "d"
    tr = make_split(root, "train", 5, gz=gz, seed=1)
    te = make_split(root, "test", 3, gz=gz, seed=2)
    _check_loaded(load("mnist", "train", root, download=False), *tr)
    _check_loaded(load("mnist", "test", str(root), download=False), *te)


def test_load_from_named_subdirectory(isolated):
    root = isolated / "d"
    imgs, labs = make_split(root / "fashion-mnist", "test", 4, gz=True)
    _check_loaded(load("fashion-mnist", "test", data_dir=root, download=False), imgs, labs)
    _check_loaded(load("fashion_mnist", "test", data_dir=root, download=False), imgs, labs)
    with pytest.raises(DataError):  # the mnist subdirectory is a different place
        load("mnist", "test", data_dir=root, download=False)


def test_load_accepts_dotted_file_names(isolated):
    root = isolated / "d"
    imgs = np.zeros((2, 28, 28), dtype=np.uint8)
    labs = np.array([3, 4], dtype=np.uint8)
    write_idx(root / "train-images.idx3-ubyte", imgs)
    write_idx(root / "train-labels.idx1-ubyte", labs)
    _check_loaded(load("mnist", "train", root, download=False), imgs, labs)


def test_env_var(isolated, monkeypatch):
    first, second = isolated / "e1", isolated / "e2"
    imgs, labs = make_split(second / "mnist", "train", 3, gz=False, seed=5)
    monkeypatch.setenv("ARDIFF_DATA", f"{first}{os.pathsep}{second}")
    _check_loaded(load("mnist", "train", download=False), imgs, labs)


def test_data_dir_comes_before_env_cache_and_system(isolated, monkeypatch):
    explicit, env = isolated / "explicit", isolated / "env"
    want = make_split(explicit, "train", 2, gz=False, seed=10)
    make_split(env, "train", 3, gz=False, seed=11)
    make_split(isolated / "cache" / "ardiff" / "mnist", "train", 4, gz=True, seed=12)
    make_split(isolated / "system" / "mnist", "train", 5, gz=True, seed=13)
    monkeypatch.setenv("ARDIFF_DATA", str(env))
    _check_loaded(load("mnist", "train", explicit, download=False), *want)
    assert load("mnist", "train", download=False)[0].shape[0] == 3
    monkeypatch.delenv("ARDIFF_DATA")
    assert load("mnist", "train", download=False)[0].shape[0] == 4
    for f in (isolated / "cache" / "ardiff" / "mnist").iterdir():
        f.unlink()
    assert load("mnist", "train", download=False)[0].shape[0] == 5


def test_images_and_labels_must_share_a_directory(isolated):
    root = isolated / "d"
    write_idx(root / "train-images-idx3-ubyte", np.zeros((1, 28, 28), np.uint8))
    write_idx(root / "mnist" / "train-labels-idx1-ubyte", np.zeros(1, np.uint8))
    with pytest.raises(DataError, match="cannot find"):
        load("mnist", "train", root, download=False)


def test_load_rejects_inconsistent_files(isolated):
    root = isolated / "d"
    write_idx(root / "t10k-images-idx3-ubyte", np.zeros((3, 28, 28), np.uint8))
    write_idx(root / "t10k-labels-idx1-ubyte", np.zeros(2, np.uint8))
    with pytest.raises(DataError, match="3 images but .* 2 labels"):
        load("mnist", "test", root, download=False)
    write_idx(root / "t10k-images-idx3-ubyte", np.zeros((2, 14, 14), np.uint8))
    with pytest.raises(DataError, match=r"\(n, 28, 28\)"):
        load("mnist", "test", root, download=False)


def test_load_bad_arguments():
    with pytest.raises(ValueError, match="unknown dataset"):
        load("cifar10", "train")
    with pytest.raises(ValueError, match="unknown split"):
        load("mnist", "validation")


def test_not_found_lists_every_place(isolated, monkeypatch):
    env = isolated / "envdir"
    monkeypatch.setenv("ARDIFF_DATA", str(env))
    root = isolated / "mine"
    with pytest.raises(DataError) as info:
        load("fashion-mnist", "train", data_dir=root, download=False)
    msg = str(info.value)
    for place in (
        root,
        root / "fashion-mnist",
        env,
        env / "fashion-mnist",
        isolated / "cache" / "ardiff" / "fashion-mnist",
        isolated / "system" / "fashion-mnist",
    ):
        assert f"{place} (" in msg
    assert "apt-get install dataset-fashion-mnist" in msg
    assert "data_dir=" in msg and "ARDIFF_DATA" in msg
    assert "download=False" in msg and "download=True" in msg
    assert "fashion-mnist-small" in msg


def test_not_found_mnist_has_no_apt_hint(isolated):
    with pytest.raises(DataError) as info:
        load("mnist", "test", download=False)
    msg = str(info.value)
    assert "apt-get" not in msg
    assert "ARDIFF_DATA is not set" in msg
    assert str(isolated / "cache" / "ardiff" / "mnist") in msg


# ---------------------------------------------------------------------------
# downloads through pooch, from a local HTTP server
# ---------------------------------------------------------------------------


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves `server.files` by file name; `/down/...` answers 500; `server.cut` bytes
    per response at most (then the connection drops)."""

    def do_GET(self):  # noqa: N802  (the name http.server calls)
        self.server.paths.append(self.path)
        name = self.path.rsplit("/", 1)[-1]
        if self.path.startswith("/down/") or name not in self.server.files:
            self.send_error(500 if self.path.startswith("/down/") else 404)
            return
        payload = self.server.files[name]
        self.send_response(200)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload[: self.server.cut])
        self.close_connection = True

    def log_message(self, *args):  # keep the test output clean
        pass


@pytest.fixture
def server():
    """A local HTTP server: `server.files` maps names to bytes, `server.paths` records
    the requests, `server.url` is its address."""
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.files, httpd.paths, httpd.cut = {}, [], None
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def _fake_split(split: str, n: int):
    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n, dtype=np.uint8)
    prefix = "train" if split == "train" else "t10k"
    files = {
        f"{prefix}-images-idx3-ubyte.gz": gzip.compress(idx_bytes(images), mtime=0),
        f"{prefix}-labels-idx1-ubyte.gz": gzip.compress(idx_bytes(labels), mtime=0),
    }
    return images, labels, files


def _serve(monkeypatch, server, name: str, files: dict[str, bytes], register: bool = True,
           mirrors: tuple[str, ...] = ("/a/",)):
    """Serve `files` as dataset `name` (registering their checksums unless told not to)."""
    server.files.update(files)
    monkeypatch.setitem(data._MIRRORS, name, tuple(server.url + m for m in mirrors))
    if register:
        for fname, payload in files.items():
            monkeypatch.setitem(data._CHECKSUMS[name], fname,
                                "sha256:" + hashlib.sha256(payload).hexdigest())


def test_download_good_checksum_keeps_files(isolated, monkeypatch, server):
    images, labels, files = _fake_split("test", 6)
    _serve(monkeypatch, server, "mnist", files)
    _check_loaded(load("mnist", "test", progress=False), images, labels)
    cache = isolated / "cache" / "ardiff" / "mnist"
    assert sorted(p.name for p in cache.iterdir()) == sorted(files)
    for fname, payload in files.items():
        assert (cache / fname).read_bytes() == payload
    assert server.paths == ["/a/" + f for f in files]
    # second call: found in the cache, no download
    server.paths.clear()
    _check_loaded(load("mnist", "test", progress=False), images, labels)
    assert server.paths == []


def test_download_with_progress_bar(isolated, monkeypatch, server, capsys):
    pytest.importorskip("tqdm")
    images, labels, files = _fake_split("train", 2)
    _serve(monkeypatch, server, "fashion-mnist", files)
    _check_loaded(load("fashion-mnist", "train", progress=True), images, labels)
    assert "100%" in capsys.readouterr().err  # the progress bar, drawn by tqdm for pooch


def test_download_bad_checksum_removes_file(isolated, monkeypatch, server):
    _, _, files = _fake_split("test", 6)
    # keep the real published sums: the generated bytes cannot match them
    _serve(monkeypatch, server, "mnist", files, register=False, mirrors=("/a/", "/b/"))
    with pytest.raises(DataNotFoundError) as info:
        load("mnist", "test", progress=False)
    msg = str(info.value)
    assert "Downloading failed" in msg and "hash" in msg.lower()
    assert "t10k-images-idx3-ubyte.gz" in msg
    assert server.paths == ["/a/t10k-images-idx3-ubyte.gz", "/b/t10k-images-idx3-ubyte.gz"]
    assert list((isolated / "cache" / "ardiff" / "mnist").iterdir()) == []


def test_partial_download_removed(isolated, monkeypatch, server):
    _, _, files = _fake_split("test", 50)
    _serve(monkeypatch, server, "fashion-mnist", files)
    server.cut = 2048
    with pytest.raises(DataError, match="could not download"):
        load("fashion-mnist", "test", progress=False)
    assert list((isolated / "cache" / "ardiff" / "fashion-mnist").iterdir()) == []


def test_download_that_is_not_idx_is_removed(isolated, monkeypatch, server):
    files = {"t10k-images-idx3-ubyte.gz": gzip.compress(b"not an idx file", mtime=0),
             "t10k-labels-idx1-ubyte.gz": b""}
    _serve(monkeypatch, server, "mnist", files)  # the checksums match these bytes
    with pytest.raises(DataError, match="not an IDX file"):
        load("mnist", "test", progress=False)
    assert list((isolated / "cache" / "ardiff" / "mnist").iterdir()) == []


def test_download_falls_back_to_second_mirror(isolated, monkeypatch, server):
    images, labels, files = _fake_split("test", 3)
    _serve(monkeypatch, server, "mnist", files, mirrors=("/down/", "/a/"))
    _check_loaded(load("mnist", "test", progress=False), images, labels)
    assert server.paths[0].startswith("/down/") and server.paths[1].startswith("/a/")


def test_download_without_pooch_says_what_to_install(isolated, monkeypatch):
    monkeypatch.setitem(sys.modules, "pooch", None)  # `import pooch` now fails
    with pytest.raises(DataNotFoundError) as info:
        load("mnist", "train", progress=False)
    assert "needs pooch" in str(info.value) and "pip install 'ardiff[cli]'" in str(info.value)


def test_not_found_message_for_the_command_line(isolated):
    with pytest.raises(DataNotFoundError) as info:
        load("fashion-mnist", "test", data_dir=isolated / "mine", download=False)
    cli = info.value.explain(cli=True)
    assert "--data-dir DIR" in cli and "--dataset fashion-mnist-small" in cli
    assert "(--no-download)" in cli and "run without --no-download" in cli
    assert f"{isolated / 'mine'} (--data-dir)" in cli
    assert "data_dir" not in cli and "load(" not in cli and "download=" not in cli


def test_published_checksum_table_is_complete():
    for name in ("mnist", "fashion-mnist"):
        table = data._CHECKSUMS[name]
        assert set(table) == {
            f"{p}-{k}-ubyte.gz" for p in ("train", "t10k") for k in ("images-idx3", "labels-idx1")
        }
        for sha in table.values():
            algorithm, digest = sha.split(":")
            assert algorithm == "sha256" and len(digest) == 64 and int(digest, 16) >= 0


# ---------------------------------------------------------------------------
# the bundled subset and one_hot
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(("split", "n"), [("train", 9_000), ("test", 2_000)])
def test_bundled_fashion_mnist_small(isolated, split, n):
    x, y = load("fashion-mnist-small", split)
    assert x.shape == (n, 784) and x.dtype == np.float64
    assert y.shape == (n,) and y.dtype == np.int64
    assert x.min() == 0.0 and x.max() == 1.0
    counts = np.bincount(y, minlength=10)
    assert len(counts) == 10 and counts.min() >= 0.8 * n / 10


def test_one_hot():
    out = one_hot(np.array([0, 3, 9]))
    assert out.shape == (3, 10) and out.dtype == np.float64
    np.testing.assert_array_equal(out.argmax(1), [0, 3, 9])
    np.testing.assert_array_equal(out.sum(1), 1.0)
    np.testing.assert_array_equal(one_hot([[1], [0]], 2), [[[0, 1]], [[1, 0]]])
    assert one_hot(np.array([], dtype=np.int64), 4).shape == (0, 4)
    np.testing.assert_array_equal(one_hot(np.array([1.0, 2.0]), 3), np.eye(3)[[1, 2]])
    with pytest.raises(ValueError):
        one_hot([10])
    with pytest.raises(ValueError):
        one_hot([-1])
    with pytest.raises(ValueError):
        one_hot([0.5])
