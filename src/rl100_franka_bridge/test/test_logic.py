"""Bridge decisions without ROS or a robot: gripper goals with hysteresis, reflex recovery."""

import pytest
from rl100_franka_bridge.logic import (
    GripperCommander,
    GripperConfig,
    Recovery,
    RecoveryMachine,
    RobotMode,
)


def test_gripper_goals_only_on_change_with_hysteresis():
    g = GripperCommander(GripperConfig(close_above=0.6, open_below=0.4, force=30.0))
    assert g.update(0.0).kind == 'move'  # first command: open
    assert g.update(0.1) is None  # still open: no new goal
    assert g.update(0.55) is None  # inside the band: keep
    goal = g.update(0.9)
    assert goal.kind == 'grasp' and goal.force == 30.0 and goal.width == 0.0
    assert goal.epsilon_outer == pytest.approx(0.08)  # any object up to fully open counts
    assert g.update(0.45) is None  # hovering near 0.5 does not chatter
    assert g.update(0.3).kind == 'move'


def test_failed_open_is_retried_but_empty_grasp_is_not():
    g = GripperCommander()
    g.update(1.0)
    g.done(False)  # grasp closed on nothing: the hand is closed, as asked
    assert g.update(1.0) is None
    assert g.update(0.0).kind == 'move'
    g.done(False)
    assert g.update(0.0).kind == 'move'


def test_nan_command_raises():
    with pytest.raises(ValueError, match='NaN'):
        GripperCommander().update(float('nan'))


def test_reflex_recovery_sequence():
    r = RecoveryMachine(max_attempts=2)
    assert r.on_robot_mode(RobotMode.MOVE).hold is False
    action = r.on_robot_mode(RobotMode.REFLEX)
    assert action.hold and action.send_recovery and r.state == Recovery.RECOVERING
    assert not r.on_robot_mode(RobotMode.REFLEX).send_recovery  # no duplicate goal while waiting
    action = r.on_recovery_result(True)
    assert action.hold and not action.send_recovery and r.state == Recovery.OK
    assert 'operator' in action.message


def test_repeated_recovery_failure_latches_estop():
    r = RecoveryMachine(max_attempts=2)
    r.on_robot_mode(RobotMode.REFLEX)
    action = r.on_recovery_result(False)
    assert action.send_recovery and not action.estop
    action = r.on_recovery_result(False)
    assert action.estop and r.state == Recovery.FAILED
    assert r.on_robot_mode(RobotMode.REFLEX).send_recovery is False  # stays failed


def test_user_stop_holds():
    assert RecoveryMachine().on_robot_mode(RobotMode.USER_STOPPED).hold


def test_node_without_franka_msgs_names_it():
    import rclpy
    from rl100_franka_bridge.franka_bridge import FrankaBridge
    rclpy.init()
    try:
        with pytest.raises(RuntimeError, match='franka_msgs is not installed'):
            FrankaBridge()
    finally:
        rclpy.try_shutdown()
