"""Start-up work in a background thread, so the first page draws without waiting for PyTorch.

Importing torch, scipy and scikit-learn and building the first optimiser take several seconds on a small
machine, and nothing on a first screen needs them. The app starts this after its first page has run; the
first action that needs torch (Start) waits for it only if it has not finished.
"""

from __future__ import annotations

import threading

_lock = threading.Lock()
_hurry = threading.Event()  # set by `wait`: someone needs torch now, skip the rest of the delay
_done = threading.Event()
_thread: threading.Thread | None = None
_cuda_available: bool | None = None


def start(delay: float = 0.0) -> None:
    """Begin warming up in `delay` seconds (once per process); returns at once. The delay leaves the CPU to the
    browser while it draws the first page: the import holds Python's lock, and the server needs it to send the
    page's scripts."""
    global _thread
    with _lock:
        if _thread is None:
            _thread = threading.Thread(target=_warm_up, args=(delay,), name="reparam-lab warm-up", daemon=True)
            _thread.start()


def wait(timeout: float | None = None) -> bool:
    """Block until the warm-up has finished (starting it now if it has not started); True when it has."""
    _hurry.set()
    start()
    return _done.wait(timeout)


def is_ready() -> bool:
    return _done.is_set()


def cuda_available() -> bool | None:
    """Whether a CUDA GPU is usable; None until the warm-up has imported torch."""
    return _cuda_available


def _warm_up(delay: float) -> None:
    global _cuda_available
    _hurry.wait(delay)
    try:
        import torch

        from vae import checkpoints, families, latent  # noqa: F401  - scipy and scikit-learn come with them
        from vae.data import load_digits_dataset
        from vae.job import warm_up

        _cuda_available = torch.cuda.is_available()
        warm_up()  # the first optimiser imports slow machinery: pay for it now, not on the first click
        load_digits_dataset()
    finally:
        _done.set()  # a failure here resurfaces, with its own message, where the module is used

