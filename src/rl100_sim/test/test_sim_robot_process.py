"""The sim robot in its own process, driven over DDS from this one until the task reports success.

The sim robot runs as it does in a graph (``python -m rl100_sim.sim_robot_node``, lockstep). Its
scripted operator (taking over at once: a two-step stall) publishes the task expert's targets on
``/rl100/teleop/target``; this process plays the robot-side command path in between (what the
safety node does with ``teleop_device: pose``): it answers every state tick with a target pose and
a gripper command, the held pose until the operator takes over, then the operator's target. The
arm must move, and ``/rl100/sim/success`` must report the orange on the cone.
"""

import json
import os
import signal
import subprocess
import sys
import time

from geometry_msgs.msg import PoseStamped
import numpy as np
import pytest
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from std_msgs.msg import Float32
from std_srvs.srv import Trigger

pytest.importorskip('rl100.sim')
from rl100_msgs.msg import TeleopTarget  # noqa: E402
from rl100_ros import qos, topics  # noqa: E402
from rl100_sim.sim_robot_node import SIM_SUCCESS  # noqa: E402

SEED = 3
DEADLINE = 120.0  # s wall: start-up (MuJoCo, DDS discovery) plus ~60 lockstep ticks


class _Relay(Node):
    """Answers each state tick with a target: the held pose, or the operator's once in control."""

    def __init__(self, context):
        super().__init__('relay', context=context)
        self.poses: list[PoseStamped] = []
        self.teleop: TeleopTarget | None = None
        self.takeover_ticks = 0
        self._target = self.create_publisher(PoseStamped, topics.TARGET_POSE, qos.COMMAND)
        self._gripper = self.create_publisher(Float32, topics.GRIPPER_COMMAND, qos.COMMAND)
        self.create_subscription(TeleopTarget, topics.TELEOP_TARGET, self._on_teleop, qos.COMMAND)
        self.create_subscription(PoseStamped, topics.CURRENT_POSE, self._on_pose, qos.SENSOR)
        self.success = self.create_client(Trigger, SIM_SUCCESS)

    def _on_teleop(self, msg: TeleopTarget) -> None:
        self.teleop = msg if msg.takeover else self.teleop

    def _on_pose(self, msg: PoseStamped) -> None:
        self.poses.append(msg)
        target = PoseStamped()
        target.header = msg.header  # stamped at the tick it answers: lockstep steps on it
        if self.teleop is None:
            target.pose = self.poses[0].pose
            gripper = 0.0
        else:
            target.pose, gripper = self.teleop.pose, self.teleop.gripper
            self.takeover_ticks += 1
        self._target.publish(target)
        self._gripper.publish(Float32(data=float(gripper)))


def _position(pose: PoseStamped) -> np.ndarray:
    p = pose.pose.position
    return np.array([p.x, p.y, p.z])


def test_sim_robot_process_moves_and_reports_success_over_dds(ros_env):
    proc = subprocess.Popen(
        [sys.executable, '-m', 'rl100_sim.sim_robot_node', '--ros-args',
         '-p', f'seed:={SEED}', '-p', 'scripted_operator:=true',
         '-p', 'operator_config:=\'{"stall_steps": 2}\'', '-p', 'lockstep_timeout:=0.5'],
        env=ros_env, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        start_new_session=True)
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=int(ros_env['ROS_DOMAIN_ID']))
    executor = SingleThreadedExecutor(context=context)
    relay = _Relay(context)
    executor.add_node(relay)
    report = None
    try:
        deadline = time.monotonic() + DEADLINE
        next_ask = 0.0
        while time.monotonic() < deadline and proc.poll() is None:
            executor.spin_once(timeout_sec=0.05)
            if not relay.takeover_ticks or time.monotonic() < next_ask:
                continue
            next_ask = time.monotonic() + 0.5  # while the expert drives: ask twice a second
            future = relay.success.call_async(Trigger.Request())
            while not future.done() and time.monotonic() < deadline:
                executor.spin_once(timeout_sec=0.05)
            report = json.loads(future.result().message) if future.done() else report
            if report is not None and report['success']:
                break
    finally:
        executor.shutdown(timeout_sec=2.0)
        relay.destroy_node()
        rclpy.try_shutdown(context=context)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
        try:
            out, _ = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, _ = proc.communicate()
    assert report is not None and report['success'], (report, out[-3000:])
    assert report['seed'] == SEED and report['success_time'] is not None
    assert report['takeover'] is not None  # the expert drove it, through this process
    travel = np.linalg.norm(_position(relay.poses[-1]) - _position(relay.poses[0]))
    steps = np.diff(np.array([_position(p) for p in relay.poses]), axis=0)
    path = float(np.linalg.norm(steps, axis=1).sum())
    assert travel > 0.05 and path > 0.2, (travel, path)
    assert proc.returncode == 0, out[-3000:]  # a clean exit on SIGINT
