"""Stand-in for tf2_ros (tests only; see ../README.md): Buffer, TransformListener and the broadcasters,
connected in-process (a broadcaster hands its transforms to every listening Buffer of the process)."""

from __future__ import annotations

import threading
import types
import weakref
from typing import Any

from ssc_ros.bag.tf_history import TransformHistory
from ssc_ros.messages import make_transform_stamped, rclpy_namespace

_LOCK = threading.Lock()
_BUFFERS: weakref.WeakSet = weakref.WeakSet()  # every listening Buffer (dropped with its node)
_STATIC: dict[str, Any] = {}  # child frame -> latched static TransformStamped


class TransformException(Exception):
    """tf2_ros.TransformException."""


class LookupException(TransformException):
    """tf2_ros.LookupException."""


class Buffer:
    """Transforms by stamp (interpolated, as tf2 does) through ssc_ros.bag's TransformHistory."""

    def __init__(self, cache_time: Any = None, node: Any = None) -> None:
        self._history = TransformHistory()
        self._lock = threading.Lock()

    def set_transform(self, transform: Any, authority: str) -> None:
        with self._lock:
            self._history.add(types.SimpleNamespace(transforms=[transform]), static=False)

    def set_transform_static(self, transform: Any, authority: str) -> None:
        with self._lock:
            self._history.add(types.SimpleNamespace(transforms=[transform]), static=True)

    def can_transform(self, target_frame: str, source_frame: str, time: Any, timeout: Any = None) -> bool:
        with self._lock:
            return self._history.lookup(target_frame, source_frame, time.nanoseconds) is not None

    def lookup_transform(self, target_frame: str, source_frame: str, time: Any, timeout: Any = None) -> Any:
        """geometry_msgs/TransformStamped target <- source at ``time``; LookupException when not connected."""
        with self._lock:
            T = self._history.lookup(target_frame, source_frame, time.nanoseconds)
        if T is None:
            raise LookupException(f'"{target_frame}" and "{source_frame}" are not connected at {time.nanoseconds}')
        return make_transform_stamped(rclpy_namespace(), time.nanoseconds, target_frame, source_frame, T)


class TransformListener:
    """Registers ``buffer`` for every transform broadcast in this process (static ones sent earlier too)."""

    def __init__(self, buffer: Buffer, node: Any, *, spin_thread: bool = False, qos: Any = None,
                 static_qos: Any = None) -> None:
        with _LOCK:
            _BUFFERS.add(buffer)
            static = list(_STATIC.values())
        for transform in static:
            buffer.set_transform_static(transform, "default_authority")


def _as_list(transform: Any) -> list[Any]:
    return list(transform) if isinstance(transform, list | tuple) else [transform]


class TransformBroadcaster:
    """sendTransform(TransformStamped or a list of them) to every listening Buffer."""

    def __init__(self, node: Any, qos: Any = None) -> None:
        self.node = node

    def sendTransform(self, transform: Any) -> None:  # noqa: N802 - tf2_ros' name
        with _LOCK:
            buffers = list(_BUFFERS)
        for t in _as_list(transform):
            for buffer in buffers:
                buffer.set_transform(t, "default_authority")


class StaticTransformBroadcaster:
    """sendTransform as TransformBroadcaster, latched: listeners created later get the transforms too."""

    def __init__(self, node: Any, qos: Any = None) -> None:
        self.node = node

    def sendTransform(self, transform: Any) -> None:  # noqa: N802 - tf2_ros' name
        with _LOCK:
            for t in _as_list(transform):
                _STATIC[t.child_frame_id] = t
            buffers = list(_BUFFERS)
        for t in _as_list(transform):
            for buffer in buffers:
                buffer.set_transform_static(t, "default_authority")
