"""A checkpoint write killed at any moment (SIGKILL: no cleanup runs) leaves the file it replaces intact, and a
later save removes the temporaries such kills leave, once they are old enough to be nobody's."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import random
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from tests.hostile_checkpoints import SMALL
from vae.checkpoints import STALE_TEMPORARY_SECONDS, load_checkpoint, save_checkpoint
from vae.model import build_model

ROUNDS = 20
TIMEOUT = 60.0  # seconds for any one wait: generous, for a busy 2-core machine
SEED = 20240

# Importing torch takes seconds, so one process imports it once and forks a writer per round: a real process,
# as DataLoader's workers are, that saves in a loop until the test SIGKILLs it. The model is ~34 MB, so a kill
# often lands while the temporary is being written. Every save is of the same weights, so each complete file
# holds the same tensor bytes (the metadata's order varies: safetensors writes it from a hash map).
WRITERS = textwrap.dedent("""
    import os, sys
    import torch
    torch.set_num_threads(1)  # no thread pool in the process that forks
    from vae.checkpoints import save_checkpoint
    from vae.config import ModelConfig, TrainConfig
    from vae.model import build_model

    target = sys.argv[1]
    config = TrainConfig(model=ModelConfig(input_shape=(64, 64), hidden_sizes=(1024,), latent_dim=8))
    model = build_model(config.model, seed=0)
    save_checkpoint(target, model, config, {"run": "old"})
    print("ready", flush=True)
    for _ in sys.stdin:  # one line per round
        pid = os.fork()
        if pid == 0:
            try:
                while True:
                    save_checkpoint(target, model, config, {"run": "new"})
            finally:
                os._exit(1)
        print(pid, flush=True)
        os.waitpid(pid, 0)
        print("reaped", flush=True)
""")


class Writers:
    """The forking process, with its stdout read on a thread so every wait has a timeout. In a session of its
    own, so that `close` ends it and any writer a failed round left running."""

    def __init__(self, target: Path) -> None:
        self.process = subprocess.Popen([sys.executable, "-c", WRITERS, str(target)], start_new_session=True,
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.put(line.strip())
        self.lines.put(None)  # it ended

    def next_line(self) -> str:
        try:
            line = self.lines.get(timeout=TIMEOUT)
        except queue.Empty:
            pytest.fail(f"the writer process said nothing for {TIMEOUT} s")
        if line is None:
            pytest.fail("the writer process ended early (its traceback is in the captured stderr)")
        return line

    def start_writer(self) -> int:
        self.process.stdin.write("\n")
        self.process.stdin.flush()
        return int(self.next_line())

    def close(self) -> None:
        with contextlib.suppress(ProcessLookupError):  # already gone
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=TIMEOUT)
        self.process.stdin.close()


def wait_until(condition, what: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting until {what}")
        time.sleep(0.001)


def others(folder: Path, target: Path) -> set[Path]:
    return {path for path in folder.iterdir() if path != target}


def test_a_killed_writer_never_leaves_a_partial_checkpoint_and_the_next_save_cleans_up(tmp_path):
    folder, target = tmp_path / "runs", tmp_path / "runs" / "good.safetensors"
    folder.mkdir()
    writers = Writers(target)
    try:
        assert writers.next_line() == "ready"
        old = target.read_bytes()
        rng = random.Random(SEED)
        for _ in range(ROUNDS):
            kill_one_writer(writers, folder, target, rng.uniform(0.0, 0.15))
            assert_complete(target.read_bytes(), old)
            for leftover in others(folder, target):  # left by the kill: the pattern save_checkpoint cleans up
                assert re.fullmatch(r"\.good\.safetensors\.\w+\.tmp", leftover.name), leftover.name
                os.truncate(leftover, 0)  # its name is what matters; free the disk
    finally:
        writers.close()
    assert load_checkpoint(target).metrics["run"] in ("old", "new")

    leftovers = others(folder, target)
    assert leftovers, "no kill landed while a temporary existed"
    aged = time.time() - STALE_TEMPORARY_SECONDS - 60
    for leftover in leftovers:
        os.utime(leftover, (aged, aged))
    save_checkpoint(target, build_model(SMALL.model, seed=0), SMALL)
    assert list(folder.iterdir()) == [target]
    assert load_checkpoint(target).config == SMALL


def assert_complete(data: bytes, old: bytes) -> None:
    """The old checkpoint, or a complete new one (its header, then every weight byte for byte): never partial."""
    if data != old:
        size, old_size = (int.from_bytes(raw[:8], "little") for raw in (data, old))
        assert json.loads(data[8 : 8 + size])["__metadata__"]["metrics"] == '{"run": "new"}'
        assert data[8 + size :] == old[8 + old_size :]


def kill_one_writer(writers: Writers, folder: Path, target: Path, delay: float) -> None:
    """Start a writer, let it begin a write (a new temporary) or finish one, then SIGKILL it `delay` s later."""
    before, inode = others(folder, target), target.stat().st_ino
    pid = writers.start_writer()
    wait_until(lambda: others(folder, target) - before or target.stat().st_ino != inode, "a write began")
    time.sleep(delay)  # a seeded random moment of the write, or of the next one
    os.kill(pid, signal.SIGKILL)
    assert writers.next_line() == "reaped"
