"""The real rclpy for the node tests: import it (skip the module where it is missing), give this test run a DDS
domain of its own and keep discovery on this machine.

- rclpy and the message packages: a sourced ROS 2 (Humble, Jazzy) or the ROS 2 wheels on PyPI
  (``pip install -e ".[ros-wheels]"``, Kilted). message_filters, tf2_ros and tf2_msgs are not among the wheels:
  where they are missing, ``test/ros_standins`` is appended to ``sys.path`` (and to subprocesses' PYTHONPATH).
- Domain: the first ROS_DOMAIN_ID in 1..100 whose lock file (``/tmp/ssc_ros_test_domain_<id>.lock``) this process
  can lock, held until it exits, so test runs going on at once on one machine never see each other's topics.
- Discovery on localhost only (ROS_AUTOMATIC_DISCOVERY_RANGE, Iron and later; ROS_LOCALHOST_ONLY on Humble):
  no DDS traffic leaves the machine.

Import it first in a test module (``rclpy = real_ros.require()``); it sets the environment for the process and
for every subprocess started after it.
"""

from __future__ import annotations

import fcntl
import importlib.util
import os
import sys
import tempfile
from pathlib import Path
from types import ModuleType

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
STANDINS = Path(__file__).resolve().parent / "ros_standins"
STANDIN_MODULES = ("message_filters", "tf2_ros", "tf2_msgs")
DOMAIN_IDS = range(1, 101)
_held: list = []  # the open lock file of the claimed domain (kept open: the lock lives as long as the process)


def claim_domain_id() -> int:
    """A ROS domain id no other process on this machine holds (locked until this process exits)."""
    if _held:
        return int(os.environ["ROS_DOMAIN_ID"])
    for domain in DOMAIN_IDS:
        lock = open(Path(tempfile.gettempdir()) / f"ssc_ros_test_domain_{domain}.lock", "w")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            lock.close()
            continue
        _held.append(lock)
        return domain
    raise RuntimeError(f"every ROS domain id in {DOMAIN_IDS} is locked by another test run")


def _missing(name: str) -> bool:
    return importlib.util.find_spec(name) is None


def configure() -> list[str]:
    """Environment for this process and its children (domain, localhost discovery, stand-ins on the path);
    returns the names of the stand-ins in use."""
    if not _held:
        os.environ["ROS_DOMAIN_ID"] = str(claim_domain_id())
        os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
        if os.environ.get("ROS_DISTRO") == "humble":
            os.environ["ROS_LOCALHOST_ONLY"] = "1"
    standins = [name for name in STANDIN_MODULES if _missing(name)]
    if standins and str(STANDINS) not in sys.path:
        sys.path.append(str(STANDINS))
    return standins


def require() -> ModuleType:
    """rclpy (the module is skipped where it cannot be imported), with the environment configured."""
    if _missing("rclpy"):
        pytest.skip("rclpy is not installed: pip install -e '.[ros-wheels]' or source a ROS 2", allow_module_level=True)
    configure()
    import rclpy

    return rclpy


def subprocess_env(**extra: str) -> dict[str, str]:
    """os.environ for a node started as a subprocess: the repository and the stand-ins on PYTHONPATH."""
    paths = [str(REPO_ROOT), *os.environ.get("PYTHONPATH", "").split(os.pathsep), str(STANDINS)]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p), **extra}
