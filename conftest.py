"""Test fixtures for the whole workspace.

Every ROS test runs on a private ROS_DOMAIN_ID with localhost-only discovery, so tests never
talk to a robot on the network, nor to each other across parallel runs.
"""

from __future__ import annotations

import os
import random

# Tests use tiny networks on a shared 2-core machine: one math thread per process, set before
# torch / onnxruntime / numpy load (many threads there slow the ROS nodes' timers to a crawl)
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402

REPO = os.path.dirname(os.path.abspath(__file__))


def isolated_ros_env(domain_id: int | None = None) -> dict:
    """A copy of os.environ with a private ROS_DOMAIN_ID and localhost-only discovery."""
    env = dict(os.environ)
    env["ROS_DOMAIN_ID"] = str(domain_id if domain_id is not None else random.randint(1, 199))
    if env.get("ROS_DISTRO") == "humble":  # Humble knows only the older variable
        env["ROS_LOCALHOST_ONLY"] = "1"
        env.pop("ROS_AUTOMATIC_DISCOVERY_RANGE", None)
    else:  # Iron and later; Jazzy warns when both are set
        env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
        env.pop("ROS_LOCALHOST_ONLY", None)
    env["PYTHONUNBUFFERED"] = "1"
    return env


# the pytest process itself (in-process rclpy tests) gets its own domain too
os.environ.update(isolated_ros_env(random.randint(201, 230)))


@pytest.fixture
def ros_env() -> dict:
    """Environment for child processes: a fresh domain, different from the pytest process's."""
    return isolated_ros_env()
