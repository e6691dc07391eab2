"""Train: configure a VAE, start it, and watch the ELBO and its two terms move while it trains.

Before anything trains, the page shows the bundled run (its curves and pictures) so the first screen already
teaches. Nothing drawn before Start needs PyTorch, which loads in the background (vae.warmup)."""

from __future__ import annotations

import html
from enum import Enum
from typing import TYPE_CHECKING, Any

import numpy as np
import streamlit as st

from pages._links import hidden, open_link, update_link
from pages._live_plot import live_plotly_chart
from pages._session import (
    cached_dataset,
    current_job,
    draw_refreshing,
    literal,
    presenting,
    read_upload,
    remember_widgets,
    remembered,
    show_images,
    start_new_job,
    wait_for_torch,
)
from vae import links, warmup
from vae.config import (
    Device,
    PosteriorFamily,
    TrainConfig,
    config_from_settings,
    preset_config,
    pretrained_path,
    reference_test_loss,
    user_settings,
)
from vae.data import DATASET_NAMES, MAX_UPLOAD_MB, DataError, Dataset, is_cached, load_npz
from vae.export import metrics_csv, script_refusal, standalone_script
from vae.figures import (
    coloured,
    for_projector,
    held_out_figure,
    picture_captions,
    training_curves_figure,
    with_note,
)
from vae.metrics import EpochMetrics, JobSnapshot, JobStatus
from vae.preview import bundled_preview

if TYPE_CHECKING:
    from vae.job import TrainingJob

WAIT_FOR_FILES = "Press Pause (or let the run finish): the file holds the weights at the step it rests on."
DATASET_LABELS = {"digits": "Digits 8×8 (bundled, offline)", "mnist": "MNIST 28×28 (download)",
                  "fashion-mnist": "Fashion-MNIST 28×28 (download)", "upload": "My own .npz file"}
PREFIX = "train:"
SETTINGS = {name: spec for name, spec in user_settings().items() if spec.how.widget}  # vae.config declares them
BUNDLED_RUN = "digits"  # the run the page opens on
CHART_HEIGHT = 250  # two charts, the controls and the pictures on one 1280x720 screen
PICTURE_TILE = 32


def key(name: str) -> str:
    return PREFIX + name


def link_settings() -> list[links.LinkSetting]:
    """Every setting with a widget, in a class link under its own name (`?lr=0.003&hide=batch_size`)."""
    settings = []
    for name, spec in SETTINGS.items():
        if name == "device":
            continue  # which devices there are depends on the server, not on the lesson
        default = DEFAULTS[key(name)]
        if spec.how.widget == "select":
            options = DATASET_NAMES if name == "dataset" else spec.choices  # an upload cannot travel in a link
            settings.append(links.choice(name, key(name), default, options))
        else:
            settings.append(links.number(name, key(name), default, spec.how.low, spec.how.high,
                                   integer=spec.item_type is int))
    return settings


def preset_values(name: str) -> dict[str, Any]:
    """Widget key -> value for a preset (the config dataclass is the one source of defaults)."""
    values = preset_config(name).setting_values()
    # A selectbox's options are the plain strings (see `setting_widget`); TrainConfig turns them back into enums.
    return {key(name): value.value if isinstance(value, Enum) else value
            for name, value in values.items() if name in SETTINGS}


DEFAULTS = preset_values("digits")
LINK = link_settings()


def value(name: str) -> Any:
    """The value to draw setting `name` with (see `remembered`: passed on every run, never left to the widget)."""
    return remembered(key(name), DEFAULTS[key(name)])


def index(options, name: str) -> int:
    options = list(options)
    current = value(name)
    return options.index(current) if current in options else 0


def load_preset_into_widgets() -> None:
    """A callback, so it runs before the widgets are drawn."""
    st.session_state.update(preset_values(st.session_state[key("preset")]))


def config_from_widgets() -> TrainConfig:
    return config_from_settings({name: value(name) for name in SETTINGS})


def setting_widget(container, name: str, **overrides: Any) -> None:
    """The widget of setting `name` as vae.config declares it (label, tooltip, range or choices), always drawn
    with its value (see `remembered`). `overrides` go to Streamlit as they are: options, help, callbacks."""
    if hidden(name):
        return  # the class link hides it; its value still comes from the link (see `value`)
    spec = SETTINGS[name]
    how = spec.how
    options = {"label": how.label, "key": key(name), "help": how.help or None} | overrides
    if how.widget == "select":
        choices = [str(choice) for choice in options.pop("options", spec.choices)]
        options.setdefault("format_func", lambda choice: how.choice_labels.get(choice, choice))
        container.selectbox(options=choices, index=index(choices, name), **options)
        return
    number = spec.item_type  # int or float: Streamlit infers the widget's type from these
    bounds = {"min_value": number(how.low), "max_value": number(how.high), "value": number(value(name))}
    if how.widget == "slider":
        container.slider(**bounds, **options)
    else:
        step = None if how.step is None else number(how.step)
        container.number_input(**bounds, step=step, format=how.format, **options)


def settings() -> None:
    """The controls a teacher needs in front; the rest in a popover (hidden in presentation mode)."""
    # Presentation mode: no data picker (a class trains on the bundled digits) and no popover; more room for text.
    columns = st.columns([3, 2.4, 2.4] if presenting() else [3, 3, 2, 2, 1.4], vertical_alignment="bottom")
    model, data, latent, beta, more = columns[:1] + [None] + columns[1:] + [None] if presenting() else columns
    setting_widget(model, "preset", help=None, on_change=load_preset_into_widgets)
    if not presenting():  # a class trains on the bundled digits; the room goes to larger text
        setting_widget(data, "dataset", options=[*DATASET_NAMES, "upload"], format_func=DATASET_LABELS.get,
                       help=None)
    setting_widget(latent, "latent_dim")
    setting_widget(beta, "beta")
    if not presenting():
        with more.popover("More", icon=":material/tune:", width="stretch"):
            more_settings()
    remember_widgets(DEFAULTS)
    download_notice(value("dataset"))


def more_settings() -> None:
    """What a teacher rarely changes in class. Every widget gets its value explicitly: see `remembered`."""
    columns = st.columns(2)
    setting_widget(columns[0], "lr", help="A new value also applies to a paused run when you press Resume.")
    setting_widget(columns[1], "batch_size")
    setting_widget(columns[0], "epochs")
    setting_widget(columns[1], "seed")
    setting_widget(columns[0], "kl_warmup_epochs")
    setting_widget(columns[1], "kl_cycles")
    setting_widget(columns[0], "free_bits")
    setting_widget(columns[1], "likelihood")
    setting_widget(columns[0], "posterior")
    devices = [device for device in Device if device != Device.CUDA or warmup.cuda_available()]
    setting_widget(columns[1], "device", options=devices)
    if value("posterior") == PosteriorFamily.CATEGORICAL:  # the discrete z's own settings, only when they apply
        setting_widget(columns[0], "categories")
        setting_widget(columns[1], "encoder_gradient")
        setting_widget(columns[0], "temperature")
        setting_widget(columns[1], "final_temperature")
    uploader()


def download_notice(dataset: str) -> None:
    """Say before Start that a dataset must be downloaded (and what happens offline), not after."""
    if dataset in ("mnist", "fashion-mnist") and not is_cached(dataset):
        st.caption(f"{DATASET_LABELS[dataset].split(' (')[0]} is not on this computer yet: Start downloads it "
                   "(about 10 to 30 MB). Without a network the bundled digits are used instead.")


def uploader() -> None:
    """Checked the moment it arrives, so a bad file is refused before anyone presses Start."""
    st.file_uploader(f"Your own data (up to {MAX_UPLOAD_MB} MB): an .npz with x_train, x_test (N×H×W or N×D, uint8 "
                     "or floats in [0, 1]), optional y_train, y_test. Then pick “My own .npz file”.", type=["npz"],
                     key=key("upload"))
    dataset = uploaded_dataset()
    if dataset is not None:
        height, width = dataset.image_shape
        st.success(f"{literal(dataset.name)}: {len(dataset.x_train):,} training and {len(dataset.x_test):,} "
                   f"held-out images of {height}×{width}.")


def uploaded_dataset() -> Dataset | None:
    """The uploaded .npz, decoded once per file (see `read_upload`); None with a sentence when refused."""
    upload = st.session_state.get(key("upload"))
    return None if upload is None else read_upload(upload, key("upload"), load_npz, DataError)


def chosen_dataset() -> Dataset | None:
    """The dataset the settings name, or None with a sentence in the page saying what is wrong."""
    name = value("dataset")
    if name != "upload":
        return cached_dataset(name)
    if st.session_state.get(key("upload")) is None:
        st.warning("Choose a .npz file under *More* first, or pick another dataset.")
        return None
    return uploaded_dataset()


def start() -> bool:
    """Start a new job from the settings; False (with a sentence in the page) when the data is refused."""
    wait_for_torch()  # loading the data may import scikit-learn
    dataset = chosen_dataset()
    return dataset is not None and start_new_job(config_from_widgets(), dataset) is not None


def resume(job: TrainingJob) -> None:
    """Resume with the learning rate now in the settings (the way out of a divergence)."""
    job.set_learning_rate(value("lr"))
    job.resume()


def run_view() -> None:
    """The run's controls and counter, then its curves, pictures and download row, all from one snapshot: one
    fragment, redrawn at the pace its run needs (`vae.metrics.REDRAW_PERIOD_S`) without rerunning the settings. A
    class of tabs shares one server, and each redraw of each tab costs it."""
    job = current_job()
    snap = job.snapshot() if job else None
    controls(job, snap)
    with st.container(key="train_live"):  # the guided tour points at it (vae.tour)
        live_view(job, snap)


def controls(job: TrainingJob | None, snap: JobSnapshot | None) -> None:
    """Start, then Pause/Resume, Step, Stop in one row, with the epoch counter beside them."""
    status = snap.status if snap else None
    alive = bool(snap and snap.is_alive)
    start_column, pause_column, step_column, stop_column, counter_column = st.columns(
        [1, 1, 1, 1, 3.2], vertical_alignment="center")
    if start_column.button("Start", type="primary", icon=":material/play_arrow:", width="stretch") and start():
        st.rerun()  # the whole page: its refresh starts, and the settings show the new run's
    if status == JobStatus.PAUSED:
        pause_column.button("Resume", icon=":material/resume:", width="stretch", on_click=resume, args=(job,))
    else:
        pause_column.button("Pause", icon=":material/pause:", width="stretch", disabled=status != JobStatus.RUNNING,
                            on_click=job.pause if job else None)
    queued = status == JobStatus.QUEUED  # a step asked now would come unseen, whenever a training slot is free
    step_column.button("Step", icon=":material/skip_next:", width="stretch", disabled=not alive or queued,
                       on_click=job.step if job else None,
                       help="Waits for a free training slot." if queued else
                       "One minibatch, then pause: SGD one step at a time.")
    stop_column.button("Stop", icon=":material/stop:", width="stretch", disabled=not alive,
                       on_click=job.stop if job else None)
    with counter_column:
        counter(job, snap)


def counter(job: TrainingJob | None, snap: JobSnapshot | None) -> None:
    """The epoch in large type beside the buttons, like a game clock; the status line under it."""
    if job is None or snap is None:
        preview = bundled_preview(BUNDLED_RUN)
        st.markdown(f"**Showing the bundled run** ({preview.config.epochs} epochs on digits). "
                    "Press **Start** to train your own.")
        return
    status = html.escape(snap.status_line)  # it names an uploaded file: shown as written (an HTML block: no Markdown)
    st.markdown(f"<div class='epoch-counter'><b>Epoch {snap.epoch:,} / {snap.epochs:,}</b> · {status}</div>",
                unsafe_allow_html=True)


def live_view(job: TrainingJob | None, snap: JobSnapshot | None) -> None:
    """The run's curves, pictures and download row; the bundled run's before anything trains."""
    if job is None or snap is None:
        bundled_view()
        download_row(None, None)
        return
    st.progress(snap.progress)
    notices(job, snap)
    progress_row(snap.train, snap.held_out, reference_test_loss(snap.config), job.pictures(), "",
                 posterior=snap.config.model.posterior, revision=str(id(job)))
    download_row(job, snap)


def bundled_view() -> None:
    """The first screen: the bundled run's curves and pictures, read from files (no PyTorch needed)."""
    preview = bundled_preview(BUNDLED_RUN)
    st.progress(1.0)
    progress_row(preview.train, preview.held_out, None, (preview.reconstructions, preview.samples), "Bundled run · ",
                 revision="bundled")


def notices(job: TrainingJob, snap: JobSnapshot) -> None:
    if snap.diverged:
        st.warning(snap.message.replace("lower the learning rate, then resume",
                                        "lower the learning rate under *More*, then press **Resume**"),
                   icon=":material/warning:")
    elif snap.status == JobStatus.FAILED:
        st.error(snap.message)
    if job.dataset.notice:  # offline: the download failed and the bundled digits stand in
        st.warning(job.dataset.notice, icon=":material/wifi_off:")
        if job.dataset.notice_details:
            with st.expander("Why?"):
                st.write(job.dataset.notice_details)


def progress_row(train: dict[str, np.ndarray], held_out: tuple[EpochMetrics, ...], reference,
                 pictures: tuple[np.ndarray, np.ndarray] | None, whose: str, *, revision: str,
                 posterior: str = "gaussian") -> None:
    """Both curves and the pictures side by side, so all of it is on one 1280x720 screen. Drag to zoom,
    double-click to reset; refreshes keep the zoom until the run on screen changes (`revision` names it: a new
    run's empty charts had kept the bundled run's axes). `whose` says whose run it is."""
    # Presentation mode's larger text needs the width: the pictures go under the curves.
    steps, epochs, images = st.columns(2) + [None] if presenting() else st.columns([1.05, 1, 0.95])
    # Both charts are drawn from the first moment, empty if need be: a chart that appeared only after the first
    # steps (or epoch) pushed the page around and reloaded its frame right after Start.
    steps.markdown(f"**{whose}Training minibatches, per SGD step**")
    with steps:
        chart(with_note(training_curves_figure(train, height=chart_height()),
                        "" if len(train["step"]) else "The first steps appear in a moment."), "train:step_chart",
              revision)
    epochs.markdown(f"**{whose}Held-out data, per epoch**" + (" (dotted: the published run)" if reference else ""))
    with epochs:
        chart(with_note(held_out_figure(held_out, reference, height=chart_height()),
                        "" if held_out else "The first point appears at the end of the first epoch."),
              "train:epoch_chart", revision)
    if pictures is not None:
        with images or st.container():
            show_pictures(*pictures, posterior)


def chart_height() -> int:
    return CHART_HEIGHT - 30 if presenting() else CHART_HEIGHT  # larger text, the same screen


def chart(figure, chart_key: str, revision: str) -> None:
    figure.update_layout(uirevision=revision)
    if presenting():
        for_projector(figure)
    live_plotly_chart(figure, key=chart_key, height=figure.layout.height)


def show_pictures(reconstructions: np.ndarray, samples: np.ndarray, posterior: str) -> None:
    left, right = st.columns(2) if presenting() else (st.container(), st.container())
    reconstructions_caption, samples_caption = picture_captions(posterior)
    with left:
        show_images(reconstructions, 10, reconstructions_caption, tile=PICTURE_TILE)
    with right:
        show_images(samples, 10, samples_caption, tile=PICTURE_TILE)


def download_row(job: TrainingJob | None, snap: JobSnapshot | None) -> None:
    """What to take home of the run on screen (the live one, or the bundled one before anything trains): its
    checkpoint, its metrics as CSV and a standalone PyTorch script that trains it again. The run's files are
    offered once it has paused, stopped or finished (see `run_files`)."""
    if presenting():
        return
    files = run_files(job, snap) if job and snap else None
    with st.container(horizontal=True):
        download_checkpoint(job, files)
        download_metrics(job, files)
        download_script(job.config if job else bundled_preview(BUNDLED_RUN).config)


def run_files(job: TrainingJob, snap: JobSnapshot) -> tuple[bytes, str] | None:
    """The run's checkpoint and metrics CSV, made once per step it rests at; None while it trains.

    Made before the click, not on it: Streamlit stores a file made on click (a deferred download) without a
    reference, so the page's next two refreshes (several a second) delete it, and a browser that has not fetched
    it by then, on a slow link, says the download was canceled. Making them as a run trains would cost a tenth of
    a second per tab every refresh, so a training run offers them after Pause."""
    if snap.is_training:
        return None
    moment = (id(job), snap.step, len(snap.held_out))
    made = st.session_state.get(key("files"))
    if made is None or made[0] != moment:
        made = (moment, job.checkpoint() or b"", metrics_csv(snap))
        st.session_state[key("files")] = made
    return made[1], made[2]


def download_checkpoint(job: TrainingJob | None, files: tuple[bytes, str] | None) -> None:
    if job is None:
        data, name, about = bundled_checkpoint(BUNDLED_RUN), f"{BUNDLED_RUN}-bundled.safetensors", None
    else:
        data, name = (files[0] if files else b""), "vae.safetensors"
        about = None if files else WAIT_FOR_FILES
    st.download_button("Download checkpoint (.safetensors)", data=data, file_name=name,
                       mime="application/octet-stream", icon=":material/download:", on_click="ignore",
                       disabled=job is not None and files is None, help=about)


@st.cache_data(max_entries=1, show_spinner=False)
def bundled_checkpoint(name: str) -> bytes:
    return pretrained_path(name).read_bytes()


def download_metrics(job: TrainingJob | None, files: tuple[bytes, str] | None) -> None:
    """Every step so far (the bundled run has no such file)."""
    if job is None:
        about = "The metrics of your own run, once you press Start."
    else:
        about = ("Every SGD step and every epoch's held-out ELBO terms in one table: its column kind says which."
                 if files else WAIT_FOR_FILES)
    st.download_button("Metrics (.csv)", data=files[1] if files else "",
                       file_name="vae-metrics.csv", mime="text/csv", icon=":material/table_view:",
                       on_click="ignore", disabled=files is None, help=about)


def download_script(config: TrainConfig) -> None:
    """Disabled, with the reason, for a run the script cannot write (another posterior family, your own file)."""
    refusal = script_refusal(config)
    about = refusal or "This run as one PyTorch file, trained from scratch: it prints the held-out ELBO terms above."
    st.download_button("Standalone script (.py)", data="" if refusal else standalone_script(config),
                       file_name="train_vae.py", mime="text/x-python", icon=":material/code:", on_click="ignore",
                       disabled=bool(refusal), help=about)


with st.container(key="train_page"):  # app.py's style gives it tighter gaps: one run on one projector screen
    st.markdown("### Train a VAE")
    if not presenting():
        st.markdown(f"Press **Start**: the {coloured('elbo', 'ELBO')} climbs as the "
                    f"{coloured('reconstruction', 'reconstruction')} term E_q[log p(x|z)] rises and the "
                    f"{coloured('kl', 'KL')} term KL(q(z|x) ‖ p(z)) pays for what z carries (nats per example).",
                    unsafe_allow_html=True)
    open_link(LINK)
    settings()
    draw_refreshing(run_view)
    update_link()
