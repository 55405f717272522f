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


class InputActivity:
    """When each input last arrived, to tell an input that went silent while the others still flow (a topic
    whose messages the transport drops, e.g. clouds larger than the socket receive buffer). Times in seconds of
    one monotonic clock; ``start_s``: when listening began (an input never seen is silent since then)."""

    def __init__(self, keys: list[str], start_s: float) -> None:
        self._lock = threading.Lock()
        self._last = {key: start_s for key in keys}
        self._seen: set[str] = set()

    def seen(self, key: str, now_s: float) -> None:
        """A message of input ``key`` arrived at ``now_s``."""
        with self._lock:
            self._last[key] = now_s
            self._seen.add(key)

    def silent(self, now_s: float, after_s: float) -> dict[str, float]:
        """{input: seconds since its last message} of the inputs silent for ``after_s`` or longer while another
        input arrived within ``after_s``; empty when every input flows, or when all are silent (nothing is
        being published: not this check's business)."""
        with self._lock:
            ages = {key: now_s - last for key, last in self._last.items()}
            flowing = any(age < after_s for key, age in ages.items() if key in self._seen)
        return {key: age for key, age in ages.items() if age >= after_s} if flowing else {}


# Sizes of one message per input kind at KITTI scale (bytes): a 64-beam cloud of ~120k points x 16 B, a
# 1242x375 rgb8 image. DDS over UDP needs a socket receive buffer of at least twice the largest message: a real
# Jazzy run with Cyclone DDS lost the 2.2 MB clouds for good with the default 1 MB buffer and kept them with 4 MB.
TYPICAL_INPUT_BYTES = {"points": 2_000_000, "image": 1_400_000, "image_right": 1_400_000}
RMEM_MAX_PATH = "/proc/sys/net/core/rmem_max"


def receive_buffer_warning(inputs: list[str], rmem_max_path: str = RMEM_MAX_PATH) -> str | None:
    """A warning when the system's limit on socket receive buffers (net.core.rmem_max, read from
    ``rmem_max_path``) is below twice the typical size of the largest of ``inputs``; None when it is large
    enough or cannot be read (not Linux)."""
    largest = max((TYPICAL_INPUT_BYTES.get(key, 0) for key in inputs), default=0)
    try:
        with open(rmem_max_path) as f:
            limit = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    needed = 2 * largest
    if limit >= needed:
        return None
    return (f"net.core.rmem_max is {limit / 1e6:.2f} MB, below the {needed / 1e6:.1f} MB that inputs of about "
            f"{largest / 1e6:.1f} MB need when DDS carries them over UDP (Cyclone DDS; Fast DDS between machines): "
            "large messages will be dropped. Raise it (sudo sysctl -w net.core.rmem_max=2147483647) and the DDS "
            "receive buffer: docs/ros.md, 'Large messages and DDS'")
