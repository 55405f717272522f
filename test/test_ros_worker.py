"""InferenceWorker: newest first, stale and superseded drops counted, errors survive, and a load test."""

from __future__ import annotations

import threading
import time
import tracemalloc

import numpy as np

from ssc_core.data.label_maps import SEMANTIC_KITTI
from ssc_core.types import Calib, Frame, FrameWindow, GridSpec, Prediction
from ssc_ros.pipeline.health import DropCounter
from ssc_ros.pipeline.worker import InferenceWorker, Job

GRID = GridSpec(dims=(8, 8, 4))
CALIB = Calib(P2=np.hstack([np.eye(3), np.zeros((3, 1))]), T_cam0_velo=np.eye(4))


class SlowPredictor:
    """Test double with the Predictor contract: sleeps ``delay_s`` per call, labels everything with the
    frame's index so results can be traced back to their input."""

    history_offsets: list[int] = []
    frame_rate_hz = 10.0
    needs_points = False
    needs_right_image = False
    grid = GRID
    class_set = SEMANTIC_KITTI

    def __init__(self, delay_s: float, fail_on: set[int] | None = None) -> None:
        self.delay_s = delay_s
        self.fail_on = fail_on or set()
        self.calls: list[int] = []

    def predict(self, window: FrameWindow) -> Prediction:
        idx = window.current.index
        self.calls.append(idx)
        time.sleep(self.delay_s)
        if idx in self.fail_on:
            raise RuntimeError(f"model failed on {idx}")
        labels = np.full(GRID.dims, idx % 20, dtype=np.uint8)
        return Prediction(labels, np.ones(GRID.dims, np.float32), GRID, stamp_ns=window.current.stamp_ns)


def job(i: int, received_ns: int | None = None) -> Job:
    img = np.zeros((4, 4, 3), np.uint8)
    frame = Frame(stamp_ns=(i + 1) * 100_000_000, image_left=img, calib=CALIB, index=i)
    return Job(FrameWindow(current=frame), received_ns=time.monotonic_ns() if received_ns is None else received_ns)


def test_results_arrive_with_processing_time_and_latency():
    results = []
    worker = InferenceWorker(SlowPredictor(0.02), results.append).start()
    try:
        worker.submit(job(3))
        assert worker.wait_idle(5.0)
    finally:
        worker.stop()
    assert len(results) == 1 and int(results[0].prediction.labels[0, 0, 0]) == 3
    assert results[0].processing_s >= 0.02 and results[0].latency_s >= results[0].processing_s


def test_newest_job_wins_and_older_pending_ones_are_counted_superseded():
    predictor = SlowPredictor(0.2)
    done = []
    drops = DropCounter()
    worker = InferenceWorker(predictor, done.append, drops=drops).start()
    try:
        worker.submit(job(0))
        time.sleep(0.05)  # job 0 is running now
        for i in range(1, 6):
            worker.submit(job(i))
        assert worker.wait_idle(5.0)
    finally:
        worker.stop()
    assert predictor.calls == [0, 5]
    stats = worker.stats()
    assert stats.superseded == 4 and drops["superseded"] == 4 and stats.processed == 2


def test_stale_jobs_are_dropped_not_processed():
    predictor = SlowPredictor(0.0)
    drops = DropCounter()
    worker = InferenceWorker(predictor, lambda r: None, max_staleness_s=0.5, drops=drops).start()
    try:
        worker.submit(job(1, received_ns=time.monotonic_ns() - 2_000_000_000))
        assert worker.wait_idle(5.0)
    finally:
        worker.stop()
    assert predictor.calls == [] and worker.stats().stale == 1 and drops["stale"] == 1


def test_a_failing_prediction_is_reported_and_the_worker_keeps_going():
    errors, done = [], []
    worker = InferenceWorker(SlowPredictor(0.0, fail_on={1}), done.append,
                             on_error=lambda exc, j: errors.append(str(exc))).start()
    try:
        worker.submit(job(1))
        assert worker.wait_idle(5.0)
        worker.submit(job(2))
        assert worker.wait_idle(5.0)
    finally:
        worker.stop()
    assert errors == ["model failed on 1"] and [r.job.window.current.index for r in done] == [2]
    assert worker.stats().errors == 1


def test_load_10hz_into_a_half_second_model_keeps_memory_flat_and_processes_the_newest():
    """3 s of 10 Hz input into a 0.5 s model: submit never blocks, each processed set was the newest available
    when the worker took it, roughly 4 of 5 sets are dropped, and memory does not grow."""
    predictor = SlowPredictor(0.5)
    worker = InferenceWorker(predictor, lambda r: None, max_staleness_s=5.0).start()
    submit_times = []
    tracemalloc.start()
    try:
        n = 30
        for i in range(n):
            t0 = time.perf_counter()
            worker.submit(job(i))
            submit_times.append(time.perf_counter() - t0)
            if i == 5:
                mem_early = tracemalloc.get_traced_memory()[0]
            time.sleep(0.1)
        mem_late = tracemalloc.get_traced_memory()[0]
        assert worker.wait_idle(5.0)
    finally:
        tracemalloc.stop()
        worker.stop()
    stats = worker.stats()
    print(f"load test: {stats.submitted} sets at 10 Hz, {stats.processed} processed, drop rate {stats.drop_rate:.2f}, "
          f"mean latency {stats.mean_latency_s * 1e3:.0f} ms, memory growth {(mem_late - mem_early) / 1e3:.0f} kB")
    assert max(submit_times) < 0.01                          # the receive path never waits for the model
    assert stats.submitted == n and stats.processed + stats.dropped == n
    assert 4 <= stats.processed <= 9 and 0.65 <= stats.drop_rate <= 0.9
    assert predictor.calls[-1] == n - 1                        # the last input is processed
    gaps = np.diff(predictor.calls)
    assert np.all(gaps >= 3)                                  # always skipping ahead to the newest
    assert mem_late - mem_early < 2_000_000                    # flat: one pending job at most


def test_submit_from_many_threads_loses_nothing_uncounted():
    worker = InferenceWorker(SlowPredictor(0.001), lambda r: None).start()
    try:
        threads = [threading.Thread(target=lambda b=b: [worker.submit(job(b * 100 + i)) for i in range(50)])
                   for b in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert worker.wait_idle(5.0)
    finally:
        worker.stop()
    stats = worker.stats()
    assert stats.submitted == 200 and stats.processed + stats.dropped == 200
