"""Observation assembly for the policy node, without ROS.

The robot and camera topics arrive at their own rates; at each control tick the policy needs
one observation whose parts are recent and taken at (nearly) the same time. ``Assembler``
keeps the newest sample of each source with its header stamp, and ``assemble(now)`` returns
the observation dict, or raises ``StaleObservationError`` naming the source that is missing, too
old, or too far in time from the others.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from rl100.keys import OBS_STATE
from rl100.robot_state import split_joint_state, state_vector

POSE, JOINTS = 'pose', 'joints'
SUPPORTED_KEYS = (OBS_STATE,)


class StaleObservationError(RuntimeError):
    """No usable observation this tick; the message names the source and why."""


@dataclass(frozen=True)
class AssemblyConfig:
    max_age: float = 0.2  # s: a source older than this (by header stamp) is stale
    max_skew: float = 0.1  # s: largest stamp difference between sources of one observation

    def __post_init__(self):
        if not (self.max_age > 0 and self.max_skew > 0):
            raise ValueError(
                f'max_age and max_skew must be > 0, got {self.max_age}, {self.max_skew}')


class Assembler:

    def __init__(self, needed_keys, config: AssemblyConfig | None = None):
        unsupported = sorted(set(needed_keys) - set(SUPPORTED_KEYS))
        if unsupported:
            raise ValueError(f'the model needs observations {unsupported}, which this node cannot '
                             f'assemble yet (supported: {list(SUPPORTED_KEYS)})')
        self.config = config or AssemblyConfig()
        self._latest: dict = {}  # source -> (stamp s, value)

    def pose(self, stamp: float, position, quat_xyzw) -> None:
        self._latest[POSE] = (stamp, (list(position), list(quat_xyzw)))

    def joints(self, stamp: float, names, positions) -> None:
        self._latest[JOINTS] = (stamp, split_joint_state(list(names), positions))

    def take_over(self, other: 'Assembler') -> None:
        """Start from the newest samples of another assembler (after a model swap)."""
        self._latest.update(other._latest)

    def assemble(self, now: float) -> dict:
        cfg = self.config
        for source in (POSE, JOINTS):
            if source not in self._latest:
                raise StaleObservationError(f'no {source} received yet')
            age = now - self._latest[source][0]
            if age > cfg.max_age:
                raise StaleObservationError(f'{source} is {age:.3f} s old (max {cfg.max_age} s)')
        stamps = [self._latest[s][0] for s in (POSE, JOINTS)]
        skew = max(stamps) - min(stamps)
        if skew > cfg.max_skew:
            raise StaleObservationError(
                f'pose and joints are {skew:.3f} s apart (max {cfg.max_skew} s)')
        (position, quat), (width, arm) = self._latest[POSE][1], self._latest[JOINTS][1]
        state = state_vector(position, quat, width, arm)
        if not np.all(np.isfinite(state)):
            raise StaleObservationError('robot state has non-finite values')
        return {OBS_STATE: state}
