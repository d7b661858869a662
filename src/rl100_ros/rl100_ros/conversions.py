"""Conversions between ROS messages and the stack's (7,) pose + gripper arrays."""

from __future__ import annotations

from geometry_msgs.msg import PoseStamped
import numpy as np
from rl100.geometry import mat_to_rotvec, quat_wxyz_to_mat, rotvec_to_quat_wxyz

FRANKA_MAX_WIDTH = 0.08  # m, fully open Franka Hand


def seconds(t) -> float:
    """builtin_interfaces Time or Duration (``sec``, ``nanosec``) -> float seconds."""
    return t.sec + t.nanosec * 1e-9


def pose_to_array(msg: PoseStamped, gripper: float) -> np.ndarray:
    """PoseStamped (+ gripper 0..1) -> (7,) position, rotation vector, gripper."""
    p, q = msg.pose.position, msg.pose.orientation
    rotvec = mat_to_rotvec(quat_wxyz_to_mat(np.array([q.w, q.x, q.y, q.z])))
    return np.array([p.x, p.y, p.z, *rotvec, gripper], dtype=np.float64)


def array_to_pose(target: np.ndarray, frame_id: str, stamp) -> PoseStamped:
    """(7,) target -> PoseStamped (the gripper entry is not part of the pose)."""
    msg = PoseStamped()
    msg.header.frame_id = frame_id
    msg.header.stamp = stamp
    msg.pose.position.x, msg.pose.position.y, msg.pose.position.z = (float(v) for v in target[:3])
    w, x, y, z = rotvec_to_quat_wxyz(target[3:6])
    o = msg.pose.orientation
    o.w, o.x, o.y, o.z = float(w), float(x), float(y), float(z)
    return msg


def finger_width_to_gripper(positions) -> float:
    """Sum of the two finger joint positions (m) -> gripper closure 0 open .. 1 closed."""
    width = float(sum(positions[:2]))
    return float(np.clip(1.0 - width / FRANKA_MAX_WIDTH, 0.0, 1.0))
