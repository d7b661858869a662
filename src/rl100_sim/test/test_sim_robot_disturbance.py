"""The sim robot's ``disturbance`` parameter: ROS sees the observations rl100 eval sees."""

import numpy as np
import pytest
import rclpy
from rclpy.parameter import Parameter
from rl100_msgs.msg import SafetyStatus
from rl100_ros import topics
from rl100_sim.sim_robot import SimRobot
from rl100_sim.sim_robot_node import SimRobotNode

sim = pytest.importorskip('rl100.sim')
disturbances = pytest.importorskip('rl100.sim.disturbances')


def test_readings_are_the_filtered_observations():
    plain = SimRobot(sim.make_env('juicing-place', seed=0, max_steps=10**9))
    late = SimRobot(disturbances.make_env('juicing-place', 'latency:moderate', seed=0,
                                          max_steps=10**9))
    readings = {'plain': [plain.reset(4)], 'late': [late.reset(4)]}
    for robot, key in ((plain, 'plain'), (late, 'late')):
        start = readings[key][0]
        robot.command_pose('fr3_link0', start.position + [0.0, 0.05, 0.0], start.quat_xyzw)
        readings[key] += [robot.advance() for _ in range(6)]
    for t in range(7):  # latency 2: the robot reports what it measured two ticks earlier
        np.testing.assert_array_equal(readings['late'][t].position,
                                      readings['plain'][max(t - 2, 0)].position)
        assert readings['late'][t].time == pytest.approx(readings['plain'][t].time)


def test_node_parameter_attaches_the_families():
    rclpy.init()
    try:
        node = SimRobotNode(parameter_overrides=[
            Parameter('lockstep_timeout', value=0.01),
            Parameter('disturbance', value='push_arm:mild,latency')])
        try:
            dset = node._robot.env.disturbances
            assert [f.label() for f in dset.families] == ['push_arm:mild', 'latency:moderate']
            # pushes count the policy's steps: paused while the safety node is not autonomous
            assert topics.SAFETY_STATUS in {s.topic_name for s in node.subscriptions}
            assert not dset.paused  # no safety node heard from: as in-process
            node._on_safety(SafetyStatus(mode=SafetyStatus.MODE_HOLD))
            assert dset.paused
            node._on_safety(SafetyStatus(mode=SafetyStatus.MODE_AUTONOMOUS))
            assert not dset.paused
        finally:
            node.destroy_node()
        with pytest.raises(ValueError, match='unknown robustness family.*push_arm'):
            SimRobotNode(parameter_overrides=[Parameter('disturbance', value='shove')])
    finally:
        rclpy.try_shutdown()


def test_camera_pose_parameter_replaces_the_calibration_of_the_cloud():
    from rl100.geometry import matrix_to_pose7

    knock = {'family': 'camera_pose', 'offset': [0.01, 0.0, -0.01], 'turn': [0.0, 2.0, 0.0]}
    knocked = SimRobot(disturbances.make_env('juicing-place', knock, obs=('state', 'depth'),
                                             seed=0, max_steps=10**9))
    followed = SimRobot(disturbances.make_env('juicing-place', dict(knock, calibrated=True),
                                              obs=('state', 'depth'), seed=0, max_steps=10**9))
    knocked.reset(3)
    followed.reset(3)
    true_pose = followed.env.camera_info().base_T_cam  # calibrated=True: the pose it really has
    stale = knocked.points()
    knocked.camera_pose = true_pose  # what check_camera finds and the operator sets
    np.testing.assert_allclose(knocked.points(), followed.points(), atol=1e-5)
    assert len(stale) != len(knocked.points()) or not np.allclose(stale, knocked.points())
    rclpy.init()
    try:
        pose = ' '.join(str(v) for v in matrix_to_pose7(true_pose))
        node = SimRobotNode(parameter_overrides=[Parameter('lockstep_timeout', value=0.01),
                                                 Parameter('enable_points', value=True),
                                                 Parameter('camera_pose', value=pose)])
        try:
            np.testing.assert_allclose(node._robot.camera_pose, true_pose, atol=1e-9)
            # at run time (check_camera --apply): a good pose is taken, a bad one refused
            result = node.set_parameters([Parameter('camera_pose', value='0 0 1 0 0 0 1')])[0]
            assert result.successful
            np.testing.assert_allclose(node._robot.camera_pose[:3, 3], [0, 0, 1])
            result = node.set_parameters([Parameter('camera_pose', value='0 0 1 0 0')])[0]
            assert not result.successful and 'camera_pose' in result.reason
            np.testing.assert_allclose(node._robot.camera_pose[:3, 3], [0, 0, 1])  # kept
            assert node.set_parameters([Parameter('camera_pose', value='')])[0].successful
            assert node._robot.camera_pose is None  # back to the simulator's own
        finally:
            node.destroy_node()
        with pytest.raises(ValueError, match='camera_pose: .*unit norm'):
            SimRobotNode(parameter_overrides=[Parameter('camera_pose', value='1 0 0 0 0 0 2')])
    finally:
        rclpy.try_shutdown()
