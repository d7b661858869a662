"""Safety node skeleton: starts in HOLD, publishes a latched SafetyStatus, refuses a bad rate."""

import time

import pytest
import rclpy
from rclpy.node import Node
from rclpy.parameter import Parameter
from rl100_msgs.msg import SafetyStatus
from rl100_ros import qos, topics
from rl100_safety.safety_node import SafetyNode


@pytest.fixture
def ros():
    rclpy.init()
    yield
    rclpy.try_shutdown()


def test_starts_in_hold_and_late_joiners_see_it(ros):
    node = SafetyNode()
    listener = Node('late_joiner')
    got = []
    listener.create_subscription(SafetyStatus, topics.SAFETY_STATUS, got.append, qos.LATCHED)
    executor = rclpy.executors.SingleThreadedExecutor()
    executor.add_node(node)
    executor.add_node(listener)
    deadline = time.monotonic() + 10
    while not got and time.monotonic() < deadline:
        executor.spin_once(timeout_sec=0.05)
    assert got and got[0].mode == SafetyStatus.MODE_HOLD
    assert got[0].reason == 'started in HOLD'


def test_refuses_non_positive_rate(ros):
    with pytest.raises(ValueError, match='control_rate must be > 0 Hz, got -1.0'):
        SafetyNode(parameter_overrides=[Parameter('control_rate', value=-1.0)])
