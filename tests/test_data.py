"""Tests for vae.data: bundled digits, IDX parsing, mirrored downloads (local server), npz."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import io
import socket
import struct
import threading
from pathlib import Path

import numpy as np
import pytest

from vae import data
from vae.data import DataError

# ---------------------------------------------------------------------------------------------
# Helpers


def idx_bytes(arr: np.ndarray) -> bytes:
    """Encode a uint8/int32 array as IDX (big-endian header and data)."""
    code = {np.dtype(np.uint8): 0x08, np.dtype(np.int32): 0x0C}[arr.dtype]
    header = bytes([0, 0, code, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return header + arr.astype(arr.dtype.newbyteorder(">")).tobytes()


def files_under(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if not p.is_dir()]


def tiny_idx_set(n_train: int = 6, n_test: int = 4, side: int = 5) -> dict[str, bytes]:
    """The four IDX .gz files of a tiny fake MNIST, keyed by file name."""
    rng = np.random.default_rng(0)
    arrays = {
        "train-images-idx3-ubyte.gz": rng.integers(0, 256, (n_train, side, side), np.uint8),
        "train-labels-idx1-ubyte.gz": rng.integers(0, 10, n_train).astype(np.uint8),
        "t10k-images-idx3-ubyte.gz": rng.integers(0, 256, (n_test, side, side), np.uint8),
        "t10k-labels-idx1-ubyte.gz": rng.integers(0, 10, n_test).astype(np.uint8),
    }
    return {name: gzip.compress(idx_bytes(a), mtime=0) for name, a in arrays.items()}


class Server:
    """A local HTTP server: routes map a URL path to (status, body, bytes actually sent)."""

    def __init__(self) -> None:
        self.routes: dict[str, tuple[int, bytes, int | None]] = {}
        self.requests: list[str] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.requests.append(self.path)
                status, body, sent = outer.routes.get(self.path, (404, b"not found", None))
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body[:sent] if sent is not None else body)
                self.close_connection = True

            def log_message(self, *args: object) -> None:  # keep test output clean
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self.thread.start()

    def serve(self, prefix: str, files: dict[str, bytes], truncate: bool = False) -> str:
        """Serve `files` under /prefix/; return that mirror URL."""
        for name, body in files.items():
            self.routes[f"/{prefix}/{name}"] = (200, body, len(body) // 2 if truncate else None)
        return f"{self.base}/{prefix}/"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch):
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    srv = Server()
    yield srv
    srv.close()


@pytest.fixture
def tiny_files(monkeypatch: pytest.MonkeyPatch) -> dict[str, bytes]:
    """Tiny IDX files, with the checksum table pointing at their MD5s."""
    files = tiny_idx_set()
    sums = {name: hashlib.md5(body).hexdigest() for name, body in files.items()}
    monkeypatch.setitem(data.CHECKSUMS, "mnist", sums)
    return files


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


# ---------------------------------------------------------------------------------------------
# Bundled digits


def test_digits_shapes_range_and_labels() -> None:
    ds = data.load_digits_dataset()
    assert ds.name == "digits" and ds.image_shape == (8, 8) and ds.notice is None
    assert ds.x_train.shape == (1438, 64) and ds.x_test.shape == (359, 64)
    for x in (ds.x_train, ds.x_test):
        assert x.dtype == np.float32 and x.flags.c_contiguous
        assert x.min() >= 0.0 and x.max() <= 1.0
    assert ds.x_train.max() == 1.0
    assert ds.y_train.dtype == np.int64 and ds.y_train.shape == (1438,)
    assert ds.y_test.shape == (359,)
    assert set(np.unique(ds.y_train)) == set(range(10))


def test_digits_labels_align_with_sklearn() -> None:
    from sklearn.datasets import load_digits

    raw = load_digits()
    perm = np.random.default_rng(3).permutation(1797)
    ds = data.load_digits_dataset(seed=3)
    np.testing.assert_allclose(ds.x_test, raw.data[perm[:359]] / 16.0, rtol=1e-6)
    np.testing.assert_array_equal(ds.y_test, raw.target[perm[:359]])
    np.testing.assert_array_equal(ds.y_train, raw.target[perm[359:]])


def test_digits_split_deterministic_per_seed() -> None:
    a, b, c = (data.load_digits_dataset(seed=s) for s in (0, 0, 1))
    np.testing.assert_array_equal(a.x_train, b.x_train)
    np.testing.assert_array_equal(a.y_test, b.y_test)
    assert not np.array_equal(a.x_train, c.x_train)
    a.x_train[0, 0] = 0.5  # results are independent copies, not views of a shared cache
    assert data.load_digits_dataset(seed=0).x_train[0, 0] == b.x_train[0, 0]


def test_digits_bad_fraction() -> None:
    with pytest.raises(DataError, match="between 0 and 1"):
        data.load_digits_dataset(test_fraction=1.5)


# ---------------------------------------------------------------------------------------------
# read_idx


@pytest.mark.parametrize("compress", [True, False])
def test_read_idx_roundtrip(tmp_path: Path, compress: bool) -> None:
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    raw = idx_bytes(images)
    path = tmp_path / ("x.idx.gz" if compress else "x.idx")
    path.write_bytes(gzip.compress(raw) if compress else raw)
    out = data.read_idx(path)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, images)


def test_read_idx_int32_native_endian(tmp_path: Path) -> None:
    arr = np.array([1, -2, 70000], dtype=np.int32)
    (tmp_path / "a.idx").write_bytes(idx_bytes(arr))
    out = data.read_idx(str(tmp_path / "a.idx"))
    assert out.dtype == np.int32 and out.dtype.isnative and out.flags.writeable
    np.testing.assert_array_equal(out, arr)


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"\x01\x00\x08\x01" + struct.pack(">I", 2) + b"ab", "magic"),
        (b"\x00\x00\x07\x01" + struct.pack(">I", 2) + b"ab", "magic"),
        (b"\x00\x00", "magic"),
        (b"\x00\x00\x08\x03" + struct.pack(">I", 2), "header"),
        (b"\x00\x00\x08\x02" + struct.pack(">II", 3, 4) + bytes(11), "11"),
        (b"\x00\x00\x08\x01" + struct.pack(">I", 2) + bytes(5), "damaged"),
    ],
    ids=["bad-magic", "bad-type", "short", "truncated-header", "truncated-data", "trailing"],
)
def test_read_idx_malformed(tmp_path: Path, content: bytes, match: str) -> None:
    path = tmp_path / "bad.idx"
    path.write_bytes(content)
    with pytest.raises(DataError, match=match):
        data.read_idx(path)


def test_read_idx_bad_gzip_and_missing(tmp_path: Path) -> None:
    good = gzip.compress(idx_bytes(np.zeros((4, 4), np.uint8)))
    (tmp_path / "cut.gz").write_bytes(good[: len(good) - 6])
    with pytest.raises(DataError, match="cut.gz"):
        data.read_idx(tmp_path / "cut.gz")
    with pytest.raises(DataError, match="does not exist"):
        data.read_idx(tmp_path / "nope.gz")


# ---------------------------------------------------------------------------------------------
# Downloads from a local server


def test_download_success_and_cache(server: Server, tiny_files, tmp_path: Path) -> None:
    mirror = server.serve("m1", tiny_files)
    ds = data.load_idx_dataset("mnist", tmp_path, mirrors=[mirror])
    assert ds.name == "mnist" and ds.image_shape == (5, 5)
    assert ds.x_train.shape == (6, 25) and ds.x_test.shape == (4, 25)
    assert ds.x_train.dtype == np.float32 and ds.x_train.flags.c_contiguous
    assert 0.0 <= ds.x_train.min() and ds.x_train.max() <= 1.0
    assert ds.y_train.dtype == np.int64 and ds.y_test.shape == (4,)
    expected = gzip.decompress(tiny_files["train-images-idx3-ubyte.gz"])[16:]
    np.testing.assert_allclose(ds.x_train.ravel() * 255, np.frombuffer(expected, np.uint8))
    cached = sorted(p.name for p in files_under(tmp_path))
    assert cached == sorted(tiny_files)
    assert all(p.parent == tmp_path / "mnist" for p in files_under(tmp_path))
    assert len(server.requests) == 4

    paths = data.download_idx_files("mnist", tmp_path, mirrors=[mirror])
    assert set(paths) == {"train_images", "train_labels", "test_images", "test_labels"}
    assert paths["test_labels"] == tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz"
    data.load_dataset("mnist", tmp_path, mirrors=[mirror])
    assert len(server.requests) == 4  # served from the cache, no new request


def test_download_falls_back_to_second_mirror(server: Server, tiny_files, tmp_path) -> None:
    good = server.serve("good", tiny_files)
    ds = data.load_idx_dataset("mnist", tmp_path, mirrors=[f"{server.base}/missing", good])
    assert ds.x_train.shape == (6, 25)
    assert sum(r.startswith("/missing/") for r in server.requests) == 4
    assert sum(r.startswith("/good/") for r in server.requests) == 4


def test_data_dir_from_environment(server, tiny_files, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("REPARAM_LAB_DATA_DIR", str(tmp_path / "env"))
    assert data.default_data_dir() == tmp_path / "env"
    data.download_idx_files("mnist", mirrors=[server.serve("m", tiny_files)])
    assert len(files_under(tmp_path / "env" / "mnist")) == 4


@pytest.mark.parametrize("failure", ["truncated", "checksum"])
def test_download_failure_leaves_no_files(server, tiny_files, tmp_path, failure) -> None:
    if failure == "truncated":
        mirror = server.serve("m", tiny_files, truncate=True)
        reason = "closed before the whole file"
    else:
        mirror = server.serve("m", {k: v + b"junk" for k, v in tiny_files.items()})
        reason = "checksum mismatch"
    mirrors = [mirror, f"{server.base}/gone/"]
    with pytest.raises(DataError) as info:
        data.download_idx_files("mnist", tmp_path, mirrors=mirrors)
    msg = str(info.value)
    assert "train-images-idx3-ubyte.gz" in msg and reason in msg and "HTTP 404" in msg
    assert mirror in msg and f"{server.base}/gone/" in msg and "offline" in msg
    assert files_under(tmp_path) == []


def test_stale_cached_file_is_replaced_or_removed(server, tiny_files, tmp_path) -> None:
    folder = tmp_path / "mnist"
    folder.mkdir()
    (folder / "train-images-idx3-ubyte.gz").write_bytes(b"partial")
    with pytest.raises(DataError):
        data.download_idx_files("mnist", tmp_path, mirrors=[f"{server.base}/gone/"])
    assert files_under(tmp_path) == []
    (folder / "train-images-idx3-ubyte.gz").write_bytes(b"partial")
    data.download_idx_files("mnist", tmp_path, mirrors=[server.serve("m", tiny_files)])
    assert len(files_under(tmp_path)) == 4
    assert (folder / "train-images-idx3-ubyte.gz").read_bytes() != b"partial"


def test_connection_refused(tiny_files, tmp_path) -> None:
    url = closed_port_url()
    with pytest.raises(DataError, match="could not connect") as info:
        data.load_dataset("mnist", tmp_path, mirrors=[url])
    assert url in str(info.value)
    assert files_under(tmp_path) == []


def test_fallback_to_digits(server, tiny_files, tmp_path) -> None:
    ds = data.load_dataset(
        "mnist", tmp_path, fallback_to_digits=True, mirrors=[f"{server.base}/gone/"]
    )
    assert ds.name == "digits" and ds.x_train.shape == (1438, 64)
    assert ds.notice and "MNIST" in ds.notice and "HTTP 404" in ds.notice_details
    assert files_under(tmp_path) == []


def test_unknown_names() -> None:
    with pytest.raises(DataError, match="'digits', 'mnist', 'fashion-mnist'"):
        data.load_dataset("cifar10")
    with pytest.raises(DataError, match="no downloadable dataset"):
        data.download_idx_files("digits", mirrors=[])


def test_load_dataset_digits_by_name() -> None:
    assert data.load_dataset("Digits").x_train.shape == (1438, 64)


# ---------------------------------------------------------------------------------------------
# npz


def npz_bytes(**arrays: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def test_npz_uint8_images_roundtrip(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x_train = rng.integers(0, 256, (5, 3, 4), np.uint8)
    x_test = rng.integers(0, 256, (2, 3, 4), np.uint8)
    y_train = np.arange(5, dtype=np.int32)
    path = tmp_path / "mine.npz"
    np.savez(path, x_train=x_train, x_test=x_test, y_train=y_train, y_test=np.array([0, 1]))
    ds = data.load_dataset(str(path))
    assert ds.name == "mine.npz" and ds.image_shape == (3, 4)
    assert ds.x_train.shape == (5, 12) and ds.x_train.dtype == np.float32
    assert ds.x_train.flags.c_contiguous
    np.testing.assert_allclose(ds.x_train, x_train.reshape(5, 12) / 255.0, rtol=1e-6)
    flat_test = npz_bytes(x_train=x_train, x_test=x_test.reshape(2, 12))  # same D: compatible
    assert data.load_npz(flat_test).image_shape == (3, 4)
    assert ds.y_train.dtype == np.int64
    np.testing.assert_array_equal(ds.y_train, y_train)


@pytest.mark.parametrize(("d", "shape"), [(16, (4, 4)), (10, (1, 10))])
def test_npz_float_flat_roundtrip(d: int, shape: tuple[int, int]) -> None:
    x = np.random.default_rng(1).random((4, d))
    blob = npz_bytes(x_train=x, x_test=x[:2])
    ds = data.load_npz(blob)
    assert ds.image_shape == shape and ds.y_train is None and ds.y_test is None
    assert ds.name == "uploaded.npz"
    np.testing.assert_allclose(ds.x_test, x[:2], rtol=1e-6)
    named = io.BytesIO(blob)
    named.name = "upload/my_data.npz"  # like Streamlit's UploadedFile
    assert data.load_npz(named).name == "my_data.npz"


X = np.zeros((3, 4, 4), np.uint8)


@pytest.mark.parametrize(
    ("arrays", "match"),
    [
        ({"x_train": X}, "x_test"),
        ({"x_test": X, "other": X}, "x_train"),
        ({"x_train": np.zeros((3, 2, 2, 2)), "x_test": X}, "3 dims|4"),
        ({"x_train": np.zeros(3), "x_test": X}, "2 dims"),
        ({"x_train": X, "x_test": np.zeros((2, 5, 5), np.uint8)}, "different image shapes"),
        ({"x_train": X, "x_test": np.zeros((2, 9), np.uint8)}, "different image shapes"),
        ({"x_train": np.zeros((0, 4, 4)), "x_test": X}, "empty"),
        ({"x_train": np.full((3, 16), "a"), "x_test": X}, "non-numeric"),
        ({"x_train": np.full((3, 16), np.nan), "x_test": X}, "NaN"),
        ({"x_train": np.full((3, 16), np.inf), "x_test": X}, "NaN or infinite"),
        ({"x_train": np.full((3, 16), 2.0), "x_test": X}, r"\[0, 1\]"),
        ({"x_train": np.full((3, 16), -0.1), "x_test": X}, r"\[0, 1\]"),
        ({"x_train": np.full((3, 16), 300), "x_test": X}, "0..255"),
        ({"x_train": X, "x_test": X, "y_train": np.arange(4)}, "lengths must match"),
        ({"x_train": X, "x_test": X, "y_test": np.zeros(3)}, "integer labels"),
        ({"x_train": X, "x_test": X, "y_train": np.zeros((3, 1), int)}, "1-D"),
    ],
)
def test_npz_refusals(arrays: dict[str, np.ndarray], match: str) -> None:
    with pytest.raises(DataError, match=match):
        data.load_npz(npz_bytes(**arrays))


def test_npz_object_array_refused() -> None:
    buf = io.BytesIO()
    np.savez(buf, x_train=np.array([{"a": 1}, None], dtype=object), x_test=X)
    with pytest.raises(DataError, match="x_train.*pickled"):
        data.load_npz(buf.getvalue())


def test_npz_not_an_archive(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not an .npz archive") as refused:
        data.load_npz(b"this is not a zip file at all")
    assert "pickle" not in str(refused.value)  # numpy's own message would suggest unpickling untrusted data
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"PK\x03\x04garbage")
    with pytest.raises(DataError, match="bad.npz"):
        data.load_dataset(str(bad))
    single = tmp_path / "one.npz"
    with single.open("wb") as f:
        np.save(f, X)
    with pytest.raises(DataError, match="single array"):
        data.load_npz(single)
    with pytest.raises(DataError, match="does not exist"):
        data.load_npz(tmp_path / "missing.npz")


def test_is_cached_sees_the_four_files(tmp_path: Path) -> None:
    assert not data.is_cached("mnist", tmp_path)
    (tmp_path / "mnist").mkdir()
    for fname in data.IDX_FILES.values():
        (tmp_path / "mnist" / fname).write_bytes(b"x")
    assert data.is_cached("mnist", tmp_path)
    assert not data.is_cached("fashion-mnist", tmp_path)


@pytest.mark.parametrize("name", ["ABSOLUTE", "../secret.npz", "digits/../../secret.npz", "secret.npz"])
def test_a_dataset_named_by_a_file_is_a_known_name_never_a_path(tmp_path, monkeypatch, name):
    """A checkpoint's config names its dataset. Set to a path, it made the Latent page load that .npz from the
    server's disk; only the app's own dataset names may be loaded by name."""
    from vae.data import load_dataset, load_named_dataset

    secret = tmp_path / "secret.npz"
    np.savez(secret, x_train=np.zeros((4, 8, 8), np.uint8), x_test=np.zeros((2, 8, 8), np.uint8))
    monkeypatch.chdir(tmp_path)
    name = str(secret) if name == "ABSOLUTE" else name
    assert len(load_dataset(str(secret)).x_train) == 4  # a path does load through the general loader...
    with pytest.raises(DataError, match="not one this app provides"):
        load_named_dataset(name)  # ...but never through the one the app uses for names from files


def test_the_app_loads_datasets_by_name_only():
    """Every dataset the pages load by name goes through load_named_dataset (the shared cache does)."""
    source = (Path(__file__).resolve().parent.parent / "pages" / "_session.py").read_text()
    assert "load_named_dataset(name" in source and "load_dataset(" not in source
