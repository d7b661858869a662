"""Fixtures shared by the integration tests of the whole stack."""

from __future__ import annotations

import pytest


def export_tiny_points_model(path, seed: int = 0):
    """A tiny untrained one-step policy on state + points, exported with the task's crop box;
    another ``seed`` gives other weights (another sha256 and model id)."""
    torch = pytest.importorskip("torch")
    sim = pytest.importorskip("rl100.sim")
    from rl100.export.onnx_export import export_onnx
    from rl100.keys import OBS_POINTS, OBS_STATE
    from rl100.policy.config import EncoderConfig, ObsSpec, PolicyConfig
    from rl100.policy.consistency import ConsistencyPolicy

    torch.manual_seed(seed)
    config = PolicyConfig(
        obs=[ObsSpec(OBS_STATE, (15,)), ObsSpec(OBS_POINTS, (64, 3), kind="points")],
        action_dim=7, n_obs=2, horizon=8, n_action_steps=4, down_dims=(16, 32), n_groups=8,
        step_embed_dim=16,
        encoder=EncoderConfig(lowdim_hidden=32, lowdim_out=16, point_dims=(16, 32), point_out=16))
    task = sim.make_config("juicing-place")
    export_onnx(ConsistencyPolicy(config), path, control_rate_hz=10.0, points_preprocessing={
        "crop_lo": list(task.points_lo), "crop_hi": list(task.points_hi), "sampler": "random"})
    return path


@pytest.fixture(scope="module")
def points_model(tmp_path_factory):
    """A tiny untrained one-step policy on state + points (see export_tiny_points_model)."""
    return export_tiny_points_model(tmp_path_factory.mktemp("model") / "tiny_points.onnx")


@pytest.fixture(scope="module")
def points_model_b(tmp_path_factory):
    """The same tiny policy with other weights: another sha256 and model id."""
    return export_tiny_points_model(tmp_path_factory.mktemp("model_b") / "tiny_points_b.onnx",
                                    seed=1)
