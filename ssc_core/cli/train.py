"""``ssc-train``: train a model from a config on a SemanticKITTI-layout dataset (single process or torchrun)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import yaml

from ssc_core.cli.entry import apply_num_threads, run_and_report
from ssc_core.config import deep_merge, load_config, resolve_config_path
from ssc_core.data.datasets import build_dataset
from ssc_core.errors import ConfigError
from ssc_core.output_paths import ensure_output_dir
from ssc_core.training.distributed import cleanup_distributed, init_distributed
from ssc_core.training.settings import TrainSettings
from ssc_core.training.trainer import Trainer, seed_everything


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ssc-train."""
    parser = argparse.ArgumentParser(
        prog="ssc-train",
        description="Train an SSC model. The config (config/models/<name>.yaml) holds model:, data: and train: "
        "sections; train: is documented in docs/training.md. Writes last.pt (resumable), best.pt (best "
        "validation mIoU), history.jsonl, config.yaml and TensorBoard events (tb/) to the work dir. For several "
        "GPUs or machines launch it with torchrun (DDP).",
        epilog="examples:\n"
        "  ssc-train --config sgn_tiny --data-root /tmp/synth --train-sequences 00 --val-sequences 00\n"
        "  ssc-train --config sgn_tiny --data-root /tmp/synth --set train.lr=0.01 --set train.epochs=30\n"
        "  ssc-train --config sgn_t --data-root /data/semantic_kitti/dataset --work-dir runs/sgn_t --resume\n"
        "  torchrun --nproc_per_node 4 -m ssc_core.cli.train --config sgn_t --data-root /data/kitti/dataset\n"
        "exit codes: 0 = trained, 2 = bad input (the message says what is wrong)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", required=True, help="config name (e.g. sgn_tiny) or path to a YAML file")
    parser.add_argument("--data-root", help="dataset folder holding sequences/ (default: data.root of the config)")
    parser.add_argument("--work-dir", type=Path, help="output folder (default: work_dirs/<config name>)")
    parser.add_argument("--resume", nargs="?", const="auto", default=None, metavar="CHECKPOINT",
                        help="continue a run: from CHECKPOINT, or from <work-dir>/last.pt when given alone")
    parser.add_argument("--epochs", type=int, help="override train.epochs")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                        help="override any config key by its dotted path, value in YAML (repeatable), e.g. "
                        "--set train.lr=0.01 --set data.points.source=stereo_sgbm")
    parser.add_argument("--device", default=None,
                        help="cpu, cuda, cuda:1, ... (default: cuda when available; torchrun picks LOCAL_RANK)")
    parser.add_argument("--train-split", default="train", help="split of data.splits to train on (default: train)")
    parser.add_argument("--val-split", default="valid", help="split to validate on (default: valid)")
    parser.add_argument("--train-sequences", nargs="+", help="explicit training sequences (replace --train-split)")
    parser.add_argument("--val-sequences", nargs="+", help="explicit validation sequences (replace --val-split)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars (logs and TensorBoard as usual)")
    parser.add_argument("--no-val", action="store_true", help="train without validation (no best.pt)")
    parser.add_argument("--from-scratch", action="store_true",
                        help="the backbone starts from random weights on purpose: no warning about a missing "
                             "model.backbone.pretrained_path")
    parser.add_argument("--num-threads", type=int,
                        help="CPU threads for torch (default: torch's choice; 1 is fastest on a busy machine)")
    return parser


def parse_overrides(items: list[str]) -> dict:
    """``['train.lr=0.01', 'data.points.source=lidar']`` -> nested dict, values parsed as YAML.
    ConfigError for an item without '=' or with an empty key."""
    out: dict = {}
    for item in items:
        key, sep, value = item.partition("=")
        parts = key.strip().split(".")
        if not sep or not all(parts):
            raise ConfigError(f"--set expects KEY=VALUE with a dotted key (e.g. train.lr=0.01), got {item!r}")
        try:
            parsed = yaml.safe_load(value)
        except yaml.YAMLError as exc:
            raise ConfigError(f"--set {key}: value {value!r} is not valid YAML ({exc})") from None
        nested: dict = {parts[-1]: parsed}
        for part in reversed(parts[:-1]):
            nested = {part: nested}
        out = deep_merge(out, nested)
    return out


TORCHVISION_WEIGHTS = {"resnet18": "resnet18-5c106cde.pth", "resnet50": "resnet50-19c8e357.pth"}


def backbone_warning(cfg: dict) -> str | None:
    """A warning when ``model.backbone`` starts from random weights (no ``pretrained_path``, no ``pretrained``),
    else None.

    The published recipes start from ImageNet weights, and SGN's freezes the stem, layer1 and every BatchNorm;
    without a weights file those frozen parts stay random for the whole run."""
    backbone = (cfg.get("model") or {}).get("backbone")
    if not isinstance(backbone, dict) or backbone.get("pretrained_path") or backbone.get("pretrained"):
        return None
    name = str(backbone.get("name", "backbone"))
    frozen = int(backbone.get("frozen_stages", -1) or 0)
    norm_eval = bool(backbone.get("norm_eval", False))
    what = ", ".join(part for part in (f"{frozen} frozen stage(s)" if frozen > 0 else "",
                                       "frozen BatchNorm" if norm_eval else "") if part)
    example = TORCHVISION_WEIGHTS.get(name, f"{name}.pth")
    return (f"warning: model.backbone.pretrained_path is null, so the {name} backbone starts "
            f"from random weights{f' with {what} that stay random' if what else ''}. Published numbers need "
            f"ImageNet weights: pass a local weights file, e.g. --set model.backbone.pretrained_path="
            f"/path/{example} (docs/models.md).")


def run(args: argparse.Namespace) -> dict | None:
    """Train as ``args`` say. Returns a summary dict (work_dir, epochs, best_metric, last/best paths) on rank 0,
    None on the other ranks of a torchrun job."""
    overrides = parse_overrides(args.overrides)
    if args.epochs is not None:
        overrides = deep_merge(overrides, {"train": {"epochs": args.epochs}})
    cfg = load_config(args.config, overrides)
    TrainSettings.from_config(cfg)  # fail on a bad train: section before touching data or devices
    work_dir = args.work_dir or Path("work_dirs") / resolve_config_path(args.config).stem
    resume = None
    if args.resume is not None:
        resume = work_dir / "last.pt" if args.resume == "auto" else Path(args.resume)
        if not resume.is_file():
            raise ConfigError(f"--resume: no checkpoint at {resume}")
    if os.environ.get("RANK", "0") == "0":  # rank 0 writes the work dir (torchrun sets RANK)
        ensure_output_dir(work_dir, "--work-dir")

    apply_num_threads(args.num_threads)
    info = init_distributed(args.device)
    try:
        seed_everything(int((cfg.get("train") or {}).get("seed", 0)))
        from ssc_core.models import build_model

        model = build_model(cfg)
        data_cfg = cfg.get("data") or {}
        train_set = build_dataset(data_cfg, args.train_split, args.data_root, sequences=args.train_sequences)
        val_set = None if args.no_val else build_dataset(data_cfg, args.val_split, args.data_root,
                                                         sequences=args.val_sequences)
        from ssc_core.training.distill import build_distillation

        distillation = build_distillation(cfg, getattr(train_set, "class_set", None))
        trainer = Trainer(model, cfg, train_set, val_set, work_dir=work_dir, dist_info=info,
                          hooks=[distillation] if distillation is not None else [], progress=not args.no_progress)
        if resume is not None:
            trainer.resume(resume)
        if info.is_main:
            warning = None if resume is not None or args.from_scratch else backbone_warning(cfg)
            if warning:
                print(warning, file=sys.stderr)
            work_dir.mkdir(parents=True, exist_ok=True)
            (work_dir / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
            accumulated = (f", {trainer.accumulate_steps} batches accumulated per step"
                           if trainer.accumulate_steps > 1 else "")
            print(f"training {cfg['model']['name']} on {len(train_set)} frames"
                  f"{'' if val_set is None else f', validating on {len(val_set)}'}; "
                  f"{trainer.steps_per_epoch} steps/epoch on {info.device} x{info.world_size}{accumulated}; "
                  f"work dir {work_dir}", file=sys.stderr)
        history = trainer.fit()
        trainer.close()
    finally:
        cleanup_distributed(info)
    if not info.is_main:
        return None
    summary = {"work_dir": str(work_dir), "epochs": trainer.epoch, "steps": trainer.step,
               "best_metric": None if val_set is None else trainer.best_metric,
               "last": str(work_dir / "last.pt"), "best": None if val_set is None else str(work_dir / "best.pt")}
    if history and "val" in history[-1]:
        summary["last_val"] = {k: history[-1]["val"][k] for k in ("iou", "miou", "protocol") if k in history[-1]["val"]}
    return summary


def main(argv: list[str] | None = None) -> int:
    """Entry point: 0 on success, 2 with ``error: ...`` on bad input."""
    return run_and_report(build_parser(), run, argv)


if __name__ == "__main__":
    sys.exit(main())
