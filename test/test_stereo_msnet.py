"""Point source ``stereo_msnet`` and ``ssc-precompute-depth``: MobileStereoNet disparity -> depth -> pseudo-LiDAR,
written to and read from the original preprocessing's files."""

from __future__ import annotations

import io
import os

import numpy as np
import pytest
import torch

from ssc_core.cli.precompute_depth import main as precompute_main
from ssc_core.config import load_config
from ssc_core.data.depth_sources import depth_to_points_velo, precomputed_points, write_depth_npy
from ssc_core.data.point_sources import get_point_source, point_source_requires
from ssc_core.data.semantic_kitti import (
    SequencePaths,
    read_calib,
    read_image,
    write_calib,
    write_image,
    write_points,
    write_poses,
    write_times,
)
from ssc_core.data.stereo_msnet import (
    baseline_focal,
    disparity_to_depth_clipped,
    load_network,
    msnet_options,
    stereo_msnet_points,
)
from ssc_core.data.synthetic.options import default_calib, scale_calib
from ssc_core.errors import ConfigError, DataFormatError
from ssc_core.models.stereo.msnet import build_msnet, predict_disparity, stereo_checkpoint
from ssc_core.types import Frame

H, W, FRAMES = 32, 64, 3


def _sgn_depth2lidar(depth: np.ndarray, P2: np.ndarray, Tr: np.ndarray, max_high: float = 80.0) -> np.ndarray:
    """SGN's preprocess/utils/depth2lidar.py as its fact sheet describes it, in float64: every pixel (u, v, d)
    -> rect camera x = ((u - cu) d) / fu + P2[0,3] / -fu, y likewise, z = d -> [x y z 1] @ [R^T | -R^T t]^T;
    kept where x >= 0 and z < max_high; float32 (x, y, z, 1)."""
    rows, cols = depth.shape
    c, r = np.meshgrid(np.arange(cols), np.arange(rows))
    uvd = np.stack([c, r, depth]).reshape((3, -1)).T
    fu, fv, cu, cv = P2[0, 0], P2[1, 1], P2[0, 2], P2[1, 2]
    rect = np.zeros((len(uvd), 3))
    rect[:, 0] = ((uvd[:, 0] - cu) * uvd[:, 2]) / fu + P2[0, 3] / (-fu)
    rect[:, 1] = ((uvd[:, 1] - cv) * uvd[:, 2]) / fv + P2[1, 3] / (-fv)
    rect[:, 2] = uvd[:, 2]
    c2v = np.zeros((3, 4))
    c2v[:, :3] = Tr[:3, :3].T
    c2v[:, 3] = np.dot(-Tr[:3, :3].T, Tr[:3, 3])
    cloud = np.dot(np.hstack((rect, np.ones((len(rect), 1)))), np.transpose(c2v))
    cloud = cloud[(cloud[:, 0] >= 0) & (cloud[:, 2] < max_high)]
    return np.concatenate([cloud, np.ones((len(cloud), 1))], 1).astype(np.float32)


@pytest.fixture(scope="module")
def stereo_root(tmp_path_factory):
    """A 3-frame SemanticKITTI-layout sequence '00' with 64 x 32 textured stereo pairs and KITTI's calibration."""
    root = tmp_path_factory.mktemp("stereo")
    seq = root / "sequences" / "00"
    calib = scale_calib(default_calib(), (1226, 370), (W, H))
    write_calib(seq / "calib.txt", calib)
    write_poses(seq / "poses.txt", np.tile(np.eye(4), (FRAMES, 1, 1)))
    write_times(seq / "times.txt", 0.1 * np.arange(FRAMES))
    rng = np.random.default_rng(0)
    for f in range(FRAMES):
        wide = rng.integers(0, 256, size=(H, W + 4, 3), dtype=np.uint8)
        write_image(seq / "image_2" / f"{f:06d}.png", wide[:, 4:])
        write_image(seq / "image_3" / f"{f:06d}.png", wide[:, :-4])
    return root


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory):
    net = build_msnet("msnet3d")
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for name, t in net.state_dict().items():
            if t.dtype.is_floating_point and "running" not in name:
                t.copy_(torch.randn(t.shape, generator=gen) * 0.2)
    path = tmp_path_factory.mktemp("w") / "msnet3d.pt"
    torch.save(stereo_checkpoint(net.eval()), path)
    return path


@pytest.fixture
def weights(weights_file):
    return weights_file


def _frame(root, index: int) -> Frame:
    paths = SequencePaths.of(root, "00")
    return Frame(stamp_ns=index, image_left=read_image(paths.image(index)), calib=read_calib(paths.calib),
                 image_right=read_image(paths.image(index, 3)), index=index)


def _data_cfg(weights, **points) -> dict:
    data = load_config("data/semantic_kitti")["data"]
    data["points"] = {**data["points"], "source": "stereo_msnet", **points}
    data["points"]["msnet"] = {**data["points"]["msnet"], "weights": str(weights), "device": "cpu"}
    return data


def test_written_files_are_byte_identical_to_the_original_preprocessing(tmp_path):
    calib = default_calib()  # KITTI sequence 08: P2 has non-zero [0, 3] and [1, 3]
    rng = np.random.default_rng(1)
    disparity = rng.uniform(0.0, 90.0, size=(370, 1226)).astype(np.float32)
    disparity[:20] = 0.0  # no match: the original clips to 1e-8 and keeps the far points
    depth = disparity_to_depth_clipped(disparity, 388.1823)
    expected = io.BytesIO()
    np.save(expected, 388.1823 / disparity.clip(min=1e-8))  # prediction.py
    write_depth_npy(tmp_path / "000000.npy", depth)
    assert (tmp_path / "000000.npy").read_bytes() == expected.getvalue()
    write_points(tmp_path / "000000.bin", depth_to_points_velo(depth, calib))
    reference = _sgn_depth2lidar(np.load(tmp_path / "000000.npy"), calib.P2, calib.T_cam0_velo)
    assert len(reference) > 100_000
    assert (tmp_path / "000000.bin").read_bytes() == reference.tobytes()


def test_stereo_msnet_is_registered_and_needs_the_right_image():
    assert get_point_source("stereo_msnet") is stereo_msnet_points
    assert point_source_requires("stereo_msnet") == ("image_right",)


def test_online_points_equal_what_precompute_writes_and_precomputed_reads(stereo_root, weights, tmp_path, capsys):
    out = tmp_path / "msnet_depth"
    assert precompute_main(["--weights", str(weights), "--data-root", str(stereo_root), "--sequence", "00",
                            "--output", str(out), "--format", "both", "--device", "cpu", "--num-threads", "1",
                            "--no-progress"]) == 0
    assert "frames_written: 3" in capsys.readouterr().out
    cfg = _data_cfg(weights)
    for index in range(FRAMES):
        frame = _frame(stereo_root, index)
        online = stereo_msnet_points(frame, cfg)
        assert online.shape == (H * W, 4)  # one point per pixel: depth ahead of the car, nothing filtered
        file_bin = out / "sequences" / "00" / f"{index:06d}.bin"
        assert file_bin.read_bytes() == online.tobytes()
        disparity = predict_disparity(load_network(weights, "cpu"), frame.image_left, frame.image_right)
        expected_depth = float(0.54 * frame.calib.P2[0, 0]) / disparity.clip(min=1e-8)
        np.testing.assert_array_equal(np.load(out / "sequences" / "00" / f"{index:06d}.npy"), expected_depth)
        for fmt in ("npy", "bin"):
            read_cfg = {"points": {"source": "precomputed", "folder": str(out), "format": fmt, "sequence": "00"}}
            np.testing.assert_array_equal(precomputed_points(frame, read_cfg), online)


def test_precompute_keeps_existing_files_unless_told_and_reports_bad_input(stereo_root, weights, tmp_path, capsys):
    out = tmp_path / "depth"
    args = ["--weights", str(weights), "--data-root", str(stereo_root), "--sequence", "00", "--output", str(out),
            "--device", "cpu", "--no-progress", "--limit", "2"]
    assert precompute_main(args) == 0
    first = out / "sequences" / "00" / "000000.npy"
    os.utime(first, (1, 1))
    assert precompute_main(args) == 0
    assert "frames_written: 0" in capsys.readouterr().out and first.stat().st_mtime == 1
    assert not (out / "sequences" / "00" / "000002.npy").exists()
    assert precompute_main([*args, "--overwrite"]) == 0
    assert "frames_written: 2" in capsys.readouterr().out and first.stat().st_mtime > 1
    assert precompute_main([*args[:3], str(tmp_path / "nowhere"), *args[4:]]) == 2
    assert "sequences" in capsys.readouterr().err
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    assert precompute_main(["--weights", str(tmp_path / "bad.pt"), *args[2:]]) == 2
    assert "bad.pt" in capsys.readouterr().err


def test_depth_scale_comes_from_the_options_or_the_calibration():
    calib = default_calib()
    fx = calib.P2[0, 0]
    assert baseline_focal(calib, {"baseline_focal": 388.1823}) == 388.1823
    assert baseline_focal(calib, {"baseline_m": 0.54}) == pytest.approx(0.54 * fx)
    assert baseline_focal(calib, {}) == pytest.approx(calib.stereo_baseline * fx)
    no_p3 = type(calib)(P2=calib.P2, T_cam0_velo=calib.T_cam0_velo)
    with pytest.raises(DataFormatError, match="baseline_m"):
        baseline_focal(no_p3, {})


def test_options_are_checked_with_the_key_named(weights):
    with pytest.raises(ConfigError, match="msnet.weights"):
        msnet_options({"msnet": {}})
    with pytest.raises(ConfigError, match="unknown data.points.msnet keys"):
        msnet_options({"msnet": {"weights": "w.pt", "baselin_m": 0.5}})
    with pytest.raises(ConfigError, match="not both"):
        msnet_options({"msnet": {"weights": "w.pt", "baseline_m": 0.5, "baseline_focal": 300.0}})
    with pytest.raises(DataFormatError, match="not found"):
        stereo_msnet_points(Frame(0, np.zeros((H, W, 3), np.uint8), default_calib(),
                                  image_right=np.zeros((H, W, 3), np.uint8)),
                            {"points": {"msnet": {"weights": str(weights) + ".missing"}}})


def test_history_frames_seen_before_are_not_matched_again(stereo_root, weights_file, tmp_path):
    weights = tmp_path / "fresh.pt"  # a file of its own: other tests' frames are cached under the shared one
    weights.write_bytes(weights_file.read_bytes())
    cfg = _data_cfg(weights)
    cfg["points"]["msnet"]["cache_frames"] = 2
    net = load_network(weights, "cpu")
    calls = []
    handle = net.register_forward_hook(lambda *_: calls.append(1))
    try:
        frames = [_frame(stereo_root, i) for i in range(FRAMES)]
        first = stereo_msnet_points(frames[0], cfg)
        np.testing.assert_array_equal(stereo_msnet_points(frames[0], cfg), first)
        assert len(calls) == 1
        for frame in frames:  # frames 1 and 2 are new; 0 drops out of a cache of 2
            stereo_msnet_points(frame, cfg)
        assert len(calls) == 3
        stereo_msnet_points(frames[0], cfg)
        assert len(calls) == 4
    finally:
        handle.remove()


def test_precompute_reads_kitti360_drives_with_their_own_depth_defaults(weights, tmp_path, capsys):
    from ssc_core.data.synthetic import SyntheticOptions
    from ssc_core.data.synthetic.kitti360_writer import generate_kitti360_drive

    generate_kitti360_drive(tmp_path / "k360", 9, frames=1, options=SyntheticOptions.small(
        image_size=(64, 32), label_stride=1, label_scans=1))
    out = tmp_path / "depth360"
    assert precompute_main(["--weights", str(weights), "--dataset-kind", "kitti360", "--data-root",
                            str(tmp_path / "k360"), "--sequence", "9", "--output", str(out), "--pad-to", "32", "64",
                            "--device", "cpu", "--no-progress"]) == 0
    depth = np.load(out / "sequences" / "2013_05_28_drive_0009_sync" / "000000.npy")
    assert depth.shape == (32, 64) and depth.dtype == np.float32
    assert precompute_main(["--weights", str(weights), "--dataset-kind", "kitti360", "--data-root",
                            str(tmp_path / "k360"), "--sequence", "9", "--output", str(out), "--no-progress"]) == 0
    assert "frames_kept_existing: 1" in capsys.readouterr().out
    assert load_config("data/kitti360")["data"]["points"]["msnet"] == {"weights": None, "baseline_m": 0.6,
                                                                        "pad_to": [576, 1872]}
