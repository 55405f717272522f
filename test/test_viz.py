"""Headless renders: real images with the class colours where the voxels are, occlusion, orientation, errors."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from ssc_core.data.label_maps import SEMANTIC_KITTI
from ssc_core.errors import ConfigError, DataFormatError
from ssc_core.types import GridSpec
from ssc_core.viz import (
    View,
    render_bev,
    render_legend,
    render_occupancy_grid,
    render_voxels_3d,
    save_png,
    side_by_side,
)

CAR, ROAD, BUILDING, VEGETATION, POLE = 1, 9, 13, 15, 18
WHITE = np.array([255, 255, 255])


def colour(class_id: int) -> np.ndarray:
    return SEMANTIC_KITTI.colors_rgb[class_id].astype(np.int64)


def has_shade_of(image: np.ndarray, class_id: int, min_pixels: int = 20) -> bool:
    """True when at least ``min_pixels`` pixels are the class colour times one brightness factor (shading)."""
    ref = colour(class_id).astype(np.float64)
    pixels = image.reshape(-1, 3).astype(np.float64)
    k = pixels @ ref / (ref @ ref)  # least-squares brightness factor per pixel
    close = np.abs(pixels - k[:, None] * ref).max(axis=1) <= 3.0
    return int((close & (k > 0.3) & (k <= 1.01)).sum()) >= min_pixels


def small_street(dims=(64, 64, 8)) -> np.ndarray:
    labels = np.zeros(dims, dtype=np.uint8)
    labels[:, :, 0] = ROAD
    labels[20:30, 28:34, 1:3] = CAR
    labels[:, 50:60, 1:7] = BUILDING
    labels[40:42, 10:12, 1:8] = POLE
    return labels


def test_3d_render_is_a_nontrivial_image_with_each_class_colour():
    labels = small_street()
    image = render_voxels_3d(labels, SEMANTIC_KITTI, GridSpec(dims=labels.shape), width=320)
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[1] == 320 and image.shape[2] == 3
    assert len(np.unique(image.reshape(-1, 3), axis=0)) > 8
    assert (np.abs(image.astype(int) - WHITE).sum(-1) > 0).mean() > 0.2
    for class_id in (CAR, ROAD, BUILDING, POLE):
        assert has_shade_of(image, class_id), SEMANTIC_KITTI.names[class_id]
    assert not has_shade_of(image, VEGETATION, min_pixels=1)


def test_3d_render_hides_what_is_behind_a_wall_and_shows_it_from_above():
    labels = np.zeros((48, 48, 8), dtype=np.uint8)
    labels[4:6, :, :] = BUILDING  # a wall across the whole scene, full height, near the car
    labels[30:36, 20:26, 0:2] = CAR  # low, behind the wall
    front = render_voxels_3d(labels, SEMANTIC_KITTI, view=View(0.0, 10.0), width=240, edges=False)
    top = render_voxels_3d(labels, SEMANTIC_KITTI, view="top", width=240, edges=False)
    assert not has_shade_of(front, CAR, min_pixels=1)
    assert has_shade_of(front, BUILDING)
    assert has_shade_of(top, CAR)


def test_3d_render_skips_empty_and_ignore_voxels():
    labels = np.zeros((16, 16, 4), dtype=np.uint8)
    labels[4:8, 4:8, 0:2] = 255
    image = render_voxels_3d(labels, SEMANTIC_KITTI, width=64, background=(10, 20, 30))
    assert np.all(image == np.array([10, 20, 30], dtype=np.uint8))


def test_two_scenes_on_one_grid_render_to_the_same_frame():
    grid = GridSpec(dims=(32, 32, 8))
    a = np.zeros(grid.dims, np.uint8)
    b = np.zeros(grid.dims, np.uint8)
    a[:, :, 0] = ROAD
    b[0:2, 0:2, 0:8] = POLE
    assert (
        render_voxels_3d(a, SEMANTIC_KITTI, grid, width=200).shape
        == render_voxels_3d(b, SEMANTIC_KITTI, grid, width=200).shape
    )


def test_full_size_worst_case_scene_renders_both_classes():
    """Full 256x256x32 grid with many isolated voxels (the worst case for face culling). How long it takes is
    a benchmark (docs/viz_and_bags.md), not asserted here."""
    labels = np.zeros((256, 256, 32), dtype=np.uint8)
    labels[:, :, 7] = ROAD
    labels[:, 160:256, 8:28] = BUILDING
    rng = np.random.default_rng(0)
    labels[rng.random((256, 256, 32)) < 0.02] = VEGETATION  # many isolated voxels: worst case for faces
    image = render_voxels_3d(labels, SEMANTIC_KITTI, GridSpec(), width=800)
    assert image.shape[1] == 800
    assert has_shade_of(image, VEGETATION) and has_shade_of(image, BUILDING)


def test_bev_shows_the_top_most_class_with_forward_up_and_left_left():
    labels = np.zeros((8, 6, 4), dtype=np.uint8)
    labels[:, :, 0] = ROAD
    labels[7, 5, 2] = CAR  # far forward (max x), far left (max y)
    labels[0, 0, 3] = 255  # ignore above the road is see-through
    labels[3, 2, :] = 0  # an empty column
    bev = render_bev(labels, SEMANTIC_KITTI, scale=1, background=(1, 2, 3))
    assert bev.shape == (8, 6, 3)
    assert np.array_equal(bev[0, 0], colour(CAR))  # top-left of the picture
    assert np.array_equal(bev[7, 5], colour(ROAD))  # voxel (0, 0): bottom-right, road under the ignore voxel
    assert np.array_equal(bev[7 - 3, 5 - 2], [1, 2, 3])
    upscaled = render_bev(labels, SEMANTIC_KITTI, scale=3, background=(1, 2, 3))
    assert upscaled.shape == (24, 18, 3) and np.array_equal(upscaled[::3, ::3], bev)


def test_occupancy_grid_picture_maps_values_and_lines_up_with_the_bev():
    grid = np.full((6, 8), -1, dtype=np.int8)  # ROS layout: rows = y cells (6), columns = x cells (8)
    grid[0, 0] = 0  # x=0, y=0: bottom-right in the BEV orientation
    grid[5, 7] = 100  # x=7, y=5: top-left
    grid[2, 3] = 50
    image = render_occupancy_grid(grid, scale=1)
    assert image.shape == (8, 6, 3)
    assert np.array_equal(image[7, 5], [255, 255, 255])
    assert np.array_equal(image[0, 0], [0, 0, 0])
    assert 100 < image[7 - 3, 5 - 2, 0] < 160
    assert np.array_equal(image[1, 1], [150, 150, 150])
    assert np.array_equal(render_occupancy_grid(grid.T, scale=1, layout="xy"), image)


@pytest.mark.parametrize("bad", [np.full((4, 4), 101, np.int8), np.zeros((4, 4), np.float32), np.zeros(4, np.int8)])
def test_occupancy_grid_picture_rejects_bad_grids(bad):
    with pytest.raises(DataFormatError):
        render_occupancy_grid(bad)


def test_legend_has_a_swatch_of_every_listed_class():
    legend = render_legend([CAR, VEGETATION], SEMANTIC_KITTI)
    flat = legend.reshape(-1, 3).astype(np.int64)
    for class_id in (CAR, VEGETATION):
        assert (np.abs(flat - colour(class_id)).max(axis=1) == 0).sum() >= 25
    assert not (np.abs(flat - colour(BUILDING)).max(axis=1) == 0).any()


def test_side_by_side_has_both_scenes_titles_and_a_legend_of_their_classes():
    pred = small_street()
    gt = small_street()
    gt[5:10, 5:10, 1:4] = VEGETATION
    figure = side_by_side(pred, gt, SEMANTIC_KITTI, panel_width=240, caption="sequence 00")
    assert figure.shape[1] >= 2 * 240
    left, right = figure[:, : figure.shape[1] // 2], figure[:, figure.shape[1] // 2 :]
    assert has_shade_of(right, VEGETATION) and not has_shade_of(left[:-60], VEGETATION, min_pixels=1)
    plain = side_by_side(pred, gt, SEMANTIC_KITTI, panel_width=240)
    assert plain.shape == figure.shape  # the caption line (with the frame's scores) is there either way
    assert (figure[:20].astype(int).sum(-1) < 200).sum() > 10  # dark caption text on top


def test_side_by_side_leaves_out_of_the_prediction_what_the_ground_truth_ignores():
    from ssc_core.viz.compose import frame_scores

    gt = small_street()
    gt[:, :32] = np.where(gt[:, :32] == 0, 255, gt[:, :32])  # the left half of the free space is unknown
    pred = small_street()
    pred[5:15, 5:15, 1:4] = VEGETATION  # predicted inside the unknown part only
    figure = side_by_side(pred, gt, SEMANTIC_KITTI, panel_width=240)
    assert not has_shade_of(figure, VEGETATION, min_pixels=1)
    unmasked = side_by_side(pred, small_street(), SEMANTIC_KITTI, panel_width=240)
    assert has_shade_of(unmasked, VEGETATION)  # where the ground truth says free, the error shows
    scores = frame_scores(pred, gt, SEMANTIC_KITTI.num_classes)
    assert scores["iou"] == pytest.approx(1.0)  # the metrics ignore those voxels too
    assert frame_scores(pred, small_street(), SEMANTIC_KITTI.num_classes)["iou"] < 1.0


def test_a_grid_puts_the_ego_car_and_metric_axes_into_the_pictures():
    from ssc_core.viz.overlays import EGO_CAR, draw_car_3d, frame_top_down, velo_to_voxel_units
    from ssc_core.viz.voxels3d import view_camera

    grid = GridSpec(dims=(64, 64, 8), voxel_size=0.8)  # 51.2 m like SemanticKITTI's grid
    top = np.full((128, 128, 3), 255, np.uint8)  # 2 pixels per voxel, 2.5 per metre
    framed = frame_top_down(top, grid)
    assert framed.shape[0] > 128 + EGO_CAR.length / 2 * 2.5 and framed.shape[1] > 128
    brightness = framed.astype(int).sum(-1)
    rows, cols = np.nonzero(brightness == 0)  # the car is black, the axes grey
    grey = (brightness > 0) & (brightness < 700)
    edges = np.nonzero(grey.sum(axis=0) > 100)[0]  # the frame's sides: y = +25.6 m and -25.6 m
    assert rows.min() > 100 and abs(np.median(cols) - (edges.min() + edges.max()) / 2) <= 2  # at the back, y = 0
    assert grey.sum() > 300  # the frame, the ticks and their labels
    car = velo_to_voxel_units(EGO_CAR.corners_velo(), grid)
    assert car[:, 0].min() < 0 < car[:, 0].max()  # the LiDAR sits mid-car at the grid's back edge
    camera = view_camera(grid.dims, "iso", 200, include=car)
    blank = np.full((camera.height, camera.width, 3), 255, np.uint8)
    marked = draw_car_3d(blank, camera, grid)
    x, y = camera.pixels(velo_to_voxel_units(np.zeros((1, 3)), grid))[0].round().astype(int)
    assert marked[y, x].sum() == 0 and (marked.sum(-1) == 0).sum() > 50


def test_side_by_side_rejects_scenes_of_different_shapes():
    with pytest.raises(DataFormatError, match="shape"):
        side_by_side(np.zeros((8, 8, 4), np.uint8), np.zeros((8, 8, 2), np.uint8), SEMANTIC_KITTI)


def test_renders_reject_ids_outside_the_class_set_and_unknown_views():
    labels = np.zeros((4, 4, 4), np.uint8)
    labels[0, 0, 0] = 30
    with pytest.raises(DataFormatError, match="30"):
        render_voxels_3d(labels, SEMANTIC_KITTI)
    with pytest.raises(DataFormatError):
        render_bev(labels, SEMANTIC_KITTI)
    with pytest.raises(ConfigError, match="view"):
        render_voxels_3d(np.zeros((4, 4, 4), np.uint8), SEMANTIC_KITTI, view="diagonal")
    with pytest.raises(DataFormatError, match="grid"):
        render_voxels_3d(np.zeros((4, 4, 4), np.uint8), SEMANTIC_KITTI, GridSpec(dims=(8, 8, 8)))


def test_save_png_round_trips(tmp_path):
    image = render_bev(small_street(), SEMANTIC_KITTI)
    path = save_png(tmp_path / "sub" / "bev.png", image)
    assert np.array_equal(np.asarray(Image.open(path).convert("RGB")), image)


def _write_frame(sequence_dir, frame: int, train_labels: np.ndarray, predictions: bool = False) -> None:
    from ssc_core.data.semantic_kitti import SequencePaths, write_packed_bits, write_voxel_labels

    paths = SequencePaths.from_sequence_dir(sequence_dir)
    raw = SEMANTIC_KITTI.inverse_lut()[train_labels]
    write_voxel_labels(paths.voxel(frame, "label"), raw)
    invalid = np.zeros(train_labels.shape, np.uint8)
    invalid[0, 0, 0] = 1
    write_packed_bits(paths.voxel(frame, "invalid"), invalid)
    if predictions:
        write_voxel_labels(paths.prediction(frame), raw)


def test_viz_cli_writes_a_scene_png_and_a_comparison_png(tmp_path):
    from ssc_core.viz.__main__ import main

    seq = tmp_path / "sequences" / "00"
    labels = small_street((32, 32, 8))
    _write_frame(seq, 3, labels, predictions=True)
    common = ["--sequence-dir", str(seq), "--frame", "3", "--dims", "32", "32", "8", "--width", "200"]
    assert main([*common, "--output", str(tmp_path / "gt.png")]) == 0
    assert main([*common, "--prediction-dir", str(seq / "predictions"), "--output", str(tmp_path / "cmp.png")]) == 0
    gt_png = np.asarray(Image.open(tmp_path / "gt.png").convert("RGB"))
    cmp_png = np.asarray(Image.open(tmp_path / "cmp.png").convert("RGB"))
    assert has_shade_of(gt_png, CAR) and has_shade_of(gt_png, ROAD) and has_shade_of(cmp_png, CAR)
    assert cmp_png.shape[1] > 2 * 200 > gt_png.shape[1]
    # the folder ssc-infer wrote (<output>/sequences/00/predictions/) is accepted as it is
    assert main([*common, "--prediction-dir", str(tmp_path), "--output", str(tmp_path / "cmp2.png")]) == 0
    assert np.array_equal(np.asarray(Image.open(tmp_path / "cmp2.png").convert("RGB")), cmp_png)


def test_viz_cli_reports_a_missing_label_file_as_an_error(tmp_path, capsys):
    from ssc_core.viz.__main__ import main

    (tmp_path / "sequences" / "00").mkdir(parents=True)  # the folder exists, frame 0 has no voxels/ label
    code = main(
        ["--sequence-dir", str(tmp_path / "sequences" / "00"), "--frame", "0", "--output", str(tmp_path / "x.png")]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "000000.label" in err


def test_top_view_has_forward_up_and_left_left_like_the_bev():
    labels = np.zeros((32, 32, 4), dtype=np.uint8)
    labels[28:32, 28:32, 0] = CAR  # far forward (max x), far left (max y)
    labels[0:4, 0:4, 0] = POLE  # near (min x), right (min y)
    image = render_voxels_3d(labels, SEMANTIC_KITTI, view="top", width=128, edges=False)

    def centre(class_id):
        ref = colour(class_id).astype(np.float64)
        k = image.reshape(-1, 3).astype(np.float64) @ ref / (ref @ ref)
        hit = (np.abs(image.reshape(-1, 3) - k[:, None] * ref).max(axis=1) <= 3) & (k > 0.3)
        rows, cols = np.divmod(np.flatnonzero(hit), image.shape[1])
        return rows.mean(), cols.mean()

    car_row, car_col = centre(CAR)
    pole_row, pole_col = centre(POLE)
    assert car_row < image.shape[0] / 3 and car_col < image.shape[1] / 3  # top-left
    assert pole_row > 2 * image.shape[0] / 3 and pole_col > 2 * image.shape[1] / 3  # bottom-right


def test_rendering_in_many_chunks_gives_the_same_image_as_in_one(monkeypatch):
    import ssc_core.viz.voxels3d as voxels3d

    labels = small_street()
    labels[10:12, 10:60, 0:8] = BUILDING  # a wall in front of the car from the 'front' view
    one = render_voxels_3d(labels, SEMANTIC_KITTI, view="front", width=200)
    monkeypatch.setattr(voxels3d, "_CHUNK_SAMPLES", 64)  # a handful of faces per chunk
    many = render_voxels_3d(labels, SEMANTIC_KITTI, view="front", width=200)
    assert np.array_equal(one, many)


def test_readme_figures_keep_the_exact_class_colours():
    """The README's figures are RGB PNGs as save_png writes them: a 128-colour palette once made car and bicycle
    the same blue (110, 157, 210) in the demo figure."""
    from conftest import REPO_ROOT

    for name in ("demo_prediction_vs_ground_truth.png", "synthetic_scene.png"):
        image = Image.open(REPO_ROOT / "docs" / "figures" / name)
        assert image.mode == "RGB", name
        pixels = {tuple(p) for p in np.asarray(image).reshape(-1, 3)}
        assert tuple(colour(CAR)) in pixels and tuple(colour(ROAD)) in pixels, name  # legend swatches
