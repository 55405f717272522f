"""ssc-demo: the whole system on one machine without ROS, GPU or dataset.

Steps: (1) write a synthetic street sequence in the SemanticKITTI format (or take ``--sequence-dir``), (2) train
the small demo model on it with ``ssc-train``'s Trainer (or take ``--checkpoint``), (3) write the sequence as a
ROS 2 bag with the replay node's topics (``ssc-bag kitti2bag``), (4) run the SSC node's pipeline over that bag
(``ssc-bag run``), scoring every labelled frame with the official metrics as it goes, (5) render prediction vs
ground truth and the occupancy grid as PNGs, and print the metrics and where everything is.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from ssc_core.cli.entry import EXIT_INTERRUPTED, add_torch_options, apply_num_threads
from ssc_core.config import load_config
from ssc_core.errors import ConfigError, Interrupted, SSCError
from ssc_core.output_paths import ensure_output_dir
from ssc_core.types import GridSpec, Prediction

DEMO_CONFIG = "sgn_demo"
DEMO_SEQUENCE = "00"
PICTURES = ("prediction_vs_ground_truth.png", "occupancy_grid.png")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ssc-demo."""
    parser = argparse.ArgumentParser(
        prog="ssc-demo",
        description="Run the whole SSC pipeline offline: synthetic SemanticKITTI sequence -> train the demo model "
        "-> ROS 2 bag -> the ssc_node pipeline over the bag -> official metrics and pictures. Needs no ROS, GPU "
        "or dataset.",
        epilog="examples:\n"
        "  ssc-demo --output demo_out\n"
        "  ssc-demo --output demo_out --checkpoint demo_out/model/best.pt --overwrite   # again, without training\n"
        "  ssc-demo --output real --sequence-dir /data/kitti/dataset/sequences/08 --checkpoint best.pt --config sgn_t\n"
        "An output folder holding an earlier demo is replaced only with --overwrite; a demo that fails keeps what "
        "it wrote (its error line says so).\n"
        "exit codes: 0 = done, 2 = bad input (the message says what is wrong), 130 = interrupted (Ctrl-C)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--output", type=Path, default=Path("demo_out"), help="output folder (default: demo_out)")
    parser.add_argument("--sequence-dir", type=Path,
                        help="use this SemanticKITTI sequence folder (.../sequences/XX) instead of a synthetic one")
    parser.add_argument("--checkpoint", type=Path, help="use this checkpoint instead of training the demo model")
    parser.add_argument("--config", default=DEMO_CONFIG,
                        help=f"model config to train or check the checkpoint against (default: {DEMO_CONFIG})")
    parser.add_argument("--frames", type=int, default=40, help="length of the synthetic sequence (default: 40)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic world (default: 0)")
    parser.add_argument("--epochs", type=int, help="training epochs (default: the config's train.epochs)")
    add_torch_options(parser)
    parser.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap", help="bag storage (default: mcap)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an earlier demo in --output: its bags, pictures, summary.json and (when "
                        "training) the run in model/ (nothing else there is touched)")
    return parser


@dataclass
class DemoScores:
    """Collects the predictions the bag pipeline makes and scores those of labelled frames."""

    dataset: object
    sequence: str
    stamp_to_frame: dict[int, int]
    labelled: set[int]
    metrics: object
    predictions: dict[int, Prediction] = field(default_factory=dict)

    def __call__(self, prediction: Prediction) -> None:
        """``on_prediction`` callback of ``ssc_ros.bag.run``: score a labelled frame's prediction, keep it."""
        frame = self.stamp_to_frame.get(int(prediction.stamp_ns))
        if frame is None or frame not in self.labelled:
            return
        target = self.dataset.read_target(self.sequence, frame)
        self.metrics.add(prediction.labels, target)
        self.predictions[frame] = prediction


def _step(title: str) -> float:
    print(f"\n== {title}", flush=True)
    return time.perf_counter()


def _done(start: float, what: str) -> None:
    print(f"   {what} ({time.perf_counter() - start:.0f} s)", flush=True)


def make_sequence(args: argparse.Namespace, grid: GridSpec) -> Path:
    """Write the synthetic sequence (grid of the demo config) and return its folder."""
    from ssc_core.data.synthetic import SyntheticOptions, generate_sequence

    options = SyntheticOptions.small(grid_dims=grid.dims, voxel_size=grid.voxel_size)
    if tuple(options.grid.origin) != tuple(grid.origin):
        raise ConfigError(f"the demo config's grid origin {grid.origin} differs from the synthetic world's "
                          f"{options.grid.origin}")
    paths = generate_sequence(args.output / "data", sequence=DEMO_SEQUENCE, frames=args.frames, seed=args.seed,
                              options=options, progress=not args.no_progress)
    return paths.dir


def train_model(args: argparse.Namespace, sequence_dir: Path, threads: int) -> Path:
    """Train the demo config on the sequence with ssc-train's code path on ``threads`` CPU threads; returns the
    best checkpoint."""
    from ssc_core.cli import train

    work_dir = args.output / "model"
    argv = ["--config", args.config, "--data-root", str(sequence_dir.parent.parent), "--work-dir", str(work_dir),
            "--train-sequences", sequence_dir.name, "--val-sequences", sequence_dir.name, "--device", args.device,
            "--num-threads", str(threads), "--from-scratch"] + (["--no-progress"] if args.no_progress else [])
    if args.epochs is not None:
        argv += ["--epochs", str(args.epochs)]
    if args.overwrite:
        argv.append("--overwrite")
    summary = train.run(train.build_parser().parse_args(argv))
    best = Path(summary["best"]) if summary and summary.get("best") else work_dir / "last.pt"
    return best


def demo_outputs(args: argparse.Namespace) -> list[Path]:
    """Everything this demo run would write that an earlier one may have left in ``--output``: the two bags,
    the pictures, summary.json and, when it trains, the run files in model/ (the synthetic sequence in data/ is
    rewritten in place by ssc-make-synthetic's own rule)."""
    from ssc_core.cli.train import WORK_DIR_FILES

    out = args.output
    paths = [out / "bags" / "input", out / "bags" / "output", *(out / name for name in PICTURES), out / "summary.json"]
    if args.checkpoint is None:
        paths += [out / "model" / name for name in WORK_DIR_FILES]
    return paths


def claim_output(args: argparse.Namespace) -> None:
    """Refuse (ConfigError naming --overwrite) when --output holds an earlier demo; with --overwrite delete its
    bags, pictures and summary (the training run is replaced by ssc-train --overwrite)."""
    from ssc_ros.bag import remove_bag

    earlier = [p for p in demo_outputs(args) if p.exists()]
    if not earlier:
        return
    if not args.overwrite:
        names = ", ".join(str(p.relative_to(args.output)) for p in earlier[:4])
        raise ConfigError(f"--output {args.output} holds an earlier demo ({names}{', ...' if len(earlier) > 4 else ''})"
                          ": pass --overwrite to replace it, or choose another --output")
    for path in earlier:
        if path.parent == args.output / "bags":
            remove_bag(path)
        elif path.is_file() and path.parent == args.output:
            path.unlink()


def occupancy_picture(prediction: Prediction, class_set, title: str, path: Path) -> Path:
    """Render the OccupancyGrid the node would publish for ``prediction`` (node defaults) as a PNG: metric axes
    in its frame (``prediction.frame_id``), the ego car, and ``title`` with a key of the shades."""
    from ssc_core.viz.bev import render_occupancy_grid
    from ssc_core.viz.compose import add_title, save_png
    from ssc_core.viz.overlays import frame_top_down
    from ssc_ros.pipeline.outputs import OutputBuilder

    cells = OutputBuilder(class_set).occupancy_cells(prediction)
    image = frame_top_down(render_occupancy_grid(cells, scale=3, layout="xy"), prediction.grid, font_size=13)
    image = add_title(image, "black occupied, white free, grey unknown", 13)
    return save_png(path, add_title(image, f"OccupancyGrid in frame {prediction.frame_id or '?'}: {title}", 15))


def print_metrics(scores: dict, class_set, frames: int) -> None:
    """Print completion and per-class IoU as a table."""
    print(f"\nOfficial SSC metrics over {frames} labelled frames (SemanticKITTI protocol):")
    print(f"  completion IoU {100 * scores['iou']:6.2f}   precision {100 * scores['precision']:6.2f}   "
          f"recall {100 * scores['recall']:6.2f}   mIoU {100 * scores['miou']:6.2f}")
    print("  per class (classes absent from both prediction and ground truth score 0 by the official rule):")
    rows = [f"{name:>14s} {100 * iou:6.2f}" for name, iou in zip(class_set.names[1:], scores["iou_per_class"][1:])]
    for i in range(0, len(rows), 3):
        print("   " + "   ".join(rows[i:i + 3]))


def run(args: argparse.Namespace) -> dict:
    """Run the demo as ``args`` say; returns a summary dict (paths and metrics)."""
    from ssc_core.data.datasets import build_dataset
    from ssc_core.evaluation.metrics import SSCMetrics
    from ssc_core.inference.predictor import Predictor
    from ssc_core.viz.compose import save_png, side_by_side
    from ssc_ros import bag
    from ssc_ros.replay import KittiSequence

    ensure_output_dir(args.output)
    threads = apply_num_threads(args)
    cfg = load_config(args.config)
    missing = [section for section in ("model", "data") if not isinstance(cfg.get(section), dict)]
    if missing:
        raise ConfigError(f"config {args.config!r} has no {' / '.join(s + ':' for s in missing)} section")
    grid = GridSpec.from_dict(cfg["data"].get("grid") or {})
    claim_output(args)
    args.started = True  # from here on a failure leaves partial output behind (main says so)

    start = _step("1/5 sequence")
    if args.sequence_dir is not None:
        sequence_dir = args.sequence_dir
        if not (sequence_dir / "calib.txt").is_file():
            raise ConfigError(f"--sequence-dir {sequence_dir}: no calib.txt (expected .../sequences/XX)")
        _done(start, f"using {sequence_dir}")
    else:
        sequence_dir = make_sequence(args, grid)
        _done(start, f"wrote synthetic sequence {sequence_dir}")

    start = _step("2/5 model")
    if args.checkpoint is not None:
        checkpoint = args.checkpoint
        _done(start, f"using {checkpoint}")
    else:
        checkpoint = train_model(args, sequence_dir, threads)
        _done(start, f"trained {args.config}: {checkpoint}")
    predictor = Predictor.from_checkpoint(checkpoint, device=args.device, config=cfg)  # checked against --config
    grid = predictor.grid

    start = _step("3/5 sequence -> ROS 2 bag (the replay node's topics)")
    suffix = ".mcap" if args.storage == "mcap" else ".db3"
    input_bag = bag.kitti2bag(sequence_dir, args.output / "bags" / f"input{suffix}", storage=args.storage,
                              grid=grid, progress=not args.no_progress)
    _done(start, f"{input_bag.path} ({sum(input_bag.counts.values())} messages)")

    start = _step("4/5 ssc_node pipeline over the bag")
    dataset = build_dataset(predictor.cfg["data"], None, sequence_dir.parent.parent, sequences=[sequence_dir.name])
    replayed = KittiSequence(sequence_dir, load_gt=False, grid=grid)  # the bag's stamps come from the replay
    stamp_to_frame = {replayed.stamp_ns(frame): frame for frame in replayed.frames}
    scores = DemoScores(dataset, dataset.sequences[0], stamp_to_frame, {f for _, f in dataset.items},
                        SSCMetrics(predictor.class_set.num_classes))
    output_bag = bag.run(input_bag.path, args.output / "bags" / f"output{suffix}", storage=args.storage,
                         predictor=predictor, progress=not args.no_progress, on_prediction=scores)
    _done(start, f"{output_bag.path}")
    if not scores.predictions:
        raise SSCError("the pipeline produced no prediction for a labelled frame; see the warnings above")

    start = _step("5/5 pictures and metrics")
    frame = max(scores.predictions)
    prediction = scores.predictions[frame]
    target = dataset.read_target(scores.sequence, frame)
    where = f"sequence {scores.sequence}, frame {frame:06d}"
    comparison = save_png(args.output / PICTURES[0],
                          side_by_side(prediction.labels, target, predictor.class_set, grid, caption=where))
    occupancy = occupancy_picture(prediction, predictor.class_set, where, args.output / PICTURES[1])
    result = scores.metrics.compute()
    _done(start, "rendered")
    print_metrics(result, predictor.class_set, len(scores.predictions))

    summary = {
        "sequence_dir": str(sequence_dir), "checkpoint": str(checkpoint), "input_bag": str(input_bag.path),
        "output_bag": str(output_bag.path), "prediction_vs_ground_truth": str(comparison),
        "occupancy_grid": str(occupancy), "frames_scored": len(scores.predictions),
        "iou": result["iou"], "miou": result["miou"],
    }
    (args.output / "summary.json").write_text(json.dumps(summary, indent=2))
    print(f"""
Everything is in {args.output}/:
  {comparison}   prediction vs ground truth (3D and bird's-eye view)
  {occupancy}    the OccupancyGrid the node publishes
  {output_bag.path}    input topics + /ssc_node/voxels, voxel_cloud, occupancy_grid
  {args.output / 'summary.json'}
View the bag: open {output_bag.path} in Foxglove, or with ROS 2:
  ros2 bag play {output_bag.path} --clock   and   rviz2 -d $(ros2 pkg prefix ssc_ros)/share/ssc_ros/rviz/ssc.rviz""")
    return summary


def main(argv: list[str] | None = None) -> int:
    """Entry point: 0 on success, 2 with ``error: ...`` on bad input, 130 on Ctrl-C. When the demo fails or is
    stopped after it began writing, the line says that its partial output is kept and how to rerun."""
    args = build_parser().parse_args(argv)
    args.started = False
    try:
        run(args)
    except (SSCError, Interrupted, KeyboardInterrupt) as exc:
        kept = (f"; what the demo wrote so far is kept in {args.output}: rerun with --overwrite to replace it"
                if args.started else "")
        if isinstance(exc, SSCError):
            print(f"error: {exc}{kept}", file=sys.stderr)
            return 2
        print(f"interrupted: stopped by Ctrl-C{kept}", file=sys.stderr)
        return EXIT_INTERRUPTED
    return 0


if __name__ == "__main__":
    sys.exit(main())
