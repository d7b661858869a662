"""make_env / make_config / action validation / determinism of the Panda tasks."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("mujoco")
pytest.importorskip("gymnasium_robotics")

from rl100.geometry import (  # noqa: E402
    mat_to_rotvec,
    quat_wxyz_to_mat,
    rotvec_near,
    rotvec_to_mat,
    rotvec_to_quat_wxyz,
    yaw_down_mat,
)
from rl100.keys import OBS_ENV_STATE, OBS_STATE  # noqa: E402
from rl100.sim import make_config, make_env, make_expert, task_names  # noqa: E402
from rl100.sim.base import validate_action  # noqa: E402
from rl100.sim.obs import parse_obs  # noqa: E402


def test_registry_lists_the_panda_tasks():
    assert {"juicing-place", "bowling"} <= set(task_names())


def test_unknown_task_and_bad_options_raise_value_error():
    with pytest.raises(ValueError, match="unknown task"):
        make_env("no-such-task")
    with pytest.raises(ValueError, match="valid options"):
        make_config("juicing-place", not_a_field=1)
    with pytest.raises(ValueError, match="orange_radius"):
        make_config("juicing-place", orange_radius=(0.03, 0.05))
    with pytest.raises(ValueError, match="control_hz"):
        make_config("juicing-place", control_hz=0.0)
    with pytest.raises(ValueError, match="whole number of physics steps"):
        make_config("juicing-place", control_hz=7.0)
    with pytest.raises(ValueError, match="min_pins"):
        make_config("bowling", min_pins=4)
    with pytest.raises(ValueError, match="points_depth_filter"):
        make_config("juicing-place", points_depth_filter="gaussian")


def test_observation_names_are_validated():
    assert parse_obs("points,state") == ("state", "env_state", "points")
    with pytest.raises(ValueError, match="unknown observation"):
        parse_obs(("state", "lidar"))


@pytest.mark.parametrize(
    "action, message",
    [
        (np.zeros(6), r"shape \(7,\)"),
        (np.zeros((1, 7)), r"shape \(7,\)"),
        (np.array([0.4, 0, 0.2, np.nan, 0, 0, 0]), "NaN"),
        (np.array([0.4, 0, np.inf, 3, 0, 0, 0]), "indices \\[2\\]"),
        ("open", "numeric"),
    ],
)
def test_bad_actions_raise_value_error_naming_the_problem(juicing_env, action, message):
    juicing_env.reset(seed=0)
    with pytest.raises(ValueError, match=message):
        juicing_env.step(action)
    with pytest.raises(ValueError, match=message):
        validate_action(action)


def test_reset_is_deterministic_under_a_seed(juicing_env):
    a, _ = juicing_env.reset(seed=7)
    b, _ = juicing_env.reset(seed=7)
    c, _ = juicing_env.reset(seed=8)
    for key in (OBS_STATE, OBS_ENV_STATE):
        np.testing.assert_array_equal(a[key], b[key])
    assert not np.allclose(a[OBS_ENV_STATE], c[OBS_ENV_STATE])


def test_rollout_is_deterministic(juicing_env, rollout):
    expert = make_expert("juicing-place", juicing_env, skill=0.5, seed=3)
    info_a, steps_a, obs_a = rollout(juicing_env, expert, seed=11, max_steps=25)
    expert = make_expert("juicing-place", juicing_env, skill=0.5, seed=3)
    info_b, steps_b, obs_b = rollout(juicing_env, expert, seed=11, max_steps=25)
    assert steps_a == steps_b
    np.testing.assert_allclose(obs_a[OBS_STATE], obs_b[OBS_STATE], atol=1e-6)


def test_make_env_seed_seeds_the_first_reset():
    env = make_env("juicing-place", seed=5)
    first, _ = env.reset()
    again, _ = env.reset(seed=5)
    np.testing.assert_array_equal(first[OBS_ENV_STATE], again[OBS_ENV_STATE])
    env.close()


def test_spaces_and_observation_contents(juicing_env):
    obs, info = juicing_env.reset(seed=1)
    assert set(obs) == {OBS_STATE, OBS_ENV_STATE}
    assert juicing_env.observation_space.contains(obs)
    assert info["success"] is False
    state = obs[OBS_STATE]
    assert state.shape == (15,) and state.dtype == np.float32
    assert np.isclose(np.linalg.norm(state[3:7]), 1.0, atol=1e-5)  # ee quaternion
    assert 0.07 < state[7] <= 0.081  # gripper open (m)
    assert juicing_env.action_space.shape == (7,)


def test_the_arm_tracks_an_absolute_pose_target(juicing_env):
    obs, _ = juicing_env.reset(seed=2)
    target = np.array([0.5, 0.1, 0.25])
    rot = yaw_down_mat(0.4)
    action = np.concatenate([target, mat_to_rotvec(rot), [0.0]]).astype(np.float32)
    for _ in range(15):
        obs, reward, terminated, truncated, _ = juicing_env.step(action)
    assert reward == 0.0 and not terminated
    assert np.linalg.norm(obs[OBS_STATE][:3] - target) < 0.005
    pos, mat = juicing_env.arm.ee_pose()
    assert np.linalg.norm(mat_to_rotvec(rot @ mat.T)) < 0.02


def test_time_limit_truncates():
    env = make_env("juicing-place", max_steps=3)
    obs, _ = env.reset(seed=0)
    hold = np.concatenate([obs[OBS_STATE][:3], [np.pi, 0, 0], [0.0]])
    results = [env.step(hold)[2:4] for _ in range(3)]
    assert results[-1] == (False, True) and results[0] == (False, False)
    env.close()


def test_rotation_helpers_round_trip():
    rng = np.random.default_rng(0)
    for _ in range(20):
        rv = rng.normal(size=3)
        rv *= rng.uniform(0.0, np.pi - 1e-3) / np.linalg.norm(rv)
        np.testing.assert_allclose(mat_to_rotvec(rotvec_to_mat(rv)), rv, atol=1e-9)
        np.testing.assert_allclose(quat_wxyz_to_mat(rotvec_to_quat_wxyz(rv)), rotvec_to_mat(rv), atol=1e-9)
    # near pi the canonical vector flips sign; rotvec_near keeps it continuous
    flipped = mat_to_rotvec(rotvec_to_mat(np.array([-(np.pi - 0.01), 0.0, 0.0])))
    near = rotvec_near(flipped, np.array([np.pi, 0.0, 0.0]))
    assert near[0] > 3.0
    np.testing.assert_allclose(rotvec_to_mat(near), rotvec_to_mat(flipped), atol=1e-9)


def test_pose7_round_trip_and_bad_poses():
    from rl100.geometry import matrix_to_pose7, pose7_to_matrix

    rng = np.random.default_rng(1)
    for _ in range(10):
        mat = np.eye(4)
        mat[:3, :3] = rotvec_to_mat(rng.normal(size=3))
        mat[:3, 3] = rng.normal(size=3)
        pose = matrix_to_pose7(mat)
        assert pose.shape == (7,) and pose[6] >= 0.0
        np.testing.assert_allclose(pose7_to_matrix(pose), mat, atol=1e-9)
    np.testing.assert_allclose(pose7_to_matrix([1, 2, 3, 0, 0, 0, 1])[:3, 3], [1, 2, 3])
    for bad, message in (([0] * 6, "7 finite"), ([0, 0, 0, 0, 0, 0, float("nan")], "7 finite"),
                         ([0, 0, 0, 0, 0, 0, 2], "unit norm")):
        with pytest.raises(ValueError, match=message):
            pose7_to_matrix(bad)
