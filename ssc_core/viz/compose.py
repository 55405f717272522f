"""Putting renders together: titles, legends, side-by-side figures, PNG files (Pillow only, headless)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from ssc_core.data.label_maps import ClassSet
from ssc_core.errors import DataFormatError
from ssc_core.output_paths import ensure_output_file
from ssc_core.types import IGNORE_LABEL, GridSpec
from ssc_core.viz.bev import render_bev
from ssc_core.viz.colors import RGB, check_labels, classes_present
from ssc_core.viz.fonts import font, text_size
from ssc_core.viz.overlays import EGO_CAR, draw_car_3d, frame_top_down, velo_to_voxel_units
from ssc_core.viz.voxels3d import View, render_voxels_3d, view_camera

WHITE: RGB = (255, 255, 255)
TEXT: RGB = (20, 20, 20)


def add_title(image: np.ndarray, title: str, font_size: int = 18, background: RGB = WHITE) -> np.ndarray:
    """(H, W, 3) uint8 image with a band of centred ``title`` text above it -> (H + band, W, 3) uint8."""
    fnt = font(font_size)
    tw = text_size(fnt, title)[0]
    band = text_size(fnt, "Ag(|)")[1] + font_size  # one band height per font size, so titles line up
    canvas = Image.new("RGB", (image.shape[1], image.shape[0] + band), background)
    canvas.paste(Image.fromarray(np.ascontiguousarray(image)), (0, band))
    ImageDraw.Draw(canvas).text(((image.shape[1] - tw) // 2, font_size // 2), title, fill=TEXT, font=fnt)
    return np.asarray(canvas)


def stack(
    images: Sequence[np.ndarray], axis: int = 1, gap: int = 10, background: RGB = WHITE, centre: bool = False
) -> np.ndarray:
    """Place (H_i, W_i, 3) uint8 images side by side (axis=1) or top to bottom (axis=0), ``gap`` pixels
    apart on a ``background`` canvas, top/left aligned or (``centre``) centred across the stacking axis.
    Returns (H, W, 3) uint8."""
    if not images:
        raise DataFormatError("stack needs at least one image")
    heights = [im.shape[0] for im in images]
    widths = [im.shape[1] for im in images]
    if axis == 1:
        size = (sum(widths) + gap * (len(images) - 1), max(heights))
    else:
        size = (max(widths), sum(heights) + gap * (len(images) - 1))
    canvas = Image.new("RGB", size, background)
    pos = 0
    for im in images:
        across = ((size[1] - im.shape[0]) if axis == 1 else (size[0] - im.shape[1])) // 2 if centre else 0
        canvas.paste(Image.fromarray(np.ascontiguousarray(im)), (pos, across) if axis == 1 else (across, pos))
        pos += (im.shape[1] if axis == 1 else im.shape[0]) + gap
    return np.asarray(canvas)


def render_legend(
    class_ids: Sequence[int],
    class_set: ClassSet,
    width: int | None = None,
    font_size: int = 14,
    background: RGB = WHITE,
) -> np.ndarray:
    """A legend: a colour swatch and the class name for each train id in ``class_ids``. With ``width`` the
    entries flow left to right in rows that fit that width, else they form one column.
    Returns (H, W, 3) uint8 (a small blank strip when ``class_ids`` is empty)."""
    fnt = font(font_size)
    swatch = font_size
    pad = font_size // 2
    entries = [(int(c), class_set.names[int(c)]) for c in class_ids]
    cell_w = max([text_size(fnt, name)[0] for _, name in entries], default=0) + swatch + 3 * pad
    row_h = swatch + pad
    per_row = max(1, (width - pad) // cell_w) if width else 1
    rows = max(1, -(-len(entries) // per_row))
    canvas_w = width if width else cell_w + pad
    canvas = Image.new("RGB", (canvas_w, rows * row_h + pad), background)
    draw = ImageDraw.Draw(canvas)
    for n, (class_id, name) in enumerate(entries):
        x = pad + (n % per_row) * cell_w
        y = pad + (n // per_row) * row_h
        colour = tuple(int(v) for v in class_set.colors_rgb[class_id])
        draw.rectangle([x, y, x + swatch - 1, y + swatch - 1], fill=colour, outline=(60, 60, 60))
        draw.text((x + swatch + pad, y + swatch // 2), name, fill=TEXT, font=fnt, anchor="lm")
    return np.asarray(canvas)


def _titled_column(labels, class_set, grid, title, view, panel_width, bev) -> np.ndarray:
    """3D view over the BEV of one scene; with a ``grid`` the ego car is drawn in both and the BEV gets metric
    axes (``ssc_core.viz.overlays``)."""
    if grid is None:
        panels = [render_voxels_3d(labels, class_set, view=view, width=panel_width)]
    else:
        car = velo_to_voxel_units(EGO_CAR.corners_velo(), grid)
        camera = view_camera(labels.shape, view, panel_width, include=car)
        panels = [draw_car_3d(render_voxels_3d(labels, class_set, grid, camera=camera), camera, grid)]
    if bev:
        top = render_bev(labels, class_set, scale=1)
        size = max(1, int(panel_width * 0.55)), max(1, int(panel_width * 0.55 * top.shape[0] / top.shape[1]))
        top = np.asarray(Image.fromarray(top).resize(size, Image.NEAREST))
        panels.append(top if grid is None else frame_top_down(top, grid))
    column = stack(panels, axis=0, centre=True)
    return add_title(column, title) if title else column


def frame_scores(pred: np.ndarray, gt: np.ndarray, num_classes: int) -> dict:
    """The official SSC metrics (``SSCMetrics``: completion iou, miou, ...) of one frame's train-id ``pred``
    against ``gt`` (both (X, Y, Z); voxels where ``gt`` is 255 do not count)."""
    from ssc_core.evaluation.metrics import SSCMetrics

    metrics = SSCMetrics(num_classes)
    metrics.add(pred, gt)
    return metrics.compute()


def scene_figure(
    labels: np.ndarray,
    class_set: ClassSet,
    grid: GridSpec | None = None,
    title: str | None = None,
    view: str | View = "iso",
    panel_width: int = 640,
    bev: bool = True,
) -> np.ndarray:
    """Figure of one (X, Y, Z) train-id scene: optional title, its 3D view, its bird's-eye view below
    (``bev``) and a legend of the classes present. Returns (H, W, 3) uint8 RGB."""
    labels = check_labels(labels, class_set)
    column = _titled_column(labels, class_set, grid, title, view, panel_width, bev)
    legend = render_legend(classes_present(labels), class_set, width=column.shape[1])
    return stack([column, legend], axis=0, gap=4)


def side_by_side(
    pred: np.ndarray,
    gt: np.ndarray,
    class_set: ClassSet,
    grid: GridSpec | None = None,
    titles: tuple[str, str] = ("Prediction (where the ground truth is labelled)", "Ground truth"),
    view: str | View = "iso",
    panel_width: int = 640,
    bev: bool = True,
    caption: str | None = None,
) -> np.ndarray:
    """Comparison figure of a prediction and the ground truth ((X, Y, Z) train ids on the same ``grid``): a
    titled 3D view of each side by side, their bird's-eye views below (``bev``), a legend of every class present
    in either, and a caption line on top: ``caption`` (if any) and the frame's completion IoU and mIoU.

    The prediction is shown only where the ground truth is labelled: voxels the ground truth ignores (255:
    invalid or unknown) are left out of both pictures, as the metrics leave them out. With a ``grid`` the ego
    car is marked to scale and the bird's-eye views get axes in metres. Returns (H, W, 3) uint8 RGB."""
    pred = check_labels(pred, class_set, "prediction")
    gt = check_labels(gt, class_set, "ground truth")
    if pred.shape != gt.shape:
        raise DataFormatError(f"prediction shape {pred.shape} differs from ground truth shape {gt.shape}")
    scores = frame_scores(pred, gt, class_set.num_classes)
    pred = np.where(gt == IGNORE_LABEL, IGNORE_LABEL, pred)
    columns = [
        _titled_column(labels, class_set, grid, title, view, panel_width, bev)
        for labels, title in zip((pred, gt), titles)
    ]
    figure = stack(columns, axis=1, gap=16)
    legend = render_legend(classes_present(pred, gt), class_set, width=figure.shape[1])
    figure = stack([figure, legend], axis=0, gap=4)
    line = f"this frame: completion IoU {100 * scores['iou']:.1f} %, mIoU {100 * scores['miou']:.1f} %"
    return add_title(figure, f"{caption}  |  {line}" if caption else line, font_size=16)


def save_png(path: str | Path, image: np.ndarray) -> Path:
    """Write an (H, W, 3) uint8 RGB image as PNG (creating parent folders); returns the path."""
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise DataFormatError(f"{path}: image must be (H, W, 3) uint8, got {image.shape} {image.dtype}")
    path = ensure_output_file(path, "PNG output", suffixes=(".png",))
    Image.fromarray(image).save(path, optimize=True)
    return path
