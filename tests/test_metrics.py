"""What a run publishes: the speed it shows is the rate of its own step counter."""

import numpy as np
import pytest

from vae.config import TrainConfig
from vae.metrics import SPEED_WINDOW_S, JobStatus, RunPublisher


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def publish(publisher: RunPublisher, clock: FakeClock, steps: int, seconds: float) -> None:
    clock.now += seconds
    publisher.publish_steps(publisher.step + 1, np.zeros((steps, 4)))


def test_the_steps_per_second_shown_is_the_step_counters_rate_over_uneven_flushes():
    """Flushes come at uneven times (a sync right after a pause, a busy server): an average of per-flush rates
    read about 20% high. The figure must be steps over seconds, as a stopwatch beside the counter measures."""
    clock = FakeClock()
    publisher = RunPublisher(TrainConfig(), steps_per_epoch=10, device="cpu", clock=clock)
    publisher.set_status(JobStatus.RUNNING)
    for _ in range(40):
        publish(publisher, clock, 10, 0.02)  # fast flushes ...
        publish(publisher, clock, 10, 0.30)  # ... and slow ones
    marks_from = clock.now - SPEED_WINDOW_S
    expected = 20 / 0.32  # steps per second over any whole number of pairs
    assert marks_from > 0
    assert publisher.snapshot().steps_per_second == pytest.approx(expected, rel=0.08)


def test_time_spent_paused_does_not_count():
    clock = FakeClock()
    publisher = RunPublisher(TrainConfig(), steps_per_epoch=10, device="cpu", clock=clock)
    publisher.set_status(JobStatus.RUNNING)
    publish(publisher, clock, 100, 1.0)
    publisher.set_status(JobStatus.PAUSED)
    clock.now += 60.0
    publisher.set_status(JobStatus.RUNNING)
    publish(publisher, clock, 50, 1.0)
    assert publisher.snapshot().steps_per_second == pytest.approx(50.0)
