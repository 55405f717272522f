"""``ssc-train``: train a model from a config on a SemanticKITTI-layout dataset (single process or torchrun)."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from ssc_core.cli.entry import add_torch_options, apply_num_threads, run_and_report
from ssc_core.config import deep_merge, load_config, resolve_config_path
from ssc_core.data.datasets import build_dataset
from ssc_core.errors import ConfigError, DataFormatError, Interrupted
from ssc_core.output_paths import ensure_output_dir
from ssc_core.training.distributed import cleanup_distributed, init_distributed
from ssc_core.training.schemes import apply_training_schemes, training_schemes
from ssc_core.training.settings import TrainSettings
from ssc_core.training.trainer import RUN_FILES, Trainer, seed_everything

if TYPE_CHECKING:
    from torch.utils.data import Dataset

WORK_DIR_FILES = (*RUN_FILES, "config.yaml")  # what a run writes to its work dir


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
        "A work dir that already holds a run is never replaced silently: continue it with --resume, or replace "
        "it with --overwrite.\n"
        "exit codes: 0 = trained, 2 = bad input (the message says what is wrong), 130 = interrupted (Ctrl-C; the "
        "message names the last checkpoint)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", required=True, help="config name (e.g. sgn_tiny) or path to a YAML file")
    parser.add_argument("--data-root", help="dataset folder holding sequences/ (default: data.root of the config)")
    parser.add_argument("--work-dir", type=Path, help="output folder (default: work_dirs/<config name>)")
    parser.add_argument("--resume", nargs="?", const="auto", default=None, metavar="CHECKPOINT",
                        help="continue a run: from CHECKPOINT, or from <work-dir>/last.pt when given alone")
    parser.add_argument("--overwrite", action="store_true",
                        help="start a new run in a work dir that holds an earlier one, deleting its "
                        f"{', '.join(WORK_DIR_FILES)} (other files are left alone)")
    parser.add_argument("--epochs", type=int, help="override train.epochs")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                        help="override any config key by its dotted path, value in YAML (repeatable), e.g. "
                        "--set train.lr=0.01 --set data.points.source=stereo_sgbm")
    parser.add_argument("--train-split", default="train", help="split of data.splits to train on (default: train)")
    parser.add_argument("--val-split", default="valid", help="split to validate on (default: valid)")
    parser.add_argument("--train-sequences", nargs="+", help="explicit training sequences (replace --train-split)")
    parser.add_argument("--val-sequences", nargs="+", help="explicit validation sequences (replace --val-split)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars (logs and TensorBoard as usual)")
    parser.add_argument("--no-val", action="store_true",
                        help="train without validation: writes last.pt but no best.pt (a student distilled from "
                        "this run then needs --set distill.teacher_checkpoint=WORK_DIR/last.pt)")
    parser.add_argument("--from-scratch", action="store_true",
                        help="the backbone starts from random weights on purpose: no warning about a missing "
                             "model.backbone.pretrained_path")
    add_torch_options(parser)
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


def claim_work_dir(work_dir: Path, resume: Path | None, overwrite: bool) -> None:
    """Make sure a new run never silently replaces an earlier one in ``work_dir``: ``resume`` = its last.pt
    continues that run; with ``overwrite`` the earlier run's files (``WORK_DIR_FILES``) are deleted; otherwise
    (also when resuming from a checkpoint elsewhere) ConfigError naming --resume and --overwrite. Then create
    the folder (see ``ensure_output_dir``)."""
    continuing = resume is not None and resume.resolve() == (work_dir / "last.pt").resolve()
    if continuing and overwrite:
        raise ConfigError("--resume continues the run in --work-dir and --overwrite deletes it: pass one of them")
    earlier = [name for name in WORK_DIR_FILES if (work_dir / name).exists()] if work_dir.is_dir() else []
    if earlier and not continuing:
        if not overwrite:
            raise ConfigError(f"--work-dir {work_dir} already holds a run ({', '.join(earlier)}): continue it with "
                              "--resume, replace it with --overwrite, or choose another --work-dir")
        if resume is not None and resume.resolve().parent == work_dir.resolve():
            raise ConfigError(f"--resume {resume} lies in the run that --overwrite would delete")
        for name in earlier:
            path = work_dir / name
            shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
    ensure_output_dir(work_dir, "--work-dir")


def interrupted_message(trainer: Trainer | None, work_dir: Path) -> str:
    """The line ``ssc-train`` ends with after Ctrl-C: where the last checkpoint is and how to continue."""
    last = work_dir / "last.pt"
    if trainer is not None and trainer.last_saved is not None:
        epoch, step = trainer.last_saved
        where = (f"the last checkpoint is {last} (epoch {epoch} of {trainer.settings.epochs}, step {step}, "
                 "written by this run)")
    elif last.is_file():
        where = f"the last checkpoint is {last} (written before this run)"
    else:
        return (f"training stopped before its first checkpoint: nothing to resume in {work_dir}; start again with "
                "the same command plus --overwrite")
    return f"training stopped; {where}; continue with the same command plus --resume"


def build_validation_set(data_cfg: dict, args: argparse.Namespace) -> Dataset:
    """The validation Dataset of ``--val-split`` / ``--val-sequences``. A DataFormatError (e.g. a split without
    frames) is re-raised naming the ways out: write the split, or ``--no-val`` (then no best.pt, only last.pt)."""
    try:
        return build_dataset(data_cfg, args.val_split, args.data_root, sequences=args.val_sequences)
    except DataFormatError as exc:
        rooms = (" (synthetic rooms: ssc-make-synthetic --layout nyu --test-frames M writes test rooms)"
                 if data_cfg.get("dataset") == "nyu" else "")
        raise DataFormatError(f"validation data: {exc}{rooms}; or train without validation with --no-val, which "
                              "writes last.pt but no best.pt") from None


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
        claim_work_dir(work_dir, resume, args.overwrite)

    threads = apply_num_threads(args)
    info = init_distributed(args.device)
    trainer = None
    try:
        seed_everything(int((cfg.get("train") or {}).get("seed", 0)))
        from ssc_core.models import build_model

        model, hooks = apply_training_schemes(build_model(cfg), cfg)
        data_cfg = cfg.get("data") or {}
        train_set = build_dataset(data_cfg, args.train_split, args.data_root, sequences=args.train_sequences)
        val_set = None if args.no_val else build_validation_set(data_cfg, args)
        from ssc_core.training.distill import build_distillation

        distillation = build_distillation(cfg, getattr(train_set, "class_set", None))
        if distillation is not None:
            hooks.append(distillation)
        trainer = Trainer(model, cfg, train_set, val_set, work_dir=work_dir, dist_info=info, hooks=hooks,
                          progress=not args.no_progress)
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
            schemes = "".join(f" with {name.upper()}" for name in training_schemes(cfg))
            print(f"training {cfg['model']['name']}{schemes} on {len(train_set)} frames"
                  f"{'' if val_set is None else f', validating on {len(val_set)}'}; "
                  f"{trainer.steps_per_epoch} steps/epoch on {info.device} x{info.world_size}{accumulated} "
                  f"({threads} CPU thread{'s' if threads > 1 else ''}); work dir {work_dir}", file=sys.stderr)
        history = trainer.fit()
    except KeyboardInterrupt:
        raise Interrupted(interrupted_message(trainer, work_dir)) from None
    finally:
        if trainer is not None:
            trainer.close()
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
    """Entry point: 0 on success, 2 with ``error: ...`` on bad input, 130 after Ctrl-C with one line naming the
    last checkpoint."""
    return run_and_report(build_parser(), run, argv)


if __name__ == "__main__":
    sys.exit(main())
