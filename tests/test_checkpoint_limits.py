"""A checkpoint from a user is hostile until validated: every case in `hostile_checkpoints.CASES` is refused with
its sentence, and a file that declares a huge model is refused from its header, before anything is allocated."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from tests.hostile_checkpoints import CASES, HostileCase, with_config
from vae.checkpoints import MAX_CHECKPOINT_BYTES, CheckpointError, load_checkpoint
from vae.config import MAX_HIDDEN_LAYERS, MAX_HIDDEN_WIDTH, MAX_IMAGE_SIDE, MAX_LATENT_DIM, Likelihood, ModelConfig
from vae.model import VAE

PEAK_GROWTH_LIMIT_MB = 150


def refusal(source: bytes | Path) -> str:
    with pytest.raises(CheckpointError) as error:
        load_checkpoint(source)
    return str(error.value)


def test_the_catalogue_has_unique_ids_and_deterministic_files():
    assert len(CASES) >= 15 and len({case.case_id for case in CASES}) == len(CASES)
    for case in CASES:
        assert case.make() == case.make(), case.case_id


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.case_id)
def test_each_hostile_file_is_refused_with_one_sentence(case: HostileCase):
    message = refusal(case.make())
    assert re.search(case.expected, message), message
    assert message[0].isupper() and message.endswith(".") and not re.search(r"\. [A-Z]", message), message


@pytest.mark.parametrize("case", [c for c in CASES if c.case_id in ("truncated", "latent-dim-string", "tensor-nan")],
                         ids=lambda case: case.case_id)
def test_a_hostile_file_on_disk_is_refused_the_same(tmp_path, case: HostileCase):
    path = tmp_path / "upload.safetensors"
    path.write_bytes(case.make())
    assert re.search(case.expected, refusal(path))


def test_a_file_over_the_cap_is_refused_before_it_is_read(tmp_path):
    path = tmp_path / "huge.safetensors"
    with path.open("wb") as file:
        file.truncate(MAX_CHECKPOINT_BYTES + 1)  # sparse: no disk, and reading it would cost the cap in memory
    assert "larger than" in refusal(path)
    assert peak_growth_mb(lambda: refusal(path)) < PEAK_GROWTH_LIMIT_MB


def largest_model() -> ModelConfig:
    return ModelConfig(input_shape=(MAX_IMAGE_SIDE, MAX_IMAGE_SIDE), latent_dim=MAX_LATENT_DIM,
                       hidden_sizes=(MAX_HIDDEN_WIDTH,) * MAX_HIDDEN_LAYERS, likelihood=Likelihood.GAUSSIAN)


def test_every_model_within_the_bounds_fits_under_the_size_cap():
    with torch.device("meta"):  # shapes only: nothing is allocated
        tensors = VAE(largest_model()).state_dict().values()
    header_allowance = 64 * 1024
    assert sum(t.numel() * t.element_size() for t in tensors) + header_allowance < MAX_CHECKPOINT_BYTES


def vm_hwm_kb() -> int:
    status = Path("/proc/self/status").read_text()
    return int(re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE).group(1))


def peak_growth_mb(action: Callable[[], object]) -> float:
    """How far the peak resident memory rose during `action` (Linux: "5" resets the peak to the current size)."""
    Path("/proc/self/clear_refs").write_text("5")
    before = vm_hwm_kb()
    action()
    return (vm_hwm_kb() - before) / 1024


@pytest.mark.parametrize(
    "model, words",
    [({"hidden_sizes": [20_000]}, "widths must be between 1 and 2048"),
     ({"hidden_sizes": [100_000, 100_000]}, "widths must be between 1 and 2048"),
     # within every bound, but the file holds the small model's tensors: refused on the header's names and shapes
     ({"input_shape": [MAX_IMAGE_SIDE] * 2, "hidden_sizes": [MAX_HIDDEN_WIDTH] * MAX_HIDDEN_LAYERS,
       "latent_dim": MAX_LATENT_DIM, "likelihood": "gaussian"}, "tensors do not match its model"),
     ({"input_shape": [MAX_IMAGE_SIDE] * 2, "hidden_sizes": [MAX_HIDDEN_WIDTH], "latent_dim": MAX_LATENT_DIM},
      "has shape")],
    ids=["hidden-20000", "hidden-100000", "largest-allowed", "widest-layer-allowed"],
)
def test_a_small_file_declaring_a_big_model_costs_no_memory(model, words):
    data = with_config(model)
    assert len(data) < 20_000
    messages = []
    growth = peak_growth_mb(lambda: messages.append(refusal(data)))
    assert words in messages[0]
    assert growth < PEAK_GROWTH_LIMIT_MB
