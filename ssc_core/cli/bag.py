"""``ssc-bag``: the offline ROS 2 bag path, no ROS installation needed.

  ssc-bag kitti2bag --sequence-dir S --output X.mcap     a SemanticKITTI sequence as the replay node's topics
  ssc-bag nyu2bag --nyu ROOT --output X.mcap            an NYU split (RGB-D) for ssc_node's rgbd mode
  ssc-bag run --input X.mcap --output Y.mcap --checkpoint K [--config C]
                                                          the ssc_node pipeline over a bag, outputs added

The work is done by ``ssc_ros.bag`` (pure Python: rosbags, no rclpy); this module only parses arguments.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ssc_core.cli.entry import EXIT_INTERRUPTED, add_torch_options, apply_num_threads
from ssc_core.errors import ConfigError, SSCError

EPILOG = """examples:
  ssc-bag kitti2bag --sequence-dir data/sequences/08 --output out/seq08.mcap --end 100
  ssc-bag run --input out/seq08.mcap --output out/seq08_ssc.mcap --checkpoint ckpt.pt
  ros2 bag play out/seq08_ssc --clock    # then RViz (use_sim_time), or open out/seq08_ssc/seq08_ssc.mcap in Foxglove
  ssc-bag nyu2bag --nyu /tmp/nyu --output out/rooms.mcap
  ssc-bag run --input out/rooms.mcap --output out/rooms_ssc.mcap --checkpoint student.pt \\
      --params-file config/ssc_node_rgbd.yaml

A bag is a folder: --output out/x.mcap writes out/x/ (x.mcap + metadata.yaml); --output out/x.db3 or
--storage sqlite3 writes sqlite3. Bags are rosbag2 version 8 (readable by Humble and newer). An existing bag is
replaced only with --overwrite; a run that fails keeps what it wrote so far as a readable bag, and its error
line says so (rerun with --overwrite to replace it).
exit codes: 0 = done, 2 = bad input (the message names the file/topic), 130 = interrupted (Ctrl-C)"""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``ssc-bag`` with its two sub-commands."""
    parser = argparse.ArgumentParser(
        prog="ssc-bag",
        description="Write SemanticKITTI sequences as ROS 2 bags and run the SSC pipeline on bags, without ROS.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="{kitti2bag,nyu2bag,run}")

    k2b = sub.add_parser(
        "kitti2bag",
        help="SemanticKITTI-layout sequence -> ROS 2 bag (the replay node's topics, frames, stamps and QoS)",
        description="Write a sequence folder (real or synthetic, see ssc-make-synthetic) as a ROS 2 bag: "
        "/tf_static (latched), /tf (odom -> velo_link), left/right images + camera_info, the LiDAR cloud and the "
        "ground-truth voxels as a MarkerArray, stamped 1 s + times.txt, exactly as kitti_replay_node publishes.",
    )
    k2b.add_argument("--sequence-dir", required=True, type=Path, help="sequence folder (.../sequences/08)")
    k2b.add_argument("--output", required=True, type=Path, help="bag to create (x.mcap, x.db3 or a folder name)")
    k2b.add_argument("--start", type=int, default=0, help="first frame (default: %(default)s)")
    k2b.add_argument("--end", type=int, default=None, help="stop before this frame (default: all)")
    k2b.add_argument("--no-gt", action="store_true", help="leave out the ground-truth voxel markers")
    k2b.add_argument("--no-right", action="store_true", help="leave out the right camera")
    k2b.add_argument(
        "--grid-dims",
        type=int,
        nargs=3,
        default=None,
        metavar=("X", "Y", "Z"),
        help="voxel grid of the label files (default: the grid the sequence records in voxels/grid.yaml, as "
        "ssc-make-synthetic writes it, else SemanticKITTI's 256 256 32; other dims need --voxel-size)",
    )
    k2b.add_argument("--voxel-size", type=float, default=None,
                     help="voxel size in metres (default: the recorded one, else 0.2)")
    k2b.add_argument(
        "--grid-origin",
        type=float,
        nargs=3,
        default=None,
        metavar=("X", "Y", "Z"),
        help="corner of voxel (0, 0, 0) in the LiDAR frame (default: the recorded one, else 0, -Y*size/2, -2 as "
        "SemanticKITTI)",
    )
    k2b.add_argument(
        "--with-clock",
        action="store_true",
        help="also record /clock (usually `ros2 bag play --clock` publishes it instead)",
    )
    _add_common(k2b)

    n2b = sub.add_parser(
        "nyu2bag",
        help="NYU split (e.g. ssc-make-synthetic --layout nyu rooms) -> ROS 2 bag for ssc_node's RGB-D mode",
        description="Write every frame of an NYU split as /tf (room -> camera_rgb_optical_frame, room -> nyu_grid), "
        "/camera/rgb/image_raw, /camera/depth_registered/image_raw (32FC1 m), /camera/rgb/camera_info and the "
        "ground-truth voxels (/nyu/voxels_gt, latched), one room per --period seconds. Needs the MonoScene "
        "NYU<split>/*.bin beside the 3D-Sketch files (camera pose and grid origin), as the generator writes them.",
    )
    n2b.add_argument("--nyu", required=True, type=Path, help="NYU folder (holding Label/) or its parent")
    n2b.add_argument("--output", required=True, type=Path, help="bag to create (x.mcap, x.db3 or a folder name)")
    n2b.add_argument("--split", choices=["train", "test"], default="test", help="split (default: %(default)s)")
    n2b.add_argument("--period", type=float, default=1.0, help="seconds per room (default: %(default)s)")
    n2b.add_argument("--no-gt", action="store_true", help="leave out the ground-truth voxel markers")
    _add_common(n2b)
    run = sub.add_parser(
        "run",
        help="bag -> ssc_node pipeline -> bag with the input topics plus the node's outputs",
        description="Read a bag, run the same synchronizer, temporal buffer, predictor and output builder as "
        "ssc_node on every synchronised camera(/LiDAR) set, and write a bag holding every input message plus "
        "/ssc_node/voxels (MarkerArray), /ssc_node/voxel_cloud (PointCloud2), /ssc_node/occupancy_grid "
        "(OccupancyGrid) and /ssc_node/processing_time_ms, stamped with their input's stamp.",
    )
    run.add_argument("--input", required=True, type=Path, help="input bag (folder, or its .mcap/.db3 file)")
    run.add_argument("--output", required=True, type=Path, help="bag to create (x.mcap, x.db3 or a folder name)")
    run.add_argument("--checkpoint", required=True, type=Path, help="model checkpoint (ssc-train output)")
    run.add_argument(
        "--config",
        default=None,
        help="config name or YAML path; checked against the checkpoint's own (default: the checkpoint's)",
    )
    add_torch_options(run)
    run.add_argument(
        "--params-file",
        type=Path,
        default=None,
        help="ssc_node parameter YAML (e.g. config/ssc_node.yaml): sync, frames, window and outputs.* "
        "settings as live (default: the node's defaults)",
    )
    run.add_argument("--image-topic", default=None, help="camera image topic (default: the replay's)")
    run.add_argument("--camera-info-topic", default=None, help="camera_info topic (default: the replay's)")
    run.add_argument("--points-topic", default=None, help="PointCloud2 topic (default: the replay's)")
    run.add_argument("--depth-topic", default=None, help="depth image topic, RGB-D mode (default: nyu2bag's)")
    run.add_argument("--input-mode", choices=["camera", "rgbd"], default=None,
                     help="input.mode over the params file: rgbd for indoor models on image + depth bags "
                          "(config/ssc_node_rgbd.yaml holds the rest for nyu2bag bags)")
    run.add_argument("--slop", type=float, default=None, help="synchronizer slop in seconds (sync.slop_s)")
    _add_common(run)
    return parser


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--storage",
        choices=["mcap", "sqlite3"],
        default=None,
        help="storage plugin (default: from the --output suffix, else mcap)",
    )
    parser.add_argument(
        "--distro",
        choices=["humble", "jazzy"],
        default="humble",
        help="message definitions to write (default: %(default)s)",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the bag at --output if there is one (only a folder holding nothing but a bag)")


def _describe(summary) -> str:
    lines = [f"wrote {summary.path}/ ({summary.storage_file.name}), {summary.frames} frame(s)"]
    width = max(len(t) for t in summary.counts) if summary.counts else 0
    lines += [f"  {topic:<{width}}  {count:6d} msg" for topic, count in sorted(summary.counts.items())]
    drops = summary.extra.get("drops")
    if drops:
        lines.append("  dropped inputs: " + ", ".join(f"{k}={v}" for k, v in sorted(drops.items())))
    lines.append(f"play: ros2 bag play {summary.path} --clock   |   Foxglove: open {summary.storage_file}")
    return "\n".join(lines)


def _warn(line: str) -> None:
    print(f"warning: {line}", file=sys.stderr)


def _partial_note(exc: BaseException) -> str:
    """'' when the failed command wrote no bag, else a sentence saying that its partial bag is kept (closed, so
    readable up to the error) and how to rerun."""
    folder = getattr(exc, "partial_bag", None)
    if folder is None:
        return ""
    readable = "readable up to the error" if (Path(folder) / "metadata.yaml").is_file() else "not readable"
    return f"; the partial bag {folder} is kept ({readable}): rerun with --overwrite to replace it"


def main(argv: list[str] | None = None) -> int:
    """Entry point: returns 0 on success, 2 (with ``error: ...`` on stderr) on bad input, 130 on Ctrl-C. When a
    command fails after it started the output bag, the line says that the partial bag is kept, readable up to
    the error, and that a rerun needs --overwrite."""
    args = build_parser().parse_args(argv)
    try:
        summary = _run(args)
    except SSCError as exc:
        print(f"error: {exc}{_partial_note(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        print(f"interrupted: stopped by Ctrl-C{_partial_note(exc)}", file=sys.stderr)
        return EXIT_INTERRUPTED
    print(_describe(summary))
    return 0


def _run(args: argparse.Namespace):
    """Run the parsed sub-command; returns its BagSummary."""
    from ssc_core.data.semantic_kitti import SequencePaths
    from ssc_core.data.voxel_grid import sequence_grid
    from ssc_ros import bag

    if args.command == "nyu2bag":
        if args.period <= 0:
            raise ConfigError(f"--period must be > 0, got {args.period}")
        return bag.nyu2bag(args.nyu, args.output, args.split, storage=args.storage, distro=args.distro,
                           period_s=args.period, with_gt=not args.no_gt, progress=not args.no_progress,
                           overwrite=args.overwrite)
    if args.command == "kitti2bag":
        for flag, value in (("--start", args.start), ("--end", args.end)):
            if value is not None and value < 0:
                raise ConfigError(f"{flag} must be a frame number >= 0, got {value}")
        grid = None
        if not args.no_gt:
            grid = sequence_grid(SequencePaths.existing(args.sequence_dir), args.grid_dims, args.voxel_size,
                                 args.grid_origin)
        return bag.kitti2bag(
            args.sequence_dir,
            args.output,
            storage=args.storage,
            distro=args.distro,
            start=args.start,
            end=args.end,
            with_gt=not args.no_gt,
            with_right=not args.no_right,
            with_clock=args.with_clock,
            grid=grid,
            progress=not args.no_progress,
            overwrite=args.overwrite,
            warn=_warn,
        )
    overrides = {
        name: value
        for name, value in (
            ("image", args.image_topic),
            ("camera_info", args.camera_info_topic),
            ("points", args.points_topic),
            ("depth", args.depth_topic),
        )
        if value
    }
    params = {"sync.slop_s": args.slop} if args.slop is not None else {}
    if args.input_mode:
        params["input.mode"] = args.input_mode
    apply_num_threads(args)
    return bag.run(
        args.input,
        args.output,
        args.checkpoint,
        config=args.config,
        storage=args.storage,
        device=args.device,
        distro=args.distro,
        topic_overrides=overrides,
        params_file=args.params_file,
        params=params,
        progress=not args.no_progress,
        warn=_warn,
        overwrite=args.overwrite,
    )


if __name__ == "__main__":
    sys.exit(main())
