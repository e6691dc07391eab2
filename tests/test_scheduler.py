"""Training slots and the owner watch: the queue's order and counts, and runs that end when their owner leaves."""

import threading

import pytest

from vae.scheduler import CAPACITY_ENV, CapacityError, OwnerWatch, PagePriority, TrainingSlots, default_capacity


def waiter(slots: TrainingSlots, ticket, leaving=lambda: False):
    """A thread waiting for `ticket`; its result and the positions it heard."""
    heard, result = [], {}
    thread = threading.Thread(target=lambda: result.setdefault("granted", slots.wait(ticket, heard.append, leaving)))
    thread.start()
    return thread, heard, result


def test_tickets_are_granted_in_order_and_never_beyond_the_capacity():
    slots = TrainingSlots(2)
    first, second, third = slots.enqueue(), slots.enqueue(), slots.enqueue()
    assert first.granted and second.granted and not third.granted
    assert slots.running == 2 and slots.waiting == 1
    thread, heard, result = waiter(slots, third)
    slots.release()
    thread.join(timeout=5)
    assert result == {"granted": True} and heard == [1] and slots.running == 2 and slots.waiting == 0


def test_a_group_waits_at_the_head_and_nobody_overtakes_it():
    slots = TrainingSlots(2)
    slots.enqueue()
    pair, single = slots.enqueue(2), slots.enqueue(1)
    assert not pair.granted and not single.granted  # one slot free, but the pair is first and needs two
    slots.release()
    assert pair.granted and not single.granted and slots.running == 2


def test_leaving_the_queue_withdraws_one_run_and_lets_the_next_in():
    slots = TrainingSlots(1)
    slots.enqueue()
    leaver, single = slots.enqueue(), slots.enqueue()
    leave = threading.Event()
    thread, heard, result = waiter(slots, leaver, leave.is_set)
    leave.set()
    slots.wake()
    thread.join(timeout=5)
    assert result == {"granted": False} and slots.waiting == 1
    slots.release()
    assert single.granted and slots.running == 1


def test_more_runs_than_the_server_can_train_together_are_refused_with_a_sentence():
    with pytest.raises(CapacityError, match="at most 2 runs at once, so 3 cannot start together"):
        TrainingSlots(2).enqueue(3)


def test_the_capacity_comes_from_the_environment_or_the_machine(monkeypatch):
    monkeypatch.setenv(CAPACITY_ENV, "7")
    assert default_capacity() == 7
    monkeypatch.setenv(CAPACITY_ENV, "many")
    with pytest.raises(CapacityError, match="whole number"):
        default_capacity()
    monkeypatch.delenv(CAPACITY_ENV)
    assert default_capacity() >= 3  # the categorical race's three runs start together


def test_an_owner_gone_past_the_grace_loses_its_runs_and_one_back_in_time_keeps_them():
    present, ended = {"a": True, "b": True}, []
    watch = OwnerWatch(lambda: {"a", "b"}, present.get, ended.append, grace_s=10)
    present["a"] = present["b"] = False
    assert watch.check(now=0) == []
    present["b"] = True  # b reconnects within the grace
    assert watch.check(now=9) == []
    present["b"] = False
    assert watch.check(now=10) == ["a"] and ended == ["a"]
    assert watch.check(now=19) == []  # b's absence started again at 10
    assert watch.check(now=20) == ["b"]


def giving_way(priority: PagePriority):
    """A training thread's give_way() in the background; `result["waited"]` once it returns."""
    result = {}
    thread = threading.Thread(target=lambda: result.setdefault("waited", priority.give_way()))
    thread.start()
    return thread, result


def test_a_training_goes_on_at_once_when_no_page_is_served():
    assert PagePriority().give_way() == 0.0


def test_a_training_waits_while_a_page_is_served_and_for_the_linger_after():
    priority = PagePriority(linger_s=0.05, max_hold_s=60)
    with priority.serving():
        thread, result = giving_way(priority)
        thread.join(timeout=0.3)
        assert thread.is_alive() and "waited" not in result  # held back, far from the 60 s bound
    thread.join(timeout=10)
    assert not thread.is_alive() and result["waited"] >= 0.05  # freed after the page and its linger, not at 60 s


def test_overlapping_pages_hold_the_training_until_the_last_one_ends():
    priority = PagePriority(linger_s=0.0, max_hold_s=60)
    first, second = priority.serving(), priority.serving()
    first.__enter__()
    second.__enter__()
    thread, result = giving_way(priority)
    first.__exit__(None, None, None)
    thread.join(timeout=0.3)
    assert thread.is_alive()
    second.__exit__(None, None, None)
    thread.join(timeout=10)
    assert not thread.is_alive()


def test_a_long_page_holds_training_back_at_most_max_hold():
    priority = PagePriority(linger_s=0.0, max_hold_s=0.2)
    with priority.serving():
        thread, result = giving_way(priority)
        thread.join(timeout=10)
        assert not thread.is_alive()  # returned while the page still runs
        assert priority.give_way() == 0.0  # the spell has had its hold: training runs beside it now
