"""Which streams a model reads live: declared by the model (L2COcc), else derived from its data section (SGN)."""

from __future__ import annotations

import pytest

from ssc_core.config import load_config
from ssc_core.errors import ConfigError
from ssc_core.models import model_inputs
from ssc_ros.pipeline.sensor_inputs import SensorInputs


@pytest.mark.parametrize("name,expected,keys", [
    ("l2cocc_l", {"points"}, ["points"]),
    ("l2cocc_c", {"image", "image_right"}, ["image", "camera_info", "image_right", "camera_info_right"]),
    ("l2cocc_d", {"image", "image_right"}, ["image", "camera_info", "image_right", "camera_info_right"]),
    ("sgn_tiny", {"image", "points"}, ["image", "camera_info", "points"]),
    ("sgn_t", {"image", "image_right"}, ["image", "camera_info", "image_right", "camera_info_right"]),
    ("voxformer_tiny", {"image", "points"}, ["image", "camera_info", "points"]),  # its sweeps read the scan
])
def test_subscriptions_follow_the_models_declared_inputs(name, expected, keys):
    cfg = load_config(name)
    assert model_inputs(cfg) == expected

    class Predictor:  # what the node reads of a Predictor built from cfg
        needs_image = "image" in expected
        needs_points = "points" in expected
        needs_right_image = "image_right" in expected

    assert SensorInputs.of(Predictor()).keys == keys


def test_a_precomputed_stereo_depth_needs_no_right_image_and_the_students_points_are_training_only():
    cfg = load_config("l2cocc_d", {"data": {"stereo_depth": {"source": "precomputed", "folder": "depth"}}})
    assert cfg["data"]["points"]["source"] == "lidar"  # loaded for the teacher during training ...
    assert model_inputs(cfg) == {"image"}  # ... but never read by the student


def test_impossible_input_sets_are_refused():
    with pytest.raises(ConfigError, match="camera or the LiDAR"):
        SensorInputs(image=False, points=False)
    with pytest.raises(ConfigError, match="right image"):
        SensorInputs(image=False, points=True, image_right=True)
