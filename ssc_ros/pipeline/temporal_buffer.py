"""TemporalBuffer: recent frames by stamp, and the history window a model asks for, by TIME offsets.

A model states its history as frame offsets (SGN-T: -12, -9, -6, -3) at its dataset's frame rate (10 Hz for
KITTI); the buffer turns them into time offsets (-1.2 s, ...) so it works at any sensor rate. For each offset
it picks the stored frame nearest to ``current.stamp + offset`` within ``tolerance`` (default half a frame
period); where none is near enough (start-up, gaps, dropped frames) it reuses the current frame, as SGN/HTCL do
at the start of a sequence. Frames are kept sorted by stamp, so out-of-order arrivals still serve as history.
"""

from __future__ import annotations

import bisect
import enum
from dataclasses import dataclass

import numpy as np

from ssc_core.errors import ConfigError
from ssc_core.types import Frame, FrameWindow


class PushResult(enum.Enum):
    """What ``TemporalBuffer.push`` did with a frame."""

    ACCEPTED = "accepted"          # newest frame so far: may be processed as a current frame
    DUPLICATE = "duplicate"        # a frame with this stamp is already stored: ignored
    OUT_OF_ORDER = "out_of_order"  # older than the newest: stored for history only, not to be processed
    RESET = "reset"                # jumped back by more than reset_after_s (replay restarted): buffer cleared


@dataclass
class WindowInfo:
    """How a window was assembled: offsets_ns asked for, the stamps used (None = current frame reused)."""

    offsets_ns: list[int]
    used_stamps_ns: list[int | None]

    @property
    def reused(self) -> int:
        """Number of history slots filled with the current frame."""
        return sum(s is None for s in self.used_stamps_ns)


class TemporalBuffer:
    """Keeps recent Frames (sorted by stamp_ns) and builds FrameWindows.

    history_offsets_s: history offsets in seconds, negative, any order (returned oldest first);
    tolerance_s: how far a stored frame may be from the wanted time (default: half the smallest spacing of the
    offsets, or 0.05 s); reset_after_s: a stamp this much older than the newest clears the buffer (replay loop);
    max_frames: hard cap on stored frames (memory bound), besides pruning by age: beyond it the stored frames are
    thinned evenly over the window's span, never cut at its old end.
    """

    def __init__(
        self, history_offsets_s: list[float], tolerance_s: float | None = None, reset_after_s: float = 3.0,
        max_frames: int = 64,
    ) -> None:
        if any(o >= 0 for o in history_offsets_s):
            raise ConfigError(f"temporal window offsets must be negative (past), got {history_offsets_s}")
        self.offsets_ns = sorted(int(round(o * 1e9)) for o in history_offsets_s)
        if tolerance_s is None:
            points = sorted({*self.offsets_ns, 0})
            gaps = np.diff(points) if len(points) > 1 else np.array([100_000_000])
            tolerance_s = float(gaps.min()) / 2e9
        if tolerance_s <= 0:
            raise ConfigError(f"temporal window tolerance must be > 0 s, got {tolerance_s}")
        self.tolerance_ns = int(round(tolerance_s * 1e9))
        self.reset_after_ns = int(round(reset_after_s * 1e9))
        self.max_frames = max(1, int(max_frames))
        self.span_ns = (-self.offsets_ns[0] if self.offsets_ns else 0) + self.tolerance_ns
        self._stamps: list[int] = []
        self._frames: list[Frame] = []

    @classmethod
    def from_frame_offsets(cls, offsets: list[int], frame_rate_hz: float, **kwargs) -> TemporalBuffer:
        """Build from the Predictor's frame offsets (e.g. [-12, -9, -6, -3]) and dataset frame rate (10 Hz)."""
        if frame_rate_hz <= 0:
            raise ConfigError(f"frame rate must be > 0 Hz, got {frame_rate_hz}")
        return cls([o / frame_rate_hz for o in offsets], **kwargs)

    def __len__(self) -> int:
        return len(self._frames)

    @property
    def newest_stamp_ns(self) -> int | None:
        """Stamp of the newest stored frame (None when empty)."""
        return self._stamps[-1] if self._stamps else None

    def clear(self) -> None:
        """Forget every frame."""
        self._stamps.clear()
        self._frames.clear()

    def push(self, frame: Frame) -> PushResult:
        """Store a frame; returns what happened (see PushResult). Prunes frames older than the window needs."""
        stamp = int(frame.stamp_ns)
        result = PushResult.ACCEPTED
        newest = self.newest_stamp_ns
        if newest is not None and stamp < newest - self.reset_after_ns:
            self.clear()
            result = PushResult.RESET
        pos = bisect.bisect_left(self._stamps, stamp)
        if pos < len(self._stamps) and self._stamps[pos] == stamp:
            return PushResult.DUPLICATE
        if pos < len(self._stamps):
            result = PushResult.OUT_OF_ORDER
        self._stamps.insert(pos, stamp)
        self._frames.insert(pos, frame)
        self._prune()
        return result

    def _prune(self) -> None:
        """Drop frames older than the window needs; beyond ``max_frames`` (a fast sensor), thin the rest evenly:
        repeatedly drop the inner frame whose neighbours are closest, so the oldest frames, which the largest
        offsets need, stay (HTCL's -1.5 s at 60 Hz would otherwise be cut off by the cap)."""
        oldest_needed = self._stamps[-1] - self.span_ns
        cut = bisect.bisect_left(self._stamps, oldest_needed)
        if cut > 0:
            del self._stamps[:cut]
            del self._frames[:cut]
        if len(self._stamps) > self.max_frames and self.max_frames < 3:
            del self._stamps[: -self.max_frames]
            del self._frames[: -self.max_frames]
        while len(self._stamps) > self.max_frames:
            gaps = [self._stamps[i + 1] - self._stamps[i - 1] for i in range(1, len(self._stamps) - 1)]
            drop = 1 + gaps.index(min(gaps))
            del self._stamps[drop]
            del self._frames[drop]

    def nearest(self, stamp_ns: int) -> Frame | None:
        """The stored frame nearest to ``stamp_ns`` within the tolerance, or None."""
        pos = bisect.bisect_left(self._stamps, stamp_ns)
        best, best_dt = None, self.tolerance_ns + 1
        for i in (pos - 1, pos):
            if 0 <= i < len(self._stamps):
                dt = abs(self._stamps[i] - stamp_ns)
                if dt < best_dt:
                    best, best_dt = self._frames[i], dt
        return best

    def window(self, current: Frame) -> tuple[FrameWindow, WindowInfo]:
        """The FrameWindow for ``current`` (history oldest first, one frame per offset; the current frame itself
        where no stored frame is near enough or a pose is missing), and how it was assembled."""
        history, used = [], []
        for offset in self.offsets_ns:
            frame = self.nearest(current.stamp_ns + offset)
            poses_ok = frame is not None and frame.T_odom_velo is not None and current.T_odom_velo is not None
            if frame is None or frame is current or frame.stamp_ns >= current.stamp_ns or not poses_ok:
                history.append(current)
                used.append(None)
            else:
                history.append(frame)
                used.append(int(frame.stamp_ns))
        return FrameWindow.from_frames(current, history), WindowInfo(list(self.offsets_ns), used)
