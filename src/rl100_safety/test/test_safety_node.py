"""Safety node over DDS: pose in -> target out, chunks followed, takeover flagged, e-stop."""

import time

from geometry_msgs.msg import PoseStamped
import numpy as np
import pytest
import rclpy
from rclpy.node import Node
from rclpy.parameter import Parameter
from rl100_msgs.msg import ActionChunk, Intervention, SafetyStatus
from rl100_msgs.srv import SetMode
from rl100_ros import qos, topics
from rl100_ros.conversions import array_to_pose, pose_to_array
from rl100_safety.keyboard_teleop import JOY_TOPIC
from rl100_safety.safety_node import SafetyNode
from rl100_safety.teleop import Event, input_to_joy, TeleopInput
from sensor_msgs.msg import Joy

HOME = np.array([0.5, 0.0, 0.3, np.pi, 0.0, 0.0, 0.0])


class Harness:
    """The safety node plus a test node playing robot, policy and operator."""

    def __init__(self, **params):
        overrides = [Parameter(k, value=v) for k, v in params.items()]
        self.node = SafetyNode(parameter_overrides=overrides)
        self.peer = Node('peer')
        self.targets, self.interventions, self.status = [], [], []
        self.peer.create_subscription(PoseStamped, topics.TARGET_POSE, self.targets.append,
                                      qos.RELIABLE)
        self.peer.create_subscription(Intervention, topics.INTERVENTION, self.interventions.append,
                                      qos.RELIABLE)
        self.peer.create_subscription(SafetyStatus, topics.SAFETY_STATUS, self.status.append,
                                      qos.LATCHED)
        self.pose_pub = self.peer.create_publisher(PoseStamped, topics.CURRENT_POSE, qos.SENSOR)
        self.chunk_pub = self.peer.create_publisher(ActionChunk, topics.ACTION_CHUNK, qos.COMMAND)
        self.joy_pub = self.peer.create_publisher(Joy, JOY_TOPIC, qos.COMMAND)
        self.executor = rclpy.executors.SingleThreadedExecutor()
        self.executor.add_node(self.node)
        self.executor.add_node(self.peer)

    def close(self):
        self.executor.shutdown()
        self.peer.destroy_node()
        self.node.destroy_node()

    def now(self):
        return self.peer.get_clock().now()

    def publish_pose(self, pose=HOME):
        self.pose_pub.publish(array_to_pose(pose, 'fr3_link0', self.now().to_msg()))

    def spin_until(self, predicate, timeout=10.0, pose=HOME):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.publish_pose(pose)  # the robot keeps reporting its pose
            self.executor.spin_once(timeout_sec=0.02)
            if predicate():
                return True
        return False


@pytest.fixture
def harness():
    rclpy.init()
    h = Harness(control_rate=20.0, teleop_device='joy')
    yield h
    h.close()
    rclpy.try_shutdown()


def test_holds_the_robot_pose_without_policy(harness):
    assert harness.spin_until(lambda: len(harness.targets) >= 3)
    held = pose_to_array(harness.targets[-1], 0.0)
    np.testing.assert_allclose(held[:3], HOME[:3], atol=1e-6)
    assert harness.interventions[-1].active is False


def test_follows_a_policy_chunk_within_limits(harness):
    goal = HOME.copy()
    goal[0] += 0.2  # farther than one tick's step limit (0.05 m)
    chunk = ActionChunk(horizon=1, action_dim=7, data=goal.astype(np.float32).tolist())
    chunk.header.stamp = harness.now().to_msg()
    chunk.period.nanosec = 50_000_000
    harness.chunk_pub.publish(chunk)
    assert harness.spin_until(lambda: any(st.clipped for st in harness.status))
    clipped = [st.clipped for st in harness.status if st.clipped]
    assert clipped[0] & SafetyStatus.CLIP_TRANSLATION_STEP
    xs = np.array([pose_to_array(t, 0.0)[0] for t in harness.targets])
    assert 0.5 < xs[-1] <= goal[0] + 1e-6  # moved towards the goal, never past it
    assert np.all(np.abs(np.diff(xs)) <= 0.05 + 1e-6)  # at most one step per command


def test_streamed_chunks_give_one_command_per_period(harness):
    """Chunks at the control rate: each sends the command, the timer only fills gaps."""
    harness.spin_until(lambda: len(harness.targets) >= 2)
    period = 0.05  # the harness's control_rate 20 Hz
    chunk = ActionChunk(horizon=1, action_dim=7, data=HOME.astype(np.float32).tolist())
    chunk.period.nanosec = 50_000_000
    start = time.monotonic()
    next_chunk, sent, before = start, 0, len(harness.targets)
    while time.monotonic() - start < 2.0:
        if time.monotonic() >= next_chunk:
            chunk.header.stamp = harness.now().to_msg()
            harness.chunk_pub.publish(chunk)
            sent += 1
            next_chunk += period
        harness.publish_pose()
        harness.executor.spin_once(timeout_sec=0.005)
    commands = len(harness.targets) - before
    assert sent >= 30
    # one per chunk, a few timer fills for late chunks; the timer beside them would double it
    assert sent - 3 <= commands <= 1.25 * sent, (commands, sent)
    # chunks stopped: the timer takes over at the control rate (the watchdog can hold)
    before = len(harness.targets)
    start = time.monotonic()
    while time.monotonic() - start < 1.0:
        harness.publish_pose()
        harness.executor.spin_once(timeout_sec=0.005)
    assert 14 <= len(harness.targets) - before <= 22


def test_joy_takeover_is_flagged_and_estop_latches(harness):
    axes, buttons = input_to_joy(TeleopInput(twist=np.array([0, 1.0, 0, 0, 0, 0]), takeover=True))
    harness.joy_pub.publish(Joy(axes=axes, buttons=buttons))
    assert harness.spin_until(lambda: harness.interventions and harness.interventions[-1].active)
    iv = harness.interventions[-1]
    assert iv.source == Intervention.SOURCE_GAMEPAD and iv.target.position.y > 0.0

    axes, buttons = input_to_joy(TeleopInput(events=(Event.ESTOP,)))
    harness.joy_pub.publish(Joy(axes=axes, buttons=buttons))
    assert harness.spin_until(lambda: harness.status and harness.status[-1].estop_latched)
    assert harness.status[-1].mode == SafetyStatus.MODE_ESTOP

    client = harness.peer.create_client(SetMode, topics.SET_MODE)
    assert client.wait_for_service(timeout_sec=5)
    future = client.call_async(SetMode.Request(mode=SafetyStatus.MODE_AUTONOMOUS))
    harness.executor.spin_until_future_complete(future, timeout_sec=5)
    assert future.result().accepted is False and 'latched' in future.result().message
    request = SetMode.Request(mode=SafetyStatus.MODE_AUTONOMOUS, clear_estop=True)
    future = client.call_async(request)
    harness.executor.spin_until_future_complete(future, timeout_sec=5)
    assert future.result().accepted and future.result().mode == SafetyStatus.MODE_AUTONOMOUS


def test_takeover_ends_when_the_joy_stream_goes_silent():
    """A teleop node that dies mid-takeover must not keep steering.

    After joy_timeout the input reads as released, the takeover ends, the target stops moving.
    """
    rclpy.init()
    h = Harness(control_rate=20.0, teleop_device='joy', joy_timeout=0.3)
    try:
        axes, buttons = input_to_joy(TeleopInput(twist=np.array([0, 1.0, 0, 0, 0, 0]),
                                                 takeover=True))
        h.joy_pub.publish(Joy(axes=axes, buttons=buttons))  # one message, then silence
        assert h.spin_until(lambda: h.interventions and h.interventions[-1].active)
        assert h.spin_until(lambda: not h.interventions[-1].active, timeout=5.0)
        assert h.node._joy.timeouts == 1
        ys = [pose_to_array(t, 0.0)[1] for t in h.targets]
        n = len(ys)
        h.spin_until(lambda: len(h.targets) >= n + 5)
        later = [pose_to_array(t, 0.0)[1] for t in h.targets[n:]]
        assert later and max(later) - min(later) < 1e-9  # holding, not drifting
        assert max(ys) < 0.1  # 0.10 m/s for well under a second
    finally:
        h.close()
        rclpy.try_shutdown()


def test_malformed_chunk_is_rejected_and_counted(harness):
    harness.chunk_pub.publish(ActionChunk(horizon=2, action_dim=7, data=[0.0] * 5))
    assert harness.spin_until(lambda: harness.status and harness.status[-1].rejected_commands == 1)
    target = pose_to_array(harness.targets[-1], 0.0)
    np.testing.assert_allclose(target[:3], HOME[:3], atol=1e-6)  # still holding


def test_refuses_non_positive_rate():
    rclpy.init()
    try:
        with pytest.raises(ValueError, match='control_rate must be > 0 Hz, got -1.0'):
            SafetyNode(parameter_overrides=[Parameter('control_rate', value=-1.0)])
    finally:
        rclpy.try_shutdown()


def test_missing_spacemouse_is_named():
    rclpy.init()
    try:
        with pytest.raises(RuntimeError, match='SpaceMouse'):
            SafetyNode(parameter_overrides=[
                Parameter('teleop_device', value='spacemouse'),
                Parameter('teleop_device_path', value='/dev/rl100-no-hidraw')])
    finally:
        rclpy.try_shutdown()
