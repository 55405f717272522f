"""``ssc-infer``: run a trained checkpoint over a sequence and write predictions in the official layout
(``<output>/sequences/XX/predictions/NNNNNN.label``, raw ids, uint16), which ``ssc-eval`` then scores."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ssc_core.cli.entry import add_torch_options, apply_num_threads, run_and_report
from ssc_core.config import load_config
from ssc_core.data.datasets import build_dataset
from ssc_core.data.label_maps import ClassSet
from ssc_core.data.semantic_kitti import VOXEL_DIMS, write_voxel_labels
from ssc_core.errors import ConfigError
from ssc_core.evaluation.writers import prediction_path, train_to_raw, write_prediction
from ssc_core.inference.predictor import Predictor
from ssc_core.output_paths import ensure_output_dir


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ssc-infer."""
    parser = argparse.ArgumentParser(
        prog="ssc-infer",
        description="Predict every input frame of one or more sequences (each voxels/NNNNNN.bin, else each "
        "image_2 frame) with a trained checkpoint and write NNNNNN.label files in the official SemanticKITTI "
        "submission layout under --output. Score them with ssc-eval -d <data-root> -p <output>.",
        epilog="example:\n"
        "  ssc-infer --config sgn_tiny --checkpoint work_dirs/sgn_tiny/best.pt --data-root /tmp/synth "
        "--sequence 00 --output /tmp/preds --render\n"
        "Earlier predictions of the same sequences under --output are never mixed with new ones: ssc-infer "
        "refuses, unless --overwrite deletes them first.\n"
        "exit codes: 0 = written, 2 = bad input (the message names the file or key)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--checkpoint", required=True, type=Path, help="checkpoint written by ssc-train (best.pt)")
    parser.add_argument("--config", help="config name or YAML path; must match the checkpoint's model and data "
                        "definition (default: the config stored in the checkpoint)")
    parser.add_argument("--data-root", help="dataset folder holding sequences/ (default: data.root of the config)")
    parser.add_argument("--sequence", nargs="+", required=True,
                        help="sequence id(s), e.g. 08; NYU checkpoints: a split (train, test) or frame ids (0001)")
    parser.add_argument("--output", required=True, type=Path, help="folder to write sequences/XX/predictions/ into")
    parser.add_argument("--render", action="store_true",
                        help="also write a PNG per frame to <output>/render/XX/NNNNNN.png (prediction beside the "
                        "ground truth when the frame has voxel labels)")
    parser.add_argument("--overwrite", action="store_true",
                        help="delete earlier predictions (and --render PNGs) of these sequences under --output first")
    parser.add_argument("--limit", type=int, help="predict at most this many frames per sequence")
    add_torch_options(parser)
    return parser


def write_labels(output: Path, sequence: str, frame: int, labels: np.ndarray, class_set: ClassSet) -> Path:
    """Write one frame's train-id labels as raw ids (uint16) at the official prediction path. Labels on the
    benchmark grid go through the official writer (which checks the shape); other grids (small test configs)
    are written the same way at their own size."""
    if labels.shape == VOXEL_DIMS or class_set.name == "nyu":
        return write_prediction(output, sequence, frame, labels, class_set)
    path = prediction_path(output, sequence, frame, class_set)
    write_voxel_labels(path, train_to_raw(labels, class_set))
    return path


def claim_prediction_folders(output: Path, folders: list[Path], overwrite: bool) -> None:
    """Make sure predictions of two runs never mix: ``folders`` (where this run writes its predictions and
    renders) must hold no earlier ``.label`` / ``.png`` files, else ConfigError naming --overwrite; with
    ``overwrite`` those files are deleted."""
    earlier = [f for folder in folders if folder.is_dir() for f in sorted(folder.iterdir())
               if f.is_file() and f.suffix in (".label", ".png")]
    if not earlier:
        return
    if not overwrite:
        raise ConfigError(f"--output {output} already holds {len(earlier)} prediction file(s) where this run "
                          f"writes (e.g. {earlier[0]}): pass --overwrite to replace them, or choose another --output")
    for path in earlier:
        path.unlink()


def _render(dataset, sequence: str, frame: int, labels, predictor: Predictor, path: Path) -> None:
    from ssc_core.viz.compose import save_png, scene_figure, side_by_side

    caption = f"sequence {sequence} frame {frame:06d}"
    if not dataset._infos[sequence].paths.voxel(frame, "label").is_file():  # unlabelled: the prediction alone
        figure = scene_figure(labels, predictor.class_set, predictor.grid, title=caption)
    else:  # a broken label file is an error, not a reason to leave the ground truth out
        target = dataset.read_target(sequence, frame)
        figure = side_by_side(labels, target, predictor.class_set, predictor.grid, caption=caption)
    save_png(path, figure)


def run(args: argparse.Namespace) -> dict:
    """Predict and write as ``args`` say. Returns a summary (frames written, seconds per frame, output)."""
    if args.limit is not None and args.limit < 1:
        raise ConfigError(f"--limit must be >= 1, got {args.limit}")
    ensure_output_dir(args.output)
    apply_num_threads(args)
    config = load_config(args.config) if args.config else None
    predictor = Predictor.from_checkpoint(args.checkpoint, device=args.device, config=config)
    if (predictor.cfg.get("data") or {}).get("dataset") == "nyu":
        return infer_nyu(args, predictor)
    dataset = build_dataset(predictor.cfg.get("data") or {}, None, args.data_root, sequences=args.sequence,
                            with_labels=False)
    folders = [prediction_path(args.output, seq, 0, predictor.class_set).parent for seq in dataset.sequences]
    claim_prediction_folders(args.output, folders + [args.output / "render" / seq for seq in dataset.sequences],
                             args.overwrite)
    items = list(range(len(dataset)))
    if args.limit is not None:
        per_seq: dict[str, int] = {}
        kept = []
        for i in items:
            seq = dataset.items[i][0]
            if per_seq.get(seq, 0) < args.limit:
                per_seq[seq] = per_seq.get(seq, 0) + 1
                kept.append(i)
        items = kept
    seconds = 0.0
    for i in tqdm(items, desc="ssc-infer", dynamic_ncols=True):
        sequence, frame = dataset.items[i]
        window = dataset.window(i)
        start = time.perf_counter()
        prediction = predictor.predict(window, dataset.point_source_cfg(sequence))
        seconds += time.perf_counter() - start
        write_labels(args.output, sequence, frame, prediction.labels, predictor.class_set)
        if args.render:
            _render(dataset, sequence, frame, prediction.labels, predictor,
                    args.output / "render" / sequence / f"{frame:06d}.png")
    return {"frames": len(items), "seconds_per_frame": round(seconds / max(len(items), 1), 3),
            "output": str(args.output)}


def infer_nyu(args: argparse.Namespace, predictor: Predictor) -> dict:
    """NYU checkpoints: ``--sequence`` names a split (train / test) or frame ids; predictions go to
    ``<output>/predictions/<id>.label`` (uint16 train ids, 60 x 36 x 60 C order), where ssc-eval --dataset-kind nyu
    reads them."""
    data_cfg = dict(predictor.cfg.get("data") or {}, augment=False)
    if len(args.sequence) == 1 and args.sequence[0] in ("train", "test", "valid", "val"):
        dataset = build_dataset(data_cfg, args.sequence[0], args.data_root, with_labels=False)
    else:
        dataset = build_dataset(data_cfg, "test", args.data_root, sequences=args.sequence, with_labels=False)
    claim_prediction_folders(args.output, [prediction_path(args.output, "", "0", predictor.class_set).parent],
                             args.overwrite)
    items = list(range(len(dataset)))[: args.limit]
    seconds = 0.0
    for i in tqdm(items, desc="ssc-infer nyu", dynamic_ncols=True):
        sample = dataset[i]
        start = time.perf_counter()
        prediction = predictor.predict_sample(sample)
        seconds += time.perf_counter() - start
        write_prediction(args.output, "", sample["frame_id"], prediction.labels, predictor.class_set)
    return {"frames": len(items), "seconds_per_frame": round(seconds / max(len(items), 1), 3),
            "output": str(args.output)}


def main(argv: list[str] | None = None) -> int:
    """Entry point: 0 on success, 2 with ``error: ...`` on bad input."""
    return run_and_report(build_parser(), run, argv)


if __name__ == "__main__":
    sys.exit(main())
