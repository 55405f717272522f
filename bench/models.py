"""Benchmark: parameter count, forward latency and peak memory of model configs at their FULL resolution.

    python bench/models.py                                   # SGN-T/L/S, sgn_tiny, CleanerS; CPU fp32 + bf16
    python bench/models.py --configs sgn_tiny sgn_l --repeats 3 --warmup 1 --train --markdown /tmp/bench.md
    python bench/models.py --device cuda --seed-fraction 0.1
    python bench/models.py --configs htcl_tiny htcl --dtypes fp32 bf16 --train --live-tensors --threads 1
    python bench/models.py --configs --depth sgbm msnet2d msnet3d --dtypes fp32 --live-tensors   # depth sources

For each config (a name in config/models/ or a path) the model is built with ``build_model(cfg)`` (random
weights) and fed one batch made the way the data layer makes it: a ``FrameWindow`` of synthetic frames (random
uint8 images, LiDAR-like random points inside the grid volume, the real KITTI seq-08 calibration from
``ssc_core.data.synthetic.default_calib``, plausible forward motion between frames) goes through
``window_to_sample`` and ``collate``. Grid = ``data.grid``, images = ``data.image_crop``, frames = current +
``data.history_offsets`` (+ VoxFormer's sweep frames, ``sweeps.window_offsets``). The point source is forced to
``lidar``, for ``data.points`` and ``data.sweeps`` alike (the synthetic points stand in for SGN-T/S/L's and
VoxFormer's stereo pseudo-points; stereo matching is not timed; the sweeps' ray casting is data-layer work and
not timed either). VoxFormer's rows (``--configs voxformer_t voxformer_s voxformer_tiny``) run its online proposal
network; a ``hassc_*`` config builds the same model as its base (HASSC only changes training), so its rows show the
zero extra inference cost. With ``data.use_right_image`` the frames carry a right image too; with
``data.image_preprocess: resize_bottom_crop`` (HTCL, L2COcc-C/-D) a KITTI-width crop gets raw KITTI-size images,
so the resize is part of the data path as in training; training rows add ``lidar_depth`` / ``labelled_points``
(from the current frame's synthetic points, random labels) when the config asks for them. Models that read a
stereo depth map (L2COcc-C/-D, ``data.stereo_depth``) get the frame's own ``depth``, a plausible dense one
(``plausible_depth``: the road plane below the horizon, a wall 40 m ahead above it), instead of running the stereo
matcher.

Indoor (RGB-D, ``data.dataset: nyu``) configs, e.g. cleaners_teacher and cleaners_student, get one RGB-D view
instead (``make_rgbd_sample``: a random 640 x 480 image, a flat wall 3 m ahead, its TSDF and mapping computed as
the RGB-D node does); their shape cell reads ``RGB-D 640×480 → h×w`` and ``no LiDAR``.

Distilled students (``DISTILL_TEACHERS``, e.g. l2cocc_d <- l2cocc_l, cleaners_student <- cleaners_teacher): their
training step also runs the frozen teacher (random weights, built from the teacher's config) and the KD terms of
the student's ``distill:`` section through ssc-train's own ``DistillationHook``, so the teacher reads the batch
with ``distill.teacher_inputs`` applied (the CleanerS teacher reads ``tsdf_cad``).

After the table, ``--ratios`` prints each row's time per run (CPU: process CPU seconds; CUDA: wall seconds) and
tensor peak divided by the same-mode, same-device, same-dtype rows of the reference configs (default sgn_t and
htcl) measured in the same run.

Columns: parameters as the official SGN README counts them (every parameter of the model, including the whole
ResNet without its classifier -- ``sum(p.numel() for p in model.parameters())``, the expression
``test/test_sgn.py::test_full_size_parameter_count_matches_official_readme`` checks; no shared helper exists) and
the trained subset; ``analytic M``, a count written from the original's layer list where one exists
(bench/htcl_params.py for HTCL; "—" otherwise); wall-clock latency (median and minimum of ``--repeats`` runs
after ``--warmup`` runs; CUDA is synchronised around each run); CPU seconds per run (process time, all threads,
CPU only); peak memory: CPU = peak resident set size of the process over warm-up + timed runs (``VmHWM`` after
resetting it through ``/proc/self/clear_refs``; without that, ``ru_maxrss``, which cannot be reset and is marked
``*``) and its increase over the resident size just before (model and inputs already resident); CUDA =
``torch.cuda.max_memory_allocated`` (absolute, includes weights and inputs) and its increase over
``memory_allocated`` before; frames/s = 1 / median; with ``--flops`` the GFLOP of one run
(``torch.utils.flop_counter``); with ``--live-tensors`` the peak of live tensor bytes over one run
(bench/tensor_memory.py, the CPU stand-in for ``max_memory_allocated``). After the table, one line per target of
issue #4 (``TARGETS``): the measured value and met / NOT met, or why it was not measured.

Modes: ``forward`` = eval mode under ``torch.no_grad()`` (inference; SGN skips its training-only occupancy head);
``train`` (``--train``) = one training step as ``Trainer.train_step`` does it: gradients cleared, forward under
autocast, losses in float32 against random targets, backward, gradient clipping (35), AdamW step with lr = 0
(the optimizer does all its work but the weights, and so the seeds, stay the same from run to run).

Seeds: with random weights SGN's proposals are arbitrary: depending on the initialisation and on the mode
(BatchNorm batch statistics in training) anything from almost no voxel (then the fallback makes every voxel a
seed) to most of them. ``--seed-fraction F`` sets ``model.seed_threshold`` (the attribute read from the config
key ``model.seed_threshold``) to the proposal logit that keeps the top F of the 1:2 voxels, computed on the
benchmark batch in the measured mode and dtype; ``--seed-fraction 1`` is the worst case for SGN's sparse SGB.
The table reports the seed fraction actually measured.

Depth sources (``--depth sgbm msnet2d msnet3d``, mode ``depth``): the cost of turning one rectified stereo pair of
``--depth-size`` (default 370 x 1220, SemanticKITTI's crop) into pseudo-LiDAR the way the point sources do it:
``stereo_sgbm`` (OpenCV SGBM on the CPU, then back-projection; fp32 only) and ``stereo_msnet`` (MobileStereoNet
with random weights on the device, input padded to multiples of 32, then depth and back-projection on the CPU).
Images: random texture with a 24-pixel shift between the eyes; calibration: KITTI seq-08 scaled to the size.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import os
import platform
import resource
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.htcl_params import htcl_analytic_parameters  # noqa: E402
from ssc_core.config import config_dirs, load_config, resolve_config_path  # noqa: E402
from ssc_core.data.downsample import downsample_labels  # noqa: E402
from ssc_core.data.lidar_targets import labelled_points, lidar_depth_map  # noqa: E402
from ssc_core.data.nyu import NYU_CAM_K  # noqa: E402
from ssc_core.data.rgbd import RGBDFrame, rgbd_frame_to_sample  # noqa: E402
from ssc_core.data.stereo_depth import stereo_depth_source  # noqa: E402
from ssc_core.data.sweeps import window_offsets  # noqa: E402
from ssc_core.data.synthetic.options import SEQ08_IMAGE_SIZE, default_calib, scale_calib  # noqa: E402
from ssc_core.data.transforms import (  # noqa: E402
    collate,
    image_crop_hw,
    image_preprocess_mode,
    uses_left_image,
    window_to_sample,
)
from ssc_core.errors import ConfigError  # noqa: E402
from ssc_core.models import build_model  # noqa: E402
from ssc_core.training.distill import DistillationHook, build_terms  # noqa: E402
from ssc_core.types import Calib, Frame, FrameWindow, GridSpec  # noqa: E402

DEFAULT_CONFIGS = ("sgn_t", "sgn_l", "sgn_s", "sgn_tiny", "cleaners_teacher", "cleaners_student",
                   "cleaners_teacher_tiny", "cleaners_student_tiny")
DEFAULT_REFERENCES = ("sgn_t", "htcl")
# Distilled students and the teacher config their training step runs (random weights, as the student's).
DISTILL_TEACHERS = {"l2cocc_d": "l2cocc_l", "l2cocc_d_kitti360": "l2cocc_l_kitti360", "l2cocc_d_tiny": "l2cocc_l_tiny",
                    "cleaners_student": "cleaners_teacher", "cleaners_student_tiny": "cleaners_teacher_tiny"}
DEPTH_SOURCES = ("sgbm", "msnet2d", "msnet3d")
DTYPES = {"fp32": None, "bf16": torch.bfloat16}
METRES_PER_FRAME = 1.0  # forward motion between raw frames (10 m/s at KITTI's 10 Hz)
GROUND_Z = -1.7  # LiDAR height above the road in KITTI (m)
GRAD_CLIP = 35.0  # SGN's recipe (train.grad_clip)


# ----------------------------------------------------------------------------------------------------- inputs


def lidar_like_points(grid: GridSpec, count: int, rng: np.random.Generator) -> np.ndarray:
    """(count, 4) float32 x, y, z, intensity inside ``grid``'s volume, shaped like a LiDAR scan seen from the
    origin: ranges drawn uniformly (so the density per area falls off as 1 / range), 60 % on a slightly noisy
    ground plane at z = -1.7 m (or the grid floor if that is higher), the rest on vertical structures up to the
    grid top (at most 2.3 m above the ground plane)."""
    lower, upper = np.asarray(grid.origin), np.asarray(grid.max_bound)
    ground_z = max(GROUND_Z, lower[2] + 0.1 * grid.voxel_size)
    top_z = min(upper[2], ground_z + 4.0)
    chunks, have = [], 0
    max_range = float(np.hypot(max(abs(lower[0]), abs(upper[0])), max(abs(lower[1]), abs(upper[1]))))
    while have < count:
        n = 2 * (count - have) + 64
        r = rng.uniform(2.0, max_range, n)
        azimuth = rng.uniform(-np.pi, np.pi, n)
        x, y = r * np.cos(azimuth), r * np.sin(azimuth)
        z = np.where(rng.random(n) < 0.6, ground_z + rng.normal(0.0, 0.03, n), rng.uniform(ground_z, top_z, n))
        pts = np.column_stack([x, y, z])
        inside = np.all((pts > lower + 1e-3) & (pts < upper - 1e-3), axis=1)
        chunks.append(pts[inside])
        have += int(inside.sum())
    xyz = np.concatenate(chunks)[:count]
    intensity = rng.uniform(0.0, 1.0, (count, 1))
    return np.hstack([xyz, intensity]).astype(np.float32)


def benchmark_calib(crop_hw: tuple[int, int], preprocess: str = "top_left_crop") -> tuple[Calib, tuple[int, int]]:
    """The calibration and raw image size (H, W) of the synthetic frames for a crop of ``crop_hw``.

    A crop that fits a KITTI image of at least 90 % of its width (SemanticKITTI's 370 x 1220), or a KITTI-width
    crop resized from the raw image (HTCL's ``resize_bottom_crop`` to 384 x 1280), gets the raw seq-08 image size
    and calibration, so ``window_to_sample`` really crops (and resizes); any other size (the small synthetic world's
    96 x 320, KITTI-360's 376 x 1408) gets images of exactly the crop and the calibration scaled to it, as the
    synthetic generator does."""
    kitti_w, kitti_h = SEQ08_IMAGE_SIZE
    crop_h, crop_w = crop_hw
    fits = crop_h <= kitti_h and 0.9 * kitti_w <= crop_w <= kitti_w
    resized = preprocess == "resize_bottom_crop" and 0.9 * kitti_w <= crop_w <= 1.1 * kitti_w
    if fits or resized:
        return default_calib(), (kitti_h, kitti_w)
    return scale_calib(default_calib(), SEQ08_IMAGE_SIZE, (crop_w, crop_h)), (crop_h, crop_w)


def plausible_depth(calib: Calib, image_hw: tuple[int, int], wall_m: float = 40.0) -> np.ndarray:
    """(H, W) float32 depth of a raw left image of a flat road: pixels whose ray meets the ground plane (z = -1.7 m
    in the LiDAR frame) within ``wall_m`` metres ahead get that depth, the others a wall ``wall_m`` ahead."""
    h, w = image_hw
    v, u = np.mgrid[0:h, 0:w].astype(np.float64)
    rays_cam = np.linalg.inv(calib.K) @ np.stack([u.ravel(), v.ravel(), np.ones(h * w)])  # z_cam = 1
    T_velo_cam = np.linalg.inv(calib.T_cam0_velo)
    origin = T_velo_cam[:3, 3]
    rays = T_velo_cam[:3, :3] @ rays_cam
    with np.errstate(divide="ignore", invalid="ignore"):
        ground = (GROUND_Z - origin[2]) / rays[2]  # metres along z_cam to the road
    depth = np.where((ground > 0) & (ground < wall_m), ground, wall_m)
    return depth.reshape(h, w).astype(np.float32)


def make_window(cfg: dict, points_per_frame: int, seed: int = 0) -> FrameWindow:
    """A FrameWindow for ``cfg``: current frame plus the history frames it needs (``sweeps.window_offsets``:
    ``data.history_offsets`` and any sweep frames, oldest first), random images (a right one too with
    ``data.use_right_image``), LiDAR-like points in each frame's own LiDAR frame, and T_cur_hist of straight
    forward motion."""
    data = cfg["data"]
    rng = np.random.default_rng(seed)
    grid = GridSpec.from_dict(data.get("grid") or {})
    crop = image_crop_hw(data) or (SEQ08_IMAGE_SIZE[1], SEQ08_IMAGE_SIZE[0])
    calib, (img_h, img_w) = benchmark_calib(crop, image_preprocess_mode(data))
    current_index = 100
    offsets = window_offsets(data)
    stereo = bool(data.get("use_right_image"))

    def image() -> np.ndarray:
        return rng.integers(0, 256, (img_h, img_w, 3), dtype=np.uint8)

    depth = plausible_depth(calib, (img_h, img_w))

    def frame(index: int) -> Frame:
        return Frame(stamp_ns=index * 100_000_000, image_left=image(), calib=calib,
                     image_right=image() if stereo else None,
                     points_velo=lidar_like_points(grid, points_per_frame, rng), index=index, depth=depth)

    history, transforms = [], []
    for offset in offsets:
        history.append(frame(current_index + offset))
        T = np.eye(4)
        T[0, 3] = offset * METRES_PER_FRAME  # the older frame's LiDAR sat behind the current one
        transforms.append(T)
    return FrameWindow(current=frame(current_index), history=history, T_cur_hist=transforms)


def make_rgbd_sample(cfg: dict, seed: int = 0) -> dict:
    """The sample of an indoor (RGB-D, ``data.dataset: nyu``) config through ``rgbd_frame_to_sample``: a random
    640 x 480 image and NYU's intrinsics, a camera 1.2 m high looking along the grid's y axis at a wall 3 m ahead
    (every pixel has depth), the grid starting 0.3 m behind it; plus a random ``label_weight`` (60 % weighted).
    With ``data.load_tsdf_cad`` (the distilled student, whose teacher reads it) also ``tsdf_cad``: the depth is
    noise-free, so the TSDF-CAD of the view is its TSDF."""
    rng = np.random.default_rng(seed)
    grid = replace(GridSpec.from_dict(cfg["data"].get("grid") or {}), origin=(-2.4, -0.3, -0.1))
    T_grid_cam = np.eye(4)
    T_grid_cam[:3, :3] = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])  # x right, y down, z ahead
    T_grid_cam[:3, 3] = (0.0, 0.0, 1.2)
    frame = RGBDFrame(image_rgb=rng.integers(0, 256, (480, 640, 3), dtype=np.uint8),
                      depth_m=np.full((480, 640), 3.0, np.float32), K=NYU_CAM_K, T_grid_cam=T_grid_cam)
    sample = rgbd_frame_to_sample(frame, grid, cfg["data"])
    sample["label_weight"] = torch.from_numpy((rng.random(grid.dims) < 0.6).astype(np.float32))
    if cfg["data"].get("load_tsdf_cad"):
        sample["tsdf_cad"] = sample["tsdf"].clone()
    return sample


def make_batch(cfg: dict, points_per_frame: int, with_targets: bool, seed: int = 0) -> dict:
    """One collated batch (B = 1) through ``window_to_sample`` (``make_rgbd_sample`` for indoor configs) +
    ``collate``; with ``with_targets``, random ``target`` (70 % empty, 5 % ignore, the rest classes 1..K-1) and its
    ``target_1_2`` (SSCNet downsampling)."""
    window = None if cfg["data"].get("dataset") == "nyu" else make_window(cfg, points_per_frame, seed)
    sample = make_rgbd_sample(cfg, seed) if window is None else window_to_sample(window, cfg["data"])
    if with_targets:
        if window is not None:
            add_lidar_targets(sample, window.current, cfg, seed)
        grid = GridSpec.from_dict(cfg["data"].get("grid") or {})
        num_classes = int((cfg.get("model") or {}).get("num_classes", 20))
        rng = np.random.default_rng(seed + 1)
        u = rng.random(grid.dims)
        target = np.where(u < 0.70, 0, rng.integers(1, num_classes, grid.dims))
        target = np.where(u > 0.95, 255, target).astype(np.int64)
        sample["target"] = torch.from_numpy(target)
        sample["target_1_2"] = torch.from_numpy(downsample_labels(target, 2).astype(np.int64))
    return collate([sample])


def batch_shape(cfg: dict, batch: dict) -> str:
    """The ``grid / image / frames / points`` cell of a config's batch: the grid, the image size the model sees
    (the crop, ``raw``, ``RGB-D WxH -> hxw`` for indoor configs, or ``no camera``), the frame count and the number of
    LiDAR points (``no LiDAR`` for RGB-D configs, whose batches carry a TSDF instead)."""
    data = cfg["data"]
    grid = GridSpec.from_dict(data.get("grid") or {})
    frames = len(data.get("history_offsets") or []) + 1
    if "points" not in batch:
        mapping_h, mapping_w = batch["mapping2d"].shape[-2:]
        img_h, img_w = batch["img"].shape[-2:]
        image = f"RGB-D {mapping_w}×{mapping_h}" + ("" if (img_h, img_w) == (mapping_h, mapping_w)
                                                      else f" → {img_w}×{img_h}")
        points = "no LiDAR"
    else:
        crop = image_crop_hw(data) if uses_left_image(data) else None
        image = "×".join(map(str, crop)) if crop else "raw" if uses_left_image(data) else "no camera"
        points = str(len(batch["points"]))
    return f"{'×'.join(map(str, grid.dims))} @ {grid.voxel_size:g} m / {image} / {frames} / {points}"


def add_lidar_targets(sample: dict, current: Frame, cfg: dict, seed: int) -> None:
    """``lidar_depth`` / ``labelled_points`` of the current frame's points (random labels 1..K-1), where the
    config's data section asks for them (``data.lidar_depth``, ``data.labelled_points``)."""
    data = cfg["data"]
    geometry = (current.calib.P2, current.calib.T_cam0_velo, sample["post_rot"][-1].double().numpy(),
                sample["post_tran"][-1].double().numpy(), tuple(int(v) for v in sample["image_hw"]))
    if data.get("lidar_depth"):
        sample["lidar_depth"] = torch.from_numpy(lidar_depth_map(current.points_velo, *geometry))
    if data.get("labelled_points"):
        num_classes = int((cfg.get("model") or {}).get("num_classes", 20))
        labels = np.random.default_rng(seed + 2).integers(1, num_classes, len(current.points_velo))
        sample["labelled_points"] = torch.from_numpy(labelled_points(current.points_velo, labels, *geometry))


def analytic_parameters(cfg: dict) -> int | None:
    """A parameter count from the original's layer list where one is written (HTCL), else None."""
    if (cfg.get("model") or {}).get("name") != "htcl":
        return None
    try:
        return sum(htcl_analytic_parameters(cfg).values())
    except KeyError:  # a backbone without a published size
        return None


def move_to(batch: dict, device: torch.device) -> dict:
    """The batch with every tensor on ``device``."""
    return {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}


# ----------------------------------------------------------------------------------------------------- memory


_LIBC: ctypes.CDLL | None = None
with contextlib.suppress(OSError):
    _LIBC = ctypes.CDLL("libc.so.6")


def _status_kb(key: str) -> int | None:
    """A ``kB`` field of /proc/self/status (VmRSS, VmHWM), or None where there is none."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def release_host_memory() -> None:
    """Collect garbage and hand freed heap back to the OS (glibc ``malloc_trim``), so the next measurement's
    baseline is not inflated by what the previous one left in the allocator."""
    gc.collect()
    if _LIBC is not None:
        with contextlib.suppress(AttributeError):
            _LIBC.malloc_trim(0)


class HostPeak:
    """Peak resident set size of this process over a region.

    Linux >= 4.0 resets the high-water mark ``VmHWM`` when 5 is written to /proc/self/clear_refs; where that
    fails, ``ru_maxrss`` (never reset: the region's peak is then a lower bound when an earlier peak was higher,
    ``exact`` is False)."""

    def __init__(self) -> None:
        self.base_kb = 0
        self.exact = False

    def __enter__(self) -> HostPeak:
        release_host_memory()
        try:
            with open("/proc/self/clear_refs", "w") as fh:
                fh.write("5")
            self.exact = _status_kb("VmHWM") is not None
        except OSError:
            self.exact = False
        self.base_kb = _status_kb("VmRSS") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def peak_bytes(self) -> tuple[int, int]:
        """(peak resident bytes, increase over the resident bytes at entry)."""
        peak_kb = _status_kb("VmHWM") if self.exact else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        peak_kb = peak_kb or 0
        return peak_kb * 1024, max(0, peak_kb - self.base_kb) * 1024


# ----------------------------------------------------------------------------------------------------- measure


@dataclass
class Result:
    """One table row."""

    config: str
    device: str
    dtype: str
    mode: str
    params_m: float
    trained_m: float
    shape: str
    analytic_m: float | None = None
    voxels_1_2: int = 1
    seed_fraction: float | None = None
    gflop: float | None = None
    times_s: list[float] = field(default_factory=list)
    cpu_s: list[float] = field(default_factory=list)
    peak_bytes: int | None = None
    peak_delta_bytes: int | None = None
    tensor_peak_bytes: int | None = None
    memory_exact: bool = True
    error: str | None = None


def count_parameters(model: torch.nn.Module) -> tuple[int, int]:
    """(all parameters, trained parameters): all is the official SGN README's count (whole model including the
    whole ResNet without classifier), the expression test_sgn.py checks against 28.2 M / 12.5 M."""
    total = sum(p.numel() for p in model.parameters())
    trained = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return total, trained


def autocast_ctx(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    """``torch.autocast`` for bf16, a no-op for fp32."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def synchronize(device: torch.device) -> None:
    """Wait for queued CUDA work (no-op on CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def fit_seed_threshold(model: torch.nn.Module, batch: dict, fraction: float, train: bool,
                       dtype: torch.dtype | None) -> None:
    """Set ``model.seed_threshold`` so that the top ``fraction`` of the 1:2 voxels (by proposal logit on this
    batch, in this mode and dtype) are seeds."""
    if not hasattr(model, "seed_threshold") or not hasattr(model, "svpn"):
        raise ConfigError("--seed-fraction needs a model with SGN's svpn and seed_threshold")
    device = batch["img"].device
    model.train(train)
    with torch.no_grad(), autocast_ctx(device, dtype):
        logits, _ = model.svpn(batch["points"], batch["img"].shape[0])
    flat = logits.detach().float().flatten()
    keep = min(flat.numel(), max(2, round(fraction * flat.numel())))
    if keep >= flat.numel():
        model.seed_threshold = float(flat.min()) - 1.0
    else:  # exactly ``keep`` voxels lie above the (numel - keep)-th smallest logit when there are no ties
        model.seed_threshold = float(torch.kthvalue(flat.cpu(), flat.numel() - keep).values)


def count_gflop(step: Callable[[], int | None]) -> float:
    """Floating-point operations of one ``step`` in GFLOP, counted by ``torch.utils.flop_counter`` (matrix
    products and convolutions, forward and backward; the sparse convolutions count as their matrix products)."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        step()
    return counter.get_total_flops() / 1e9


def live_tensor_peak(step: Callable[[], int | None], model: torch.nn.Module, batch: dict,
                     optimizer: torch.optim.Optimizer | None) -> int:
    """Peak bytes of live tensors over one more ``step`` (bench/tensor_memory.py): the weights, buffers, inputs
    and optimizer state that exist before it, plus everything the step makes, freed as it goes. On a GPU this is
    close to ``torch.cuda.max_memory_allocated``; on a CPU it is the number to compare with GPU figures."""
    from bench.tensor_memory import LiveTensorPeak

    tracker = LiveTensorPeak()
    with tracker:
        tracker.track(model.parameters())
        tracker.track(model.buffers())
        tracker.track(batch.values())
        if optimizer is not None:
            tracker.track(v for state in optimizer.state.values() for v in state.values())
        step()
    return tracker.peak_bytes


def selected_voxels(outputs: dict) -> int | None:
    """How many 1:2 voxels the forward pass selected: SGN's seeds, VoxFormer's query proposals (None for other
    models)."""
    if "seed_coords" in outputs:
        return len(outputs["seed_coords"])
    if "proposal" in outputs:
        return int(outputs["proposal"].sum())
    return None


def time_runs(step: Callable[[], int | None], device: torch.device, warmup: int, repeats: int,
              result: Result) -> None:
    """Run ``step`` warmup + repeats times, recording wall and CPU seconds of the timed runs and peak memory
    over all of them. ``step`` returns how many voxels its forward pass selected (``selected_voxels``)."""
    if device.type == "cuda":
        synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
    with HostPeak() as host:
        for i in range(warmup + repeats):
            synchronize(device)
            wall, cpu = time.perf_counter(), time.process_time()
            seeds = step()
            synchronize(device)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            if i >= warmup:
                result.times_s.append(wall)
                result.cpu_s.append(cpu)
            if seeds is not None:
                result.seed_fraction = seeds / result.voxels_1_2
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device)
        result.peak_bytes, result.peak_delta_bytes = peak, peak - base
    else:
        result.peak_bytes, result.peak_delta_bytes = host.peak_bytes()
        result.memory_exact = host.exact


class BenchAutocast:
    """What ``DistillationHook.kd_losses`` reads of a Trainer: ``autocast()``, here the measured device and dtype."""

    def __init__(self, device: torch.device, dtype: torch.dtype | None) -> None:
        self.device, self.dtype = device, dtype

    def autocast(self) -> contextlib.AbstractContextManager:
        return autocast_ctx(self.device, self.dtype)


def build_bench_teacher(name: str, cfg: dict) -> DistillationHook | None:
    """The distillation hook of a distilled student's training rows (``DISTILL_TEACHERS``), None for other
    configs: the teacher built with random weights from its own config on the student's grid, held frozen in eval
    mode by the same ``DistillationHook`` ssc-train uses, with the student's ``distill.terms`` and
    ``distill.teacher_inputs`` (CleanerS: the teacher reads ``tsdf_cad`` as its ``tsdf``)."""
    teacher_name = DISTILL_TEACHERS.get(name)
    if teacher_name is None:
        return None
    section = cfg.get("distill") or {}
    teacher_cfg = load_config(teacher_name, {"data": {"grid": cfg["data"].get("grid")}})
    return DistillationHook(build_model(teacher_cfg), build_terms(section.get("terms")),
                            section.get("teacher_inputs"))


def measure(name: str, cfg: dict, model: torch.nn.Module, batch_cpu: dict, device: torch.device, dtype_name: str,
            mode: str, args: argparse.Namespace, params: tuple[int, int], shape: str,
            distill: DistillationHook | None = None) -> Result:
    """One (config, device, dtype, mode) measurement; an exception becomes the row's error. ``distill``: the
    distillation hook (frozen teacher, KD terms) run in the training step of a distilled student."""
    grid = GridSpec.from_dict(cfg["data"].get("grid") or {})
    analytic = analytic_parameters(cfg)
    result = Result(name, device.type, dtype_name, mode, params[0] / 1e6, params[1] / 1e6, shape,
                    analytic_m=None if analytic is None else analytic / 1e6, voxels_1_2=grid.num_voxels // 8)
    dtype = DTYPES[dtype_name]
    train = mode == "train"
    # Train steps update BatchNorm running statistics (AdamW's lr 0 keeps the weights), which would change the
    # proposals, and so the seeds, of every later row: each row starts from the same state.
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    try:
        batch = move_to(batch_cpu, device)
        if args.seed_fraction is not None and hasattr(model, "svpn"):  # models without SGN's seeds: no-op
            fit_seed_threshold(model, batch, args.seed_fraction, train, dtype)
        model.train(train)
        optimizer = None
        if train:
            optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=0.0,
                                          weight_decay=0.01)
            clip = (cfg.get("train") or {}).get("grad_clip", GRAD_CLIP)
            if distill is not None:
                distill.teacher.to(device)

            def step() -> int | None:
                optimizer.zero_grad(set_to_none=True)  # as Trainer.train_group: before the forward pass
                with autocast_ctx(device, dtype):
                    outputs = model(batch)
                if dtype is not None:  # as Trainer.train_step: losses in float32
                    outputs = {k: v.float() if torch.is_tensor(v) and v.is_floating_point() else v
                               for k, v in outputs.items()}
                losses = model.losses(outputs, batch)
                if distill is not None:  # the distillation hook: frozen teacher on its inputs, KD terms
                    losses.update(distill.kd_losses(outputs, batch, BenchAutocast(device, dtype)))
                total = sum(v.float() for v in losses.values())
                total.backward()
                if clip is not None:
                    torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], clip)
                optimizer.step()
                return selected_voxels(outputs)
        else:

            def step() -> int | None:
                with torch.no_grad(), autocast_ctx(device, dtype):
                    return selected_voxels(model(batch))

        if args.flops:
            result.gflop = count_gflop(step)
        time_runs(step, device, args.warmup, args.repeats, result)
        if args.live_tensors:
            result.tensor_peak_bytes = live_tensor_peak(step, model, batch, optimizer)
    except Exception as exc:  # noqa: BLE001 - a failed row must not stop the other rows
        result.error = f"{type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''}"
    finally:
        model.zero_grad(set_to_none=True)
        model.load_state_dict(state)
        del state
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return result


def stereo_pair(size_hw: tuple[int, int], seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A rectified (H, W, 3) uint8 pair of blocky random texture, the right eye seeing it 24 pixels further left."""
    h, w = size_hw
    rng = np.random.default_rng(seed)
    texture = rng.integers(0, 256, ((h + 3) // 4, (w + 24 + 3) // 4, 3), dtype=np.uint8)
    wide = np.repeat(np.repeat(texture, 4, axis=0), 4, axis=1)[:h, : w + 24]
    return np.ascontiguousarray(wide[:, 24:]), np.ascontiguousarray(wide[:, :w])


def measure_depth(source: str, device: torch.device, dtype_name: str, args: argparse.Namespace) -> Result:
    """One depth-source row: stereo pair -> disparity -> depth -> pseudo-LiDAR points (see the docstring)."""
    from ssc_core.data.depth_sources import depth_to_points_velo, stereo_sgbm_points
    from ssc_core.data.stereo_msnet import disparity_to_depth_clipped
    from ssc_core.models.stereo.msnet import build_msnet, padded_size, predict_disparity

    h, w = args.depth_size
    calib = scale_calib(default_calib(), SEQ08_IMAGE_SIZE, (w, h))
    left, right = stereo_pair((h, w))
    net = None if source == "sgbm" else build_msnet(source).to(device).eval()
    params = 0 if net is None else sum(p.numel() for p in net.parameters())
    shape = f"{h}×{w} pair" + ("" if net is None else " (net {}×{})".format(*padded_size(h, w)))
    result = Result(f"depth: {source}", device.type, dtype_name, "depth", params / 1e6, 0.0, shape)
    dtype = DTYPES[dtype_name]
    frame = Frame(stamp_ns=0, image_left=left, calib=calib, image_right=right)

    def step() -> None:
        if net is None:
            stereo_sgbm_points(frame, {"points": {"source": "stereo_sgbm"}})
            return None
        with autocast_ctx(device, dtype):
            disparity = predict_disparity(net, left, right)
        depth_to_points_velo(disparity_to_depth_clipped(disparity, 0.54 * float(calib.P2[0, 0])), calib)
        return None

    try:
        time_runs(step, device, args.warmup, args.repeats, result)
        if args.live_tensors and net is not None:
            result.tensor_peak_bytes = live_tensor_peak(step, net, {}, None)
    except Exception as exc:  # noqa: BLE001 - a failed row must not stop the other rows
        result.error = f"{type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''}"
    finally:
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return result


# ----------------------------------------------------------------------------------------------------- report


def _gb(n: int | None) -> str:
    return "—" if n is None else f"{n / 1e9:.2f}"


def _secs(values: list[float], fn: Callable[[list[float]], float]) -> str:
    if not values:
        return "—"
    v = fn(values)
    return f"{v:.3f}" if v < 10 else f"{v:.1f}"


COLUMNS = ("config", "params M (trained)", "analytic M", "grid / image / frames / points", "device", "dtype", "mode",
           "seeds", "runs", "median s", "min s", "frames/s", "GFLOP", "CPU s/run", "peak mem GB", "peak Δ GB",
           "tensor peak GB")


def rows(results: list[Result]) -> list[list[str]]:
    """Table cells per result."""
    out = []
    for r in results:
        analytic = "—" if r.analytic_m is None else f"{r.analytic_m:.2f}"
        cells = [r.config, f"{r.params_m:.2f} ({r.trained_m:.2f})", analytic, r.shape, r.device, r.dtype, r.mode]
        if r.error:
            cells += ["—", "0", f"failed: {r.error}", "", "", "", "", "", "", ""]
        else:
            star = "" if r.memory_exact else "*"
            seeds = "—" if r.seed_fraction is None else f"{100 * r.seed_fraction:.1f} %"
            cpu = _secs(r.cpu_s, statistics.median) if r.device == "cpu" else "—"
            fps = f"{1.0 / statistics.median(r.times_s):.1f}" if r.times_s else "—"
            gflop = "—" if r.gflop is None else f"{r.gflop:.0f}"
            cells += [seeds, str(len(r.times_s)), _secs(r.times_s, statistics.median), _secs(r.times_s, min), fps,
                      gflop, cpu, _gb(r.peak_bytes) + star, _gb(r.peak_delta_bytes) + star, _gb(r.tensor_peak_bytes)]
        out.append(cells)
    return out


@dataclass(frozen=True)
class Target:
    """A target of issue #4 checked against one table row: ``config`` on ``device`` in ``dtype`` and ``mode``,
    ``quantity`` 'fps' (at least ``limit``) or 'peak_gb' (below ``limit``) or 'seconds' (at most ``limit``)."""

    text: str
    config: str
    device: str
    dtype: str
    mode: str
    quantity: str
    limit: float


TARGETS = (
    Target("SGN-T at full resolution on one GPU in bf16: >= 20 frames/s", "sgn_t", "cuda", "bf16", "forward",
           "fps", 20.0),
    Target("SGN-L training memory on one GPU below the paper's 7.16 GB", "sgn_l", "cuda", "fp32", "train",
           "peak_gb", 7.16),
    Target("SGN-L inference on CPU in a few seconds per frame (<= 10 s)", "sgn_l", "cpu", "fp32", "forward",
           "seconds", 10.0),
)


def target_lines(results: list[Result]) -> list[str]:
    """One line per target: the measured value and met / NOT met, or why it was not measured."""
    lines = []
    for t in TARGETS:
        row = next((r for r in results if (r.config, r.device, r.dtype, r.mode) == (t.config, t.device, t.dtype,
                                                                                     t.mode)), None)
        if row is None:
            lines.append(f"{t.text}: not measured (no {t.config} {t.device} {t.dtype} {t.mode} row)")
            continue
        if row.error or not row.times_s:
            lines.append(f"{t.text}: not measured ({row.error or 'no timed run'})")
            continue
        median = statistics.median(row.times_s)
        if t.quantity == "fps":
            value, unit = 1.0 / median, "frames/s"
            met = value >= t.limit
        elif t.quantity == "peak_gb":
            value, unit = (row.peak_bytes or 0) / 1e9, "GB"
            met = value < t.limit
        else:
            value, unit = median, "s"
            met = value <= t.limit
        lines.append(f"{t.text}: {value:.2f} {unit}, {'met' if met else 'NOT met'}")
    return lines


def ratio_lines(results: list[Result], references: list[str]) -> list[str]:
    """For every row of a config that is not a reference: its time per run and its tensor peak (else its peak
    memory) divided by those of each reference config's row of the same device, dtype and mode, e.g.
    ``l2cocc_d cpu fp32 forward: CPU s 0.42x sgn_t, 0.61x htcl; tensor peak 1.3x sgn_t, 0.50x htcl``. CPU rows
    compare the median process CPU seconds (what a shared, loaded machine does not inflate), CUDA rows the median
    wall seconds."""
    def key(r: Result) -> tuple[str, str, str]:
        return r.device, r.dtype, r.mode

    def seconds(r: Result) -> float:
        return statistics.median(r.cpu_s if r.device == "cpu" and r.cpu_s else r.times_s)

    def memory(r: Result) -> tuple[int | None, str]:
        return (r.tensor_peak_bytes, "tensor peak") if r.tensor_peak_bytes else (r.peak_bytes, "peak mem")

    good = [r for r in results if not r.error and r.times_s]
    lines = []
    for row in good:
        if row.config in references:
            continue
        refs = [r for ref in references for r in good if r.config == ref and key(r) == key(row)]
        if not refs:
            continue
        what = "CPU s" if row.device == "cpu" and row.cpu_s else "latency"
        latency = ", ".join(f"{seconds(row) / seconds(r):.2f}x {r.config}" for r in refs)
        mem, mem_what = memory(row)
        mems = ", ".join(f"{mem / memory(r)[0]:.2f}x {r.config}" for r in refs if mem and memory(r)[0])
        lines.append(f"{row.config} {' '.join(key(row))}: {what} {latency}; {mem_what} {mems or '—'}")
    return lines


def header_lines(args: argparse.Namespace, devices: list[torch.device]) -> list[str]:
    """What was measured, on what."""
    seeds = ("seeds: the random-weight model's own proposals (SGN's seeds, VoxFormer's query proposals; the "
             "fraction depends on the initialisation and the mode; column 'seeds')"
             if args.seed_fraction is None else
             f"seeds: model.seed_threshold set so that {100 * args.seed_fraction:g} % of the 1:2 voxels are seeds")
    gpu = ", ".join(torch.cuda.get_device_name(d) for d in devices if d.type == "cuda") or "none used"
    return [
        f"torch {torch.__version__}, Python {platform.python_version()}, {platform.machine()}, "
        f"{os.cpu_count()} CPU cores visible, torch threads {torch.get_num_threads()}, GPU: {gpu}",
        "batch 1, random weights, full config resolution; inputs: synthetic FrameWindow -> window_to_sample -> "
        f"collate ({args.points} LiDAR-like points per frame, random images, KITTI seq-08 calibration)",
        "forward = eval + no_grad; train = forward, losses (fp32), backward, clip, AdamW (lr 0); "
        f"{args.warmup} warm-up run(s), then median / min wall seconds of the timed runs",
        seeds,
        "peak mem: CPU = process peak RSS over warm-up + timed runs, Δ = over RSS before them (model and inputs "
        "resident); CUDA = torch.cuda.max_memory_allocated, Δ = over memory_allocated before"
        + ("; * = ru_maxrss (not resettable, lower bound)" if not all_exact_hint() else ""),
    ]


def all_exact_hint() -> bool:
    """Whether VmHWM can be reset here (else CPU peaks come from ru_maxrss)."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return _status_kb("VmHWM") is not None
    except OSError:
        return False


def markdown_table(cells: list[list[str]]) -> str:
    """A GitHub Markdown table."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in cells]
    return "\n".join(lines)


def text_table(cells: list[list[str]]) -> str:
    """A plain aligned table for the terminal."""
    widths = [max(len(str(x)) for x in col) for col in zip(COLUMNS, *cells)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    lines = [fmt.format(*COLUMNS), fmt.format(*("-" * w for w in widths))]
    lines += [fmt.format(*row) for row in cells]
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", nargs="*", default=list(DEFAULT_CONFIGS),
                        help=f"config names in config/models/ or paths (default: {' '.join(DEFAULT_CONFIGS)}; "
                             "none with --configs alone)")
    parser.add_argument("--depth", nargs="+", choices=DEPTH_SOURCES, default=[],
                        help="also measure these depth sources (stereo pair -> pseudo-LiDAR)")
    parser.add_argument("--depth-size", type=int, nargs=2, metavar=("H", "W"), default=[370, 1220],
                        help="stereo image size of the depth rows (default: 370 1220)")
    parser.add_argument("--device", choices=("cpu", "cuda", "all"), default="all",
                        help="cpu, cuda, or all = cpu plus cuda when torch.cuda.is_available() (default)")
    parser.add_argument("--dtypes", nargs="+", choices=tuple(DTYPES), default=list(DTYPES),
                        help="fp32 and/or bf16 (torch.autocast) (default: both)")
    parser.add_argument("--train", action="store_true", help="also time one training step")
    parser.add_argument("--no-forward", action="store_true", help="skip the forward (inference) rows")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per row, median reported (default 5)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed runs before them (default 2)")
    parser.add_argument("--points", type=int, default=40_000,
                        help="LiDAR-like points per frame inside the grid volume (default 40000: 200 k per "
                             "5-frame window, as docs/models.md measured)")
    parser.add_argument("--seed-fraction", type=float, default=None,
                        help="fraction (0, 1] of 1:2 voxels made seeds via model.seed_threshold (default: the "
                             "random-weight model's own proposals; 1 = every voxel, the worst case); models "
                             "without SGN's seeds ignore it")
    parser.add_argument("--threads", type=int, default=None,
                        help=f"torch.set_num_threads (default: all {os.cpu_count()} cores)")
    parser.add_argument("--flops", action="store_true",
                        help="also count each row's GFLOP in one extra untimed run (torch.utils.flop_counter)")
    parser.add_argument("--live-tensors", action="store_true",
                        help="also measure each row's peak of live tensor bytes in one extra untimed run (the CPU "
                             "stand-in for torch.cuda.max_memory_allocated; bench/tensor_memory.py)")
    parser.add_argument("--ratios", nargs="*", metavar="CONFIG", default=None,
                        help="after the table, each other row's latency and tensor peak divided by these reference "
                             "configs' rows of the same device / dtype / mode (given alone: sgn_t htcl)")
    parser.add_argument("--markdown", metavar="FILE", default=None, help="also write the table as Markdown")
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.warmup < 0 or args.points < 1:
        parser.error("--repeats must be >= 1, --warmup >= 0, --points >= 1")
    if args.seed_fraction is not None and not 0.0 < args.seed_fraction <= 1.0:
        parser.error(f"--seed-fraction must be in (0, 1], got {args.seed_fraction}")
    if args.threads is not None and args.threads < 1:
        parser.error(f"--threads must be >= 1, got {args.threads}")
    if args.no_forward and not args.train and not args.depth:
        parser.error("--no-forward without --train or --depth leaves nothing to measure")
    if not args.configs and not args.depth:
        parser.error("no --configs and no --depth: nothing to measure")
    if min(args.depth_size) < 16:
        parser.error(f"--depth-size must be at least 16 16, got {args.depth_size}")
    return args


def load_configs(names: list[str]) -> dict[str, dict]:
    """Parsed configs by name, with ``data.points.source`` forced to lidar and a stereo depth source to the frames'
    own depth maps; a clear error for unknown names."""
    configs = {}
    for name in names:
        try:
            resolve_config_path(name)
        except ConfigError:
            known = sorted({p.stem for d in config_dirs() for p in Path(d).glob("*.yaml")
                            if Path(d).name == "models"})
            raise ConfigError(f"unknown config {name!r}: not a file and not in config/models/ "
                              f"(known: {', '.join(known)})") from None
        cfg = load_config(name, {"data": {"points": {"source": "lidar"}}})
        if isinstance(cfg["data"].get("sweeps"), dict):
            cfg["data"]["sweeps"].update(source="lidar", root=None)
        if stereo_depth_source(cfg["data"]) != "none":  # the frame's own depth map: no stereo matcher run
            cfg["data"]["stereo_depth"] = {"source": "precomputed"}
        configs[name] = cfg
        if not (configs[name].get("model") or {}).get("name"):
            raise ConfigError(f"config {name!r} has no model.name (is it a data config?)")
    return configs


def main(argv: list[str] | None = None) -> int:
    """Measure every config on every requested device and dtype; print (and optionally write) the table."""
    args = parse_args(argv)
    torch.set_num_threads(args.threads or os.cpu_count() or 1)
    if args.depth:
        import cv2

        cv2.setNumThreads(torch.get_num_threads())
    try:
        configs = load_configs(args.configs)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    devices = [torch.device("cpu")] if args.device in ("cpu", "all") else []
    if args.device in ("cuda", "all") and torch.cuda.is_available():
        devices.append(torch.device("cuda"))
    elif args.device == "cuda":
        print("error: --device cuda but torch.cuda.is_available() is False", file=sys.stderr)
        return 2
    modes = ([] if args.no_forward else ["forward"]) + (["train"] if args.train else [])

    results: list[Result] = []
    for name, cfg in configs.items():
        torch.manual_seed(0)
        model = build_model(cfg)
        distill = build_bench_teacher(name, cfg) if "train" in modes else None
        params = count_parameters(model)
        batch = make_batch(cfg, args.points, with_targets="train" in modes)
        shape = batch_shape(cfg, batch)
        threshold = getattr(model, "seed_threshold", None)
        for device in devices:
            model.to(device)
            for dtype_name in args.dtypes:
                for mode in modes:
                    print(f"{name} {device.type} {dtype_name} {mode} ...", file=sys.stderr, flush=True)
                    r = measure(name, cfg, model, batch, device, dtype_name, mode, args, params, shape, distill)
                    if threshold is not None:
                        model.seed_threshold = threshold
                    results.append(r)
                    print("  " + (r.error or f"median {_secs(r.times_s, statistics.median)} s, peak "
                                  f"{_gb(r.peak_bytes)} GB (Δ {_gb(r.peak_delta_bytes)})"),
                          file=sys.stderr, flush=True)
            model.to("cpu")
        del model, batch
        release_host_memory()

    for source in args.depth:
        for device in devices if source != "sgbm" else [torch.device("cpu")]:
            for dtype_name in args.dtypes if source != "sgbm" else ["fp32"]:
                print(f"depth {source} {device.type} {dtype_name} ...", file=sys.stderr, flush=True)
                r = measure_depth(source, device, dtype_name, args)
                results.append(r)
                print("  " + (r.error or f"median {_secs(r.times_s, statistics.median)} s"), file=sys.stderr,
                      flush=True)
                release_host_memory()

    cells = rows(results)
    header = header_lines(args, devices)
    verdicts = target_lines(results)
    ratios = [] if args.ratios is None else ratio_lines(results, args.ratios or list(DEFAULT_REFERENCES))
    print("\n".join(header))
    print(text_table(cells))
    print("targets:\n" + "\n".join(f"  {line}" for line in verdicts))
    if ratios:
        print("ratios (same run):\n" + "\n".join(f"  {line}" for line in ratios))
    if args.markdown:
        text = ("\n".join(f"- {line}" for line in header) + "\n\n" + markdown_table(cells) + "\n\nTargets:\n\n"
                + "\n".join(f"- {line}" for line in verdicts) + "\n")
        if ratios:
            text += "\nRatios (same run):\n\n" + "\n".join(f"- {line}" for line in ratios) + "\n"
        Path(args.markdown).write_text(text)
        print(f"wrote {args.markdown}", file=sys.stderr)
    return 1 if any(r.error for r in results) else 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
