"""HTCL's data path: resize + bottom-crop preprocessing tracked in K / post_rot / post_tran, the LiDAR depth
map and the labelled in-view points (training-only targets), and their collation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ssc_core.data.datasets import SemanticKittiDataset
from ssc_core.data.lidar_targets import labelled_points, lidar_depth_map, project_to_image
from ssc_core.data.synthetic.generate import generate_sequence
from ssc_core.data.synthetic.options import SyntheticOptions, default_calib
from ssc_core.data.transforms import collate, resize_bottom_crop, window_to_sample
from ssc_core.errors import ConfigError, DataFormatError
from ssc_core.types import Frame, FrameWindow

HTCL_DATA = {"image_crop": [384, 1280], "image_preprocess": "resize_bottom_crop"}


def kitti_frame(image: np.ndarray | None = None) -> Frame:
    image = np.zeros((376, 1241, 3), np.uint8) if image is None else image
    return Frame(stamp_ns=0, image_left=image, calib=default_calib(), index=0)


def test_resize_bottom_crop_gives_htcls_384x1280_and_a_k_that_projects_into_the_new_pixels():
    image = np.zeros((376, 1241, 3), np.uint8)
    image[300:302, 800:802] = 255  # a bright 2 x 2 patch centred on raw pixel (800.5, 300.5)
    sample = window_to_sample(FrameWindow(current=kitti_frame(image)), HTCL_DATA)
    assert sample["img"].shape == (1, 3, 384, 1280)
    s = 1280 / 1241
    new_h = round(376 * s)  # 388 rows after the resize; the top 4 are cropped away
    sy = new_h / 376
    post_rot, post_tran = sample["post_rot"][0], sample["post_tran"][0]
    torch.testing.assert_close(post_rot, torch.diag(torch.tensor([s, sy, 1.0])))
    torch.testing.assert_close(post_tran, torch.tensor([0.5 * s - 0.5, 0.5 * sy - 0.5 - (new_h - 384), 0.0]))
    # the patch's centre lands where the transform says
    brightness = sample["img"][0].sum(0)
    v, u = divmod(int(brightness.argmax()), 1280)
    expected = post_rot[:2, :2] @ torch.tensor([800.5, 300.5]) + post_tran[:2]
    assert abs(u - expected[0]) <= 1 and abs(v - expected[1]) <= 1
    # K of the tensor image = A @ P2[:3, :3]; P2 is the raw one
    calib = default_calib()
    torch.testing.assert_close(sample["P2"][0], torch.from_numpy(calib.P2).float())
    point = np.array([20.0, 3.0, 0.5, 1.0])
    raw = calib.P2[:, :3] @ (calib.T_cam0_velo @ point)[:3]
    ours = sample["K"][0].double().numpy() @ (calib.T_cam0_velo @ point)[:3]
    np.testing.assert_allclose(ours[:2] / ours[2], post_rot[:2, :2].double().numpy() @ (raw[:2] / raw[2])
                               + post_tran[:2].double().numpy(), atol=1e-3)


def test_default_top_left_crop_keeps_k_and_an_identity_image_transform():
    sample = window_to_sample(FrameWindow(current=kitti_frame()), {"image_crop": [370, 1220]})
    assert torch.equal(sample["post_rot"][0], torch.eye(3)) and not sample["post_tran"].any()
    torch.testing.assert_close(sample["K"][0], torch.from_numpy(default_calib().K).float())
    with pytest.raises(ConfigError, match="image_preprocess"):
        window_to_sample(FrameWindow(current=kitti_frame()), {"image_preprocess": "center"})


def test_resize_bottom_crop_pads_a_short_image_at_the_top():
    img = torch.ones(3, 10, 20)
    out, A = resize_bottom_crop(img, (8, 10))  # resized to 5 x 10, 3 zero rows on top
    assert out.shape == (3, 8, 10) and not out[:, :3].any() and (out[:, 3:] == 1).all()
    assert A[1, 2] == pytest.approx(0.5 * 0.5 - 0.5 + 3)


def test_depth_map_keeps_the_nearest_point_per_pixel_and_labelled_points_only_those_in_view():
    calib = default_calib()
    hw = (96, 320)
    post_rot, post_tran = np.diag([320 / 1226, 320 / 1226, 1.0]), np.zeros(3)
    first = np.array([10.0, 0.0, 0.0, 1.0])
    on_ray = np.linalg.inv(calib.T_cam2_velo) @ np.append(2 * (calib.T_cam2_velo @ first)[:3], 1.0)  # behind it
    pts = np.array([first[:3], on_ray[:3], [-5.0, 0.0, 0.0], [15.0, 30.0, 0.0], [30.0, 2.0, -1.0]])
    depth = lidar_depth_map(pts, calib.P2, calib.T_cam0_velo, post_rot, post_tran, hw)
    uv, d = project_to_image(pts, calib.P2, calib.T_cam0_velo, post_rot, post_tran)
    near = tuple(np.round(uv[0, ::-1]).astype(int))
    assert depth[near] == pytest.approx(d[0], rel=1e-6)  # the 20 m point behind it lost
    assert (depth > 0).sum() == 2  # the point behind the camera and the one 30 m to the left are out of view
    labelled = labelled_points(pts, np.array([1, 2, 3, 4, 5]), calib.P2, calib.T_cam0_velo, post_rot, post_tran, hw)
    assert labelled[:, 5].tolist() == [1, 2, 5] and np.allclose(labelled[:, :3], pts[[0, 1, 4]])
    with pytest.raises(DataFormatError, match="point labels"):
        labelled_points(pts, np.array([1, 2]), calib.P2, calib.T_cam0_velo, post_rot, post_tran, hw)


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("htcl_synthetic")
    generate_sequence(root, "00", frames=11, seed=3, options=SyntheticOptions.small(label_scans=4))
    return root


def test_dataset_adds_lidar_targets_that_agree_with_the_voxel_labels(synthetic_root):
    cfg = {"grid": {"dims": [128, 128, 16], "voxel_size": 0.4}, "image_crop": [96, 320],
           "image_preprocess": "resize_bottom_crop", "history_offsets": [-10, -5], "use_right_image": True,
           "lidar_depth": True, "labelled_points": True}
    ds = SemanticKittiDataset(synthetic_root, sequences=["00"], cfg=cfg)
    sample = ds[ds.items.index(("00", 10))]
    assert sample["img"].shape == (3, 3, 96, 320) and sample["img_right"].shape == (3, 3, 96, 320)
    depth = sample["lidar_depth"]
    assert depth.shape == (96, 320) and 200 < int((depth > 0).sum()) < 96 * 320 // 2
    assert float(depth.max()) < 80.0
    points = sample["labelled_points"]
    assert points.shape[1] == 6 and len(points) > 200
    assert (points[:, 3] >= 0).all() and (points[:, 3] <= 319).all() and (points[:, 4] <= 95).all()
    # a labelled point falls in a voxel of the same class most of the time (labels aggregate many scans)
    target, grid = sample["target"], ds.grid
    idx, inside = grid.points_to_indices(points[:, :3].numpy())
    labels = points[:, 5].long().numpy()
    voxel = target.numpy()[tuple(idx[inside].T)]
    known = (labels[inside] > 0) & (voxel > 0) & (voxel < 255)
    assert known.sum() > 100 and (voxel[known] == labels[inside][known]).mean() > 0.8
    batch = collate([sample, ds[0]])
    assert batch["labelled_points"].shape[1] == 7
    assert set(batch["labelled_points"][:, 0].tolist()) == {0.0, 1.0}
    assert batch["lidar_depth"].shape == (2, 96, 320)
