"""Benchmark: Prediction -> MarkerArray / PointCloud2 / OccupancyGrid on one CPU core.

Builds a street-like 256x256x32 prediction with about 100k occupied voxels (ground slab, building walls, cars,
trees), then times each stage of ``ssc_ros.pipeline.outputs.OutputBuilder`` in the message classes of
``--backend``: ``rclpy`` (the live node's; needs rclpy: a sourced ROS 2 or ``pip install -e ".[ros-wheels]"``)
or ``rosbags`` (the offline bag path), and the serialisation the publisher or bag writer does after (the
MarkerArray comes out serialised already). Prints the median CPU time of each stage (this thread's: what it
costs on one core whatever else runs there) and the best and median wall-clock times; the target is all three
messages for ~100k voxels in 20 ms on one core.

    taskset -c 1 python bench/ros_outputs.py --backend rclpy [--repeats 20] [--no-cull]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from ssc_core.data.label_maps import SEMANTIC_KITTI  # noqa: E402
from ssc_core.types import GridSpec, Prediction  # noqa: E402
from ssc_ros.messages import rosbags_namespace  # noqa: E402
from ssc_ros.pipeline.outputs import OutputBuilder, OutputOptions  # noqa: E402


def street_prediction(target_voxels: int = 100_000, seed: int = 0) -> Prediction:
    """A 256x256x32 SemanticKITTI-grid prediction with about ``target_voxels`` non-empty voxels."""
    rng = np.random.default_rng(seed)
    grid = GridSpec.semantic_kitti()
    labels = np.zeros(grid.dims, dtype=np.uint8)
    labels[:, 100:156, 1:2] = 9           # road, two voxels thick below
    labels[:, 100:156, 0:1] = 9
    labels[:, 80:100, 1] = 11             # sidewalks
    labels[:, 156:176, 1] = 11
    labels[:, :80, 1] = 17                # terrain
    labels[:, 176:, 1] = 17
    labels[:, 70:74, 2:20] = 13           # building walls
    labels[:, 182:186, 2:20] = 13
    for _ in range(12):                   # cars
        x, y = rng.integers(0, 236), rng.integers(104, 140)
        labels[x:x + 20, y:y + 9, 2:9] = 1
    for _ in range(40):                   # trees: trunk + crown
        x, y = rng.integers(5, 250), rng.choice([rng.integers(20, 60), rng.integers(190, 240)])
        labels[x, y, 2:10] = 16
        labels[max(x - 3, 0):x + 4, max(y - 3, 0):y + 4, 10:16] = 15
    count = int((labels > 0).sum())
    if count > target_voxels:  # thin the terrain randomly to meet the target
        terrain = np.flatnonzero(labels.ravel() == 17)
        drop = rng.choice(terrain, size=min(count - target_voxels, terrain.size), replace=False)
        labels.ravel()[drop] = 0
    confidence = rng.uniform(0.3, 1.0, size=grid.dims).astype(np.float32)
    return Prediction(labels=labels, confidence=confidence, grid=grid, stamp_ns=123_000_000_000)


def _time(fn, repeats: int) -> tuple[tuple[float, float, float], object]:
    """(best, median, median CPU) milliseconds over ``repeats`` calls, and the last result. On a shared machine the
    CPU time (this thread's) is the figure to compare: what a call costs on one core whatever else runs there;
    the wall-clock best is the least disturbed call, the median shows how much the other processes took."""
    times, cpu, out = [], [], None
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.thread_time()
        out = fn()
        times.append((time.perf_counter() - t0) * 1e3)
        cpu.append((time.thread_time() - c0) * 1e3)
    return (min(times), statistics.median(times), statistics.median(cpu)), out


def serializer(backend: str, ns):
    """(message, type name) -> CDR bytes, as the backend's publisher / bag writer serialises."""
    if backend == "rclpy":
        from rclpy.serialization import serialize_message

        return lambda msg, _name: msg if isinstance(msg, bytes) else serialize_message(msg)
    return lambda msg, name: msg if isinstance(msg, bytes) else ns.typestore.serialize_cdr(msg, ns.msgtype(name))


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", choices=("rclpy", "rosbags"), default="rclpy",
                        help="message classes: the live node's (rclpy) or the bag path's (rosbags)")
    parser.add_argument("--repeats", type=int, default=7, help="timed repetitions per stage (median is reported)")
    parser.add_argument("--no-cull", action="store_true", help="draw hidden interior cubes too (cull_hidden=false)")
    args = parser.parse_args(argv)

    if args.backend == "rclpy":
        from ssc_ros.messages import rclpy_namespace

        ns = rclpy_namespace()
    else:
        ns = rosbags_namespace()
    serialise = serializer(args.backend, ns)
    pred = street_prediction()
    builder = OutputBuilder(SEMANTIC_KITTI, OutputOptions(cull_hidden=not args.no_cull))
    sel = builder.select(pred)
    per_class = builder.marker_arrays_data(sel)
    cubes = sum(len(c) for _, c in per_class)
    rows = []
    t_sel, _ = _time(lambda: builder.select(pred), args.repeats)
    t_mdata, _ = _time(lambda: builder.marker_arrays_data(sel), args.repeats)
    t_marker, markers = _time(lambda: builder.marker_array(ns, pred, sel), args.repeats)
    t_cloud, cloud = _time(lambda: builder.voxel_cloud(ns, pred, sel), args.repeats)
    t_grid, grid = _time(lambda: builder.occupancy_grid(ns, pred), args.repeats)
    rows.append(("select voxels (shared by markers + cloud)", t_sel, f"{len(sel.labels)} voxels"))
    rows.append(("marker centres per class, culled (numpy)", t_mdata, f"{cubes} cubes, {len(per_class)} classes"))
    rows.append(("MarkerArray, serialised (incl. the centres)", t_marker, f"{len(markers) / 1e6:.2f} MB CDR"))
    rows.append(("PointCloud2 message", t_cloud, f"{cloud.width} points x {cloud.point_step} B"))
    rows.append(("OccupancyGrid message", t_grid, f"{grid.info.width}x{grid.info.height} cells"))

    def all_outputs(serialised: bool) -> None:
        """What the node's worker does per prediction: select once, build the three messages (and serialise)."""
        selection = builder.select(pred)
        msgs = ((builder.marker_array(ns, pred, selection), "MarkerArray"),
                (builder.voxel_cloud(ns, pred, selection), "PointCloud2"), (builder.occupancy_grid(ns, pred),
                                                                             "OccupancyGrid"))
        if serialised:
            for msg, name in msgs:
                serialise(msg, name)

    rows.append(("TOTAL: select + all three messages", _time(lambda: all_outputs(False), args.repeats)[0],
                 f"{args.backend}, end to end"))
    for name, msg in (("PointCloud2", cloud), ("OccupancyGrid", grid)):
        t_ser, raw = _time(lambda m=msg, n=name: serialise(m, n), args.repeats)
        rows.append((f"  then serialise {name} ({args.backend})", t_ser, f"{len(raw) / 1e6:.2f} MB"))
    rows.append(("TOTAL incl. serialisation (what publish adds)", _time(lambda: all_outputs(True), args.repeats)[0],
                 "end to end"))

    print(f"occupied voxels in the prediction: {int((pred.labels > 0).sum())}; {args.repeats} runs per stage; "
          f"{args.backend} message classes")
    print(f"| {'stage':<46} | {'CPU ms':>7} | {'best ms':>8} | {'median ms':>9} | {'size':<30} |")
    print(f"|{'-' * 48}|{'-' * 9}|{'-' * 10}|{'-' * 11}|{'-' * 32}|")
    for name, (best, median, cpu), note in rows:
        print(f"| {name:<46} | {cpu:7.1f} | {best:8.1f} | {median:9.1f} | {note:<30} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
