"""Check the scene camera's hand-eye calibration against the robot itself (issue: robustness).

    python -m rl100_bringup.check_camera [--camera-pose X Y Z QX QY QZ QW] [--frames 5]

A camera knocked by a centimetre after calibration moves the whole point cloud against the
robot, and a point-cloud policy places the orange beside the juicer (BENCHMARKS: 0.05-0.15
success). The robot and the table are in view all the time and their geometry is known: this
takes ``--frames`` aligned depth images (realsense-ros names; the sim robot publishes the same)
with the joint angles of the same moment, renders what the camera should see of the robot and
the fixed world from the believed pose, registers one against the other
(``rl100_camera.camera_check``; the table's height is estimated with the camera pose, the
robot tells the two apart) and prints how far the camera moved and the corrected
``camera_pose``: for cloud_to_base's parameter on the robot, and as the ``camera_pose`` launch
argument of the simulated graph; and the table's height as the ``table_dz`` launch argument.
Keep the arm still and clear the table of anything large.

``--camera-pose``: the calibration in use (cloud_to_base's ``camera_pose``); default: the
simulated task's own scene camera. ``--apply NODE`` also sets the corrected pose on the running
node (exit code 3 when that fails). Exit code 2 with the reason when no frames arrive or the
check is refused (the scene does not match: wrong task model, wrong calibration by far, or
the view does not fix all six degrees of freedom).
"""

from __future__ import annotations

import argparse
import json
import sys

from rl100_camera.camera_check import believed_pose, CameraCheck, depth_metres, Frame, robot_state

from .listen import listen

DEPTH_TOPIC = '/camera/camera/aligned_depth_to_color/image_raw'
DEPTH_INFO_TOPIC = '/camera/camera/aligned_depth_to_color/camera_info'


def collect(n: int, timeout: float, depth_topic: str, info_topic: str) -> list:
    """``n`` depth frames with the intrinsics and the robot state of the same moment."""
    from rl100.robot_state import split_joint_state
    from rl100_ros import qos, topics
    from sensor_msgs.msg import CameraInfo, Image, JointState

    latest: dict = {}
    frames: list = []

    def on_depth(msg):
        if 'info' in latest and 'joints' in latest:
            width, arm = latest['joints']
            state = robot_state(latest.get('gripper', width), arm)
            frames.append(Frame(depth_metres(msg), latest['info'], state))

    def on_info(msg):
        latest['info'] = (msg.k[0], msg.k[4], msg.k[2], msg.k[5])

    def on_joints(msg):
        latest['joints'] = split_joint_state(list(msg.name), msg.position)

    def on_gripper(msg):
        latest['gripper'] = float(sum(msg.position))

    def subscribe(node):
        node.create_subscription(Image, depth_topic, on_depth, qos.SENSOR)
        node.create_subscription(CameraInfo, info_topic, on_info, qos.SENSOR)
        node.create_subscription(JointState, topics.JOINT_STATES, on_joints, qos.SENSOR)
        node.create_subscription(JointState, topics.GRIPPER_STATE, on_gripper, qos.SENSOR)

    listen('check_camera', subscribe, lambda: len(frames) >= n, timeout)
    return frames[:n]


def apply(node_name: str, pose: list, timeout: float) -> str | None:
    """Set ``camera_pose`` on a running node (cloud_to_base, sim_robot); None, or why it failed.

    The parameter's current type decides what is sent (``rl100_camera.calibration_param``);
    the node checks the pose and may refuse it.
    """
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rl100_camera.calibration_param import set_camera_pose

    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node('check_camera_apply', context=context)
    executor = SingleThreadedExecutor(context=context)
    try:
        def call(srv_type, service, request):
            client = node.create_client(srv_type, service)
            if not client.wait_for_service(timeout_sec=timeout):
                return None
            future = client.call_async(request)
            rclpy.spin_until_future_complete(node, future, executor=executor, timeout_sec=timeout)
            return future.result() if future.done() else None

        set_camera_pose(call, node_name, pose)
        return None
    except ValueError as exc:
        return f'{exc} (within {timeout:g} s)' if 'did not answer' in str(exc) else str(exc)
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown(context=context)


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
    parser.add_argument('--apply', default='', metavar='NODE',
                        help='also set the corrected camera_pose on this running node '
                        '(/cloud_to_base on the robot, /sim_robot in simulation); '
                        'exit code 3 when it cannot be set')
    args = parser.parse_args(argv)
    try:
        believed = believed_pose(args.camera_pose, args.task)
    except ValueError as exc:
        print(f'check_camera: --camera-pose: {exc}', file=sys.stderr)
        return 2
    frames = collect(args.frames, args.timeout, args.depth_topic, args.info_topic)
    if not frames:
        print(f'check_camera: no depth frame with camera_info and joint states within '
              f'{args.timeout:g} s (is the camera running? {args.depth_topic})', file=sys.stderr)
        return 2
    check = CameraCheck(believed, args.task)
    try:
        result = check(frames)
    except ValueError as exc:
        print(f'check_camera: {exc}', file=sys.stderr)
        return 2
    finally:
        check.close()
    print(json.dumps(result))
    pose = ' '.join(f'{v:.6f}' for v in result['camera_pose'])
    print(f"the camera moved {result['moved_mm']:.1f} mm and turned "
          f"{result['turned_deg']:.2f} deg from the calibration in use")
    print(f"robot: cloud_to_base camera_pose: [{pose.replace(' ', ', ')}]")
    print(f"simulation: launch with camera_pose:='{pose}'")
    print(f"the table top stands {result['table_dz'] * 1000:+.1f} mm from the model's: "
          f"launch with table_dz:={result['table_dz']:.4f}")
    if args.apply:
        problem = apply(args.apply, result['camera_pose'], args.timeout)
        if problem is not None:
            print(f'check_camera: --apply: {problem}', file=sys.stderr)
            return 3
        print(f'camera_pose set on {args.apply} (until it restarts: put it in the config too)')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
