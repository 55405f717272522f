"""Prefetcher: items in order from a background thread, never more than ``depth`` ahead, errors handed over."""

from __future__ import annotations

import threading
import time

import pytest

from ssc_ros.prefetch import DONE, NOT_READY, Prefetcher


def test_items_come_in_order_at_most_depth_ahead_then_done():
    produced: list[int] = []

    def numbers():
        for i in range(6):
            produced.append(i)
            yield i

    reader = Prefetcher(numbers(), depth=2).start()
    assert reader.wait()
    time.sleep(0.1)
    assert len(produced) <= 3  # two ready plus the one waiting to be queued
    got = []
    while (item := reader.get()) is not DONE:
        if item is NOT_READY:
            assert reader.wait()
            continue
        got.append(item)
    assert got == list(range(6)) and reader.get() is DONE
    reader.stop()


def test_not_ready_while_the_item_is_produced_and_an_error_is_raised_in_order():
    gate = threading.Event()

    def slow():
        yield "a"
        gate.wait(5)
        raise ValueError("corrupt file")

    reader = Prefetcher(slow(), depth=3).start()
    assert reader.wait() and reader.get() == "a"
    assert reader.get() is NOT_READY
    gate.set()
    assert reader.wait()
    with pytest.raises(ValueError, match="corrupt file"):
        reader.get()
    assert reader.get() is DONE


def test_stop_ends_an_endless_iterator():
    def endless():
        i = 0
        while True:
            i += 1
            yield i

    reader = Prefetcher(endless(), depth=1).start()
    assert reader.wait() and reader.get() == 1
    reader.stop(timeout=2.0)
    assert not reader.running
