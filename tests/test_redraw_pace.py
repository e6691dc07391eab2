"""How often a view of runs redraws itself: at the pace of its liveliest run, and never once none can change."""

from types import SimpleNamespace

import pytest

from pages._session import redraw_period
from vae.metrics import REDRAW_PERIOD_S, JobStatus

ENDED = [JobStatus.FINISHED, JobStatus.STOPPED, JobStatus.FAILED]


def run(status: JobStatus) -> SimpleNamespace:
    return SimpleNamespace(status=status)


@pytest.mark.parametrize("status", ENDED)
def test_a_run_that_can_no_longer_change_is_not_redrawn(status):
    assert redraw_period([run(status)]) is None
    assert redraw_period([None]) is None and redraw_period([]) is None  # no run at all


def test_a_training_run_redraws_every_second_and_a_queued_one_less_often():
    assert redraw_period([run(JobStatus.RUNNING)]) == 1.0 and redraw_period([run(JobStatus.PAUSED)]) == 1.0
    assert redraw_period([run(JobStatus.QUEUED)]) > redraw_period([run(JobStatus.RUNNING)])


@pytest.mark.parametrize("others", [[JobStatus.QUEUED], [JobStatus.STOPPED], [JobStatus.QUEUED, JobStatus.FINISHED]])
def test_a_view_of_several_runs_keeps_the_pace_of_the_liveliest(others):
    statuses = [*others, JobStatus.RUNNING]
    assert redraw_period([run(status) for status in statuses]) == REDRAW_PERIOD_S[JobStatus.RUNNING]
    assert redraw_period([run(JobStatus.STOPPED), run(JobStatus.QUEUED)]) == REDRAW_PERIOD_S[JobStatus.QUEUED]


def test_every_status_has_a_pace_or_is_one_that_never_changes():
    assert set(REDRAW_PERIOD_S) | set(ENDED) == set(JobStatus) and not set(REDRAW_PERIOD_S) & set(ENDED)


def fragments_script():
    """A person's fragment (a slider) and a timed redraw, each noting whether trainings were held back."""
    import streamlit as st

    from pages._session import fragment
    from vae import scheduler

    @fragment(run_every=60)
    def timed_redraw():
        st.session_state["timed"] = scheduler.PAGES_FIRST.busy()

    @fragment
    def sliders():
        st.slider("z1", -3.0, 3.0, 0.0)
        st.session_state["moved"] = scheduler.PAGES_FIRST.busy()

    timed_redraw()
    sliders()


def test_a_persons_fragment_holds_the_trainings_back_and_a_timed_redraw_does_not(monkeypatch):
    from streamlit.testing.v1 import AppTest

    import vae.scheduler
    from vae.scheduler import PagePriority

    priority = PagePriority(linger_s=0.0)  # no linger: the next run's timed redraw would still see the last one
    monkeypatch.setattr(vae.scheduler, "PAGES_FIRST", priority)
    at = AppTest.from_function(fragments_script, default_timeout=60)
    at.run()
    at.slider[0].set_value(1.0).run()
    assert at.session_state["moved"] is True and at.session_state["timed"] is False
    assert not at.exception and not priority.busy()  # nothing is left holding trainings back
