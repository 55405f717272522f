"""The offline ROS 2 path, no ROS installation needed (rosbags): KITTI sequence -> bag, bag -> pipeline -> bag.

- ``kitti2bag``: a SemanticKITTI-layout sequence (real or synthetic) as a ROS 2 bag with exactly the topics,
  frames, stamps and QoS the live replay node publishes (the records come from ``ssc_ros.replay``, the
  messages from ``ssc_ros.messages``).
- ``run``: reads a bag, feeds it through the same FrameSynchronizer, TemporalBuffer, Predictor and
  OutputBuilder as ``ssc_node`` and writes a bag holding the input topics plus the node's output topics under
  their live names. Every synchronised set is processed, in stamp order (offline there is no reason to drop).

Bags are written as rosbag2 version 8 (Humble reads it; QoS profiles as Humble writes them), MCAP by default,
sqlite3 on request. A bag is a folder: ``--output out/run.mcap`` writes the folder ``out/run/`` holding
``run.mcap`` and ``metadata.yaml`` (``ros2 bag play out/run`` or open ``out/run/run.mcap`` in Foxglove). The
writer is closed in ``finally``, so what was written before an error stays a readable bag. Every failure of a
bag file (missing, corrupt, truncated, unknown message types, missing topics) is a ``DataFormatError`` naming
the bag and what is wrong.
"""

from __future__ import annotations

import bisect
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy.spatial.transform import Rotation, Slerp
from tqdm import tqdm

from ssc_core.errors import ConfigError, DataFormatError, SSCError
from ssc_core.types import GridSpec
from ssc_ros.messages import make_float64, rosbags_namespace, stamp_to_ns, transform_to_matrix
from ssc_ros.pipeline.health import DropCounter
from ssc_ros.pipeline.inputs import FrameAssembler
from ssc_ros.pipeline.outputs import OutputBuilder
from ssc_ros.pipeline.sync import FrameSynchronizer, SyncedSet
from ssc_ros.pipeline.temporal_buffer import PushResult, TemporalBuffer
from ssc_ros.replay import GroundTruthMarkers, KittiSequence, ReplayNames, replay_messages, static_messages

STORAGE_SUFFIXES = {"mcap": ".mcap", "sqlite3": ".db3"}
BAG_VERSION = 8  # rosbag2 metadata version 8: QoS as a YAML string, as Humble writes it


# ------------------------------------------------------------------------------------------------- paths
def output_bag_dir(path: str | Path, storage: str | None = None) -> tuple[Path, str]:
    """Where a bag named ``path`` goes and in which storage: ``x.mcap`` -> (folder ``x``, 'mcap'), ``x.db3`` ->
    (``x``, 'sqlite3'), ``x`` -> (``x``, storage or 'mcap'). ConfigError when the suffix contradicts
    ``storage``; DataFormatError when the folder already exists (rosbag2 never overwrites)."""
    path = Path(path)
    by_suffix = {suffix: name for name, suffix in STORAGE_SUFFIXES.items()}
    if storage is not None and storage not in STORAGE_SUFFIXES:
        raise ConfigError(f"unknown bag storage {storage!r}; choose one of {sorted(STORAGE_SUFFIXES)}")
    if path.suffix in by_suffix:
        if storage is not None and by_suffix[path.suffix] != storage:
            raise ConfigError(f"output {path} has suffix {path.suffix} but storage {storage!r} was asked for")
        storage, path = by_suffix[path.suffix], path.with_suffix("")
    storage = storage or "mcap"
    if path.exists():
        raise DataFormatError(f"output bag {path} already exists; remove it or choose another --output")
    return path, storage


def input_bag_dir(path: str | Path) -> Path:
    """The bag folder of ``path``: the folder itself, or the folder of its ``metadata.yaml`` / ``.mcap`` /
    ``.db3`` file, or ``x`` for ``x.mcap`` when that is how ``output_bag_dir`` named it."""
    path = Path(path)
    if path.is_dir():
        return path
    if path.is_file() and (path.name == "metadata.yaml" or path.suffix in STORAGE_SUFFIXES.values()):
        if not (path.parent / "metadata.yaml").is_file():
            raise DataFormatError(
                f"{path}: no metadata.yaml beside it; a ROS 2 bag is a folder (`ros2 bag reindex` rebuilds it)"
            )
        return path.parent
    if path.suffix in STORAGE_SUFFIXES.values() and path.with_suffix("").is_dir():
        return path.with_suffix("")
    raise DataFormatError(f"input bag {path} not found (expected a bag folder or its .mcap/.db3 file)")


# ------------------------------------------------------------------------------------------------ writing
@dataclass(frozen=True)
class QosSpec:
    """An offered QoS profile: reliability 'reliable'|'best_effort', durability 'volatile'|'transient_local',
    depth (KEEP_LAST)."""

    reliability: str = "reliable"
    durability: str = "volatile"
    depth: int = 10


def to_rosbags_qos(spec: Any) -> Any:
    """A ``rosbags.interfaces.Qos`` from anything with ``reliability``, ``durability`` and ``depth``
    attributes (strings as in QosSpec, case-insensitive)."""
    from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime

    reliability = {"reliable": QosReliability.RELIABLE, "best_effort": QosReliability.BEST_EFFORT}
    durability = {"volatile": QosDurability.VOLATILE, "transient_local": QosDurability.TRANSIENT_LOCAL}
    rel, dur = str(spec.reliability).lower(), str(spec.durability).lower()
    if rel not in reliability or dur not in durability:
        raise ConfigError(
            f"QoS {spec}: reliability must be one of {sorted(reliability)}, durability one of {sorted(durability)}"
        )
    zero = QosTime(sec=0, nsec=0)
    return Qos(
        QosHistory.KEEP_LAST,
        int(spec.depth),
        reliability[rel],
        durability[dur],
        zero,
        zero,
        QosLiveliness.AUTOMATIC,
        zero,
        False,
    )


class BagWriter:
    """Writes messages to a new ROS 2 bag; topics (connections) are added on first use.

    path/storage: see ``output_bag_dir``; typestore: the rosbags typestore the messages were built from (their
    definitions go into the bag). Use as a context manager: the bag is closed (metadata written) on exit, also
    when an exception is raised, so everything written so far stays readable.
    """

    def __init__(self, path: str | Path, typestore: Any, storage: str | None = None, version: int = BAG_VERSION):
        from rosbags.rosbag2 import StoragePlugin, Writer

        self.path, self.storage = output_bag_dir(path, storage)
        self.typestore = typestore
        plugin = StoragePlugin.MCAP if self.storage == "mcap" else StoragePlugin.SQLITE3
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = Writer(self.path, version=version, storage_plugin=plugin)
        self._connections: dict[str, Any] = {}
        self.counts: dict[str, int] = {}
        self._open = False

    @property
    def storage_file(self) -> Path:
        """The storage file inside the bag folder (``<bag>/<bag>.mcap`` or ``.db3``)."""
        return self.path / f"{self.path.name}{STORAGE_SUFFIXES[self.storage]}"

    def __enter__(self) -> BagWriter:
        self._writer.open()
        self._open = True
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Finish the bag (idempotent)."""
        if self._open:
            self._open = False
            self._writer.close()

    def connection(
        self, topic: str, msgtype: str, qos: Any = None, msgdef: str | None = None, rihs01: str | None = None
    ) -> Any:
        """The connection of ``topic``, added on first use with ``msgtype`` and offered ``qos`` (QosSpec-like or
        a rosbags Qos); the definition comes from the typestore unless ``msgdef`` and ``rihs01`` (type hash)
        are given (types copied from another bag). ConfigError if the topic is reused with another type."""
        from rosbags.interfaces import Qos

        conn = self._connections.get(topic)
        if conn is None:
            qos_list = [] if qos is None else list(qos) if isinstance(qos, list | tuple) else [qos]
            profiles = [q if isinstance(q, Qos) else to_rosbags_qos(q) for q in qos_list]
            kwargs = {"msgdef": msgdef, "rihs01": rihs01} if msgdef is not None else {"typestore": self.typestore}
            conn = self._writer.add_connection(topic, msgtype, offered_qos_profiles=profiles, **kwargs)
            self._connections[topic] = conn
            self.counts[topic] = 0
        elif conn.msgtype != msgtype:
            raise ConfigError(f"bag {self.path}: topic {topic} already holds {conn.msgtype}, not {msgtype}")
        return conn

    def write(self, topic: str, msgtype: str, stamp_ns: int, msg: Any, qos: Any = None) -> None:
        """Serialise ``msg`` (a typestore message of ``msgtype``) and write it at ``stamp_ns`` (receive time)."""
        self.write_raw(topic, msgtype, stamp_ns, self.typestore.serialize_cdr(msg, msgtype), qos)

    def write_raw(
        self,
        topic: str,
        msgtype: str,
        stamp_ns: int,
        data: bytes,
        qos: Any = None,
        msgdef: str | None = None,
        rihs01: str | None = None,
    ) -> None:
        """Write already serialised CDR ``data`` (copying a message from another bag; ``msgdef``/``rihs01`` give
        its type's definition and hash when the typestore does not know the type)."""
        self._writer.write(self.connection(topic, msgtype, qos, msgdef, rihs01), int(stamp_ns), data)
        self.counts[topic] += 1


# ------------------------------------------------------------------------------------------------ reading
@dataclass
class TopicInfo:
    """A topic of a bag: msgtype, message count, the offered QoS profiles (rosbags Qos) and the stored
    message definition and type hash (to copy the topic into another bag)."""

    msgtype: str
    count: int
    qos: list = field(default_factory=list)
    msgdef: str | None = None
    digest: str | None = None


@dataclass
class RawMessage:
    """One message as stored: topic, msgtype, receive stamp (ns) and CDR bytes."""

    topic: str
    msgtype: str
    stamp_ns: int
    data: bytes


class BagReader:
    """Reads a ROS 2 bag (MCAP or sqlite3) and decodes it with ``typestore``; every failure of the file
    (missing, not a bag, corrupt, truncated, undecodable) is a DataFormatError naming the bag."""

    def __init__(self, path: str | Path, typestore: Any):
        from rosbags.rosbag2 import Reader

        self.path = input_bag_dir(path)
        self.typestore = typestore
        if not (self.path / "metadata.yaml").is_file():
            hint = (
                " (`ros2 bag reindex` rebuilds it)"
                if any(self.path.glob("*.mcap")) or any(self.path.glob("*.db3"))
                else ""
            )
            raise DataFormatError(f"bag {self.path}: no metadata.yaml, not a finished ROS 2 bag{hint}")
        try:
            self._reader = Reader(self.path)
            self._reader.open()
        except Exception as exc:  # rosbags raises many types (ReaderError, OSError, sqlite, struct, yaml)
            raise DataFormatError(f"bag {self.path}: cannot open ({type(exc).__name__}: {exc})") from None

    def __enter__(self) -> BagReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the bag."""
        self._reader.close()

    @property
    def topics(self) -> dict[str, TopicInfo]:
        """{topic: TopicInfo} of every topic in the bag."""
        out: dict[str, TopicInfo] = {}
        for conn in self._reader.connections:
            qos = list(getattr(conn.ext, "offered_qos_profiles", []) or [])
            msgdef = getattr(conn.msgdef, "data", None) if conn.msgdef is not None else None
            if conn.topic in out:
                out[conn.topic].count += conn.msgcount
            else:
                out[conn.topic] = TopicInfo(conn.msgtype, conn.msgcount, qos, msgdef, conn.digest or None)
        return out

    def require(self, topics: Iterable[str], what: str = "") -> None:
        """DataFormatError listing the topics (and the bag's topics) when any of ``topics`` is missing."""
        have = self.topics
        missing = [t for t in topics if t not in have]
        if missing:
            need = f" needed {what}" if what else ""
            raise DataFormatError(f"bag {self.path}: missing topic(s) {missing}{need}; the bag has {sorted(have)}")

    def check_types(self, topics: Iterable[str]) -> None:
        """DataFormatError when a topic's message type is not known to the typestore (cannot be decoded)."""
        have = self.topics
        for topic in topics:
            msgtype = have[topic].msgtype
            if msgtype not in self.typestore.types:
                raise DataFormatError(f"bag {self.path}: topic {topic} has unknown message type {msgtype}")

    def raw_messages(self, topics: Iterable[str] | None = None) -> Iterator[RawMessage]:
        """Stored messages in receive-time order (all topics, or only ``topics``)."""
        wanted = None if topics is None else set(topics)
        conns = [c for c in self._reader.connections if wanted is None or c.topic in wanted]
        try:
            for conn, stamp, data in self._reader.messages(connections=conns):
                yield RawMessage(conn.topic, conn.msgtype, int(stamp), bytes(data))
        except SSCError:
            raise
        except Exception as exc:
            raise DataFormatError(f"bag {self.path}: cannot read messages ({type(exc).__name__}: {exc})") from None

    def decode(self, raw: RawMessage) -> Any:
        """The message object of a RawMessage (DataFormatError for unknown types or undecodable bytes)."""
        if raw.msgtype not in self.typestore.types:
            raise DataFormatError(f"bag {self.path}: topic {raw.topic} has unknown message type {raw.msgtype}")
        try:
            return self.typestore.deserialize_cdr(raw.data, raw.msgtype)
        except Exception as exc:
            raise DataFormatError(
                f"bag {self.path}: cannot decode a {raw.msgtype} on {raw.topic} at {raw.stamp_ns} ns "
                f"({type(exc).__name__}: {exc})"
            ) from None


# ------------------------------------------------------------------------------------------------ TF
class TransformHistory:
    """The /tf and /tf_static transforms of a bag, for lookups at a stamp (what tf2's buffer does live).

    Dynamic transforms are interpolated between the two nearest stamps (linear translation, slerp rotation);
    outside their time range a lookup only succeeds within ``tolerance_ns`` of the first/last stamp.
    """

    def __init__(self, tolerance_ns: int = 10_000_000) -> None:
        self.tolerance_ns = int(tolerance_ns)
        self._static: dict[str, tuple[str, np.ndarray]] = {}  # child -> (parent, T_parent_child)
        self._dynamic: dict[str, tuple[str, list[int], list[np.ndarray]]] = {}

    def add(self, tf_message: Any, static: bool) -> None:
        """Store every TransformStamped of a tf2_msgs/TFMessage (static: from /tf_static)."""
        for t in tf_message.transforms:
            parent, child = t.header.frame_id.lstrip("/"), t.child_frame_id.lstrip("/")
            T = transform_to_matrix(t.transform, f"transform {parent} <- {child}")
            if static:
                self._static[child] = (parent, T)
                continue
            _, stamps, mats = self._dynamic.setdefault(child, (parent, [], []))
            stamp = stamp_to_ns(t.header.stamp)
            pos = bisect.bisect_left(stamps, stamp)
            if pos < len(stamps) and stamps[pos] == stamp:
                mats[pos] = T
            else:
                stamps.insert(pos, stamp)
                mats.insert(pos, T)

    @property
    def latest_dynamic_ns(self) -> int | None:
        """Newest stamp of any dynamic transform (None without any)."""
        ends = [stamps[-1] for _, stamps, _ in self._dynamic.values() if stamps]
        return max(ends) if ends else None

    def _parent_at(self, child: str, stamp_ns: int) -> tuple[str, np.ndarray] | None:
        if child in self._static:
            return self._static[child]
        if child not in self._dynamic:
            return None
        parent, stamps, mats = self._dynamic[child]
        pos = bisect.bisect_left(stamps, stamp_ns)
        if pos < len(stamps) and stamps[pos] == stamp_ns:
            return parent, mats[pos]
        if pos == 0 or pos == len(stamps):
            near = 0 if pos == 0 else len(stamps) - 1
            return (parent, mats[near]) if abs(stamps[near] - stamp_ns) <= self.tolerance_ns else None
        t0, t1 = stamps[pos - 1], stamps[pos]
        a = (stamp_ns - t0) / (t1 - t0)
        T = np.eye(4)
        rotations = Rotation.from_matrix(np.stack([mats[pos - 1][:3, :3], mats[pos][:3, :3]]))
        T[:3, :3] = Slerp([0.0, 1.0], rotations)(a).as_matrix()
        T[:3, 3] = (1 - a) * mats[pos - 1][:3, 3] + a * mats[pos][:3, 3]
        return parent, T

    def _to_root(self, frame: str, stamp_ns: int) -> dict[str, np.ndarray]:
        """{ancestor: T_ancestor_frame} for the frame itself and every ancestor reachable at the stamp."""
        chain = {frame: np.eye(4)}
        T, current = np.eye(4), frame
        while len(chain) < 64:
            link = self._parent_at(current, stamp_ns)
            if link is None or link[0] in chain:
                break
            current, T = link[0], link[1] @ T
            chain[current] = T
        return chain

    def lookup(self, target: str, source: str, stamp_ns: int) -> np.ndarray | None:
        """(4, 4) T_target_source at ``stamp_ns`` (maps source coordinates into target), or None when the
        frames are not connected at that time."""
        target, source = target.lstrip("/"), source.lstrip("/")
        up_source = self._to_root(source, stamp_ns)
        up_target = self._to_root(target, stamp_ns)
        common = next((f for f in up_source if f in up_target), None)
        if common is None:
            return None
        return np.linalg.inv(up_target[common]) @ up_source[common]


# ------------------------------------------------------------------------------------------- kitti2bag
# Offered QoS per topic as kitti_replay_node publishes it (and `ros2 bag play` re-offers it): sensor streams
# reliable depth 5 (RViz and the best-effort ssc_node subscriptions both match), /tf reliable depth 100, the
# static TF and the GT voxels latched (reliable, transient local, depth 1).
SENSOR_QOS = QosSpec("reliable", "volatile", 5)
TF_QOS = QosSpec("reliable", "volatile", 100)
LATCHED_QOS = QosSpec("reliable", "transient_local", 1)


def replay_qos(topic: str, names: ReplayNames | None = None) -> QosSpec:
    """The offered QoS of a replay topic in a bag."""
    names = names or ReplayNames()
    if topic in (names.tf_static, names.gt_voxels):
        return LATCHED_QOS
    if topic == names.tf:
        return TF_QOS
    return SENSOR_QOS


@dataclass
class BagSummary:
    """What a bag command wrote: the bag folder, its storage file, messages per topic, frames and time span."""

    path: Path
    storage_file: Path
    counts: dict[str, int]
    frames: int
    first_stamp_ns: int | None = None
    last_stamp_ns: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def kitti2bag(
    sequence_dir: str | Path,
    output: str | Path,
    storage: str | None = None,
    distro: str = "humble",
    start: int = 0,
    end: int | None = None,
    with_gt: bool = True,
    with_right: bool = True,
    with_clock: bool = False,
    grid: GridSpec | None = None,
    progress: bool = True,
) -> BagSummary:
    """Write a SemanticKITTI-layout sequence folder as a ROS 2 bag with the replay node's topics, frames and
        stamps (``ssc_ros.replay``): /tf_static once, then per frame /tf, images + camera_info, the LiDAR cloud and
        the ground-truth voxels (``with_gt``, when labelled). /clock is left out unless ``with_clock`` (play the
        bag with ``ros2 bag play --clock`` instead). Frames [start, end); ``grid``: the voxel grid of the label files
    (SemanticKITTI's by default). Returns a BagSummary."""
    ns = rosbags_namespace(distro)
    names = ReplayNames()
    seq = KittiSequence(sequence_dir, start=start, end=end, load_right=with_right, load_gt=with_gt, grid=grid)
    gt_markers = GroundTruthMarkers(seq.class_set) if with_gt else None
    first_stamp = seq.stamp_ns(seq.frames[0])
    last_stamp = first_stamp
    with BagWriter(output, ns.typestore, storage) as writer:
        for topic, type_name, msg in static_messages(seq, ns, first_stamp, names):
            writer.write(topic, ns.msgtype(type_name), first_stamp, msg, replay_qos(topic, names))
        for record in tqdm(seq, total=len(seq), desc="kitti2bag", unit="frame", disable=not progress):
            messages = replay_messages(seq, record, ns, names, gt_markers, publish_clock=with_clock)
            for topic, type_name, msg in messages:
                writer.write(topic, ns.msgtype(type_name), record.stamp_ns, msg, replay_qos(topic, names))
            last_stamp = record.stamp_ns
    return BagSummary(writer.path, writer.storage_file, dict(writer.counts), len(seq), first_stamp, last_stamp)


# ------------------------------------------------------------------------------------------------- run
@dataclass(frozen=True)
class RunTopics:
    """Input topics ``run`` reads (the replay's names by default, as the launch file remaps them for ssc_node)
    and the output topics it writes (ssc_node's ``~/...`` topics resolved for the node name ``ssc_node``)."""

    image: str = ReplayNames.left_image
    camera_info: str = ReplayNames.left_info
    points: str = ReplayNames.cloud
    image_right: str = ReplayNames.right_image
    camera_info_right: str = ReplayNames.right_info
    tf: str = ReplayNames.tf
    tf_static: str = ReplayNames.tf_static
    voxels: str = "/ssc_node/voxels"
    voxel_cloud: str = "/ssc_node/voxel_cloud"
    occupancy_grid: str = "/ssc_node/occupancy_grid"
    processing_time: str = "/ssc_node/processing_time_ms"


OUTPUT_QOS = LATCHED_QOS  # ssc_node's outputs with outputs.latch (the default): reliable, transient local, depth 1
DEBUG_QOS = QosSpec("reliable", "volatile", 1)


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
        for node, section in data.items() if isinstance(data, dict) else []:
            if node.lstrip("/") in ("**", "ssc_node") and isinstance(section, dict):
                updates.update(_flatten(section.get("ros__parameters") or {}))
    updates.update(overrides or {})
    unknown = sorted(set(updates) - set(values))
    if unknown:
        raise ConfigError(f"unknown ssc_node parameter(s) {unknown}; see docs/ros.md")
    values.update(updates)
    return values


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

    The same steps as the node's intake and worker (see ssc_node.py): FrameSynchronizer -> TF at the set's
    stamp (camera <- LiDAR, fixed <- LiDAR, LiDAR <- cloud) -> FrameAssembler -> TemporalBuffer ->
    Predictor -> OutputBuilder; every set is processed (nothing is stale offline). predictor: the Predictor
    contract; params: ssc_node parameter values (``node_parameters``); topics: RunTopics; warn: log function.
    ``on_tf`` / ``on_input`` take decoded messages in bag order and return the (Prediction, processing seconds)
    pairs that became ready; ``finish`` flushes what still waits for TF at the end of the bag.
    """

    def __init__(
        self,
        predictor: Any,
        params: dict[str, Any] | None = None,
        topics: RunTopics | None = None,
        warn: Callable[[str], None] = print,
    ) -> None:
        from ssc_ros.pipeline.params import output_options

        self.predictor = predictor
        self.p = params or node_parameters()
        self.topics = topics or RunTopics()
        t = self.topics
        self.inputs = {"image": t.image, "camera_info": t.camera_info}
        if predictor.needs_points:
            self.inputs["points"] = t.points
        if predictor.needs_right_image:
            self.inputs["image_right"] = t.image_right
            self.inputs["camera_info_right"] = t.camera_info_right
        self._key_of = {topic: key for key, topic in self.inputs.items()}
        self.drops = DropCounter()
        self.sync = FrameSynchronizer(list(self.inputs), self.p["sync.slop_s"], self.p["sync.queue_size"], self.drops)
        self.assembler = FrameAssembler(
            predictor.needs_points, predictor.needs_right_image, self.drops, warn, self.p["log.period_s"]
        )
        window_kwargs = dict(
            tolerance_s=self.p["window.tolerance_s"] or None, reset_after_s=self.p["window.reset_after_s"]
        )
        if self.p["window.from_model"]:
            self.buffer = TemporalBuffer.from_frame_offsets(
                predictor.history_offsets, predictor.frame_rate_hz, **window_kwargs
            )
        else:
            self.buffer = TemporalBuffer(list(self.p["window.offsets_s"]), **window_kwargs)
        self.builder = OutputBuilder(predictor.class_set, output_options(self.p))
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

    def _lidar_frame(self, items: dict) -> str:
        if self.p["frames.lidar"]:
            return self.p["frames.lidar"]
        return items["points"].header.frame_id if "points" in items else ""

    def _ready(self, matched: SyncedSet) -> bool:
        """A set can go once its camera <- LiDAR transform is known and, with a history window, its pose is
        known or will never come (the dynamic TF has already moved past its stamp)."""
        stamp, lidar = matched.stamp_ns, self._lidar_frame(matched.items)
        if not lidar or self.tf.lookup(matched.items["camera_info"].header.frame_id, lidar, stamp) is None:
            return False
        if not self.buffer.offsets_ns or self.tf.lookup(self.p["frames.fixed"], lidar, stamp) is not None:
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
        items, stamp = matched.items, matched.stamp_ns
        lidar = self._lidar_frame(items)
        camera = items["camera_info"].header.frame_id
        T_cam_velo = self.tf.lookup(camera, lidar, stamp) if lidar else None
        if T_cam_velo is None:
            self.assembler.reject("missing_tf", f"no TF {camera} <- '{lidar}' at stamp {stamp} ns in the bag")
            return None
        T_odom_velo = self.tf.lookup(self.p["frames.fixed"], lidar, stamp) if self.buffer.offsets_ns else None
        if T_odom_velo is None and self.buffer.offsets_ns:
            if self.p["window.require_pose"]:
                self.assembler.reject("missing_pose", f"no pose {self.p['frames.fixed']} <- {lidar}")
                return None
            self.drops.drop("missing_pose")
        cloud = items.get("points")
        T_velo_cloud = None
        if cloud is not None and cloud.header.frame_id and cloud.header.frame_id != lidar:
            T_velo_cloud = self.tf.lookup(lidar, cloud.header.frame_id, stamp)
            if T_velo_cloud is None:
                self.assembler.reject("missing_tf", f"no TF {lidar} <- {cloud.header.frame_id} for the cloud")
                return None
        frame = self.assembler.assemble(
            items["image"],
            items["camera_info"],
            cloud,
            items.get("image_right"),
            items.get("camera_info_right"),
            T_cam_velo=T_cam_velo,
            T_odom_velo=T_odom_velo,
            T_velo_cloud=T_velo_cloud,
            index=self.processed,
        )
        if frame is None:
            return None
        pushed = self.buffer.push(frame)
        if pushed in (PushResult.DUPLICATE, PushResult.OUT_OF_ORDER):
            self.drops.drop(pushed.value)
            return None
        window, _ = self.buffer.window(frame)
        start = time.perf_counter()
        prediction = self.predictor.predict(window)
        elapsed = time.perf_counter() - start
        prediction.frame_id = lidar
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
) -> BagSummary:
    """Run the SSC pipeline over a bag: copy every input message to ``output`` and add ssc_node's outputs
    (voxels MarkerArray, voxel_cloud PointCloud2, occupancy_grid OccupancyGrid, processing_time_ms), stamped
    with their input's stamp. The model comes from ``checkpoint`` (``config`` checked against it and used) or a
    ready ``predictor``; node parameters from ``params_file`` (ROS YAML) and ``params`` over the node defaults.
    DataFormatError when the bag lacks a topic the model needs or /tf_static, or already holds output topics.
    Returns a BagSummary (``extra``: sets received, drops by reason)."""
    values = node_parameters(params_file, params)
    if predictor is None:
        from ssc_ros.pipeline.predictor_setup import build_predictor

        if checkpoint is None:
            raise ConfigError("ssc-bag run needs a checkpoint (--checkpoint)")
        predictor = build_predictor(str(checkpoint), str(config or ""), device, values["model.precision"])
    ns = rosbags_namespace(distro)
    pipeline = BagPipeline(predictor, values, topics, warn)
    t = pipeline.topics
    stamps: list[int] = []
    with BagReader(input_bag, ns.typestore) as reader:
        reader.require(pipeline.inputs.values(), "by the model")
        reader.require([t.tf_static], "for the camera <- LiDAR transform")
        info = reader.topics
        reader.check_types([*pipeline.inputs.values(), t.tf_static] + ([t.tf] if t.tf in info else []))
        outputs = (t.voxels, t.voxel_cloud, t.occupancy_grid, t.processing_time)
        clash = [topic for topic in outputs if topic in info]
        if clash:
            raise DataFormatError(f"bag {reader.path}: already holds output topic(s) {clash}; run on the input bag")
        with BagWriter(output, ns.typestore, storage) as writer:
            bar = tqdm(total=sum(i.count for i in info.values()), desc="ssc-bag run", unit="msg", disable=not progress)

            def write_results(results: list) -> None:
                for prediction, elapsed in results:
                    for topic, type_name, msg, qos in pipeline.output_messages(ns, prediction, elapsed):
                        writer.write(topic, ns.msgtype(type_name), prediction.stamp_ns, msg, qos)
                    stamps.append(prediction.stamp_ns)
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
