"""``ssc-make-synthetic``: write a procedural street world as a complete SemanticKITTI sequence (or the
SSCBench-KITTI-360 layout of the same world), or seeded furnished rooms as NYUv2 (3D-Sketch / CleanerS files with
NYUCAD's clean TSDF), so the package can be tried without downloading a dataset."""

from __future__ import annotations

import argparse
import sys
import time

from ssc_core.data.synthetic import SyntheticOptions, generate_sequence
from ssc_core.errors import ConfigError, SSCError
from ssc_core.output_paths import ensure_output_dir


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ssc-make-synthetic."""
    parser = argparse.ArgumentParser(
        prog="ssc-make-synthetic",
        description=(
            "Simulate a KITTI car (HDL-64E LiDAR, rectified colour stereo pair) driving a seeded synthetic "
            "street and write ROOT/sequences/SEQ/ with velodyne/, labels/, image_2/, image_3/, "
            "voxels/ (.label .bin .invalid .occluded every 5th frame), calib.txt, poses.txt and times.txt. "
            "The same seed and options give identical bytes."
        ),
        epilog=(
            "examples:\n"
            "  ssc-make-synthetic --output /tmp/synth --sequence 08 --frames 20 --seed 0 --small\n"
            "  ssc-make-synthetic --output /tmp/synth --frames 100 --seed 1            (full KITTI size)\n"
            "  ssc-make-synthetic --output /tmp/synth --frames 50 --calib KITTI/08/calib.txt "
            "--trajectory KITTI/08/poses.txt --trajectory-start 1000\n"
            "  ssc-make-synthetic --output /tmp/k360 --layout kitti360 --sequence 9 --frames 20 --small\n"
            "  ssc-make-synthetic --output /tmp/nyu --layout nyu --frames 40 --test-frames 10 --seed 0\n"
            "exit codes: 0 = written, 2 = bad input (the message says which)"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--output", required=True, help="root folder; the sequence goes to ROOT/sequences/SEQ "
                        "(--layout nyu: ROOT/NYU and ROOT/NYUCAD)")
    parser.add_argument("--sequence", default="08", help="sequence id (default: %(default)s; a drive number for "
                        "--layout kitti360)")
    parser.add_argument("--frames", type=int, default=20, help="number of frames to write (default: %(default)s; "
                        "--layout nyu: training rooms)")
    parser.add_argument("--seed", type=int, default=0, help="world seed (default: %(default)s)")
    parser.add_argument("--layout", choices=["semantic_kitti", "kitti360", "nyu"], default="semantic_kitti",
                        help="folder layout and label variant to write (default: %(default)s); nyu: indoor rooms "
                             "seen by a Kinect-like RGB-D camera (docs/synthetic.md)")
    parser.add_argument("--small", action="store_true",
                        help="test-size preset: 320x96 images, 0.8 deg azimuth step, 128x128x16 grid of 0.4 m, "
                             "20 aggregated scans (other size options still override it); --layout nyu: labels "
                             "and TSDF on a 120x72x120 sub-grid instead of 240x144x240 (about 3x faster)")
    indoor = parser.add_argument_group("indoor rooms (--layout nyu)")
    indoor.add_argument("--test-frames", type=int, default=None,
                        help="test rooms written after the training rooms, each a room never seen in training; "
                             "ssc-train validates on them (default: a quarter of --frames, at least 1)")
    size = parser.add_argument_group("sensors and sizes")
    size.add_argument("--image-size", type=int, nargs=2, metavar=("W", "H"), help="image size (default 1226 370)")
    size.add_argument("--azimuth-step", type=float, help="LiDAR azimuth step in degrees (default 0.16)")
    size.add_argument("--range-noise", type=float, help="LiDAR range noise sigma in metres (default 0)")
    size.add_argument("--grid-dims", type=int, nargs=3, metavar=("X", "Y", "Z"),
                      help="voxel grid dims (default 256 256 32)")
    size.add_argument("--voxel-size", type=float, help="voxel size in metres (default 0.2)")
    size.add_argument("--no-images", action="store_true", help="skip image_2/image_3 (faster)")
    size.add_argument("--no-right-image", action="store_true", help="skip image_3 only")
    labels = parser.add_argument_group("voxel labels")
    labels.add_argument("--label-stride", type=int, help="voxel files every n-th frame (default 5)")
    labels.add_argument("--label-scans", type=int, help="following scans aggregated into a label (default 70)")
    labels.add_argument("--invalid-origin-stride", type=int,
                        help="use every n-th aggregated sensor position for .invalid (default 5)")
    real = parser.add_argument_group("real KITTI calibration and trajectory")
    real.add_argument("--calib", help="a real KITTI calib.txt to use (default: sequence 08's values)")
    real.add_argument("--calib-image-size", type=int, nargs=2, metavar=("W", "H"),
                      help="image size the calib belongs to (default 1226 370); intrinsics are scaled from it")
    real.add_argument("--trajectory", help="a real KITTI poses.txt to drive (camera-0 convention)")
    real.add_argument("--trajectory-start", type=int, default=0, help="first pose of --trajectory to use")
    world = parser.add_argument_group("world")
    world.add_argument("--speed", type=float, help="ego speed in m/s (default: drawn from the seed, 7-11)")
    world.add_argument("--density", type=float, help="object density scale (default 1.0)")
    world.add_argument("--straight", action="store_true", help="no curves")
    world.add_argument("--no-junctions", action="store_true", help="no side roads")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return parser


def options_from_args(args: argparse.Namespace) -> SyntheticOptions:
    """SyntheticOptions from parsed arguments (the --small preset first, explicit flags on top)."""
    chosen = {
        "image_size": args.image_size, "azimuth_step_deg": args.azimuth_step, "range_noise_m": args.range_noise,
        "grid_dims": args.grid_dims, "voxel_size": args.voxel_size, "label_stride": args.label_stride,
        "label_scans": args.label_scans, "invalid_origin_stride": args.invalid_origin_stride,
        "calib_file": args.calib, "calib_image_size": args.calib_image_size, "trajectory_file": args.trajectory,
        "speed_mps": args.speed, "object_density": args.density,
    }
    overrides = {k: (tuple(v) if isinstance(v, list) else v) for k, v in chosen.items() if v is not None}
    overrides["trajectory_start"] = args.trajectory_start
    overrides["write_images"] = not args.no_images
    overrides["write_right_image"] = not args.no_right_image
    overrides["curvature"] = not args.straight
    overrides["junctions"] = not args.no_junctions
    return SyntheticOptions.small(**overrides) if args.small else SyntheticOptions(**overrides)


def default_test_frames(frames: int) -> int:
    """The number of test rooms ``--layout nyu`` writes without ``--test-frames``: a quarter of the ``frames``
    training rooms, at least one, so that ``ssc-train`` (which validates on the test split) runs on the output."""
    return max(1, frames // 4)


def main(argv: list[str] | None = None) -> int:
    """Entry point: parse, generate, print where the sequence went. Returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        if not args.sequence or args.sequence in (".", "..") or any(c in args.sequence for c in "/\\"):
            raise ConfigError(f"--sequence must be a plain folder name such as 08, got {args.sequence!r}")
        options = options_from_args(args)
        ensure_output_dir(args.output)
        start = time.perf_counter()
        if args.layout == "nyu":
            from ssc_core.data.synthetic.indoor import IndoorOptions
            from ssc_core.data.synthetic.nyu_writer import generate_nyu

            test_frames = default_test_frames(args.frames) if args.test_frames is None else args.test_frames
            nyu = generate_nyu(args.output, args.frames, args.seed, test_frames,
                               IndoorOptions(subdivision=2 if args.small else 4), progress=not args.no_progress)
            print(f"wrote {len(nyu.train_ids)} training and {len(nyu.test_ids)} test rooms to {nyu.root} (TSDF-CAD "
                  f"in {nyu.cad_root}) in {time.perf_counter() - start:.1f} s")
            return 0
        if args.layout == "kitti360":
            from ssc_core.data.synthetic.kitti360_writer import generate_kitti360_drive

            out = generate_kitti360_drive(args.output, args.sequence, args.frames, args.seed, options,
                                          progress=not args.no_progress)
        else:
            out = generate_sequence(args.output, args.sequence, args.frames, args.seed, options,
                                    progress=not args.no_progress)
    except SSCError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {args.frames} frames to {out.dir} in {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
