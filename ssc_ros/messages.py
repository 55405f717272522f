"""numpy <-> ROS 2 message fields, written once against a namespace of message classes.

The same functions fill rclpy messages (live nodes) and rosbags typestore messages (offline bags, tests): a
``MessageNamespace`` carries the message classes plus the few array adapters in which the two differ
(rosbags wants numpy arrays for primitive sequences; rclpy wants ``array.array`` for unbounded ones).
Every field is passed explicitly, because rosbags dataclasses have no defaults.

The reverse direction (PointCloud2 / Image / CameraInfo / Transform -> numpy) validates everything and raises
``ssc_core.errors.DataFormatError`` with a message naming the topic/field and what is wrong.
"""

from __future__ import annotations

import array
import sys
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.spatial.transform import Rotation

from ssc_core.errors import DataFormatError
from ssc_ros.cdr import encode_cdr

# Message types the project builds or reads: attribute name -> ROS type name.
MESSAGE_TYPES: dict[str, str] = {
    "Time": "builtin_interfaces/msg/Time",
    "Duration": "builtin_interfaces/msg/Duration",
    "Header": "std_msgs/msg/Header",
    "ColorRGBA": "std_msgs/msg/ColorRGBA",
    "Float64": "std_msgs/msg/Float64",
    "Point": "geometry_msgs/msg/Point",
    "Quaternion": "geometry_msgs/msg/Quaternion",
    "Pose": "geometry_msgs/msg/Pose",
    "Vector3": "geometry_msgs/msg/Vector3",
    "Transform": "geometry_msgs/msg/Transform",
    "TransformStamped": "geometry_msgs/msg/TransformStamped",
    "TFMessage": "tf2_msgs/msg/TFMessage",
    "PointField": "sensor_msgs/msg/PointField",
    "PointCloud2": "sensor_msgs/msg/PointCloud2",
    "Image": "sensor_msgs/msg/Image",
    "CompressedImage": "sensor_msgs/msg/CompressedImage",
    "CameraInfo": "sensor_msgs/msg/CameraInfo",
    "RegionOfInterest": "sensor_msgs/msg/RegionOfInterest",
    "Marker": "visualization_msgs/msg/Marker",
    "MarkerArray": "visualization_msgs/msg/MarkerArray",
    "UVCoordinate": "visualization_msgs/msg/UVCoordinate",
    "MeshFile": "visualization_msgs/msg/MeshFile",
    "MapMetaData": "nav_msgs/msg/MapMetaData",
    "OccupancyGrid": "nav_msgs/msg/OccupancyGrid",
    "Clock": "rosgraph_msgs/msg/Clock",
    "DiagnosticArray": "diagnostic_msgs/msg/DiagnosticArray",
    "DiagnosticStatus": "diagnostic_msgs/msg/DiagnosticStatus",
    "KeyValue": "diagnostic_msgs/msg/KeyValue",
}

# PointField datatype codes (sensor_msgs/PointField constants) -> numpy dtypes (little endian).
POINTFIELD_DTYPES: dict[int, np.dtype] = {
    1: np.dtype("i1"), 2: np.dtype("u1"), 3: np.dtype("<i2"), 4: np.dtype("<u2"),
    5: np.dtype("<i4"), 6: np.dtype("<u4"), 7: np.dtype("<f4"), 8: np.dtype("<f8"),
}
FLOAT32, UINT8, UINT32 = 7, 2, 6

# Image encodings the input path accepts -> (channels, numpy dtype, how to reach RGB).
IMAGE_ENCODINGS: dict[str, tuple[int, str]] = {
    "rgb8": (3, "rgb"), "bgr8": (3, "bgr"), "rgba8": (4, "rgba"), "bgra8": (4, "bgra"), "mono8": (1, "mono"),
}


@dataclass
class MessageNamespace:
    """Message classes (attributes named as in ``MESSAGE_TYPES``) plus the array adapters of one backend.

    kind: "rosbags" or "rclpy"; typestore: the rosbags typestore (None for rclpy), used by tests and bag writers
    to serialise what was built. Build one with ``rosbags_namespace()`` or ``rclpy_namespace()``.
    """

    kind: str
    classes: dict[str, Any]
    typestore: Any = None

    def __getattr__(self, name: str) -> Any:
        try:
            return self.__dict__["classes"][name]
        except KeyError:
            raise AttributeError(f"message namespace has no class {name!r}") from None

    def msgtype(self, name: str) -> str:
        """ROS type name ('sensor_msgs/msg/Image') of a namespace attribute name ('Image')."""
        return MESSAGE_TYPES[name]

    # --- array adapters: numpy in, whatever the backend's field setter accepts out
    def u8_seq(self, data: np.ndarray | bytes) -> Any:
        """uint8[] field (Image.data, PointCloud2.data) from a numpy array or bytes."""
        buf = np.frombuffer(data, dtype=np.uint8) if isinstance(data, bytes | bytearray) else np.asarray(data)
        if self.kind == "rosbags":
            return np.ascontiguousarray(buf).view(np.uint8).reshape(-1)
        out = array.array("B")
        out.frombytes(memoryview(np.ascontiguousarray(buf).reshape(-1)).cast("B"))  # one copy, no bytes object
        return out

    def i8_seq(self, data: np.ndarray) -> Any:
        """int8[] field (OccupancyGrid.data) from a numpy array."""
        data = np.ascontiguousarray(data, dtype=np.int8).reshape(-1)
        if self.kind == "rosbags":
            return data
        out = array.array("b")
        out.frombytes(memoryview(data).cast("B"))
        return out

    def f64_seq(self, data: np.ndarray) -> Any:
        """float64[] (unbounded) field (CameraInfo.d)."""
        data = np.ascontiguousarray(data, dtype=np.float64).reshape(-1)
        return data if self.kind == "rosbags" else array.array("d", data.tolist())

    def f64_fixed(self, data: np.ndarray) -> np.ndarray:
        """float64[N] (fixed) field (CameraInfo.k/r/p): numpy in both backends."""
        return np.ascontiguousarray(data, dtype=np.float64).reshape(-1).copy()


def rosbags_namespace(distro: str = "humble") -> MessageNamespace:
    """Namespace of rosbags typestore classes for ROS 2 ``distro`` ('humble' or 'jazzy'), for offline use."""
    from rosbags.typesys import Stores, get_typestore

    stores = {"humble": Stores.ROS2_HUMBLE, "jazzy": Stores.ROS2_JAZZY}
    if distro not in stores:
        raise DataFormatError(f"unknown ROS 2 distro {distro!r} for the rosbags typestore; known: {sorted(stores)}")
    typestore = get_typestore(stores[distro])
    classes = {name: typestore.types[msgtype] for name, msgtype in MESSAGE_TYPES.items()}
    return MessageNamespace(kind="rosbags", classes=classes, typestore=typestore)


class _ImportedClasses(dict):
    """{attribute name: rclpy message class}, each imported on first use: a message package that is missing
    (tf2_msgs is not among the ROS 2 wheels on PyPI) only matters to code that uses its types."""

    def __missing__(self, name: str) -> Any:
        if name not in MESSAGE_TYPES:
            raise KeyError(name)
        import importlib

        package, _, cls = MESSAGE_TYPES[name].split("/")
        self[name] = getattr(importlib.import_module(f"{package}.msg"), cls)
        return self[name]


def rclpy_namespace() -> MessageNamespace:
    """Namespace of the installed ROS 2 message packages (rclpy classes, imported as they are first used)."""
    return MessageNamespace(kind="rclpy", classes=_ImportedClasses())


# ------------------------------------------------------------------------------------------------ basics
def stamp_to_ns(stamp: Any) -> int:
    """builtin_interfaces/Time -> int nanoseconds."""
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def make_time(ns: MessageNamespace, stamp_ns: int) -> Any:
    """int nanoseconds -> builtin_interfaces/Time (negative stamps are rejected)."""
    if stamp_ns < 0:
        raise DataFormatError(f"cannot express negative stamp {stamp_ns} ns as a ROS time")
    sec, nanosec = divmod(int(stamp_ns), 1_000_000_000)
    return ns.Time(sec=sec, nanosec=nanosec)


def make_header(ns: MessageNamespace, stamp_ns: int, frame_id: str) -> Any:
    """std_msgs/Header with the given stamp (ns) and frame."""
    return ns.Header(stamp=make_time(ns, stamp_ns), frame_id=frame_id)


def make_pose(ns: MessageNamespace, T: np.ndarray | None = None) -> Any:
    """geometry_msgs/Pose from a (4, 4) transform (identity when None)."""
    T = np.eye(4) if T is None else np.asarray(T, dtype=np.float64)
    qx, qy, qz, qw = Rotation.from_matrix(T[:3, :3]).as_quat()
    return ns.Pose(
        position=ns.Point(x=float(T[0, 3]), y=float(T[1, 3]), z=float(T[2, 3])),
        orientation=ns.Quaternion(x=float(qx), y=float(qy), z=float(qz), w=float(qw)),
    )


def make_transform_stamped(ns: MessageNamespace, stamp_ns: int, parent: str, child: str, T_parent_child: np.ndarray):
    """geometry_msgs/TransformStamped parent <- child: ``T_parent_child`` maps child coordinates into parent."""
    T = np.asarray(T_parent_child, dtype=np.float64)
    if T.shape != (4, 4) or not np.all(np.isfinite(T)):
        raise DataFormatError(f"transform {parent} <- {child}: need a finite (4, 4) matrix, got shape {T.shape}")
    qx, qy, qz, qw = Rotation.from_matrix(T[:3, :3]).as_quat()
    return ns.TransformStamped(
        header=make_header(ns, stamp_ns, parent),
        child_frame_id=child,
        transform=ns.Transform(
            translation=ns.Vector3(x=float(T[0, 3]), y=float(T[1, 3]), z=float(T[2, 3])),
            rotation=ns.Quaternion(x=float(qx), y=float(qy), z=float(qz), w=float(qw)),
        ),
    )


def transform_to_matrix(transform: Any, what: str = "transform") -> np.ndarray:
    """geometry_msgs/Transform -> (4, 4) float64. DataFormatError on non-finite values or a zero quaternion."""
    t, q = transform.translation, transform.rotation
    quat = np.array([q.x, q.y, q.z, q.w], dtype=np.float64)
    trans = np.array([t.x, t.y, t.z], dtype=np.float64)
    if not (np.all(np.isfinite(quat)) and np.all(np.isfinite(trans))):
        raise DataFormatError(f"{what}: non-finite translation or rotation")
    norm = np.linalg.norm(quat)
    if norm < 1e-9:
        raise DataFormatError(f"{what}: zero quaternion")
    T = np.eye(4)
    T[:3, :3] = Rotation.from_quat(quat / norm).as_matrix()
    T[:3, 3] = trans
    return T


def make_tf_message(ns: MessageNamespace, transforms: list) -> Any:
    """tf2_msgs/TFMessage holding TransformStamped messages."""
    return ns.TFMessage(transforms=list(transforms))


def make_clock(ns: MessageNamespace, stamp_ns: int) -> Any:
    """rosgraph_msgs/Clock at ``stamp_ns``."""
    return ns.Clock(clock=make_time(ns, stamp_ns))


# ------------------------------------------------------------------------------------------ point clouds
def make_pointcloud2(
    ns: MessageNamespace, stamp_ns: int, frame_id: str, points: np.ndarray, field_types: dict[str, int] | None = None
) -> Any:
    """sensor_msgs/PointCloud2 (height 1) from a numpy structured array, one field per named dtype field.

    ``points``: (N,) structured array (offsets and itemsize are kept, so padding is allowed) or an (N, 4) float
    array taken as x, y, z, intensity float32. ``field_types`` overrides the PointField datatype per name (used
    for ``rgb`` packed as FLOAT32). Returns the message with is_dense=True only when no coordinate is NaN/inf.
    """
    if points.dtype.names is None:
        arr = np.asarray(points, dtype=np.float32)
        if arr.ndim != 2 or arr.shape[1] != 4:
            raise DataFormatError(f"point cloud for {frame_id}: expected (N, 4) x, y, z, intensity, got {arr.shape}")
        xyzi = np.dtype([("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("intensity", "<f4")])
        points = np.ascontiguousarray(arr, dtype="<f4").view(xyzi).reshape(-1)  # same bytes, no copy
    codes = {np.dtype(v): k for k, v in POINTFIELD_DTYPES.items()}
    fields = []
    for name in points.dtype.names:
        dtype, offset = points.dtype.fields[name][:2]
        if dtype.byteorder == ">":
            raise DataFormatError(f"point cloud field {name!r}: big-endian {dtype} is not supported")
        code = (field_types or {}).get(name, codes.get(dtype))
        if code is None:
            raise DataFormatError(f"point cloud field {name!r}: dtype {dtype} has no PointField datatype")
        fields.append(ns.PointField(name=name, offset=int(offset), datatype=int(code), count=1))
    xyz_ok = all(n in points.dtype.names for n in "xyz")
    dense = bool(xyz_ok and all(np.isfinite(points[n]).all() for n in "xyz"))
    step = points.dtype.itemsize
    return ns.PointCloud2(
        header=make_header(ns, stamp_ns, frame_id), height=1, width=len(points), fields=fields,
        is_bigendian=sys.byteorder != "little", point_step=step, row_step=step * len(points),
        data=ns.u8_seq(np.ascontiguousarray(points).view(np.uint8).reshape(-1)), is_dense=dense,
    )


def _u8_view(data: Any) -> np.ndarray:
    """A uint8 numpy view of a message's byte sequence (numpy array, array.array, bytes, memoryview or list)."""
    if isinstance(data, np.ndarray):
        return np.ascontiguousarray(data).view(np.uint8).reshape(-1)
    try:
        return np.frombuffer(data, dtype=np.uint8)
    except TypeError:
        return np.asarray(data, dtype=np.uint8)


def pointcloud2_to_xyzi(msg: Any, what: str = "PointCloud2") -> np.ndarray:
    """Read x, y, z (+ intensity/'i' when present, else 0) of a PointCloud2 as (N, 4) float32.

    Validates fields, point_step, row_step and data length, endianness and datatypes. Points with a non-finite
    coordinate are removed (organised clouds use NaN for "no return"). Raises DataFormatError naming the field.
    """
    height, width, step = int(msg.height), int(msg.width), int(msg.point_step)
    fields = {f.name: f for f in msg.fields}
    missing = [n for n in "xyz" if n not in fields]
    if missing:
        raise DataFormatError(f"{what}: missing field(s) {missing} (has {sorted(fields)})")
    if msg.is_bigendian != (sys.byteorder != "little"):
        raise DataFormatError(f"{what}: is_bigendian={msg.is_bigendian} does not match this machine; not supported")
    extra = "intensity" if "intensity" in fields else ("i" if "i" in fields else None)
    names = ["x", "y", "z"] + ([extra] if extra else [])
    dtype_fields = {}
    for name in names:
        f = fields[name]
        if int(f.datatype) not in POINTFIELD_DTYPES:
            raise DataFormatError(f"{what}: field {name!r} has unknown datatype {f.datatype}")
        dt = POINTFIELD_DTYPES[int(f.datatype)]
        if int(f.count) < 1 or int(f.offset) < 0 or int(f.offset) + dt.itemsize > step:
            raise DataFormatError(
                f"{what}: field {name!r} (offset {f.offset}, {dt.itemsize} bytes) does not fit point_step {step}"
            )
        dtype_fields[name] = (dt, int(f.offset))
    if int(msg.row_step) < width * step:
        raise DataFormatError(f"{what}: row_step {msg.row_step} < width {width} x point_step {step}")
    data = _u8_view(msg.data)
    expected = height * int(msg.row_step)
    if data.size < expected:
        raise DataFormatError(f"{what}: data has {data.size} bytes, expected {expected} (height x row_step)")
    n = height * width
    if n == 0:
        return np.zeros((0, 4), dtype=np.float32)
    rows = data[:expected].reshape(height, int(msg.row_step))[:, : width * step]
    dtype = np.dtype({"names": list(dtype_fields), "formats": [v[0] for v in dtype_fields.values()],
                      "offsets": [v[1] for v in dtype_fields.values()], "itemsize": step})
    structured = np.ascontiguousarray(rows).reshape(-1).view(dtype)
    out = np.zeros((n, 4), dtype=np.float32)
    for i, name in enumerate(names):
        out[:, i] = structured[name]
    return out[np.isfinite(out[:, :3]).all(axis=1)]


def pointcloud2_to_structured(msg: Any) -> np.ndarray:
    """All fields of a dense, validated height-1 PointCloud2 as an (N,) numpy structured array (for tests/tools)."""
    dtype = np.dtype({
        "names": [f.name for f in msg.fields],
        "formats": [POINTFIELD_DTYPES[int(f.datatype)] for f in msg.fields],
        "offsets": [int(f.offset) for f in msg.fields],
        "itemsize": int(msg.point_step),
    })
    data = _u8_view(msg.data)
    n = int(msg.width) * int(msg.height)
    if data.size != n * dtype.itemsize:
        raise DataFormatError(f"PointCloud2: {data.size} bytes for {n} points of {dtype.itemsize} bytes")
    return data.view(dtype)


# ---------------------------------------------------------------------------------------------- images
def make_image(ns: MessageNamespace, stamp_ns: int, frame_id: str, image_rgb: np.ndarray) -> Any:
    """sensor_msgs/Image (encoding rgb8) from an (H, W, 3) uint8 RGB array."""
    image_rgb = np.asarray(image_rgb)
    if image_rgb.ndim != 3 or image_rgb.shape[2] != 3 or image_rgb.dtype != np.uint8:
        raise DataFormatError(
            f"image for {frame_id}: expected (H, W, 3) uint8, got {image_rgb.shape} {image_rgb.dtype}"
        )
    h, w, _ = image_rgb.shape
    return ns.Image(
        header=make_header(ns, stamp_ns, frame_id), height=h, width=w, encoding="rgb8", is_bigendian=0,
        step=3 * w, data=ns.u8_seq(np.ascontiguousarray(image_rgb).reshape(-1)),
    )


def image_to_rgb(msg: Any, what: str = "Image") -> np.ndarray:
    """sensor_msgs/Image -> (H, W, 3) uint8 RGB. Accepts rgb8, bgr8, rgba8, bgra8, mono8 (respecting ``step``
    padding); DataFormatError for other encodings, a zero size, a short step or truncated data."""
    encoding = str(msg.encoding).lower()
    if encoding not in IMAGE_ENCODINGS:
        raise DataFormatError(f"{what}: unsupported encoding {msg.encoding!r} (supported: {sorted(IMAGE_ENCODINGS)})")
    channels, order = IMAGE_ENCODINGS[encoding]
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    if h <= 0 or w <= 0:
        raise DataFormatError(f"{what}: empty image ({w}x{h})")
    if step < w * channels:
        raise DataFormatError(f"{what}: step {step} < width {w} x {channels} channels")
    data = _u8_view(msg.data)
    if data.size < h * step:
        raise DataFormatError(f"{what}: data has {data.size} bytes, expected {h * step} (height x step)")
    img = data[: h * step].reshape(h, step)[:, : w * channels].reshape(h, w, channels)
    if order == "rgb":
        return img.copy()
    if order == "bgr":
        return img[:, :, ::-1].copy()
    if order == "rgba":
        return img[:, :, :3].copy()
    if order == "bgra":
        return img[:, :, 2::-1].copy()
    return np.repeat(img, 3, axis=2)


DEPTH_ENCODINGS = {"32fc1": ("<f4", 1.0), "16uc1": ("<u2", 1e-3), "mono16": ("<u2", 1e-3)}


def make_depth_image(ns: MessageNamespace, stamp_ns: int, frame_id: str, depth_m: np.ndarray,
                     encoding: str = "32FC1") -> Any:
    """sensor_msgs/Image of an (H, W) depth map in metres (0 = no depth): 32FC1 metres as they are, or 16UC1
    millimetres (rounded, clipped to 65535), the cv_bridge / REP 118 conventions."""
    depth = np.asarray(depth_m, dtype=np.float64)
    if depth.ndim != 2:
        raise DataFormatError(f"depth image for {frame_id}: expected (H, W), got {depth.shape}")
    if encoding.lower() == "32fc1":
        values = np.where(np.isfinite(depth), depth, 0.0).astype("<f4")
    elif encoding.lower() == "16uc1":
        values = np.clip(np.round(np.nan_to_num(depth) * 1000.0), 0, 65535).astype("<u2")
    else:
        raise DataFormatError(f"depth image for {frame_id}: encoding must be 32FC1 or 16UC1, got {encoding!r}")
    h, w = depth.shape
    return ns.Image(
        header=make_header(ns, stamp_ns, frame_id), height=h, width=w, encoding=encoding, is_bigendian=0,
        step=values.itemsize * w, data=ns.u8_seq(np.ascontiguousarray(values).view(np.uint8).reshape(-1)),
    )


def depth_image_to_metres(msg: Any, what: str = "depth image") -> np.ndarray:
    """sensor_msgs/Image depth -> (H, W) float32 metres, 0 = no depth: 32FC1 in metres (NaN/inf/negative -> 0),
    16UC1 (or mono16) in millimetres (0 = no depth), respecting ``step`` padding. DataFormatError for other
    encodings, big-endian data, a zero size, a short step or truncated data."""
    encoding = str(msg.encoding).lower()
    if encoding not in DEPTH_ENCODINGS:
        raise DataFormatError(f"{what}: unsupported depth encoding {msg.encoding!r} (32FC1 metres or 16UC1 mm)")
    if int(msg.is_bigendian):
        raise DataFormatError(f"{what}: big-endian depth data is not supported")
    dtype, scale = DEPTH_ENCODINGS[encoding]
    size = np.dtype(dtype).itemsize
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    if h <= 0 or w <= 0:
        raise DataFormatError(f"{what}: empty image ({w}x{h})")
    if step < w * size:
        raise DataFormatError(f"{what}: step {step} < width {w} x {size} bytes")
    data = _u8_view(msg.data)
    if data.size < h * step:
        raise DataFormatError(f"{what}: data has {data.size} bytes, expected {h * step} (height x step)")
    rows = data[: h * step].reshape(h, step)[:, : w * size]
    values = np.ascontiguousarray(rows).view(dtype).reshape(h, w).astype(np.float32) * np.float32(scale)
    return np.where(np.isfinite(values) & (values > 0), values, 0.0).astype(np.float32)


def make_camera_info(ns: MessageNamespace, stamp_ns: int, frame_id: str, P: np.ndarray, width: int, height: int):
    """sensor_msgs/CameraInfo of a rectified camera from its (3, 4) projection P: k = P[:3, :3], r = I, d = 0."""
    P = np.asarray(P, dtype=np.float64)
    if P.shape != (3, 4):
        raise DataFormatError(f"camera_info for {frame_id}: P must be 3x4, got {P.shape}")
    return ns.CameraInfo(
        header=make_header(ns, stamp_ns, frame_id), height=int(height), width=int(width),
        distortion_model="plumb_bob", d=ns.f64_seq(np.zeros(5)), k=ns.f64_fixed(P[:, :3]),
        r=ns.f64_fixed(np.eye(3)), p=ns.f64_fixed(P), binning_x=0, binning_y=0,
        roi=ns.RegionOfInterest(x_offset=0, y_offset=0, height=0, width=0, do_rectify=False),
    )


def camera_info_to_P(msg: Any, what: str = "CameraInfo") -> np.ndarray:
    """sensor_msgs/CameraInfo -> (3, 4) float64 rectified projection P (falls back to [K | 0] when P is all zero).
    DataFormatError when K is zero/non-finite or the focal lengths are not positive."""
    k = np.asarray(msg.k, dtype=np.float64).reshape(-1)
    p = np.asarray(msg.p, dtype=np.float64).reshape(-1)
    if k.size != 9 or p.size != 12:
        raise DataFormatError(f"{what}: k has {k.size} values (need 9), p has {p.size} (need 12)")
    if not (np.all(np.isfinite(k)) and np.all(np.isfinite(p))):
        raise DataFormatError(f"{what}: non-finite values in k or p")
    if not np.any(k):
        raise DataFormatError(f"{what}: K is all zero (camera not calibrated)")
    P = p.reshape(3, 4)
    if not np.any(P):
        P = np.hstack([k.reshape(3, 3), np.zeros((3, 1))])
    if P[0, 0] <= 0 or P[1, 1] <= 0:
        raise DataFormatError(f"{what}: focal lengths must be positive, got fx={P[0, 0]}, fy={P[1, 1]}")
    return P


# --------------------------------------------------------------------------------------------- markers
def marker_fields(
    stamp_ns: int, frame_id: str, *, marker_ns: str, marker_id: int, marker_type: int, action: int,
    scale: float = 1.0, rgb_u8: np.ndarray | None = None, alpha: float = 1.0, points_xyz: np.ndarray | None = None,
) -> dict[str, Any]:
    """visualization_msgs/Marker as the nested dict ``make_marker_array`` serialises: identity pose, lifetime 0
    (forever), colour from an RGB uint8 triple (as 0..1 floats; none: all zero), ``points_xyz`` (N, 3) float
    coordinates (one float64 block, no Python object per point); every other field zero / empty."""
    if stamp_ns < 0:
        raise DataFormatError(f"cannot express negative stamp {stamp_ns} ns as a ROS time")
    sec, nanosec = divmod(int(stamp_ns), 1_000_000_000)
    fields: dict[str, Any] = {
        "header": {"stamp": {"sec": sec, "nanosec": nanosec}, "frame_id": frame_id}, "ns": marker_ns,
        "id": int(marker_id), "type": int(marker_type), "action": int(action), "pose": {"orientation": {"w": 1.0}},
        "scale": {"x": float(scale), "y": float(scale), "z": float(scale)},
    }
    if rgb_u8 is not None:
        r, g, b = (float(c) / 255.0 for c in np.asarray(rgb_u8).reshape(3))
        fields["color"] = {"r": r, "g": g, "b": b, "a": float(alpha)}
    if points_xyz is not None:
        fields["points"] = np.asarray(points_xyz, dtype=np.float64).reshape(-1, 3)
    return fields


def make_marker_array(ns: MessageNamespace, markers: list[dict[str, Any]]) -> bytes:
    """Serialised visualization_msgs/MarkerArray (CDR bytes, ``ssc_ros.cdr``) of ``marker_fields`` dicts: what
    rclpy's ``Publisher.publish`` and the bag writers take as they are."""
    return encode_cdr(ns, "MarkerArray", {"markers": markers})


# ------------------------------------------------------------------------------------------- occupancy
def make_occupancy_grid(
    ns: MessageNamespace, stamp_ns: int, frame_id: str, cells: np.ndarray, resolution: float,
    origin_xyz: tuple[float, float, float],
) -> Any:
    """nav_msgs/OccupancyGrid from (W along x, H along y) int8 cells (-1/0..100); data is row-major by y."""
    cells = np.asarray(cells)
    if cells.ndim != 2:
        raise DataFormatError(f"occupancy cells must be 2-D (x, y), got {cells.shape}")
    width, height = cells.shape
    T = np.eye(4)
    T[:3, 3] = origin_xyz
    info = ns.MapMetaData(
        map_load_time=make_time(ns, stamp_ns), resolution=float(resolution), width=int(width), height=int(height),
        origin=make_pose(ns, T),
    )
    return ns.OccupancyGrid(header=make_header(ns, stamp_ns, frame_id), info=info, data=ns.i8_seq(cells.T))


def make_float64(ns: MessageNamespace, value: float) -> Any:
    """std_msgs/Float64."""
    return ns.Float64(data=float(value))


def make_diagnostic_array(
    ns: MessageNamespace, stamp_ns: int, name: str, level: str, message: str, values: dict[str, Any],
    hardware_id: str = "",
) -> Any:
    """diagnostic_msgs/DiagnosticArray with one status; ``level`` in {'OK', 'WARN', 'ERROR', 'STALE'}."""
    status_cls = ns.DiagnosticStatus
    status = status_cls(
        level=getattr(status_cls, level), name=name, message=message, hardware_id=hardware_id,
        values=[ns.KeyValue(key=str(k), value=str(v)) for k, v in values.items()],
    )
    return ns.DiagnosticArray(header=make_header(ns, stamp_ns, ""), status=[status])
