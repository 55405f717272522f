"""Prefetcher: runs an iterator on a background thread and keeps its next items ready (ROS-agnostic).

The replay node reads and decodes a frame (PNGs, the scan, voxel labels) and builds its messages here, ahead of
its timer, so that a tick only publishes. The reading releases the GIL for most of its time (file reads, PNG
decoding, numpy), so on a machine with a spare core it overlaps with publishing; on one core it still keeps a
slow frame (one with ground truth) from delaying the tick that publishes it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import Any

from ssc_ros.pipeline.background import BackgroundLoop

NOT_READY = object()  # get(): the next item is still being produced
DONE = object()  # get(): the iterator is exhausted


class Prefetcher(BackgroundLoop):
    """Items of ``iterable`` produced on a daemon thread, at most ``depth`` ahead of ``get``. An exception
    raised by the iterator ends it and is raised again by the ``get`` that reaches it."""

    def __init__(self, iterable: Iterable[Any], depth: int = 3, name: str = "prefetch") -> None:
        super().__init__(name)
        self._iterator = iter(iterable)
        self._depth = max(1, int(depth))
        self._ready: deque[Any] = deque()
        self._finished = False
        self._error: BaseException | None = None

    def wait(self, timeout: float = 10.0) -> bool:
        """Block until the next item is ready or the iterator has ended (tests); returns whether it happened."""
        with self._cond:
            return self._cond.wait_for(lambda: self._ready or self._finished, timeout)

    def get(self) -> Any:
        """The next item, NOT_READY when it is still being produced, or DONE after the last one (never blocks)."""
        with self._cond:
            if self._ready:
                item = self._ready.popleft()
                self._cond.notify_all()
                return item
            if self._error is not None:
                error, self._error = self._error, None
                raise error
            return DONE if self._finished else NOT_READY

    def _run(self) -> None:
        while True:
            with self._cond:
                while len(self._ready) >= self._depth and not self._stop:
                    self._cond.wait()
                if self._stop:
                    return
            try:
                item = next(self._iterator)
            except StopIteration:
                item = DONE
            except Exception as exc:  # noqa: BLE001 - handed to the consumer, which decides
                with self._cond:
                    self._error, self._finished = exc, True
                    self._cond.notify_all()
                return
            with self._cond:
                self._finished = item is DONE
                if not self._finished:
                    self._ready.append(item)
                self._cond.notify_all()
            if item is DONE:
                return
