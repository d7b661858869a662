"""Simulated tasks for RL-100: a Panda tracking absolute end-effector targets, and Meta-World v3.

Public API::

    from rl100.sim import make_env, make_expert, task_names
    env = make_env("juicing-place", seed=0, obs=("state", "points"))
    expert = make_expert("juicing-place", env, skill=1.0, seed=0)
    obs, info = env.reset()
    expert.reset()
    obs, reward, terminated, truncated, info = env.step(expert.act(obs))

Observations are dicts keyed by :mod:`rl100.keys` constants (plus the wrist-camera keys of
:mod:`rl100.sim.obs`). Panda tasks take the (7,) absolute TCP pose action of the real stack;
Meta-World tasks keep Meta-World's own 4-d action (see :mod:`rl100.sim.metaworld_env`).

Rendering is headless: when ``MUJOCO_GL`` is unset and there is no display, it defaults to ``egl``
here, before MuJoCo is imported.
"""

from __future__ import annotations

import os

if "MUJOCO_GL" not in os.environ and not os.environ.get("DISPLAY"):
    os.environ["MUJOCO_GL"] = "egl"

from rl100.sim.registry import TASKS, task_names  # noqa: E402

METAWORLD_PREFIX = "metaworld/"

__all__ = ["TASKS", "make_env", "make_expert", "make_config", "task_names"]


def make_config(task: str, **task_kwargs):
    """The task's dataclass config with ``task_kwargs`` applied (validated in ``__post_init__``)."""
    from rl100.sim import registry

    cls = registry.resolve(registry.get(task).config)
    try:
        return cls(**task_kwargs)
    except TypeError as exc:  # unknown keyword: name the valid ones
        fields = sorted(cls.__dataclass_fields__)
        raise ValueError(f"bad option for task {task!r}: {exc}; valid options: {fields}") from exc


def make_env(
    task: str,
    seed: int | None = None,
    obs: tuple[str, ...] = ("state",),
    camera_size: tuple[int, int] = (96, 96),
    n_points: int = 512,
    **task_kwargs,
):
    """Create a task environment (a ``gymnasium.Env`` with dict observations).

    Args:
        task: a name from :func:`task_names` or ``"metaworld/<task>-v3"``.
        seed: default seed: the first ``reset()`` without a seed uses it.
        obs: any of ``state, env_state, rgb, depth, points, wrist_rgb, wrist_depth``
            (``state`` and ``env_state`` are always included).
        camera_size: (height, width) of camera images.
        n_points: points per cloud after cropping and downsampling.
        **task_kwargs: fields of the task's config dataclass (e.g. ``max_steps=150``).
    """
    if task.startswith(METAWORLD_PREFIX):
        from rl100.sim.metaworld_env import MetaWorldEnv

        name = task[len(METAWORLD_PREFIX) :]
        env = MetaWorldEnv(name, obs=obs, camera_size=camera_size, n_points=n_points, **task_kwargs)
    else:
        from rl100.sim import registry

        env_cls = registry.resolve(registry.get(task).env)
        config = make_config(task, **task_kwargs)
        env = env_cls(config, obs=obs, camera_size=camera_size, n_points=n_points)
    env.default_seed = seed
    if seed is not None:
        env.action_space.seed(seed)
    return env


def make_expert(task: str, env, skill: float = 1.0, seed: int | None = None):
    """A scripted expert for ``task`` acting in ``env``: ``reset()`` then ``act(obs) -> action``."""
    if task.startswith(METAWORLD_PREFIX):
        from rl100.sim.metaworld_env import MetaWorldExpert

        return MetaWorldExpert(env, skill=skill, seed=seed)
    from rl100.sim import registry

    return registry.resolve(registry.get(task).expert)(env, skill=skill, seed=seed)
