"""Camera check node: watches, all day, that the scene camera stays where its calibration says.

A camera knocked during the day silently breaks a point-cloud policy (BENCHMARKS: 0/20 episodes
after a 15 mm / 2 deg knock). Every ``period`` s, when the arm has been still since the last
joint state (within ``still_rad``), this node takes the newest aligned depth image with its
camera_info and the joint angles, checks it against the robot and the table rendered from the
calibration in use (``rl100_camera.camera_check``) and reports on ``/diagnostics``: OK while the
camera is within ``warn_mm`` / ``warn_deg`` of it, WARN past that (naming the move and what to
run: ``python -m rl100_bringup.check_camera``), ERROR when the check is refused (the scene does
not match). It never changes the calibration itself: an operator does, after a look.
"""

from __future__ import annotations

import numpy as np
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.node import Node
from rl100_ros import diagnostics, qos, topics
from rl100_ros.node_main import run_node
from sensor_msgs.msg import CameraInfo, Image, JointState

from .camera_check import believed_pose, CameraCheck, depth_metres, Frame, robot_state, status

LEVELS = {0: diagnostics.OK, 1: diagnostics.WARN, 2: diagnostics.ERROR}  # camera_check -> bytes


class CameraCheckNode(Node):

    def __init__(self, **node_kwargs):
        super().__init__('camera_check', **node_kwargs)
        p = self._declare
        task = p('task', 'juicing-place', 'simulated task whose robot and table model is the '
                 'expected scene')
        pose = p('camera_pose', [float('nan')] * 7, 'the calibration in use: x y z qx qy qz qw '
                 "of the camera optical frame in the base frame (cloud_to_base's camera_pose); "
                 "NaN: the simulated task camera's own")
        self._period = float(p('period', 60.0, 's between checks (only while the arm is still)'))
        self._warn_mm = float(p('warn_mm', 3.0, 'WARN when the camera moved more than this (mm)'))
        self._warn_deg = float(p('warn_deg', 0.3, 'WARN when it turned more than this (deg)'))
        self._still = float(p('still_rad', 0.002, 'the arm counts as still when no joint moved '
                              'more than this (rad) between two joint states'))
        depth_topic = p('depth_topic', '/camera/camera/aligned_depth_to_color/image_raw',
                        'aligned depth image (16UC1 mm or 32FC1 m)')
        info_topic = p('info_topic', '/camera/camera/aligned_depth_to_color/camera_info',
                       'its camera_info')
        if not self._period > 0:
            raise ValueError(f'period must be > 0 s, got {self._period}')
        values = [] if all(v != v for v in pose) else list(pose)  # all NaN: the sim's own
        self._check = CameraCheck(believed_pose(values, task), task)
        self._depth = self._info = self._joints = self._gripper = None
        self._still_now = False
        self._result, self._error, self._checks, self._skipped = None, '', 0, 0
        self.create_subscription(Image, depth_topic, self._on_depth, qos.SENSOR)
        self.create_subscription(CameraInfo, info_topic, self._on_info, qos.SENSOR)
        self.create_subscription(JointState, topics.JOINT_STATES, self._on_joints, qos.SENSOR)
        self.create_subscription(JointState, topics.GRIPPER_STATE, self._on_gripper, qos.SENSOR)
        self.create_timer(self._period, self.check_now)
        self._diagnostics = diagnostics.Diagnostics(self, 'camera check', self._status)

    def _declare(self, name, default, description):
        self.declare_parameter(name, default, ParameterDescriptor(description=description))
        return self.get_parameter(name).value

    def _on_depth(self, msg: Image) -> None:
        self._depth = msg

    def _on_info(self, msg: CameraInfo) -> None:
        self._info = (msg.k[0], msg.k[4], msg.k[2], msg.k[5])

    def _on_joints(self, msg: JointState) -> None:
        from rl100.robot_state import split_joint_state

        try:
            width, arm = split_joint_state(list(msg.name), msg.position)
        except ValueError as exc:
            self.get_logger().warn(f'joint_states: {exc}', throttle_duration_sec=10.0)
            return
        if self._joints is not None:
            self._still_now = float(np.max(np.abs(arm - self._joints[1]))) <= self._still
        self._joints = (width, arm)

    def _on_gripper(self, msg: JointState) -> None:
        self._gripper = float(sum(msg.position))

    def check_now(self) -> bool:
        """Check the newest frame if there is one and the arm is still; True when a check ran."""
        if None in (self._depth, self._info, self._joints) or not self._still_now:
            self._skipped += 1
            return False
        width, arm = self._joints
        try:
            frame = Frame(depth_metres(self._depth), self._info,
                          robot_state(self._gripper if self._gripper is not None else width, arm))
            self._result, self._error = self._check([frame]), ''
        except ValueError as exc:  # refused, or a depth image it cannot read
            self._result, self._error = None, str(exc)
            self.get_logger().error(f'camera check: {exc}')
        self._checks += 1
        if self._result is not None:
            level, message = status(self._result, self._warn_mm, self._warn_deg)
            log = self.get_logger().warn if level else self.get_logger().info
            log(message)
        return True

    def _status(self):
        values = {'checks': self._checks, 'skipped (no frame or arm moving)': self._skipped}
        if self._error:
            return diagnostics.ERROR, f'check refused: {self._error}', values
        if self._result is None:
            return (diagnostics.WARN, 'not checked yet (no depth image, or the arm never still)',
                    values)
        level, message = status(self._result, self._warn_mm, self._warn_deg)
        level = LEVELS[level]
        values.update({k: v for k, v in self._result.items() if k != 'camera_pose'})
        values['camera_pose'] = ' '.join(f'{v:.6f}' for v in self._result['camera_pose'])
        return level, message, values

    def destroy_node(self):
        self._check.close()
        return super().destroy_node()


def main(args=None) -> int:
    return run_node(CameraCheckNode, args)


if __name__ == '__main__':
    raise SystemExit(main())
