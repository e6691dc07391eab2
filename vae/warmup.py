"""Start-up work in a background thread, so the first page draws without waiting for PyTorch.

Importing torch, scipy and scikit-learn and building the first optimiser take several seconds on a small
machine, and nothing on a first screen needs them. The app starts this after its first page has run; the
first action that needs torch (Start) waits for it only if it has not finished.
"""

from __future__ import annotations

import threading

_lock = threading.Lock()
_done = threading.Event()
_thread: threading.Thread | None = None
_cuda_available: bool | None = None


def start() -> None:
    """Begin warming up, once per process; returns at once."""
    global _thread
    with _lock:
        if _thread is None:
            _thread = threading.Thread(target=_warm_up, name="reparam-lab warm-up", daemon=True)
            _thread.start()


def wait(timeout: float | None = None) -> bool:
    """Block until the warm-up has finished (starting it if needed); True when it has."""
    start()
    return _done.wait(timeout)


def is_ready() -> bool:
    return _done.is_set()


def cuda_available() -> bool | None:
    """Whether a CUDA GPU is usable; None until the warm-up has imported torch."""
    return _cuda_available


def _warm_up() -> None:
    global _cuda_available
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
