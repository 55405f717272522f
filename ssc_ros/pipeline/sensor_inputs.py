"""SensorInputs: which input streams a model reads live, decided from the model's declared inputs (the
Predictor's ``needs_image`` / ``needs_points`` / ``needs_right_image``, from ``ssc_core.models.model_inputs``), so
that the node subscribes to, and the synchronizer waits for, exactly those.

Stream keys (``INPUT_KEYS``) in synchronizer order: ``image`` and ``camera_info`` (the left camera), ``points``
(the LiDAR cloud), ``image_right`` and ``camera_info_right``. The first key is the reference whose stamp a set
takes: the left image for camera models, the cloud for a LiDAR-only model (L2COcc-L). Camera models need the
camera <- LiDAR transform; a LiDAR-only model needs no camera at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ssc_core.errors import ConfigError

INPUT_KEYS = ("image", "camera_info", "points", "image_right", "camera_info_right")


@dataclass(frozen=True)
class SensorInputs:
    """image: the left image + its CameraInfo; points: the LiDAR cloud; image_right: the right image + its
    CameraInfo (only with image). At least one of image / points."""

    image: bool = True
    points: bool = False
    image_right: bool = False

    def __post_init__(self) -> None:
        if not (self.image or self.points):
            raise ConfigError("a model must read the camera or the LiDAR: no input stream is left to subscribe to")
        if self.image_right and not self.image:
            raise ConfigError("the right image is read only together with the left one")

    @classmethod
    def of(cls, predictor: Any) -> SensorInputs:
        """The streams of a Predictor (or anything with its ``needs_*`` properties; ``needs_image`` defaults to
        true for predictors that predate it)."""
        return cls(image=bool(getattr(predictor, "needs_image", True)), points=bool(predictor.needs_points),
                   image_right=bool(predictor.needs_right_image))

    @property
    def keys(self) -> list[str]:
        """The subscribed stream keys, in synchronizer order (the first one is the reference)."""
        wanted = {"image": self.image, "camera_info": self.image, "points": self.points,
                  "image_right": self.image_right, "camera_info_right": self.image_right}
        return [key for key in INPUT_KEYS if wanted[key]]
