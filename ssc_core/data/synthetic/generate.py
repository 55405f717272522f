"""Generating a synthetic sequence: simulate the drive scan by scan and write every SemanticKITTI file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ssc_core.data.semantic_kitti import (
    SequencePaths,
    poses_velo_to_cam0,
    write_calib,
    write_image,
    write_packed_bits,
    write_point_labels,
    write_points,
    write_poses,
    write_times,
    write_voxel_labels,
)
from ssc_core.data.synthetic.camera import render
from ssc_core.data.synthetic.lidar import Scan, simulate_scan
from ssc_core.data.synthetic.options import SyntheticOptions, resolve_calib
from ssc_core.data.synthetic.trajectory import EgoPath, synthetic_path, trajectory_path
from ssc_core.data.synthetic.voxels import VoxelLabels, make_voxel_labels
from ssc_core.data.synthetic.world import World, build_world
from ssc_core.data.voxel_grid import write_grid_record
from ssc_core.errors import ConfigError
from ssc_core.geometry.poses import invert_transform
from ssc_core.types import Calib

FRAME_RATE_HZ = 10.0


class SyntheticScene:
    """A seeded world, the ego path through it and the calibration: everything needed to simulate any scan
    or image of a sequence. ``n_scans`` poses exist (frames plus the following scans the labels need).
    ``base_calib`` (at ``options.calib_image_size``) replaces the default / ``calib_file`` calibration."""

    def __init__(self, frames: int, seed: int, options: SyntheticOptions, base_calib: Calib | None = None):
        if frames < 1:
            raise ConfigError(f"frames must be >= 1, got {frames}")
        self.frames, self.seed, self.options = frames, seed, options
        self.calib: Calib = resolve_calib(options, base_calib)
        wanted = frames + (options.label_scans if options.simulate_beyond_end else 0)
        if options.trajectory_file:
            self.path: EgoPath = trajectory_path(seed, frames, wanted, options, self.calib.T_cam0_velo)
        else:
            self.path = synthetic_path(seed, wanted, options)
        self.n_scans = len(self.path.T_world_velo)
        self.world: World = build_world(self.path.street, seed, (0.0, self.path.street.length),
                                        options.object_density, self.n_scans / FRAME_RATE_HZ, self.path.s_at)

    def time_s(self, index: int) -> float:
        """Acquisition time of scan ``index`` in seconds."""
        return index / FRAME_RATE_HZ

    def T_world_velo(self, index: int) -> np.ndarray:
        """(4, 4) pose of the LiDAR at scan ``index`` in the world frame."""
        return self.path.T_world_velo[index]

    def scan(self, index: int) -> Scan:
        """Simulate LiDAR scan ``index`` (deterministic per seed and index)."""
        rng = np.random.default_rng([self.seed, index])
        return simulate_scan(self.world, self.T_world_velo(index), self.time_s(index), self.options, rng)

    def render(self, index: int, camera: int = 2):
        """Render camera 2 (left colour) or 3 (right colour) at frame ``index``: a ``CameraView``."""
        P = {2: self.calib.P2, 3: self.calib.P3}[camera]
        T_world_cam0 = self.T_world_velo(index) @ invert_transform(self.calib.T_cam0_velo)
        prims = self.world.primitives_at(self.time_s(index))
        return render(self.world, prims, T_world_cam0, P, self.options.image_size)

    def poses_cam0(self) -> np.ndarray:
        """(frames, 4, 4) camera-0 poses relative to frame 0, as poses.txt holds them."""
        T_velo0_velo = invert_transform(self.T_world_velo(0))[None] @ self.path.T_world_velo[: self.frames]
        return poses_velo_to_cam0(T_velo0_velo, self.calib.T_cam0_velo)

    def labelled_frames(self) -> list[int]:
        """Frames that get voxel files: every ``label_stride``-th from 0."""
        return list(range(0, self.frames, self.options.label_stride))

    def scans_needed(self) -> int:
        """How many scans a sequence simulates: its frames and the scans the last label aggregates (at most
        ``n_scans``)."""
        last_label = max((min(f + self.options.label_scans, self.n_scans - 1) for f in self.labelled_frames()),
                         default=0)
        return max(self.frames, last_label + 1)

    def drive(self, desc: str = "synthetic", progress: bool = False
              ) -> Iterator[tuple[int, Scan, list[int], dict[int, Scan]]]:
        """Simulate the scans in order (with a progress bar). Yields (index, scan, ready, scans): ``ready``
        lists the labelled frames whose aggregation window is complete after this scan, ``scans`` holds every
        scan those windows need. Simulates ``scans_needed()`` scans (the bar ends at 100 %); old scans are
        dropped."""
        pending = self.labelled_frames()
        scans: dict[int, Scan] = {}
        for i in tqdm(range(self.scans_needed()), desc=desc, unit="scan", disable=not progress):
            scans[i] = self.scan(i)
            ready = []
            while pending and (pending[0] + self.options.label_scans <= i or i == self.n_scans - 1):
                ready.append(pending.pop(0))
            yield i, scans[i], ready, scans
            oldest = pending[0] if pending else i + 1
            for j in [j for j in scans if j < oldest]:
                del scans[j]

    def voxel_labels(self, index: int, scans: dict[int, Scan]) -> VoxelLabels:
        """Voxel files of frame ``index`` from ``scans`` (must hold ``index`` .. the last scan of its window)."""
        last = min(index + self.options.label_scans, self.n_scans - 1)
        window = range(index, last + 1)
        o = self.options
        return make_voxel_labels([scans[j].points_velo for j in window], [scans[j].semantic for j in window],
                                 [self.T_world_velo(j) for j in window], o.grid, o.label_min_range_m,
                                 o.label_max_range_m, o.invalid_origin_stride, o.visibility_res_deg)


def write_voxel_files(paths: SequencePaths, index: int, voxels: VoxelLabels) -> None:
    """Write the .label/.bin/.invalid/.occluded files of one frame."""
    write_voxel_labels(paths.voxel(index, "label"), voxels.label)
    write_packed_bits(paths.voxel(index, "bin"), voxels.bin)
    write_packed_bits(paths.voxel(index, "invalid"), voxels.invalid)
    write_packed_bits(paths.voxel(index, "occluded"), voxels.occluded)


SYNTHETIC_MARKER = ".ssc_synthetic"


def claim_output(marker_dir: Path, guarded: list[Path]) -> None:
    """Make sure the generator only ever overwrites what it wrote itself. ``guarded``: the folders a run writes
    into. When any of them already holds something and ``marker_dir`` has no marker file of an earlier
    synthetic run (e.g. it is a real KITTI sequence), raise ConfigError instead of overwriting or deleting
    scans; otherwise create ``marker_dir`` and its marker."""
    marker = marker_dir / SYNTHETIC_MARKER
    occupied = [g for g in guarded if g.is_file() or (g.is_dir() and any(g.iterdir()))]
    if occupied and not marker.is_file():
        raise ConfigError(f"{occupied[0]} already holds data that ssc-make-synthetic did not write (no "
                          f"{SYNTHETIC_MARKER} marker); refusing to overwrite it: choose a new --output")
    marker_dir.mkdir(parents=True, exist_ok=True)
    marker.write_text("written by ssc-make-synthetic: a rerun may overwrite and prune this folder\n")


def remove_stale_files(paths: SequencePaths, frames: int, labelled: list[int], options: SyntheticOptions
                       ) -> list[Path]:
    """Delete numbered files an earlier run left that this run will not rewrite: frames >= ``frames`` in
    velodyne/ and labels/, voxels/ of frames not in ``labelled``, and images beyond ``frames`` or of a camera
    this run does not write. Returns the deleted paths."""
    everything = set(range(frames))
    keep = {
        "velodyne": everything,
        "labels": everything,
        "voxels": set(labelled),
        "image_2": everything if options.write_images else set(),
        "image_3": everything if options.write_images and options.write_right_image else set(),
    }
    removed = []
    for folder, frames_kept in keep.items():
        for path in sorted((paths.dir / folder).glob("*")):
            if path.is_file() and path.stem.isdigit() and int(path.stem) not in frames_kept:
                path.unlink()
                removed.append(path)
    return removed


def generate_sequence(output_root: str | Path, sequence: str = "08", frames: int = 20, seed: int = 0,
                      options: SyntheticOptions | None = None, progress: bool = False) -> SequencePaths:
    """Write a synthetic SemanticKITTI sequence to ``output_root/sequences/<sequence>``: velodyne/, labels/,
    image_2/, image_3/, voxels/ (every ``label_stride``-th frame, and ``voxels/grid.yaml`` recording their grid),
    calib.txt, poses.txt, times.txt.
    Same seed and options give identical bytes. Numbered files of an earlier, longer run in those folders
    are removed; a non-empty sequence folder that an earlier synthetic run did not write (a real sequence) is
    never touched: ConfigError. Returns the sequence's ``SequencePaths``."""
    options = options or SyntheticOptions()
    paths = SequencePaths.of(output_root, sequence)
    claim_output(paths.dir, [paths.dir])
    scene = SyntheticScene(frames, seed, options)
    remove_stale_files(paths, frames, scene.labelled_frames(), options)
    write_calib(paths.calib, scene.calib)
    write_poses(paths.poses, scene.poses_cam0())
    write_times(paths.times, np.arange(frames) / FRAME_RATE_HZ)
    write_grid_record(paths, options.grid)
    for i, scan, ready, scans in scene.drive(f"synthetic seq {paths.sequence}", progress):
        if i < frames:
            write_points(paths.velodyne(i), scan.points_velo)
            write_point_labels(paths.point_labels(i), scan.semantic, scan.instance)
            if options.write_images:
                write_image(paths.image(i, 2), scene.render(i, 2).rgb)
                if options.write_right_image:
                    write_image(paths.image(i, 3), scene.render(i, 3).rgb)
        for frame in ready:
            write_voxel_files(paths, frame, scene.voxel_labels(frame, scans))
    return paths
