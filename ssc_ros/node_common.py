"""What both nodes share (rclpy, no torch): parameter declaration, the latched output QoS and the body of an entry
point that ends cleanly however the node is stopped."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import rclpy
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.exceptions import InvalidParameterTypeException
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from ssc_core.errors import SSCError


def declare_parameters(node: Node, specs) -> dict[str, Any]:
    """Declare every parameter of ``specs`` with its description; returns {name: value}. SSCError naming the
    parameter when an override has another type than its default (``rate:=2`` for a float: write ``2.0``)."""
    values = {}
    for spec in specs:
        try:
            node.declare_parameter(spec.name, spec.default, ParameterDescriptor(description=spec.description))
        except (InvalidParameterTypeException, TypeError) as exc:
            kind = type(spec.default).__name__
            raise SSCError(f"parameter {spec.name} must be of type {kind} like its default {spec.default!r}"
                           f"{' (write 2.0, not 2)' if kind == 'float' else ''}: {exc}") from None
        values[spec.name] = node.get_parameter(spec.name).value
    return values


def latched_qos() -> QoSProfile:
    """RELIABLE + TRANSIENT_LOCAL, depth 1: late subscribers (RViz) get the last output."""
    return QoSProfile(depth=1, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.TRANSIENT_LOCAL)


def run_node(make_node: Callable[[], Node], spin: Callable[[Node], None], args: list[str] | None) -> int:
    """The body of a node's entry point: init rclpy with ``args``, build the node, ``spin`` it until Ctrl-C,
    SIGTERM or shutdown, then destroy it and shut down. Returns 0 (also when a callback was cut short by the
    shutdown: Ctrl-C invalidates the context under a publish in progress, which then raises), or 2 after printing
    ``error: ...`` when building the node raised SSCError (a missing or invalid parameter)."""
    rclpy.init(args=args)
    node = None
    try:
        node = make_node()
        spin(node)
    except SSCError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception:
        if rclpy.ok():
            raise
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    return 0
