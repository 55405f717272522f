"""Drop counters and a rate-limited logger: every rejected input is counted by reason and logged at most once
per period per reason (with the number suppressed), so bad input never floods the log nor goes unnoticed."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable


class DropCounter:
    """Thread-safe counts of received and dropped items by reason."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._drops: Counter[str] = Counter()
        self.received = 0

    def count_received(self) -> None:
        """One more input received."""
        with self._lock:
            self.received += 1

    def drop(self, reason: str) -> None:
        """One more input dropped for ``reason``."""
        with self._lock:
            self._drops[reason] += 1

    def __getitem__(self, reason: str) -> int:
        with self._lock:
            return self._drops[reason]

    @property
    def total(self) -> int:
        """All drops over all reasons."""
        with self._lock:
            return sum(self._drops.values())

    def as_dict(self) -> dict[str, int]:
        """Snapshot {reason: count}."""
        with self._lock:
            return dict(self._drops)


class RateLimitedLogger:
    """Calls ``log_fn(message)`` for a key at most once per ``period_s``; later calls within the period are
    counted and the next emitted line says how many were suppressed. ``clock`` returns seconds (monotonic)."""

    def __init__(self, log_fn: Callable[[str], None], period_s: float = 5.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.log_fn = log_fn
        self.period_s = period_s
        self.clock = clock
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}
        self._suppressed: Counter[str] = Counter()

    def log(self, key: str, message: str) -> bool:
        """Log ``message`` under ``key`` unless one was logged within the period; returns whether it was."""
        now = self.clock()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self.period_s:
                self._suppressed[key] += 1
                return False
            self._last[key] = now
            suppressed = self._suppressed.pop(key, 0)
        suffix = f" ({suppressed} similar messages suppressed)" if suppressed else ""
        self.log_fn(message + suffix)
        return True
