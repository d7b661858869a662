"""Franka bridge node (robot PC only): safety-node commands onto franka_ros2, errors back.

- ``/rl100/gripper_command`` (std_msgs/Float32) -> franka_gripper ``move`` / ``grasp`` actions;
- ``franka_robot_state_broadcaster/robot_state`` (franka_msgs/FrankaRobotState): on a reflex,
  SetMode(HOLD) on the safety node and franka's ``error_recovery`` action, as
  ``RecoveryMachine`` decides;
- the target pose needs no bridging: remap the safety node's ``/rl100/target_pose`` onto the
  Cartesian impedance controller's ``target_pose`` topic.

franka_msgs exists only where franka_ros2 is installed; elsewhere the node exits naming it.
"""

from __future__ import annotations

from rcl_interfaces.msg import ParameterDescriptor
from rclpy.action import ActionClient
from rclpy.node import Node
from rl100_msgs.msg import SafetyStatus
from rl100_msgs.srv import SetMode
from rl100_ros import qos, topics
from rl100_ros.node_main import run_node
from std_msgs.msg import Float32

from .logic import GripperCommander, GripperConfig, RecoveryMachine

ROBOT_STATE = '/franka_robot_state_broadcaster/robot_state'


def _franka_interfaces():
    try:
        from franka_msgs.action import ErrorRecovery, Grasp, Move
        from franka_msgs.msg import FrankaRobotState
    except ImportError as exc:
        raise RuntimeError('franka_msgs is not installed: the Franka bridge runs on the robot PC '
                           'with franka_ros2 (see docker/robot.Dockerfile); in simulation the '
                           'sim robot takes /rl100/gripper_command directly') from exc
    return ErrorRecovery, Grasp, Move, FrankaRobotState


class FrankaBridge(Node):

    def __init__(self, **node_kwargs):
        super().__init__('franka_bridge', **node_kwargs)
        self._ErrorRecovery, self._Grasp, self._Move, state_type = _franka_interfaces()
        self.declare_parameter('grasp_force', 40.0,
                               ParameterDescriptor(description='grasp force of the hand, N'))
        self.declare_parameter('gripper_speed', 0.1,
                               ParameterDescriptor(description='finger speed, m/s'))
        self._gripper = GripperCommander(GripperConfig(
            force=float(self.get_parameter('grasp_force').value),
            speed=float(self.get_parameter('gripper_speed').value)))
        self._recovery = RecoveryMachine()
        self._grasp = ActionClient(self, self._Grasp, '/franka_gripper/grasp')
        self._move = ActionClient(self, self._Move, '/franka_gripper/move')
        self._error_recovery = ActionClient(self, self._ErrorRecovery,
                                            '/action_server/error_recovery')
        self._set_mode = self.create_client(SetMode, topics.SET_MODE)
        self.create_subscription(Float32, topics.GRIPPER_COMMAND, self._on_gripper, qos.COMMAND)
        self.create_subscription(state_type, ROBOT_STATE, self._on_state, qos.SENSOR)

    def _on_gripper(self, msg: Float32) -> None:
        goal = self._gripper.update(float(msg.data))
        if goal is None:
            return
        if goal.kind == 'grasp':
            request = self._Grasp.Goal(width=goal.width, speed=goal.speed, force=goal.force)
            request.epsilon.inner, request.epsilon.outer = goal.epsilon_inner, goal.epsilon_outer
            future = self._grasp.send_goal_async(request)
        else:
            request = self._Move.Goal(width=goal.width, speed=goal.speed)
            future = self._move.send_goal_async(request)
        future.add_done_callback(self._on_gripper_accepted)

    def _on_gripper_accepted(self, future) -> None:
        handle = future.result()
        if not handle.accepted:
            self._gripper.done(False)
            return
        handle.get_result_async().add_done_callback(
            lambda f: self._gripper.done(bool(getattr(f.result().result, 'success', False))))

    def _on_state(self, msg) -> None:
        self._act(self._recovery.on_robot_mode(int(msg.robot_mode)))

    def _act(self, action) -> None:
        if action.message:
            self.get_logger().warn(action.message)
        if action.hold or action.estop:
            mode = SafetyStatus.MODE_ESTOP if action.estop else SafetyStatus.MODE_HOLD
            self._set_mode.call_async(SetMode.Request(mode=mode, reason=action.message))
        if action.send_recovery:
            future = self._error_recovery.send_goal_async(self._ErrorRecovery.Goal())
            future.add_done_callback(self._on_recovery_accepted)

    def _on_recovery_accepted(self, future) -> None:
        handle = future.result()
        if not handle.accepted:
            self._act(self._recovery.on_recovery_result(False))
            return
        handle.get_result_async().add_done_callback(
            lambda f: self._act(self._recovery.on_recovery_result(f.result().status == 4)))


def main(args=None) -> int:
    return run_node(FrankaBridge, args)


if __name__ == '__main__':
    raise SystemExit(main())
