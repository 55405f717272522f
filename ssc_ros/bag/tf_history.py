"""TF offline: the /tf and /tf_static transforms of a bag, looked up at a stamp (what tf2's buffer does live)."""

from __future__ import annotations

import bisect
from typing import Any

import numpy as np
from scipy.spatial.transform import Rotation, Slerp

from ssc_ros.messages import stamp_to_ns, transform_to_matrix


class TransformHistory:
    """The /tf and /tf_static transforms of a bag, for lookups at a stamp (what tf2's buffer does live).

    Dynamic transforms are interpolated between the two nearest stamps (linear translation, slerp rotation);
    outside their time range a lookup only succeeds within ``tolerance_ns`` of the first/last stamp.
    """

    def __init__(self, tolerance_ns: int = 10_000_000) -> None:
        self.tolerance_ns = int(tolerance_ns)
        self._static: dict[str, tuple[str, np.ndarray]] = {}  # child -> (parent, T_parent_child)
        self._dynamic: dict[str, tuple[str, list[int], list[np.ndarray]]] = {}

    def add(self, tf_message: Any, static: bool) -> None:
        """Store every TransformStamped of a tf2_msgs/TFMessage (static: from /tf_static)."""
        for t in tf_message.transforms:
            parent, child = t.header.frame_id.lstrip("/"), t.child_frame_id.lstrip("/")
            T = transform_to_matrix(t.transform, f"transform {parent} <- {child}")
            if static:
                self._static[child] = (parent, T)
                continue
            _, stamps, mats = self._dynamic.setdefault(child, (parent, [], []))
            stamp = stamp_to_ns(t.header.stamp)
            pos = bisect.bisect_left(stamps, stamp)
            if pos < len(stamps) and stamps[pos] == stamp:
                mats[pos] = T
            else:
                stamps.insert(pos, stamp)
                mats.insert(pos, T)

    @property
    def latest_dynamic_ns(self) -> int | None:
        """Newest stamp of any dynamic transform (None without any)."""
        ends = [stamps[-1] for _, stamps, _ in self._dynamic.values() if stamps]
        return max(ends) if ends else None

    def _parent_at(self, child: str, stamp_ns: int) -> tuple[str, np.ndarray] | None:
        if child in self._static:
            return self._static[child]
        if child not in self._dynamic:
            return None
        parent, stamps, mats = self._dynamic[child]
        pos = bisect.bisect_left(stamps, stamp_ns)
        if pos < len(stamps) and stamps[pos] == stamp_ns:
            return parent, mats[pos]
        if pos == 0 or pos == len(stamps):
            near = 0 if pos == 0 else len(stamps) - 1
            return (parent, mats[near]) if abs(stamps[near] - stamp_ns) <= self.tolerance_ns else None
        t0, t1 = stamps[pos - 1], stamps[pos]
        a = (stamp_ns - t0) / (t1 - t0)
        T = np.eye(4)
        rotations = Rotation.from_matrix(np.stack([mats[pos - 1][:3, :3], mats[pos][:3, :3]]))
        T[:3, :3] = Slerp([0.0, 1.0], rotations)(a).as_matrix()
        T[:3, 3] = (1 - a) * mats[pos - 1][:3, 3] + a * mats[pos][:3, 3]
        return parent, T

    def _to_root(self, frame: str, stamp_ns: int) -> dict[str, np.ndarray]:
        """{ancestor: T_ancestor_frame} for the frame itself and every ancestor reachable at the stamp."""
        chain = {frame: np.eye(4)}
        T, current = np.eye(4), frame
        while len(chain) < 64:
            link = self._parent_at(current, stamp_ns)
            if link is None or link[0] in chain:
                break
            current, T = link[0], link[1] @ T
            chain[current] = T
        return chain

    def lookup(self, target: str, source: str, stamp_ns: int) -> np.ndarray | None:
        """(4, 4) T_target_source at ``stamp_ns`` (maps source coordinates into target), or None when the
        frames are not connected at that time."""
        target, source = target.lstrip("/"), source.lstrip("/")
        up_source = self._to_root(source, stamp_ns)
        up_target = self._to_root(target, stamp_ns)
        common = next((f for f in up_source if f in up_target), None)
        if common is None:
            return None
        return np.linalg.inv(up_target[common]) @ up_source[common]
