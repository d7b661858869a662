"""rl100.taskframe: the table frame's shifts, the table-top estimate, the agent in a simulated task."""

from __future__ import annotations

import numpy as np
import pytest

from rl100.keys import OBS_DEPTH, OBS_ENV_STATE, OBS_POINTS, OBS_STATE
from rl100.taskframe import TableFrame, TableFrameAgent, estimate_table_z, table_tilt_deg


class Recorder:
    """A runtime that appends its inputs to ``seen`` and answers the TCP position it saw (hold still)."""

    def __init__(self, seen: list) -> None:
        self.seen = seen

    def reset(self):
        pass

    def act(self, obs):
        self.seen.append(obs)
        return np.concatenate([obs[OBS_STATE][:3], [np.pi, 0, 0, 0]])

    def latency_stats(self):
        return {}


def _state(z=0.3):
    return np.array([0.5, 0.0, z, 1, 0, 0, 0, 0.04] + [0.1] * 7, np.float32)


def test_frame_shifts_observations_in_and_actions_out():
    f = TableFrame(0.02)
    obs = {OBS_STATE: _state(0.3), OBS_POINTS: np.array([[0.5, 0.0, 0.05]], np.float32), "other": 1}
    out = f.observation(obs)
    assert out[OBS_STATE][2] == pytest.approx(0.28) and out[OBS_POINTS][0, 2] == pytest.approx(0.03)
    np.testing.assert_array_equal(out[OBS_STATE][3:], obs[OBS_STATE][3:])  # joints etc. as measured
    assert obs[OBS_STATE][2] == pytest.approx(0.3)  # the input is not modified
    assert out["other"] == 1
    a = f.action(np.array([[0.5, 0.0, 0.28, 0, 0, 0, 1.0]] * 3))
    assert a.shape == (3, 7) and np.allclose(a[:, 2], 0.3) and np.allclose(a[:, 6], 1.0)
    lo, hi = f.crop_box([0, 0, 0.004], [1, 1, 0.6])
    np.testing.assert_allclose(lo, [0, 0, 0.024])
    np.testing.assert_allclose(hi, [1, 1, 0.62])
    assert TableFrame().action(np.ones(7)).tolist() == [1.0] * 7  # dz 0: the identity
    np.testing.assert_allclose(f.action_in(f.action(np.arange(7.0))), np.arange(7.0))  # inverse


def test_frame_shifts_the_heights_of_a_privileged_state():
    f = TableFrame(0.02, env_state_z=(2, 5))
    env_state = np.arange(7, dtype=np.float32)
    out = f.observation({OBS_ENV_STATE: env_state})[OBS_ENV_STATE]
    np.testing.assert_allclose(out, [0, 1, 1.98, 3, 4, 4.98, 6])
    assert env_state[2] == 2.0  # the input is not modified
    history = f.observation({OBS_ENV_STATE: np.zeros((2, 7), np.float32)})[OBS_ENV_STATE]  # (T, D) too
    np.testing.assert_allclose(history[:, [2, 5]], -0.02)
    assert TableFrame(0.02).observation({OBS_ENV_STATE: env_state})[OBS_ENV_STATE] is env_state  # no heights named
    with pytest.raises(ValueError, match="heights are at"):
        TableFrame(0.01, env_state_z=(9,)).observation({OBS_ENV_STATE: env_state})
    with pytest.raises(ValueError, match="env_state_z"):
        TableFrame(0.01, env_state_z=(-1,))


def test_agent_without_a_cloud_shifts_a_state_policy_inputs():
    """A privileged-state policy (n_points 0): the depth image only measures the table; the orange and the crown
    heights move into the training frame with the TCP."""
    pytest.importorskip("gymnasium_robotics")
    from rl100.sim import disturbances

    stand = disturbances.make_family("table_height", shift=(-0.02, -0.02))  # 2 cm lower
    env = disturbances.make_env("juicing-place", stand, obs=("depth", "env_state", "state"))
    seen = []
    try:
        obs, _ = env.reset(seed=4)
        agent = TableFrameAgent(Recorder(seen), env, dz=None, n_points=0)
        agent.reset()
        agent.act(obs)
        assert agent.dz == pytest.approx(-0.02, abs=0.002)
        policy_obs = seen[-1]
        assert OBS_DEPTH not in policy_obs and OBS_POINTS not in policy_obs
        np.testing.assert_allclose(policy_obs[OBS_ENV_STATE][[2, 13]], obs[OBS_ENV_STATE][[2, 13]] - agent.dz,
                                   atol=1e-6)
    finally:
        env.close()
    flat = disturbances.make_env("juicing-place", None, obs=("env_state", "state"))
    try:
        nominal, _ = flat.reset(seed=4)  # the same scene on the training table
    finally:
        flat.close()
    np.testing.assert_allclose(policy_obs[OBS_ENV_STATE][[2, 13]], nominal[OBS_ENV_STATE][[2, 13]], atol=0.002)


def test_frame_rejects_bad_shifts_and_layouts():
    for bad in (float("nan"), float("inf"), 0.7):
        with pytest.raises(ValueError, match="dz must be finite"):
            TableFrame(bad)
    with pytest.raises(ValueError, match="must end in 15"):
        TableFrame(0.01).state(np.zeros(9))
    with pytest.raises(ValueError, match=r"\(\.\.\., 7\)"):
        TableFrame(0.01).action(np.zeros(4))


def test_table_estimate_finds_the_plane_under_objects_and_noise():
    rng = np.random.default_rng(0)
    table = np.column_stack([rng.uniform(0.2, 0.9, 5000), rng.uniform(-0.5, 0.5, 5000),
                             0.017 + rng.normal(0.0, 0.004, 5000)])  # a table 1.7 cm up, 4 mm noise
    orange = rng.normal([0.5, 0.1, 0.06], 0.02, (800, 3))
    floor = np.column_stack([rng.uniform(-1, 2, 3000), rng.uniform(-1, 1, 3000), np.full(3000, -0.7)])
    z = estimate_table_z(np.vstack([table, orange, floor]), [0.05, -0.6], [1.0, 0.6])
    assert z == pytest.approx(0.017, abs=0.0015)
    with pytest.raises(ValueError, match="no table"):
        estimate_table_z(orange, [0.05, -0.6], [1.0, 0.6])
    with pytest.raises(ValueError, match=r"\(M, 3\+\)"):
        estimate_table_z(np.zeros((10, 2)), [0, 0], [1, 1])


def test_table_tilt_tells_a_knocked_camera():
    pytest.importorskip("gymnasium_robotics")
    from rl100.pointcloud import depth_to_points
    from rl100.sim import make_env

    env = make_env("juicing-place", obs=("depth", "state"))
    try:
        obs, _ = env.reset(seed=3)
        cfg = env.unwrapped.config
        pts, _ = depth_to_points(obs[OBS_DEPTH], env.unwrapped.camera_info())
    finally:
        env.close()
    assert table_tilt_deg(pts, cfg.points_lo, cfg.points_hi) < 0.2  # calibrated: the table is level
    a = np.radians(2.0)  # the same cloud from a camera knocked by 2 deg about x
    rot = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    centre = np.array([0.5, 0.0, 0.0])
    knocked = (pts - centre) @ rot.T + centre
    assert table_tilt_deg(knocked, cfg.points_lo, cfg.points_hi) == pytest.approx(2.0, abs=0.2)
    with pytest.raises(ValueError, match="no table"):
        table_tilt_deg(np.zeros((10, 3)), [0, 0], [1, 1])


def test_agent_measures_the_table_and_acts_in_its_frame():
    pytest.importorskip("gymnasium_robotics")
    from rl100.sim import disturbances

    stand = disturbances.make_family("table_height", shift=(0.02, 0.02))  # a stand 2 cm higher
    env = disturbances.make_env("juicing-place", stand, obs=("depth", "state"))
    seen = []
    try:
        obs, _ = env.reset(seed=3)
        agent = TableFrameAgent(Recorder(seen), env, dz=None, n_points=256)
        agent.reseed(3)
        agent.reset()
        action = agent.act(obs)
        assert agent.dz == pytest.approx(0.02, abs=0.002)  # measured from the depth image
        policy_obs = seen[-1]
        assert OBS_DEPTH not in policy_obs and policy_obs[OBS_POINTS].shape == (256, 3)
        assert policy_obs[OBS_POINTS][:, 2].min() >= 0.004 - 1e-6  # the table left out, as in training
        assert policy_obs[OBS_STATE][2] == pytest.approx(obs[OBS_STATE][2] - agent.dz, abs=1e-6)
        assert action[2] == pytest.approx(obs[OBS_STATE][2], abs=1e-6)  # back in the base frame
        with pytest.raises(ValueError, match="make the env with depth"):
            agent.act({OBS_STATE: obs[OBS_STATE]})
    finally:
        env.close()


def test_agent_checks_a_knocked_camera_and_plans_with_the_corrected_extrinsic():
    pytest.importorskip("gymnasium_robotics")
    from rl100.sim import disturbances
    from rl100.sim.expected_scene import ExpectedScene

    env = disturbances.make_env("juicing-place", "camera_pose:moderate", obs=("depth", "state"), camera_size=(64, 64))
    seen = []
    agent = TableFrameAgent(Recorder(seen), env, dz=0.0, n_points=128, scene=ExpectedScene(env))
    try:
        obs, _ = env.reset(seed=20005)
        agent.reset()
        agent.act(obs)
        sim = env.unwrapped
        true = sim._get_renderer().info(sim.data, sim.scene_camera).base_T_cam  # where the knocked camera is
        assert np.abs(agent.view.base_T_cam[:3, 3] - true[:3, 3]).max() < 3e-3
        assert np.abs(agent.view.base_T_cam[:3, :3] - true[:3, :3]).max() < 2e-3
        assert np.abs(sim.camera_info().base_T_cam[:3, 3] - true[:3, 3]).max() > 5e-3  # the belief was wrong
        assert len(agent.camera_checks) == 1 and agent.camera_checks[0].startswith("camera moved")
        assert seen[-1][OBS_POINTS].shape == (128, 3)
        agent.act(obs)  # the view holds for the episode: checked once
        assert len(agent.camera_checks) == 1
    finally:
        agent.close()
        env.close()
