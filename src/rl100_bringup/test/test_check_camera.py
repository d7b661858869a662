"""check_camera: the camera's calibration checked against the robot, in-process and over DDS."""

import json
import subprocess
import sys
import threading

import numpy as np
import pytest
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter

pytest.importorskip('rl100.sim')
from rl100.geometry import pose7_to_matrix  # noqa: E402
from rl100.keys import OBS_DEPTH, OBS_STATE  # noqa: E402
from rl100.sim import disturbances  # noqa: E402
from rl100.sim.bench_camera_check import task_area_error  # noqa: E402
from rl100_camera.camera_check import CameraCheck, Frame, status, WARN  # noqa: E402

KNOCK = {'family': 'camera_pose', 'offset': [0.012, -0.008, 0.006], 'turn': [0.8, -1.5, 1.2]}


def _poses(env):
    """(believed, true) (4, 4) scene-camera poses of a knocked camera."""
    sim = env.unwrapped
    return (np.array(sim.camera_info().base_T_cam),
            np.array(sim._get_renderer().info(sim.data, sim.scene_camera).base_T_cam))


def _close(a, b, mm=3.0):
    """Do task-area points seen through ``a`` land within ``mm`` of those seen through ``b``?"""
    err = task_area_error(a, b).max() * 1000
    return err < mm, err


def test_check_frames_finds_the_knock_and_the_stand():
    stand = {'family': 'table_height', 'shift': [0.015, 0.015]}
    env = disturbances.make_env('juicing-place', [KNOCK, stand], obs=('state', 'depth'))
    try:
        frames = []
        for seed in (1, 2):
            obs, _ = env.reset(seed=seed)
            v = env.unwrapped.camera_info()
            frames.append(Frame(obs[OBS_DEPTH], (v.fx, v.fy, v.cx, v.cy), obs[OBS_STATE]))
        believed, true = _poses(env)
    finally:
        env.close()
    check = CameraCheck(believed)
    try:
        result = check(frames)
        with pytest.raises(ValueError, match='no frames'):
            check([])
    finally:
        check.close()
    ok, err = _close(pose7_to_matrix(result['camera_pose']), true)
    assert ok, (err, result)
    assert result['frames'] == 2 and result['moved_mm'] > 5 and result['turned_deg'] > 1.5
    assert result['table_dz'] == pytest.approx(0.015, abs=0.001)
    level, message = status(result)
    assert level == WARN and 'check_camera' in message


def test_command_reads_the_sim_robots_camera_over_dds(ros_env):
    """The sim robot node (knocked camera) in this process; the command in its own."""
    from rl100_sim.sim_robot_node import SimRobotNode

    context = rclpy.Context()
    rclpy.init(context=context, domain_id=int(ros_env['ROS_DOMAIN_ID']))
    executor = SingleThreadedExecutor(context=context)
    node = None
    try:
        node = SimRobotNode(context=context, parameter_overrides=[
            Parameter('enable_camera', value=True), Parameter('real_time_factor', value=2.0),
            Parameter('disturbance', value=json.dumps([KNOCK]))])
        executor.add_node(node)
        spin = threading.Thread(target=executor.spin, daemon=True)
        spin.start()
        proc = subprocess.run([sys.executable, '-m', 'rl100_bringup.check_camera', '--frames',
                               '3', '--timeout', '40', '--apply', '/sim_robot'], env=ros_env,
                              text=True, capture_output=True, timeout=90)
        believed, true = _poses(node._robot.env)
        applied = node._robot.camera_pose
    finally:
        executor.shutdown(timeout_sec=2.0)
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown(context=context)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(proc.stdout.splitlines()[0])
    ok, err = _close(pose7_to_matrix(result['camera_pose']), true)
    assert ok, (err, proc.stdout)
    assert result['frames'] == 3
    assert "launch with camera_pose:='" in proc.stdout
    assert 'cloud_to_base camera_pose: [' in proc.stdout
    assert abs(result['table_dz']) < 0.001 and 'launch with table_dz:=' in proc.stdout
    # --apply: the running sim robot now makes its cloud with the corrected calibration
    assert 'camera_pose set on /sim_robot' in proc.stdout
    assert applied is not None and _close(applied, true)[0]
    np.testing.assert_allclose(applied, pose7_to_matrix(result['camera_pose']), atol=1e-5)


def test_check_of_a_camera_with_other_intrinsics_than_the_model():
    """A wide 72 x 128 image with a 45 deg vertical fov (the model camera: 96 x 96, 58 deg)."""
    env = disturbances.make_env('juicing-place', KNOCK, obs=('state', 'depth'),
                                camera_size=(72, 128))
    try:
        sim = env.unwrapped
        sim.model.cam_fovy[sim.model.camera(sim.scene_camera).id] = 45.0
        obs, _ = env.reset(seed=4)
        v = sim.camera_info()
        assert v.width == 128 and abs(v.fy - 36 / np.tan(np.radians(22.5))) < 1e-6
        frame = Frame(obs[OBS_DEPTH], (v.fx, v.fy, v.cx, v.cy), obs[OBS_STATE])
        believed, true = _poses(env)
    finally:
        env.close()
    check = CameraCheck(believed)
    try:
        result = check([frame])
        assert check._size == (96, 171)  # the image's aspect
    finally:
        check.close()
    ok, err = _close(pose7_to_matrix(result['camera_pose']), true)
    assert ok, (err, result)


def test_still_frames_pair_a_depth_stamp_with_a_still_arm_of_that_moment():
    from rl100_camera.camera_check import StillFrames

    frames = StillFrames(still_rad=0.002, window_s=0.25, tolerance_s=0.02)
    arm = np.zeros(7)
    for t in (0.0, 0.1, 0.2):
        frames.add(t, 0.04, arm)
    width, got = frames.state_at(0.2)
    assert width == 0.04 and np.array_equal(got, arm)
    assert frames.state_at(0.5) is None  # no joint state of that moment
    assert frames.state_at(0.05) is None  # only one state in the window before it
    frames.add(0.3, 0.04, arm + 0.01)  # the arm moves
    assert frames.state_at(0.3) is None
    frames.add(10.0, 0.04, arm)  # the old ones are dropped after keep_s
    assert frames.state_at(0.2) is None
