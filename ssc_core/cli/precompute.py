"""``ssc-precompute``: write per-frame inputs to disk once, in the original code bases' formats, so training can
read them instead of computing them every epoch (``ssc_core.data.cached_inputs`` describes the files):

- ``sweeps``: VoxFormer's stage-1 input, the ray-cast occupancy of the sweep frames (``.pseudo``);
- ``proposals``: the query proposals of a trained VoxFormer's proposal network (``.query_<tag>``), with their
  IoU / precision / recall against the labels;
- ``lga``: HASSC's local geometric anisotropy of the labels (``.npy``).
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ssc_core.cli.entry import add_torch_options, apply_num_threads, run_and_report
from ssc_core.config import load_config
from ssc_core.data.cached_inputs import lga_file, proposal_file, sweep_file
from ssc_core.data.datasets import build_dataset
from ssc_core.data.semantic_kitti import write_packed_bits
from ssc_core.data.transforms import collate
from ssc_core.errors import ConfigError
from ssc_core.losses.hassc import local_geometric_anisotropy
from ssc_core.output_paths import ensure_output_dir
from ssc_core.training.checkpoint import check_compatible, load_checkpoint, load_model_state
from ssc_core.training.distributed import resolve_device

KINDS = ("sweeps", "proposals", "lga")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ssc-precompute."""
    parser = argparse.ArgumentParser(
        prog="ssc-precompute",
        description="Write per-frame inputs once, in the original formats, for training to read: sweeps "
        "(<output>/<seq>/voxels/NNNNNN.pseudo, VoxFormer's stage-1 occupancy), proposals "
        "(<output>/<seq>/queries/NNNNNN.query_<tag>, a trained VoxFormer's query proposals) or lga "
        "(<output>/<seq>/lgas/NNNNNN.npy, HASSC's label anisotropy). Point a config at them with "
        "data.sweeps.root, data.proposals.root (+ tag) or data.lga.root. Existing files are kept unless "
        "--overwrite is given.",
        epilog="examples:\n"
        "  ssc-precompute sweeps --config voxformer_t --data-root /data/kitti/dataset --output /data/sweeps10\n"
        "  ssc-precompute proposals --checkpoint runs/voxformer_t/best.pt --data-root /data/kitti/dataset "
        "--output /data/queries --tag mine\n"
        "  ssc-precompute lga --config voxformer_t --data-root /data/kitti/dataset --output /data/lga\n"
        "exit codes: 0 = written, 2 = bad input (the message names the file or key)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("kind", choices=KINDS, help="what to write")
    parser.add_argument("--config", help="config name or YAML path (sweeps, lga; for proposals the checkpoint's "
                        "config is used unless given, and must then match it)")
    parser.add_argument("--checkpoint", type=Path, help="proposals: a VoxFormer checkpoint with online proposals")
    parser.add_argument("--data-root", help="dataset folder holding sequences/ (default: data.root of the config)")
    parser.add_argument("--output", required=True, type=Path, help="folder to write <seq>/<kind folder>/ into")
    parser.add_argument("--split", default="train", help="split of data.splits to process (default: %(default)s)")
    parser.add_argument("--sequences", nargs="+", help="explicit sequence ids (replace --split)")
    parser.add_argument("--unlabelled", action="store_true",
                        help="every input frame (voxels/*.bin, else every image), not only the labelled ones; "
                        "not for lga, which needs labels")
    parser.add_argument("--tag", default="ssc", help="proposals: file suffix .query_<tag> (default: %(default)s)")
    parser.add_argument("--overwrite", action="store_true", help="replace files that exist already")
    parser.add_argument("--limit", type=int, help="at most this many frames per sequence")
    add_torch_options(parser)
    return parser


def _config_and_model(args: argparse.Namespace) -> tuple[dict, torch.nn.Module | None]:
    if args.kind != "proposals":
        if args.config is None:
            raise ConfigError(f"ssc-precompute {args.kind} needs --config")
        return load_config(args.config), None
    if args.checkpoint is None:
        raise ConfigError("ssc-precompute proposals needs --checkpoint (a VoxFormer trained with online proposals)")
    from ssc_core.models import build_model

    ckpt = load_checkpoint(args.checkpoint)
    cfg = copy.deepcopy(ckpt["config"])
    if args.config is not None:
        cfg = load_config(args.config)
        check_compatible(ckpt, config=cfg, source=str(args.checkpoint))
    if (cfg.get("model") or {}).get("name") != "voxformer" or cfg["model"].get("proposals", "online") != "online":
        raise ConfigError(f"{args.checkpoint}: proposals come from a VoxFormer with model.proposals: online")
    model = build_model(cfg)
    load_model_state(model, ckpt["model"], source=str(args.checkpoint))
    return cfg, model.to(resolve_device(args.device)).eval()


def _data_cfg(cfg: dict, kind: str) -> dict:
    """The data section to read from: computed sweeps (not cached ones) for sweeps and proposals, no cached
    proposals or LGA."""
    data = copy.deepcopy(cfg.get("data") or {})
    data.pop("proposals", None)
    data.pop("lga", None)
    if kind in ("sweeps", "proposals"):
        sweeps = data.get("sweeps")
        if not isinstance(sweeps, dict):
            raise ConfigError(f"ssc-precompute {kind} needs a config with data.sweeps (e.g. voxformer_t)")
        if kind == "sweeps":
            data["sweeps"] = {**sweeps, "root": None}
    return data


def run(args: argparse.Namespace) -> dict:
    """Write the files; returns a summary (frames written and skipped, the output, proposal quality)."""
    if args.kind == "lga" and args.unlabelled:
        raise ConfigError("--unlabelled does not apply to lga: LGA is computed from the labels")
    if args.limit is not None and args.limit < 1:
        raise ConfigError(f"--limit must be >= 1, got {args.limit}")
    apply_num_threads(args)
    cfg, model = _config_and_model(args)
    data_cfg = _data_cfg(cfg, args.kind)
    output = ensure_output_dir(args.output)
    dataset = build_dataset(data_cfg, args.split, args.data_root, sequences=args.sequences,
                            with_labels=not args.unlabelled)
    items, per_sequence = [], {}
    for i, (seq, frame) in enumerate(dataset.items):
        per_sequence[seq] = per_sequence.get(seq, 0) + 1
        if args.limit is None or per_sequence[seq] <= args.limit:
            items.append((i, seq, frame))

    def target_path(seq: str, frame: int) -> Path:
        if args.kind == "sweeps":
            return sweep_file(output, seq, frame)
        if args.kind == "proposals":
            return proposal_file(output, seq, frame, args.tag)
        return lga_file(output, seq, frame)

    todo = [it for it in items if args.overwrite or not target_path(it[1], it[2]).exists()]
    counts = np.zeros(3, dtype=np.int64)  # proposals: tp, fp, fn against the binarised 1:2 labels
    for index, seq, frame in tqdm(todo, desc=f"ssc-precompute {args.kind}", dynamic_ncols=True,
                                  disable=not sys.stderr.isatty()):
        sample = dataset[index]
        path = target_path(seq, frame)
        if args.kind == "sweeps":
            write_packed_bits(path, sample["sweep_occupancy"].numpy())
        elif args.kind == "lga":
            path.parent.mkdir(parents=True, exist_ok=True)
            np.save(path, local_geometric_anisotropy(sample["target"]).numpy())
        else:
            batch = {k: v.to(next(model.parameters()).device) if torch.is_tensor(v) else v
                     for k, v in collate([sample]).items()}
            with torch.no_grad():
                proposal = model.propose(batch)[0][0].cpu()
            write_packed_bits(path, proposal.numpy().astype(np.uint8))
            if "target_1_2" in sample:
                half = sample["target_1_2"]
                valid = half != 255
                occupied = (half > 0) & valid
                counts += [int((proposal & occupied).sum()), int((proposal & ~occupied & valid).sum()),
                           int((~proposal & occupied).sum())]
    summary = {"kind": args.kind, "frames_written": len(todo), "frames_kept": len(items) - len(todo),
               "output": str(output)}
    if args.kind == "proposals" and counts.sum():
        tp, fp, fn = (int(c) for c in counts)
        summary.update(iou=round(tp / max(tp + fp + fn, 1), 4), precision=round(tp / max(tp + fp, 1), 4),
                       recall=round(tp / max(tp + fn, 1), 4))
    summary["use_with"] = {
        "sweeps": f"--set data.sweeps.root={output}",
        "proposals": f"--set model.proposals=cached --set data.proposals.root={output} "
                     f"--set data.proposals.tag={args.tag}",
        "lga": f"--set data.lga.root={output}",
    }[args.kind]
    return summary


def main(argv: list[str] | None = None) -> int:
    """Entry point: 0 on success, 2 with ``error: ...`` on bad input."""
    return run_and_report(build_parser(), run, argv)


if __name__ == "__main__":
    sys.exit(main())
