"""Fuzzed inputs never yield an out-of-limit command.

Thousands of ticks of random policy chunks (NaN, Inf, huge values, jumps, wrong shapes), random
operator commands, mode changes, e-stops and stale inputs: every target the filter emits is
finite, inside the workspace box, within the per-tick step limits of the previous target, and
has a gripper value in [0, 1].
"""

import numpy as np
from rl100.geometry import mat_to_rotvec, rotvec_to_mat
from rl100_safety.safety_filter import Mode, SafetyFilter, SafetyLimits

LIMITS = SafetyLimits(workspace_min=(0.3, -0.3, 0.05), workspace_max=(0.7, 0.3, 0.5),
                      max_translation_step=0.02, max_rotation_step=0.1, max_gripper_step=0.5,
                      period=0.1, watchdog_periods=3.0)
HOME = np.array([0.5, 0.0, 0.3, np.pi, 0.0, 0.0, 0.0])


def _nasty_actions(rng, n):
    actions = HOME + rng.normal(0.0, rng.choice([0.001, 0.05, 1.0, 1e6]), size=(n, 7))
    mask = rng.random((n, 7))
    actions[mask < 0.03] = np.nan
    actions[(mask >= 0.03) & (mask < 0.05)] = np.inf
    actions[(mask >= 0.05) & (mask < 0.07)] = -1e30
    return actions


def test_fuzzed_inputs_never_yield_an_out_of_limit_command():
    rng = np.random.default_rng(1234)
    f = SafetyFilter(LIMITS)
    f.observe(0.0, HOME)
    f.set_mode(Mode.AUTONOMOUS)
    previous = None
    emitted = 0
    for k in range(4000):
        now = k * LIMITS.period
        roll = rng.random()
        if roll < 0.6:
            n = int(rng.integers(1, 9))
            shape = (n, 7) if rng.random() < 0.9 else (3, n)  # sometimes a wrong action size
            actions = _nasty_actions(rng, shape[0]) if shape[1] == 7 else rng.normal(size=shape)
            f.policy_chunk(now - rng.random() * 0.5, LIMITS.period, actions)
        elif roll < 0.7:
            f.operator_command(_nasty_actions(rng, 1)[0], active=bool(rng.random() < 0.7))
        elif roll < 0.72:
            f.set_mode(Mode(int(rng.integers(0, 4))), clear_estop=bool(rng.random() < 0.5))
        elif roll < 0.73:
            f.estop('fuzz')
        if rng.random() < 0.9:  # the robot mostly reports where it was sent (sometimes stale)
            f.observe(now, previous if previous is not None else HOME)
        out = f.tick(now)
        if out is None:
            continue
        emitted += 1
        t = out.target
        assert np.all(np.isfinite(t)), (k, t)
        assert np.all(t[:3] >= np.array(LIMITS.workspace_min) - 1e-9), (k, t)
        assert np.all(t[:3] <= np.array(LIMITS.workspace_max) + 1e-9), (k, t)
        assert 0.0 <= t[6] <= 1.0
        if previous is not None:
            assert np.linalg.norm(t[:3] - previous[:3]) <= LIMITS.max_translation_step + 1e-9, k
            rel = mat_to_rotvec(rotvec_to_mat(t[3:6]) @ rotvec_to_mat(previous[3:6]).T)
            assert np.linalg.norm(rel) <= LIMITS.max_rotation_step + 1e-6, k
            assert abs(t[6] - previous[6]) <= LIMITS.max_gripper_step + 1e-9, k
        previous = t
    assert emitted > 3000
    assert f.rejected > 100  # the nasty chunks were seen and refused, not silently used
