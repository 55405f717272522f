"""Benchmark: the node's inference worker under real-time load, input faster than the model.

Feeds ``--rate`` Hz of small input sets for ``--seconds`` into an ``InferenceWorker`` whose model sleeps
``--model-s`` per prediction (a stand-in for a slow network: the worker's scheduling is what is measured, not a
model), then prints one row: sets submitted and processed, the drop rate, the mean input-to-result latency, the
longest a ``submit`` call took (the receive path must never wait for the model) and the traced memory growth
between the 6th and the last set. The deterministic checks of the same behaviour live in
test/test_ros_worker.py; this is the real-time picture, and its numbers depend on the machine's load.

    python bench/ros_worker_load.py [--rate 10] [--model-s 0.5] [--seconds 3]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from ssc_core.types import Calib, Frame, FrameWindow, GridSpec, Prediction  # noqa: E402
from ssc_ros.pipeline.worker import InferenceWorker, Job  # noqa: E402

GRID = GridSpec(dims=(8, 8, 4))


class SleepingModel:
    """Predictor contract with a fixed cost: sleeps ``cost_s``, returns an empty prediction; ``calls`` keeps the
    index of every input set it ran on."""

    history_offsets: list[int] = []
    needs_points = False
    needs_right_image = False
    grid = GRID

    def __init__(self, cost_s: float) -> None:
        self.cost_s = cost_s
        self.calls: list[int] = []

    def predict(self, window: FrameWindow) -> Prediction:
        self.calls.append(window.current.index)
        time.sleep(self.cost_s)
        return Prediction(np.zeros(GRID.dims, np.uint8), np.ones(GRID.dims, np.float32), GRID,
                          stamp_ns=window.current.stamp_ns)


def input_set(i: int, calib: Calib) -> Job:
    """The i-th input set: a 64x64 image at 10 Hz stamps, received now."""
    frame = Frame(stamp_ns=(i + 1) * 100_000_000, image_left=np.zeros((64, 64, 3), np.uint8), calib=calib, index=i)
    return Job(FrameWindow(current=frame), received_ns=time.monotonic_ns())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=10.0, help="input sets per second (default 10)")
    parser.add_argument("--model-s", type=float, default=0.5, help="seconds per prediction (default 0.5)")
    parser.add_argument("--seconds", type=float, default=3.0, help="how long the input flows (default 3)")
    args = parser.parse_args(argv)
    calib = Calib(P2=np.hstack([np.eye(3), np.zeros((3, 1))]), T_cam0_velo=np.eye(4))
    model = SleepingModel(args.model_s)
    worker = InferenceWorker(model, lambda result: None, max_staleness_s=5.0).start()
    n = max(int(args.rate * args.seconds), 7)
    submit_s: list[float] = []
    tracemalloc.start()
    try:
        for i in range(n):
            t0 = time.perf_counter()
            worker.submit(input_set(i, calib))
            submit_s.append(time.perf_counter() - t0)
            if i == 5:
                mem_early = tracemalloc.get_traced_memory()[0]
            time.sleep(1.0 / args.rate)
        mem_late = tracemalloc.get_traced_memory()[0]
        worker.wait_idle(10.0 + args.model_s)
    finally:
        tracemalloc.stop()
        worker.stop()
    stats = worker.stats()
    gaps = np.diff(model.calls) if len(model.calls) > 1 else np.array([0])
    print(f"load {os.getloadavg()[0]:.2f}, {os.cpu_count()} CPUs")
    print("| input | model | submitted | processed | drop rate | mean latency | longest submit | "
          "min skip | last input run | memory growth |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    print(f"| {args.rate:g} Hz for {args.seconds:g} s | {args.model_s:g} s | {stats.submitted} | {stats.processed} | "
          f"{stats.drop_rate:.2f} | {stats.mean_latency_s * 1e3:.0f} ms | {max(submit_s) * 1e3:.2f} ms | "
          f"{int(gaps.min())} | {'yes' if model.calls and model.calls[-1] == n - 1 else 'no'} | "
          f"{(mem_late - mem_early) / 1e3:.0f} kB |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
