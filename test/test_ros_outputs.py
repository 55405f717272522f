"""OutputBuilder: per-class CUBE_LISTs with DELETEALL on change, the voxel cloud and the occupancy grid."""

from __future__ import annotations

import numpy as np
import pytest

from ssc_core.data.label_maps import SEMANTIC_KITTI
from ssc_core.errors import ConfigError
from ssc_core.types import GridSpec, Prediction
from ssc_ros.messages import pointcloud2_to_structured, rosbags_namespace, stamp_to_ns
from ssc_ros.pipeline.outputs import OutputBuilder, OutputOptions, any_last_axis

CAR, ROAD, BUILDING, POLE = 1, 9, 13, 18
GRID = GridSpec(dims=(8, 6, 4), voxel_size=0.5, origin=(0.0, -1.5, -1.0))


@pytest.fixture(scope="module")
def ns():
    return rosbags_namespace()


def scene(stamp_ns: int = 42_000_000_000) -> Prediction:
    labels = np.zeros(GRID.dims, dtype=np.uint8)
    labels[:, :, 0] = ROAD         # ground slab, z centre -0.75
    labels[2, 1, 1:3] = CAR        # a car column, z centres -0.25, 0.25
    labels[5, 4, 1] = POLE
    labels[7, 0, 1] = 255          # ignore: never drawn
    conf = np.full(GRID.dims, 0.9, dtype=np.float32)
    conf[5, 4, 1] = 0.2
    return Prediction(labels=labels, confidence=conf, grid=GRID, stamp_ns=stamp_ns, frame_id="velo_link")


def decoded(ns, raw: bytes):
    """The MarkerArray the builder serialised, as rosbags reads it back."""
    return ns.typestore.deserialize_cdr(raw, ns.msgtype("MarkerArray"))


def cubes_by_ns(markers):
    return {m.ns: m for m in markers.markers if m.action == 0}


def test_one_cube_list_per_class_with_class_colour_and_voxel_size(ns):
    builder = OutputBuilder(SEMANTIC_KITTI, OutputOptions(cull_hidden=False))
    msg = decoded(ns, builder.marker_array(ns, scene()))
    cubes = cubes_by_ns(msg)
    assert set(cubes) == {"ssc/car", "ssc/road", "ssc/pole"}
    car = cubes["ssc/car"]
    assert car.type == ns.Marker.CUBE_LIST and car.id == CAR and car.scale.x == 0.5
    assert [(p.x, p.y, p.z) for p in car.points] == [(1.25, -0.75, -0.25), (1.25, -0.75, 0.25)]
    rgb = SEMANTIC_KITTI.colors_rgb[CAR] / 255.0
    assert (car.color.r, car.color.g, car.color.b) == pytest.approx(tuple(rgb))
    assert len(cubes["ssc/road"].points) == 8 * 6
    assert stamp_to_ns(car.header.stamp) == 42_000_000_000 and car.header.frame_id == "velo_link"


def test_deleteall_comes_first_only_when_the_class_set_changes(ns):
    builder = OutputBuilder(SEMANTIC_KITTI)
    first = decoded(ns, builder.marker_array(ns, scene()))
    assert first.markers[0].action == ns.Marker.DELETEALL
    again = decoded(ns, builder.marker_array(ns, scene()))
    assert all(m.action == ns.Marker.ADD for m in again.markers)
    changed = scene()
    changed.labels[5, 4, 1] = 0  # the pole vanishes
    third = decoded(ns, builder.marker_array(ns, changed))
    assert third.markers[0].action == ns.Marker.DELETEALL
    assert "ssc/pole" not in cubes_by_ns(third)


def test_hidden_classes_crop_and_confidence_filter_the_voxels(ns):
    pred = scene()
    hidden = OutputBuilder(SEMANTIC_KITTI, OutputOptions(hidden_classes=("road",)))
    assert set(cubes_by_ns(decoded(ns, hidden.marker_array(ns, pred)))) == {"ssc/car", "ssc/pole"}
    confident = OutputBuilder(SEMANTIC_KITTI, OutputOptions(min_confidence=0.5))
    assert "ssc/pole" not in cubes_by_ns(decoded(ns, confident.marker_array(ns, pred)))
    cropped = OutputBuilder(SEMANTIC_KITTI, OutputOptions(crop_min=(0.0, -1.5, -0.5), crop_max=(2.0, 1.5, 1.0)))
    sel = cropped.select(pred)
    assert set(sel.labels.tolist()) == {CAR}  # road below z=-0.5 and the pole beyond x=2 are cut away
    assert np.all(sel.centers[:, 0] <= 2.0)


def test_any_last_axis_matches_numpy_for_every_length():
    rng = np.random.default_rng(3)
    for z in (1, 5, 8, 13, 32):
        mask = rng.random((7, 6, z)) < 0.05
        np.testing.assert_array_equal(any_last_axis(mask), mask.any(axis=-1))
        np.testing.assert_array_equal(any_last_axis(np.zeros((3, 2, z), bool)), np.zeros((3, 2), bool))


def test_unknown_class_name_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown class 'cars'"):
        OutputBuilder(SEMANTIC_KITTI, OutputOptions(hidden_classes=("cars",)))


def test_culling_drops_only_fully_enclosed_cubes(ns):
    labels = np.zeros(GRID.dims, dtype=np.uint8)
    labels[1:4, 1:4, 0:3] = BUILDING  # a 3x3x3 block: only its centre is enclosed
    pred = Prediction(labels=labels, confidence=np.ones(GRID.dims, np.float32), grid=GRID)
    builder = OutputBuilder(SEMANTIC_KITTI, OutputOptions(cull_hidden=True))
    (cls, centers), = builder.marker_arrays_data(builder.select(pred))
    assert cls == BUILDING and len(centers) == 26
    assert not np.any(np.all(np.isclose(centers, [1.25, -0.25, -0.25]), axis=1))


def test_voxel_cloud_carries_xyz_rgb_label_and_confidence(ns):
    builder = OutputBuilder(SEMANTIC_KITTI)
    msg = builder.voxel_cloud(ns, scene())
    raw = ns.typestore.serialize_cdr(msg, ns.msgtype("PointCloud2"))
    back = ns.typestore.deserialize_cdr(raw, ns.msgtype("PointCloud2"))
    names = {f.name: (f.offset, f.datatype) for f in back.fields}
    assert names["rgb"] == (12, 7) and names["label"][1] == 2 and back.point_step == 24
    arr = pointcloud2_to_structured(back)
    assert len(arr) == 8 * 6 + 3
    car = arr[arr["label"] == CAR]
    np.testing.assert_allclose(car["z"], [-0.25, 0.25])
    r, g, b = SEMANTIC_KITTI.colors_rgb[CAR].astype(np.uint32)
    assert np.all(car["rgb"].view(np.uint32) == (r << 16) | (g << 8) | b)
    np.testing.assert_allclose(arr[arr["label"] == POLE]["confidence"], [0.2])


def test_occupancy_marks_obstacles_in_band_free_ground_and_unknown_empty_columns(ns):
    pred = scene()
    pred.labels[6, 5, :] = 0  # a column with nothing predicted at all
    builder = OutputBuilder(SEMANTIC_KITTI, OutputOptions(z_min=-0.5, z_max=1.0))
    cells = builder.occupancy_cells(pred)
    assert cells.shape == (8, 6)
    assert cells[2, 1] == 100 and cells[5, 4] == 100       # car and pole in the band
    assert cells[0, 0] == 0                                 # road only: free
    assert cells[6, 5] == -1                                # nothing predicted: unknown
    assert (cells == 100).sum() == 2
    msg = builder.occupancy_grid(ns, pred)
    assert (msg.info.width, msg.info.height, msg.info.resolution) == (8, 6, 0.5)
    data = np.asarray(msg.data).reshape(6, 8)  # rows along y
    assert data[1, 2] == 100 and data[5, 6] == -1


def test_occupancy_band_and_obstacle_classes_are_parameters(ns):
    pred = scene()
    low_band = OutputBuilder(SEMANTIC_KITTI, OutputOptions(z_min=0.0, z_max=1.0))
    assert low_band.occupancy_cells(pred)[5, 4] == 0         # the pole (z -0.25) is below this band
    only_cars = OutputBuilder(SEMANTIC_KITTI, OutputOptions(z_min=-0.5, z_max=1.0, obstacle_classes=("car",)))
    assert only_cars.occupancy_cells(pred)[5, 4] == 0 and only_cars.occupancy_cells(pred)[2, 1] == 100
    cropped = OutputBuilder(SEMANTIC_KITTI, OutputOptions(crop_min=(0, -1.5, -1), crop_max=(2.0, 1.5, 1.0)))
    assert np.all(cropped.occupancy_cells(pred)[4:] == -1)


def test_frame_override_and_input_stamp_on_every_output(ns):
    builder = OutputBuilder(SEMANTIC_KITTI, OutputOptions(frame_id="base_link"))
    pred = scene(stamp_ns=7_123_456_789)
    for msg in (*decoded(ns, builder.marker_array(ns, pred)).markers, builder.voxel_cloud(ns, pred),
                builder.occupancy_grid(ns, pred)):
        assert msg.header.frame_id == "base_link" and stamp_to_ns(msg.header.stamp) == 7_123_456_789
