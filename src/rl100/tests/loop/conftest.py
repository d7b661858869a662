"""Fixtures for the loop tests: a tiny Panda diffusion policy, a tiny demo dataset on juicing-place, a tiny config.

Everything is sized for seconds on a shared 2-core machine: 8-step episodes, a 16/32-channel U-Net, a handful of
optimiser steps per stage.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from rl100.data import Dataset, compute_stats
from rl100.keys import ACTION, OBS_STATE
from rl100.loop.config import LoopConfig
from rl100.policy.checkpoint import save_policy
from rl100.policy.config import EncoderConfig, ObsSpec, PolicyConfig
from rl100.policy.consistency import ConsistencyPolicy
from rl100.policy.diffusion import DiffusionPolicy

STATE_DIM, ACTION_DIM = 15, 7  # the Panda tasks' observation.state and action
MAX_STEPS = 8

TINY_OFFLINE = {"critic_steps": 5, "ppo_iters": 2, "batch_size": 8, "eval_states": 8, "log_every": 1,
                "critic": {"hidden": 16, "layers": 1}, "ppo": {"lr": 1e-3, "epochs": 2}}
TINY_TRAIN = {"steps": 3, "batch_size": 8, "log_every": 1}


@pytest.fixture(autouse=True)
def one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def sim_ok():
    pytest.importorskip("mujoco")
    pytest.importorskip("gymnasium_robotics")
    pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def demos(sim_ok, tmp_path_factory) -> Path:
    """Two 8-step scripted-expert episodes on juicing-place, state only."""
    from rl100.cli import main

    root = tmp_path_factory.mktemp("loop") / "demos"
    rc = main(["collect", "--task", "juicing-place", "--episodes", "2", "--out", str(root),
               "--option", f"max_steps={MAX_STEPS}", "--no-fsync"])
    assert rc in (0, 1) and len(Dataset(root)) == 2
    return root


@pytest.fixture(scope="module")
def init_policy(demos) -> tuple[Path, Path]:
    """(diffusion policy JSON, its untrained consistency student JSON), normalised on the demos."""
    torch.manual_seed(0)
    cfg = PolicyConfig(obs=[ObsSpec(OBS_STATE, (STATE_DIM,))], action_dim=ACTION_DIM, n_obs=2, horizon=4,
                       n_action_steps=2, down_dims=(16, 32), step_embed_dim=16, num_inference_steps=4,
                       encoder=EncoderConfig(lowdim_hidden=16, lowdim_out=8))
    policy = DiffusionPolicy(cfg)
    policy.normalizer.set_stats(compute_stats(Dataset(demos), [OBS_STATE, ACTION]))
    root = demos.parent
    path = save_policy(root / "init" / "policy", policy, {"dataset": str(demos)})
    student = save_policy(root / "init" / "student", ConsistencyPolicy.from_teacher(policy))
    return path, student


def tiny_config(init_policy: tuple[Path, Path], out: Path, **kw) -> LoopConfig:
    policy, student = init_policy
    base = {"policy": str(policy), "student": str(student), "task": "juicing-place", "out": str(out), "rounds": 2,
            "episodes": 2, "eval_episodes": 1, "task_options": {"max_steps": MAX_STEPS}, "fsync": False,
            "device": "cpu", "offline": TINY_OFFLINE | {"bc_weight": 0.1}, "il": TINY_TRAIN, "distill": TINY_TRAIN,
            "operator": {"stall_steps": 4}}
    return LoopConfig(**(base | kw))


@pytest.fixture(scope="module")
def h() -> SimpleNamespace:
    return SimpleNamespace(tiny_config=tiny_config, MAX_STEPS=MAX_STEPS, TINY_OFFLINE=TINY_OFFLINE,
                           TINY_TRAIN=TINY_TRAIN)
