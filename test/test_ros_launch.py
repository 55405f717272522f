"""launch_testing: ``kitti_replay.launch.py`` on a small synthetic sequence with a freshly initialised tiny model
publishes the three ssc_node outputs (needs ROS 2 with launch_testing and a colcon-installed ssc_ros; skipped
elsewhere). Run with ``python -m pytest test/test_ros_launch.py`` (launch_testing's pytest plugin) or
``launch_test test/test_ros_launch.py``.

The checkpoint is built from the ``sgn_tiny`` config (override with SSC_LAUNCH_TEST_CONFIG, e.g. ``htcl_tiny``)
with random weights and the launch is given that config as ``model_config``: the test checks the wiring, not the
accuracy. The sequence has both colour cameras (image_2, image_3, a P3 0.54 m right of P2 as in KITTI), so a
stereo config runs on a real pair.
"""

from __future__ import annotations

import os
import tempfile
import time
import unittest
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("rclpy")
pytest.importorskip("launch_testing")
pytest.importorskip("launch_ros")
ament_index = pytest.importorskip("ament_index_python.packages")
try:
    SHARE = ament_index.get_package_share_directory("ssc_ros")
except ament_index.PackageNotFoundError:
    pytest.skip("ssc_ros is not installed in the ament index (colcon build + source install/setup.bash first)",
                allow_module_level=True)

import launch  # noqa: E402
import launch_testing.actions  # noqa: E402
import rclpy  # noqa: E402
from launch.launch_description_sources import PythonLaunchDescriptionSource  # noqa: E402
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy  # noqa: E402

from ssc_core.config import load_config  # noqa: E402
from ssc_core.data.label_maps import SEMANTIC_KITTI  # noqa: E402
from ssc_core.data.semantic_kitti import write_calib, write_image, write_points, write_poses, write_times  # noqa: E402
from ssc_core.models import build_model  # noqa: E402
from ssc_core.training.checkpoint import save_checkpoint  # noqa: E402
from ssc_core.types import Calib, GridSpec  # noqa: E402
from ssc_ros.messages import rclpy_namespace  # noqa: E402

pytestmark = pytest.mark.ros

P2 = np.array([[700.0, 0.0, 620.0, 44.0], [0.0, 700.0, 180.0, 0.2], [0.0, 0.0, 1.0, 0.003]])
P3 = np.array([[700.0, 0.0, 620.0, 44.0 - 700.0 * 0.54], [0.0, 700.0, 180.0, 0.2], [0.0, 0.0, 1.0, 0.003]])
TR = np.array([[0.0, -1.0, 0.0, 0.0], [0.0, 0.0, -1.0, -0.08], [1.0, 0.0, 0.0, -0.27]])
CONFIG = os.environ.get("SSC_LAUNCH_TEST_CONFIG", "sgn_tiny")


def _write_inputs(root: Path) -> tuple[Path, Path]:
    """A 30-frame sequence (left and right images 1242x375, a few points) and a random-weight checkpoint of
    CONFIG; returns both paths."""
    seq = root / "sequences" / "00"
    write_calib(seq / "calib.txt", Calib(P2=P2, P3=P3, T_cam0_velo=TR))
    write_poses(seq / "poses.txt", np.tile(np.eye(4), (30, 1, 1)))
    write_times(seq / "times.txt", np.arange(30) * 0.1)
    rng = np.random.default_rng(0)
    for i in range(30):
        for camera in ("image_2", "image_3"):
            write_image(seq / camera / f"{i:06d}.png", rng.integers(0, 255, (375, 1242, 3), dtype=np.uint8))
        write_points(seq / "velodyne" / f"{i:06d}.bin", rng.uniform(0, 20, (500, 4)).astype(np.float32))
    cfg = load_config(CONFIG)
    model = build_model(cfg)
    ckpt = save_checkpoint(root / "tiny.pt", model, cfg, SEMANTIC_KITTI, GridSpec.from_dict(cfg["data"]["grid"]))
    return seq, ckpt


@pytest.mark.launch_test
def generate_test_description():
    root = Path(tempfile.mkdtemp(prefix="ssc_launch_test_"))
    seq, ckpt = _write_inputs(root)
    replay = launch.actions.IncludeLaunchDescription(
        PythonLaunchDescriptionSource(os.path.join(SHARE, "launch", "kitti_replay.launch.py")),
        launch_arguments={"sequence_dir": str(seq), "checkpoint": str(ckpt), "model_config": CONFIG, "device": "cpu",
                          "rate": "0.5", "loop": "true", "rviz": "false"}.items(),
    )
    return launch.LaunchDescription([replay, launch_testing.actions.ReadyToTest()])


class TestOutputsArrive(unittest.TestCase):
    """Subscribes like RViz (transient local) and waits for every output."""

    @classmethod
    def setUpClass(cls):
        rclpy.init()
        cls.node = rclpy.create_node("ssc_launch_test_listener")

    @classmethod
    def tearDownClass(cls):
        cls.node.destroy_node()
        rclpy.shutdown()

    def test_voxels_cloud_and_grid_are_published(self):
        ns = rclpy_namespace()
        got = {"voxels": [], "voxel_cloud": [], "occupancy_grid": []}
        qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        for name, cls in (("voxels", ns.MarkerArray), ("voxel_cloud", ns.PointCloud2),
                          ("occupancy_grid", ns.OccupancyGrid)):
            self.node.create_subscription(cls, f"/ssc_node/{name}", got[name].append, qos)
        deadline = time.monotonic() + 120.0
        while time.monotonic() < deadline and not all(got.values()):
            rclpy.spin_once(self.node, timeout_sec=0.1)
        self.assertTrue(all(got.values()), {k: len(v) for k, v in got.items()})
        self.assertEqual(got["voxel_cloud"][0].header.frame_id, "velo_link")
        grid = got["occupancy_grid"][0]
        self.assertEqual(len(grid.data), grid.info.width * grid.info.height)
