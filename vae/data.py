"""Datasets for the lab: bundled 8x8 digits, downloaded MNIST / Fashion-MNIST, or a user's .npz.

Every loader returns a `Dataset` with flattened float32 images in [0, 1], so the model code never
cares where the pixels came from. Anything the user can get wrong (a bad upload, no network)
raises `DataError` whose message is a sentence fit to show in the UI as is.
"""

from __future__ import annotations

import functools
import gzip
import io
import math
import os
import zipfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pooch


class DataError(Exception):
    """A dataset could not be loaded; the message is a full user-facing sentence."""


# eq=False: field-wise == and hash are meaningless (and raise) with array fields.
@dataclass(frozen=True, eq=False)
class Dataset:
    name: str  # "digits", "mnist", "fashion-mnist", or the npz file name
    x_train: np.ndarray  # (N, D) float32 in [0, 1], C-contiguous, D = H*W
    x_test: np.ndarray  # (M, D) float32 in [0, 1]
    y_train: np.ndarray | None  # (N,) int64 labels, or None
    y_test: np.ndarray | None
    image_shape: tuple[int, int]  # (H, W)
    notice: str | None = None  # a sentence for the UI, e.g. why we fell back to digits
    notice_details: str | None = None  # the full reason behind the notice, for an expander


DATASET_NAMES: tuple[str, ...] = ("digits", "mnist", "fashion-mnist")

DISPLAY_NAMES = {"digits": "8x8 digits", "mnist": "MNIST", "fashion-mnist": "Fashion-MNIST"}

# Role -> file name of the four standard IDX files.
IDX_FILES: dict[str, str] = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}

# Public mirrors, tried in order: the original hosts come and go.
MIRRORS: dict[str, tuple[str, ...]] = {
    "mnist": (
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
        "http://yann.lecun.com/exdb/mnist/",
    ),
    "fashion-mnist": (
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        "https://github.com/zalandoresearch/fashion-mnist/raw/master/data/fashion/",
    ),
}

# Published MD5s; a module-level table so tests can monkeypatch it for their tiny files.
CHECKSUMS: dict[str, dict[str, str]] = {
    "mnist": {
        "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
    },
}

DATA_DIR_ENV = "REPARAM_LAB_DATA_DIR"
OFFLINE_HINT = "The bundled 'digits' dataset works offline."


def default_data_dir() -> Path:
    """Where downloads are cached: $REPARAM_LAB_DATA_DIR, else the per-user cache folder."""
    env = os.environ.get(DATA_DIR_ENV, "").strip()
    return Path(env).expanduser() if env else Path(pooch.os_cache("reparam-lab"))


# ---------------------------------------------------------------------------------------------
# Bundled digits


@functools.cache
def _digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """sklearn's digits, parsed once per process (read-only so the cache cannot be mutated)."""
    from sklearn.datasets import load_digits  # lazy: sklearn is slow to import

    bunch = load_digits()
    x = (bunch.data / 16.0).astype(np.float32)  # pixel values are 0..16
    y = bunch.target.astype(np.int64)
    x.flags.writeable = False
    y.flags.writeable = False
    return x, y


def load_digits_dataset(seed: int = 0, test_fraction: float = 0.2) -> Dataset:
    """The bundled 8x8 digits (1797 images, no download) with a seeded random train/test split."""
    if not 0.0 < test_fraction < 1.0:
        raise DataError(f"The test fraction must be between 0 and 1, not {test_fraction}.")
    x, y = _digits_arrays()
    perm = np.random.default_rng(seed).permutation(len(x))
    n_test = max(1, min(len(x) - 1, round(len(x) * test_fraction)))
    test, train = perm[:n_test], perm[n_test:]
    return Dataset("digits", x[train], x[test], y[train], y[test], (8, 8))


# ---------------------------------------------------------------------------------------------
# IDX files (MNIST's format)

# IDX type code -> big-endian numpy dtype.
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def _read_bytes(path: Path) -> bytes:
    """File contents, gunzipped when the file starts with the gzip magic (whatever its name)."""
    try:
        raw = path.read_bytes()
        return gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw
    except FileNotFoundError:
        raise DataError(f"The IDX file {path} does not exist.") from None
    except (OSError, EOFError, zlib.error) as exc:  # a corrupt .gz can raise any of these
        raise DataError(f"The IDX file {path.name} could not be read ({exc}).") from exc


def read_idx(path: str | Path) -> np.ndarray:
    """Parse an IDX file (.gz or raw) into a native-endian array, checking header and size."""
    path = Path(path)
    buf = _read_bytes(path)
    if len(buf) < 4 or buf[0] != 0 or buf[1] != 0 or buf[2] not in _IDX_DTYPES or buf[3] == 0:
        raise DataError(f"{path.name} is not an IDX file (bad magic number {buf[:4].hex()!r}).")
    dtype, ndim = np.dtype(_IDX_DTYPES[buf[2]]), buf[3]
    header = 4 + 4 * ndim
    if len(buf) < header:
        raise DataError(f"{path.name} is truncated: its header is incomplete.")
    dims = tuple(int(d) for d in np.frombuffer(buf, ">u4", count=ndim, offset=4))
    expected = math.prod(dims) * dtype.itemsize
    if len(buf) - header != expected:
        raise DataError(
            f"{path.name} is damaged: shape {dims} needs {expected} data bytes "
            f"but the file has {len(buf) - header}."
        )
    data = np.frombuffer(buf, dtype, offset=header).reshape(dims)
    return data.astype(dtype.newbyteorder("="))  # copy: native byte order and writable


# ---------------------------------------------------------------------------------------------
# Downloads


def _check_name(name: str) -> None:
    if name not in MIRRORS:
        choices = ", ".join(repr(n) for n in MIRRORS)
        raise DataError(f"There is no downloadable dataset called {name!r}; choose {choices}.")


def _describe(exc: Exception) -> str:
    """A short human reason for one failed mirror (requests' messages run to several lines)."""
    import requests  # lazy, as pooch does: only needed once something failed

    if isinstance(exc, requests.HTTPError) and exc.response is not None:
        return f"HTTP {exc.response.status_code}"
    if isinstance(exc, requests.ConnectionError):
        return "could not connect"
    if isinstance(exc, requests.Timeout):
        return "timed out"
    broken = (requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError)
    if isinstance(exc, broken):
        return "the connection closed before the whole file arrived"
    if isinstance(exc, ValueError) and "hash" in str(exc).lower():
        return "checksum mismatch (the file was incomplete or not the published one)"
    return _first_line(exc)


def _file_ok(path: Path, md5: str) -> bool:
    return path.is_file() and pooch.file_hash(str(path), alg="md5") == md5


def _remove_leftovers(folder: Path, target: Path, md5: str, before: set[str]) -> None:
    """After a failed download: drop pooch temp files (tempfile's 'tmp*' names) created during
    this attempt, and a stale target that does not verify, so no partial file stays cached."""
    if not folder.is_dir():
        return
    for entry in folder.iterdir():
        if entry.name.startswith("tmp") and entry.name not in before and entry.is_file():
            entry.unlink(missing_ok=True)
    if target.exists() and not _file_ok(target, md5):
        target.unlink(missing_ok=True)


def _fetch(fname: str, md5: str, folder: Path, mirrors: Sequence[str], progress: bool) -> Path:
    """One file from the first mirror that delivers it whole and verified (or from the cache)."""
    before = {p.name for p in folder.iterdir()} if folder.is_dir() else set()
    failures = []
    for mirror in mirrors:
        url = mirror.rstrip("/") + "/" + fname
        try:
            # pooch skips the download when the file is present and verified, and otherwise
            # streams to a temp file that is moved into place only when whole and verified.
            got = pooch.retrieve(
                url, known_hash=f"md5:{md5}", fname=fname, path=folder, progressbar=progress
            )
            return Path(got)
        except (ValueError, OSError) as exc:  # network/HTTP: OSError; bad hash: ValueError
            failures.append(f"{mirror} ({_describe(exc)})")
    _remove_leftovers(folder, folder / fname, md5, before)
    tried = "; ".join(failures) if failures else "no mirrors were given"
    raise DataError(
        f"Could not download {fname} from any mirror. Tried: {tried}. "
        f"Check the network connection or try again later. {OFFLINE_HINT}"
    )


def download_idx_files(
    name: str,
    data_dir: str | Path | None = None,
    mirrors: Sequence[str] | None = None,
    progress: bool = False,
) -> dict[str, Path]:
    """Fetch (or find cached) the four IDX .gz files of `name` into <data_dir>/<name>.

    Returns role -> path, roles being the keys of IDX_FILES ("train_images", "train_labels",
    "test_images", "test_labels"). `mirrors` overrides the built-in mirror list.
    """
    _check_name(name)
    pooch.get_logger().setLevel("INFO" if progress else "WARNING")
    folder = Path(data_dir if data_dir is not None else default_data_dir()).expanduser() / name
    mirror_list = tuple(mirrors) if mirrors is not None else MIRRORS[name]
    sums = CHECKSUMS[name]
    return {
        role: _fetch(fname, sums[fname], folder, mirror_list, progress)
        for role, fname in IDX_FILES.items()
    }


def is_cached(name: str, data_dir: str | Path | None = None) -> bool:
    """Whether the four IDX files of `name` are already in the cache (then nothing is downloaded)."""
    folder = Path(data_dir if data_dir is not None else default_data_dir()).expanduser() / name
    return all((folder / fname).is_file() for fname in IDX_FILES.values())


def _idx_split(images: np.ndarray, labels: np.ndarray, what: str) -> tuple[np.ndarray, np.ndarray]:
    """Check one images/labels pair and convert to (N, H*W) float32 in [0, 1] and int64."""
    if images.ndim != 3 or images.dtype != np.uint8 or labels.ndim != 1:
        raise DataError(
            f"The {what} IDX files have unexpected contents: images {images.dtype} "
            f"{images.shape}, labels {labels.shape}."
        )
    if len(images) != len(labels):
        raise DataError(
            f"The {what} IDX files disagree: {len(images)} images but {len(labels)} labels."
        )
    x = np.ascontiguousarray(images.reshape(len(images), -1), dtype=np.float32)
    x /= 255.0
    return x, labels.astype(np.int64)


def load_idx_dataset(
    name: str,
    data_dir: str | Path | None = None,
    mirrors: Sequence[str] | None = None,
    progress: bool = False,
) -> Dataset:
    """MNIST or Fashion-MNIST from the cache, downloading the IDX files first when needed."""
    paths = download_idx_files(name, data_dir, mirrors, progress)
    arrays = {role: read_idx(path) for role, path in paths.items()}
    x_train, y_train = _idx_split(arrays["train_images"], arrays["train_labels"], "training")
    x_test, y_test = _idx_split(arrays["test_images"], arrays["test_labels"], "test")
    shape = arrays["train_images"].shape[1:]
    if shape != arrays["test_images"].shape[1:]:
        raise DataError(f"The {name} training and test images have different sizes.")
    return Dataset(name, x_train, x_test, y_train, y_test, (int(shape[0]), int(shape[1])))


# ---------------------------------------------------------------------------------------------
# A user's own .npz


def _npz_name(source: str | Path | bytes | BinaryIO) -> str:
    if isinstance(source, (str, Path)):
        return Path(source).name
    name = getattr(source, "name", None)  # e.g. Streamlit's UploadedFile, an open file
    return Path(name).name if isinstance(name, str) and name else "uploaded.npz"


_ARCHIVE_SIGNATURES = (b"PK\x03\x04", b"PK\x05\x06", b"\x93NUMPY")  # zip (an .npz), empty zip, bare .npy


def _refuse_non_archives(source: str | Path | BinaryIO, label: str) -> None:
    """Say "not an .npz" before numpy does: on arbitrary bytes its message suggests unpickling the file."""
    try:
        if isinstance(source, (str, Path)):
            with open(source, "rb") as file:
                head = file.read(6)
        else:
            position = source.tell()
            head = source.read(6)
            source.seek(position)
    except FileNotFoundError:
        raise DataError(f"The file {label} does not exist.") from None
    except OSError as exc:
        raise DataError(f"{label} could not be read ({exc}).") from exc
    if not head.startswith(_ARCHIVE_SIGNATURES):
        raise DataError(f"{label} is not an .npz archive (a zip of arrays, as numpy.savez writes).")


def _open_npz(source: str | Path | bytes | BinaryIO, label: str) -> dict[str, np.ndarray]:
    """Every array in the archive, refusing pickles; any unreadable file becomes a DataError."""
    if isinstance(source, (bytes, bytearray)):
        source = io.BytesIO(source)
    _refuse_non_archives(source, label)
    try:
        loaded = np.load(source, allow_pickle=False)
    except FileNotFoundError:
        raise DataError(f"The file {label} does not exist.") from None
    except Exception as exc:  # numpy raises many types for garbage input
        raise DataError(f"{label} is not a valid .npz file ({_first_line(exc)}).") from exc
    if not isinstance(loaded, np.lib.npyio.NpzFile):
        raise DataError(f"{label} holds a single array, not an .npz archive of named arrays.")
    with loaded:
        return {key: _read_member(loaded, key, label) for key in loaded.files}


def _read_member(npz: np.lib.npyio.NpzFile, key: str, label: str) -> np.ndarray:
    try:
        return npz[key]
    except ValueError as exc:
        if "pickle" in str(exc).lower():
            raise DataError(
                f"The array '{key}' in {label} holds Python objects (a pickled/object array); "
                "only plain numeric arrays are accepted."
            ) from exc
        raise DataError(f"The array '{key}' in {label} is unreadable ({_first_line(exc)}).") from exc
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(f"The array '{key}' in {label} is damaged ({_first_line(exc)}).") from exc


def _first_line(exc: Exception) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0][:200]


def _npz_images(arr: np.ndarray, key: str) -> np.ndarray:
    """Validate one image array and return it as (N, D) float32 in [0, 1]."""
    if arr.dtype.kind not in "biuf":
        raise DataError(f"'{key}' has non-numeric dtype {arr.dtype}; save numbers (uint8 or float).")
    if arr.ndim not in (2, 3):
        raise DataError(
            f"'{key}' must have 2 dims (N x D) or 3 dims (N x H x W), but it has "
            f"{arr.ndim} (shape {arr.shape})."
        )
    if arr.size == 0:
        raise DataError(f"'{key}' is empty (shape {arr.shape}).")
    if arr.dtype.kind == "f":
        if not np.isfinite(arr).all():
            raise DataError(f"'{key}' contains NaN or infinite values.")
        lo, hi = float(arr.min()), float(arr.max())
        if lo < 0.0 or hi > 1.0:
            raise DataError(
                f"'{key}' is float with values outside [0, 1] (min {lo:g}, max {hi:g}); "
                "scale it to [0, 1] or save uint8 pixels 0..255."
            )
        x = arr.astype(np.float32)
    elif arr.dtype.kind in "iu":  # integers are gray levels 0..255
        lo, hi = int(arr.min()), int(arr.max())
        if lo < 0 or hi > 255:
            raise DataError(
                f"'{key}' is integer with values outside 0..255 (min {lo}, max {hi}); "
                "save uint8 pixels 0..255 or floats in [0, 1]."
            )
        x = arr.astype(np.float32) / 255.0
    else:  # bool: already 0/1
        x = arr.astype(np.float32)
    return np.ascontiguousarray(x.reshape(len(x), -1))


def _npz_labels(arr: np.ndarray, key: str, n: int) -> np.ndarray:
    """Validate optional labels against the number of images they describe."""
    if arr.dtype.kind not in "iu":
        raise DataError(f"'{key}' must hold integer labels, not {arr.dtype}.")
    if arr.ndim != 1:
        raise DataError(f"'{key}' must be 1-D, but it has shape {arr.shape}.")
    if len(arr) != n:
        image_key = key.replace("y_", "x_")
        raise DataError(
            f"'{key}' has {len(arr)} labels but '{image_key}' has {n} images; lengths must match."
        )
    return arr.astype(np.int64)


def _image_shape(train: np.ndarray, test: np.ndarray) -> tuple[int, int]:
    """(H, W) shared by x_train and x_test. A 3-D array gives it; N x D gets a square when D is
    a perfect square, else one row. One flat and one 3-D array are fine if D agrees."""
    shaped = [a.shape[1:] for a in (train, test) if a.ndim == 3]
    d_train, d_test = math.prod(train.shape[1:]), math.prod(test.shape[1:])
    if d_train != d_test or len(set(shaped)) > 1:
        raise DataError(
            f"x_train and x_test have different image shapes: "
            f"{train.shape[1:]} vs {test.shape[1:]}."
        )
    if shaped:
        return int(shaped[0][0]), int(shaped[0][1])
    side = math.isqrt(d_train)
    return (side, side) if side * side == d_train else (1, d_train)


def load_npz(source: str | Path | bytes | BinaryIO) -> Dataset:
    """A user's .npz with x_train, x_test (N x H x W or N x D) and optional y_train, y_test."""
    label = _npz_name(source)
    arrays = _open_npz(source, label)
    missing = [k for k in ("x_train", "x_test") if k not in arrays]
    if missing:
        found = ", ".join(sorted(arrays)) or "no arrays"
        raise DataError(
            f"{label} is missing the array(s) {', '.join(missing)} (it has: {found})."
        )
    x_train = _npz_images(arrays["x_train"], "x_train")
    x_test = _npz_images(arrays["x_test"], "x_test")
    shape = _image_shape(arrays["x_train"], arrays["x_test"])
    labels = {
        key: _npz_labels(arrays[key], key, len(x)) if key in arrays else None
        for key, x in (("y_train", x_train), ("y_test", x_test))
    }
    return Dataset(label, x_train, x_test, labels["y_train"], labels["y_test"], shape)


# ---------------------------------------------------------------------------------------------
# One entry point for the app and the CLI


def load_named_dataset(name: str, **options) -> Dataset:
    """One of `DATASET_NAMES`, never a path. For every name the app did not choose itself, above all the dataset
    a checkpoint's config names: a file from a user must not make the server read a file of its own."""
    if name not in DATASET_NAMES:
        choices = ", ".join(repr(n) for n in DATASET_NAMES)
        raise DataError(f"The dataset {name[:80]!r} is not one this app provides ({choices}).")
    return load_dataset(name, **options)


def load_dataset(
    name_or_path: str,
    data_dir: str | Path | None = None,
    *,
    fallback_to_digits: bool = False,
    mirrors: Sequence[str] | None = None,
    progress: bool = False,
) -> Dataset:
    """'digits', 'mnist', 'fashion-mnist' or a path ending in .npz.

    With fallback_to_digits, a failed download returns the bundled digits with a `notice`
    saying why (the app wants something to show; the CLI wants the error).
    """
    key = name_or_path.strip().lower()
    if key == "digits":
        return load_digits_dataset()
    if key in MIRRORS:
        try:
            return load_idx_dataset(key, data_dir, mirrors, progress)
        except DataError as exc:
            if not fallback_to_digits:
                raise
            notice = f"{DISPLAY_NAMES[key]} could not be downloaded, so the bundled 8×8 digits are used instead."
            return replace(load_digits_dataset(), notice=notice, notice_details=str(exc))
    if key.endswith(".npz"):
        return load_npz(name_or_path)
    choices = ", ".join(repr(n) for n in DATASET_NAMES)
    raise DataError(
        f"Unknown dataset {name_or_path!r}: choose one of {choices}, or a path to an .npz file."
    )
