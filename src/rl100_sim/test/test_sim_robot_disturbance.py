"""The sim robot's ``disturbance`` parameter: ROS sees the observations rl100 eval sees."""

import numpy as np
import pytest
import rclpy
from rclpy.parameter import Parameter
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
        finally:
            node.destroy_node()
        with pytest.raises(ValueError, match='unknown robustness family.*push_arm'):
            SimRobotNode(parameter_overrides=[Parameter('disturbance', value='shove')])
    finally:
        rclpy.try_shutdown()
