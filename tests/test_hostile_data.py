"""Careless and hostile input (issue 23): dataset files found on disk are verified.

A copy of the published data with one flipped byte is refused with a `DataError` that
names the file and how to get a good copy, whether it comes from `data_dir`, the cache,
the system folder or the bundled subset.
"""

import gzip
import hashlib
import json
import os
import shutil
import struct
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from ardiff.paper import data
from ardiff.paper.data import DataError, load, write_idx

DEBIAN = Path("/usr/share/datasets/fashion-mnist")
BUNDLED = Path(data.__file__).parent / "datasets" / "fashion-mnist-small"


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    monkeypatch.delenv("ARDIFF_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(data, "_SYSTEM_DIRS", (tmp_path / "system",))
    monkeypatch.setattr(data, "_VERIFIED", {}, raising=False)


def flip_byte(src: Path, dst: Path, offset: int = 5000, gz: bool = True) -> None:
    """Copy `src` (an IDX file, gzipped or not) to `dst` with one content byte changed."""
    content = bytearray(read_bytes(src))
    content[offset] ^= 0x01
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_bytes(gzip.compress(bytes(content), mtime=0) if gz else bytes(content))


def read_bytes(path: Path) -> bytes:
    raw = path.read_bytes()
    return gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw


@contextmanager
def bundled_from(folder: Path):
    @contextmanager
    def files(name, split):
        images, labels = data._SPLIT_STEMS[split]
        yield folder / f"{images}.gz", folder / f"{labels}.gz"
    yield files


def test_the_bundled_subset_is_verified_and_loads():
    x, y = load("fashion-mnist-small", "test")
    assert x.shape == (2000, 784) and y.shape == (2000,)


def test_a_flipped_byte_in_the_bundled_subset_is_refused(tmp_path, monkeypatch):
    folder = tmp_path / "bundle"
    shutil.copytree(BUNDLED, folder)
    flip_byte(BUNDLED / "t10k-images-idx3-ubyte.gz", folder / "t10k-images-idx3-ubyte.gz")
    with bundled_from(folder) as files:
        monkeypatch.setattr(data, "_bundled_files", files)
        with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte\.gz: corrupt or modified "
                                            r"copy of fashion-mnist-small .*reinstall ardiff"):
            load("fashion-mnist-small", "test")
        # the labels and the other split are intact
        assert load("fashion-mnist-small", "train")[0].shape == (9000, 784)


def test_a_copy_with_the_published_shape_but_other_content_is_refused(tmp_path):
    rng = np.random.default_rng(0)
    root = tmp_path / "idx"
    write_idx(root / "t10k-images-idx3-ubyte", rng.integers(0, 256, (10000, 28, 28),
                                                              dtype=np.uint8))
    write_idx(root / "t10k-labels-idx1-ubyte", rng.integers(0, 10, 10000, dtype=np.uint8))
    with pytest.raises(DataError, match=rf"{root / 't10k-images-idx3-ubyte'}: corrupt or "
                                        r"modified copy of fashion-mnist \(t10k-images-idx3"
                                        r"-ubyte\): the SHA-256 of its IDX content is [0-9a-f]{64}"
                                        r", the published data's is 5b4141f0.*delete .* so that "
                                        r"ardiff downloads a verified copy.*apt-get install "
                                        r"--reinstall dataset-fashion-mnist"):
        load("fashion-mnist", "test", root, download=False)


def test_own_data_of_another_shape_is_not_taken_for_a_corrupt_copy(tmp_path):
    rng = np.random.default_rng(1)
    root = tmp_path / "idx"
    write_idx(root / "t10k-images-idx3-ubyte", rng.integers(0, 256, (7, 28, 28), dtype=np.uint8))
    write_idx(root / "t10k-labels-idx1-ubyte", rng.integers(0, 10, 7, dtype=np.uint8))
    assert load("fashion-mnist", "test", root, download=False)[0].shape == (7, 784)


@pytest.mark.skipif(not (DEBIAN / "t10k-labels-idx1-ubyte.gz").is_file(),
                    reason="Debian's dataset-fashion-mnist is not installed")
@pytest.mark.parametrize("place", ["data_dir", "cache", "system"])
def test_a_flipped_byte_in_debians_fashion_mnist_is_refused_wherever_it_is(tmp_path, place):
    folder = {"data_dir": tmp_path / "idx", "cache": tmp_path / "cache" / "ardiff" /
              "fashion-mnist", "system": tmp_path / "system" / "fashion-mnist"}[place]
    folder.mkdir(parents=True)
    for stem in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        shutil.copy(DEBIAN / f"{stem}.gz", folder / f"{stem}.gz")
    data_dir = tmp_path / "idx" if place == "data_dir" else None
    x, y = load("fashion-mnist", "test", data_dir, download=False)  # the good copy loads
    assert x.shape == (10000, 784)
    flip_byte(DEBIAN / "t10k-labels-idx1-ubyte.gz", folder / "t10k-labels-idx1-ubyte",
              offset=100, gz=False)  # an unzipped copy, one label changed
    (folder / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match=rf"{folder / 't10k-labels-idx1-ubyte'}: corrupt or "
                                        r"modified copy of fashion-mnist"):
        load("fashion-mnist", "test", data_dir, download=False)


@pytest.mark.skipif(not (DEBIAN / "t10k-labels-idx1-ubyte.gz").is_file(),
                    reason="Debian's dataset-fashion-mnist is not installed")
def test_verification_is_cached_by_size_and_mtime_and_redone_after_a_change(tmp_path,
                                                                              monkeypatch):
    root = tmp_path / "idx"
    root.mkdir()
    for stem in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        (root / stem).write_bytes(read_bytes(DEBIAN / f"{stem}.gz"))  # re-encoded: unzipped
    calls = []
    real = data.hashlib.sha256
    monkeypatch.setattr(data.hashlib, "sha256", lambda *a: calls.append(1) or real(*a))
    load("fashion-mnist", "test", root, download=False)
    first = len(calls)
    assert first >= 2
    load("fashion-mnist", "test", root, download=False)
    assert len(calls) == first  # verified once per file
    flip_byte(root / "t10k-labels-idx1-ubyte", root / "t10k-labels-idx1-ubyte", offset=9,
              gz=False)
    with pytest.raises(DataError, match=r"corrupt or modified copy"):
        load("fashion-mnist", "test", root, download=False)


# -- verified once per file, across processes --------------------------------------------
def _counting_sha256(monkeypatch) -> list:
    calls = []
    real = data.hashlib.sha256
    monkeypatch.setattr(data.hashlib, "sha256", lambda *a: calls.append(1) or real(*a))
    return calls


def test_a_second_process_does_not_hash_the_files_again(tmp_path, monkeypatch):
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path / "cache"),
               PYTHONPATH=os.pathsep.join([str(Path(data.__file__).parents[2])]
                                          + os.environ.get("PYTHONPATH", "").split(os.pathsep)))
    code = ("from ardiff.paper import data; import hashlib; calls = []; real = hashlib.sha256;"
            "data.hashlib.sha256 = lambda *a: calls.append(1) or real(*a);"
            "data.load('fashion-mnist-small', 'test'); print(len(calls))")
    first = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                           text=True, check=True)
    assert first.stdout.split() == ["2"]  # the other process hashed the two files
    record = json.loads((tmp_path / "cache" / "ardiff" / data._VERIFIED_FILE).read_text())
    assert sorted(record.values()) == sorted(
        data._IDX_CHECKSUMS["fashion-mnist-small"][stem][0] for stem in data._SPLIT_STEMS["test"])
    calls = _counting_sha256(monkeypatch)  # this process has verified nothing yet
    x, y = load("fashion-mnist-small", "test")
    assert calls == [] and x.shape == (2000, 784)
    second = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                            text=True, check=True)
    assert second.stdout.split() == ["0"]


def _unzipped_bundle(tmp_path) -> Path:
    folder = tmp_path / "bundle"
    folder.mkdir()
    for stem in data._SPLIT_STEMS["test"]:
        (folder / f"{stem}.gz").write_bytes(read_bytes(BUNDLED / f"{stem}.gz"))  # not gzipped
    return folder


def test_a_file_changed_after_another_process_verified_it_is_hashed_and_refused(
        tmp_path, monkeypatch):
    folder = _unzipped_bundle(tmp_path)
    images = folder / "t10k-images-idx3-ubyte.gz"
    with bundled_from(folder) as files:
        monkeypatch.setattr(data, "_bundled_files", files)
        load("fashion-mnist-small", "test")  # verified and recorded
        monkeypatch.setattr(data, "_VERIFIED", {})  # a new process
        before = images.stat()
        content = bytearray(images.read_bytes())
        content[5000] ^= 0x01
        images.write_bytes(bytes(content))  # same size, other content
        os.utime(images, ns=(before.st_atime_ns, before.st_mtime_ns + 1_000_000_000))
        calls = _counting_sha256(monkeypatch)
        with pytest.raises(DataError, match=rf"{images}: corrupt or modified copy of "
                                            r"fashion-mnist-small .*reinstall ardiff"):
            load("fashion-mnist-small", "test")
        assert calls  # the record of the old file did not count for the new one


@pytest.mark.parametrize("record", ["not json {", "[1, 2]", "forged"])
def test_a_damaged_or_forged_record_is_no_verification(tmp_path, monkeypatch, record):
    folder = _unzipped_bundle(tmp_path)
    images = folder / "t10k-images-idx3-ubyte.gz"
    content = bytearray(images.read_bytes())
    content[5000] ^= 0x01
    images.write_bytes(bytes(content))
    st = images.stat()
    if record == "forged":  # the right key, but not the digest ardiff records
        key = f"{images.resolve()}|{st.st_size}|{st.st_mtime_ns}"
        record = json.dumps({key: hashlib.sha256(bytes(content)).hexdigest()})
    (tmp_path / "cache" / "ardiff").mkdir(parents=True)
    (tmp_path / "cache" / "ardiff" / data._VERIFIED_FILE).write_text(record)
    with bundled_from(folder) as files:
        monkeypatch.setattr(data, "_bundled_files", files)
        with pytest.raises(DataError, match=r"corrupt or modified copy"):
            load("fashion-mnist-small", "test")


def test_an_unwritable_cache_only_costs_the_next_process_a_hash(tmp_path, monkeypatch):
    (tmp_path / "cache").write_text("a file where the cache folder would be")
    x, _ = load("fashion-mnist-small", "test")
    assert x.shape == (2000, 784)


@pytest.mark.skipif(not all((DEBIAN / f"{stem}.gz").is_file()
                            for stems in data._SPLIT_STEMS.values() for stem in stems),
                    reason="Debian's dataset-fashion-mnist is not installed")
@pytest.mark.parametrize("stem", [s for stems in data._SPLIT_STEMS.values() for s in stems])
def test_debians_fashion_mnist_is_the_published_data(stem):
    """Upstream's gzip header put back on Debian's deflate stream gives the published .gz
    (its published SHA-256 and MD5), so the recorded IDX digest is the published data's."""
    debian = (DEBIAN / f"{stem}.gz").read_bytes()
    assert debian[:4] == b"\x1f\x8b\x08\x00"  # deflate, no name field: upstream's had one
    upstream = (b"\x1f\x8b\x08\x08" + struct.pack("<I", data._UPSTREAM_GZIP_MTIMES[stem])
                + debian[8:10] + stem.encode() + b"\x00" + debian[10:])
    assert "sha256:" + hashlib.sha256(upstream).hexdigest() == \
        data._CHECKSUMS["fashion-mnist"][f"{stem}.gz"]
    published_md5 = {"train-images-idx3-ubyte": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
                     "train-labels-idx1-ubyte": "25c81989df183df01b3e8a0aad5dffbe",
                     "t10k-images-idx3-ubyte": "bef4ecab320f06d8554ea6380940ec79",
                     "t10k-labels-idx1-ubyte": "bb300cfdad3c16e7a12a480ee83cd310"}
    assert hashlib.md5(upstream).hexdigest() == published_md5[stem]  # upstream README
    content = gzip.decompress(debian)
    assert gzip.decompress(upstream) == content
    digest, n = data._IDX_CHECKSUMS["fashion-mnist"][stem]
    assert hashlib.sha256(content).hexdigest() == digest
    assert struct.unpack(">I", content[4:8]) == (n,)
