"""Files from users are hostile until validated: vae.data checks sizes and types before it allocates anything.

Every case in `hostile_npz.CASES` is refused with its sentence, the bombs without the process's peak memory
growing, and IDX files are read only as far as their header declares.
"""

from __future__ import annotations

import io
import random
import re
import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from tests.hostile_npz import BOMBS, CASES, CASES_BY_ID, MIB, HostileCase, deflated_zeros, zeros_array, zip_bytes
from vae import data
from vae.config import MAX_IMAGE_SIDE
from vae.data import DataError, load_npz

PEAK_GROWTH_LIMIT = 150 * MIB


def peak_memory_growth(action: Callable[[], object]) -> int | None:
    """How many bytes the process's peak resident memory (VmHWM) grew during `action`; None where the peak
    cannot be reset (writing 5 to clear_refs sets it back to the current resident size, on Linux)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return None
    start = _status_kib("VmHWM")
    action()
    return (_status_kib("VmHWM") - start) * 1024


def _status_kib(field: str) -> int:
    line = next(line for line in Path("/proc/self/status").read_text().splitlines() if line.startswith(field))
    return int(line.split()[1])


def refusal(source: object, loader: Callable[[object], object] = load_npz) -> str:
    """The sentence `loader` refuses `source` with."""
    with pytest.raises(DataError) as refused:
        loader(source)
    return str(refused.value)


def assert_one_sentence(message: str) -> None:
    """One line for a person, ending like a sentence, naming no exception types."""
    assert "\n" not in message and message.endswith(".") and len(message) < 400, message
    assert not re.search(r"\b\w+Error\b", message), message


def named_upload(content: bytes, name: str = "upload/mine.npz") -> io.BytesIO:
    """Like Streamlit's UploadedFile: a BytesIO with a name."""
    upload = io.BytesIO(content)
    upload.name = name
    return upload


# ---------------------------------------------------------------------------------------------
# The catalogue of hostile .npz files


@pytest.mark.parametrize("case", CASES, ids=[case.case_id for case in CASES])
def test_a_hostile_npz_is_refused_with_its_sentence(case: HostileCase, tmp_path: Path) -> None:
    message = refusal(case.make(tmp_path))
    assert re.search(case.expected, message), message
    assert_one_sentence(message)


@pytest.mark.parametrize("case", CASES, ids=[case.case_id for case in CASES])
def test_a_hostile_upload_is_refused_the_same_way(case: HostileCase, tmp_path: Path) -> None:
    made = case.make(tmp_path)
    content = made.read_bytes() if isinstance(made, Path) else made
    upload = named_upload(content, f"upload/{case.case_id}.npz")
    assert re.search(case.expected, refusal(upload))
    assert re.search(case.expected, refusal(content).replace("uploaded.npz", f"{case.case_id}.npz"))


def test_the_cases_are_cheap_and_deterministic(tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    for case in CASES:
        a, b = case.make(first), case.make(second)
        assert a.stat().st_blocks * 512 < 2 * MIB, case.case_id  # small on disk: the over-size file is sparse
        assert a.read_bytes() == b.read_bytes(), case.case_id


@pytest.mark.parametrize("case_id", BOMBS)
def test_a_bomb_is_refused_without_the_peak_memory_growing(case_id: str, tmp_path: Path) -> None:
    path = CASES_BY_ID[case_id].make(tmp_path)
    messages = []
    growth = peak_memory_growth(lambda: messages.append(refusal(path)))
    assert re.search(CASES_BY_ID[case_id].expected, messages[0]), messages[0]
    assert growth is not None, "/proc/self/clear_refs must be writable (Linux) to measure the peak memory"
    assert growth < PEAK_GROWTH_LIMIT, f"peak memory grew by {growth / MIB:.0f} MB"


def test_damaged_files_load_or_are_refused_in_a_sentence() -> None:
    """Bytes changed or cut at seeded random places: whatever zipfile or numpy's parser raise, it is a DataError."""
    rng = random.Random(0)
    x = np.random.default_rng(0).integers(0, 256, (20, 6, 6), np.uint8)
    originals = [_npz(x_train=x, x_test=x[:3] / 255.0, y_train=np.arange(20)), _npz(True, x_train=x, x_test=x)]
    for original in originals:
        for _ in range(400):
            damaged = bytearray(original)
            for _ in range(rng.randint(1, 4)):
                damaged[rng.randrange(len(damaged))] = rng.randrange(256)
            cut = rng.randrange(len(damaged)) if rng.random() < 0.2 else len(damaged)
            try:
                load_npz(bytes(damaged[:cut]))
            except DataError as refused:
                assert_one_sentence(str(refused))


# ---------------------------------------------------------------------------------------------
# What must still load


def test_mnist_sized_uploads_still_load(tmp_path: Path) -> None:
    """70000 uint8 28x28 images (55 MB decoded) and the same as float32 (220 MB) are within the limits."""
    for descr in ("|u1", "<f4"):
        path = tmp_path / f"mnist-{descr[1:]}.npz"
        path.write_bytes(zip_bytes([zeros_array("x_train", (60000, 28, 28), descr),
                                    zeros_array("x_test", (10000, 28, 28), descr)]))
        ds = load_npz(path)
        assert ds.x_train.shape == (60000, 784) and ds.x_test.shape == (10000, 784) and ds.image_shape == (28, 28)
        assert ds.x_train.dtype == np.float32 and ds.x_train.flags.c_contiguous
    stored_uint8 = 70000 * 784 + 2 * 128 + 1024  # as np.savez writes it: data, headers, zip records
    assert stored_uint8 < data.MAX_UPLOAD_MB * MIB


def test_images_of_the_largest_side_load() -> None:
    side = MAX_IMAGE_SIDE
    x = np.full((2, side, side), 255, np.uint8)
    ds = load_npz(_npz(x_train=x, x_test=x))
    assert ds.image_shape == (side, side) and ds.x_train.max() == 1.0 and data.MAX_IMAGE_PIXELS == side * side


def test_a_fortran_ordered_array_loads_with_its_values() -> None:
    x = np.asfortranarray(np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4))
    ds = load_npz(_npz(x_train=x, x_test=x))
    np.testing.assert_allclose(ds.x_train, x.reshape(2, 12) / 255.0, rtol=1e-6)


def _npz(compressed: bool = False, **arrays: np.ndarray) -> bytes:
    buf = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buf, **arrays)
    return buf.getvalue()


# ---------------------------------------------------------------------------------------------
# File-likes: read from their start, their position left as it was, their size checked first


def test_an_upload_is_read_from_its_start_every_time() -> None:
    """After Start with a valid upload the page said "That file was refused": the second read began at the end."""
    x = np.random.default_rng(0).integers(0, 256, (5, 4, 4), np.uint8)
    upload = named_upload(_npz(x_train=x, x_test=x[:2], y_train=np.arange(5)))
    first, second = load_npz(upload), load_npz(upload)
    assert first.name == second.name == "mine.npz"
    for field in ("x_train", "x_test", "y_train"):
        np.testing.assert_array_equal(getattr(first, field), getattr(second, field))
    upload.seek(7)
    load_npz(upload)
    assert upload.tell() == 7


class EndlessZeros(io.RawIOBase):
    """A seekable file that says it is `size` bytes long and counts what is read from it."""

    def __init__(self, size: int) -> None:
        self.size, self.position, self.bytes_read = size, 0, 0
        self.name = "huge.npz"

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self.position = {io.SEEK_SET: 0, io.SEEK_CUR: self.position, io.SEEK_END: self.size}[whence] + offset
        return self.position

    def tell(self) -> int:
        return self.position

    def readinto(self, buffer) -> int:
        n = max(0, min(len(buffer), self.size - self.position))
        buffer[:n] = bytes(n)
        self.position += n
        self.bytes_read += n
        return n


def test_an_oversized_upload_is_refused_before_it_is_read() -> None:
    huge = EndlessZeros(10 * 2**30)
    message = refusal(huge)
    assert re.search(r"'huge\.npz' is 10 GB, larger than the 64 MB", message), message
    assert huge.bytes_read < 1024 and huge.tell() == 0


def test_a_path_that_is_not_a_regular_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "folder.npz").mkdir()
    assert "is not a regular file" in refusal(tmp_path / "folder.npz")


def test_a_very_long_name_is_cut_in_the_sentence() -> None:
    message = refusal(named_upload(b"", "x" * 5000 + ".npz"))
    assert_one_sentence(message)
    assert "…" in message and len(message) < 200


# ---------------------------------------------------------------------------------------------
# IDX files: read as far as the header declares, never further


def gzip_of_zeros(prefix: bytes, n_zeros: int) -> bytes:
    """A gzip file of `prefix` and `n_zeros` zero bytes, made in milliseconds whatever `n_zeros` is."""
    member = deflated_zeros("", prefix, n_zeros)
    header = b"\x1f\x8b\x08\x00" + bytes(4) + b"\x02\xff"
    return header + member.data + struct.pack("<2L", member.crc, member.size & 0xFFFFFFFF)


def idx_header(*dims: int) -> bytes:
    return bytes([0, 0, 0x08, len(dims)]) + struct.pack(f">{len(dims)}I", *dims)


def test_an_idx_gzip_bomb_is_read_only_as_far_as_its_header_declares(tmp_path: Path) -> None:
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(gzip_of_zeros(idx_header(60000, 28, 28), 500 * 10**6))  # 47 MB declared, 500 MB inside
    messages = []
    growth = peak_memory_growth(lambda: messages.append(refusal(path, data.read_idx)))
    assert re.search(r"damaged: shape \(60000, 28, 28\) needs 47040000 data bytes but the file has more", messages[0])
    if growth is not None:
        assert growth < PEAK_GROWTH_LIMIT, f"peak memory grew by {growth / MIB:.0f} MB"


def test_an_idx_header_declaring_an_absurd_size_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "huge.idx.gz"
    path.write_bytes(gzip_of_zeros(idx_header(2**16, 2**16, 2**16), 16))
    with pytest.raises(DataError, match=r"declares shape \(65536, 65536, 65536\) \(256 TB\), more than the 200 MB"):
        data.read_idx(path)


def test_an_idx_file_of_mnist_size_reads(tmp_path: Path) -> None:
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(gzip_of_zeros(idx_header(60000, 28, 28), 60000 * 784))
    images = data.read_idx(path)
    assert images.shape == (60000, 28, 28) and images.dtype == np.uint8 and not images.any()
