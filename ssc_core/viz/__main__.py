"""``python -m ssc_core.viz``: render a SemanticKITTI-layout frame's voxels (and optionally a prediction) to PNG.

Examples:
  python -m ssc_core.viz --sequence-dir data/sequences/08 --frame 0 --output scene.png
  python -m ssc_core.viz --sequence-dir data/sequences/08 --frame 0 --prediction-dir out --output pred_vs_gt.png
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ssc_core.data.label_maps import get_class_set
from ssc_core.data.semantic_kitti import (
    SequencePaths,
    read_packed_bits,
    read_voxel_labels,
    remap_voxel_labels,
)
from ssc_core.data.voxel_grid import GRID_RECORD, read_grid_record, sequence_grid
from ssc_core.errors import ConfigError, SSCError
from ssc_core.output_paths import ensure_output_file
from ssc_core.types import GridSpec
from ssc_core.viz.compose import save_png, scene_figure, side_by_side
from ssc_core.viz.voxels3d import VIEWS


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m ssc_core.viz``."""
    parser = argparse.ArgumentParser(
        prog="python -m ssc_core.viz",
        description="Render the ground-truth voxels of one frame of a SemanticKITTI-layout sequence (3D view, "
        "bird's-eye view, legend) to a PNG, or prediction vs ground truth side by side. Headless (no display).",
    )
    parser.add_argument("--sequence-dir", required=True, type=Path, help="sequence folder (.../sequences/08)")
    parser.add_argument("--frame", required=True, type=int, help="frame number with a voxels/NNNNNN.label file")
    parser.add_argument("--output", required=True, type=Path, help="PNG file to write")
    parser.add_argument(
        "--prediction-dir",
        type=Path,
        help="predicted NNNNNN.label files (raw ids): the --output folder of ssc-infer, or the predictions/ "
        "folder itself; renders prediction vs ground truth",
    )
    parser.add_argument("--class-set", default="semantic_kitti", help="class set of the labels (default: %(default)s)")
    parser.add_argument("--dims", type=int, nargs=3, default=None, metavar=("X", "Y", "Z"),
                        help=f"voxel grid dims (default: the grid the sequence records in voxels/{GRID_RECORD}, "
                        "else SemanticKITTI's 256 256 32)")
    parser.add_argument("--view", choices=sorted(VIEWS), default="iso", help="3D view preset (default: %(default)s)")
    parser.add_argument("--width", type=int, default=640, help="width of each 3D panel in pixels")
    parser.add_argument("--no-bev", action="store_true", help="leave out the bird's-eye views")
    parser.add_argument("--title", help="caption above the figure")
    return parser


def prediction_file(prediction_dir: Path, paths: SequencePaths, frame: int) -> Path:
    """The prediction of ``frame``: ``<dir>/sequences/<seq>/predictions/NNNNNN.label`` when ``prediction_dir`` is
    an ssc-infer --output folder, else ``<dir>/NNNNNN.label``."""
    inferred = SequencePaths.of(prediction_dir, paths.sequence).prediction(frame)
    return inferred if (prediction_dir / "sequences").is_dir() else prediction_dir / f"{frame:06d}.label"


def viz_grid(paths: SequencePaths, dims: list[int] | None) -> GridSpec:
    """The grid of the sequence's voxel files (``sequence_grid``); without a record, ``--dims`` other than
    SemanticKITTI's are taken to span its 51.2 m (the voxel size only scales the ego car and the axes)."""
    if read_grid_record(paths) is None and dims is not None:
        base = GridSpec.semantic_kitti()
        size = base.voxel_size * base.dims[0] / dims[0]
        return sequence_grid(paths, dims, size, flags=("--dims", None, None))
    return sequence_grid(paths, dims, flags=("--dims", None, None))


def run(args: argparse.Namespace) -> Path:
    """Render the figure the parsed ``args`` describe; returns the PNG path."""
    if args.frame < 0:
        raise ConfigError(f"--frame must be a frame number >= 0, got {args.frame}")
    class_set = get_class_set(args.class_set)
    paths = SequencePaths.existing(args.sequence_dir)
    grid = viz_grid(paths, args.dims)
    ensure_output_file(args.output, "--output", suffixes=(".png",))
    invalid_path = paths.voxel(args.frame, "invalid")
    invalid = read_packed_bits(invalid_path, grid.dims) if invalid_path.is_file() else None
    label_path = paths.voxel(args.frame, "label")
    gt = remap_voxel_labels(read_voxel_labels(label_path, grid.dims), class_set, invalid, source=label_path)
    if args.prediction_dir is None:
        figure = scene_figure(
            gt, class_set, grid, title=args.title, view=args.view, panel_width=args.width, bev=not args.no_bev
        )
    else:
        pred_path = prediction_file(args.prediction_dir, paths, args.frame)
        pred = remap_voxel_labels(read_voxel_labels(pred_path, grid.dims), class_set, source=pred_path)
        figure = side_by_side(
            pred, gt, class_set, grid, view=args.view, panel_width=args.width, bev=not args.no_bev, caption=args.title
        )
    return save_png(args.output, figure)


def main(argv: list[str] | None = None) -> int:
    """Entry point: returns 0 on success, 2 (with ``error: ...`` on stderr) on bad input."""
    args = build_parser().parse_args(argv)
    try:
        path = run(args)
    except (SSCError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
