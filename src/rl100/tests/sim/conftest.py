"""Fixtures for the rl100.sim tests: environments are built once per module (a build takes ~0.5 s).

Rendering is headless (``MUJOCO_GL=egl`` unless set otherwise, as scripts/test.sh does).
"""

from __future__ import annotations

import os

import pytest

if "MUJOCO_GL" not in os.environ and not os.environ.get("DISPLAY"):
    os.environ["MUJOCO_GL"] = "egl"


def run_episode(env, expert, seed: int, max_steps: int | None = None):
    """Roll out ``expert`` from ``env.reset(seed)``; returns (final info, steps, last obs)."""
    obs, info = env.reset(seed=seed)
    expert.reset()
    steps = 0
    while max_steps is None or steps < max_steps:
        obs, _, terminated, truncated, info = env.step(expert.act(obs))
        steps += 1
        if terminated or truncated:
            break
    return info, steps, obs


@pytest.fixture(scope="module")
def juicing_env():
    pytest.importorskip("mujoco")
    pytest.importorskip("gymnasium_robotics")
    from rl100.sim import make_env

    env = make_env("juicing-place")
    yield env
    env.close()


@pytest.fixture(scope="module")
def rollout():
    """The ``run_episode`` helper, as a fixture (tests run under --import-mode=importlib)."""
    return run_episode
