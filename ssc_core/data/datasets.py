"""Torch Datasets: one labelled frame with its history window, as model samples.

``SemanticKittiDataset(root, split, cfg)`` yields, per labelled frame (one with ``voxels/NNNNNN.label``), the
sample of ``transforms.window_to_sample`` plus the targets:

- ``target`` int64 (X, Y, Z): train ids through the benchmark's remap LUT, ``.invalid`` voxels set to 255;
- ``target_1_2`` int64 (X/2, Y/2, Z/2): ``target`` downsampled by the SSC rule (``downsample.py``);
- ``sequence`` (str) and ``frame`` (int);
- with ``data.lidar_depth``: ``lidar_depth`` float32 (H, W), the current scan's sparse depth in ``img``'s pixels;
- with ``data.labelled_points``: ``labelled_points`` float32 (P, 6) [x, y, z, u, v, label] of the current scan's
  in-view points with their per-point train ids (``labels/NNNNNN.label``; 0 = unlabelled or ignored)
  (both from ``lidar_targets.py``; training-only: the live path never builds them).
- cached inputs when configured: ``sweep_occupancy``, ``proposal``, ``lga`` (``cached_inputs.py``).

History frames sit at ``data.history_offsets`` (raw frame offsets such as [-12, -9, -6, -3]) and, with
``data.sweeps``, at the sweep offsets (``sweeps.window_offsets``); an offset that falls outside the sequence reuses
the current frame (as SGN does). Each history frame carries T_cur_hist from
the LiDAR poses (poses.txt through Tr). ``build_frame`` loads one ``Frame`` from disk for replay and bag tools.

``Kitti360Dataset`` is the same for SSCBench-KITTI-360 drives (``build_kitti360_frame`` for one frame), and
``build_dataset(data_cfg, split, root)`` picks the class named by ``data.dataset``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from ssc_core.data.cached_inputs import read_cached_inputs
from ssc_core.data.downsample import downsample_labels
from ssc_core.data.kitti360 import (
    KITTI360_SPLITS,
    Kitti360Paths,
    drive_name,
    kitti360_eval_target,
    read_kitti360_calib,
    read_kitti360_invalid,
    read_kitti360_labels,
    read_kitti360_poses,
)
from ssc_core.data.label_maps import ClassSet, get_class_set
from ssc_core.data.lidar_targets import labelled_points, lidar_depth_map
from ssc_core.data.nyu_dataset import NYUDataset
from ssc_core.data.point_sources import point_source_name, point_source_requires
from ssc_core.data.semantic_kitti import (
    SequencePaths,
    read_calib,
    read_image,
    read_packed_bits,
    read_point_labels,
    read_points,
    read_times,
    read_velo_poses,
    read_voxel_labels,
    remap_voxel_labels,
)
from ssc_core.data.stereo_depth import stereo_depth_requires
from ssc_core.data.sweeps import sweep_source_name, window_offsets
from ssc_core.data.transforms import window_to_sample
from ssc_core.errors import ConfigError, DataFormatError
from ssc_core.geometry.poses import relative_transform
from ssc_core.types import Calib, Frame, FrameWindow, GridSpec

# Official SemanticKITTI SSC splits (semantic-kitti.yaml). 'val' is accepted as an alias of 'valid'.
SEMANTIC_KITTI_SPLITS: dict[str, list[str]] = {
    "train": ["00", "01", "02", "03", "04", "05", "06", "07", "09", "10"],
    "valid": ["08"],
    "test": [f"{i:02d}" for i in range(11, 22)],
}
KITTI_FRAME_RATE_HZ = 10.0


def semantic_kitti_sequence(sequence: str | int) -> str:
    """Normalise a SemanticKITTI sequence id: 8, '8' or '08' -> '08' (other names unchanged)."""
    text = str(sequence)
    return f"{int(text):02d}" if text.isdigit() and len(text) <= 2 else text


def resolve_sequences(
    split: str | None,
    sequences: Sequence[str | int] | None,
    data_cfg: dict,
    default_splits: dict[str, Sequence[str]],
    normalize: Callable[[str | int], str] = semantic_kitti_sequence,
) -> list[str]:
    """Sequence ids for a split name (from ``data.splits``, else ``default_splits``) or an explicit list,
    each passed through ``normalize``. ConfigError when neither or an unknown split is given."""
    if sequences is not None:
        return [normalize(s) for s in sequences]
    if split is None:
        raise ConfigError("give a split (train/valid/test) or an explicit list of sequences")
    splits = {**default_splits, **(data_cfg.get("splits") or {})}
    name = "valid" if split == "val" and "val" not in splits else split
    if name not in splits:
        raise ConfigError(f"unknown split {split!r}; data.splits has {sorted(splits)}")
    return resolve_sequences(None, splits[name], data_cfg, default_splits, normalize)


@dataclass
class SequenceInfo:
    """What a sequence needs once: paths, calibration, LiDAR poses (N, 4, 4) float64 T_odom_velo (None
    without a pose file; NaN for frames the pose file does not cover), stamps (N,) int64 nanoseconds, and
    the number of frames N."""

    paths: SequencePaths | Kitti360Paths
    calib: Calib
    poses_velo: np.ndarray | None
    stamps_ns: np.ndarray
    num_frames: int


def load_sequence_info(paths: SequencePaths, frame_rate_hz: float = KITTI_FRAME_RATE_HZ) -> SequenceInfo:
    """Read calib.txt, poses.txt (optional) and times.txt (optional) of a SemanticKITTI sequence.

    The frame count is the pose count, else the time count, else the number of scans/images. Missing
    times.txt gives stamps index / frame_rate_hz. DataFormatError when counts disagree (poses vs scans,
    times vs poses) or a file is malformed.
    """
    calib = read_calib(paths.calib)
    poses_velo = read_velo_poses(paths, calib, check_count=True) if paths.poses.is_file() else None
    times = read_times(paths.times) if paths.times.is_file() else None
    if poses_velo is not None:
        num_frames = len(poses_velo)
    elif times is not None:
        num_frames = len(times)
    else:
        present = paths.scan_frames() or paths.image_frames(2)
        num_frames = (max(present) + 1) if present else 0
    if times is not None and len(times) != num_frames:
        raise DataFormatError(f"{paths.times}: {len(times)} times for {num_frames} poses in {paths.poses}")
    if times is None:
        stamps_ns = np.round(np.arange(num_frames) * 1e9 / frame_rate_hz).astype(np.int64)
    else:
        stamps_ns = np.round(times * 1e9).astype(np.int64)
    return SequenceInfo(paths, calib, poses_velo, stamps_ns, num_frames)


def _want(flag: bool | None, path: Path) -> bool:
    """None: load when the file exists; True: required (DataFormatError when missing); False: skip."""
    if flag is None:
        return path.is_file()
    if flag and not path.is_file():
        raise DataFormatError(f"{path}: file not found")
    return flag


def build_frame(
    paths: SequencePaths,
    frame_index: int,
    info: SequenceInfo | None = None,
    *,
    load_points: bool | None = None,
    load_right: bool | None = None,
) -> Frame:
    """Load one Frame of a SemanticKITTI-layout sequence from disk.

    Takes the sequence paths, a frame number and optionally its pre-read SequenceInfo (read here when None).
    ``load_points`` / ``load_right``: None loads velodyne/NNNNNN.bin / image_3 when present, True requires them,
    False skips them. Returns a Frame with image_left (H, W, 3) uint8 RGB, calib, T_odom_velo (the LiDAR pose in
    the LiDAR frame of scan 0, None without poses.txt), stamp_ns and index.
    """
    info = info or load_sequence_info(paths)
    if not 0 <= frame_index < info.num_frames:
        raise DataFormatError(f"{paths.dir}: frame {frame_index} is not in the sequence ({info.num_frames} frames)")
    pose = None if info.poses_velo is None else info.poses_velo[frame_index].copy()
    return Frame(
        stamp_ns=int(info.stamps_ns[frame_index]),
        image_left=read_image(paths.image(frame_index, 2)),
        calib=info.calib,
        T_odom_velo=pose,
        image_right=read_image(paths.image(frame_index, 3)) if _want(load_right, paths.image(frame_index, 3)) else None,
        points_velo=read_points(paths.velodyne(frame_index)) if _want(load_points, paths.velodyne(frame_index))
        else None,
        index=frame_index,
    )


def history_indices(
    frame_index: int, offsets: Sequence[int], num_frames: int, has_pose: np.ndarray | None = None
) -> list[int]:
    """Frame numbers of the history window: frame_index + offset, or frame_index itself when that falls
    outside [0, num_frames) or (given ``has_pose`` (N,) bool) has no pose (SGN's rule)."""
    out = []
    for off in offsets:
        target = frame_index + int(off)
        ok = 0 <= target < num_frames and (has_pose is None or bool(has_pose[target]))
        out.append(target if ok else frame_index)
    return out


def _history_offsets(data_cfg: dict) -> list[int]:
    offsets = data_cfg.get("history_offsets") or []
    if not isinstance(offsets, list | tuple) or any(int(o) != o for o in offsets):
        raise ConfigError(f"data.history_offsets must be a list of integer frame offsets, got {offsets!r}")
    if any(o >= 0 for o in offsets):
        raise ConfigError(f"data.history_offsets must be negative (past frames), got {list(offsets)}")
    return [int(o) for o in offsets]


class SemanticKittiDataset(Dataset):
    """SemanticKITTI SSC frames with their history windows, as model samples (see the module docstring).

    root: the folder holding ``sequences/`` (``<root>/dataset/sequences`` is found too); split: 'train',
    'valid' ('val') or 'test', or ``sequences`` an explicit list; cfg: the ``data:`` section (grid,
    image_crop, image_preprocess, history_offsets, points, use_right_image, lidar_depth, labelled_points,
    splits, class_set, frame_rate_hz).
    ``with_labels=False`` yields unlabelled frames (every ``voxels/*.bin``, else every image) without targets.
    Subclasses for other layouts override the ``_``-prefixed hooks, ``frame`` and ``read_target``.
    """

    default_splits: dict[str, Sequence[str]] = SEMANTIC_KITTI_SPLITS
    default_class_set = "semantic_kitti"
    normalize_sequence = staticmethod(semantic_kitti_sequence)

    def __init__(
        self,
        root: str | Path,
        split: str | None = None,
        cfg: dict | None = None,
        *,
        sequences: Sequence[str | int] | None = None,
        with_labels: bool = True,
    ) -> None:
        self.cfg = dict(cfg or {})
        self.root = self._find_root(Path(root))
        self.grid = GridSpec.from_dict(self.cfg.get("grid") or {})
        self.class_set: ClassSet = get_class_set(self.cfg.get("class_set", self.default_class_set))
        self.history_offsets = _history_offsets(self.cfg)
        self.with_labels = with_labels
        self.frame_rate_hz = float(self.cfg.get("frame_rate_hz", KITTI_FRAME_RATE_HZ))
        requires = point_source_requires(point_source_name(self.cfg))
        sweep_source = sweep_source_name(self.cfg)
        if sweep_source is not None:
            requires = requires + point_source_requires(sweep_source)
        self.window_offsets = window_offsets(self.cfg)
        self.lidar_depth = bool(self.cfg.get("lidar_depth", False))
        self.labelled_points = bool(self.cfg.get("labelled_points", False))
        self._load_points = "points_velo" in requires or self.lidar_depth or self.labelled_points
        requires = requires + stereo_depth_requires(self.cfg)
        self._load_right = bool(self.cfg.get("use_right_image", False)) or "image_right" in requires
        self.sequences = resolve_sequences(split, sequences, self.cfg, self.default_splits, self.normalize_sequence)
        self._infos: dict[str, SequenceInfo] = {}
        self.items: list[tuple[str, int]] = []
        for seq in self.sequences:
            info = self._load_info(seq)
            self._infos[seq] = info
            self.items += [(seq, f) for f in self._frames_of(info)]
        if not self.items:
            kind = "labelled frames (voxels/*.label)" if with_labels else "frames"
            raise DataFormatError(f"{self.root}: no {kind} in sequences {self.sequences}")

    # ------------------------------------------------------------------------------------ layout hooks
    @staticmethod
    def _find_root(root: Path) -> Path:
        if (root / "sequences").is_dir():
            return root
        if (root / "dataset" / "sequences").is_dir():
            return root / "dataset"
        raise DataFormatError(f"{root}: no sequences/ folder (expected <root>/sequences/XX/...)")

    def _load_info(self, sequence: str) -> SequenceInfo:
        paths = SequencePaths.of(self.root, sequence)
        if not paths.dir.is_dir():
            raise DataFormatError(f"{paths.dir}: sequence folder not found")
        info = load_sequence_info(paths, self.frame_rate_hz)
        if self.window_offsets and info.poses_velo is None:
            raise DataFormatError(f"{paths.poses}: file not found (needed for data.history_offsets / data.sweeps)")
        return info

    def _frames_of(self, info: SequenceInfo) -> list[int]:
        if self.with_labels:
            return info.paths.labelled_frames()
        voxel_inputs = sorted(int(p.stem) for p in (info.paths.dir / "voxels").glob("*.bin") if p.stem.isdigit())
        return voxel_inputs or info.paths.image_frames()

    # ------------------------------------------------------------------------------------ loading
    def __len__(self) -> int:
        return len(self.items)

    def image_frames(self, sequence: str) -> list[int]:
        """Every frame number of a sequence of this dataset that has a left image, sorted."""
        return self._infos[sequence].paths.image_frames()

    def frame(self, sequence: str, frame_index: int) -> Frame:
        """Load one Frame of a sequence of this dataset (with points/right image as the config needs)."""
        info = self._infos[sequence]
        return build_frame(info.paths, frame_index, info, load_points=self._load_points, load_right=self._load_right)

    def read_target(self, sequence: str, frame_index: int) -> np.ndarray:
        """(X, Y, Z) uint8 train ids of a labelled frame: LUT-remapped .label with .invalid voxels -> 255."""
        paths = self._infos[sequence].paths
        label_path = paths.voxel(frame_index, "label")
        raw = read_voxel_labels(label_path, self.grid.dims)
        invalid = read_packed_bits(paths.voxel(frame_index, "invalid"), self.grid.dims)
        return remap_voxel_labels(raw, self.class_set, invalid, source=label_path)

    def read_point_labels(self, sequence: str, frame_index: int, num_points: int) -> np.ndarray:
        """(N,) int64 train ids of a scan's points from ``labels/NNNNNN.label`` (the LUT's 255 -> 0: ignored)."""
        path = self._infos[sequence].paths.point_labels(frame_index)
        if not path.is_file():
            raise DataFormatError(f"{path}: per-point labels not found (needed for data.labelled_points)")
        semantic, _ = read_point_labels(path, num_points)
        labels = remap_voxel_labels(semantic, self.class_set, source=path).astype(np.int64)
        labels[labels == 255] = 0
        return labels

    def lidar_targets(self, sequence: str, frame: Frame, sample: dict) -> dict:
        """``lidar_depth`` and/or ``labelled_points`` (as configured) of ``frame`` (the current frame of
        ``sample``, whose image transform and size they use)."""
        if frame.points_velo is None:
            raise DataFormatError(f"frame {frame.index}: data.lidar_depth / labelled_points need its LiDAR scan")
        hw = tuple(int(v) for v in sample["image_hw"])
        geometry = (frame.calib.P2, frame.calib.T_cam0_velo, sample["post_rot"][-1].double().numpy(),
                    sample["post_tran"][-1].double().numpy(), hw)
        out = {}
        if self.lidar_depth:
            out["lidar_depth"] = torch.from_numpy(lidar_depth_map(frame.points_velo, *geometry))
        if self.labelled_points:
            labels = self.read_point_labels(sequence, frame.index, len(frame.points_velo))
            out["labelled_points"] = torch.from_numpy(labelled_points(frame.points_velo, labels, *geometry))
        return out

    def window(self, index: int) -> FrameWindow:
        """The FrameWindow of item ``index``: current frame plus history frames at ``self.window_offsets``
        (data.history_offsets and the sweep frames; the current frame itself where an offset leaves the sequence or
        lands on a frame without pose)."""
        seq, frame_index = self.items[index]
        info = self._infos[seq]
        has_pose = None
        if info.poses_velo is not None:
            has_pose = np.all(np.isfinite(info.poses_velo.reshape(len(info.poses_velo), -1)), axis=1)
            if not has_pose[frame_index]:
                has_pose = np.zeros_like(has_pose)  # no pose for the current frame: no usable history
        cache: dict[int, Frame] = {frame_index: self.frame(seq, frame_index)}
        history = []
        for hist_index in history_indices(frame_index, self.window_offsets, info.num_frames, has_pose):
            if hist_index not in cache:
                cache[hist_index] = self.frame(seq, hist_index)
            history.append(cache[hist_index])
        current = cache[frame_index]
        transforms = [
            np.eye(4) if h is current else relative_transform(current.T_odom_velo, h.T_odom_velo) for h in history
        ]
        return FrameWindow(current=current, history=history, T_cur_hist=transforms)

    def point_source_cfg(self, sequence: str) -> dict:
        """The data cfg handed to point and depth-map sources: ``data:`` with ``root`` (the dataset root) and
        ``sequence`` added to ``points`` and ``stereo_depth``, so dataset-only sources (e.g. precomputed files)
        find the frame's file."""
        out = dict(self.cfg)
        for section in ("points", "stereo_depth"):
            values = dict(self.cfg.get(section) or {})
            values.update(root=str(self.root), sequence=sequence)
            out[section] = values
        return out

    def __getitem__(self, index: int) -> dict:
        seq, frame_index = self.items[index]
        window = self.window(index)
        sample = window_to_sample(window, self.point_source_cfg(seq))
        if self.lidar_depth or self.labelled_points:
            sample.update(self.lidar_targets(seq, window.current, sample))
        if self.with_labels:
            target = self.read_target(seq, frame_index)
            sample["target"] = torch.from_numpy(target.astype(np.int64))
            sample["target_1_2"] = torch.from_numpy(downsample_labels(target, 2).astype(np.int64))
        sample.update(read_cached_inputs(self.cfg, seq, frame_index))
        sample["sequence"] = seq
        sample["frame"] = frame_index
        return sample


# ----------------------------------------------------------------------------------------------- KITTI-360
def kitti360_velodyne_path(root: Path, drive: str, frame_index: int) -> Path:
    """KITTI-360's raw scan of a frame: ``<root>/data_3d_raw/<drive>/velodyne_points/data/<frame:010d>.bin``."""
    return Path(root) / "data_3d_raw" / drive / "velodyne_points" / "data" / f"{frame_index:010d}.bin"


def load_kitti360_info(paths: Kitti360Paths, frame_rate_hz: float = KITTI_FRAME_RATE_HZ) -> SequenceInfo:
    """The calibration (``<root>/calibration/`` files when present, else the SSCBench values: see
    ``read_kitti360_calib``), LiDAR poses from ``cam0_to_world.txt`` (T_world_velo = T_world_cam0 @
    T_cam0_velo; NaN for frames it does not list; None without the file) and stamps index / frame_rate_hz
    of one KITTI-360 drive. The frame count covers every image and pose."""
    calib = read_kitti360_calib(paths.root)
    frames = paths.image_frames(0)
    pose_frames, poses = (None, None)
    if paths.cam0_to_world.is_file():
        pose_frames, poses = read_kitti360_poses(paths.cam0_to_world)
    num_frames = max([*frames, *(pose_frames.tolist() if pose_frames is not None else []), -1]) + 1
    poses_velo = None
    if poses is not None:
        poses_velo = np.full((num_frames, 4, 4), np.nan)
        poses_velo[pose_frames] = poses @ calib.T_cam0_velo[None]
    stamps_ns = np.round(np.arange(num_frames) * 1e9 / frame_rate_hz).astype(np.int64)
    return SequenceInfo(paths, calib, poses_velo, stamps_ns, num_frames)


def build_kitti360_frame(
    paths: Kitti360Paths,
    frame_index: int,
    info: SequenceInfo | None = None,
    *,
    load_points: bool | None = None,
    load_right: bool | None = None,
) -> Frame:
    """Load one Frame of an SSCBench-KITTI-360 drive: image_00 (left), optionally image_01 (right) and the
    raw scan from data_3d_raw (None/True/False as in ``build_frame``). T_odom_velo is None for frames that
    cam0_to_world.txt does not list."""
    info = info or load_kitti360_info(paths)
    if not 0 <= frame_index < info.num_frames:
        raise DataFormatError(f"{paths.dir}: frame {frame_index} is not in the drive ({info.num_frames} frames)")
    pose = None
    if info.poses_velo is not None and np.all(np.isfinite(info.poses_velo[frame_index])):
        pose = info.poses_velo[frame_index].copy()
    velodyne = kitti360_velodyne_path(paths.root, paths.drive, frame_index)
    return Frame(
        stamp_ns=int(info.stamps_ns[frame_index]),
        image_left=read_image(paths.image(frame_index, 0)),
        calib=info.calib,
        T_odom_velo=pose,
        image_right=read_image(paths.image(frame_index, 1)) if _want(load_right, paths.image(frame_index, 1)) else None,
        points_velo=read_points(velodyne) if _want(load_points, velodyne) else None,
        index=frame_index,
    )


class Kitti360Dataset(SemanticKittiDataset):
    """SSCBench-KITTI-360 SSC frames with their history windows, as model samples.

    root: the folder holding ``data_2d_raw/`` (``<root>/KITTI-360/data_2d_raw`` is found too); split 'train',
    'valid', 'test' (SSCBench drives) or ``sequences`` (drive names or numbers: 9 -> 2013_05_28_drive_0009_sync);
    cfg: the ``data:`` section (see config/data/kitti360.yaml). Targets follow SSCBench: KITTI-360 class set,
    one-byte ``.invalid`` applied only where the raw label is 0. History frames without a pose in
    cam0_to_world.txt reuse the current frame, as SGN does.
    """

    default_splits = {name: list(drives) for name, drives in KITTI360_SPLITS.items()}
    default_class_set = "kitti360"
    normalize_sequence = staticmethod(drive_name)

    @staticmethod
    def _find_root(root: Path) -> Path:
        for cand in (root, root / "KITTI-360"):
            if (cand / "data_2d_raw").is_dir():
                return cand
        raise DataFormatError(f"{root}: no data_2d_raw/ folder (expected <root>/data_2d_raw/<drive>/...)")

    def _load_info(self, sequence: str) -> SequenceInfo:
        paths = Kitti360Paths.of(self.root, sequence)
        if not paths.dir.is_dir():
            raise DataFormatError(f"{paths.dir}: drive folder not found")
        info = load_kitti360_info(paths, self.frame_rate_hz)
        if self.window_offsets and info.poses_velo is None:
            raise DataFormatError(f"{paths.cam0_to_world}: file not found (needed for data.history_offsets / "
                                  "data.sweeps)")
        return info

    def frame(self, sequence: str, frame_index: int) -> Frame:
        """Load one Frame of a drive of this dataset (with points/right image as the config needs)."""
        info = self._infos[sequence]
        return build_kitti360_frame(info.paths, frame_index, info, load_points=self._load_points,
                                    load_right=self._load_right)

    def read_point_labels(self, sequence: str, frame_index: int, num_points: int) -> np.ndarray:
        """SSCBench-KITTI-360 ships no per-point labels: DataFormatError."""
        raise DataFormatError(f"{sequence}: SSCBench-KITTI-360 has no per-point labels; set data.labelled_points: "
                              "false (the point branch then goes unsupervised)")

    def read_target(self, sequence: str, frame_index: int) -> np.ndarray:
        """(X, Y, Z) uint8 KITTI-360 train ids: LUT-remapped .label, 255 where invalid and raw label 0."""
        paths = self._infos[sequence].paths
        raw = read_kitti360_labels(paths.voxel(frame_index, "label"), self.grid.dims)
        invalid = read_kitti360_invalid(paths.voxel(frame_index, "invalid"), self.grid.dims)
        return kitti360_eval_target(raw, invalid, self.class_set)


DATASETS: dict[str, type[Dataset]] = {"semantic_kitti": SemanticKittiDataset, "kitti360": Kitti360Dataset,
                                      "nyu": NYUDataset}


def build_dataset(data_cfg: dict, split: str | None = None, root: str | Path | None = None, **kwargs) -> Dataset:
    """The Dataset named by ``data.dataset`` (semantic_kitti | kitti360 | nyu) at ``root`` (else ``data.root``) for
    a split; ``kwargs`` go to the class (``sequences``, ``with_labels``). ConfigError for unknown names/no root."""
    name = data_cfg.get("dataset", "semantic_kitti")
    if name not in DATASETS:
        raise ConfigError(f"unknown data.dataset {name!r}; known: {sorted(DATASETS)}")
    root = root if root is not None else data_cfg.get("root")
    if not root:
        raise ConfigError("no dataset root: pass one (e.g. --data-root) or set data.root in the config")
    return DATASETS[name](root, split, data_cfg, **kwargs)
