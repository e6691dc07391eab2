"""Datasets for the lab: bundled 8x8 digits, downloaded MNIST / Fashion-MNIST, or a user's .npz.

Every loader returns a `Dataset` with flattened float32 images in [0, 1], so the model code never
cares where the pixels came from. Anything the user can get wrong (a bad upload, no network)
raises `DataError` whose message is a sentence fit to show in the UI as is.

Files from users are hostile until validated: an upload's size, zip directory and .npy headers, and an IDX
file's header, are checked against the MAX_* limits below before anything is decompressed or allocated.
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import io
import math
import os
import re
import stat
import struct
import time
import zipfile
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import BinaryIO, NamedTuple

import numpy as np
import pooch

from vae.config import MAX_IMAGE_SIDE

MIB = 2**20
# Limits on what a user's file may make this process read or allocate (checked before reading or allocating).
MAX_UPLOAD_MB = 64  # the largest .npz accepted; the app's upload limit is set from it
MAX_UPLOAD_BYTES = MAX_UPLOAD_MB * MIB
MAX_NPZ_MEMBERS = 16  # arrays in one .npz (four are used)
MAX_DECODED_BYTES = 256 * MIB  # all arrays of an .npz decompressed: MNIST is 55 MB as uint8, 220 MB as float32
MAX_IMAGES = 1_000_000  # x_train and x_test together (MNIST: 70,000)
MAX_PIXELS = 64 * MIB  # x_train and x_test together, so the float32 dataset made of them is at most 256 MiB
MAX_IMAGE_PIXELS = MAX_IMAGE_SIDE**2  # per image
MAX_IDX_BYTES = 200 * MIB  # one decompressed IDX file (MNIST's training images: 47 MB)
STALE_DOWNLOAD_AGE_S = 3600  # a download's temporary file untouched this long belongs to no live download
_READ_CHUNK_BYTES = MIB  # streams are read in chunks into buffers sized from their headers


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
# Shared by the readers: sentences that show names from files, reads bounded by what a header declares

_NAME_CHARS = 60  # a name from a file is cut to this in sentences


def _cut(text: str, limit: int = _NAME_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _literal(name: str) -> str:
    """A name from a user's file as a sentence shows it: quoted, control characters escaped, cut."""
    return repr(_cut(name))


def _size(nbytes: int) -> str:
    """A byte count for people, in units of 1024 as the limits are: '476.8 MB', '4 TB'."""
    value, units = float(nbytes), ["bytes", "KB", "MB", "GB", "TB"]
    while value >= 1024 and len(units) > 1:
        value, units = value / 1024, units[1:]
    return f"{value:.4g} {units[0]}"


_SILENT_REASONS = {EOFError: "it ends early", MemoryError: "there is not enough memory"}


def _first_line(exc: Exception) -> str:
    """The reason an exception gives, for a sentence: its first line, or words where it says nothing."""
    lines = str(exc).splitlines()
    return lines[0][:200] if lines else _SILENT_REASONS.get(type(exc), "no reason given")


def _read_at_most(stream: BinaryIO, nbytes: int) -> np.ndarray:
    """Up to `nbytes` of `stream` (fewer where it ends first) as uint8, read in chunks into one buffer of that
    size: never more, however much a compressed stream would expand to."""
    buffer = np.empty(nbytes, np.uint8)
    view, filled = memoryview(buffer), 0
    while filled < nbytes:
        got = stream.readinto(view[filled : filled + _READ_CHUNK_BYTES])
        if not got:
            break
        filled += got
    return buffer[:filled]


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


def _open_idx(path: Path) -> BinaryIO:
    """The file's contents as a stream, gunzipped when the file starts with the gzip magic (whatever its name)."""
    with path.open("rb") as file:
        gzipped = file.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rb") if gzipped else path.open("rb")


def _idx_header(stream: BinaryIO, name: str) -> tuple[np.dtype, tuple[int, ...]]:
    """The dtype and shape an IDX header declares, refusing a size over MAX_IDX_BYTES before anything is read."""
    magic = stream.read(4)
    if len(magic) < 4 or magic[0] != 0 or magic[1] != 0 or magic[2] not in _IDX_DTYPES or magic[3] == 0:
        raise DataError(f"{name} is not an IDX file (bad magic number {magic.hex()!r}).")
    dtype, ndim = np.dtype(_IDX_DTYPES[magic[2]]), magic[3]
    raw_dims = stream.read(4 * ndim)
    if len(raw_dims) < 4 * ndim:
        raise DataError(f"{name} is truncated: its header is incomplete.")
    dims = struct.unpack(f">{ndim}I", raw_dims)
    nbytes = math.prod(dims) * dtype.itemsize
    if nbytes > MAX_IDX_BYTES:
        raise DataError(f"{name} declares shape {_cut(str(dims))} ({_size(nbytes)}), more than the "
                        f"{_size(MAX_IDX_BYTES)} an IDX file may hold.")
    return dtype, dims


def _idx_data(stream: BinaryIO, dtype: np.dtype, dims: tuple[int, ...], name: str) -> np.ndarray:
    expected = math.prod(dims) * dtype.itemsize
    raw = _read_at_most(stream, expected)
    if len(raw) < expected or stream.read(1):
        found = len(raw) if len(raw) < expected else "more"
        raise DataError(f"{name} is damaged: shape {dims} needs {expected} data bytes but the file has {found}.")
    return raw.view(dtype).reshape(dims)


def read_idx(path: str | Path) -> np.ndarray:
    """Parse an IDX file (.gz or raw) into a native-endian array, checking header and size."""
    path = Path(path)
    try:
        with _open_idx(path) as stream:
            dtype, dims = _idx_header(stream, path.name)
            data = _idx_data(stream, dtype, dims, path.name)
    except FileNotFoundError:
        raise DataError(f"The IDX file {path} does not exist.") from None
    except (OSError, EOFError, zlib.error) as exc:  # a corrupt .gz can raise any of these
        raise DataError(f"The IDX file {path.name} could not be read ({_first_line(exc)}).") from exc
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


_POOCH_TEMPORARY = re.compile(r"tmp[a-z0-9_]{8}")  # tempfile's names, in which pooch streams a download


def is_pooch_temporary(name: str) -> bool:
    """Whether `name` is one pooch gives the file a download streams into (tempfile's 'tmp' and 8 characters)."""
    return _POOCH_TEMPORARY.fullmatch(name) is not None


def remove_stale_downloads(folder: Path) -> list[Path]:
    """Remove the temporary files that killed downloads left in `folder` and return them: only regular files
    with pooch's temporary names untouched for STALE_DOWNLOAD_AGE_S (a live download writes to its file every
    few seconds, or times out), so another process's download in progress is never broken."""
    removed = []
    cutoff = time.time() - STALE_DOWNLOAD_AGE_S
    for entry in folder.iterdir() if folder.is_dir() else ():
        with contextlib.suppress(OSError):  # gone already, or not ours to remove: a sweep never fails a download
            info = entry.lstat()
            if is_pooch_temporary(entry.name) and stat.S_ISREG(info.st_mode) and info.st_mtime < cutoff:
                entry.unlink()
                removed.append(entry)
    return removed


def _remove_unverified(target: Path, md5: str) -> None:
    """After a failed download, a cached file that does not verify goes (pooch removes its own temporary
    file when a download fails in this process), so no partial file stays cached."""
    if target.exists() and not _file_ok(target, md5):
        target.unlink(missing_ok=True)


def _fetch(fname: str, md5: str, folder: Path, mirrors: Sequence[str], progress: bool) -> Path:
    """One file from the first mirror that delivers it whole and verified (or from the cache)."""
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
    _remove_unverified(folder / fname, md5)
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
    remove_stale_downloads(folder)  # a download killed earlier (SIGKILL runs no cleanup) left them
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
        return _cut(Path(source).name)
    name = getattr(source, "name", None)  # e.g. Streamlit's UploadedFile, an open file
    return _cut(Path(name).name) if isinstance(name, str) and name else "uploaded.npz"


_IMAGE_KEYS = ("x_train", "x_test")
_LABEL_KEYS = ("y_train", "y_test")
_ZIP_SIGNATURES = (b"PK\x03\x04", b"PK\x05\x06")  # a zip (an .npz), an empty zip
_ZIP_END = struct.Struct("<4s4H2LH")  # the end-of-central-directory record
_MAX_ZIP_DIRECTORY_BYTES = MAX_NPZ_MEMBERS * 1024  # zipfile holds an object per entry, so bound it before parsing
_MAX_NPY_HEADER_BYTES = 10_000  # numpy's own bound on a header's text


class _NpyHeader(NamedTuple):
    shape: tuple[int, ...]
    fortran_order: bool
    dtype: np.dtype
    data_offset: int  # where the data starts in the member

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize


@contextlib.contextmanager
def _npz_file(source: str | Path | bytes | BinaryIO, label: str) -> Iterator[BinaryIO]:
    """`source` as a seekable binary file at its start; a file-like is left at the position it had."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        yield io.BytesIO(source)
    elif isinstance(source, (str, Path)):
        with _open_path(Path(source), label) as file:
            yield file
    else:
        try:
            position = source.tell()
            source.seek(0)  # read from the start, however often it was read before
        except (AttributeError, OSError, ValueError) as exc:
            raise DataError(f"{label} could not be read ({_first_line(exc)}).") from exc
        try:
            yield source
        finally:
            with contextlib.suppress(OSError, ValueError):
                source.seek(position)


def _open_path(path: Path, label: str) -> BinaryIO:
    if not path.exists():
        raise DataError(f"The file {label} does not exist.")
    if not path.is_file():  # a folder, a pipe or a device: nothing to read, or never an end
        raise DataError(f"{label} is not a regular file.")
    try:
        return path.open("rb")
    except OSError as exc:
        raise DataError(f"{label} could not be read ({_first_line(exc)}).") from exc


def _check_file(file: BinaryIO, label: str) -> None:
    """Refuse a file by its size and first bytes, before reading more: too large, empty, not a zip."""
    size = file.seek(0, os.SEEK_END)
    file.seek(0)
    if size > MAX_UPLOAD_BYTES:
        raise DataError(f"{label} is {_size(size)}, larger than the {MAX_UPLOAD_MB} MB limit for a file.")
    if size == 0:
        raise DataError(f"{label} is empty.")
    head = file.read(6)
    file.seek(0)
    if head.startswith(b"\x93NUMPY"):
        raise DataError(f"{label} holds a single array, not an .npz archive of named arrays.")
    if not head.startswith(_ZIP_SIGNATURES):  # numpy's own message on other bytes suggests unpickling them
        raise DataError(f"{label} is not an .npz archive (a zip of arrays, as numpy.savez writes).")


def _zip_directory_size(file: BinaryIO) -> int | None:
    """The size of the zip's central directory from its end record, found as zipfile finds it (the record
    right at the end, else the last signature in the final 64 KB of comment); None when there is none."""
    size = file.seek(0, os.SEEK_END)
    tail_length = min(size, _ZIP_END.size + 0xFFFF)
    file.seek(size - tail_length)
    tail = file.read(tail_length)
    file.seek(0)
    at_end = tail[-_ZIP_END.size :]
    start = len(tail) - _ZIP_END.size if at_end[:4] == b"PK\x05\x06" and at_end[-2:] == b"\0\0" else None
    start = tail.rfind(b"PK\x05\x06") if start is None else start
    if start < 0 or len(tail) - start < _ZIP_END.size:
        return None
    return _ZIP_END.unpack_from(tail, start)[5]


def _too_many_members(label: str) -> DataError:
    return DataError(f"{label} has too many members: an .npz may hold at most {MAX_NPZ_MEMBERS} arrays.")


def _open_zip(file: BinaryIO, label: str) -> zipfile.ZipFile:
    directory_size = _zip_directory_size(file)
    if directory_size is not None and directory_size > _MAX_ZIP_DIRECTORY_BYTES:
        raise _too_many_members(label)
    try:
        return zipfile.ZipFile(file)
    except Exception as exc:  # zipfile raises many types for garbage input
        raise DataError(f"{label} is not a valid .npz file ({_first_line(exc)}).") from exc


def _check_member(info: zipfile.ZipInfo, label: str) -> None:
    """One entry of the zip directory: encryption, compression method and declared size."""
    member = f"The member {_literal(info.filename)} of {label}"
    if info.flag_bits & 0x1:
        raise DataError(f"{member} is encrypted; save the arrays without a password.")
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise DataError(
            f"{member} uses zip compression method {info.compress_type}; only stored or deflated members "
            "(as numpy.savez and numpy.savez_compressed write them) are accepted."
        )
    if info.file_size > MAX_DECODED_BYTES:
        raise DataError(
            f"{member} would decode to {_size(info.file_size)}, more than the {_size(MAX_DECODED_BYTES)} "
            "an .npz may hold."
        )


def _npz_members(archive: zipfile.ZipFile, label: str) -> dict[str, zipfile.ZipInfo]:
    """Array name -> its entry, from the zip directory alone (nothing is decompressed), within the limits."""
    infos = archive.infolist()
    if len(infos) > MAX_NPZ_MEMBERS:
        raise _too_many_members(label)
    members: dict[str, zipfile.ZipInfo] = {}
    for info in infos:
        _check_member(info, label)
        key = info.filename.removesuffix(".npy")  # numpy's names for the arrays
        if key in members:
            raise DataError(f"{label} holds two members named {_literal(info.filename)}; each array may appear once.")
        members[key] = info
    total = sum(info.file_size for info in infos)
    if total > MAX_DECODED_BYTES:
        raise DataError(
            f"The arrays in {label} would decode to {_size(total)} together, more than the "
            f"{_size(MAX_DECODED_BYTES)} an .npz may hold."
        )
    return members


def _check_required(members: dict[str, zipfile.ZipInfo], label: str) -> None:
    missing = [key for key in _IMAGE_KEYS if key not in members]
    if missing:
        found = ", ".join(_literal(key) for key in sorted(members)) or "no arrays"
        raise DataError(f"{label} is missing the array(s) {', '.join(missing)} (it has: {_cut(found, 200)}).")


def _read_npy_header(stream: BinaryIO) -> _NpyHeader:
    """The header at the start of a member: a few bytes, read with numpy's parser after its length is bounded
    (a version 2.0 header may declare a length of 4 GB, which numpy would read before checking)."""
    version = np.lib.format.read_magic(stream)
    if version not in ((1, 0), (2, 0)):
        raise ValueError(f"unsupported .npy version {version}")
    length_format = "<H" if version == (1, 0) else "<I"
    raw_length = stream.read(struct.calcsize(length_format))
    (length,) = struct.unpack(length_format, raw_length)
    if length > _MAX_NPY_HEADER_BYTES:
        raise ValueError(f"its header declares {length} bytes, more than {_MAX_NPY_HEADER_BYTES}")
    text = stream.read(length)
    parse = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    shape, fortran_order, dtype = parse(io.BytesIO(raw_length + text))
    return _NpyHeader(tuple(shape), bool(fortran_order), dtype, 6 + 2 + len(raw_length) + length)


def _member_header(archive: zipfile.ZipFile, info: zipfile.ZipInfo, key: str, label: str) -> _NpyHeader:
    where = f"The array '{key}' in {label}"
    try:
        with archive.open(info) as stream:
            header = _read_npy_header(stream)
    except Exception as exc:  # zipfile and numpy's parser raise many types for damaged input
        raise DataError(f"{where} is not a valid .npy array ({_first_line(exc)}).") from exc
    _check_header(header, info, where, key)
    return header


def _check_header(header: _NpyHeader, info: zipfile.ZipInfo, where: str, key: str) -> None:
    """A header against the limits and against the size the zip directory declares for its member."""
    if header.dtype.hasobject:
        raise DataError(
            f"{where} holds Python objects (a pickled/object array); only plain numeric arrays are accepted."
        )
    if header.dtype.kind not in "biuf":
        raise DataError(f"'{key}' has non-numeric dtype {_cut(str(header.dtype))}; save numbers (uint8 or float).")
    shape = _cut(str(header.shape))
    if any(dim < 0 for dim in header.shape):
        raise DataError(f"{where} declares an impossible shape {shape}.")
    if header.nbytes > MAX_DECODED_BYTES:
        raise DataError(
            f"{where} declares {_size(header.nbytes)} of data (shape {shape}, {header.dtype}), more than "
            f"the {_size(MAX_DECODED_BYTES)} an .npz may hold."
        )
    if header.data_offset + header.nbytes != info.file_size:
        raise DataError(
            f"{where} is damaged: its header declares {header.nbytes:,} bytes of data (shape {shape}) but "
            f"the zip directory says the member holds {info.file_size - header.data_offset:,}."
        )


def _check_images(headers: dict[str, _NpyHeader]) -> None:
    """x_train and x_test by their headers: 2 or 3 dims, and within the limits on images and pixels."""
    for key in _IMAGE_KEYS:
        shape = headers[key].shape
        if len(shape) not in (2, 3):
            raise DataError(
                f"'{key}' must have 2 dims (N x D) or 3 dims (N x H x W), but it has "
                f"{len(shape)} (shape {_cut(str(shape))})."
            )
        if math.prod(shape[1:]) > MAX_IMAGE_PIXELS:
            raise DataError(
                f"'{key}' has images of {math.prod(shape[1:]):,} pixels (shape {shape}); at most "
                f"{MAX_IMAGE_SIDE}x{MAX_IMAGE_SIDE} = {MAX_IMAGE_PIXELS:,} pixels per image are accepted."
            )
    images = sum(headers[key].shape[0] for key in _IMAGE_KEYS)
    if images > MAX_IMAGES:
        raise DataError(f"x_train and x_test hold {images:,} images together; at most {MAX_IMAGES:,} are accepted.")
    pixels = sum(math.prod(headers[key].shape) for key in _IMAGE_KEYS)
    if pixels > MAX_PIXELS:
        raise DataError(
            f"x_train and x_test hold {pixels:,} pixels together; at most {MAX_PIXELS:,} "
            f"({_size(4 * MAX_PIXELS)} as float32) are accepted."
        )


def _member_array(archive: zipfile.ZipFile, info: zipfile.ZipInfo, header: _NpyHeader, where: str) -> np.ndarray:
    """The member's data, decompressed into a buffer of the size its checked header declares and no further
    (zipfile also stops at the directory's size and checks the CRC there, so a lying directory is damage)."""
    try:
        with archive.open(info) as stream:
            stream.seek(header.data_offset)
            raw = _read_at_most(stream, header.nbytes)
            longer = bool(stream.read(1))
    except Exception as exc:  # zlib.error, BadZipFile (a CRC), EOFError, ... for damaged input
        raise DataError(f"{where} is damaged ({_first_line(exc)}).") from exc
    if len(raw) < header.nbytes or longer:
        raise DataError(f"{where} is damaged: its data is not the {header.nbytes:,} bytes its header declares.")
    return raw.view(header.dtype).reshape(header.shape, order="F" if header.fortran_order else "C")


def _read_npz_arrays(archive: zipfile.ZipFile, label: str) -> dict[str, np.ndarray]:
    """The arrays the lab uses, each checked by the zip directory and its header before it is decompressed."""
    members = _npz_members(archive, label)
    _check_required(members, label)
    used = {key: members[key] for key in _IMAGE_KEYS + _LABEL_KEYS if key in members}
    headers = {key: _member_header(archive, info, key, label) for key, info in used.items()}
    _check_images(headers)
    return {
        key: _member_array(archive, info, headers[key], f"The array '{key}' in {label}")
        for key, info in used.items()
    }


def _open_npz(source: str | Path | bytes | BinaryIO, label: str) -> dict[str, np.ndarray]:
    """x_train, x_test and the labels there are; any file that is unreadable or over a limit is a DataError."""
    with _npz_file(source, label) as file:
        _check_file(file, label)
        with _open_zip(file, label) as archive:
            return _read_npz_arrays(archive, label)


def _npz_images(arr: np.ndarray, key: str) -> np.ndarray:
    """Validate one image array (its header is checked already) and return it as (N, D) float32 in [0, 1]."""
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
        x = arr.astype(np.float32, copy=False)
    elif arr.dtype.kind in "iu":  # integers are gray levels 0..255
        lo, hi = int(arr.min()), int(arr.max())
        if lo < 0 or hi > 255:
            raise DataError(
                f"'{key}' is integer with values outside 0..255 (min {lo}, max {hi}); "
                "save uint8 pixels 0..255 or floats in [0, 1]."
            )
        x = arr.astype(np.float32)
        x /= 255.0  # in place: the float32 copy is the largest array made
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
    """A user's .npz with x_train, x_test (N x H x W or N x D) and optional y_train, y_test.

    `source` is a path, the file's bytes or a binary file-like (e.g. Streamlit's UploadedFile, read from its
    start every time and left at its position). The file is hostile until validated: its size, zip directory
    and each array's .npy header are checked against the MAX_* limits before anything is decompressed."""
    name = _npz_name(source)
    arrays = _open_npz(source, _literal(name))
    x_train = _npz_images(arrays["x_train"], "x_train")
    x_test = _npz_images(arrays["x_test"], "x_test")
    shape = _image_shape(arrays["x_train"], arrays["x_test"])
    labels = {
        key: _npz_labels(arrays[key], key, len(x)) if key in arrays else None
        for key, x in (("y_train", x_train), ("y_test", x_test))
    }
    return Dataset(name, x_train, x_test, labels["y_train"], labels["y_test"], shape)


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
