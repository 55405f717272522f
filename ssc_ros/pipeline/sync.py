"""FrameSynchronizer: approximate-time matching of several input streams, without ROS.

The live node uses message_filters' ApproximateTimeSynchronizer; this class does the same job where there is no
ROS (bag files, tests): each input key keeps a short queue sorted by stamp; when an item arrives, the newest
item of every other key within ``slop`` of it is looked for, and a complete set is emitted. Items older than an
emitted set can never match any more and are discarded (counted as ``unmatched``).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import Any

from ssc_core.errors import ConfigError
from ssc_ros.pipeline.health import DropCounter


@dataclass
class SyncedSet:
    """One matched set: stamp_ns of the reference (first) key, and {key: item}."""

    stamp_ns: int
    items: dict[str, Any]


class FrameSynchronizer:
    """keys: input names, the first is the reference whose stamp the set takes; slop_s: max stamp distance of
    every member from the reference; queue_size: items kept per key (oldest dropped as 'sync_overflow')."""

    def __init__(self, keys: list[str], slop_s: float, queue_size: int = 10, drops: DropCounter | None = None):
        if not keys or len(set(keys)) != len(keys):
            raise ConfigError(f"synchronizer keys must be non-empty and unique, got {keys}")
        if slop_s < 0 or queue_size < 1:
            raise ConfigError(f"synchronizer needs slop >= 0 and queue_size >= 1, got {slop_s}, {queue_size}")
        self.keys = list(keys)
        self.slop_ns = int(round(slop_s * 1e9))
        self.queue_size = queue_size
        self.drops = drops or DropCounter()
        self._stamps: dict[str, list[int]] = {k: [] for k in keys}
        self._items: dict[str, list[Any]] = {k: [] for k in keys}

    def add(self, key: str, stamp_ns: int, item: Any) -> SyncedSet | None:
        """Add one input; returns the completed set it made, if any."""
        if key not in self._stamps:
            raise ConfigError(f"unknown synchronizer input {key!r}; known: {self.keys}")
        stamps, items = self._stamps[key], self._items[key]
        pos = bisect.bisect_right(stamps, stamp_ns)
        stamps.insert(pos, int(stamp_ns))
        items.insert(pos, item)
        if len(stamps) > self.queue_size:
            del stamps[0], items[0]
            self.drops.drop("sync_overflow")
        return self._try_match(key, int(stamp_ns))

    def _nearest(self, key: str, stamp_ns: int) -> int | None:
        stamps = self._stamps[key]
        pos = bisect.bisect_left(stamps, stamp_ns)
        best, best_dt = None, self.slop_ns + 1
        for i in (pos - 1, pos):
            if 0 <= i < len(stamps) and abs(stamps[i] - stamp_ns) < best_dt:
                best, best_dt = i, abs(stamps[i] - stamp_ns)
        return best

    def _try_match(self, pivot_key: str, pivot_stamp: int) -> SyncedSet | None:
        chosen: dict[str, int] = {}
        for key in self.keys:
            idx = self._nearest(key, pivot_stamp)
            if idx is None:
                return None
            chosen[key] = idx
        ref_stamp = self._stamps[self.keys[0]][chosen[self.keys[0]]]
        if any(abs(self._stamps[k][i] - ref_stamp) > self.slop_ns for k, i in chosen.items()):
            return None
        out = {k: self._items[k][i] for k, i in chosen.items()}
        for key, idx in chosen.items():
            for _ in range(idx):
                self.drops.drop("unmatched")
            del self._stamps[key][: idx + 1]
            del self._items[key][: idx + 1]
        return SyncedSet(stamp_ns=ref_stamp, items=out)
