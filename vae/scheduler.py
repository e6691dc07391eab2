"""How many trainings run at once in this process, who waits for a slot, and whose runs end when they leave.

A server shared by a class has a few cores (or GPUs) and many students. `TrainingSlots` lets at most `capacity`
trainings run and keeps the others in a queue, in the order they asked, so a run waits visibly ("number 3 in
the queue") and starts by itself when a slot frees; nobody is refused. A ticket may ask for several slots at
once (the Estimators page races two runs, which must start together). `OwnerWatch` ends the runs of an owner (a
browser session) that has been gone for longer than a grace time, so no training outlives its tab. Neither knows
about Streamlit: the UI passes in how to tell whether an owner is still there. `PagePriority` holds trainings
back between steps while a part of a page that a person moved is redrawn, so a slider stays quick while the
class's runs train.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

CAPACITY_ENV = "REPARAM_LAB_MAX_TRAININGS"
_LOG = logging.getLogger(__name__)


class CapacityError(RuntimeError):
    """A request for more slots than the server has at all (it would wait forever)."""


def default_capacity() -> int:
    """$REPARAM_LAB_MAX_TRAININGS, else four runs per GPU, else one per core (at least three: the Estimators
    page races three runs for a categorical z, and they start together).
    A CPU run uses one core's worth of threads; a small VAE leaves a GPU mostly idle, so several share one."""
    configured = os.environ.get(CAPACITY_ENV, "").strip()
    if configured:
        try:
            return max(1, int(configured))
        except ValueError:
            raise CapacityError(f"{CAPACITY_ENV} must be a whole number of trainings, not {configured!r}.") from None
    import torch  # only a training asks, and it has torch loaded already

    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    return 4 * gpus if gpus else max(3, os.cpu_count() or 1)


class Ticket:
    """One request for `size` slots, for the runs that must start together. Granted as a whole, in queue order;
    a run that withdraws while waiting makes the request one smaller."""

    def __init__(self, size: int) -> None:
        self.size, self.granted = size, False


class TrainingSlots:
    """At most `capacity` trainings at once; the rest wait first come, first served. All methods are thread-safe:
    the training threads wait here, the UI's threads enqueue and withdraw."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._changed = threading.Condition()
        self._queue: list[Ticket] = []
        self._running = 0

    def enqueue(self, size: int = 1) -> Ticket:
        """A place in the queue for `size` runs that start together (granted at once when slots are free)."""
        if size > self.capacity:
            raise CapacityError(f"This server trains at most {self.capacity} runs at once, so {size} cannot start "
                                "together.")
        with self._changed:
            ticket = Ticket(size)
            self._queue.append(ticket)
            self._grant()
            return ticket

    def wait(self, ticket: Ticket, on_position: Callable[[int], None], leaving: Callable[[], bool]) -> bool:
        """Block until the ticket is granted (True), or until `leaving()` turns true: then this run withdraws
        from the ticket (False). `on_position(n)` hears the ticket's place in the queue (1 = next) as it changes.
        Call `wake()` after making `leaving()` true, so the waiting thread sees it at once."""
        shown = None
        with self._changed:
            while not ticket.granted:
                if leaving():
                    self._withdraw(ticket)  # under the same lock as the check: never granted and then leaked
                    return False
                position = self._queue.index(ticket) + 1
                if position != shown:
                    on_position(shown := position)
                self._changed.wait(timeout=1.0)  # woken by every change; the timeout only guards `leaving`
            return True

    def _withdraw(self, ticket: Ticket) -> None:
        ticket.size -= 1
        if ticket.size == 0:
            self._queue.remove(ticket)
        self._grant()

    def release(self) -> None:
        """A granted run has ended: its slot goes to the queue."""
        with self._changed:
            self._running -= 1
            self._grant()

    def wake(self) -> None:
        """Let waiting threads re-check `leaving()` now."""
        with self._changed:
            self._changed.notify_all()

    @property
    def running(self) -> int:
        with self._changed:
            return self._running

    @property
    def waiting(self) -> int:
        """Runs in the queue."""
        with self._changed:
            return sum(ticket.size for ticket in self._queue)

    def _grant(self) -> None:
        """Grant tickets from the front while they fit (the head waits for room: no one is overtaken)."""
        while self._queue and self._running + self._queue[0].size <= self.capacity:
            ticket = self._queue.pop(0)
            ticket.granted, self._running = True, self._running + ticket.size
        self._changed.notify_all()


class OwnerWatch:
    """A daemon thread that ends the runs of owners gone for more than `grace_s` seconds (a closed or reloaded
    tab, a dropped connection that did not come back). An owner that is back within the grace keeps its runs."""

    def __init__(self, owners: Callable[[], Iterable[str]], is_present: Callable[[str], bool],
                 on_gone: Callable[[str], None], grace_s: float = 300.0, poll_s: float = 2.0) -> None:
        self.owners, self.is_present, self.on_gone = owners, is_present, on_gone
        self.grace_s, self.poll_s = grace_s, poll_s
        self._absent_since: dict[str, float] = {}
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="vae-owner-watch", daemon=True)

    def start(self) -> OwnerWatch:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join(timeout=5)

    def check(self, now: float | None = None) -> list[str]:
        """One round: the owners whose runs were ended now."""
        now = time.monotonic() if now is None else now
        owners = set(self.owners())
        for owner in set(self._absent_since) - owners:  # no runs left: nothing to watch
            del self._absent_since[owner]
        ended = []
        for owner in owners:
            if self.is_present(owner):
                self._absent_since.pop(owner, None)
            elif now - self._absent_since.setdefault(owner, now) >= self.grace_s:
                self.on_gone(owner)
                del self._absent_since[owner]
                ended.append(owner)
        return ended

    def _watch(self) -> None:
        while not self._stopped.wait(self.poll_s):
            try:
                self.check()
            except Exception:  # noqa: BLE001 - the watch must outlive one bad round
                _LOG.exception("Checking which sessions are still connected failed; trying again.")


class PagePriority:
    """Trainings give way to a person's move. While a part of a page that someone moved reruns (and `linger_s`
    after it, while the server sends what it drew), training threads wait between steps: a slider's picture then
    never shares the CPU, or Python's one interpreter lock, with the class's runs. A busy spell holds them back at
    most `max_hold_s`, so a long computation on a page slows training but never stops it."""

    def __init__(self, linger_s: float = 0.03, max_hold_s: float = 0.3) -> None:
        self.linger_s, self.max_hold_s = linger_s, max_hold_s
        self._changed = threading.Condition()
        self._serving = 0
        self._busy_until = 0.0  # while serving, or lingering after
        self._busy_since = 0.0

    def _busy(self, now: float) -> bool:
        return self._serving > 0 or now < self._busy_until

    def busy(self) -> bool:
        """Whether trainings are being held back now (a page is served, or just was)."""
        return self._busy(time.monotonic())

    @contextmanager
    def serving(self) -> Iterator[None]:
        """`with priority.serving():` around a rerun a person's move started (pages/_session.fragment)."""
        with self._changed:
            now = time.monotonic()
            if not self._busy(now):
                self._busy_since = now
            self._serving += 1
        try:
            yield
        finally:
            with self._changed:
                self._serving -= 1
                self._busy_until = time.monotonic() + self.linger_s
                self._changed.notify_all()  # a waiting training now waits only for the linger

    def give_way(self) -> float:
        """Called by a training thread between steps: returns at once when no page is being served (no lock taken),
        else once the pages are done or the spell has held training `max_hold_s`. Returns the seconds waited."""
        now = time.monotonic()
        if not self._busy(now):
            return 0.0
        start = now
        with self._changed:
            while self._busy(now) and now < self._busy_since + self.max_hold_s:
                wake = self._busy_since + self.max_hold_s
                if not self._serving:
                    wake = min(wake, self._busy_until)
                self._changed.wait(max(0.0, wake - now))
                now = time.monotonic()
        return now - start


PAGES_FIRST = PagePriority()  # the process's one: pages wrap reruns a person's move started in `PAGES_FIRST.serving()`
