"""Benchmark: ``ssc-eval`` (vectorised, each file read once) against a straightforward per-frame re-statement of
semantic-kitti-api's ``evaluate_completion.py`` (shift unpacking, np.add.at) on generated full-size frames.

    python bench/eval.py --frames 20 --repeats 3

Prints one table row per implementation (best and median seconds, ms/frame) and the speed-up ratio, and checks that
both give the same scores to 1e-9. The generator and the reference live in test/test_eval_cli.py, so the
benchmark times exactly what the test compares against.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "test"))

from test_eval_cli import make_semantic_kitti_folder, official_reference  # noqa: E402

from ssc_core.cli.evaluate import main as ssc_eval  # noqa: E402


def _timings(fn, repeats: int) -> tuple[float, float]:
    """(best, median) wall seconds of ``repeats`` calls; best is the least disturbed by other processes."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.min(times)), float(np.median(times))


def main(argv: list[str] | None = None) -> int:
    """Generate (or reuse) a SemanticKITTI-format folder, time both evaluators, print the table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=20, help="frames of sequence 08 to generate (default 20)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per implementation (median reported)")
    parser.add_argument("--root", default=None, help="folder for the generated data (default: a temp folder)")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.root) if args.root else Path(tmp) / "dataset"
        if not (root / "sequences" / "08" / "voxels").is_dir():
            print(f"generating {args.frames} frames of 256x256x32 in {root} ...", flush=True)
            make_semantic_kitti_folder(root, "08", [5 * i for i in range(args.frames)], seed=0)
        out = Path(tmp) / "scores"
        argv_eval = ["-d", str(root), "-s", "valid", "--output", str(out), "--no-progress"]

        def run_ssc_eval() -> None:
            import contextlib
            import io

            with contextlib.redirect_stdout(io.StringIO()):
                if ssc_eval(argv_eval) != 0:
                    raise SystemExit("ssc-eval failed")

        run_ssc_eval()  # warm the file cache for both contenders
        t_fast = _timings(run_ssc_eval, args.repeats)
        reference = {}
        t_ref = _timings(lambda: reference.update(official_reference(root, root, ["08"])), args.repeats)

        import yaml

        scores = yaml.safe_load((out / "scores.txt").read_text())
        worst = max(abs(scores[k] - v) for k, v in reference.items())
        frames = len(list((root / "sequences" / "08" / "voxels").glob("*.label")))

    print(f"\n{frames} frames of 256x256x32, {args.repeats} runs each (best / median)")
    print(f"{'implementation':<34} {'best s':>8} {'median s':>9} {'best ms/frame':>14}")
    for name, (best, median) in (("per-frame official procedure", t_ref), ("ssc-eval (vectorised, read once)", t_fast)):
        print(f"{name:<34} {best:8.3f} {median:9.3f} {1000 * best / frames:14.1f}")
    print(f"speed-up: {t_ref[0] / t_fast[0]:.1f}x best, {t_ref[1] / t_fast[1]:.1f}x median   "
          f"max |score difference|: {worst:.1e}")
    return 0 if worst <= 1e-9 else 1


if __name__ == "__main__":
    sys.exit(main())
