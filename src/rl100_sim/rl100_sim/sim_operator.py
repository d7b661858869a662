"""The scripted operator inside the simulated robot: a stand-in for the human at the stack.

In the RL loop a human watches the robot and takes over near failure (HIL-SERL). In simulation
the loop's :class:`rl100.loop.operator.ScriptedOperator` plays that human: it watches the task's
privileged state (the orange, the juicer) every control tick and, once a failure sign shows,
drives the task's scripted expert for the rest of the episode. Here it lives in the sim robot
(the only process that sees the simulated world) and reaches the robot the way a human's
leader arm or VR controller would: as absolute targets on ``/rl100/teleop/target``
(rl100_msgs/TeleopTarget, ``takeover`` held), which the safety node (``teleop_device: pose``)
passes through its limits and flags as intervention, and the recorder records. No ROS here.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def operator_config_from_json(text: str):
    """An OperatorConfig from a JSON object of its fields ('' or '{}': the defaults).

    Unknown fields and bad values raise ValueError naming them (a typo must not silently fall
    back to a default threshold).
    """
    import dataclasses
    import json

    from rl100.loop.operator import OperatorConfig

    try:
        fields = json.loads(text) if text.strip() else {}
    except json.JSONDecodeError as exc:
        raise ValueError(f'operator_config is not JSON: {exc}: {text!r}') from None
    if not isinstance(fields, dict):
        raise ValueError(f'operator_config must be a JSON object, got {text!r}')
    valid = [f.name for f in dataclasses.fields(OperatorConfig)]
    unknown = sorted(set(fields) - set(valid))
    if unknown:
        raise ValueError(f'operator_config: unknown fields {unknown}; valid: {valid}')
    return OperatorConfig(**fields)


class SimOperator:
    """``reset()`` at each task reset; ``update(obs)`` once per tick -> (7,) target or None.

    The target is the expert's action: position (3), rotation vector (3), gripper 0..1, in the
    robot base frame. ``takeover`` describes the current episode's takeover (None before one).
    """

    def __init__(self, task: str, env: Any, skill: float = 1.0, seed: int = 0,
                 config: Any = None):
        from rl100.loop.operator import ScriptedOperator, view_for
        from rl100.sim import make_expert

        self._view = view_for(task)  # ValueError for a task without an operator view
        self.operator = ScriptedOperator(config)
        self.expert = make_expert(task, env, skill=skill, seed=seed)
        self.takeovers = 0  # episodes the operator took over since start

    def reset(self) -> None:
        self.operator.reset()

    def update(self, obs: dict) -> np.ndarray | None:
        op = self.operator
        was_active = op.active
        if not op.update(self._view(obs)):
            return None
        if not was_active:  # takes over at this tick: the expert plans from here
            self.expert.reset()
            self.takeovers += 1
        return np.asarray(self.expert.act(obs), dtype=np.float64)

    @property
    def takeover(self) -> dict | None:
        op = self.operator
        if not op.active:
            return None
        return {'step': op.takeover_step, 'reason': op.reason}
