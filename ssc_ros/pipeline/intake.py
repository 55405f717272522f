"""IntakeQueue: synchronized input sets waiting (briefly) for their TF, then handed on in arrival order.

The sync callback only ``push``es (O(1), bounded: the oldest set is dropped as ``intake_overflow`` when full). A
timer in its own callback group calls ``pop_ready`` with a readiness test (TF available at the set's stamp):
ready sets come out in order; a set that waited longer than ``wait_s`` comes out marked not ready (the caller
drops it as missing TF); the first set still within its wait blocks the later ones, keeping the order.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ssc_ros.pipeline.health import DropCounter


@dataclass
class InputSet:
    """One synchronized set: msgs {input name: message}, stamp_ns of the image, received_ns (monotonic clock),
    age_ns: how old the set was by its stamp when it arrived (node clock; 0 when unknown)."""

    msgs: dict[str, Any]
    stamp_ns: int
    received_ns: int
    age_ns: int = 0


class IntakeQueue:
    """Bounded FIFO of InputSets. maxlen: capacity; wait_s: how long a set may wait for readiness."""

    def __init__(self, maxlen: int = 10, wait_s: float = 0.2, drops: DropCounter | None = None) -> None:
        self._queue: deque[InputSet] = deque()
        self._lock = threading.Lock()
        self.maxlen = max(1, int(maxlen))
        self.wait_ns = int(wait_s * 1e9)
        self.drops = drops or DropCounter()

    def __len__(self) -> int:
        with self._lock:
            return len(self._queue)

    def push(self, item: InputSet) -> None:
        """Append a set (O(1)); drops the oldest when full."""
        with self._lock:
            self._queue.append(item)
            overflow = len(self._queue) > self.maxlen
            if overflow:
                self._queue.popleft()
        if overflow:
            self.drops.drop("intake_overflow")

    def pop_ready(self, is_ready: Callable[[InputSet], bool], now_ns: int) -> list[tuple[InputSet, bool]]:
        """Take sets from the front: (set, True) when ready, (set, False) when its wait ran out; stops at the
        first set that is neither (it stays queued with everything behind it)."""
        out: list[tuple[InputSet, bool]] = []
        while True:
            with self._lock:
                if not self._queue:
                    return out
                item = self._queue[0]
            ready = is_ready(item)
            if not ready and now_ns - item.received_ns <= self.wait_ns:
                return out
            with self._lock:
                if self._queue and self._queue[0] is item:
                    self._queue.popleft()
            out.append((item, ready))
