"""Training on every device this machine has: the CPU always, the GPU wherever CUDA exists. The device list is
built from what is present (nothing is skipped: on a CPU-only machine the GPU cases are simply not generated)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vae.checkpoints import checkpoint_bytes, load_checkpoint
from vae.job import JobStatus, TrainingJob
from vae.trainer import Trainer

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
FAMILIES = ("gaussian", "laplace", "gamma")


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("family", FAMILIES)
def test_a_step_keeps_data_weights_and_metrics_on_the_device(small_digits, small_config, device, family):
    config = small_config.replace(device=device, posterior=family)
    trainer = Trainer(config, small_digits)
    rows = torch.stack([trainer.step() for _ in range(trainer.steps_per_epoch)])
    assert trainer.x_train.device.type == device and rows.device.type == device  # nothing read back per step
    assert all(p.device.type == device for p in trainer.model.parameters())
    elbo, reconstruction, kl, grad_norm, finite = rows.cpu().numpy().T
    assert (finite == 1).all() and np.isfinite(elbo).all() and (grad_norm > 0).all()
    np.testing.assert_allclose(elbo, reconstruction - kl, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("device", DEVICES)
def test_a_job_on_the_device_finishes_and_its_checkpoint_loads_on_the_cpu(small_digits, small_config, device):
    config = small_config.replace(device=device, epochs=2)
    job = TrainingJob(config, small_digits)
    job.start()
    snap = job.wait_until(lambda s: not s.is_alive, timeout=120)
    assert snap.status == JobStatus.FINISHED and snap.device.startswith(device)
    assert len(snap.held_out) == 2 and np.isfinite([m.elbo for m in snap.held_out]).all()
    loaded = load_checkpoint(checkpoint_bytes(job.model(), config))
    trained = {k: v.cpu() for k, v in job.model().state_dict().items()}
    assert all(torch.equal(v, trained[k]) for k, v in loaded.model.state_dict().items())
