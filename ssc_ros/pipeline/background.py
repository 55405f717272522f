"""BackgroundLoop: a daemon thread running ``_run`` with a condition variable and a stop flag, the shape shared by
the inference worker and the replay's frame reader."""

from __future__ import annotations

import threading
from typing import TypeVar

LoopT = TypeVar("LoopT", bound="BackgroundLoop")


class BackgroundLoop:
    """Subclasses implement ``_run`` (the thread body), which waits on ``self._cond`` and returns once
    ``self._stop`` is set."""

    def __init__(self, name: str) -> None:
        self._cond = threading.Condition()
        self._stop = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def _run(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def start(self: LoopT) -> LoopT:
        """Start the thread; returns self."""
        self._thread.start()
        return self

    def stop(self, timeout: float | None = 5.0) -> None:
        """Ask the thread to finish (after the item in progress) and wait up to ``timeout`` seconds for it."""
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout)

    @property
    def running(self) -> bool:
        """Whether the thread is alive."""
        return self._thread.is_alive()
