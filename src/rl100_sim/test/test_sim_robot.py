"""The simulated robot: command validation without ROS, and the node over DDS in lockstep."""

import json
import time

from geometry_msgs.msg import PoseStamped
import numpy as np
import pytest
import rclpy
from rclpy.node import Node
from rclpy.parameter import Parameter
from rl100_ros import diagnostics, qos, topics
from rl100_sim.sim_robot import CommandRejectedError, SimRobot
from rl100_sim.sim_robot_node import SIM_RESET, SIM_SUCCESS, SimRobotNode
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import JointState
from std_srvs.srv import Trigger

sim = pytest.importorskip('rl100.sim')


@pytest.fixture(scope='module')
def robot():
    r = SimRobot(sim.make_env('juicing-place', seed=0, max_steps=10**9))
    r.reset(0)
    return r


def test_holds_pose_without_command(robot):
    before = robot.reset(1)
    after = robot.advance()
    assert after.time == pytest.approx(robot.dt)
    np.testing.assert_allclose(after.position, before.position, atol=5e-3)


def test_tracks_a_target(robot):
    start = robot.reset(2)
    robot.command_pose('fr3_link0', start.position, start.quat_xyzw)  # taken: near the start
    goal = start.position + np.array([0.0, 0.05, 0.0])
    robot.command_pose('fr3_link0', goal, start.quat_xyzw)
    for _ in range(10):
        reading = robot.advance()
    assert np.linalg.norm(reading.position - goal) < 0.01


def test_after_a_reset_old_targets_are_held_off(robot):
    """The commander may still hold the last episode's target: the start pose holds instead."""
    start = robot.reset(3)
    old = start.position + np.array([0.1, -0.1, -0.05])
    robot.command_pose('fr3_link0', old, start.quat_xyzw)
    robot.command_gripper(1.0)
    for _ in range(5):
        reading = robot.advance()
    np.testing.assert_allclose(reading.position, start.position, atol=5e-3)
    assert reading.gripper_width > 0.07 and robot.held_off == 2  # still open
    robot.command_pose('fr3_link0', reading.position, start.quat_xyzw)  # re-anchored commander
    robot.command_pose('fr3_link0', old, start.quat_xyzw)
    robot.command_gripper(1.0)
    for _ in range(15):
        reading = robot.advance()
    assert np.linalg.norm(reading.position - old) < 0.01 and reading.gripper_width < 0.07
    assert robot.held_off == 2


@pytest.mark.parametrize('frame, pos, quat, message', [
    ('world', [0.5, 0, 0.3], [1, 0, 0, 0], "frame 'world'"),
    ('fr3_link0', [np.nan, 0, 0.3], [1, 0, 0, 0], 'non-finite'),
    ('fr3_link0', [3.0, 0, 0.3], [1, 0, 0, 0], 'out of reach'),
    ('fr3_link0', [0.5, 0, 0.3], [0, 0, 0, 0], 'not unit'),
])
def test_bad_targets_are_rejected(robot, frame, pos, quat, message):
    n = robot.rejected
    with pytest.raises(CommandRejectedError, match=message):
        robot.command_pose(frame, pos, quat)
    assert robot.rejected == n + 1


def test_bad_gripper_command_is_rejected(robot):
    with pytest.raises(CommandRejectedError, match='not in'):
        robot.command_gripper(float('nan'))


def test_node_lockstep_over_dds():
    rclpy.init()
    node = SimRobotNode(parameter_overrides=[Parameter('lockstep_timeout', value=0.05)])
    peer = Node('peer')
    clocks, poses, joints = [], [], []
    peer.create_subscription(Clock, '/clock', clocks.append, 10)
    peer.create_subscription(PoseStamped, topics.CURRENT_POSE, poses.append, qos.SENSOR)
    peer.create_subscription(JointState, topics.JOINT_STATES, joints.append, qos.SENSOR)
    target_pub = peer.create_publisher(PoseStamped, topics.TARGET_POSE, qos.COMMAND)
    executor = rclpy.executors.SingleThreadedExecutor()
    executor.add_node(node)
    executor.add_node(peer)

    def spin_until(predicate, timeout=20.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not predicate():
            executor.spin_once(timeout_sec=0.01)
        return predicate()

    try:
        assert spin_until(lambda: len(poses) >= 3)
        assert joints[-1].name[0] == 'fr3_joint1' and len(joints[-1].position) == 9
        t = [c.clock.sec + c.clock.nanosec * 1e-9 for c in clocks]
        assert np.all(np.diff(t) > 0) and np.diff(t).min() == pytest.approx(0.1, abs=1e-6)
        # first the pose it holds (after a reset the robot only takes a target near it), then
        # answer each tick with a target 5 cm to the side: lockstep steps on our command
        here, n = poses[-1], len(poses)
        target_pub.publish(here)
        assert spin_until(lambda: len(poses) > n)
        goal = poses[-1]
        goal.pose.position = here.pose.position
        goal.pose.position.y += 0.05
        for _ in range(15):
            n = len(poses)
            goal.header.stamp = poses[-1].header.stamp
            target_pub.publish(goal)
            assert spin_until(lambda n=n: len(poses) > n)
        assert abs(poses[-1].pose.position.y - goal.pose.position.y) < 0.01
        client = peer.create_client(Trigger, SIM_SUCCESS)
        future = client.call_async(Trigger.Request())
        assert spin_until(future.done)
        report = json.loads(future.result().message)
        assert report['success'] is False and report['steps'] >= 15
        assert report['episode_time'] == pytest.approx(report['steps'] * 0.1, abs=1e-6)
        assert report['success_time'] is None
        assert report['time_limit'] == pytest.approx(20.0)  # juicing-place: 200 steps at 10 Hz
        # the 3 poses before the first target: 2+ ticks stepped after waiting 0.05 s for one
        assert 2 <= report['lockstep_timeouts'] <= report['steps']
        level, _, values = node._status()
        assert values['lockstep_timeouts'] == report['lockstep_timeouts']
        assert values['steps'] >= report['steps'] and level in (diagnostics.OK, diagnostics.WARN)
        reset = peer.create_client(Trigger, SIM_RESET).call_async(Trigger.Request())
        assert spin_until(reset.done) and reset.result().success
        assert spin_until(lambda: json.loads(
            _call(peer, executor, SIM_SUCCESS).message)['seed'] == 1)
        after = json.loads(_call(peer, executor, SIM_SUCCESS).message)
        assert after['episode_time'] < after['time'] - 1.0  # counted from the reset
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


def _call(peer, executor, name):
    future = peer.create_client(Trigger, name).call_async(Trigger.Request())
    deadline = time.monotonic() + 10
    while not future.done() and time.monotonic() < deadline:
        executor.spin_once(timeout_sec=0.01)
    return future.result()
