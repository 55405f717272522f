"""ROS 2 messages serialised to CDR straight from numpy: for the one output where building message objects is the
cost (a MarkerArray of ~100k cubes is one ``geometry_msgs/Point`` object per cube in rclpy and rosbags alike).

``encode_cdr(ns, "MarkerArray", value)`` writes what ``rclpy.serialization.serialize_message`` and rosbags'
``serialize_cdr`` write for the same message (the tests compare byte for byte): the 4-byte little-endian CDR
encapsulation header, then every field in definition order, each primitive aligned to its size (counted from
after the header), strings as uint32 length + bytes + NUL, sequences as uint32 count + elements, nested messages
inline. ``value`` is a nested dict by field name; a missing field is zero / empty. A numpy array may stand for a
sequence or fixed array of primitives, or for a sequence of messages whose fields are all one primitive type
(``geometry_msgs/Point[]`` as an (N, 3) float64 array): those go out as one block. The field layout comes from
the namespace's own message definitions (the rclpy classes or the rosbags typestore of the distro), so Humble's
and Jazzy's different ``visualization_msgs/Marker`` are both right.

rclpy publishers take the bytes as they are (``Publisher.publish(bytes)``); bag writers write them raw.
"""

from __future__ import annotations

import functools
import importlib
import re
import struct
from typing import Any

import numpy as np

from ssc_core.errors import DataFormatError

# primitive type name -> (struct format, size); names as rosbags spells them, rclpy's spellings mapped below
PRIMITIVES: dict[str, tuple[str, int]] = {
    "bool": ("<?", 1), "byte": ("<B", 1), "char": ("<B", 1), "int8": ("<b", 1), "uint8": ("<B", 1),
    "int16": ("<h", 2), "uint16": ("<H", 2), "int32": ("<i", 4), "uint32": ("<I", 4), "int64": ("<q", 8),
    "uint64": ("<Q", 8), "float32": ("<f", 4), "float64": ("<d", 8),
}
RCLPY_NAMES = {"boolean": "bool", "octet": "byte", "float": "float32", "double": "float64"}
CDR_LE_HEADER = b"\x00\x01\x00\x00"

# A field spec: ("base", primitive name | "string"), ("msg", "pkg/msg/Name"), ("seq", spec), ("array", spec, n).
Spec = tuple


def _rclpy_spec(type_string: str) -> Spec:
    """Field spec from rclpy's ``get_fields_and_field_types()`` spelling ('sequence<geometry_msgs/Point>', ...)."""
    if type_string.startswith("sequence<"):
        inner = type_string[len("sequence<"):-1]
        bounded = re.fullmatch(r"(.+),\s*\d+", inner)
        return ("seq", _rclpy_spec(bounded.group(1) if bounded else inner))
    array = re.fullmatch(r"(.+)\[(\d+)\]", type_string)
    if array:
        return ("array", _rclpy_spec(array.group(1)), int(array.group(2)))
    if type_string == "string" or type_string.startswith("string<"):
        return ("base", "string")
    if "/" in type_string:
        package, name = type_string.split("/")
        return ("msg", f"{package}/msg/{name}")
    name = RCLPY_NAMES.get(type_string, type_string)
    if name not in PRIMITIVES:
        raise DataFormatError(f"CDR: field type {type_string!r} is not supported")
    return ("base", name)


def _rosbags_spec(node: tuple) -> Spec:
    """Field spec from a rosbags typestore field definition (Nodetype, description)."""
    kind, desc = node
    kind = getattr(kind, "name", kind)
    if kind == "BASE":
        return ("base", desc[0])
    if kind == "NAME":
        return ("msg", desc)
    if kind == "ARRAY":
        return ("array", _rosbags_spec(desc[0]), int(desc[1]))
    if kind == "SEQUENCE":
        return ("seq", _rosbags_spec(desc[0]))
    raise DataFormatError(f"CDR: rosbags field kind {kind!r} is not supported")


@functools.lru_cache(maxsize=256)
def _layout(kind: str, typestore: Any, msgtype: str) -> tuple[tuple[str, Spec], ...]:
    if kind == "rosbags":
        return tuple((name, _rosbags_spec(node)) for name, node in typestore.fielddefs[msgtype][1])
    package, _, name = msgtype.split("/")
    cls = getattr(importlib.import_module(f"{package}.msg"), name)
    return tuple((field, _rclpy_spec(t)) for field, t in cls.get_fields_and_field_types().items())


def message_layout(ns: Any, msgtype: str) -> tuple[tuple[str, Spec], ...]:
    """((field name, spec), ...) of ``msgtype`` ('visualization_msgs/msg/Marker') in the namespace's definitions."""
    return _layout(ns.kind, ns.typestore, msgtype)


def _uniform_dtype(ns: Any, msgtype: str) -> np.dtype | None:
    """The numpy dtype shared by every field of a message made only of one numeric primitive (Point: float64)."""
    specs = [spec for _, spec in message_layout(ns, msgtype)]
    names = {spec[1] for spec in specs if spec[0] == "base"}
    if len(names) != 1 or len(specs) != sum(spec[0] == "base" for spec in specs) or "string" in names:
        return None
    return np.dtype(PRIMITIVES[names.pop()][0])


class _Writer:
    """A CDR buffer: the encapsulation header, then aligned little-endian fields."""

    def __init__(self, ns: Any) -> None:
        self.ns = ns
        self.buf = bytearray(CDR_LE_HEADER)

    def align(self, size: int) -> None:
        self.buf += b"\x00" * (-(len(self.buf) - len(CDR_LE_HEADER)) % size)

    def primitive(self, name: str, value: Any) -> None:
        fmt, size = PRIMITIVES[name]
        self.align(size)
        self.buf += struct.pack(fmt, value)

    def string(self, text: str) -> None:
        data = text.encode("utf-8")
        self.primitive("uint32", len(data) + 1)
        self.buf += data + b"\x00"

    def block(self, dtype: np.dtype, values: Any, width: int) -> int:
        """Numeric elements as one aligned block; returns how many elements (rows of ``width`` values)."""
        arr = np.ascontiguousarray(values, dtype=dtype.newbyteorder("<"))
        if arr.size % width:
            raise DataFormatError(f"CDR: {arr.shape} array is not a list of {width}-value elements")
        if arr.size:
            self.align(dtype.itemsize)
            self.buf += memoryview(arr).cast("B")
        return arr.size // width

    def value(self, spec: Spec, value: Any) -> None:
        kind = spec[0]
        if kind == "base":
            if spec[1] == "string":
                self.string(value or "")
            else:
                self.primitive(spec[1], value or 0)
        elif kind == "msg":
            self.message(spec[1], value or {})
        elif kind == "array":
            self.sequence(spec[1], value, spec[2])
        else:
            self.sequence(spec[1], value, None)

    def sequence(self, elem: Spec, values: Any, fixed: int | None) -> None:
        """A sequence (count first) or, with ``fixed``, an array of that length (no count)."""
        if values is None:
            values = np.zeros(fixed) if fixed and elem[0] == "base" and elem[1] != "string" else []
        dtype, width = None, 1
        if elem[0] == "base" and elem[1] != "string":
            dtype = np.dtype(PRIMITIVES[elem[1]][0])
        elif elem[0] == "msg" and isinstance(values, np.ndarray):
            dtype = _uniform_dtype(self.ns, elem[1])
            width = len(message_layout(self.ns, elem[1]))
            if dtype is None:
                raise DataFormatError(f"CDR: {elem[1]} has mixed fields; give its elements as dicts, not an array")
        count = (np.size(values) // width) if dtype is not None else len(values)
        if fixed is not None and count != fixed:
            raise DataFormatError(f"CDR: fixed array of {fixed} elements given {count}")
        if fixed is None:
            self.primitive("uint32", count)
        if dtype is not None:
            self.block(dtype, values, width)
            return
        for item in values:
            self.value(elem, item)

    def message(self, msgtype: str, fields: dict[str, Any]) -> None:
        layout = message_layout(self.ns, msgtype)
        unknown = set(fields) - {name for name, _ in layout}
        if unknown:
            raise DataFormatError(f"CDR: {msgtype} has no field(s) {sorted(unknown)}")
        for name, spec in layout:
            self.value(spec, fields.get(name))


def encode_cdr(ns: Any, name: str, fields: dict[str, Any]) -> bytes:
    """Serialised message ``name`` (a namespace attribute name: 'MarkerArray') from nested dicts and numpy arrays
    (see the module docstring); DataFormatError for a field the type does not have or a wrongly sized array."""
    writer = _Writer(ns)
    writer.message(ns.msgtype(name), fields)
    return bytes(writer.buf)
