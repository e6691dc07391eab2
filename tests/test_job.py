"""The training job: lifecycle, determinism, bounded history and the NaN guard."""

import threading

import numpy as np
import pytest
import torch

import vae.job as job_module
import vae.trainer as trainer_module
from vae.job import JobLimitError, JobStatus, MetricHistory, TrainingJob


def run_to_end(job: TrainingJob, timeout: float = 60):
    job.start()
    return job.wait_until(lambda s: not s.is_alive, timeout=timeout)


def test_a_run_finishes_and_the_held_out_elbo_improves(small_digits, small_config):
    snap = run_to_end(TrainingJob(small_config.replace(epochs=8), small_digits))
    assert snap.status == JobStatus.FINISHED
    assert snap.step == 8 * snap.steps_per_epoch == 8 * 8
    assert [m.epoch for m in snap.held_out] == list(range(1, 9))
    assert snap.held_out[-1].elbo > snap.held_out[0].elbo + 1.0
    for m in snap.held_out:
        assert m.elbo == pytest.approx(m.reconstruction - m.kl, abs=1e-3)
    assert list(snap.train["step"]) == list(range(1, snap.step + 1))
    assert snap.device == "cpu" and snap.steps_per_second > 0


def test_pause_resume_stop(small_digits, small_config):
    job = TrainingJob(small_config.replace(epochs=10_000), small_digits)
    job.start()
    job.wait_until(lambda s: s.step >= 20)
    job.pause()
    paused = job.wait_until(lambda s: s.status == JobStatus.PAUSED)
    assert job.snapshot().step == paused.step  # nothing moves while paused
    threading.Event().wait(0.2)
    assert job.snapshot().step == paused.step
    job.resume()
    job.wait_until(lambda s: s.status == JobStatus.RUNNING and s.step > paused.step + 10)
    job.stop()
    assert job.join(timeout=10)
    assert job.snapshot().status == JobStatus.STOPPED


def test_step_runs_exactly_the_requested_minibatches(small_digits, small_config):
    job = TrainingJob(small_config, small_digits)
    job.step()  # starts the job paused, then one step
    assert job.wait_until(lambda s: s.step == 1).status == JobStatus.PAUSED
    job.step(5)
    job.wait_until(lambda s: s.step == 6)
    threading.Event().wait(0.2)
    snap = job.snapshot()
    assert snap.step == 6 and snap.status == JobStatus.PAUSED
    assert list(snap.train["step"]) == [1, 2, 3, 4, 5, 6]
    job.stop()


def test_same_seed_same_curve_even_with_jobs_in_parallel(small_digits, small_config):
    config = small_config.replace(epochs=2)
    jobs = [TrainingJob(config, small_digits) for _ in range(2)] + [TrainingJob(config.replace(seed=1), small_digits)]
    for job in jobs:
        job.start()
    a, b, c = (job.wait_until(lambda s: not s.is_alive) for job in jobs)
    np.testing.assert_array_equal(a.train["elbo"], b.train["elbo"])
    assert a.held_out == b.held_out
    assert not np.array_equal(a.train["elbo"], c.train["elbo"])


def test_nan_loss_pauses_on_the_last_good_weights(small_digits, small_config, monkeypatch):
    calls = {"n": 0}
    real_loss = trainer_module.training_loss

    def loss_that_breaks_at_step_15(terms, beta):
        calls["n"] += 1
        loss = real_loss(terms, beta)
        return loss * float("nan") if calls["n"] >= 15 else loss

    monkeypatch.setattr(trainer_module, "training_loss", loss_that_breaks_at_step_15)
    job = TrainingJob(small_config.replace(epochs=100), small_digits, sync_every=4)
    job.start()
    snap = job.wait_until(lambda s: s.diverged)
    assert snap.status == JobStatus.PAUSED
    assert "NaN" in snap.message and "step 15" in snap.message
    assert snap.step == 12  # the last flush before the bad step (flushes every 4 steps)
    assert snap.train["step"][-1] == 12
    weights = job.model().state_dict()
    assert all(torch.isfinite(t).all() for t in weights.values())

    # The restored weights are exactly those of an unbroken run after 12 steps.
    monkeypatch.setattr(trainer_module, "training_loss", real_loss)
    reference = TrainingJob(small_config.replace(epochs=100), small_digits)
    reference.step(12)
    reference.wait_until(lambda s: s.step == 12)
    for name, tensor in reference.model().state_dict().items():
        torch.testing.assert_close(weights[name], tensor)
    reference.stop()

    # Resuming with a lower learning rate carries on from there.
    job.set_learning_rate(1e-4)
    job.resume()
    after = job.wait_until(lambda s: s.step > 20)
    assert after.learning_rate == 1e-4 and not after.diverged
    job.stop()


def test_metric_history_stays_bounded_and_evenly_thinned():
    history = MetricHistory(("a",), capacity=100)
    for start in range(1, 10_001, 10):
        history.extend(start, np.arange(start, start + 10, dtype=float).reshape(-1, 1))
    arrays = history.arrays()
    assert len(arrays["step"]) <= 100
    gaps = np.diff(arrays["step"])
    assert (gaps == gaps[0]).all() and gaps[0] == history.stride  # even spacing
    assert arrays["step"][-1] > 9_800  # the latest points are kept
    np.testing.assert_array_equal(arrays["a"], arrays["step"])  # rows stay with their steps


def test_model_copy_is_independent_of_training(small_digits, small_config):
    job = TrainingJob(small_config, small_digits)
    assert job.model() is None
    job.step(3)
    job.wait_until(lambda s: s.step == 3)
    copy = job.model()
    before = copy.to_loc.weight.clone()
    job.step(3)
    job.wait_until(lambda s: s.step == 6)
    assert torch.equal(copy.to_loc.weight, before)
    assert not torch.equal(job.model().to_loc.weight, before)
    job.stop()


def test_too_many_jobs_are_refused(small_digits, small_config):
    jobs = [TrainingJob(small_config.replace(epochs=10_000), small_digits) for _ in range(job_module.MAX_ACTIVE_JOBS)]
    for job in jobs:
        job.start(paused=True)
    extra = TrainingJob(small_config, small_digits)
    with pytest.raises(JobLimitError, match="already running"):
        extra.start()
    for job in jobs:
        job.stop()
        assert job.join(timeout=10)
    extra.start()  # a slot is free again
    extra.stop()
    assert extra.join(timeout=10)


def test_dropping_the_job_stops_its_thread(small_digits, small_config):
    job = TrainingJob(small_config.replace(epochs=10_000), small_digits)
    job.start()
    thread = job._worker.thread
    del job
    import gc

    gc.collect()
    thread.join(timeout=10)
    assert not thread.is_alive()
