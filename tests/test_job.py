"""The training job: lifecycle, determinism, bounded history and the NaN guard."""

import os
import sys
import threading

import numpy as np
import pytest
import torch

import vae.job as job_module
import vae.trainer as trainer_module
from vae import scheduler
from vae.job import CapacityError, JobStatus, MetricHistory, TrainingJob, start_together
from vae.scheduler import PagePriority, TrainingSlots


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

    def loss_that_breaks_at_step_15(terms, beta, free_bits=0.0):
        calls["n"] += 1
        loss = real_loss(terms, beta, free_bits)
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


@pytest.fixture
def two_slots(monkeypatch):
    """A server that trains two runs at once."""
    slots = TrainingSlots(2)
    monkeypatch.setattr(job_module, "SLOTS", slots)
    return slots


def test_runs_beyond_the_capacity_queue_and_start_by_themselves(small_digits, small_config, two_slots):
    long = small_config.replace(epochs=10_000)
    running = [TrainingJob(long, small_digits) for _ in range(2)]
    for job in running:
        job.start()
        job.wait_until(lambda s: s.status == JobStatus.RUNNING)
    queued = [TrainingJob(long, small_digits) for _ in range(2)]
    for job in queued:
        job.start()
    first, second = (job.wait_until(lambda s: s.status == JobStatus.QUEUED) for job in queued)
    assert "number 1 in the queue" in first.status_line and "number 2 in the queue" in second.status_line
    assert two_slots.running == 2 and first.step == 0
    running[0].stop()
    queued[0].wait_until(lambda s: s.status == JobStatus.RUNNING and s.step > 0)
    queued[1].wait_until(lambda s: "number 1 in the queue" in s.status_line)
    assert two_slots.running == 2
    for job in running + queued:
        job.stop()
        assert job.join(timeout=120)
    assert two_slots.running == 0 and two_slots.waiting == 0


def test_a_queued_run_that_is_stopped_leaves_the_queue_and_frees_nothing_twice(small_digits, small_config,
                                                                               two_slots):
    long = small_config.replace(epochs=10_000)
    jobs = [TrainingJob(long, small_digits) for _ in range(3)]
    for job in jobs:
        job.start()
    jobs[2].wait_until(lambda s: s.status == JobStatus.QUEUED)
    jobs[2].stop()
    assert jobs[2].join(timeout=120)
    assert jobs[2].snapshot().status == JobStatus.STOPPED and two_slots.waiting == 0
    for job in jobs[:2]:
        job.stop()
        assert job.join(timeout=120)
    assert two_slots.running == 0


def test_a_race_starts_together_or_waits_together(small_digits, small_config, two_slots):
    long = small_config.replace(epochs=10_000)
    solo = TrainingJob(long, small_digits)
    solo.start()
    solo.wait_until(lambda s: s.status == JobStatus.RUNNING)
    race = [TrainingJob(long, small_digits) for _ in range(2)]
    start_together(race)
    for job in race:
        job.wait_until(lambda s: s.status == JobStatus.QUEUED)  # one slot is free, but the race needs two
    solo.stop()
    for job in race:
        job.wait_until(lambda s: s.status == JobStatus.RUNNING)
    with pytest.raises(CapacityError, match="at most 2 runs at once"):
        start_together([TrainingJob(long, small_digits) for _ in range(3)])
    for job in race:
        job.stop()
        assert job.join(timeout=120)


def test_the_runs_of_a_gone_owner_stop_and_drop_their_weights(small_digits, small_config):
    long = small_config.replace(epochs=10_000)
    mine, theirs = TrainingJob(long, small_digits, owner="tab-1"), TrainingJob(long, small_digits, owner="tab-2")
    for job in (mine, theirs):
        job.start()
        job.wait_until(lambda s: s.step > 0)
    assert {"tab-1", "tab-2"} <= job_module.owners_with_live_jobs()
    assert job_module.stop_jobs_of("tab-1") == 1
    assert mine.join(timeout=120) and mine.model() is None
    assert "its browser tab had been gone too long" in mine.snapshot().message
    assert theirs.snapshot().status == JobStatus.RUNNING and "tab-1" not in job_module.owners_with_live_jobs()
    theirs.stop()
    assert theirs.join(timeout=120)


def test_dropping_the_job_stops_its_thread(small_digits, small_config):
    job = TrainingJob(small_config.replace(epochs=10_000), small_digits)
    job.start()
    thread = job._worker.thread
    del job
    import gc

    gc.collect()
    thread.join(timeout=10)
    assert not thread.is_alive()


def test_each_requested_step_is_recorded_with_the_numbers_the_job_published(small_digits, small_config):
    job = TrainingJob(small_config.replace(epochs=10_000), small_digits)
    assert job.last_step_record() is None
    job.start()
    job.wait_until(lambda s: s.step >= 10)
    assert job.last_step_record() is None  # a running job records nothing: it stays fast
    job.pause()
    paused = job.wait_until(lambda s: s.status == JobStatus.PAUSED)
    weights_before = job.model()
    job.step()
    record = job.wait_for_step_record(after=paused.step)
    snap = job.snapshot()
    assert record is job.last_step_record() and record.step == snap.step == paused.step + 1
    published = {name: snap.train[name][-1] for name in ("elbo", "reconstruction", "kl", "grad_norm")}
    assert record.metrics == published  # the same float32 numbers, read back once
    weights_after = job.model()
    with torch.no_grad():
        distance = torch.sqrt(sum(((a - b) ** 2).sum() for a, b in zip(weights_after.parameters(),
                                                                          weights_before.parameters(), strict=True)))
    assert record.update_norm == pytest.approx(float(distance), rel=1e-5)
    job.step(3)
    job.wait_until(lambda s: s.step == record.step + 3)
    assert job.last_step_record().step == record.step + 3  # the latest of several
    job.stop()
    assert job.join(timeout=10)
    assert job.wait_for_step_record(after=job.snapshot().step, timeout=1) is None  # an ended run steps no more


def test_step_on_a_running_job_pauses_it_and_records_that_step(small_digits, small_config):
    job = TrainingJob(small_config.replace(epochs=10_000), small_digits)
    job.start()
    running = job.wait_until(lambda s: s.step >= 5 and s.status == JobStatus.RUNNING)
    job.step()  # steps still in flight finish first; the one after them is recorded
    record = job.wait_for_step_record(after=running.step)
    assert record is not None and record.step > running.step
    snap = job.wait_until(lambda s: s.status == JobStatus.PAUSED)
    assert snap.step == record.step and job.last_step_record() is record
    assert record.metrics["elbo"] == snap.train["elbo"][-1]
    job.stop()


def test_a_run_frees_the_slots_it_waited_in_even_when_the_servers_are_replaced(small_digits, small_config,
                                                                                monkeypatch):
    """A run started before SLOTS was replaced (as tests do) must not free a slot of the new one on its way out."""
    old = TrainingJob(small_config.replace(epochs=10_000), small_digits)
    old.start()
    old.wait_until(lambda s: s.status == JobStatus.RUNNING)
    new_slots = TrainingSlots(2)
    monkeypatch.setattr(job_module, "SLOTS", new_slots)
    new = TrainingJob(small_config.replace(epochs=10_000), small_digits)
    new.start()
    new.wait_until(lambda s: s.status == JobStatus.RUNNING)
    old.stop()
    assert old.join(timeout=120)
    assert new_slots.running == 1
    new.stop()
    assert new.join(timeout=120) and new_slots.running == 0


def test_a_run_holds_still_while_a_page_serves_a_click(small_digits, small_config, monkeypatch):
    priority = PagePriority(linger_s=0.0, max_hold_s=60)
    monkeypatch.setattr(scheduler, "PAGES_FIRST", priority)
    job = TrainingJob(small_config.replace(epochs=10_000), small_digits, sync_every=1)
    job.start()
    job.wait_until(lambda s: s.step >= 5)
    with priority.serving():
        threading.Event().wait(0.3)  # the step in flight ends and is published
        held = job.snapshot().step
        threading.Event().wait(0.3)
        assert job.snapshot().step <= held + 1
    job.wait_until(lambda s: s.step > held + 10)  # and trains on once the page is served
    job.stop()
    assert job.join(timeout=10)


@pytest.mark.parametrize("niceness", [job_module.BACKGROUND_NICENESS, 0])
def test_a_server_run_trains_at_a_lower_os_priority_and_a_cli_run_at_the_usual(small_digits, small_config,
                                                                                niceness):
    usual = os.getpriority(os.PRIO_PROCESS, 0)
    job = TrainingJob(small_config.replace(epochs=10_000), small_digits, niceness=niceness)
    job.start()
    job.wait_until(lambda s: s.step > 0)
    thread_priority = os.getpriority(os.PRIO_PROCESS, job._worker.thread.native_id)
    job.stop()
    assert job.join(timeout=10)
    expected = max(usual, niceness) if sys.platform.startswith("linux") else usual  # Linux nices one thread
    assert thread_priority == expected and os.getpriority(os.PRIO_PROCESS, 0) == usual
