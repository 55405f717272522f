"""KITTI-360 calibration files (``<root>/calibration/perspective.txt``, ``calib_cam_to_velo.txt``): the reader
with its SSCBench fallback, the writer, and a small synthetic drive whose LiDAR points project into its images
through ``Kitti360Dataset``."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from ssc_core.cli.make_synthetic import main as make_synthetic
from ssc_core.data.datasets import Kitti360Dataset
from ssc_core.data.kitti360 import (
    KITTI360_P_RECT_00,
    KITTI360_T_VELO_CAM0_3X4,
    Kitti360Paths,
    kitti360_calib,
    read_kitti360_calib,
    read_kitti360_cam_to_velo,
    read_kitti360_perspective,
    write_kitti360_calib,
)
from ssc_core.data.synthetic.generate import SyntheticScene
from ssc_core.data.synthetic.kitti360_writer import kitti360_options
from ssc_core.data.synthetic.options import SyntheticOptions
from ssc_core.errors import DataFormatError
from ssc_core.types import Calib

SMALL_HW = (96, 320)  # the --small preset's image size (H, W)


def _fmt(values) -> str:
    return " ".join(f"{v:.6e}" for v in np.ravel(values))


def _real_style_perspective(p_rect_00: np.ndarray) -> str:
    """A perspective.txt laid out as KITTI-360's (date line, raw-camera keys, then the rectified ones); only
    P_rect_00 holds real values (SSCBench's), the raw-camera numbers are placeholders."""
    p_rect_01 = p_rect_00.copy()
    p_rect_01[0, 3] = -0.6 * p_rect_00[0, 0]
    return "\n".join([
        "calib_time: 09-Jan-2012 13:57:47",
        "corner_dist: 9.950000e-02",
        "S_00: 1.392000e+03 5.120000e+02",
        f"K_00: {_fmt([[788.0, 0, 687.0], [0, 786.0, 317.0], [0, 0, 1]])}",
        f"D_00: {_fmt([-0.34, 0.15, 0.0018, 0.0011, -0.037])}",
        f"R_00: {_fmt(np.eye(3))}",
        "T_00: 0.000000e+00 0.000000e+00 0.000000e+00",
        "S_rect_00: 1.408000e+03 3.760000e+02",
        f"R_rect_00: {_fmt(np.eye(3))}",
        f"P_rect_00: {_fmt(p_rect_00)}",
        "S_rect_01: 1.408000e+03 3.760000e+02",
        f"R_rect_01: {_fmt(np.eye(3))}",
        f"P_rect_01: {_fmt(p_rect_01)}",
        "",
    ])


# ----------------------------------------------------------------------------------------- round trip
def test_missing_calibration_falls_back_to_sscbench(tmp_path):
    calib = read_kitti360_calib(tmp_path)
    np.testing.assert_array_equal(calib.P2, kitti360_calib().P2)
    np.testing.assert_array_equal(calib.T_cam0_velo, kitti360_calib().T_cam0_velo)


def test_real_style_files_give_the_sscbench_calibration(tmp_path):
    folder = tmp_path / "calibration"
    folder.mkdir()
    (folder / "perspective.txt").write_text(_real_style_perspective(KITTI360_P_RECT_00))
    # The real calib_cam_to_velo.txt: the 12 numbers of the 3x4 on one line, no key.
    (folder / "calib_cam_to_velo.txt").write_text(" ".join(f"{v:.10f}" for v in KITTI360_T_VELO_CAM0_3X4.ravel()))
    values = read_kitti360_perspective(folder / "perspective.txt")
    assert set(values) == {"P_rect_00", "P_rect_01", "R_rect_00", "R_rect_01", "S_rect_00", "S_rect_01"}
    np.testing.assert_array_equal(values["S_rect_00"], [1408, 376])
    calib = read_kitti360_calib(tmp_path)
    np.testing.assert_allclose(calib.P2, kitti360_calib().P2, rtol=1e-6)
    np.testing.assert_allclose(calib.T_cam0_velo, kitti360_calib().T_cam0_velo, atol=1e-9)
    assert calib.P3[0, 3] == pytest.approx(-0.6 * KITTI360_P_RECT_00[0, 0], rel=1e-6)


def test_calibration_files_round_trip(tmp_path):
    angle = 0.3
    rot = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    T = np.eye(4)
    T[:3, :3] = rot @ KITTI360_T_VELO_CAM0_3X4[:, :3].T
    T[:3, 3] = [0.1, -1.2, 0.7]
    p2 = np.array([[123.456, 0, 160.5, 0], [0, 130.25, 48.0, 0], [0, 0, 1, 0]])
    p3 = p2.copy()
    p3[0, 3] = -66.6
    calib = Calib(P2=p2, T_cam0_velo=T, P3=p3)
    folder = write_kitti360_calib(tmp_path, calib, (320, 96))
    assert folder == Kitti360Paths.of(tmp_path, 9).calibration
    assert sorted(p.name for p in folder.iterdir()) == ["calib_cam_to_velo.txt", "perspective.txt"]
    back = read_kitti360_calib(tmp_path)
    np.testing.assert_allclose(back.P2, p2, rtol=1e-9)
    np.testing.assert_allclose(back.P3, p3, rtol=1e-9)
    np.testing.assert_allclose(back.T_cam0_velo, T, atol=1e-10)
    np.testing.assert_allclose(read_kitti360_cam_to_velo(folder / "calib_cam_to_velo.txt"), np.linalg.inv(T),
                               atol=1e-10)
    np.testing.assert_array_equal(read_kitti360_perspective(folder / "perspective.txt")["S_rect_00"], [320, 96])
    # Each file falls back on its own: without perspective.txt the SSCBench intrinsics, the file's Tr.
    (folder / "perspective.txt").unlink()
    only_tr = read_kitti360_calib(tmp_path)
    np.testing.assert_array_equal(only_tr.P2, KITTI360_P_RECT_00)
    np.testing.assert_allclose(only_tr.T_cam0_velo, T, atol=1e-10)


# ------------------------------------------------------------------------------------------ malformed
P_OK = "P_rect_00: " + _fmt(KITTI360_P_RECT_00)
TR_OK = _fmt(KITTI360_T_VELO_CAM0_3X4)


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("perspective.txt", "S_rect_00: 1408 376\n", "no P_rect_00"),
        ("perspective.txt", P_OK.rsplit(" ", 1)[0] + "\n", "P_rect_00: 11 values, expected 12"),
        ("perspective.txt", P_OK.replace("5.525543e+02", "abc", 1) + "\n", "expected numbers"),
        ("perspective.txt", P_OK + "\nR_rect_00: 1 0 0 0 1 0\n", "R_rect_00: 6 values, expected 9"),
        ("perspective.txt", P_OK + "\njust some words\n", "expected 'KEY: values'"),
        ("perspective.txt", P_OK.replace("5.525543e+02", "nan", 1) + "\n", "non-finite"),
        ("calib_cam_to_velo.txt", TR_OK.rsplit(" ", 1)[0], "11 values, expected 12"),
        ("calib_cam_to_velo.txt", "image_00: " + TR_OK, "expected numbers"),
        ("calib_cam_to_velo.txt", _fmt(np.hstack([2 * np.eye(3), np.zeros((3, 1))])), "not orthonormal"),
    ],
)
def test_malformed_calibration_file_raises_naming_the_file(tmp_path, name, text, message):
    folder = tmp_path / "calibration"
    folder.mkdir()
    (folder / "perspective.txt").write_text(P_OK + "\n")
    (folder / "calib_cam_to_velo.txt").write_text(TR_OK + "\n")
    read_kitti360_calib(tmp_path)  # the well-formed pair reads
    (folder / name).write_text(text)
    with pytest.raises(DataFormatError, match=message) as info:
        read_kitti360_calib(tmp_path)
    assert str(folder / name) in str(info.value)


def test_malformed_calibration_fails_the_dataset(tmp_path):
    make_synthetic(["--output", str(tmp_path), "--layout", "kitti360", "--sequence", "9", "--frames", "1",
                    "--small", "--label-scans", "0", "--no-right-image", "--no-progress"])
    bad = tmp_path / "calibration" / "perspective.txt"
    bad.write_text("P_rect_00: 1 2 3\n")
    with pytest.raises(DataFormatError, match="perspective.txt:1: P_rect_00: 3 values") as info:
        Kitti360Dataset(tmp_path, cfg=_small_cfg(), sequences=[9])
    assert str(bad) in str(info.value)


# ------------------------------------------------------------------------------ synthetic drive, projected
def _small_cfg() -> dict:
    grid = SyntheticOptions.small().grid
    return {
        "dataset": "kitti360", "class_set": "kitti360",
        "grid": {"dims": list(grid.dims), "voxel_size": grid.voxel_size, "origin": list(grid.origin)},
        "image_crop": list(SMALL_HW), "history_offsets": [], "points": {"source": "lidar"},
    }


def _project(points_velo: np.ndarray, calib: Calib, hw: tuple[int, int]) -> tuple[np.ndarray, ...]:
    """(u, v) pixels, camera depth z and the 'inside the image, in front' mask, with K = P2[:3, :3]."""
    cam = points_velo[:, :3].astype(np.float64) @ calib.T_cam0_velo[:3, :3].T + calib.T_cam0_velo[:3, 3]
    z = cam[:, 2]
    uvw = cam @ calib.P2[:, :3].T
    with np.errstate(divide="ignore", invalid="ignore"):
        u, v = uvw[:, 0] / uvw[:, 2], uvw[:, 1] / uvw[:, 2]
    inside = (z > 1.0) & (u >= 0) & (u < hw[1]) & (v >= 0) & (v < hw[0])
    return u, v, z, inside


def test_small_synthetic_drive_projects_lidar_into_its_images(tmp_path):
    seed, frames = 3, 2
    # ssc-make-synthetic --layout kitti360 --small (320x96), labels from the scan alone to stay fast.
    assert make_synthetic(["--output", str(tmp_path), "--layout", "kitti360", "--sequence", "9", "--frames",
                           str(frames), "--seed", str(seed), "--small", "--label-scans", "0", "--no-right-image",
                           "--no-progress"]) == 0
    ds = Kitti360Dataset(tmp_path, cfg=_small_cfg(), sequences=[9])
    seq, frame_index = ds.items[0]
    frame = ds.frame(seq, frame_index)
    assert frame.image_left.shape[:2] == SMALL_HW and frame.points_velo is not None
    np.testing.assert_allclose(ds[0]["K"][0].numpy(), frame.calib.P2[:, :3], rtol=1e-5)

    # The world the images were rendered from: its calibration is the one the dataset read back.
    scene = SyntheticScene(frames, seed, kitti360_options(SyntheticOptions.small(label_scans=0)),
                           base_calib=kitti360_calib())
    np.testing.assert_allclose(frame.calib.P2, scene.calib.P2, rtol=1e-8)
    np.testing.assert_allclose(frame.calib.T_cam0_velo, scene.calib.T_cam0_velo, atol=1e-10)
    view = scene.render(frame_index, 2)
    np.testing.assert_array_equal(view.rgb, frame.image_left)

    points = frame.points_velo
    u, v, z, inside = _project(points, frame.calib, SMALL_HW)
    # In view = in front of the camera within its field of view (the true camera's angles, from the scene).
    _, _, _, in_view = _project(points, scene.calib, SMALL_HW)
    assert in_view.sum() > 500
    assert (inside & in_view).sum() >= 0.99 * in_view.sum()
    # The projected depth agrees with the depth the camera rendered at the nearest pixel (rays go through
    # integer pixel coordinates); LiDAR/camera parallax, object edges and grazing ground leave a few off.
    rows = np.clip(np.round(v[inside]).astype(int), 0, SMALL_HW[0] - 1)
    cols = np.clip(np.round(u[inside]).astype(int), 0, SMALL_HW[1] - 1)
    error = np.abs(view.depth[rows, cols] - z[inside])
    assert np.median(error / z[inside]) < 0.02
    assert (error < np.maximum(0.3, 0.05 * z[inside])).mean() > 0.85

    # Without the calibration files the SSCBench (1408x376) intrinsics are used: the points miss the image.
    shutil.rmtree(tmp_path / "calibration")
    fallback = Kitti360Dataset(tmp_path, cfg=_small_cfg(), sequences=[9]).frame(seq, frame_index)
    np.testing.assert_array_equal(fallback.calib.P2, KITTI360_P_RECT_00)
    _, _, _, inside_fallback = _project(fallback.points_velo, fallback.calib, SMALL_HW)
    assert inside_fallback.sum() < 0.1 * in_view.sum()
