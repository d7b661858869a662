"""The ``pouring`` task: config checks, seeded resets, success detector, scripted expert."""

from __future__ import annotations

import mujoco
import numpy as np
import pytest

pytest.importorskip("gymnasium_robotics")

from rl100.keys import OBS_ENV_STATE, OBS_POINTS, OBS_RGB, OBS_STATE  # noqa: E402
from rl100.sim import make_config, make_env, make_expert, task_names  # noqa: E402
from rl100.sim.pouring import BOWL_RADIUS, PouringEnv  # noqa: E402

N = 12  # fewer balls than the default keeps the tests fast


@pytest.fixture(scope="module")
def pouring_env():
    env = make_env("pouring", n_particles=N)
    yield env
    env.close()


def _put_particles(env: PouringEnv, pos: np.ndarray, vel: float = 0.0) -> None:
    d = env.data
    for i, (pq, pv) in enumerate(zip(env._p_q, env._p_v, strict=True)):
        d.qpos[pq : pq + 7] = (*pos[i], 1.0, 0.0, 0.0, 0.0)
        d.qvel[pv : pv + 6] = (vel, 0.0, 0.0, 0.0, 0.0, 0.0)
    mujoco.mj_forward(env.model, d)


def _in_bowl_positions(env: PouringEnv, count: int) -> np.ndarray:
    """``count`` balls on the bowl floor (a ring of radius 4 cm), the rest in a row on the table beside it."""
    bowl, r = env.bowl_pos(), env.config.particle_radius
    pos = np.stack([bowl[0] + 0.02 * (np.arange(N) - N / 2), np.full(N, bowl[1] + 0.15), np.full(N, r)], axis=1)
    ang = np.linspace(0.0, 2 * np.pi, count, endpoint=False)
    pos[:count] = bowl + np.stack([0.04 * np.cos(ang), 0.04 * np.sin(ang), np.full(count, r)], axis=1)
    return pos


def test_registered_and_config_validated():
    assert "pouring" in task_names()
    assert make_config("pouring").n_particles == 20
    with pytest.raises(ValueError, match="n_particles"):
        make_config("pouring", n_particles=0)
    with pytest.raises(ValueError, match="min_fraction"):
        make_config("pouring", min_fraction=1.5)
    with pytest.raises(ValueError, match="bowl_y"):
        make_config("pouring", bowl_y=(-0.2, 0.0))
    with pytest.raises(ValueError, match="cup_x"):
        make_config("pouring", cup_x=(0.6, 0.4))


def test_reset_is_seeded_and_randomised(pouring_env):
    env = pouring_env
    obs_a, _ = env.reset(seed=3)
    obs_b, _ = env.reset(seed=3)
    obs_c, _ = env.reset(seed=4)
    assert obs_a[OBS_ENV_STATE].shape == (13 + 3 * N,) == env.observation_space[OBS_ENV_STATE].shape
    np.testing.assert_array_equal(obs_a[OBS_ENV_STATE], obs_b[OBS_ENV_STATE])
    assert np.linalg.norm(obs_a[OBS_ENV_STATE][:2] - obs_c[OBS_ENV_STATE][:2]) > 1e-3  # cup moved
    assert np.linalg.norm(obs_a[OBS_ENV_STATE][8:10] - obs_c[OBS_ENV_STATE][8:10]) > 1e-3  # bowl moved
    # all balls settled inside the cup, none in the bowl, cup upright and not held
    rel = env.particle_pos()[:, :2] - env.cup_pos()[:2]
    assert np.all(np.abs(rel) < 0.03) and env.fraction_in_bowl() == 0.0
    assert env.cup_upright() > 0.99 and not env.cup_held() and not env._success()


def test_success_detector_positive_and_negative_cases(pouring_env):
    env = pouring_env
    env.reset(seed=5)
    need = int(np.ceil(env.config.min_fraction * N))
    _put_particles(env, _in_bowl_positions(env, need))
    assert env.fraction_in_bowl() >= env.config.min_fraction and env._success(), "balls in the bowl, cup standing"
    _put_particles(env, _in_bowl_positions(env, need - 1))
    assert not env._success(), "too few balls in the bowl"
    _put_particles(env, _in_bowl_positions(env, N), vel=0.5)
    assert env.fraction_in_bowl() == 0.0 and not env._success(), "balls still rolling fast"
    above = _in_bowl_positions(env, N) + np.array([0.0, 0.0, 0.1])
    _put_particles(env, above)
    assert not env._success(), "balls above the bowl (in flight) do not count"
    beside = _in_bowl_positions(env, N) + np.array([0.0, BOWL_RADIUS + 0.05, 0.0])
    _put_particles(env, beside)
    assert not env._success(), "balls on the table beside the bowl"
    # a dropped cup (on its side) spoils an otherwise good pour
    _put_particles(env, _in_bowl_positions(env, N))
    q = env._cup_q
    env.data.qpos[q + 2 : q + 7] = (0.03, np.cos(np.pi / 4), np.sin(np.pi / 4), 0.0, 0.0)
    mujoco.mj_forward(env.model, env.data)
    assert env.fraction_in_bowl() == 1.0 and not env.cup_ok() and not env._success(), "cup dropped"


def test_expert_pours_at_full_skill(pouring_env, rollout):
    env = pouring_env
    expert = make_expert("pouring", env, skill=1.0, seed=0)
    info, steps, obs = rollout(env, expert, seed=1)
    assert info["success"], f"expert failed: {env.fraction_in_bowl():.2f} in the bowl after {steps} steps"
    assert steps < env.config.max_steps and env.cup_held()
    assert obs[OBS_STATE].shape == (15,)


def test_sparse_reward_and_time_limit():
    env = make_env("pouring", n_particles=4, max_steps=3)
    obs, _ = env.reset(seed=0)
    action = np.concatenate([obs[OBS_STATE][:3], [np.pi, 0.0, 0.0], [0.0]]).astype(np.float32)
    for k in range(3):
        obs, reward, terminated, truncated, info = env.step(action)
        assert reward == 0.0 and not terminated and not info["success"]
        assert truncated == (k == 2)
    with pytest.raises(ValueError, match="shape"):
        env.step(np.zeros(6))
    env.close()


def test_points_see_the_cup_and_bowl():
    env = make_env("pouring", n_particles=4, obs=("points", "rgb"), camera_size=(48, 64), n_points=128)
    obs, _ = env.reset(seed=2)
    pts = obs[OBS_POINTS]
    assert pts.shape == (128, 3) and np.all(np.isfinite(pts)) and obs[OBS_RGB].shape == (48, 64, 3)
    near_bowl = np.linalg.norm(pts[:, :2] - env.bowl_pos()[:2], axis=1) < BOWL_RADIUS + 0.01
    near_cup = np.linalg.norm(pts[:, :2] - env.cup_pos()[:2], axis=1) < 0.05
    assert near_bowl.any() and near_cup.any()
    env.close()
