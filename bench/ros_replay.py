"""Benchmark: kitti_replay_node at KITTI size, on one core.

Writes a KITTI-size sequence to a temporary folder (1241x376 colour PNGs for image_2 and image_3 with
photo-like compression, 64-beam scans of ~120k points, 256x256x32 voxel labels on every 5th frame like
SemanticKITTI, times.txt at 10 Hz), then measures

1. offline, per frame: reading it (PNG decoding, the scan, the labels) and building its messages in the rclpy
   message classes (what the node's reader thread does), and publishing them (what its timer does);
2. live: the real node (``KittiReplayNode``, ``rate`` 1.0 = 10 Hz) spun as ``rclpy.spin`` does, with a
   subscriber in another process taking every topic (raw, no deserialisation), for ``--seconds``: the rate each
   topic arrives at and the node process's CPU use.

Needs rclpy (a sourced ROS 2, or ``pip install -e ".[ros-wheels]"``). Where tf2_ros is missing (the PyPI wheels)
the test stand-in from test/ros_standins is used, which hands /tf to in-process listeners instead of DDS (one
small message per frame). DDS traffic stays on localhost, in ``--domain-id``.

    taskset -c 1 python bench/ros_replay.py [--frames 40] [--seconds 10] [--domain-id 150]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from ssc_core.data.label_maps import SEMANTIC_KITTI  # noqa: E402
from ssc_core.data.semantic_kitti import (  # noqa: E402
    write_calib,
    write_image,
    write_points,
    write_poses,
    write_times,
    write_voxel_labels,
)
from ssc_core.types import Calib  # noqa: E402

IMAGE_WH = (1241, 376)
P2 = np.array([[718.856, 0.0, 607.1928, 45.38225], [0.0, 718.856, 185.2157, -0.1130887], [0.0, 0.0, 1.0, 0.003779761]])
TR = np.array([[4.276802e-04, -9.999672e-01, -8.084491e-03, -1.198459e-02],
               [-7.210626e-03, 8.081198e-03, -9.999413e-01, -5.403984e-02],
               [9.999738e-01, 4.859485e-04, -7.206933e-03, -2.921968e-01]])
TOPICS = {  # topic -> type, as the replay publishes them
    "/kitti/camera_color_left/image_raw": "sensor_msgs/msg/Image",
    "/kitti/camera_color_right/image_raw": "sensor_msgs/msg/Image",
    "/kitti/camera_color_left/camera_info": "sensor_msgs/msg/CameraInfo",
    "/kitti/velo/pointcloud": "sensor_msgs/msg/PointCloud2",
    "/clock": "rosgraph_msgs/msg/Clock",
    "/kitti/voxels_gt": "visualization_msgs/msg/MarkerArray",
}
SUBSCRIBER = r"""
import sys, time, importlib, rclpy
from rclpy.qos import QoSProfile, ReliabilityPolicy, DurabilityPolicy
topics = dict(arg.split("=", 1) for arg in sys.argv[2:])
rclpy.init()
node = rclpy.create_node("replay_bench_counter")
stamps = {t: [] for t in topics}
for topic, msgtype in topics.items():
    package, _, name = msgtype.split("/")
    cls = getattr(importlib.import_module(package + ".msg"), name)
    latched = topic.endswith("voxels_gt")
    qos = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE,
                     durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE)
    node.create_subscription(cls, topic, lambda _m, t=topic: stamps[t].append(time.monotonic()), qos, raw=True)
end = time.monotonic() + float(sys.argv[1])
while time.monotonic() < end:
    rclpy.spin_once(node, timeout_sec=0.05)
for topic, ts in stamps.items():
    print(topic, " ".join(f"{t:.6f}" for t in ts))
rclpy.shutdown()
"""


def kitti_size_sequence(root: Path, frames: int, seed: int = 0) -> Path:
    """A KITTI-size sequence folder (see the module docstring) under ``root``; returns .../sequences/00."""
    from PIL import Image

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from ros_outputs import street_prediction

    rng = np.random.default_rng(seed)
    seq = root / "sequences" / "00"
    write_calib(seq / "calib.txt", Calib(P2=P2, P3=P2 - np.array([[0, 0, 0, 386.1448], [0, 0, 0, 0], [0, 0, 0, 0]]),
                                         T_cam0_velo=TR))
    write_poses(seq / "poses.txt", np.tile(np.eye(4), (frames, 1, 1)))
    write_times(seq / "times.txt", np.arange(frames) * 0.1)
    raw_gt = SEMANTIC_KITTI.inverse_lut()[street_prediction(seed=seed).labels]
    azimuth = np.linspace(-np.pi, np.pi, 1875, endpoint=False)
    elevation = np.deg2rad(np.linspace(-24.8, 2.0, 64))
    for i in range(frames):
        for camera in (2, 3):  # smooth content + sensor noise: compresses like a photo (~0.8 MB PNG)
            small = rng.integers(0, 255, (24, 78, 3), dtype=np.uint8)
            img = np.asarray(Image.fromarray(small).resize(IMAGE_WH, Image.BILINEAR), dtype=np.int16)
            img = np.clip(img + rng.integers(-6, 7, img.shape), 0, 255).astype(np.uint8)
            write_image(seq / f"image_{camera}" / f"{i:06d}.png", img)
        rng_m = rng.uniform(4.0, 70.0, (64, azimuth.size))
        el, az = np.meshgrid(elevation, azimuth, indexing="ij")
        points = np.stack([rng_m * np.cos(el) * np.cos(az), rng_m * np.cos(el) * np.sin(az), rng_m * np.sin(el),
                           rng.random(el.shape)], axis=-1).reshape(-1, 4)
        write_points(seq / "velodyne" / f"{i:06d}.bin", points)
        if i % 5 == 0:
            write_voxel_labels(seq / "voxels" / f"{i:06d}.label", raw_gt)
    return seq


def use_standins_where_missing() -> list[str]:
    """Put test/ros_standins on the path for the ROS libraries the PyPI wheels lack; returns their names."""
    missing = [m for m in ("tf2_ros", "tf2_msgs") if importlib.util.find_spec(m) is None]
    if missing:
        sys.path.append(str(REPO / "test" / "ros_standins"))
    return missing


def offline(seq_dir: Path, repeats: int) -> list[tuple[str, float, float, float]]:
    """(stage, best ms, median ms, median CPU ms of the thread) per frame: read, build messages (rclpy classes),
    publish (no subscriber). CPU time is what a frame costs whatever else runs on the core."""
    import rclpy

    from ssc_ros.messages import rclpy_namespace
    from ssc_ros.replay import GroundTruthMarkers, KittiSequence, replay_messages

    seq = KittiSequence(seq_dir)
    ns = rclpy_namespace()
    gt = GroundTruthMarkers()
    rclpy.init()
    node = rclpy.create_node("replay_bench_offline")
    pubs: dict[str, object] = {}
    times: dict[str, list[tuple[float, float]]] = {k: [] for k in ("read", "read_gt", "build", "build_gt",
                                                                    "publish")}
    for _ in range(repeats):
        for frame in seq.frames[:10]:
            t0, c0 = time.perf_counter(), time.thread_time()
            record = seq.record(frame)
            t1, c1 = time.perf_counter(), time.thread_time()
            messages = replay_messages(seq, record, ns, gt_markers=gt)
            t2, c2 = time.perf_counter(), time.thread_time()
            for topic, type_name, msg in messages:
                if topic == "/tf":
                    continue
                if topic not in pubs:
                    pubs[topic] = node.create_publisher(ns.classes[type_name], topic, 5)
                pubs[topic].publish(msg)
            t3, c3 = time.perf_counter(), time.thread_time()
            labelled = "_gt" if record.gt_labels is not None else ""
            times["read" + labelled].append((t1 - t0, c1 - c0))
            times["build" + labelled].append((t2 - t1, c2 - c1))
            times["publish"].append((t3 - t2, c3 - c2))
    node.destroy_node()
    rclpy.shutdown()
    names = {"read": "read a frame (2 PNGs + scan)", "read_gt": "read a frame with voxel labels",
             "build": "build its messages (rclpy classes)", "build_gt": "build incl. the GT MarkerArray",
             "publish": "publish them (no subscriber)"}
    return [(names[k], min(w for w, _ in v) * 1e3, float(np.median([w for w, _ in v])) * 1e3,
             float(np.median([c for _, c in v])) * 1e3) for k, v in times.items() if v]


def live(seq_dir: Path, seconds: float) -> tuple[dict[str, float], float]:
    """Run the node at rate 1.0 (10 Hz) for ``seconds`` with a subscriber process on the other cores; returns
    ({topic: Hz}, the node process's CPU seconds over the measured window)."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.parameter import Parameter

    from ssc_ros.kitti_replay_node import KittiReplayNode

    others = set(range(os.cpu_count() or 1)) - os.sched_getaffinity(0) or os.sched_getaffinity(0)
    counter = subprocess.Popen([sys.executable, "-c", SUBSCRIBER, str(seconds + 4.0)]
                               + [f"{t}={m}" for t, m in TOPICS.items()], stdout=subprocess.PIPE, text=True,
                               preexec_fn=lambda: os.sched_setaffinity(0, others))  # off the node's core
    rclpy.init()
    node = KittiReplayNode(parameter_overrides=[Parameter("sequence_dir", value=str(seq_dir)),
                                                Parameter("loop", value=True)])
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    start = time.monotonic()
    while time.monotonic() - start < 2.0:  # discovery and warm-up
        executor.spin_once(timeout_sec=0.05)
    cpu0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
    while time.monotonic() - t0 < seconds:
        executor.spin_once(timeout_sec=0.05)
    cpu1, t1 = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
    node.destroy_node()
    rclpy.shutdown()
    out, _ = counter.communicate(timeout=60)
    rates = {}
    for line in out.splitlines():
        topic, *stamps = line.split()
        inside = [float(s) for s in stamps if t0 <= float(s) <= t1]  # both processes use CLOCK_MONOTONIC
        rates[topic] = len(inside) / (t1 - t0)
    return rates, cpu1.ru_utime + cpu1.ru_stime - cpu0.ru_utime - cpu0.ru_stime


def main(argv: list[str] | None = None) -> int:
    """Write the sequence, run both measurements, print the tables."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=40, help="frames in the generated sequence (looped)")
    parser.add_argument("--seconds", type=float, default=10.0, help="live measurement window (s)")
    parser.add_argument("--repeats", type=int, default=2, help="offline passes over the first 10 frames")
    parser.add_argument("--domain-id", type=int, default=150, help="ROS_DOMAIN_ID (DDS stays on localhost)")
    args = parser.parse_args(argv)
    os.environ["ROS_DOMAIN_ID"] = str(args.domain_id)
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    standins = use_standins_where_missing()
    with tempfile.TemporaryDirectory() as tmp:
        seq = kitti_size_sequence(Path(tmp), args.frames)
        size = sum(f.stat().st_size for f in seq.rglob("*") if f.is_file()) / args.frames / 1e6
        print(f"KITTI-size sequence: {args.frames} frames, {size:.1f} MB of files per frame; "
              f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; CPU affinity "
              f"{sorted(os.sched_getaffinity(0))}" + (f"; stand-ins for {standins}" if standins else ""))
        print(f"| {'per frame (offline)':<40} | {'best ms':>8} | {'median ms':>9} | {'CPU ms':>7} |")
        print(f"|{'-' * 42}|{'-' * 10}|{'-' * 11}|{'-' * 9}|")
        for name, best, median, cpu_ms in offline(seq, args.repeats):
            print(f"| {name:<40} | {best:8.1f} | {median:9.1f} | {cpu_ms:7.1f} |")
        rates, cpu_s = live(seq, args.seconds)
    frames = rates.get("/kitti/velo/pointcloud", 0.0) * args.seconds
    print(f"\nlive, rate 1.0 (10 Hz wanted), {args.seconds:.0f} s: the node process used {cpu_s / args.seconds:.0%} "
          f"of one core, {cpu_s / max(frames, 1) * 1e3:.0f} ms CPU per frame published (10 Hz needs <= 100)")
    print(f"| {'topic':<40} | {'Hz':>6} |")
    print(f"|{'-' * 42}|{'-' * 8}|")
    for topic in TOPICS:
        print(f"| {topic:<40} | {rates.get(topic, 0.0):6.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
