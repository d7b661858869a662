"""Simulated cameras: shapes, dtypes, metric depth, intrinsics/pose, point clouds."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("gymnasium_robotics")

import mujoco  # noqa: E402

from rl100.keys import OBS_DEPTH, OBS_ENV_STATE, OBS_POINTS, OBS_RGB  # noqa: E402
from rl100.pointcloud import crop_and_sample, depth_to_points, farthest_point_indices, filter_depth  # noqa: E402
from rl100.sim import make_env  # noqa: E402
from rl100.sim.obs import OBS_WRIST_DEPTH, OBS_WRIST_RGB  # noqa: E402

H, W = 96, 128


@pytest.fixture(scope="module")
def cam_env():
    try:
        env = make_env(
            "juicing-place",
            obs=("rgb", "depth", "points", "wrist_rgb", "wrist_depth"),
            camera_size=(H, W),
            n_points=256,
            points_color=True,
            points_lo=(0.05, -0.6, -0.01),  # keep the table top in the cloud: it is the plane z = 0
        )
        env.reset(seed=3)
    except Exception as exc:  # noqa: BLE001 - no GL on this machine
        pytest.skip(f"offscreen rendering unavailable: {exc}")
    yield env
    env.close()


def test_camera_observations_have_the_documented_shapes(cam_env):
    obs, _ = cam_env.reset(seed=3)
    assert obs[OBS_RGB].shape == (H, W, 3) and obs[OBS_RGB].dtype == np.uint8
    assert obs[OBS_DEPTH].shape == (H, W) and obs[OBS_DEPTH].dtype == np.float32
    assert obs[OBS_POINTS].shape == (256, 6) and obs[OBS_POINTS].dtype == np.float32
    assert obs[OBS_WRIST_RGB].shape == (H, W, 3) and obs[OBS_WRIST_DEPTH].shape == (H, W)
    assert cam_env.observation_space.contains(obs)
    assert obs[OBS_RGB].std() > 5  # a real image, not a blank buffer
    assert np.all(obs[OBS_POINTS][:, 3:] >= 0) and np.all(obs[OBS_POINTS][:, 3:] <= 1)


def test_depth_matches_mujoco_reference_renderer(cam_env):
    """Our one-pass colour+depth read agrees with mujoco.Renderer's metric depth."""
    obs, _ = cam_env.reset(seed=3)
    with mujoco.Renderer(cam_env.model, H, W) as ref:
        ref.update_scene(cam_env.data, "scene")
        ref.enable_depth_rendering()
        expected = ref.render()
    ours = obs[OBS_DEPTH]
    valid = ours > 0
    assert valid.mean() > 0.7  # table and floor; the sky above the horizon is "no return"
    assert np.all((expected[~valid] == 0) | (expected[~valid] > 10.0))
    close = np.isclose(ours[valid], expected[valid], rtol=2e-3, atol=2e-3)
    assert close.mean() > 0.995  # a silhouette pixel may rasterise differently between the two passes
    assert np.median(np.abs(ours[valid] - expected[valid])) < 1e-4


def test_intrinsics_and_pose(cam_env):
    info = cam_env.camera_info()
    fovy = np.deg2rad(cam_env.model.cam_fovy[cam_env.model.camera("scene").id])
    assert info.fy == pytest.approx(0.5 * H / np.tan(0.5 * fovy))
    assert (info.cx, info.cy) == ((W - 1) / 2, (H - 1) / 2)
    rot = info.base_T_cam[:3, :3]
    np.testing.assert_allclose(rot @ rot.T, np.eye(3), atol=1e-9)
    assert rot[2, 2] < 0 and rot[2, 1] < 0  # optical z looks down at the table, image y points down


def test_depth_is_consistent_with_the_point_cloud(cam_env):
    obs, _ = cam_env.reset(seed=3)
    pts, idx = depth_to_points(obs[OBS_DEPTH], cam_env.camera_info())
    # the table top is the plane z = 0: its pixels back-project onto it
    on_table = (np.abs(pts[:, 2]) < 0.01) & (pts[:, 0] > 0.25) & (pts[:, 0] < 0.95) & (np.abs(pts[:, 1]) < 0.6)
    assert on_table.sum() > 100
    assert np.mean(np.abs(pts[on_table, 2]) < 1e-3) > 0.9  # the rest: bottoms of objects standing on it
    # the orange's pixels (picked by colour) land on its surface
    rgb = obs[OBS_RGB].reshape(-1, 3)[idx].astype(float)
    orange = (rgb[:, 0] > 100) & (rgb[:, 0] > 1.5 * rgb[:, 1]) & (rgb[:, 1] > 1.5 * rgb[:, 2])
    assert orange.sum() >= 3
    es = obs[OBS_ENV_STATE]
    centre, radius = es[:3], es[10]
    np.testing.assert_allclose(np.linalg.norm(pts[orange] - centre, axis=1), radius, atol=0.003)
    # the returned cloud is a cropped subset of the same points (xyz + colours)
    cloud = obs[OBS_POINTS]
    assert cloud[:, 2].min() >= -0.01 - 1e-6 and cloud[:, 0].min() >= 0.05 - 1e-6


def test_the_cloud_is_made_from_the_filtered_depth():
    env = make_env("juicing-place", obs=("depth", "points"), n_points=256, points_depth_filter="median5")
    try:
        obs, _ = env.reset(seed=3)
        made, _ = depth_to_points(filter_depth(obs[OBS_DEPTH], "median5"), env.camera_info())
        raw, _ = depth_to_points(obs[OBS_DEPTH], env.camera_info())
    finally:
        env.close()
    cloud = obs[OBS_POINTS].astype(np.float64)

    def nearest(ref):  # (256,) distance of each cloud point to its nearest point of ref
        return np.min(np.linalg.norm(cloud[:, None, :] - ref[None, :, :], axis=2), axis=1)

    assert np.all(nearest(made) < 1e-5)  # every point comes from the filtered image
    assert np.any(nearest(raw) > 1e-4)  # and the filter changed some of them (edges)


def test_point_cloud_sampling_is_deterministic_under_a_seed(cam_env):
    a = cam_env.reset(seed=5)[0][OBS_POINTS]
    b = cam_env.reset(seed=5)[0][OBS_POINTS]
    np.testing.assert_array_equal(a, b)


def test_crop_and_sample_helpers():
    rng = np.random.default_rng(0)
    pts = rng.uniform(-1, 1, size=(500, 3))
    out = crop_and_sample(pts, None, np.zeros(3), np.ones(3), 32, np.random.default_rng(1), "fps")
    assert out.shape == (32, 3) and np.all(out >= 0)
    few = crop_and_sample(pts[:3], None, -np.ones(3), np.ones(3), 8, rng)  # fewer than n: with replacement
    assert few.shape == (8, 3)
    none = crop_and_sample(pts, np.ones_like(pts), np.full(3, 5.0), np.full(3, 6.0), 4, rng)
    assert none.shape == (4, 6) and not none.any()
    idx = farthest_point_indices(np.array([[0, 0, 0], [0.1, 0, 0], [1, 0, 0], [0.5, 0, 0]], float), 3)
    assert list(idx) == [0, 2, 3]
