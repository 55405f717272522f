"""tf2_msgs/msg/TFMessage as a plain class: built by the replay, handed to the tf2_ros stand-in in-process."""

from __future__ import annotations

from typing import Any


class TFMessage:
    """transforms: list of geometry_msgs/TransformStamped."""

    def __init__(self, transforms: list[Any] | None = None) -> None:
        self.transforms = list(transforms or [])
