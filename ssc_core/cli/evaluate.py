"""``ssc-eval``: score SSC predictions on a dataset folder, a drop-in for semantic-kitti-api's
``evaluate_completion.py`` (same flags, same ``scores.txt``) that also reads SSCBench-KITTI-360 and NYUv2."""

from __future__ import annotations

import argparse
import sys

from ssc_core.errors import ConfigError, SSCError
from ssc_core.evaluation.eval_range import EVAL_RANGES, FULL_RANGE
from ssc_core.evaluation.official import DATASET_KINDS, EvaluationResult, evaluate, write_scores
from ssc_core.output_paths import ensure_output_dir


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (official flags plus --dataset-kind, --grid-dims and --no-progress)."""
    parser = argparse.ArgumentParser(
        prog="ssc-eval",
        description=(
            "Evaluate semantic scene completion predictions exactly like semantic-kitti-api's "
            "evaluate_completion.py (completion IoU, precision, recall, per-class IoU, mIoU over one confusion "
            "matrix of the whole split). Predictions are RAW label ids, uint16, one file per ground-truth .label: "
            "<predictions>/sequences/XX/predictions/NNNNNN.label (SemanticKITTI), "
            "<predictions>/data_2d_raw/<drive>/predictions/NNNNNN.label (KITTI-360), "
            "<predictions>/predictions/<id>.label with train ids (NYU)."
        ),
        epilog=(
            "example: ssc-eval -d /data/semantic_kitti/dataset -p /runs/sgn/preds -s valid --output /runs/sgn\n"
            "exit codes: 0 = scored, 2 = bad input (the message names the file)"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-d", "--dataset", required=True,
                        help="dataset folder: holds sequences/ (SemanticKITTI), data_2d_raw/ (KITTI-360), "
                             "or Label/ TSDF/ Mapping/ or NYUtest/ (NYU)")
    parser.add_argument("-p", "--predictions", default=None,
                        help="prediction folder with the dataset's organisation (default: the dataset folder)")
    parser.add_argument("-s", "--split", choices=["train", "valid", "test"], default="valid",
                        help="split to evaluate (default: %(default)s; for NYU 'valid' means the test set)")
    parser.add_argument("-dc", "--datacfg", default=None,
                        help="official-style data config (semantic-kitti.yaml); when given, its label maps and "
                             "split table replace the built-in ones (SemanticKITTI only)")
    parser.add_argument("--output", default=".",
                        help="folder to write scores.txt into (YAML, official keys; default: %(default)s)")
    parser.add_argument("--dataset-kind", choices=DATASET_KINDS, default="semantic_kitti",
                        help="dataset layout and protocol (default: %(default)s)")
    parser.add_argument("--grid-dims", type=int, nargs=3, metavar=("X", "Y", "Z"), default=None,
                        help="voxel grid of the files when it is not the official 256 256 32 (e.g. 128 128 16 for "
                             "ssc-make-synthetic --small data); SemanticKITTI and KITTI-360 kinds only")
    parser.add_argument("--sequences", nargs="+", metavar="XX", default=None,
                        help="evaluate exactly these sequences instead of --split's (SemanticKITTI kind only; "
                             "e.g. a synthetic sequence)")
    parser.add_argument("--eval-range", type=float, choices=EVAL_RANGES, default=FULL_RANGE,
                        help="score only voxels less than this many metres ahead and half of it to each side, the "
                             "short-range protocol of SGN / VoxFormer / HASSC (default: %(default)s = everything); "
                             "at 25.6 or 12.8 the scores.txt names end in the range, e.g. iou_mean_25.6m")
    parser.add_argument("--nyu-protocol", choices=["sscnet", "monoscene"], default=None,
                        help="NYU only: sscnet = SC on occluded voxels and SSC on label_weight > 0 (depth/TSDF "
                             "methods: SSCNet, 3D-Sketch, CleanerS; needs Label/ TSDF/ Mapping/), monoscene = every "
                             "voxel with label != 255 (RGB methods). Default: sscnet where TSDF/ exists, else "
                             "monoscene. The two give numbers that are not comparable; every table names its protocol")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return parser


def format_report(result: EvaluationResult) -> str:
    """Human-readable table: per-class IoU (%) and the completion / mIoU summary."""
    metrics = result.metrics
    width = max(len(n) for n in (*result.class_set.names, "IoU (completion)")) + 2
    lines = [
        f"{result.kind} ({result.protocol}): {result.num_frames} frame(s) evaluated",
        f"{'class':<{width}} IoU (%)",
        "-" * (width + 8),
    ]
    for i, name in enumerate(result.class_set.names[1:], start=1):
        lines.append(f"{name:<{width}} {100 * metrics['iou_per_class'][i]:7.2f}")
    lines.append("-" * (width + 8))
    lines += [
        f"{'Precision':<{width}} {100 * metrics['precision']:7.2f}",
        f"{'Recall':<{width}} {100 * metrics['recall']:7.2f}",
        f"{'IoU (completion)':<{width}} {100 * metrics['iou']:7.2f}",
        f"{'mIoU':<{width}} {100 * metrics['miou']:7.2f}",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``ssc-eval``; returns the exit code (2 on bad input)."""
    args = build_parser().parse_args(argv)
    try:
        if args.grid_dims and min(args.grid_dims) < 1:
            raise ConfigError(f"--grid-dims must be three positive integers, got {args.grid_dims}")
        ensure_output_dir(args.output)
        result = evaluate(
            args.dataset_kind, args.dataset, args.predictions, args.split, datacfg=args.datacfg,
            progress=not args.no_progress, dims=tuple(args.grid_dims) if args.grid_dims else None,
            sequences=args.sequences, nyu_protocol=args.nyu_protocol, eval_range=args.eval_range,
        )
        print(format_report(result))
        path = write_scores(result, args.output)
    except SSCError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
