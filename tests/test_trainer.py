"""The training loop without a thread: what the job runs, called directly, step by step."""

import math

import numpy as np
import pytest
import torch

from vae.job import JobStatus, TrainingJob
from vae.trainer import STEP_METRICS, DivergenceGuard, Trainer


def test_steps_walk_the_epoch_in_minibatches_and_the_elbo_improves(small_digits, small_config):
    trainer = Trainer(small_config, small_digits)
    assert trainer.steps_per_epoch == math.ceil(256 / 32)
    before = trainer.evaluate()
    rows = [trainer.step() for _ in range(3 * trainer.steps_per_epoch)]
    assert trainer.step_count == 24 and trainer.epoch_done
    metrics = torch.stack(rows).numpy()  # (24, 5)
    elbo, reconstruction, kl, grad_norm, finite = metrics.T
    np.testing.assert_allclose(elbo, reconstruction - kl, atol=1e-4)
    assert (finite == 1).all() and (grad_norm > 0).all() and (kl >= 0).all()
    assert len(STEP_METRICS) == metrics.shape[1]
    assert trainer.evaluate().elbo > before.elbo + 1.0


def test_an_epoch_visits_every_training_image_once(small_digits, small_config):
    trainer = Trainer(small_config, small_digits)
    seen = []
    for position in range(trainer.steps_per_epoch):  # walk one epoch's minibatches without training
        trainer.step_count = position
        seen.append(trainer.next_batch())
    images = torch.cat(seen)
    assert images.shape == trainer.x_train.shape
    assert sorted(map(tuple, images.tolist())) == sorted(map(tuple, trainer.x_train.tolist()))


def test_kl_warm_up_ramps_beta_linearly_over_its_epochs(small_digits, small_config):
    trainer = Trainer(small_config.replace(kl_warmup_epochs=2, beta=3.0), small_digits)
    ramp = []
    for step in (0, trainer.steps_per_epoch, 2 * trainer.steps_per_epoch, 10 * trainer.steps_per_epoch):
        trainer.step_count = step
        ramp.append(trainer.beta())
    assert ramp == [0.0, pytest.approx(1.5), 3.0, 3.0]
    assert Trainer(small_config.replace(beta=0.5), small_digits).beta() == 0.5  # no warm-up: beta at once


def test_evaluate_does_not_touch_the_training_draws(small_digits, small_config):
    one, two = Trainer(small_config, small_digits), Trainer(small_config, small_digits)
    assert one.evaluate() == one.evaluate()  # fixed evaluation noise
    one.evaluate()
    assert torch.equal(one.step(), two.step())  # evaluating first changed nothing the training sees


def test_the_job_runs_exactly_this_loop(small_digits, small_config):
    """Same config, same seed: a Trainer driven by hand and the background job give the same held-out ELBO."""
    config = small_config.replace(epochs=2)
    trainer = Trainer(config, small_digits)
    by_hand = []
    for _ in range(config.epochs * trainer.steps_per_epoch):
        trainer.step()
        if trainer.epoch_done:
            by_hand.append(trainer.evaluate(trainer.step_count // trainer.steps_per_epoch))
    job = TrainingJob(config, small_digits)
    job.start()
    snap = job.wait_until(lambda s: not s.is_alive, timeout=60)
    assert snap.status == JobStatus.FINISHED
    assert [(m.epoch, m.elbo) for m in snap.held_out] == [(m.epoch, pytest.approx(m.elbo, abs=1e-5)) for m in by_hand]


def test_the_divergence_guard_rewinds_to_the_last_finite_state(small_digits, small_config):
    trainer = Trainer(small_config, small_digits)
    guard = DivergenceGuard(trainer)
    for _ in range(5):
        trainer.step()
    assert guard.check([True] * 5, first_step=1) is None  # remembered at step 5
    good = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    for _ in range(3):
        trainer.step()
    message = guard.check([True, False, True], first_step=6)
    assert "step 7" in message and "from step 5" in message
    assert trainer.step_count == 5
    assert all(torch.equal(v, good[k]) for k, v in trainer.model.state_dict().items())


def test_a_rewind_after_kept_states_are_overwritten_in_place_trains_on_as_from_the_good_step(small_digits,
                                                                                          small_config):
    """The guard overwrites its copy in place at each good flush: a rewind must still bring back the weights,
    Adam's moments and step counts and the learning rate of the last good flush, so training goes on exactly as a
    twin that never went past it."""
    trainer, twin = Trainer(small_config, small_digits), Trainer(small_config, small_digits)
    guard = DivergenceGuard(trainer)
    for first in (1, 4):  # two good flushes: the second reuses the first's tensors
        for _ in range(3):
            trainer.step()
        kept = [t.data_ptr() for t in guard.good.weights.values()]
        assert guard.check([True] * 3, first_step=first) is None
    assert [t.data_ptr() for t in guard.good.weights.values()] == kept  # overwritten, not allocated
    generator_state = trainer.generator.get_state()
    for _ in range(6):
        twin.step()
    trainer.set_learning_rate(0.5)
    for _ in range(2):
        trainer.step()
    assert guard.check([True, False], first_step=7) is not None
    assert trainer.optimizer.param_groups[0]["lr"] == small_config.lr
    trainer.generator.set_state(generator_state)  # the same draws from here on, for the comparison only
    rows, twin_rows = torch.stack([trainer.step() for _ in range(3)]), torch.stack([twin.step() for _ in range(3)])
    assert torch.equal(rows, twin_rows)
    assert all(torch.equal(a, b) for a, b in zip(trainer.model.parameters(), twin.model.parameters(), strict=True))


# The ELBO of the first ten minibatches (seed 0) with the loop as it was before steps could be recorded: recording
# must leave the default step's numbers, and the generator's draws, exactly where they were.
ELBO_BEFORE_RECORDING = {
    "gaussian": [-44.47362, -43.95138, -43.61844, -43.40529, -42.7878, -42.55468, -41.65826, -41.38679, -41.10722,
                 -41.05253],
    "student-t": [-44.72014, -44.50856, -44.2397, -43.65073, -43.09673, -42.60266, -41.9448, -41.70365, -41.36615,
                  -40.91756],
}


@pytest.mark.parametrize("family", sorted(ELBO_BEFORE_RECORDING))
def test_the_default_step_trains_as_before_and_a_recorded_one_trains_the_same(small_digits, small_config, family):
    config = small_config.replace(posterior=family)
    plain, recording = Trainer(config, small_digits), Trainer(config, small_digits)
    rows = torch.stack([plain.step() for _ in range(10)])  # across an epoch's end: 8 steps per epoch
    np.testing.assert_allclose(rows[:, 0].numpy(), ELBO_BEFORE_RECORDING[family], rtol=1e-5)
    assert plain.last_record is None  # nothing recorded unless asked
    recorded_rows = torch.stack([recording.step(record=step % 3 == 0) for step in range(10)])
    assert torch.equal(rows, recorded_rows)
    assert all(torch.equal(a, b) for a, b in zip(plain.model.parameters(), recording.model.parameters(), strict=True))
    assert recording.last_record.step == 10 and recording.last_record.metrics["elbo"] == float(rows[-1, 0])
