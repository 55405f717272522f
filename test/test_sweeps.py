"""data.sweeps (VoxFormer's stage-1 occupancy) and the cached inputs: which window frames feed the images and which
the sweeps, the occupancy equals the ray cast of the aggregated points, and ssc-precompute writes files the dataset
reads back as the same tensors (never overwriting without --overwrite)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ssc_core.cli.precompute import main as precompute
from ssc_core.config import load_config
from ssc_core.data.cached_inputs import lga_file, proposal_file, sweep_file
from ssc_core.data.datasets import build_dataset
from ssc_core.data.sweeps import sweep_offsets, window_offsets, window_roles
from ssc_core.data.transforms import window_to_sample
from ssc_core.errors import ConfigError, DataFormatError
from ssc_core.geometry.poses import transform_points
from ssc_core.geometry.raycast import raycast_logodds
from ssc_core.inference.predictor import Predictor
from ssc_core.losses.hassc import local_geometric_anisotropy
from ssc_core.types import Calib, Frame, FrameWindow, GridSpec

GRID = {"dims": [32, 32, 8], "voxel_size": 1.6, "origin": [0.0, -25.6, -2.0]}


def test_window_offsets_join_image_and_sweep_frames():
    data = {"history_offsets": [-12, -3], "sweeps": {"frames": 4, "source": "lidar"}}
    assert sweep_offsets(data) == [-3, -2, -1]
    assert window_offsets(data) == [-12, -3, -2, -1]
    # frames of a window at [-12, -3, -2, -1] + current: images at -12, -3 and now; sweeps at -3, -2, -1 and now
    assert window_roles(5, data) == ([0, 1, 4], [1, 2, 3, 4])
    assert window_roles(3, {"history_offsets": [-6, -3]}) == ([0, 1, 2], [])
    cached = {"history_offsets": [-12], "sweeps": {"frames": 10, "root": "/somewhere"}}
    assert window_offsets(cached) == [-12]  # cached sweeps need no frames
    with pytest.raises(DataFormatError, match="history frames"):
        window_roles(2, data)
    with pytest.raises(ConfigError, match="data.sweeps.frames"):
        sweep_offsets({"sweeps": {"frames": 0}})
    with pytest.raises(ConfigError, match="unknown data.sweeps"):
        sweep_offsets({"sweeps": {"frame": 3}})
    with pytest.raises(ConfigError, match="origin"):
        sweep_offsets({"sweeps": {"origin": "camera"}})


def _frame(index: int, points: np.ndarray) -> Frame:
    P2 = np.array([[100.0, 0, 40, 0], [0, 100.0, 20, 0], [0, 0, 1, 0]])
    Tr = np.array([[0.0, -1, 0, 0], [0, 0, -1, 0], [1, 0, 0, 0]])
    image = np.full((40, 80, 3), index * 20, dtype=np.uint8)
    return Frame(stamp_ns=index, image_left=image, calib=Calib(P2=P2, T_cam0_velo=Tr), points_velo=points,
                 index=index)


def test_sweep_occupancy_is_the_ray_cast_of_the_points_of_every_sweep_frame():
    rng = np.random.default_rng(0)
    clouds = [np.column_stack([rng.uniform(1, 50, (300, 1)), rng.uniform(-25, 25, (300, 1)),
                               rng.uniform(-1.9, 4, (300, 1)), np.ones((300, 1))]).astype(np.float32)
              for _ in range(4)]
    T_cur_hist = []
    for shift in (-6.0, -4.0, -2.0):  # the car drove 2 m forward between frames
        T = np.eye(4)
        T[0, 3] = shift
        T_cur_hist.append(T)
    frames = [_frame(i, c) for i, c in enumerate(clouds)]
    window = FrameWindow(current=frames[3], history=frames[:3], T_cur_hist=T_cur_hist)
    data = {"grid": GRID, "history_offsets": [-3], "points": {"source": "none"},
            "sweeps": {"frames": 3, "source": "lidar"}}
    sample = window_to_sample(window, data)
    assert sample["img"].shape == (2, 3, 40, 80)  # offsets -3 and now; -2, -1 only feed the sweeps
    assert sample["img"][0, 0, 0, 0] < sample["img"][1, 0, 0, 0]  # frame 0's image (darker), then the current one
    moved = [transform_points(T, c) for T, c in zip([*T_cur_hist[1:], np.eye(4)], clouds[1:])]
    expected = raycast_logodds(torch.from_numpy(np.concatenate(moved)), GridSpec.from_dict(GRID)) > 0
    assert torch.equal(sample["sweep_occupancy"], expected.to(torch.uint8))
    assert 600 < int(sample["sweep_occupancy"].sum()) <= 900  # 3 x 300 points: -2, -1 and now; -3 is images only


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory):
    """A one-frame synthetic sequence on voxformer_tiny's grid (its sweeps fall back to the frame itself)."""
    from ssc_core.data.synthetic import SyntheticOptions, generate_sequence

    root = tmp_path_factory.mktemp("synthetic")
    generate_sequence(root, sequence="00", frames=1, seed=1, options=SyntheticOptions.small(label_scans=5))
    return root


def test_precomputed_sweeps_and_lga_read_back_as_the_computed_tensors(synthetic_root, tmp_path, capsys):
    cfg = load_config("voxformer_tiny")
    computed = build_dataset(cfg["data"], None, synthetic_root, sequences=["00"])[0]
    assert computed["sweep_occupancy"].dtype == torch.uint8 and int(computed["sweep_occupancy"].sum()) > 500
    for kind in ("sweeps", "lga"):
        assert precompute([kind, "--config", "voxformer_tiny", "--data-root", str(synthetic_root), "--sequences",
                           "00", "--output", str(tmp_path / kind)]) == 0
        assert "frames_written: 1" in capsys.readouterr().out
    assert sweep_file(tmp_path / "sweeps", "00", 0).stat().st_size == 128 * 128 * 16 // 8
    assert lga_file(tmp_path / "lga", "00", 0).is_file()
    data = {**cfg["data"], "sweeps": {**cfg["data"]["sweeps"], "root": str(tmp_path / "sweeps")},
            "lga": {"root": str(tmp_path / "lga")}}
    cached = build_dataset(data, None, synthetic_root, sequences=["00"])
    assert cached.window_offsets == []  # no sweep frames are loaded
    sample = cached[0]
    assert torch.equal(sample["sweep_occupancy"], computed["sweep_occupancy"])
    assert torch.equal(sample["lga"], local_geometric_anisotropy(computed["target"]))
    # existing files are kept unless --overwrite
    sweep_file(tmp_path / "sweeps", "00", 0).write_bytes(b"\x00" * (128 * 128 * 16 // 8))
    assert precompute(["sweeps", "--config", "voxformer_tiny", "--data-root", str(synthetic_root), "--sequences",
                       "00", "--output", str(tmp_path / "sweeps")]) == 0
    assert "frames_kept: 1" in capsys.readouterr().out
    assert int(cached[0]["sweep_occupancy"].sum()) == 0
    assert precompute(["sweeps", "--config", "voxformer_tiny", "--data-root", str(synthetic_root), "--sequences",
                       "00", "--output", str(tmp_path / "sweeps"), "--overwrite"]) == 0
    assert torch.equal(cached[0]["sweep_occupancy"], computed["sweep_occupancy"])
    # a missing cache file names itself and the command that writes it
    sweep_file(tmp_path / "sweeps", "00", 0).unlink()
    with pytest.raises(DataFormatError, match="ssc-precompute sweeps"):
        cached[0]


def test_precomputed_proposals_come_from_the_checkpoints_proposal_network(synthetic_root, tmp_path, capsys):
    from ssc_core.models import build_model
    from ssc_core.training.checkpoint import save_checkpoint

    cfg = load_config("voxformer_tiny")
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    save_checkpoint(tmp_path / "vf.pt", model, cfg, build_dataset(cfg["data"], None, synthetic_root,
                                                                   sequences=["00"]).class_set,
                    GridSpec.from_dict(cfg["data"]["grid"]))
    assert precompute(["proposals", "--checkpoint", str(tmp_path / "vf.pt"), "--data-root", str(synthetic_root),
                       "--sequences", "00", "--output", str(tmp_path / "q"), "--tag", "t1"]) == 0
    out = capsys.readouterr().out
    assert "iou: " in out and "--set model.proposals=cached" in out
    data = {**cfg["data"], "proposals": {"root": str(tmp_path / "q"), "tag": "t1"}}
    sample = build_dataset(data, None, synthetic_root, sequences=["00"])[0]
    assert proposal_file(tmp_path / "q", "00", 0, "t1").is_file()
    from ssc_core.data.transforms import collate

    with torch.no_grad():
        expected = model.propose(collate([sample]))[0][0]
    assert sample["proposal"].shape == (64, 64, 8) and torch.equal(sample["proposal"].bool(), expected)
    # the original's format: one bit per voxel of the C-order (X, Y, Z) grid, most significant bit first
    raw = np.fromfile(proposal_file(tmp_path / "q", "00", 0, "t1"), dtype=np.uint8)
    assert raw.size == 64 * 64 * 8 // 8
    assert np.array_equal(np.unpackbits(raw).reshape(64, 64, 8), expected.numpy().astype(np.uint8))
    assert precompute(["proposals", "--config", "voxformer_tiny", "--data-root", str(synthetic_root),
                       "--output", str(tmp_path / "q2")]) == 2
    assert "--checkpoint" in capsys.readouterr().err


def test_predictor_asks_for_the_sweep_frames_and_their_points():
    cfg = load_config("voxformer_t", {"data": {"sweeps": {"source": "lidar"}}})
    predictor = Predictor(torch.nn.Identity(), cfg)
    assert predictor.history_offsets == [-12, -9, -8, -7, -6, -5, -4, -3, -2, -1]
    assert predictor.needs_points and not predictor.needs_right_image
    stereo = Predictor(torch.nn.Identity(), load_config("voxformer_t"))
    assert stereo.needs_right_image and not stereo.needs_points
