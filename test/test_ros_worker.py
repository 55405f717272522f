"""InferenceWorker: newest first, stale and superseded drops counted, errors survive, and a flood of input."""

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


class GatedPredictor(SlowPredictor):
    """SlowPredictor that, instead of sleeping, sets ``running`` and waits inside predict until ``gate`` is set
    (after the first call, the gate stays open): tests decide when the model finishes, not the clock."""

    def __init__(self) -> None:
        super().__init__(0.0)
        self.running = threading.Event()
        self.gate = threading.Event()

    def predict(self, window: FrameWindow) -> Prediction:
        self.calls.append(window.current.index)
        self.running.set()
        if not self.gate.wait(10.0):
            raise TimeoutError("the test never opened the gate")
        return Prediction(np.zeros(GRID.dims, np.uint8), np.ones(GRID.dims, np.float32), GRID,
                          stamp_ns=window.current.stamp_ns)


def job(i: int, received_ns: int | None = None, side: int = 4) -> Job:
    img = np.zeros((side, side, 3), np.uint8)
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
    predictor = GatedPredictor()
    done = []
    drops = DropCounter()
    worker = InferenceWorker(predictor, done.append, drops=drops).start()
    try:
        worker.submit(job(0))
        assert predictor.running.wait(5.0)  # job 0 is inside predict now
        for i in range(1, 6):
            worker.submit(job(i))
        predictor.gate.set()
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


def test_submit_never_waits_for_the_model_and_memory_stays_flat_under_a_flood():
    """While the model is stuck inside one prediction, 500 more input sets arrive: every submit returns (the
    receive path never waits for inference), all but the newest are counted superseded, the pending state holds
    one window whatever the flood, and once the model is free it runs the newest set and nothing in between.
    (The same behaviour in real time, 10 Hz into a 0.5 s model, is measured by bench/ros_worker_load.py.)"""
    predictor = GatedPredictor()
    worker = InferenceWorker(predictor, lambda r: None, max_staleness_s=60.0).start()
    n = 500
    tracemalloc.start()
    try:
        worker.submit(job(0))
        assert predictor.running.wait(5.0)
        mem = {}

        def flood() -> None:
            for i in range(1, n + 1):
                worker.submit(job(i, side=64))  # 12 kB each: 480 kept would be 5.9 MB
                if i == 20:
                    mem["early"] = tracemalloc.get_traced_memory()[0]
            mem["late"] = tracemalloc.get_traced_memory()[0]

        sender = threading.Thread(target=flood)
        sender.start()
        sender.join(30.0)
        assert not sender.is_alive(), "submit blocked while the model was busy"
        assert not predictor.gate.is_set() and predictor.calls == [0]  # it all happened during one prediction
        stats = worker.stats()
        assert stats.submitted == n + 1 and stats.superseded == n - 1 and stats.processed == 0
        predictor.gate.set()
        assert worker.wait_idle(5.0)
    finally:
        tracemalloc.stop()
        worker.stop()
    stats = worker.stats()
    assert predictor.calls == [0, n]                             # the newest, nothing in between
    assert stats.processed == 2 and stats.processed + stats.dropped == n + 1
    assert mem["late"] - mem["early"] < 1_000_000               # flat: 480 more windows kept nothing alive


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
