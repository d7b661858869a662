"""SafetyFilter without ROS: modes, e-stop latch, takeover, watchdog, limits, bad input."""

import numpy as np
import pytest
from rl100.geometry import mat_to_rotvec, rotvec_to_mat
from rl100_safety.safety_filter import Clip, Mode, SafetyFilter, SafetyLimits, Source

DOWN = np.array([np.pi, 0.0, 0.0])  # gripper pointing down
HOME = np.array([0.5, 0.0, 0.3, *DOWN, 0.0])


def _filter(**limits):
    f = SafetyFilter(SafetyLimits(**limits))
    f.observe(0.0, HOME)
    return f


def _autonomous(**limits):
    f = _filter(**limits)
    assert f.set_mode(Mode.AUTONOMOUS)[0]
    return f


def test_nothing_before_first_observation_then_hold():
    f = SafetyFilter()
    assert f.tick(0.0) is None
    f.observe(0.0, HOME)
    out = f.tick(0.0)
    assert out.source == Source.HOLD and out.mode == Mode.HOLD
    np.testing.assert_allclose(out.target, HOME)


def test_policy_chunk_is_followed_step_by_step():
    f = _autonomous()
    actions = np.tile(HOME, (4, 1))
    actions[:, 0] += [0.01, 0.02, 0.03, 0.04]
    assert f.policy_chunk(stamp=0.0, period=0.1, actions=actions)
    for t, x in zip([0.0, 0.1, 0.2, 0.3], actions[:, 0], strict=True):
        f.observe(t, HOME)
        out = f.tick(t)
        assert out.source == Source.POLICY and out.clipped == Clip.NONE
        assert out.target[0] == pytest.approx(x)


def test_translation_step_and_workspace_limits():
    f = _autonomous(max_translation_step=0.02)
    far = HOME.copy()
    far[:3] = [0.5, 0.0, -0.5]  # 0.8 m down, below the table
    f.policy_chunk(0.0, 0.1, far[None])
    out = f.tick(0.0)
    assert out.clipped & Clip.TRANSLATION_STEP
    assert np.linalg.norm(out.target[:3] - HOME[:3]) == pytest.approx(0.02)
    for k in range(1, 30):
        f.observe(k * 0.1, out.target)
        f.policy_chunk(k * 0.1, 0.1, far[None])
        out = f.tick(k * 0.1)
    assert out.target[2] == pytest.approx(0.0)  # stopped at the workspace floor
    assert out.clipped & Clip.WORKSPACE


def test_extra_ticks_do_not_raise_the_speed_limit():
    """Ticks faster than the control period move only the elapsed fraction of a step.

    Timer jitter or an extra tick on chunk arrival never raise the speed above step / period.
    """
    f = _autonomous(max_translation_step=0.02, period=0.1)
    far = HOME.copy()
    far[0] += 0.5
    f.policy_chunk(0.0, 0.1, far[None])
    start = f.tick(0.0).target
    for k in range(1, 11):  # ten ticks in one period
        f.observe(k * 0.01, HOME)
        out = f.tick(k * 0.01)
    assert out.target[0] - start[0] == pytest.approx(0.02)
    assert f.tick(0.1).target[0] == pytest.approx(out.target[0])  # same instant: no motion


def test_rotation_step_limit_takes_the_short_way():
    f = _autonomous(max_rotation_step=0.1)
    turned = HOME.copy()
    turned[3:6] = mat_to_rotvec(rotvec_to_mat([0, 0, 1.0]) @ rotvec_to_mat(DOWN))  # yaw by 1 rad
    f.policy_chunk(0.0, 0.1, turned[None])
    out = f.tick(0.0)
    assert out.clipped & Clip.ROTATION_STEP
    rel = mat_to_rotvec(rotvec_to_mat(out.target[3:6]) @ rotvec_to_mat(DOWN).T)
    assert np.linalg.norm(rel) == pytest.approx(0.1, abs=1e-6)
    np.testing.assert_allclose(rel / np.linalg.norm(rel), [0, 0, 1], atol=1e-6)


def test_gripper_step_limit():
    f = _autonomous(max_gripper_step=0.25)
    closed = HOME.copy()
    closed[6] = 1.0
    f.policy_chunk(0.0, 0.1, closed[None])
    out = f.tick(0.0)
    assert out.target[6] == pytest.approx(0.25) and out.clipped == Clip.GRIPPER_STEP


@pytest.mark.parametrize('bad, message', [
    (np.full((2, 7), np.nan), 'non-finite'),
    (np.zeros((2, 6)), 'shape'),
    (np.zeros((0, 7)), 'shape'),
])
def test_bad_policy_chunks_are_rejected_and_never_forwarded(bad, message):
    f = _autonomous()
    assert not f.policy_chunk(0.0, 0.1, bad)
    assert f.rejected == 1 and message in f.last_reason
    out = f.tick(0.0)
    assert out.source == Source.HOLD
    assert np.all(np.isfinite(out.target))


def test_watchdog_holds_on_stale_observation_and_stale_policy():
    f = _autonomous(watchdog_periods=3.0, period=0.1)
    moved = HOME.copy()
    moved[0] += 0.01
    f.policy_chunk(0.0, 0.1, np.tile(moved, (2, 1)))
    assert f.tick(0.0).source == Source.POLICY
    out = f.tick(0.5)  # last observation at t=0: 0.5 s > 0.3 s window
    assert out.watchdog_tripped and out.source == Source.HOLD and 'no observation' in out.reason
    np.testing.assert_allclose(out.target, moved)  # holds the last commanded pose
    f.observe(0.5, moved)
    out = f.tick(0.5)  # fresh observation, but the 2-step chunk from t=0 is used up and old
    assert out.watchdog_tripped and 'policy chunk' in out.reason
    f.policy_chunk(0.5, 0.1, moved[None])
    assert f.tick(0.5).source == Source.POLICY  # recovers by itself when inputs are fresh


def test_operator_takeover_replaces_policy_and_is_flagged():
    f = _autonomous()
    f.policy_chunk(0.0, 0.1, HOME[None])
    op = HOME.copy()
    op[1] += 0.01
    f.operator_command(op, active=True)
    out = f.tick(0.0)
    assert out.source == Source.OPERATOR and out.intervention
    assert out.target[1] == pytest.approx(0.01)
    f.operator_command(None, active=False)
    f.policy_chunk(0.1, 0.1, HOME[None])
    f.observe(0.1, HOME)
    out = f.tick(0.1)
    assert out.source == Source.POLICY and not out.intervention


def test_teleop_mode_follows_operator_without_intervention_flag():
    f = _filter()
    f.set_mode(Mode.TELEOP)
    assert f.tick(0.0).source == Source.HOLD  # operator idle: hold
    op = HOME.copy()
    op[2] += 0.01
    f.operator_command(op, active=True)
    out = f.tick(0.0)
    assert out.source == Source.OPERATOR and not out.intervention  # a demo, not an intervention


def test_estop_latches_until_explicitly_cleared():
    f = _autonomous()
    f.estop('operator key')
    f.policy_chunk(0.0, 0.1, HOME[None])
    f.operator_command(HOME, active=True)
    out = f.tick(0.0)
    assert out.mode == Mode.ESTOP and out.source == Source.HOLD
    accepted, message = f.set_mode(Mode.AUTONOMOUS)
    assert not accepted and 'latched' in message and f.mode == Mode.ESTOP
    assert f.set_mode(Mode.AUTONOMOUS, clear_estop=True)[0]
    assert f.mode == Mode.AUTONOMOUS and not f.estop_latched
    assert f.tick(0.0).source == Source.OPERATOR  # takeover still held by the operator


def test_mode_change_drops_the_old_chunk():
    f = _autonomous()
    f.policy_chunk(0.0, 0.1, np.tile(HOME, (10, 1)))
    f.set_mode(Mode.HOLD)
    f.set_mode(Mode.AUTONOMOUS)
    assert f.tick(0.1).reason == 'no policy command yet'


@pytest.mark.parametrize('kwargs', [
    {'workspace_min': (1, 0, 0), 'workspace_max': (0, 1, 1)},
    {'max_translation_step': 0.0},
    {'period': float('nan')},
])
def test_invalid_limits_are_refused(kwargs):
    with pytest.raises(ValueError):
        SafetyLimits(**kwargs)


def test_reanchor_holds_the_measured_pose_after_the_robot_was_moved():
    """A simulator reset (or a homing routine) moves the robot behind the filter's back."""
    f = _autonomous()
    moved = HOME.copy()
    moved[:3] += [0.1, -0.2, -0.1]
    moved[6] = 1.0  # gripper closed at the end of the last episode
    for k in range(10):  # the policy drove the robot away from HOME
        f.policy_chunk(k * 0.1, 0.1, moved[None])
        f.observe(k * 0.1, moved)
        f.tick(k * 0.1)
    assert f.set_mode(Mode.HOLD)[0]
    f.observe(1.0, HOME)  # reset: the robot is back at HOME, gripper open
    np.testing.assert_allclose(f.tick(1.0).target, moved, atol=1e-9)  # holds the old command
    f.reanchor('episode started')
    out = f.tick(1.1)
    np.testing.assert_allclose(out.target, HOME, atol=1e-9)
    assert out.clipped == Clip.NONE and 're-anchored' in f.last_reason
    f.observe(1.2, HOME)
    np.testing.assert_allclose(f.tick(1.2).target, HOME, atol=1e-9)  # and keeps holding it


def test_leaving_hold_starts_from_the_measured_pose():
    """Leaving HOLD re-anchors by itself.

    The episode start's re-anchoring can arrive after the switch to autonomous (topic vs
    service), and a reset robot must never be commanded back to where the last episode ended
    (in the simulator it would wait for a target near its start pose for the whole episode).
    """
    f = _autonomous()
    moved = HOME.copy()
    moved[:3] += [0.03, 0.2, -0.15]
    for k in range(10):
        f.policy_chunk(k * 0.1, 0.1, moved[None])
        f.observe(k * 0.1, moved)
        f.tick(k * 0.1)
    assert f.set_mode(Mode.HOLD)[0]
    f.observe(1.0, HOME)  # reset while holding
    np.testing.assert_allclose(f.tick(1.0).target, moved, atol=1e-9)  # HOLD keeps its target
    accepted, message = f.set_mode(Mode.AUTONOMOUS, reason='episode 46')
    assert accepted and 'from the measured pose' in message
    f.policy_chunk(1.1, 0.1, moved[None])  # the policy heads where the last episode ended
    out = f.tick(1.1)
    assert np.linalg.norm(out.target[:3] - HOME[:3]) <= 0.05 + 1e-9  # one step from HOME
    assert out.clipped & Clip.TRANSLATION_STEP
    # a mode change that does not leave HOLD keeps the reference
    f2 = _autonomous()
    f2.observe(0.0, moved)
    f2.tick(0.0)
    assert 'measured' not in f2.set_mode(Mode.TELEOP)[1]
