"""Task physics, success detectors and scripted experts (juicing-place, bowling)."""

from __future__ import annotations

import mujoco
import numpy as np
import pytest

pytest.importorskip("gymnasium_robotics")

from rl100.sim import make_env, make_expert  # noqa: E402
from rl100.sim.experts import SkillProfile  # noqa: E402


def _place_orange(env, pos, vel=(0.0, 0.0, 0.0)) -> None:
    d, q, v = env.data, env._orange_qadr, env._orange_dadr
    d.qpos[q : q + 7] = (*pos, 1.0, 0.0, 0.0, 0.0)
    d.qvel[v : v + 6] = (*vel, 0.0, 0.0, 0.0)
    mujoco.mj_forward(env.model, d)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_juicing_expert_at_full_skill_succeeds(juicing_env, rollout, seed):
    expert = make_expert("juicing-place", juicing_env, skill=1.0, seed=seed)
    info, steps, _ = rollout(juicing_env, expert, seed=seed)
    assert info["success"], f"seed {seed}: expert failed after {steps} steps"
    assert steps < juicing_env.config.max_steps


def test_juicing_success_detector_positive_and_negative_cases(juicing_env):
    env = juicing_env
    env.reset(seed=4)
    assert not env._success()  # orange on the table at the start
    crown = env.crown_pos()
    on_cone = crown + np.array([0.0, 0.0, env.resting_height()])
    _place_orange(env, on_cone)
    env.arm.step(250)  # 0.5 s: let it settle in the crown
    mujoco.mj_forward(env.model, env.data)
    assert env._success(), "orange resting on the cone must count"
    _place_orange(env, on_cone, vel=(0.3, 0.0, 0.0))
    assert not env._success(), "a moving orange is not resting"
    _place_orange(env, crown + np.array([0.03, 0.0, env.resting_height()]))
    assert not env._success(), "outside the xy tolerance"
    _place_orange(env, (*(crown[:2] + 0.005), crown[2] - 0.03))
    assert not env._success(), "below the crown (fallen through / beside)"
    _place_orange(env, (crown[0] + 0.15, crown[1], 0.9 * env.orange_radius))
    assert not env._success(), "on the table beside the juicer"


def test_juicing_held_orange_is_not_a_success(juicing_env):
    env = juicing_env
    expert = make_expert("juicing-place", env, skill=1.0, seed=0)
    obs, _ = env.reset(seed=0)
    expert.reset()
    held_above_cone = 0
    for _ in range(env.config.max_steps):
        obs, reward, terminated, _, info = env.step(expert.act(obs))
        if expert.phase == 6 and expert.timer == 0:  # lowered onto the cone, gripper still closed
            held_above_cone += 1
            assert env.robot_touches(env._orange_body)
            assert not info["success"] and reward == 0.0
        if terminated:
            break
    assert held_above_cone == 1
    assert info["success"] and reward == 1.0


def test_skill_profile_is_validated_and_monotone():
    with pytest.raises(ValueError, match="skill"):
        SkillProfile.from_skill(1.5)
    novice, expert = SkillProfile.from_skill(0.3), SkillProfile.from_skill(1.0)
    assert expert.place_err == expert.jitter == expert.pause_prob == 0.0
    assert novice.place_err > 0 and novice.pause_prob > 0


def test_the_careful_expert_grasps_a_moved_orange_again(rollout):
    """move_object jumps the orange 2.5 cm as the fingers close: the careful expert notices, re-grasps."""
    from rl100.sim import disturbances

    assert SkillProfile.from_skill(1.0).regrasps > 0 and SkillProfile.from_skill(0.5).regrasps == 0
    env = disturbances.make_env("juicing-place", "move_object:moderate", obs=("state", "env_state"))
    try:
        for seed in (20000, 20001):
            expert = make_expert("juicing-place", env, skill=1.0, seed=seed)
            info, steps, _ = rollout(env, expert, seed=seed)
            assert info["success"], f"seed {seed}: no recovery after {steps} steps"
            assert expert.regrasps_left < expert.profile.regrasps  # it did have to try again
            moved = [e for e in env.unwrapped.disturbances.events if e["family"] == "move_object"]
            assert moved, "the family moved nothing: the test would prove nothing"
    finally:
        env.close()


def test_low_skill_fails_more_than_full_skill(juicing_env, rollout):
    """Skill 0 (placement error ~2 cm, drops, pauses) must lose episodes the full-skill expert wins."""
    results = []
    for seed in range(4):
        expert = make_expert("juicing-place", juicing_env, skill=0.0, seed=100 + seed)
        results.append(rollout(juicing_env, expert, seed=seed)[0]["success"])
    assert not all(results)


@pytest.fixture(scope="module")
def bowling_env():
    env = make_env("bowling")
    yield env
    env.close()


@pytest.mark.parametrize("seed", [0, 1])
def test_bowling_expert_knocks_pins_down(bowling_env, rollout, seed):
    expert = make_expert("bowling", bowling_env, skill=1.0, seed=seed)
    obs, _ = bowling_env.reset(seed=seed)
    assert bowling_env.pins_down() == 0 and not bowling_env._success()
    info, steps, _ = rollout(bowling_env, expert, seed=seed)
    assert info["success"], f"seed {seed}: {bowling_env.pins_down()} pins down after {steps} steps"
    assert bowling_env.pins_down() >= bowling_env.config.min_pins
