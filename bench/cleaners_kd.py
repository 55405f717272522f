"""Benchmark: CleanerS's claim on synthetic rooms — the distilled student beats the same network trained without
the teacher at equal steps on unseen rooms, and the teacher on TSDF-CAD beats both.

    ssc-make-synthetic --output /tmp/cleaners_bench/rooms --layout nyu --frames 40 --test-frames 10 --seed 7
    python bench/cleaners_kd.py --data-root /tmp/cleaners_bench/rooms --work-dir /tmp/cleaners_bench/runs20 \
        --epochs 20 --threads 1 --set train.lr=0.004 --markdown /tmp/cleaners_bench/table20.md

Three runs of the same tiny configs (``cleaners_teacher_tiny`` / ``cleaners_student_tiny``), equal epochs, equal
seed: the teacher on TSDF-CAD; the student on the noisy TSDF with the teacher's KD-T and KD-S (``distill:`` of the
config, the trained teacher's ``last.pt``); the same student without the teacher (``distill: null``). Then every
run's ``last.pt`` is scored on the test rooms (never seen in training), the teacher on TSDF-CAD as its config reads
it, the students on the noisy TSDF, with both NYU protocols (SSCNet first: the paper's). A run whose work dir already
holds all its epochs is not trained again (``--retrain`` replaces it), one cut short resumes from its ``last.pt``, one
that never reached its first checkpoint starts again. Prints a table naming the protocol of every row.
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
from ssc_core.data.datasets import build_dataset  # noqa: E402
from ssc_core.data.transforms import collate  # noqa: E402
from ssc_core.evaluation.scorers import build_scorer  # noqa: E402
from ssc_core.inference.predictor import Predictor  # noqa: E402

RUNS = ("teacher", "student_kd", "student_no_kd")
PROTOCOLS = ("sscnet", "monoscene")


def epochs_done(run_dir: Path) -> int:
    """Epochs a run's ``last.pt`` holds (its ``history.jsonl``), 0 when there is none."""
    history = run_dir / "history.jsonl"
    if not (run_dir / "last.pt").is_file() or not history.is_file() or not history.read_text().strip():
        return 0
    return int(json.loads(history.read_text().splitlines()[-1])["epoch"])


def train_runs(data_root: Path, work_dir: Path, epochs: int, threads: int, retrain: bool,
               overrides: list[str]) -> dict[str, float]:
    """Train the three runs (teacher first) with the same ``--set`` overrides; returns CPU seconds per run (0 for a
    run that was already there)."""
    common = ["--data-root", str(data_root), "--epochs", str(epochs), "--num-threads", str(threads),
              "--from-scratch", "--no-progress", "--no-val", *(a for o in overrides for a in ("--set", o))]
    teacher = work_dir / "teacher" / "last.pt"
    plans = {
        "teacher": ["--config", "cleaners_teacher_tiny"],
        "student_kd": ["--config", "cleaners_student_tiny", "--set", f"distill.teacher_checkpoint={teacher}"],
        "student_no_kd": ["--config", "cleaners_student_tiny", "--set", "distill=null"],
    }
    seconds = {}
    for run, args in plans.items():
        done = epochs_done(work_dir / run)
        if done >= epochs and not retrain:
            seconds[run] = 0.0
            continue
        resume = ["--resume"] if 0 < done < epochs and not retrain else []  # an interrupted run goes on
        # ssc-train never replaces a run silently: --retrain replaces it, as does a start that never reached its
        # first checkpoint (nothing of it to keep)
        replace = ["--overwrite"] if (retrain or done == 0) and (work_dir / run).is_dir() else []
        start = time.process_time()
        code = ssc_train([*args, "--work-dir", str(work_dir / run), *common, *resume, *replace])
        if code != 0:
            raise SystemExit(f"error: ssc-train for {run} failed with exit code {code}")
        seconds[run] = time.process_time() - start
    return seconds


@torch.inference_mode()
def evaluate_run(checkpoint: Path, data_root: Path) -> dict[str, dict]:
    """Scores of a checkpoint on the test rooms with both protocols (its own data config: TSDF or TSDF-CAD)."""
    predictor = Predictor.from_checkpoint(checkpoint)
    data_cfg = dict(predictor.cfg["data"], augment=False, load_tsdf_cad=False)
    dataset = build_dataset(data_cfg, "test", data_root)
    scorers = {name: build_scorer(name, predictor.class_set.num_classes) for name in PROTOCOLS}
    for i in range(len(dataset)):
        sample = dataset[i]
        pred = predictor.sample_logits(sample).argmax(0).cpu().numpy()[None]
        for scorer in scorers.values():
            scorer.add_batch(pred, collate([sample]))
    return {name: scorer.compute() for name, scorer in scorers.items()}


def table(results: dict[str, dict[str, dict]], names: tuple[str, ...]) -> list[str]:
    """Markdown rows: one per run and protocol, IoU / precision / recall / mIoU and per-class IoU (%)."""
    head = ["run", "protocol", "IoU", "Prec", "Rec", "mIoU", *names[1:]]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for protocol in PROTOCOLS:
        for run, scores in results.items():
            m = scores[protocol]
            cells = [run, m["protocol"], *(f"{100 * m[k]:.1f}" for k in ("iou", "precision", "recall", "miou")),
                     *(f"{100 * v:.1f}" for v in m["iou_per_class"][1:])]
            lines.append("| " + " | ".join(cells) + " |")
    return lines


def main(argv: list[str] | None = None) -> int:
    """Train (or reuse) the three runs, score them on the test rooms, print the table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", required=True, type=Path, help="ssc-make-synthetic --layout nyu output")
    parser.add_argument("--work-dir", required=True, type=Path, help="folder of the three runs")
    parser.add_argument("--epochs", type=int, default=4, help="epochs of every run (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default: %(default)s)")
    parser.add_argument("--retrain", action="store_true",
                        help="train every run again, replacing the runs in --work-dir")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                        help="config override for all three runs, as ssc-train --set (e.g. train.lr=0.004)")
    parser.add_argument("--markdown", type=Path, help="also write the table to this file")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    seconds = train_runs(args.data_root, args.work_dir, args.epochs, args.threads, args.retrain, args.overrides)
    results = {run: evaluate_run(args.work_dir / run / "last.pt", args.data_root) for run in RUNS}
    predictor = Predictor.from_checkpoint(args.work_dir / "teacher" / "last.pt")
    steps = {run: epochs_done(args.work_dir / run) for run in RUNS}
    lines = [f"CleanerS on synthetic rooms: {args.epochs} epochs per run {args.overrides}, test rooms of "
             f"{args.data_root}; "
             f"CPU s of training this time {({k: round(v) for k, v in seconds.items()})}; epochs {steps}", "",
             *table(results, predictor.class_set.names)]
    gap = {p: 100 * (results["student_kd"][p]["miou"] - results["student_no_kd"][p]["miou"]) for p in PROTOCOLS}
    lines += ["", "student with KD minus without, mIoU points: "
              + ", ".join(f"{results['teacher'][p]['protocol'].split(':')[0]} {gap[p]:+.1f}" for p in PROTOCOLS)]
    text = "\n".join(lines)
    print(text)
    if args.markdown:
        args.markdown.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
