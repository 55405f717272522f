"""Benchmark: Prediction -> MarkerArray / PointCloud2 / OccupancyGrid on one CPU core.

Builds a street-like 256x256x32 prediction with about 100k occupied voxels (ground slab, building walls, cars,
trees), then times each stage of ``ssc_ros.pipeline.outputs.OutputBuilder`` with the rosbags message namespace
(the offline path; rclpy's message classes are not installed here), and the CDR serialisation of each message
for scale. Prints a table of best and median milliseconds.

    taskset -c 0 python bench/ros_outputs.py [--repeats 7] [--no-cull]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from ssc_core.data.label_maps import SEMANTIC_KITTI
from ssc_core.types import GridSpec, Prediction
from ssc_ros.messages import rosbags_namespace
from ssc_ros.pipeline.outputs import OutputBuilder, OutputOptions


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


def _time(fn, repeats: int) -> tuple[tuple[float, float], object]:
    """(best, median) milliseconds over ``repeats`` calls, and the last result. The best is the figure to compare
    (least disturbed by other processes on a shared machine); the median shows the spread."""
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return (min(times), statistics.median(times)), out


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=7, help="timed repetitions per stage (median is reported)")
    parser.add_argument("--no-cull", action="store_true", help="draw hidden interior cubes too (cull_hidden=false)")
    args = parser.parse_args(argv)

    pred = street_prediction()
    ns = rosbags_namespace()
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
    rows.append(("MarkerArray message (incl. the numpy part)", t_marker, f"{len(markers.markers)} markers"))
    rows.append(("PointCloud2 message", t_cloud, f"{cloud.width} points x {cloud.point_step} B"))
    rows.append(("OccupancyGrid message", t_grid, f"{grid.info.width}x{grid.info.height} cells"))
    numpy_total = tuple(a + b + c + d for a, b, c, d in zip(t_sel, t_mdata, t_cloud, t_grid))
    total = tuple(a + b + c + d for a, b, c, d in zip(t_sel, t_marker, t_cloud, t_grid))
    rows.append(("numpy work: select + centres + cloud + grid", numpy_total, "vectorised part"))
    rows.append(("TOTAL: select + all three messages", total, "one core"))
    ts = ns.typestore
    for name, msg in (("MarkerArray", markers), ("PointCloud2", cloud), ("OccupancyGrid", grid)):
        t_ser, raw = _time(lambda m=msg, n=name: ts.serialize_cdr(m, ns.msgtype(n)), max(1, args.repeats // 2))
        rows.append((f"  (CDR serialise {name}, rosbags)", t_ser, f"{len(raw) / 1e6:.2f} MB"))

    print(f"occupied voxels in the prediction: {int((pred.labels > 0).sum())}; {args.repeats} runs per stage")
    print(f"| {'stage':<46} | {'best ms':>8} | {'median ms':>9} | {'size':<28} |")
    print(f"|{'-' * 48}|{'-' * 10}|{'-' * 11}|{'-' * 30}|")
    for name, (best, median), note in rows:
        print(f"| {name:<46} | {best:8.1f} | {median:9.1f} | {note:<28} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
