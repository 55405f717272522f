"""Prediction -> voxel MarkerArray, voxel-centre PointCloud2 and bird's-eye OccupancyGrid (vectorised numpy).

``OutputBuilder`` selects the voxels to show once per prediction (``select``: non-empty, not hidden, confident
enough, inside the crop box) and fills the three messages through a ``MessageNamespace`` (rclpy live, rosbags
offline). All messages are stamped with the prediction's (= input's) stamp, in ``frame_id`` (default: the
prediction's frame, the LiDAR frame of the scan).

Occupancy semantics (the documented choice, see docs/ros.md): per (x, y) column of the grid
- 100 (occupied): some voxel whose centre lies in the z band [z_min, z_max] has an obstacle class;
- 0 (free): otherwise, when the column holds at least one non-empty voxel (e.g. road below): the model saw it;
- -1 (unknown): a column predicted all-empty (SSC predicts empty outside what it can infer), a column outside
  the crop box, or (with ``min_confidence``) one whose voxels are all less confident than the threshold.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ssc_core.data.label_maps import ClassSet
from ssc_core.errors import ConfigError
from ssc_core.types import IGNORE_LABEL, Prediction
from ssc_ros.messages import (
    FLOAT32,
    MessageNamespace,
    make_marker_array,
    make_occupancy_grid,
    make_pointcloud2,
    marker_fields,
)

DEFAULT_GROUND_CLASSES = ("road", "parking", "sidewalk", "other-ground", "terrain", "lane-marking")

VOXEL_CLOUD_DTYPE = np.dtype({
    "names": ["x", "y", "z", "rgb", "confidence", "label"],
    "formats": ["<f4", "<f4", "<f4", "<u4", "<f4", "u1"],
    "offsets": [0, 4, 8, 12, 16, 20],
    "itemsize": 24,
})


def any_last_axis(mask: np.ndarray) -> np.ndarray:
    """``mask.any(axis=-1)`` of a bool array, 8 entries at a time as uint64 words (numpy's ``any`` over a short
    last axis costs ~10x more: 1.3 ms against 0.13 ms for a 256x256x32 grid)."""
    z = mask.shape[-1]
    if z % 8:
        mask = np.concatenate([mask, np.zeros((*mask.shape[:-1], 8 - z % 8), dtype=bool)], axis=-1)
    words = np.ascontiguousarray(mask, dtype=bool).view(np.uint64)
    out = words[..., 0].copy()
    for i in range(1, words.shape[-1]):
        out |= words[..., i]
    return out != 0


@dataclass
class OutputOptions:
    """What the outputs show. Classes are given by name (or train id); metric values in the grid frame (m).

    frame_id: output frame ("" = the prediction's); hidden_classes: never drawn as markers/cloud;
    crop_min/crop_max: (x, y, z) box, voxels with centres outside are dropped (None = no crop);
    min_confidence: voxels below it are dropped; marker_ns: prefix of the per-class marker namespaces;
    marker_alpha: cube opacity; cull_hidden: skip marker cubes whose 6 neighbours are all shown (invisible);
    max_marker_voxels: cap on cubes over all classes (0 = none; the most confident are kept);
    obstacle_classes: classes that occupy a cell (empty = every non-empty class not in ground_classes);
    ground_classes: classes that never occupy; z_min/z_max: the height band for obstacles.
    """

    frame_id: str = ""
    hidden_classes: tuple = ()
    crop_min: tuple[float, float, float] | None = None
    crop_max: tuple[float, float, float] | None = None
    min_confidence: float = 0.0
    marker_ns: str = "ssc"
    marker_alpha: float = 1.0
    cull_hidden: bool = True
    max_marker_voxels: int = 0
    obstacle_classes: tuple = ()
    ground_classes: tuple = field(default=DEFAULT_GROUND_CLASSES)
    z_min: float = -1.5
    z_max: float = 1.0


@dataclass
class VoxelSelection:
    """Voxels picked for display: idx (N, 3) int64 grid indices, centers (N, 3) float32 metric (grid frame),
    labels (N,) uint8 train ids, confidence (N,) float32, shown (X, Y, Z) bool mask of the same voxels."""

    idx: np.ndarray
    centers: np.ndarray
    labels: np.ndarray
    confidence: np.ndarray
    shown: np.ndarray


class OutputBuilder:
    """Builds output messages from Predictions; keeps the class set of the last MarkerArray (for DELETEALL)."""

    def __init__(self, class_set: ClassSet, options: OutputOptions | None = None) -> None:
        self.class_set = class_set
        self.options = options or OutputOptions()
        n = class_set.num_classes
        self._hidden = self._class_mask(self.options.hidden_classes, "hidden_classes")
        ground = self._class_mask(self.options.ground_classes, "ground_classes", ignore_unknown=True)
        if self.options.obstacle_classes:
            self._obstacle = self._class_mask(self.options.obstacle_classes, "obstacle_classes")
        else:
            self._obstacle = ~ground
            self._obstacle[0] = False
            self._obstacle[n:] = False
        colors = np.zeros((256, 3), dtype=np.uint8)
        colors[:n] = class_set.colors_rgb[:n]
        self._colors = colors
        packed = (colors[:, 0].astype(np.uint32) << 16) | (colors[:, 1].astype(np.uint32) << 8) | colors[:, 2]
        self._packed_rgb = packed
        self._last_marker_classes: frozenset[int] | None = None
        if (self.options.crop_min is None) != (self.options.crop_max is None):
            raise ConfigError("outputs: crop_min and crop_max must be given together")

    def _class_mask(self, classes, what: str, ignore_unknown: bool = False) -> np.ndarray:
        """(256,) bool LUT over train ids from class names or ids."""
        mask = np.zeros(256, dtype=bool)
        names = {name: i for i, name in enumerate(self.class_set.names)}
        for cls in classes:
            if isinstance(cls, str) and not cls.isdigit():
                if cls not in names:
                    if ignore_unknown:
                        continue
                    raise ConfigError(f"outputs.{what}: unknown class {cls!r}; known: {list(self.class_set.names)}")
                mask[names[cls]] = True
            else:
                cid = int(cls)
                if not 0 <= cid < self.class_set.num_classes:
                    raise ConfigError(f"outputs.{what}: class id {cid} outside 0..{self.class_set.num_classes - 1}")
                mask[cid] = True
        return mask

    def frame_id(self, prediction: Prediction) -> str:
        """The output frame: the configured one, else the prediction's."""
        return self.options.frame_id or prediction.frame_id

    # ------------------------------------------------------------------------------------- selection
    def _crop_index_bounds(self, prediction: Prediction) -> tuple[np.ndarray, np.ndarray]:
        """Inclusive-exclusive index ranges (lo (3,), hi (3,)) of voxels whose centres lie in the crop box."""
        grid = prediction.grid
        dims = np.asarray(grid.dims)
        if self.options.crop_min is None:
            return np.zeros(3, dtype=np.int64), dims.astype(np.int64)
        origin = np.asarray(grid.origin)
        lo = np.ceil((np.asarray(self.options.crop_min) - origin) / grid.voxel_size - 0.5).astype(np.int64)
        hi = np.floor((np.asarray(self.options.crop_max) - origin) / grid.voxel_size - 0.5).astype(np.int64) + 1
        return np.clip(lo, 0, dims), np.clip(hi, 0, dims)

    def select(self, prediction: Prediction) -> VoxelSelection:
        """The voxels to draw: label not empty/ignore/hidden, confidence >= min_confidence, centre in the crop."""
        labels = np.asarray(prediction.labels)
        shown = labels != 0  # comparisons: ~50x faster than a 256-entry LUT lookup over 2M voxels
        shown &= labels < self.class_set.num_classes
        for cls in np.flatnonzero(self._hidden):
            shown &= labels != cls
        if self.options.min_confidence > 0:
            shown &= prediction.confidence >= self.options.min_confidence
        lo, hi = self._crop_index_bounds(prediction)
        if self.options.crop_min is not None:
            crop = np.zeros(labels.shape, dtype=bool)
            crop[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]] = True
            shown &= crop
        flat = np.flatnonzero(shown)
        _, ny, nz = labels.shape
        idx = np.empty((flat.size, 3), dtype=np.int64)
        idx[:, 0], rest = np.divmod(flat, ny * nz)
        idx[:, 1], idx[:, 2] = np.divmod(rest, nz)
        grid = prediction.grid
        centers = (np.asarray(grid.origin, dtype=np.float32) + (idx.astype(np.float32) + 0.5) * grid.voxel_size)
        return VoxelSelection(
            idx=idx, centers=centers.astype(np.float32), labels=labels.reshape(-1)[flat].astype(np.uint8),
            confidence=np.asarray(prediction.confidence).reshape(-1)[flat].astype(np.float32), shown=shown,
        )

    def _visible(self, sel: VoxelSelection) -> np.ndarray:
        """(N,) bool: voxels with at least one face not covered by another shown voxel."""
        padded = np.pad(sel.shown, 1, constant_values=False).ravel()
        _, py, pz = (d + 2 for d in sel.shown.shape)
        flat = ((sel.idx[:, 0] + 1) * py + sel.idx[:, 1] + 1) * pz + sel.idx[:, 2] + 1
        covered = np.ones(len(flat), dtype=bool)
        for step in (1, pz, py * pz):  # gather the six neighbours of the selected voxels only
            covered &= padded[flat - step]
            covered &= padded[flat + step]
        return ~covered

    # ---------------------------------------------------------------------------------------- markers
    def marker_arrays_data(self, sel: VoxelSelection) -> list[tuple[int, np.ndarray]]:
        """Per-class cube centres [(class id, (M, 3) float64)] in class order, after culling and the cap."""
        keep = np.flatnonzero(self._visible(sel)) if self.options.cull_hidden and len(sel.labels) else None
        labels = sel.labels if keep is None else sel.labels[keep]
        cap = self.options.max_marker_voxels
        if cap and len(labels) > cap:
            conf = sel.confidence if keep is None else sel.confidence[keep]
            keep = (np.arange(len(sel.labels)) if keep is None else keep)[np.argpartition(-conf, cap - 1)[:cap]]
            labels = sel.labels[keep]
        order = np.argsort(labels, kind="stable")  # uint8: a radix sort
        rows = order if keep is None else keep[order]
        centers = sel.centers[rows].astype(np.float64)
        bounds = np.concatenate([[0], np.cumsum(np.bincount(labels, minlength=256))])
        return [(int(c), centers[bounds[c]:bounds[c + 1]]) for c in np.flatnonzero(bounds[1:] - bounds[:-1])]

    def marker_array(self, ns: MessageNamespace, prediction: Prediction, sel: VoxelSelection | None = None) -> bytes:
        """Serialised visualization_msgs/MarkerArray (CDR bytes: rclpy publishers and bag writers take them as
        they are): one CUBE_LIST per shown class (ns '<marker_ns>/<class>', id = class id, colour from the
        ClassSet), preceded by a DELETEALL marker whenever the set of classes differs from the previous call's (so
        vanished classes disappear). The cube centres go out as one block, no Python object per cube."""
        sel = sel if sel is not None else self.select(prediction)
        per_class = self.marker_arrays_data(sel)
        frame, stamp = self.frame_id(prediction), prediction.stamp_ns
        markers = []
        classes = frozenset(c for c, _ in per_class)
        if classes != self._last_marker_classes:
            markers.append(marker_fields(stamp, frame, marker_ns="", marker_id=0, marker_type=ns.Marker.CUBE_LIST,
                                         action=ns.Marker.DELETEALL))
        self._last_marker_classes = classes
        size = float(prediction.grid.voxel_size)
        for cls, centers in per_class:
            markers.append(marker_fields(
                stamp, frame, marker_ns=f"{self.options.marker_ns}/{self.class_set.names[cls]}", marker_id=cls,
                marker_type=ns.Marker.CUBE_LIST, action=ns.Marker.ADD, scale=size, rgb_u8=self._colors[cls],
                alpha=self.options.marker_alpha, points_xyz=centers,
            ))
        return make_marker_array(ns, markers)

    # ------------------------------------------------------------------------------------------ cloud
    def cloud_array(self, sel: VoxelSelection) -> np.ndarray:
        """(N,) structured VOXEL_CLOUD_DTYPE: x, y, z float32 centres, rgb packed 0x00RRGGBB, confidence, label."""
        out = np.zeros(len(sel.labels), dtype=VOXEL_CLOUD_DTYPE)
        out["x"], out["y"], out["z"] = sel.centers[:, 0], sel.centers[:, 1], sel.centers[:, 2]
        out["rgb"] = self._packed_rgb[sel.labels]
        out["confidence"] = sel.confidence
        out["label"] = sel.labels
        return out

    def voxel_cloud(self, ns: MessageNamespace, prediction: Prediction, sel: VoxelSelection | None = None):
        """sensor_msgs/PointCloud2 of voxel centres with fields x, y, z, rgb (packed, FLOAT32 as PCL/RViz read
        it), confidence (FLOAT32) and label (UINT8 train id); 24 bytes per point."""
        sel = sel if sel is not None else self.select(prediction)
        return make_pointcloud2(ns, prediction.stamp_ns, self.frame_id(prediction), self.cloud_array(sel),
                                field_types={"rgb": FLOAT32})

    # -------------------------------------------------------------------------------------- occupancy
    def occupancy_cells(self, prediction: Prediction) -> np.ndarray:
        """(X, Y) int8 cells: 100 occupied / 0 free / -1 unknown (see the module docstring)."""
        labels = np.asarray(prediction.labels)
        grid = prediction.grid
        z_centers = grid.origin[2] + (np.arange(grid.dims[2]) + 0.5) * grid.voxel_size
        band = np.flatnonzero((z_centers >= self.options.z_min) & (z_centers <= self.options.z_max))
        k0, k1 = (int(band[0]), int(band[-1]) + 1) if band.size else (0, 0)
        confident = None
        if self.options.min_confidence > 0:
            confident = np.asarray(prediction.confidence) >= self.options.min_confidence
        band_labels = np.ascontiguousarray(labels[:, :, k0:k1])  # a gather from a strided view is much slower
        obstacle = np.take(self._obstacle, band_labels)
        known = (labels.astype(np.uint8, copy=False) - np.uint8(1)) < IGNORE_LABEL - 1  # 1..254 (0 wraps to 255)
        if confident is not None:
            obstacle &= confident[:, :, k0:k1]
            known &= confident
        cells = np.where(any_last_axis(obstacle), 100, np.where(any_last_axis(known), 0, -1)).astype(np.int8)
        if self.options.crop_min is not None:
            lo, hi = self._crop_index_bounds(prediction)
            inside = np.zeros(cells.shape, dtype=bool)
            inside[lo[0]:hi[0], lo[1]:hi[1]] = True
            cells[~inside] = -1
        return cells

    def occupancy_grid(self, ns: MessageNamespace, prediction: Prediction):
        """nav_msgs/OccupancyGrid: width = X cells along x, height = Y cells along y, resolution = voxel size,
        origin at the grid's corner (x0, y0) and the floor of the volume z0, identity orientation."""
        grid = prediction.grid
        return make_occupancy_grid(ns, prediction.stamp_ns, self.frame_id(prediction),
                                   self.occupancy_cells(prediction), grid.voxel_size, grid.origin)
