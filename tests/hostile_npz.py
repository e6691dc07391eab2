"""Hostile .npz files, each cheap to make (well under a second, about a megabyte at most), and the sentence
`vae.data.load_npz` must refuse it with.

`CASES` is for any test that runs uploads through the library, the CLI or the pages (`CASES_BY_ID` finds one,
`BOMBS` names those that would cost the most memory if decoded):

    for case in CASES:
        path = case.make(tmp_path)   # writes tmp_path / f"{case.case_id}.npz" and returns it
        ... a DataError whose message matches re.search(case.expected, message) ...

The bombs are built without allocating what they expand to: a deflate stream of zeros is made of one
compressed megabyte repeated (after a full flush the compressor's output for the same input repeats), and
the zip around it is written by hand, so its directory may declare sizes that differ from the data.
"""

from __future__ import annotations

import functools
import io
import os
import struct
import zipfile
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vae.config import MAX_IMAGE_SIDE
from vae.data import MAX_DECODED_BYTES, MAX_IMAGES, MAX_NPZ_MEMBERS, MAX_PIXELS, MAX_UPLOAD_MB

MIB = 2**20
BOMB_BYTES = 500 * 10**6  # what the zeros bomb expands to, from about half a megabyte
_DOS_DATE = (1 << 5) | 1  # 1980-01-01, the zip epoch


@dataclass(frozen=True)
class HostileCase:
    case_id: str
    make: Callable[[Path], Path | bytes]  # writes the file into the given folder and returns its path
    expected: str  # a regex that re.search finds in the DataError's message


# ---------------------------------------------------------------------------------------------
# Builders


def npy_header(shape: tuple[int, ...], descr: str = "|u1", fortran_order: bool = False) -> bytes:
    """The .npy header (magic, version 1.0, padded dict) of an array that is never built."""
    buf = io.BytesIO()
    header = {"descr": descr, "fortran_order": fortran_order, "shape": shape}
    np.lib.format.write_array_header_1_0(buf, header)
    return buf.getvalue()


@dataclass(frozen=True)
class ZipMember:
    """One member as stored: `data` is already compressed; `declared_size` is what the directory says it
    decodes to (None: the truth)."""

    name: str
    data: bytes
    crc: int
    size: int
    method: int = zipfile.ZIP_DEFLATED
    declared_size: int | None = None


def stored(name: str, content: bytes) -> ZipMember:
    return ZipMember(name, content, zlib.crc32(content), len(content), zipfile.ZIP_STORED)


def deflated_zeros(name: str, prefix: bytes, n_zeros: int, declared_size: int | None = None) -> ZipMember:
    """`prefix` then `n_zeros` zero bytes, deflated in milliseconds whatever `n_zeros` is."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)  # raw deflate, as zip stores it
    parts = [compressor.compress(prefix) + compressor.flush(zlib.Z_FULL_FLUSH)]
    whole, rest = divmod(n_zeros, MIB)
    zeros = bytes(MIB)
    if whole:
        parts += [compressor.compress(zeros) + compressor.flush(zlib.Z_FULL_FLUSH)] * whole
    parts.append(compressor.compress(bytes(rest)) + compressor.flush())
    crc = zlib.crc32(prefix)
    for _ in range(whole):
        crc = zlib.crc32(zeros, crc)
    crc = zlib.crc32(bytes(rest), crc)
    return ZipMember(name, b"".join(parts), crc, len(prefix) + n_zeros, declared_size=declared_size)


def zeros_array(key: str, shape: tuple[int, ...], descr: str = "|u1") -> ZipMember:
    """`key`.npy holding zeros of `shape`, as np.savez_compressed would write it but without the array."""
    itemsize = np.dtype(descr).itemsize
    return deflated_zeros(f"{key}.npy", npy_header(shape, descr), int(np.prod(shape)) * itemsize)


def zip_bytes(members: Sequence[ZipMember]) -> bytes:
    """A zip written field by field, so the directory says whatever the members declare."""
    body, directory = bytearray(), bytearray()
    for member in members:
        name = member.name.encode()
        size = member.size if member.declared_size is None else member.declared_size
        common = (member.method, 0, _DOS_DATE, member.crc, len(member.data), size, len(name))
        directory += struct.pack("<4s4H2H3L5H2L", b"PK\x01\x02", 20, 20, 0, *common, 0, 0, 0, 0, 0, len(body))
        directory += name
        body += struct.pack("<4s3H2H3L2H", b"PK\x03\x04", 20, 0, *common, 0) + name + member.data
    count = len(members)
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, count, count, len(directory), len(body), 0)
    return bytes(body + directory + end)


def npz_bytes(**arrays: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


SMALL = np.zeros((3, 4, 4), np.uint8)  # a valid image array, for the other key
CASES: list[HostileCase] = []  # filled by @hostile below, in the order of this file


def _writer(case_id: str, content: Callable[[], bytes]) -> Callable[[Path], Path]:
    def make(folder: Path) -> Path:
        path = folder / f"{case_id}.npz"
        path.write_bytes(content())
        return path

    return make


def hostile(case_id: str, expected: str) -> Callable[[Callable[[], bytes]], Callable[[], bytes]]:
    """Register a function making a file's bytes as the case `case_id` (its `make` writes them to a file)."""

    def register(content: Callable[[], bytes]) -> Callable[[], bytes]:
        CASES.append(HostileCase(case_id, _writer(case_id, content), expected))
        return content

    return register


def _with_test(x_train: ZipMember, image_shape: tuple[int, ...] = (4, 4)) -> bytes:
    """An .npz of `x_train` and a small valid x_test of the same image shape, so only x_train is wrong."""
    return zip_bytes([x_train, zeros_array("x_test", (2, *image_shape))])


# ---------------------------------------------------------------------------------------------
# Sizes declared over a limit, or declared falsely


@hostile("zeros-bomb-500mb", r"would decode to 476\.8 MB, more than the 256 MB")
def zeros_bomb() -> bytes:
    """About 0.5 MB that expands to 500 MB: a valid .npz of uint8 zeros, 28x28 images."""
    return _with_test(zeros_array("x_train", (BOMB_BYTES // 784, 28, 28)), (28, 28))


@hostile("header-4tb", r"declares 4 TB of data.*more than the 256 MB")
def header_of_4_tb() -> bytes:
    """A member holding only a header that declares a 4 TB float32 array."""
    return _with_test(stored("x_train.npy", npy_header((2**20, 2**20), "<f4")), (2**20,))


@hostile("lying-zip-directory", r"'x_train' in 'lying-zip-directory\.npz' is damaged")
def lying_directory() -> bytes:
    """The directory says the member decodes to 64 KB (what its header declares); it decodes to 500 MB."""
    header = npy_header((1000, 8, 8))
    return _with_test(deflated_zeros("x_train.npy", header, BOMB_BYTES, declared_size=len(header) + 64000), (8, 8))


@hostile("header-disagrees-with-directory", r"header declares 640 bytes")
def header_disagreeing_with_directory() -> bytes:
    """An honest directory, but the header declares 640 bytes of data and the member holds 100."""
    return _with_test(stored("x_train.npy", npy_header((10, 8, 8)) + bytes(100)), (8, 8))


@hostile("header-length-4gb", r"'x_train' .* is not a valid \.npy array")
def header_length_of_4_gb() -> bytes:
    """A version 2.0 .npy whose header-length field says 4 GB."""
    return _with_test(stored("x_train.npy", b"\x93NUMPY\x02\x00" + struct.pack("<I", 2**32 - 16) + b"{"))


@hostile("decoded-total-over-limit", r"together, more than the 256 MB")
def decoded_total_over_limit() -> bytes:
    """Two arrays each under the limit on decoded bytes, together over it."""
    n = (MAX_DECODED_BYTES // 2 + MIB) // 784
    return zip_bytes([zeros_array("x_train", (n, 28, 28)), zeros_array("x_test", (n, 28, 28))])


@hostile("huge-zip-directory", rf"too many members: .*at most {MAX_NPZ_MEMBERS}")
def huge_zip_directory() -> bytes:
    """Thousands of empty members: a directory that costs zipfile far more memory than the file's size."""
    return zip_bytes([stored(f"m{i}.npy", b"") for i in range(5000)])


# ---------------------------------------------------------------------------------------------
# More than the lab accepts


@hostile("too-many-members", rf"too many members: .*at most {MAX_NPZ_MEMBERS}")
def too_many_members() -> bytes:
    extra = {f"extra_{i}": SMALL for i in range(MAX_NPZ_MEMBERS - 1)}
    return npz_bytes(x_train=SMALL, x_test=SMALL, **extra)


@hostile("too-many-images", r"images together; at most 1,000,000")
def too_many_images() -> bytes:
    return _with_test(zeros_array("x_train", (MAX_IMAGES + 1, 1)), (1,))


@hostile("too-many-pixels", r"pixels together; at most 67,108,864")
def too_many_pixels() -> bytes:
    side = MAX_IMAGE_SIDE
    return _with_test(zeros_array("x_train", (MAX_PIXELS // side**2 + 1, side, side)), (side, side))


@hostile("images-too-wide", r"at most 64x64 = 4,096 pixels per image")
def images_too_wide() -> bytes:
    side = MAX_IMAGE_SIDE + 1
    return npz_bytes(x_train=np.zeros((2, side, side), np.uint8), x_test=np.zeros((2, side, side), np.uint8))


@hostile("bzip2-member", r"compression method 12")
def bzip2_member() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_BZIP2) as archive:
        archive.writestr("x_train.npy", npy_header((3, 4, 4)) + SMALL.tobytes())
        archive.writestr("x_test.npy", npy_header((3, 4, 4)) + SMALL.tobytes())
    return buf.getvalue()


# ---------------------------------------------------------------------------------------------
# Arrays that are not images or labels: case_id -> (x_train, expected), x_test being valid

_BAD_TYPES = {
    "pickled-object-array": (np.array([{"a": 1}, None], dtype=object), r"'x_train' .*pickled"),
    "wrong-ndim": (np.zeros((3, 2, 2, 2), np.uint8), r"must have 2 dims"),
    "strings": (np.full((3, 16), "a"), r"non-numeric dtype"),
}
_BAD_VALUES = {
    "nan-floats": (np.full((3, 16), np.nan), r"NaN"),
    "floats-out-of-range": (np.full((3, 16), 2.0), r"outside \[0, 1\]"),
    "ints-out-of-range": (np.full((3, 16), 300), r"outside 0\.\.255"),
}


def _register_bad_arrays() -> None:
    for case_id, (x_train, expected) in (_BAD_TYPES | _BAD_VALUES).items():
        hostile(case_id, expected)(functools.partial(npz_bytes, x_train=x_train, x_test=SMALL))
    hostile("missing-x-train", r"missing the array\(s\) x_train")(functools.partial(npz_bytes, x_test=SMALL, x=SMALL))
    mismatch = functools.partial(npz_bytes, x_train=SMALL, x_test=SMALL, y_train=np.arange(4))
    hostile("label-length-mismatch", r"lengths must match")(mismatch)


_register_bad_arrays()


# ---------------------------------------------------------------------------------------------
# Not an .npz at all


@hostile("not-a-zip", r"not an \.npz archive")
def not_a_zip() -> bytes:
    return b"this is not a zip file at all"


@hostile("truncated-zip", r"'truncated-zip\.npz' is not a valid \.npz file")
def truncated_zip() -> bytes:
    whole = npz_bytes(x_train=SMALL, x_test=SMALL)
    return whole[: len(whole) // 2]


@hostile("empty-file", r"'empty-file\.npz' is empty")
def empty_file() -> bytes:
    return b""


@hostile("bare-npy", r"single array, not an \.npz archive")
def bare_npy() -> bytes:
    buf = io.BytesIO()
    np.save(buf, SMALL)
    return buf.getvalue()


def over_upload_limit(folder: Path) -> Path:
    """One byte over MAX_UPLOAD_MB, zip magic first; sparse on disk, so it costs nothing to make."""
    path = folder / "over-upload-limit.npz"
    path.write_bytes(b"PK\x03\x04")
    os.truncate(path, MAX_UPLOAD_MB * MIB + 1)
    return path


CASES.append(HostileCase("over-upload-limit", over_upload_limit, rf"larger than the {MAX_UPLOAD_MB} MB"))
CASES_BY_ID = {case.case_id: case for case in CASES}
BOMBS = (  # the cases that would cost the most memory if decoded
    "zeros-bomb-500mb", "header-4tb", "lying-zip-directory", "decoded-total-over-limit", "huge-zip-directory")
