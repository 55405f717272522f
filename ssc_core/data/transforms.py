"""FrameWindow -> model sample, and samples -> batch.

``window_to_sample`` is the one place that turns sensor frames into model inputs; the torch Datasets and the
live Predictor both call it, so training and deployment see identical tensors. ``collate`` stacks samples into
a batch for ``model(batch)``. Key reference (shapes per sample, F = frames in the window, history oldest first,
current last):

Camera entries (all but ``points``, ``stamp_ns`` and ``frame_index``; absent with ``data.use_left_image: false``):

- ``img`` float32 (F, 3, H, W): RGB / 255, ImageNet-normalised, brought to ``data.image_crop`` = [H, W] by
  ``data.image_preprocess``: ``top_left_crop`` (default; SGN / VoxFormer / MonoScene: crop, zero-padded
  bottom/right after normalisation where a frame is smaller) or ``resize_bottom_crop`` (HTCL / L2COcc: bilinear
  resize, antialiased, to width W keeping the aspect ratio, then keep the bottom H rows, zero-padded at the top
  where the resized image is shorter).
- ``K`` float32 (F, 3, 3): intrinsics of ``img``, ``A @ P2[:3, :3]`` with A the image transform below (P2[:3, :3]
  itself for a top-left crop).
- ``post_rot`` float32 (F, 3, 3), ``post_tran`` float32 (F, 3): that image transform, raw image pixel ->
  ``img`` pixel, ``p_img = post_rot @ p_raw + post_tran`` (BEVDepth / HTCL convention; pixel centres at
  integers, so a resize by s maps u to s (u + 0.5) - 0.5); identity / zero for the top-left crop.
- ``P2`` float32 (F, 3, 4): the raw left-camera projection of each frame (its 4th column holds the camera-0 ->
  camera-2 offset that LSS geometry subtracts).
- ``T_cam_velo`` float32 (F, 4, 4): current LiDAR frame -> frame f's camera 0, ``Tr_f @ inv(T_cur_hist_f)``.
- ``image_hw`` int64 (2,): [H, W] of ``img``.
- ``img_right`` float32 (F, 3, H, W) and ``stereo_baseline`` float32 (F,) metres (only with
  ``data.use_right_image``).
- ``stereo_depth`` float32 (H, W) metres, the current frame's stereo depth in ``img``'s pixels, 0 = none (only when
  ``data.stereo_depth.source`` is not ``none``; ``stereo_depth.py``).

Other entries:

- ``points`` float32 (P, 4) x, y, z, intensity in the current LiDAR frame (only when ``data.points.source`` is
  not ``none``): the point source applied to every frame of the window, moved by T_cur_hist.
- ``sweep_occupancy`` uint8 (X, Y, Z) (only with ``data.sweeps``): 1 where the ray-cast log-odds of the depth
  points of the current and previous sweep frames is > 0 (``ssc_core.data.sweeps``; VoxFormer's stage-1 input).
  With sweeps the window's history holds the frames of ``sweeps.window_offsets``: the image keys and ``points``
  use only the frames at ``data.history_offsets`` (and the current one).
- ``stamp_ns``, ``frame_index``: python ints of the current frame.

The Datasets add targets (``target``, ``target_1_2``; see datasets.py) and, when configured, the training-only
LiDAR targets ``lidar_depth`` (H, W) and ``labelled_points`` (P, 6) [x, y, z, u, v, label] (``lidar_targets.py``).
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from ssc_core.data.point_sources import get_point_source, point_source_name
from ssc_core.data.stereo_depth import stereo_depth_sample, stereo_depth_source
from ssc_core.data.sweeps import sweep_occupancy, window_roles
from ssc_core.errors import ConfigError, DataFormatError
from ssc_core.geometry.poses import invert_transform, is_rigid, transform_points
from ssc_core.types import Frame, FrameWindow

LOG = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# Rotation orthonormality tolerance for T_cur_hist: KITTI poses are printed with ~7 significant digits, so
# products of two of them are rigid only to ~1e-6; a real error (scale, shear, garbage) is far larger.
RIGID_ATOL = 1e-4


def image_crop_hw(data_cfg: dict) -> tuple[int, int] | None:
    """``data.image_crop`` as (H, W), or None when absent/null (no crop). ConfigError when malformed."""
    crop = data_cfg.get("image_crop")
    if crop is None:
        return None
    if not isinstance(crop, list | tuple) or len(crop) != 2 or any(int(v) != v or v <= 0 for v in crop):
        raise ConfigError(f"data.image_crop must be [H, W] positive integers or null, got {crop!r}")
    return int(crop[0]), int(crop[1])


def normalize_image(image_rgb: np.ndarray, what: str = "image") -> torch.Tensor:
    """(H, W, 3) uint8 RGB -> (3, H, W) float32, /255 then ImageNet mean/std. DataFormatError on other input."""
    image_rgb = np.asarray(image_rgb)
    if image_rgb.ndim != 3 or image_rgb.shape[2] != 3 or image_rgb.dtype != np.uint8:
        raise DataFormatError(f"{what}: expected (H, W, 3) uint8 RGB, got shape {image_rgb.shape} {image_rgb.dtype}")
    # (x / 255 - mean) / std as one multiply and one subtract.
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    scale = 1.0 / (255.0 * std)
    shift = torch.tensor(IMAGENET_MEAN).view(3, 1, 1) / std
    img = torch.from_numpy(np.ascontiguousarray(image_rgb)).permute(2, 0, 1).float()
    return img.mul_(scale).sub_(shift)


IMAGE_PREPROCESS_MODES = ("top_left_crop", "resize_bottom_crop")


def image_preprocess_mode(data_cfg: dict) -> str:
    """``data.image_preprocess`` (default ``top_left_crop``); ConfigError for other values."""
    mode = data_cfg.get("image_preprocess") or "top_left_crop"
    if mode not in IMAGE_PREPROCESS_MODES:
        raise ConfigError(f"data.image_preprocess must be one of {IMAGE_PREPROCESS_MODES}, got {mode!r}")
    return mode


def _image_tensor(image_rgb: np.ndarray, out_hw: tuple[int, int], what: str,
                  mode: str = "top_left_crop") -> tuple[torch.Tensor, np.ndarray]:
    """Normalised (3, H, W) image of ``out_hw`` and the (3, 3) float64 image transform A (raw pixel -> tensor
    pixel, homogeneous) that ``mode`` applied (see the module docstring)."""
    image_rgb = np.asarray(image_rgb)
    if mode == "resize_bottom_crop":
        return resize_bottom_crop(normalize_image(image_rgb, what), out_hw)
    if image_rgb.ndim == 3:
        image_rgb = image_rgb[: out_hw[0], : out_hw[1]]  # crop first: less to normalise
    return crop_or_pad(normalize_image(image_rgb, what), out_hw), np.eye(3)


def resize_bottom_crop(img_chw: torch.Tensor, out_hw: tuple[int, int]) -> tuple[torch.Tensor, np.ndarray]:
    """HTCL's preprocessing: resize (C, H, W) to width ``out_hw[1]`` (height round(H * s), s = W_out / W;
    bilinear, antialiased), keep the bottom ``out_hw[0]`` rows (zero rows on top if it is shorter). Returns the
    image and the (3, 3) float64 pixel transform A: u' = sx (u + 0.5) - 0.5, v' = sy (v + 0.5) - 0.5 - top."""
    out_h, out_w = out_hw
    _, h, w = img_chw.shape
    new_h = max(1, int(round(h * out_w / w)))
    resized = img_chw
    if (new_h, out_w) != (h, w):
        resized = torch.nn.functional.interpolate(img_chw[None], size=(new_h, out_w), mode="bilinear",
                                                  align_corners=False, antialias=True)[0]
    top = new_h - out_h  # rows dropped at the top (negative: zero rows added)
    if top >= 0:
        out = resized[:, top:]
    else:
        out = resized.new_zeros((resized.shape[0], out_h, out_w))
        out[:, -top:] = resized
    sx, sy = out_w / w, new_h / h
    transform = np.array([[sx, 0.0, 0.5 * sx - 0.5], [0.0, sy, 0.5 * sy - 0.5 - top], [0.0, 0.0, 1.0]])
    return out.contiguous(), transform


def crop_or_pad(img_chw: torch.Tensor, out_hw: tuple[int, int]) -> torch.Tensor:
    """Top-left crop (C, H, W) to ``out_hw``; where the image is smaller, pad with zeros at the bottom/right."""
    out_h, out_w = out_hw
    c, h, w = img_chw.shape
    if (h, w) == (out_h, out_w):
        return img_chw
    out = img_chw.new_zeros((c, out_h, out_w))
    hh, ww = min(h, out_h), min(w, out_w)
    out[:, :hh, :ww] = img_chw[:, :hh, :ww]
    return out


def _check_window(window: FrameWindow) -> list[np.ndarray]:
    """Validate the window's transforms; returns T_cur_f (4, 4) float64 per frame (history..., identity)."""
    if len(window.history) != len(window.T_cur_hist):
        raise DataFormatError(
            f"frame window: {len(window.history)} history frames but {len(window.T_cur_hist)} T_cur_hist transforms"
        )
    transforms = []
    for hist, T in zip(window.history, window.T_cur_hist):
        T = np.asarray(T, dtype=np.float64)
        if T.shape != (4, 4) or not np.all(np.isfinite(T)):
            raise DataFormatError(f"frame {hist.index}: T_cur_hist must be a finite 4x4 matrix, got {T.tolist()}")
        if not is_rigid(T, atol=RIGID_ATOL):
            raise DataFormatError(f"frame {hist.index}: T_cur_hist is not a rigid transform: {T.tolist()}")
        transforms.append(T)
    return [*transforms, np.eye(4)]


def _check_calib(frame: Frame) -> None:
    for name, value in (("P2", frame.calib.P2), ("Tr", frame.calib.T_cam0_velo)):
        if not np.all(np.isfinite(value)):
            raise DataFormatError(f"frame {frame.index}: calibration {name} holds non-finite values")


def _window_points(frames: list[Frame], transforms: list[np.ndarray], data_cfg: dict, name: str) -> np.ndarray:
    """Apply the point source to each frame, move the points into the current LiDAR frame, drop non-finite."""
    source = get_point_source(name)
    clouds = []
    for frame, T_cur_f in zip(frames, transforms):
        pts = np.asarray(source(frame, data_cfg), dtype=np.float32)
        if pts.ndim != 2 or pts.shape[1] != 4:
            raise DataFormatError(f"frame {frame.index}: point source {name!r} returned shape {pts.shape}, "
                                  "expected (N, 4)")
        finite = np.all(np.isfinite(pts), axis=1)
        if not finite.all():
            LOG.debug("frame %d: dropped %d non-finite points of %d (source %r)",
                      frame.index, int((~finite).sum()), len(pts), name)
            pts = pts[finite]
        clouds.append(transform_points(T_cur_f, pts))
    return np.ascontiguousarray(np.concatenate(clouds, axis=0), dtype=np.float32)


def uses_left_image(data_cfg: dict) -> bool:
    """``data.use_left_image`` (default true): whether samples carry the camera tensors at all (false for models
    that read the LiDAR scan alone)."""
    return bool(data_cfg.get("use_left_image", True))


def _camera_tensors(frames: list[Frame], transforms: list[np.ndarray], data_cfg: dict) -> tuple[dict, list]:
    """The image entries of a sample (img, K, T_cam_velo, image_hw, post_rot, post_tran, P2 and, as configured,
    img_right / stereo_baseline / stereo_depth) from the image frames (oldest first, current last) and their
    T_cur_f (4, 4), and each frame's (3, 3) image transform."""
    crop = image_crop_hw(data_cfg)
    mode = image_preprocess_mode(data_cfg)
    out_hw = crop or tuple(np.asarray(frames[-1].image_left).shape[:2])

    imgs, Ks, T_cam_velo, image_transforms = [], [], [], []
    for frame, T_cur_f in zip(frames, transforms):
        _check_calib(frame)
        img, A = _image_tensor(frame.image_left, out_hw, f"frame {frame.index} image_left", mode)
        imgs.append(img)
        image_transforms.append(A)
        Ks.append(A @ frame.calib.K)
        T_cam_velo.append(frame.calib.T_cam0_velo @ invert_transform(T_cur_f))
    post_rot = np.stack(image_transforms)
    post_rot[:, :2, 2] = 0.0
    sample: dict = {
        "img": torch.stack(imgs),
        "K": torch.from_numpy(np.stack(Ks)).float(),
        "T_cam_velo": torch.from_numpy(np.stack(T_cam_velo)).float(),
        "image_hw": torch.tensor(out_hw, dtype=torch.int64),
        "post_rot": torch.from_numpy(post_rot).float(),
        "post_tran": torch.tensor([[A[0, 2], A[1, 2], 0.0] for A in image_transforms], dtype=torch.float32),
        "P2": torch.from_numpy(np.stack([frame.calib.P2 for frame in frames])).float(),
    }

    if data_cfg.get("use_right_image", False):
        rights, baselines = [], []
        for frame in frames:
            if frame.image_right is None:
                raise DataFormatError(f"frame {frame.index}: data.use_right_image is set but the frame has no "
                                      "right image")
            rights.append(_image_tensor(frame.image_right, out_hw, f"frame {frame.index} image_right", mode)[0])
            baseline = frame.calib.stereo_baseline
            if baseline is None:
                raise DataFormatError(f"frame {frame.index}: data.use_right_image needs P3 in the calibration")
            baselines.append(baseline)
        sample["img_right"] = torch.stack(rights)
        sample["stereo_baseline"] = torch.tensor(baselines, dtype=torch.float32)
    if stereo_depth_source(data_cfg) != "none":
        sample["stereo_depth"] = stereo_depth_sample(frames[-1], image_transforms[-1], out_hw, data_cfg)
    return sample, image_transforms


def window_to_sample(window: FrameWindow, data_cfg: dict) -> dict:
    """Turn a FrameWindow into one model sample (see the module docstring for keys, shapes and frames).

    ``data_cfg`` is the config's ``data:`` section (keys read: use_left_image, image_crop, image_preprocess,
    points.source, use_right_image, stereo_depth, and history_offsets, sweeps and grid when sweeps are computed).
    With ``use_left_image: false`` the sample holds no camera entries and the frames need no image or calibration.
    Raises DataFormatError for malformed frames (wrong image shapes/dtypes, non-finite or non-rigid poses).
    """
    all_transforms = _check_window(window)
    image_idx, sweep_idx = window_roles(len(window.frames), data_cfg)
    frames = [window.frames[i] for i in image_idx]
    transforms = [all_transforms[i] for i in image_idx]
    sample: dict = {}
    if uses_left_image(data_cfg):
        sample, _ = _camera_tensors(frames, transforms, data_cfg)
    name = point_source_name(data_cfg)
    if name != "none":
        sample["points"] = torch.from_numpy(_window_points(frames, transforms, data_cfg, name))
    if sweep_idx:
        sample["sweep_occupancy"] = torch.from_numpy(sweep_occupancy(
            [window.frames[i] for i in sweep_idx], [all_transforms[i] for i in sweep_idx], data_cfg))
    if not sample:
        raise DataFormatError("the sample would be empty: data.use_left_image is false and data.points.source "
                              "is none")

    sample["stamp_ns"] = int(window.current.stamp_ns)
    sample["frame_index"] = int(window.current.index)
    return sample


POINT_SET_KEYS = ("points", "labelled_points")


def collate(samples: list[dict]) -> dict:
    """Stack samples into a batch.

    Tensors/arrays of equal shape are stacked to (B, ...); the per-sample point sets of ``POINT_SET_KEYS``
    (``points`` (P_i, 4), ``labelled_points`` (P_i, 6)) become one float32 tensor (sum P_i, 1 + columns) with the
    batch index first (``points``: [batch_index, x, y, z, intensity]); anything else (str, int, ...) becomes a
    list.
    Raises DataFormatError when samples have different keys or a stacked entry differs in shape.
    """
    if not samples:
        raise DataFormatError("collate: no samples")
    keys = list(samples[0])
    for i, sample in enumerate(samples[1:], 1):
        if set(sample) != set(keys):
            raise DataFormatError(f"collate: sample {i} has keys {sorted(sample)}, sample 0 has {sorted(keys)}")
    batch: dict = {}
    for key in keys:
        values = [s[key] for s in samples]
        if key in POINT_SET_KEYS:
            batch[key] = torch.cat([
                torch.cat([torch.full((len(p), 1), float(b)), torch.as_tensor(p, dtype=torch.float32)], dim=1)
                for b, p in enumerate(values)
            ])
        elif isinstance(values[0], torch.Tensor | np.ndarray):
            tensors = [torch.as_tensor(v) for v in values]
            shapes = {tuple(t.shape) for t in tensors}
            if len(shapes) != 1:
                raise DataFormatError(f"collate: {key!r} has different shapes across samples: {sorted(shapes)}")
            batch[key] = torch.stack(tensors)
        else:
            batch[key] = values
    return batch
