"""InferenceWorker: runs the Predictor in its own thread, newest window first, never blocking the receiver.

The receive path calls ``submit`` (O(1): it replaces the single pending job under a lock and notifies). The
worker thread takes the pending job, drops it when it waited longer than ``max_staleness_s``, runs
``predictor.predict(window)`` and hands the Prediction to ``on_result``. A job replaced before the worker got
to it is counted as ``superseded``; memory holds at most one pending and one running job.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from ssc_core.types import FrameWindow, Prediction
from ssc_ros.pipeline.background import BackgroundLoop
from ssc_ros.pipeline.health import DropCounter


class PredictorLike(Protocol):
    """The part of ssc_core.inference.Predictor the worker uses."""

    def predict(self, window: FrameWindow) -> Prediction:  # pragma: no cover - protocol
        ...


@dataclass
class Job:
    """A window to process; received_ns: when its input arrived (worker clock, ns); meta: caller data
    (e.g. the ROS header stamp) passed through to the result; input_age_ns: how old the input was by its stamp
    when it arrived (the part of its latency before received_ns)."""

    window: FrameWindow
    received_ns: int
    meta: Any = None
    input_age_ns: int = 0


@dataclass
class Result:
    """A finished job: the prediction, the job, processing time (predict only) and latency (arrival to done)."""

    prediction: Prediction
    job: Job
    processing_s: float
    latency_s: float


@dataclass
class WorkerStats:
    """Counters and timings of a worker (a snapshot)."""

    submitted: int = 0
    processed: int = 0
    superseded: int = 0
    stale: int = 0
    errors: int = 0
    last_processing_s: float = 0.0
    mean_processing_s: float = 0.0
    max_processing_s: float = 0.0
    last_latency_s: float = 0.0
    mean_latency_s: float = 0.0
    processed_stamps: list[int] = field(default_factory=list)

    @property
    def dropped(self) -> int:
        """Jobs never processed (superseded or stale)."""
        return self.superseded + self.stale

    @property
    def drop_rate(self) -> float:
        """Fraction of submitted jobs that were dropped."""
        return self.dropped / self.submitted if self.submitted else 0.0


class InferenceWorker(BackgroundLoop):
    """Background inference thread. predictor: anything with ``predict(FrameWindow) -> Prediction``;
    on_result(Result) and on_error(Exception, Job) run in the worker thread; clock returns ns (monotonic).
    ``drops`` (optional) receives 'superseded' / 'stale' / 'inference_error' counts as well."""

    def __init__(
        self, predictor: PredictorLike, on_result: Callable[[Result], None],
        on_error: Callable[[BaseException, Job], None] | None = None, max_staleness_s: float = 1.0,
        clock: Callable[[], int] = time.monotonic_ns, drops: DropCounter | None = None, keep_stamps: int = 1000,
        name: str = "ssc-inference",
    ) -> None:
        self.predictor = predictor
        self.on_result = on_result
        self.on_error = on_error
        self.max_staleness_ns = int(max_staleness_s * 1e9)
        self.clock = clock
        self.drops = drops
        self._keep_stamps = keep_stamps
        super().__init__(name)
        self._pending: Job | None = None
        self._busy = False
        self._stats = WorkerStats()
        self._proc_sum = 0.0
        self._lat_sum = 0.0

    def submit(self, job: Job) -> bool:
        """Queue ``job`` as the newest work (O(1), never blocks on inference). Returns False when it replaced a
        pending job that was never processed (counted as superseded)."""
        with self._cond:
            replaced = self._pending is not None
            self._pending = job
            self._stats.submitted += 1
            if replaced:
                self._stats.superseded += 1
            self._cond.notify()
        if replaced and self.drops is not None:
            self.drops.drop("superseded")
        return not replaced

    def stats(self) -> WorkerStats:
        """A copy of the counters and timings."""
        with self._cond:
            s = self._stats
            return WorkerStats(**{**s.__dict__, "processed_stamps": list(s.processed_stamps)})

    @property
    def idle(self) -> bool:
        """True when nothing is pending or running."""
        with self._cond:
            return self._pending is None and not self._busy

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Block until idle (tests, shutdown); returns whether it became idle in time."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.idle:
                return True
            time.sleep(0.005)
        return self.idle

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._pending is None and not self._stop:
                    self._cond.wait()
                if self._stop:
                    return
                job, self._pending = self._pending, None
                self._busy = True
            try:
                self._process(job)
            finally:
                with self._cond:
                    self._busy = False

    def _process(self, job: Job) -> None:
        if self.clock() - job.received_ns > self.max_staleness_ns:
            with self._cond:
                self._stats.stale += 1
            if self.drops is not None:
                self.drops.drop("stale")
            return
        t0 = time.perf_counter()
        try:
            prediction = self.predictor.predict(job.window)
        except Exception as exc:  # noqa: BLE001 - a failing model must not kill the node; it is counted and reported
            with self._cond:
                self._stats.errors += 1
            if self.drops is not None:
                self.drops.drop("inference_error")
            if self.on_error is not None:
                self.on_error(exc, job)
            return
        processing = time.perf_counter() - t0
        latency = (self.clock() - job.received_ns) / 1e9
        with self._cond:
            s = self._stats
            s.processed += 1
            self._proc_sum += processing
            self._lat_sum += latency
            s.last_processing_s, s.last_latency_s = processing, latency
            s.mean_processing_s = self._proc_sum / s.processed
            s.mean_latency_s = self._lat_sum / s.processed
            s.max_processing_s = max(s.max_processing_s, processing)
            s.processed_stamps.append(int(job.window.current.stamp_ns))
            del s.processed_stamps[: -self._keep_stamps]
        try:
            self.on_result(Result(prediction, job, processing, latency))
        except Exception as exc:  # noqa: BLE001 - publishing errors are reported, the worker keeps running
            if self.drops is not None:
                self.drops.drop("output_error")
            if self.on_error is not None:
                self.on_error(exc, job)
