"""Fixtures for the policy / export / runtime tests: tiny configs and synthetic datasets."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from rl100.data import DatasetWriter
from rl100.keys import FLAG_DEMO, OBS_POINTS, OBS_RGB, OBS_STATE
from rl100.policy.config import EncoderConfig, ObsSpec, PolicyConfig

STATE_DIM = 3
ACTION_DIM = 2
W_TRUE = np.array([[0.8, -0.5, 0.3], [-0.2, 0.6, 0.9]], dtype=np.float32)  # action = W_TRUE @ state


def tiny_config(obs: str = "state", **kw) -> PolicyConfig:
    specs = {"state": [ObsSpec(OBS_STATE, (STATE_DIM,))],
             "all": [ObsSpec(OBS_STATE, (STATE_DIM,)), ObsSpec(OBS_POINTS, (32, 3), kind="points"),
                     ObsSpec(OBS_RGB, (16, 16, 3), kind="rgb", dtype="uint8", norm="image")]}[obs]
    base = {"obs": specs, "action_dim": ACTION_DIM, "n_obs": 2, "horizon": 8, "n_action_steps": 4,
            "down_dims": (16, 32), "n_groups": 8, "step_embed_dim": 16, "num_inference_steps": 4,
            "encoder": EncoderConfig(lowdim_hidden=32, lowdim_out=16, point_dims=(16, 32), point_out=16,
                                     rgb_channels=(8, 16), rgb_out=16)}
    return PolicyConfig(**(base | kw))


def write_linear_dataset(root: Path, episodes: int = 24, length: int = 12, seed: int = 0) -> Path:
    """Each episode holds one random state in [-1, 1]^3 (tiny per-step jitter); the action is W_TRUE @ state."""
    rng = np.random.default_rng(seed)
    with DatasetWriter(root, meta={"task": "synthetic-linear"}) as w:
        for _ in range(episodes):
            s0 = rng.uniform(-1, 1, STATE_DIM).astype(np.float32)
            ep = w.begin_episode(meta={"source": "synthetic"})
            for _t in range(length):
                state = (s0 + rng.normal(0, 0.01, STATE_DIM)).astype(np.float32)
                ep.add_step({OBS_STATE: state}, W_TRUE @ s0, 0.0, FLAG_DEMO)
            ep.end(success=True)
    return root


@pytest.fixture
def h() -> SimpleNamespace:
    return SimpleNamespace(tiny_config=tiny_config, write_linear_dataset=write_linear_dataset, W_TRUE=W_TRUE,
                           STATE_DIM=STATE_DIM, ACTION_DIM=ACTION_DIM)
