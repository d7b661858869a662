"""Check the scene camera's hand-eye calibration against the robot itself (issue: robustness).

    python -m rl100_bringup.check_camera [--camera-pose X Y Z QX QY QZ QW] [--frames 5]

A camera knocked by a centimetre after calibration moves the whole point cloud against the
robot, and a point-cloud policy places the orange beside the juicer (BENCHMARKS: 0.05-0.15
success). The robot and the table are in view all the time and their geometry is known: this
takes ``--frames`` aligned depth images (realsense-ros names; the sim robot publishes the same)
with the joint angles of the same moment, renders what the camera should see of the robot and
the fixed world from the believed pose (``rl100.sim.expected_scene``), registers one against
the other (``rl100.registration``; the table's height is estimated with the camera pose, the
robot tells the two apart) and prints how far the camera moved and the corrected
``camera_pose``: for cloud_to_base's parameter on the robot, and as the ``camera_pose`` launch
argument of the simulated graph; and the table's height as the ``table_dz`` launch argument.
Keep the arm still and clear the table of anything large.

``--camera-pose``: the calibration in use (cloud_to_base's ``camera_pose``); default: the
simulated task's own scene camera. Exit code 2 with the reason when no frames arrive or the
check is refused (the scene does not match: wrong task model, wrong calibration by far, or
the view does not fix all six degrees of freedom).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
import json
import sys
import time

import numpy as np

DEPTH_TOPIC = '/camera/camera/aligned_depth_to_color/image_raw'
DEPTH_INFO_TOPIC = '/camera/camera/aligned_depth_to_color/camera_info'


@dataclass(frozen=True)
class View:
    """Intrinsics of a camera_info and the believed pose (a ``rl100.pointcloud.PinholeView``)."""

    fx: float
    fy: float
    cx: float
    cy: float
    base_T_cam: np.ndarray  # noqa: N815 - the PinholeView protocol's name; (4, 4)


@dataclass(frozen=True)
class Frame:
    """One depth image (H, W) m, its intrinsics (fx, fy, cx, cy) and the robot state (15,) then."""

    depth: np.ndarray
    intrinsics: tuple
    state: np.ndarray


def depth_metres(msg) -> np.ndarray:
    """(H, W) float32 m from a 16UC1 (mm, the RealSense default) or 32FC1 (m) Image."""
    from rl100_camera.messages import image_to_array

    if msg.encoding == '32FC1':
        flat = np.frombuffer(bytes(msg.data), dtype=np.float32)
        depth = flat.reshape(msg.height, msg.step // 4)[:, :msg.width]
    elif msg.encoding == '16UC1':
        depth = image_to_array(msg).astype(np.float32) / 1000.0
    else:
        raise ValueError(f'depth image encoding {msg.encoding!r}: expected 16UC1 (mm) or '
                         '32FC1 (m)')
    return np.where(np.isfinite(depth) & (depth > 0), depth, 0.0).astype(np.float32)


def check_frames(frames: list, believed: np.ndarray, task: str = 'juicing-place') -> dict:
    """Register each frame against the expected scene; the median correction and what it gives.

    Returns ``{"moved_mm", "turned_deg", "spread_mm", "frames", "paired", "rms_mm", "table_dz"
    (m, the table top above the model's), "camera_pose": [x y z qx qy qz qw]}``. ValueError
    when no frame registers (with the reason).
    """
    from rl100.geometry import mat_to_rotvec, matrix_to_pose7, rotvec_to_mat
    from rl100.registration import corrected_extrinsic
    from rl100.sim import make_env
    from rl100.sim.expected_scene import ExpectedScene

    if not frames:
        raise ValueError('no frames')
    env = make_env(task, obs=('state',))
    scene = ExpectedScene(env)
    try:
        regs = [scene.check(f.depth, f.state, View(*f.intrinsics, believed)) for f in frames]
    finally:
        scene.close()
        env.close()
    poses = [corrected_extrinsic(believed, r) for r in regs]
    position = np.median([p[:3, 3] for p in poses], axis=0)
    rotvec = np.median([mat_to_rotvec(p[:3, :3] @ believed[:3, :3].T) for p in poses], axis=0)
    pose = np.eye(4)
    pose[:3, :3] = rotvec_to_mat(rotvec) @ believed[:3, :3]
    pose[:3, 3] = position
    spread = max(float(np.linalg.norm(p[:3, 3] - position)) for p in poses)
    return {'moved_mm': round(float(np.linalg.norm(position - believed[:3, 3])) * 1000, 2),
            'turned_deg': round(float(np.degrees(np.linalg.norm(rotvec))), 3),
            'spread_mm': round(spread * 1000, 2), 'frames': len(regs),
            'paired': round(float(np.median([r.paired for r in regs])), 3),
            'rms_mm': round(float(np.median([r.rms_m for r in regs])) * 1000, 2),
            'table_dz': round(float(np.median([r.table_dz for r in regs])), 4),
            'camera_pose': [round(float(v), 6) for v in matrix_to_pose7(pose)]}


def collect(n: int, timeout: float, depth_topic: str, info_topic: str) -> list:
    """``n`` depth frames with the intrinsics and the robot state of the same moment."""
    import rclpy
    from rclpy.node import Node
    from rl100.robot_state import split_joint_state, state_vector
    from rl100_ros import qos, topics
    from sensor_msgs.msg import CameraInfo, Image, JointState

    latest: dict = {}
    frames: list = []

    def on_depth(msg):
        if 'info' in latest and 'joints' in latest:
            width, arm = latest['joints']
            width = latest.get('gripper', width)
            # the TCP pose is not needed: the expected scene is rendered from the joints
            state = state_vector(np.zeros(3), np.array([0.0, 0.0, 0.0, 1.0]), width, arm)
            frames.append(Frame(depth_metres(msg), latest['info'], state))

    def on_info(msg):
        latest['info'] = (msg.k[0], msg.k[4], msg.k[2], msg.k[5])

    def on_joints(msg):
        latest['joints'] = split_joint_state(list(msg.name), msg.position)

    def on_gripper(msg):
        latest['gripper'] = float(np.sum(msg.position))

    rclpy.init()
    try:
        node = Node('check_camera')
        node.create_subscription(Image, depth_topic, on_depth, qos.SENSOR)
        node.create_subscription(CameraInfo, info_topic, on_info, qos.SENSOR)
        node.create_subscription(JointState, topics.JOINT_STATES, on_joints, qos.SENSOR)
        node.create_subscription(JointState, topics.GRIPPER_STATE, on_gripper, qos.SENSOR)
        deadline = time.monotonic() + timeout
        while len(frames) < n and time.monotonic() < deadline:
            rclpy.spin_once(node, timeout_sec=0.1)
        node.destroy_node()
    finally:
        rclpy.try_shutdown()
    return frames[:n]


def _believed_pose(values, task: str) -> np.ndarray:
    from rl100.geometry import pose7_to_matrix

    if values:
        return pose7_to_matrix(values)
    from rl100.sim import make_env

    env = make_env(task, obs=('state',))
    try:
        env.reset(seed=0)  # the camera's pose is computed by the first forward pass
        return np.array(env.unwrapped.camera_info().base_T_cam)
    finally:
        env.close()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog='python -m rl100_bringup.check_camera',
                                     description=__doc__.split('\n\n')[0])
    parser.add_argument('--camera-pose', type=float, nargs=7, default=None,
                        metavar=('X', 'Y', 'Z', 'QX', 'QY', 'QZ', 'QW'),
                        help='the calibration in use (default: the simulated task camera)')
    parser.add_argument('--task', default='juicing-place',
                        help='simulated task whose robot and table model is the expected scene')
    parser.add_argument('--frames', type=int, default=5, help='depth frames to check')
    parser.add_argument('--timeout', type=float, default=20.0, help='s to wait for them')
    parser.add_argument('--depth-topic', default=DEPTH_TOPIC, help='aligned depth image')
    parser.add_argument('--info-topic', default=DEPTH_INFO_TOPIC, help='its camera_info')
    args = parser.parse_args(argv)
    try:
        believed = _believed_pose(args.camera_pose, args.task)
    except ValueError as exc:
        print(f'check_camera: --camera-pose: {exc}', file=sys.stderr)
        return 2
    frames = collect(args.frames, args.timeout, args.depth_topic, args.info_topic)
    if not frames:
        print(f'check_camera: no depth frame with camera_info and joint states within '
              f'{args.timeout:g} s (is the camera running? {args.depth_topic})', file=sys.stderr)
        return 2
    try:
        result = check_frames(frames, believed, args.task)
    except ValueError as exc:
        print(f'check_camera: {exc}', file=sys.stderr)
        return 2
    print(json.dumps(result))
    pose = ' '.join(f'{v:.6f}' for v in result['camera_pose'])
    print(f"the camera moved {result['moved_mm']:.1f} mm and turned "
          f"{result['turned_deg']:.2f} deg from the calibration in use")
    print(f"robot: cloud_to_base camera_pose: [{pose.replace(' ', ', ')}]")
    print(f"simulation: launch with camera_pose:='{pose}'")
    print(f"the table top stands {result['table_dz'] * 1000:+.1f} mm from the model's: "
          f"launch with table_dz:={result['table_dz']:.4f}")
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
