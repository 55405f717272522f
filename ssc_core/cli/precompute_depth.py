"""``ssc-precompute-depth``: run MobileStereoNet over whole sequences once and write the depth maps (``.npy``)
and/or pseudo-LiDAR clouds (``.bin``) that SGN's preprocessing writes, so training reads them with
``data.points.source: precomputed`` instead of running the stereo network every step."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from tqdm import tqdm

from ssc_core.cli.entry import add_torch_options, apply_num_threads, run_and_report
from ssc_core.config import load_config
from ssc_core.data.datasets import DATASETS
from ssc_core.data.depth_sources import depth_to_points_velo, precomputed_path, write_depth_npy
from ssc_core.data.semantic_kitti import write_points
from ssc_core.data.stereo_msnet import (
    baseline_focal,
    disparity_to_depth_clipped,
    load_network,
    msnet_disparity,
    msnet_options,
)
from ssc_core.errors import ConfigError
from ssc_core.output_paths import ensure_output_dir

FORMATS = {"npy": ("npy",), "bin": ("bin",), "both": ("npy", "bin")}


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ssc-precompute-depth."""
    parser = argparse.ArgumentParser(
        prog="ssc-precompute-depth",
        description="Run an imported MobileStereoNet (ssc-import-checkpoint --method msnet3d) on every stereo pair "
        "of the given sequences and write <output>/sequences/<seq>/NNNNNN.npy (float32 depth of the left image, "
        "as SGN's prediction.py) and/or NNNNNN.bin (float32 x, y, z, 1 pseudo-LiDAR in the LiDAR frame, as its "
        "depth2lidar.py). Existing files are kept (the run resumes) unless --overwrite is given. Train on them "
        "with data.points: {source: precomputed, folder: <output>, format: npy|bin}.",
        epilog="example:\n"
        "  ssc-precompute-depth --weights msnet3d.pt --data-root /data/semantic_kitti/dataset --sequence 00 08 "
        "--output /data/semantic_kitti/msnet3d_depth --device cuda\n"
        "exit codes: 0 = written, 2 = bad input (the message names the file or option)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--weights", required=True, type=Path,
                        help="stereo weights written by ssc-import-checkpoint --method msnet3d|msnet2d")
    parser.add_argument("--data-root", required=True, type=Path,
                        help="dataset folder: holds sequences/ (SemanticKITTI) or data_2d_raw/ (KITTI-360)")
    parser.add_argument("--sequence", nargs="+", required=True, help="sequence ids (e.g. 00 08) or KITTI-360 drives")
    parser.add_argument("--dataset-kind", choices=sorted(DATASETS), default="semantic_kitti",
                        help="folder layout (default: %(default)s)")
    parser.add_argument("--output", required=True, type=Path, help="folder to write sequences/<seq>/ into")
    parser.add_argument("--format", choices=sorted(FORMATS), default="npy",
                        help="npy: depth maps (1.8 MB a KITTI frame); bin: pseudo-LiDAR (7 MB); both "
                        "(default: %(default)s)")
    depth = parser.add_mutually_exclusive_group()
    depth.add_argument("--baseline-m", type=float,
                       help="stereo baseline in metres for depth = baseline * fx / disparity (default: what SGN used, "
                       "0.54 for semantic_kitti, 0.6 for kitti360)")
    depth.add_argument("--baseline-focal", type=float,
                       help="the baseline * fx constant itself (px*m), e.g. SGN's 388.1823 for sequences 00-02")
    depth.add_argument("--calibrated-baseline", action="store_true",
                       help="take the baseline from the calibration's P2 and P3 instead")
    parser.add_argument("--pad-to", type=int, nargs=2, metavar=("H", "W"),
                        help="network input size (default: 576 1872 for kitti360, else each side up to a multiple "
                        "of 32, i.e. 384 1248 for SemanticKITTI)")
    parser.add_argument("--max-height", type=float, default=80.0,
                        help=".bin only: drop points with z_velo >= this (default: %(default)s, as SGN)")
    parser.add_argument("--overwrite", action="store_true", help="recompute frames whose files already exist")
    parser.add_argument("--limit", type=int, help="at most this many frames per sequence (the first ones)")
    add_torch_options(parser)
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return parser


def _options(args: argparse.Namespace) -> dict:
    """The stereo_msnet options: the data config of --dataset-kind (config/data/<kind>.yaml: what SGN's
    preprocessing used) with the command-line flags on top."""
    defaults = load_config(f"data/{args.dataset_kind}")["data"]["points"]["msnet"]
    baseline_m = args.baseline_m or defaults["baseline_m"]
    if args.calibrated_baseline or args.baseline_focal:
        baseline_m = None
    return msnet_options({"msnet": {
        "weights": str(args.weights), "device": args.device, "cache_frames": 0,
        "pad_to": list(args.pad_to) if args.pad_to else defaults["pad_to"],
        "baseline_m": baseline_m, "baseline_focal": args.baseline_focal,
    }})


def run(args: argparse.Namespace) -> dict:
    """Write the files as ``args`` say. Returns a summary (frames written and kept, seconds per frame)."""
    apply_num_threads(args)
    if args.limit is not None and args.limit < 1:
        raise ConfigError(f"--limit must be >= 1, got {args.limit}")
    if args.max_height <= 0:
        raise ConfigError(f"--max-height must be > 0, got {args.max_height}")
    options = _options(args)
    load_network(options["weights"], options["device"])  # a bad weights file fails before any work
    output = ensure_output_dir(args.output)
    dataset = DATASETS[args.dataset_kind](args.data_root, None, {"dataset": args.dataset_kind,
                                                                 "use_right_image": True},
                                          sequences=args.sequence, with_labels=False)
    jobs, kept = [], 0
    for sequence in dataset.sequences:
        for frame in dataset.image_frames(sequence)[: args.limit]:
            paths = [precomputed_path({"points": {"folder": str(output), "sequence": sequence, "format": fmt}}, frame)
                     for fmt in FORMATS[args.format]]
            if not args.overwrite and all(p.is_file() for p in paths):
                kept += 1
            else:
                jobs.append((sequence, frame, paths))
    seconds = 0.0
    for sequence, index, paths in tqdm(jobs, desc="ssc-precompute-depth", unit="frame", dynamic_ncols=True,
                                       disable=args.no_progress):
        frame = dataset.frame(sequence, index)
        start = time.perf_counter()
        depth = disparity_to_depth_clipped(msnet_disparity(frame, options), baseline_focal(frame.calib, options))
        seconds += time.perf_counter() - start
        for path in paths:
            if path.suffix == ".npy":
                write_depth_npy(path, depth)
            else:
                write_points(path, depth_to_points_velo(depth, frame.calib, max_height=args.max_height))
    return {"frames_written": len(jobs), "frames_kept_existing": kept,
            "seconds_per_frame": round(seconds / max(len(jobs), 1), 3), "output": str(output)}


def main(argv: list[str] | None = None) -> int:
    """Entry point: 0 on success, 2 with ``error: ...`` on bad input."""
    return run_and_report(build_parser(), run, argv)


if __name__ == "__main__":
    sys.exit(main())
