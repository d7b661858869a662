"""rl100.sim.expected_scene: the camera check against the robot and the fixed world, in a simulated task."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from rl100.keys import OBS_DEPTH, OBS_STATE
from rl100.registration import corrected_extrinsic
from rl100.sim import disturbances as D
from rl100.sim.bench_camera_check import task_area_error
from rl100.sim.expected_scene import ExpectedScene


@pytest.fixture(scope="module")
def knocked():
    env = D.make_env("juicing-place", "camera_pose:moderate", obs=("state", "depth"), camera_size=(64, 64))
    yield env
    env.close()


def _true_pose(env) -> np.ndarray:
    sim = env.unwrapped
    return sim._get_renderer().info(sim.data, sim.scene_camera).base_T_cam


def test_the_check_finds_a_knocked_camera(knocked):
    scene = ExpectedScene(knocked)
    try:
        for seed in (20000, 20003):
            obs, _ = knocked.reset(seed=seed)
            view = knocked.unwrapped.camera_info()  # the calibration: nominal
            true = _true_pose(knocked)
            before = task_area_error(view.base_T_cam, true)
            assert before.mean() > 0.01  # the knock moves the task area by more than a centimetre
            reg = scene.check(obs[OBS_DEPTH], obs[OBS_STATE], view)
            after = task_area_error(corrected_extrinsic(view.base_T_cam, reg), true)
            assert after.max() < 3e-3, (seed, reg.summary(), after)
            assert reg.paired > 0.5 and reg.rms_m < 2e-3
    finally:
        scene.close()


def test_a_calibrated_camera_passes_unchanged_and_a_wrong_image_is_refused():
    env = D.make_env("juicing-place", None, obs=("state", "depth"), camera_size=(64, 64))
    scene = ExpectedScene(env)
    try:
        obs, _ = env.reset(seed=5)
        view = env.unwrapped.camera_info()
        reg = scene.check(obs[OBS_DEPTH], obs[OBS_STATE], view)
        assert reg.translation_m < 1e-3 and reg.rotation_deg < 0.05
        with pytest.raises(ValueError, match="finite"):
            scene.check(obs[OBS_DEPTH], obs[OBS_STATE], dataclasses.replace(view, base_T_cam=np.full((4, 4), np.nan)))
        with pytest.raises(ValueError, match=r"observation.state must be \(15,\)"):
            scene.check(obs[OBS_DEPTH], obs[OBS_STATE][:7], view)
        with pytest.raises(ValueError, match="camera check"):  # a camera looking somewhere else entirely
            scene.check(np.full_like(obs[OBS_DEPTH], 0.3), obs[OBS_STATE], view)
    finally:
        scene.close()
        env.close()


def test_the_check_does_not_need_the_real_cameras_intrinsics(knocked):
    """A 64 x 64 observation checked against a 96 x 80 expected image: the check compares 3D points."""
    scene = ExpectedScene(knocked, size=(96, 80))
    try:
        obs, _ = knocked.reset(seed=20001)
        view = knocked.unwrapped.camera_info()
        reg = scene.check(obs[OBS_DEPTH], obs[OBS_STATE], view)
        assert task_area_error(corrected_extrinsic(view.base_T_cam, reg), _true_pose(knocked)).max() < 3e-3
    finally:
        scene.close()


def test_a_given_knock_is_the_same_in_every_episode():
    spec = {"family": "camera_pose", "offset": [0.01, -0.005, 0.0], "turn": [0.0, 0.0, 2.0]}
    env = D.make_env("juicing-place", spec, obs=("state",), camera_size=(16, 16))
    try:
        poses = []
        for seed in (1, 2):
            env.reset(seed=seed)
            poses.append(_true_pose(env))
        np.testing.assert_allclose(poses[0], poses[1])
        nominal = env.unwrapped.camera_info().base_T_cam
        np.testing.assert_allclose(poses[0][:3, 3] - nominal[:3, 3], [0.01, -0.005, 0.0], atol=1e-9)
    finally:
        env.close()
    for bad in ({"offset": [0.01, 0, 0]}, {"offset": [0.01, 0], "turn": [0, 0, 1]},
                {"offset": [1, 0, 0], "turn": [0, 0, 1]}):
        with pytest.raises(ValueError, match="offset|turn"):
            D.make_family("camera_pose", **bad)


def test_the_check_tells_a_raised_table_from_a_knocked_camera():
    spec = [{"family": "camera_pose", "severity": "moderate"},
            {"family": "table_height", "shift": [-0.02, -0.02]}]
    env = D.make_env("juicing-place", spec, obs=("state", "depth"), camera_size=(64, 64))
    scene, fixed = ExpectedScene(env), ExpectedScene(env, free_table=False)
    try:
        obs, _ = env.reset(seed=20002)
        view = env.unwrapped.camera_info()
        reg = scene.check(obs[OBS_DEPTH], obs[OBS_STATE], view)
        assert reg.table_dz == pytest.approx(-0.02, abs=1e-3)
        assert task_area_error(corrected_extrinsic(view.base_T_cam, reg), _true_pose(env)).max() < 3e-3
        # a check that trusts the model's table blames the camera for the lower table
        blind = fixed.check(obs[OBS_DEPTH], obs[OBS_STATE], view)
        assert blind.table_dz == 0.0
        assert task_area_error(corrected_extrinsic(view.base_T_cam, blind), _true_pose(env)).max() > 5e-3
    finally:
        scene.close()
        fixed.close()
        env.close()
