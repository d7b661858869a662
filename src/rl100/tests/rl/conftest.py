"""Fixtures for the RL tests: a tiny diffusion-policy config and a synthetic dataset with a known best action.

Dataset: state ``s`` in [-1, 1]^2 (random per step), action ``a`` uniform in [-1, 1]^1 (random per step),
reward ``r = 1 - |a - A_STAR|`` (best action ``A_STAR`` everywhere), fixed-length episodes ending truncated.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from rl100.data import Dataset, DatasetWriter, compute_stats
from rl100.keys import ACTION, FLAG_ROLLOUT, OBS_STATE
from rl100.policy.config import EncoderConfig, ObsSpec, PolicyConfig
from rl100.policy.diffusion import DiffusionPolicy

STATE_DIM = 2
ACTION_DIM = 1
A_STAR = 0.5


def tiny_config(**kw) -> PolicyConfig:
    base = {"obs": [ObsSpec(OBS_STATE, (STATE_DIM,))], "action_dim": ACTION_DIM, "n_obs": 2, "horizon": 4,
            "n_action_steps": 2, "down_dims": (16, 32), "n_groups": 8, "step_embed_dim": 16,
            "num_inference_steps": 4, "encoder": EncoderConfig(lowdim_hidden=32, lowdim_out=16)}
    return PolicyConfig(**(base | kw))


def write_bandit_dataset(root: Path, episodes: int = 16, length: int = 10, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    with DatasetWriter(root, meta={"task": "synthetic-bandit"}) as w:
        for _ in range(episodes):
            ep = w.begin_episode(meta={"source": "synthetic"})
            for _t in range(length):
                s = rng.uniform(-1, 1, STATE_DIM).astype(np.float32)
                a = rng.uniform(-1, 1, ACTION_DIM).astype(np.float32)
                ep.add_step({OBS_STATE: s}, a, float(1.0 - abs(a[0] - A_STAR)), FLAG_ROLLOUT)
            ep.end(success=False)
    return root


def make_policy(dataset_root: Path, seed: int = 0, **kw) -> DiffusionPolicy:
    torch.manual_seed(seed)
    policy = DiffusionPolicy(tiny_config(**kw))
    policy.normalizer.set_stats(compute_stats(Dataset(dataset_root), [OBS_STATE, ACTION]))
    return policy


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny networks on shared cores: one intra-op thread is >10x faster than contending for all of them."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def bandit_root(tmp_path_factory) -> Path:
    return write_bandit_dataset(tmp_path_factory.mktemp("rl") / "bandit")


@pytest.fixture
def h() -> SimpleNamespace:
    return SimpleNamespace(tiny_config=tiny_config, make_policy=make_policy, A_STAR=A_STAR, STATE_DIM=STATE_DIM,
                           ACTION_DIM=ACTION_DIM, write_bandit_dataset=write_bandit_dataset)
