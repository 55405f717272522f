"""ssc_node and kitti_replay_node glue, run against a FAKE of the rclpy API (not against rclpy itself).

Why a fake: rclpy (with message_filters, tf2_ros and rcl_interfaces) comes with a ROS 2 install and cannot be
installed on the machines these tests run on, so test_ros_nodes.py / test_ros_launch.py skip there and the two
node modules would never execute. The logic they wire up lives in ssc_ros.pipeline / messages / replay and is
tested without ROS; what this file checks is the glue itself: parameter declaration (every one with its
description, overrides of the declared type), publisher / subscriber / synchronizer / timer wiring, the intake
timer callback with its TF lookups, the worker thread publishing stamped outputs, diagnostics, drops of bad input
(counted and logged, the node keeps working), shutdown, the replay timer, and both ``main()`` functions.

The fake (below) follows the documented rclpy Humble/Jazzy API for the calls the nodes make (keyword-only
arguments where rclpy has them, QoSProfile needing a depth or history, publishers refusing messages of another
type, parameter overrides of another type refused) but is deliberately small: no executor, no DDS, no QoS
semantics. message_filters is test/ros_standins' (the one the rclpy tests use where the real one is missing),
and its TF buffer is ssc_ros.bag's TransformHistory (the offline stand-in for tf2 used by ``ssc-bag run``).
Messages are rosbags dataclasses (``rosbags_namespace``) in place of the rclpy message classes.
A pass here therefore says nothing about rclpy's behaviour; where the real rclpy is importable this file skips
and test_ros_nodes.py runs the nodes against it.

The fake modules go into ``sys.modules`` only inside the ``fake_ros`` fixture (monkeypatch), never at import.
"""

from __future__ import annotations

import dataclasses
import enum
import importlib
import importlib.util
import sys
import time
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from l2cocc_scenes import GRID as L2COCC_GRID
from points_model import LIDAR_POINTS_MODEL_NAME, POINTS_MODEL_NAME, LidarPointsModel, PointsModel
from ros_standins import message_filters as standin_message_filters

from ssc_core.data.label_maps import SEMANTIC_KITTI
from ssc_core.data.synthetic import SyntheticOptions, generate_sequence
from ssc_core.errors import SSCError
from ssc_core.training.checkpoint import load_checkpoint, save_checkpoint
from ssc_core.types import GridSpec
from ssc_ros.bag.tf_history import TransformHistory
from ssc_ros.messages import (
    MessageNamespace,
    image_to_rgb,
    make_transform_stamped,
    pointcloud2_to_xyzi,
    rosbags_namespace,
    stamp_to_ns,
)
from ssc_ros.pipeline.params import REPLAY_NODE_PARAMS, SSC_NODE_PARAMS
from ssc_ros.replay import KittiSequence, ReplayNames, replay_messages, static_messages

NAMES = ReplayNames()
MODEL_GRID = GridSpec(dims=(16, 16, 4), voxel_size=0.8, origin=(0.0, -6.4, -2.0))
IMAGE_SIZE = (64, 32)  # (W, H)
FRAMES = 6
CAR = 1
NODE_MODULES = ("ssc_ros.node_common", "ssc_ros.ssc_node", "ssc_ros.kitti_replay_node")


# ================================================================================================ the fake API
class ClockType(enum.IntEnum):
    """rclpy.clock.ClockType."""

    UNINITIALIZED = 0
    ROS_TIME = 1
    SYSTEM_TIME = 2
    STEADY_TIME = 3


class Time:
    """rclpy.time.Time (keyword-only, as in rclpy)."""

    def __init__(self, *, seconds: float = 0, nanoseconds: int = 0,
                 clock_type: ClockType = ClockType.SYSTEM_TIME) -> None:
        self.nanoseconds = int(seconds * 1e9) + int(nanoseconds)
        self.clock_type = clock_type


class Clock:
    """rclpy.clock.Clock; ``sim_ns`` stands for /clock under use_sim_time (None: the wall clock)."""

    def __init__(self, *, clock_type: ClockType = ClockType.SYSTEM_TIME) -> None:
        self.clock_type = clock_type
        self.sim_ns: int | None = None

    def now(self) -> Time:
        return Time(nanoseconds=time.time_ns() if self.sim_ns is None else self.sim_ns, clock_type=self.clock_type)


class ReliabilityPolicy(enum.IntEnum):
    SYSTEM_DEFAULT = 0
    RELIABLE = 1
    BEST_EFFORT = 2


class DurabilityPolicy(enum.IntEnum):
    SYSTEM_DEFAULT = 0
    TRANSIENT_LOCAL = 1
    VOLATILE = 2


class HistoryPolicy(enum.IntEnum):
    SYSTEM_DEFAULT = 0
    KEEP_LAST = 1
    KEEP_ALL = 2


class QoSProfile:
    """rclpy.qos.QoSProfile: keyword arguments only; like rclpy it needs a history or a depth."""

    def __init__(self, **kwargs: Any) -> None:
        if "history" not in kwargs and "depth" not in kwargs:
            raise ValueError("History and/or depth settings are required.")
        self.depth = kwargs.get("depth", 0)
        self.history = kwargs.get("history", HistoryPolicy.KEEP_LAST)
        self.reliability = kwargs.get("reliability", ReliabilityPolicy.RELIABLE)
        self.durability = kwargs.get("durability", DurabilityPolicy.VOLATILE)


class Parameter:
    """rclpy.parameter.Parameter(name, type_=None, value=None)."""

    def __init__(self, name: str, type_: Any = None, value: Any = None) -> None:
        self.name, self.type_, self.value = name, type_, value


def parameter_type(value: Any) -> str:
    """rclpy's Parameter.Type of a Python value (bool before int: bool is an int subclass)."""
    if isinstance(value, list | tuple):
        return f"{parameter_type(value[0]) if value else 'byte'}_array"
    for cls in (bool, int, float, str):
        if isinstance(value, cls):
            return cls.__name__
    raise TypeError(f"{value!r} is not a parameter value")


class ParameterDescriptor:
    """rcl_interfaces.msg.ParameterDescriptor (only the fields are kept)."""

    def __init__(self, *, name: str = "", type: int = 0, description: str = "", **fields: Any) -> None:
        self.name, self.type, self.description, self.fields = name, type, description, fields


class InvalidParameterTypeException(TypeError):
    """rclpy.exceptions.InvalidParameterTypeException."""


class CallbackGroup:
    """rclpy.callback_groups.MutuallyExclusiveCallbackGroup / ReentrantCallbackGroup."""


class ExternalShutdownException(Exception):
    """rclpy.executors.ExternalShutdownException."""


class Context:
    """The default context: rclpy.init parses ``--ros-args -p name:=value`` (values read as YAML, as rcl does)."""

    def __init__(self) -> None:
        self.initialised, self.shutdowns, self.overrides = False, 0, {}

    def init(self, args: list[str] | None) -> None:
        if self.initialised:
            raise RuntimeError("Context.init() must only be called once")
        self.initialised, self.overrides = True, {}
        args = list(args or [])
        for flag, item in zip(args, args[1:]):
            if flag == "-p":
                name, _, value = item.partition(":=")
                self.overrides[name] = yaml.safe_load(value)

    def shutdown(self) -> None:
        if self.initialised:
            self.initialised, self.shutdowns = False, self.shutdowns + 1

    def ok(self) -> bool:
        """Running: initialised, or never shut down (the tests make nodes without rclpy.init)."""
        return self.initialised or not self.shutdowns


class Logger:
    """node.get_logger(): records (level, message)."""

    def __init__(self) -> None:
        self.records: list[tuple[str, str]] = []

    def _log(self, level: str, message: str) -> bool:
        self.records.append((level, str(message)))
        return True

    def debug(self, message: str, **_: Any) -> bool:
        return self._log("debug", message)

    def info(self, message: str, **_: Any) -> bool:
        return self._log("info", message)

    def warning(self, message: str, **_: Any) -> bool:
        return self._log("warning", message)

    warn = warning

    def error(self, message: str, **_: Any) -> bool:
        return self._log("error", message)

    def messages(self, level: str) -> list[str]:
        return [m for lv, m in self.records if lv == level]


class Publisher:
    """A publisher that keeps what it publishes; like rclpy it refuses messages of another type and takes
    serialised CDR bytes too (kept decoded, for the tests to read). ``subscribers`` is what
    get_subscription_count() says (nobody listens until a test says so)."""

    def __init__(self, msg_type: type, topic: str, qos: QoSProfile | int) -> None:
        self.msg_type, self.topic, self.qos = msg_type, topic, qos
        self.msgs: list[Any] = []
        self.subscribers = 0

    def publish(self, msg: Any) -> None:
        if isinstance(msg, bytes):
            msg = FAKE_NS.typestore.deserialize_cdr(msg, self.msg_type.__msgtype__)
        if not isinstance(msg, self.msg_type):
            raise TypeError(f"Expected {self.msg_type}, got {type(msg)}")
        self.msgs.append(msg)

    def get_subscription_count(self) -> int:
        return self.subscribers


class Subscription:
    """A subscription; ``deliver`` is what the executor does when a message arrives."""

    def __init__(self, msg_type: type, topic: str, callback: Callable, qos: QoSProfile | int, group: Any) -> None:
        self.msg_type, self.topic, self.callback, self.qos, self.callback_group = msg_type, topic, callback, qos, group

    def deliver(self, msg: Any) -> None:
        assert isinstance(msg, self.msg_type), f"{self.topic}: {type(msg)} is not {self.msg_type}"
        self.callback(msg)


class Timer:
    """node.create_timer(): the executor would call ``callback`` every ``period_s``; the tests call it."""

    def __init__(self, period_s: float, callback: Callable, group: Any, clock: Clock) -> None:
        self.period_s, self.callback, self.callback_group, self.clock = period_s, callback, group, clock
        self.canceled = False

    def cancel(self) -> None:
        self.canceled = True

    def is_canceled(self) -> bool:
        return self.canceled


class Node:
    """rclpy.node.Node: parameters (overrides > ``--ros-args -p`` > default, type-checked as rclpy does since
    Humble), publishers, subscriptions, timers, logger, clock, name resolution."""

    def __init__(self, node_name: str, *, namespace: str = "", parameter_overrides: list | None = None,
                 use_global_arguments: bool = True) -> None:
        self._name, self._namespace = node_name, namespace.rstrip("/")
        self._overrides = dict(CONTEXT.overrides) if use_global_arguments else {}
        self._overrides.update({p.name: p.value for p in parameter_overrides or []})
        self._parameters: dict[str, Parameter] = {}
        self.descriptors: dict[str, ParameterDescriptor] = {}
        self.publishers: list[Publisher] = []
        self.subscriptions: list[Subscription] = []
        self.timers: list[Timer] = []
        self._logger, self._clock = Logger(), Clock(clock_type=ClockType.ROS_TIME)
        self.destroyed = False
        self.context = CONTEXT

    def declare_parameter(self, name: str, value: Any = None, descriptor: ParameterDescriptor | None = None,
                          ignore_override: bool = False) -> Parameter:
        if name in self._parameters:
            raise RuntimeError(f"parameter {name!r} already declared")
        if name in self._overrides and not ignore_override:
            override = self._overrides[name]
            if parameter_type(override) != parameter_type(value):
                raise InvalidParameterTypeException(f"Trying to set parameter '{name}' to '{override}' of type "
                                f"{parameter_type(override)}, expecting type {parameter_type(value)}")
            value = override
        self._parameters[name] = Parameter(name, value=value)
        self.descriptors[name] = descriptor or ParameterDescriptor()
        return self._parameters[name]

    def get_parameter(self, name: str) -> Parameter:
        if name not in self._parameters:
            raise KeyError(f"parameter {name!r} is not declared")
        return self._parameters[name]

    def resolve(self, topic: str) -> str:
        if topic.startswith("~"):
            return f"{self._namespace}/{self._name}{topic[1:]}"
        return topic if topic.startswith("/") else f"{self._namespace}/{topic}"

    def create_publisher(self, msg_type: type, topic: str, qos_profile: QoSProfile | int, *,
                         callback_group: Any = None) -> Publisher:
        self.publishers.append(Publisher(msg_type, self.resolve(topic), qos_profile))
        return self.publishers[-1]

    def create_subscription(self, msg_type: type, topic: str, callback: Callable, qos_profile: QoSProfile | int, *,
                            callback_group: Any = None) -> Subscription:
        self.subscriptions.append(Subscription(msg_type, self.resolve(topic), callback, qos_profile, callback_group))
        return self.subscriptions[-1]

    def create_timer(self, timer_period_sec: float, callback: Callable, callback_group: Any = None,
                     clock: Clock | None = None) -> Timer:
        self.timers.append(Timer(timer_period_sec, callback, callback_group, clock or self._clock))
        return self.timers[-1]

    def get_logger(self) -> Logger:
        return self._logger

    def get_clock(self) -> Clock:
        return self._clock

    def get_name(self) -> str:
        return self._name

    def destroy_node(self) -> None:
        self.destroyed = True

    # --- test helpers (not rclpy API)
    def publisher(self, topic: str) -> Publisher:
        (pub,) = [p for p in self.publishers if p.topic == topic]
        return pub

    def timer(self, callback_name: str) -> Timer:
        (timer,) = [t for t in self.timers if getattr(t.callback, "__name__", "") == callback_name]
        return timer


class MultiThreadedExecutor:
    """rclpy.executors.MultiThreadedExecutor: ``spin`` returns as Ctrl-C would (KeyboardInterrupt)."""

    def __init__(self, num_threads: int | None = None, *, context: Any = None) -> None:
        self.num_threads, self.nodes = num_threads, []

    def add_node(self, node: Node) -> bool:
        self.nodes.append(node)
        return True

    def spin(self) -> None:
        SPUN.extend(self.nodes)
        raise KeyboardInterrupt

    def shutdown(self, timeout_sec: float | None = None) -> bool:
        return True


def spin(node: Node, executor: Any = None) -> None:
    """rclpy.spin: returns as Ctrl-C would."""
    SPUN.append(node)
    raise KeyboardInterrupt


class TransformException(Exception):
    """tf2_ros.TransformException."""


class LookupException(TransformException):
    """tf2_ros.LookupException."""


class Buffer:
    """tf2_ros.Buffer over ssc_ros.bag's TransformHistory: set_transform(_static), can_transform,
    lookup_transform (TransformStamped target <- source, LookupException when not connected)."""

    def __init__(self, cache_time: Any = None, node: Any = None) -> None:
        self.history = TransformHistory()
        self.lookups: list[tuple[str, str, int]] = []

    def set_transform(self, transform: Any, authority: str) -> None:
        self.history.add(types.SimpleNamespace(transforms=[transform]), static=False)

    def set_transform_static(self, transform: Any, authority: str) -> None:
        self.history.add(types.SimpleNamespace(transforms=[transform]), static=True)

    def can_transform(self, target_frame: str, source_frame: str, time: Time, timeout: Any = None) -> bool:
        return self.history.lookup(target_frame, source_frame, time.nanoseconds) is not None

    def lookup_transform(self, target_frame: str, source_frame: str, time: Time, timeout: Any = None) -> Any:
        self.lookups.append((target_frame, source_frame, time.nanoseconds))
        T = self.history.lookup(target_frame, source_frame, time.nanoseconds)
        if T is None:
            raise LookupException(f'"{target_frame}" and "{source_frame}" are not connected')
        return make_transform_stamped(FAKE_NS, time.nanoseconds, target_frame, source_frame, T)


class TransformListener:
    """tf2_ros.TransformListener: subscribes /tf and /tf_static through the node and fills the buffer."""

    def __init__(self, buffer: Buffer, node: Node, *, spin_thread: bool = False, qos: Any = None,
                 static_qos: Any = None) -> None:
        self.buffer = buffer
        node.create_subscription(FAKE_NS.TFMessage, "/tf", self.callback, qos or 100)
        node.create_subscription(FAKE_NS.TFMessage, "/tf_static", self.static_callback, static_qos or 100)

    def callback(self, msg: Any) -> None:
        for t in msg.transforms:
            self.buffer.set_transform(t, "default_authority")

    def static_callback(self, msg: Any) -> None:
        for t in msg.transforms:
            self.buffer.set_transform_static(t, "default_authority")


class TransformBroadcaster:
    """tf2_ros.TransformBroadcaster: publishes TFMessages on /tf through the node (depth 100)."""

    def __init__(self, node: Node, qos: Any = None) -> None:
        self.pub = node.create_publisher(FAKE_NS.TFMessage, "/tf", qos or QoSProfile(depth=100))

    def sendTransform(self, transform: Any) -> None:  # noqa: N802 - tf2_ros' name
        self.pub.publish(FAKE_NS.TFMessage(transforms=list(transform) if isinstance(transform, list) else [transform]))


class StaticTransformBroadcaster(TransformBroadcaster):
    """tf2_ros.StaticTransformBroadcaster: /tf_static, transient local, depth 1."""

    def __init__(self, node: Node, qos: Any = None) -> None:
        self.pub = node.create_publisher(FAKE_NS.TFMessage, "/tf_static", qos or QoSProfile(
            depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL))


FAKE_NS: MessageNamespace = None  # type: ignore[assignment]  # set by the fixture (rosbags' message classes)
CONTEXT = Context()
SPUN: list[Node] = []


def module(name: str, **attrs: Any) -> types.ModuleType:
    mod = types.ModuleType(name)
    mod.__dict__.update(attrs)
    return mod


def fake_modules() -> dict[str, types.ModuleType]:
    """The fake rclpy, rcl_interfaces, message_filters and tf2_ros: only what the two node modules use."""
    sensor_data = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=5, reliability=ReliabilityPolicy.BEST_EFFORT,
                             durability=DurabilityPolicy.VOLATILE)
    mods = {
        "rclpy": module("rclpy", init=lambda *, args=None, context=None, domain_id=None: CONTEXT.init(args),
                        shutdown=lambda *, context=None: CONTEXT.shutdown(),
                        try_shutdown=lambda *, context=None: CONTEXT.shutdown(),
                        ok=lambda *, context=None: CONTEXT.initialised, spin=spin),
        "rclpy.node": module("rclpy.node", Node=Node),
        "rclpy.parameter": module("rclpy.parameter", Parameter=Parameter),
        "rclpy.callback_groups": module("rclpy.callback_groups", MutuallyExclusiveCallbackGroup=CallbackGroup,
                                        ReentrantCallbackGroup=CallbackGroup),
        "rclpy.executors": module("rclpy.executors", MultiThreadedExecutor=MultiThreadedExecutor,
                                  ExternalShutdownException=ExternalShutdownException),
        "rclpy.qos": module("rclpy.qos", QoSProfile=QoSProfile, ReliabilityPolicy=ReliabilityPolicy,
                            DurabilityPolicy=DurabilityPolicy, HistoryPolicy=HistoryPolicy,
                            qos_profile_sensor_data=sensor_data),
        "rclpy.time": module("rclpy.time", Time=Time),
        "rclpy.exceptions": module("rclpy.exceptions", InvalidParameterTypeException=InvalidParameterTypeException),
        "rclpy.clock": module("rclpy.clock", Clock=Clock, ClockType=ClockType),
        "rcl_interfaces": module("rcl_interfaces"),
        "rcl_interfaces.msg": module("rcl_interfaces.msg", ParameterDescriptor=ParameterDescriptor),
        "message_filters": standin_message_filters,
        "tf2_ros": module("tf2_ros", Buffer=Buffer, TransformListener=TransformListener,
                          TransformException=TransformException, LookupException=LookupException,
                          TransformBroadcaster=TransformBroadcaster,
                          StaticTransformBroadcaster=StaticTransformBroadcaster),
    }
    for name, mod in mods.items():  # submodules are attributes of their package, as after a real import
        parent, _, child = name.rpartition(".")
        if parent:
            setattr(mods[parent], child, mod)
    return mods


@pytest.fixture
def fake_ros(monkeypatch):
    """Installs the fake modules, imports the node modules fresh against them (using rosbags messages) and
    removes both again afterwards. Skips where the real rclpy is importable (test_ros_nodes.py runs then)."""
    if importlib.util.find_spec("rclpy") is not None:
        pytest.skip("the real rclpy is importable: test_ros_nodes.py runs the nodes against it instead")
    monkeypatch.setattr(sys.modules[__name__], "FAKE_NS", rosbags_namespace("humble"))
    monkeypatch.setattr(sys.modules[__name__], "CONTEXT", Context())
    SPUN.clear()
    for name, mod in fake_modules().items():
        monkeypatch.setitem(sys.modules, name, mod)
    import ssc_ros

    saved = {name: sys.modules.pop(name, None) for name in NODE_MODULES}
    saved_attrs = {name: ssc_ros.__dict__.pop(name.rpartition(".")[2], None) for name in NODE_MODULES}
    nodes = types.SimpleNamespace(**{name.rpartition(".")[2]: importlib.import_module(name) for name in NODE_MODULES})
    for mod in vars(nodes).values():
        if hasattr(mod, "rclpy_namespace"):
            monkeypatch.setattr(mod, "rclpy_namespace", lambda: FAKE_NS)
    yield nodes
    for name in NODE_MODULES:
        short = name.rpartition(".")[2]
        sys.modules.pop(name, None)
        ssc_ros.__dict__.pop(short, None)
        if saved[name] is not None:
            sys.modules[name] = saved[name]
        if saved_attrs[name] is not None:
            setattr(ssc_ros, short, saved_attrs[name])


# ============================================================================================ model and data
@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    cfg = {"model": {"name": POINTS_MODEL_NAME},
           "data": {"grid": MODEL_GRID.to_dict(), "image_crop": [IMAGE_SIZE[1], IMAGE_SIZE[0]],
                    "history_offsets": [-1], "points": {"source": "lidar"}}}
    path = tmp_path_factory.mktemp("ckpt") / "points.pt"
    return save_checkpoint(path, PointsModel(cfg), cfg, SEMANTIC_KITTI, MODEL_GRID)


@pytest.fixture(scope="module")
def sequence(tmp_path_factory) -> Path:
    """A 6-frame synthetic sequence: 64x32 images (left and right), a sparse LiDAR, voxel labels on frames 0
    and 5 on the SemanticKITTI grid (256x256x32 at 0.2 m, which the replay node reads)."""
    options = SyntheticOptions.small(image_size=IMAGE_SIZE, azimuth_step_deg=4.0, lidar_beams=16, label_scans=1,
                                     grid_dims=(256, 256, 32), voxel_size=0.2, label_stride=5)
    return generate_sequence(tmp_path_factory.mktemp("synth"), "00", frames=FRAMES, seed=3, options=options).dir


def frame_messages(sequence: Path) -> list[dict[str, Any]]:
    """{topic: message} of every frame, as the replay publishes them (rosbags messages)."""
    seq = KittiSequence(sequence, load_gt=False)
    return [{topic: msg for topic, _, msg in replay_messages(seq, record, FAKE_NS, NAMES, None, True)}
            for record in seq]


def deliver(node: Node, topic: str, msg: Any) -> None:
    """What the executor does when ``msg`` arrives on ``topic``: every subscription of the node on it gets it."""
    for sub in node.subscriptions:
        if sub.topic == topic:
            sub.deliver(msg)


def wait_for(condition: Callable[[], bool], timeout_s: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


# ================================================================================================== ssc_node
SSC_OVERRIDES = {
    "topics.image": NAMES.left_image, "topics.camera_info": NAMES.left_info, "topics.points": NAMES.cloud,
    "model.device": "cpu", "tf.wait_s": 0.05, "processing.max_staleness_s": 60.0,
    "diagnostics.max_processing_ms": 60000.0, "diagnostics.period_s": 0.5,
}


def start_ssc_node(fake_ros, checkpoint: Path, sequence: Path, predictor: Any = None, **params: Any):
    """An SSCNode with SSC_OVERRIDES + ``params`` that already has /tf_static; returns (node, frames)."""
    frames = frame_messages(sequence)
    values = {**SSC_OVERRIDES, "model.checkpoint": str(checkpoint), **params}
    node = fake_ros.ssc_node.SSCNode(predictor, parameter_overrides=[Parameter(k, value=v) for k, v in values.items()])
    static = static_messages(KittiSequence(sequence, load_gt=False), FAKE_NS, stamp_to_ns(
        frames[0][NAMES.tf].transforms[0].header.stamp), NAMES)
    deliver(node, NAMES.tf_static, static[0][2])
    return node, frames


def run_set(node: Node, msgs: dict[str, Any], processed: int) -> None:
    """Deliver one frame, run the intake timer, wait until the worker has handled ``processed`` windows."""
    for topic in (NAMES.tf, NAMES.left_image, NAMES.left_info, NAMES.cloud):
        deliver(node, topic, msgs[topic])
    node.timer("_on_intake").callback()
    stats = node.worker.stats
    assert wait_for(lambda: stats().processed + stats().errors == processed and node.worker.idle), stats()


def test_ssc_node_runs_sets_through_the_worker_publishes_stamped_outputs_and_survives_bad_input(
        fake_ros, checkpoint, sequence):
    node, frames = start_ssc_node(fake_ros, checkpoint, sequence)
    log = node.get_logger()
    try:
        # parameters: all declared with their description, overrides applied
        assert {n: d.description for n, d in node.descriptors.items()} == {
            s.name: s.description for s in SSC_NODE_PARAMS}
        assert node.p["tf.wait_s"] == 0.05 and node.p["model.checkpoint"] == str(checkpoint)
        # wiring: inputs the model needs (points model: image, camera_info, points), outputs, timers
        assert node.input_names == ["image", "camera_info", "points"]
        assert [s.sub.topic for s in node.subs] == [NAMES.left_image, NAMES.left_info, NAMES.cloud]
        inputs = {s.topic: s for s in node.subscriptions}
        assert inputs[NAMES.left_image].qos.reliability == ReliabilityPolicy.BEST_EFFORT
        assert inputs[NAMES.left_image].msg_type is FAKE_NS.Image
        assert inputs[NAMES.cloud].msg_type is FAKE_NS.PointCloud2
        assert {"/tf", "/tf_static"} <= set(inputs)  # the TransformListener's
        voxels, cloud_pub = node.publisher("/ssc_node/voxels"), node.publisher("/ssc_node/voxel_cloud")
        grid_pub, diag = node.publisher("/ssc_node/occupancy_grid"), node.publisher("/diagnostics")
        processing, latency = node.publisher("/ssc_node/processing_time_ms"), node.publisher("/ssc_node/latency_ms")
        for pub in (voxels, cloud_pub, grid_pub):
            assert pub.qos.durability == DurabilityPolicy.TRANSIENT_LOCAL and pub.qos.depth == 1
        intake, diagnostics = node.timer("_on_intake"), node.timer("_on_diagnostics")
        assert intake.period_s == fake_ros.ssc_node.INTAKE_PERIOD_S and diagnostics.period_s == 0.5
        assert intake.callback_group is not diagnostics.callback_group
        assert any(m.startswith("ssc_node ready") for m in log.messages("info"))
        assert node.worker.running

        def feed(msgs: dict[str, Any], n_outputs: int | None) -> None:
            """Publish one frame's messages, run the intake timer (twice when a TF wait has to run out) and,
            when ``n_outputs`` is given, wait for the worker to have published that many grids."""
            for topic in (NAMES.tf, NAMES.left_image, NAMES.left_info, NAMES.cloud):
                deliver(node, topic, msgs[topic])
            intake.callback()
            if len(node.intake):
                time.sleep(0.06)  # past tf.wait_s
                intake.callback()
            assert len(node.intake) == 0
            if n_outputs is not None:
                assert wait_for(lambda: len(grid_pub.msgs) == n_outputs and node.worker.idle), \
                    (len(grid_pub.msgs), log.records)

        stamps = [stamp_to_ns(f[NAMES.left_image].header.stamp) for f in frames]
        feed(frames[0], 1)
        assert processing.msgs == [] and latency.msgs == []  # nobody subscribed to the debug topics yet
        processing.subscribers = latency.subscribers = 1
        node.get_clock().sim_ns = stamps[1] + 50_000_000  # /clock 50 ms after frame 1 when its set arrives
        started = time.monotonic()
        feed(frames[1], 2)
        node.get_clock().sim_ns += 5_000_000_000  # the clock jumps on (a looping replay): latency must not follow
        waited_ms = (time.monotonic() - started) * 1e3
        for pub, cls in ((voxels, FAKE_NS.MarkerArray), (cloud_pub, FAKE_NS.PointCloud2),
                         (grid_pub, FAKE_NS.OccupancyGrid)):
            assert len(pub.msgs) == 2 and all(isinstance(m, cls) for m in pub.msgs)
        for i in (0, 1):
            assert stamp_to_ns(cloud_pub.msgs[i].header.stamp) == stamps[i]
            assert stamp_to_ns(grid_pub.msgs[i].header.stamp) == stamps[i]
            assert all(stamp_to_ns(m.header.stamp) == stamps[i] for m in voxels.msgs[i].markers)
            assert cloud_pub.msgs[i].header.frame_id == grid_pub.msgs[i].header.frame_id == "velo_link"
            assert all(m.header.frame_id == "velo_link" for m in voxels.msgs[i].markers)
        # the model's voxels: every cloud point is a car voxel, one CUBE_LIST 'ssc/car'; the grid is the model's
        assert cloud_pub.msgs[1].width > 0
        assert {m.ns for m in voxels.msgs[1].markers if m.action == 0} == {"ssc/car"}
        assert (grid_pub.msgs[1].info.width, grid_pub.msgs[1].info.height) == MODEL_GRID.dims[:2]
        assert len(processing.msgs) == 1 and processing.msgs[0].data > 0
        (latency_ms,) = [m.data for m in latency.msgs]
        assert 50.0 <= latency_ms <= 50.0 + waited_ms  # age at arrival + the steady time since
        # TF was looked up at the input stamps: camera <- LiDAR and the pose odom <- LiDAR
        assert ("camera_color_left", "velo_link", stamps[1]) in node.tf_buffer.lookups
        assert ("odom", "velo_link", stamps[1]) in node.tf_buffer.lookups

        # bad input: a wrongly encoded image, then a set whose camera frame has no TF: both dropped, logged
        bad_image = dataclasses.replace(frames[2][NAMES.left_image], encoding="yuv422")
        feed({**frames[2], NAMES.left_image: bad_image}, None)
        info = frames[3][NAMES.left_info]
        lost = dataclasses.replace(info, header=dataclasses.replace(info.header, frame_id="camera_nowhere"))
        feed({**frames[3], NAMES.left_info: lost}, None)
        assert node.drops["bad_image"] == 1 and node.drops["missing_tf"] == 1
        warnings = log.messages("warning")
        assert any("yuv422" in m for m in warnings), warnings
        assert any("camera_nowhere <- velo_link" in m for m in warnings), warnings
        # ... and the next good set still goes through
        feed(frames[4], 3)
        assert stamp_to_ns(grid_pub.msgs[2].header.stamp) == stamps[4]
        assert node.worker.stats().processed == 3

        diagnostics.callback()
        (status,) = diag.msgs[-1].status
        values = {kv.key: kv.value for kv in status.values}
        assert status.level == FAKE_NS.DiagnosticStatus.OK and status.message == "running"
        assert status.name == "ssc_node: semantic scene completion"
        assert values["processed"] == "3" and values["received_sets"] == "5"
        assert values["drops.bad_image"] == "1" and values["drops.missing_tf"] == "1"
        assert values["inference_errors"] == "0"
    finally:
        node.destroy_node()
    assert node.destroyed and not node.worker.running


def test_ssc_node_of_a_lidar_only_model_subscribes_to_the_cloud_alone_and_needs_no_camera(
        fake_ros, sequence, tmp_path):
    cfg = {"model": {"name": LIDAR_POINTS_MODEL_NAME},
           "data": {"grid": MODEL_GRID.to_dict(), "use_left_image": False, "points": {"source": "lidar"}}}
    checkpoint = save_checkpoint(tmp_path / "lidar.pt", LidarPointsModel(cfg), cfg, SEMANTIC_KITTI, MODEL_GRID)
    node, frames = start_ssc_node(fake_ros, checkpoint, sequence)
    try:
        assert node.input_names == ["points"]
        assert [s.sub.topic for s in node.subs] == [NAMES.cloud]
        assert not {NAMES.left_image, NAMES.left_info} & {s.topic for s in node.subscriptions}
        grid_pub = node.publisher("/ssc_node/occupancy_grid")
        for i in (0, 1):
            for topic in (NAMES.tf, NAMES.cloud):
                deliver(node, topic, frames[i][topic])
            node.timer("_on_intake").callback()
            assert wait_for(lambda i=i: len(grid_pub.msgs) == i + 1 and node.worker.idle), node.get_logger().records
        assert [stamp_to_ns(m.header.stamp) for m in grid_pub.msgs] == [
            stamp_to_ns(frames[i][NAMES.cloud].header.stamp) for i in (0, 1)]
        assert not any(target.startswith("camera") for target, _, _ in node.tf_buffer.lookups)
    finally:
        node.destroy_node()


def test_ssc_node_without_latch_builds_outputs_only_for_subscribers_and_clears_the_window_on_a_jump_back(
        fake_ros, checkpoint, sequence):
    node, frames = start_ssc_node(fake_ros, checkpoint, sequence, **{
        "outputs.latch": False, "outputs.cloud": False, "input.qos": "reliable", "window.reset_after_s": 0.15})
    try:
        inputs = {s.topic: s for s in node.subscriptions}
        assert inputs[NAMES.cloud].qos.reliability == ReliabilityPolicy.RELIABLE and inputs[NAMES.cloud].qos.depth == 5
        topics = {p.topic for p in node.publishers}
        assert "/ssc_node/voxel_cloud" not in topics and node.pub_cloud is None
        voxels, grid_pub = node.publisher("/ssc_node/voxels"), node.publisher("/ssc_node/occupancy_grid")
        assert voxels.qos.durability == DurabilityPolicy.VOLATILE
        grid_pub.subscribers = 1
        run_set(node, frames[3], 1)
        assert len(grid_pub.msgs) == 1 and voxels.msgs == []  # nobody listens to ~/voxels: not even built
        run_set(node, frames[0], 2)  # 0.3 s back > window.reset_after_s: a restarted replay
        assert "input time jumped back: temporal window cleared" in node.get_logger().messages("info")
        assert [stamp_to_ns(m.header.stamp) for m in grid_pub.msgs] == [
            stamp_to_ns(frames[i][NAMES.left_image].header.stamp) for i in (3, 0)]
    finally:
        node.destroy_node()
    assert not node.worker.running


class FailingPredictor:
    """The checkpoint's Predictor whose predict always raises (a model failing on every frame)."""

    def __init__(self, checkpoint: Path) -> None:
        from ssc_core.inference.predictor import Predictor

        self.inner = Predictor.from_checkpoint(checkpoint, device="cpu")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.__dict__["inner"], name)

    def predict(self, window: Any) -> Any:
        raise RuntimeError("CUDA out of memory (simulated)")


def test_ssc_node_keeps_running_when_the_model_fails_and_diagnostics_say_error(fake_ros, checkpoint, sequence):
    node, frames = start_ssc_node(fake_ros, checkpoint, sequence, FailingPredictor(checkpoint))
    try:
        run_set(node, frames[0], 1)
        run_set(node, frames[1], 2)
        assert node.worker.stats().errors == 2 and node.publisher("/ssc_node/voxels").msgs == []
        failures = [m for m in node.get_logger().messages("warning") if "inference/output failed" in m]
        assert len(failures) == 1 and "RuntimeError: CUDA out of memory" in failures[0]  # rate-limited: once
        node.timer("_on_diagnostics").callback()
        (status,) = node.publisher("/diagnostics").msgs[-1].status
        assert status.level == FAKE_NS.DiagnosticStatus.ERROR and status.message == "no prediction succeeded"
        assert {kv.key: kv.value for kv in status.values}["inference_errors"] == "2"
    finally:
        node.destroy_node()
    assert not node.worker.running


def test_ssc_node_refuses_an_override_of_another_type_and_an_unknown_input_qos(fake_ros, checkpoint):
    base = {"model.checkpoint": str(checkpoint), "model.device": "cpu"}
    with pytest.raises(SSCError, match=r"tf.wait_s must be of type float .*write 2.0"):  # 1 is an integer
        fake_ros.ssc_node.SSCNode(parameter_overrides=[Parameter(k, value=v) for k, v in
                                                       {**base, "tf.wait_s": 1}.items()])
    with pytest.raises(SSCError, match="input.qos"):
        fake_ros.ssc_node.SSCNode(parameter_overrides=[Parameter(k, value=v) for k, v in
                                                       {**base, "input.qos": "fast"}.items()])


def test_ssc_node_sets_torch_threads_from_model_num_threads_and_refuses_a_negative_count(fake_ros, checkpoint):
    base = {"model.checkpoint": str(checkpoint), "model.device": "cpu"}
    before = torch.get_num_threads()
    try:
        wanted = 1 if before != 1 else 2
        node = fake_ros.ssc_node.SSCNode(parameter_overrides=[Parameter(k, value=v) for k, v in
                                                              {**base, "model.num_threads": wanted}.items()])
        node.destroy_node()
        assert torch.get_num_threads() == wanted
        with pytest.raises(SSCError, match="num-threads must be >= 1"):
            fake_ros.ssc_node.SSCNode(parameter_overrides=[Parameter(k, value=v) for k, v in
                                                           {**base, "model.num_threads": -1}.items()])
    finally:
        torch.set_num_threads(before)


class RecordingPredictor:
    """A predictor that keeps every window it is asked to predict and passes everything else through."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.windows = inner, []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def predict(self, window: Any) -> Any:
        self.windows.append(window)
        return self.inner.predict(window)


def random_checkpoint(path: Path, cfg: dict) -> tuple[Path, GridSpec]:
    """``cfg``'s model with its random initial weights saved as ssc-train saves a checkpoint (SemanticKITTI
    classes, the config's grid) at ``path``; returns (path, grid)."""
    from ssc_core.models import build_model

    grid = GridSpec.from_dict(cfg["data"]["grid"])
    return save_checkpoint(path, build_model(cfg), cfg, SEMANTIC_KITTI, grid), grid


def test_ssc_node_runs_an_htcl_checkpoint_on_stereo_sets_with_its_keyframe_history(fake_ros, sequence, tmp_path,
                                                                                    one_thread):
    """What ``kitti_replay.launch.py checkpoint:=htcl.pt model_config:=htcl_tiny`` starts: the node takes both
    images and no cloud, predicts every 10 Hz frame on HTCL's grid, and the -0.5 s keyframe slot holds the frame
    half a second back once there is one (the current frame before)."""
    from ssc_core.config import load_config
    from ssc_ros.pipeline.predictor_setup import build_predictor

    path, grid = random_checkpoint(tmp_path / "htcl_tiny.pt", load_config("htcl_tiny"))
    predictor = RecordingPredictor(build_predictor(str(path), config="htcl_tiny", device="cpu"))
    node, frames = start_ssc_node(fake_ros, path, sequence, predictor, **{
        "model.config": "htcl_tiny", "topics.image_right": NAMES.right_image,
        "topics.camera_info_right": NAMES.right_info})
    try:
        assert node.input_names == ["image", "camera_info", "image_right", "camera_info_right"]
        assert NAMES.cloud not in {s.topic for s in node.subscriptions}
        grid_pub = node.publisher("/ssc_node/occupancy_grid")
        for i, msgs in enumerate(frames):
            deliver(node, NAMES.right_image, msgs[NAMES.right_image])
            deliver(node, NAMES.right_info, msgs[NAMES.right_info])
            run_set(node, msgs, processed=i + 1)
        assert node.worker.stats().errors == 0 and len(grid_pub.msgs) == len(frames)
        assert (grid_pub.msgs[-1].info.width, grid_pub.msgs[-1].info.height) == grid.dims[:2]
        stamps = [stamp_to_ns(f[NAMES.left_image].header.stamp) for f in frames]
        windows = [[f.stamp_ns for f in w.frames] for w in predictor.windows]
        assert round((stamps[5] - stamps[0]) / 1e9, 3) == 0.5
        assert windows[0] == [stamps[0]] * 4
        assert windows[5] == [stamps[5], stamps[5], stamps[0], stamps[5]]
        assert all(w.current.image_right is not None for w in predictor.windows)
    finally:
        node.destroy_node()


@pytest.mark.parametrize("name", ["l2cocc_l", "l2cocc_c", "l2cocc_d"])
def test_ssc_node_runs_l2cocc_l_on_the_lidar_alone_and_l2cocc_c_and_d_on_the_stereo_pair(
        name, fake_ros, sequence, tmp_path, one_thread):
    """Issue 13 live: the L2COcc-L teacher subscribes to the cloud alone and predicts from LiDAR-only sets (no
    image is ever sent); L2COcc-C and the -D student subscribe to both images (SGBM stereo depth) and no cloud
    (-D's config's LiDAR points feed its teacher in training only), and -D runs without the teacher checkpoint
    its config names. The ``_tiny`` configs with random weights on the L2COcc test grid (64 x 64 x 8) and the
    sequence's 64 x 32 images."""
    from ssc_core.config import load_config
    from ssc_ros.pipeline.predictor_setup import build_predictor

    data = {"grid": L2COCC_GRID, "image_crop": [IMAGE_SIZE[1], IMAGE_SIZE[0]]}
    teacher = tmp_path / "teacher" / "best.pt"  # never written
    overrides = {"data": data}
    if name != "l2cocc_l":  # 64 x 32 images: 16 SGBM disparities leave valid columns, a 4 x 8 map a 3 x 3 kernel
        data["stereo_depth"] = {"source": "stereo_sgbm", "sgbm": {"num_disparities": 16}}
        overrides["model"] = {"aggregation": {"kernel": 3}}
    if name == "l2cocc_d":
        overrides["distill"] = {"teacher_checkpoint": str(teacher)}
    path, grid = random_checkpoint(tmp_path / f"{name}.pt", load_config(f"{name}_tiny", overrides))
    predictor = RecordingPredictor(build_predictor(str(path), device="cpu"))
    node, frames = start_ssc_node(fake_ros, path, sequence, predictor, **{
        "topics.image_right": NAMES.right_image, "topics.camera_info_right": NAMES.right_info})
    cameras = [NAMES.left_image, NAMES.left_info, NAMES.right_image, NAMES.right_info]
    if name == "l2cocc_l":
        inputs, topics = ["points"], [NAMES.cloud]
    else:
        inputs, topics = ["image", "camera_info", "image_right", "camera_info_right"], cameras
    try:
        assert node.input_names == inputs
        assert [s.sub.topic for s in node.subs] == topics
        subscribed = {s.topic for s in node.subscriptions}
        assert not ({NAMES.cloud, *cameras} - set(topics)) & subscribed
        grid_pub, stats = node.publisher("/ssc_node/occupancy_grid"), node.worker.stats
        for i in (0, 1):
            for topic in (NAMES.tf, *topics):
                deliver(node, topic, frames[i][topic])
            node.timer("_on_intake").callback()
            assert wait_for(lambda i=i: stats().processed + stats().errors == i + 1 and node.worker.idle), stats()
        assert stats().errors == 0, node.get_logger().messages("warning")
        assert [stamp_to_ns(m.header.stamp) for m in grid_pub.msgs] == [
            stamp_to_ns(frames[i][topics[0]].header.stamp) for i in (0, 1)]
        assert all((m.info.width, m.info.height) == grid.dims[:2] == (64, 64) for m in grid_pub.msgs)
        current = [w.current for w in predictor.windows]
        if name == "l2cocc_l":
            assert all(f.image_left is None and f.points_velo is not None for f in current)
            assert not any(target.startswith("camera") for target, _, _ in node.tf_buffer.lookups)
        else:
            assert all(f.image_right is not None and f.points_velo is None for f in current)
        if name == "l2cocc_d":
            assert load_checkpoint(path)["config"]["distill"]["teacher_checkpoint"] == str(teacher)
            assert not teacher.exists()
    finally:
        node.destroy_node()


def test_ssc_node_main_spins_until_interrupted_and_reports_a_missing_checkpoint(fake_ros, checkpoint, capsys):
    main = fake_ros.ssc_node.main
    assert main(["--ros-args", "-p", f"model.checkpoint:={checkpoint}", "-p", "model.device:=cpu"]) == 0
    (node,) = SPUN
    assert isinstance(node, fake_ros.ssc_node.SSCNode) and node.destroyed and not node.worker.running
    assert CONTEXT.shutdowns == 1 and not CONTEXT.initialised
    assert main([]) == 2
    assert "model.checkpoint is required" in capsys.readouterr().err
    assert CONTEXT.shutdowns == 2


# ========================================================================================= kitti_replay_node
def tick(node: Node) -> None:
    """One timer tick of the replay node once its reader thread has the next frame ready (or has finished)."""
    assert node.reader.wait()
    node.timers[0].callback()


def test_replay_node_publishes_each_frame_per_tick_skips_a_corrupt_one_and_finishes(fake_ros, sequence, tmp_path):
    import shutil

    seq_dir = tmp_path / "sequences" / "00"
    shutil.copytree(sequence, seq_dir)
    (seq_dir / "image_2" / "000003.png").write_bytes(b"not a png")
    node = fake_ros.kitti_replay_node.KittiReplayNode(
        parameter_overrides=[Parameter("sequence_dir", value=str(seq_dir)), Parameter("rate", value=2.0)])
    log = node.get_logger()
    assert {n: d.description for n, d in node.descriptors.items()} == {
        s.name: s.description for s in REPLAY_NODE_PARAMS}
    # /tf_static is published once at start, latched; the timer runs on the steady clock at rate x 10 Hz
    tf_static = node.publisher(NAMES.tf_static)
    assert len(tf_static.msgs) == 1 and tf_static.qos.durability == DurabilityPolicy.TRANSIENT_LOCAL
    assert {t.child_frame_id for t in tf_static.msgs[0].transforms} == {
        "camera_gray_left", "camera_color_left", "camera_color_right"}
    (timer,) = node.timers
    assert timer.period_s == pytest.approx(0.05) and timer.clock.clock_type == ClockType.STEADY_TIME

    for _ in range(FRAMES):
        tick(node)
    assert log.messages("error") and "skipping frame 3" in log.messages("error")[0]
    published = [0, 1, 2, 4, 5]
    per_frame = (NAMES.clock, NAMES.tf, NAMES.left_image, NAMES.left_info, NAMES.right_image, NAMES.right_info,
                 NAMES.cloud)
    stamps = [1_000_000_000 + 100_000_000 * i for i in published]
    for topic in per_frame:
        msgs = node.publisher(topic).msgs
        got = [stamp_to_ns(m.clock if topic == NAMES.clock else
                           (m.transforms[0].header if topic == NAMES.tf else m.header).stamp) for m in msgs]
        assert got == stamps, topic
    assert node.publisher(NAMES.tf).qos.depth == 100
    image = node.publisher(NAMES.left_image).msgs[0]
    assert image_to_rgb(image).shape == (IMAGE_SIZE[1], IMAGE_SIZE[0], 3)
    assert image.header.frame_id == "camera_color_left"
    assert len(pointcloud2_to_xyzi(node.publisher(NAMES.cloud).msgs[0])) > 0
    gt = node.publisher(NAMES.gt_voxels)
    assert gt.qos.durability == DurabilityPolicy.TRANSIENT_LOCAL
    assert [stamp_to_ns(m.markers[-1].header.stamp) for m in gt.msgs] == [stamps[0], stamps[-1]]
    assert all(m.ns.startswith("gt/") for m in gt.msgs[0].markers if m.action == 0)

    tick(node)  # past the last frame, no loop: finished
    assert timer.is_canceled() and "replay finished" in log.messages("info")
    node.destroy_node()


def test_replay_node_loops_with_time_going_on(fake_ros, sequence):
    node = fake_ros.kitti_replay_node.KittiReplayNode(parameter_overrides=[
        Parameter("sequence_dir", value=str(sequence)), Parameter("end_frame", value=2),
        Parameter("loop", value=True), Parameter("publish_ground_truth", value=False),
        Parameter("publish_right", value=False), Parameter("publish_clock", value=False)])
    for _ in range(5):
        tick(node)
    stamps = [stamp_to_ns(m.header.stamp) for m in node.publisher(NAMES.left_image).msgs]
    assert len(stamps) == 5 and all(b > a for a, b in zip(stamps, stamps[1:]))
    images = [image_to_rgb(m) for m in node.publisher(NAMES.left_image).msgs]
    assert np.array_equal(images[0], images[2]) and np.array_equal(images[1], images[3])  # frames 0, 1, 0, 1, 0
    topics = {p.topic for p in node.publishers}
    assert not topics & {NAMES.clock, NAMES.right_image, NAMES.gt_voxels} and not node.timers[0].is_canceled()


def test_replay_node_publishes_frames_without_ground_truth_of_another_grid_and_warns_once(fake_ros, sequence):
    node = fake_ros.kitti_replay_node.KittiReplayNode(parameter_overrides=[
        Parameter("sequence_dir", value=str(sequence)), Parameter("grid.dims", value=[128, 128, 16]),
        Parameter("grid.voxel_size", value=0.4)])
    for _ in range(FRAMES):
        tick(node)
    assert len(node.publisher(NAMES.left_image).msgs) == FRAMES  # frames 0 and 5 keep their sensor messages
    assert NAMES.gt_voxels not in {p.topic for p in node.publishers}
    warnings = [m for m in node.get_logger().messages("warning") if "ground truth left out" in m]
    assert len(warnings) == 1 and "frame 0" in warnings[0] and "grid.dims" in warnings[0]


def test_replay_node_main_spins_and_reports_bad_parameters(fake_ros, sequence, capsys):
    main = fake_ros.kitti_replay_node.main
    assert main(["--ros-args", "-p", f"sequence_dir:={sequence}", "-p", "rate:=5.0"]) == 0
    (node,) = SPUN
    assert node.p["rate"] == 5.0 and node.timers[0].period_s == pytest.approx(0.02) and node.destroyed
    assert main([]) == 2
    assert "sequence_dir is required" in capsys.readouterr().err
    assert main(["--ros-args", "-p", f"sequence_dir:={sequence}", "-p", "rate:=0.0"]) == 2
    assert "rate must be > 0" in capsys.readouterr().err
    assert main(["--ros-args", "-p", f"sequence_dir:={sequence}", "-p", "grid.voxel_size:=0.0"]) == 2
    err = capsys.readouterr().err
    assert "grid.* parameters" in err and "voxel_size must be > 0" in err
    assert CONTEXT.shutdowns == 4
