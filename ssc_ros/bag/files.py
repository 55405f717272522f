"""ROS 2 bag files through rosbags: bag folder names, QoS profiles, a writer that always leaves a readable bag,
and a reader whose every failure is a DataFormatError naming the bag.

A bag is a folder: ``out/x.mcap`` names the folder ``out/x/`` holding ``x.mcap`` and ``metadata.yaml``. Bags are
written as rosbag2 metadata version 8 (QoS profiles as a YAML string, as Humble writes them).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ssc_core.errors import ConfigError, DataFormatError, SSCError
from ssc_core.output_paths import ensure_output_dir

STORAGE_SUFFIXES = {"mcap": ".mcap", "sqlite3": ".db3"}
BAG_VERSION = 8  # rosbag2 metadata version 8: QoS as a YAML string, as Humble writes it


# ------------------------------------------------------------------------------------------------- paths
def bag_location(path: str | Path, storage: str | None = None) -> tuple[Path, str]:
    """Where a bag named ``path`` goes and in which storage: ``x.mcap`` -> (folder ``x``, 'mcap'), ``x.db3`` ->
    (``x``, 'sqlite3'), ``x`` -> (``x``, storage or 'mcap'). ConfigError when the suffix contradicts
    ``storage``."""
    path = Path(path)
    by_suffix = {suffix: name for name, suffix in STORAGE_SUFFIXES.items()}
    if storage is not None and storage not in STORAGE_SUFFIXES:
        raise ConfigError(f"unknown bag storage {storage!r}; choose one of {sorted(STORAGE_SUFFIXES)}")
    if path.suffix in by_suffix:
        if storage is not None and by_suffix[path.suffix] != storage:
            raise ConfigError(f"output {path} has suffix {path.suffix} but storage {storage!r} was asked for")
        storage, path = by_suffix[path.suffix], path.with_suffix("")
    return path, storage or "mcap"


def output_bag_dir(path: str | Path, storage: str | None = None, overwrite: bool = False) -> tuple[Path, str]:
    """``bag_location`` of a bag to create. When the folder exists already: DataFormatError naming --overwrite
    (rosbag2 never overwrites), or with ``overwrite`` the old bag is deleted (``remove_bag``)."""
    path, storage = bag_location(path, storage)
    if path.exists() or path.is_symlink():
        if not overwrite:
            raise DataFormatError(f"output bag {path} already exists: choose another --output, or pass --overwrite "
                                  "to replace it")
        remove_bag(path)
    return path, storage


BAG_FILE_SUFFIXES = (".mcap", ".db3", ".db3-shm", ".db3-wal", ".db3-journal")


def remove_bag(path: Path) -> None:
    """Delete the bag folder ``path``: only when it holds nothing but a bag's own files (metadata.yaml and
    storage files), so a mistyped --output never deletes anything else. ConfigError otherwise."""
    if path.is_symlink() or not path.is_dir():
        raise ConfigError(f"output bag {path} exists and is not a bag folder; not replacing it")
    foreign = [p.name for p in path.iterdir()
               if not (p.is_file() and (p.name == "metadata.yaml" or p.name.endswith(BAG_FILE_SUFFIXES)))]
    if foreign:
        raise ConfigError(f"output bag {path} holds {', '.join(sorted(foreign)[:3])}, which no bag holds; not "
                          "replacing it")
    for file in path.iterdir():
        file.unlink()
    path.rmdir()


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


# Offered QoS profiles the project records: as kitti_replay_node and ssc_node offer them live.
SENSOR_QOS = QosSpec("reliable", "volatile", 5)  # camera, camera_info, LiDAR (RViz and best-effort subscribers match)
TF_QOS = QosSpec("reliable", "volatile", 100)
LATCHED_QOS = QosSpec("reliable", "transient_local", 1)  # /tf_static, GT voxels, ssc_node outputs (outputs.latch)
DEBUG_QOS = QosSpec("reliable", "volatile", 1)  # ssc_node's processing_time_ms


class BagWriter:
    """Writes messages to a new ROS 2 bag; topics (connections) are added on first use.

    path/storage/overwrite: see ``output_bag_dir``; typestore: the rosbags typestore the messages were built from
    (their definitions go into the bag). Use as a context manager: the bag is closed (metadata written) on exit, also
    when an exception is raised, so everything written so far stays readable.
    """

    def __init__(self, path: str | Path, typestore: Any, storage: str | None = None, version: int = BAG_VERSION,
                 overwrite: bool = False):
        from rosbags.rosbag2 import StoragePlugin, Writer

        self.path, self.storage = output_bag_dir(path, storage, overwrite)
        self.typestore = typestore
        plugin = StoragePlugin.MCAP if self.storage == "mcap" else StoragePlugin.SQLITE3
        ensure_output_dir(self.path.parent, f"output bag {self.path}: parent folder")
        self._writer = Writer(self.path, version=version, storage_plugin=plugin)
        self._connections: dict[str, Any] = {}
        self.counts: dict[str, int] = {}
        self._open = False

    @property
    def storage_file(self) -> Path:
        """The storage file inside the bag folder (``<bag>/<bag>.mcap`` or ``.db3``)."""
        return self.path / f"{self.path.name}{STORAGE_SUFFIXES[self.storage]}"

    def __enter__(self) -> BagWriter:
        try:
            self._writer.open()
        except OSError as exc:
            raise ConfigError(f"output bag {self.path}: cannot create it ({exc.strerror or exc})") from None
        self._open = True
        return self

    def __exit__(self, exc_type: type | None, exc: BaseException | None, tb: object) -> None:
        """Close the bag; when an exception ends the writing, it gets ``partial_bag`` (this bag's folder), so
        whoever reports the error can say that a partial, readable bag was left."""
        was_open = self._open
        self.close()
        if exc is not None and was_open:
            exc.partial_bag = self.path

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
        """Write ``msg`` at ``stamp_ns`` (receive time): a typestore message of ``msgtype`` (serialised here) or
        its CDR bytes already (the MarkerArrays of ssc_ros.pipeline.outputs)."""
        data = msg if isinstance(msg, bytes) else self.typestore.serialize_cdr(msg, msgtype)
        self.write_raw(topic, msgtype, stamp_ns, data, qos)

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
