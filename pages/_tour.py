"""The guided tour in the app (its steps are vae.tour.TOUR): a panel with what to say and Back / Next / Leave, the
element it talks about outlined and scrolled into view, the step in the URL (`?tour=3`) so a reload keeps the
place. Each step sets its widgets and starts its run on its own page, whatever was clicked before."""

from __future__ import annotations

import json

import streamlit as st

from pages._memory import preset_widget
from pages._session import (
    RACE_KEY,
    cached_dataset,
    current_job,
    literal,
    start_new_job,
    start_race,
    step_live_run,
    wait_for_torch,
)
from vae.config import preset_config
from vae.tour import TOUR, Action, TourStep, css_class, step_from_text

STEP_KEY = "tour:step"  # the step shown, 1-based; absent when there is no tour
PENDING_KEY = "tour:pending"  # a step whose settings and run wait for its page to open
URL_KEY = "tour:in_url"  # the ?tour= value last seen or written
RACE_EPOCHS = 150
STEP_WAIT_S = 5.0


def start_tour() -> None:
    go_to(1)


def go_to(number: int) -> None:
    st.session_state[STEP_KEY] = st.session_state[PENDING_KEY] = number


def leave_tour() -> None:
    st.session_state.pop(STEP_KEY, None)
    st.session_state.pop(PENDING_KEY, None)
    st.query_params.pop("tour", None)
    st.session_state[URL_KEY] = None


def current_step() -> int | None:
    """The step shown. A `?tour=N` this session has not seen (a link, a reload) opens step N and does what it
    does; the one the tour wrote itself is not news (Next changes the step before the URL follows)."""
    text = st.query_params.get("tour")
    if text != st.session_state.get(URL_KEY):
        st.session_state[URL_KEY] = text
        linked = step_from_text(text)
        if linked is not None and linked != st.session_state.get(STEP_KEY):
            go_to(linked)
    return st.session_state.get(STEP_KEY)


def follow_tour(current_page: str) -> str | None:
    """Before the page runs: the page the tour's step is on when it is another one (to switch to), else None
    after applying the step's settings and run here, once."""
    number = current_step()
    if number is None:
        return None
    step = TOUR[number - 1]
    if step.page != current_page:
        return step.page
    if st.session_state.get(PENDING_KEY) == number:
        del st.session_state[PENDING_KEY]
        apply(step)
    return None


def apply(step: TourStep) -> None:
    """Set the step's widgets (this runs before the page draws them) and start what it starts."""
    for key, value in step.settings.items():
        preset_widget(key, value)
    if step.action is not Action.NONE:
        wait_for_torch()
    if step.action is Action.TRAIN:
        job = current_job()
        if job is None or not job.snapshot().is_alive:
            start_new_job(preset_config("digits"), cached_dataset("digits"))
        else:
            job.resume()  # a paused run (a Step earlier) trains on
    elif step.action is Action.RACE:
        racers = st.session_state.get(RACE_KEY) or {}
        if not any(job.snapshot().is_alive for job in racers.values()):
            start_race(RACE_EPOCHS)
    elif step.action is Action.STEP:
        job = current_job()
        step_live_run(job if job is not None and job.snapshot().is_alive else None, STEP_WAIT_S)


def tour_panel() -> None:
    """After the page: the panel in the bottom right corner, and the outline on the element it is about."""
    number = st.session_state.get(STEP_KEY)
    if number is None:
        return
    if st.query_params.get("tour") != str(number):
        st.query_params["tour"] = st.session_state[URL_KEY] = str(number)
    step = TOUR[number - 1]
    with st.container(key="tour_panel"):
        st.markdown(f"**Tour · step {number} of {len(TOUR)} · {literal(step.title)}**")
        st.markdown(literal(step.say))
        with st.container(horizontal=True):
            st.button("Back", icon=":material/arrow_back:", key="tour:back", disabled=number == 1,
                      on_click=go_to, args=(number - 1,))
            if number < len(TOUR):
                st.button("Next", icon=":material/arrow_forward:", type="primary", key="tour:next",
                          on_click=go_to, args=(number + 1,))
            st.button("Leave the tour" if number < len(TOUR) else "Finish", icon=":material/close:",
                      key="tour:leave", on_click=leave_tour)
        point_at(step, number)


def point_at(step: TourStep, number: int) -> None:
    """Outline the element and scroll it to the middle of the screen when it is off screen."""
    selector = "." + css_class(step.point_at)
    st.html(f"""<style>{selector} {{ outline: 4px solid #ff4b4b; outline-offset: 6px; border-radius: 6px; }}</style>
<script data-step="{number}">(function () {{
  let tries = 0;  // for 4 s: the element may come late (a fragment), or the browser restore a scroll after a reload
  const look = () => {{
    const target = document.querySelector({json.dumps(selector)});
    if (target) {{
      const box = target.getBoundingClientRect(), tall = box.height > 0.7 * window.innerHeight;
      if (box.bottom < 80 || box.top > 0.45 * window.innerHeight) {{
        target.style.scrollMarginTop = "4.5rem";  // below the top bar
        target.scrollIntoView({{block: tall ? "start" : "center"}});
      }}
    }}
    if (++tries < 20) setTimeout(look, 200);
  }};
  look();
}})();</script>""", width="content", unsafe_allow_javascript=True)
