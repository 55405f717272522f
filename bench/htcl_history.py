"""Does a trained HTCL checkpoint use its keyframe history? Scores it on labelled frames twice: with the history
of its config, and with every history slot holding the current frame (offsets before the sequence start, the
start-up window of docs/ros.md), and says how far the two runs' logits are apart.

    python bench/htcl_history.py --checkpoint runs/htcl_tiny/last.pt --data-root /data/streets --sequences 08 09

Prints a table: IoU / mIoU (official protocol, every voxel with ground truth != 255) of both runs, the largest
change of a logit, the mean |logit|, and how many voxels change their predicted class. Exit code 2 with one
``error:`` line for a missing or non-HTCL checkpoint or a missing sequence.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from ssc_core.data.datasets import SemanticKittiDataset  # noqa: E402
from ssc_core.data.transforms import collate  # noqa: E402
from ssc_core.errors import ConfigError, SSCError  # noqa: E402
from ssc_core.evaluation.scorers import TargetScorer  # noqa: E402
from ssc_core.models import build_model  # noqa: E402
from ssc_core.training.checkpoint import load_checkpoint  # noqa: E402

BEFORE_ANY_FRAME = -1_000_000


@dataclass
class HistoryEffect:
    """Scores with the real history (``iou``, ``miou``) and with the current frame in every slot
    (``iou_current``, ``miou_current``); ``max_logit_change``, ``mean_abs_logit`` over every voxel and frame;
    ``changed_voxels`` of ``voxels`` whose argmax differs."""

    iou: float
    miou: float
    iou_current: float
    miou_current: float
    max_logit_change: float
    mean_abs_logit: float
    changed_voxels: int
    voxels: int


def history_effect(checkpoint: str | Path, data_root: str | Path, sequences: list[str]) -> HistoryEffect:
    """Run the HTCL checkpoint on every labelled frame of ``sequences`` with and without its history (see the
    module docstring). ConfigError for a checkpoint that is not HTCL's or has no history."""
    ckpt = load_checkpoint(checkpoint)
    cfg = ckpt["config"]
    offsets = list(cfg["data"].get("history_offsets") or [])
    if cfg["model"].get("name") != "htcl" or not offsets:
        raise ConfigError(f"{checkpoint} is not an HTCL checkpoint with a keyframe history")
    model = build_model(cfg)
    model.load_state_dict(ckpt["model"])
    model.eval()
    data = {**cfg["data"], "lidar_depth": False, "labelled_points": False}
    runs = [SemanticKittiDataset(data_root, cfg={**data, "history_offsets": o}, sequences=sequences)
            for o in (offsets, [BEFORE_ANY_FRAME] * len(offsets))]
    scorers = [TargetScorer(int(cfg["model"].get("num_classes", 20))) for _ in runs]
    max_change, abs_sum, changed, voxels = 0.0, 0.0, 0, 0
    with torch.no_grad():
        for i in range(len(runs[0])):
            batches = [collate([run[i]]) for run in runs]
            logits = [model(batch)["ssc_logits"] for batch in batches]
            for scorer, batch, out in zip(scorers, batches, logits):
                scorer.add_batch(out.argmax(dim=1).numpy(), batch)
            max_change = max(max_change, float((logits[0] - logits[1]).abs().max()))
            abs_sum += float(logits[0].abs().mean())
            changed += int((logits[0].argmax(1) != logits[1].argmax(1)).sum())
            voxels += logits[0][:, 0].numel()
    real, current = (scorer.compute() for scorer in scorers)
    return HistoryEffect(real["iou"], real["miou"], current["iou"], current["miou"], max_change,
                         abs_sum / max(len(runs[0]), 1), changed, voxels)


def format_table(effect: HistoryEffect) -> str:
    """The markdown table the command prints."""
    return "\n".join([
        "| history | IoU | mIoU |", "|---|---|---|",
        f"| the config's keyframes | {effect.iou:.4f} | {effect.miou:.4f} |",
        f"| the current frame in every slot | {effect.iou_current:.4f} | {effect.miou_current:.4f} |",
        "",
        f"largest logit change {effect.max_logit_change:.3g} (mean |logit| {effect.mean_abs_logit:.3g}); "
        f"{effect.changed_voxels} of {effect.voxels} voxels change their class",
    ])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True, help="an HTCL checkpoint written by ssc-train")
    parser.add_argument("--data-root", required=True, help="dataset folder holding sequences/")
    parser.add_argument("--sequences", nargs="+", required=True, help="sequence ids with voxel labels")
    parser.add_argument("--num-threads", type=int, default=1, help="torch CPU threads (default 1)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.num_threads)
    try:
        effect = history_effect(args.checkpoint, args.data_root, args.sequences)
    except (SSCError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(format_table(effect))
    return 0


if __name__ == "__main__":
    sys.exit(main())
