"""Registry of simulated tasks: name -> (config class, env factory, expert factory).

Task modules are imported lazily, so listing tasks needs neither MuJoCo nor Meta-World.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass


@dataclass(frozen=True)
class TaskEntry:
    """Where a task lives: ``module:attribute`` strings resolved on first use.

    Attributes:
        name: registry name (``make_env(name)``).
        env: ``module:Class`` of the environment (takes ``config=`` plus the common keywords).
        config: ``module:Class`` of its dataclass config (``**task_kwargs`` go there).
        expert: ``module:Class`` of its scripted expert (``(env, skill, seed)``).
        summary: one line for ``--help`` and docs.
        manipuland: MJCF body name of the object the task manipulates (the robustness families of
            :mod:`rl100.sim.disturbances` push, move and reshape it); ``""``: none.
    """

    name: str
    env: str
    config: str
    expert: str
    summary: str
    manipuland: str = ""


def _resolve(path: str):
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)


TASKS: dict[str, TaskEntry] = {}


def register(entry: TaskEntry) -> None:
    if entry.name in TASKS:
        raise ValueError(f"task {entry.name!r} is already registered")
    TASKS[entry.name] = entry


register(
    TaskEntry(
        name="juicing-place",
        env="rl100.sim.juicing:JuicingPlaceEnv",
        config="rl100.sim.juicing:JuicingPlaceConfig",
        expert="rl100.sim.experts:JuicingExpert",
        summary="Panda picks an orange and places it on a juicer cone",
        manipuland="orange",
    )
)

register(
    TaskEntry(
        name="bowling",
        env="rl100.sim.bowling:BowlingEnv",
        config="rl100.sim.bowling:BowlingConfig",
        expert="rl100.sim.bowling:BowlingExpert",
        summary="Panda strikes a ball with its closed gripper to knock down three pins",
        manipuland="ball",
    )
)


register(
    TaskEntry(
        name="pouring",
        env="rl100.sim.pouring:PouringEnv",
        config="rl100.sim.pouring:PouringConfig",
        expert="rl100.sim.pouring:PouringExpert",
        summary="Panda grasps a cup of small balls, carries it over a bowl and pours them in",
        manipuland="cup",
    )
)


def task_names() -> list[str]:
    """Registered Panda tasks (Meta-World tasks are addressed as ``metaworld/<name>-v3``)."""
    return sorted(TASKS)


def get(name: str) -> TaskEntry:
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; choose from {task_names()} or 'metaworld/<task>-v3'")
    return TASKS[name]


def resolve(path: str):
    """Import ``module:attribute``."""
    return _resolve(path)
