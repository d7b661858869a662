"""Short-lived listeners of the operator commands (calibrate_table, check_camera)."""

from __future__ import annotations

import time
from typing import Callable


def listen(name: str, subscribe: Callable, done: Callable[[], bool], timeout: float) -> None:
    """Spin a node of its own until ``done()`` or ``timeout`` s have passed.

    Starts rclpy, makes node ``name``, lets ``subscribe(node)`` add its subscriptions, and shuts
    rclpy down again at the end.
    """
    import rclpy
    from rclpy.node import Node

    rclpy.init()
    try:
        node = Node(name)
        subscribe(node)
        deadline = time.monotonic() + timeout
        while not done() and time.monotonic() < deadline:
            rclpy.spin_once(node, timeout_sec=0.1)
        node.destroy_node()
    finally:
        rclpy.try_shutdown()
