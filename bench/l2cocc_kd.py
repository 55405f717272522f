"""Benchmark: L2COcc's relative claim on the synthetic world -- the distilled camera student (L2COcc-D) beats the
camera model trained alone (L2COcc-C) at equal steps on streets it has not seen, at the camera model's cost.

    ssc-make-synthetic --output /tmp/l2cocc_bench/synth --sequence 00 --frames 60 --seed 0 --small
    ssc-make-synthetic --output /tmp/l2cocc_bench/synth --sequence 01 --frames 40 --seed 1 --small
    python bench/l2cocc_kd.py --data-root /tmp/l2cocc_bench/synth --work-dir /tmp/l2cocc_bench/runs \
        --train-sequences 00 --test-sequences 01 --epochs 10 --threads 1 --markdown /tmp/l2cocc_bench/table.md

Runs of the tiny configs, each an ``ssc-train`` run with the same epochs and seed, trained on the training
sequences and validated once, after its last epoch, on the test sequences (a different world seed: other streets):

  teacher      l2cocc_l_tiny on the LiDAR scan (trained first; ``--teacher-epochs``, default ``--epochs``)
  camera       l2cocc_c_tiny, the paper's L2COcc-C
  student_kd   l2cocc_d_tiny against the teacher's ``last.pt``, the paper's L2COcc-D
  student      l2cocc_d_tiny with ``distill: null``: -D's loss weights without the teacher (whether the gain comes
               from the teacher or from the weights)

``--runs`` picks a subset (the teacher is trained whenever ``student_kd`` needs it). A run whose work dir already
holds all its epochs is reused (``--retrain`` trains it again), one cut short resumes from its ``last.pt``. Prints
one row per run: the official SemanticKITTI scores on the test sequences after the last epoch, the training steps,
the CPU seconds of training this time, and the parameters of the model that runs at inference.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from ssc_core.cli.train import main as ssc_train  # noqa: E402
from ssc_core.models import build_model  # noqa: E402
from ssc_core.training.checkpoint import load_checkpoint  # noqa: E402

RUNS = {"teacher": ["--config", "l2cocc_l_tiny"], "camera": ["--config", "l2cocc_c_tiny"],
        "student_kd": ["--config", "l2cocc_d_tiny"], "student": ["--config", "l2cocc_d_tiny", "--set", "distill=null"]}


def history(run_dir: Path) -> list[dict]:
    """The per-epoch records of a run's ``history.jsonl`` ([] when the run has none or no ``last.pt``)."""
    path = run_dir / "history.jsonl"
    if not (run_dir / "last.pt").is_file() or not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def train(run: str, run_dir: Path, epochs: int, common: list[str], extra: list[str], retrain: bool) -> float:
    """Train one run to ``epochs`` (resume one cut short, skip one that is done unless ``retrain``); CPU seconds."""
    records = history(run_dir)
    done = int(records[-1]["epoch"]) if records else 0
    if done >= epochs and not retrain:
        return 0.0
    resume = ["--resume"] if 0 < done < epochs and not retrain else ["--overwrite"] if retrain else []
    start = time.process_time()
    code = ssc_train([*RUNS[run], *extra, "--work-dir", str(run_dir), "--epochs", str(epochs), *common, *resume])
    if code != 0:
        raise SystemExit(f"error: ssc-train for {run} failed with exit code {code}")
    return time.process_time() - start


def row(run: str, run_dir: Path, seconds: float) -> list[str]:
    """A Markdown row: run, config, epochs, steps, IoU / precision / recall / mIoU (%) of the last validation,
    CPU s, parameters (M) of the trained model (without the teacher)."""
    records = history(run_dir)
    val = records[-1].get("val") or {}
    ckpt = load_checkpoint(run_dir / "last.pt")
    with torch.device("meta"):
        params = sum(p.numel() for p in build_model(ckpt["config"]).parameters()) / 1e6
    scores = [f"{100 * val[k]:.1f}" if k in val else "—" for k in ("iou", "precision", "recall", "miou")]
    return [run, ckpt["config"]["model"]["name"], str(records[-1]["epoch"]), str(ckpt.get("step", "—")), *scores,
            f"{seconds:.0f}" if seconds else "reused", f"{params:.2f}"]


def main(argv: list[str] | None = None) -> int:
    """Train (or reuse) the runs, print the table of their scores on the test sequences."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", required=True, type=Path, help="ssc-make-synthetic output (holds sequences/)")
    parser.add_argument("--work-dir", required=True, type=Path, help="folder of the runs (one sub-folder each)")
    parser.add_argument("--train-sequences", nargs="+", default=["00"], help="default: %(default)s")
    parser.add_argument("--test-sequences", nargs="+", default=["01"], help="never trained on (default: %(default)s)")
    parser.add_argument("--epochs", type=int, default=10, help="epochs of each camera run (default: %(default)s)")
    parser.add_argument("--teacher-epochs", type=int, default=None, help="default: --epochs")
    parser.add_argument("--runs", nargs="+", choices=list(RUNS), default=list(RUNS), help="default: all")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default: %(default)s)")
    parser.add_argument("--retrain", action="store_true", help="train again where a finished run exists")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                        help="config override for every run, as ssc-train --set")
    parser.add_argument("--markdown", type=Path, help="also write the table to this file")
    args = parser.parse_args(argv)
    runs = [r for r in RUNS if r in args.runs or (r == "teacher" and "student_kd" in args.runs)]
    common = ["--data-root", str(args.data_root), "--train-sequences", *args.train_sequences,
              "--val-sequences", *args.test_sequences, "--num-threads", str(args.threads), "--from-scratch",
              "--no-progress", *(a for o in args.overrides for a in ("--set", o))]
    teacher = args.work_dir / "teacher" / "last.pt"
    seconds = {}
    for run in runs:
        epochs = args.teacher_epochs or args.epochs if run == "teacher" else args.epochs
        extra = ["--set", f"distill.teacher_checkpoint={teacher}"] if run == "student_kd" else []
        # one validation, after the last epoch: the scores of equal steps, no best-epoch picking on the test streets
        extra += ["--set", f"train.val_interval={epochs}"]
        seconds[run] = train(run, args.work_dir / run, epochs, common, extra, args.retrain)
    head = ["run", "model", "epochs", "steps", "IoU", "Prec", "Rec", "mIoU", "CPU s", "params M"]
    lines = [f"L2COcc on the synthetic world: trained on {args.train_sequences}, scored on {args.test_sequences} "
             f"of {args.data_root}, {args.threads} thread(s), overrides {args.overrides}", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head),
             *("| " + " | ".join(row(run, args.work_dir / run, seconds[run])) + " |" for run in runs)]
    vals = {run: history(args.work_dir / run)[-1].get("val") or {} for run in runs}
    pairs = [(run, other) for run, other in (("student_kd", "camera"), ("student_kd", "student"))
             if "miou" in vals.get(run, {}) and "miou" in vals.get(other, {})]
    lines += [""] if pairs else []
    lines += [f"{run} minus {other}: IoU {100 * (vals[run]['iou'] - vals[other]['iou']):+.1f}, "
              f"mIoU {100 * (vals[run]['miou'] - vals[other]['miou']):+.1f} points" for run, other in pairs]
    text = "\n".join(lines)
    print(text)
    if args.markdown:
        args.markdown.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
