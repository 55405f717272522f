"""The synthetic indoor world in the NYUv2 layout (ssc-make-synthetic --layout nyu): files, determinism, geometry."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ssc_core.cli.make_synthetic import main as make_synthetic
from ssc_core.data.nyu import (
    NYU_DIMS,
    NYUTsdfPaths,
    find_nyu_root,
    nyu_target,
    read_nyu_bin,
    read_nyu_depth,
    read_nyu_label,
    read_nyu_mapping,
    read_nyu_tsdf,
)
from ssc_core.data.semantic_kitti import read_image
from ssc_core.data.synthetic.indoor import IndoorOptions, make_indoor_frame, room_seed
from ssc_core.data.synthetic.nyu_writer import generate_nyu
from ssc_core.data.synthetic.room import WINDOW, build_room
from ssc_core.errors import ConfigError
from ssc_core.geometry.poses import invert_transform
from ssc_core.geometry.tsdf import voxel_centers_room

NOT_VISIBLE = 480 * 640
SMALL = IndoorOptions(subdivision=2)


@pytest.fixture
def nyu_root(synthetic_nyu_root) -> Path:
    """Two training rooms and one test room (seed 3, the 120 x 72 x 120 label sub-grid; conftest)."""
    return synthetic_nyu_root


@pytest.fixture(scope="module")
def frame():
    """Frame 2 of seed 3 in memory (the same room as the fixture root's 0002)."""
    return make_indoor_frame(3, 2, SMALL)


def test_every_file_is_read_by_the_nyu_readers(nyu_root):
    paths = NYUTsdfPaths(find_nyu_root(nyu_root))
    assert paths.frame_ids("train") == ["0001", "0002"] and paths.frame_ids("test") == ["0003"]
    for frame_id, split in (("0001", "train"), ("0002", "train"), ("0003", "test")):
        labels = read_nyu_label(paths.label(frame_id))
        tsdf, weight = read_nyu_tsdf(paths.tsdf(frame_id))
        tsdf_cad, weight_cad = read_nyu_tsdf(paths.tsdf(frame_id, cad=True))
        mapping = read_nyu_mapping(paths.mapping(frame_id))
        assert labels.shape == tsdf.shape == mapping.shape == NYU_DIMS
        assert set(np.unique(labels)) - set(range(12)) <= {255} and len(np.unique(labels)) >= 5
        assert -1 <= tsdf.min() and tsdf.max() <= 1 and not np.array_equal(tsdf, tsdf_cad)
        assert np.all(weight[labels == 255] == 0) and set(np.unique(weight)) <= {0.0, 1.0}
        assert 1000 < np.sum(mapping < NOT_VISIBLE) < 20000
        assert read_image(paths.rgb(frame_id, split)).shape == (480, 640, 3)
        depth = read_nyu_depth(paths.depth(frame_id, split))
        clean = read_nyu_depth(nyu_root / "NYUCAD" / split / "depth" / f"NYU{frame_id}_0000.png")
        assert depth.shape == clean.shape == (480, 640) and (clean > 0).all() and 0.0 < (depth == 0).mean() < 0.3
        origin, pose, labels_full = read_nyu_bin(nyu_root / "NYU" / f"NYU{split}" / f"NYU{frame_id}_0000.bin")
        np.testing.assert_array_equal(nyu_target(labels_full), labels)  # the .bin holds the same room
        assert np.allclose(pose[3], [0, 0, 0, 1]) and np.isfinite(origin).all()


def test_same_seed_same_bytes_and_a_shorter_run_repeats_its_rooms(nyu_root, tmp_path):
    generate_nyu(tmp_path, frames=1, seed=3, options=SMALL)
    files = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file() and "0001" in p.name)
    assert len(files) == 9
    for rel in files:
        assert (tmp_path / rel).read_bytes() == (nyu_root / rel).read_bytes(), rel


def test_rerun_prunes_its_own_frames_and_never_touches_foreign_data(tmp_path):
    (tmp_path / "mine" / "NYU" / "Label").mkdir(parents=True)
    (tmp_path / "mine" / ".ssc_synthetic").write_text("")
    (tmp_path / "mine" / "NYU" / "Label" / "0007.npz").write_bytes(b"old")
    generate_nyu(tmp_path / "mine", frames=1, seed=0, options=IndoorOptions(subdivision=1))
    assert not (tmp_path / "mine" / "NYU" / "Label" / "0007.npz").exists()
    (tmp_path / "real" / "NYU" / "Label").mkdir(parents=True)
    (tmp_path / "real" / "NYU" / "Label" / "0001.npz").write_bytes(b"real data")
    with pytest.raises(ConfigError, match="did not write"):
        generate_nyu(tmp_path / "real", frames=1, seed=0)
    assert (tmp_path / "real" / "NYU" / "Label" / "0001.npz").read_bytes() == b"real data"


def test_cli_bad_input_is_one_error_line(tmp_path, capsys):
    assert make_synthetic(["--output", str(tmp_path), "--layout", "nyu", "--frames", "0", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and err.count("\n") == 1


def test_without_test_frames_the_cli_writes_test_rooms_that_ssc_train_can_validate_on(nyu_root, tmp_path):
    assert make_synthetic(["--output", str(tmp_path), "--layout", "nyu", "--frames", "1", "--seed", "3", "--small",
                           "--no-progress"]) == 0
    paths = NYUTsdfPaths(find_nyu_root(tmp_path))
    assert paths.frame_ids("train") == ["0001"] and paths.frame_ids("test") == ["0002"]  # a quarter, at least one
    # rooms are seeded by id, whatever their split: the default changes no room's bytes
    for name in ("Label/0002.npz", "TSDF/0002.npz", "Mapping/0002.npz"):
        assert (tmp_path / "NYU" / name).read_bytes() == (nyu_root / "NYU" / name).read_bytes(), name


def test_rooms_hold_every_nyu_class():
    classes = set()
    for i in range(30):
        classes |= set(build_room(room_seed(0, i)).prims.semantic.tolist())
    assert classes == set(range(1, 12))


def test_pixels_map_to_voxels_of_their_class(frame):
    """With the perfect depth, the voxel each pixel maps to carries the class of the surface the pixel sees."""
    mapping = frame.clean.mapping.ravel()
    mapped = mapping < NOT_VISIBLE
    agree = frame.labels.ravel()[mapped] == frame.semantic.ravel()[mapping[mapped]]
    assert agree.mean() > 0.95  # measured 0.98-1.0 on seeds 0 and 3


def test_occluded_voxels_are_the_ones_no_pixel_maps_to(frame):
    """Weighted voxels without a pixel lie behind the visible surface (or outside the view); unweighted ones
    (observed free space) lie in front of it and are empty."""
    centers = voxel_centers_room(frame.grid)
    T = invert_transform(frame.T_room_cam)
    cam = centers @ T[:3, :3].T + T[:3, 3]
    z = cam[:, 2]
    safe = np.where(z > 0, z, 1.0)
    u = np.round(frame.K[0, 0] * cam[:, 0] / safe + frame.K[0, 2]).astype(int)
    v = np.round(frame.K[1, 1] * cam[:, 1] / safe + frame.K[1, 2]).astype(int)
    in_view = (z > 0) & (u >= 0) & (u < 640) & (v >= 0) & (v < 480)
    surface_depth = np.where(in_view, frame.depth_clean[np.clip(v, 0, 479), np.clip(u, 0, 639)], 0.0)
    half_diagonal = 0.08 * np.sqrt(3) / 2
    weighted = frame.clean.label_weight.ravel() > 0
    occluded = weighted & (frame.clean.mapping.ravel() == NOT_VISIBLE)
    in_front = in_view & (z < surface_depth - half_diagonal)
    assert (occluded & in_front).sum() < 0.03 * occluded.sum()  # edge voxels only (measured ~1.2 %)
    free = ~weighted
    assert not np.any(free & ~in_view) and not np.any(free & (z > surface_depth + half_diagonal))
    assert np.mean(frame.labels.ravel()[free] == 0) > 0.999


def test_noisy_depth_is_near_the_truth_with_holes_on_glass(frame):
    valid = frame.depth > 0
    assert np.median(np.abs(frame.depth - frame.depth_clean)[valid]) < 0.03
    glass = frame.semantic == WINDOW
    if glass.any():
        assert not np.any(valid & glass)
    assert frame.noisy.mapping.ravel().tolist() != frame.clean.mapping.ravel().tolist()


def test_ignore_label_only_outside_the_room(frame):
    centers = voxel_centers_room(frame.grid)
    lo, hi = frame.room.outer_bounds
    inside = np.all((centers > lo + 0.05) & (centers < hi - 0.05), axis=1)
    labels = frame.labels.ravel()
    outside = ~np.all((centers > lo - 0.05) & (centers < hi + 0.05), axis=1)
    assert not np.any(labels[inside] == 255) and np.all(labels[outside] == 255)
