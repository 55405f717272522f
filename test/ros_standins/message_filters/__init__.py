"""Stand-in for message_filters (tests only; see ../README.md): Subscriber and ApproximateTimeSynchronizer."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from typing import Any


def _stamp_ns(msg: Any) -> int:
    stamp = msg.header.stamp
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


class SimpleFilter:
    """registerCallback(cb, *args) / signalMessage(*msgs), as in message_filters."""

    def __init__(self) -> None:
        self.callbacks: list[tuple[Callable, tuple]] = []

    def registerCallback(self, cb: Callable, *args: Any) -> None:  # noqa: N802 - message_filters' name
        self.callbacks.append((cb, args))

    def signalMessage(self, *msgs: Any) -> None:  # noqa: N802 - message_filters' name
        for cb, args in self.callbacks:
            cb(*(msgs + args))


class Subscriber(SimpleFilter):
    """A real subscription of ``node`` whose messages go to the registered callbacks."""

    def __init__(self, node: Any, msg_type: type, topic: str, **kwargs: Any) -> None:
        super().__init__()
        kwargs.setdefault("qos_profile", 10)
        self.sub = node.create_subscription(msg_type, topic, self.signalMessage, **kwargs)


class ApproximateTimeSynchronizer(SimpleFilter):
    """Signals one message per input when every input holds one within ``slop`` seconds of the newest arrival;
    the matched messages and everything older are then dropped. Keeps ``queue_size`` messages per input."""

    def __init__(self, fs: list, queue_size: int, slop: float, allow_headerless: bool = False) -> None:
        super().__init__()
        self.slop_ns = int(slop * 1e9)
        self.queues: list[deque] = [deque(maxlen=max(1, queue_size)) for _ in fs]
        self.lock = threading.Lock()
        for i, f in enumerate(fs):
            f.registerCallback(self.add, i)

    def add(self, msg: Any, i: int) -> None:
        stamp = _stamp_ns(msg)
        with self.lock:
            self.queues[i].append((stamp, msg))
            picked = []
            for queue in self.queues:
                near = [(abs(s - stamp), s, m) for s, m in queue if abs(s - stamp) <= self.slop_ns]
                if not near:
                    return
                picked.append(min(near, key=lambda item: item[0]))
            for queue, (_, s, _) in zip(self.queues, picked):
                while queue and queue[0][0] <= s:
                    queue.popleft()
        self.signalMessage(*(m for _, _, m in picked))
