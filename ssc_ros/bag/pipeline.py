"""``run``: ssc_node's pipeline over a ROS 2 bag, writing the input messages plus the node's outputs.

``BagPipeline`` wires the same classes as ssc_node (FrameSynchronizer, FrameAssembler, TemporalBuffer, the
Predictor, OutputBuilder) with the node's parameters; TF comes from the bag (``TransformHistory``). Every
synchronised set is processed in stamp order: offline there is no reason to drop stale sets.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from ssc_core.errors import ConfigError, DataFormatError
from ssc_ros.bag.files import (
    DEBUG_QOS,
    LATCHED_QOS,
    BagReader,
    BagSummary,
    BagWriter,
    bag_location,
    input_bag_dir,
)
from ssc_ros.bag.tf_history import TransformHistory
from ssc_ros.messages import make_float64, rosbags_namespace, stamp_to_ns
from ssc_ros.pipeline.health import DropCounter
from ssc_ros.pipeline.outputs import OutputBuilder
from ssc_ros.pipeline.rgbd import input_pipeline
from ssc_ros.pipeline.sync import FrameSynchronizer, SyncedSet
from ssc_ros.pipeline.temporal_buffer import PushResult
from ssc_ros.replay import ReplayNames
from ssc_ros.replay_nyu import NYUReplayNames


@dataclass(frozen=True)
class RunTopics:
    """Input topics ``run`` reads (the replay's names by default, as the launch file remaps them for ssc_node)
    and the output topics it writes (ssc_node's ``~/...`` topics resolved for the node name ``ssc_node``)."""

    image: str = ReplayNames.left_image
    camera_info: str = ReplayNames.left_info
    points: str = ReplayNames.cloud
    depth: str = NYUReplayNames.depth
    image_right: str = ReplayNames.right_image
    camera_info_right: str = ReplayNames.right_info
    tf: str = ReplayNames.tf
    tf_static: str = ReplayNames.tf_static
    voxels: str = "/ssc_node/voxels"
    voxel_cloud: str = "/ssc_node/voxel_cloud"
    occupancy_grid: str = "/ssc_node/occupancy_grid"
    processing_time: str = "/ssc_node/processing_time_ms"

    @classmethod
    def rgbd(cls, **overrides: str) -> RunTopics:
        """The input topics of ``ssc-bag nyu2bag`` (image, depth, camera_info; input.mode rgbd)."""
        names = NYUReplayNames()
        return cls(**{"image": names.image, "camera_info": names.camera_info, "depth": names.depth, **overrides})


OUTPUT_QOS = LATCHED_QOS  # ssc_node's outputs with outputs.latch (the default): reliable, transient local, depth 1


def node_parameters(params_file: str | Path | None = None, overrides: dict[str, Any] | None = None) -> dict:
    """ssc_node's parameter values: the declared defaults, then a ROS 2 parameter YAML (``/**:`` or
    ``ssc_node:`` -> ``ros__parameters``, nested mappings flattened to dotted names, e.g. config/ssc_node.yaml),
    then ``overrides``. ConfigError for unknown names or an unreadable file."""
    import yaml

    from ssc_ros.pipeline.params import SSC_NODE_PARAMS

    values = {spec.name: spec.default for spec in SSC_NODE_PARAMS}
    updates: dict[str, Any] = {}
    if params_file is not None:
        path = Path(params_file)
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"{path}: cannot read ROS parameters ({exc})") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: a ROS parameter file maps node names to ros__parameters, got a "
                              f"{type(data).__name__}")
        for node, section in data.items():
            if node.lstrip("/") in ("**", "ssc_node") and isinstance(section, dict):
                updates.update(_flatten(section.get("ros__parameters") or {}))
    updates.update(overrides or {})
    unknown = sorted(set(updates) - set(values))
    if unknown:
        raise ConfigError(f"unknown ssc_node parameter(s) {unknown}; see docs/ros.md")
    source = f"{params_file}: " if params_file is not None else ""
    values.update({name: _typed(name, value, values[name], source) for name, value in updates.items()})
    return values


def _typed(name: str, value: Any, default: Any, source: str) -> Any:
    """``value`` as the type of the parameter's ``default`` (a ROS parameter's type); ints pass as floats.
    ConfigError naming the parameter otherwise."""
    def number(v: Any) -> bool:
        return isinstance(v, int | float) and not isinstance(v, bool)

    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(default, float):
        ok = number(value)
        value = float(value) if ok else value
    elif isinstance(default, list):
        ok = isinstance(value, list | tuple) and all(number(v) for v in value)
        value = [float(v) for v in value] if ok else value
    else:
        ok = isinstance(value, type(default))
    if not ok:
        raise ConfigError(f"{source}ssc_node parameter {name} must be a {type(default).__name__} like "
                          f"{default!r}, got {value!r}")
    return value


def _flatten(mapping: dict, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


class BagPipeline:
    """ssc_node's processing chain fed from bag messages, one synchronised set at a time, no threads.

    The same steps as the node's intake and worker (see ssc_node.py): FrameSynchronizer -> WindowBuilder (TF at
    the set's stamp from the bag, FrameAssembler, TemporalBuffer) -> Predictor -> OutputBuilder; every set is
    processed (nothing is stale offline). predictor: the Predictor contract;
    params: ssc_node parameter values (``node_parameters``; ``input.mode`` picks camera or RGB-D inputs); topics:
    RunTopics (default: the replay's names of the mode, ``topic_overrides`` {field: topic} on top); warn: log
    function.
    ``on_tf`` / ``on_input`` take decoded messages in bag order and return the (Prediction, processing seconds)
    pairs that became ready; ``finish`` flushes what still waits for TF at the end of the bag.
    """

    def __init__(
        self,
        predictor: Any,
        params: dict[str, Any] | None = None,
        topics: RunTopics | None = None,
        warn: Callable[[str], None] = print,
        topic_overrides: dict[str, str] | None = None,
    ) -> None:
        from ssc_ros.pipeline.params import output_options

        self.p = params or node_parameters()
        self.drops = DropCounter()
        self.predictor, self.windows = input_pipeline(predictor, self.p, self.drops, warn)
        self.rgbd = self.p["input.mode"] == "rgbd"
        self.topics = topics or (RunTopics.rgbd if self.rgbd else RunTopics)(**(topic_overrides or {}))
        t = self.topics
        self.inputs = {key: getattr(t, key) for key in self.windows.keys}
        self._key_of = {topic: key for key, topic in self.inputs.items()}
        self.sync = FrameSynchronizer(list(self.inputs), self.p["sync.slop_s"], self.p["sync.queue_size"], self.drops)
        self.builder = OutputBuilder(self.predictor.class_set, output_options(self.p))
        self.tf = TransformHistory()
        self._pending: deque[SyncedSet] = deque()
        self.processed = 0

    def is_input(self, topic: str) -> bool:
        """Whether ``topic`` feeds the synchroniser."""
        return topic in self._key_of

    def on_tf(self, msg: Any, static: bool) -> list:
        """Store a TFMessage; returns the results of sets that were waiting for it."""
        self.tf.add(msg, static)
        return self._drain(final=False)

    def on_input(self, topic: str, msg: Any) -> list:
        """Offer an input message to the synchroniser; returns the results that became ready."""
        matched = self.sync.add(self._key_of[topic], stamp_to_ns(msg.header.stamp), msg)
        if matched is not None:
            self._pending.append(matched)
        return self._drain(final=False)

    def finish(self) -> list:
        """Process every set still waiting (end of the bag: with whatever TF there is)."""
        return self._drain(final=True)

    def _ready(self, matched: SyncedSet) -> bool:
        """A set can go once its camera <- LiDAR transform is known (camera models) and, with a history window,
        its pose is known or will never come (the dynamic TF has already moved past its stamp)."""
        stamp, lidar = matched.stamp_ns, self.windows.lidar_frame(matched.items)
        if not lidar:
            return False
        camera = self.windows.inputs.image and matched.items["camera_info"].header.frame_id
        if camera is not False and self.tf.lookup(camera, lidar, stamp) is None:
            return False
        if not self.windows.needs_pose or self.tf.lookup(self.p["frames.fixed"], lidar, stamp) is not None:
            return True
        latest = self.tf.latest_dynamic_ns
        return latest is not None and latest > stamp + self.tf.tolerance_ns

    def _drain(self, final: bool) -> list:
        out = []
        while self._pending and (final or self._ready(self._pending[0])):
            result = self._process(self._pending.popleft())
            if result is not None:
                out.append(result)
        return out

    def _process(self, matched: SyncedSet):
        """Window (WindowBuilder, TF from the bag) -> prediction for one set; None when the set is dropped."""
        window = self.windows.build(matched.items, matched.stamp_ns, self.tf.lookup, index=self.processed)
        if window is None:
            return None
        pushed = self.windows.last_push
        if pushed in (PushResult.DUPLICATE, PushResult.OUT_OF_ORDER):
            self.drops.drop(pushed.value)
            return None
        start = time.perf_counter()
        prediction = self.predictor.predict(window)
        elapsed = time.perf_counter() - start
        prediction.frame_id = self.windows.lidar_frame(matched.items)
        self.processed += 1
        return prediction, elapsed

    def output_messages(self, ns: Any, prediction: Any, processing_s: float) -> list[tuple[str, str, Any, Any]]:
        """[(topic, type name, message, QoS)] of the node's enabled outputs for one Prediction."""
        t, p = self.topics, self.p
        out_qos = OUTPUT_QOS if p["outputs.latch"] else DEBUG_QOS
        selection = self.builder.select(prediction) if p["outputs.markers"] or p["outputs.cloud"] else None
        out = []
        if p["outputs.markers"]:
            out.append((t.voxels, "MarkerArray", self.builder.marker_array(ns, prediction, selection), out_qos))
        if p["outputs.cloud"]:
            out.append((t.voxel_cloud, "PointCloud2", self.builder.voxel_cloud(ns, prediction, selection), out_qos))
        if p["outputs.occupancy"]:
            out.append((t.occupancy_grid, "OccupancyGrid", self.builder.occupancy_grid(ns, prediction), out_qos))
        out.append((t.processing_time, "Float64", make_float64(ns, processing_s * 1e3), DEBUG_QOS))
        return out


def run(
    input_bag: str | Path,
    output: str | Path,
    checkpoint: str | Path | None = None,
    config: str | Path | None = None,
    storage: str | None = None,
    device: str = "cpu",
    distro: str = "humble",
    topics: RunTopics | None = None,
    params_file: str | Path | None = None,
    params: dict[str, Any] | None = None,
    progress: bool = True,
    warn: Callable[[str], None] = print,
    predictor: Any = None,
    on_prediction: Callable[[Any], None] | None = None,
    overwrite: bool = False,
    topic_overrides: dict[str, str] | None = None,
) -> BagSummary:
    """Run the SSC pipeline over a bag: copy every input message to ``output`` and add ssc_node's outputs
    (voxels MarkerArray, voxel_cloud PointCloud2, occupancy_grid OccupancyGrid, processing_time_ms), stamped
    with their input's stamp. The model comes from ``checkpoint`` (``config`` checked against it and used) or a
    ready ``predictor``; node parameters from ``params_file`` (ROS YAML) and ``params`` over the node defaults.
    DataFormatError when the bag lacks a topic the model needs or /tf_static, or already holds output topics.
    ``on_prediction(prediction)`` is called with every Prediction (in the LiDAR frame of its input) after its
    outputs are written, e.g. to score or render it without running the model again. ``topic_overrides``: input
    topics by RunTopics field over the mode's defaults (when ``topics`` is None). ``overwrite``: replace an
    existing bag at ``output`` (never the input bag: ConfigError). Returns a BagSummary (``extra``: sets
    received, drops by reason)."""
    values = node_parameters(params_file, params)
    out_dir = bag_location(output, storage)[0]
    if out_dir.exists() and out_dir.resolve() == input_bag_dir(input_bag).resolve():
        raise ConfigError(f"--output {output} is the input bag; choose another --output")
    if predictor is None:
        from ssc_ros.pipeline.predictor_setup import build_predictor

        if checkpoint is None:
            raise ConfigError("ssc-bag run needs a checkpoint (--checkpoint)")
        predictor = build_predictor(str(checkpoint), str(config or ""), device, values["model.precision"])
    ns = rosbags_namespace(distro)
    pipeline = BagPipeline(predictor, values, topics, warn, topic_overrides)
    t = pipeline.topics
    stamps: list[int] = []
    with BagReader(input_bag, ns.typestore) as reader:
        reader.require(pipeline.inputs.values(), "by the model")
        if not pipeline.rgbd:  # an RGB-D camera moves: its camera <- grid transform comes on /tf
            reader.require([t.tf_static], "for the camera <- LiDAR transform")
        info = reader.topics
        reader.check_types([*pipeline.inputs.values()] + [x for x in (t.tf_static, t.tf) if x in info])
        outputs = (t.voxels, t.voxel_cloud, t.occupancy_grid, t.processing_time)
        clash = [topic for topic in outputs if topic in info]
        if clash:
            raise DataFormatError(f"bag {reader.path}: already holds output topic(s) {clash}; run on the input bag")
        with BagWriter(output, ns.typestore, storage, overwrite=overwrite) as writer:
            bar = tqdm(total=sum(i.count for i in info.values()), desc="ssc-bag run", unit="msg", disable=not progress)

            def write_results(results: list) -> None:
                for prediction, elapsed in results:
                    for topic, type_name, msg, qos in pipeline.output_messages(ns, prediction, elapsed):
                        writer.write(topic, ns.msgtype(type_name), prediction.stamp_ns, msg, qos)
                    stamps.append(prediction.stamp_ns)
                    if on_prediction is not None:
                        on_prediction(prediction)
                bar.set_postfix(frames=pipeline.processed, refresh=False)

            try:
                for raw in reader.raw_messages():
                    bar.update()
                    topic = info[raw.topic]
                    known = raw.msgtype in ns.typestore.types
                    writer.write_raw(
                        raw.topic,
                        raw.msgtype,
                        raw.stamp_ns,
                        raw.data,
                        topic.qos or None,
                        None if known else topic.msgdef,
                        None if known else topic.digest,
                    )
                    if raw.topic in (t.tf, t.tf_static):
                        write_results(pipeline.on_tf(reader.decode(raw), static=raw.topic == t.tf_static))
                    elif pipeline.is_input(raw.topic):
                        write_results(pipeline.on_input(raw.topic, reader.decode(raw)))
                write_results(pipeline.finish())
            finally:
                bar.close()
    return BagSummary(
        writer.path,
        writer.storage_file,
        dict(writer.counts),
        pipeline.processed,
        min(stamps, default=None),
        max(stamps, default=None),
        extra={"drops": pipeline.drops.as_dict(), "received": pipeline.drops.received},
    )
